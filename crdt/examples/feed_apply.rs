//! What a receiver pays to take in one post as a feed grows, on shelves
//! (the layout since session 22, `meshwork_crdt::feed`) and in the layout
//! before them (a map per post in one map of every post, placed in one
//! list), in the same run.
//!
//! A department of 100 authors writes 1,000 posts a day, each post in a
//! change of its own, ids carrying their time as nodes make them. At each
//! mark a receiver holding the feed takes in 30 more posts by different
//! authors, one change at a time; timed is `apply_changes`, automerge's
//! own work, which the rules and the signature check come on top of.
//! Beside it, the ceiling: the same kind of posts applied to a feed that
//! holds nothing but its genesis. Then what a reader pays on the big feed:
//! the newest 50 threads, the newest post's time from the last post's on
//! (what each new post reads first, `Node::next_post_id`), and counting
//! every post.
//!
//! Run: `cargo run --release -p meshwork-crdt --example feed_apply [-- --posts 300000 --before 100000]`
//! (`--before`: how far to take the layout before shelves, which is slow
//! to build past 100,000.)

use std::time::{Duration, Instant};

use meshwork_crdt::automerge::{ActorId, Automerge, Change};
use meshwork_crdt::feed::write::{self, NewPost};
use meshwork_crdt::feed::{genesis, post_id, Feed};
use meshwork_crdt::Signer;

mod common;

const T: i64 = 1_800_000_000_000;
const ROUNDS: usize = 30;
const AUTHORS: usize = 100;
const PER_DAY: i64 = 1_000;

fn main() {
    let most = common::count_arg("--posts", 300_000);
    let before = common::count_arg("--before", 100_000);
    println!("| layout | posts | a post applied | on an empty feed | ratio | newest 50 threads | newest time | count all |");
    println!("|---|---|---|---|---|---|---|---|");
    for (shelved, up_to) in [(true, most), (false, before.min(most))] {
        let mut feed = Writer::new(shelved);
        for mark in [5_000, 50_000, 100_000, 300_000] {
            if mark > up_to {
                break;
            }
            while feed.count < mark {
                feed.post();
            }
            let posts: Vec<Change> = (0..ROUNDS).map(|_| feed.post()).collect();
            let mut receiver = feed.doc.fork_at(posts[0].deps()).expect("fork");
            let big = apply_each(&mut receiver, &posts);
            let mut small = Writer::new(shelved);
            let fresh: Vec<Change> = (0..ROUNDS).map(|_| small.post()).collect();
            let mut empty = genesis("bench").expect("genesis");
            let base = apply_each(&mut empty, &fresh);
            let read = Feed::new(&receiver);
            let page = time(|| read.threads(50, None).expect("a page").len());
            let last = T + (feed.count as i64 - 1) * (86_400_000 / PER_DAY);
            let newest =
                time(|| read.newest_time_between(last, last + 86_400_000).is_some() as usize);
            let count = time(|| read.len());
            println!(
                "| {} | {mark} | {} | {} | {:.1}× | {} | {} | {} |",
                if shelved { "shelves" } else { "before shelves" },
                ms(big),
                ms(base),
                big.as_secs_f64() / base.as_secs_f64(),
                ms(page),
                ms(newest),
                ms(count),
            );
        }
    }
}

/// A department's authors writing into one feed.
struct Writer {
    doc: Automerge,
    authors: Vec<Signer>,
    shelved: bool,
    count: usize,
}

impl Writer {
    fn new(shelved: bool) -> Self {
        Self {
            doc: genesis("bench").expect("genesis"),
            authors: (0..AUTHORS)
                .map(|i| Signer::from_secret([i as u8 + 1; 32]))
                .collect(),
            shelved,
            count: 0,
        }
    }

    /// The next post, by the next author, in a change of its own.
    fn post(&mut self) -> Change {
        let n = self.count;
        let author = &self.authors[n % AUTHORS];
        let at = T + n as i64 * (86_400_000 / PER_DAY);
        let id = if self.shelved {
            post_id(
                &author.id(),
                ((at as u64) << 16 | (n as u64 & 0xffff)).to_be_bytes(),
            )
        } else {
            // An id that carries no time: the layout before shelves.
            format!("{}p{n}", &author.id().to_string()[..16])
        };
        let body = format!("post {n} — a line or two of what people write");
        self.doc
            .set_actor(ActorId::from(author.id().as_bytes().as_slice()));
        let mut tx = self.doc.transaction();
        let post = NewPost {
            id: &id,
            author: author.id(),
            body: &body,
            created_at: at,
            reply_to: None,
            mentions: &[],
            files: &[],
        };
        write::post(&mut tx, &post).expect("post");
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

/// The best of five runs of `f`.
fn time(f: impl Fn() -> usize) -> Duration {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .min()
        .expect("five runs")
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}
