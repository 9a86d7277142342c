//! [`BlobStore`]: complete blobs, downloads in progress, and housekeeping.
//!
//! Layout of a home's `blobs/` directory:
//!
//! ```text
//! blobs/
//!   <hash>                 complete blob: the ciphertext (64 hex digits)
//!   <hash>.obao            its bao-tree outboard: 64-byte hash pairs, post-order
//!   partial/
//!     <hash>               download in progress: sparse, final length
//!     <hash>.obao          its outboard, filled in from the pieces' proofs
//!     <hash>.bitmap        pieces durably written (see below)
//!     import-<rand>.tmp    a blob being sealed; removed when the store opens
//!     import-<rand>.obao.tmp
//! ```
//!
//! A blob is complete exactly when `<hash>` exists: it is renamed into place
//! last, after its outboard, with both files synced before and the directory
//! after. `delete` removes it first. Opening the store finishes downloads a
//! crash interrupted between those renames and removes debris.
//!
//! **Downloads and fsync.** The bitmap only ever claims pieces whose data and
//! hash pairs are on disk: pieces are written without syncing; every
//! [`sync_every`](BlobStore::with_sync_every) pieces, at most once per
//! [`sync_interval`](BlobStore::with_sync_interval) (and at completion,
//! [`flush`](BlobStore::flush) and drop) the data and outboard files are
//! fsynced *first*, and only then are the bits of the pieces that sync covered
//! written into the bitmap, which is fsynced in turn. A crash loses at most
//! the pieces since the last sync — they are fetched again — and never makes
//! a hole look filled. That is three fsyncs per 64 pieces (16 MiB) instead of
//! per piece, and the periodic one runs without the download's lock, so other
//! threads keep writing pieces while the disk catches up.
//!
//! One process owns a store directory at a time (the node's home lock); in
//! that process, a `BlobStore` is `Sync` and its methods can run on many
//! threads at once.

mod import;
mod partial;
mod pieces;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::error::IoContext;
use crate::{BlobError, BlobHash};
pub use import::Import;
use partial::{remove_if_exists, Partial, PartialPaths};
pub use pieces::{EncodedPiece, PieceStatus, Progress};

/// How long before a listing the directory must have last changed for the
/// listing to be kept ([`BlobStore::list`]): well over the granularity of
/// any file system's timestamps, so that a change in the same tick as the
/// listing cannot go unseen.
pub const LISTING_SETTLED: Duration = Duration::from_secs(3);

/// Pieces written between two syncs of a download, by default (16 MiB).
pub const DEFAULT_SYNC_EVERY: u64 = 64;

/// The blobs of one home: complete ones, and downloads in progress.
pub struct BlobStore {
    dir: PathBuf,
    partial_dir: PathBuf,
    /// Open downloads. Lock order: this map, released, then one partial; or
    /// a partial, then this map (to remove it). Never a partial while holding
    /// the map.
    partials: Mutex<HashMap<BlobHash, Arc<Mutex<Partial>>>>,
    sync_every: u64,
    sync_interval: Duration,
    /// The last listing of complete blobs ([`Self::list`]).
    listing: Mutex<Option<Listing>>,
}

