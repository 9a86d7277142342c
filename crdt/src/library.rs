//! A department's library: the files its members shared. One automerge
//! document per department, laid out as
//!
//! ```text
//! { kind: "library", dept,
//!   files: { <file id>: { name, size, media_type, blob, blob_size, key,
//!                         uploader, shared_at, entries?,
//!                         holders: { <member id>: true } } } }
//! ```
//!
//! A shared folder is one record and one blob: its files' bytes one after
//! another, and `entries` ([`folder`]) lists their paths and sizes.
//!
//! `blob` is the hash of the file's ciphertext and `key` the key that opens
//! it: the library travels only between the department's members, so only
//! they can read a file, wherever its blob is stored. `holders` are members
//! who said they keep the blob (its uploader, and each who fetched it).
//!
//! Like a feed, its first change is built the same way on every node from
//! the department id alone ([`genesis`]).

pub mod folder;
mod index;
mod rules;
mod view;
pub mod write;

use automerge::{Automerge, AutomergeError, ObjType, ROOT};

pub use index::BlobIndex;
pub(crate) use rules::authorize;
pub use rules::LibraryRules;
pub use view::{FileEntry, Library};

/// The longest file name, in bytes.
pub const MAX_NAME: usize = 255;

/// A new file's id: the first 8 bytes of its uploader's key, then a nonce
/// ([`crate::Nonces`]: ascending, so that the library's map of files grows
/// at its end), in hex. The rules hold every file to its uploader's prefix, so no
/// member can create — concurrently, from an older state — a record under an
/// id another member uses, and have automerge's conflict rule pick theirs.
pub fn file_id(uploader: &crate::MemberId, nonce: [u8; 8]) -> String {
    format!(
        "{}{}",
        hex::encode(&uploader.as_bytes()[..8]),
        hex::encode(nonce)
    )
}

/// Whether `s` has the shape of a file id: 32 lowercase hex digits.
pub fn is_file_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The library document's deterministic first change.
pub fn genesis(dept_id: &str) -> Result<Automerge, AutomergeError> {
    crate::genesis::deterministic("library", dept_id, |tx| {
        use automerge::transaction::Transactable;
        tx.put_object(ROOT, "files", ObjType::Map)?;
        Ok(())
    })
}
