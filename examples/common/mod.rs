//! What several benchmarks share: a node on loopback, a department's
//! history written straight into a stopped node's store (as a finished
//! sync would leave it), and percentiles. Each example uses a part.
#![allow(dead_code)]

pub mod pin_child;

use meshwork::crdt::automerge::ChangeHash;
use meshwork::crdt::feed::post_id;
use meshwork::crdt::feed::write::{self, NewPost};
use meshwork::crdt::signed::Rules;
use meshwork::crdt::{RosterAt, RosterBook, SignedChange, SignedDoc, Signer};
use meshwork::node::wire::DocRef;
use std::time::Duration;

use meshwork::node::{Home, Node, NodeConfig, Store};

/// The posts of `bodies`, by `author`, one a minute from `t0`, as signed
/// changes of department `dept`'s feed in the workspace of `home` (whose
/// node must be stopped). Returns the changes, to store in other homes too.
pub async fn write_posts(
    home: &std::path::Path,
    dept: &str,
    author: &Signer,
    bodies: &[String],
    t0: i64,
) -> anyhow::Result<Vec<SignedChange>> {
    let store = Store::open(&Home::new(home).db())?;
    let meta = store.workspace()?.expect("a workspace");
    let roster = SignedDoc::load(
        Rules::Roster {
            workspace: ChangeHash(meta.id),
        },
        store.changes(&meta.id)?,
    )?;
    let key = DocRef::Feed(dept.to_owned()).store_key(&meta.id);
    let mut feed = SignedDoc::feed(dept, store.changes(&key)?)?;
    let mut book = RosterBook::new();
    let me = author.id();
    let mut all = Vec::with_capacity(bodies.len());
    for (k, body) in bodies.iter().enumerate() {
        // One a minute, the id carrying the time as a node's does.
        let created_at = t0 + k as i64 * 60_000;
        let id = post_id(&me, ((created_at as u64) << 16).to_be_bytes());
        let post = NewPost {
            id: &id,
            author: me,
            body,
            created_at,
            reply_to: None,
            mentions: &[],
            files: &[],
        };
        let mut at = RosterAt::new(roster.doc(), &mut book);
        if let Some(c) = feed.change_under(&mut at, author, post.created_at, |tx| {
            write::post(tx, &post)
        })? {
            all.push(c);
        }
    }
    for batch in all.chunks(5_000) {
        store.put_changes(&key, batch)?;
    }
    store.flush().await?;
    Ok(all)
}

/// Compacts department `dept`'s feed in the store of `home` (whose node
/// must be stopped) into one snapshot, as a node leaves a document it has
/// held a while once it goes idle ([`Store::compact`]).
pub async fn compact(home: &std::path::Path, dept: &str) -> anyhow::Result<()> {
    let store = Store::open(&Home::new(home).db())?;
    let meta = store.workspace()?.expect("a workspace");
    let key = DocRef::Feed(dept.to_owned()).store_key(&meta.id);
    let feed = SignedDoc::feed(dept, store.changes(&key)?)?;
    store.compact(&key, &feed.snapshot())?;
    store.flush().await?;
    Ok(())
}

/// A node on 127.0.0.1 (a free port, no mDNS), its identity made first if
/// `home` has none.
pub async fn start(home: &std::path::Path, name: &str) -> anyhow::Result<Node> {
    if !home.exists() {
        Home::new(home).init(name)?;
    }
    let mut cfg = NodeConfig::new(home);
    cfg.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    cfg.net.mdns = false;
    cfg.join_timeout = Duration::from_secs(120);
    Ok(Node::start(cfg).await?)
}

/// The median and the 99th percentile (zero for no samples).
pub fn percentiles(times: &mut [Duration]) -> (Duration, Duration) {
    if times.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    (at(0.5), at(0.99))
}

/// Milliseconds, for tables.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// This process's standard input, a line at a time as it comes: how a
/// child process a benchmark drives hears its parent. (Read on a thread of
/// its own: tokio's stdin would hold a blocking thread anyway.)
pub fn stdin_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}
