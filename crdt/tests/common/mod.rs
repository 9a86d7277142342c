//! Tools of a hostile peer, shared by the rule tests.
#![allow(dead_code)]

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, ReadDoc};
use meshwork_crdt::roster::{write as roster_write, Role};
use meshwork_crdt::signed::DocError;
use meshwork_crdt::{Ingest, RosterAt, RosterBook, SignedChange, SignedDoc, Signer};

/// The time the rule tests start at.
pub const T0: i64 = 1_700_000_000_000;

/// Test member `n`'s key (in the Research roster: Ada 1, Bob 2, Cleo 3,
/// Dave 4).
pub fn signer(n: u8) -> Signer {
    Signer::from_secret([n; 32])
}

/// Ada (admin) with Bob and Cleo in "Research" (id d1); Dave is a member
/// outside it.
pub fn research_roster() -> SignedDoc {
    let ada = signer(1);
    let (mut doc, _) = SignedDoc::create_roster(&ada, "Acme", "Ada", T0).unwrap();
    doc.change(&ada, T0, |tx| {
        roster_write::create_dept(tx, "d1", "Research")?;
        for (n, name) in [(2, "Bob"), (3, "Cleo"), (4, "Dave")] {
            roster_write::add_member(tx, signer(n).id(), name, Role::Member, T0, None)?;
        }
        for n in [1, 2, 3] {
            roster_write::dept_add(tx, "d1", signer(n).id())?;
        }
        Ok(())
    })
    .unwrap();
    doc
}

/// A post id of `who`'s: their key's prefix, then `name`.
pub fn pid(who: &Signer, name: &str) -> String {
    format!("{}{name}", &who.id().to_string()[..16])
}

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

/// A post or file id of `who`'s that carries a time (as the nodes make
/// them: [`meshwork_crdt::Nonces`]): written at `at`, `seq` in the
/// nonce's low bits.
pub fn tid(who: &Signer, at: i64, seq: u16) -> String {
    meshwork_crdt::feed::post_id(
        &who.id(),
        ((at as u64) << 16 | u64::from(seq)).to_be_bytes(),
    )
}
