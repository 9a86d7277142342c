//! State shared by the node's handle and its network event loop: identity,
//! store, clock, and the workspace's documents.
//!
//! Two kinds of lock, always taken in this order:
//! 1. a department document's own ([`DocState`]: the document and the sync
//!    sessions running on it), held for as long as work on that document
//!    takes — a sync message to a fresh member, half a second on a
//!    100,000-post feed, holds up that feed alone;
//! 2. the workspace's (meta, the roster and its sessions, the map of
//!    documents), held briefly: the roster, a lookup, the judging of one
//!    batch of changes against the roster.
//!
//! Nobody waits for a document's lock while holding the workspace's, so a
//! long hold of a document stalls no one who does not need that document:
//! not the network loop, not `status`, not another department's post. No
//! await happens while either is held.

mod idle;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use meshwork_blobs::BlobStore;
use meshwork_crdt::automerge::sync;
use meshwork_crdt::library::BlobIndex;
use meshwork_crdt::pins;
use meshwork_crdt::roster::{Roster, RosterCache};
use meshwork_crdt::signed::Rules;
use meshwork_crdt::{
    automerge::ChangeHash, Ingest, MemberId, Millis, RosterAt, RosterBook, SignedChange, SignedDoc,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use tracing::debug;

use crate::home::Identity;
use crate::store::{Store, WorkspaceMeta};
use crate::wire::DocRef;
use crate::{Clock, NodeError};

/// Which side of a sync exchange a state belongs to: each direction runs its
/// own automerge sync session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    Initiator,
    Responder,
}

/// Something that happened, as the control API's event stream tells it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeEvent {
    /// New roster changes were stored (local or from peers).
    RosterChanged {
        /// How many.
        changes: usize,
    },
    /// New posts, edits or reactions in a department's feed.
    FeedChanged {
        /// The department id.
        dept: String,
        /// How many changes.
        changes: usize,
    },
    /// A peer's first page of a department's feed arrived and was checked
    /// ([`meshwork_crdt::feed::page`]): its newest threads, ahead of the
    /// history.
    FeedPreview {
        /// The department id.
        dept: String,
        /// How many threads it shows.
        threads: usize,
        /// Whether the feed shows it: not when the history got here first.
        kept: bool,
    },
    /// Files shared in a department, or a new holder of one.
    LibraryChanged {
        /// The department id.
        dept: String,
        /// How many changes.
        changes: usize,
    },
    /// A peer connected.
    PeerConnected {
        /// Its peer id.
        peer_id: String,
    },
    /// A peer's last connection closed.
    PeerDisconnected {
        /// Its peer id.
        peer_id: String,
    },
    /// Pin requests, commitments or pin-node reports changed.
    PinsChanged {
        /// How many changes.
        changes: usize,
    },
}

/// A department document (feed, conversation, library, pin ledger) and the
/// sync sessions running on it, behind the document's own lock.
pub(crate) struct DocState {
    pub signed: SignedDoc,
    /// One automerge sync state per peer and side.
    pub sync: HashMap<(PeerId, Side), sync::State>,
    /// When a peer's changes were last taken in.
    pub arrived: Option<Instant>,
    /// A feed's newest threads as a peer's first page showed them, held
    /// until the history holds their newest post
    /// ([`meshwork_crdt::feed::page`]).
    pub preview: Option<Vec<meshwork_crdt::feed::Thread>>,
    /// A feed's count of posts, and the heads it was made at
    /// ([`Self::post_count`]).
    counted: Option<(Vec<ChangeHash>, usize)>,
    /// When it was last used: loaded, read, written, or changes taken in
    /// ([`idle`]).
    used: Instant,
}

/// How recently changes must have come in for a history a peer holds and
/// this node lacks to count as still arriving (a peer whose changes are
/// refused does not leave a feed "arriving" for ever).
const ARRIVING: std::time::Duration = std::time::Duration::from_secs(30);

impl DocState {
    pub(crate) fn new(signed: SignedDoc) -> Self {
        Self {
            signed,
            sync: HashMap::new(),
            arrived: None,
            preview: None,
            counted: None,
            used: Instant::now(),
        }
    }

    /// How many posts a feed holds. Counting a feed whole reads every
    /// shelf (tens of milliseconds at 100,000 posts), so the count is kept
    /// and brought up to date from the changes that came in since
    /// ([`meshwork_crdt::feed::posts_added`]), as a history arrives.
    pub(crate) fn post_count(&mut self) -> usize {
        /// Past this many new changes, counting whole is as quick.
        const RECOUNT_AFTER: usize = 20_000;
        let heads = self.signed.heads();
        let doc = self.signed.doc();
        let count = match &self.counted {
            Some((at, n)) if *at == heads => return *n,
            Some((at, n)) => {
                meshwork_crdt::feed::posts_added(doc, at, RECOUNT_AFTER).map(|k| n + k)
            }
            None => None,
        }
        .unwrap_or_else(|| meshwork_crdt::feed::Feed::new(doc).len());
        self.counted = Some((heads, count));
        count
    }

