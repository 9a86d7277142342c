//! Documents compacted in the store: a snapshot of a document
//! ([`Snapshot`]: automerge's saved form and the signatures) stands in for
//! the changes it holds, which are deleted in the same atomic batch that
//! writes it. Changes accepted later are stored loose beside it (alone or
//! in bundles), as before, until the next compaction.
//!
//! A snapshot lives in the `changes` tree under its document's key and one
//! more byte, so that every prefix scan of a document (what is stored,
//! forgetting it whole) meets it, and a loose record's key (64 bytes for a
//! change alone, 66 for a bundle) never does.

use meshwork_crdt::signed::Snapshot;
use meshwork_crdt::SignedChange;

use super::{loose_in, Store};
use crate::NodeError;

/// The key of document `doc`'s snapshot.
fn snapshot_key(doc: &[u8; 32]) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[..32].copy_from_slice(doc);
    k
}

/// What compaction did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Changes the snapshot took over (their records deleted).
    pub changes: usize,
    /// The snapshot's size in bytes.
    pub bytes: usize,
}

impl Store {
    /// Document `doc` as stored: its snapshot if it was compacted, and the
    /// changes stored loose since (alone or in bundles).
    pub fn stored(
        &self,
        doc: &[u8; 32],
    ) -> Result<(Option<Snapshot>, Vec<SignedChange>), NodeError> {
        let snapshot = match self.changes.get(snapshot_key(doc))? {
            Some(bytes) => Some(postcard::from_bytes(&bytes)?),
            None => None,
        };
        Ok((snapshot, self.changes(doc)?))
    }

    /// How many changes of `doc` are stored loose (alone or in bundles;
    /// counted from the keys).
    pub fn loose_changes(&self, doc: &[u8; 32]) -> Result<usize, NodeError> {
        let mut n = 0;
        for k in self.changes.scan_prefix(doc).keys() {
            n += loose_in(&k?);
        }
        Ok(n)
    }

    /// Replaces document `doc`'s snapshot with `snapshot`, and deletes
    /// every change of `doc` stored loose, in one atomic batch: a
    /// crash leaves the old state or the new, each whole. Not yet durable:
    /// call [`Self::flush`].
    ///
    /// `snapshot` must hold every change stored for `doc`: take it from the
    /// document loaded, under its lock. (Every change is applied to the
    /// loaded document before it is stored, so the stored ones are among
    /// its changes; one stored after the scan stays beside the snapshot,
    /// which holds it too, and loading skips it.) The changes are not read,
    /// only their keys (which say how many a bundle holds): at 100,000
    /// changes, decoding each to check would cost seconds and churn 50 MB
    /// through the allocator.
    pub fn compact(&self, doc: &[u8; 32], snapshot: &Snapshot) -> Result<Compacted, NodeError> {
        let mut batch = sled::Batch::default();
        let mut done = Compacted::default();
        for k in self.changes.scan_prefix(doc).keys() {
            let k = k?;
            let n = loose_in(&k);
            if n > 0 {
                batch.remove(k);
                done.changes += n;
            }
        }
        let bytes = postcard::to_stdvec(snapshot)?;
        done.bytes = bytes.len();
        batch.insert(snapshot_key(doc).as_slice(), bytes);
        self.changes.apply_batch(batch)?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use meshwork_crdt::automerge::{transaction::Transactable, ChangeHash, ROOT};
    use meshwork_crdt::signed::Rules;
    use meshwork_crdt::{SignedDoc, Signer};

    use super::*;

    fn rebuild(store: &Store, key: &[u8; 32], workspace: ChangeHash) -> SignedDoc {
        let (snapshot, loose) = store.stored(key).unwrap();
        let mut doc = SignedDoc::load(Rules::Roster { workspace }, Vec::new()).unwrap();
        if let Some(s) = snapshot {
            doc = doc.restore(&s).unwrap();
        }
        doc.add_stored(loose).unwrap();
        doc
    }

    #[test]
    fn a_compacted_document_reads_back_whole_and_later_changes_stay_loose() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ada = Signer::from_secret([1; 32]);
        let (mut doc, genesis) = SignedDoc::create_roster(&ada, "Acme", "Ada", 1).unwrap();
        let workspace = doc.heads()[0];
        let key = [7; 32];
        let mut all = vec![genesis];
        for i in 0..20i64 {
            let c = doc.change(&ada, i, |tx| {
                tx.put(ROOT, "name", format!("Acme {i}")).map(|_| ())
            });
            all.push(c.unwrap().unwrap());
        }
        store.put_changes(&key, &all).unwrap();
        assert_eq!(store.loose_changes(&key).unwrap(), 21);
        assert!(store.stored(&key).unwrap().0.is_none());

        let done = store.compact(&key, &doc.snapshot()).unwrap();
        assert_eq!(done.changes, 21, "the snapshot took over every change");
        assert_eq!(store.loose_changes(&key).unwrap(), 0);
        assert!(store.changes(&key).unwrap().is_empty());
        assert!(store.has_changes(&key).unwrap());
        let back = rebuild(&store, &key, workspace);
        assert_eq!(back.heads(), doc.heads());
        assert_eq!(back.len(), doc.len());
        // Its signatures came back: every change can be sent on as it was.
        for c in &all {
            let hash = meshwork_crdt::automerge::Change::from_bytes(c.bytes.clone())
                .unwrap()
                .hash();
            assert_eq!(back.signed_change(&hash).as_ref(), Some(c));
        }

        // A later change is stored beside the snapshot and read with it;
        // one the snapshot holds too (stored after a compaction's scan) is
        // read once.
        let later = doc
            .change(&ada, 99, |tx| tx.put(ROOT, "name", "Later").map(|_| ()))
            .unwrap()
            .unwrap();
        store.put_changes(&key, &[later, all[5].clone()]).unwrap();
        assert_eq!(store.loose_changes(&key).unwrap(), 2);
        let back = rebuild(&store, &key, workspace);
        assert_eq!(back.heads(), doc.heads());
        assert_eq!(back.len(), doc.len());

        // Compacting again folds them in.
        assert_eq!(store.compact(&key, &doc.snapshot()).unwrap().changes, 2);
        assert_eq!(store.loose_changes(&key).unwrap(), 0);
        assert_eq!(rebuild(&store, &key, workspace).heads(), doc.heads());

        // Forgetting the document forgets its snapshot.
        store.remove_changes(&key).unwrap();
        assert!(!store.has_changes(&key).unwrap());
        assert!(store.stored(&key).unwrap().0.is_none());
    }
}
