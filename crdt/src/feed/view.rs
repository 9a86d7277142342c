//! Typed reads of a feed, in the same order on every node.
//!
//! A feed may hold a hundred thousand posts, so nothing here reads it whole
//! unless asked to ([`Feed::all`], [`Feed::len`]): shelves sort newest day
//! first, a page of threads reads only as far back as it needs, and a post
//! is looked up by id. Posts of the layout before shelves are read from the
//! order list, and merged in by their time.

use std::collections::{BTreeMap, HashMap, HashSet};

use std::iter::Peekable;

use automerge::{Automerge, ObjId, ObjType, ReadDoc, Value, ROOT};
use serde::{Deserialize, Serialize};

use super::record::{locate_now, Beside, Place, Record};
use crate::read::{beside_range, child_map as map};
use crate::{MemberId, Millis};

/// A post, or the tombstone of a deleted one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    /// Its id.
    pub id: String,
    /// Who wrote it.
    pub author: MemberId,
    /// Its text; `None` once deleted.
    pub body: Option<String>,
    /// When, by the author's clock.
    pub created_at: Millis,
    /// The post it answers.
    pub reply_to: Option<String>,
    /// When it was last edited.
    pub edited_at: Option<Millis>,
    /// Deleted: a tombstone.
    pub deleted: bool,
    /// Members it mentions.
    pub mentions: Vec<MemberId>,
    /// Files it attaches: ids in the department's library (or, in a direct
    /// conversation, in a library both share).
    pub files: Vec<String>,
    /// Emoji → who reacted with it.
    pub reactions: BTreeMap<String, Vec<MemberId>>,
}

/// A top-level post and its replies (oldest first).
pub type Thread = (Post, Vec<Post>);

/// A reader over a feed document.
pub struct Feed<'a> {
    doc: &'a Automerge,
    order: Option<ObjId>,
    posts: Option<ObjId>,
    reactions: Option<ObjId>,
}

impl<'a> Feed<'a> {
    /// Reads `doc` as a feed (an empty one if it has no feed layout).
    pub fn new(doc: &'a Automerge) -> Self {
        let obj = |key: &str, want: ObjType| match doc.get(ROOT, key) {
            Ok(Some((Value::Object(t), id))) if t == want => Some(id),
            _ => None,
        };
        Self {
            doc,
            order: obj("order", ObjType::List),
            posts: obj("posts", ObjType::Map),
            reactions: obj("reactions", ObjType::Map),
        }
    }

    /// How many posts, tombstones included. Counts every shelf's keys: for
    /// a status line, not for every read.
    pub fn len(&self) -> usize {
        let listed = self.order.as_ref().map_or(0, |o| self.doc.length(o));
        let shelved: usize = self
            .shelves()
            .map(|(_, shelf)| self.doc.keys(&shelf).filter(|k| !k.contains('/')).count())
            .sum();
        listed + shelved
    }

    /// Whether nobody has posted yet.
    pub fn is_empty(&self) -> bool {
        self.newest().next().is_none()
    }

    /// The time of the newest post ([`super::rank`]) from `from` to
    /// `until`, if there is one: what a new post written at `from` must
    /// come after to show above everything its author has seen (a post
    /// dated later than `until`, by a clock that is wrong or a member who
    /// lies, is passed over). Seeks into the shelves of those days only,
    /// so it costs the posts in that window, not the day's.
    pub fn newest_time_between(&self, from: Millis, until: Millis) -> Option<Millis> {
        let window = from..=until;
        let listed = self
            .listed(0)
            .next()
            .map(|p| super::rank(&p).0)
            .filter(|at| window.contains(at));
        let posts = self.posts.as_ref()?;
        // `~<days to go>.`: the shelves of one day start with it, and
        // end before `~<days to go>/`.
        let day = |at: Millis| super::shelf_key(at, "");
        let end = format!("{}/", day(from).trim_end_matches('.'));
        let shelves = self
            .doc
            .map_range(posts, day(until)..end)
            .filter(|item| super::is_shelf(&item.key))
            .map(|item| (item.key[9..].to_owned(), item.id()))
            .collect::<Vec<_>>();
        let nonce = |at: Millis| format!("{:016x}", (at.max(0) as u64) << 16);
        let shelved = shelves
            .iter()
            .filter_map(|(prefix, shelf)| {
                let range =
                    format!("{prefix}{}", nonce(from))..format!("{prefix}{}", nonce(until + 1));
                self.doc
                    .map_range(shelf, range)
                    .filter(|item| !item.key.contains('/'))
                    .filter_map(|item| super::time_of(&item.key))
                    .filter(|at| window.contains(at))
                    .max()
            })
            .max();
        shelved.max(listed)
    }

