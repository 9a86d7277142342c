//! Both blob formats open as specified: fixtures sealed by
//! `fixtures/make_fixtures.py`, from the formats' description and not from
//! this crate, open to the plaintext that script sealed; a flipped byte or a
//! key of the other format opens nothing; new files seal in format 2.

mod common;

use common::TestStore;
use meshwork_blobs::{open, open_growing, Arrived, BlobError, BlobHash, FileKey, KeyError};

/// What `make_fixtures.py` seals: `(i * 31 + 7) % 251` for each byte `i`.
fn fixture_plaintext() -> Vec<u8> {
    (0..64 * 1024 + 4464)
        .map(|i: usize| ((i * 31 + 7) % 251) as u8)
        .collect()
}

/// `make_fixtures.py`'s key, as a key of `format`.
fn fixture_key(format: u8) -> FileKey {
    let key: Vec<u8> = (0..32).collect();
    let bytes = match format {
        1 => [key, (0xA0..0xB0).collect()].concat(),
        _ => [vec![2], key].concat(),
    };
    FileKey::from_bytes(&bytes).unwrap()
}

fn fixture(format: u8) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/v{format}-two-chunks.sealed",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap()
}

/// Imports `sealed` as a blob; returns its hash and size.
fn import(t: &TestStore, sealed: &[u8]) -> (BlobHash, u64) {
    let mut import = t.store.import_writer().unwrap();
    import.write(sealed).unwrap();
    import.finish().unwrap()
}

#[test]
fn both_formats_open_as_specified() {
    for format in [1, 2] {
        let t = TestStore::new();
        let (hash, size) = import(&t, &fixture(format));
        let key = fixture_key(format);
        assert_eq!(key.format(), format);

        let mut out = Vec::new();
        let n = open(&t.store, &hash, &key, &mut out).unwrap();
        assert_eq!(n, out.len() as u64);
        assert!(out == fixture_plaintext(), "format {format}");

        // And while it downloads: the same chunks, opened from the data file.
        let (data, path) = t.store.data_file(&hash).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(Arrived::All).unwrap();
        let mut out = Vec::new();
        open_growing(&data, &path, &hash, size, &key, rx, &mut out).unwrap();
        assert!(out == fixture_plaintext(), "format {format}, growing");
    }
}

#[test]
fn a_flipped_byte_or_the_other_format_opens_nothing() {
    for format in [1, 2] {
        // A flip in the second (last) chunk: the first opens, then it stops.
        let mut sealed = fixture(format);
        sealed[70_000] ^= 1;
        let t = TestStore::new();
        let (hash, _) = import(&t, &sealed);
        let mut out = Vec::new();
        let err = open(&t.store, &hash, &fixture_key(format), &mut out).unwrap_err();
        assert!(
            matches!(err, BlobError::Decrypt { chunk: 1, .. }),
            "format {format}: {err:?}"
        );

        // The same 32 key bytes under the other format open nothing.
        let (hash, _) = import(&t, &fixture(format));
        let other = fixture_key(3 - format);
        let err = open(&t.store, &hash, &other, Vec::new()).unwrap_err();
        assert!(
            matches!(err, BlobError::Decrypt { chunk: 0, .. }),
            "format {format} opened as {}: {err:?}",
            3 - format
        );
    }
}

#[test]
fn new_files_seal_in_format_two_and_their_keys_round_trip() {
    let t = TestStore::new();
    let sealed = t.seal(b"minutes of the Tuesday meeting");
    assert_eq!(sealed.key.format(), 2);
    let bytes = sealed.key.to_bytes();
    assert_eq!((bytes.len(), bytes[0]), (33, 2));
    let key = FileKey::from_bytes(&bytes).unwrap();
    let mut out = Vec::new();
    open(&t.store, &sealed.hash, &key, &mut out).unwrap();
    assert_eq!(out, b"minutes of the Tuesday meeting");

    let v1 = fixture_key(1);
    assert_eq!(FileKey::from_bytes(&v1.to_bytes()), Ok(v1));
}

#[test]
fn bytes_that_are_no_key_are_refused() {
    let v2 = fixture_key(2).to_bytes();
    let v1 = fixture_key(1).to_bytes();
    for bad in [
        &[][..],
        &v2[..32],
        &v1[..47],
        &[v1.as_slice(), &[0]].concat(),
        &[v2.as_slice(), &[0]].concat(),
        // 33 bytes under a tag that is no format.
        &[&[0u8][..], &v2[1..]].concat(),
        &[&[1u8][..], &v2[1..]].concat(),
    ] {
        assert_eq!(
            FileKey::from_bytes(bad),
            Err(KeyError::Malformed),
            "{} bytes",
            bad.len()
        );
    }
    // A later format's key says so, whatever its length.
    for newer in [&[3u8][..], &[&[3u8][..], &v2[1..]].concat(), &[9u8; 70]] {
        assert_eq!(
            FileKey::from_bytes(newer),
            Err(KeyError::NewerFormat(newer[0]))
        );
    }
}
