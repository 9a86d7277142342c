//! Who may write what in a department's library. Judged like a feed change:
//! by its own operations, against the library at its dependencies and the
//! roster at the heads it cites ([`crate::cite`]).
//!
//! - Only active members of the department write in its library.
//! - A new file's uploader is its signer, its id carries the signer's prefix
//!   ([`super::file_id`]), its name is 1–255 bytes, and it names a blob and a
//!   key; once shared, its record does not change.
//! - A new file sits on its shelf ([`super::shelf_of`]); a member makes only
//!   shelves of their own, each once. (Directly in `files`, as before
//!   shelves, is still taken from an older node.)
//! - A member adds or takes back only themselves as a holder.

use std::collections::HashSet;

use automerge::legacy::{Key, OpType};
use automerge::{Automerge, Change, ObjType};

use super::{is_file_id, is_shelf, shelf_of, MAX_NAME};
use crate::read::{object_path, View};
use crate::signed::Judging;
use crate::MemberId;

/// The rules of one department's library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibraryRules {
    /// The department (roster id).
    pub dept: String,
}

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
            (["files", shelf, id], Some(f))
                if is_shelf(shelf) && created.contains(*id) && field(f) => {}
            (["files", id], Some(f)) if created.contains(*id) && field(f) => {}
            // Oneself as a holder, of a new or an existing file.
            (["files", shelf, _, "holders"], Some(who)) if is_shelf(shelf) && who == me => {}
            (["files", _, "holders"], Some(who)) if who == me => {}
            _ => return Err(denied()),
        }
    }
    for id in &created {
        let file = file_at(&after, id).ok_or("a file that vanished")?;
        if after.str(&file, "uploader").as_deref() != Some(me.as_str()) {
            return Err(format!("file {id} names an uploader other than its signer"));
        }
        let name = after.str(&file, "name").unwrap_or_default();
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(format!("file {id} has a name of {} bytes", name.len()));
        }
        if after.str(&file, "blob").is_none() || after.str(&file, "key").is_none() {
            return Err(format!("file {id} names no blob or no key"));
        }
        if let Some(text) = after.str(&file, "entries") {
            let entries = super::folder::decode(&text).map_err(|e| format!("folder {id}: {e}"))?;
            let size = after.int(&file, "size").and_then(|n| u64::try_from(n).ok());
            if super::folder::total(&entries) != size {
                return Err(format!(
                    "folder {id}: its entries do not add up to its size"
                ));
            }
        }
    }
    Ok(())
}

/// Takes `id` as a file this change creates: one that was not in the
/// library before it, nor created twice in it.
fn new_file(before: &View<'_>, created: &mut HashSet<String>, id: &str) -> Result<(), String> {
    if file_at(before, id).is_some() || !created.insert(id.to_owned()) {
        return Err(format!("file {id} already exists"));
    }
    Ok(())
}

/// The record of file `id` in `view`.
fn file_at(view: &View<'_>, id: &str) -> Option<automerge::ObjId> {
    let files = view.path(&["files"])?;
    super::locate(&files, id, |parent, key| view.map(parent, key))
}
