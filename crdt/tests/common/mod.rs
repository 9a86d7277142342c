//! Tools of a hostile peer, shared by the rule tests.
#![allow(dead_code)]

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, ReadDoc};
use meshwork_crdt::signed::DocError;
use meshwork_crdt::{Ingest, RosterAt, RosterBook, SignedChange, SignedDoc, Signer};

/// Builds a change by hand on a copy of `doc`, with `actor` as its actor id
/// and signed by `key` — the tools of a hostile peer.
pub fn forge(
    doc: &SignedDoc,
    actor: &Signer,
    key: &Signer,
    edit: impl FnOnce(&mut Transaction<'_>),
) -> SignedChange {
    forge_with(doc, actor, key, None, edit)
}

/// [`forge`], with a change message (a roster citation, or anything).
pub fn forge_with(
    doc: &SignedDoc,
    actor: &Signer,
    key: &Signer,
    message: Option<String>,
    edit: impl FnOnce(&mut Transaction<'_>),
) -> SignedChange {
    let mut raw = doc.doc().fork();
    raw.set_actor(ActorId::from(actor.id().as_bytes().as_slice()));
    let hash = raw
        .transact_with::<_, _, automerge::AutomergeError, _>(
            |_| match message {
                Some(m) => CommitOptions::default().with_message(m),
                None => CommitOptions::default(),
            },
            |tx| {
                edit(tx);
                Ok(())
            },
        )
        .unwrap()
        .hash
        .unwrap();
    let change = raw.get_change_by_hash(&hash).unwrap();
    SignedChange {
        bytes: change.raw_bytes().to_vec(),
        signature: key.sign_change(&hash.0).to_vec(),
    }
}

/// A department document (feed, conversation, library, pin ledger) with the
/// roster its changes are judged by: the node's pairing, in miniature.
pub struct Dept {
    pub doc: SignedDoc,
    pub roster: SignedDoc,
    book: RosterBook,
}

impl Dept {
    pub fn new(doc: SignedDoc, roster: SignedDoc) -> Self {
        Self {
            doc,
            roster,
            book: RosterBook::new(),
        }
    }

    /// A local change, citing the roster's heads.
    pub fn change(
        &mut self,
        signer: &Signer,
        now: i64,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<(), automerge::AutomergeError>,
    ) -> Result<Option<SignedChange>, DocError> {
        let mut at = RosterAt::new(self.roster.doc(), &mut self.book);
        self.doc.change_under(&mut at, signer, now, edit)
    }

    /// Changes from a peer, judged at the roster heads they cite.
    pub fn ingest(&mut self, incoming: Vec<SignedChange>) -> Ingest {
        let mut at = RosterAt::new(self.roster.doc(), &mut self.book);
        self.doc.ingest_under(&mut at, incoming)
    }

    /// Tries held-back changes again.
    pub fn retry(&mut self) -> Ingest {
        let mut at = RosterAt::new(self.roster.doc(), &mut self.book);
        self.doc.retry(&mut at)
    }

    /// Roster changes arrive: held-back changes are tried again.
    pub fn roster_ingest(&mut self, incoming: Vec<SignedChange>) -> Ingest {
        let got = self.roster.ingest(incoming);
        let retried = self.retry();
        assert!(retried.rejected.is_empty(), "{:?}", retried.rejected);
        Ingest {
            accepted: retried.accepted,
            ..got
        }
    }
}

impl std::ops::Deref for Dept {
    type Target = SignedDoc;
    fn deref(&self) -> &SignedDoc {
        &self.doc
    }
}

/// Like [`forge`] on a department document, citing its roster's heads.
pub fn forge_cited(
    dept: &Dept,
    actor: &Signer,
    key: &Signer,
    edit: impl FnOnce(&mut Transaction<'_>),
) -> SignedChange {
    let message = meshwork_crdt::cite::message(&dept.roster.heads());
    forge_with(&dept.doc, actor, key, Some(message), edit)
}
