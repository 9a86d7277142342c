//! Listing the complete blobs: always what the directory holds, though it
//! is read again only when it changed (its modification time tells).

mod common;

use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::TestStore;
use meshwork_blobs::store::LISTING_SETTLED;
use meshwork_blobs::BlobHash;

fn listed(t: &TestStore) -> Vec<BlobHash> {
    let mut blobs = t.store.list().unwrap();
    blobs.sort();
    blobs
}

fn sorted<const N: usize>(mut blobs: [BlobHash; N]) -> Vec<BlobHash> {
    blobs.sort();
    blobs.to_vec()
}

fn changed(dir: &Path) -> SystemTime {
    fs::metadata(dir).unwrap().modified().unwrap()
}

/// Sets the directory's modification time, as if it had last changed then.
fn set_changed(dir: &Path, when: SystemTime) {
    File::open(dir).unwrap().set_modified(when).unwrap();
}

/// Makes the directory look still for longer than [`LISTING_SETTLED`], so
/// that the next listing is kept.
fn settle(dir: &Path) {
    set_changed(dir, SystemTime::now() - LISTING_SETTLED * 2);
}

#[test]
fn every_change_is_listed_even_right_after_a_kept_listing() {
    let t = TestStore::new();
    let (a, b) = (t.seal(b"a").hash, t.seal(b"b").hash);
    settle(&t.path());
    assert_eq!(listed(&t), sorted([a, b]));
    // Gone by hand: a keeper must notice, and fetch it again.
    fs::remove_file(t.path().join(a.to_hex())).unwrap();
    assert_eq!(listed(&t), [b]);
    settle(&t.path());
    assert_eq!(listed(&t), [b]);
    let c = t.seal(b"c").hash;
    assert_eq!(listed(&t), sorted([b, c]));
    settle(&t.path());
    assert_eq!(listed(&t), sorted([b, c]));
    assert!(t.store.delete(&b).unwrap());
    assert_eq!(listed(&t), [c]);
}

#[test]
fn a_still_directory_is_not_read_again() {
    let t = TestStore::new();
    let a = t.seal(b"a").hash;
    settle(&t.path());
    assert_eq!(listed(&t), [a]);
    // A blob put there behind the store's back, with the directory's time
    // set back as it was: the kept listing answers, without reading it.
    let still = changed(&t.path());
    let b = t.seal(b"b").hash;
    set_changed(&t.path(), still);
    assert_eq!(listed(&t), [a]);
    // Once the time moves, the directory is read.
    set_changed(&t.path(), still + Duration::from_millis(1));
    assert_eq!(listed(&t), sorted([a, b]));
}

#[test]
fn a_listing_of_a_directory_that_just_changed_is_not_kept() {
    let t = TestStore::new();
    let a = t.seal(b"a").hash;
    // Changed a moment ago: a change later within the same tick of the file
    // system's clock would leave its time as it is, so the listing is not
    // kept, and the next one reads the directory again.
    let just = changed(&t.path());
    assert_eq!(listed(&t), [a]);
    let b = t.seal(b"b").hash;
    set_changed(&t.path(), just);
    assert_eq!(listed(&t), sorted([a, b]));
}
