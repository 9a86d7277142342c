//! Sealing (encrypt, hash, store) and opening (verify, decrypt) a file.
//!
//! A sealed blob is the plaintext cut into [`CHUNK_SIZE`] chunks, each
//! encrypted under the file's own random key and followed by its 16-byte tag.
//! There is no header: everything needed to open it is in the [`FileKey`],
//! which travels in the (encrypted, signed) file entry, never with the blob.
//! The key also says which of the two formats the blob is in:
//!
//! | format | cipher | nonce of chunk `i` | associated data |
//! |---|---|---|---|
//! | 1 | XChaCha20-Poly1305 | the file's random 16-byte prefix ‖ `i` | `"meshwork/blob/v1"` ‖ `i` ‖ `last` |
//! | 2 | AES-256-GCM | four zero bytes ‖ `i` | `"meshwork/blob/v2"` ‖ `i` ‖ `last` |
//!
//! (`i` is a u64, little-endian; `last` one byte.) New files are sealed in
//! format 2, which the hardware runs several times faster; format 1 blobs,
//! sealed before it, still open. A key seals exactly one file, so in format
//! 2 the chunk number alone makes every nonce unique.
//!
//! A chunk only opens at its own position, and only the real last chunk
//! opens as the last one: reordering, dropping, truncating or extending the
//! ciphertext fails, even at a chunk boundary. An empty file is one empty,
//! last chunk (16 bytes of tag). The ciphertext size is a function of the
//! plaintext size ([`ciphertext_size`]) and back ([`plaintext_size`]), the
//! same in both formats.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use zeroize::{Zeroize, Zeroizing};

use crate::error::IoContext;
use crate::flushing::Flushing;
use crate::store::{read_full, sync_dir};
use crate::tree::TreeHasher;
use crate::tree::PIECE_SIZE;
use crate::{BlobError, BlobHash, BlobStore, Import};

/// Plaintext bytes per encrypted chunk.
pub const CHUNK_SIZE: usize = 64 * 1024;
const TAG_SIZE: usize = 16;
/// Ciphertext bytes per full chunk: the chunk and its tag.
const SEALED_CHUNK: usize = CHUNK_SIZE + TAG_SIZE;
/// Chunks sealed or opened per read and write: about 1 MiB.
const BATCH_CHUNKS: usize = 16;
/// What each format's associated data starts with.
const V1_AD: &[u8; 16] = b"meshwork/blob/v1";
const V2_AD: &[u8; 16] = b"meshwork/blob/v2";

/// The secret that opens one sealed blob: a random 256-bit key, fresh for
/// every file, and the format it seals in (see the [module](self)).
///
/// `Debug` does not show it; it is wiped from memory when dropped (a format 2
/// cipher's expanded key, ring's, is not: it lives only while a file is
/// sealed or opened). It travels as [`FileKey::to_bytes`].
#[derive(Clone, PartialEq, Eq)]
pub struct FileKey {
    format: Format,
    key: [u8; 32],
}

/// A blob format, with what its key holds beside the 256-bit key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    /// XChaCha20-Poly1305, with the file's random nonce prefix.
    V1 { nonce_prefix: [u8; 16] },
    /// AES-256-GCM.
    V2,
}

/// The first byte of a format 2 key's bytes. Format 1 keys are the 32 key
/// bytes and the 16 prefix bytes, nothing before them (as they were written
/// before format 2 existed): their length tells them apart. A later format
/// starts with its own number too, and is never 48 bytes long.
const V2_TAG: u8 = 2;

/// Bytes that [`FileKey::from_bytes`] cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not a key of any format.
    #[error("malformed file key")]
    Malformed,
    /// A key of a blob format newer than this version reads.
    #[error("the file is sealed in blob format {0}, newer than this version of Meshwork opens")]
    NewerFormat(u8),
}

