//! What taking in a sync message costs as history grows, when the message
//! carries no change (peers in step, or the changes already taken in):
//! automerge 0.12's `receive_sync_message` beside `signed::receipt::receive`,
//! which Meshwork's sessions use. A document of N changes, one key each;
//! each message names the receiver's own heads, the last of which the
//! receiver had sent (so that there is a sent hash to trim).
//!
//! Run: `cargo run --release -p meshwork-crdt --example sync_receive`

use std::time::{Duration, Instant};

use meshwork_crdt::automerge::sync::{self, SyncDoc};
use meshwork_crdt::automerge::transaction::Transactable;
use meshwork_crdt::automerge::{Automerge, ROOT};
use meshwork_crdt::signed::receipt;

const ROUNDS: u32 = 50;

fn main() {
    let mut doc = Automerge::new();
    let mut n = 0usize;
    println!("| changes | automerge: receive_sync_message | receipt::receive |");
    println!("|---|---|---|");
    for mark in [5_000usize, 50_000, 150_000, 300_000] {
        while n < mark {
            doc.transact(|tx| tx.put(ROOT, format!("k{n:08}"), n as i64))
                .expect("an edit");
            n += 1;
        }
        let heads = doc.get_heads();
        let message = || sync::Message {
            heads: heads.clone(),
            need: Vec::new(),
            have: Vec::new(),
            changes: sync::ChunkList::empty(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        let state = || {
            let mut s = sync::State::new();
            s.sent_hashes.extend(heads.iter().copied());
            s
        };
        let ours = time(|| {
            let mut s = state();
            receipt::receive(&doc, &mut s, message());
            assert!(s.sent_hashes.is_empty());
        });
        let theirs = time(|| {
            let mut s = state();
            doc.receive_sync_message(&mut s, message())
                .expect("receive");
            assert!(s.sent_hashes.is_empty());
        });
        println!("| {mark} | {} | {} |", ms(theirs), ms(ours));
    }
}

fn time(mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..ROUNDS {
        f();
    }
    t.elapsed() / ROUNDS
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}
