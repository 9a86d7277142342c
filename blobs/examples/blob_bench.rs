//! Throughput of sealing, opening and moving a blob piece by piece, beside
//! same-run ceilings, and the process's peak memory after each step.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-blobs cargo run --release -p meshwork-blobs \
//!     --example blob_bench -- [SIZE_MIB]      # default 1024
//! ```
//!
//! Works in a temporary directory (`BLOB_BENCH_DIR` to choose where;
//! `BLOB_BENCH_SYNC_EVERY` sets the downloads' sync interval). The
//! source file is written first and is then in the page cache, for the
//! ceilings and for the real steps alike. Every step that writes a file ends
//! with its fsync, as the store does.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use meshwork_blobs::{open, open_to_path, piece_count, seal, BlobStore};
use rand::{RngCore, SeedableRng};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

const MIB: u64 = 1 << 20;

fn main() -> Result<()> {
    let size_mib: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().context("SIZE_MIB must be a number")?,
        None => 1024,
    };
    let size = size_mib * MIB;
    let base = match std::env::var_os("BLOB_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let dir = base.path();
    println!("blob_bench: {size_mib} MiB in {}", dir.display());

    let source = dir.join("source.bin");
    write_source(&source, size)?;
    let mut rows = Vec::new();
    rows.push(Row::new("(source file written)", size, 0.0));

    // Ceilings.
    let t = Instant::now();
    copy_file(&source, &dir.join("copy.bin"))?;
    rows.push(Row::new(
        "ceiling: raw copy (read + write + fsync)",
        size,
        secs(t),
    ));
    fs::remove_file(dir.join("copy.bin"))?;

    let t = Instant::now();
    let hash = hash_file(&source)?;
    rows.push(Row::new(
        "ceiling: raw BLAKE3 of the file, 1 thread",
        size,
        secs(t),
    ));

    for (cipher, name) in [
        (
            Cipher::XChaCha20Poly1305,
            "ceiling: raw XChaCha20-Poly1305 (format 1), 64 KiB",
        ),
        (
            Cipher::Aes256Gcm,
            "ceiling: raw AES-256-GCM (format 2), 64 KiB",
        ),
    ] {
        let t = Instant::now();
        encrypt_file(&source, cipher)?;
        rows.push(Row::new(name, size, secs(t)));
    }

    // The store.
    let sync_every = match std::env::var("BLOB_BENCH_SYNC_EVERY") {
        Ok(n) => n
            .parse()
            .context("BLOB_BENCH_SYNC_EVERY must be a number")?,
        Err(_) => meshwork_blobs::store::DEFAULT_SYNC_EVERY,
    };
    let a = BlobStore::open(dir.join("a"))?;
    let t = Instant::now();
    let sealed = seal(&a, File::open(&source)?)?;
    rows.push(Row::new(
        "seal (encrypt + hash + outboard + write + fsync)",
        size,
        secs(t),
    ));

    let t = Instant::now();
    let n = open(&a, &sealed.hash, &sealed.key, io::sink())?;
    anyhow::ensure!(n == size, "open returned {n} bytes");
    rows.push(Row::new(
        "open to nowhere (read + verify + decrypt)",
        size,
        secs(t),
    ));

    let dest = dir.join("opened.bin");
    let t = Instant::now();
    open_to_path(&a, &sealed.hash, &sealed.key, &dest)?;
    rows.push(Row::new(
        "open_to_path (+ write + fsync + rename)",
        size,
        secs(t),
    ));
    anyhow::ensure!(
        hash_file(&dest)? == hash,
        "the opened file differs from the source"
    );
    fs::remove_file(&dest)?;

    let pieces = piece_count(sealed.size);
    for threads in [1, 2] {
        // Each thread reads its share of the pieces from A and writes them
        // into B, as downloads from several peers would.
        let b = BlobStore::open(dir.join(format!("b{threads}")))?.with_sync_every(sync_every);
        let t = Instant::now();
        std::thread::scope(|s| -> Result<()> {
            let workers: Vec<_> = (0..threads)
                .map(|w| {
                    let (a, b, sealed) = (&a, &b, &sealed);
                    s.spawn(move || -> Result<()> {
                        for index in (w..pieces).step_by(threads as usize) {
                            let piece = a.read_piece(&sealed.hash, index)?;
                            b.write_piece(&sealed.hash, sealed.size, index, piece.as_bytes())?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for worker in workers {
                worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
            }
            Ok(())
        })?;
        let name = if threads == 1 {
            "pieces A -> B, 1 thread (read+verify, verify+write)"
        } else {
            "pieces A -> B, 2 threads"
        };
        rows.push(Row::new(name, sealed.size, secs(t)));
        anyhow::ensure!(b.has(&sealed.hash)?, "B did not complete the blob");
        if threads == 2 {
            let t = Instant::now();
            let n = open(&b, &sealed.hash, &sealed.key, io::sink())?;
            anyhow::ensure!(n == size);
            rows.push(Row::new(
                "open the copy in B (read + verify + decrypt)",
                size,
                secs(t),
            ));
        }
        drop(b);
        fs::remove_dir_all(dir.join(format!("b{threads}")))?;
    }

    println!();
    println!("{:<54} {:>10} {:>14}", "step", "MB/s", "peak RSS MiB");
    println!("{}", "-".repeat(80));
    for row in rows {
        let speed = if row.secs > 0.0 {
            format!("{:.0}", row.bytes as f64 / row.secs / 1e6)
        } else {
            "-".to_owned()
        };
        println!(
            "{:<54} {:>10} {:>14.1}",
            row.name,
            speed,
            row.peak_kib as f64 / 1024.0
        );
    }
    println!();
    println!(
        "blob {} bytes, {pieces} pieces, outboard {} bytes",
        sealed.size,
        fs::metadata(dir.join("a").join(format!("{}.obao", sealed.hash)))?.len()
    );
    Ok(())
}

struct Row {
    name: &'static str,
    bytes: u64,
    secs: f64,
    /// VmHWM right after the step: the process's peak so far.
    peak_kib: u64,
}

impl Row {
    fn new(name: &'static str, bytes: u64, secs: f64) -> Self {
        Row {
            name,
            bytes,
            secs,
            peak_kib: peak_rss_kib(),
        }
    }
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Seeded pseudo-random bytes, 1 MiB at a time.
fn write_source(path: &Path, size: u64) -> Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xb10b);
    let mut file = File::create(path)?;
    let mut buf = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        let n = left.min(MIB) as usize;
        rng.fill_bytes(&mut buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let mut src = File::open(from)?;
    let mut dst = File::create(to)?;
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n])?;
    }
    dst.sync_all()?;
    Ok(())
}

fn hash_file(path: &Path) -> Result<blake3::Hash> {
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buf[..n]);
    }
}

