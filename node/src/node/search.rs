//! Search over what this member may read: the feeds and libraries of its
//! departments and its direct conversations. The index ([`SearchIndex`])
//! lives in the home and is kept up by a background task on every feed,
//! library and roster change; a search first catches up with whatever is
//! newer still, so it always sees the node's own last write.
//!
//! The workspace lock is held only to compare heads and read what changed.
//! A document that changed a lot (a fresh member's first sync) is read
//! whole a stretch at a time, the lock taken per stretch, so indexing a big
//! feed never holds the lock for the length of the read; and one whose
//! sync round is running waits for the round to end.

use std::collections::BTreeMap;
use std::sync::Arc;

use meshwork_crdt::automerge::Automerge;
use meshwork_crdt::feed::{Cursor, Feed};
use meshwork_crdt::library::Library;
use meshwork_crdt::roster::Roster;
use meshwork_crdt::{MemberId, Millis, Records, SignedDoc};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::feed::{conversations, my_dept, my_depts};
use super::Node;
use crate::error::Context;
use crate::search::{DocUpdate, Mark, Marks, Record, SearchIndex};
use crate::shared::{NodeEvent, Shared};
use crate::wire::DocRef;
use crate::NodeError;

pub use crate::search::HitKind;

/// The most hits one search returns.
pub const MAX_HITS: usize = 200;

/// The longest query, in bytes.
const MAX_QUERY: usize = 1024;

/// Past this many new changes, a document is read whole, a stretch per hold
/// of the lock, rather than change by change in one hold.
const READ_WHOLE_AFTER: usize = 2_000;

/// The least time between two background passes that found work: while a
/// big history syncs in (events every few milliseconds), each pass takes
/// what came meanwhile, and the index commits a few times a second rather
/// than once per batch. A search catches up itself, without waiting.
const PASS_EVERY: std::time::Duration = std::time::Duration::from_millis(1_000);

/// What `meshwork search` finds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchResults {
    /// The query as asked.
    pub query: String,
    /// How many records match in all (`hits` holds the best of them).
    pub total: usize,
    /// The best matches, best first.
    pub hits: Vec<SearchHit>,
}

/// One match.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchHit {
    /// A post, reply, direct message, file or folder.
    pub kind: HitKind,
    /// The post's or file's id.
    pub id: String,
    /// For a reply: the post it answers.
    pub thread: Option<String>,
    /// The department it is in, as `dept list` labels it (not for a direct
    /// message).
    pub dept: Option<String>,
    /// That department's id.
    pub dept_id: Option<String>,
    /// For a direct message: the other member of the conversation.
    pub with: Option<MemberId>,
    /// Their name.
    pub with_name: Option<String>,
    /// Who wrote or shared it.
    pub author: Option<MemberId>,
    /// Their name.
    pub author_name: String,
    /// When it was written or shared (ms since the epoch).
    pub at: Millis,
    /// How well it matches (higher is better; BM25).
    pub score: f32,
    /// The text around the best match.
    pub snippet: String,
    /// The matched words: `[start, end)` byte offsets into `snippet`.
    pub highlights: Vec<[usize; 2]>,
}

/// What a catch-up did.
struct Caught {
    /// Records (re)written.
    written: usize,
    /// Documents left for later: their sync round was running.
    busy: usize,
}

/// Where a readable document sits, for naming its hits.
#[derive(Clone)]
enum Place {
    Dept { id: String, label: String },
    Direct { with: MemberId, name: String },
}

impl Node {
    /// The best `limit` matches of `query` in what this member may read,
    /// or in one department's feed and library (`dept`).
    pub async fn search(
        &self,
        query: &str,
        dept: Option<&str>,
        limit: usize,
    ) -> Result<SearchResults, NodeError> {
        let query = query.trim();
        if query.is_empty() {
            return Err(NodeError::BadRequest("say what to search for".into()));
        }
        if query.len() > MAX_QUERY {
            return Err(NodeError::BadRequest(format!(
                "a query is at most {MAX_QUERY} bytes, not {}",
                query.len()
            )));
        }
        if !(1..=MAX_HITS).contains(&limit) {
            return Err(NodeError::BadRequest(format!(
                "the number of hits is 1 to {MAX_HITS}, not {limit}"
            )));
        }
        let node = self.clone();
        let (query, dept) = (query.to_owned(), dept.map(str::to_owned));
        tokio::task::spawn_blocking(move || node.search_blocking(&query, dept.as_deref(), limit))
            .await
            .context("search task")?
    }

