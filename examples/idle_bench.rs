//! Memory by what is open (issue 16): an idle member of three departments
//! of `--posts` posts each (default 100,000), connected to a colleague who
//! keeps syncing with him.
//!
//! Bob, the member measured, runs in a child process of his own (this
//! binary, re-run with `--member HOME`), so that the resident memory read
//! from `/proc` is his alone. Ada, who wrote the history, runs in this
//! process. Both homes hold the whole history before either starts (as a
//! finished sync would leave them); Bob's search index is built from it at
//! his first start. Bob syncs every 2 s and unloads what nobody used for
//! 10 s (a node's defaults: 30 s and 5 minutes — only the waiting is
//! shorter here).
//!
//! The ceiling is plain automerge holding the same three feeds, in a child
//! process of its own (`--plain HOME`): what keeping every document
//! loaded costs without signatures, rules, store or network.
//!
//! Run: `cargo run --release --example idle_bench [-- --posts 100000]`

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use meshwork::crdt::roster::Role;
use meshwork::node::wire::DocRef;
use meshwork::node::{Home, InviteSpec, Node, NodeConfig, Store};

use common::pin_child::rss_kib;

const DEPTS: [&str; 3] = ["Eng", "Ops", "Sales"];
/// Bob's sync interval and idle time.
const SYNC_EVERY: Duration = Duration::from_secs(2);
const IDLE_AFTER: Duration = Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.next().as_deref() {
        Some("--member") => {
            return rt.block_on(member(PathBuf::from(args.next().unwrap_or_default())))
        }
        Some("--plain") => {
            let home = PathBuf::from(args.next().unwrap_or_default());
            return plain(&home, &args.collect::<Vec<_>>());
        }
        _ => {}
    }
    let posts: usize = match std::env::args().skip_while(|a| a != "--posts").nth(1) {
        Some(n) => n.parse()?,
        None => 100_000,
    };
    rt.block_on(run(posts))
}

