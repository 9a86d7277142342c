//! `meshwork events`: the node's live events, as JSON lines (`--json`), or
//! as lines a person reads — who posted what where, who reacted, who joined,
//! who came online:
//!
//! ```text
//! 2026-12-03 09:14 +01:00  Engineering · Bob: Kick-off at 10
//! 2026-12-03 09:15 +01:00  Engineering · Ada replied to Bob: See you there
//! 2026-12-03 09:15 +01:00  message from Bob: lunch?
//! 2026-12-03 09:16 +01:00  Carol joined the workspace
//! ```
//!
//! An event says only what changed (a department's feed, the roster, a
//! peer); each line comes from comparing what the control API shows after
//! it with what it showed before.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;

use anyhow::Result;
use meshwork_node::api::types::DeptListing;
use meshwork_node::crdt::feed::Post;
use meshwork_node::crdt::roster::{Member, Role};
use meshwork_node::crdt::MemberId;
use meshwork_node::disk::human_size;
use meshwork_node::node::{Conversation, Thread};
use meshwork_node::{FileInfo, NodeEvent, PeerInfo, Status};

use crate::client::Client;
use crate::commands::urlencode;
use crate::safe;
use crate::text::{self, Names};

/// How many of a feed's newest threads are compared: changes further back
/// (an edit to an old post) get a line that does not say which.
const WINDOW: usize = 100;

/// Follows the node's events until interrupted (or stdout closes).
pub(crate) fn follow(client: &Client, json: bool) -> Result<()> {
    let mut watch = if json {
        None
    } else {
        Some(Watch::new(client)?)
    };
    let mut failure = None;
    client.follow("/v1/events", |e: NodeEvent| {
        let lines = match &mut watch {
            None => match crate::output::json(&e) {
                Ok(line) => vec![line],
                Err(err) => {
                    failure = Some(err);
                    return false;
                }
            },
            Some(w) => w
                .lines(client, &e)
                .into_iter()
                // Everything shown passes through here: escaped once more
                // for the one-line shape (escaping is idempotent).
                .map(|l| safe::line(&l).into_owned())
                .collect(),
        };
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) ends the command quietly.
        lines.iter().all(|l| writeln!(out, "{l}").is_ok()) && out.flush().is_ok()
    })?;
    failure.map_or(Ok(()), Err)
}

/// A department as the last look found it.
#[derive(Clone, PartialEq)]
struct Dept {
    label: String,
    members: BTreeSet<MemberId>,
}

/// Lines to print, each with the time it tells of (a post's), if not now.
type Lines = Vec<(Option<i64>, String)>;

/// What the API showed when last asked; each event is compared with it.
struct Watch {
    me: MemberId,
    workspace: String,
    names: Names,
    roles: HashMap<MemberId, Role>,
    depts: BTreeMap<String, Dept>,
    /// Posts by id, per department id I am in.
    feeds: HashMap<String, HashMap<String, Post>>,
    /// Messages by id, per member I write with.
    dms: HashMap<MemberId, HashMap<String, Post>>,
    /// Files by id, per department id I am in.
    files: HashMap<String, HashMap<String, FileInfo>>,
    /// Connected peers: their member id, if members.
    peers: HashMap<String, Option<String>>,
}

impl Watch {
    fn new(client: &Client) -> Result<Self> {
        let status: Status = client.get("/v1/status")?;
        let mut w = Self {
            me: status.member_id.parse()?,
            workspace: String::new(),
            names: Names::default(),
            roles: HashMap::new(),
            depts: BTreeMap::new(),
            feeds: HashMap::new(),
            dms: HashMap::new(),
            files: HashMap::new(),
            peers: HashMap::new(),
        };
        if status.workspace.is_some() {
            w.roster_lines(client, false)?;
            for c in conversations(client)? {
                let got = messages(client, &c.member)?;
                w.dms.insert(c.member, got);
            }
        }
        w.peer_lines(client)?;
        Ok(w)
    }

