//! The daemon's answers as text for people: what `status`, `feed`, `dms`,
//! `files`, `pins`… print without `--json`. The words and units are
//! [`text`]'s; whatever peers wrote passes through [`safe`].

use std::collections::BTreeMap;

use meshwork_node::api::types::DeptListing;
use meshwork_node::crdt::feed::Post;
use meshwork_node::crdt::roster::{Member, PinPolicy};
use meshwork_node::disk::human_size;
use meshwork_node::node::{Attachment, Conversation, PinInfo, Thread};
use meshwork_node::{FileInfo, PeerInfo, PinsView, Status, Unread, UnreadIn};

use crate::safe;
use crate::text::{self, count, Names};

/// One line per row, or `(none)`.
pub(crate) fn table<T>(rows: &[T], row: impl Fn(&T) -> String) -> String {
    if rows.is_empty() {
        return "(none)".to_owned();
    }
    rows.iter().map(row).collect::<Vec<_>>().join("\n")
}

/// "Ada Lovelace             admin   5f1c…" per member.
pub(crate) fn members_text(members: &[Member]) -> String {
    table(members, |m| {
        format!(
            "{:<24} {:<7} {}",
            safe::line(&m.name),
            m.role.as_str(),
            m.id
        )
    })
}

/// "Research                 2 members" per department.
pub(crate) fn depts_text(depts: &[DeptListing]) -> String {
    table(depts, |d| {
        format!(
            "{:<24} {}",
            safe::line(&d.label),
            count(d.members.len() as u64, "member", "members")
        )
    })
}

/// This node, its workspace and documents, its disk and who is connected.
pub(crate) fn status_text(s: &Status, names: &Names) -> String {
    let role = s.workspace.as_ref().and_then(|w| w.role);
    let mut out = format!(
        "{} ({})\nmember id: {}\npeer id:   {}\n",
        safe::line(&s.name),
        role.map_or("no role", |r| r.as_str()),
        safe::line(&s.member_id),
        safe::line(&s.peer_id),
    );
    match &s.workspace {
        Some(w) => {
            out += &format!(
                "workspace: \"{}\" ({}, {})\n",
                safe::line(&w.name),
                count(w.members as u64, "member", "members"),
                count(w.departments as u64, "department", "departments"),
            );
            if w.removed {
                out += "this device was removed from the workspace by an admin: \
                        it no longer syncs, and what it holds stays as it was\n";
            }
            for d in &w.documents {
                let heads: Vec<String> = d.heads.iter().map(|h| text::short_id(h)).collect();
                out += &format!(
                    "  {}: {}, {} {}\n",
                    safe::line(&d.name),
                    count(d.changes as u64, "change", "changes"),
                    if heads.len() == 1 { "head" } else { "heads" },
                    text::list(&heads, "none"),
                );
            }
        }
        None => {
            out +=
                "workspace: none yet (`meshwork workspace create NAME` or `meshwork join TOKEN`)\n"
        }
    }
    for a in &s.listen_addrs {
        out += &format!("listening on {}\n", safe::line(a));
    }
    if let Some(d) = &s.disk {
        out += &format!(
            "disk: {} free (keeping {} free), files {}\n",
            human_size(d.free),
            human_size(d.min_free),
            human_size(d.blobs)
        );
    }
    let peers: Vec<String> = s
        .peers
        .iter()
        .map(|p| match &p.member_id {
            Some(id) => names.of_str(id),
            None => format!("{} (not a member)", text::short_id(&p.peer_id)),
        })
        .collect();
    out += &format!(
        "{} connected{}",
        count(peers.len() as u64, "peer", "peers"),
        if peers.is_empty() {
            String::new()
        } else {
            format!(": {}", text::list(&peers, ""))
        }
    );
    out
}

