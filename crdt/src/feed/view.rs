//! Typed reads of a feed, in the same order on every node.
//!
//! A feed may hold a hundred thousand posts, so nothing here reads it whole
//! unless asked to ([`Feed::all`]): the order list is newest first, a page of
//! threads reads only as far back as it needs, and a post is looked up by id.

use std::collections::{BTreeMap, HashMap, HashSet};

use automerge::{Automerge, ObjId, ObjType, ReadDoc, Value, ROOT};
use serde::{Deserialize, Serialize};

use crate::read::child_map as map;
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

    /// How many posts, tombstones included.
    pub fn len(&self) -> usize {
        self.order.as_ref().map_or(0, |o| self.doc.length(o))
    }

    /// Whether nobody has posted yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every post, newest first, read as the iterator goes.
    pub fn newest(&self) -> impl Iterator<Item = Post> + '_ {
        self.newest_from(0)
    }

    /// [`Self::newest`] from the `skip`th place of the order on: for a
    /// reader that takes a long feed a stretch at a time. (A post added
    /// meanwhile pushes the rest one place on, so such a reader may meet a
    /// post twice, never miss one.)
    pub fn newest_from(&self, skip: usize) -> impl Iterator<Item = Post> + '_ {
        let ids = self
            .order
            .as_ref()
            .map(|o| self.doc.list_range(o, skip..))
            .into_iter()
            .flatten()
            .filter_map(|item| item.value.into_value().as_str().map(str::to_owned));
        let mut seen = HashSet::new();
        ids.filter(move |id| seen.insert(id.clone()))
            .filter_map(|id| self.post(&id))
    }

    /// Every post, oldest first. Reads the whole feed: for conversations and
    /// tests, not for a department's feed page.
    pub fn all(&self) -> Vec<Post> {
        let mut posts: Vec<Post> = self.newest().collect();
        posts.reverse();
        posts
    }

    /// The post with this id. Its fields are read in one pass over the
    /// post's map: a lookup per field seeks through the whole document's
    /// operations each time (most of what reading a 100,000-post feed's
    /// pages and index cost).
    pub fn post(&self, id: &str) -> Option<Post> {
        let obj = map(self.doc, self.posts.as_ref()?, id)?;
        let (mut author, mut body, mut reply_to) = (None, None, None);
        let (mut created_at, mut edited_at, mut deleted) = (0, None, false);
        let (mut mentions, mut files) = (Vec::new(), Vec::new());
        for item in self.doc.map_range(&obj, ..) {
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

    /// A page of threads, newest first: at most `limit` top-level posts
    /// older than the thread `before` (if given), each with all its replies.
    /// Reads back only as far as the page reaches. A reply whose parent is
    /// not in the feed stands as a thread of its own.
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
            let mut answers = replies.remove(&post.id).unwrap_or_default();
            answers.reverse();
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
            .is_some_and(|p| map(self.doc, p, id).is_some())
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

/// The keys of a map that are member ids, sorted.
fn member_keys(doc: &Automerge, obj: &ObjId) -> Vec<MemberId> {
    let mut ids: Vec<MemberId> = doc.keys(obj).filter_map(|k| k.parse().ok()).collect();
    ids.sort();
    ids
}