    fn search_blocking(
        &self,
        query: &str,
        dept: Option<&str>,
        limit: usize,
    ) -> Result<SearchResults, NodeError> {
        let index = self.search_index()?;
        let me = self.member_id();
        let roster = self.shared.roster()?;
        let places = readable(&self.shared, &roster, &me, dept)?;
        // A search reads what is stored, however much is still arriving.
        self.catch_up(&index, &places, false)?;
        let docs: Vec<String> = places.keys().cloned().collect();
        let (raw, total) = index.search(query, &docs, limit)?;
        let name = |id: &MemberId| {
            roster
                .member(id)
                .map_or_else(|| id.short(), |m| m.name.clone())
        };
        let hits = raw
            .into_iter()
            .map(|h| {
                let place = places.get(&h.doc);
                let (dept, dept_id, with, with_name) = match place {
                    Some(Place::Dept { id, label }) => {
                        (Some(label.clone()), Some(id.clone()), None, None)
                    }
                    Some(Place::Direct { with, name }) => {
                        (None, None, Some(*with), Some(name.clone()))
                    }
                    None => (None, None, None, None),
                };
                SearchHit {
                    kind: h.kind,
                    id: h.id,
                    thread: h.thread,
                    dept,
                    dept_id,
                    with,
                    with_name,
                    author_name: h.author.as_ref().map(&name).unwrap_or_default(),
                    author: h.author,
                    at: h.at,
                    score: h.score,
                    snippet: h.snippet,
                    highlights: h.highlights.iter().map(|r| [r.start, r.end]).collect(),
                }
            })
            .collect();
        Ok(SearchResults {
            query: query.to_owned(),
            total,
            hits,
        })
    }

    /// The search index, opened on first use.
    fn search_index(&self) -> Result<Arc<SearchIndex>, NodeError> {
        let mut slot = self
            .search
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(index) = &*slot {
            return Ok(index.clone());
        }
        let index = Arc::new(SearchIndex::open(&self.cfg.home.search())?);
        *slot = Some(index.clone());
        Ok(index)
    }

    /// Brings the index up to date with every document this member may
    /// read.
    fn catch_up_all(&self) -> Result<Caught, NodeError> {
        let index = self.search_index()?;
        let me = self.member_id();
        let places = readable(&self.shared, &self.shared.roster()?, &me, None)?;
        self.catch_up(&index, &places, true)
    }

    /// Catches the index up with `places`. A document whose sync round is
    /// running (a fresh member's history arriving) is left for a later
    /// pass: it would be read again and again as it grows, and the round
    /// needs the lock more.
    ///
    /// `patient` (the background task): a document with a long history
    /// arriving is read whole only once it held still for a pass.
    fn catch_up(
        &self,
        index: &SearchIndex,
        places: &BTreeMap<String, Place>,
        patient: bool,
    ) -> Result<Caught, NodeError> {
        let mut busy = 0;
        let written = index.catch_up(|marks| {
            let mut pending = Vec::new();
            for key in places.keys() {
                let Some(doc) = doc_of(key) else { continue };
                let turn = self.shared.doc_turn(&doc);
                if matches!(turn.try_lock(), Err(std::sync::TryLockError::WouldBlock)) {
                    busy += 1;
                    continue;
                }
                // A document unloaded for idleness has not moved since: if
                // the index saw its heads, it stays on disk.
                if let Some(heads) = self.shared.idle_heads(&doc) {
                    if marks.get(key).is_some_and(|m| m.heads == heads) {
                        continue;
                    }
                }
                // One short hold per document (loaded without it).
                if let Some(p) = self
                    .shared
                    .with_doc(&doc, |state| changed(&state.signed, key, &doc, marks))?
                {
                    pending.push(p);
                }
            }
            // A document read whole is read once it held still for a pass:
            // a history still arriving would be read again and again.
            let mut updates = Vec::new();
            for p in pending {
                match p {
                    Pending::Read(u) => updates.push(u),
                    Pending::Whole {
                        key,
                        mark,
                        big: true,
                        ..
                    } if patient && !index.settled(&key, mark.changes) => {
                        busy += 1;
                    }
                    Pending::Whole { key, doc, mark, .. } => {
                        updates.push(self.read_whole(key, doc, mark)?)
                    }
                }
            }
            Ok(updates)
        })?;
        Ok(Caught { written, busy })
    }

