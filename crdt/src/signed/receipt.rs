//! What a received sync message does to a session's state, once its changes
//! are in: automerge's `receive_sync_message` with an empty change list,
//! minus its walk over the whole history.
//!
//! automerge 0.12 trims the hashes sent in the session to those the peer's
//! heads do not cover by visiting every ancestor of those heads, on every
//! message — even when nothing was sent. That is 0.1 ms at 5,000 changes
//! and 9 ms at 300,000, and a library that keeps every file is past 150,000
//! changes within half a year: each share's few sync messages grew with
//! the library (BENCHMARKS.md, "The year, with ascending ids"). Here the
//! trim is skipped when nothing was sent, and otherwise reads only the
//! changes the peer's heads do not cover — few, between peers in step.
//!
//! `tests` holds it to automerge's own function on seeded random sessions.

use std::collections::HashSet;

use automerge::sync::{Capability, Message, MessageFlags, State};
use automerge::{Automerge, ChangeHash};

/// Advances `state` for `message`, whose changes `doc` already holds (or
/// refused): the peer's heads, needs and summary, the heads both hold, and
/// which sent changes the peer still lacks.
pub fn receive(doc: &Automerge, state: &mut State, message: Message) {
    let Message {
        heads,
        need,
        have,
        flags,
        ..
    } = message;
    state.in_flight = false;
    if let Some(flags) = flags {
        let mut capabilities = vec![Capability::MessageV2];
        if flags.contains(MessageFlags::SUPPORTS_SYNC_RESET) {
            capabilities.push(Capability::SyncReset);
        }
        state.their_capabilities = Some(capabilities);
        if flags.contains(MessageFlags::SYNC_RESET) {
            state.sent_hashes.clear();
        }
        state.peer_read_only = flags.contains(MessageFlags::READ_ONLY);
    }
    let known: Vec<ChangeHash> = heads
        .iter()
        .copied()
        .filter(|h| doc.get_change_meta_by_hash(h).is_some())
        .collect();
    if !state.sent_hashes.is_empty() && !known.is_empty() {
        // A sent change the peer still lacks is one its heads do not cover.
        let uncovered: HashSet<ChangeHash> = doc
            .get_changes_meta(&known)
            .into_iter()
            .map(|c| c.hash)
            .collect();
        state.sent_hashes.retain(|h| uncovered.contains(h));
    }
    if heads == doc.get_heads() {
        state.last_sent_heads.clone_from(&heads);
    }
    if known.len() == heads.len() {
        state.shared_heads.clone_from(&heads);
        // A peer that lost everything: start over.
        if heads.is_empty() {
            state.last_sent_heads = Vec::new();
            state.sent_hashes = Default::default();
        }
    } else {
        let mut shared: Vec<ChangeHash> =
            state.shared_heads.iter().chain(&known).copied().collect();
        shared.sort();
        shared.dedup();
        state.shared_heads = shared;
    }
    state.their_have = Some(have);
    state.their_heads = Some(heads);
    state.their_need = Some(need);
}

#[cfg(test)]
mod tests {
    use automerge::sync::{ChunkList, SyncDoc};
    use automerge::transaction::Transactable;
    use automerge::{ActorId, ReadDoc, ROOT};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn edit(doc: &mut Automerge, rng: &mut StdRng) {
        let key = format!("k{}", rng.gen_range(0..40));
        let value: i64 = rng.gen();
        doc.transact(|tx| tx.put(ROOT, key.as_str(), value))
            .expect("an edit");
    }

    /// Takes in `message` on `doc` as a node does: its changes first, then
    /// the state through automerge's function and through [`receive`];
    /// both states must agree.
    fn take_in(
        doc: &mut Automerge,
        state: &mut State,
        mut message: Message,
        seed: u64,
        step: usize,
    ) {
        for chunk in message.changes.iter() {
            doc.load_incremental(chunk).expect("the peer's changes");
        }
        message.changes = ChunkList::empty();
        let mut theirs = state.clone();
        doc.receive_sync_message(&mut theirs, message.clone())
            .expect("automerge takes it in");
        receive(doc, state, message);
        assert_eq!(*state, theirs, "seed {seed}, step {step}");
    }

    #[test]
    fn agrees_with_automerge_on_random_sessions() {
        let base: u64 = std::env::var("MESHWORK_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed);
        for seed in base..base + 40 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut a = Automerge::new().with_actor(ActorId::from(b"a".to_vec()));
            for _ in 0..rng.gen_range(0..30) {
                edit(&mut a, &mut rng);
            }
            let mut b = a.fork().with_actor(ActorId::from(b"b".to_vec()));
            let (mut sa, mut sb) = (State::new(), State::new());
            for step in 0..60 {
                // Now and then either side writes, or a message is lost.
                match rng.gen_range(0..6) {
                    0 => edit(&mut a, &mut rng),
                    1 => edit(&mut b, &mut rng),
                    _ => {}
                }
                let lose = rng.gen_ratio(1, 8);
                if let Some(m) = a.generate_sync_message(&mut sa) {
                    if !lose {
                        take_in(&mut b, &mut sb, m, seed, step);
                    }
                }
                if let Some(m) = b.generate_sync_message(&mut sb) {
                    take_in(&mut a, &mut sa, m, seed, step);
                }
            }
            // Quiet at the end, in a new session (a lost message leaves the
            // old one waiting, as a node's would until it reconnects).
            (sa, sb) = (State::new(), State::new());
            for step in 60..80 {
                if let Some(m) = a.generate_sync_message(&mut sa) {
                    take_in(&mut b, &mut sb, m, seed, step);
                }
                if let Some(m) = b.generate_sync_message(&mut sb) {
                    take_in(&mut a, &mut sa, m, seed, step);
                }
            }
            assert_eq!(a.get_heads(), b.get_heads(), "seed {seed}");
            assert_eq!(
                a.get(ROOT, "k1").unwrap().map(|(v, _)| v.to_string()),
                b.get(ROOT, "k1").unwrap().map(|(v, _)| v.to_string()),
                "seed {seed}"
            );
        }
    }
}
