//! Benchmark: a pin node holding many pinned blobs, and taking over a lost
//! pinner's replicas.
//!
//! In this process: Ada (admin, the uploader), Cleo (in Ada's department)
//! and Pete (a pin node), on one manual clock. In a child process (this
//! binary, re-run with `--pin-node`): Pia, a pin node exactly as `meshwork
//! daemon --pin` runs one — its own keeper, the system clock — so that her
//! memory and CPU are hers alone.
//!
//! 1. Pia idle in an empty workspace: resident memory, CPU over
//!    `--idle-secs` (the baseline).
//! 2. Ada shares `--blobs` files of `--kib` KiB; Pia's keeper fetches and
//!    commits to all of them; Pete does in one pass, timed.
//! 3. Pia idle holding them all: resident memory, CPU over `--idle-secs`.
//! 4. Pete stops; past the lost bound (the clock moved on), Cleo's pass
//!    takes over every replica he held, timed — beside the ceiling: as many
//!    files of that size read, sent over one loopback TCP connection, and
//!    written and fsynced one by one.
//!
//! Run: `cargo run --release --example pin_bench [-- --blobs 10000 --kib 4 --idle-secs 60]`

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use meshwork::crdt::roster::Role;
use meshwork::node::{
    Clock, Home, InviteSpec, ManualClock, Node, NodeConfig, PinNodeConfig, SystemClock,
    LOST_AFTER_MS,
};

const DEPT: &str = "Research";

struct Args {
    blobs: usize,
    kib: usize,
    idle: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut a = Args {
        blobs: 10_000,
        kib: 4,
        idle: Duration::from_secs(60),
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match flag.as_str() {
            "--pin-node" => return pin_node(PathBuf::from(value())).await,
            "--plain-ledger" => return plain_ledger(value().parse()?),
            "--blobs" => a.blobs = value().parse()?,
            "--kib" => a.kib = value().parse()?,
            "--idle-secs" => a.idle = Duration::from_secs(value().parse()?),
            _ => anyhow::bail!("usage: pin_bench [--blobs N] [--kib K] [--idle-secs S]"),
        }
    }
    run(a).await
}

