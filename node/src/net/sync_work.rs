//! One round of a sync session, done off the event loop on a blocking
//! thread: the loop only hands the message over and, when the round is
//! done, answers or continues the session.
//!
//! The workspace lock is never held for a whole message. A sync message is
//! opened and its signatures checked without it ([`OpenedSync`]); its
//! changes are then judged, applied and stored a batch at a time, the
//! lock taken for each batch alone; the sync state learns the rest of the
//! message last. A fresh member's 100,000-post feed thus leaves the lock
//! free many times a second for the API, other documents' sync and the
//! piece server, and each stored batch is announced as it lands.
//!
//! Rounds of one document run one at a time (a per-document turn): when
//! three members send a fresh node the same history at once, the second and
//! third find it known and check no signature twice.

use libp2p::PeerId;
use meshwork_crdt::{Ingest, MemberId, OpenedSync, SyncPayload};

use crate::shared::{Shared, Side};
use crate::wire::DocRef;
use crate::NodeError;

/// Changes judged and applied per hold of the workspace lock: at ~0.3 ms a
/// change (rules, apply, store), a hold of ~20 ms. The roster takes bigger
/// batches: each batch tells every roster watcher (admission waiters, the
/// member map), which made a fresh node's 1,000-member roster sync 2–3×
/// slower in batches of 64 (BENCHMARKS.md, roster).
fn batch_for(doc: &DocRef) -> usize {
    match doc {
        DocRef::Roster => 256,
        _ => 64,
    }
}

/// Who asks, when this node answers a round.
pub(crate) struct Asker {
    /// This node's member id.
    pub me: MemberId,
    /// The asker's member id.
    pub them: MemberId,
    /// The first round of a session: only shared heads are trusted.
    pub first: bool,
}

/// What a round did.
pub(crate) enum Stepped {
    /// The changes it carried, judged (the accepted ones stored), and the
    /// message to send back.
    Done(Ingest, Option<SyncPayload>),
    /// The asker may not share this document.
    NotShared,
}

/// Runs one round for `peer` on `doc`: takes `received` and produces the
/// next message. Accepted changes are stored (not yet flushed) and
/// announced to listeners before this returns.
pub(crate) fn step(
    shared: &Shared,
    workspace: &[u8; 32],
    peer: PeerId,
    side: Side,
    doc: &DocRef,
    received: Option<SyncPayload>,
    asker: Option<Asker>,
) -> Result<Stepped, NodeError> {
    let turn = shared.doc_turn(doc);
    let _turn = turn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let store = &shared.store;
    if let Some(a) = &asker {
        let allowed = shared.with_ws(|ws| {
            if !ws.may_share(doc, &a.me, &a.them) {
                return Ok(false);
            }
            if a.first {
                ws.new_session(peer, side, doc);
            }
            Ok(true)
        })?;
        if !allowed {
            return Ok(Stepped::NotShared);
        }
    }
    let mut report = Ingest::default();
    let mut opened = match received {
        Some(payload) => Some(OpenedSync::open(payload)?),
        None => None,
    };
    shared.preload(doc)?;
    if let Some(opened) = &mut opened {
        shared.with_ws(|ws| {
            opened.forget_known(ws.doc_mut(doc, store)?);
            Ok(())
        })?;
        opened.verify();
        while let Some(batch) = opened.next_batch(batch_for(doc)) {
            let got = shared.with_ws(|ws| {
                Ok(if *doc == DocRef::Roster {
                    ws.roster.ingest_batch(batch, None)
                } else {
                    let (signed, mut roster) = ws.judged(doc, store)?;
                    signed.ingest_batch(batch, Some(&mut roster))
                })
            })?;
            shared.record(workspace, doc, &got.accepted)?;
            report.accepted.extend(got.accepted);
            report.rejected.extend(got.rejected);
            report.missing_deps = got.missing_deps;
            report.waiting_for_roster += got.waiting_for_roster;
        }
    }
    let next = shared.with_ws(|ws| {
        let key = (peer, side, doc.clone());
        let mut state = ws.sync.remove(&key).unwrap_or_default();
        let signed = ws.doc_mut(doc, store)?;
        let t = std::time::Instant::now();
        let finished = match opened {
            Some(opened) => signed.finish_sync(&mut state, opened),
            None => Ok(()),
        };
        let took = t.elapsed();
        let next = signed.generate_sync(&mut state);
        tracing::trace!(
            "{doc:?} with {peer}: finish {took:?}, generate {:?}, {} changes here, {} sent",
            t.elapsed() - took,
            signed.len(),
            state.sent_hashes.len()
        );
        ws.sync.insert(key, state);
        finished?;
        Ok(next)
    })?;
    Ok(Stepped::Done(report, next))
}
