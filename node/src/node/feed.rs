//! Department feeds: posting, reading, reacting, editing, deleting. A feed
//! change is stored durably, then offered by sync to the connected members of
//! its department — and to no one else.

use std::collections::BTreeMap;

use meshwork_crdt::automerge::transaction::Transaction;
use meshwork_crdt::automerge::AutomergeError;
use meshwork_crdt::feed::write::{self, NewPost};
use meshwork_crdt::feed::{Feed, Post, MAX_AHEAD, MAX_ATTACHED, MAX_BODY};
use meshwork_crdt::library::Library;
use meshwork_crdt::roster::{Department, Member, Roster};
use meshwork_crdt::MemberId;
use serde::{Deserialize, Serialize};

use super::Node;
use crate::shared::{DocState, Shared};
use crate::wire::DocRef;
use crate::NodeError;

/// A top-level post and its replies, as `meshwork feed` shows them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Thread {
    /// The department it is in, as [`Roster::dept_labels`] shows it.
    pub dept: String,
    /// The post.
    #[serde(flatten)]
    pub post: Post,
    /// Its author's display name.
    pub author_name: String,
    /// Replies, oldest first.
    pub replies: Vec<Post>,
    /// The files its posts attach that the department's library lists, by
    /// id (one that left the library is missing here).
    pub attachments: BTreeMap<String, Attachment>,
}

/// How much of a feed is here ([`Node::feed_state`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeedState {
    /// Posts and replies held here, deleted ones included.
    pub posts: usize,
    /// More of the history is still coming from a peer.
    pub arriving: bool,
    /// The newest threads shown are a peer's first page, checked change
    /// by change, ahead of the history ([`meshwork_crdt::feed::page`]).
    pub preview: bool,
}

/// A file a post attaches, as the library describes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Attachment {
    /// Its name.
    pub name: String,
    /// Its size in bytes (a folder's: all its files').
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// How many files, if it is a folder.
    pub files: Option<usize>,
}

/// A direct conversation, as `meshwork dms` lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Conversation {
    /// The other member.
    pub member: MemberId,
    /// Their display name.
    pub name: String,
    /// How many messages.
    pub messages: usize,
    /// The latest message.
    pub last: Option<Post>,
}