impl FileKey {
    /// A fresh key, for format 2, from the operating system's random number
    /// generator.
    pub fn generate() -> Self {
        let mut key = FileKey {
            format: Format::V2,
            key: [0; 32],
        };
        rand::rngs::OsRng.fill_bytes(&mut key.key);
        key
    }

    /// The key as it travels in a file entry: 33 bytes in format 2 (the
    /// tag `2`, then the key), 48 in format 1 (the key, then the prefix).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(48));
        match &self.format {
            Format::V1 { nonce_prefix } => {
                bytes.extend_from_slice(&self.key);
                bytes.extend_from_slice(nonce_prefix);
            }
            Format::V2 => {
                bytes.push(V2_TAG);
                bytes.extend_from_slice(&self.key);
            }
        }
        bytes
    }

    /// A key from [`FileKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let mut key = FileKey {
            format: Format::V2,
            key: [0; 32],
        };
        match bytes {
            _ if bytes.len() == 48 => {
                let mut nonce_prefix = [0u8; 16];
                key.key.copy_from_slice(&bytes[..32]);
                nonce_prefix.copy_from_slice(&bytes[32..]);
                key.format = Format::V1 { nonce_prefix };
            }
            [V2_TAG, rest @ ..] if rest.len() == 32 => key.key.copy_from_slice(rest),
            [tag, ..] if *tag > V2_TAG => return Err(KeyError::NewerFormat(*tag)),
            _ => return Err(KeyError::Malformed),
        }
        Ok(key)
    }

    /// The blob format this key seals and opens: 1 or 2.
    pub fn format(&self) -> u8 {
        match self.format {
            Format::V1 { .. } => 1,
            Format::V2 => 2,
        }
    }

    fn cipher(&self) -> ChunkCipher {
        match self.format {
            Format::V1 { nonce_prefix } => ChunkCipher::V1 {
                cipher: XChaCha20Poly1305::new(Key::from_slice(&self.key)),
                nonce_prefix,
            },
            Format::V2 => ChunkCipher::V2(Box::new(LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &self.key).expect("a 256-bit key"),
            ))),
        }
    }
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKey(<secret>)")
    }
}

impl Drop for FileKey {
    fn drop(&mut self) {
        self.key.zeroize();
        if let Format::V1 { nonce_prefix } = &mut self.format {
            nonce_prefix.zeroize();
        }
    }
}

/// A file key made ready to seal and open chunks in its format.
enum ChunkCipher {
    V1 {
        cipher: XChaCha20Poly1305,
        nonce_prefix: [u8; 16],
    },
    /// Boxed: ring's key schedule and GHASH table are ~500 bytes.
    V2(Box<LessSafeKey>),
}

/// A chunk that failed to seal or open; the caller says which and where.
struct ChunkError;

impl ChunkCipher {
    /// Encrypts chunk `chunk` in place; returns its tag.
    fn seal(&self, chunk: u64, last: bool, text: &mut [u8]) -> Result<[u8; TAG_SIZE], ChunkError> {
        match self {
            ChunkCipher::V1 {
                cipher,
                nonce_prefix,
            } => {
                let tag = cipher
                    .encrypt_in_place_detached(
                        &v1_nonce(nonce_prefix, chunk),
                        &associated_data(V1_AD, chunk, last),
                        text,
                    )
                    .map_err(|_| ChunkError)?;
                Ok(tag.into())
            }
            ChunkCipher::V2(key) => {
                let tag = key
                    .seal_in_place_separate_tag(
                        v2_nonce(chunk),
                        Aad::from(associated_data(V2_AD, chunk, last)),
                        text,
                    )
                    .map_err(|_| ChunkError)?;
                let mut out = [0u8; TAG_SIZE];
                out.copy_from_slice(tag.as_ref());
                Ok(out)
            }
        }
    }

