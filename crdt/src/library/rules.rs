//! Who may write what in a department's library. Judged like a feed change:
//! by its own operations, against the library at its dependencies and the
//! roster at the heads it cites ([`crate::cite`]).
//!
//! - Only active members of the department write in its library.
//! - A new file's uploader is its signer, its id carries the signer's prefix
//!   ([`super::file_id`]), its name is 1–255 bytes, and it names a blob (64
//!   hex digits) and a key (hex); once shared, its record does not change.
//! - A new file sits on its shelf ([`super::shelf_of`]), packed; a member
//!   makes only shelves of their own, each once. (A record as a map, on its
//!   shelf or directly in `files` as before shelves, is still taken from an
//!   older node.)
//! - A member adds or takes back only themselves as a holder, of a file
//!   that is there.

use std::collections::HashSet;

use automerge::legacy::{Key, OpType};
use automerge::{Automerge, Change, ObjType, ScalarValue};

use super::record::{Packed, Place, Slot};
use super::{is_file_id, is_shelf, shelf_of, MAX_NAME};
use crate::read::{object_path, View};
use crate::signed::Judging;
use crate::{is_lower_hex, MemberId};

/// The rules of one department's library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryRules {
    /// The department (roster id).
    pub dept: String,
}

/// The longest file key, in hex digits.
const MAX_KEY_HEX: usize = 256;

const FIELDS: [&str; 10] = [
    "entries",
    "name",
    "size",
    "media_type",
    "blob",
    "blob_size",
    "key",
    "uploader",
    "shared_at",
    "holders",
];

pub(crate) fn authorize(
    doc: &Automerge,
    change: &Change,
    author: MemberId,
    rules: &LibraryRules,
    judging: Judging<'_>,
) -> Result<(), String> {
    let roster = judging.roster;
    if change.deps().is_empty() {
        return Err("a library change without dependencies that is not its genesis".into());
    }
    let member = roster
        .dept(&rules.dept)
        .is_some_and(|d| d.members.contains(&author));
    if !(member && roster.is_active(&author)) {
        return Err(format!(
            "{} is not a member of this department",
            author.short()
        ));
    }
    let me = author.to_string();
    let before = View::at(doc, change.deps());
    let after_heads = [change.hash()];
    let after = View::at(doc, &after_heads);
    let mut created: HashSet<String> = HashSet::new();
    let mut shelves: HashSet<String> = HashSet::new();
    // Files beside whose packed record this change adds or takes a holder.
    let mut held: HashSet<String> = HashSet::new();
    for op in change.decode().operations {
        let path =
            object_path(doc, &op.obj.to_string()).ok_or("an operation on an unknown object")?;
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let key = match &op.key {
            Key::Map(k) => Some(k.to_string()),
            Key::Seq(_) => None,
        };
        let denied = || {
            format!(
                "may not write /{}/{}",
                path.join("/"),
                key.as_deref().unwrap_or("[sequence]")
            )
        };
        let makes_map = matches!(op.action, OpType::Make(ObjType::Map));
        let field = |field: &str| FIELDS.contains(&field) && !op.insert;
        match (path.as_slice(), key.as_deref()) {
            // A shelf of the signer's, made once.
            (["files"], Some(shelf)) if makes_map && is_shelf(shelf) => {
                if !shelf.starts_with(&me[..16]) {
                    return Err(format!("shelf {shelf} is not one of {}'s", author.short()));
                }
                let files = before.path(&["files"]).ok_or("a library without files")?;
                if before.map(&files, shelf).is_some() || !shelves.insert(shelf.to_owned()) {
                    return Err(format!("shelf {shelf} already exists"));
                }
            }
            // A new file on its shelf.
            (["files", shelf], Some(id)) if makes_map && is_shelf(shelf) => {
                if !(is_file_id(id) && id.starts_with(&me[..16])) {
                    return Err(format!("file id {id} is not one of {}'s", author.short()));
                }
                if shelf_of(id).as_deref() != Some(*shelf) {
                    return Err(format!("file {id} does not belong on shelf {shelf}"));
                }
                new_file(&before, &mut created, id)?;
            }
            // A new file directly in `files` (an older node's).
            (["files"], Some(id)) if makes_map => {
                if !(id.len() == 32 && id.starts_with(&me[..16])) {
                    return Err(format!("file id {id} is not one of {}'s", author.short()));
                }
                new_file(&before, &mut created, id)?;
            }
            // A packed record on its shelf, or a holder beside one.
            (["files", shelf], Some(key)) if is_shelf(shelf) => match key.split_once('/') {
                None => {
                    if !matches!(op.action, OpType::Put(ScalarValue::Str(_))) {
                        return Err(denied());
                    }
                    if !(is_file_id(key) && key.starts_with(&me[..16])) {
                        return Err(format!("file id {key} is not one of {}'s", author.short()));
                    }
                    if shelf_of(key).as_deref() != Some(*shelf) {
                        return Err(format!("file {key} does not belong on shelf {shelf}"));
                    }
                    new_file(&before, &mut created, key)?;
                }
                Some((id, who)) => {
                    if who != me || !on_off(&op.action) {
                        return Err(denied());
                    }
                    if shelf_of(id).as_deref() != Some(*shelf) {
                        return Err(format!("file {id} does not belong on shelf {shelf}"));
                    }
                    held.insert(id.to_owned());
                }
            },
            (["files", shelf, id], Some(f))
                if is_shelf(shelf) && created.contains(*id) && field(f) => {}
            (["files", id], Some(f)) if created.contains(*id) && field(f) => {}
            // Oneself as a holder, of a new or an existing map record.
            (["files", shelf, _, "holders"], Some(who))
                if is_shelf(shelf) && who == me && on_off(&op.action) => {}
            (["files", _, "holders"], Some(who)) if who == me && on_off(&op.action) => {}
            _ => return Err(denied()),
        }
    }
    for id in &held {
        if !matches!(file_at(&after, id), Some(Place::Packed { .. })) {
            return Err(format!("a holder of file {id}, which is not there"));
        }
    }
    for id in &created {
        let claims = match file_at(&after, id).ok_or("a file that vanished")? {
            Place::Packed { text, .. } => {
                Claims::from(Packed::decode(&text).map_err(|e| format!("file {id}: {e}"))?)
            }
            Place::Map(file) => Claims {
                uploader: after.str(&file, "uploader"),
                name: after.str(&file, "name").unwrap_or_default(),
                media_type: after.str(&file, "media_type").unwrap_or_default(),
                blob: after.str(&file, "blob"),
                key: after.str(&file, "key"),
                size: after.int(&file, "size").and_then(|n| u64::try_from(n).ok()),
                entries: after.str(&file, "entries"),
            },
        };
        claims.check(id, &me)?;
    }
    Ok(())
}