    /// The lines an event makes: at least one.
    fn lines(&mut self, client: &Client, e: &NodeEvent) -> Vec<String> {
        let got = match e {
            NodeEvent::RosterChanged { .. } => self.roster_lines(client, true),
            NodeEvent::FeedChanged { dept, .. } if self.depts.contains_key(dept) => {
                self.feed_lines(client, dept)
            }
            NodeEvent::FeedChanged { .. } => self.dm_lines(client),
            NodeEvent::FeedPreview {
                dept, kept: true, ..
            } if self.depts.contains_key(dept) => self.feed_lines(client, dept),
            NodeEvent::FeedPreview { .. } => Ok(Vec::new()),
            NodeEvent::LibraryChanged { dept, .. } => self.library_lines(client, dept),
            NodeEvent::PeerConnected { .. } | NodeEvent::PeerDisconnected { .. } => {
                self.peer_lines(client)
            }
            NodeEvent::PinsChanged { .. } => Ok(vec![(
                None,
                "pins changed (`meshwork pins` lists them)".to_owned(),
            )]),
        };
        let now = text::now_ms();
        let mut lines: Vec<String> = got
            // The API could not say more (the node is stopping, or I just
            // left that department): say what the event says, below.
            .unwrap_or_default()
            .into_iter()
            .map(|(at, l)| format!("{}  {l}", text::time(at.unwrap_or(now))))
            .collect();
        if lines.is_empty() {
            lines.push(format!("{}  {}", text::time(now), self.what(e)));
        }
        lines
    }

    /// What an event says by itself.
    fn what(&self, e: &NodeEvent) -> String {
        match e {
            NodeEvent::FeedChanged { dept, .. } => match self.depts.get(dept) {
                Some(d) => format!("{}: the feed changed", d.label),
                None => "direct messages changed".to_owned(),
            },
            NodeEvent::FeedPreview { dept, threads, .. } => match self.depts.get(dept) {
                Some(d) => format!(
                    "{}: the newest {threads} threads arrived, ahead of the history",
                    d.label
                ),
                None => format!("the newest {threads} threads of a feed arrived"),
            },
            NodeEvent::LibraryChanged { dept, .. } => match self.depts.get(dept) {
                Some(d) => format!("{}: the files changed", d.label),
                None => "files changed".to_owned(),
            },
            NodeEvent::RosterChanged { .. } => "the workspace changed".to_owned(),
            NodeEvent::PeerConnected { .. } => "peer connected".to_owned(),
            NodeEvent::PeerDisconnected { .. } => "peer disconnected".to_owned(),
            NodeEvent::PinsChanged { .. } => "pins changed".to_owned(),
        }
    }

    /// Compares members, roles, departments and the workspace's name
    /// (says nothing unless `announce`).
    fn roster_lines(&mut self, client: &Client, announce: bool) -> Result<Lines> {
        let members: Vec<Member> = client.get("/v1/members")?;
        let names = Names::from_members(&members);
        let roles: HashMap<MemberId, Role> = members.iter().map(|m| (m.id, m.role)).collect();
        let listed: Vec<DeptListing> = client.get("/v1/depts")?;
        let depts: BTreeMap<String, Dept> = listed
            .into_iter()
            .map(|d| {
                let dept = Dept {
                    label: safe::line(&d.label).into_owned(),
                    members: d.members.iter().map(|m| m.id).collect(),
                };
                (d.id, dept)
            })
            .collect();
        let status: Status = client.get("/v1/status")?;
        let workspace = status
            .workspace
            .map(|w| safe::line(&w.name).into_owned())
            .unwrap_or_default();
        let mut out = Vec::new();
        if announce && self.roles.is_empty() {
            // Just joined.
            out.push(format!(
                "joined the workspace {workspace} ({})",
                text::count(roles.len() as u64, "member", "members")
            ));
        } else if announce {
            if workspace != self.workspace {
                out.push(format!("the workspace is now called {workspace}"));
            }
            for (id, name) in names.iter() {
                let name = safe::line(name);
                match self.roles.get(id) {
                    None => out.push(format!("{name} joined the workspace")),
                    Some(old) => {
                        let was = self.names.of(id);
                        if was != name {
                            out.push(format!("{was} is now called {name}"));
                        }
                        if let Some(role) = roles.get(id).filter(|r| *r != old) {
                            out.push(format!("{name} is now {}", article(*role)));
                        }
                    }
                }
            }
            for id in self.roles.keys().filter(|id| !roles.contains_key(*id)) {
                out.push(format!("{} left the workspace", self.names.of(id)));
            }
            for (id, d) in &depts {
                let before = self.depts.get(id);
                match before {
                    None => out.push(format!("department {} was created", d.label)),
                    Some(b) if b.label != d.label => {
                        out.push(format!("department {} is now called {}", b.label, d.label));
                    }
                    _ => {}
                }
                let had = before.map(|b| b.members.clone()).unwrap_or_default();
                for m in d.members.difference(&had) {
                    out.push(format!("{} joined {}", names.of(m), d.label));
                }
                for m in had.difference(&d.members) {
                    out.push(format!("{} left {}", names.of(m), d.label));
                }
            }
        }
        self.names = names;
        self.roles = roles;
        self.workspace = workspace;
        self.depts = depts;
        // Departments I am now in, first seen: what they hold is not news.
        // Departments I left: looked at afresh should I come back.
        let mine: BTreeSet<String> = self
            .depts
            .iter()
            .filter(|(_, d)| d.members.contains(&self.me))
            .map(|(id, _)| id.clone())
            .collect();
        self.feeds.retain(|id, _| mine.contains(id));
        self.files.retain(|id, _| mine.contains(id));
        for id in mine {
            if let Entry::Vacant(e) = self.feeds.entry(id.clone()) {
                e.insert(feed(client, &id).unwrap_or_default());
            }
            if let Entry::Vacant(e) = self.files.entry(id.clone()) {
                e.insert(library(client, &id).unwrap_or_default());
            }
        }
        Ok(out.into_iter().map(|l| (None, l)).collect())
    }

