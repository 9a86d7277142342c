//! A seeded, deterministic simulation of replication under membership churn.
//!
//! Nodes hold the roster and the department documents (feeds, libraries,
//! the pin ledger, direct conversations), exchange automerge sync messages
//! and roster gossip through a scheduler that reorders, delays, duplicates
//! and drops them, while a seeded RNG makes admins add, remove, move and
//! promote members (two admins, concurrently), members post, reply, edit,
//! react, send DMs and record files and pins, links partition and heal, and
//! nodes restart from their stores (compacting what they held into
//! snapshots, as a node does when a document leaves memory). A removed
//! member's node, once it knows, turns hostile and forges changes citing
//! the roster with its removal (which every node must refuse) and changes
//! citing stale heads (which the rule keeps: every node shows them, or
//! none).
//!
//! After the churn every link heals and nodes exchange everything; then:
//! - every node holds the same roster, and every node entitled to a
//!   document holds the same changes and shows the same feed or library;
//! - no change that was valid when made is missing anywhere it belongs;
//! - no change citing its author's removal is stored anywhere;
//! - a member admitted at the end receives the whole history of its
//!   departments.
//!
//! The node's policy is modelled as the node applies it: a document syncs
//! between two nodes only if, by the receiver's roster, both may hold it
//! (`Workspace::may_share`); the roster syncs with everyone, so a removed
//! member learns it was removed; held-back changes are retried whenever the
//! roster moves.
//!
//! `MESHWORK_SIM_SEEDS=N` runs N seeds (default 200; 10,000 for the long
//! mode), `MESHWORK_SIM_SEED=S` runs seed S alone. A failure names its seed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::sync;
use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, AutomergeError, ChangeHash, ReadDoc};
use meshwork_crdt::feed::write::{self as feed_write, NewPost};
use meshwork_crdt::feed::{self, Feed};
use meshwork_crdt::library::write::{self as lib_write, NewFile};
use meshwork_crdt::library::{self, Library};
use meshwork_crdt::pins::{epoch_of, write as pins_write, Epoch, PinRequest, Pins};
use meshwork_crdt::roster::{write as roster_write, Role, Roster, RosterCache};
use meshwork_crdt::signed::{Rules, Snapshot};
use meshwork_crdt::{
    Ingest, MemberId, OpenedSync, RosterAt, RosterBook, SignedChange, SignedDoc, Signer,
    SyncPayload,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const T0: i64 = 1_700_000_000_000;

/// The day of the pin ledger the simulation writes: its requests' deadline
/// is `T0 + 1`.
fn pins_epoch() -> Epoch {
    epoch_of(T0 + 1)
}
/// Nodes running from the start; two more identities join during the run
/// and one more at the end.
const FOUNDERS: usize = 5;
const POOL: usize = 7;
const STEPS: usize = 300;
const DEPTS: [&str; 2] = ["d1", "d2"];
/// The most rounds a sync session runs (the node's `MAX_SYNC_ROUNDS`).
const MAX_ROUNDS: u32 = 64;

fn signer(i: usize) -> Signer {
    Signer::from_secret([i as u8 + 1; 32])
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Doc {
    Roster,
    Feed(String),
    Library(String),
    Pins,
    Direct(usize, usize),
}

impl Doc {
    fn direct(a: usize, b: usize) -> Self {
        Doc::Direct(a.min(b), a.max(b))
    }
}

#[derive(Clone)]
enum Body {
    /// A sync message, and how many rounds its session has run.
    Sync(Doc, SyncPayload, u32),
    Gossip(SignedChange),
    /// A change handed over by an accomplice (a hostile removed member's).
    Handed(Doc, SignedChange),
}

#[derive(Clone)]
struct Msg {
    from: usize,
    to: usize,
    body: Body,
}

struct Node {
    me: usize,
    signer: Signer,
    workspace: ChangeHash,
    roster: SignedDoc,
    book: RosterBook,
    docs: BTreeMap<Doc, SignedDoc>,
    /// What survives a restart: changes stored one by one, and the
    /// snapshots documents were compacted into when they left memory.
    store: BTreeMap<Doc, Vec<SignedChange>>,
    snapshots: BTreeMap<Doc, Snapshot>,
    sync: HashMap<(usize, Doc), sync::State>,
    /// The typed roster, re-read only where changes touched it.
    cache: RosterCache,
    /// What this node forged, per document (a hostile node's own chain).
    forged: BTreeMap<Doc, Vec<automerge::Change>>,
}

impl Node {
    fn new(me: usize, workspace: ChangeHash, stored_roster: Vec<SignedChange>) -> Self {
        let mut node = Self {
            me,
            signer: signer(me),
            workspace,
            roster: SignedDoc::new(Rules::Roster { workspace }),
            book: RosterBook::new(),
            docs: BTreeMap::new(),
            store: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            sync: HashMap::new(),
            cache: RosterCache::default(),
            forged: BTreeMap::new(),
        };
        node.store.insert(Doc::Roster, stored_roster);
        node.restart();
        node
    }

    /// Loses everything but the store, as a process restart does. Each
    /// document in memory is compacted first, as a node compacts one that
    /// leaves memory: it goes into a snapshot, and every change stored one
    /// by one leaves the store (the node relies on a change being applied
    /// before it is stored; were one not, a document would lose it here).
    fn restart(&mut self) {
        for (d, doc) in &self.docs {
            self.snapshots.insert(d.clone(), doc.snapshot());
            if let Some(stored) = self.store.get_mut(d) {
                stored.clear();
            }
        }
        let rules = Rules::Roster {
            workspace: self.workspace,
        };
        let stored = self.store.get(&Doc::Roster).cloned().unwrap_or_default();
        self.roster = SignedDoc::load(rules, stored).expect("stored roster loads");
        self.book = RosterBook::new();
        self.cache = RosterCache::default();
        self.docs.clear();
        self.sync.clear();
        let docs: Vec<Doc> = self.store.keys().cloned().collect();
        for d in docs {
            if d != Doc::Roster {
                self.doc(&d);
            }
        }
    }

    fn id(&self) -> MemberId {
        self.signer.id()
    }

    fn roster_view(&mut self) -> Roster {
        self.cache.get(&self.roster).clone()
    }

    fn doc(&mut self, doc: &Doc) -> &mut SignedDoc {
        if *doc == Doc::Roster {
            return &mut self.roster;
        }
        if !self.docs.contains_key(doc) {
            let stored = self.store.get(doc).cloned().unwrap_or_default();
            let loaded = match doc {
                Doc::Feed(d) => SignedDoc::feed(d, Vec::new()),
                Doc::Library(d) => SignedDoc::library(d, Vec::new()),
                Doc::Pins => SignedDoc::pins("ws", pins_epoch(), Vec::new()),
                Doc::Direct(a, b) => {
                    SignedDoc::direct(signer(*a).id(), signer(*b).id(), Vec::new())
                }
                Doc::Roster => unreachable!(),
            }
            .expect("a document's genesis loads");
            let mut loaded = match self.snapshots.get(doc) {
                Some(snapshot) => loaded.restore(snapshot).expect("a snapshot restores"),
                None => loaded,
            };
            loaded.add_stored(stored).expect("stored changes load");
            self.docs.insert(doc.clone(), loaded);
        }
        self.docs.get_mut(doc).expect("just loaded")
    }

    fn keep(&mut self, doc: &Doc, accepted: &[SignedChange]) {
        self.store
            .entry(doc.clone())
            .or_default()
            .extend_from_slice(accepted);
    }

    /// Whether, by this node's roster, it and `other` may hold `doc`
    /// together (the node's `may_share`).
    fn may_share(&mut self, doc: &Doc, other: usize) -> bool {
        let (a, b) = (self.id(), signer(other).id());
        let me = self.me;
        let r = self.cache.get(&self.roster);
        let both = r.is_active(&a) && r.is_active(&b);
        match doc {
            Doc::Roster => true,
            Doc::Pins => both,
            Doc::Feed(d) | Doc::Library(d) => {
                both && r
                    .dept(d)
                    .is_some_and(|d| d.members.contains(&a) && d.members.contains(&b))
            }
            Doc::Direct(x, y) => both && *x != *y && [*x, *y] == sorted(me, other),
        }
    }

    /// Takes changes into `doc`, keeps what is accepted, and retries held
    /// changes if the roster moved. Returns the report.
    fn receive(&mut self, doc: &Doc, report: Ingest) -> Ingest {
        self.keep(doc, &report.accepted);
        if *doc == Doc::Roster && !report.accepted.is_empty() {
            let docs: Vec<Doc> = self.docs.keys().cloned().collect();
            for d in docs {
                let signed = self.docs.get_mut(&d).expect("listed");
                if signed.has_held_back() {
                    let mut at = RosterAt::new(self.roster.doc(), &mut self.book);
                    let retried = signed.retry(&mut at);
                    self.keep(&d, &retried.accepted);
                }
            }
        }
        report
    }

    fn ingest(&mut self, doc: &Doc, changes: Vec<SignedChange>) -> Ingest {
        let report = if *doc == Doc::Roster {
            self.roster.ingest(changes)
        } else {
            self.doc(doc);
            let signed = self.docs.get_mut(doc).expect("loaded");
            let mut at = RosterAt::new(self.roster.doc(), &mut self.book);
            signed.ingest_under(&mut at, changes)
        };
        self.receive(doc, report)
    }

    /// Receives a sync message as the node does: opened and its signatures
    /// checked apart from the document, its changes taken `batch` at a
    /// time (the node releases its lock between batches), the rest last.
    fn receive_sync(
        &mut self,
        from: usize,
        doc: &Doc,
        payload: SyncPayload,
        batch: usize,
    ) -> Option<Ingest> {
        let mut opened = OpenedSync::open(payload).ok()?;
        self.doc(doc);
        let signed = match doc {
            Doc::Roster => &mut self.roster,
            _ => self.docs.get_mut(doc).expect("loaded"),
        };
        opened.forget_known(signed);
        opened.verify();
        let mut report = Ingest::default();
        while let Some(b) = opened.next_batch(batch) {
            let got = match doc {
                Doc::Roster => self.roster.ingest_batch(b, None),
                _ => {
                    let mut at = RosterAt::new(self.roster.doc(), &mut self.book);
                    let signed = self.docs.get_mut(doc).expect("loaded");
                    if batch == usize::MAX {
                        signed.ingest_batch(b, Some(&mut at))
                    } else {
                        // As the node judges a batch: against the rosters
                        // it cites, read beforehand.
                        let mut cited = signed.rosters_for(&b, &mut at);
                        signed.ingest_batch(b, Some(&mut cited))
                    }
                }
            };
            report.accepted.extend(got.accepted);
            report.rejected.extend(got.rejected);
            report.missing_deps = got.missing_deps;
            report.waiting_for_roster += got.waiting_for_roster;
        }
        let mut state = self.sync.remove(&(from, doc.clone())).unwrap_or_default();
        let signed = match doc {
            Doc::Roster => &mut self.roster,
            _ => self.docs.get_mut(doc).expect("loaded"),
        };
        let finished = signed.finish_sync(&mut state, opened);
        self.sync.insert((from, doc.clone()), state);
        finished.ok()?;
        Some(self.receive(doc, report))
    }

    /// The next sync message to `to`, its changes cut to `budget` bytes.
    fn generate(&mut self, to: usize, doc: &Doc, budget: usize) -> Option<SyncPayload> {
        let mut state = self.sync.remove(&(to, doc.clone())).unwrap_or_default();
        let out = self.doc(doc).generate_sync_within(&mut state, budget);
        self.sync.insert((to, doc.clone()), state);
        out
    }

    /// A new session with `peer`: only shared heads are trusted.
    fn new_session(&mut self, peer: usize, doc: &Doc) {
        if let Some(s) = self.sync.get_mut(&(peer, doc.clone())) {
            *s = sync::State::decode(&s.encode()).unwrap_or_default();
        }
    }

    /// Writes a change to `doc` as this node does: citing its roster.
    fn change(
        &mut self,
        doc: &Doc,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    ) -> Option<SignedChange> {
        let signer = self.signer.clone();
        let change = if *doc == Doc::Roster {
            self.roster.change(&signer, T0, edit)
        } else {
            self.doc(doc);
            let signed = self.docs.get_mut(doc).expect("loaded");
            let mut at = RosterAt::new(self.roster.doc(), &mut self.book);
            signed.change_under(&mut at, &signer, T0, edit)
        };
        let change = change.ok()??;
        self.keep(doc, std::slice::from_ref(&change));
        Some(change)
    }

    /// A change built by hand, citing `roster_heads`, signed with this
    /// node's key: what a hostile node can send. Its forgeries form one
    /// chain (a device that sent two changes with one sequence number
    /// would equivocate: see the feed rule tests).
    fn forge(
        &mut self,
        doc: &Doc,
        roster_heads: &[ChangeHash],
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    ) -> Option<SignedChange> {
        let mut raw = self.doc(doc).doc().fork();
        let earlier = self.forged.get(doc).cloned().unwrap_or_default();
        raw.apply_changes(earlier).ok()?;
        raw.set_actor(ActorId::from(self.id().as_bytes().as_slice()));
        let message = meshwork_crdt::cite::message(roster_heads);
        let hash = raw
            .transact_with(|_| CommitOptions::default().with_message(message), edit)
            .ok()?
            .hash?;
        let change = raw.get_change_by_hash(&hash)?;
        self.forged
            .entry(doc.clone())
            .or_default()
            .push(change.clone());
        Some(SignedChange {
            bytes: change.raw_bytes().to_vec(),
            signature: self.signer.sign_change(&hash.0).to_vec(),
        })
    }
}

fn sorted(a: usize, b: usize) -> [usize; 2] {
    [a.min(b), a.max(b)]
}

/// Which side of a partition each node is on; nodes on different sides
/// do not hear each other.
struct World {
    rng: StdRng,
    nodes: Vec<Node>,
    queue: Vec<Msg>,
    side: Vec<u8>,
    /// Every change a node wrote while its own rules allowed it.
    authored: Vec<(Doc, usize, ChangeHash)>,
    /// Which node accepted which change from another.
    escaped: BTreeSet<(ChangeHash, usize)>,
    /// Forged changes citing their author's removal: refused everywhere.
    must_refuse: Vec<(Doc, ChangeHash)>,
    /// Forged changes citing stale heads, and whether any node kept one.
    stale: Vec<(Doc, ChangeHash)>,
    counter: u64,
    stats: Stats,
}

/// What a run exercised, summed over seeds and printed at the end.
#[derive(Default, Clone, Copy, Debug)]
struct Stats {
    changes: usize,
    removals: usize,
    moves: usize,
    partitions: usize,
    restarts: usize,
    lost: usize,
    duplicated: usize,
    waited_for_roster: usize,
    refused_after_removal: usize,
    concurrent_forged: usize,
    concurrent_kept: usize,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.changes += o.changes;
        self.removals += o.removals;
        self.moves += o.moves;
        self.partitions += o.partitions;
        self.restarts += o.restarts;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.waited_for_roster += o.waited_for_roster;
        self.refused_after_removal += o.refused_after_removal;
        self.concurrent_forged += o.concurrent_forged;
        self.concurrent_kept += o.concurrent_kept;
    }
}

impl World {
    fn new(seed: u64) -> Self {
        let admin = signer(0);
        let (mut roster, genesis) = SignedDoc::create_roster(&admin, "Sim", "n0", T0).unwrap();
        let setup = roster
            .change(&admin, T0, |tx| {
                for d in DEPTS {
                    roster_write::create_dept(tx, d, d)?;
                }
                for i in 1..FOUNDERS {
                    let role = if i == 1 { Role::Admin } else { Role::Member };
                    roster_write::add_member(tx, signer(i).id(), &format!("n{i}"), role, T0, None)?;
                }
                for i in 0..FOUNDERS {
                    roster_write::dept_add(tx, DEPTS[i % 2], signer(i).id())?;
                }
                roster_write::dept_add(tx, "d2", signer(0).id())
            })
            .unwrap()
            .unwrap();
        drop(roster);
        let workspace = Self::hash_of(&genesis);
        let nodes = (0..POOL)
            .map(|i| {
                let stored = if i < FOUNDERS {
                    vec![genesis.clone(), setup.clone()]
                } else {
                    Vec::new()
                };
                Node::new(i, workspace, stored)
            })
            .collect();
        Self {
            rng: StdRng::seed_from_u64(seed),
            nodes,
            queue: Vec::new(),
            side: vec![0; POOL],
            authored: Vec::new(),
            escaped: BTreeSet::new(),
            must_refuse: Vec::new(),
            stale: Vec::new(),
            counter: 0,
            stats: Stats::default(),
        }
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        self.side[a] == self.side[b]
    }

    fn send(&mut self, msg: Msg) {
        self.queue.push(msg);
    }

    /// How many bytes of changes a sync message may carry: the node's
    /// budget, or one so small that a history goes over many rounds (and
    /// the rounds' messages are lost and reordered like any other).
    fn budget(&mut self) -> usize {
        *[meshwork_crdt::signed::SYNC_BUDGET, 4_096, 600]
            .choose(&mut self.rng)
            .expect("budgets")
    }

    /// Starts a sync session `from` → `to` on `doc`.
    fn start_sync(&mut self, from: usize, to: usize, doc: &Doc) {
        if from == to || !self.nodes[from].may_share(doc, to) {
            return;
        }
        self.nodes[from].new_session(to, doc);
        self.nodes[to].new_session(from, doc);
        let budget = self.budget();
        if let Some(p) = self.nodes[from].generate(to, doc, budget) {
            self.send(Msg {
                from,
                to,
                body: Body::Sync(doc.clone(), p, 0),
            });
        }
    }

    /// Delivers one message; what the receiver answers goes on the queue.
    fn deliver(&mut self, msg: Msg) {
        let Msg { from, to, body } = msg;
        if !self.linked(from, to) {
            return;
        }
        match body {
            Body::Gossip(change) => {
                let got = self.nodes[to].ingest(&Doc::Roster, vec![change]);
                self.note_escaped(to, &got);
                if got.missing_deps > 0 {
                    self.start_sync(to, from, &Doc::Roster);
                }
            }
            Body::Handed(doc, change) => {
                if self.nodes[to].may_share(&doc, to) {
                    let got = self.nodes[to].ingest(&doc, vec![change]);
                    self.note_escaped(to, &got);
                }
            }
            Body::Sync(doc, payload, rounds) => {
                // The receiver refuses documents it may not share.
                if !self.nodes[to].may_share(&doc, from) {
                    return;
                }
                // Whole, or a few changes at a time.
                let batch = *[usize::MAX, 1, 2, 5].choose(&mut self.rng).expect("sizes");
                let Some(got) = self.nodes[to].receive_sync(from, &doc, payload, batch) else {
                    return;
                };
                self.note_escaped(to, &got);
                let waiting = got.waiting_for_roster > 0;
                self.stats.waited_for_roster += got.waiting_for_roster;
                // A session ends after MAX_ROUNDS, as the node's does.
                if rounds < MAX_ROUNDS {
                    let budget = self.budget();
                    if let Some(p) = self.nodes[to].generate(from, &doc, budget) {
                        self.send(Msg {
                            from: to,
                            to: from,
                            body: Body::Sync(doc.clone(), p, rounds + 1),
                        });
                    }
                }
                if waiting {
                    self.start_sync(to, from, &Doc::Roster);
                }
                if !got.accepted.is_empty() && doc != Doc::Roster {
                    // Relay to the receiver's other peers, as a push does.
                    for p in 0..self.nodes.len() {
                        if p != from && p != to && self.rng.gen_bool(0.3) {
                            self.start_sync(to, p, &doc);
                        }
                    }
                }
            }
        }
    }

    fn note_escaped(&mut self, by: usize, got: &Ingest) {
        for c in &got.accepted {
            self.escaped.insert((Self::hash_of(c), by));
        }
    }

    fn hash_of(change: &SignedChange) -> ChangeHash {
        automerge::Change::from_bytes(change.bytes.clone())
            .expect("own change")
            .hash()
    }

    /// One random event.
    fn step(&mut self) {
        let roll = self.rng.gen_range(0..100);
        match roll {
            0..=44 if !self.queue.is_empty() => {
                let i = self.rng.gen_range(0..self.queue.len());
                let msg = self.queue.swap_remove(i);
                let fate = self.rng.gen_range(0..100);
                if fate < 5 {
                    self.stats.lost += 1;
                } else if fate < 8 {
                    self.stats.duplicated += 1;
                    self.queue.push(msg.clone());
                    self.deliver(msg);
                } else {
                    self.deliver(msg);
                }
            }
            0..=64 => self.act(),
            65..=84 => {
                let a = self.rng.gen_range(0..self.nodes.len());
                let b = self.rng.gen_range(0..self.nodes.len());
                let docs = self.docs_of(a);
                if let Some(doc) = docs.choose(&mut self.rng).cloned() {
                    self.start_sync(a, b, &doc);
                }
            }
            85..=89 => {
                // A partition: a random split, or healed.
                if self.rng.gen_bool(0.5) {
                    for s in &mut self.side {
                        *s = 0;
                    }
                } else {
                    self.stats.partitions += 1;
                    for s in &mut self.side {
                        *s = self.rng.gen_range(0..2);
                    }
                }
            }
            90..=92 => {
                let n = self.rng.gen_range(0..self.nodes.len());
                self.stats.restarts += 1;
                self.nodes[n].restart();
                for other in &mut self.nodes {
                    other.sync.retain(|(p, _), _| *p != n);
                }
            }
            _ => {}
        }
    }

    /// The documents node `n` would sync, by its roster.
    fn docs_of(&mut self, n: usize) -> Vec<Doc> {
        let r = self.nodes[n].roster_view();
        let me = self.nodes[n].id();
        let mut docs = vec![Doc::Roster];
        if r.is_active(&me) {
            docs.push(Doc::Pins);
            for d in r.depts.iter().filter(|d| d.members.contains(&me)) {
                docs.push(Doc::Feed(d.id.clone()));
                docs.push(Doc::Library(d.id.clone()));
            }
            for other in 0..self.nodes.len() {
                if other != n {
                    docs.push(Doc::direct(n, other));
                }
            }
        }
        docs
    }

    /// A random node does something its role allows, as far as it knows.
    fn act(&mut self) {
        let n = self.rng.gen_range(0..self.nodes.len());
        let r = self.nodes[n].roster_view();
        let me = self.nodes[n].id();
        if r.member(&me).is_some_and(|m| m.removed) {
            return self.hostile(n, &r);
        }
        if !r.is_active(&me) {
            return;
        }
        let roll = self.rng.gen_range(0..100);
        if r.is_admin(&me) && roll < 40 {
            return self.admin(n, &r);
        }
        let mine: Vec<String> = r
            .depts
            .iter()
            .filter(|d| d.members.contains(&me))
            .map(|d| d.id.clone())
            .collect();
        self.counter += 1;
        let k = self.counter;
        let (doc, change) = match (self.rng.gen_range(0..7), mine.choose(&mut self.rng)) {
            (0..=1, Some(d)) => {
                let doc = Doc::Feed(d.clone());
                let reply_to = self.some_post(n, &doc);
                let id = feed::post_id(&me, k.to_be_bytes());
                let change = self.nodes[n].change(&doc, |tx| {
                    feed_write::post(tx, &post(&id, me, reply_to.as_deref()))
                });
                (doc, change)
            }
            (2, Some(d)) => {
                let doc = Doc::Feed(d.clone());
                let Some(p) = self.some_post(n, &doc) else {
                    return;
                };
                let emoji = ["👍", "🎉"][k as usize % 2];
                let change =
                    self.nodes[n].change(&doc, |tx| feed_write::react(tx, &p, emoji, me, true));
                (doc, change)
            }
            (3, Some(d)) => {
                let doc = Doc::Feed(d.clone());
                let own: Vec<String> = Feed::new(self.nodes[n].doc(&doc).doc())
                    .all()
                    .into_iter()
                    .filter(|p| p.author == me && !p.deleted)
                    .map(|p| p.id)
                    .collect();
                let Some(p) = own.choose(&mut self.rng).cloned() else {
                    return;
                };
                let change = self.nodes[n].change(&doc, |tx| {
                    if k.is_multiple_of(3) {
                        feed_write::delete(tx, &p)
                    } else {
                        feed_write::edit(tx, &p, &format!("edit {k}"), T0)
                    }
                });
                (doc, change)
            }
            (4, Some(d)) => {
                let doc = Doc::Library(d.clone());
                let id = library::file_id(&me, k.to_be_bytes());
                let blob = hex::encode(blake3::hash(&k.to_be_bytes()).as_bytes());
                let change =
                    self.nodes[n].change(&doc, |tx| lib_write::share(tx, &file(&id, &blob, me)));
                self.authored_pin(n, d, &blob, me);
                (doc, change)
            }
            (5, _) => {
                let other = self.rng.gen_range(0..self.nodes.len());
                if other == n || !r.is_active(&signer(other).id()) {
                    return;
                }
                let doc = Doc::direct(n, other);
                let id = feed::post_id(&me, k.to_be_bytes());
                let change =
                    self.nodes[n].change(&doc, |tx| feed_write::post(tx, &post(&id, me, None)));
                (doc, change)
            }
            _ => return,
        };
        self.wrote(n, doc, change);
    }

    fn authored_pin(&mut self, n: usize, dept: &str, blob: &str, me: MemberId) {
        let req = PinRequest {
            blob: blob.to_owned(),
            dept: dept.to_owned(),
            size: 1,
            until: T0 + 1,
            by: me,
        };
        let change = self.nodes[n].change(&Doc::Pins, |tx| pins_write::request(tx, &req));
        self.wrote(n, Doc::Pins, change);
    }

    fn wrote(&mut self, n: usize, doc: Doc, change: Option<SignedChange>) {
        let Some(change) = change else { return };
        self.stats.changes += 1;
        self.authored.push((doc.clone(), n, Self::hash_of(&change)));
        if doc == Doc::Roster {
            for to in 0..self.nodes.len() {
                if to != n && self.rng.gen_bool(0.8) {
                    self.send(Msg {
                        from: n,
                        to,
                        body: Body::Gossip(change.clone()),
                    });
                }
            }
        } else {
            for to in 0..self.nodes.len() {
                if self.rng.gen_bool(0.7) {
                    self.start_sync(n, to, &doc);
                }
            }
        }
    }

    fn some_post(&mut self, n: usize, doc: &Doc) -> Option<String> {
        let posts: Vec<String> = Feed::new(self.nodes[n].doc(doc).doc())
            .newest()
            .take(5)
            .map(|p| p.id)
            .collect();
        posts.choose(&mut self.rng).cloned()
    }

    /// An admin adds, removes, moves or promotes someone.
    fn admin(&mut self, n: usize, r: &Roster) {
        let target = self.rng.gen_range(1..POOL);
        let id = signer(target).id();
        let dept = *DEPTS.choose(&mut self.rng).expect("depts");
        let other = DEPTS.iter().find(|d| **d != dept).expect("two depts");
        let change = match (r.member(&id), self.rng.gen_range(0..4)) {
            (None, _) => self.nodes[n].change(&Doc::Roster, |tx| {
                roster_write::add_member(tx, id, &format!("n{target}"), Role::Member, T0, None)?;
                roster_write::dept_add(tx, dept, id)
            }),
            (Some(m), _) if m.removed => return,
            // Never remove node 0: someone admits the last joiner.
            (Some(_), 0) if target != 0 => {
                self.stats.removals += 1;
                self.nodes[n].change(&Doc::Roster, |tx| roster_write::remove_member(tx, id))
            }
            (Some(_), 1) => {
                let in_dept = r.dept(dept).is_some_and(|d| d.members.contains(&id));
                self.stats.moves += 1;
                self.nodes[n].change(&Doc::Roster, |tx| {
                    if in_dept {
                        roster_write::dept_remove(tx, dept, id)?;
                        roster_write::dept_add(tx, other, id)
                    } else {
                        roster_write::dept_add(tx, dept, id)
                    }
                })
            }
            (Some(m), 2) if m.role == Role::Member => self.nodes[n].change(&Doc::Roster, |tx| {
                roster_write::set_role(tx, id, Role::Admin)
            }),
            _ => return,
        };
        self.wrote(n, Doc::Roster, change);
    }

    /// A removed member that knows it: forges a post citing the roster
    /// with its removal (to be refused everywhere), or citing the roster
    /// from before it (kept: it is concurrent with the removal), and hands
    /// it to an accomplice still in the department.
    fn hostile(&mut self, n: usize, r: &Roster) {
        let me = self.nodes[n].id();
        let Some(d) = DEPTS
            .iter()
            .find(|d| self.nodes[n].store.contains_key(&Doc::Feed(d.to_string())))
        else {
            return;
        };
        let doc = Doc::Feed(d.to_string());
        self.counter += 1;
        let id = feed::post_id(&me, self.counter.to_be_bytes());
        let stale = self.rng.gen_bool(0.5);
        let heads = if stale {
            // The newest heads its feed changes cited, from before.
            let Some(h) = self.cited_before_removal(n, &doc) else {
                return;
            };
            h
        } else {
            self.nodes[n].roster.heads()
        };
        let Some(change) = self.nodes[n].forge(&doc, &heads, |tx| {
            feed_write::post(tx, &post(&id, me, None))
        }) else {
            return;
        };
        let hash = Self::hash_of(&change);
        if stale {
            self.stale.push((doc.clone(), hash));
        } else {
            self.must_refuse.push((doc.clone(), hash));
        }
        let accomplices: Vec<usize> = r
            .dept(d)
            .map(|d| {
                (0..self.nodes.len())
                    .filter(|i| d.members.contains(&signer(*i).id()))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(to) = accomplices.choose(&mut self.rng) {
            self.send(Msg {
                from: n,
                to: *to,
                body: Body::Handed(doc, change),
            });
        }
    }

    /// The roster heads some change of this node's in `doc` cited.
    fn cited_before_removal(&mut self, n: usize, doc: &Doc) -> Option<Vec<ChangeHash>> {
        let me = self.nodes[n].id();
        let changes = self.nodes[n].doc(doc).doc().get_changes(&[]);
        let msg = changes
            .iter()
            .rev()
            .filter(|c| c.actor_id().to_bytes() == me.as_bytes())
            .find_map(|c| c.message().map(str::to_owned))?;
        let list = msg.strip_prefix("meshwork/roster ")?;
        list.split(',')
            .map(|h| h.parse::<ChangeHash>().ok())
            .collect()
    }

    /// Heals every link and exchanges everything until nothing moves.
    fn settle(&mut self) {
        for s in &mut self.side {
            *s = 0;
        }
        let queued = std::mem::take(&mut self.queue);
        for m in queued {
            self.deliver_now(m);
        }
        for _round in 0..20 {
            let before = self.fingerprint();
            for a in 0..self.nodes.len() {
                for b in a + 1..self.nodes.len() {
                    for doc in self.docs_of(a) {
                        self.start_sync(a, b, &doc);
                        self.drain();
                    }
                }
            }
            if self.fingerprint() == before {
                return;
            }
        }
        panic!("the nodes did not settle in 20 rounds of full sync");
    }

    fn deliver_now(&mut self, m: Msg) {
        self.deliver(m);
        self.drain();
    }

    fn drain(&mut self) {
        let mut budget = 100_000;
        while let Some(m) = self.queue.pop() {
            self.deliver(m);
            budget -= 1;
            assert!(budget > 0, "sync does not end");
        }
    }

    fn fingerprint(&mut self) -> Vec<(usize, Doc, Vec<ChangeHash>)> {
        let mut out = Vec::new();
        for n in 0..self.nodes.len() {
            out.push((n, Doc::Roster, self.nodes[n].roster.heads()));
            let docs: Vec<Doc> = self.nodes[n].docs.keys().cloned().collect();
            for d in docs {
                let h = self.nodes[n].doc(&d).heads();
                out.push((n, d, h));
            }
        }
        out
    }

    /// The nodes entitled to `doc` by the (settled) roster.
    fn holders(&self, doc: &Doc, r: &Roster) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| {
                let id = signer(*i).id();
                r.is_active(&id)
                    && match doc {
                        Doc::Roster | Doc::Pins => true,
                        Doc::Feed(d) | Doc::Library(d) => {
                            r.dept(d).is_some_and(|d| d.members.contains(&id))
                        }
                        Doc::Direct(a, b) => {
                            (*i == *a || *i == *b)
                                && r.is_active(&signer(*a).id())
                                && r.is_active(&signer(*b).id())
                        }
                    }
            })
            .collect()
    }

    fn check(&mut self) {
        let roster_heads = self.nodes[0].roster.heads();
        for n in &self.nodes {
            assert_eq!(
                n.roster.heads(),
                roster_heads,
                "node {} roster differs",
                n.me
            );
        }
        let r = self.nodes[0].roster_view();
        let mut docs: BTreeSet<Doc> = BTreeSet::new();
        for n in &self.nodes {
            docs.extend(n.store.keys().cloned());
        }
        for doc in &docs {
            let holders = self.holders(doc, &r);
            let Some(first) = holders.first().copied() else {
                continue;
            };
            let heads = self.nodes[first].doc(doc).heads();
            let view = self.view(first, doc);
            for h in &holders[1..] {
                assert_eq!(
                    self.nodes[*h].doc(doc).heads(),
                    heads,
                    "{doc:?}: nodes {first} and {h} hold different changes"
                );
                assert_eq!(self.view(*h, doc), view, "{doc:?}: views differ");
            }
            // Every change that was valid when made, and that its author or
            // another node entitled to the document holds.
            for (d, author, hash) in self.authored.clone() {
                let reached = holders
                    .iter()
                    .any(|h| *h == author || self.escaped.contains(&(hash, *h)));
                if d != *doc || !reached {
                    continue;
                }
                for h in &holders {
                    let here = self.nodes[*h].doc(doc).doc().get_change_by_hash(&hash);
                    assert!(
                        here.is_some(),
                        "{doc:?}: node {h} misses a change of node {author}"
                    );
                }
            }
        }
        self.stats.refused_after_removal = self.must_refuse.len();
        self.stats.concurrent_forged = self.stale.len();
        for (doc, hash) in self.must_refuse.clone() {
            for n in 0..self.nodes.len() {
                let found = self.nodes[n].doc(&doc).doc().get_change_by_hash(&hash);
                assert!(
                    found.is_none(),
                    "node {n} kept a change made after its author's removal"
                );
            }
        }
        for (doc, hash) in self.stale.clone() {
            let holders = self.holders(&doc, &r);
            let kept: Vec<bool> = holders
                .iter()
                .map(|h| {
                    self.nodes[*h]
                        .doc(&doc)
                        .doc()
                        .get_change_by_hash(&hash)
                        .is_some()
                })
                .collect();
            if kept.first() == Some(&true) {
                self.stats.concurrent_kept += 1;
            }
            assert!(
                kept.iter().all(|k| *k) || kept.iter().all(|k| !*k),
                "{doc:?}: a change concurrent with a removal is shown by some and not others"
            );
        }
    }

    fn view(&mut self, n: usize, doc: &Doc) -> String {
        let d = self.nodes[n].doc(doc).doc().clone();
        match doc {
            Doc::Roster => format!("{:?}", Roster::read(&d)),
            Doc::Feed(_) | Doc::Direct(..) => format!("{:?}", Feed::new(&d).all()),
            Doc::Library(_) => format!("{:?}", Library::new(&d).files()),
            Doc::Pins => format!("{:?}", Pins::new(&d).requests()),
        }
    }

    /// An admin admits a newcomer to every department; it must receive
    /// the whole history of both.
    fn late_joiner(&mut self) {
        let newcomer = POOL;
        let workspace = self.nodes[0].workspace;
        self.nodes.push(Node::new(newcomer, workspace, Vec::new()));
        self.side.push(0);
        let id = signer(newcomer).id();
        let change = self.nodes[0].change(&Doc::Roster, |tx| {
            roster_write::add_member(tx, id, "late", Role::Member, T0, None)?;
            for d in DEPTS {
                roster_write::dept_add(tx, d, id)?;
            }
            Ok(())
        });
        assert!(change.is_some(), "node 0 is an admin to the end");
        self.wrote(0, Doc::Roster, change);
        self.settle();
        let r = self.nodes[0].roster_view();
        for d in DEPTS {
            for doc in [Doc::Feed(d.into()), Doc::Library(d.into())] {
                let others: Vec<usize> = self
                    .holders(&doc, &r)
                    .into_iter()
                    .filter(|h| *h != newcomer)
                    .collect();
                if let Some(o) = others.first() {
                    let want = self.nodes[*o].doc(&doc).heads();
                    assert_eq!(
                        self.nodes[newcomer].doc(&doc).heads(),
                        want,
                        "the newcomer misses history of {doc:?}"
                    );
                }
            }
        }
    }
}

fn post<'a>(id: &'a str, author: MemberId, reply_to: Option<&'a str>) -> NewPost<'a> {
    NewPost {
        id,
        author,
        body: "hello",
        created_at: T0,
        reply_to,
        mentions: &[],
        files: &[],
    }
}

fn file<'a>(id: &'a str, blob: &'a str, uploader: MemberId) -> NewFile<'a> {
    NewFile {
        id,
        name: "report.pdf",
        size: 1,
        media_type: "application/pdf",
        blob,
        blob_size: 1,
        key: "00",
        uploader,
        shared_at: T0,
        entries: None,
    }
}

fn run(seed: u64) -> Stats {
    let mut world = World::new(seed);
    for _ in 0..STEPS {
        world.step();
    }
    world.settle();
    world.check();
    world.late_joiner();
    world.check();
    world.stats
}

fn seeds() -> Vec<u64> {
    if let Ok(one) = std::env::var("MESHWORK_SIM_SEED") {
        return vec![one.parse().expect("MESHWORK_SIM_SEED is a number")];
    }
    let n: u64 = std::env::var("MESHWORK_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    (0..n).collect()
}

#[test]
fn replicas_converge_under_membership_churn() {
    let seeds = seeds();
    let mut total = Stats::default();
    for seed in &seeds {
        let result = std::panic::catch_unwind(|| run(*seed));
        if let Ok(stats) = result {
            total += stats;
        }
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("seed {seed} failed: {msg}\nrerun it with MESHWORK_SIM_SEED={seed}");
        }
    }
    println!("{} seeds passed; in all: {total:?}", seeds.len());
    assert!(
        total.removals > 0 && total.partitions > 0 && total.restarts > 0,
        "the runs exercised no churn: {total:?}"
    );
}