    /// Records a use of the document (it stays loaded a while longer).
    pub(crate) fn used(&mut self) {
        self.used = Instant::now();
    }

    /// Whether a history is still coming in: changes arrived lately, and a
    /// peer in session holds heads this node does not have yet.
    pub(crate) fn still_arriving(&self) -> bool {
        let lately = self.arrived.is_some_and(|t| t.elapsed() < ARRIVING);
        let lacking = |heads: &Vec<ChangeHash>| {
            heads
                .iter()
                .any(|h| self.signed.doc().get_change_meta_by_hash(h).is_none())
        };
        lately
            && self
                .sync
                .values()
                .any(|s| s.their_heads.as_ref().is_some_and(lacking))
    }
}

/// A loaded department document, shared by whoever works on it.
pub(crate) type DocSlot = Arc<Mutex<DocState>>;

/// The workspace this node belongs to: its roster, and the department
/// documents loaded so far (each behind its own lock).
pub(crate) struct Workspace {
    pub meta: WorkspaceMeta,
    pub roster: SignedDoc,
    /// The roster's sync sessions, per peer and side.
    pub roster_sync: HashMap<(PeerId, Side), sync::State>,
    /// Feeds, conversations, libraries and the pin ledger, loaded on first
    /// use.
    docs: HashMap<DocRef, DocSlot>,
    /// What is kept of documents unloaded for idleness ([`idle`]).
    idle: HashMap<DocRef, idle::Idle>,
    /// Documents on their way out of memory (being compacted, then
    /// unloaded): the periodic sync leaves them be.
    leaving: HashSet<DocRef>,
    /// How many times documents left `docs`: a copy loaded from the store
    /// while this moved may be older than the one that left, and is loaded
    /// again ([`Shared::slot`]).
    unloads: u64,
    /// Typed rosters at the heads department documents' changes cite.
    book: RosterBook,
    /// The typed roster, kept current by re-reading what changes touch.
    cache: RosterCache,
    /// The roster's saved size at some heads (a save costs milliseconds).
    saved: Option<(Vec<ChangeHash>, usize)>,
}

impl Workspace {
    pub(crate) fn new(meta: WorkspaceMeta, roster: SignedDoc) -> Self {
        Self {
            meta,
            roster,
            roster_sync: HashMap::new(),
            docs: HashMap::new(),
            idle: HashMap::new(),
            leaving: HashSet::new(),
            unloads: 0,
            book: RosterBook::new(),
            cache: RosterCache::default(),
            saved: None,
        }
    }

