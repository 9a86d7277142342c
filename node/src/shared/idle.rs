//! Documents nobody is using leave memory.
//!
//! A feed of 100,000 posts holds ~90 MiB once loaded; a member of three
//! such departments who kept every document loaded would sit at 300 MiB
//! doing nothing. A document unused for a while (no read, no write, no
//! change taken in — a sync round that exchanges nothing does not count)
//! is unloaded, and what its sync sessions knew is kept in a few bytes:
//! the heads each peer shares with this node (automerge's own encoding of
//! a sync state), and which peers were last heard holding exactly this
//! node's heads. The periodic sync skips a document, loaded or not, with a
//! peer in step — neither side has anything for the other, and whichever
//! side takes in something new is no longer in step and syncs — so an
//! idle node's documents stay on disk until someone uses them, and its
//! colleagues' periodic rounds do not load them again.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use libp2p::PeerId;
use meshwork_crdt::automerge::{sync, ChangeHash};

use super::{DocState, Side};

/// What is kept of a document unloaded for idleness.
pub(crate) struct Idle {
    /// Its heads when it was unloaded (nothing writes to a document that is
    /// not loaded, so they are still its heads).
    pub heads: Vec<ChangeHash>,
    /// Its sync states, encoded: the heads each peer shares with this node.
    sync: HashMap<(PeerId, Side), Vec<u8>>,
    /// Peers whose last word, in every session with them, was exactly
    /// these heads.
    in_step: HashSet<PeerId>,
}

impl Idle {
    /// What is kept of `state`.
    pub(crate) fn of(state: &DocState) -> Self {
        Self {
            heads: state.signed.heads(),
            sync: state.sync.iter().map(|(k, s)| (*k, s.encode())).collect(),
            in_step: in_step(state),
        }
    }

    /// Whether `peer` was last heard holding exactly this document.
    pub(crate) fn in_step_with(&self, peer: &PeerId) -> bool {
        self.in_step.contains(peer)
    }

    /// The sync states to resume with once the document is loaded again.
    pub(crate) fn resume(self) -> HashMap<(PeerId, Side), sync::State> {
        self.sync
            .into_iter()
            .filter_map(|(k, bytes)| Some((k, sync::State::decode(&bytes).ok()?)))
            .collect()
    }

    /// Forgets what was known of `peer` (it went away).
    pub(crate) fn forget_peer(&mut self, peer: &PeerId) {
        self.sync.retain(|(p, _), _| p != peer);
        self.in_step.remove(peer);
    }
}

/// The peers whose last word, in every session with them on `state`, was
/// exactly its heads: a periodic sync has nothing to do with them (and
/// would load the document on their side if it was unloaded there).
pub(crate) fn in_step(state: &DocState) -> HashSet<PeerId> {
    let mine = sorted(&state.signed.heads());
    let mut in_step = HashSet::new();
    let mut apart = HashSet::new();
    for ((peer, _), s) in &state.sync {
        let same = s.their_heads.as_deref().is_some_and(|h| sorted(h) == mine);
        if same {
            in_step.insert(*peer);
        } else {
            apart.insert(*peer);
        }
    }
    in_step.retain(|p| !apart.contains(p));
    in_step
}

/// Whether `state` may leave memory: unused for `idle_for`, and holding no
/// change that waits for something (those live only in memory).
pub(crate) fn may_unload(state: &DocState, idle_for: Duration) -> bool {
    state.used.elapsed() >= idle_for && !state.signed.has_held_back()
}

fn sorted(heads: &[ChangeHash]) -> Vec<ChangeHash> {
    let mut h = heads.to_vec();
    h.sort();
    h
}

#[cfg(test)]
mod tests {
    use meshwork_crdt::SignedDoc;

    use super::*;

    fn state() -> DocState {
        DocState::new(SignedDoc::feed("d", Vec::new()).unwrap())
    }

    fn heard(heads: Vec<ChangeHash>) -> sync::State {
        let mut s = sync::State::new();
        s.their_heads = Some(heads.clone());
        s.shared_heads = heads;
        s
    }

    #[test]
    fn a_peer_is_in_step_only_if_every_session_heard_these_heads() {
        let mut doc = state();
        let here = doc.signed.heads();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        doc.sync.insert((a, Side::Initiator), heard(here.clone()));
        doc.sync.insert((a, Side::Responder), heard(here.clone()));
        doc.sync.insert((b, Side::Initiator), heard(here.clone()));
        doc.sync
            .insert((b, Side::Responder), heard(vec![ChangeHash([7; 32])]));
        doc.sync.insert((c, Side::Initiator), sync::State::new());
        let idle = Idle::of(&doc);
        assert!(idle.in_step_with(&a));
        assert!(!idle.in_step_with(&b), "one session heard other heads");
        assert!(!idle.in_step_with(&c), "never heard");
        assert_eq!(idle.heads, here);
        let resumed = idle.resume();
        assert_eq!(resumed.len(), 5);
        assert_eq!(resumed[&(a, Side::Initiator)].shared_heads, here);
    }

    #[test]
    fn a_peer_forgotten_is_not_in_step() {
        let mut doc = state();
        let a = PeerId::random();
        doc.sync
            .insert((a, Side::Initiator), heard(doc.signed.heads()));
        let mut idle = Idle::of(&doc);
        idle.forget_peer(&a);
        assert!(!idle.in_step_with(&a));
        assert!(idle.resume().is_empty());
    }

    #[test]
    fn a_document_in_use_stays() {
        let doc = state();
        assert!(!may_unload(&doc, Duration::from_secs(60)));
        assert!(may_unload(&doc, Duration::ZERO));
    }
}