    /// Authenticates and decrypts chunk `chunk` in place.
    fn open(&self, chunk: u64, last: bool, text: &mut [u8], tag: &[u8]) -> Result<(), ChunkError> {
        match self {
            ChunkCipher::V1 {
                cipher,
                nonce_prefix,
            } => cipher
                .decrypt_in_place_detached(
                    &v1_nonce(nonce_prefix, chunk),
                    &associated_data(V1_AD, chunk, last),
                    text,
                    Tag::from_slice(tag),
                )
                .map_err(|_| ChunkError),
            ChunkCipher::V2(key) => {
                let tag = ring::aead::Tag::try_from(tag).map_err(|_| ChunkError)?;
                key.open_in_place_separate_tag(
                    v2_nonce(chunk),
                    Aad::from(associated_data(V2_AD, chunk, last)),
                    tag,
                    text,
                    0..,
                )
                .map(drop)
                .map_err(|_| ChunkError)
            }
        }
    }
}

fn v1_nonce(prefix: &[u8; 16], chunk: u64) -> XNonce {
    let mut nonce = [0u8; 24];
    nonce[..16].copy_from_slice(prefix);
    nonce[16..].copy_from_slice(&chunk.to_le_bytes());
    nonce.into()
}

fn v2_nonce(chunk: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&chunk.to_le_bytes());
    Nonce::assume_unique_for_key(nonce)
}

fn associated_data(format: &[u8; 16], chunk: u64, last: bool) -> [u8; 25] {
    let mut ad = [0u8; 25];
    ad[..16].copy_from_slice(format);
    ad[16..24].copy_from_slice(&chunk.to_le_bytes());
    ad[24] = u8::from(last);
    ad
}

/// What [`seal`] made: the blob's id and sizes, and the key to open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBlob {
    /// The blob's id: BLAKE3 of the ciphertext.
    pub hash: BlobHash,
    /// The ciphertext size, the blob's size in the store.
    pub size: u64,
    /// The size of the file that was sealed.
    pub plaintext_size: u64,
    /// The key that opens it.
    pub key: FileKey,
}

/// The size of the sealed blob of a `plaintext`-byte file.
pub fn ciphertext_size(plaintext: u64) -> u64 {
    let chunks = plaintext.div_ceil(CHUNK_SIZE as u64).max(1);
    plaintext.saturating_add(chunks * TAG_SIZE as u64)
}

/// The size of the file in a sealed blob of `ciphertext` bytes, or `None` if
/// no file seals to that size.
pub fn plaintext_size(ciphertext: u64) -> Option<u64> {
    let chunks = ciphertext.div_ceil(SEALED_CHUNK as u64);
    let plaintext = ciphertext.checked_sub(chunks.checked_mul(TAG_SIZE as u64)?)?;
    (chunks > 0 && ciphertext_size(plaintext) == ciphertext).then_some(plaintext)
}

/// Encrypts `plaintext` (any size, read once in 1 MiB batches) straight into
/// the store under a fresh [`FileKey`], hashing and writing the outboard in
/// the same pass. The blob is durable and complete when this returns.
///
/// Encryption runs on this thread, hashing and writing on a second one; at
/// most three batches are in memory.
pub fn seal(store: &BlobStore, mut plaintext: impl Read) -> Result<SealedBlob, BlobError> {
    let key = FileKey::generate();
    let cipher = key.cipher();
    let import = store.import_writer()?;
    let mut reader = ChunkReader::new(&mut plaintext);
    let mut chunk = 0u64;
    let mut plaintext_size = 0u64;
    let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(1);
    let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
    let import = thread::scope(|s| {
        let writer = s.spawn(move || -> Result<Import<'_>, BlobError> {
            let mut import = import;
            for batch in full_rx {
                import.write(batch.bytes())?;
                // The sealing side may be done and gone: fine.
                let _ = empty_tx.send(batch);
            }
            Ok(import)
        });
        let mut fresh = BATCHES_IN_FLIGHT;
        let sealed = loop {
            let mut batch = if fresh > 0 {
                fresh -= 1;
                Batch::new()
            } else {
                match empty_rx.recv() {
                    Ok(batch) => batch,
                    // The writer stopped: its error comes from `join`.
                    Err(_) => break Ok(()),
                }
            };
            let last = match seal_batch(&cipher, &mut reader, &mut batch, &mut chunk) {
                Ok(last) => last,
                Err(e) => break Err(e),
            };
            plaintext_size += batch.plaintext;
            if full_tx.send(batch).is_err() || last {
                break Ok(());
            }
        };
        drop(full_tx);
        let written = join(writer);
        // Our own error first (the input failed); then the writer's.
        sealed.and(written)
    })?;
    let (hash, size) = import.finish()?;
    Ok(SealedBlob {
        hash,
        size,
        plaintext_size,
        key,
    })
}