    /// The roster as department documents' changes are judged by it: at
    /// the heads each cites.
    pub(crate) fn roster_at(&mut self) -> RosterAt<'_> {
        RosterAt::new(self.roster.doc(), &mut self.book)
    }

    /// The roster's saved size, remembered until it changes.
    pub(crate) fn roster_saved_bytes(&mut self) -> usize {
        let heads = self.roster.heads();
        match &self.saved {
            Some((at, bytes)) if *at == heads => *bytes,
            _ => {
                let bytes = self.roster.doc().save().len();
                self.saved = Some((heads, bytes));
                bytes
            }
        }
    }

    /// Whether `a` and `b` may exchange `doc` at `now`: both active members,
    /// for a feed both in its department, for a day of the pin ledger a day
    /// still live.
    pub(crate) fn may_share(
        &mut self,
        doc: &DocRef,
        a: &MemberId,
        b: &MemberId,
        now: Millis,
    ) -> bool {
        let roster = self.cache.get(&self.roster);
        let both = roster.is_active(a) && roster.is_active(b);
        match doc {
            DocRef::Roster => both,
            DocRef::Pins(day) => both && pins::day_is_live(*day, now),
            DocRef::Feed(d) | DocRef::Library(d) => {
                both && roster
                    .dept(d)
                    .is_some_and(|d| d.members.contains(a) && d.members.contains(b))
            }
            DocRef::Direct(_) => {
                both && doc
                    .pair()
                    .is_some_and(|p| a != b && p.contains(a) && p.contains(b))
            }
        }
    }

    /// The documents besides the roster `a` and `b` share at `now`: the
    /// live days of the pin ledger held here, the feeds and libraries of
    /// departments both belong to, and their direct conversation if it has
    /// begun here. (A day, or a conversation, that has begun only on the
    /// other side is offered by the other side: with a thousand members, a
    /// node does not run a sync session per colleague for conversations
    /// nobody started.)
    pub(crate) fn shared_docs(
        &mut self,
        a: &MemberId,
        b: &MemberId,
        store: &Store,
        now: Millis,
    ) -> Vec<DocRef> {
        let roster = self.cache.get(&self.roster);
        let mut docs: Vec<DocRef> = roster
            .depts
            .iter()
            .filter(|d| d.members.contains(a) && d.members.contains(b))
            .flat_map(|d| [DocRef::Feed(d.id.clone()), DocRef::Library(d.id.clone())])
            .collect();
        if roster.is_active(a) && roster.is_active(b) {
            let days = live_ledger_days(store, now).unwrap_or_default();
            docs.extend(days.into_iter().map(DocRef::Pins));
        }
        if a != b && roster.is_active(a) && roster.is_active(b) {
            let direct = DocRef::Direct(meshwork_crdt::feed::direct_id(a, b));
            let begun = self.docs.contains_key(&direct)
                || store
                    .has_changes(&direct.store_key(&self.meta.id))
                    .unwrap_or(false);
            if begun {
                docs.push(direct);
            }
        }
        docs
    }

    /// The roster as it is now.
    pub(crate) fn roster_view(&mut self) -> Roster {
        self.cache.get(&self.roster).clone()
    }

    /// An empty workspace about to be filled by sync (a joiner's).
    pub(crate) fn empty(meta: WorkspaceMeta) -> Self {
        let rules = Rules::Roster {
            workspace: ChangeHash(meta.id),
        };
        Self::new(meta, SignedDoc::new(rules))
    }
}

/// When this node last saw each peer, by its own clock (so skew between
/// nodes does not matter): what decides that a pinner is lost.
pub(crate) struct Presence {
    /// When this node started: a peer never seen since counts as absent
    /// from then.
    started: Millis,
    /// `None` while connected, else when the last connection closed.
    last: HashMap<PeerId, Option<Millis>>,
}

impl Presence {
    /// How long `peer` has been out of sight at `now` (0 while connected).
    pub(crate) fn absent_for(&self, peer: &PeerId, now: Millis) -> Millis {
        match self.last.get(peer) {
            Some(None) => 0,
            Some(Some(left)) => now.saturating_sub(*left),
            None => now.saturating_sub(self.started),
        }
    }

    /// Whether `peer` is connected now.
    pub(crate) fn connected(&self, peer: &PeerId) -> bool {
        matches!(self.last.get(peer), Some(None))
    }
}

/// The days of the pin ledger `store` holds that are live at `now`: what a
/// node reads, offers and serves from.
fn live_ledger_days(store: &Store, now: Millis) -> Result<Vec<pins::Epoch>, NodeError> {
    let mut days = store.ledger_days()?;
    days.retain(|day| pins::day_is_live(*day, now));
    Ok(days)
}

/// A department document (feed, conversation, library, pin ledger) as the
/// store holds it.
/// A department document as stored: its genesis, its snapshot if it was
/// compacted, then the changes stored loose since.
fn load(doc: &DocRef, workspace: &[u8; 32], store: &Store) -> Result<SignedDoc, NodeError> {
    let (snapshot, stored) = store.stored(&doc.store_key(workspace))?;
    let mut signed = match doc {
        DocRef::Direct(_) => {
            let [a, b] = doc
                .pair()
                .ok_or_else(|| NodeError::BadRequest("not a direct conversation id".into()))?;
            SignedDoc::direct(a, b, Vec::new())?
        }
        DocRef::Library(id) => SignedDoc::library(id, Vec::new())?,
        DocRef::Pins(day) => SignedDoc::pins(&hex::encode(workspace), *day, Vec::new())?,
        DocRef::Feed(id) => SignedDoc::feed(id, Vec::new())?,
        DocRef::Roster => return Err(NodeError::Internal("the roster is loaded".into())),
    };
    if let Some(snapshot) = snapshot {
        signed = signed.restore(&snapshot)?;
    }
    signed.add_stored(stored)?;
    Ok(signed)
}

/// How many changes of a document stored loose make it worth
/// compacting when it leaves memory ([`Store::compact`]), by default: a
/// snapshot is rewritten whole, so not for a handful.
pub(crate) const COMPACT_AFTER: usize = 1_000;

/// A hold of a lock worth a log line.
const LONG_HOLD: std::time::Duration = std::time::Duration::from_millis(50);

