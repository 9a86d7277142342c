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

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::pin_child::{self, bytes, on_clock, plain_ledger_rss, PinChild};
use libp2p::multiaddr::Protocol;
use meshwork::crdt::roster::Role;
use meshwork::node::{Clock, InviteSpec, ManualClock, Node, SystemClock, LOST_AFTER_MS};

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
            "--pin-node" => return pin_child::run(std::iter::once(value())).await,
            "--plain-ledger" => return pin_child::plain_ledger(value().parse()?),
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
    let ada = on_clock(dir.path(), "Ada", &clock, false).await?;
    ada.create_workspace("Bench").await?;
    ada.dept_create(DEPT).await?;
    ada.dept_add("Ada", DEPT).await?;
    let cleo = on_clock(dir.path(), "Cleo", &clock, false).await?;
    let token = ada
        .invite(InviteSpec {
            dept: Some(DEPT.into()),
            role: Role::Member,
            ttl: Duration::from_secs(3600),
        })
        .await?
        .token;
    cleo.join(&token).await?;
    let pete = on_clock(dir.path(), "Pete", &clock, true).await?;
    let (_, token) = ada
        .add_pinner(&pete.peer_id().to_string(), Some("Pete"))
        .await?;
    pete.join(&token.token).await?;
    for (node, other) in [(&cleo, &pete), (&pete, &cleo)] {
        let addr = other.listen_addrs().await[0].clone();
        node.dial(addr.with(Protocol::P2p(other.peer_id()))).await?;
    }
    let mut pia = PinChild::spawn(&dir.path().join("pia"), None)?;
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
