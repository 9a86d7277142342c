//! A pin node in a child process of its own (the benchmark's binary, re-run
//! with `--pin-node`), so that its memory and CPU are its alone, driven
//! over stdin a line at a time:
//!
//! - `join TOKEN` → `joined`;
//! - `advance MS` → `advanced` (manual clock only);
//! - `pass` → `pass COMMITTED COLLECTED MICROS CPU_MICROS` (manual clock
//!   only: a reconcile pass, its wall time and the CPU time every thread of
//!   the process spent during it);
//! - `days` → `days N` (the ledger days it holds);
//! - `quit`.
//!
//! On the system clock it runs its own keeper, as `meshwork daemon --pin`
//! does; on a manual clock (`--clock MS`) it passes when told.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use meshwork::node::{Home, ManualClock, Node, NodeConfig, PinNodeConfig};

/// The child's side: `args` are what follows `--pin-node` (a home, then
/// optionally `--clock MS`).
pub async fn run(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let home = PathBuf::from(args.next().unwrap_or_default());
    let clock = match (args.next().as_deref(), args.next()) {
        (Some("--clock"), Some(ms)) => Some(ManualClock::new(ms.parse()?)),
        _ => None,
    };
    Home::new(&home).init("Pia")?;
    let mut cfg = NodeConfig::new(&home);
    cfg.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    cfg.net.mdns = false;
    cfg.pin = Some(PinNodeConfig { quota: u64::MAX });
    if let Some(clock) = &clock {
        cfg.clock = std::sync::Arc::new(clock.clone());
        cfg.auto_pin = false;
    }
    let node = Node::start(cfg).await?;
    println!("peer {}", node.peer_id());
    let mut rx = super::stdin_lines();
    while let Some(line) = rx.recv().await {
        match (line.split_once(' '), &clock) {
            (Some(("join", token)), _) => {
                node.join(token).await?;
                println!("joined");
            }
            (Some(("advance", ms)), Some(clock)) => {
                clock.advance(Duration::from_millis(ms.parse()?));
                println!("advanced");
            }
            (None, Some(_)) if line == "pass" => {
                let (t, cpu) = (Instant::now(), threads_cpu());
                let done = node.reconcile_pins().await?;
                println!(
                    "pass {} {} {} {}",
                    done.committed.len(),
                    done.collected.len(),
                    t.elapsed().as_micros(),
                    threads_cpu().saturating_sub(cpu).as_micros()
                );
            }
            (None, _) if line == "days" => println!("days {}", node.ledger_days()?.len()),
            (None, _) if line == "quit" => break,
            _ => anyhow::bail!("unknown command {line:?}"),
        }
    }
    node.shutdown().await;
    Ok(())
}

/// A node in this process, in `dir`, on `clock`: it passes when told (a
/// pin node if `pin`).
pub async fn on_clock(
    dir: &Path,
    name: &str,
    clock: &ManualClock,
    pin: bool,
) -> anyhow::Result<Node> {
    let home = dir.join(name.to_lowercase());
    Home::new(&home).init(name)?;
    let mut cfg = NodeConfig::new(&home);
    cfg.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    cfg.net.mdns = false;
    cfg.clock = std::sync::Arc::new(clock.clone());
    cfg.auto_pin = false;
    if pin {
        cfg.pin = Some(PinNodeConfig { quota: u64::MAX });
    }
    Ok(Node::start(cfg).await?)
}

/// The parent's side: the child process and its lines.
pub struct PinChild {
    child: Child,
    /// Closed on drop: the child ends when its stdin does.
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    pub peer: String,
}

/// What an idle stretch cost.
pub struct Idle {
    pub rss_kib: u64,
    pub cpu: Duration,
    pub over: Duration,
}

impl PinChild {
    /// Starts the child on `home`, on a manual clock from `clock_ms` if
    /// given.
    pub fn spawn(home: &Path, clock_ms: Option<i64>) -> anyhow::Result<Self> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("--pin-node").arg(home);
        if let Some(ms) = clock_ms {
            cmd.args(["--clock", &ms.to_string()]);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
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
            stdin: Some(stdin),
            lines,
            peer,
        })
    }

    pub fn say(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().expect("open until dropped");
        writeln!(stdin, "{line}")?;
        Ok(stdin.flush()?)
    }

    /// Its next line (waiting up to ten minutes: a pass may be long).
    pub fn answer(&self) -> anyhow::Result<String> {
        Ok(self.lines.recv_timeout(Duration::from_secs(600))?)
    }

    pub fn expect(&self, what: &str) -> anyhow::Result<()> {
        let line = self.answer()?;
        anyhow::ensure!(line == what, "the pin node said {line:?}, not {what:?}");
        Ok(())
    }

    /// Its resident memory now.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.child.id())
    }

    /// Its CPU time over `over` of idling, and its resident memory after.
    pub fn idle(&self, over: Duration) -> anyhow::Result<Idle> {
        let before = self.cpu()?;
        std::thread::sleep(over);
        let cpu = self.cpu()? - before;
        let rss_kib = self.rss_kib()?;
        Ok(Idle { rss_kib, cpu, over })
    }

    /// User + system CPU time so far (/proc/PID/stat, in clock ticks).
    pub fn cpu(&self) -> anyhow::Result<Duration> {
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
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Resident memory of process `pid`.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))
}

/// The CPU time this process's live threads have run, to the nanosecond
/// (`/proc/self/task/*/schedstat`; `/proc/PID/stat` counts in 10 ms
/// ticks, coarser than a pass). A thread that exits between two readings
/// takes its time with it: the difference then reads low, never high.
pub fn threads_cpu() -> Duration {
    let tasks = std::fs::read_dir("/proc/self/task").into_iter().flatten();
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
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
pub fn bytes(i: usize, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&(i as u64).to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// The memory ceiling, in a child of its own (this binary, re-run with
/// `--plain-ledger N`): resident memory before and after building, in
/// plain automerge (no signatures, no rules, no store), a ledger of `n`
/// requests (one change each, as sharing writes them) and two pinners'
/// commitments to each (in changes of 256, as passes write them).
pub fn plain_ledger_rss(n: usize) -> anyhow::Result<(u64, u64)> {
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

/// The `--plain-ledger N` child: builds the ledger and prints its resident
/// memory before and after.
pub fn plain_ledger(n: usize) -> anyhow::Result<()> {
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