/// Logs a hold of `what` lock that began at `held` if it was long.
fn log_long_hold(what: &str, held: std::time::Instant, caller: &std::panic::Location<'_>) {
    if held.elapsed() > LONG_HOLD {
        debug!(
            "{what} lock was held {:?} at {}:{}",
            held.elapsed(),
            caller.file(),
            caller.line()
        );
    }
}

/// Locks a document's state (a panic while it was held leaves it as the
/// last completed operation left it: automerge changes are applied whole).
fn lock(slot: &DocSlot) -> MutexGuard<'_, DocState> {
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) struct Shared {
    pub identity: Identity,
    pub store: Store,
    /// Blob bytes, under the home's `blobs/`.
    pub blobs: Arc<BlobStore>,
    pub clock: Arc<dyn Clock>,
    ws: Mutex<Option<Workspace>>,
    /// Bumped whenever the roster changes, so waiters can re-check it.
    pub roster_version: watch::Sender<u64>,
    /// Live events for the control API's event stream.
    pub events: broadcast::Sender<NodeEvent>,
    presence: Mutex<Presence>,
    /// Members' libp2p peer ids (deriving one decompresses a curve point).
    peer_ids: crate::ids::PeerIds,
    /// One turn per document: its sync rounds run one at a time.
    turns: Mutex<HashMap<DocRef, Arc<Mutex<()>>>>,
    /// One load per document at a time ([`Self::slot`]).
    loading: Mutex<HashMap<DocRef, Arc<Mutex<()>>>>,
    /// Per library, which files hold a blob: kept while the library comes
    /// and goes from memory, brought up to date as it is read
    /// ([`Self::with_blob_index`]), each behind a lock of its own (the
    /// first read of a big library holds up no other).
    blob_indexes: Mutex<HashMap<DocRef, Arc<Mutex<BlobIndex>>>>,
    /// The second halves of this node's new file ids.
    pub nonces: meshwork_crdt::Nonces,
    /// The second halves of this node's new post ids: apart from files',
    /// since a post's time follows the newest post seen
    /// (`Node::next_post_id`), which may be a little ahead of this clock.
    pub post_nonces: meshwork_crdt::Nonces,
}

/// The gate of `doc` in `gates`, made on first use.
fn gate(gates: &Mutex<HashMap<DocRef, Arc<Mutex<()>>>>, doc: &DocRef) -> Arc<Mutex<()>> {
    gates
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(doc.clone())
        .or_default()
        .clone()
}

impl Shared {
    pub(crate) fn new(
        identity: Identity,
        store: Store,
        blobs: BlobStore,
        clock: Arc<dyn Clock>,
        ws: Option<Workspace>,
    ) -> Self {
        Self {
            identity,
            store,
            blobs: Arc::new(blobs),
            ws: Mutex::new(ws),
            roster_version: watch::channel(0).0,
            events: broadcast::channel(1024).0,
            presence: Mutex::new(Presence {
                started: clock.now(),
                last: HashMap::new(),
            }),
            clock,
            peer_ids: Default::default(),
            turns: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
            blob_indexes: Mutex::new(HashMap::new()),
            nonces: Default::default(),
            post_nonces: Default::default(),
        }
    }

    /// The slot of department document `doc`, loaded from the store on
    /// first use — outside any lock: a 100,000-post feed takes a second to
    /// load. (Whoever inserts first wins; nothing writes to a document
    /// that is not loaded, so a copy loaded here is never behind one that
    /// was — unless that one left memory during the read, which
    /// [`Workspace::unloads`] tells: then it is read again.)
    #[track_caller]
    pub(crate) fn slot(&self, doc: &DocRef) -> Result<DocSlot, NodeError> {
        let caller = std::panic::Location::caller();
        if *doc == DocRef::Roster {
            return Err(NodeError::Internal(
                "the roster lives in the workspace, not in a slot".into(),
            ));
        }
        loop {
            if let Some(slot) = self.with_ws(|ws| Ok(ws.docs.get(doc).cloned()))? {
                return Ok(slot);
            }
            // One load of a document at a time: whoever asks meanwhile (a
            // sync round each way and a first page, when a fresh member
            // arrives) waits for it rather than reading it again.
            let gate = gate(&self.loading, doc);
            let _loading = gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let (loaded, workspace, unloads) =
                self.with_ws(|ws| Ok((ws.docs.get(doc).cloned(), ws.meta.id, ws.unloads)))?;
            if let Some(slot) = loaded {
                return Ok(slot);
            }
            let loaded = load(doc, &workspace, &self.store)?;
            let slot = self.with_ws(|ws| {
                if let Some(slot) = ws.docs.get(doc) {
                    return Ok(Some(slot.clone()));
                }
                // A document left memory while this copy was read: it may
                // have been that one, with changes written after the read.
                if ws.unloads != unloads {
                    return Ok(None);
                }
                let mut state = DocState::new(loaded);
                if let Some(idle) = ws.idle.remove(doc) {
                    debug!("{doc:?} back in memory from idle, for {caller}");
                    state.sync = idle.resume();
                }
                let slot = Arc::new(Mutex::new(state));
                ws.docs.insert(doc.clone(), slot.clone());
                Ok(Some(slot))
            })?;
            if let Some(slot) = slot {
                self.loading
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .remove(doc);
                return Ok(slot);
            }
        }
    }