    /// Starts the task that keeps the index up with every change. It ends
    /// when `stop` turns true, after the pass in progress (which holds the
    /// store): [`Node::shutdown`] waits for it.
    pub(super) fn spawn_indexer(&self) {
        use tokio::sync::broadcast::error::RecvError;
        let node = self.clone();
        let mut events = self.shared.events.subscribe();
        let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let n = node.clone();
                let again = match tokio::task::spawn_blocking(move || n.catch_up_all()).await {
                    Ok(Ok(caught)) => {
                        if caught.written > 0 {
                            debug!("search index: {} records written", caught.written);
                        }
                        caught.written > 0 || caught.busy > 0
                    }
                    Err(_) | Ok(Err(NodeError::Conflict(_))) => false, // no workspace yet
                    Ok(Err(e)) => {
                        warn!("search index: {e}");
                        false
                    }
                };
                if again {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        _ = tokio::time::sleep(PASS_EVERY) => {}
                    }
                    // A document was busy: try it again, event or not.
                    while events.try_recv().is_ok() {}
                    continue;
                }
                // Wait for a change that may matter, then take all that came
                // meanwhile in the same pass.
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|s| *s) => return,
                        event = events.recv() => match event {
                            Ok(
                                NodeEvent::FeedChanged { .. }
                                | NodeEvent::LibraryChanged { .. }
                                | NodeEvent::RosterChanged { .. },
                            )
                            | Err(RecvError::Lagged(_)) => break,
                            Ok(_) => {}
                            Err(RecvError::Closed) => return,
                        },
                    }
                }
                while events.try_recv().is_ok() {}
            }
        });
        let old = self
            .indexer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .replace((task, stop_tx));
        if let Some((old, _)) = old {
            old.abort();
        }
    }
}

/// The documents this member may read (or those of one department), by
/// index key.
fn readable(
    shared: &Shared,
    roster: &Roster,
    me: &MemberId,
    dept: Option<&str>,
) -> Result<BTreeMap<String, Place>, NodeError> {
    let mut out = BTreeMap::new();
    let mut add_dept = |id: &str, label: String| {
        let place = Place::Dept {
            id: id.to_owned(),
            label,
        };
        out.insert(index_key(&DocRef::Feed(id.to_owned())), place.clone());
        out.insert(index_key(&DocRef::Library(id.to_owned())), place);
    };
    if let Some(name) = dept {
        let d = my_dept(roster, me, name)?;
        let label = roster
            .dept_labels()
            .into_iter()
            .find(|(x, _)| x.id == d.id)
            .map_or_else(|| d.name.clone(), |(_, l)| l);
        add_dept(&d.id, label);
        return Ok(out);
    }
    for (d, label) in my_depts(roster, *me) {
        add_dept(&d.id, label);
    }
    for (m, doc) in conversations(shared, roster, me)? {
        out.insert(
            index_key(&doc),
            Place::Direct {
                with: m.id,
                name: m.name.clone(),
            },
        );
    }
    Ok(out)
}

/// The index's name for a document.
fn index_key(doc: &DocRef) -> String {
    match doc {
        DocRef::Feed(d) => format!("feed/{d}"),
        DocRef::Direct(id) => format!("direct/{id}"),
        DocRef::Library(d) => format!("library/{d}"),
        DocRef::Roster => "roster".into(),
        DocRef::Pins(day) => format!("pins/{day}"),
    }
}

fn doc_of(key: &str) -> Option<DocRef> {
    let (kind, id) = key.split_once('/')?;
    Some(match kind {
        "feed" => DocRef::Feed(id.to_owned()),
        "direct" => DocRef::Direct(id.to_owned()),
        "library" => DocRef::Library(id.to_owned()),
        _ => return None,
    })
}

/// What a document's update needs: read already, or to read whole.
enum Pending {
    Read(DocUpdate),
    /// Changed too much to follow change by change: read whole, a stretch
    /// at a time, as of these heads.
    Whole {
        key: String,
        doc: DocRef,
        mark: Mark,
        /// More than [`READ_WHOLE_AFTER`] changes came since the index
        /// looked: a history arriving, read once it holds still.
        big: bool,
    },
}

/// Posts read per hold of the workspace lock when a feed is read whole.
const STRETCH: usize = 200;

