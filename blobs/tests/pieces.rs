//! Moving a blob between two stores piece by piece: any order, resuming
//! after a restart, refusing hostile pieces, and housekeeping.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{bytes, rng, TestStore};
use meshwork_blobs::{
    check_piece, encoded_piece_len, open, piece_count, piece_range, BlobError, BlobHash, BlobStore,
    PieceError, PieceStatus, Progress, SealedBlob, MAX_BLOB_SIZE, PIECE_SIZE,
};
use rand::seq::SliceRandom;

/// Seals `len` random bytes into a fresh store.
fn source(name: &str, seed: u64, len: usize) -> (TestStore, SealedBlob, Vec<u8>) {
    let mut rng = rng(name, seed);
    let a = TestStore::new();
    let plaintext = bytes(&mut rng, len);
    let sealed = a.seal(&plaintext);
    (a, sealed, plaintext)
}

fn shuffled(name: &str, seed: u64, pieces: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (0..pieces).collect();
    order.shuffle(&mut rng(name, seed));
    order
}

fn blob_files(t: &TestStore, hash: &BlobHash) -> (Vec<u8>, Vec<u8>) {
    let data = fs::read(t.path().join(hash.to_hex())).unwrap();
    let ob = fs::read(t.path().join(format!("{}.obao", hash.to_hex()))).unwrap();
    (data, ob)
}