/// A connected peer: who it is, then its peer id and addresses.
pub(crate) fn peer_text(p: &PeerInfo, names: &Names) -> String {
    let who = match &p.member_id {
        Some(id) => names.of_str(id),
        None => "(not a member)".to_owned(),
    };
    let addrs: Vec<_> = p.addrs.iter().map(|a| safe::line(a)).collect();
    format!(
        "{who:<24} {}  {}",
        safe::line(&p.peer_id),
        text::list(&addrs, "(no address)")
    )
}

/// Threads as `feed` shows them, newest first, each reply under its post;
/// with each one's department when `show_dept` (mentions come from all).
pub(crate) fn feed_text(threads: &[Thread], names: &Names, show_dept: bool) -> String {
    if threads.is_empty() {
        return "(none)".to_owned();
    }
    let thread = |t: &Thread| {
        let place = if show_dept {
            format!(" in {}", safe::line(&t.dept))
        } else {
            String::new()
        };
        let blocks: Vec<String> = posts_of(t, names, &place, "  ↳ ")
            .into_iter()
            .map(|(_, block)| block)
            .collect();
        blocks.join("\n")
    };
    threads.iter().map(thread).collect::<Vec<_>>().join("\n\n")
}

/// A thread's post and replies one by one, as `feed --follow` prints each
/// when it arrives: (its id, its block).
pub(crate) fn thread_posts<'a>(t: &'a Thread, names: &Names) -> Vec<(&'a str, String)> {
    posts_of(t, names, "", "↳ ")
}

/// The blocks of a thread's post (its author, then `place`) and of its
/// replies (marked `reply_indent`).
fn posts_of<'a>(
    t: &'a Thread,
    names: &Names,
    place: &str,
    reply_indent: &str,
) -> Vec<(&'a str, String)> {
    let by = format!("{}{place}", safe::line(&t.author_name));
    let post = (
        t.post.id.as_str(),
        post_text(&t.post, &by, &t.attachments, names, ""),
    );
    let replies = t.replies.iter().map(|r| {
        let by = names.of(&r.author);
        let block = post_text(r, &by, &t.attachments, names, reply_indent);
        (r.id.as_str(), block)
    });
    std::iter::once(post).chain(replies).collect()
}

/// A post (or reply) as a block: a header with its id, who wrote it
/// (`by`, safe already) and when, then its text, the files it attaches
/// (`attached` describes them, by id: its thread's attachments), then its
/// reactions.
///
/// ```text
/// [5799624f6d6315c31693b21f2111a9cd] Ada · 2026-12-03 09:14 +01:00
///   Kick-off at 10
///   📎 plan.pdf (1.2 MiB)  `meshwork get 0c1d…`
///   👍 Bob · edited
/// ```
fn post_text(
    p: &Post,
    by: &str,
    attached: &BTreeMap<String, Attachment>,
    names: &Names,
    indent: &str,
) -> String {
    let pad = " ".repeat(indent.chars().count() + 2);
    let body = text_of(p).map_or_else(|| "(deleted)".into(), safe::body);
    let mut out = format!(
        "{indent}[{}] {by} · {}\n{pad}{body}",
        safe::line(&p.id),
        text::time(p.created_at),
    );
    for id in &p.files {
        let id = safe::line(id);
        let what = match attached.get(id.as_ref()) {
            Some(a) => format!("{} ({})", safe::line(&a.name), human_size(a.size)),
            None => "a file no longer in the library".to_owned(),
        };
        out += &format!("\n{pad}📎 {what}  `meshwork get {id}`");
    }
    let notes = notes(p, names);
    if !notes.is_empty() {
        out += &format!("\n{pad}{}", notes.join(" · "));
    }
    out
}

/// A post's text; none once it is deleted.
fn text_of(p: &Post) -> Option<&str> {
    p.body.as_deref().filter(|_| !p.deleted)
}

