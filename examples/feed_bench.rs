//! Benchmark: department feeds, live, after an absence, and at 100,000 posts.
//!
//! 1. Live: `--nodes` real nodes (default 20) on 127.0.0.1, all in one
//!    department and connected to each other, as mDNS connects an office.
//!    `--live` posts (default 200), one at a time from a rotating author:
//!    the time from `post` to the post being stored on every node, p50/p99.
//! 2. After an absence: a member stops; `--catchup` posts (default 10,000)
//!    are made (each one signed, checked and flushed to sled); it restarts and
//!    syncs them from the two members online. Ceiling: plain automerge's sync
//!    of the same posts into a document in memory.
//! 3. A feed of `--big` posts (default 100,000), in memory: the newest 50
//!    threads, appending one post, a fresh member's full sync (every change's
//!    signature and rules checked), memory held — beside plain automerge
//!    with the same layout and no signatures or rules.
//!
//! Run: `cargo run --release --example feed_bench [-- --nodes 20 --live 200 --catchup 10000 --big 100000]`

use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use meshwork::crdt::automerge::sync::{self, SyncDoc};
use meshwork::crdt::automerge::{Automerge, AutomergeError};
use meshwork::crdt::feed::write::{self, NewPost};
use meshwork::crdt::feed::{post_id, Feed};
use meshwork::crdt::roster::{write as roster_write, Role};
use meshwork::crdt::{RosterAt, RosterBook, SignedDoc, Signer};
use meshwork::node::{InviteSpec, Node, NodeConfig, NodeEvent};
use tokio::sync::mpsc;

mod common;

use common::{ms, start};

const DEPT: &str = "Eng";
const BODY: &str = "Status update: the build is green again, the release notes are in the \
                    shared folder, and the retro is at three.";