impl Node {
    /// Posts `text` to department `dept` (a name), optionally as a reply.
    /// Returns the new post.
    pub async fn post(
        &self,
        dept: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<Post, NodeError> {
        self.post_with_files(dept, text, reply_to, &[]).await
    }

    /// [`Self::post`], attaching `files`: ids in the department's library.
    pub async fn post_with_files(
        &self,
        dept: &str,
        text: &str,
        reply_to: Option<&str>,
        files: &[String],
    ) -> Result<Post, NodeError> {
        check_body(text)?;
        if files.len() > MAX_ATTACHED {
            return Err(NodeError::BadRequest(format!(
                "a post attaches at most {MAX_ATTACHED} files, not {}",
                files.len()
            )));
        }
        let me = self.member_id();
        let now = self.shared.clock.now();
        let roster = self.shared.roster()?;
        let dept = my_dept(&roster, &me, dept)?;
        if !files.is_empty() {
            let missing = self
                .shared
                .read_doc(&DocRef::Library(dept.id.clone()), |d| {
                    let library = Library::new(d.doc());
                    files.iter().find(|f| library.file(f).is_none()).cloned()
                })?;
            if let Some(missing) = missing {
                return Err(NodeError::NotFound(format!(
                    "no file {missing} in {}'s library to attach; `meshwork files {}` lists them",
                    dept.name, dept.name
                )));
            }
        }
        let (dept_id, mentions) = (dept.id, mentions(&roster, text));
        // Its id is chosen against the feed, under its lock.
        let post = NewPost {
            id: "",
            author: me,
            body: text,
            created_at: now,
            reply_to,
            mentions: &mentions,
            files,
        };
        let id = self
            .change_feed(
                DocRef::Feed(dept_id),
                |_, feed| match reply_to {
                    Some(parent) if !feed.contains(parent) => Err(unknown_post(parent)),
                    _ => self.next_post_id(feed, reply_to),
                },
                |tx, id| write::post(tx, &NewPost { id, ..post.clone() }),
            )
            .await?;
        Ok(NewPost { id: &id, ..post }.to_post())
    }

    /// The id of a new post in `feed`: newer than every post this node
    /// holds there, whatever this clock says, so that posts show in the
    /// order their authors saw them (a hybrid logical clock); and newer
    /// than `reply_to`, which the rules require. A time more than
    /// [`MAX_AHEAD`] past this clock is not followed (a member whose clock
    /// is that wrong would drag every later post with it), so a reply to
    /// such a post is refused.
    fn next_post_id(&self, feed: &Feed<'_>, reply_to: Option<&str>) -> Result<String, NodeError> {
        let now = self.shared.clock.now();
        let parent = reply_to.and_then(meshwork_crdt::feed::time_of);
        if parent.is_some_and(|t| t > now + MAX_AHEAD) {
            return Err(NodeError::BadRequest(format!(
                "post {} is dated more than a day after this computer's clock: \
                 its author's clock, or this one, is wrong, and it cannot be answered",
                reply_to.unwrap_or_default()
            )));
        }
        let after = [feed.newest_time_between(now, now + MAX_AHEAD), parent]
            .into_iter()
            .flatten()
            .fold(now, |at, seen| at.max(seen + 1));
        let nonce = self.shared.post_nonces.next(after);
        Ok(meshwork_crdt::feed::post_id(&self.member_id(), nonce))
    }

    /// A department's feed, newest first, replies under their posts:
    /// at most `limit` threads, older than post `before` if given.
    pub fn feed(
        &self,
        dept: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<Thread>, NodeError> {
        let me = self.member_id();
        let roster = self.shared.roster()?;
        let dept = my_dept(&roster, &me, dept)?;
        let label = roster.dept_label(&dept.id).unwrap_or(dept.name);
        let page = self
            .shared
            .with_doc(&DocRef::Feed(dept.id.clone()), |state| {
                Ok(page_or_preview(state, limit, before))
            })?
            .map_err(NodeError::NotFound)?;
        let attached = page
            .iter()
            .any(|(p, rs)| !p.files.is_empty() || rs.iter().any(|r| !r.files.is_empty()));
        let mut attached = if attached {
            self.shared
                .read_doc(&DocRef::Library(dept.id.clone()), |d| {
                    let library = Library::new(d.doc());
                    page.iter()
                        .map(|(p, rs)| attachments(&library, std::iter::once(p).chain(rs)))
                        .collect()
                })?
        } else {
            Vec::new()
        }
        .into_iter();
        Ok(page
            .into_iter()
            .map(|(post, replies)| Thread {
                dept: label.clone(),
                author_name: name_of(&roster, &post.author),
                attachments: attached.next().unwrap_or_default(),
                replies,
                post,
            })
            .collect())
    }

    /// How many posts and replies of a department this node holds (deleted
    /// ones included): what a member sees grow while a history arrives.
    pub fn feed_len(&self, dept: &str) -> Result<usize, NodeError> {
        Ok(self.feed_state(dept)?.posts)
    }

    /// How much of a department's feed is here, and whether more of its
    /// history is still arriving from a peer (a fresh member's first
    /// minutes in a long-lived department).
    pub fn feed_state(&self, dept: &str) -> Result<FeedState, NodeError> {
        let me = self.member_id();
        let dept = my_dept(&self.shared.roster()?, &me, dept)?;
        self.shared.with_doc(&DocRef::Feed(dept.id), |state| {
            let preview = shows_preview(state);
            Ok(FeedState {
                posts: state.post_count(),
                arriving: preview || state.still_arriving(),
                preview,
            })
        })
    }

    /// Sends a direct message to a member (id or display name).
    pub async fn dm(&self, member: &str, text: &str) -> Result<Post, NodeError> {
        check_body(text)?;
        let me = self.member_id();
        let them = self.roster()?.resolve_member(member)?.id;
        if them == me {
            return Err(NodeError::BadRequest(
                "that is you; name a colleague".into(),
            ));
        }
        let now = self.shared.clock.now();
        let doc = DocRef::Direct(meshwork_crdt::feed::direct_id(&me, &them));
        let message = NewPost {
            id: "",
            author: me,
            body: text,
            created_at: now,
            reply_to: None,
            mentions: &[],
            files: &[],
        };
        let id = self
            .change_feed(
                doc,
                |_, feed| self.next_post_id(feed, None),
                |tx, id| {
                    write::post(
                        tx,
                        &NewPost {
                            id,
                            ..message.clone()
                        },
                    )
                },
            )
            .await?;
        Ok(NewPost { id: &id, ..message }.to_post())
    }

    /// My direct conversation with a member, oldest message first.
    pub fn dm_conversation(&self, member: &str) -> Result<Vec<Post>, NodeError> {
        let me = self.member_id();
        let them = self.roster()?.resolve_member(member)?.id;
        let doc = DocRef::Direct(meshwork_crdt::feed::direct_id(&me, &them));
        self.shared.read_doc(&doc, |d| Feed::new(d.doc()).all())
    }

    /// My direct conversations: with whom, how many messages, the last one.
    pub fn dm_list(&self) -> Result<Vec<Conversation>, NodeError> {
        let me = self.member_id();
        let roster = self.shared.roster()?;
        let mut out = Vec::new();
        for (m, doc) in conversations(&self.shared, &roster, &me)? {
            let (messages, last) = self.shared.read_doc(&doc, |d| {
                let feed = Feed::new(d.doc());
                let last = feed.newest().next();
                (feed.len(), last)
            })?;
            out.push(Conversation {
                member: m.id,
                name: m.name.clone(),
                messages,
                last,
            });
        }
        Ok(out)
    }

    /// Posts that mention me across my departments, newest first (as
    /// threads without replies).
    pub fn mentions(&self, limit: usize) -> Result<Vec<Thread>, NodeError> {
        let me = self.member_id();
        let roster = self.shared.roster()?;
        let mut found = Vec::new();
        for (d, label) in my_depts(&roster, me) {
            // Newest first in each feed: the `limit` newest of all are
            // among the `limit` newest of each.
            let mine: Vec<Post> = self.shared.read_doc(&DocRef::Feed(d.id.clone()), |doc| {
                Feed::new(doc.doc())
                    .newest()
                    .filter(|p| p.mentions.contains(&me) && !p.deleted)
                    .take(limit)
                    .collect()
            })?;
            found.extend(mine.into_iter().map(|p| Thread {
                dept: label.clone(),
                author_name: name_of(&roster, &p.author),
                replies: Vec::new(),
                attachments: BTreeMap::new(),
                post: p,
            }));
        }
        found.sort_by(|a, b| {
            b.post
                .created_at
                .cmp(&a.post.created_at)
                .then(b.post.id.cmp(&a.post.id))
        });
        found.truncate(limit);
        Ok(found)
    }

    /// Adds a reaction to a post in one of my departments or a direct message.
    pub async fn react(&self, post_id: &str, emoji: &str) -> Result<(), NodeError> {
        let emoji = reaction(emoji).map_err(NodeError::BadRequest)?;
        let emoji = emoji.as_str();
        let me = self.member_id();
        let doc = self.doc_of_post(post_id)?;
        self.change_feed(
            doc,
            |_, _| Ok(()),
            |tx, ()| write::react(tx, post_id, emoji, me, true),
        )
        .await
    }

    /// Replaces the text of one of my posts.
    pub async fn edit(&self, post_id: &str, text: &str) -> Result<(), NodeError> {
        check_body(text)?;
        let me = self.member_id();
        let now = self.shared.clock.now();
        let doc = self.doc_of_post(post_id)?;
        self.change_feed(
            doc,
            |_, feed| {
                let post = feed.post(post_id).ok_or_else(|| unknown_post(post_id))?;
                if post.author != me {
                    return Err(NodeError::Forbidden(
                        "only its author can edit a post".into(),
                    ));
                }
                if post.deleted {
                    return Err(NodeError::Conflict("that post was deleted".into()));
                }
                Ok(())
            },
            |tx, ()| write::edit(tx, post_id, text, now),
        )
        .await
    }

    /// Deletes a post (mine, or anyone's if I am an admin): a tombstone stays.
    pub async fn delete(&self, post_id: &str) -> Result<(), NodeError> {
        let me = self.member_id();
        let doc = self.doc_of_post(post_id)?;
        self.change_feed(
            doc,
            |roster, feed| {
                let post = feed.post(post_id).ok_or_else(|| unknown_post(post_id))?;
                if post.author != me && !roster.is_admin(&me) {
                    return Err(NodeError::Forbidden(
                        "only its author or an admin can delete a post".into(),
                    ));
                }
                if post.deleted {
                    return Err(NodeError::Conflict("that post is already deleted".into()));
                }
                Ok(())
            },
            |tx, ()| write::delete(tx, post_id),
        )
        .await
    }

    /// The feed or direct conversation that holds a post of mine to see.
    fn doc_of_post(&self, post_id: &str) -> Result<DocRef, NodeError> {
        let me = self.member_id();
        let roster = self.shared.roster()?;
        let feeds = roster
            .depts
            .iter()
            .filter(|d| d.members.contains(&me))
            .map(|d| DocRef::Feed(d.id.clone()));
        let direct = conversations(&self.shared, &roster, &me)?
            .into_iter()
            .map(|(_, doc)| doc);
        for doc in feeds.chain(direct) {
            if self
                .shared
                .read_doc(&doc, |d| Feed::new(d.doc()).contains(post_id))?
            {
                return Ok(doc);
            }
        }
        Err(unknown_post(post_id))
    }

    /// The shape of every feed edit: check against the roster and the feed
    /// (`plan`), then [`Node::change`].
    async fn change_feed<P>(
        &self,
        doc: DocRef,
        plan: impl FnOnce(&Roster, &Feed<'_>) -> Result<P, NodeError>,
        apply: impl FnOnce(&mut Transaction<'_>, &P) -> Result<(), AutomergeError>,
    ) -> Result<P, NodeError> {
        let check = |roster: &Roster, signed: &meshwork_crdt::SignedDoc| {
            plan(roster, &Feed::new(signed.doc()))
        };
        self.change(doc, check, apply).await
    }
}

/// A page of a feed's threads ([`Feed::threads`]); its first page is a
/// peer's preview instead while one is held and the history lacks its
/// newest post (a fresh member's first minutes).
fn page_or_preview(
    state: &mut DocState,
    limit: usize,
    before: Option<&str>,
) -> Result<Vec<meshwork_crdt::feed::Thread>, String> {
    if before.is_none() && shows_preview(state) {
        if let Some(preview) = &state.preview {
            return Ok(preview.iter().take(limit).cloned().collect());
        }
    }
    Feed::new(state.signed.doc()).threads(limit, before)
}

/// Whether the feed is shown from its preview: one is held and the history
/// does not hold its newest post yet. A preview the history caught up with
/// is dropped.
fn shows_preview(state: &mut DocState) -> bool {
    let Some(newest) = state.preview.as_ref().and_then(|p| p.first()) else {
        return false;
    };
    if Feed::new(state.signed.doc()).contains(&newest.0.id) {
        state.preview = None;
        return false;
    }
    true
}

/// What `library` says of the files `posts` attach.
fn attachments<'a>(
    library: &Library<'_>,
    posts: impl Iterator<Item = &'a Post>,
) -> BTreeMap<String, Attachment> {
    posts
        .flat_map(|p| &p.files)
        .filter_map(|id| {
            let f = library.file(id)?;
            Some((
                id.clone(),
                Attachment {
                    name: f.name,
                    size: f.size,
                    media_type: f.media_type,
                    files: f.entries.map(|e| e.len()),
                },
            ))
        })
        .collect()
}

/// The departments `me` is in, each with its label (as `dept list` shows
/// it).
pub(super) fn my_depts(
    roster: &Roster,
    me: MemberId,
) -> impl Iterator<Item = (&Department, String)> {
    roster
        .dept_labels()
        .into_iter()
        .filter(move |(d, _)| d.members.contains(&me))
}

/// A department I belong to, by name, label or id ([`Roster::resolve_dept`]);
/// a clear error otherwise.
pub(super) fn my_dept(roster: &Roster, me: &MemberId, name: &str) -> Result<Department, NodeError> {
    let dept = roster.resolve_dept(name)?;
    if !dept.members.contains(me) {
        let mine: Vec<String> = my_depts(roster, *me).map(|(_, label)| label).collect();
        return Err(NodeError::Forbidden(format!(
            "you are not in department {:?}; your departments: {}",
            roster.dept_label(&dept.id).unwrap_or_default(),
            if mine.is_empty() {
                "none".to_owned()
            } else {
                mine.join(", ")
            }
        )));
    }
    Ok(dept.clone())
}

/// My direct conversations that have begun, with the other member.
pub(super) fn conversations(
    shared: &Shared,
    roster: &Roster,
    me: &MemberId,
) -> Result<Vec<(Member, DocRef)>, NodeError> {
    let workspace = shared.workspace_id()?;
    let mut out = Vec::new();
    for m in roster.active_members().filter(|m| m.id != *me) {
        let doc = DocRef::Direct(meshwork_crdt::feed::direct_id(me, &m.id));
        if shared.store.has_changes(&doc.store_key(&workspace))? {
            out.push((m.clone(), doc));
        }
    }
    Ok(out)
}

fn name_of(roster: &Roster, id: &MemberId) -> String {
    roster
        .member(id)
        .map_or_else(|| "?".into(), |m| m.name.clone())
}

fn check_body(text: &str) -> Result<(), NodeError> {
    if text.trim().is_empty() {
        return Err(NodeError::BadRequest("a post needs some text".into()));
    }
    if text.len() > MAX_BODY {
        return Err(NodeError::BadRequest(format!(
            "the post is {} bytes; the most a post may hold is {MAX_BODY}",
            text.len()
        )));
    }
    Ok(())
}

fn unknown_post(id: &str) -> NodeError {
    NodeError::NotFound(format!(
        "no post {id:?} in your departments' feeds or your direct messages; `meshwork feed DEPT --json` and `meshwork dms MEMBER --json` list ids"
    ))
}

/// Members named `@Name` in the text (display names, case-insensitive).
fn mentions(roster: &Roster, text: &str) -> Vec<MemberId> {
    let lower = text.to_lowercase();
    let mut found: Vec<MemberId> = roster
        .active_members()
        .filter(|m| lower.contains(&format!("@{}", m.name.to_lowercase())))
        .map(|m| m.id)
        .collect();
    found.sort();
    found
}

/// Names a reaction may be given by, and the emoji each stands for.
const REACTION_NAMES: [(&str, &str); 12] = [
    ("thumbsup", "👍"),
    ("+1", "👍"),
    ("thumbsdown", "👎"),
    ("-1", "👎"),
    ("heart", "❤️"),
    ("tada", "🎉"),
    ("smile", "😄"),
    ("laugh", "😂"),
    ("eyes", "👀"),
    ("rocket", "🚀"),
    ("check", "✅"),
    ("pray", "🙏"),
];

/// A reaction as given (an emoji, or one of [`REACTION_NAMES`] with or
/// without colons) as it is stored: the emoji. A word that names no emoji
/// is refused, rather than shown as text beside the count.
fn reaction(given: &str) -> Result<String, String> {
    let given = given.trim();
    let name = given.trim_matches(':').to_ascii_lowercase();
    if let Some((_, emoji)) = REACTION_NAMES.iter().find(|(n, _)| *n == name) {
        return Ok((*emoji).to_owned());
    }
    let wordy = given
        .chars()
        .any(|c| c.is_alphanumeric() || c.is_whitespace() || c.is_control());
    if given.is_empty() || given.chars().count() > 16 || wordy {
        let names: Vec<&str> = REACTION_NAMES.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "a reaction is an emoji, like 👍 or 🎉, or one of the names {}",
            names.join(", ")
        ));
    }
    Ok(given.to_owned())
}

#[cfg(test)]
mod tests {
    use meshwork_crdt::feed::write::{self, NewPost};
    use meshwork_crdt::roster::write as roster_write;
    use meshwork_crdt::{RosterAt, RosterBook, SignedDoc, Signer};

