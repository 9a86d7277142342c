//! The typed view of a feed, in the same order on every node.

use std::collections::{BTreeMap, HashSet};

use automerge::{hydrate, Automerge, ReadDoc, ROOT};
use serde::{Deserialize, Serialize};

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
    /// Emoji → who reacted with it.
    pub reactions: BTreeMap<String, Vec<MemberId>>,
}

/// A department's feed: every post in feed order (oldest first).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feed {
    /// Posts in the order every node shows them, oldest first.
    pub posts: Vec<Post>,
}

impl Feed {
    /// Reads the feed document.
    pub fn read(doc: &Automerge) -> Self {
        let Ok(hydrate::Value::Map(root)) = ReadDoc::hydrate(doc, ROOT, None) else {
            return Self::default();
        };
        let (Some(hydrate::Value::List(order)), Some(hydrate::Value::Map(posts))) =
            (root.get("order"), root.get("posts"))
        else {
            return Self::default();
        };
        let reactions = match root.get("reactions") {
            Some(hydrate::Value::Map(r)) => Some(r),
            _ => None,
        };
        let mut seen = HashSet::new();
        let posts = order
            .iter()
            .filter_map(|entry| match &entry.value {
                hydrate::Value::Scalar(s) => s.as_str().map(str::to_owned),
                _ => None,
            })
            .filter(|id| seen.insert(id.clone()))
            .filter_map(|id| {
                let hydrate::Value::Map(p) = posts.get(&id)? else {
                    return None;
                };
                read_post(id, p, reactions)
            })
            .collect();
        Self { posts }
    }

    /// The post with this id.
    pub fn post(&self, id: &str) -> Option<&Post> {
        self.posts.iter().find(|p| p.id == id)
    }
}

fn read_post(id: String, p: &hydrate::Map, reactions: Option<&hydrate::Map>) -> Option<Post> {
    let s = |k: &str| match p.get(k) {
        Some(hydrate::Value::Scalar(v)) => v.as_str().map(str::to_owned),
        _ => None,
    };
    let i = |k: &str| match p.get(k) {
        Some(hydrate::Value::Scalar(v)) => v.as_i64(),
        _ => None,
    };
    let keys = |m: Option<&hydrate::Value>| -> Vec<MemberId> {
        let mut v: Vec<MemberId> = match m {
            Some(hydrate::Value::Map(m)) => m.keys().filter_map(|k| k.parse().ok()).collect(),
            _ => Vec::new(),
        };
        v.sort();
        v
    };
    let mut by_emoji = BTreeMap::new();
    if let Some(hydrate::Value::Map(per_post)) = reactions.and_then(|r| r.get(&id)) {
        for (emoji, who) in per_post.iter() {
            let who = keys(Some(&who.value));
            if !who.is_empty() {
                by_emoji.insert(emoji.clone(), who);
            }
        }
    }
    let deleted =
        matches!(p.get("deleted"), Some(hydrate::Value::Scalar(v)) if v.as_bool() == Some(true));
    Some(Post {
        author: s("author")?.parse().ok()?,
        body: if deleted { None } else { s("body") },
        created_at: i("created_at").unwrap_or(0),
        reply_to: s("reply_to"),
        edited_at: i("edited_at"),
        deleted,
        mentions: keys(p.get("mentions")),
        reactions: by_emoji,
        id,
    })
}