    /// New posts and replies, edits, deletions and reactions in a feed.
    fn feed_lines(&mut self, client: &Client, dept: &str) -> Result<Lines> {
        let now = feed(client, dept)?;
        let label = self.depts.get(dept).map_or("?", |d| &d.label).to_owned();
        // Not looked at before (I was just added): nothing to compare with.
        let Some(before) = self.feeds.insert(dept.to_owned(), now.clone()) else {
            return Ok(Vec::new());
        };
        Ok(self.post_lines(before, &now, |who| format!("{label} · {}", who.name)))
    }

    /// The same, in my direct conversations.
    fn dm_lines(&mut self, client: &Client) -> Result<Lines> {
        let mut out = Vec::new();
        for c in conversations(client)? {
            let now = messages(client, &c.member)?;
            let before = self.dms.insert(c.member, now.clone());
            let with = self.names.of(&c.member);
            // A conversation not seen before is new: all of it is news.
            out.extend(self.post_lines(before.unwrap_or_default(), &now, |who| {
                if who.is_mine {
                    format!("message to {with}")
                } else {
                    format!("message from {}", who.name)
                }
            }));
        }
        Ok(out)
    }

    /// Lines for what differs between two looks at a feed or conversation;
    /// `place` words where it happened and who did it.
    fn post_lines(
        &self,
        before: HashMap<String, Post>,
        now: &HashMap<String, Post>,
        place: impl Fn(&Who) -> String,
    ) -> Lines {
        let mut posts: Vec<&Post> = now.values().collect();
        posts.sort_by_key(|p| (p.created_at, &p.id));
        let body = |p: &Post| text::snippet(p.body.as_deref().unwrap_or_default(), 200);
        let mut out = Vec::new();
        for p in posts {
            let author = self.who(&p.author);
            let Some(old) = before.get(&p.id) else {
                let parent = p
                    .reply_to
                    .as_ref()
                    .and_then(|r| now.get(r).or(before.get(r)));
                out.push((
                    Some(p.created_at),
                    match parent {
                        Some(parent) => format!(
                            "{} replied to {}: {}",
                            place(&author),
                            self.names.of(&parent.author),
                            body(p)
                        ),
                        None => format!("{}: {}", place(&author), body(p)),
                    },
                ));
                continue;
            };
            let quoted = format!(
                "“{}”",
                text::snippet(old.body.as_deref().unwrap_or_default(), 40)
            );
            if p.deleted && !old.deleted {
                out.push((None, format!("{} deleted {quoted}", place(&author))));
            } else if p.edited_at != old.edited_at {
                let edited = format!("{} edited {quoted}: {}", place(&author), body(p));
                out.push((p.edited_at, edited));
            }
            for (emoji, who) in &p.reactions {
                let had = old.reactions.get(emoji);
                for r in who.iter().filter(|r| !had.is_some_and(|h| h.contains(r))) {
                    out.push((
                        None,
                        format!(
                            "{} reacted {} to {quoted}",
                            place(&self.who(r)),
                            safe::line(emoji)
                        ),
                    ));
                }
            }
        }
        out
    }

