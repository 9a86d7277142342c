//! Moving blobs piece by piece: serving pieces, and downloads that take
//! verified pieces in any order and complete atomically.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::partial::{Partial, PartialPaths};
use super::{lock, remove_if_exists, sync_dir, BlobStore};
use crate::error::IoContext;
use crate::tree::{self, MAX_BLOB_SIZE};
use crate::{BlobError, BlobHash, PieceError};

/// A piece encoded for the wire: the piece's bytes with the hash pairs that
/// prove them against the blob's hash (a bao-tree range encoding). Its length
/// is exactly [`encoded_piece_len`](crate::encoded_piece_len).
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedPiece(Vec<u8>);

impl EncodedPiece {
    /// Wraps bytes received from a peer (checked by
    /// [`BlobStore::write_piece`], not here).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The encoding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The encoding, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl std::fmt::Debug for EncodedPiece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncodedPiece({} bytes)", self.0.len())
    }
}

/// How far a download is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The blob's size in bytes.
    pub size: u64,
    /// Its number of pieces.
    pub pieces: u64,
    /// Pieces present (all of them once the blob is complete).
    pub present: u64,
}

impl Progress {
    /// The bytes of the pieces present (at most a piece more than the
    /// blob's data: the last piece is shorter).
    pub fn present_bytes(&self) -> u64 {
        self.present.saturating_mul(crate::PIECE_SIZE)
    }

    /// True once every piece is present.
    pub fn is_complete(&self) -> bool {
        self.present == self.pieces
    }
}

/// What [`BlobStore::write_piece`] did with a valid piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceStatus {
    /// Written; the blob still misses pieces.
    Stored,
    /// The store already had this piece (or the whole blob): nothing written.
    Duplicate,
    /// It was the last missing piece: the blob is now complete.
    Completed,
    /// It was the last missing piece of a download written with
    /// [`write_piece_data`](BlobStore::write_piece_data): every piece is
    /// here, and [`finish_download`](BlobStore::finish_download) completes
    /// the blob.
    Full,
}

impl BlobStore {
    /// Encodes piece `index` of a blob for a peer: from the complete blob, or
    /// from a download that has that piece. The data is checked against the
    /// outboard on the way out.
    pub fn read_piece(&self, hash: &BlobHash, index: u64) -> Result<EncodedPiece, BlobError> {
        match self.open_data(hash) {
            Ok((data, path, size)) => {
                let pieces = tree::piece_count(size);
                if index >= pieces {
                    return Err(BlobError::NoSuchPiece {
                        hash: *hash,
                        index,
                        pieces,
                    });
                }
                let ob_path = self.outboard_path(hash);
                let outboard = File::open(&ob_path).at("open", &ob_path)?;
                let ob_len = outboard.metadata().at("stat", &ob_path)?.len();
                if ob_len != tree::tree(size).outboard_size() {
                    return Err(BlobError::Corrupt {
                        hash: *hash,
                        reason: "its outboard has the wrong length",
                    });
                }
                encode(*hash, size, index, &data, &outboard, &path)
            }
            Err(BlobError::NotFound(_)) => {
                let partial = self
                    .partial(hash, None)?
                    .ok_or(BlobError::NotFound(*hash))?;
                let partial = lock(&partial);
                if partial.closed {
                    // Completed or deleted meanwhile: look again.
                    drop(partial);
                    return self.read_piece_complete_only(hash, index);
                }
                if !partial.has(index) {
                    return Err(BlobError::NoSuchPiece {
                        hash: *hash,
                        index,
                        pieces: partial.pieces,
                    });
                }
                encode(
                    *hash,
                    partial.size,
                    index,
                    &partial.data,
                    &partial.outboard,
                    &partial.paths.data,
                )
            }
            Err(e) => Err(e),
        }
    }

    fn read_piece_complete_only(
        &self,
        hash: &BlobHash,
        index: u64,
    ) -> Result<EncodedPiece, BlobError> {
        if self.has(hash)? {
            self.read_piece(hash, index)
        } else {
            Err(BlobError::NotFound(*hash))
        }
    }

