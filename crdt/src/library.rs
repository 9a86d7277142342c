//! A department's library: the files its members shared. One automerge
//! document per department, laid out as
//!
//! ```text
//! { kind: "library", dept,
//!   files: { <shelf>: { <file id>: "<record>",
//!                       "<file id>/<member id>": true } } }
//! ```
//!
//! A file sits on the shelf of its uploader and its day ([`shelf_of`]: both
//! read from its id), not directly in `files`: automerge applies a change
//! by walking every operation of each object it touches, so a change that
//! adds a key to a map of every file ever shared cost the receiver time in
//! proportion to the library's history (38 ms per change at 300,000 files,
//! BENCHMARKS.md, "Shelves"). A shelf holds one member's files of one day.
//! Only its uploader makes a shelf, and an honest member's changes come one
//! after another (one automerge actor per member), so no shelf is made
//! twice at once, where automerge would show only one of the two (a member
//! who equivocates can: docs/architecture.md, "Known limits").
//!
//! A record is one string, not a map of fields ([`record::Packed`]: name,
//! size, media type, blob, blob size, key, uploader, time shared, a
//! folder's entries, as JSON), and its holders are keys of the shelf beside
//! it, `<file id>/<member id>`: members who said they keep the blob (its
//! uploader, and each who fetched it). Automerge copies its index of
//! objects at every change it applies, so two objects per file (a record
//! and its holders) made every change cost more as the library grew (at
//! 300,000 files, 1.4 ms to apply a share and 0.74 ms a holder change);
//! packed, a file is no object at all.
//!
//! Older layouts are read, held and let go where they are, and the rules
//! still take new files written in them by an older node: a record as a
//! map of those fields with a `holders` map inside, on a shelf (session
//! 20) or directly in `files` (before shelves).
//!
//! A shared folder is one record and one blob: its files' bytes one after
//! another, and `entries` ([`folder`]) lists their paths and sizes.
//!
//! `blob` is the hash of the file's ciphertext and `key` the key that opens
//! it: the library travels only between the department's members, so only
//! they can read a file, wherever its blob is stored.
//!
//! Like a feed, its first change is built the same way on every node from
//! the department id alone ([`genesis`]).

pub mod folder;
mod index;
pub(crate) mod record;
mod rules;
mod view;
pub mod write;

use automerge::{Automerge, AutomergeError, ObjId, ObjType, ROOT};

use crate::is_lower_hex;

pub use index::BlobIndex;
pub(crate) use rules::authorize;
pub use rules::LibraryRules;
pub use view::{FileEntry, Library};

/// The longest file name, in bytes.
pub const MAX_NAME: usize = 255;

/// A new file's id: the first 8 bytes of its uploader's key, then a nonce
/// ([`crate::Nonces`]: ascending, so that a shelf grows at its end, and
/// the id tells the shelf's day), in hex. The rules hold every file to its uploader's prefix, so no
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
    s.len() == 32 && is_lower_hex(s)
}

/// The shelf of file `id`: its uploader's prefix and the day (UTC, counted
/// from 1970, as the pin ledger counts them: [`crate::pins::epoch_of`]) of
/// its nonce's time ([`crate::Nonces`]), as `<prefix>.<day>`.
/// `None` for a string that is not a file id (those sit directly in
/// `files`, as every file did before shelves).
pub fn shelf_of(id: &str) -> Option<String> {
    let (prefix, nonce) = crate::nonce::split_id(id)?;
    let at = crate::nonce::time_of(nonce);
    Some(format!("{prefix}.{}", crate::pins::epoch_of(at)))
}

/// Where the record of file `id` is in the library's `files`: packed or a
/// map on its shelf, or a map directly in `files` (a library from before
/// shelves). `slot` reads what is under a key of a map: in the document now
/// (readers, writers) or at some heads (the rules), so that all of them
/// look in the same places.
pub(crate) fn locate(
    files: &ObjId,
    id: &str,
    slot: impl Fn(&ObjId, &str) -> Option<record::Slot>,
) -> Option<record::Place> {
    use record::{Place, Slot};
    let on_shelf = shelf_of(id).and_then(|key| match slot(files, &key)? {
        Slot::Map(shelf) => match slot(&shelf, id)? {
            Slot::Map(obj) => Some(Place::Map(obj)),
            Slot::Text(text) => Some(Place::Packed { shelf, text }),
            Slot::Other => None,
        },
        _ => None,
    });
    on_shelf.or_else(|| match slot(files, id)? {
        Slot::Map(obj) => Some(Place::Map(obj)),
        _ => None,
    })
}

/// Whether `key` of `files` has the shape of a shelf: 16 hex digits, a
/// dot, a day as [`shelf_of`] writes it (no leading zero; at most 7 digits,
/// as a nonce's 48 bits of milliseconds reach day 3,257,812). So a shelf's
/// key is never 32 bytes long, the length of a file id.
pub(crate) fn is_shelf(key: &str) -> bool {
    key.split_once('.').is_some_and(|(prefix, day)| {
        prefix.len() == 16
            && is_lower_hex(prefix)
            && (1..=7).contains(&day.len())
            && day.bytes().all(|b| b.is_ascii_digit())
            && (day == "0" || !day.starts_with('0'))
    })
}

/// The library document's deterministic first change.
pub fn genesis(dept_id: &str) -> Result<Automerge, AutomergeError> {
    crate::genesis::deterministic("library", dept_id, |tx| {
        use automerge::transaction::Transactable;
        tx.put_object(ROOT, "files", ObjType::Map)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shelf_key_is_what_shelf_of_writes() {
        let id = format!("{}{:016x}", "ab".repeat(8), 1_800_000_000_000u64 << 16);
        let shelf = shelf_of(&id).unwrap();
        assert_eq!(shelf, format!("{}.20833", "ab".repeat(8)));
        assert!(is_shelf(&shelf));
        assert!(is_shelf(&format!("{}.0", "ab".repeat(8))));
        let prefix = "ab".repeat(8);
        for not in [
            format!("{prefix}.020833"),   // a leading zero
            format!("{prefix}.12345678"), // past any nonce's day
            format!("{prefix}."),
            format!("{prefix}.2o833"),
            format!("{}.20833", "AB".repeat(8)),
            format!("{}.20833", "ab".repeat(7)),
            id.clone(),
        ] {
            assert!(!is_shelf(&not), "{not}");
        }
        assert_eq!(shelf_of("a1"), None);
    }
}
