//! Helpers shared by the integration tests.
#![allow(dead_code, missing_docs)]

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use meshwork_blobs::{seal, BlobStore, SealedBlob};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// A seeded generator; the seed is printed so a failure can be replayed with
/// `MESHWORK_TEST_SEED=<seed>`.
pub fn rng(test: &str, default: u64) -> StdRng {
    let seed = std::env::var("MESHWORK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    println!("{test}: seed {seed} (MESHWORK_TEST_SEED={seed} to replay)");
    StdRng::seed_from_u64(seed)
}

pub fn bytes(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    data
}

pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: BlobStore,
}

impl TestStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs")).unwrap();
        TestStore { dir, store }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("blobs")
    }

    pub fn reopen(self) -> Self {
        let TestStore { dir, store } = self;
        drop(store);
        let store = BlobStore::open(dir.path().join("blobs")).unwrap();
        TestStore { dir, store }
    }

    pub fn seal(&self, plaintext: &[u8]) -> SealedBlob {
        seal(&self.store, plaintext).unwrap()
    }
}

/// A reader that hands out its bytes in random short reads.
pub struct Dribble<'a> {
    pub data: &'a [u8],
    pub rng: StdRng,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .rng
            .gen_range(0..=buf.len().min(self.data.len()).min(70_000));
        if n == 0 && !self.data.is_empty() && !buf.is_empty() {
            return Err(io::ErrorKind::Interrupted.into());
        }
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Every file under `dir`, recursively.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}
