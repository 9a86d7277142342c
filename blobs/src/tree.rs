//! Verified streaming: the BLAKE3 tree of a blob, its outboard, and pieces.
//!
//! **Why `bao-tree`.** The registry has two BLAKE3 verified-streaming
//! crates: `bao` (the reference implementation, one 1 KiB chunk per leaf, so
//! its outboard is 6% of the data, and it encodes and decodes whole streams or
//! byte slices through its own format) and `bao-tree` (n0-computer, the engine
//! under iroh-blobs, maintained with it). `bao-tree` has chunk groups — with
//! 16 KiB groups the outboard is 64 bytes per 16 KiB, 0.4% of the data —,
//! range queries over a blob (exactly what a piece is), a post-order outboard
//! that can be written while the data streams by, and sync APIs on
//! positioned files. We use it without default features: no tokio, no
//! async-generator dependencies.
//!
//! Terms, from small to large:
//!
//! - a BLAKE3 *chunk* is 1 KiB; a *chunk group* ([`GROUP_BYTES`], 16 KiB) is a
//!   leaf of the stored tree: the outboard keeps the hashes of every group and
//!   every node above, and none below;
//! - a *piece* ([`PIECE_SIZE`], 256 KiB = 16 groups) is the transfer unit: an
//!   aligned byte range of the blob (the last one shorter). Its encoding is the
//!   bao-tree range encoding of that range: the hash pairs from the root down
//!   to the piece, then the piece's own nodes and data, in pre-order. It
//!   verifies against the root hash alone.
//!
//! The root hash is the plain BLAKE3 hash of the blob's bytes: groups change
//! what is stored, not the hash.

use std::io::{self, Write};
use std::ops::Range;

use bao_tree::io::outboard::PostOrderOutboard;
use bao_tree::io::sync::{truncate_ranges, DecodeResponseIter, Outboard, OutboardMut, ReadAt};
use bao_tree::io::{BaoContentItem, DecodeError, Leaf, Parent};
use bao_tree::iter::{BaoChunk, ResponseIterRef};
use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
use blake3::hazmat::{
    merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

use crate::{BlobHash, PieceError};

/// log2 of the chunk group size in 1 KiB chunks: 16 KiB groups.
pub(crate) const BLOCK_SIZE: BlockSize = BlockSize::from_chunk_log(4);
/// Bytes in a chunk group, the smallest unit the outboard can verify.
pub const GROUP_BYTES: usize = 16 * 1024;
/// Bytes in a piece, the transfer unit. Every piece but the last has exactly
/// this size; an empty blob has one empty piece.
pub const PIECE_SIZE: u64 = 256 * 1024;
/// The largest blob the store accepts (1 TiB). It bounds what a size field
/// can make us allocate: a partial blob's bitmap is at most 512 KiB.
pub const MAX_BLOB_SIZE: u64 = 1 << 40;
/// No piece encoding of any blob up to [`MAX_BLOB_SIZE`] is longer: a
/// codec can refuse a longer message before reading it.
pub const MAX_ENCODED_PIECE_LEN: u64 = PIECE_SIZE + 64 * HASH_PAIR_BYTES;

const HASH_PAIR_BYTES: u64 = 64;
const CHUNKS_PER_PIECE: u64 = PIECE_SIZE / 1024;

/// The number of pieces of a blob of `size` bytes (at least one).
pub fn piece_count(size: u64) -> u64 {
    size.div_ceil(PIECE_SIZE).max(1)
}

/// The byte range of piece `index` in a blob of `size` bytes, if it has one.
pub fn piece_range(size: u64, index: u64) -> Option<Range<u64>> {
    if index >= piece_count(size) {
        return None;
    }
    let start = index * PIECE_SIZE;
    Some(start..(start + PIECE_SIZE).min(size))
}

/// The exact length of the encoding of piece `index` of a blob of `size`
/// bytes: the piece's bytes plus 64 bytes per hash pair of its proof. `None`
/// when the piece does not exist or the blob is over [`MAX_BLOB_SIZE`].
pub fn encoded_piece_len(size: u64, index: u64) -> Option<u64> {
    if size > MAX_BLOB_SIZE || index >= piece_count(size) {
        return None;
    }
    let ranges = piece_chunks(index);
    // As the encoder and decoder do: a range past the end becomes "to the end".
    let ranges = truncate_ranges(&ranges, size);
    let len = ResponseIterRef::new(tree(size), ranges)
        .map(|item| match item {
            BaoChunk::Parent { .. } => HASH_PAIR_BYTES,
            BaoChunk::Leaf { size, .. } => size as u64,
        })
        .sum();
    Some(len)
}

/// The bytes a complete blob of `size` bytes takes in the store: its data
/// and its outboard (what a node must have room for before it takes one).
pub fn stored_size(size: u64) -> u64 {
    size.saturating_add(tree(size).outboard_size())
}

/// What a blob of `size` bytes still needs in the store with `present`
/// bytes of it there already: what a fetch must have room for.
pub fn room_needed(size: u64, present: u64) -> u64 {
    stored_size(size).saturating_sub(present)
}

pub(crate) fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, BLOCK_SIZE)
}