/// Batches allocated per seal or open: one being filled, one in the
/// channel, one being consumed.
const BATCHES_IN_FLIGHT: usize = 3;

/// A buffer of up to [`BATCH_CHUNKS`] sealed chunks.
struct Batch {
    buf: Vec<u8>,
    len: usize,
    /// Plaintext bytes in it.
    plaintext: u64,
}

impl Batch {
    fn new() -> Self {
        Batch {
            buf: vec![0u8; BATCH_CHUNKS * SEALED_CHUNK],
            len: 0,
            plaintext: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Reads up to a batch of plaintext chunks, each into its sealed slot, and
/// encrypts them in place. Returns whether the last chunk is in it.
fn seal_batch(
    cipher: &ChunkCipher,
    reader: &mut ChunkReader<impl Read>,
    batch: &mut Batch,
    chunk: &mut u64,
) -> Result<bool, BlobError> {
    batch.len = 0;
    batch.plaintext = 0;
    for slot in 0..BATCH_CHUNKS {
        let start = slot * SEALED_CHUNK;
        let (len, last) = reader
            .next_chunk(&mut batch.buf[start..start + CHUNK_SIZE])
            .map_err(BlobError::Input)?;
        let (text, rest) = batch.buf[start..].split_at_mut(len);
        let tag = cipher
            .seal(*chunk, last, text)
            .map_err(|_| BlobError::Input(io::Error::other("chunk encryption failed")))?;
        rest[..TAG_SIZE].copy_from_slice(&tag);
        *chunk += 1;
        batch.len = start + len + TAG_SIZE;
        batch.plaintext += len as u64;
        if last {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Joins a scoped thread, passing its panic on.
fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Reads a stream as fixed-size chunks and knows which one is the last: it
/// reads one byte ahead.
struct ChunkReader<R> {
    reader: R,
    /// A byte read past the previous chunk, which starts the next one.
    ahead: Option<u8>,
    done: bool,
}

impl<R: Read> ChunkReader<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            ahead: None,
            done: false,
        }
    }

    /// Fills `buf` (one chunk long) as far as the stream goes; returns the
    /// length and whether this is the last chunk. The first chunk of an empty
    /// stream is empty and last.
    fn next_chunk(&mut self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        if self.done {
            return Ok((0, true));
        }
        let mut len = 0;
        if let Some(byte) = self.ahead.take() {
            buf[0] = byte;
            len = 1;
        }
        len += read_full(&mut self.reader, &mut buf[len..])?;
        if len < buf.len() {
            self.done = true;
            return Ok((len, true));
        }
        let mut byte = [0u8; 1];
        if read_full(&mut self.reader, &mut byte)? == 0 {
            self.done = true;
            return Ok((len, true));
        }
        self.ahead = Some(byte[0]);
        Ok((len, false))
    }
}

/// Verifies and decrypts the complete blob `hash` into `out`, in 1 MiB
/// batches; returns the plaintext size.
///
/// Each chunk is authenticated before its plaintext is written; the blob's
/// hash is checked at the end. On any error `out` may hold a prefix of the
/// file: throw it away ([`open_to_path`] does). Reading and hashing run on a
/// second thread, decryption and writing on this one.
pub fn open(
    store: &BlobStore,
    hash: &BlobHash,
    key: &FileKey,
    mut out: impl Write,
) -> Result<u64, BlobError> {
    let (file, path, size) = store.open_data(hash)?;
    let plaintext = plaintext_size(size).ok_or(BlobError::NotSealed { hash: *hash, size })?;
    let chunks = size.div_ceil(SEALED_CHUNK as u64);
    let cipher = key.cipher();
    let (full_tx, full_rx) = mpsc::sync_channel::<Batch>(1);
    let (empty_tx, empty_rx) = mpsc::channel::<Batch>();
    let (opened, read) = thread::scope(|s| {
        let path = &path;
        // Ok(None): the decrypting side stopped first.
        let reader = s.spawn(move || -> Result<Option<BlobHash>, BlobError> {
            let mut file = file;
            let mut hasher = TreeHasher::new(io::sink());
            let mut remaining = size;
            let mut fresh = BATCHES_IN_FLIGHT;
            while remaining > 0 {
                let mut batch = if fresh > 0 {
                    fresh -= 1;
                    Batch::new()
                } else {
                    match empty_rx.recv() {
                        Ok(batch) => batch,
                        Err(_) => return Ok(None),
                    }
                };
                // Whole sealed chunks: a batch is a multiple of them.
                batch.len = remaining.min(batch.buf.len() as u64) as usize;
                file.read_exact(&mut batch.buf[..batch.len])
                    .at("read", path)?;
                hasher.update(batch.bytes()).at("hash", path)?;
                remaining -= batch.len as u64;
                if full_tx.send(batch).is_err() {
                    return Ok(None);
                }
            }
            drop(full_tx);
            let (root, _) = hasher.finish().at("hash", path)?;
            Ok(Some(root))
        });
        let mut chunk = 0u64;
        let opened = (|| {
            for mut batch in full_rx.iter() {
                let len = batch.len;
                let opener = Opener {
                    hash,
                    cipher: &cipher,
                    chunks,
                };
                chunk = opener.open_into(&mut batch.buf[..len], chunk, &mut out)?;
                // The reader may be done and gone: fine.
                let _ = empty_tx.send(batch);
            }
            Ok(())
        })();
        // Unblock the reader if we stopped early.
        drop(full_rx);
        drop(empty_tx);
        (opened, join(reader))
    });
    opened?;
    if read? != Some(*hash) {
        return Err(BlobError::Corrupt {
            hash: *hash,
            reason: "its bytes do not hash to its name",
        });
    }
    out.flush().map_err(BlobError::output)?;
    Ok(plaintext)
}

/// Decrypts sealed chunks in place and writes their plaintext.
struct Opener<'a> {
    hash: &'a BlobHash,
    cipher: &'a ChunkCipher,
    /// Chunks in the whole blob: the last one opens only as the last.
    chunks: u64,
}

impl Opener<'_> {
    /// Opens the whole sealed chunks in `sealed`, the first of which is
    /// chunk `first`, into `out`; returns the next chunk's number.
    fn open_into(
        &self,
        sealed: &mut [u8],
        first: u64,
        out: &mut impl Write,
    ) -> Result<u64, BlobError> {
        let mut chunk = first;
        for sealed in sealed.chunks_mut(SEALED_CHUNK) {
            let last = chunk + 1 == self.chunks;
            let (text, tag) = sealed.split_at_mut(sealed.len() - TAG_SIZE);
            self.cipher
                .open(chunk, last, text, tag)
                .map_err(|_| BlobError::Decrypt {
                    hash: *self.hash,
                    chunk,
                })?;
            out.write_all(text).map_err(BlobError::output)?;
            chunk += 1;
        }
        Ok(chunk)
    }
}

/// What a download tells [`open_growing`]: one more piece is on disk, or
/// every piece is.
#[derive(Debug)]
pub enum Arrived {
    /// This piece is written (and was verified against the hash first).
    Piece(u64),
    /// This piece is written, and these are its bytes (the blob's, at the
    /// piece's offset): opened from memory, not read back from the disk.
    Bytes(u64, HeldBytes),
    /// The blob is complete.
    All,
}

/// Bytes a download hands to [`open_growing`], counted against a
/// [`ByteBudget`] until they are dropped: on their way, waiting for their
/// turn, or opened.
#[derive(Debug)]
pub struct HeldBytes {
    bytes: Vec<u8>,
    budget: ByteBudget,
}

impl Drop for HeldBytes {
    fn drop(&mut self) {
        self.budget
            .0
            .fetch_sub(self.bytes.len(), std::sync::atomic::Ordering::Relaxed);
    }
}

/// How many bytes may be held in memory between a download and the reader
/// following it, at most: a reader that falls behind reads the rest back
/// from the disk instead, and memory stays flat whatever the size.
#[derive(Clone, Debug)]
pub struct ByteBudget(std::sync::Arc<std::sync::atomic::AtomicUsize>, usize);

impl ByteBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        Self(Default::default(), max)
    }

    /// `bytes`, counted, if they fit; otherwise they are handed back.
    pub fn hold(&self, bytes: Vec<u8>) -> Result<HeldBytes, Vec<u8>> {
        use std::sync::atomic::Ordering;
        let len = bytes.len();
        let fits = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(len).filter(|&n| n <= self.1)
            })
            .is_ok();
        if fits {
            Ok(HeldBytes {
                bytes,
                budget: self.clone(),
            })
        } else {
            Err(bytes)
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Decrypts blob `hash` of `size` bytes into `out` *while it downloads*:
/// `data` is its data file ([`BlobStore::data_file`]) and `arrived` says
/// which pieces are written, in any order. Each chunk is read, opened and
/// written as soon as it and every chunk before it are there, so the
/// plaintext is written alongside the transfer rather than in a second pass
/// over the finished blob. Returns the plaintext size.
///
/// Every chunk is authenticated before its plaintext is written, as in
/// [`open`]; the whole-blob hash is not computed again, since every piece was
/// verified against it on arrival. If `arrived` closes before the blob is
/// complete: [`BlobError::Incomplete`], and `out` holds a prefix to throw away.
pub fn open_growing(
    data: &fs::File,
    path: &Path,
    hash: &BlobHash,
    size: u64,
    key: &FileKey,
    arrived: mpsc::Receiver<Arrived>,
    mut out: impl Write,
) -> Result<u64, BlobError> {
    use std::os::unix::fs::FileExt;
    let plaintext = plaintext_size(size).ok_or(BlobError::NotSealed { hash: *hash, size })?;
    let cipher = key.cipher();
    let opener = Opener {
        hash,
        cipher: &cipher,
        chunks: size.div_ceil(SEALED_CHUNK as u64),
    };
    let mut pieces = PieceFrontier::new(size);
    // Pieces that came with their bytes, not yet reached (their budget
    // bounds them).
    let mut held: HashMap<u64, HeldBytes> = HashMap::new();
    // Sealed bytes from offset `pos - pending.len()` on, not yet opened;
    // `pos` is where the next piece goes.
    let mut pending: Vec<u8> = Vec::with_capacity(2 * PIECE_SIZE as usize + SEALED_CHUNK);
    let mut pos = 0u64;
    let mut chunk = 0u64;
    while chunk < opener.chunks {
        // Take in every piece that is here, in order, while there is room.
        let ready = pieces.contiguous_bytes();
        while pos < ready && pending.len() < PIECE_SIZE as usize {
            let index = pos / PIECE_SIZE;
            let len = PIECE_SIZE.min(size - pos) as usize;
            match held.remove(&index) {
                Some(h) if h.bytes.len() == len => pending.extend_from_slice(&h.bytes),
                _ => {
                    let at = pending.len();
                    pending.resize(at + len, 0);
                    data.read_exact_at(&mut pending[at..], pos)
                        .at("read", path)?;
                }
            }
            pos += len as u64;
        }
        // Open every whole chunk taken in (the last one may be short).
        let whole = if pos == size {
            pending.len()
        } else {
            pending.len() / SEALED_CHUNK * SEALED_CHUNK
        };
        if whole > 0 {
            chunk = opener.open_into(&mut pending[..whole], chunk, &mut out)?;
            pending.drain(..whole);
            continue;
        }
        // Wait for more, then take everything already said.
        let mut news = Some(
            arrived
                .recv()
                .map_err(|_| BlobError::Incomplete { hash: *hash })?,
        );
        while let Some(n) = news {
            match n {
                Arrived::Bytes(i, bytes) => {
                    // Kept unless already passed.
                    if i.checked_mul(PIECE_SIZE).is_some_and(|at| at >= pos) {
                        held.insert(i, bytes);
                    }
                    pieces.mark(Arrived::Piece(i));
                }
                n => pieces.mark(n),
            }
            news = arrived.try_recv().ok();
        }
    }
    out.flush().map_err(BlobError::output)?;
    Ok(plaintext)
}

/// Which pieces of a blob are here, and how far they run unbroken from its
/// start.
struct PieceFrontier {
    size: u64,
    here: Vec<bool>,
    /// The first piece not here.
    frontier: usize,
}

impl PieceFrontier {
    fn new(size: u64) -> Self {
        let pieces = crate::tree::piece_count(size);
        Self {
            size,
            here: vec![false; usize::try_from(pieces).unwrap_or(usize::MAX)],
            frontier: 0,
        }
    }

    fn mark(&mut self, news: Arrived) {
        match news {
            Arrived::All => self.frontier = self.here.len(),
            Arrived::Piece(i) | Arrived::Bytes(i, _) => {
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| self.here.get_mut(i)) {
                    *slot = true;
                }
            }
        }
        while self.here.get(self.frontier) == Some(&true) {
            self.frontier += 1;
        }
    }

    /// Bytes from the blob's start that are all here.
    fn contiguous_bytes(&self) -> u64 {
        (self.frontier as u64)
            .saturating_mul(crate::tree::PIECE_SIZE)
            .min(self.size)
    }
}