    /// Unloads the department documents unused for `idle_for` that nobody
    /// holds now, keeping what their sync sessions knew ([`idle`]), and
    /// compacts first those with `compact_after` changes stored loose
    /// ([`Store::compact`]). Returns how many left memory. (They are dropped after the
    /// workspace lock is let go: a big document takes a while to free.)
    pub(crate) fn unload_idle(
        &self,
        idle_for: Duration,
        compact_after: usize,
    ) -> Result<usize, NodeError> {
        let idle: Vec<(DocRef, DocSlot)> = self.with_ws(|ws| {
            let idle: Vec<(DocRef, DocSlot)> = ws
                .docs
                .iter()
                // Nobody else holds the slot (whoever works on a document
                // holds it), so its lock is free.
                .filter(|(_, slot)| Arc::strong_count(slot) == 1)
                .filter(|(_, slot)| {
                    slot.try_lock()
                        .is_ok_and(|state| idle::may_unload(&state, idle_for))
                })
                .map(|(doc, slot)| (doc.clone(), slot.clone()))
                .collect();
            ws.leaving.extend(idle.iter().map(|(doc, _)| doc.clone()));
            Ok(idle)
        })?;
        // Compacted while still loaded, each under its own lock: nobody
        // reads the store for a document in memory, so no load meets the
        // store half rewritten.
        for (doc, slot) in &idle {
            self.compact(doc, slot, compact_after);
        }
        let unloaded = self.with_ws(|ws| {
            let mut unloaded = Vec::new();
            for (doc, slot) in idle {
                ws.leaving.remove(&doc);
                // Still idle, and held by the map and this pass alone.
                let still = Arc::strong_count(&slot) == 2
                    && slot
                        .try_lock()
                        .is_ok_and(|state| idle::may_unload(&state, idle_for));
                if !still {
                    continue;
                }
                ws.docs.remove(&doc);
                if let Ok(state) = Arc::try_unwrap(slot) {
                    let state = state.into_inner().unwrap_or_else(|p| p.into_inner());
                    ws.idle.insert(doc, idle::Idle::of(&state));
                    unloaded.push(state);
                }
                ws.unloads += 1;
            }
            Ok(unloaded)
        })?;
        Ok(unloaded.len())
    }

    /// Compacts `doc` in the store ([`Store::compact`]) if at least
    /// `after` of its changes are stored loose, under the lock of its
    /// `slot`. A failure leaves the store as it was: it is logged, and the
    /// next compaction tries again.
    fn compact(&self, doc: &DocRef, slot: &DocSlot, after: usize) {
        if let Err(e) = self.try_compact(doc, &lock(slot).signed, after) {
            debug!(?doc, "not compacted: {e}");
        }
    }

    fn try_compact(&self, doc: &DocRef, signed: &SignedDoc, after: usize) -> Result<(), NodeError> {
        let key = doc.store_key(&self.workspace_id()?);
        if self.store.loose_changes(&key)? < after.max(1) {
            return Ok(());
        }
        let took = Instant::now();
        let snapshot = signed.snapshot();
        let done = self.store.compact(&key, &snapshot)?;
        debug!(
            ?doc,
            "compacted {} changes into a snapshot of {} bytes in {:?}",
            done.changes,
            done.bytes,
            took.elapsed()
        );
        Ok(())
    }

    /// Compacts every document in memory with at least `after` changes
    /// stored loose, each under its own lock: what a node does as it
    /// stops, so that its next start reads snapshots (a 100,000-post feed:
    /// ~1 s) rather than histories change by change (~5 s).
    pub(crate) fn compact_loaded(&self, after: usize) -> Result<(), NodeError> {
        let loaded: Vec<(DocRef, DocSlot)> = self.with_ws(|ws| {
            Ok(ws
                .docs
                .iter()
                .map(|(doc, slot)| (doc.clone(), slot.clone()))
                .collect())
        })?;
        for (doc, slot) in &loaded {
            self.compact(doc, slot, after);
        }
        Ok(())
    }

