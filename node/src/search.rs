//! The local search index: posts, replies, direct messages and file names,
//! in a tantivy index under the home's `search/`.
//!
//! It is derived data, built from the documents this node holds and never
//! sent anywhere. Each indexed document's heads are kept in the index's own
//! commit (its payload), so the index and what it has seen of each document
//! are saved together: after a crash it resumes where its last commit
//! stood. An index that cannot be read, or was built by another schema, is
//! thrown away and rebuilt.
//!
//! Keeping up costs what changed: a document's new changes name the records
//! they wrote ([`meshwork_crdt::touched_since`]), and only those are read
//! again. What a member may read is decided per query, by the documents
//! the query names ([`SearchIndex::search`]).

mod words;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use meshwork_crdt::automerge::ChangeHash;
use meshwork_crdt::{MemberId, Millis};
use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED,
    STRING,
};
use tantivy::snippet::{Snippet, SnippetGenerator};
use tantivy::tokenizer::{AsciiFoldingFilter, LowerCaser, RemoveLongFilter, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError, Term};
use tracing::warn;

use crate::NodeError;

/// Bumped whenever the schema or what is indexed changes: an index of
/// another version is rebuilt.
const VERSION: u32 = 2;

/// The indexing arena: tantivy's minimum for one thread.
const WRITER_MEMORY: usize = 15_000_000;

/// The longest snippet shown for a hit, in characters.
const SNIPPET_CHARS: usize = 160;

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HitKind {
    /// A top-level post in a department's feed.
    Post,
    /// A reply in a department's feed.
    Reply,
    /// A message in a direct conversation.
    Message,
    /// A shared file, by its name.
    File,
    /// A shared folder, by its name and its files' paths.
    Folder,
}

impl HitKind {
    fn as_str(self) -> &'static str {
        match self {
            HitKind::Post => "post",
            HitKind::Reply => "reply",
            HitKind::Message => "message",
            HitKind::File => "file",
            HitKind::Folder => "folder",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "post" => HitKind::Post,
            "reply" => HitKind::Reply,
            "message" => HitKind::Message,
            "file" => HitKind::File,
            "folder" => HitKind::Folder,
            _ => return None,
        })
    }
}

/// One searchable record of a document: a post or a file.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    /// Its id in its document (post id, file id).
    pub id: String,
    pub kind: HitKind,
    /// For a reply: the post it answers.
    pub thread: Option<String>,
    /// Who wrote or shared it.
    pub author: MemberId,
    /// What is searched and shown.
    pub text: String,
    /// When it was written or shared.
    pub at: Millis,
}

/// What changed in one document since the index last saw it.
#[derive(Debug)]
pub(crate) struct DocUpdate {
    /// The document, as [`crate::wire::DocRef::index_key`] names it.
    pub doc: String,
    /// What the index has seen of it after this update.
    pub mark: Mark,
    /// `None`: every record is replaced by `records`. `Some(ids)`: the
    /// records with these ids are replaced by those of `records` that carry
    /// them (an id without one was deleted).
    pub touched: Option<BTreeSet<String>>,
    /// The records as they are now.
    pub records: Vec<Record>,
}

/// What the index has seen of a document: its heads then, and how many
/// changes it held (so that a big delta is told without reading it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Mark {
    /// The heads, hex.
    #[serde(with = "heads_hex")]
    pub heads: Vec<ChangeHash>,
    /// How many changes the document held.
    pub changes: usize,
}

/// What the index has seen, by document.
pub(crate) type Marks = BTreeMap<String, Mark>;

/// A hit, before the node names its department and author.
#[derive(Clone, Debug)]
pub(crate) struct RawHit {
    pub doc: String,
    pub id: String,
    pub kind: HitKind,
    pub thread: Option<String>,
    pub author: Option<MemberId>,
    pub at: Millis,
    pub score: f32,
    /// A stretch of the text around the best match.
    pub snippet: String,
    /// The matched words, as byte ranges of `snippet`.
    pub highlights: Vec<Range<usize>>,
}

/// What the commit payload holds.
#[derive(Serialize, Deserialize)]
struct Payload {
    version: u32,
    /// Document → what was seen of it.
    marks: Marks,
}

#[derive(Clone, Copy)]
struct Fields {
    /// Unique per record: `doc` + "/" + `id`.
    key: Field,
    doc: Field,
    id: Field,
    kind: Field,
    thread: Field,
    author: Field,
    text: Field,
    at: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_stored().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(words::NAME)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        key: b.add_text_field("key", STRING),
        doc: b.add_text_field("doc", STRING | STORED),
        id: b.add_text_field("id", STORED),
        kind: b.add_text_field("kind", STORED),
        thread: b.add_text_field("thread", STORED),
        author: b.add_text_field("author", STORED),
        text: b.add_text_field("text", text),
        at: b.add_i64_field("at", STORED | INDEXED | FAST),
    };
    (b.build(), fields)
}

/// Why an index could not be opened.
enum Opening {
    /// Another writer holds it.
    Busy(NodeError),
    /// It cannot be read: rebuilt.
    Damaged(NodeError),
}