    /// Starts (or looks up) the download of blob `hash` of `size` bytes.
    /// Like the hash, the size must come from the file's entry, not a peer.
    pub fn prepare(&self, hash: &BlobHash, size: u64) -> Result<Progress, PieceError> {
        if let Some(known) = self.size(hash)? {
            return if known == size {
                let pieces = tree::piece_count(size);
                Ok(Progress {
                    size,
                    pieces,
                    present: pieces,
                })
            } else {
                Err(PieceError::SizeMismatch {
                    hash: *hash,
                    known,
                    claimed: size,
                })
            };
        }
        let partial = self.partial(hash, Some(size))?;
        let partial = partial.ok_or(BlobError::NotFound(*hash))?;
        let partial = lock(&partial);
        if partial.size != size {
            return Err(PieceError::SizeMismatch {
                hash: *hash,
                known: partial.size,
                claimed: size,
            });
        }
        Ok(Progress {
            size,
            pieces: partial.pieces,
            present: partial.present_count(),
        })
    }

    /// Verifies a piece from a peer against `hash` and, if it is valid,
    /// writes it into the download (started if needed), in any order. The
    /// last missing piece completes the blob: it moves into place atomically.
    ///
    /// `size` must come from the file's entry, like the hash. A bad piece
    /// is refused before anything is written ([`PieceError::is_peer_fault`]).
    pub fn write_piece(
        &self,
        hash: &BlobHash,
        size: u64,
        index: u64,
        encoded: &[u8],
    ) -> Result<PieceStatus, PieceError> {
        self.write_piece_keeping(hash, size, index, encoded, false)
            .map(|(status, _)| status)
    }

    /// [`write_piece`](Self::write_piece), also returning the piece's bytes
    /// of the blob (what a reader following the download wants next,
    /// without reading it back). The last missing piece does not complete
    /// the blob: it says [`PieceStatus::Full`], so that the reader can
    /// finish with it while [`finish_download`](Self::finish_download)
    /// syncs the blob and moves it into place.
    pub fn write_piece_data(
        &self,
        hash: &BlobHash,
        size: u64,
        index: u64,
        encoded: &[u8],
    ) -> Result<(PieceStatus, Vec<u8>), PieceError> {
        self.write_piece_keeping(hash, size, index, encoded, true)
    }

    fn write_piece_keeping(
        &self,
        hash: &BlobHash,
        size: u64,
        index: u64,
        encoded: &[u8],
        keep: bool,
    ) -> Result<(PieceStatus, Vec<u8>), PieceError> {
        if size > MAX_BLOB_SIZE {
            return Err(BlobError::TooLarge {
                size,
                max: MAX_BLOB_SIZE,
            }
            .into());
        }
        // The size the store knows wins over the one given, before the piece
        // is even looked at: a mismatch is our caller's, not the peer's.
        if let Some(known) = self.progress(hash)? {
            if known.size != size {
                return Err(PieceError::SizeMismatch {
                    hash: *hash,
                    known: known.size,
                    claimed: size,
                });
            }
        }
        let piece = tree::verify_piece(*hash, size, index, encoded)?;
        let data = if keep { piece.data() } else { Vec::new() };
        let status = self.write_verified(hash, size, index, &piece, !keep)?;
        Ok((status, data))
    }

    /// Completes a download whose every piece is here (after
    /// [`PieceStatus::Full`]): syncs it and moves it into place. Does nothing
    /// if the blob is complete already; fails if a piece is missing.
    pub fn finish_download(&self, hash: &BlobHash) -> Result<(), BlobError> {
        loop {
            if self.size(hash)?.is_some() {
                return Ok(());
            }
            let Some(open) = self.partial(hash, None)? else {
                return Err(BlobError::NotFound(*hash));
            };
            let mut partial = lock(&open);
            if partial.closed {
                continue; // completed or deleted meanwhile: look again
            }
            if !partial.is_full() {
                return Err(BlobError::Incomplete { hash: *hash });
            }
            return self.complete(&mut partial);
        }
    }

