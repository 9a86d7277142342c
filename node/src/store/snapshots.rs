//! Documents compacted in the store: a snapshot of a document
//! ([`Snapshot`]: automerge's saved form and the signatures) stands in for
//! the changes it holds, which are deleted in the same atomic batch that
//! writes it. Changes accepted later are stored one by one beside it, as
//! before, until the next compaction.
//!
//! A snapshot lives in the `changes` tree under its document's key and one
//! more byte, so that every prefix scan of a document (what is stored,
//! forgetting it whole) meets it, and a change's 64-byte key never does.

use meshwork_crdt::signed::Snapshot;
use meshwork_crdt::SignedChange;

use super::{Store, CHANGE_KEY};
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
    /// Changes the snapshot took over, deleted one by one.
    pub changes: usize,
    /// The snapshot's size in bytes.
    pub bytes: usize,
}

impl Store {
    /// Document `doc` as stored: its snapshot if it was compacted, and the
    /// changes stored one by one (since the snapshot).
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

    /// How many changes of `doc` are stored one by one.
    pub fn loose_changes(&self, doc: &[u8; 32]) -> Result<usize, NodeError> {
        let mut n = 0;
        for k in self.changes.scan_prefix(doc).keys() {
            n += usize::from(k?.len() == CHANGE_KEY);
        }
        Ok(n)
    }

    /// Replaces document `doc`'s snapshot with `snapshot`, and deletes the
    /// changes stored one by one that it holds (`holds` says which), in one
    /// atomic batch: a crash leaves the old state or the new, each whole.
    /// Not yet durable: call [`Self::flush`].
    pub fn compact(
        &self,
        doc: &[u8; 32],
        snapshot: &Snapshot,
        holds: impl Fn(&SignedChange) -> bool,
    ) -> Result<Compacted, NodeError> {
        let mut batch = sled::Batch::default();
        let mut done = Compacted::default();
        for kv in self.changes.scan_prefix(doc) {
            let (k, v) = kv?;
            if k.len() == CHANGE_KEY && holds(&postcard::from_bytes(&v)?) {
                batch.remove(k);
                done.changes += 1;
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
        // One more, stored but not in the copy that is compacted.
        let mut ahead = SignedDoc::load(Rules::Roster { workspace }, all.clone()).unwrap();
        let later = ahead
            .change(&ada, 99, |tx| tx.put(ROOT, "name", "Later").map(|_| ()))
            .unwrap()
            .unwrap();
        store.put_changes(&key, &[later]).unwrap();
        assert_eq!(store.loose_changes(&key).unwrap(), 22);
        assert!(store.stored(&key).unwrap().0.is_none());

        let snapshot = doc.snapshot();
        let done = store
            .compact(&key, &snapshot, |c| doc.holds_change(&c.bytes))
            .unwrap();
        assert_eq!(done.changes, 21, "the snapshot took over what it holds");
        assert_eq!(store.loose_changes(&key).unwrap(), 1, "the later one stays");
        assert_eq!(store.changes(&key).unwrap().len(), 1);
        assert!(store.has_changes(&key).unwrap());
        let back = rebuild(&store, &key, workspace);
        assert_eq!(back.heads(), ahead.heads());
        assert_eq!(back.len(), ahead.len());
        // Its signatures came back: every change can be sent on.
        assert!(all.iter().all(|c| back
            .signed_change(
                &meshwork_crdt::automerge::Change::from_bytes(c.bytes.clone())
                    .unwrap()
                    .hash()
            )
            .as_ref()
            == Some(c)));

        // Compacting again folds the later change in too.
        let done = store
            .compact(&key, &ahead.snapshot(), |c| ahead.holds_change(&c.bytes))
            .unwrap();
        assert_eq!(done.changes, 1);
        assert_eq!(store.loose_changes(&key).unwrap(), 0);
        assert_eq!(rebuild(&store, &key, workspace).heads(), ahead.heads());

        // Forgetting the document forgets its snapshot.
        store.remove_changes(&key).unwrap();
        assert!(!store.has_changes(&key).unwrap());
        assert!(store.stored(&key).unwrap().0.is_none());
    }
}
