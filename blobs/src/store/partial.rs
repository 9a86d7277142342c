//! A blob being downloaded: its sparse data file, the outboard filled in from
//! the pieces' proofs, and the bitmap of pieces that are safely on disk.
//!
//! **Durability** (the why is in the `store` module docs): pieces are
//! written unsynced ([`Partial::write`]); [`Partial::sync`], or
//! [`Partial::begin_sync`] / [`PendingSync::run`] / [`Partial::end_sync`]
//! without the lock, fsync data and outboard, and only then claim the pieces
//! that sync covered in the bitmap and fsync it. Bits only go from 0 to 1
//! and only for durable pieces, so a torn bitmap write is safe too.
//!
//! Bitmap file: `MWPIECE1`, the blob size (u64 LE), the piece size (u64 LE),
//! then one bit per piece (piece `i` is bit `i % 8` of byte `i / 8`). A
//! bitmap that does not parse, or data and outboard files of the wrong
//! length, make the store drop the download and start it again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bao_tree::io::sync::WriteAt;

use super::sync_dir;
use crate::error::IoContext;
use crate::tree::{self, VerifiedPiece, MAX_BLOB_SIZE, PIECE_SIZE};
use crate::{BlobError, BlobHash};

const MAGIC: &[u8; 8] = b"MWPIECE1";
const HEADER: usize = 24;

/// The files of a partial blob, under `partial/`.
pub(crate) struct PartialPaths {
    pub(crate) data: PathBuf,
    pub(crate) outboard: PathBuf,
    pub(crate) bitmap: PathBuf,
}

impl PartialPaths {
    pub(crate) fn new(partial_dir: &Path, hash: &BlobHash) -> Self {
        let hex = hash.to_hex();
        Self {
            data: partial_dir.join(&hex),
            outboard: partial_dir.join(format!("{hex}.obao")),
            bitmap: partial_dir.join(format!("{hex}.bitmap")),
        }
    }

