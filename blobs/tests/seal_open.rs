//! Sealing a file into the store and opening it again; tampering and wrong
//! keys; the ciphertext gives nothing away.

mod common;

use std::fs;

use common::{bytes, files, rng, Dribble, TestStore};
use meshwork_blobs::crypt::CHUNK_SIZE;
use meshwork_blobs::{
    ciphertext_size, open, open_to_path, seal, BlobError, BlobHash, FileKey, PIECE_SIZE,
};
use rand::SeedableRng;

const SEALED_CHUNK: usize = CHUNK_SIZE + 16;

fn sizes() -> Vec<usize> {
    let c = CHUNK_SIZE;
    let p = PIECE_SIZE as usize;
    // Around a chunk, around a 16-chunk batch, several pieces and a tail.
    vec![
        0,
        1,
        c - 1,
        c,
        c + 1,
        16 * c,
        16 * c + 1,
        5 * p + 12_345,
        2 * 16 * c + 7,
    ]
}

#[test]
fn round_trip_at_every_boundary() {
    let mut rng = rng("round_trip_at_every_boundary", 1);
    let t = TestStore::new();
    for len in sizes() {
        let plaintext = bytes(&mut rng, len);
        let sealed = t.seal(&plaintext);
        assert_eq!(sealed.plaintext_size, len as u64);
        assert_eq!(sealed.size, ciphertext_size(len as u64), "len {len}");
        assert_eq!(t.store.size(&sealed.hash).unwrap(), Some(sealed.size));

        // The id is the plain BLAKE3 hash of the stored ciphertext.
        let ciphertext = fs::read(t.path().join(sealed.hash.to_hex())).unwrap();
        assert_eq!(sealed.hash, BlobHash::from(blake3::hash(&ciphertext)));

        let mut out = Vec::new();
        let n = open(&t.store, &sealed.hash, &sealed.key, &mut out).unwrap();
        assert_eq!(n, len as u64);
        assert!(out == plaintext, "len {len}: plaintext differs");
    }
}

#[test]
fn short_reads_seal_the_same_plaintext() {
    let mut rng = rng("short_reads_seal_the_same_plaintext", 2);
    let t = TestStore::new();
    let plaintext = bytes(&mut rng, 3 * CHUNK_SIZE + 5);
    let reader = Dribble {
        data: &plaintext,
        rng: rand::rngs::StdRng::seed_from_u64(3),
    };
    let sealed = seal(&t.store, reader).unwrap();
    let mut out = Vec::new();
    open(&t.store, &sealed.hash, &sealed.key, &mut out).unwrap();
    assert!(out == plaintext);
}