    /// The documents a periodic sync with `peer` leaves be: those, loaded
    /// or unloaded for idleness, that `peer` was last heard holding exactly
    /// as this node does (neither has anything for the other: [`idle`]),
    /// and those on their way out of memory (a round now would keep one in,
    /// or load it again). Another whose lock is taken now is not among
    /// them: the loop does not wait for it.
    pub(crate) fn periodic_skips(&self, peer: &PeerId) -> HashSet<DocRef> {
        self.with_ws(|ws| {
            let unloaded = ws
                .idle
                .iter()
                .filter(|(_, idle)| idle.in_step_with(peer))
                .map(|(doc, _)| doc.clone());
            let loaded = ws
                .docs
                .iter()
                .filter(|(_, slot)| {
                    slot.try_lock()
                        .is_ok_and(|state| idle::in_step(&state).contains(peer))
                })
                .map(|(doc, _)| doc.clone());
            let leaving = ws.leaving.iter().cloned();
            Ok(unloaded.chain(loaded).chain(leaving).collect())
        })
        .unwrap_or_default()
    }

    /// Whether `doc` is unloaded for idleness with `peer` last heard
    /// holding exactly its heads: a round this side would open has nothing
    /// to say, and no reason to load it.
    pub(crate) fn idle_in_step(&self, doc: &DocRef, peer: &PeerId) -> bool {
        self.with_ws(|ws| Ok(ws.idle.get(doc).is_some_and(|i| i.in_step_with(peer))))
            .unwrap_or(false)
    }

    /// The heads of `doc` if it is unloaded for idleness (they cannot have
    /// moved since: nothing writes to a document that is not loaded).
    pub(crate) fn idle_heads(&self, doc: &DocRef) -> Option<Vec<ChangeHash>> {
        self.with_ws(|ws| Ok(ws.idle.get(doc).map(|idle| idle.heads.clone())))
            .ok()
            .flatten()
    }

    /// The department documents in memory now.
    pub(crate) fn loaded_docs(&self) -> Vec<DocRef> {
        self.with_ws(|ws| Ok(ws.docs.keys().cloned().collect()))
            .unwrap_or_default()
    }

    /// The slots of the department documents loaded now.
    fn loaded(&self) -> Vec<(DocRef, DocSlot)> {
        self.with_ws(|ws| {
            Ok(ws
                .docs
                .iter()
                .map(|(d, s)| (d.clone(), s.clone()))
                .collect())
        })
        .unwrap_or_default()
    }

    /// Runs `f` on department document `doc` under its own lock alone. A
    /// hold longer than [`LONG_HOLD`] is logged with its caller.
    #[track_caller]
    pub(crate) fn with_doc<R>(
        &self,
        doc: &DocRef,
        f: impl FnOnce(&mut DocState) -> Result<R, NodeError>,
    ) -> Result<R, NodeError> {
        self.with_doc_in_sync(doc, |state| {
            state.used();
            f(state)
        })
    }

    /// [`Self::with_doc`] for a sync round, which is no use of the
    /// document by itself: a round that takes changes in marks it used
    /// ([`DocState::used`]), one that only exchanges heads leaves it to go
    /// idle.
    #[track_caller]
    pub(crate) fn with_doc_in_sync<R>(
        &self,
        doc: &DocRef,
        f: impl FnOnce(&mut DocState) -> Result<R, NodeError>,
    ) -> Result<R, NodeError> {
        let caller = std::panic::Location::caller();
        let slot = self.slot(doc)?;
        let mut state = lock(&slot);
        let held = Instant::now();
        let out = f(&mut state);
        drop(state);
        log_long_hold("a document's", held, caller);
        out
    }

    /// Reads department document `doc` ([`Self::with_doc`]).
    #[track_caller]
    pub(crate) fn read_doc<R>(
        &self,
        doc: &DocRef,
        f: impl FnOnce(&SignedDoc) -> R,
    ) -> Result<R, NodeError> {
        self.with_doc(doc, |state| Ok(f(&state.signed)))
    }

    /// Runs `f` on library `doc` and its [`BlobIndex`], brought up to date
    /// first (from the changes since it was last read: what that costs
    /// follows what changed, not the files ever shared).
    pub(crate) fn with_blob_index<R>(
        &self,
        doc: &DocRef,
        f: impl FnOnce(&SignedDoc, &BlobIndex) -> R,
    ) -> Result<R, NodeError> {
        let index = self
            .blob_indexes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(doc.clone())
            .or_default()
            .clone();
        self.read_doc(doc, |signed| {
            let mut index = index
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            index.refresh(signed.doc());
            f(signed, &index)
        })
    }

