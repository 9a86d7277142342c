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
//! - A new post may attach up to [`super::MAX_ATTACHED`] files, by id, and
//!   mention up to [`super::MAX_MENTIONS`] members; both are written with
//!   the post and never after.
//! - A new post goes on its shelf ([`super::shelf_of`]), which only its
//!   author makes, once; its record is written once, with its text. A
//!   reply's post is in the feed once the change is in, and is older than
//!   the reply ([`super::order_key`]), so that a reader walking newest
//!   first meets every reply before its thread.
//! - A deletion writes `true`, nothing else; a reaction is to a post that
//!   is there, and is `true` or taken back.
//! - Posts of the layout before shelves (a map each, placed in `order`)
//!   are still taken from an older node, under the rules they were
//!   written under, and two more: a deletion is `true`, and a reaction
//!   needs its post.

use std::collections::{HashMap, HashSet};

use automerge::legacy::{Key, OpType};
use automerge::{Automerge, Change, ChangeHash, ObjType, ScalarValue};

use super::record::{locate, Beside, Place, Record};
use super::{MAX_ATTACHED, MAX_BODY, MAX_MENTIONS};
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
    let posts = before.path(&["posts"]).ok_or("a feed without its posts")?;
    let place = |v: View<'_>, id: &str| {
        locate(&posts, id, |obj, key| {
            v.get(obj, key).map(|(value, o)| (value.into_owned(), o))
        })
    };
    let mut shelves: HashSet<String> = HashSet::new();
    let mut shelved: HashSet<String> = HashSet::new();
    let mut replies: Vec<(String, String)> = Vec::new();

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
            // A shelf of the signer's, made once.
            (["posts"], Some(key)) if super::is_shelf(key) => {
                if !matches!(op.action, OpType::Make(ObjType::Map)) {
                    return Err(denied());
                }
                if key[9..] != me[..16] {
                    return Err(format!("shelf {key} is not one of {}'s", author.short()));
                }
                if before.map(&posts, key).is_some() || !shelves.insert(key.to_owned()) {
                    return Err(format!("shelf {key} already exists"));
                }
            }
            // On a shelf: a post's record, or a key beside it.
            (["posts", shelf], Some(key)) if super::is_shelf(shelf) => {
                let (id, what) = Beside::parse(key);
                if super::shelf_of(id).as_deref() != Some(*shelf) {
                    return Err(format!("post {id} does not belong on shelf {shelf}"));
                }
                let new = shelved.contains(id);
                let found = place(before, id);
                // The author of a post on a shelf (keys beside a post of
                // the layout before shelves mean nothing, and are refused).
                let written_by = match &found {
                    Some(Place::Shelved { text, .. }) => {
                        Record::decode(text).ok().map(|r| r.author.to_string())
                    }
                    _ => None,
                };
                let there = new || written_by.is_some();
                let mine = new || written_by.as_deref() == Some(me.as_str());
                let allowed = match (what, &op.action) {
                    (Err(()), _) => false,
                    (Ok(None), OpType::Put(ScalarValue::Str(text))) => {
                        if !super::is_post_id_of(id, &author) {
                            return Err(format!("post id {id} is not one of {}'s", author.short()));
                        }
                        if found.is_some() || !shelved.insert(id.to_owned()) {
                            return Err(format!("post {id} already exists"));
                        }
                        let record = Record::decode(text)?;
                        check_record(id, &record, &author)?;
                        if record.encode() != **text {
                            // Bounded, and one way to write each: no padding.
                            return Err(format!(
                                "post {id}'s record is not written as nodes write it"
                            ));
                        }
                        replies.extend(record.reply_to.map(|p| (id.to_owned(), p)));
                        true
                    }
                    (Ok(None), _) => false,
                    (Ok(Some(Beside::Body)), OpType::Put(ScalarValue::Str(text))) => {
                        if text.len() > MAX_BODY {
                            let len = text.len();
                            return Err(format!("post {id} is {len} bytes, more than {MAX_BODY}"));
                        }
                        bodies.insert(id.to_owned());
                        mine
                    }
                    (Ok(Some(Beside::Body)), OpType::Delete) => there && (mine || is_admin),
                    (Ok(Some(Beside::EditedAt)), OpType::Put(v)) => mine && is_time(v),
                    (Ok(Some(Beside::Deleted)), OpType::Put(ScalarValue::Boolean(true))) => {
                        there && (mine || is_admin)
                    }
                    (
                        Ok(Some(Beside::Reaction(who, _))),
                        OpType::Put(ScalarValue::Boolean(true)) | OpType::Delete,
                    ) => there && who == me,
                    _ => false,
                };
                if !allowed {
                    return Err(denied());
                }
            }
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
                if place(before, id).is_some() || shelved.contains(id) {
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
                    ("body", OpType::Delete)
                    | ("deleted", OpType::Put(ScalarValue::Boolean(true))) => mine || is_admin,
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
                let listed = matches!(place(before, post), Some(Place::Map(_)));
                if !listed || before.path(&["reactions", post]).is_some() {
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
    for id in &shelved {
        if !bodies.contains(id) {
            return Err(format!("post {id} is written without its text"));
        }
    }
    for key in &shelves {
        if !shelved
            .iter()
            .any(|id| super::shelf_of(id).as_ref() == Some(key))
        {
            return Err(format!("shelf {key} is made without a post on it"));
        }
    }
    for (id, parent) in &replies {
        if place(after, parent).is_none() {
            return Err(format!(
                "post {id} answers {parent}, which is not in the feed"
            ));
        }
        if super::order_key(parent).is_some_and(|p| Some(p) >= super::order_key(id)) {
            return Err(format!("post {id} answers {parent}, which is not older"));
        }
    }
    for id in &bodies {
        let len = match place(after, id) {
            Some(Place::Shelved { shelf, .. }) => after.str(&shelf, &Beside::Body.key(id)),
            Some(Place::Map(obj)) => after.str(&obj, "body"),
            None => None,
        }
        .map_or(0, |b| b.len());
        if len > MAX_BODY {
            return Err(format!("post {id} is {len} bytes, more than {MAX_BODY}"));
        }
    }
    Ok(())
}

/// What a new post's record must say: its signer as author, and no more
/// files or mentions than the feed allows, each well formed.
pub(super) fn check_record(id: &str, record: &Record, author: &MemberId) -> Result<(), String> {
    if record.author != *author {
        return Err(format!("post {id} names an author other than its signer"));
    }
    if record.files.len() > MAX_ATTACHED {
        return Err(format!("post {id} attaches more than {MAX_ATTACHED} files"));
    }
    if let Some(f) = record.files.iter().find(|f| !crate::library::is_file_id(f)) {
        return Err(format!("post {id} attaches {f:?}, which is not a file id"));
    }
    if record.mentions.len() > MAX_MENTIONS {
        return Err(format!(
            "post {id} mentions more than {MAX_MENTIONS} members"
        ));
    }
    Ok(())
}

/// Whether a value is a time in milliseconds.
fn is_time(v: &ScalarValue) -> bool {
    matches!(
        v,
        ScalarValue::Int(_) | ScalarValue::Uint(_) | ScalarValue::Timestamp(_)
    )
}