#[test]
fn a_failing_input_leaves_nothing_behind() {
    struct Broken(usize);
    impl std::io::Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("the upload went away"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }
    let t = TestStore::new();
    let err = seal(&t.store, Broken(3 << 20)).unwrap_err();
    assert!(matches!(err, BlobError::Input(_)), "{err}");
    assert!(err.to_string().contains("the upload went away"), "{err}");
    assert!(t.store.list().unwrap().is_empty());
    assert_eq!(files(&t.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn the_store_is_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<meshwork_blobs::BlobStore>();
    send_sync::<FileKey>();
}

#[test]
fn every_seal_has_its_own_key_and_id() {
    let t = TestStore::new();
    let a = t.seal(b"same file");
    let b = t.seal(b"same file");
    assert_ne!(a.hash, b.hash);
    assert_ne!(a.key, b.key);
    assert_eq!(t.store.list().unwrap().len(), 2);
}

#[test]
fn the_plaintext_never_appears_in_the_store() {
    let t = TestStore::new();
    let marker = b"MESHWORK-PLAINTEXT-MARKER-0123456789";
    let plaintext: Vec<u8> = marker.iter().copied().cycle().take(3 << 20).collect();
    let sealed = t.seal(&plaintext);
    let data = t.path().join(sealed.hash.to_hex());
    assert_eq!(fs::metadata(&data).unwrap().len(), sealed.size);
    // Every file of the store: the blob, its outboard, anything else.
    let all = files(&t.path());
    assert!(all.len() >= 2, "{all:?}");
    for path in all {
        let stored = fs::read(&path).unwrap();
        for needle in [&marker[..], &marker[..12], &plaintext[1000..1016]] {
            assert!(
                !stored.windows(needle.len()).any(|w| w == needle),
                "{} contains plaintext",
                path.display()
            );
        }
    }
    // The marker is findable where it is: the search itself works.
    assert!(plaintext.windows(marker.len()).any(|w| w == marker));
}

/// Seals a 3-chunk file, lets `tamper` change the stored ciphertext, and
/// checks that opening fails with `expect` and leaves nothing at the
/// destination.
fn tampered(name: &str, tamper: impl Fn(&mut Vec<u8>), expect: impl Fn(&BlobError) -> bool) {
    let mut rng = rng(name, 4);
    let t = TestStore::new();
    let plaintext = bytes(&mut rng, 3 * CHUNK_SIZE - 100);
    let sealed = t.seal(&plaintext);
    let data = t.path().join(sealed.hash.to_hex());
    let mut ciphertext = fs::read(&data).unwrap();
    tamper(&mut ciphertext);
    fs::write(&data, &ciphertext).unwrap();

    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("report.pdf");
    let err = open_to_path(&t.store, &sealed.hash, &sealed.key, &dest).unwrap_err();
    assert!(expect(&err), "{name}: unexpected error {err}");
    assert!(!dest.exists(), "{name}: a file was left at the destination");
    assert!(
        files(out_dir.path()).is_empty(),
        "{name}: temporary file left"
    );

    // An existing file at the destination is left as it was.
    fs::write(&dest, b"previous version").unwrap();
    open_to_path(&t.store, &sealed.hash, &sealed.key, &dest).unwrap_err();
    assert_eq!(fs::read(&dest).unwrap(), b"previous version");
    assert_eq!(files(out_dir.path()).len(), 1);
}

fn decrypt_error_at(chunk: u64) -> impl Fn(&BlobError) -> bool {
    move |e| matches!(e, BlobError::Decrypt { chunk: c, .. } if *c == chunk)
}

#[test]
fn a_flipped_ciphertext_byte_is_refused() {
    tampered("flip", |c| c[SEALED_CHUNK + 17] ^= 1, decrypt_error_at(1));
}

#[test]
fn a_flipped_tag_byte_is_refused() {
    tampered(
        "flip tag",
        |c| c[SEALED_CHUNK - 1] ^= 0x80,
        decrypt_error_at(0),
    );
}

#[test]
fn swapped_chunks_are_refused() {
    tampered(
        "swap",
        |c| {
            let (first, rest) = c.split_at_mut(SEALED_CHUNK);
            first.swap_with_slice(&mut rest[..SEALED_CHUNK]);
        },
        decrypt_error_at(0),
    );
}

#[test]
fn a_blob_truncated_at_a_chunk_boundary_is_refused() {
    // Two whole chunks remain: a valid size, but chunk 1 was not the last.
    tampered(
        "truncate",
        |c| c.truncate(2 * SEALED_CHUNK),
        decrypt_error_at(1),
    );
}

#[test]
fn a_blob_extended_by_a_chunk_is_refused() {
    tampered(
        "extend",
        |c| {
            let last_full = c[SEALED_CHUNK..2 * SEALED_CHUNK].to_vec();
            c.extend_from_slice(&last_full);
        },
        // Either the size is no sealed size, or the old last chunk fails.
        |e| matches!(e, BlobError::NotSealed { .. } | BlobError::Decrypt { .. }),
    );
}

#[test]
fn a_blob_cut_mid_chunk_is_refused() {
    tampered(
        "cut",
        |c| c.truncate(c.len() - 20),
        |e| matches!(e, BlobError::NotSealed { .. } | BlobError::Decrypt { .. }),
    );
}

#[test]
fn a_wrong_key_opens_nothing() {
    let t = TestStore::new();
    let sealed = t.seal(&vec![7u8; 100_000]);
    let dest = t.dir.path().join("out.bin");
    let err = open_to_path(&t.store, &sealed.hash, &FileKey::generate(), &dest).unwrap_err();
    assert!(matches!(err, BlobError::Decrypt { chunk: 0, .. }), "{err}");
    assert!(!dest.exists());
    let other = t.seal(b"another file");
    let err = open(&t.store, &sealed.hash, &other.key, Vec::new()).unwrap_err();
    assert!(matches!(err, BlobError::Decrypt { chunk: 0, .. }), "{err}");
}

#[test]
fn open_to_path_writes_the_file() {
    let mut rng = rng("open_to_path_writes_the_file", 5);
    let t = TestStore::new();
    let plaintext = bytes(&mut rng, 2 * CHUNK_SIZE + 3);
    let sealed = t.seal(&plaintext);
    // A file already at the destination is never replaced.
    let taken = t.dir.path().join("taken.bin");
    fs::write(&taken, b"old").unwrap();
    let err = open_to_path(&t.store, &sealed.hash, &sealed.key, &taken).unwrap_err();
    assert!(matches!(&err, BlobError::Io { .. }), "{err}");
    assert_eq!(fs::read(&taken).unwrap(), b"old");
    fs::remove_file(&taken).unwrap();
    let dest = t.dir.path().join("out.bin");
    let n = open_to_path(&t.store, &sealed.hash, &sealed.key, &dest).unwrap();
    assert_eq!(n, plaintext.len() as u64);
    assert!(fs::read(&dest).unwrap() == plaintext);
    // Only the destination and the store are in the directory.
    let names: Vec<_> = fs::read_dir(t.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn opening_an_unknown_blob_or_a_raw_blob_fails_cleanly() {
    let t = TestStore::new();
    let unknown = BlobHash::from_bytes([9; 32]);
    let key = FileKey::generate();
    assert!(
        matches!(open(&t.store, &unknown, &key, Vec::new()), Err(BlobError::NotFound(h)) if h == unknown)
    );
    // A blob imported as is, with a size no sealing produces.
    let (raw, _) = t.store.import(&b"not sealed"[..]).unwrap();
    assert!(matches!(
        open(&t.store, &raw, &key, Vec::new()),
        Err(BlobError::NotSealed { size: 10, .. })
    ));
}

#[test]
fn a_blob_under_the_wrong_name_is_caught_by_the_hash() {
    // Every tag opens, but the bytes are not the ones the name promises: a
    // mix-up that authenticated decryption alone cannot see.
    let t = TestStore::new();
    let sealed = t.seal(b"first");
    let ciphertext = fs::read(t.path().join(sealed.hash.to_hex())).unwrap();
    let wrong_name = BlobHash::from_bytes([1; 32]);
    fs::write(t.path().join(wrong_name.to_hex()), &ciphertext).unwrap();
    let mut out = Vec::new();
    let err = open(&t.store, &wrong_name, &sealed.key, &mut out).unwrap_err();
    assert!(matches!(err, BlobError::Corrupt { .. }), "{err}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_its_own_error() {
    let t = TestStore::new();
    let sealed = t.seal(&vec![1u8; 200_000]);
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let err = open(&t.store, &sealed.hash, &sealed.key, full).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert!(err.to_string().contains("disk full"), "{err}");
}

#[test]
fn io_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let err = meshwork_blobs::BlobStore::open(&file).unwrap_err();
    assert!(err.to_string().contains("not-a-dir"), "{err}");

    let t = TestStore::new();
    let sealed = t.seal(b"x");
    let dest = dir.path().join("missing-dir").join("out");
    let err = open_to_path(&t.store, &sealed.hash, &sealed.key, &dest).unwrap_err();
    assert!(err.to_string().contains("missing-dir"), "{err}");
}
