//! The check of a 1,000-member roster in memory, without a node: what a
//! fresh node's sync of the roster costs once bytes have arrived. The same
//! layout as `examples/roster_bench.rs` builds through a node (a department,
//! then one change per admission and one per department addition), so this
//! measures the crate's part of that benchmark quickly.
//!
//! Run: `cargo run --release -p meshwork-crdt --example roster_check`

use std::time::Instant;

use meshwork_crdt::automerge::sync;
use meshwork_crdt::roster::{write, Role};
use meshwork_crdt::{SignedChange, SignedDoc, Signer};

const MEMBERS: usize = 1000;
const NOW: i64 = 1_700_000_000_000;

fn member(i: usize) -> Signer {
    let mut s = [9u8; 32];
    s[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Signer::from_secret(s)
}

fn main() {
    let admin = member(0);
    let (mut doc, _) = SignedDoc::create_roster(&admin, "Bench", "Admin", NOW).expect("genesis");
    doc.change(&admin, NOW, |tx| write::create_dept(tx, "big", "Big"))
        .expect("dept");
    for i in 1..MEMBERS {
        let id = member(i).id();
        doc.change(&admin, NOW, |tx| {
            write::add_member(tx, id, &format!("Member {i}"), Role::Member, NOW, None)
        })
        .expect("add");
        doc.change(&admin, NOW, |tx| write::dept_add(tx, "big", id))
            .expect("dept add");
    }
    doc.change(&admin, NOW, |tx| write::dept_add(tx, "big", admin.id()))
        .expect("dept add");
    let changes: Vec<SignedChange> = doc
        .doc()
        .get_changes(&[])
        .iter()
        .filter_map(|c| doc.signed_change(&c.hash()))
        .collect();
    let n = changes.len();
    let runs = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    for _ in 0..runs {
        let mut fresh = SignedDoc::new(doc.rules().clone());
        let t = Instant::now();
        let report = fresh.ingest(changes.clone());
        let ingest = t.elapsed();
        assert!(report.rejected.is_empty() && report.accepted.len() == n);

        let mut fresh = SignedDoc::new(doc.rules().clone());
        let (mut a, mut b) = (sync::State::new(), sync::State::new());
        let t = Instant::now();
        loop {
            let m1 = doc.generate_sync(&mut a);
            if let Some(m) = m1.clone() {
                let r = fresh.receive_sync(&mut b, m).expect("sync");
                assert!(r.rejected.is_empty());
            }
            let m2 = fresh.generate_sync(&mut b);
            if let Some(m) = m2.clone() {
                doc.receive_sync(&mut a, m).expect("sync");
            }
            if m1.is_none() && m2.is_none() {
                break;
            }
        }
        let synced = t.elapsed();
        assert_eq!(fresh.heads(), doc.heads());
        println!(
            "{n} changes: ingest {:.1} ms ({:.0} µs/change), sync in memory {:.1} ms",
            ingest.as_secs_f64() * 1e3,
            ingest.as_secs_f64() * 1e6 / n as f64,
            synced.as_secs_f64() * 1e3
        );
    }
}
