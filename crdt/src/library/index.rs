//! [`BlobIndex`]: which files of a library hold a blob, brought up to date
//! from the changes since it was last read rather than from every file.
//!
//! Why: a member's pin pass asks, for each live pin request and each blob
//! it stores, which file of its departments' libraries that blob is; a
//! piece server asks whether a blob is listed at all. A library keeps
//! every file ever shared (a year at 1,000 files a day: 365,000), and
//! reading each of them at every pass cost a member's pass more every day
//! (BENCHMARKS.md, "A year of pinning"). The index costs one read of each
//! file's blob once, then the size of what changed.

use std::collections::HashMap;

use automerge::legacy::{Key, OpType};
use automerge::{Automerge, ChangeHash, ScalarValue};

use super::record::Packed;
use super::{FileEntry, Library};
use crate::read::object_path;

/// Blob → the ids of the files that name it, at some heads of a library.
#[derive(Default)]
pub struct BlobIndex {
    heads: Vec<ChangeHash>,
    files: HashMap<String, Vec<String>>,
}

impl BlobIndex {
    /// Brings the index to `doc`'s heads: the first time (or if `doc` is
    /// not a later state of what was read) by reading each file's blob,
    /// then from the operations of the changes since.
    pub fn refresh(&mut self, doc: &Automerge) {
        let heads = doc.get_heads();
        if heads == self.heads {
            return;
        }
        let later = !self.heads.is_empty()
            && self
                .heads
                .iter()
                .all(|h| doc.get_change_meta_by_hash(h).is_some());
        if later {
            for change in doc.get_changes(&self.heads) {
                for op in change.decode().operations {
                    self.take(doc, op);
                }
            }
        } else {
            self.files.clear();
            for (blob, id) in Library::new(doc).blobs() {
                self.add(blob, id);
            }
        }
        self.heads = heads;
    }

    /// The ids of the files whose blob is `blob` (as of the last refresh).
    pub fn files_of(&self, blob: &str) -> &[String] {
        self.files.get(blob).map_or(&[], Vec::as_slice)
    }

    /// The files of `library` whose blob is `blob`, found through the index
    /// (`library` read at the heads of the last refresh). Each file is
    /// read to check: the index keeps every blob it saw a file write.
    pub fn files(&self, library: &Library<'_>, blob: &str) -> Vec<FileEntry> {
        self.files_of(blob)
            .iter()
            .filter_map(|id| library.file(id))
            .filter(|f| f.blob == blob)
            .collect()
    }

    /// How many blobs it knows.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether it knows no blob.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Takes in one operation: a file's packed record written on its shelf,
    /// or a map record's `blob`. (A file's blob is written once, as it is
    /// shared; one written again stays listed under its old blob too:
    /// [`Self::files`] checks the file it finds.)
    fn take(&mut self, doc: &Automerge, op: automerge::legacy::Op) {
        let (Key::Map(key), OpType::Put(ScalarValue::Str(text))) = (&op.key, &op.action) else {
            return;
        };
        let Some(path) = object_path(doc, &op.obj.to_string()) else {
            return;
        };
        let on_shelf =
            matches!(path.as_slice(), [files, shelf] if files == "files" && super::is_shelf(shelf));
        if on_shelf && super::is_file_id(key) {
            if let Ok(record) = Packed::decode(text) {
                self.add(record.blob, key.to_string());
            }
        } else if key.as_str() == "blob" {
            if let Some(id) = file_of(path) {
                self.add(text.to_string(), id);
            }
        }
    }