/// The chunk range of piece `index` (ranges past the end are cut by bao-tree).
pub(crate) fn piece_chunks(index: u64) -> ChunkRanges {
    let start = index * CHUNKS_PER_PIECE;
    ChunkRanges::from(ChunkNum(start)..ChunkNum(start + CHUNKS_PER_PIECE))
}

/// The outboard of a blob whose hash pairs are in `data`, in post-order.
pub(crate) fn outboard<D>(hash: BlobHash, size: u64, data: D) -> PostOrderOutboard<D> {
    PostOrderOutboard {
        root: hash.to_blake3(),
        tree: tree(size),
        data,
    }
}

/// A piece that verified against its blob's hash, held in memory (at most
/// [`MAX_ENCODED_PIECE_LEN`] bytes) until it is written.
pub(crate) struct VerifiedPiece {
    parents: Vec<Parent>,
    leaves: Vec<Leaf>,
}

impl VerifiedPiece {
    /// The piece's bytes of the blob, in order.
    pub(crate) fn data(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.leaves.iter().map(|l| l.data.len()).sum());
        for leaf in &self.leaves {
            out.extend_from_slice(&leaf.data);
        }
        out
    }

    /// Writes the data into `data` at its offsets, and the proof's hash pairs
    /// into the post-order outboard `ob`. Neither is synced.
    pub(crate) fn write_to(
        &self,
        data: &mut impl bao_tree::io::sync::WriteAt,
        ob: &mut impl OutboardMut,
    ) -> io::Result<()> {
        for leaf in &self.leaves {
            data.write_all_at(leaf.offset, &leaf.data)?;
        }
        for parent in &self.parents {
            ob.save(parent.node, &parent.pair)?;
        }
        Ok(())
    }
}

/// Whether `encoded` is piece `index` of the blob `hash` of `size` bytes,
/// proof and all — for a node that checks a peer holds a blob without
/// storing what it sends.
pub fn check_piece(
    hash: &BlobHash,
    size: u64,
    index: u64,
    encoded: &[u8],
) -> Result<(), PieceError> {
    verify_piece(*hash, size, index, encoded).map(drop)
}

/// Checks the encoding of piece `index` against the blob's hash and size,
/// before anything touches the disk. The length is checked first and exactly,
/// so a hostile encoding can cost at most one piece's worth of hashing.
pub(crate) fn verify_piece(
    hash: BlobHash,
    size: u64,
    index: u64,
    encoded: &[u8],
) -> Result<VerifiedPiece, PieceError> {
    let pieces = piece_count(size);
    let expected =
        encoded_piece_len(size, index).ok_or(PieceError::OutOfRange { index, pieces })?;
    let actual = encoded.len() as u64;
    if actual != expected {
        return Err(PieceError::WrongLength {
            index,
            expected,
            actual,
        });
    }
    let ranges = piece_chunks(index);
    let mut reader = encoded;
    let mut piece = VerifiedPiece {
        parents: Vec::new(),
        leaves: Vec::new(),
    };
    for item in DecodeResponseIter::new(hash.to_blake3(), tree(size), &mut reader, &ranges) {
        match item {
            Ok(BaoContentItem::Parent(parent)) => piece.parents.push(parent),
            Ok(BaoContentItem::Leaf(leaf)) => piece.leaves.push(leaf),
            Err(DecodeError::ParentHashMismatch(_)) => return Err(PieceError::BadProof { index }),
            Err(DecodeError::LeafHashMismatch(_)) => return Err(PieceError::BadData { index }),
            // The length was exact, so the decoder cannot run out of input;
            // if it did anyway, the encoding is still the peer's.
            Err(_) => {
                return Err(PieceError::WrongLength {
                    index,
                    expected,
                    actual,
                })
            }
        }
    }
    if !reader.is_empty() {
        return Err(PieceError::WrongLength {
            index,
            expected,
            actual,
        });
    }
    Ok(piece)
}