fn partial_files(t: &TestStore, hash: &BlobHash) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = t.path().join("partial");
    ["", ".obao", ".bitmap"]
        .iter()
        .map(|ext| {
            let path = dir.join(format!("{}{ext}", hash.to_hex()));
            let bytes = fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect()
}

#[test]
fn transfer_in_shuffled_order() {
    let len = 5 * PIECE_SIZE as usize + 54_321; // 6 pieces after sealing
    let (a, sealed, plaintext) = source("transfer_in_shuffled_order", 10, len);
    let b = TestStore::new();
    let pieces = piece_count(sealed.size);
    assert_eq!(pieces, 6);
    let order = shuffled("transfer order", 11, pieces);
    println!("order {order:?}");

    for (n, &index) in order.iter().enumerate() {
        let piece = a.store.read_piece(&sealed.hash, index).unwrap();
        let range = piece_range(sealed.size, index).unwrap();
        assert_eq!(
            Some(piece.as_bytes().len() as u64),
            encoded_piece_len(sealed.size, index)
        );
        assert!(
            piece.as_bytes().len() as u64 > range.end - range.start,
            "a proof"
        );
        let status = b
            .store
            .write_piece(&sealed.hash, sealed.size, index, piece.as_bytes())
            .unwrap();
        let last = n + 1 == order.len();
        assert_eq!(
            status,
            if last {
                PieceStatus::Completed
            } else {
                PieceStatus::Stored
            }
        );
        assert_eq!(b.store.has(&sealed.hash).unwrap(), last);
    }

    // Same bytes, same outboard, nothing left in partial/.
    assert_eq!(b.store.list().unwrap(), vec![sealed.hash]);
    assert!(blob_files(&a, &sealed.hash) == blob_files(&b, &sealed.hash));
    assert!(fs::read_dir(b.path().join("partial"))
        .unwrap()
        .next()
        .is_none());
    assert_eq!(b.store.missing_pieces(&sealed.hash).unwrap(), Some(vec![]));

    // B opens it, and serves the same pieces A did.
    let mut out = Vec::new();
    open(&b.store, &sealed.hash, &sealed.key, &mut out).unwrap();
    assert!(out == plaintext);
    for index in 0..pieces {
        assert_eq!(
            b.store.read_piece(&sealed.hash, index).unwrap(),
            a.store.read_piece(&sealed.hash, index).unwrap()
        );
    }
    // A piece that arrives late changes nothing.
    let piece = a.store.read_piece(&sealed.hash, 0).unwrap();
    let status = b
        .store
        .write_piece(&sealed.hash, sealed.size, 0, piece.as_bytes())
        .unwrap();
    assert_eq!(status, PieceStatus::Duplicate);
}

#[test]
fn small_blobs_transfer() {
    // The last one seals to exactly one piece.
    for len in [0, 1, 20_000, PIECE_SIZE as usize - 64] {
        let (a, sealed, plaintext) = source("small_blobs_transfer", 12 + len as u64, len);
        let b = TestStore::new();
        assert_eq!(piece_count(sealed.size), 1);
        let piece = a.store.read_piece(&sealed.hash, 0).unwrap();
        let status = b
            .store
            .write_piece(&sealed.hash, sealed.size, 0, piece.as_bytes())
            .unwrap();
        assert_eq!(status, PieceStatus::Completed);
        let mut out = Vec::new();
        open(&b.store, &sealed.hash, &sealed.key, &mut out).unwrap();
        assert!(out == plaintext, "len {len}");
    }
}

#[test]
fn a_restart_resumes_with_the_missing_half() {
    let (a, sealed, plaintext) = source("a_restart_resumes", 20, 9 * PIECE_SIZE as usize);
    let pieces = piece_count(sealed.size);
    let order = shuffled("resume order", 21, pieces);
    let (first, second) = order.split_at(order.len() / 2);

    let b = TestStore::new();
    let progress = b.store.prepare(&sealed.hash, sealed.size).unwrap();
    assert_eq!(
        progress,
        Progress {
            size: sealed.size,
            pieces,
            present: 0
        }
    );
    for &index in first {
        let piece = a.store.read_piece(&sealed.hash, index).unwrap();
        b.store
            .write_piece(&sealed.hash, sealed.size, index, piece.as_bytes())
            .unwrap();
    }

    let b = b.reopen();
    assert_eq!(b.store.list_partial().unwrap(), vec![sealed.hash]);
    let mut expected = second.to_vec();
    expected.sort();
    assert_eq!(
        b.store.missing_pieces(&sealed.hash).unwrap(),
        Some(expected)
    );
    let progress = b.store.progress(&sealed.hash).unwrap().unwrap();
    assert_eq!(progress.present, first.len() as u64);
    assert!(!progress.is_complete());
    // A piece the download has can already be served.
    assert_eq!(
        b.store.read_piece(&sealed.hash, first[0]).unwrap(),
        a.store.read_piece(&sealed.hash, first[0]).unwrap()
    );
    assert!(matches!(
        b.store.read_piece(&sealed.hash, second[0]),
        Err(BlobError::NoSuchPiece { .. })
    ));

    for &index in second {
        let piece = a.store.read_piece(&sealed.hash, index).unwrap();
        b.store
            .write_piece(&sealed.hash, sealed.size, index, piece.as_bytes())
            .unwrap();
    }
    assert!(b.store.has(&sealed.hash).unwrap());
    assert!(b.store.list_partial().unwrap().is_empty());
    let mut out = Vec::new();
    open(&b.store, &sealed.hash, &sealed.key, &mut out).unwrap();
    assert!(out == plaintext);
}

#[test]
fn a_crash_never_claims_unsynced_pieces() {
    let (a, sealed, _) = source("a_crash_never_claims", 30, 9 * PIECE_SIZE as usize);
    let dir = tempfile::tempdir().unwrap();
    let write = |store: &BlobStore, index: u64| {
        let piece = a.store.read_piece(&sealed.hash, index).unwrap();
        store
            .write_piece(&sealed.hash, sealed.size, index, piece.as_bytes())
            .unwrap();
    };

    // Synced every 2 pieces; "crash" (no flush on drop) after 5.
    let b = BlobStore::open(dir.path()).unwrap().with_sync_every(2);
    for index in 0..5 {
        write(&b, index);
    }
    assert_eq!(b.store_missing(&sealed.hash).len(), 5);
    std::mem::forget(b);

    let b = BlobStore::open(dir.path()).unwrap();
    let missing = b.store_missing(&sealed.hash);
    assert_eq!(missing, (4..piece_count(sealed.size)).collect::<Vec<_>>());
    for index in missing {
        write(&b, index);
    }
    assert!(b.has(&sealed.hash).unwrap());
}

#[test]
fn syncs_wait_for_their_interval() {
    let (a, sealed, _) = source("syncs_wait_for_their_interval", 31, 9 * PIECE_SIZE as usize);
    let dir = tempfile::tempdir().unwrap();
    // Every piece would be synced, but not twice within an hour: a "crash"
    // after 5 pieces loses all five (the first sync is an hour away).
    let b = BlobStore::open(dir.path())
        .unwrap()
        .with_sync_every(1)
        .with_sync_interval(std::time::Duration::from_secs(3600));
    for index in 0..5 {
        let piece = a.store.read_piece(&sealed.hash, index).unwrap();
        b.write_piece(&sealed.hash, sealed.size, index, piece.as_bytes())
            .unwrap();
    }
    std::mem::forget(b);
    let b = BlobStore::open(dir.path()).unwrap();
    let all: Vec<u64> = (0..piece_count(sealed.size)).collect();
    assert_eq!(b.store_missing(&sealed.hash), all);
}

/// A reader following a download finishes with the last piece's bytes;
/// the blob is synced into place after, by `finish_download`.
#[test]
fn the_last_piece_of_a_followed_download_waits_for_finish() {
    let (a, sealed, _) = source("last_piece_waits_for_finish", 32, 3 * PIECE_SIZE as usize);
    let (hash, size) = (&sealed.hash, sealed.size);
    let b = TestStore::new();
    let pieces = piece_count(size);
    let write = |index: u64| {
        let piece = a.store.read_piece(hash, index).unwrap();
        b.store
            .write_piece_data(hash, size, index, piece.as_bytes())
            .unwrap()
            .0
    };
    for index in 0..pieces - 1 {
        assert_eq!(write(index), PieceStatus::Stored);
    }
    // Finishing early is refused: a piece is missing.
    assert!(matches!(
        b.store.finish_download(hash),
        Err(BlobError::Incomplete { .. })
    ));
    assert_eq!(write(pieces - 1), PieceStatus::Full);
    assert!(!b.store.has(hash).unwrap(), "not in place before finish");
    assert_eq!(write(0), PieceStatus::Duplicate);
    b.store.finish_download(hash).unwrap();
    assert!(b.store.has(hash).unwrap());
    assert_eq!(blob_files(&b, hash), blob_files(&a, hash));
    // Again, or for a blob complete already: nothing to do.
    b.store.finish_download(hash).unwrap();
    assert!(matches!(
        b.store.finish_download(&BlobHash::from_bytes([7; 32])),
        Err(BlobError::NotFound(_))
    ));
}

trait Missing {
    fn store_missing(&self, hash: &BlobHash) -> Vec<u64>;
}

impl Missing for BlobStore {
    fn store_missing(&self, hash: &BlobHash) -> Vec<u64> {
        self.missing_pieces(hash).unwrap().unwrap()
    }
}

/// Every way a peer can get a piece wrong: refused with the right error,
/// blamed on the peer, and not a byte of the download changed.
#[test]
fn hostile_pieces_are_refused_and_change_nothing() {
    let len = 4 * PIECE_SIZE as usize;
    let (a, sealed, _) = source("hostile_pieces", 40, len);
    let (hash, size) = (sealed.hash, sealed.size);
    // Another blob of the same size.
    let other = a.seal(&vec![0u8; len]);
    assert_eq!(other.size, size);

    let b = TestStore::new();
    for index in [0, 3] {
        let piece = a.store.read_piece(&hash, index).unwrap();
        b.store
            .write_piece(&hash, size, index, piece.as_bytes())
            .unwrap();
    }
    b.store.flush().unwrap();
    let before = partial_files(&b, &hash);
    let missing = b.store.missing_pieces(&hash).unwrap();

    let index = 1;
    let good = a.store.read_piece(&hash, index).unwrap().into_bytes();
    let range = piece_range(size, index).unwrap();
    let proof_len = good.len() - (range.end - range.start) as usize;
    assert!(proof_len >= 64);

    let flipped = |at: usize| {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        bad
    };
    let mut appended = good.clone();
    appended.push(0);
    let foreign = a.store.read_piece(&other.hash, index).unwrap().into_bytes();
    let piece_2 = a.store.read_piece(&hash, 2).unwrap().into_bytes();

    type Check = fn(&PieceError) -> bool;
    let cases: Vec<(&str, u64, Vec<u8>, Check)> = vec![
        ("flipped proof byte", index, flipped(0), |e| {
            matches!(e, PieceError::BadProof { .. })
        }),
        ("flipped last proof byte", index, flipped(63), |e| {
            matches!(e, PieceError::BadProof { .. })
        }),
        ("flipped data byte", index, flipped(good.len() - 1), |e| {
            matches!(e, PieceError::BadData { .. })
        }),
        (
            "flipped first data byte",
            index,
            flipped(proof_len + 4 * 64),
            |e| {
                // Somewhere in the middle of the piece: data or an inner pair.
                matches!(e, PieceError::BadData { .. } | PieceError::BadProof { .. })
            },
        ),
        ("truncated", index, good[..good.len() - 1].to_vec(), |e| {
            matches!(e, PieceError::WrongLength { .. })
        }),
        ("empty", index, Vec::new(), |e| {
            matches!(e, PieceError::WrongLength { actual: 0, .. })
        }),
        ("appended", index, appended, |e| {
            matches!(e, PieceError::WrongLength { .. })
        }),
        ("another piece's encoding", index, piece_2, |e| {
            matches!(e, PieceError::BadProof { .. })
        }),
        ("another blob's piece", index, foreign, |e| {
            matches!(e, PieceError::BadProof { .. })
        }),
        ("index past the end", 5, good.clone(), |e| {
            matches!(
                e,
                PieceError::OutOfRange {
                    index: 5,
                    pieces: 5
                }
            )
        }),
        ("huge index", u64::MAX, good.clone(), |e| {
            matches!(e, PieceError::OutOfRange { .. })
        }),
    ];
    for (what, index, encoded, check) in cases {
        let err = b
            .store
            .write_piece(&hash, size, index, &encoded)
            .unwrap_err();
        assert!(check(&err), "{what}: got {err}");
        assert!(err.is_peer_fault(), "{what}: {err}");
        println!("{what}: {err}");
    }

    // Our own mistakes are not the peer's fault, and write nothing either.
    let err = b
        .store
        .write_piece(&hash, size + 1, index, &good)
        .unwrap_err();
    assert!(!err.is_peer_fault());
    let err = b
        .store
        .write_piece(&hash, MAX_BLOB_SIZE + 1, 0, &good)
        .unwrap_err();
    assert!(
        matches!(err, PieceError::Store(BlobError::TooLarge { .. })),
        "{err}"
    );
    assert!(!err.is_peer_fault());

    assert!(partial_files(&b, &hash) == before, "the download changed");
    assert_eq!(b.store.missing_pieces(&hash).unwrap(), missing);
    assert!(!b.store.has(&other.hash).unwrap());

    // The good piece still goes in.
    let status = b.store.write_piece(&hash, size, index, &good).unwrap();
    assert_eq!(status, PieceStatus::Stored);
}

#[test]
fn a_piece_from_a_peer_with_a_size_mismatch_is_refused() {
    let (a, sealed, _) = source("size_mismatch", 41, 3 * PIECE_SIZE as usize);
    let b = TestStore::new();
    b.store.prepare(&sealed.hash, sealed.size).unwrap();
    let piece = a.store.read_piece(&sealed.hash, 0).unwrap();
    // The size the download started with wins, whatever the piece.
    let err = b
        .store
        .write_piece(&sealed.hash, sealed.size + PIECE_SIZE, 0, piece.as_bytes())
        .unwrap_err();
    assert!(matches!(err, PieceError::SizeMismatch { .. }), "{err}");
    assert!(!err.is_peer_fault());
    assert_eq!(b.store.progress(&sealed.hash).unwrap().unwrap().present, 0);
}

#[test]
fn a_corrupt_local_blob_is_not_served() {
    let (a, sealed, _) = source("corrupt_local", 50, 3 * PIECE_SIZE as usize);
    let data = a.path().join(sealed.hash.to_hex());
    let mut bytes = fs::read(&data).unwrap();
    bytes[PIECE_SIZE as usize + 100] ^= 1;
    fs::write(&data, &bytes).unwrap();
    assert!(a.store.read_piece(&sealed.hash, 0).is_ok());
    let err = a.store.read_piece(&sealed.hash, 1).unwrap_err();
    assert!(matches!(err, BlobError::Corrupt { .. }), "{err}");
    let err = a.store.read_piece(&sealed.hash, 99).unwrap_err();
    assert!(
        matches!(err, BlobError::NoSuchPiece { index: 99, .. }),
        "{err}"
    );
    let unknown = BlobHash::from_bytes([3; 32]);
    assert!(matches!(
        a.store.read_piece(&unknown, 0),
        Err(BlobError::NotFound(_))
    ));
}

#[test]
fn pieces_written_from_two_threads_complete_once() {
    let (a, sealed, plaintext) = source("two_threads", 60, 12 * PIECE_SIZE as usize);
    let b = TestStore::new();
    let pieces = piece_count(sealed.size);
    let encoded: Vec<_> = (0..pieces)
        .map(|i| a.store.read_piece(&sealed.hash, i).unwrap())
        .collect();
    let completed: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let (b, encoded, sealed) = (&b, &encoded, &sealed);
                s.spawn(move || {
                    // Both threads write every piece, in opposite orders.
                    let mut order: Vec<u64> = (0..pieces).collect();
                    if w == 1 {
                        order.reverse();
                    }
                    order
                        .into_iter()
                        .map(|i| {
                            b.store
                                .write_piece(
                                    &sealed.hash,
                                    sealed.size,
                                    i,
                                    encoded[i as usize].as_bytes(),
                                )
                                .unwrap()
                        })
                        .filter(|s| *s == PieceStatus::Completed)
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(completed, 1);
    let mut out = Vec::new();
    open(&b.store, &sealed.hash, &sealed.key, &mut out).unwrap();
    assert!(out == plaintext);
}

#[test]
fn housekeeping() {
    let t = TestStore::new();
    let small = t.seal(b"small");
    let big = t.seal(&vec![5u8; 3 * PIECE_SIZE as usize]);
    let mut listed = t.store.list().unwrap();
    listed.sort();
    let mut expected = vec![small.hash, big.hash];
    expected.sort();
    assert_eq!(listed, expected);

    // Outboards: 0 pairs for the small one, one per group boundary for the big one.
    let big_ob = fs::metadata(t.path().join(format!("{}.obao", big.hash.to_hex())))
        .unwrap()
        .len();
    assert!(big_ob > 0 && big_ob.is_multiple_of(64));
    assert_eq!(
        t.store.total_bytes().unwrap(),
        small.size + big.size + big_ob
    );

    // A download counts the pieces it has.
    let donor = TestStore::new();
    let remote = donor.seal(&vec![6u8; 2 * PIECE_SIZE as usize]);
    let piece = donor.store.read_piece(&remote.hash, 0).unwrap();
    t.store
        .write_piece(&remote.hash, remote.size, 0, piece.as_bytes())
        .unwrap();
    assert_eq!(
        t.store.total_bytes().unwrap(),
        small.size + big.size + big_ob + PIECE_SIZE
    );
    assert_eq!(
        t.store.list().unwrap().len(),
        2,
        "a download is not listed as a blob"
    );
    assert_eq!(t.store.list_partial().unwrap(), vec![remote.hash]);

    assert!(t.store.delete(&big.hash).unwrap());
    assert!(!t.store.has(&big.hash).unwrap());
    assert!(!t.store.delete(&big.hash).unwrap());
    assert!(t.store.delete(&remote.hash).unwrap());
    assert!(t.store.list_partial().unwrap().is_empty());
    assert_eq!(t.store.progress(&remote.hash).unwrap(), None);
    assert_eq!(t.store.list().unwrap(), vec![small.hash]);
    assert_eq!(t.store.total_bytes().unwrap(), small.size);
    let names: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "blob, outboard, partial/: {names:?}");
}

#[test]
fn opening_the_store_clears_debris() {
    let t = TestStore::new();
    let kept = t.seal(b"kept");
    let partial = t.path().join("partial");
    fs::write(partial.join("import-0123456789abcdef.tmp"), b"half a seal").unwrap();
    fs::write(partial.join("import-0123456789abcdef.obao.tmp"), b"").unwrap();
    // A download without a bitmap, and an outboard without data.
    let stray = BlobHash::from_bytes([7; 32]);
    fs::write(partial.join(stray.to_hex()), b"").unwrap();
    fs::write(t.path().join(format!("{}.obao", stray.to_hex())), b"").unwrap();
    // Files that are none of ours are left alone.
    fs::write(t.path().join("README"), b"hands off").unwrap();

    let t = t.reopen();
    assert!(fs::read_dir(&partial).unwrap().next().is_none());
    let mut names: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected = vec![kept.hash.to_hex(), format!("{}.obao", kept.hash.to_hex())];
    expected.extend(["README".to_owned(), "partial".to_owned()]);
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn hashes_from_the_network_are_only_hex_names() {
    // A hash is 32 bytes; its file name is 64 hex digits, whatever the peer
    // sends. Parsing refuses anything else.
    assert!("../../etc/passwd".parse::<BlobHash>().is_err());
    let t = TestStore::new();
    let hash = BlobHash::from_bytes([0xff; 32]);
    assert_eq!(t.store.size(&hash).unwrap(), None);
    assert_eq!(t.store.missing_pieces(&hash).unwrap(), None);
    assert!(matches!(
        t.store.write_piece(&hash, 1000, 0, &[0; 1000]),
        Err(PieceError::BadData { .. })
    ));
    assert!(
        t.store.list_partial().unwrap().is_empty(),
        "a refused piece starts nothing"
    );
}

#[test]
fn a_piece_can_be_checked_without_storing_it() {
    let (a, sealed, _) = source("check_piece", 41, 3 * PIECE_SIZE as usize + 5);
    let (hash, size) = (sealed.hash, sealed.size);
    for index in 0..piece_count(size) {
        let piece = a.store.read_piece(&hash, index).unwrap();
        check_piece(&hash, size, index, piece.as_bytes()).unwrap();
    }
    let good = a.store.read_piece(&hash, 1).unwrap().into_bytes();
    // The wrong piece, a flipped byte of data or of proof, a short one: no.
    assert!(check_piece(&hash, size, 2, &good).is_err());
    for at in [0, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        assert!(
            check_piece(&hash, size, 1, &bad).is_err(),
            "flipped at {at}"
        );
    }
    assert!(check_piece(&hash, size, 1, &good[..good.len() - 1]).is_err());
    let other = a.seal(&vec![7u8; 3 * PIECE_SIZE as usize + 5]);
    assert!(check_piece(&other.hash, size, 1, &good).is_err());
}

/// Opens a blob while its pieces arrive in shuffled order, on another thread,
/// as `get` does; the plaintext comes out whole and in order.
#[test]
fn a_download_opens_as_its_pieces_arrive() {
    use meshwork_blobs::{open_growing, Arrived};
    for (seed, len) in [
        (40, 0),
        (41, 70_000),
        (42, 7 * PIECE_SIZE as usize + 12_345),
    ] {
        let name = "a_download_opens_as_its_pieces_arrive";
        let (a, sealed, plaintext) = source(name, seed, len);
        let b = TestStore::new();
        b.store.prepare(&sealed.hash, sealed.size).unwrap();
        let (data, path) = b.store.data_file(&sealed.hash).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let budget = meshwork_blobs::ByteBudget::new(usize::MAX);
        let reader = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut out = Vec::new();
                open_growing(
                    &data,
                    &path,
                    &sealed.hash,
                    sealed.size,
                    &sealed.key,
                    rx,
                    &mut out,
                )
                .map(|n| (n, out))
            });
            // Half the pieces come with their bytes (opened from memory),
            // half only as news (read back from the disk).
            for index in shuffled(name, seed, piece_count(sealed.size)) {
                let piece = a.store.read_piece(&sealed.hash, index).unwrap();
                let (hash, size) = (&sealed.hash, sealed.size);
                if index % 2 == 0 {
                    let (_, bytes) = b
                        .store
                        .write_piece_data(hash, size, index, piece.as_bytes())
                        .unwrap();
                    let start = (index * PIECE_SIZE) as usize;
                    let whole = std::fs::read(a.store.dir().join(hash.to_hex())).unwrap();
                    assert_eq!(bytes, whole[start..start + bytes.len()], "piece {index}");
                    tx.send(Arrived::Bytes(index, budget.hold(bytes).unwrap()))
                        .unwrap();
                } else {
                    b.store
                        .write_piece(hash, size, index, piece.as_bytes())
                        .unwrap();
                    tx.send(Arrived::Piece(index)).unwrap();
                }
            }
            drop(tx);
            reader.join().unwrap()
        });
        let (n, out) = reader.unwrap();
        assert_eq!(n, len as u64);
        assert!(out == plaintext, "len {len}: plaintext differs");
        assert_eq!(budget.held(), 0, "every byte handed over was let go");
        // The handle followed the data file into place (which the reader
        // did not wait for when `write_piece_data` wrote the last piece).
        b.store.finish_download(&sealed.hash).unwrap();
        assert!(b.store.has(&sealed.hash).unwrap());
    }
}

