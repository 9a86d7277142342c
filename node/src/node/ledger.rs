//! The pin ledger as one pass reads it: its live days
//! ([`meshwork_crdt::pins::Epoch`]) merged into one snapshot, each day read
//! again only when its heads moved. Pinning ([`super::pins`]) and audits
//! ([`super::audit`]) decide on it.

use std::collections::HashMap;
use std::sync::Arc;

use meshwork_crdt::automerge::ChangeHash;
use meshwork_crdt::pins::{Commitment, Epoch, PinNodeReport, PinRequest, Pins};
use meshwork_crdt::roster::Roster;
use meshwork_crdt::MemberId;

use super::Node;
use crate::store::Store;
use crate::wire::DocRef;
use crate::NodeError;

pub use meshwork_crdt::pins::SKEW_MARGIN_MS;

/// A snapshot of what a pass decides on.
pub(super) struct Ledger {
    pub(super) roster: Roster,
    /// Every request of the live days, one per blob (its latest deadline),
    /// soonest deadline first.
    pub(super) requests: Arc<[PinRequest]>,
    /// Commitments by blob, one per pinner (its latest deadline).
    pub(super) commits: Arc<HashMap<String, Vec<Commitment>>>,
    /// Pin nodes' quota reports, each from the newest day it wrote one in.
    pub(super) nodes: Arc<[PinNodeReport]>,
    /// This node's report in today's ledger, if it wrote one today.
    pub(super) reported: Option<PinNodeReport>,
}

/// One day of the ledger as read at some heads: reading 3,000 requests
/// costs tens of milliseconds, and most passes find the day unchanged.
struct DayRead {
    heads: Vec<ChangeHash>,
    requests: Vec<PinRequest>,
    commits: HashMap<String, Vec<Commitment>>,
    nodes: Vec<PinNodeReport>,
}

/// The live days last read, and their merge, kept while no day's heads move.
#[derive(Default)]
pub(super) struct LedgerCache {
    days: HashMap<Epoch, Arc<DayRead>>,
    /// The days and heads `merged` was made from.
    merged_at: Vec<(Epoch, Vec<ChangeHash>)>,
    merged: Option<Merged>,
}

/// The live days merged.
#[derive(Clone)]
struct Merged {
    requests: Arc<[PinRequest]>,
    commits: Arc<HashMap<String, Vec<Commitment>>>,
    /// Each member's newest report, with its day.
    nodes: Arc<[(Epoch, PinNodeReport)]>,
}

impl Node {
    /// The days of the pin ledger this node holds, live or not yet dropped
    /// (a pin pass drops the days that are over).
    pub fn ledger_days(&self) -> Result<Vec<Epoch>, NodeError> {
        self.shared.store.ledger_days()
    }

    /// The ledger now: its live days, each read again only if it changed.
    pub(super) fn ledger(&self) -> Result<Ledger, NodeError> {
        let me = self.member_id();
        let now = self.shared.clock.now();
        let roster = self.shared.roster()?;
        let mut cache = self
            .ledger_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut at = Vec::new();
        for day in self.shared.ledger_days(now)? {
            let cached = cache.days.get(&day).cloned();
            let read = self.shared.read_doc(&DocRef::Pins(day), |doc| {
                let heads = doc.heads();
                match cached {
                    Some(read) if read.heads == heads => read,
                    _ => {
                        let pins = Pins::new(doc.doc());
                        Arc::new(DayRead {
                            heads,
                            requests: pins.requests(),
                            commits: pins.all_commitments(),
                            nodes: pins.nodes(),
                        })
                    }
                }
            })?;
            at.push((day, read.heads.clone()));
            cache.days.insert(day, read);
        }
        cache.days.retain(|day, _| at.iter().any(|(d, _)| d == day));
        if cache.merged.is_none() || cache.merged_at != at {
            cache.merged = Some(merge(&at, &cache.days));
            cache.merged_at = at;
        }
        let merged = cache.merged.clone().expect("just merged");
        let today = meshwork_crdt::pins::epoch_of(now);
        Ok(Ledger {
            reported: merged
                .nodes
                .iter()
                .find(|(day, n)| *day == today && n.member == me)
                .map(|(_, n)| *n),
            nodes: merged.nodes.iter().map(|(_, n)| *n).collect(),
            requests: merged.requests,
            commits: merged.commits,
            roster,
        })
    }
}

/// The days `at` (in order) as one ledger: a blob requested in two days
/// keeps its latest deadline, as does a pinner committed in two; a pin
/// node's report is its newest day's.
fn merge(at: &[(Epoch, Vec<ChangeHash>)], days: &HashMap<Epoch, Arc<DayRead>>) -> Merged {
    let mut requests: HashMap<&str, &PinRequest> = HashMap::new();
    let mut commits: HashMap<String, HashMap<MemberId, Commitment>> = HashMap::new();
    let mut nodes: HashMap<MemberId, (Epoch, PinNodeReport)> = HashMap::new();
    for (day, _) in at {
        let Some(read) = days.get(day) else { continue };
        for r in &read.requests {
            let kept = requests.entry(r.blob.as_str()).or_insert(r);
            if r.until > kept.until {
                *kept = r;
            }
        }
        for (blob, cs) in &read.commits {
            let by_member = commits.entry(blob.clone()).or_default();
            for c in cs {
                let kept = by_member.entry(c.member).or_insert(*c);
                kept.until = kept.until.max(c.until);
            }
        }
        for n in &read.nodes {
            nodes.insert(n.member, (*day, *n));
        }
    }
    let mut requests: Vec<PinRequest> = requests.into_values().cloned().collect();
    requests.sort_by(|a, b| a.until.cmp(&b.until).then(a.blob.cmp(&b.blob)));
    let mut nodes: Vec<(Epoch, PinNodeReport)> = nodes.into_values().collect();
    nodes.sort_by_key(|(_, n)| n.member);
    Merged {
        requests: requests.into(),
        commits: Arc::new(
            commits
                .into_iter()
                .map(|(blob, cs)| (blob, cs.into_values().collect()))
                .collect(),
        ),
        nodes: nodes.into(),
    }
}

/// Before the ledger was split by day it was one document per workspace,
/// its history kept for ever. A home that still holds one lets it go at
/// start: no day's rules would take its changes whole. What it said of
/// files shared before stays where it matters most: every node that pinned
/// one keeps it until its deadline (its local pin says so).
pub(super) fn forget_undivided(store: &Store, workspace: &[u8; 32]) -> Result<(), NodeError> {
    let undivided = blake3::derive_key("meshwork pins document v1", workspace);
    if store.has_changes(&undivided)? {
        tracing::info!("dropping the pin ledger of before its split by day");
        store.remove_changes(&undivided)?;
    }
    Ok(())
}
