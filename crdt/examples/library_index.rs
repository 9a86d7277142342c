//! What a member's pin pass pays to find the files of the live blobs in a
//! library that keeps every file ever shared: reading every file (what a
//! pass did until session 16) beside a `BlobIndex` kept up to date from
//! the changes since it was last read. The workload of `year_bench`: 1,000
//! files shared a day, 4,000 of them live (72 hours and today).
//!
//! Run: `cargo run --release -p meshwork-crdt --example library_index [-- --days 365]`

use std::time::{Duration, Instant};

use meshwork_crdt::automerge::ActorId;
use meshwork_crdt::library::{file_id, genesis, BlobIndex, Library};
use meshwork_crdt::Signer;

mod common;

const PER_DAY: usize = 1000;
const LIVE: usize = 4000;

fn main() {
    let days = common::count_arg("--days", 365);
    let ada = Signer::from_secret([7; 32]);
    let mut doc = genesis("bench").expect("genesis");
    doc.set_actor(ActorId::from(b"ada".to_vec()));
    let mut index = BlobIndex::default();
    let mut blobs: Vec<String> = Vec::new();
    println!("| day | files | read every file | index: today's changes | index: {LIVE} lookups | of which the live files read |");
    println!("|---|---|---|---|---|---|");
    for day in 1..=days {
        for _ in 0..PER_DAY {
            let n = blobs.len() as u64;
            let id = file_id(&ada.id(), n.to_be_bytes());
            blobs.push(common::share(&mut doc, &ada, &id, n, n as i64));
        }
        if ![1, 7, 30, 90, 180, 365].contains(&day) && day != days {
            // Other days only keep the index up to date, as passes would.
            index.refresh(&doc);
            continue;
        }
        let live = &blobs[blobs.len().saturating_sub(LIVE)..];

        let t = Instant::now();
        let every = Library::new(&doc).files();
        let read_all = t.elapsed();
        assert_eq!(every.len(), blobs.len());

        let t = Instant::now();
        index.refresh(&doc);
        let refreshed = t.elapsed();
        let t = Instant::now();
        let library = Library::new(&doc);
        let found = live
            .iter()
            .flat_map(|b| index.files_of(b))
            .filter_map(|id| library.file(id))
            .count();
        let looked_up = t.elapsed();
        assert_eq!(found, live.len());
        println!(
            "| {day} | {} | {} | {} | {} | {found} |",
            blobs.len(),
            ms(read_all),
            ms(refreshed),
            ms(looked_up)
        );
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