    /// Runs `f` on department document `doc` and the workspace together
    /// (what judging a change against the roster needs): the document's
    /// lock first, then the workspace's, the order everyone keeps.
    #[track_caller]
    pub(crate) fn with_judged<R>(
        &self,
        doc: &DocRef,
        f: impl FnOnce(&mut DocState, &mut Workspace) -> Result<R, NodeError>,
    ) -> Result<R, NodeError> {
        let slot = self.slot(doc)?;
        let mut state = lock(&slot);
        self.with_ws(|ws| f(&mut state, ws))
    }

    /// Forgets the sync states of a peer that went away. (Takes document
    /// locks: not for the network loop's thread.)
    pub(crate) fn forget_peer(&self, peer: &PeerId) {
        let _ = self.with_ws(|ws| {
            ws.roster_sync.retain(|(p, _), _| p != peer);
            ws.idle.values_mut().for_each(|idle| idle.forget_peer(peer));
            Ok(())
        });
        for (_, slot) in self.loaded() {
            lock(&slot).sync.retain(|(p, _), _| p != peer);
        }
    }

    /// Changes of department documents that waited for roster heads now
    /// here (or for dependencies), tried again: call after the roster
    /// moved. (Takes document locks: not for the network loop's thread.)
    pub(crate) fn retry_held_back(&self) -> Vec<(DocRef, Ingest)> {
        let mut out = Vec::new();
        for (doc, slot) in self.loaded() {
            let mut state = lock(&slot);
            if !state.signed.has_held_back() {
                continue;
            }
            let report = self.with_ws(|ws| Ok(state.signed.retry(&mut ws.roster_at())));
            if let Ok(report) = report {
                if !(report.accepted.is_empty() && report.rejected.is_empty()) {
                    out.push((doc, report));
                }
            }
        }
        out
    }

    /// The turn of `doc`'s sync rounds: held for a round's length.
    pub(crate) fn doc_turn(&self, doc: &DocRef) -> Arc<Mutex<()>> {
        gate(&self.turns, doc)
    }