impl Node {
    /// Reads a document whole for the index. A feed is read about
    /// [`STRETCH`] posts per hold of the lock ([`Feed::stretch`]): a post
    /// met twice is kept once, and one added or changed after `mark`
    /// (taken before the first stretch) is read again by the next pass.
    fn read_whole(&self, key: String, doc: DocRef, mark: Mark) -> Result<DocUpdate, NodeError> {
        let mut records = Vec::new();
        if matches!(doc, DocRef::Library(_)) {
            records = self
                .shared
                .read_doc(&doc, |d| library_records(d.doc(), None))?;
        } else {
            let direct = matches!(doc, DocRef::Direct(_));
            let mut seen = std::collections::HashSet::new();
            let mut at = Some(Cursor::default());
            while let Some(from) = at {
                let stretch;
                (stretch, at) = self
                    .shared
                    .read_doc(&doc, |d| Feed::new(d.doc()).stretch(&from, STRETCH))?;
                records.extend(
                    stretch
                        .into_iter()
                        .filter(|p| seen.insert(p.id.clone()))
                        .filter_map(|p| post_record(p, direct)),
                );
            }
        }
        Ok(DocUpdate {
            doc: key,
            mark,
            touched: None,
            records,
        })
    }
}

/// What changed in `doc` since the index's mark, if anything. Only a small
/// delta is read here, under the lock; a big one is left to
/// [`Node::read_whole`].
fn changed(
    signed: &SignedDoc,
    key: &str,
    doc: &DocRef,
    marks: &Marks,
) -> Result<Option<Pending>, NodeError> {
    let mark = Mark {
        heads: signed.heads(),
        changes: signed.len(),
    };
    let seen = marks.get(key);
    if seen.is_some_and(|s| s.heads == mark.heads) {
        return Ok(None);
    }
    let field = match doc {
        DocRef::Library(_) => Records::Files,
        _ => Records::Posts,
    };
    let small = seen.filter(|s| mark.changes.saturating_sub(s.changes) <= READ_WHOLE_AFTER);
    let touched = small.and_then(|s| {
        meshwork_crdt::touched_since(signed.doc(), &s.heads, field, READ_WHOLE_AFTER)
    });
    Ok(Some(match touched {
        Some(ids) => Pending::Read(DocUpdate {
            doc: key.to_owned(),
            records: records(signed.doc(), doc, &ids),
            touched: Some(ids),
            mark,
        }),
        None => Pending::Whole {
            key: key.to_owned(),
            doc: doc.clone(),
            big: mark.changes.saturating_sub(seen.map_or(0, |s| s.changes)) > READ_WHOLE_AFTER,
            mark,
        },
    }))
}

/// The searchable records of `doc` with the given ids (a deleted post has
/// none).
fn records(am: &Automerge, doc: &DocRef, only: &std::collections::BTreeSet<String>) -> Vec<Record> {
    match doc {
        DocRef::Library(_) => library_records(am, Some(only)),
        _ => {
            let feed = Feed::new(am);
            let direct = matches!(doc, DocRef::Direct(_));
            only.iter()
                .filter_map(|id| feed.post(id))
                .filter_map(|p| post_record(p, direct))
                .collect()
        }
    }
}

/// A library's files (all, or those with the given ids) as records: a
/// folder's text is its name and its files' paths.
fn library_records(
    am: &Automerge,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Vec<Record> {
    let library = Library::new(am);
    let files = match only {
        None => library.files(),
        Some(ids) => ids.iter().filter_map(|id| library.file(id)).collect(),
    };
    files
        .into_iter()
        .map(|f| {
            let mut text = f.name;
            for e in f.entries.iter().flatten() {
                text.push('\n');
                text.push_str(&e.path);
            }
            Record {
                kind: if f.entries.is_some() {
                    HitKind::Folder
                } else {
                    HitKind::File
                },
                id: f.id,
                thread: None,
                author: f.uploader,
                text,
                at: f.shared_at,
            }
        })
        .collect()
}

/// A post as a record, unless it was deleted.
fn post_record(p: meshwork_crdt::feed::Post, direct: bool) -> Option<Record> {
    let kind = match (direct, &p.reply_to) {
        (true, _) => HitKind::Message,
        (false, Some(_)) => HitKind::Reply,
        (false, None) => HitKind::Post,
    };
    Some(Record {
        kind,
        text: p.body?,
        id: p.id,
        thread: p.reply_to,
        author: p.author,
        at: p.created_at,
    })
}
