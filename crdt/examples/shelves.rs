//! What a receiver pays to take in one change of a library as the library
//! grows: with every file in one map (the layout before shelves, and what
//! plain automerge gives a library kept as one map of files) beside files
//! on shelves, one per uploader and day (`meshwork_crdt::library`).
//!
//! Ada shares 1,000 files a day, each in a change of its own (ids from
//! [`Nonces`] on a clock that moves a day every 1,000 files). At each mark
//! a receiver holding the library takes in, one change at a time, 30 more
//! of Ada's shares and 30 changes in which Cleo adds herself to the holders
//! of a file shared that day; timed is `apply_changes`, automerge's own
//! work, which the rules and the signature check come on top of.
//!
//! Run: `cargo run --release -p meshwork-crdt --example shelves [-- --files 300000]`

use std::time::{Duration, Instant};

use meshwork_crdt::automerge::{ActorId, Automerge, Change};
use meshwork_crdt::library::{file_id, genesis, write};
use meshwork_crdt::{Nonces, Signer};

mod common;

const T: i64 = 1_800_000_000_000;
const DAY: i64 = 24 * 3600 * 1000;
const PER_DAY: usize = 1000;
const ROUNDS: u32 = 30;

fn main() {
    let most = common::count_arg("--files", 300_000);
    let ada = Signer::from_secret([7; 32]);
    let cleo = Signer::from_secret([8; 32]);
    let mut one_map = Library::new(false);
    let mut shelves = Library::new(true);
    println!(
        "| files | one map: a share | shelves: a share | one map: a holder | shelves: a holder |"
    );
    println!("|---|---|---|---|---|");
    for mark in [5_000, 50_000, 150_000, 300_000] {
        let mark = mark.min(most);
        for library in [&mut one_map, &mut shelves] {
            while library.ids.len() < mark {
                library.share(&ada);
            }
        }
        let (map_share, map_hold) = one_map.receive(&ada, &cleo);
        let (shelf_share, shelf_hold) = shelves.receive(&ada, &cleo);
        println!(
            "| {mark} | {} | {} | {} | {} |",
            ms(map_share),
            ms(shelf_share),
            ms(map_hold),
            ms(shelf_hold)
        );
        if mark == most {
            break;
        }
    }
}

struct Library {
    doc: Automerge,
    ids: Vec<String>,
    shelves: bool,
    nonces: Nonces,
}

impl Library {
    fn new(shelves: bool) -> Self {
        Self {
            doc: genesis("bench").expect("genesis"),
            ids: Vec::new(),
            shelves,
            nonces: Nonces::default(),
        }
    }

    /// Ada shares the next file, in a change of its own.
    fn share(&mut self, ada: &Signer) -> Change {
        let n = self.ids.len();
        let at = T + (n / PER_DAY) as i64 * DAY + (n % PER_DAY) as i64;
        let id = if self.shelves {
            file_id(&ada.id(), self.nonces.next(at))
        } else {
            // Not a file id: `write::share` puts it directly in `files`,
            // as every file was before shelves.
            format!("x{n:031}")
        };
        self.doc.set_actor(ActorId::from(b"ada".to_vec()));
        common::share(&mut self.doc, ada, &id, n as u64, at);
        self.ids.push(id);
        self.last()
    }

    /// Cleo adds herself to the holders of the file shared `back` files
    /// ago.
    fn hold(&mut self, cleo: &Signer, back: usize) -> Change {
        let id = self.ids[self.ids.len() - back].clone();
        self.doc.set_actor(ActorId::from(b"cleo".to_vec()));
        let mut tx = self.doc.transaction();
        write::hold(&mut tx, &id, cleo.id(), true).expect("hold");
        tx.commit();
        self.last()
    }

    fn last(&self) -> Change {
        self.doc.get_last_local_change().expect("a change").clone()
    }

    /// The mean time a receiver holding the library takes to apply one
    /// share, and one holder added.
    fn receive(&mut self, ada: &Signer, cleo: &Signer) -> (Duration, Duration) {
        let mut receiver = self.doc.fork();
        let (mut shares, mut holds) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..ROUNDS {
            let change = self.share(ada);
            let t = Instant::now();
            receiver.apply_changes([change]).expect("apply");
            shares += t.elapsed();
        }
        for i in 0..ROUNDS as usize {
            let change = self.hold(cleo, PER_DAY / 2 + i);
            let t = Instant::now();
            receiver.apply_changes([change]).expect("apply");
            holds += t.elapsed();
        }
        (shares / ROUNDS, holds / ROUNDS)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}
