//! Benchmark: no stalls while a fresh member syncs a department of 100,000
//! posts.
//!
//! Four real nodes on 127.0.0.1. Ada holds "Eng" with `--posts` posts
//! (default 100,000, written into her store as a finished sync leaves
//! them, then compacted as her node does once Eng goes idle); Ada, Bob and
//! Cy share "Ops". Dan joins, fresh, in both, connected to all three.
//! While Dan syncs Eng:
//!
//! - Bob posts in Ops every 50 ms: the time from `post` until the post is
//!   stored on Ada, Cy and Dan;
//! - Dan's `status` is asked every 20 ms: its latency;
//! - Cy fetches a 16 MiB file from Dan: its time.
//!
//! Also when Dan's first page of Eng (the newest 50 threads) is complete,
//! and when his search index holds the whole history. Then the same
//! measures once all that is done: the ceiling, in the same run.
//!
//! Run: `cargo run --release --example stall_bench [-- --posts 100000]`

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use meshwork::crdt::roster::Role;
use meshwork::node::{Home, InviteSpec, Node, NodeEvent};

mod common;

use common::{ms, percentiles, start};

const FILE: usize = 16 << 20;

fn main() -> anyhow::Result<()> {
    // `RUST_LOG=meshwork_node::shared=debug` names every long hold of the
    // workspace lock.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let posts: usize = match std::env::args().skip_while(|a| a != "--posts").nth(1) {
        Some(n) => n.parse()?,
        None => 100_000,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(posts))
}