/// What is said under a post: who reacted, and whether it was edited.
fn notes(p: &Post, names: &Names) -> Vec<String> {
    let mut notes = vec![text::reactions(&p.reactions, names)];
    if p.edited_at.is_some() {
        notes.push("edited".to_owned());
    }
    notes.retain(|n| !n.is_empty());
    notes
}

/// One direct message: "2026-12-03 09:14 +01:00  Bob: see you  [id]". Both
/// sides of a conversation are named the same way, by their names.
pub(crate) fn message_text(p: &Post, names: &Names) -> String {
    let body = text_of(p).map_or_else(|| "(deleted)".into(), safe::body);
    let notes = notes(p, names);
    let notes = if notes.is_empty() {
        String::new()
    } else {
        format!("  ({})", notes.join(" · "))
    };
    format!(
        "{}  {}: {body}{notes}  [{}]",
        text::time(p.created_at),
        names.of(&p.author),
        safe::line(&p.id),
    )
}

/// One conversation: "Bob   2 messages, last 2026-12-03 09:14 +01:00, Ada: yes?".
pub(crate) fn conversation_text(c: &Conversation, names: &Names) -> String {
    let last = match &c.last {
        None => String::new(),
        Some(last) => format!(
            ", last {}, {}: {}",
            text::time(last.created_at),
            names.of(&last.author),
            text_of(last).map_or_else(|| "(deleted)".to_owned(), |b| text::snippet(b, 60)),
        ),
    };
    format!(
        "{:<24} {}{last}",
        safe::line(&c.name),
        count(c.messages as u64, "message", "messages"),
    )
}

/// "Research  3 unread, 1 mention" per place with news, then the total.
pub(crate) fn unread_text(u: &Unread) -> String {
    if u.total == 0 {
        return "Nothing new.".to_owned();
    }
    let places = u.depts.iter().map(|p| (p, false));
    let direct = u.dms.iter().map(|p| (p, true));
    let mut lines: Vec<String> = places
        .chain(direct)
        .filter_map(|(p, direct)| unread_line(p, direct))
        .collect();
    lines.push(format!("{} unread in all{}", u.total, mentions(u.mentions)));
    lines.join("\n")
}

/// A department's or conversation's unread count, if it has news.
fn unread_line(place: &UnreadIn, direct: bool) -> Option<String> {
    if place.unread == 0 {
        return None;
    }
    let more = if place.more { "+" } else { "" };
    let name = safe::line(&place.name);
    let name = if direct {
        format!("{name} (direct)")
    } else {
        name.into_owned()
    };
    Some(format!(
        "{name:<24} {}{more} unread{}",
        place.unread,
        mentions(place.mentions)
    ))
}

/// ", 2 mentions", or nothing for none.
fn mentions(n: usize) -> String {
    match n {
        0 => String::new(),
        n => format!(", {}", count(n as u64, "mention", "mentions")),
    }
}

/// A department's library, a line per file or folder.
pub(crate) fn files_text(files: &[FileInfo]) -> String {
    table(files, |f| {
        let e = &f.entry;
        // A folder is one row: how many files, and their total size.
        let kind = match &e.entries {
            Some(files) => format!("folder, {}", count(files.len() as u64, "file", "files")),
            None => safe::line(&e.media_type).into_owned(),
        };
        format!(
            "{}  {:<32} {:>10}  {:<24} {:<16} shared {}  until {}  on {}",
            safe::line(&e.id),
            safe::line(&e.name),
            human_size(e.size),
            kind,
            safe::line(&f.uploader_name),
            text::time(e.shared_at),
            text::time(f.available_until),
            count(f.peers as u64, "peer", "peers"),
        )
    })
}

/// "retention 72 h, 2 replicas".
pub(crate) fn policy_text(policy: &PinPolicy) -> String {
    format!(
        "retention {} h, {}",
        policy.retention_ms / 3_600_000,
        count(u64::from(policy.replicas), "replica", "replicas")
    )
}