/// [`open`] into the file `dest`: writes a hidden temporary file beside it,
/// syncs it and links it to `dest` only once the whole blob verified and
/// decrypted. On error nothing is left under either name; an existing `dest`
/// is never replaced (an error says it exists). Returns the plaintext size.
pub fn open_to_path(
    store: &BlobStore,
    hash: &BlobHash,
    key: &FileKey,
    dest: &Path,
) -> Result<u64, BlobError> {
    let temp = temp_path_for(dest)?;
    open_to_path_via(store, hash, key, dest, &temp)
}

/// The hidden temporary file [`open_to_path`] would write `dest` through:
/// `.NAME.<random>.part` beside it. A caller that must find leftovers after
/// a crash (the temporary file holds plaintext) records it first and uses
/// [`open_to_path_via`].
pub fn temp_path_for(dest: &Path) -> Result<PathBuf, BlobError> {
    let name = dest.file_name().ok_or_else(|| {
        BlobError::io(
            "open",
            dest,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        )
    })?;
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok(dir.join(format!(
        ".{}.{:016x}.part",
        name.to_string_lossy(),
        rand::random::<u64>()
    )))
}

/// [`open_to_path`] through the temporary file `temp` (beside `dest`, from
/// [`temp_path_for`]), created readable by its owner only.
pub fn open_to_path_via(
    store: &BlobStore,
    hash: &BlobHash,
    key: &FileKey,
    dest: &Path,
    temp: &Path,
) -> Result<u64, BlobError> {
    write_via(dest, temp, |out| open(store, hash, key, out))
}

