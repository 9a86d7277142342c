//! A department's feed: posts, replies, edits, deletions and reactions. One
//! automerge document per department, laid out as
//!
//! ```text
//! { kind: "feed", dept,
//!   order: [post id, …],                    // append-only; automerge orders concurrent appends
//!   posts: { <post id>: { author, body, created_at, reply_to?, edited_at?, deleted?,
//!                         mentions: { <member id>: true },
//!                         files?: [file id, …] } },        // attached from a library
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
//! - [`FeedRules`] decide who may write what;
//! - [`page`] carries the newest threads to a fresh member ahead of the
//!   history.

pub mod page;
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

/// The most files one post attaches.
pub const MAX_ATTACHED: usize = 16;

/// A new post's id: the first 8 bytes of its author's key, then a nonce
/// ([`crate::Nonces`]: ascending, so that the feed's map of posts grows at
/// its end), in hex. The rules hold every post to its author's prefix (as file
/// ids are held to their uploader's), so no member can create, concurrently
/// from an older state, a post under an id another member uses, and have
/// automerge's conflict rule pick theirs.
pub fn post_id(author: &crate::MemberId, nonce: [u8; 8]) -> String {
    format!(
        "{}{}",
        hex::encode(&author.as_bytes()[..8]),
        hex::encode(nonce)
    )
}

/// Whether `id` is a post id of `author`'s: their key's 16-hex prefix, then
/// 1 to 48 characters of `[0-9a-z_-]` ([`post_id`] makes 16 hex).
pub(crate) fn is_post_id_of(id: &str, author: &crate::MemberId) -> bool {
    let prefix = &author.to_string()[..16];
    id.strip_prefix(prefix).is_some_and(|rest| {
        (1..=48).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-' || b == b'_')
    })
}

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
