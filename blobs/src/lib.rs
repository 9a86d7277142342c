//! Meshwork's file store: encrypted, content-addressed, verifiable blobs on
//! disk, moved between peers in pieces that each verify on arrival.
//!
//! A file is [sealed](seal): encrypted under its own random [`FileKey`] in
//! 64 KiB chunks and written into the [`BlobStore`] in one streaming pass
//! that also computes its id — the BLAKE3 hash of the *ciphertext*
//! ([`BlobHash`]) — and its outboard (the hash tree that proves any part of
//! it). Peers that hold the blob serve it in 256 KiB [pieces](EncodedPiece);
//! a receiver checks each piece against the hash alone before writing it,
//! in any order, resumes after a restart with only the missing pieces, and
//! the blob appears atomically once complete. Only holders of the key can
//! [`open`] it; a peer can store and serve a blob it cannot read.
//!
//! This crate is synchronous (`std::fs`); the node calls it from blocking
//! tasks. Memory stays flat whatever the file size: about 1 MiB per seal or
//! open, one piece per piece written.
//!
//! - [`crypt`]: [`seal`], [`open`], [`open_to_path`], [`FileKey`].
//! - [`flushing`]: a file writer that syncs behind its writes.
//! - [`store`]: [`BlobStore`]: layout, pieces, downloads (and when they
//!   fsync), housekeeping.
//! - [`tree`]: the BLAKE3 tree, pieces and their sizes, and why `bao-tree`.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod crypt;
mod error;
pub mod flushing;
mod hash;
pub mod store;
pub mod tree;

pub use crypt::{
    ciphertext_size, open, open_growing, open_to_path, open_to_path_via, plaintext_size, seal,
    temp_path_for, write_via, Arrived, ByteBudget, FileKey, HeldBytes, KeyError, SealedBlob,
};
pub use error::{BlobError, PieceError};
pub use hash::{BlobHash, ParseHashError};
pub use store::{BlobStore, EncodedPiece, Import, PieceStatus, Progress};
pub use tree::{
    check_piece, encoded_piece_len, piece_count, piece_range, room_needed, stored_size,
    MAX_BLOB_SIZE, MAX_ENCODED_PIECE_LEN, PIECE_SIZE,
};