    /// The libp2p peer id of `member` (the same key).
    pub(crate) fn peer_of(&self, member: &MemberId) -> Option<PeerId> {
        self.peer_ids.peer_of(member)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Workspace>> {
        self.ws
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the workspace, or fails if there is none. A hold longer
    /// than [`LONG_HOLD`] is logged with its caller: everything else waits
    /// for it.
    #[track_caller]
    pub(crate) fn with_ws<R>(
        &self,
        f: impl FnOnce(&mut Workspace) -> Result<R, NodeError>,
    ) -> Result<R, NodeError> {
        let caller = std::panic::Location::caller();
        let mut guard = self.lock();
        let held = std::time::Instant::now();
        let ws = guard.as_mut().ok_or_else(NodeError::no_workspace)?;
        let out = f(ws);
        drop(guard);
        log_long_hold("the workspace", held, caller);
        out
    }

    /// Records that `peer` connected (`true`) or left (`false`) now.
    pub(crate) fn saw(&self, peer: PeerId, connected: bool) {
        let now = self.clock.now();
        let mut presence = self
            .presence
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        presence.last.insert(peer, (!connected).then_some(now));
    }

    /// Reads who was seen when.
    pub(crate) fn presence<R>(&self, f: impl FnOnce(&Presence) -> R) -> R {
        f(&self
            .presence
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Tells event-stream listeners, if any.
    pub(crate) fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    /// Installs a workspace (create or join).
    pub(crate) fn set_ws(&self, ws: Option<Workspace>) {
        *self.lock() = ws;
        self.roster_version.send_modify(|v| *v += 1);
    }

    pub(crate) fn has_ws(&self) -> bool {
        self.lock().is_some()
    }

    /// The id of the workspace.
    pub(crate) fn workspace_id(&self) -> Result<[u8; 32], NodeError> {
        self.with_ws(|ws| Ok(ws.meta.id))
    }

    /// The roster as it is now.
    pub(crate) fn roster(&self) -> Result<Roster, NodeError> {
        self.with_ws(|ws| Ok(ws.roster_view()))
    }

    /// Stores a change this node made and makes it durable: what every
    /// writer does before it tells a peer of the change.
    pub(crate) async fn persist(
        &self,
        workspace: &[u8; 32],
        doc: &DocRef,
        change: &SignedChange,
    ) -> Result<(), NodeError> {
        self.record(workspace, doc, std::slice::from_ref(change))?;
        self.store.flush().await
    }

    /// Stores accepted changes of `doc` (durable after [`Store::flush`])
    /// and tells waiters and listeners.
    pub(crate) fn record(
        &self,
        workspace: &[u8; 32],
        doc: &DocRef,
        accepted: &[SignedChange],
    ) -> Result<(), NodeError> {
        if accepted.is_empty() {
            return Ok(());
        }
        self.store_quietly(workspace, doc, accepted)?;
        self.tell(doc, accepted.len());
        Ok(())
    }

    /// Stores accepted changes of `doc` without telling anyone: a sync
    /// round stores the roster a batch at a time and tells once
    /// ([`Self::tell`]), as every roster event wakes every roster watcher.
    pub(crate) fn store_quietly(
        &self,
        workspace: &[u8; 32],
        doc: &DocRef,
        accepted: &[SignedChange],
    ) -> Result<(), NodeError> {
        if accepted.is_empty() {
            return Ok(());
        }
        if let DocRef::Pins(day) = doc {
            self.store.add_ledger_day(*day)?;
        }
        self.store.put_changes(&doc.store_key(workspace), accepted)
    }

    /// The days of the pin ledger held here that are live at `now`.
    pub(crate) fn ledger_days(&self, now: Millis) -> Result<Vec<pins::Epoch>, NodeError> {
        live_ledger_days(&self.store, now)
    }

    /// Drops the days of the pin ledger that are over at `now`, whole:
    /// unloaded, their sync sessions ended, their changes deleted (durable
    /// after [`Store::flush`]). Nothing in them is valid any more
    /// ([`pins::day_is_live`]); a peer still holding one is refused it.
    /// Returns the days dropped.
    pub(crate) fn drop_past_ledger_days(&self, now: Millis) -> Result<Vec<pins::Epoch>, NodeError> {
        let workspace = self.workspace_id()?;
        let mut dropped = self.store.ledger_days()?;
        dropped.retain(|day| !pins::day_is_live(*day, now));
        for day in &dropped {
            let doc = DocRef::Pins(*day);
            // The store first: a copy loaded after the day leaves memory
            // finds nothing of it.
            self.store.remove_changes(&doc.store_key(&workspace))?;
            self.store.remove_ledger_day(*day)?;
            self.with_ws(|ws| {
                ws.docs.remove(&doc);
                ws.idle.remove(&doc);
                ws.unloads += 1;
                Ok(())
            })?;
            self.turns
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .remove(&doc);
        }
        Ok(dropped)
    }

    /// Tells waiters and listeners that `changes` changes of `doc` were
    /// stored.
    pub(crate) fn tell(&self, doc: &DocRef, changes: usize) {
        if changes == 0 {
            return;
        }
        match doc {
            DocRef::Roster => {
                self.roster_version.send_modify(|v| *v += 1);
                self.emit(NodeEvent::RosterChanged { changes });
            }
            DocRef::Feed(dept) | DocRef::Direct(dept) => self.emit(NodeEvent::FeedChanged {
                dept: dept.clone(),
                changes,
            }),
            DocRef::Library(dept) => self.emit(NodeEvent::LibraryChanged {
                dept: dept.clone(),
                changes,
            }),
            DocRef::Pins(_) => self.emit(NodeEvent::PinsChanged { changes }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use meshwork_crdt::automerge::sync;

    use super::*;

    fn feed() -> DocState {
        DocState::new(SignedDoc::feed("d", Vec::new()).unwrap())
    }

    fn peer_at(heads: Vec<ChangeHash>) -> sync::State {
        let mut state = sync::State::new();
        state.their_heads = Some(heads);
        state
    }

    #[test]
    fn a_history_arrives_while_a_peer_holds_heads_not_here_and_changes_came_lately() {
        let mut doc = feed();
        let elsewhere = ChangeHash([9; 32]);
        let peer = PeerId::random();
        doc.sync
            .insert((peer, Side::Initiator), peer_at(vec![elsewhere]));
        assert!(!doc.still_arriving(), "nothing came in yet");
        doc.arrived = Some(Instant::now());
        assert!(doc.still_arriving());
        doc.arrived = Instant::now().checked_sub(ARRIVING + Duration::from_secs(1));
        assert!(!doc.still_arriving(), "nothing came in lately");
        doc.arrived = Some(Instant::now());
        let here = doc.signed.heads();
        doc.sync.insert((peer, Side::Initiator), peer_at(here));
        assert!(!doc.still_arriving(), "the peer holds nothing more");
    }
}