    fn write_verified(
        &self,
        hash: &BlobHash,
        size: u64,
        index: u64,
        piece: &tree::VerifiedPiece,
        complete: bool,
    ) -> Result<PieceStatus, PieceError> {
        loop {
            if let Some(known) = self.size(hash)? {
                return if known == size {
                    Ok(PieceStatus::Duplicate)
                } else {
                    Err(PieceError::SizeMismatch {
                        hash: *hash,
                        known,
                        claimed: size,
                    })
                };
            }
            let Some(open) = self.partial(hash, Some(size))? else {
                continue; // completed meanwhile
            };
            let mut partial = lock(&open);
            if partial.closed {
                continue; // completed or deleted meanwhile: look again
            }
            if partial.size != size {
                return Err(PieceError::SizeMismatch {
                    hash: *hash,
                    known: partial.size,
                    claimed: size,
                });
            }
            let duplicate = partial.has(index);
            if !duplicate {
                partial.write(index, piece)?;
            }
            if partial.is_full() {
                if !complete {
                    return Ok(if duplicate {
                        PieceStatus::Duplicate
                    } else {
                        PieceStatus::Full
                    });
                }
                // Also retries a completion that failed (full disk, say).
                self.complete(&mut partial)?;
                return Ok(PieceStatus::Completed);
            }
            if duplicate {
                return Ok(PieceStatus::Duplicate);
            }
            if partial.sync_due(self.sync_every, self.sync_interval) {
                if let Some(pending) = partial.begin_sync()? {
                    drop(partial);
                    let synced = pending.run();
                    lock(&open).end_sync(synced)?;
                }
            }
            return Ok(PieceStatus::Stored);
        }
    }

    /// The data file of blob `hash`, complete or being downloaded (started
    /// with [`prepare`](Self::prepare)), and where it is now. A reader
    /// follows a download with it, reading each piece once the download has
    /// written it; the handle stays valid when the download completes and
    /// its file moves into place.
    pub fn data_file(&self, hash: &BlobHash) -> Result<(File, PathBuf), BlobError> {
        loop {
            let Some(open) = self.partial(hash, None)? else {
                return self.open_data(hash).map(|(file, path, _)| (file, path));
            };
            let partial = lock(&open);
            if partial.closed {
                continue; // completed or deleted meanwhile: look again
            }
            let path = partial.paths.data.clone();
            return Ok((partial.data.try_clone().at("open", &path)?, path));
        }
    }

    /// How far the download of `hash` is; `None` if the store knows nothing
    /// of it. A complete blob has every piece.
    pub fn progress(&self, hash: &BlobHash) -> Result<Option<Progress>, BlobError> {
        if let Some(size) = self.size(hash)? {
            let pieces = tree::piece_count(size);
            return Ok(Some(Progress {
                size,
                pieces,
                present: pieces,
            }));
        }
        let Some(partial) = self.partial(hash, None)? else {
            return Ok(None);
        };
        let partial = lock(&partial);
        Ok(Some(Progress {
            size: partial.size,
            pieces: partial.pieces,
            present: partial.present_count(),
        }))
    }

    /// The pieces a download still needs, in order; empty for a complete
    /// blob, `None` if the store knows nothing of it (see [`prepare`](Self::prepare)).
    pub fn missing_pieces(&self, hash: &BlobHash) -> Result<Option<Vec<u64>>, BlobError> {
        if self.has(hash)? {
            return Ok(Some(Vec::new()));
        }
        let Some(partial) = self.partial(hash, None)? else {
            return Ok(None);
        };
        let partial = lock(&partial);
        Ok(Some(if partial.closed {
            Vec::new()
        } else {
            partial.missing()
        }))
    }

    /// Makes every piece written so far durable and claimed on disk.
    pub fn flush(&self) -> Result<(), BlobError> {
        let partials: Vec<_> = lock(&self.partials).values().cloned().collect();
        for partial in partials {
            let mut partial = lock(&partial);
            if !partial.closed {
                partial.sync()?;
            }
        }
        Ok(())
    }

    /// The open download of `hash`: from memory, else resumed from disk, else
    /// (with a size) started. `None` if it is not there and no size was given,
    /// or if the blob is complete.
    pub(super) fn partial(
        &self,
        hash: &BlobHash,
        create: Option<u64>,
    ) -> Result<Option<Arc<Mutex<Partial>>>, BlobError> {
        let mut partials = lock(&self.partials);
        if let Some(partial) = partials.get(hash) {
            return Ok(Some(Arc::clone(partial)));
        }
        // Completion renames the data before it leaves this map, so with the
        // map locked a complete blob is seen here, never started again.
        if self.has(hash)? {
            return Ok(None);
        }
        let partial = match Partial::load(&self.partial_dir, *hash)? {
            Some(partial) => partial,
            None => match create {
                Some(size) => Partial::create(&self.partial_dir, *hash, size)?,
                None => return Ok(None),
            },
        };
        let partial = Arc::new(Mutex::new(partial));
        partials.insert(*hash, Arc::clone(&partial));
        Ok(Some(partial))
    }

