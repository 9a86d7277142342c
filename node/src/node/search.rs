//! Search over what this member may read: the feeds and libraries of its
//! departments and its direct conversations. The index ([`SearchIndex`])
//! lives in the home and is kept up by a background task on every feed,
//! library and roster change; a search first catches up with whatever is
//! newer still, so it always sees the node's own last write.
//!
//! The workspace lock is held only to compare heads and read what changed.
//! A document that changed a lot (a fresh member's first sync) is cloned
//! under the lock and read outside it, so indexing a big feed never holds
//! the lock for the length of the read.

use std::collections::BTreeMap;
use std::sync::Arc;

use meshwork_crdt::automerge::Automerge;
use meshwork_crdt::feed::Feed;
use meshwork_crdt::library::Library;
use meshwork_crdt::roster::Roster;
use meshwork_crdt::{MemberId, Millis};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::feed::{conversations, my_dept, my_depts};
use super::Node;
use crate::search::{DocUpdate, Marks, Record, SearchIndex};
use crate::shared::{NodeEvent, Workspace};
use crate::store::Store;
use crate::wire::DocRef;
use crate::NodeError;

pub use crate::search::HitKind;

/// The most hits one search returns.
pub const MAX_HITS: usize = 200;

/// The longest query, in bytes.
const MAX_QUERY: usize = 1024;

/// Past this many new changes, a document is read whole (outside the lock)
/// rather than change by change.
const READ_WHOLE_AFTER: usize = 2_000;

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
            .map_err(|e| NodeError::Internal(format!("search task: {e}")))?
    }

    fn search_blocking(
        &self,
        query: &str,
        dept: Option<&str>,
        limit: usize,
    ) -> Result<SearchResults, NodeError> {
        let index = self.search_index()?;
        let me = self.member_id();
        let (places, roster) = self.shared.with_ws(|ws| {
            let roster = ws.roster_view();
            Ok((
                readable(ws, &roster, &self.shared.store, &me, dept)?,
                roster,
            ))
        })?;
        self.catch_up(&index, &places)?;
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
    /// read. Returns how many records were (re)written.
    fn catch_up_all(&self) -> Result<usize, NodeError> {
        let index = self.search_index()?;
        let me = self.member_id();
        let places = self.shared.with_ws(|ws| {
            let roster = ws.roster_view();
            readable(ws, &roster, &self.shared.store, &me, None)
        })?;
        self.catch_up(&index, &places)
    }

    fn catch_up(
        &self,
        index: &SearchIndex,
        places: &BTreeMap<String, Place>,
    ) -> Result<usize, NodeError> {
        let store = &self.shared.store;
        index.catch_up(|marks| {
            let pending = self.shared.with_ws(|ws| {
                places
                    .keys()
                    .filter_map(|key| doc_of(key).map(|doc| (key, doc)))
                    .map(|(key, doc)| changed(ws, store, key, &doc, marks))
                    .filter_map(Result::transpose)
                    .collect::<Result<Vec<_>, _>>()
            })?;
            // What was cloned is read here, outside the lock.
            Ok(pending.into_iter().map(Pending::finish).collect())
        })
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
                match tokio::task::spawn_blocking(move || n.catch_up_all()).await {
                    Ok(Ok(0)) | Err(_) => {}
                    Ok(Ok(n)) => debug!("search index: {n} records written"),
                    Ok(Err(NodeError::Conflict(_))) => {} // no workspace yet
                    Ok(Err(e)) => warn!("search index: {e}"),
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
    ws: &Workspace,
    roster: &Roster,
    store: &Store,
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
    for (m, doc) in conversations(ws, roster, store, me)? {
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
        DocRef::Pins => "pins".into(),
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

/// What a document's update needs: read already, or to read from a clone.
enum Pending {
    Read(DocUpdate),
    Whole {
        key: String,
        doc: DocRef,
        clone: Box<Automerge>,
    },
}

impl Pending {
    fn finish(self) -> DocUpdate {
        match self {
            Pending::Read(u) => u,
            Pending::Whole { key, doc, clone } => DocUpdate {
                heads: clone.get_heads(),
                touched: None,
                records: records(&clone, &doc, None),
                doc: key,
            },
        }
    }
}

/// What changed in `doc` since the index's mark, if anything.
fn changed(
    ws: &mut Workspace,
    store: &Store,
    key: &str,
    doc: &DocRef,
    marks: &Marks,
) -> Result<Option<Pending>, NodeError> {
    let am = ws.doc_mut(doc, store)?.doc();
    let heads = am.get_heads();
    let mark = marks.get(key);
    if mark == Some(&heads) {
        return Ok(None);
    }
    let field = match doc {
        DocRef::Library(_) => "files",
        _ => "posts",
    };
    let touched = mark.and_then(|m| meshwork_crdt::touched_since(am, m, field, READ_WHOLE_AFTER));
    Ok(Some(match touched {
        Some(ids) => Pending::Read(DocUpdate {
            doc: key.to_owned(),
            records: records(am, doc, Some(&ids)),
            touched: Some(ids),
            heads,
        }),
        None => Pending::Whole {
            key: key.to_owned(),
            doc: doc.clone(),
            clone: Box::new(am.clone()),
        },
    }))
}

/// The searchable records of `doc`: all, or those with the given ids.
fn records(
    am: &Automerge,
    doc: &DocRef,
    only: Option<&std::collections::BTreeSet<String>>,
) -> Vec<Record> {
    match doc {
        DocRef::Library(_) => {
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
        _ => {
            let direct = matches!(doc, DocRef::Direct(_));
            let feed = Feed::new(am);
            let posts: Vec<_> = match only {
                None => feed.newest().collect(),
                Some(ids) => ids.iter().filter_map(|id| feed.post(id)).collect(),
            };
            posts
                .into_iter()
                .filter_map(|p| {
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
                })
                .collect()
        }
    }
}