struct Args {
    big_only: bool,
    /// Internal: build one feed in this fresh process and print the
    /// resident memory it added ("ours" or "plain").
    memory_of: Option<String>,
    nodes: usize,
    live: usize,
    catchup: usize,
    big: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        big_only: false,
        memory_of: None,
        nodes: 20,
        live: 200,
        catchup: 10_000,
        big: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--big-only" {
            a.big_only = true;
            continue;
        }
        if flag == "--memory-of" {
            a.memory_of = it.next();
            continue;
        }
        let value: usize = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a number"))?
            .parse()?;
        match flag.as_str() {
            "--nodes" => a.nodes = value.max(2),
            "--live" => a.live = value.max(1),
            "--catchup" => a.catchup = value.max(1),
            "--big" => a.big = value.max(1),
            _ => {
                anyhow::bail!("unknown flag {flag}: --nodes, --live, --catchup, --big, --big-only")
            }
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    if let Some(which) = &args.memory_of {
        return memory_of(which, args.big);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let dir = tempfile::tempdir()?;
    println!("## Feeds\n");
    if !args.big_only {
        let nodes = office(dir.path(), args.nodes).await?;
        live(&nodes, args.live).await?;
        catch_up(nodes, args.catchup).await?;
    }
    big_feed(args.big)?;
    Ok(())
}

/// `n` nodes in one department, each connected to every other.
async fn office(dir: &std::path::Path, n: usize) -> anyhow::Result<Vec<Node>> {
    let admin = start(&dir.join("n0"), "Member 0").await?;
    admin.create_workspace("Bench").await?;
    admin.dept_create(DEPT).await?;
    admin.dept_add(&admin.member_id().to_string(), DEPT).await?;
    let mut nodes = vec![admin];
    for i in 1..n {
        let node = start(&dir.join(format!("n{i}")), &format!("Member {i}")).await?;
        let token = nodes[0]
            .invite(InviteSpec {
                dept: Some(DEPT.into()),
                role: Role::Member,
                ttl: Duration::from_secs(3600),
            })
            .await?
            .token;
        node.join(&token).await?;
        nodes.push(node);
    }
    let everyone: Vec<_> = nodes.iter().map(Node::member_id).collect();
    for node in &nodes {
        let ok = node
            .wait_roster(
                |r| {
                    r.resolve_dept(DEPT)
                        .is_ok_and(|d| everyone.iter().all(|m| d.members.contains(m)))
                },
                Duration::from_secs(20),
            )
            .await;
        if !ok {
            let r = node.roster()?;
            anyhow::bail!(
                "the roster did not converge at {}: {} members, {:?}",
                node.name(),
                r.members.len(),
                r.resolve_dept(DEPT).map(|d| d.members.len())
            );
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        for other in &nodes[..i] {
            let addr = other.listen_addrs().await[0].clone();
            node.dial(addr.with(Protocol::P2p(other.peer_id()))).await?;
        }
    }
    eprintln!("{n} nodes joined; connecting them to each other");
    for node in &nodes {
        while node.peers().await.len() < n - 1 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(nodes)
}

/// Reports (node index, newest post id) each time a node stores feed changes.
fn watch(nodes: &[Node]) -> (Watchers, mpsc::UnboundedReceiver<(usize, String, Instant)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut events = node.events();
        let node = node.clone();
        let tx = tx.clone();
        tasks.spawn(async move {
            while let Ok(ev) = events.recv().await {
                if let NodeEvent::FeedChanged { .. } = ev {
                    let newest = node
                        .feed(DEPT, 1, None)
                        .ok()
                        .and_then(|t| t.into_iter().next());
                    if let Some(t) = newest {
                        if tx.send((i, t.post.id, Instant::now())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    (tasks, rx)
}

/// The watcher tasks: dropping them stops them (and releases their nodes).
type Watchers = tokio::task::JoinSet<()>;

async fn live(nodes: &[Node], posts: usize) -> anyhow::Result<()> {
    let (_watchers, mut seen) = watch(nodes);
    let mut latencies = Vec::with_capacity(posts);
    for k in 0..posts {
        let author = &nodes[k % nodes.len()];
        let t = Instant::now();
        let post = author.post(DEPT, &format!("{k}: {BODY}"), None).await?;
        let mut have: Vec<bool> = nodes
            .iter()
            .map(|n| n.peer_id() == author.peer_id())
            .collect();
        let mut last = Instant::now();
        while have.iter().any(|h| !h) {
            let Ok(got) = tokio::time::timeout(Duration::from_secs(60), seen.recv()).await else {
                let missing: Vec<usize> = (0..have.len()).filter(|i| !have[*i]).collect();
                anyhow::bail!(
                    "post {k} by node {} did not reach nodes {missing:?} within a minute",
                    k % nodes.len()
                );
            };
            let (i, id, at) = got.ok_or_else(|| anyhow::anyhow!("watchers stopped"))?;
            if id == post.id && !have[i] {
                have[i] = true;
                last = at;
            }
        }
        latencies.push(last - t);
        if (k + 1) % 20 == 0 {
            eprintln!("live: {} posts", k + 1);
        }
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    println!(
        "Live: {} nodes, {posts} posts one at a time, `post` → stored on every node: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        nodes.len(),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(*latencies.last().unwrap_or(&Duration::ZERO)),
    );
    Ok(())
}

async fn catch_up(mut nodes: Vec<Node>, posts: usize) -> anyhow::Result<()> {
    // Keep three nodes: the poster, one more online member, the absent one.
    for n in nodes.drain(3..) {
        n.shutdown().await;
    }
    let absent = nodes
        .pop()
        .ok_or_else(|| anyhow::anyhow!("too few nodes"))?;
    let home = absent.home().root().to_path_buf();
    absent.shutdown().await;
    drop(absent);
    let before = nodes[0].feed(DEPT, usize::MAX, None)?.len();

    let t = Instant::now();
    for k in 0..posts {
        nodes[0]
            .post(DEPT, &format!("while away {k}: {BODY}"), None)
            .await?;
    }
    let posting = t.elapsed();
    let total = before + posts;
    // Wait for the other online member, so both can serve the absent one.
    while nodes[1].feed(DEPT, usize::MAX, None)?.len() < total {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut cfg = NodeConfig::new(&home);
    cfg.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    cfg.net.mdns = false;
    for n in &nodes {
        let addr = n.listen_addrs().await[0].clone();
        cfg.net.peers.push(addr.with(Protocol::P2p(n.peer_id())));
    }
    let t = Instant::now();
    let back = Node::start(cfg).await?;
    let mut events = back.events();
    while back.feed(DEPT, usize::MAX, None)?.len() < total {
        let _ = tokio::time::timeout(Duration::from_secs(1), events.recv()).await;
    }
    let caught_up = t.elapsed();

    // Ceiling: plain automerge syncing as many posts of the same layout to
    // an empty document in memory.
    let plain = plain_sync(&mut plain_doc(total)?.0)?.0;
    println!("| After an absence | Meshwork | plain automerge (ceiling) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| {posts} posts made while a member was offline, restart → all stored | {:.2} s | {:.3} s | {:.0}× |",
        caught_up.as_secs_f64(),
        plain.as_secs_f64(),
        caught_up.as_secs_f64() / plain.as_secs_f64()
    );
    println!(
        "| posting them (signed, checked, flushed to sled, offered to peers) | {:.2} ms/post | | |\n",
        ms(posting) / posts as f64
    );
    back.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

fn plain_sync(doc: &mut Automerge) -> anyhow::Result<(Duration, Automerge)> {
    let t = Instant::now();
    let mut fresh = Automerge::new();
    let (mut s1, mut s2) = (sync::State::new(), sync::State::new());
    loop {
        let a = doc.generate_sync_message(&mut s1);
        if let Some(m) = a.clone() {
            fresh.receive_sync_message(&mut s2, m)?;
        }
        let b = fresh.generate_sync_message(&mut s2);
        if let Some(m) = b.clone() {
            doc.receive_sync_message(&mut s1, m)?;
        }
        if a.is_none() && b.is_none() {
            break;
        }
    }
    Ok((t.elapsed(), fresh))
}

fn big_feed(posts: usize) -> anyhow::Result<()> {
    let authors: Vec<Signer> = (1..=20u8).map(|i| Signer::from_secret([i; 32])).collect();
    let roster = roster_of(&authors)?;
    let mut book = RosterBook::new();
    let mut feed = SignedDoc::feed("d1", vec![])?;
    let t = Instant::now();
    let mut tail = Duration::ZERO;
    for k in 0..posts {
        let s = &authors[k % authors.len()];
        let id = id_of(s, k);
        let body = format!("{k}: {BODY}");
        let started = Instant::now();
        let mut at = RosterAt::new(roster.doc(), &mut book);
        feed.change_under(&mut at, s, k as i64, |tx| {
            write::post(tx, &new_post(s, &id, &body, k))
        })?;
        if k + 1000 >= posts {
            tail += started.elapsed();
        }
    }
    let build = t.elapsed();
    let append = tail / 1000.min(posts) as u32;

    let t = Instant::now();
    let page = Feed::new(feed.doc())
        .threads(50, None)
        .map_err(anyhow::Error::msg)?;
    let newest = t.elapsed();
    anyhow::ensure!(page.len() == 50.min(posts));

    // A fresh member: automerge sync between the two, every change checked.
    let t = Instant::now();
    let mut fresh = SignedDoc::feed("d1", vec![])?;
    let mut fresh_book = RosterBook::new();
    let (mut s1, mut s2) = (sync::State::new(), sync::State::new());
    loop {
        let a = feed.generate_sync(&mut s1);
        if let Some(m) = a.clone() {
            let mut at = RosterAt::new(roster.doc(), &mut fresh_book);
            let report = fresh.receive_sync_under(&mut at, &mut s2, m)?;
            anyhow::ensure!(report.rejected.is_empty());
        }
        let b = fresh.generate_sync(&mut s2);
        if let Some(m) = b.clone() {
            let mut at = RosterAt::new(roster.doc(), &mut book);
            feed.receive_sync_under(&mut at, &mut s1, m)?;
        }
        if a.is_none() && b.is_none() {
            break;
        }
    }
    let synced = t.elapsed();
    anyhow::ensure!(Feed::new(fresh.doc()).len() == posts);
    drop(fresh);

    let plain = plain_feed(posts)?;
    println!(
        "| A feed of {posts} posts, in memory | Meshwork | plain automerge (ceiling) | ratio |"
    );
    println!("|---|---|---|---|");
    row(
        "build (one signed, checked change per post)",
        build,
        plain.build,
    );
    row(
        "append one post (mean of the last 1,000)",
        append,
        plain.append,
    );
    row("open the newest 50 threads", newest, plain.newest);
    row(
        "fresh member: full sync, every change checked",
        synced,
        plain.sync,
    );
    let (ours, theirs) = (measure("ours", posts)?, measure("plain", posts)?);
    println!(
        "| resident memory the feed adds (a fresh process each) | {} MiB | {} MiB | {:.1}× |",
        ours / 1024,
        theirs / 1024,
        ours as f64 / theirs.max(1) as f64
    );
    Ok(())
}

/// Runs this benchmark again in a fresh process to build one feed and
/// report the resident memory it added, in KiB.
fn measure(which: &str, posts: usize) -> anyhow::Result<u64> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["--memory-of", which, "--big", &posts.to_string()])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

fn memory_of(which: &str, posts: usize) -> anyhow::Result<()> {
    let before = rss_kib();
    let kept: Box<dyn std::any::Any> = if which == "ours" {
        let authors: Vec<Signer> = (1..=20u8).map(|i| Signer::from_secret([i; 32])).collect();
        let roster = roster_of(&authors)?;
        let mut book = RosterBook::new();
        let mut feed = SignedDoc::feed("d1", vec![])?;
        for k in 0..posts {
            let s = &authors[k % authors.len()];
            let id = id_of(s, k);
            let body = format!("{k}: {BODY}");
            let mut at = RosterAt::new(roster.doc(), &mut book);
            feed.change_under(&mut at, s, k as i64, |tx| {
                write::post(tx, &new_post(s, &id, &body, k))
            })?;
        }
        Box::new(feed)
    } else {
        Box::new(plain_doc(posts)?.0)
    };
    println!("{}", rss_kib().saturating_sub(before));
    drop(kept);
    Ok(())
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn row(what: &str, ours: Duration, ceiling: Duration) {
    println!(
        "| {what} | {} | {} | {:.1}× |",
        human(ours),
        human(ceiling),
        ours.as_secs_f64() / ceiling.as_secs_f64().max(1e-9)
    );
}

struct Plain {
    build: Duration,
    append: Duration,
    newest: Duration,
    sync: Duration,
}

/// The same feed with plain automerge: the same layout, written by the same
/// functions, without signatures or rules.
fn plain_feed(posts: usize) -> anyhow::Result<Plain> {
    let t = Instant::now();
    let (mut doc, append) = plain_doc(posts)?;
    let build = t.elapsed();
    let t = Instant::now();
    let page = Feed::new(&doc)
        .threads(50, None)
        .map_err(anyhow::Error::msg)?;
    let newest = t.elapsed();
    anyhow::ensure!(page.len() == 50.min(posts));
    let (sync, fresh) = plain_sync(&mut doc)?;
    anyhow::ensure!(Feed::new(&fresh).len() == posts);
    Ok(Plain {
        build,
        append,
        newest,
        sync,
    })
}

/// `posts` posts in a plain automerge document, and the mean time of the
/// last 1,000 appends.
fn plain_doc(posts: usize) -> anyhow::Result<(Automerge, Duration)> {
    let authors: Vec<Signer> = (1..=20u8).map(|i| Signer::from_secret([i; 32])).collect();
    let mut doc = meshwork::crdt::feed::genesis("d1")?;
    let mut tail = Duration::ZERO;
    for k in 0..posts {
        let s = &authors[k % authors.len()];
        let id = id_of(s, k);
        let body = format!("{k}: {BODY}");
        let started = Instant::now();
        doc.transact::<_, _, AutomergeError>(|tx| write::post(tx, &new_post(s, &id, &body, k)))
            .map_err(|f| f.error)?;
        if k + 1000 >= posts {
            tail += started.elapsed();
        }
    }
    Ok((doc, tail / 1000.min(posts) as u32))
}

/// When post `k` of a big feed is written: a department's 1,000 posts a
/// day, from 2027 on.
fn at(k: usize) -> i64 {
    1_800_000_000_000 + k as i64 * 86_400
}

/// Post `k`'s id, carrying its time as a node's does (so posts spread over
/// the shelves of their days).
fn id_of(s: &Signer, k: usize) -> String {
    post_id(&s.id(), ((at(k) as u64) << 16).to_be_bytes())
}

fn new_post<'a>(s: &Signer, id: &'a str, body: &'a str, k: usize) -> NewPost<'a> {
    NewPost {
        id,
        author: s.id(),
        body,
        created_at: at(k),
        reply_to: None,
        mentions: &[],
        files: &[],
    }
}

fn roster_of(authors: &[Signer]) -> anyhow::Result<SignedDoc> {
    let admin = &authors[0];
    let (mut doc, _) = SignedDoc::create_roster(admin, "Bench", "Member 0", 0)?;
    doc.change(admin, 0, |tx| {
        roster_write::create_dept(tx, "d1", DEPT)?;
        for (i, s) in authors.iter().enumerate().skip(1) {
            roster_write::add_member(tx, s.id(), &format!("Member {i}"), Role::Member, 0, None)?;
        }
        for s in authors {
            roster_write::dept_add(tx, "d1", s.id())?;
        }
        Ok(())
    })?;
    Ok(doc)
}

fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2} s", d.as_secs_f64())
    } else if d >= Duration::from_millis(1) {
        format!("{:.1} ms", ms(d))
    } else {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    }
}