async fn run(a: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(SystemClock.now());
    let ada = start(dir.path(), "Ada", &clock, false).await?;
    ada.create_workspace("Bench").await?;
    ada.dept_create(DEPT).await?;
    ada.dept_add("Ada", DEPT).await?;
    let cleo = start(dir.path(), "Cleo", &clock, false).await?;
    let token = ada
        .invite(InviteSpec {
            dept: Some(DEPT.into()),
            role: Role::Member,
            ttl: Duration::from_secs(3600),
        })
        .await?
        .token;
    cleo.join(&token).await?;
    let pete = start(dir.path(), "Pete", &clock, true).await?;
    let (_, token) = ada
        .add_pinner(&pete.peer_id().to_string(), Some("Pete"))
        .await?;
    pete.join(&token.token).await?;
    for (node, other) in [(&cleo, &pete), (&pete, &cleo)] {
        let addr = other.listen_addrs().await[0].clone();
        node.dial(addr.with(Protocol::P2p(other.peer_id()))).await?;
    }
    let mut pia = PinChild::spawn(&dir.path().join("pia"))?;
    let (_, token) = ada.add_pinner(&pia.peer, Some("Pia")).await?;
    pia.say(&format!("join {}", token.token))?;
    pia.expect("joined")?;
    eprintln!("Pia joined; idling {:?} for the baseline", a.idle);
    let empty = pia.idle(a.idle)?;

    // Ada shares; Pia's keeper pins as the requests arrive.
    let t = Instant::now();
    let files = dir.path().join("files");
    std::fs::create_dir(&files)?;
    for i in 0..a.blobs {
        let path = files.join(format!("f{i}"));
        std::fs::write(&path, bytes(i, a.kib * 1024))?;
        ada.share(DEPT, &path, None, None).await?;
        if (i + 1) % 1000 == 0 {
            eprintln!("shared {}", i + 1);
        }
    }
    let shared = t.elapsed();
    let pinned_by = |node: &Node, who: &str| {
        node.pins().map(|v| {
            v.pins
                .iter()
                .filter(|p| p.pinners.iter().any(|x| x.name == who))
                .count()
        })
    };
    while pinned_by(&ada, "Pia")? < a.blobs {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let caught_up = t.elapsed();
    eprintln!("Pia committed to all {} in {caught_up:?}", a.blobs);
    let t = Instant::now();
    let pass = pete.reconcile_pins().await?;
    let pete_pass = t.elapsed();
    anyhow::ensure!(
        pass.committed.len() == a.blobs,
        "Pete pinned {}",
        pass.committed.len()
    );
    // The pass after: the ledger has changed (Pete's commitments), then not.
    pete.reconcile_pins().await?;
    let t = Instant::now();
    let pass = pete.reconcile_pins().await?;
    let idle_pass = t.elapsed();
    anyhow::ensure!(pass.committed.is_empty(), "an idle pass pinned something");

    // Quiet: let the last syncs settle, then watch Pia.
    tokio::time::sleep(Duration::from_secs(5)).await;
    eprintln!("idling {:?} with {} pinned blobs", a.idle, a.blobs);
    let full = pia.idle(a.idle)?;

    // Pete is lost; Cleo takes over his replicas.
    let pete_peer = pete.peer_id().to_string();
    pete.shutdown().await;
    while cleo.peers().await.iter().any(|p| p.peer_id == pete_peer) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    clock.advance(Duration::from_millis(LOST_AFTER_MS as u64 + 60_000));
    let t = Instant::now();
    let pass = cleo.reconcile_pins().await?;
    let takeover = t.elapsed();
    anyhow::ensure!(
        pass.committed.len() == a.blobs && pass.failed.is_empty(),
        "Cleo took over {} ({} failed)",
        pass.committed.len(),
        pass.failed.len()
    );
    let ceiling = raw_copy(&files, &dir.path().join("raw"), a.blobs)?;
    let plain = plain_ledger_rss(a.blobs)?;
    pia.say("quit")?;

    let n = a.blobs;
    let mib = (n * a.kib) as f64 / 1024.0;
    println!("## Pinning: {n} blobs of {} KiB ({mib:.1} MiB)\n", a.kib);
    println!("| pin node (own process) | resident memory | CPU while idle |");
    println!("|---|---|---|");
    for (what, s) in [
        ("empty workspace (baseline)", &empty),
        ("holding every blob", &full),
    ] {
        println!(
            "| {what} | {:.1} MiB | {:.2} % of one core ({:.2} s over {:.0} s) |",
            s.rss_kib as f64 / 1024.0,
            100.0 * s.cpu.as_secs_f64() / s.over.as_secs_f64(),
            s.cpu.as_secs_f64(),
            s.over.as_secs_f64()
        );
    }
    println!(
        "| ceiling: plain automerge holding the same ledger (+ its process) | {:.1} MiB (+ {:.1} MiB) | — |",
        plain.1 as f64 / 1024.0,
        (plain.1 - plain.0) as f64 / 1024.0
    );
    println!(
        "\nholding vs baseline: {:.2}× the memory; what holding added ({:.1} MiB) vs what plain automerge needs for the ledger alone ({:.1} MiB): {:.2}×.\n",
        full.rss_kib as f64 / empty.rss_kib as f64,
        (full.rss_kib - empty.rss_kib) as f64 / 1024.0,
        (plain.1 - plain.0) as f64 / 1024.0,
        (full.rss_kib - empty.rss_kib) as f64 / (plain.1 - plain.0) as f64
    );
    println!("| step | time | per blob | vs ceiling |");
    println!("|---|---|---|---|");
    let per = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
    println!(
        "| ceiling: {n} files read, sent over one loopback TCP connection, written + fsynced one by one | {:.2} s | {:.2} ms | 1.00 |",
        ceiling.as_secs_f64(),
        per(ceiling)
    );
    for (what, d) in [
        (
            "Ada shares them (encrypt, hash, library + pin request, each flushed)",
            shared,
        ),
        (
            "Pia (keeper, own process) has committed to all, from the first share",
            caught_up,
        ),
        ("Pete pins all in one pass (fetch + commit)", pete_pass),
        (
            "a pass with nothing to do, ledger unchanged (the keeper's every 30 s)",
            idle_pass,
        ),
        ("Cleo takes over lost Pete's replicas in one pass", takeover),
    ] {
        println!(
            "| {what} | {:.2} s | {:.2} ms | {:.1}× |",
            d.as_secs_f64(),
            per(d),
            d.as_secs_f64() / ceiling.as_secs_f64()
        );
    }
    println!(
        "\nA takeover starts once the pinner has been out of sight for {} min (LOST_AFTER_MS) and the next pass runs (at most one sync interval later).",
        LOST_AFTER_MS / 60_000
    );
    for node in [ada, cleo] {
        node.shutdown().await;
    }
    Ok(())
}

async fn start(dir: &Path, name: &str, clock: &ManualClock, pin: bool) -> anyhow::Result<Node> {
    let home = dir.join(name.to_lowercase());
    Home::new(&home).init(name)?;
    let mut cfg = NodeConfig::new(&home);
    cfg.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    cfg.net.mdns = false;
    cfg.clock = std::sync::Arc::new(clock.clone());
    // These nodes reconcile when the benchmark says so.
    cfg.auto_pin = false;
    if pin {
        cfg.pin = Some(PinNodeConfig { quota: u64::MAX });
    }
    Ok(Node::start(cfg).await?)
}

/// The memory ceiling, in a child of its own: resident memory before and
/// after building, in plain automerge (no signatures, no rules, no store),
/// a ledger of `n` requests (one change each, as sharing writes them) and
/// two pinners' commitments to each (in changes of 256, as passes write
/// them).
fn plain_ledger_rss(n: usize) -> anyhow::Result<(u64, u64)> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--plain-ledger", &n.to_string()])
        .output()?;
    anyhow::ensure!(out.status.success(), "the plain-ledger child failed");
    let text = String::from_utf8(out.stdout)?;
    let mut kib = text.split_whitespace().map(str::parse::<u64>);
    match (kib.next(), kib.next()) {
        (Some(Ok(before)), Some(Ok(after))) => Ok((before, after)),
        _ => anyhow::bail!("the plain-ledger child said {text:?}"),
    }
}

