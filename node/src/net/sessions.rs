//! The sync sessions this node runs, as plain state with no IO: which
//! (peer, document) sessions are open and for how many rounds, which must
//! run again when they end, which requests are in flight, and whom a
//! pusher said its push already covers. The event loop tells it what
//! happened and does what it answers; unit tests (below) drive it alone.
//!
//! A session is this node's series of rounds of automerge's sync protocol
//! with one peer on one document: it ends when both sides have nothing
//! more to say, when the peer refuses or breaks it, or after
//! [`MAX_SYNC_ROUNDS`]. A change made while one runs does not start a
//! second one beside it: the session runs again once it ends, so nothing
//! new is left behind.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use libp2p::PeerId;

use crate::wire::DocRef;

/// Most rounds one session may take before it is cut off (a peer that
/// keeps sending what we refuse would otherwise loop forever; the next
/// sync starts afresh).
pub(crate) const MAX_SYNC_ROUNDS: u32 = 64;

/// After one of our rounds: what the session does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send the round's message.
    Send,
    /// The session is over; start it again if `again` (the document
    /// changed while it ran).
    End { again: bool },
}

/// The sessions of one node; `Id` names an outstanding request.
pub(crate) struct Sessions<Id> {
    /// Open sessions this node initiated: rounds so far.
    rounds: HashMap<(PeerId, DocRef), u32>,
    /// Open sessions to run again when they end.
    again: HashSet<(PeerId, DocRef)>,
    /// Which document each outstanding request is about.
    in_flight: HashMap<Id, DocRef>,
    /// Per session a peer opened with us: the peers its pusher said it
    /// covers (the change itself arrives in a later round).
    covered: HashMap<(PeerId, DocRef), Vec<PeerId>>,
}

impl<Id> Default for Sessions<Id> {
    fn default() -> Self {
        Self {
            rounds: HashMap::new(),
            again: HashSet::new(),
            in_flight: HashMap::new(),
            covered: HashMap::new(),
        }
    }
}

impl<Id: Hash + Eq> Sessions<Id> {
    /// Asks for a session with `peer` on `doc`: true if it opens now (make
    /// its first message); if one is open, it runs again when it ends.
    pub(crate) fn open(&mut self, peer: PeerId, doc: DocRef) -> bool {
        let key = (peer, doc);
        if self.rounds.contains_key(&key) {
            self.again.insert(key);
            return false;
        }
        self.rounds.insert(key, 0);
        true
    }

    /// Whether the session is still open (the peer may have left, or the
    /// session been cut, while a round was worked on).
    pub(crate) fn is_open(&self, peer: PeerId, doc: &DocRef) -> bool {
        self.rounds.contains_key(&(peer, doc.clone()))
    }

    /// Request `id`, about `doc`, went out.
    pub(crate) fn sent(&mut self, id: Id, doc: DocRef) {
        self.in_flight.insert(id, doc);
    }

    /// The answer to request `id` came: its document, if it was ours.
    pub(crate) fn answered(&mut self, id: &Id) -> Option<DocRef> {
        self.in_flight.remove(id)
    }

    /// Request `id` to `peer` failed: its session ends, not to run again.
    pub(crate) fn failed(&mut self, peer: PeerId, id: &Id) {
        if let Some(doc) = self.in_flight.remove(id) {
            self.abort(peer, doc);
        }
    }

    /// The peer refused the session: it ends. True if a session was asked
    /// for meanwhile, which the caller starts afresh: the refusal answered
    /// a request made before, and what changed since may change the
    /// answer. (A joiner's first roster sync is refused — it is not a
    /// member yet — and the one it asks for once admitted must still run.)
    pub(crate) fn refused(&mut self, peer: PeerId, doc: DocRef) -> bool {
        let key = (peer, doc);
        self.rounds.remove(&key);
        self.again.remove(&key)
    }

    /// The session ends, not to run again: the peer broke it, or proved
    /// this node removed.
    pub(crate) fn abort(&mut self, peer: PeerId, doc: DocRef) {
        let key = (peer, doc);
        self.rounds.remove(&key);
        self.again.remove(&key);
    }

    /// One of our rounds is done. `refused`: the peer sent what the rules
    /// refuse; `quiet`: neither side has more to say. `None` if the
    /// session is gone.
    pub(crate) fn after_round(
        &mut self,
        peer: PeerId,
        doc: DocRef,
        refused: bool,
        quiet: bool,
    ) -> Option<Next> {
        let key = (peer, doc);
        let rounds = self.rounds.get(&key)? + 1;
        if refused || quiet || rounds >= MAX_SYNC_ROUNDS {
            self.rounds.remove(&key);
            let again = self.again.remove(&key);
            return Some(Next::End { again });
        }
        self.rounds.insert(key, rounds);
        Some(Next::Send)
    }

