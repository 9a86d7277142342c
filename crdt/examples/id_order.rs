//! What the order of record ids costs automerge: a library of N files,
//! shared one change each, with random ids (before session 19) beside
//! ascending ones ([`Nonces`]). Timed: finding a file object's place (its
//! parent and key: what every rule asks for each operation it judges), for
//! the 100 newest files and 100 of the oldest.
//!
//! Run: `cargo run --release -p meshwork-crdt --example id_order [-- --files 300000]`

use std::time::{Duration, Instant};

use meshwork_crdt::automerge::{ActorId, Automerge, ObjId, ReadDoc, ROOT};
use meshwork_crdt::library::write::{self, NewFile};
use meshwork_crdt::library::{file_id, genesis};
use meshwork_crdt::{Nonces, Signer};

const T: i64 = 1_800_000_000_000;

fn main() {
    let most: usize = match std::env::args().skip_while(|a| a != "--files").nth(1) {
        Some(n) => n.parse().expect("--files N"),
        None => 300_000,
    };
    let ada = Signer::from_secret([7; 32]);
    let nonces = Nonces::default();
    let mut random = Library::new();
    let mut ascending = Library::new();
    println!("| files | random ids: newest | random ids: oldest | ascending: newest | ascending: oldest |");
    println!("|---|---|---|---|---|");
    for mark in [5_000, 50_000, 150_000, 300_000] {
        let mark = mark.min(most);
        while random.ids.len() < mark {
            let n = random.ids.len() as i64;
            random.share(&ada, rand::random());
            ascending.share(&ada, nonces.next(T + n));
        }
        println!(
            "| {mark} | {} | {} | {} | {} |",
            us(random.place_newest()),
            us(random.place_oldest()),
            us(ascending.place_newest()),
            us(ascending.place_oldest()),
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
        let mut doc = genesis("bench").expect("genesis");
        doc.set_actor(ActorId::from(b"ada".to_vec()));
        Self {
            doc,
            ids: Vec::new(),
        }
    }

    fn share(&mut self, who: &Signer, nonce: [u8; 8]) {
        let id = file_id(&who.id(), nonce);
        let n = self.ids.len();
        let mut tx = self.doc.transaction();
        write::share(
            &mut tx,
            &NewFile {
                id: &id,
                name: &format!("report {n}.pdf"),
                size: 1024,
                media_type: "application/pdf",
                blob: &format!("{n:064x}"),
                blob_size: 1064,
                key: &"ab".repeat(32),
                uploader: who.id(),
                shared_at: T + n as i64,
                entries: None,
            },
        )
        .expect("share");
        tx.commit();
        self.ids.push(id);
    }

    fn place_newest(&self) -> Duration {
        self.place(&self.ids[self.ids.len() - 100..])
    }

    fn place_oldest(&self) -> Duration {
        self.place(&self.ids[..100])
    }

    /// The mean time to find where each of `ids`' objects sits.
    fn place(&self, ids: &[String]) -> Duration {
        let files = self.object(&ROOT, "files");
        let objects: Vec<ObjId> = ids.iter().map(|id| self.object(&files, id)).collect();
        let t = Instant::now();
        for obj in &objects {
            let path = self.doc.parents(obj).expect("parents").path();
            assert_eq!(path.len(), 2);
        }
        t.elapsed() / objects.len() as u32
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