/// Writes a file through a hidden temporary one, as [`open_to_path_via`]
/// does, with the plaintext `fill` writes: `temp` (beside `dest`, from
/// [`temp_path_for`]) is created readable by its owner only, synced, and
/// linked to `dest` only if `fill` succeeds. On error nothing is left under
/// either name; an existing `dest` is never replaced. Returns what `fill`
/// returns (the plaintext size).
pub fn write_via(
    dest: &Path,
    temp: &Path,
    fill: impl FnOnce(&mut Flushing) -> Result<u64, BlobError>,
) -> Result<u64, BlobError> {
    let dir = match temp.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let temp = TempPath(temp.to_owned());
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&temp.0).at("create", &temp.0)?;
    // Synced behind the writes as it grows: the final sync finds little left.
    let mut writer = Flushing::new(file).at("create", &temp.0)?;
    let plaintext = fill(&mut writer).map_err(|e| match e {
        BlobError::Output(e) => BlobError::io("write", dest, e),
        BlobError::DiskFull { path: None } => BlobError::DiskFull {
            path: Some(dest.to_owned()),
        },
        other => other,
    })?;
    drop(writer.finish().at("write", dest)?);
    // A link, not a rename: it fails rather than replace a file that
    // appeared at `dest` meanwhile. The temporary name goes with `temp`.
    fs::hard_link(&temp.0, dest).at("link into", dest)?;
    drop(temp);
    sync_dir(&dir)?;
    Ok(plaintext)
}