    /// Removes all three files; missing ones are fine.
    pub(crate) fn remove(&self) -> Result<(), BlobError> {
        // The bitmap first: without it the rest is debris, never a download.
        for path in [&self.bitmap, &self.data, &self.outboard] {
            remove_if_exists(path)?;
        }
        Ok(())
    }
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<(), BlobError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(BlobError::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// An open partial blob. The store keeps one per hash behind a mutex.
pub(crate) struct Partial {
    pub(crate) hash: BlobHash,
    pub(crate) size: u64,
    pub(crate) pieces: u64,
    pub(crate) paths: PartialPaths,
    pub(crate) data: File,
    pub(crate) outboard: File,
    bitmap_file: File,
    /// Pieces written, durable or not.
    present: Vec<u8>,
    present_count: u64,
    /// Pieces claimed in the bitmap file: durable.
    durable: Vec<u8>,
    /// Pieces written since the last sync began, not yet claimed.
    unsynced: Vec<u64>,
    /// Pieces whose sync a thread is running without the lock.
    in_flight: Vec<u64>,
    /// When the last sync began (or the download was opened).
    synced_at: Instant,
    /// Completed or deleted: the files are gone, holders must look again.
    pub(crate) closed: bool,
}

impl Partial {
    /// Starts a download: creates the data and outboard files at their final
    /// lengths (sparse) and, last, an empty bitmap.
    pub(crate) fn create(partial_dir: &Path, hash: BlobHash, size: u64) -> Result<Self, BlobError> {
        if size > MAX_BLOB_SIZE {
            return Err(BlobError::TooLarge {
                size,
                max: MAX_BLOB_SIZE,
            });
        }
        let paths = PartialPaths::new(partial_dir, &hash);
        let pieces = tree::piece_count(size);
        let data = create_sized(&paths.data, size)?;
        let outboard = create_sized(&paths.outboard, tree::tree(size).outboard_size())?;
        let present = vec![0u8; bitmap_len(pieces)];
        let mut bytes = header(size);
        bytes.extend_from_slice(&present);
        let temp = paths.bitmap.with_extension("bitmap.tmp");
        write_synced(&temp, &bytes)?;
        fs::rename(&temp, &paths.bitmap).at("rename into", &paths.bitmap)?;
        sync_dir(partial_dir)?;
        let bitmap_file = open_rw(&paths.bitmap)?;
        Ok(Self {
            hash,
            size,
            pieces,
            paths,
            data,
            outboard,
            bitmap_file,
            durable: present.clone(),
            present,
            present_count: 0,
            unsynced: Vec::new(),
            in_flight: Vec::new(),
            synced_at: Instant::now(),
            closed: false,
        })
    }

    /// Resumes a download from its files; `Ok(None)` if there is no bitmap,
    /// or if it or the files are not what a download leaves (then they are
    /// removed).
    pub(crate) fn load(partial_dir: &Path, hash: BlobHash) -> Result<Option<Self>, BlobError> {
        let paths = PartialPaths::new(partial_dir, &hash);
        let mut bitmap_file = match open_rw(&paths.bitmap) {
            Ok(file) => file,
            Err(BlobError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        // Bounded: a valid bitmap of the largest blob is 512 KiB.
        let limit = (HEADER + bitmap_len(tree::piece_count(MAX_BLOB_SIZE)) + 1) as u64;
        (&mut bitmap_file)
            .take(limit)
            .read_to_end(&mut bytes)
            .at("read", &paths.bitmap)?;
        let Some((size, present)) = parse_bitmap(&bytes) else {
            paths.remove()?;
            return Ok(None);
        };
        let len = |path: &Path| fs::metadata(path).map(|m| m.len()).ok();
        if len(&paths.data) != Some(size)
            || len(&paths.outboard) != Some(tree::tree(size).outboard_size())
        {
            paths.remove()?;
            return Ok(None);
        }
        let data = open_rw(&paths.data)?;
        let outboard = open_rw(&paths.outboard)?;
        let present_count = present.iter().map(|b| u64::from(b.count_ones())).sum();
        Ok(Some(Self {
            hash,
            size,
            pieces: tree::piece_count(size),
            paths,
            data,
            outboard,
            bitmap_file,
            present: present.to_vec(),
            durable: present.to_vec(),
            present_count,
            unsynced: Vec::new(),
            in_flight: Vec::new(),
            synced_at: Instant::now(),
            closed: false,
        }))
    }

    pub(crate) fn has(&self, index: u64) -> bool {
        index < self.pieces && self.present[(index / 8) as usize] & (1 << (index % 8)) != 0
    }

    pub(crate) fn present_count(&self) -> u64 {
        self.present_count
    }

    pub(crate) fn is_full(&self) -> bool {
        self.present_count == self.pieces
    }

    /// Whether a sync is due: at least `every` pieces written since the
    /// last one began, and at least `interval` gone by.
    pub(crate) fn sync_due(&self, every: u64, interval: Duration) -> bool {
        self.unsynced.len() as u64 >= every && self.synced_at.elapsed() >= interval
    }

    pub(crate) fn missing(&self) -> Vec<u64> {
        (0..self.pieces).filter(|&i| !self.has(i)).collect()
    }

    /// Bytes of the pieces present.
    pub(crate) fn present_bytes(&self) -> u64 {
        let mut bytes = self.present_count * PIECE_SIZE;
        let last = self.pieces - 1;
        if self.has(last) {
            // The last piece is shorter (or empty).
            bytes = bytes - PIECE_SIZE + (self.size - last * PIECE_SIZE);
        }
        bytes
    }

    /// Writes a verified piece (unsynced) and marks it present in memory.
    pub(crate) fn write(&mut self, index: u64, piece: &VerifiedPiece) -> Result<(), BlobError> {
        let mut ob = tree::outboard(self.hash, self.size, &mut self.outboard);
        piece
            .write_to(&mut self.data, &mut ob)
            .at("write", &self.paths.data)?;
        self.present[(index / 8) as usize] |= 1 << (index % 8);
        self.present_count += 1;
        self.unsynced.push(index);
        Ok(())
    }

    /// Makes every piece written so far durable, then claims it in the
    /// bitmap; under the lock.
    pub(crate) fn sync(&mut self) -> Result<(), BlobError> {
        if self.unsynced.is_empty() && self.in_flight.is_empty() {
            return Ok(());
        }
        self.synced_at = Instant::now();
        self.data.sync_data().at("sync", &self.paths.data)?;
        self.outboard.sync_data().at("sync", &self.paths.outboard)?;
        // This sync covers the pieces another thread is syncing too.
        let mut pieces = std::mem::take(&mut self.unsynced);
        pieces.append(&mut self.in_flight);
        self.claim(&pieces)
    }

    /// Starts a sync that runs without the lock, so that other threads keep
    /// writing pieces meanwhile: `None` if one is running or nothing is new.
    /// Hand the result of [`PendingSync::run`] to [`end_sync`](Self::end_sync).
    pub(crate) fn begin_sync(&mut self) -> Result<Option<PendingSync>, BlobError> {
        if self.unsynced.is_empty() || !self.in_flight.is_empty() {
            return Ok(None);
        }
        let data = self.data.try_clone().at("open", &self.paths.data)?;
        let outboard = self.outboard.try_clone().at("open", &self.paths.outboard)?;
        self.in_flight = std::mem::take(&mut self.unsynced);
        self.synced_at = Instant::now();
        Ok(Some(PendingSync {
            data,
            outboard,
            data_path: self.paths.data.clone(),
            outboard_path: self.paths.outboard.clone(),
        }))
    }

    /// Claims the pieces of a sync that succeeded; after a failure they wait
    /// for the next one.
    pub(crate) fn end_sync(&mut self, synced: Result<(), BlobError>) -> Result<(), BlobError> {
        if self.closed {
            return Ok(());
        }
        let pieces = std::mem::take(&mut self.in_flight);
        match synced {
            Ok(()) => self.claim(&pieces),
            Err(e) => {
                self.unsynced.extend(pieces);
                Err(e)
            }
        }
    }

    /// Sets durable pieces' bits in the bitmap file and syncs it.
    fn claim(&mut self, pieces: &[u64]) -> Result<(), BlobError> {
        let (Some(&lo), Some(&hi)) = (pieces.iter().min(), pieces.iter().max()) else {
            return Ok(());
        };
        for &index in pieces {
            self.durable[(index / 8) as usize] |= 1 << (index % 8);
            drop_cached(&self.data, self.size, index);
        }
        let (lo, hi) = ((lo / 8) as usize, (hi / 8) as usize);
        self.bitmap_file
            .write_all_at((HEADER + lo) as u64, &self.durable[lo..=hi])
            .at("write", &self.paths.bitmap)?;
        self.bitmap_file.sync_data().at("sync", &self.paths.bitmap)
    }
}

/// The data and outboard of a download, to be synced without its lock.
pub(crate) struct PendingSync {
    data: File,
    outboard: File,
    data_path: PathBuf,
    outboard_path: PathBuf,
}

impl PendingSync {
    /// Syncs every write made before [`Partial::begin_sync`] returned (and
    /// maybe some after; those are claimed by a later sync).
    pub(crate) fn run(self) -> Result<(), BlobError> {
        self.data.sync_data().at("sync", &self.data_path)?;
        self.outboard.sync_data().at("sync", &self.outboard_path)
    }
}

/// Lets the kernel drop piece `index`'s durable (so clean) data from the
/// page cache (see the `store` module's docs, "Page cache").
fn drop_cached(data: &File, size: u64, index: u64) {
    let start = index * PIECE_SIZE;
    let len = PIECE_SIZE.min(size.saturating_sub(start));
    if let Some(len) = std::num::NonZeroU64::new(len) {
        // Advice only: if it is not taken, the pages just stay cached.
        let _ = rustix::fs::fadvise(data, start, Some(len), rustix::fs::Advice::DontNeed);
    }
}

fn bitmap_len(pieces: u64) -> usize {
    pieces.div_ceil(8) as usize
}

fn header(size: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&size.to_le_bytes());
    bytes.extend_from_slice(&PIECE_SIZE.to_le_bytes());
    bytes
}

/// The size and bits of a bitmap file, if it is one.
fn parse_bitmap(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (head, bits) = bytes.split_at_checked(HEADER)?;
    let size = u64::from_le_bytes(head[8..16].try_into().ok()?);
    let piece_size = u64::from_le_bytes(head[16..24].try_into().ok()?);
    if &head[..8] != MAGIC || piece_size != PIECE_SIZE || size > MAX_BLOB_SIZE {
        return None;
    }
    let pieces = tree::piece_count(size);
    if bits.len() != bitmap_len(pieces) {
        return None;
    }
    // Bits past the last piece must be clear.
    let used = pieces % 8;
    if used != 0 && bits.last().is_some_and(|b| b >> used != 0) {
        return None;
    }
    Some((size, bits))
}

fn open_rw(path: &Path) -> Result<File, BlobError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .at("open", path)
}

fn create_sized(path: &Path, len: u64) -> Result<File, BlobError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .at("create", path)?;
    file.set_len(len).at("size", path)?;
    Ok(file)
}

pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BlobError> {
    let mut file = File::create(path).at("create", path)?;
    file.write_all(bytes).at("write", path)?;
    file.sync_all().at("sync", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_parsing_refuses_junk() {
        let pieces = tree::piece_count(PIECE_SIZE * 9 + 1); // 10 pieces, 2 bytes
        let size = PIECE_SIZE * 9 + 1;
        let mut good = header(size);
        good.extend_from_slice(&[0xff, 0x03]);
        assert_eq!(
            parse_bitmap(&good).map(|(s, b)| (s, b.len())),
            Some((size, 2))
        );
        assert_eq!(pieces, 10);

        let mut stray_bit = good.clone();
        stray_bit[HEADER + 1] = 0x07;
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        let mut huge = header(MAX_BLOB_SIZE + 1);
        huge.extend_from_slice(&[0, 0]);
        for bad in [
            &good[..HEADER + 1],
            &good[..5],
            &stray_bit,
            &bad_magic,
            &huge,
        ] {
            assert!(parse_bitmap(bad).is_none());
        }
    }
}