/// Encodes piece `index` from a blob's data and outboard, checking every
/// group against the outboard and the outboard against the root, so that a
/// corrupt disk is noticed here rather than by the peer.
pub(crate) fn encode_piece<D: ReadAt, O: Outboard>(
    data: D,
    ob: O,
    index: u64,
    out: &mut Vec<u8>,
) -> Result<(), bao_tree::io::EncodeError> {
    bao_tree::io::sync::encode_ranges_validated(data, ob, &piece_chunks(index), out)
}

/// Streaming BLAKE3 over a blob of unknown length that also writes the blob's
/// post-order outboard as it goes, in one pass.
///
/// It keeps a stack of subtree chaining values like `blake3::Hasher`, one
/// level up: its leaves are 16 KiB chunk groups. A group is hashed once the
/// next byte arrives (only then is it known not to be the root), and a full
/// subtree is merged lazily when the next group starts, so the hash pairs come
/// out in post-order: the stable nodes while streaming, the right edge of the
/// tree at [`finish`](Self::finish). Memory: one group and ≤ 64 hashes.
pub(crate) struct TreeHasher<W> {
    out: W,
    group: Box<[u8; GROUP_BYTES]>,
    group_len: usize,
    /// Groups hashed and pushed on the stack.
    groups: u64,
    stack: Vec<ChainingValue>,
}

impl<W: Write> TreeHasher<W> {
    /// Hash pairs go to `out` (use `io::sink()` to only hash).
    pub(crate) fn new(out: W) -> Self {
        Self {
            out,
            group: Box::new([0; GROUP_BYTES]),
            group_len: 0,
            groups: 0,
            stack: Vec::with_capacity(64),
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.group_len == GROUP_BYTES {
                // More data follows, so the buffered group is not the last.
                let cv = leaf_cv(self.groups, &self.group[..]);
                self.push(cv)?;
                self.group_len = 0;
            }
            if self.group_len == 0 && data.len() > GROUP_BYTES {
                // Whole groups followed by more input: hash them in place.
                let whole = (data.len() - 1) / GROUP_BYTES * GROUP_BYTES;
                let (groups, rest) = data.split_at(whole);
                for group in groups.chunks_exact(GROUP_BYTES) {
                    let cv = leaf_cv(self.groups, group);
                    self.push(cv)?;
                }
                data = rest;
                continue;
            }
            let take = (GROUP_BYTES - self.group_len).min(data.len());
            self.group[self.group_len..self.group_len + take].copy_from_slice(&data[..take]);
            self.group_len += take;
            data = &data[take..];
        }
        Ok(())
    }

    /// The root hash, and the outboard writer (flushed).
    pub(crate) fn finish(mut self) -> io::Result<(BlobHash, W)> {
        let last = &self.group[..self.group_len];
        if self.groups == 0 {
            // A single group is the root itself; there are no hash pairs.
            self.out.flush()?;
            return Ok((blake3::hash(last).into(), self.out));
        }
        let mut right = leaf_cv(self.groups, last);
        self.merge(self.groups)?;
        loop {
            let Some(left) = self.stack.pop() else {
                // Unreachable: `merge` leaves popcount(groups) ≥ 1 entries, and
                // the loop returns when it takes the last one.
                return Err(io::Error::other("tree hasher: empty stack"));
            };
            self.write_pair(&left, &right)?;
            if self.stack.is_empty() {
                self.out.flush()?;
                let root = merge_subtrees_root(&left, &right, Mode::Hash);
                return Ok((root.into(), self.out));
            }
            right = merge_subtrees_non_root(&left, &right, Mode::Hash);
        }
    }