    /// Moves a download with every piece into place: sync, claim, outboard,
    /// then data (the commit), directories, and the bitmap goes last.
    pub(super) fn complete(&self, partial: &mut Partial) -> Result<(), BlobError> {
        partial.sync()?;
        let hash = partial.hash;
        let outboard = self.outboard_path(&hash);
        if partial.paths.outboard.exists() {
            fs::rename(&partial.paths.outboard, &outboard).at("rename into", &outboard)?;
        }
        let data = self.data_path(&hash);
        fs::rename(&partial.paths.data, &data).at("rename into", &data)?;
        sync_dir(&self.dir)?;
        partial.closed = true;
        lock(&self.partials).remove(&hash);
        remove_if_exists(&partial.paths.bitmap)?;
        sync_dir(&self.partial_dir)
    }

    /// Drops a download, if there is one; returns whether there was.
    pub(super) fn discard_partial(&self, hash: &BlobHash) -> Result<bool, BlobError> {
        let open = lock(&self.partials).remove(hash);
        let paths = PartialPaths::new(&self.partial_dir, hash);
        let existed = open.is_some() || paths.bitmap.exists();
        if let Some(partial) = open {
            lock(&partial).closed = true;
        }
        paths.remove()?;
        Ok(existed)
    }
}

fn encode(
    hash: BlobHash,
    size: u64,
    index: u64,
    data: &File,
    outboard: &File,
    path: &Path,
) -> Result<EncodedPiece, BlobError> {
    use bao_tree::io::EncodeError;
    let len = tree::encoded_piece_len(size, index).ok_or(BlobError::NoSuchPiece {
        hash,
        index,
        pieces: tree::piece_count(size),
    })?;
    let mut out = Vec::with_capacity(len as usize);
    let ob = tree::outboard(hash, size, outboard);
    match tree::encode_piece(data, ob, index, &mut out) {
        Ok(()) => Ok(EncodedPiece(out)),
        Err(EncodeError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err(BlobError::Corrupt {
                hash,
                reason: "its data file is too short",
            })
        }
        Err(EncodeError::Io(e)) => Err(BlobError::io("read", path, e)),
        Err(_) => Err(BlobError::Corrupt {
            hash,
            reason: "its data does not match its outboard and hash",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::verify_piece;
    use rand::{RngCore, SeedableRng};

    /// A download whose every piece is synced and claimed, as a crash after
    /// the last piece's sync and before the renames leaves it; optionally
    /// with the outboard already moved.
    fn interrupted(outboard_moved: bool) {
        let dir = tempfile::tempdir().unwrap();
        let a = BlobStore::open(dir.path().join("a")).unwrap();
        let mut data = vec![0u8; 3 * tree::PIECE_SIZE as usize + 99];
        rand::rngs::StdRng::seed_from_u64(7).fill_bytes(&mut data);
        let (hash, size) = a.import(&data[..]).unwrap();

        let b_dir = dir.path().join("b");
        let partial_dir = b_dir.join("partial");
        fs::create_dir_all(&partial_dir).unwrap();
        let mut partial = Partial::create(&partial_dir, hash, size).unwrap();
        for index in 0..tree::piece_count(size) {
            let encoded = a.read_piece(&hash, index).unwrap();
            let piece = verify_piece(hash, size, index, encoded.as_bytes()).unwrap();
            partial.write(index, &piece).unwrap();
        }
        partial.sync().unwrap();
        if outboard_moved {
            let to = b_dir.join(format!("{hash}.obao"));
            fs::rename(&partial.paths.outboard, to).unwrap();
        }
        drop(partial);

        let b = BlobStore::open(&b_dir).unwrap();
        assert!(b.has(&hash).unwrap());
        assert!(b.list_partial().unwrap().is_empty());
        assert!(fs::read_dir(&partial_dir).unwrap().next().is_none());
        assert_eq!(fs::read(b_dir.join(hash.to_hex())).unwrap(), data);
        assert_eq!(
            fs::read(b_dir.join(format!("{hash}.obao"))).unwrap(),
            fs::read(dir.path().join("a").join(format!("{hash}.obao"))).unwrap()
        );
        for index in 0..tree::piece_count(size) {
            assert_eq!(
                b.read_piece(&hash, index).unwrap(),
                a.read_piece(&hash, index).unwrap()
            );
        }
    }

    #[test]
    fn opening_finishes_an_interrupted_completion() {
        interrupted(false);
    }

    #[test]
    fn opening_finishes_a_completion_cut_between_renames() {
        interrupted(true);
    }
}