/// The index, its writer, and the marks of what it has seen.
pub(crate) struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// Held while an update is gathered and applied: updates never overlap,
    /// and none is gathered against marks another is about to change.
    writer: Mutex<(IndexWriter, Marks)>,
    /// Documents waiting to hold still before they are read whole
    /// ([`Self::settled`]), with their change counts when last asked.
    sizes: Mutex<BTreeMap<String, usize>>,
}

impl SearchIndex {
    /// Whether `doc`, which changed too much to follow change by change,
    /// held still since the last time it was asked about (it then had
    /// `changes` changes too). A fresh member's history arrives over
    /// minutes; it is read whole once, when it stops growing.
    pub(crate) fn settled(&self, doc: &str, changes: usize) -> bool {
        let mut last = self
            .sizes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match last.insert(doc.to_owned(), changes) {
            Some(before) if before == changes => {
                last.remove(doc);
                true
            }
            _ => false,
        }
    }

    /// Opens the index in `dir`, creating it, or rebuilding it from nothing
    /// when it is unreadable or of another version.
    pub(crate) fn open(dir: &Path) -> Result<Self, NodeError> {
        match Self::open_as_is(dir) {
            Ok(Some(index)) => Ok(index),
            // Another writer has it (this home's other node, still closing):
            // its index is fine, and not ours to throw away.
            Err(Opening::Busy(e)) => Err(e),
            Ok(None) => {
                warn!(
                    "the search index in {} is of another version: rebuilding it",
                    dir.display()
                );
                Self::rebuild(dir)
            }
            Err(Opening::Damaged(e)) => {
                warn!(
                    "cannot open the search index in {}: {e}; rebuilding it",
                    dir.display()
                );
                Self::rebuild(dir)
            }
        }
    }

    fn rebuild(dir: &Path) -> Result<Self, NodeError> {
        std::fs::remove_dir_all(dir).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        })?;
        match Self::open_as_is(dir) {
            Ok(Some(index)) => Ok(index),
            Ok(None) => Err(NodeError::Internal(
                "a new search index reads as another version".into(),
            )),
            Err(Opening::Busy(e) | Opening::Damaged(e)) => Err(e),
        }
    }

    /// `None` when the index holds another version's payload.
    fn open_as_is(dir: &Path) -> Result<Option<Self>, Opening> {
        let damaged = |e: TantivyError| Opening::Damaged(search_error(e));
        std::fs::create_dir_all(dir).map_err(|e| Opening::Damaged(e.into()))?;
        let (schema, fields) = schema();
        let directory =
            tantivy::directory::MmapDirectory::open(dir).map_err(|e| damaged(e.into()))?;
        let index = Index::open_or_create(directory, schema.clone()).map_err(damaged)?;
        if index.schema() != schema {
            return Ok(None);
        }
        index.tokenizers().register(
            words::NAME,
            TextAnalyzer::builder(words::Words::default())
                .filter(RemoveLongFilter::limit(64))
                .filter(LowerCaser)
                .filter(AsciiFoldingFilter)
                .build(),
        );
        let marks = match index.load_metas().map_err(damaged)?.payload {
            None => Marks::new(),
            Some(text) => match serde_json::from_str::<Payload>(&text) {
                Ok(p) if p.version == VERSION => p.marks,
                _ => return Ok(None),
            },
        };
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(|e| match e {
                TantivyError::LockFailure(..) => Opening::Busy(NodeError::Conflict(format!(
                    "the search index is in use by another process: {e}"
                ))),
                e => damaged(e),
            })?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(damaged)?;
        Ok(Some(Self {
            index,
            reader,
            fields,
            writer: Mutex::new((writer, marks)),
            sizes: Mutex::default(),
        }))
    }

    /// Brings the index up to date: `gather` is given the marks of what the
    /// index has seen and returns what changed since; that is written and
    /// committed with the new marks. Returns how many records were written.
    pub(crate) fn catch_up(
        &self,
        gather: impl FnOnce(&Marks) -> Result<Vec<DocUpdate>, NodeError>,
    ) -> Result<usize, NodeError> {
        let mut guard = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (writer, marks) = &mut *guard;
        let updates = gather(marks)?;
        if updates.is_empty() {
            return Ok(0);
        }
        let f = self.fields;
        let mut written = 0;
        let mut next = marks.clone();
        for u in updates {
            match &u.touched {
                None => {
                    writer.delete_term(Term::from_field_text(f.doc, &u.doc));
                }
                Some(ids) => {
                    for id in ids {
                        writer.delete_term(Term::from_field_text(f.key, &key(&u.doc, id)));
                    }
                }
            }
            for r in &u.records {
                let mut d = TantivyDocument::default();
                d.add_text(f.key, key(&u.doc, &r.id));
                d.add_text(f.doc, &u.doc);
                d.add_text(f.id, &r.id);
                d.add_text(f.kind, r.kind.as_str());
                if let Some(t) = &r.thread {
                    d.add_text(f.thread, t);
                }
                d.add_text(f.author, r.author.to_string());
                d.add_text(f.text, &r.text);
                d.add_i64(f.at, r.at);
                writer.add_document(d).map_err(search_error)?;
                written += 1;
            }
            next.insert(u.doc, u.mark);
        }
        let payload = serde_json::to_string(&Payload {
            version: VERSION,
            marks: next.clone(),
        })?;
        let mut commit = writer.prepare_commit().map_err(search_error)?;
        commit.set_payload(&payload);
        commit.commit().map_err(search_error)?;
        *marks = next;
        self.reader.reload().map_err(search_error)?;
        Ok(written)
    }

    /// The best `limit` matches of `query` among the records of `docs`
    /// (what the asker may read), and how many matched in all. The query
    /// is read leniently: every word must match, `"quoted words"` match as
    /// a phrase, and stray syntax is taken as text, never an error.
    pub(crate) fn search(
        &self,
        query: &str,
        docs: &[String],
        limit: usize,
    ) -> Result<(Vec<RawHit>, usize), NodeError> {
        let f = self.fields;
        let mut parser = QueryParser::for_index(&self.index, vec![f.text]);
        parser.set_conjunction_by_default();
        let (words, _ignored) = parser.parse_query_lenient(query);
        let within: Vec<(Occur, Box<dyn Query>)> = docs
            .iter()
            .map(|d| {
                let term = Term::from_field_text(f.doc, d);
                let q: Box<dyn Query> = Box::new(TermQuery::new(term, IndexRecordOption::Basic));
                (Occur::Should, q)
            })
            .collect();
        if within.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let filtered = BooleanQuery::new(vec![
            (Occur::Must, words.box_clone()),
            (Occur::Must, Box::new(BooleanQuery::new(within))),
        ]);
        let searcher = self.reader.searcher();
        let (top, total) = searcher
            .search(
                &filtered,
                &(TopDocs::with_limit(limit.max(1)).order_by_score(), Count),
            )
            .map_err(search_error)?;
        let mut snippets =
            SnippetGenerator::create(&searcher, &*words, f.text).map_err(search_error)?;
        snippets.set_max_num_chars(SNIPPET_CHARS);
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top.into_iter().take(limit) {
            let d: TantivyDocument = searcher.doc(address).map_err(search_error)?;
            let text = |field| {
                d.get_first(field)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            let body = text(f.text).unwrap_or_default();
            let (snippet, highlights) = shown(&body, &snippets.snippet(&body));
            hits.push(RawHit {
                doc: text(f.doc).unwrap_or_default(),
                id: text(f.id).unwrap_or_default(),
                kind: text(f.kind)
                    .and_then(|k| HitKind::parse(&k))
                    .unwrap_or(HitKind::Post),
                thread: text(f.thread),
                author: text(f.author).and_then(|a| a.parse().ok()),
                at: d.get_first(f.at).and_then(|v| v.as_i64()).unwrap_or(0),
                score,
                snippet,
                highlights,
            });
        }
        Ok((hits, total))
    }
}