    fn push(&mut self, cv: ChainingValue) -> io::Result<()> {
        self.merge(self.groups)?;
        self.stack.push(cv);
        self.groups += 1;
        Ok(())
    }

    /// Merges the completed subtrees of the first `groups` groups: after it,
    /// the stack holds one entry per 1-bit of `groups`.
    fn merge(&mut self, groups: u64) -> io::Result<()> {
        while self.stack.len() > groups.count_ones() as usize {
            let (Some(right), Some(left)) = (self.stack.pop(), self.stack.pop()) else {
                return Err(io::Error::other("tree hasher: short stack"));
            };
            self.write_pair(&left, &right)?;
            self.stack
                .push(merge_subtrees_non_root(&left, &right, Mode::Hash));
        }
        Ok(())
    }

    fn write_pair(&mut self, left: &ChainingValue, right: &ChainingValue) -> io::Result<()> {
        let mut pair = [0u8; 64];
        pair[..32].copy_from_slice(left);
        pair[32..].copy_from_slice(right);
        self.out.write_all(&pair)
    }
}

/// The chaining value of group `index` as a non-root subtree.
fn leaf_cv(index: u64, data: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(index * GROUP_BYTES as u64);
    hasher.update(data);
    hasher.finalize_non_root()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    fn streamed(data: &[u8], step: usize) -> (BlobHash, Vec<u8>) {
        let mut hasher = TreeHasher::new(Vec::new());
        for part in data.chunks(step.max(1)) {
            hasher.update(part).unwrap();
        }
        hasher.finish().unwrap()
    }

    /// The one-pass outboard is byte for byte bao-tree's, and the root is the
    /// plain BLAKE3 hash, for sizes around every boundary and any write sizes.
    #[test]
    fn streaming_outboard_matches_bao_tree() {
        let seed = 0x5eed_0001;
        println!("seed {seed:#x}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let g = GROUP_BYTES;
        let mut sizes = vec![0, 1, 1023, 1024, 1025, g - 1, g, g + 1, 2 * g, 3 * g + 7];
        sizes.extend([
            4 * g,
            4 * g + 1,
            5 * g,
            7 * g - 1,
            8 * g,
            8 * g + 1,
            100 * g + 3,
        ]);
        sizes.push(PIECE_SIZE as usize * 5 + 12345);
        for size in sizes {
            let mut data = vec![0u8; size];
            rng.fill_bytes(&mut data);
            let mut expected = Vec::new();
            let root = bao_tree::io::sync::outboard_post_order(
                &data[..],
                tree(size as u64),
                &mut expected,
            )
            .unwrap();
            assert_eq!(root, blake3::hash(&data), "size {size}");
            assert_eq!(expected.len() as u64, tree(size as u64).outboard_size());
            for step in [1000, g, g + 1, 1 << 20, size] {
                let (hash, ob) = streamed(&data, step);
                assert_eq!(hash, BlobHash::from(root), "size {size} step {step}");
                assert!(ob == expected, "outboard differs: size {size} step {step}");
            }
        }
    }

    #[test]
    fn encoded_lengths_are_bounded() {
        assert_eq!(encoded_piece_len(0, 0), Some(0));
        assert_eq!(encoded_piece_len(0, 1), None);
        assert_eq!(encoded_piece_len(1, 0), Some(1));
        assert_eq!(encoded_piece_len(MAX_BLOB_SIZE + 1, 0), None);
        let mut worst = 0;
        for size in [
            PIECE_SIZE * 3 + 1,
            MAX_BLOB_SIZE,
            MAX_BLOB_SIZE - 1,
            12345 * PIECE_SIZE + 17,
        ] {
            let pieces = piece_count(size);
            for index in [0, 1, pieces / 2, pieces - 2, pieces - 1] {
                let len = encoded_piece_len(size, index).unwrap();
                let range = piece_range(size, index).unwrap();
                let proof = len - (range.end - range.start);
                assert!(proof.is_multiple_of(64));
                worst = worst.max(len);
            }
        }
        assert!(worst <= MAX_ENCODED_PIECE_LEN, "{worst}");
    }
}
