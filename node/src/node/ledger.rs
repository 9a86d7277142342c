//! The pin ledger as one pass reads it: a snapshot taken under the
//! workspace lock, kept while the ledger's heads stay the same. Pinning
//! ([`super::pins`]) and audits ([`super::audit`]) decide on it.

use std::collections::HashMap;
use std::sync::Arc;

use meshwork_crdt::automerge::ChangeHash;
use meshwork_crdt::pins::{self, Commitment, PinRequest, Pins};
use meshwork_crdt::roster::Roster;
use meshwork_crdt::Millis;

use super::Node;
use crate::wire::DocRef;
use crate::NodeError;

/// How long past a deadline a blob is still kept, and its pinners still
/// count: clocks of different nodes may disagree by up to this much without
/// breaking the promise.
pub const SKEW_MARGIN_MS: Millis = 15 * 60 * 1000;

/// A snapshot of what a pass decides on, read under the workspace lock.
pub(super) struct Ledger {
    pub(super) roster: Roster,
    pub(super) requests: Arc<[PinRequest]>,
    pub(super) commits: Arc<HashMap<String, Vec<Commitment>>>,
    pub(super) reported: Option<pins::PinNodeReport>,
}

/// The pin ledger as read at some heads: reading 10,000 requests costs a
/// quarter of a second, and most passes find the ledger unchanged.
#[derive(Clone)]
pub(super) struct LedgerCache {
    heads: Vec<ChangeHash>,
    requests: Arc<[PinRequest]>,
    commits: Arc<HashMap<String, Vec<Commitment>>>,
    nodes: Arc<[pins::PinNodeReport]>,
}

impl Node {
    /// The ledger now (read again only if it changed).
    pub(super) fn ledger(&self) -> Result<Ledger, NodeError> {
        let me = self.member_id();
        let roster = self.shared.roster()?;
        let read = self.shared.read_doc(&DocRef::Pins, |doc| {
            let heads = doc.heads();
            let mut cache = self
                .ledger_cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match cache.as_ref() {
                Some(c) if c.heads == heads => {}
                _ => {
                    let pins = Pins::new(doc.doc());
                    *cache = Some(LedgerCache {
                        heads,
                        requests: pins.requests().into(),
                        commits: Arc::new(pins.all_commitments()),
                        nodes: pins.nodes().into(),
                    });
                }
            }
            cache.clone().expect("just filled")
        })?;
        Ok(Ledger {
            reported: read.nodes.iter().find(|n| n.member == me).cloned(),
            requests: read.requests,
            commits: read.commits,
            roster,
        })
    }
}
