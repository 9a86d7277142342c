//! What the order of record ids costs automerge: a library of N files
//! with random ids (before session 19) beside ascending ones ([`Nonces`]),
//! written as `year_bench` writes it: Ada shares each file in a change of
//! its own, Cleo adds herself to its holders in another, and Ada takes
//! herself off the holders of the file shared 3,000 files before. Timed:
//! finding an object's place (its parent and key: what every rule asks for
//! each operation it judges) for the 100 newest files, and for the holders
//! maps of 100 files that Ada leaves now. (Since shelves, session 20, the
//! ascending ids here all fall on one day, so one shelf holds them all, as
//! the library's one map of files did before; each random id has a shelf
//! of its own.)
//!
//! Run: `cargo run --release -p meshwork-crdt --example id_order [-- --files 300000]`

use std::time::{Duration, Instant};

use meshwork_crdt::automerge::transaction::Transaction;
use meshwork_crdt::automerge::{ActorId, Automerge, AutomergeError, ObjId, ReadDoc, ROOT};
use meshwork_crdt::library::{file_id, genesis, shelf_of, write};
use meshwork_crdt::{Nonces, Signer};

mod common;

const T: i64 = 1_800_000_000_000;
/// Files shared after one before Ada leaves its holders (three days, at
/// 1,000 a day).
const LEFT_AFTER: usize = 3000;

fn main() {
    let most = common::count_arg("--files", 300_000);
    let ada = Signer::from_secret([7; 32]);
    let cleo = Signer::from_secret([8; 32]);
    let nonces = Nonces::default();
    let mut random = Library::new();
    let mut ascending = Library::new();
    println!("| files | random ids: new file | random ids: holders left | ascending: new file | ascending: holders left |");
    println!("|---|---|---|---|---|");
    for mark in [5_000, 50_000, 150_000, 300_000] {
        let mark = mark.min(most);
        while random.ids.len() < mark {
            let n = random.ids.len() as i64;
            random.share(&ada, &cleo, rand::random());
            ascending.share(&ada, &cleo, nonces.next(T + n));
        }
        println!(
            "| {mark} | {} | {} | {} | {} |",
            us(random.place_newest()),
            us(random.place_left()),
            us(ascending.place_newest()),
            us(ascending.place_left()),
        );
        if mark == most {
            break;
        }
    }
}

struct Library {
    doc: Automerge,
    ids: Vec<String>,
}

impl Library {
    fn new() -> Self {
        let doc = genesis("bench").expect("genesis");
        Self {
            doc,
            ids: Vec::new(),
        }
    }

    fn share(&mut self, ada: &Signer, cleo: &Signer, nonce: [u8; 8]) {
        let id = file_id(&ada.id(), nonce);
        let n = self.ids.len();
        self.doc.set_actor(ActorId::from(b"ada".to_vec()));
        common::share(&mut self.doc, ada, &id, n as u64, T + n as i64);
        if let Some(old) = n.checked_sub(LEFT_AFTER) {
            let old = self.ids[old].clone();
            self.change(|tx| write::hold(tx, &old, ada.id(), false));
        }
        self.doc.set_actor(ActorId::from(b"cleo".to_vec()));
        self.change(|tx| write::hold(tx, &id, cleo.id(), true));
        self.ids.push(id);
    }

    fn change(&mut self, edit: impl FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>) {
        let mut tx = self.doc.transaction();
        edit(&mut tx).expect("an edit");
        tx.commit();
    }

    fn place_newest(&self) -> Duration {
        self.place(&self.ids[self.ids.len() - 100..])
    }

    /// The holders maps of the 100 files Ada left last.
    fn place_left(&self) -> Duration {
        let n = self.ids.len() - LEFT_AFTER;
        let holders: Vec<ObjId> = self.ids[n - 100..n]
            .iter()
            .map(|id| self.object(&self.record(id), "holders"))
            .collect();
        self.time_places(&holders, 4)
    }

    /// The mean time to find where each of `ids`' file objects sits.
    fn place(&self, ids: &[String]) -> Duration {
        let objects: Vec<ObjId> = ids.iter().map(|id| self.record(id)).collect();
        self.time_places(&objects, 3)
    }

    fn time_places(&self, objects: &[ObjId], depth: usize) -> Duration {
        let t = Instant::now();
        for obj in objects {
            let path = self.doc.parents(obj).expect("parents").path();
            assert_eq!(path.len(), depth);
        }
        t.elapsed() / objects.len() as u32
    }

    /// File `id`'s record, on its shelf.
    fn record(&self, id: &str) -> ObjId {
        let shelf = shelf_of(id).expect("a file id");
        self.object(&self.object(&self.object(&ROOT, "files"), &shelf), id)
    }

    fn object(&self, parent: &ObjId, key: &str) -> ObjId {
        match self.doc.get(parent, key).expect("get") {
            Some((_, id)) => id,
            None => panic!("no {key}"),
        }
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}
