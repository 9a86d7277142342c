//! A department's feed: posts, replies, edits, deletions and reactions. One
//! automerge document per department, laid out as
//!
//! ```text
//! { kind: "feed", dept,
//!   order: [post id, …],                    // append-only; automerge orders concurrent appends
//!   posts: { <post id>: { author, body, created_at, reply_to?, edited_at?, deleted?,
//!                         mentions: { <member id>: true } } },
//!   reactions: { <post id>: { <emoji>: { <member id>: true } } } }
//! ```
//!
//! A direct conversation between two members is the same kind of document
//! ([`direct_id`]), written and read by those two alone.
//!
//! Its first change is built the same way by every node from the department
//! id alone ([`genesis`]), so no two members can race to create the maps.
//!
//! - [`Feed`] is the typed view, in the same order on every node;
//! - [`write`] holds the only functions that write this layout;
//! - [`FeedRules`] decide who may write what.

mod rules;
mod view;
pub mod write;

use automerge::transaction::Transactable;
use automerge::{Automerge, AutomergeError, ObjType, ROOT};

pub(crate) use rules::authorize;
pub use rules::FeedRules;
pub use view::{Feed, Post, Thread};

/// The longest post body, in bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// The id of the direct conversation between two members: the same whichever
/// of them asks.
pub fn direct_id(a: &crate::MemberId, b: &crate::MemberId) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("dm-{lo}-{hi}")
}

/// The feed document's deterministic first change: identical bytes, hence an
/// identical hash, on every node.
pub fn genesis(dept_id: &str) -> Result<Automerge, AutomergeError> {
    crate::genesis::deterministic("feed", dept_id, |tx| {
        tx.put_object(ROOT, "order", ObjType::List)?;
        tx.put_object(ROOT, "posts", ObjType::Map)?;
        tx.put_object(ROOT, "reactions", ObjType::Map)?;
        Ok(())
    })
}