/// A download that stops short ends the opening with `Incomplete` after the
/// prefix it had; one resumed later (pieces already here: `All`) opens whole;
/// the wrong key opens nothing.
#[test]
fn opening_a_download_stops_with_it_and_resumes() {
    use meshwork_blobs::{open_growing, Arrived, FileKey};
    let name = "opening_a_download_stops_with_it_and_resumes";
    let (a, sealed, plaintext) = source(name, 43, 5 * PIECE_SIZE as usize);
    let b = TestStore::new();
    b.store.prepare(&sealed.hash, sealed.size).unwrap();
    let copy = |index: u64| {
        let piece = a.store.read_piece(&sealed.hash, index).unwrap();
        b.store
            .write_piece(&sealed.hash, sealed.size, index, piece.as_bytes())
            .unwrap();
    };
    let (data, path) = b.store.data_file(&sealed.hash).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for index in [0, 1, 3] {
        copy(index);
        tx.send(Arrived::Piece(index)).unwrap();
    }
    drop(tx);
    let mut out = Vec::new();
    let stopped = open_growing(
        &data,
        &path,
        &sealed.hash,
        sealed.size,
        &sealed.key,
        rx,
        &mut out,
    );
    assert!(
        matches!(stopped, Err(BlobError::Incomplete { .. })),
        "{stopped:?}"
    );
    // Only whole chunks of the unbroken prefix (pieces 0 and 1) came out.
    assert!(!out.is_empty() && out.len() < 2 * PIECE_SIZE as usize);
    assert!(plaintext.starts_with(&out));

    for index in (2..piece_count(sealed.size)).filter(|i| *i != 3) {
        copy(index);
    }
    assert!(b.store.has(&sealed.hash).unwrap());
    let (data, path) = b.store.data_file(&sealed.hash).unwrap();
    for (key, opens) in [(FileKey::generate(), false), (sealed.key.clone(), true)] {
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send(Arrived::All).unwrap();
        let mut out = Vec::new();
        let opened = open_growing(&data, &path, &sealed.hash, sealed.size, &key, rx, &mut out);
        if opens {
            assert_eq!(opened.unwrap(), plaintext.len() as u64);
            assert!(out == plaintext);
        } else {
            assert!(
                matches!(opened, Err(BlobError::Decrypt { chunk: 0, .. })),
                "{opened:?}"
            );
            assert!(out.is_empty());
        }
    }
}