/// What a hit shows of `text`: all of it when it is short, else the
/// snippet's fragment with "…" where it was cut; and where the matched
/// words are in that. (A fragment runs from its first word to its last, so
/// even a short text's punctuation at either end would be lost.)
fn shown(text: &str, snippet: &Snippet) -> (String, Vec<Range<usize>>) {
    if snippet.is_empty() {
        return (text.chars().take(SNIPPET_CHARS).collect(), Vec::new());
    }
    let frag = snippet.fragment_range();
    let (out, shift) = if text.chars().count() <= SNIPPET_CHARS {
        (text.to_owned(), frag.start)
    } else {
        let before = if frag.start > 0 { "…" } else { "" };
        let after = if frag.end < text.len() { "…" } else { "" };
        (
            format!("{before}{}{after}", snippet.fragment()),
            before.len(),
        )
    };
    let highlights = snippet
        .highlighted()
        .iter()
        .map(|r| r.start + shift..r.end + shift)
        .collect();
    (out, highlights)
}

fn key(doc: &str, id: &str) -> String {
    format!("{doc}/{id}")
}

/// Heads as hex strings in the payload.
mod heads_hex {
    use meshwork_crdt::automerge::ChangeHash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(heads: &[ChangeHash], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(heads.iter().map(|h| hex::encode(h.0)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<ChangeHash>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|h| {
                let bytes: [u8; 32] = hex::decode(h)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        serde::de::Error::custom("a head that is not 32 bytes of hex")
                    })?;
                Ok(ChangeHash(bytes))
            })
            .collect()
    }
}

fn search_error(e: TantivyError) -> NodeError {
    NodeError::failed("search index", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_history_is_read_once_it_held_still_for_a_pass() {
        let dir = tempfile::tempdir().unwrap();
        let index = SearchIndex::open(dir.path()).unwrap();
        assert!(!index.settled("feed/a", 5_000), "first seen");
        assert!(!index.settled("feed/a", 9_000), "still growing");
        assert!(!index.settled("feed/b", 9_000), "another document");
        assert!(index.settled("feed/a", 9_000), "held still");
        assert!(!index.settled("feed/a", 9_000), "asked afresh after a read");
    }
}
