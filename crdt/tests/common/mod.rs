//! Tools of a hostile peer, shared by the rule tests.
#![allow(dead_code)]

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, ReadDoc};
use meshwork_crdt::{SignedChange, SignedDoc, Signer};

/// Builds a change by hand on a copy of `doc`, with `actor` as its actor id
/// and signed by `key` — the tools of a hostile peer.
pub fn forge(
    doc: &SignedDoc,
    actor: &Signer,
    key: &Signer,
    edit: impl FnOnce(&mut Transaction<'_>),
) -> SignedChange {
    let mut raw = doc.doc().fork();
    raw.set_actor(ActorId::from(actor.id().as_bytes().as_slice()));
    let hash = raw
        .transact_with::<_, _, automerge::AutomergeError, _>(
            |_| CommitOptions::default(),
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