async fn connect(a: &Node, b: &Node) -> anyhow::Result<()> {
    let addr = b.listen_addrs().await[0].clone();
    a.dial(addr.with(Protocol::P2p(b.peer_id()))).await?;
    while !a
        .peers()
        .await
        .iter()
        .any(|p| p.peer_id == b.peer_id().to_string())
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn invite(admin: &Node, dept: &str) -> anyhow::Result<String> {
    Ok(admin
        .invite(InviteSpec {
            dept: Some(dept.into()),
            role: Role::Member,
            ttl: Duration::from_secs(3600),
        })
        .await?
        .token)
}

async fn run(posts: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ada_home = dir.path().join("ada");
    let ada = start(&ada_home, "Ada").await?;
    ada.create_workspace("Bench").await?;
    let eng = ada.dept_create_joined("Eng").await?;
    ada.dept_create_joined("Ops").await?;
    let bob = start(&dir.path().join("bob"), "Bob").await?;
    bob.join(&invite(&ada, "Ops").await?).await?;
    let cy = start(&dir.path().join("cy"), "Cy").await?;
    cy.join(&invite(&ada, "Ops").await?).await?;
    ada.shutdown().await;
    drop(ada);

    let t = Instant::now();
    let bodies: Vec<String> = (0..posts)
        .map(|k| format!("{k}: status update, the build is green and the notes are in the folder"))
        .collect();
    let signer = Home::new(&ada_home).identity()?.signer;
    common::write_posts(&ada_home, &eng.id, &signer, &bodies, 1_700_000_000_000).await?;
    // Ada has held Eng a while: her node compacted it when it went idle.
    common::compact(&ada_home, &eng.id).await?;
    eprintln!(
        "{posts} posts written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let ada = start(&ada_home, "Ada").await?;
    connect(&bob, &ada).await?;
    connect(&cy, &ada).await?;
    connect(&bob, &cy).await?;

    // Dan joins, fresh: his sync of Eng starts at admission.
    let dan = start(&dir.path().join("dan"), "Dan").await?;
    let sync_started = Instant::now();
    dan.join(&invite(&ada, "Eng").await?).await?;
    let first_page = first_page(&dan, &eng.id, posts, sync_started);
    ada.dept_add(&dan.member_id().to_string(), "Ops").await?;
    connect(&dan, &bob).await?;
    connect(&dan, &cy).await?;
    let dan_id = dan.member_id();
    dan.wait_roster(
        |r| {
            r.resolve_dept("Ops")
                .is_ok_and(|d| d.members.contains(&dan_id))
        },
        Duration::from_secs(60),
    )
    .await;

    // What Dan's app says meanwhile: "still arriving", until it is all in.
    let (mut said_arriving, mut looked) = (0, 0);
    let during = measure(
        &[&ada, &cy, &dan],
        &bob,
        &dan,
        &cy,
        dir.path(),
        "during",
        || {
            let state = dan.feed_state("Eng");
            looked += 1;
            said_arriving += usize::from(state.as_ref().is_ok_and(|s| s.arriving));
            state.map_or(true, |s| s.posts < posts)
        },
    )
    .await?;
    while dan.feed_len("Eng").unwrap_or(0) < posts {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let synced = sync_started.elapsed();
    let first_page = first_page.await?;
    // "Idle" begins once Dan's search index holds the history too (it is
    // read once the feed stops growing).
    while dan.search("green", Some("Eng"), 1).await?.total < posts {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let indexed = sync_started.elapsed();
    let mut rounds = 0;
    let idle = measure(
        &[&ada, &cy, &dan],
        &bob,
        &dan,
        &cy,
        dir.path(),
        "idle",
        || {
            rounds += 1;
            rounds <= 200
        },
    )
    .await?;

    println!(
        "Dan, fresh, synced {posts} posts of Eng in {:.1} s; the newest 50 \
         threads were all there after {:.1} s; his search index held them \
         all after {:.1} s.\n",
        synced.as_secs_f64(),
        first_page.as_secs_f64(),
        indexed.as_secs_f64()
    );
    println!(
        "While it came in, Dan's feed said \"still arriving\" at {said_arriving} of \
         {looked} looks; once all was in: {}.\n",
        dan.feed_state("Eng")?.arriving
    );
    println!("| while Dan syncs {posts} posts | during the sync | idle (ceiling) | ratio |");
    println!("|---|---|---|---|");
    let row = |what: &str, a: Duration, b: Duration| {
        println!(
            "| {what} | {:.1} ms | {:.1} ms | {:.1}× |",
            ms(a),
            ms(b),
            ms(a) / ms(b).max(0.001)
        )
    };
    row(
        "a post in Ops → stored on Ada, Cy and Dan, p50",
        during.post.0,
        idle.post.0,
    );
    row("the same, p99", during.post.1, idle.post.1);
    row("Dan's `status`, p50", during.status.0, idle.status.0);
    row("Dan's `status`, p99", during.status.1, idle.status.1);
    row("Cy fetches 16 MiB from Dan", during.get, idle.get);
    println!(
        "\n({} posts and {} status calls during the sync; {} and {} idle.)",
        during.n_posts, during.n_status, idle.n_posts, idle.n_status
    );
    for n in [ada, bob, cy, dan] {
        n.shutdown().await;
    }
    Ok(())
}

/// When `node`'s first page of `dept` (newest 50 threads) first shows all
/// of the newest 50 of `posts` posts (bodies "N: …"), from `since`. Checked
/// at every change event, at most every 100 ms, and every second.
fn first_page(
    node: &Node,
    dept: &str,
    posts: usize,
    since: Instant,
) -> tokio::task::JoinHandle<Duration> {
    let (node, dept) = (node.clone(), dept.to_owned());
    let mut events = node.events();
    tokio::spawn(async move {
        let newest: Vec<String> = (posts.saturating_sub(50)..posts)
            .rev()
            .map(|k| format!("{k}:"))
            .collect();
        loop {
            let page = node.feed(&dept, 50, None).unwrap_or_default();
            let complete = page.len() == newest.len()
                && page.iter().zip(&newest).all(|(t, want)| {
                    t.post
                        .body
                        .as_deref()
                        .is_some_and(|b| b.starts_with(want.as_str()))
                });
            if complete {
                return since.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            while events.try_recv().is_ok() {}
            // The next change, or a second's wait (the last may be in).
            let _ = tokio::time::timeout(Duration::from_secs(1), events.recv()).await;
        }
    })
}

struct Measured {
    post: (Duration, Duration),
    status: (Duration, Duration),
    get: Duration,
    n_posts: usize,
    n_status: usize,
}

/// Live posts by `poster` (every 50 ms) until each reached all of
/// `readers`, `status` probes of `probed` (every 20 ms), and one fetch of a
/// file `server` shares by `fetcher`, while `go()` holds.
async fn measure(
    readers: &[&Node],
    poster: &Node,
    server: &Node,
    fetcher: &Node,
    dir: &std::path::Path,
    tag: &str,
    mut go: impl FnMut() -> bool,
) -> anyhow::Result<Measured> {
    // When each post reached each reader (by reader).
    let seen: Arc<Mutex<HashMap<String, HashMap<usize, Instant>>>> = Arc::default();
    let ops = poster
        .roster()?
        .resolve_dept("Ops")
        .map_err(anyhow::Error::msg)?
        .id
        .clone();
    let mut watchers = tokio::task::JoinSet::new();
    for (i, r) in readers.iter().enumerate() {
        let mut events = r.events();
        let (r, seen, ops) = ((*r).clone(), seen.clone(), ops.clone());
        watchers.spawn(async move {
            loop {
                use tokio::sync::broadcast::error::RecvError;
                match events.recv().await {
                    Ok(NodeEvent::FeedChanged { dept, .. }) if dept == ops => {}
                    // Events were dropped: look, in case one was for Ops.
                    Err(RecvError::Lagged(_)) => {}
                    Ok(_) => continue,
                    Err(RecvError::Closed) => break,
                }
                // The newest: after a stall, many posts land in one batch.
                let threads = r.feed("Ops", 200, None).unwrap_or_default();
                let now = Instant::now();
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                for t in threads {
                    seen.entry(t.post.id).or_default().entry(i).or_insert(now);
                }
            }
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    let probes = {
        let (server, stop) = (server.clone(), stop.clone());
        tokio::spawn(async move {
            let mut times = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let _ = server.status().await;
                times.push(t.elapsed());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            times
        })
    };
    let file = {
        let path = dir.join(format!("{tag}.bin"));
        let bytes: Vec<u8> = (0..FILE)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        std::fs::write(&path, bytes)?;
        let shared = server.share("Ops", &path, None, None).await?;
        let (fetcher, out) = (fetcher.clone(), dir.join(format!("{tag}.got")));
        let id = shared.entry.id.clone();
        tokio::spawn(async move {
            // Timed from when the fetcher's library lists it.
            while !fetcher
                .files("Ops")
                .is_ok_and(|f| f.iter().any(|f| f.entry.id == id))
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let t = Instant::now();
            fetcher.get(&id, &out, None).await.map(|_| t.elapsed())
        })
    };
    let mut sent = Vec::new();
    while go() {
        let t = Instant::now();
        let p = poster
            .post("Ops", &format!("live {tag} {}", sent.len()), None)
            .await?;
        sent.push((p.id, t));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let get = file.await??;
    stop.store(true, Ordering::Relaxed);
    let mut status = probes.await?;
    // Wait for the last posts to land everywhere.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut post = Vec::new();
    for (id, t) in &sent {
        loop {
            let reached = seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(id)
                .cloned();
            match reached {
                Some(at) if at.len() == readers.len() => {
                    post.push(at.values().max().map_or(Duration::ZERO, |last| *last - *t));
                    break;
                }
                _ if Instant::now() > deadline => {
                    let reached: Vec<&str> = reached
                        .unwrap_or_default()
                        .keys()
                        .map(|i| ["Ada", "Cy", "Dan"][*i])
                        .collect();
                    anyhow::bail!("post {id} reached only {reached:?} within a minute")
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    watchers.abort_all();
    Ok(Measured {
        n_posts: post.len(),
        n_status: status.len(),
        post: percentiles(&mut post),
        status: percentiles(&mut status),
        get,
    })
}