    /// The first request of a session `peer` opened says whom its push
    /// covers.
    pub(crate) fn remember_covered(&mut self, peer: PeerId, doc: DocRef, covered: Vec<PeerId>) {
        self.covered.insert((peer, doc), covered);
    }

    /// Whom the session `peer` opened on `doc` said its push covers.
    pub(crate) fn covered(&self, peer: PeerId, doc: &DocRef) -> &[PeerId] {
        self.covered
            .get(&(peer, doc.clone()))
            .map_or(&[], Vec::as_slice)
    }

    /// `peer` disconnected: everything about it goes. (Its outstanding
    /// requests fail on their own, through [`Self::failed`].)
    pub(crate) fn peer_gone(&mut self, peer: PeerId) {
        self.rounds.retain(|(p, _), _| *p != peer);
        self.again.retain(|(p, _)| *p != peer);
        self.covered.retain(|(p, _), _| *p != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed() -> DocRef {
        DocRef::Feed("f".into())
    }

    #[test]
    fn a_session_runs_until_both_sides_are_quiet_and_once_more_if_asked() {
        let mut s = Sessions::<u32>::default();
        let p = PeerId::random();
        assert!(s.open(p, feed()));
        s.sent(1, feed());
        // Asked again while it runs: no second session beside it.
        assert!(!s.open(p, feed()));
        assert_eq!(s.answered(&1), Some(feed()));
        assert_eq!(s.answered(&1), None, "an answer is taken once");
        assert_eq!(s.after_round(p, feed(), false, false), Some(Next::Send));
        assert_eq!(
            s.after_round(p, feed(), false, true),
            Some(Next::End { again: true })
        );
        assert!(!s.is_open(p, &feed()));
        // The rerun opens, and ends with nothing queued.
        assert!(s.open(p, feed()));
        assert_eq!(
            s.after_round(p, feed(), false, true),
            Some(Next::End { again: false })
        );
        assert_eq!(s.after_round(p, feed(), false, true), None, "gone");
    }

    #[test]
    fn refusals_failures_and_endless_peers_end_a_session_without_a_rerun() {
        let mut s = Sessions::<u32>::default();
        let p = PeerId::random();
        assert!(s.open(p, feed()));
        assert!(!s.open(p, feed()));
        assert_eq!(
            s.after_round(p, feed(), true, false),
            Some(Next::End { again: true }),
            "a refused round ends the session (a rerun was asked for)"
        );

        assert!(s.open(p, feed()));
        assert!(!s.open(p, feed()));
        s.sent(7, feed());
        s.failed(p, &7);
        assert!(!s.is_open(p, &feed()));
        assert!(s.open(p, feed()), "the failed one's rerun was dropped");

        let mut rounds = 1;
        while s.after_round(p, feed(), false, false) == Some(Next::Send) {
            rounds += 1;
        }
        assert_eq!(rounds, MAX_SYNC_ROUNDS);
        assert!(!s.is_open(p, &feed()));
    }

    #[test]
    fn a_session_asked_for_while_a_refused_one_ran_still_runs() {
        let mut s = Sessions::<u32>::default();
        let p = PeerId::random();
        // A joiner syncs the roster on connecting, is admitted while that
        // request is out, and asks again: the refusal of the first must
        // not swallow the second.
        assert!(s.open(p, DocRef::Roster));
        s.sent(1, DocRef::Roster);
        assert!(!s.open(p, DocRef::Roster));
        assert_eq!(s.answered(&1), Some(DocRef::Roster));
        assert!(s.refused(p, DocRef::Roster), "start it afresh");
        assert!(!s.is_open(p, &DocRef::Roster));
        assert!(s.open(p, DocRef::Roster));
        // Refused with nothing asked for meanwhile: it ends there.
        assert!(!s.refused(p, DocRef::Roster));
        assert!(!s.is_open(p, &DocRef::Roster));
    }

    #[test]
    fn a_peer_that_leaves_takes_its_sessions_and_nobody_elses() {
        let mut s = Sessions::<u32>::default();
        let (p, q) = (PeerId::random(), PeerId::random());
        assert!(s.open(p, feed()));
        assert!(s.open(q, feed()));
        assert!(!s.open(p, feed()));
        s.remember_covered(p, feed(), vec![q]);
        s.remember_covered(q, feed(), vec![p]);
        assert_eq!(s.covered(p, &feed()), &[q]);
        s.peer_gone(p);
        assert!(!s.is_open(p, &feed()));
        assert!(s.covered(p, &feed()).is_empty());
        assert!(s.is_open(q, &feed()));
        assert_eq!(s.covered(q, &feed()), &[p]);
        // A round of the gone session that finishes late finds nothing.
        assert_eq!(s.after_round(p, feed(), false, false), None);
        // Back: a fresh session, no rerun left over.
        assert!(s.open(p, feed()));
        assert_eq!(
            s.after_round(p, feed(), false, true),
            Some(Next::End { again: false })
        );
    }
}
