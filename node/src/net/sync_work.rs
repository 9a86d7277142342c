//! One round of a sync session, done off the event loop on a blocking
//! thread: the loop only hands the message over and, when the round is
//! done, answers or continues the session.
//!
//! The workspace lock is never held for a whole message. A sync message is
//! opened and its signatures checked without it ([`OpenedSync`]); its
//! changes are then judged, applied and stored a batch at a time, the
//! lock taken for each batch alone; the sync state learns the rest of the
//! message last, and the next message is made, under the document's own
//! lock (for a department document) — half a second for a fresh member of
//! a 100,000-post feed, which holds up nobody else. A fresh member's 100,000-post feed thus leaves the lock
//! free many times a second for the API, other documents' sync and the
//! piece server, and each stored batch is announced as it lands.
//!
//! Rounds of one document run one at a time (a per-document turn): when
//! three members send a fresh node the same history at once, the second and
//! third find it known and check no signature twice.

use std::collections::HashMap;

use libp2p::PeerId;
use meshwork_crdt::automerge::sync;
use meshwork_crdt::{Ingest, MemberId, OpenedSync, SignedDoc, SyncBatch, SyncPayload};

use crate::shared::{Shared, Side};
use crate::wire::DocRef;
use crate::NodeError;

/// Changes judged and applied per hold of the document's lock: at ~0.3 ms
/// a change (rules, apply, store), a hold of ~20 ms. The roster takes bigger
/// batches (it is checked against itself, a cheaper judgement), and its
/// round tells roster watchers once, at its end.
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
}

/// One round to run: with whom, on which side, on which document, what
/// came in.
pub(crate) struct Round {
    pub peer: PeerId,
    pub side: Side,
    pub doc: DocRef,
    /// The peer's message (`None`: this side speaks first).
    pub received: Option<SyncPayload>,
    /// The session's first round on this side, which trusts only the heads
    /// both are known to share.
    pub first: bool,
    /// Who asks, when this node answers: checked against the roster first.
    pub asker: Option<Asker>,
}

/// What a round did.
pub(crate) enum Stepped {
    /// The changes it carried, judged (the accepted ones stored), and the
    /// message to send back.
    Done(Ingest, Option<SyncPayload>),
    /// The asker may not share this document.
    NotShared,
    /// This side was to speak first, and the document has left memory
    /// with the peer in step: the session ends before it starts.
    InStep,
}

/// The sync states of one document, per peer and side.
type States = HashMap<(PeerId, Side), sync::State>;

/// Runs one round: takes what `round` received and produces the next
/// message. Accepted changes are stored (not yet flushed) and announced to
/// listeners before this returns.
pub(crate) fn step(
    shared: &Shared,
    workspace: &[u8; 32],
    round: Round,
) -> Result<Stepped, NodeError> {
    let Round {
        peer,
        side,
        ref doc,
        received,
        first,
        asker,
    } = round;
    let turn = shared.doc_turn(doc);
    let _turn = turn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if received.is_none() && shared.idle_in_step(doc, &peer) {
        // The loop chose the document while its lock was taken (being
        // compacted, say: then not known to be in step), and it has left
        // memory since. Going on would load it for nothing.
        return Ok(Stepped::InStep);
    }
    if let Some(a) = &asker {
        let now = shared.clock.now();
        if !shared.with_ws(|ws| Ok(ws.may_share(doc, &a.me, &a.them, now)))? {
            return Ok(Stepped::NotShared);
        }
    }
    if first {
        on_doc(shared, doc, |_, states| {
            restart(states, peer, side);
            Ok(())
        })?;
    }
    let mut opened = match received {
        Some(payload) => Some(OpenedSync::open(payload)?),
        None => None,
    };
    let report = match &mut opened {
        Some(opened) => take(shared, workspace, doc, opened)?,
        None => Ingest::default(),
    };
    let next = on_doc(shared, doc, |signed, states| {
        let key = (peer, side);
        let mut state = states.remove(&key).unwrap_or_default();
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
        states.insert(key, state);
        finished?;
        Ok(next)
    })?;
    Ok(Stepped::Done(report, next))
}

/// Takes the changes of an opened message: drops those already here,
/// checks the signatures (no lock), then judges, applies and stores them a
/// batch at a time ([`judge`]). Feeds announce each stored batch; the
/// roster tells its watchers once, at the end.
fn take(
    shared: &Shared,
    workspace: &[u8; 32],
    doc: &DocRef,
    opened: &mut OpenedSync,
) -> Result<Ingest, NodeError> {
    on_doc(shared, doc, |signed, _| {
        opened.forget_known(signed);
        Ok(())
    })?;
    opened.verify();
    let mut report = Ingest::default();
    while let Some(batch) = opened.next_batch(batch_for(doc)) {
        let got = judge(shared, doc, batch)?;
        if *doc == DocRef::Roster {
            shared.store_quietly(workspace, doc, &got.accepted)?;
        } else {
            shared.record(workspace, doc, &got.accepted)?;
        }
        report.accepted.extend(got.accepted);
        report.rejected.extend(got.rejected);
        report.missing_deps = got.missing_deps;
        report.waiting_for_roster += got.waiting_for_roster;
    }
    if *doc == DocRef::Roster {
        shared.tell(doc, report.accepted.len());
    }
    Ok(report)
}

/// Judges and applies one batch. A department document's batch is judged
/// under that document's lock alone, against the rosters it cites, read
/// beforehand: the workspace lock only for that read.
fn judge(shared: &Shared, doc: &DocRef, batch: SyncBatch) -> Result<Ingest, NodeError> {
    if *doc == DocRef::Roster {
        return shared.with_ws(|ws| Ok(ws.roster.ingest_batch(batch, None)));
    }
    shared.with_doc_in_sync(doc, |state| {
        let signed = &mut state.signed;
        let mut cited = shared.with_ws(|ws| Ok(signed.rosters_for(&batch, &mut ws.roster_at())))?;
        let got = signed.ingest_batch(batch, Some(&mut cited));
        if !got.accepted.is_empty() {
            state.arrived = Some(std::time::Instant::now());
            state.used();
        }
        Ok(got)
    })
}

/// Runs `f` on `doc` and its sync states under the lock that guards them:
/// the workspace's for the roster, the document's own for the others.
fn on_doc<R>(
    shared: &Shared,
    doc: &DocRef,
    f: impl FnOnce(&mut SignedDoc, &mut States) -> Result<R, NodeError>,
) -> Result<R, NodeError> {
    if *doc == DocRef::Roster {
        shared.with_ws(|ws| f(&mut ws.roster, &mut ws.roster_sync))
    } else {
        shared.with_doc_in_sync(doc, |state| f(&mut state.signed, &mut state.sync))
    }
}

/// A new session with `peer` on this side keeps only the heads both are
/// known to share (automerge's advice for a new connection), so nothing an
/// earlier, cut-off or refused session "sent" is taken as delivered.
fn restart(states: &mut States, peer: PeerId, side: Side) {
    if let Some(state) = states.get_mut(&(peer, side)) {
        *state = sync::State::decode(&state.encode()).unwrap_or_default();
    }
}
