//! Posts and messages: departments' feeds, mentions, direct messages,
//! what is unread, reactions and edits.

use std::collections::HashSet;

use anyhow::Result;
use meshwork_node::api::types::{DmBody, EditBody, PostBody, PostRef, ReactBody, ReadBody};
use meshwork_node::crdt::feed::Post;
use meshwork_node::node::{Conversation, Thread};
use meshwork_node::{FeedState, NodeEvent, Unread};

use super::{files::find_file, names, names_unless, urlencode};
use crate::client::Client;
use crate::format::{self, table};
use crate::output::{print, say};
use crate::safe;

/// `post DEPT TEXT`: prints the new post's id.
pub(super) fn post(
    client: &Client,
    dept: String,
    text: String,
    reply_to: Option<String>,
    files: Vec<String>,
) -> Result<()> {
    // Attached by id: a name typed here is looked up first.
    let files = files
        .iter()
        .map(|f| Ok(find_file(client, f)?.entry.id))
        .collect::<Result<Vec<String>>>()?;
    let body = PostBody {
        dept,
        text,
        reply_to,
        files,
    };
    let p: Post = client.post("/v1/posts", &body)?;
    say(&p.id);
    Ok(())
}

/// `feed --mentions`: posts that mention me, from all my departments.
pub(super) fn mentions(client: &Client, limit: usize, json: bool) -> Result<()> {
    let threads: Vec<Thread> = client.get(&format!("/v1/mentions?limit={limit}"))?;
    let names = names_unless(json, client)?;
    print(json, &threads, |t| format::feed_text(t, &names, true))
}

/// `feed DEPT`: newest threads first, marked read.
pub(super) fn feed(
    client: &Client,
    dept: Option<String>,
    limit: usize,
    before: Option<String>,
    follow: bool,
    json: bool,
) -> Result<()> {
    let dept = dept.unwrap_or_default();
    let mut path = format!("/v1/feed?dept={}&limit={limit}", urlencode(&dept));
    if let Some(b) = before {
        path += &format!("&before={}", urlencode(&b));
    }
    let threads: Vec<Thread> = client.get(&path)?;
    let names = names_unless(json, client)?;
    print(json, &threads, |t| format::feed_text(t, &names, false))?;
    // `--json` reads without marking.
    if !json {
        note_if_arriving(client, &dept)?;
        mark_read(client, Some(dept), None)?;
    }
    if follow {
        follow_feed(client, &path, &threads)?;
    }
    Ok(())
}

/// A fresh member's first minutes: says, on stderr, that the page is not
/// all.
fn note_if_arriving(client: &Client, dept: &str) -> Result<()> {
    let state: FeedState = client.get(&format!("/v1/feed/state?dept={}", urlencode(dept)))?;
    if state.preview {
        eprintln!(
            "These are the newest threads as a colleague's node sent them ahead of the \
             history, each checked against its author's signature. The history is still \
             arriving ({} posts here so far); run this again in a while.",
            state.posts
        );
    } else if state.arriving {
        eprintln!(
            "Older posts are still arriving ({} here so far); run this again in a while.",
            state.posts
        );
    }
    Ok(())
}

/// Prints posts and replies that appear after `seen`, each time the
/// department's feed (`path`) changes, until interrupted.
fn follow_feed(client: &Client, path: &str, seen: &[Thread]) -> Result<()> {
    use std::io::Write;
    let ids = |t: &Thread| {
        let replies = t.replies.iter().map(|r| r.id.clone());
        std::iter::once(t.post.id.clone())
            .chain(replies)
            .collect::<Vec<_>>()
    };
    let mut printed: HashSet<String> = seen.iter().flat_map(ids).collect();
    let mut names = names(client)?;
    let mut failure = None;
    client.follow("/v1/events", |event: NodeEvent| {
        let got = match event {
            NodeEvent::RosterChanged { .. } => super::names(client).map(|n| {
                names = n;
                None
            }),
            NodeEvent::FeedChanged { .. } => client.get::<Vec<Thread>>(path).map(Some),
            _ => Ok(None),
        };
        let threads = match got {
            Ok(Some(t)) => t,
            Ok(None) => return true,
            Err(e) => {
                failure = Some(e);
                return false;
            }
        };
        // Oldest thread first, as they were written.
        for t in threads.iter().rev() {
            for (id, block) in format::thread_posts(t, &names) {
                if printed.insert(id.to_owned())
                    && writeln!(std::io::stdout(), "{}", safe::body(&block)).is_err()
                {
                    return false;
                }
            }
        }
        true
    })?;
    failure.map_or(Ok(()), Err)
}

/// `dm MEMBER TEXT`: prints the message's id.
pub(super) fn dm(client: &Client, member: String, text: String) -> Result<()> {
    let p: Post = client.post("/v1/dms", &DmBody { member, text })?;
    say(&p.id);
    Ok(())
}

/// `dms [MEMBER]`: the conversations, or one of them (marked read).
pub(super) fn dms(client: &Client, member: Option<String>, json: bool) -> Result<()> {
    match member {
        Some(m) => conversation(client, m, json),
        None => {
            let list: Vec<Conversation> = client.get("/v1/dms")?;
            let names = names_unless(json, client)?;
            print(json, &list, |cs| {
                table(cs, |c| format::conversation_text(c, &names))
            })
        }
    }
}

/// `dms MEMBER`: my conversation with them, each message under its
/// author's name, mine as theirs.
fn conversation(client: &Client, member: String, json: bool) -> Result<()> {
    let path = format!("/v1/dms?member={}", urlencode(&member));
    let messages: Vec<Post> = client.get(&path)?;
    let names = names_unless(json, client)?;
    print(json, &messages, |ms| {
        table(ms, |m| format::message_text(m, &names))
    })?;
    if !json {
        mark_read(client, None, Some(member))?;
    }
    Ok(())
}

/// `unread`.
pub(super) fn unread(client: &Client, json: bool) -> Result<()> {
    let unread: Unread = client.get("/v1/unread")?;
    print(json, &unread, format::unread_text)
}

/// `read DEPT` or `read --dm MEMBER`: marks it read; prints what is still
/// unread.
pub(super) fn read(client: &Client, dept: Option<String>, dm: Option<String>) -> Result<()> {
    let unread = match dm {
        Some(m) => mark_read(client, None, Some(m))?,
        None => mark_read(client, dept, None)?,
    };
    say(&format::unread_text(&unread));
    Ok(())
}

/// Marks a department (or my conversation with a member) read up to now;
/// what is still unread.
fn mark_read(client: &Client, dept: Option<String>, member: Option<String>) -> Result<Unread> {
    client.post("/v1/read", &ReadBody { dept, member })
}

/// `react POST EMOJI`.
pub(super) fn react(client: &Client, post: String, emoji: String) -> Result<()> {
    client.send("/v1/posts/react", &ReactBody { post, emoji })
}

/// `edit POST TEXT`.
pub(super) fn edit(client: &Client, post: String, text: String) -> Result<()> {
    client.send("/v1/posts/edit", &EditBody { post, text })
}

/// `delete POST`.
pub(super) fn delete(client: &Client, post: String) -> Result<()> {
    client.send("/v1/posts/delete", &PostRef { post })
}