fn plain_ledger(n: usize) -> anyhow::Result<()> {
    use meshwork::crdt::automerge::transaction::Transactable;
    use meshwork::crdt::automerge::{AutoCommit, ObjType, ScalarValue, ROOT};
    let before = rss_kib(std::process::id())?;
    let mut doc = AutoCommit::new();
    let requests = doc.put_object(ROOT, "requests", ObjType::Map)?;
    let commits = doc.put_object(ROOT, "commits", ObjType::Map)?;
    doc.commit();
    let blob = |i: usize| blake3::hash(&(i as u64).to_le_bytes()).to_hex().to_string();
    let member = blake3::hash(b"uploader").to_hex().to_string();
    for i in 0..n {
        let r = doc.put_object(&requests, blob(i), ObjType::Map)?;
        doc.put(&r, "dept", member.as_str())?;
        doc.put(&r, "size", ScalarValue::Uint(4096))?;
        doc.put(&r, "until", ScalarValue::Int(1_800_000_000_000 + i as i64))?;
        doc.put(&r, "by", member.as_str())?;
        doc.commit();
    }
    for pinner in ["pinner-one", "pinner-two"] {
        let pinner = blake3::hash(pinner.as_bytes()).to_hex().to_string();
        for chunk in (0..n).collect::<Vec<_>>().chunks(256) {
            for &i in chunk {
                let until = ScalarValue::Int(1_800_000_000_000 + i as i64);
                doc.put(&commits, format!("{}/{pinner}", blob(i)), until)?;
            }
            doc.commit();
        }
    }
    println!("{before} {}", rss_kib(std::process::id())?);
    drop(doc);
    Ok(())
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))
}