    fn who(&self, id: &MemberId) -> Who {
        Who {
            name: self.names.of(id),
            is_mine: *id == self.me,
        }
    }

    /// Files shared, gone, or held by more or fewer peers.
    fn library_lines(&mut self, client: &Client, dept: &str) -> Result<Lines> {
        let now = library(client, dept)?;
        let label = self.depts.get(dept).map_or("?", |d| &d.label).to_owned();
        let Some(before) = self.files.insert(dept.to_owned(), now.clone()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut files: Vec<&FileInfo> = now.values().collect();
        files.sort_by_key(|f| (f.entry.shared_at, &f.entry.id));
        for f in files {
            let name = safe::line(&f.entry.name);
            match before.get(&f.entry.id) {
                None => out.push((
                    Some(f.entry.shared_at),
                    format!(
                        "{label} · {} shared {name} ({})",
                        safe::line(&f.uploader_name),
                        human_size(f.entry.size),
                    ),
                )),
                Some(old) if old.peers != f.peers => out.push((
                    None,
                    format!(
                        "{label} · {name} is now on {}",
                        text::count(f.peers as u64, "peer", "peers")
                    ),
                )),
                Some(_) => {}
            }
        }
        for (id, f) in &before {
            if !now.contains_key(id) {
                out.push((
                    None,
                    format!(
                        "{label} · {} is no longer available",
                        safe::line(&f.entry.name)
                    ),
                ));
            }
        }
        Ok(out)
    }

    /// Who connected and who went away.
    fn peer_lines(&mut self, client: &Client) -> Result<Lines> {
        let peers: Vec<PeerInfo> = client.get("/v1/peers")?;
        let now: HashMap<String, Option<String>> = peers
            .into_iter()
            .map(|p| (p.peer_id, p.member_id))
            .collect();
        let who = |member: &Option<String>, peer: &str| match member {
            Some(m) => self.names.of_str(m),
            None => format!("a peer that is not a member ({})", text::short_id(peer)),
        };
        let mut out = Vec::new();
        for (peer, member) in &now {
            if !self.peers.contains_key(peer) {
                out.push((None, format!("{} connected", who(member, peer))));
            }
        }
        for (peer, member) in &self.peers {
            if !now.contains_key(peer) {
                out.push((None, format!("{} disconnected", who(member, peer))));
            }
        }
        self.peers = now;
        Ok(out)
    }
}

/// An author, as a line names them.
struct Who {
    name: String,
    is_mine: bool,
}

/// "an admin", "a member", "a pinner".
fn article(role: Role) -> String {
    let role = role.as_str();
    if role.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {role}")
    } else {
        format!("a {role}")
    }
}

/// A department's newest threads, as posts and replies by id.
fn feed(client: &Client, dept: &str) -> Result<HashMap<String, Post>> {
    let threads: Vec<Thread> =
        client.get(&format!("/v1/feed?dept={}&limit={WINDOW}", urlencode(dept)))?;
    Ok(threads
        .into_iter()
        .flat_map(|t| std::iter::once(t.post).chain(t.replies))
        .map(|p| (p.id.clone(), p))
        .collect())
}

fn conversations(client: &Client) -> Result<Vec<Conversation>> {
    client.get("/v1/dms")
}

/// My conversation with a member, by message id.
fn messages(client: &Client, member: &MemberId) -> Result<HashMap<String, Post>> {
    let got: Vec<Post> = client.get(&format!("/v1/dms?member={member}"))?;
    Ok(got.into_iter().map(|m| (m.id.clone(), m)).collect())
}

/// A department's files, by id.
fn library(client: &Client, dept: &str) -> Result<HashMap<String, FileInfo>> {
    let got: Vec<FileInfo> = client.get(&format!("/v1/files?dept={}", urlencode(dept)))?;
    Ok(got.into_iter().map(|f| (f.entry.id.clone(), f)).collect())
}
