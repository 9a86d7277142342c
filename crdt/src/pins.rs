//! The workspace's pin ledger: which blobs must stay available until when,
//! and who has committed to keep them. One automerge document per
//! workspace, laid out as
//!
//! ```text
//! { kind: "pins", dept: <workspace id>,
//!   requests: { <blob>: { dept, size, until, by } },
//!   commits:  { "<blob>/<member>": until },
//!   nodes:    { <member>: { quota, used, refused } } }
//! ```
//!
//! Hashes, sizes, deadlines and member ids only: nothing in it is readable
//! content, so every member — pin nodes included — holds it. A commitment's
//! key names its pinner, so two pinners committing at once never collide in
//! one automerge key. `nodes` is where pin nodes report their quota.
//!
//! Its first change is built alike on every node from the workspace id
//! ([`genesis`]).

mod rules;
mod view;
pub mod write;

use automerge::{Automerge, AutomergeError, ObjType, ROOT};

pub(crate) use rules::authorize;
pub use rules::PinsRules;
pub use view::{Commitment, PinNodeReport, PinRequest, Pins};

/// The pin ledger's deterministic first change.
pub fn genesis(workspace: &str) -> Result<Automerge, AutomergeError> {
    crate::genesis::deterministic("pins", workspace, |tx| {
        use automerge::transaction::Transactable;
        tx.put_object(ROOT, "requests", ObjType::Map)?;
        tx.put_object(ROOT, "commits", ObjType::Map)?;
        tx.put_object(ROOT, "nodes", ObjType::Map)?;
        Ok(())
    })
}

/// The key of `member`'s commitment to `blob`.
pub fn commit_key(blob: &str, member: &crate::MemberId) -> String {
    format!("{blob}/{member}")
}

/// Whether `s` is a blob hash as the ledger writes it: 64 lowercase hex digits.
pub(crate) fn is_blob_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