/// The child: a pin node as the daemon runs one, driven over stdin.
async fn pin_node(home: PathBuf) -> anyhow::Result<()> {
    Home::new(&home).init("Pia")?;
    let mut cfg = NodeConfig::new(&home);
    cfg.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    cfg.net.mdns = false;
    cfg.pin = Some(PinNodeConfig { quota: u64::MAX });
    let node = Node::start(cfg).await?;
    println!("peer {}", node.peer_id());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        match line.split_once(' ') {
            Some(("join", token)) => {
                node.join(token).await?;
                println!("joined");
            }
            _ if line == "quit" => break,
            _ => anyhow::bail!("unknown command {line:?}"),
        }
    }
    node.shutdown().await;
    Ok(())
}

/// The pin-node child process and its lines.
struct PinChild {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    peer: String,
}

/// What an idle stretch cost.
struct Idle {
    rss_kib: u64,
    cpu: Duration,
    over: Duration,
}

impl PinChild {
    fn spawn(home: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--pin-node")
            .arg(home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let first = lines.recv_timeout(Duration::from_secs(60))?;
        let peer = first
            .strip_prefix("peer ")
            .ok_or_else(|| anyhow::anyhow!("the pin node said {first:?}"))?
            .to_owned();
        Ok(Self {
            child,
            stdin,
            lines,
            peer,
        })
    }

    fn say(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.stdin, "{line}")?;
        Ok(self.stdin.flush()?)
    }

    fn expect(&self, what: &str) -> anyhow::Result<()> {
        let line = self.lines.recv_timeout(Duration::from_secs(60))?;
        anyhow::ensure!(line == what, "the pin node said {line:?}, not {what:?}");
        Ok(())
    }

    /// Its CPU time over `over` of idling, and its resident memory after.
    fn idle(&self, over: Duration) -> anyhow::Result<Idle> {
        let before = self.cpu()?;
        std::thread::sleep(over);
        let cpu = self.cpu()? - before;
        let rss_kib = rss_kib(self.child.id())?;
        Ok(Idle { rss_kib, cpu, over })
    }

    /// User + system CPU time so far (/proc/PID/stat, in clock ticks).
    fn cpu(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // Fields after the parenthesised name: state is field 3; utime and
        // stime are fields 14 and 15.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        Ok(Duration::from_millis(ticks * 1000 / clock_ticks()))
    }
}

impl Drop for PinChild {
    fn drop(&mut self) {
        let _ = self.child.wait();
    }
}

fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// File `i`'s bytes: distinct per file, so every blob is its own.
fn bytes(i: usize, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&(i as u64).to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// The ceiling of a takeover: `n` files read, sent over one loopback TCP
/// connection (length-prefixed), and written and fsynced one by one.
fn raw_copy(from: &Path, to: &Path, n: usize) -> anyhow::Result<Duration> {
    std::fs::create_dir(to)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let to = to.to_path_buf();
    let t = Instant::now();
    let receiver = std::thread::spawn(move || -> anyhow::Result<()> {
        let (mut sock, _) = listener.accept()?;
        for i in 0..n {
            let mut len = [0u8; 8];
            sock.read_exact(&mut len)?;
            let mut buf = vec![0u8; u64::from_le_bytes(len) as usize];
            sock.read_exact(&mut buf)?;
            let mut f = std::fs::File::create(to.join(format!("f{i}")))?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        Ok(())
    });
    let mut sock = std::net::TcpStream::connect(addr)?;
    for i in 0..n {
        let buf = std::fs::read(from.join(format!("f{i}")))?;
        sock.write_all(&(buf.len() as u64).to_le_bytes())?;
        sock.write_all(&buf)?;
    }
    receiver.join().expect("receiver")?;
    Ok(t.elapsed())
}