/// Whether `action` says "holds" (`true`) or takes it back (a deletion):
/// nothing else is a holder's to write.
fn on_off(action: &OpType) -> bool {
    matches!(
        action,
        OpType::Put(ScalarValue::Boolean(true)) | OpType::Delete
    )
}

/// What a new file's record says, in either layout, as the rules check it.
struct Claims {
    uploader: Option<String>,
    name: String,
    media_type: String,
    blob: Option<String>,
    key: Option<String>,
    size: Option<u64>,
    entries: Option<String>,
}

impl From<Packed> for Claims {
    fn from(r: Packed) -> Self {
        Self {
            uploader: Some(r.uploader.to_string()),
            name: r.name,
            media_type: r.media_type,
            blob: Some(r.blob),
            key: Some(r.key),
            size: Some(r.size),
            entries: r.entries,
        }
    }
}

impl Claims {
    fn check(&self, id: &str, signer: &str) -> Result<(), String> {
        if self.uploader.as_deref() != Some(signer) {
            return Err(format!("file {id} names an uploader other than its signer"));
        }
        if self.name.is_empty() || self.name.len() > MAX_NAME {
            return Err(format!("file {id} has a name of {} bytes", self.name.len()));
        }
        if self.media_type.len() > MAX_NAME {
            return Err(format!(
                "file {id} has a media type of {} bytes",
                self.media_type.len()
            ));
        }
        // A blob is named by its BLAKE3 hash; a key is hex, a few dozen
        // bytes in every blob format.
        let blob = self.blob.as_deref().unwrap_or_default();
        let key = self.key.as_deref().unwrap_or_default();
        let key_ok = (1..=MAX_KEY_HEX).contains(&key.len()) && is_lower_hex(key);
        if !(blob.len() == 64 && is_lower_hex(blob) && key_ok) {
            return Err(format!("file {id} names no blob or no key"));
        }
        if let Some(text) = &self.entries {
            let entries = super::folder::decode(text).map_err(|e| format!("folder {id}: {e}"))?;
            if super::folder::total(&entries) != self.size {
                return Err(format!(
                    "folder {id}: its entries do not add up to its size"
                ));
            }
        }
        Ok(())
    }
}

/// Takes `id` as a file this change creates: one that was not in the
/// library before it, nor created twice in it.
fn new_file(before: &View<'_>, created: &mut HashSet<String>, id: &str) -> Result<(), String> {
    if file_at(before, id).is_some() || !created.insert(id.to_owned()) {
        return Err(format!("file {id} already exists"));
    }
    Ok(())
}

/// Where the record of file `id` is in `view`.
fn file_at(view: &View<'_>, id: &str) -> Option<Place> {
    let files = view.path(&["files"])?;
    super::locate(&files, id, |parent, key| {
        let (value, obj) = view.get(parent, key)?;
        Some(Slot::of(value, obj))
    })
}