    /// Every post, newest first, read as the iterator goes: shelved posts
    /// a day at a time, by their ids' time; posts from before shelves in
    /// the order list's order, merged in by their time.
    pub fn newest(&self) -> impl Iterator<Item = Post> + '_ {
        Merged {
            shelved: Days::new(self).peekable(),
            listed: self.listed(0).peekable(),
        }
    }

    /// Every post once, a stretch at a time, from `at` on (start with
    /// [`Cursor::default`]): at least `at_least` posts (whole shelves), and
    /// where to go on from, or `None` at the end. In no particular order,
    /// for a reader that takes a long feed without holding it: a post
    /// added meanwhile may be missed (a reader keeps a mark for those) or,
    /// before shelves, met twice.
    pub fn stretch(&self, at: &Cursor, at_least: usize) -> (Vec<Post>, Option<Cursor>) {
        let mut out = Vec::new();
        match &at.0 {
            Resume::Shelf(from) => {
                let Some(posts) = &self.posts else {
                    return (out, None);
                };
                for item in self.doc.map_range(posts, from.clone()..) {
                    if !super::is_shelf(&item.key) {
                        continue;
                    }
                    if out.len() >= at_least {
                        return (out, Some(Cursor(Resume::Shelf(item.key.to_string()))));
                    }
                    if let Value::Object(ObjType::Map) = item.value.clone().into_value() {
                        out.extend(shelf_posts(self.doc, &item.id()));
                    }
                }
                if self.order.as_ref().is_some_and(|o| self.doc.length(o) > 0) {
                    let more = Cursor(Resume::Listed(0));
                    return (out, Some(more));
                }
                (out, None)
            }
            Resume::Listed(skip) => {
                out.extend(self.listed(*skip).take(at_least));
                let next = (out.len() == at_least).then(|| Cursor(Resume::Listed(skip + at_least)));
                (out, next)
            }
        }
    }

    /// Every post, oldest first. Reads the whole feed: for conversations and
    /// tests, not for a department's feed page.
    pub fn all(&self) -> Vec<Post> {
        let mut posts: Vec<Post> = self.newest().collect();
        posts.reverse();
        posts
    }

    /// The post with this id.
    pub fn post(&self, id: &str) -> Option<Post> {
        match locate_now(self.doc, self.posts.as_ref()?, id)? {
            Place::Shelved { shelf, text } => {
                let mut post = unpack(id, &text)?;
                for item in self.doc.map_range(&shelf, beside_range(id)) {
                    beside(&mut post, &item.key, item.value.clone().into_value());
                }
                Some(post)
            }
            Place::Map(obj) => self.listed_post(id, &obj),
        }
    }

    /// A post of the layout before shelves. Its fields are read in one
    /// pass over its map: a lookup per field seeks through the whole
    /// document's operations each time.
    fn listed_post(&self, id: &str, obj: &ObjId) -> Option<Post> {
        let (mut author, mut body, mut reply_to) = (None, None, None);
        let (mut created_at, mut edited_at, mut deleted) = (0, None, false);
        let (mut mentions, mut files) = (Vec::new(), Vec::new());
        for item in self.doc.map_range(obj, ..) {
            let value = item.value.clone().into_value();
            let text = || value.as_str().map(str::to_owned);
            match (item.key.as_ref(), &value) {
                ("author", _) => author = text(),
                ("body", _) => body = text(),
                ("created_at", _) => created_at = value.as_i64().unwrap_or(0),
                ("reply_to", _) => reply_to = text(),
                ("edited_at", _) => edited_at = value.as_i64(),
                ("deleted", _) => deleted = value.as_bool() == Some(true),
                ("mentions", Value::Object(ObjType::Map)) => {
                    mentions = member_keys(self.doc, &item.id());
                }
                ("files", Value::Object(ObjType::List)) => {
                    files = self
                        .doc
                        .values(item.id())
                        .filter_map(|(v, _)| v.into_string().ok())
                        .collect();
                }
                _ => {}
            }
        }
        Some(Post {
            author: author?.parse().ok()?,
            body: if deleted { None } else { body },
            created_at,
            reply_to,
            edited_at,
            deleted,
            mentions,
            files,
            reactions: self.reactions(id),
            id: id.to_owned(),
        })
    }

    /// The posts of the order list (the layout before shelves), newest
    /// first, from its `skip`th place on.
    fn listed(&self, skip: usize) -> impl Iterator<Item = Post> + '_ {
        let ids = self
            .order
            .as_ref()
            .map(|o| self.doc.list_range(o, skip..))
            .into_iter()
            .flatten()
            .filter_map(|item| item.value.into_value().as_str().map(str::to_owned));
        let mut seen = HashSet::new();
        let posts = self.posts.clone();
        // A post on a shelf is read there, even if its id is also listed.
        ids.filter(move |id| seen.insert(id.clone()))
            .filter_map(
                move |id| match locate_now(self.doc, posts.as_ref()?, &id)? {
                    Place::Map(obj) => self.listed_post(&id, &obj),
                    Place::Shelved { .. } => None,
                },
            )
    }

    /// The shelves, newest day first: `(key, object)`.
    fn shelves(&self) -> impl Iterator<Item = (String, ObjId)> + '_ {
        self.posts
            .as_ref()
            .map(|p| self.doc.map_range(p, "~".to_owned()..))
            .into_iter()
            .flatten()
            .filter(|item| super::is_shelf(&item.key))
            .filter(|item| matches!(item.value.clone().into_value(), Value::Object(ObjType::Map)))
            .map(|item| (item.key.to_string(), item.id()))
    }

    /// A page of threads, newest first: at most `limit` top-level posts
    /// older than the thread `before` (if given), each with all its replies.
    /// Reads back only as far as the page reaches. A reply whose parent is
    /// not in the feed stands as a thread of its own; a reply to a reply
    /// is in its thread.
    pub fn threads(&self, limit: usize, before: Option<&str>) -> Result<Vec<Thread>, String> {
        let mut replies: HashMap<String, Vec<Post>> = HashMap::new();
        let mut page = Vec::new();
        let mut reached = before.is_none();
        for post in self.newest() {
            if page.len() == limit {
                break;
            }
            if let Some(parent) = &post.reply_to {
                if self.contains(parent) {
                    replies.entry(parent.clone()).or_default().push(post);
                    continue;
                }
            }
            if !reached {
                reached = before == Some(post.id.as_str());
                continue;
            }
            let answers = super::gather(&mut replies, &post.id);
            page.push((post, answers));
        }
        if !reached {
            return Err(format!(
                "no thread {:?} in this feed",
                before.unwrap_or_default()
            ));
        }
        Ok(page)
    }

    /// Whether a post with this id exists.
    pub fn contains(&self, id: &str) -> bool {
        self.posts
            .as_ref()
            .is_some_and(|p| locate_now(self.doc, p, id).is_some())
    }

    fn reactions(&self, id: &str) -> BTreeMap<String, Vec<MemberId>> {
        let Some(per_post) = self.reactions.as_ref().and_then(|r| map(self.doc, r, id)) else {
            return BTreeMap::new();
        };
        self.doc
            .keys(&per_post)
            .filter_map(|emoji| {
                let who = member_keys(self.doc, &map(self.doc, &per_post, &emoji)?);
                (!who.is_empty()).then_some((emoji, who))
            })
            .collect()
    }
}