    use super::{page_or_preview, reaction, DocState};

    /// A feed of department d1 holding posts `ids`, all by Ada.
    fn feed_with(ids: &[&str]) -> DocState {
        let ada = Signer::from_secret([1; 32]);
        let (mut roster, _) = SignedDoc::create_roster(&ada, "Acme", "Ada", 1).unwrap();
        roster
            .change(&ada, 1, |tx| {
                roster_write::create_dept(tx, "d1", "Research")?;
                roster_write::dept_add(tx, "d1", ada.id())
            })
            .unwrap();
        let mut feed = SignedDoc::feed("d1", vec![]).unwrap();
        let mut book = RosterBook::new();
        for id in ids {
            let mut at = RosterAt::new(roster.doc(), &mut book);
            let post = NewPost {
                id,
                author: ada.id(),
                body: "hello",
                created_at: 1,
                reply_to: None,
                mentions: &[],
                files: &[],
            };
            feed.change_under(&mut at, &ada, 1, |tx| write::post(tx, &post))
                .unwrap();
        }
        DocState::new(feed)
    }

    #[test]
    fn a_preview_shows_until_the_history_holds_its_newest_post() {
        let prefix = &Signer::from_secret([1; 32]).id().to_string()[..16];
        let (old, new) = (format!("{prefix}old"), format!("{prefix}new"));
        let mut state = feed_with(&[&old]);
        let mut preview = feed_with(&[&old, &new]);
        let page = page_or_preview(&mut preview, 50, None).unwrap();
        state.preview = Some(page.clone());
        let ids = |p: &[meshwork_crdt::feed::Thread]| -> Vec<String> {
            p.iter().map(|(t, _)| t.id.clone()).collect()
        };
        assert_eq!(
            ids(&page_or_preview(&mut state, 50, None).unwrap()),
            [new.as_str(), old.as_str()]
        );
        assert_eq!(
            ids(&page_or_preview(&mut state, 1, None).unwrap()),
            [new.as_str()]
        );
        // Paging on reads the history.
        assert!(page_or_preview(&mut state, 50, Some(&new)).is_err());
        assert!(state.preview.is_some());
        // The history holds the newest post: the preview goes.
        let mut state = feed_with(&[&old, &new]);
        state.preview = Some(page);
        assert_eq!(
            ids(&page_or_preview(&mut state, 50, None).unwrap()),
            [new.as_str(), old.as_str()]
        );
        assert!(state.preview.is_none());
    }

    #[test]
    fn reactions_are_emoji_and_names_become_emoji() {
        assert_eq!(reaction("👍").unwrap(), "👍");
        assert_eq!(reaction(" 🎉 ").unwrap(), "🎉");
        assert_eq!(reaction("thumbsup").unwrap(), "👍");
        assert_eq!(reaction(":tada:").unwrap(), "🎉");
        assert_eq!(reaction("+1").unwrap(), "👍");
        assert_eq!(reaction("❤️").unwrap(), "❤️");
        for bad in ["thumbs up", "lol", "", "x", "1", "👍 nice", "\u{1b}[2J"] {
            assert!(reaction(bad).is_err(), "{bad:?} was taken");
        }
    }
}