/// The complete blobs as the directory last listed them, and its
/// modification time then. Any blob renamed into place or removed, by this
/// store or by hand, changes that time; while it stands, so does the list.
struct Listing {
    changed: SystemTime,
    blobs: Vec<BlobHash>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore").field("dir", &self.dir).finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves only in-memory state that the
    // files can rebuild; keep going rather than poison every later call.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BlobStore {
    /// Opens (creating if needed) the store in `dir`, finishing downloads that
    /// a crash interrupted while completing and removing debris.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, BlobError> {
        let dir = dir.as_ref().to_owned();
        let partial_dir = dir.join("partial");
        fs::create_dir_all(&partial_dir).at("create", &partial_dir)?;
        let store = Self {
            dir,
            partial_dir,
            partials: Mutex::new(HashMap::new()),
            sync_every: DEFAULT_SYNC_EVERY,
            sync_interval: Duration::ZERO,
            listing: Mutex::new(None),
        };
        store.recover()?;
        Ok(store)
    }

    /// Syncs downloads every `pieces` pieces instead of
    /// [`DEFAULT_SYNC_EVERY`] (1 = every piece).
    pub fn with_sync_every(mut self, pieces: u64) -> Self {
        self.sync_every = pieces.max(1);
        self
    }

    /// Syncs downloads no more often than every `interval` (and every
    /// [`with_sync_every`](Self::with_sync_every) pieces): on a fast link
    /// the disk then writes a download's ciphertext once, at completion,
    /// instead of alongside the plaintext a reader is writing. A crash loses
    /// at most `interval`'s worth of pieces. No interval by default.
    pub fn with_sync_interval(mut self, interval: Duration) -> Self {
        self.sync_interval = interval;
        self
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn data_path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join(hash.to_hex())
    }

    fn outboard_path(&self, hash: &BlobHash) -> PathBuf {
        self.dir.join(format!("{}.obao", hash.to_hex()))
    }

    /// True if the blob is complete in the store.
    pub fn has(&self, hash: &BlobHash) -> Result<bool, BlobError> {
        Ok(self.size(hash)?.is_some())
    }

    /// The size of a complete blob.
    pub fn size(&self, hash: &BlobHash) -> Result<Option<u64>, BlobError> {
        let path = self.data_path(hash);
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(_) => Err(BlobError::io(
                "open",
                &path,
                io::Error::other("not a regular file"),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BlobError::io("stat", &path, e)),
        }
    }

    /// The complete blobs, in no particular order.
    ///
    /// Read from the directory only when it changed since the last listing
    /// (its modification time tells): a pin node's keeper asks every 30 s,
    /// and reading a directory costs what it ever held, not what it holds —
    /// ext4 never shrinks one. A pin node's, with 4,000 blobs live and a
    /// thousand coming and going a day, reached 1.6 MB within a simulated
    /// month, and each read of it cost milliseconds of CPU (BENCHMARKS.md,
    /// "The year, with ascending ids").
    pub fn list(&self) -> Result<Vec<BlobHash>, BlobError> {
        let mut listing = lock(&self.listing);
        let changed = fs::metadata(&self.dir)
            .and_then(|m| m.modified())
            .at("stat", &self.dir)?;
        if let Some(last) = listing.as_ref().filter(|l| l.changed == changed) {
            return Ok(last.blobs.clone());
        }
        let began = SystemTime::now();
        let blobs = self.read_listing()?;
        // A change within the same tick of the file system's clock as one
        // before this reading would leave the time as it is: keep only a
        // listing of a directory that had been still for a while.
        let settled = began
            .duration_since(changed)
            .is_ok_and(|still| still >= LISTING_SETTLED);
        *listing = settled.then(|| Listing {
            changed,
            blobs: blobs.clone(),
        });
        Ok(blobs)
    }

    fn read_listing(&self) -> Result<Vec<BlobHash>, BlobError> {
        let mut hashes = Vec::new();
        for entry in fs::read_dir(&self.dir).at("list", &self.dir)? {
            let entry = entry.at("list", &self.dir)?;
            let Some(hash) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if entry.file_type().at("stat", &entry.path())?.is_file() {
                hashes.push(hash);
            }
        }
        Ok(hashes)
    }

    /// The downloads in progress, in no particular order.
    pub fn list_partial(&self) -> Result<Vec<BlobHash>, BlobError> {
        let mut hashes = Vec::new();
        for entry in fs::read_dir(&self.partial_dir).at("list", &self.partial_dir)? {
            let entry = entry.at("list", &self.partial_dir)?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".bitmap")) else {
                continue;
            };
            if let Ok(hash) = hex.parse() {
                hashes.push(hash);
            }
        }
        Ok(hashes)
    }

    /// Removes a blob, complete or partial; returns whether there was one.
    pub fn delete(&self, hash: &BlobHash) -> Result<bool, BlobError> {
        // A download first, so that it cannot complete behind our back.
        let mut existed = self.discard_partial(hash)?;
        let data = self.data_path(hash);
        if fs::metadata(&data).is_ok() {
            existed = true;
            // The data before the outboard: from here on the blob is gone.
            remove_if_exists(&data)?;
        }
        remove_if_exists(&self.outboard_path(hash))?;
        Ok(existed)
    }

    /// Bytes on disk for quotas: complete blobs with their outboards, plus the
    /// pieces present of downloads.
    pub fn total_bytes(&self) -> Result<u64, BlobError> {
        let mut total = 0;
        for entry in fs::read_dir(&self.dir).at("list", &self.dir)? {
            let entry = entry.at("list", &self.dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let hex = name.strip_suffix(".obao").unwrap_or(name);
            if hex.parse::<BlobHash>().is_err() {
                continue;
            }
            let meta = entry.metadata().at("stat", &entry.path())?;
            if meta.is_file() {
                total += meta.len();
            }
        }
        for hash in self.list_partial()? {
            if let Some(partial) = self.partial(&hash, None)? {
                total += lock(&partial).present_bytes();
            }
        }
        Ok(total)
    }

    /// The data file of a complete blob, its path and size.
    pub(crate) fn open_data(&self, hash: &BlobHash) -> Result<(File, PathBuf, u64), BlobError> {
        let path = self.data_path(hash);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound(*hash))
            }
            Err(e) => return Err(BlobError::io("open", &path, e)),
        };
        let meta = file.metadata().at("stat", &path)?;
        if !meta.is_file() {
            return Err(BlobError::io(
                "open",
                &path,
                io::Error::other("not a regular file"),
            ));
        }
        Ok((file, path, meta.len()))
    }

    /// Opening: remove interrupted imports and stray files, finish downloads
    /// that were complete but not yet moved into place.
    fn recover(&self) -> Result<(), BlobError> {
        for entry in fs::read_dir(&self.partial_dir).at("list", &self.partial_dir)? {
            let entry = entry.at("list", &self.partial_dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(".tmp") {
                remove_if_exists(&entry.path())?;
                continue;
            }
            let hex = name.split('.').next().unwrap_or(name);
            let Ok(hash) = hex.parse::<BlobHash>() else {
                continue;
            };
            let paths = PartialPaths::new(&self.partial_dir, &hash);
            if self.has(&hash)? || !paths.bitmap.exists() {
                // Left over after completion, or a download that never got
                // its bitmap: debris.
                paths.remove()?;
                continue;
            }
            if name.ends_with(".bitmap") {
                // Cut between the two renames of `complete`: the outboard
                // went ahead; bring it back so the download loads whole.
                let moved = self.outboard_path(&hash);
                if !paths.outboard.exists() && moved.exists() {
                    fs::rename(&moved, &paths.outboard).at("rename into", &paths.outboard)?;
                }
                if let Some(mut partial) = Partial::load(&self.partial_dir, hash)? {
                    if partial.is_full() {
                        self.complete(&mut partial)?;
                    }
                }
            }
        }
        // An outboard without its data: a delete or a completion cut short
        // (a completion still has its partial data, finished above).
        for entry in fs::read_dir(&self.dir).at("list", &self.dir)? {
            let entry = entry.at("list", &self.dir)?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".obao")) else {
                continue;
            };
            let Ok(hash) = hex.parse::<BlobHash>() else {
                continue;
            };
            if !self.has(&hash)? {
                remove_if_exists(&entry.path())?;
            }
        }
        Ok(())
    }
}

impl Drop for BlobStore {
    fn drop(&mut self) {
        // Best effort: what is not flushed is fetched again.
        let _ = self.flush();
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Makes renames and creations in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all()).at("sync", dir)?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