/// The two ciphers of the blob formats, bare.
#[derive(Clone, Copy)]
enum Cipher {
    /// Format 1's.
    XChaCha20Poly1305,
    /// Format 2's, through ring.
    Aes256Gcm,
}

/// Encrypts the file in 64 KiB chunks, as sealing does, and throws the
/// ciphertext away.
fn encrypt_file(path: &Path, cipher: Cipher) -> Result<()> {
    let xchacha = XChaCha20Poly1305::new(&[7u8; 32].into());
    let aes = UnboundKey::new(&AES_256_GCM, &[7u8; 32])
        .map_err(|_| anyhow::anyhow!("AES-256-GCM refused a 256-bit key"))?;
    let aes = LessSafeKey::new(aes);
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; MIB as usize];
    let mut chunk = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        for part in buf[..n].chunks_mut(64 * 1024) {
            let sealed = match cipher {
                Cipher::XChaCha20Poly1305 => {
                    let mut nonce = [0u8; 24];
                    nonce[16..].copy_from_slice(&chunk.to_le_bytes());
                    xchacha
                        .encrypt_in_place_detached(XNonce::from_slice(&nonce), b"ad", part)
                        .is_ok()
                }
                Cipher::Aes256Gcm => {
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&chunk.to_le_bytes());
                    let nonce = Nonce::assume_unique_for_key(nonce);
                    aes.seal_in_place_separate_tag(nonce, Aad::from(b"ad"), part)
                        .is_ok()
                }
            };
            anyhow::ensure!(sealed, "encryption failed");
            chunk += 1;
        }
    }
}