async fn run(posts: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (ada_home, bob_home) = (dir.path().join("ada"), dir.path().join("bob"));
    let t = Instant::now();
    let depts = setup(&ada_home, &bob_home, posts).await?;
    eprintln!(
        "3 × {posts} posts written into both homes in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let ada = common::start(&ada_home, "Ada").await?;
    let mut bob = Member::spawn(&bob_home)?;
    ada.dial(bob.addr.parse()?).await?;

    let t = Instant::now();
    while bob.ask("indexed")? < 3 * posts as u64 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let loaded_all = bob.ask("loaded")?;
    let all = bob.rss()?;
    eprintln!(
        "Bob indexed {} posts in {:.1} s; {loaded_all} feeds loaded, {all} KiB",
        3 * posts,
        t.elapsed().as_secs_f64()
    );

    let first = settle(&mut bob)?;
    // Does what the first compaction left behind drain with time?
    std::thread::sleep(Duration::from_secs(60));
    let (later, later_loaded) = (bob.rss()?, bob.ask("loaded")?);
    if std::env::var_os("IDLE_BENCH_WRAP").is_some() {
        // A profile is cut here: whoever profiles ends Bob now.
        eprintln!("waiting for Bob (under the wrapper) to be ended");
        bob.child.wait()?;
        return Ok(());
    }

    let t = Instant::now();
    let page = bob.ask("page Eng")?;
    let opened = t.elapsed();
    let one = bob.rss()?;
    let one_loaded = bob.ask("loaded")?;
    bob.quit()?;

    // Bob again, from a store whose feeds are snapshots now: what a member
    // holds idle once the first sync's compaction is behind him.
    let mut bob = Member::spawn(&bob_home)?;
    ada.dial(bob.addr.parse()?).await?;
    let again = settle(&mut bob)?;
    bob.quit()?;
    ada.shutdown().await;

    let plain = plain_rss(&bob_home, &depts)?;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let ratio = |kib: u64| kib as f64 / plain as f64;
    println!("| Bob, in 3 departments of {posts} posts | resident memory | feeds in memory | vs plain automerge |");
    println!("|---|---|---|---|");
    println!(
        "| just synced with Ada, search index built | {:.1} MiB | {loaded_all} | {:.2} |",
        mib(all),
        ratio(all)
    );
    println!(
        "| idle: unloaded (and compacted) after {:.0} s, then 5 periodic syncs with Ada | {:.1} MiB | {} | {:.2} |",
        first.unloaded_after.as_secs_f64() + IDLE_AFTER.as_secs_f64(),
        mib(first.rss),
        first.loaded,
        ratio(first.rss)
    );
    println!(
        "| a minute later | {:.1} MiB | {later_loaded} | {:.2} |",
        mib(later),
        ratio(later)
    );
    println!(
        "| then the newest {page} threads of Eng opened ({:.0} ms) | {:.1} MiB | {one_loaded} | {:.2} |",
        opened.as_secs_f64() * 1e3,
        mib(one),
        ratio(one)
    );
    println!(
        "| restarted, synced with Ada, idle again after {:.0} s and 5 periodic syncs | {:.1} MiB | {} | {:.2} |",
        again.unloaded_after.as_secs_f64() + IDLE_AFTER.as_secs_f64(),
        mib(again.rss),
        again.loaded,
        ratio(again.rss)
    );
    println!(
        "| plain automerge holding the three feeds (ceiling) | {:.1} MiB | 3 | 1.00 |",
        mib(plain)
    );
    Ok(())
}

/// Ada's workspace, its three departments with Bob in each, and `posts`
/// posts by Ada in each, stored in both homes (both nodes stopped after).
async fn setup(ada_home: &Path, bob_home: &Path, posts: usize) -> anyhow::Result<Vec<String>> {
    let ada = common::start(ada_home, "Ada").await?;
    ada.create_workspace("Bench").await?;
    for d in DEPTS {
        ada.dept_create_joined(d).await?;
    }
    let bob = common::start(bob_home, "Bob").await?;
    let token = ada
        .invite(InviteSpec {
            dept: Some(DEPTS[0].into()),
            role: Role::Member,
            ttl: Duration::from_secs(3600),
        })
        .await?
        .token;
    bob.join(&token).await?;
    for d in &DEPTS[1..] {
        ada.dept_add(&bob.member_id().to_string(), d).await?;
    }
    let me = bob.member_id();
    let in_all = |r: &meshwork::crdt::roster::Roster| {
        DEPTS
            .iter()
            .all(|d| r.resolve_dept(d).is_ok_and(|d| d.members.contains(&me)))
    };
    anyhow::ensure!(
        bob.wait_roster(in_all, Duration::from_secs(60)).await,
        "Bob never saw himself in every department"
    );
    let depts: Vec<String> = DEPTS
        .iter()
        .map(|d| Ok(ada.roster()?.resolve_dept(d)?.id.clone()))
        .collect::<anyhow::Result<_>>()?;
    ada.shutdown().await;
    bob.shutdown().await;
    drop((ada, bob));

    let signer = Home::new(ada_home).identity()?.signer;
    let bob_store = Store::open(&Home::new(bob_home).db())?;
    let ws = bob_store.workspace()?.expect("Bob's workspace").id;
    for (i, dept) in depts.iter().enumerate() {
        let bodies: Vec<String> = (0..posts)
            .map(|k| {
                format!("{k}: status update, the build is green and the notes are in the folder")
            })
            .collect();
        let t0 = 1_700_000_000_000 + i as i64;
        let changes = common::write_posts(ada_home, dept, &signer, &bodies, t0).await?;
        // As a sync leaves them: a batch of 64 at a time.
        for batch in changes.chunks(64) {
            bob_store.put_changes(&DocRef::Feed(dept.clone()).store_key(&ws), batch)?;
        }
    }
    bob_store.flush().await?;
    Ok(depts)
}

/// Bob idle: how long his feeds took to leave memory, how many are in
/// memory five periodic syncs later, and his resident memory then.
struct Idle {
    unloaded_after: Duration,
    loaded: u64,
    rss: u64,
}

/// Waits for Bob's feeds to be read (a Bob just started reads them for his
/// first rounds with Ada) and to leave memory, then for five periodic
/// syncs with Ada (which should bring nothing back), and measures him.
fn settle(bob: &mut Member) -> anyhow::Result<Idle> {
    // A Bob just started loads his feeds for his first rounds with Ada.
    let t = Instant::now();
    while bob.ask("loaded")? == 0 && t.elapsed() < SYNC_EVERY * 5 {
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = Instant::now();
    while bob.ask("loaded")? > 0 {
        std::thread::sleep(Duration::from_millis(500));
    }
    let unloaded_after = t.elapsed();
    std::thread::sleep(SYNC_EVERY * 5);
    let loaded = bob.ask("loaded")?;
    let rss = bob.rss()?;
    // Of which heap and stacks (anonymous), and mapped files (the binary,
    // the search index's segments).
    let status = std::fs::read_to_string(format!("/proc/{}/status", bob.child.id()))?;
    let split: Vec<String> = status
        .lines()
        .filter(|l| l.starts_with("RssAnon") || l.starts_with("RssFile"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    eprintln!("idle: {}, {loaded} feeds loaded", split.join(", "));
    Ok(Idle {
        unloaded_after,
        loaded,
        rss,
    })
}

/// Bob in his child process, driven a line at a time.
struct Member {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    addr: String,
}

impl Member {
    fn spawn(home: &Path) -> anyhow::Result<Self> {
        // IDLE_BENCH_WRAP: a program to run Bob under (`heaptrack`), for a
        // heap profile of idle Bob: the bench stops after the idle
        // measurement and waits for Bob to be killed (what is allocated
        // then is what idle Bob holds). His resident memory is then the
        // wrapper's.
        let exe = std::env::current_exe()?;
        let mut child = match std::env::var_os("IDLE_BENCH_WRAP") {
            Some(wrap) => {
                let mut c = Command::new(wrap);
                c.arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let mut child = child
            .arg("--member")
            .arg(home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        // (A wrapper may say something first.)
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                anyhow::bail!("the member ended before saying its address");
            }
            if let Some(addr) = line.trim().strip_prefix("addr ") {
                break addr.to_owned();
            }
        };
        Ok(Self {
            child,
            stdin,
            stdout,
            addr,
        })
    }

    /// Asks `what`; the answer is a number.
    fn ask(&mut self, what: &str) -> anyhow::Result<u64> {
        writeln!(self.stdin, "{what}")?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        line.trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{what}: the member said {line:?}"))
    }

    fn rss(&self) -> anyhow::Result<u64> {
        rss_kib(self.child.id())
    }

    fn quit(mut self) -> anyhow::Result<()> {
        writeln!(self.stdin, "quit")?;
        self.child.wait()?;
        Ok(())
    }
}

/// The child's side: Bob's node, answering `indexed`, `loaded`,
/// `page DEPT` and `quit`.
async fn member(home: PathBuf) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut cfg = NodeConfig::new(&home);
    cfg.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    cfg.net.mdns = false;
    cfg.net.sync_interval = SYNC_EVERY;
    cfg.unload_idle_after = Some(IDLE_AFTER);
    let node = Node::start(cfg).await?;
    let addr = loop {
        if let Some(a) = node.listen_addrs().await.first() {
            break a.clone().with(Protocol::P2p(node.peer_id()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!("addr {addr}");
    let mut rx = common::stdin_lines();
    while let Some(line) = rx.recv().await {
        let answer = match line.split_once(' ') {
            None if line == "indexed" => node
                .search("green", None, 1)
                .await
                .map_or(0, |r| r.total as u64),
            // Feeds: a member's pin passes keep its libraries and the
            // ledger's live days in use.
            None if line == "loaded" => node
                .loaded_docs()
                .iter()
                .filter(|d| matches!(d, DocRef::Feed(_)))
                .count() as u64,
            Some(("page", dept)) => node.feed(dept, 50, None)?.len() as u64,
            _ => break,
        };
        println!("{answer}");
    }
    node.shutdown().await;
    Ok(())
}

/// The ceiling's resident memory, from its own process.
fn plain_rss(home: &Path, depts: &[String]) -> anyhow::Result<u64> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--plain")
        .arg(home)
        .args(depts)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("the ceiling said {text:?}"))
}

/// The child's side of the ceiling: the feeds of `depts` in `home` as
/// plain automerge documents (a compacted feed loaded from its saved form,
/// as the node loads it, then the changes stored since applied); prints the
/// resident KiB.
fn plain(home: &Path, depts: &[String]) -> anyhow::Result<()> {
    use meshwork::crdt::automerge::{Automerge, Change};
    let store = Store::open(&Home::new(home).db())?;
    let ws = store.workspace()?.expect("a workspace").id;
    let mut docs = Vec::new();
    for d in depts {
        let (snapshot, changes) = store.stored(&DocRef::Feed(d.clone()).store_key(&ws))?;
        let mut doc = match snapshot {
            Some(s) => Automerge::load(&s.doc)?,
            None => meshwork::crdt::feed::genesis(d)?,
        };
        let changes: Vec<Change> = changes
            .iter()
            .filter_map(|c| Change::from_bytes(c.bytes.clone()).ok())
            .collect();
        doc.apply_changes(changes)?;
        docs.push(doc);
    }
    println!("{}", rss_kib(std::process::id())?);
    drop(docs);
    Ok(())
}
