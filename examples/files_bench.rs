//! Benchmark: moving a file between real nodes on 127.0.0.1.
//!
//! A file of `--mib` MiB (default 1024) of random bytes is shared by one node
//! (sealed: encrypted and hashed into its blob store), then fetched by
//! another from one holder, and by a fifth from three holders at once. Each
//! fetch is timed twice: until the blob is complete and verified in the
//! fetcher's store ("transfer"), and until the plaintext file is written
//! ("get": + decrypt, write, fsync, rename). Beside them, in the same run:
//! a plain TCP copy of the same number of bytes over loopback from one file
//! into another (read, send, receive, write, fsync) — the ceiling — and the
//! peak resident memory of this process, which runs every node.
//!
//! `--folder N` instead shares a folder of N files of 100 KiB between two
//! nodes, timing the share and the fetch until the whole tree is written;
//! its ceiling is a plain TCP copy of the same files into the same tree
//! (each file written and fsynced).
//!
//! `--small N` shares N files of 4 KiB one by one while the other node is
//! connected, and times each share and each get: what a person waits for.
//! Its ceiling is the same file written and fsynced on the same disk.
//!
//! Run: `cargo run --release --example files_bench [-- --mib 1024] [--two-nodes] [--folder 1000] [--small 200]`

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use meshwork::crdt::roster::Role;
use meshwork::node::{Home, InviteSpec, Node, NodeConfig, Progress};

const DEPT: &str = "Eng";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (mut mib, mut two_nodes, mut folder, mut small) = (1024u64, false, None::<usize>, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--mib" => mib = args.next().unwrap_or_default().parse()?,
            // One uploader, one fetcher: for sizes whose five copies would
            // not fit on the disk.
            "--two-nodes" => two_nodes = true,
            "--folder" => folder = Some(args.next().unwrap_or_default().parse()?),
            "--small" => small = Some(args.next().unwrap_or_default().parse()?),
            _ => anyhow::bail!(
                "usage: files_bench [--mib N] [--two-nodes] [--folder FILES] [--small FILES]"
            ),
        }
    }
    if let Some(files) = small {
        return small_bench(files).await;
    }
    if let Some(files) = folder {
        return folder_bench(files).await;
    }
    let size = mib * 1024 * 1024;
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("source.bin");
    write_random(&source, size)?;

    let ceiling = tcp_copy(&source, &dir.path().join("tcp-copy.bin")).await?;
    std::fs::remove_file(dir.path().join("tcp-copy.bin"))?;

    let nodes = office(dir.path(), if two_nodes { 2 } else { 5 }).await?;
    let t = Instant::now();
    let file = nodes[0].share(DEPT, &source, None, None).await?;
    let seal = t.elapsed();
    let id = file.entry.id.clone();

    // Each copy is checked, then removed before the next fetch: every
    // fetch then writes into memory the last one freed, as on a machine
    // whose memory has been in use. (This VM backs guest memory lazily: a
    // write into a page never touched before costs ~10× one into a freed
    // page, and which fetch happened to get fresh pages swung its time by
    // seconds.)
    let checked = |name: &str| -> anyhow::Result<()> {
        let copy = dir.path().join(name);
        anyhow::ensure!(same(&source, &copy)?, "the copy {name} differs");
        std::fs::remove_file(copy)?;
        Ok(())
    };
    let one = fetch(&nodes[1], &id, &dir.path().join("one.bin"), 1).await?;
    checked("one.bin")?;
    let three = if two_nodes {
        None
    } else {
        for (n, name) in [(2, "two.bin"), (3, "three.bin")] {
            fetch(&nodes[n], &id, &dir.path().join(name), n).await?;
            checked(name)?;
        }
        let f = fetch(&nodes[4], &id, &dir.path().join("four.bin"), 4).await?;
        checked("four.bin")?;
        Some(f)
    };

    let rate = |d: Duration| size as f64 / d.as_secs_f64() / 1e6;
    println!("## Files: {mib} MiB between nodes on 127.0.0.1\n");
    println!("| step | time | MB/s | vs plain TCP copy |");
    println!("|---|---|---|---|");
    println!(
        "| plain TCP copy, file → socket → file + fsync (ceiling) | {:.2} s | {:.0} | 1.00 |",
        ceiling.as_secs_f64(),
        rate(ceiling)
    );
    println!(
        "| share: encrypt + hash + write the blob | {:.2} s | {:.0} | {:.2} |",
        seal.as_secs_f64(),
        rate(seal),
        rate(seal) / rate(ceiling)
    );
    let fetches = [
        ("one holder", Some(&one)),
        ("three holders at once", three.as_ref()),
    ];
    for (label, f) in fetches.iter().filter_map(|(l, f)| Some((*l, (*f)?))) {
        println!(
            "| transfer from {label}: every piece verified and written | {:.2} s | {:.0} | {:.2} |",
            f.transfer.as_secs_f64(),
            rate(f.transfer),
            rate(f.transfer) / rate(ceiling)
        );
        println!(
            "| get from {label}: + decrypt, write, fsync, rename | {:.2} s | {:.0} | {:.2} |",
            f.total.as_secs_f64(),
            rate(f.total),
            rate(f.total) / rate(ceiling)
        );
    }
    println!(
        "\nPeak resident memory of the process running all {} nodes: {} MiB.",
        nodes.len(),
        peak_rss_kib() / 1024
    );
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

