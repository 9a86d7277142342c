//! A department's feed: posts, replies, edits, deletions and reactions. One
//! automerge document per department, laid out as
//!
//! ```text
//! { kind: "feed", dept,
//!   posts: { "~<days to go>.<prefix>": {                 // a shelf: one author's day
//!              <post id>: "<record>",                    // author, time, reply_to, mentions, files
//!              "<post id>/body": text,                   // gone once deleted
//!              "<post id>/edited_at": millis,
//!              "<post id>/deleted": true,
//!              "<post id>/r/<member id>/<emoji>": true } },
//!   order: [], reactions: {} }                           // the layout before shelves (below)
//! ```
//!
//! A post sits on the shelf of its author and its day ([`shelf_of`]: both
//! read from its id, whose nonce carries its time), as a library's files
//! do (`crate::library`), and for the same reason: automerge applies a
//! change by walking the operations of every object it touches and copies
//! its index of objects each time, so a post that was an object in a map
//! of every post, placed in a list of every post, cost a receiver time in
//! proportion to the feed's history (28 ms at 100,000 posts,
//! BENCHMARKS.md, "A post taken in, as the feed grows"). On its shelf, a
//! post is no object at all: its fixed part is one string
//! ([`record::Record`]), and what changes after (its text, its deletion,
//! reactions) are keys beside it, written by whoever the rules let.
//!
//! The shelves share `posts` with the posts of the layout before them (a
//! map per post, placed in `order`, reactions in `reactions`), because
//! the genesis cannot change. A shelf's key starts with `~`, which no
//! post id does, and counts its day down from 9,999,999, so the shelves
//! sort newest day first: a page of the newest threads reads the front of
//! `posts` and stops. Posts are ordered by their ids' time ([`order_key`]),
//! not by a list; the rules hold a reply to be newer than its post, so a
//! reader that walks newest first meets every reply before its thread.
//! Older posts are read, edited, deleted and reacted to where they are,
//! and the rules still take posts written that way by an older node.
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
pub(crate) mod record;
mod rules;
mod view;
pub mod write;

use automerge::transaction::Transactable;
use automerge::{Automerge, AutomergeError, ObjType, ROOT};

pub(crate) use rules::authorize;
pub use rules::FeedRules;
pub use view::{posts_added, Cursor, Feed, Post, Thread};

/// How far past a reader's clock a post's time is followed: a node writes
/// its next post after the newest it holds up to this far ahead
/// (`Node::next_post_id`), and a first page leaves out posts dated later
/// ([`page::OpenedPage::read`]). A clock off by more is wrong, or lies.
pub const MAX_AHEAD: crate::Millis = 24 * 3_600_000;

/// The most members one post mentions.
pub const MAX_MENTIONS: usize = 1000;

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

/// The shelf of post `id`: `~`, the days from its nonce's day (UTC, from
/// 1970, as [`crate::library::shelf_of`] counts them) to day 9,999,999 in
/// seven digits, a dot, its author's prefix. `None` for an id that does
/// not carry a time (32 lowercase hex digits, as [`post_id`] makes): such
/// a post sits directly in `posts`, as every post did before shelves.
pub fn shelf_of(id: &str) -> Option<String> {
    let (prefix, at) = split_id(id)?;
    Some(shelf_key(at, prefix))
}

/// The key of `prefix`'s shelf for the day of time `at` (with an empty
/// prefix: where that day's shelves start).
pub(crate) fn shelf_key(at: crate::Millis, prefix: &str) -> String {
    let day = crate::pins::epoch_of(at).clamp(0, MAX_DAY);
    format!("~{:07}.{prefix}", LAST_DAY - day)
}

/// The day a shelf's key counts down from: past any nonce's (48 bits of
/// milliseconds reach day 3,257,812).
const LAST_DAY: crate::pins::Epoch = 9_999_999;

/// Whether `key` of `posts` has the shape of a shelf ([`shelf_of`]), of
/// a day a nonce can reach.
pub(crate) fn is_shelf(key: &str) -> bool {
    key.strip_prefix('~')
        .and_then(|k| k.split_once('.'))
        .is_some_and(|(days, prefix)| {
            days.len() == 7
                && days.bytes().all(|b| b.is_ascii_digit())
                && days
                    .parse::<crate::pins::Epoch>()
                    .is_ok_and(|d| d >= LAST_DAY - MAX_DAY)
                && prefix.len() == 16
                && crate::is_lower_hex(prefix)
        })
}

/// The last day a nonce's 48 bits of milliseconds reach.
const MAX_DAY: crate::pins::Epoch = ((1i64 << 48) - 1) / 86_400_000;

/// The order of shelved posts, the same on every node: by the time in
/// their ids (then the nonce's random bits, then the author's prefix).
/// `None` for an id that carries no time.
pub(crate) fn order_key(id: &str) -> Option<(u64, &str)> {
    crate::nonce::split_id(id).map(|(prefix, nonce)| (nonce, prefix))
}

/// Where a post stands in the feed's order, oldest first: a shelved post by
/// the time in its id ([`order_key`]), a post from before shelves by its
/// author's clock.
pub(crate) fn rank(post: &Post) -> (crate::Millis, u64, &str) {
    match order_key(&post.id) {
        Some((nonce, prefix)) => (crate::nonce::time_of(nonce), nonce, prefix),
        None => (post.created_at, 0, &post.id),
    }
}

/// The time a post id carries ([`post_id`]'s nonce), if it carries one.
pub fn time_of(id: &str) -> Option<crate::Millis> {
    split_id(id).map(|(_, at)| at)
}

/// An id's author prefix and the time in its nonce.
fn split_id(id: &str) -> Option<(&str, crate::Millis)> {
    let (prefix, nonce) = crate::nonce::split_id(id)?;
    Some((prefix, crate::nonce::time_of(nonce)))
}

/// The replies of a thread, from the replies a newest-first walk put aside
/// by the post they answer: `root`'s, and theirs in turn (a reply to a
/// reply belongs to the same thread), oldest first.
pub(crate) fn gather(
    aside: &mut std::collections::HashMap<String, Vec<Post>>,
    root: &str,
) -> Vec<Post> {
    let mut out = Vec::new();
    let mut next = vec![root.to_owned()];
    while let Some(id) = next.pop() {
        // Put aside newest first.
        for reply in aside.remove(&id).unwrap_or_default().into_iter().rev() {
            next.push(reply.id.clone());
            out.push(reply);
        }
    }
    // Stable: replies of one time keep the walk's order.
    out.sort_by_key(|p| {
        let (at, nonce, _) = rank(p);
        (at, nonce)
    });
    out
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