/// A temporary file that is removed unless disarmed.
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_trip() {
        let c = CHUNK_SIZE as u64;
        for plain in [0, 1, c - 1, c, c + 1, 2 * c, 5 * c + 17, 1 << 33] {
            let sealed = ciphertext_size(plain);
            assert_eq!(plaintext_size(sealed), Some(plain), "{plain}");
        }
        assert_eq!(ciphertext_size(0), 16);
        // Sizes no file seals to: empty, a tag cut short, a lone tail tag.
        for bad in [0, 1, 15, SEALED_CHUNK as u64 + 3, SEALED_CHUNK as u64 + 16] {
            assert_eq!(plaintext_size(bad), None, "{bad}");
        }
        for huge in [u64::MAX, u64::MAX - 1] {
            if let Some(plain) = plaintext_size(huge) {
                assert_eq!(ciphertext_size(plain), huge);
            }
        }
        assert_eq!(ciphertext_size(u64::MAX), u64::MAX);
    }

    #[test]
    fn debug_hides_the_key() {
        let key = FileKey::generate();
        assert_eq!(format!("{key:?}"), "FileKey(<secret>)");
        let sealed = SealedBlob {
            hash: BlobHash::from_bytes([0; 32]),
            size: 16,
            plaintext_size: 0,
            key,
        };
        assert!(!format!("{sealed:?}").contains(&format!("{:?}", sealed.key.key)));
    }

    #[test]
    fn chunk_reader_marks_the_last_chunk() {
        for len in [0usize, 1, 9, 10, 11, 20, 21] {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut reader = ChunkReader::new(&data[..]);
            let mut got = Vec::new();
            let mut buf = [0u8; 10];
            loop {
                let (n, last) = reader.next_chunk(&mut buf).unwrap();
                got.push((buf[..n].to_vec(), last));
                if last {
                    break;
                }
            }
            let expected: Vec<_> = if len == 0 {
                vec![(vec![], true)]
            } else {
                let parts: Vec<_> = data.chunks(10).collect();
                let n = parts.len();
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (p.to_vec(), i + 1 == n))
                    .collect()
            };
            assert_eq!(got, expected, "len {len}");
        }
    }
}
