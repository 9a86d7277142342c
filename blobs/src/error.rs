//! Errors: [`BlobError`] for the store and the sealing, [`PieceError`] for a
//! piece that came from a peer.

use std::io;
use std::path::{Path, PathBuf};

use crate::BlobHash;

/// Something went wrong in the store, or while sealing or opening a blob.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The disk (or the user's quota) is full. Nothing was committed: a blob
    /// being written is left out of the store, a piece is not claimed.
    #[error("disk full: no space left to write {}", path_or_output(.path))]
    DiskFull {
        /// The file being written, if it is one this crate opened.
        path: Option<PathBuf>,
    },

    /// A file operation failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What we were doing ("open", "read", "rename", ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },

    /// Reading the plaintext being sealed failed.
    #[error("reading the file to seal: {0}")]
    Input(#[source] io::Error),

    /// Writing the opened plaintext to the caller's writer failed.
    #[error("writing the opened file: {0}")]
    Output(#[source] io::Error),

    /// The store has no complete blob with this hash.
    #[error("blob {0} is not in the store")]
    NotFound(BlobHash),

    /// The store has the blob but not this piece of it, or the index is past
    /// the end of the blob.
    #[error("blob {hash} has no piece {index} (it has {pieces} pieces)")]
    NoSuchPiece {
        /// The blob.
        hash: BlobHash,
        /// The piece asked for.
        index: u64,
        /// How many pieces the blob has.
        pieces: u64,
    },

    /// A stored blob no longer matches its hash: disk corruption or tampering.
    #[error("blob {hash} is corrupt: {reason}")]
    Corrupt {
        /// The blob.
        hash: BlobHash,
        /// What did not match.
        reason: &'static str,
    },

    /// A chunk failed authenticated decryption: the key is not this blob's,
    /// or the ciphertext was changed, reordered, truncated or extended.
    #[error("cannot open blob {hash}: wrong key or tampered ciphertext (chunk {chunk})")]
    Decrypt {
        /// The blob.
        hash: BlobHash,
        /// The first chunk that failed.
        chunk: u64,
    },

    /// The blob's size cannot be that of a sealed blob.
    #[error("blob {hash} ({size} bytes) is not a sealed blob")]
    NotSealed {
        /// The blob.
        hash: BlobHash,
        /// Its size in bytes.
        size: u64,
    },

    /// A blob being opened as it downloads ([`open_growing`](crate::open_growing))
    /// stopped arriving before it was complete.
    #[error("the download of blob {hash} stopped before it was complete")]
    Incomplete {
        /// The blob.
        hash: BlobHash,
    },

    /// The blob is larger than [`MAX_BLOB_SIZE`](crate::MAX_BLOB_SIZE).
    #[error("a blob of {size} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The size asked for.
        size: u64,
        /// The limit.
        max: u64,
    },
}

fn path_or_output(path: &Option<PathBuf>) -> String {
    match path {
        Some(path) => path.display().to_string(),
        None => "the output".to_owned(),
    }
}

impl BlobError {
    /// True for [`BlobError::DiskFull`].
    pub fn is_disk_full(&self) -> bool {
        matches!(self, BlobError::DiskFull { .. })
    }

    /// An error from the file system on `path`; a full disk becomes
    /// [`BlobError::DiskFull`].
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        if is_full(&source) {
            BlobError::DiskFull {
                path: Some(path.to_owned()),
            }
        } else {
            BlobError::Io {
                op,
                path: path.to_owned(),
                source,
            }
        }
    }

    /// An error from the caller's writer; a full disk becomes
    /// [`BlobError::DiskFull`].
    pub(crate) fn output(source: io::Error) -> Self {
        if is_full(&source) {
            BlobError::DiskFull { path: None }
        } else {
            BlobError::Output(source)
        }
    }
}

fn is_full(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// Attaches an operation and a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn at(self, op: &'static str, path: &Path) -> Result<T, BlobError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, op: &'static str, path: &Path) -> Result<T, BlobError> {
        self.map_err(|e| BlobError::io(op, path, e))
    }
}

/// A piece could not be stored.
///
/// The first four variants mean the peer sent a bad piece
/// ([`PieceError::is_peer_fault`]); in every case nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum PieceError {
    /// The blob has no piece with this index.
    #[error("piece {index} is out of range: the blob has {pieces} pieces")]
    OutOfRange {
        /// The index sent.
        index: u64,
        /// The number of pieces.
        pieces: u64,
    },

    /// The encoding is shorter or longer than a piece at this index must be.
    #[error("piece {index}: the encoding has {actual} bytes, it must have {expected}")]
    WrongLength {
        /// The piece.
        index: u64,
        /// The only valid length.
        expected: u64,
        /// The length sent.
        actual: u64,
    },

    /// A hash of the proof does not lead to the blob's hash.
    #[error("piece {index}: the proof does not match the blob hash")]
    BadProof {
        /// The piece.
        index: u64,
    },

    /// The data does not match the hashes that the proof vouches for.
    #[error("piece {index}: the data does not match the blob hash")]
    BadData {
        /// The piece.
        index: u64,
    },

    /// The store already knows this blob with another size. The size must
    /// come from where the hash came from (the file's entry), not from a peer.
    #[error("blob {hash} has {known} bytes, not {claimed}")]
    SizeMismatch {
        /// The blob.
        hash: BlobHash,
        /// The size the store recorded when the download started.
        known: u64,
        /// The size given now.
        claimed: u64,
    },

    /// Our side failed: disk full, I/O error, size over the limit.
    #[error(transparent)]
    Store(#[from] BlobError),
}

impl PieceError {
    /// True when the peer that sent the piece is to blame.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            PieceError::OutOfRange { .. }
                | PieceError::WrongLength { .. }
                | PieceError::BadProof { .. }
                | PieceError::BadData { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_disk_full_with_its_path() {
        let path = Path::new("/home/x/blobs/partial/abc");
        for error in [
            io::Error::from(io::ErrorKind::StorageFull),
            io::Error::from(io::ErrorKind::QuotaExceeded),
            #[cfg(target_os = "linux")]
            io::Error::from_raw_os_error(28), // ENOSPC
        ] {
            let e = BlobError::io("write", path, error);
            assert!(e.is_disk_full());
            assert_eq!(
                e.to_string(),
                "disk full: no space left to write /home/x/blobs/partial/abc"
            );
        }
        let e = BlobError::io(
            "open",
            path,
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(!e.is_disk_full());
        assert!(
            e.to_string()
                .starts_with("open /home/x/blobs/partial/abc: "),
            "{e}"
        );
    }
}
