//! What a receiver pays to take in one post as a feed grows: the feed's
//! layout is still one map of posts and one list of their order
//! (`meshwork_crdt::feed`), where a library's files went on shelves
//! (the `shelves` example). Measured so that the known limit says a
//! number, not an estimate.
//!
//! Ada posts, each post in a change of its own (ids from [`Nonces`]). At
//! each mark a receiver holding the feed takes in 30 more of her posts,
//! one change at a time; timed is `apply_changes`, automerge's own work,
//! which the rules and the signature check come on top of. Beside it, the
//! same posts applied to a document that holds only the 30 (the cost of a
//! post with no history under it).
//!
//! Run: `cargo run --release -p meshwork-crdt --example feed_apply [-- --posts 300000]`

use std::time::{Duration, Instant};

use meshwork_crdt::automerge::{ActorId, Automerge, Change};
use meshwork_crdt::feed::write::{self, NewPost};
use meshwork_crdt::feed::{genesis, post_id};
use meshwork_crdt::{Nonces, Signer};

mod common;

const T: i64 = 1_800_000_000_000;
const ROUNDS: u32 = 30;

fn main() {
    let most = common::count_arg("--posts", 300_000);
    let ada = Signer::from_secret([7; 32]);
    let mut feed = Feed::new(ada);
    println!("| posts | a post applied | the same on an empty feed | ratio |");
    println!("|---|---|---|---|");
    for mark in [5_000, 50_000, 100_000, 300_000] {
        let mark = mark.min(most);
        while feed.count < mark {
            feed.post();
        }
        let posts: Vec<Change> = (0..ROUNDS).map(|_| feed.post()).collect();
        let mut receiver = feed.doc.fork_at(posts[0].deps()).expect("fork");
        let big = apply_each(&mut receiver, &posts);
        // The same kind of posts, by another author, on a feed that holds
        // nothing but its genesis (which every feed shares).
        let mut empty = genesis("bench").expect("genesis");
        let mut small = Feed::new(Signer::from_secret([9; 32]));
        let fresh: Vec<Change> = (0..ROUNDS).map(|_| small.post()).collect();
        let base = apply_each(&mut empty, &fresh);
        println!(
            "| {mark} | {} | {} | {:.0}× |",
            ms(big),
            ms(base),
            big.as_secs_f64() / base.as_secs_f64()
        );
        if mark == most {
            break;
        }
    }
}

struct Feed {
    doc: Automerge,
    author: Signer,
    nonces: Nonces,
    count: usize,
}

impl Feed {
    fn new(author: Signer) -> Self {
        let mut doc = genesis("bench").expect("genesis");
        doc.set_actor(ActorId::from(author.id().as_bytes().as_slice()));
        Self {
            doc,
            author,
            nonces: Nonces::default(),
            count: 0,
        }
    }

    /// The next post, in a change of its own.
    fn post(&mut self) -> Change {
        let at = T + self.count as i64 * 1000;
        let id = post_id(&self.author.id(), self.nonces.next(at));
        let body = format!("post {} — a line or two of what people write", self.count);
        let mut tx = self.doc.transaction();
        write::post(
            &mut tx,
            &NewPost {
                id: &id,
                author: self.author.id(),
                body: &body,
                created_at: at,
                reply_to: None,
                mentions: &[],
            },
        )
        .expect("post");
        tx.commit();
        self.count += 1;
        self.doc.get_last_local_change().expect("a change").clone()
    }
}

/// The mean time to apply each of `changes`, one at a time.
fn apply_each(doc: &mut Automerge, changes: &[Change]) -> Duration {
    let count = changes.len() as u32;
    let changes = changes.to_vec();
    let t = Instant::now();
    for change in changes {
        doc.apply_changes([change]).expect("apply");
    }
    t.elapsed() / count
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}