/// How many posts the changes after `since` added to the feed: records
/// written on shelves, and posts placed in the order list before shelves
/// (each post is written once and never taken away; a deleted post stays
/// as a tombstone). With a count [`Feed::len`] made at `since`, a reader
/// keeps the count at the cost of what arrived since. `None` when `since`
/// names a change the document does not hold, or more than `at_most`
/// changes came after it: count whole then.
pub fn posts_added(
    doc: &Automerge,
    since: &[automerge::ChangeHash],
    at_most: usize,
) -> Option<usize> {
    use automerge::legacy::{Key, OpType};
    use automerge::ScalarValue;

    if since
        .iter()
        .any(|h| doc.get_change_meta_by_hash(h).is_none())
    {
        return None;
    }
    let changes = doc.get_changes(since);
    if changes.len() > at_most {
        return None;
    }
    let mut paths: HashMap<String, Option<Vec<String>>> = HashMap::new();
    let mut added = 0;
    for change in &changes {
        for op in change.decode().operations {
            let path = paths
                .entry(op.obj.to_string())
                .or_insert_with_key(|obj| crate::read::object_path(doc, obj));
            let record = match (path.as_deref(), &op.key, &op.action) {
                (Some([posts, shelf]), Key::Map(key), OpType::Put(ScalarValue::Str(_))) => {
                    posts == "posts" && super::is_shelf(shelf) && !key.contains('/')
                }
                (Some([order]), Key::Seq(_), _) => order == "order" && op.insert,
                _ => false,
            };
            added += usize::from(record);
        }
    }
    Some(added)
}