/// The policy, every pin, then the pin nodes and their room.
pub(crate) fn pins_text(view: &PinsView) -> String {
    let mut out = format!("policy: {}\n", policy_text(&view.policy));
    out += &table(&view.pins, pin_text);
    if !view.nodes.is_empty() {
        out += "\npin nodes:\n";
        for n in &view.nodes {
            let full = if n.full {
                format!(
                    "  FULL (quota or disk): refused {}",
                    count(n.refused, "request", "requests")
                )
            } else {
                String::new()
            };
            out += &format!(
                "  {}  {} of {} used{full}\n",
                safe::line(&n.name),
                human_size(n.used),
                human_size(n.quota),
            );
        }
    }
    out
}

/// A pin: the file (or the start of its blob's hash where I may not see
/// the file), where, until when, and who keeps it.
fn pin_text(p: &PinInfo) -> String {
    let what = match (&p.name, &p.file_id) {
        (Some(name), Some(id)) => format!("{}  {}", safe::line(id), safe::line(name)),
        _ => {
            let blob = safe::line(&p.blob);
            format!("blob {}…", blob.get(..16).unwrap_or(&blob))
        }
    };
    let pinners: Vec<String> = p
        .pinners
        .iter()
        .map(|x| {
            let state = if x.lost {
                " (lost)"
            } else if x.failed_audit {
                " (failed audit)"
            } else {
                ""
            };
            format!("{}{state}", safe::line(&x.name))
        })
        .collect();
    format!(
        "{what}  {:>10}  {}  until {}  {}/{}{}  pinners: {}",
        human_size(p.size),
        safe::line(&p.dept),
        text::time(p.until),
        p.replicas,
        count(u64::from(p.target), "replica", "replicas"),
        if p.meets_target { "" } else { "  BELOW TARGET" },
        text::list(&pinners, "none"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::tests::{id, named};

    fn message(n: u8, author: u8, body: &str) -> Post {
        Post {
            id: format!("m{n}"),
            author: id(author),
            body: Some(body.to_owned()),
            created_at: 0,
            reply_to: None,
            edited_at: None,
            deleted: false,
            mentions: Vec::new(),
            files: Vec::new(),
            reactions: BTreeMap::new(),
        }
    }

    /// The line's text after its time.
    fn said(line: &str) -> &str {
        line.split_once("  ").map_or(line, |(_, rest)| rest)
    }

    #[test]
    fn a_conversation_names_both_sides() {
        let names = named(&["Ada", "Bob"]);
        assert_eq!(
            said(&message_text(&message(1, 1, "lunch?"), &names)),
            "Ada: lunch?  [m1]"
        );
        assert_eq!(
            said(&message_text(&message(2, 2, "yes"), &names)),
            "Bob: yes  [m2]"
        );
        // Someone the roster no longer knows: the start of their id.
        assert_eq!(
            said(&message_text(&message(3, 9, "hi"), &names)),
            "09090909…: hi  [m3]"
        );
        let mut gone = message(4, 2, "oops");
        gone.deleted = true;
        gone.edited_at = Some(1);
        assert_eq!(
            said(&message_text(&gone, &names)),
            "Bob: (deleted)  (edited)  [m4]"
        );
    }

    #[test]
    fn unread_lists_places_with_news_then_the_total() {
        let place = |name: &str, unread, mentions| UnreadIn {
            id: name.to_lowercase(),
            name: name.to_owned(),
            unread,
            mentions,
            more: false,
        };
        let u = Unread {
            depts: vec![place("Research", 3, 1), place("Sales", 0, 0)],
            dms: vec![place("Bob", 1, 0)],
            total: 4,
            mentions: 1,
        };
        assert_eq!(
            unread_text(&u),
            "Research                 3 unread, 1 mention\n\
             Bob (direct)             1 unread\n\
             4 unread in all, 1 mention"
        );
        assert_eq!(unread_text(&Unread::default()), "Nothing new.");
    }
}
