//! A document compacted: automerge's saved form of it and the signatures of
//! its changes, instead of every change stored loose.
//!
//! Why: a node keeps a document as the changes it accepted, and rebuilds it
//! by applying them all. At 100,000 posts those changes take 47 MB and
//! applying them ~2.8 s (in memory; 4–6 s from sled); automerge's saved
//! form of the same feed is 1.3 MB and loads in ~0.7 s, and the signatures
//! add 96 bytes a change. A snapshot holds only what the node already
//! checked: restoring one checks nothing again, as [`SignedDoc::load`] does
//! not (automerge checks the saved form's own hashes).

use std::collections::HashMap;

use automerge::{Automerge, ChangeHash};
use serde::{Deserialize, Serialize};

use super::{DocError, Rejection, SignedDoc};

/// One signature record: the change's hash, then its signature.
const RECORD: usize = 32 + 64;

/// A document as [`SignedDoc::snapshot`] leaves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Automerge's saved document.
    #[serde(with = "serde_bytes")]
    pub doc: Vec<u8>,
    /// `hash ‖ signature` (32 + 64 bytes) for each signed change in it.
    #[serde(with = "serde_bytes")]
    pub signatures: Vec<u8>,
}

impl SignedDoc {
    /// The document as it is now, compacted.
    pub fn snapshot(&self) -> Snapshot {
        let mut signatures = Vec::with_capacity(self.signatures.len() * RECORD);
        for (hash, sig) in &self.signatures {
            signatures.extend_from_slice(&hash.0);
            signatures.extend_from_slice(sig);
        }
        Snapshot {
            doc: self.doc.save(),
            signatures,
        }
    }

    /// This document (as built from its genesis, holding nothing else yet)
    /// replaced by `snapshot`, which must hold it: a snapshot of another
    /// document, or a damaged one, is refused. Add what was stored since
    /// with [`Self::add_stored`].
    pub fn restore(mut self, snapshot: &Snapshot) -> Result<Self, DocError> {
        let malformed = |why: &str| DocError::Rejected(Rejection::Malformed(why.to_owned()));
        let doc = Automerge::load(&snapshot.doc)?;
        if let Some(h) = self
            .doc
            .get_heads()
            .into_iter()
            .find(|h| doc.get_change_meta_by_hash(h).is_none())
        {
            return Err(malformed(&format!(
                "a snapshot without the document's first change {h}"
            )));
        }
        if !snapshot.signatures.len().is_multiple_of(RECORD) {
            return Err(malformed("a snapshot's signatures cut short"));
        }
        let mut signatures = HashMap::with_capacity(snapshot.signatures.len() / RECORD);
        for record in snapshot.signatures.chunks_exact(RECORD) {
            let (hash, sig) = record.split_at(32);
            let hash = ChangeHash(hash.try_into().expect("32 bytes"));
            signatures.insert(hash, sig.try_into().expect("64 bytes"));
        }
        self.doc = doc;
        self.signatures.extend(signatures);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::feed::write::{self, NewPost};
    use crate::roster::write as roster_write;
    use crate::{RosterAt, RosterBook, SignedDoc, Signer};

    /// A feed of department `dept` with `n` posts by Ada.
    fn feed(dept: &str, n: usize) -> SignedDoc {
        let ada = Signer::from_secret([1; 32]);
        let (mut roster, _) = SignedDoc::create_roster(&ada, "Acme", "Ada", 1).unwrap();
        roster
            .change(&ada, 1, |tx| {
                roster_write::create_dept(tx, dept, "Research")?;
                roster_write::dept_add(tx, dept, ada.id())
            })
            .unwrap();
        let mut feed = SignedDoc::feed(dept, Vec::new()).unwrap();
        let mut book = RosterBook::new();
        for k in 0..n {
            let id = crate::feed::post_id(&ada.id(), (k as u64).to_be_bytes());
            let post = NewPost {
                id: &id,
                author: ada.id(),
                body: "hello",
                created_at: k as i64,
                reply_to: None,
                mentions: &[],
                files: &[],
            };
            let mut at = RosterAt::new(roster.doc(), &mut book);
            feed.change_under(&mut at, &ada, 1, |tx| write::post(tx, &post))
                .unwrap();
        }
        feed
    }

    #[test]
    fn a_snapshot_restores_the_document_and_its_signatures() {
        let original = feed("d1", 30);
        let back = SignedDoc::feed("d1", Vec::new())
            .unwrap()
            .restore(&original.snapshot())
            .unwrap();
        assert_eq!(back.heads(), original.heads());
        assert_eq!(back.len(), 30);
        let newest = original.heads()[0];
        assert_eq!(back.signed_change(&newest), original.signed_change(&newest));
    }

    #[test]
    fn a_snapshot_of_another_document_or_a_damaged_one_is_refused() {
        let snapshot = feed("d1", 3).snapshot();
        let other = SignedDoc::feed("d2", Vec::new())
            .unwrap()
            .restore(&snapshot);
        assert!(other.err().unwrap().to_string().contains("first change"));

        let mut cut = snapshot.clone();
        cut.signatures.pop();
        let err = SignedDoc::feed("d1", Vec::new()).unwrap().restore(&cut);
        assert!(err.err().unwrap().to_string().contains("cut short"));

        let mut damaged = snapshot;
        let mid = damaged.doc.len() / 2;
        damaged.doc[mid] ^= 0xff;
        assert!(SignedDoc::feed("d1", Vec::new())
            .unwrap()
            .restore(&damaged)
            .is_err());
    }
}