/// Where [`Feed::stretch`] goes on from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(Resume);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Resume {
    /// Shelves from this key on.
    Shelf(String),
    /// The order list from this place on.
    Listed(usize),
}

impl Default for Cursor {
    fn default() -> Self {
        Self(Resume::Shelf("~".to_owned()))
    }
}

/// Shelved posts, newest first: each day's shelves read whole, their posts
/// sorted by [`super::order_key`].
struct Days<'a> {
    doc: &'a Automerge,
    shelves: Peekable<Box<dyn Iterator<Item = (String, ObjId)> + 'a>>,
    /// The day being read, oldest post first (taken from the end).
    day: Vec<Post>,
}

impl<'a> Days<'a> {
    fn new(feed: &'a Feed<'a>) -> Self {
        let shelves: Box<dyn Iterator<Item = (String, ObjId)> + 'a> = Box::new(feed.shelves());
        Self {
            doc: feed.doc,
            shelves: shelves.peekable(),
            day: Vec::new(),
        }
    }
}

impl Iterator for Days<'_> {
    type Item = Post;

    fn next(&mut self) -> Option<Post> {
        while self.day.is_empty() {
            let (key, shelf) = self.shelves.next()?;
            // `~<days to go>.`: every shelf of one day shares it.
            let day = key[..9].to_owned();
            self.day.extend(shelf_posts(self.doc, &shelf));
            while let Some((_, shelf)) = self.shelves.next_if(|(k, _)| k.starts_with(&day)) {
                self.day.extend(shelf_posts(self.doc, &shelf));
            }
            self.day
                .sort_by(|a, b| super::order_key(&a.id).cmp(&super::order_key(&b.id)));
        }
        self.day.pop()
    }
}

/// Two newest-first streams as one, by time: shelved posts by their ids',
/// listed ones by their authors' clocks.
struct Merged<S: Iterator<Item = Post>, L: Iterator<Item = Post>> {
    shelved: Peekable<S>,
    listed: Peekable<L>,
}

impl<S: Iterator<Item = Post>, L: Iterator<Item = Post>> Iterator for Merged<S, L> {
    type Item = Post;

    fn next(&mut self) -> Option<Post> {
        let listed_first = match (self.shelved.peek(), self.listed.peek()) {
            (Some(s), Some(l)) => super::rank(l).0 > super::rank(s).0,
            (None, _) => true,
            (Some(_), None) => false,
        };
        if listed_first {
            self.listed.next()
        } else {
            self.shelved.next()
        }
    }
}

/// The posts on one shelf, in one pass over its keys (each record's keys
/// follow it: `<id>/…` sorts right after `<id>`). A record that does not
/// read is skipped: the rules refuse it.
fn shelf_posts(doc: &Automerge, shelf: &ObjId) -> Vec<Post> {
    let mut out: Vec<Post> = Vec::new();
    for item in doc.map_range(shelf, ..) {
        let value = item.value.clone().into_value();
        match item.key.split_once('/') {
            None => out.extend(value.as_str().and_then(|text| unpack(&item.key, text))),
            Some((id, _)) => {
                if let Some(post) = out.last_mut().filter(|p| p.id == id) {
                    beside(post, &item.key, value);
                }
            }
        }
    }
    out
}

/// A post from its record, before what stands beside it.
fn unpack(id: &str, text: &str) -> Option<Post> {
    Some(Record::decode(text).ok()?.into_post(id))
}

/// Reads a key beside `post`'s record into it.
fn beside(post: &mut Post, key: &str, value: Value<'_>) {
    let (_, Ok(Some(what))) = Beside::parse(key) else {
        return;
    };
    match what {
        Beside::Body if !post.deleted => post.body = value.as_str().map(str::to_owned),
        Beside::EditedAt => post.edited_at = value.as_i64(),
        Beside::Deleted if value.as_bool() == Some(true) => {
            post.deleted = true;
            post.body = None;
        }
        Beside::Reaction(member, emoji) if value.as_bool() == Some(true) => {
            if let Ok(member) = member.parse() {
                let who = post.reactions.entry(emoji.to_owned()).or_default();
                who.push(member);
                who.sort();
            }
        }
        _ => {}
    }
}

/// The keys of a map that are member ids, sorted.
fn member_keys(doc: &Automerge, obj: &ObjId) -> Vec<MemberId> {
    let mut ids: Vec<MemberId> = doc.keys(obj).filter_map(|k| k.parse().ok()).collect();
    ids.sort();
    ids
}
