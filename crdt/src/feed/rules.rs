//! Who may write what in a department's feed. A change is judged by its own
//! operations against the feed at its dependencies, and against the roster
//! at the heads it cites ([`crate::cite`]): the same verdict on every node.
//!
//! - Only active members of the department write in its feed.
//! - A new post's author is its signer; nobody else's name goes on it, and
//!   its id carries the signer's prefix ([`super::post_id`]).
//! - Only the author edits a post; the author or an admin deletes it, and
//!   deletion leaves a tombstone without the text.
//! - A member adds or takes back only their own reactions.
//! - A body is at most [`super::MAX_BODY`] bytes.
//! - A new post may attach up to [`super::MAX_ATTACHED`] files, by id; the
//!   list is written with the post and never after.

use std::collections::{HashMap, HashSet};

use automerge::legacy::{Key, OpType};
use automerge::{Automerge, Change, ChangeHash, ObjType, ScalarValue};

use super::{MAX_ATTACHED, MAX_BODY};
use crate::read::{object_path, View};
use crate::signed::Judging;
use crate::MemberId;

/// The rules of one department's feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedRules {
    /// The department (roster id).
    pub dept: String,
    /// The deterministic genesis change's hash: the feed's document id.
    pub genesis: ChangeHash,
    /// For a direct conversation: its two members (instead of a department).
    pub pair: Option<[MemberId; 2]>,
}

pub(crate) fn authorize(
    doc: &Automerge,
    change: &Change,
    author: MemberId,
    rules: &FeedRules,
    judging: Judging<'_>,
) -> Result<(), String> {
    let roster = judging.roster;
    if change.deps().is_empty() {
        return Err("a feed change without dependencies that is not the feed's genesis".into());
    }
    let belongs = match &rules.pair {
        Some(pair) => pair.contains(&author),
        None => roster
            .dept(&rules.dept)
            .is_some_and(|d| d.members.contains(&author)),
    };
    if !(belongs && roster.is_active(&author)) {
        return Err(format!(
            "{} is not a member of this conversation",
            author.short()
        ));
    }
    let is_admin = roster.is_admin(&author);
    let me = author.to_string();
    let before = View::at(doc, change.deps());
    let after_heads = [change.hash()];
    let after = View::at(doc, &after_heads);
    let post_author =
        |v: View<'_>, id: &str| v.path(&["posts", id]).and_then(|p| v.str(&p, "author"));

    let mut paths: HashMap<String, Vec<String>> = HashMap::new();
    let mut created: HashSet<String> = HashSet::new();
    let mut bodies: HashSet<String> = HashSet::new();
    let mut ordered: HashSet<String> = HashSet::new();
    let mut attached: HashMap<String, usize> = HashMap::new();
    for op in change.decode().operations {
        let obj = op.obj.to_string();
        if !paths.contains_key(&obj) {
            let p = object_path(doc, &obj).ok_or("an operation on an unknown object")?;
            paths.insert(obj.clone(), p);
        }
        let path: Vec<&str> = paths[&obj].iter().map(String::as_str).collect();
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
        match (path.as_slice(), key.as_deref()) {
            // Placing a post created by this change in the order, once.
            (["order"], None) if op.insert => {
                let id = match &op.action {
                    OpType::Put(ScalarValue::Str(id)) => id.to_string(),
                    _ => return Err(denied()),
                };
                if !created.contains(&id) || !ordered.insert(id) {
                    return Err(denied());
                }
            }
            // A new post.
            (["posts"], Some(id)) if matches!(op.action, OpType::Make(ObjType::Map)) => {
                if post_author(before, id).is_some() {
                    return Err(format!("post {id} already exists"));
                }
                if !(judging.legacy || super::is_post_id_of(id, &author)) {
                    return Err(format!("post id {id} is not one of {}'s", author.short()));
                }
                created.insert(id.to_owned());
            }
            (["posts", id], Some(field)) if created.contains(*id) => {
                if field == "body" {
                    bodies.insert((*id).to_owned());
                }
            }
            (["posts", id, "mentions"], Some(_)) if created.contains(*id) => {}
            // A new post's attachments: file ids.
            (["posts", id, "files"], None) if created.contains(*id) && op.insert => {
                match &op.action {
                    OpType::Put(ScalarValue::Str(f)) if crate::library::is_file_id(f) => {}
                    _ => return Err(denied()),
                }
                let n = attached.entry((*id).to_owned()).or_default();
                *n += 1;
                if *n > MAX_ATTACHED {
                    return Err(format!("post {id} attaches more than {MAX_ATTACHED} files"));
                }
            }
            // An existing post: its author edits, its author or an admin deletes.
            (["posts", id], Some(field)) => {
                let mine = post_author(before, id).as_deref() == Some(me.as_str());
                let allowed = match (field, &op.action) {
                    ("body", OpType::Put(_)) | ("edited_at", OpType::Put(_)) => mine,
                    ("body", OpType::Delete) | ("deleted", OpType::Put(_)) => mine || is_admin,
                    _ => false,
                };
                if !allowed {
                    return Err(denied());
                }
                if field == "body" {
                    bodies.insert((*id).to_owned());
                }
            }
            // Reaction structure, created once.
            (["reactions"], Some(post)) if matches!(op.action, OpType::Make(ObjType::Map)) => {
                if before.path(&["reactions", post]).is_some() {
                    return Err(denied());
                }
            }
            (["reactions", post], Some(emoji))
                if matches!(op.action, OpType::Make(ObjType::Map)) =>
            {
                if before.path(&["reactions", post, emoji]).is_some() || emoji.chars().count() > 16
                {
                    return Err(denied());
                }
            }
            // One's own reaction.
            (["reactions", _, _], Some(who)) if who == me => {}
            _ => return Err(denied()),
        }
    }
    for id in &created {
        if !ordered.contains(id) {
            return Err(format!("post {id} is not placed in the feed's order"));
        }
        if post_author(after, id).as_deref() != Some(me.as_str()) {
            return Err(format!("post {id} names an author other than its signer"));
        }
    }
    for id in &bodies {
        let len = after
            .path(&["posts", id])
            .and_then(|p| after.str(&p, "body"))
            .map_or(0, |b| b.len());
        if len > MAX_BODY {
            return Err(format!("post {id} is {len} bytes, more than {MAX_BODY}"));
        }
    }
    Ok(())
}