    fn add(&mut self, blob: String, id: String) {
        let ids = self.files.entry(blob).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
}

/// The file whose map record sits at `path` (on a shelf, or directly in
/// `files`), if it is one.
fn file_of(mut path: Vec<String>) -> Option<String> {
    match path.as_slice() {
        [files, shelf, _] if files == "files" && super::is_shelf(shelf) => path.pop(),
        [files, id] if files == "files" && !super::is_shelf(id) => path.pop(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::ActorId;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::library::write::{self, NewFile};
    use crate::library::{file_id, genesis};
    use crate::Signer;

    fn share(doc: &mut Automerge, who: &Signer, n: u64) -> (String, String) {
        let id = file_id(&who.id(), n.to_be_bytes());
        let blob = blake3::hash(&n.to_be_bytes()).to_hex().to_string();
        let mut tx = doc.transaction();
        write::share(
            &mut tx,
            &NewFile {
                id: &id,
                name: &format!("f{n}"),
                size: 1,
                media_type: "text/plain",
                blob: &blob,
                blob_size: 41,
                key: "00",
                uploader: who.id(),
                shared_at: n as i64,
                entries: None,
            },
        )
        .unwrap();
        tx.commit();
        (blob, id)
    }

    /// The index read whole from `doc`, as a first refresh reads it.
    fn whole(doc: &Automerge) -> HashMap<String, Vec<String>> {
        let mut fresh = BlobIndex::default();
        fresh.refresh(doc);
        fresh.files
    }

    #[test]
    fn later_files_are_found_from_the_changes_since() {
        let ada = Signer::from_secret(rand::random());
        let mut doc = genesis("d").unwrap();
        doc.set_actor(ActorId::from(b"ada".to_vec()));
        let (b0, id0) = share(&mut doc, &ada, 0);
        let mut index = BlobIndex::default();
        index.refresh(&doc);
        assert_eq!(index.files_of(&b0), [id0.as_str()]);

        let (b1, id1) = share(&mut doc, &ada, 1);
        let mut tx = doc.transaction();
        write::hold(&mut tx, &id0, ada.id(), false).unwrap();
        tx.commit();
        index.refresh(&doc);
        assert_eq!(index.files_of(&b1), [id1]);
        assert_eq!(index.files_of(&b0), [id0]);
        assert!(index.files_of("ff").is_empty());
        assert_eq!(index.files, whole(&doc));
    }

    /// Two members sharing on branches that merge, in random order and
    /// grouping: the index kept up to date change by change always equals
    /// one read whole.
    #[test]
    fn kept_up_to_date_it_equals_one_read_whole() {
        let seed: u64 = rand::random();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let people = [
            Signer::from_secret(rand::random()),
            Signer::from_secret(rand::random()),
        ];
        let mut docs = [genesis("d").unwrap(), genesis("d").unwrap()];
        docs[0].set_actor(ActorId::from(b"a".to_vec()));
        docs[1].set_actor(ActorId::from(b"b".to_vec()));
        let mut index = BlobIndex::default();
        for n in 0..60 {
            let i = rng.gen_range(0..2);
            share(&mut docs[i], &people[i], n);
            if rng.gen_bool(0.3) {
                let (left, right) = docs.split_at_mut(1);
                left[0].merge(&mut right[0]).unwrap();
            }
            if rng.gen_bool(0.5) {
                index.refresh(&docs[0]);
                assert_eq!(index.files, whole(&docs[0]), "seed {seed}");
            }
        }
    }

    #[test]
    fn a_document_that_is_not_later_is_read_whole() {
        let ada = Signer::from_secret(rand::random());
        let mut one = genesis("d").unwrap();
        one.set_actor(ActorId::from(b"one".to_vec()));
        let mut other = one.clone();
        other.set_actor(ActorId::from(b"other".to_vec()));
        let (b1, _) = share(&mut one, &ada, 1);
        let (b2, id2) = share(&mut other, &ada, 2);
        let mut index = BlobIndex::default();
        index.refresh(&one);
        index.refresh(&other);
        assert!(index.files_of(&b1).is_empty(), "what `other` lacks is gone");
        assert_eq!(index.files_of(&b2), [id2]);
        let mut tx = other.transaction();
        tx.put(automerge::ROOT, "x", 1).unwrap();
        tx.commit();
        index.refresh(&other);
        assert_eq!(index.len(), 1);
    }
}