struct Fetched {
    transfer: Duration,
    total: Duration,
}

async fn fetch(
    node: &Node,
    id: &str,
    out: &std::path::Path,
    holders: usize,
) -> anyhow::Result<Fetched> {
    // Wait until this node's library lists enough holders.
    while !node.file(id).is_ok_and(|(_, info)| info.peers >= holders) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let transferred = Arc::new(Mutex::new(None::<Instant>));
    let mark = transferred.clone();
    let progress: Progress = Arc::new(move |done, total| {
        let mut m = mark.lock().unwrap_or_else(|p| p.into_inner());
        if done == total && m.is_none() {
            *m = Some(Instant::now());
        }
    });
    eprintln!("fetching from {holders} holder(s)");
    let t = Instant::now();
    node.get(id, out, Some(progress)).await?;
    let total = t.elapsed();
    let at = transferred
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or_else(Instant::now);
    eprintln!("fetched from {holders} holder(s) in {total:?}");
    Ok(Fetched {
        transfer: at - t,
        total,
    })
}

async fn office(dir: &std::path::Path, n: usize) -> anyhow::Result<Vec<Node>> {
    let start = |i: usize| {
        let home = dir.join(format!("n{i}"));
        async move {
            Home::new(&home).init(&format!("Member {i}"))?;
            let mut cfg = NodeConfig::new(&home);
            cfg.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
            cfg.net.mdns = false;
            // Measure transfers alone: no node volunteers to pin the file
            // (which would fetch it from the same holder meanwhile).
            cfg.auto_pin = false;
            anyhow::Ok(Node::start(cfg).await?)
        }
    };
    let admin = start(0).await?;
    admin.create_workspace("Bench").await?;
    admin.dept_create(DEPT).await?;
    admin.dept_add(&admin.member_id().to_string(), DEPT).await?;
    let mut nodes = vec![admin];
    for i in 1..n {
        let node = start(i).await?;
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
    for (i, node) in nodes.iter().enumerate() {
        for other in &nodes[..i] {
            let addr = other.listen_addrs().await[0].clone();
            node.dial(addr.with(Protocol::P2p(other.peer_id()))).await?;
        }
    }
    let everyone: Vec<_> = nodes.iter().map(Node::member_id).collect();
    for node in &nodes {
        let ok = node
            .wait_roster(
                |r| {
                    r.resolve_dept(DEPT)
                        .is_ok_and(|d| everyone.iter().all(|m| d.members.contains(m)))
                },
                Duration::from_secs(60),
            )
            .await;
        anyhow::ensure!(ok, "the roster did not converge");
        while node.peers().await.len() < n - 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(nodes)
}

/// A folder of `files` × 100 KiB between two nodes, beside a plain TCP
/// copy of the same tree.
async fn folder_bench(files: usize) -> anyhow::Result<()> {
    const FILE: u64 = 100 * 1024;
    let dir = tempfile::tempdir()?;
    let src = dir.path().join("src");
    for i in 0..files {
        let sub = src.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&sub)?;
        write_random(&sub.join(format!("f{i:05}.bin")), FILE)?;
    }
    let total = files as u64 * FILE;
    let ceiling = tcp_copy_tree(&src, &dir.path().join("tcp-copy")).await?;
    let nodes = office(dir.path(), 2).await?;
    let t = Instant::now();
    let shared = nodes[0].share(DEPT, &src, None, None).await?;
    let share = t.elapsed();
    let out = dir.path().join("fetched");
    let got = fetch(&nodes[1], &shared.entry.id, &out, 1).await?;
    for i in 0..files {
        let rel = format!("d{}/f{i:05}.bin", i % 10);
        anyhow::ensure!(same(&src.join(&rel), &out.join(&rel))?, "{rel} differs");
    }
    let rate = |d: Duration| total as f64 / d.as_secs_f64() / 1e6;
    println!("## Files: a folder of {files} × 100 KiB between two nodes on 127.0.0.1\n");
    println!("| step | time | MB/s | vs plain TCP copy |");
    println!("|---|---|---|---|");
    for (what, d) in [
        (
            "plain TCP copy of the tree, each file written + fsynced (ceiling)",
            ceiling,
        ),
        ("share the folder: scan, encrypt + hash, one record", share),
        ("transfer: every piece verified and written", got.transfer),
        (
            "get: + decrypt into the tree, sync it (16 files at a time), rename",
            got.total,
        ),
    ] {
        println!(
            "| {what} | {:.2} s | {:.0} | {:.2} |",
            d.as_secs_f64(),
            rate(d),
            rate(d) / rate(ceiling)
        );
    }
    println!(
        "\nPeak resident memory of the process running both nodes: {} MiB.",
        peak_rss_kib() / 1024
    );
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

/// Small files one at a time: each share's and each get's latency.
async fn small_bench(files: usize) -> anyhow::Result<()> {
    const FILE: u64 = 4 * 1024;
    anyhow::ensure!(files > 0, "--small needs at least one file");
    let dir = tempfile::tempdir()?;
    let nodes = office(dir.path(), 2).await?;
    let (mut shares, mut gets, mut disk) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..files {
        let src = dir.path().join(format!("note-{i}.txt"));
        write_random(&src, FILE)?;
        // The ceiling: the same bytes written and fsynced, nothing else.
        let t = Instant::now();
        let mut copy = std::fs::File::create(dir.path().join("ceiling.txt"))?;
        copy.write_all(&std::fs::read(&src)?)?;
        copy.sync_all()?;
        disk.push(t.elapsed());
        let t = Instant::now();
        let id = nodes[0].share(DEPT, &src, None, None).await?.entry.id;
        shares.push(t.elapsed());
        while nodes[1].file(&id).is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let out = dir.path().join(format!("got-{i}.txt"));
        let t = Instant::now();
        nodes[1].get(&id, &out, None).await?;
        gets.push(t.elapsed());
        anyhow::ensure!(same(&src, &out)?, "file {i} differs");
    }
    let quantile = |v: &mut Vec<Duration>, q: f64| {
        v.sort();
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let ceiling = quantile(&mut disk, 0.5);
    println!(
        "## Files: {files} files of 4 KiB, shared and fetched one at a time
"
    );
    println!("| step | median | p90 | median vs write + fsync (ceiling) |");
    println!("|---|---|---|---|");
    for (what, v) in [
        ("write + fsync the file (ceiling)", &mut disk),
        (
            "share: seal, library record + pin request (flushed)",
            &mut shares,
        ),
        (
            "get: fetch, verify, decrypt, fsync, rename (blob kept, holder record: after)",
            &mut gets,
        ),
    ] {
        let (p50, p90) = (quantile(v, 0.5), quantile(v, 0.9));
        println!(
            "| {what} | {:.2} ms | {:.2} ms | {:.1}× |",
            ms(p50),
            ms(p90),
            ms(p50) / ms(ceiling)
        );
    }
    for n in nodes {
        n.shutdown().await;
    }
    Ok(())
}

/// The folder ceiling: every file of `from` sent over one loopback TCP
/// connection (length-prefixed) and written under `to`, each fsynced.
async fn tcp_copy_tree(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<Duration> {
    let mut files = Vec::new();
    for d in std::fs::read_dir(from)? {
        for f in std::fs::read_dir(d?.path())? {
            files.push(f?.path());
        }
    }
    files.sort();
    let rel: Vec<std::path::PathBuf> = files
        .iter()
        .map(|f| f.strip_prefix(from).map(|p| p.to_path_buf()))
        .collect::<Result<_, _>>()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let to = to.to_path_buf();
    let t = Instant::now();
    let receiver = std::thread::spawn(move || -> anyhow::Result<()> {
        let (sock, _) = listener.accept()?;
        let mut sock = std::io::BufReader::with_capacity(1 << 20, sock);
        for r in rel {
            let mut len = [0u8; 8];
            sock.read_exact(&mut len)?;
            let path = to.join(r);
            std::fs::create_dir_all(path.parent().unwrap_or(&to))?;
            let mut out = std::fs::File::create(&path)?;
            std::io::copy(&mut (&mut sock).take(u64::from_be_bytes(len)), &mut out)?;
            out.sync_all()?;
        }
        Ok(())
    });
    let sender = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut sock =
            std::io::BufWriter::with_capacity(1 << 20, std::net::TcpStream::connect(addr)?);
        for f in files {
            let mut file = std::fs::File::open(&f)?;
            sock.write_all(&file.metadata()?.len().to_be_bytes())?;
            std::io::copy(&mut file, &mut sock)?;
        }
        sock.flush()?;
        Ok(())
    });
    both_done(sender, receiver)?;
    Ok(t.elapsed())
}

/// The ceiling: the same number of bytes from one file into another over a
/// loopback TCP connection, with an fsync at the end.
async fn tcp_copy(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<Duration> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let to = to.to_path_buf();
    let from = from.to_path_buf();
    let t = Instant::now();
    let receiver = std::thread::spawn(move || -> anyhow::Result<()> {
        let (mut sock, _) = listener.accept()?;
        let mut out = std::fs::File::create(&to)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = sock.read(&mut buf)?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
        }
        out.sync_all()?;
        Ok(())
    });
    let sender = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut sock = std::net::TcpStream::connect(addr)?;
        let mut file = std::fs::File::open(from)?;
        std::io::copy(&mut file, &mut sock)?;
        Ok(())
    });
    both_done(sender, receiver)?;
    Ok(t.elapsed())
}

/// Waits for a copy's two ends; the first error either had is the result.
fn both_done(
    sender: std::thread::JoinHandle<anyhow::Result<()>>,
    receiver: std::thread::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    Ok(())
}

fn write_random(path: &std::path::Path, size: u64) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

fn same(a: &std::path::Path, b: &std::path::Path) -> anyhow::Result<bool> {
    let hash = |p: &std::path::Path| -> anyhow::Result<blake3::Hash> {
        let mut h = blake3::Hasher::new();
        h.update_reader(std::fs::File::open(p)?)?;
        Ok(h.finalize())
    };
    Ok(hash(a)? == hash(b)?)
}

/// Peak resident memory of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
