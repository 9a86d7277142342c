//! What is new: per department feed and direct conversation, how many posts
//! by others this member has not read, and how many of them mention it.
//!
//! Read state is a mark per conversation — the newest post it held when it
//! was last read — kept in this node's store alone: it is never synced, so
//! nobody else learns what you read. (A member is one device here; a member
//! on several devices would sync it through a document of its own.)
//! Counting walks each feed from its newest post back to the mark, so it
//! costs what is unread, not the feed's history, and stops at
//! [`COUNT_AT_MOST`].

use meshwork_crdt::feed::Feed;
use meshwork_crdt::MemberId;
use serde::{Deserialize, Serialize};

use super::feed::{conversations, my_dept, my_depts};
use super::Node;
use crate::wire::DocRef;
use crate::NodeError;

/// Counting stops here ("999+").
pub const COUNT_AT_MOST: usize = 999;

/// What is unread, everywhere this member reads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Unread {
    /// Per department I am in, as `dept list` names them.
    pub depts: Vec<UnreadIn>,
    /// Per direct conversation that has begun.
    pub dms: Vec<UnreadIn>,
    /// Unread posts in all.
    pub total: usize,
    /// Unread posts that mention me, in all.
    pub mentions: usize,
}

/// What is unread in one department or conversation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnreadIn {
    /// The department's id, or the other member's.
    pub id: String,
    /// Its label, or the other member's name.
    pub name: String,
    /// Posts by others since I last read it.
    pub unread: usize,
    /// Of those, how many mention me.
    pub mentions: usize,
    /// Counting stopped at [`COUNT_AT_MOST`].
    pub more: bool,
}

/// Where something is read.
#[derive(Clone, Debug)]
pub enum ReadIn {
    /// A department, by name, label or id.
    Dept(String),
    /// A direct conversation with a member, by name or id.
    Member(String),
}

impl Node {
    /// What is unread, per department and conversation.
    pub fn unread(&self) -> Result<Unread, NodeError> {
        let me = self.member_id();
        let roster = self.shared.roster()?;
        // One conversation's counts, past its read mark.
        let unread_in = |doc: &DocRef, id: String, name: String| {
            let mark = self.shared.store.read_mark(&mark_key(doc))?;
            self.shared.read_doc(doc, |signed| {
                count(&Feed::new(signed.doc()), mark.as_deref(), &me, id, name)
            })
        };
        let mut out = Unread::default();
        for (d, label) in my_depts(&roster, me) {
            out.depts
                .push(unread_in(&DocRef::Feed(d.id.clone()), d.id.clone(), label)?);
        }
        for (m, doc) in conversations(&self.shared, &roster, &me)? {
            out.dms
                .push(unread_in(&doc, m.id.to_string(), m.name.clone())?);
        }
        for u in out.depts.iter().chain(&out.dms) {
            out.total += u.unread;
            out.mentions += u.mentions;
        }
        Ok(out)
    }

    /// Marks a department or conversation read, up to its newest post.
    pub fn mark_read(&self, what: &ReadIn) -> Result<(), NodeError> {
        let me = self.member_id();
        let roster = self.shared.roster()?;
        let doc = match what {
            ReadIn::Dept(d) => DocRef::Feed(my_dept(&roster, &me, d)?.id),
            ReadIn::Member(m) => {
                let them = roster.resolve_member(m)?.id;
                DocRef::Direct(meshwork_crdt::feed::direct_id(&me, &them))
            }
        };
        let newest = self
            .shared
            .read_doc(&doc, |d| Feed::new(d.doc()).newest().next().map(|p| p.id))?;
        match newest {
            Some(id) => self.shared.store.set_read_mark(&mark_key(&doc), &id),
            None => Ok(()),
        }
    }
}

/// The store's key for a conversation's read mark.
fn mark_key(doc: &DocRef) -> String {
    match doc {
        DocRef::Feed(d) => format!("feed/{d}"),
        DocRef::Direct(id) => format!("direct/{id}"),
        other => format!("{other:?}"),
    }
}

/// Posts by others from the newest back to `mark` (not counted), and those
/// that mention `me`.
fn count(feed: &Feed<'_>, mark: Option<&str>, me: &MemberId, id: String, name: String) -> UnreadIn {
    let mut out = UnreadIn {
        id,
        name,
        unread: 0,
        mentions: 0,
        more: false,
    };
    for post in feed.newest() {
        if Some(post.id.as_str()) == mark {
            break;
        }
        if post.author == *me || post.deleted {
            continue;
        }
        if out.unread == COUNT_AT_MOST {
            out.more = true;
            break;
        }
        out.unread += 1;
        out.mentions += usize::from(post.mentions.contains(me));
    }
    out
}
