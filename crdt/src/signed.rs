//! [`SignedDoc`]: an automerge document that keeps a change only if it is
//! signed by its author's device key, its actor id *is* that key, and the
//! document's rules allowed it at the change's causal dependencies.
//!
//! Signatures travel beside changes (automerge's own change format has no
//! room for them): in gossip as a [`SignedChange`], in sync as the
//! signatures of the changes a [`SyncPayload`] carries.

use std::collections::{HashMap, HashSet};

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge, AutomergeError, Change, ChangeHash, ReadDoc};
use serde::{Deserialize, Serialize};

use crate::cite::{self, RosterAt};
use crate::feed::FeedRules;
use crate::library::LibraryRules;
use crate::pins::PinsRules;
use crate::{feed, library, pins, roster, MemberId, Millis, Signer};

pub mod receipt;
mod snapshot;

pub use snapshot::Snapshot;

/// The rules a document's changes must obey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rules {
    /// A workspace roster, identified by the hash of its genesis change.
    Roster {
        /// The genesis change's hash: the workspace id.
        workspace: ChangeHash,
    },
    /// A department's feed, judged against a roster.
    Feed(FeedRules),
    /// A department's library, judged against a roster.
    Library(LibraryRules),
    /// A day of the workspace's pin ledger, judged against a roster.
    Pins(PinsRules),
}

/// A change as it travels and is stored: automerge's bytes and the author's
/// signature over its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedChange {
    /// The raw automerge change.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    /// Ed25519 signature by the actor's key over the change hash.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// One round of automerge's sync protocol, with the signatures of the changes
/// it carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPayload {
    /// An encoded `automerge::sync::Message`.
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
    /// `hash ‖ signature` (32 + 64 bytes) for each change in the message.
    pub signatures: Vec<serde_bytes::ByteBuf>,
}

/// Why a change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Bytes that are not an automerge change or document.
    #[error("malformed change: {0}")]
    Malformed(String),
    /// No signature came with the change.
    #[error("change {0} arrived without a signature")]
    Unsigned(String),
    /// The actor id is not a public key, or the signature does not verify.
    #[error("change {0} has a forged or invalid signature")]
    BadSignature(String),
    /// The rules forbid it.
    #[error("change {hash} is not authorized: {reason}")]
    Unauthorized {
        /// The change.
        hash: String,
        /// Why.
        reason: String,
    },
    /// It builds on a rejected change.
    #[error("change {0} depends on a rejected change")]
    DependsOnRejected(String),
}

/// What happened to a batch of incoming changes.
#[derive(Debug, Default)]
pub struct Ingest {
    /// Newly accepted changes, in causal order: store and forward these.
    pub accepted: Vec<SignedChange>,
    /// Refused changes: penalise whoever sent them.
    pub rejected: Vec<Rejection>,
    /// Changes kept out because their dependencies are not here yet: ask
    /// the sender for a sync.
    pub missing_deps: usize,
    /// Changes kept out because the roster heads they cite are not here
    /// yet: ask the sender for a roster sync. They are tried again with
    /// every later batch, and by [`SignedDoc::retry`].
    pub waiting_for_roster: usize,
}

/// Errors of local operations on a document.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// Automerge refused the operation.
    #[error(transparent)]
    Automerge(#[from] AutomergeError),
    /// The local change broke the rules (the caller's checks missed it).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// A stored or received sync message that does not decode.
    #[error("malformed sync message: {0}")]
    BadSync(String),
}

/// A document whose history holds only signed, authorized changes.
pub struct SignedDoc {
    doc: Automerge,
    signatures: HashMap<ChangeHash, [u8; 64]>,
    rules: Rules,
    /// Changes that arrived before their dependencies, with their
    /// signatures: tried again with every later batch. (Two sync sessions
    /// with one peer can deliver a change before its parent.)
    pending: HashMap<ChangeHash, (Change, Option<[u8; 64]>)>,
    /// What the roster rules learnt of this roster at recent heads, so the
    /// next change is checked without reading it all again.
    tally: roster::Tally,
}

/// A sync message taken apart without its document: the changes decoded
/// and (by [`Self::verify`]) their signatures checked — the costly part of
/// receiving, which needs no lock on the document. The document then takes
/// the changes a batch at a time ([`SignedDoc::ingest_batch`]), so that a
/// message of 100,000 changes never holds it for the whole, and the rest of
/// the message last ([`SignedDoc::finish_sync`]).
pub struct OpenedSync {
    message: sync::Message,
    changes: std::collections::VecDeque<Change>,
    sigs: HashMap<ChangeHash, [u8; 64]>,
    verdicts: HashMap<ChangeHash, Signed>,
    malformed: Vec<Rejection>,
    /// Every change the message carried, known here already or not.
    carried: Vec<ChangeHash>,
}

/// Some of an [`OpenedSync`]'s changes, in the order they came.
pub struct SyncBatch {
    changes: Vec<Change>,
    sigs: HashMap<ChangeHash, [u8; 64]>,
    verdicts: HashMap<ChangeHash, Signed>,
    malformed: Vec<Rejection>,
}

impl OpenedSync {
    /// Decodes a sync payload. Changes that do not decode become
    /// rejections of the first batch; a message that does not decode is an
    /// error.
    pub fn open(payload: SyncPayload) -> Result<Self, DocError> {
        let message = sync::Message::decode(&payload.message)
            .map_err(|e| DocError::BadSync(e.to_string()))?;
        let mut sigs = HashMap::new();
        for entry in &payload.signatures {
            if let (Ok(h), Ok(s)) = (
                <[u8; 32]>::try_from(entry.get(..32).unwrap_or_default()),
                <[u8; 64]>::try_from(entry.get(32..).unwrap_or_default()),
            ) {
                sigs.insert(ChangeHash(h), s);
            }
        }
        let mut changes = std::collections::VecDeque::new();
        let mut malformed = Vec::new();
        for chunk in message.changes.iter() {
            match decode_chunk(chunk) {
                Ok(cs) => changes.extend(cs),
                Err(e) => malformed.push(e),
            }
        }
        Ok(Self {
            message,
            carried: changes.iter().map(Change::hash).collect(),
            changes,
            sigs,
            verdicts: HashMap::new(),
            malformed,
        })
    }

    /// Drops the changes `doc` already holds (another peer sent them
    /// first): they need no signature check.
    pub fn forget_known(&mut self, doc: &SignedDoc) {
        self.changes
            .retain(|c| doc.doc.get_change_meta_by_hash(&c.hash()).is_none());
    }

    /// Checks every change's signature (in parallel; see
    /// [`crate::identity::verify_changes`]).
    pub fn verify(&mut self) {
        self.verdicts = signed_by_author(&self.changes, &self.sigs);
    }

    /// How many changes are left to ingest.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether no change is left to ingest.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The next at most `n` changes (`None` once all were taken and no
    /// rejection is left to report).
    pub fn next_batch(&mut self, n: usize) -> Option<SyncBatch> {
        if self.changes.is_empty() && self.malformed.is_empty() {
            return None;
        }
        let changes: Vec<Change> = self.changes.drain(..n.min(self.changes.len())).collect();
        let mut sigs = HashMap::with_capacity(changes.len());
        let mut verdicts = HashMap::with_capacity(changes.len());
        for c in &changes {
            let h = c.hash();
            if let Some(s) = self.sigs.remove(&h) {
                sigs.insert(h, s);
            }
            if let Some(v) = self.verdicts.remove(&h) {
                verdicts.insert(h, v);
            }
        }
        Some(SyncBatch {
            changes,
            sigs,
            verdicts,
            malformed: std::mem::take(&mut self.malformed),
        })
    }
}

/// The most changes held back for missing dependencies; past it, new ones
/// are dropped (sync will offer them again).
const MAX_PENDING: usize = 10_000;

/// The most bytes of changes (with their signatures) one sync message
/// carries. The transport takes messages of up to 16 MiB
/// (`node/src/net/behaviour.rs`); a fresh member's 100,000-post feed, ~30
/// MiB, goes in several rounds.
pub const SYNC_BUDGET: usize = 4 << 20;

/// What a change's signature adds to a message: hash, signature, framing.
const SIGNATURE_COST: usize = 32 + 64 + 4;

/// Cuts `message`'s changes to a prefix of at most `budget` bytes (one
/// change at least) and tells `state` that only those were sent.
/// automerge lists them dependencies first, so the prefix applies as it
/// comes.
fn cut_to(
    message: &mut sync::Message,
    state: &mut sync::State,
    sent_before: &std::collections::BTreeSet<ChangeHash>,
    budget: usize,
) {
    let cost = |chunk: &[u8]| chunk.len() + SIGNATURE_COST;
    if message.changes.iter().map(cost).sum::<usize>() <= budget {
        return;
    }
    let mut kept = Vec::new();
    let mut size = 0;
    for chunk in message.changes.iter() {
        if !kept.is_empty() && size + cost(chunk) > budget {
            break;
        }
        size += cost(chunk);
        kept.push(chunk.to_vec());
    }
    state.sent_hashes.clone_from(sent_before);
    state.sent_hashes.extend(
        kept.iter()
            .filter_map(|c| Change::from_bytes(c.clone()).ok())
            .map(|c| c.hash()),
    );
    message.changes = kept.into();
}

impl SignedDoc {
    /// An empty document under `rules`, to be filled by sync.
    pub fn new(rules: Rules) -> Self {
        Self {
            doc: Automerge::new(),
            signatures: HashMap::new(),
            rules,
            pending: HashMap::new(),
            tally: roster::Tally::default(),
        }
    }

    /// Creates a workspace: its roster's genesis change, whose hash becomes
    /// the workspace id.
    pub fn create_roster(
        signer: &Signer,
        name: &str,
        creator_name: &str,
        now: Millis,
    ) -> Result<(Self, SignedChange), DocError> {
        roster::view::check_name(name).map_err(|e| Rejection::Unauthorized {
            hash: String::new(),
            reason: e.to_string(),
        })?;
        let mut doc = Automerge::new();
        doc.set_actor(actor(signer));
        let hash = doc
            .transact_with(
                |_| CommitOptions::default().with_time(now / 1000),
                |tx| roster::write::genesis(tx, name, signer.id(), creator_name, now),
            )
            .map_err(|f| f.error)?
            .hash
            .ok_or(AutomergeError::Fail)?;
        let mut this = Self {
            doc,
            signatures: HashMap::new(),
            rules: Rules::Roster { workspace: hash },
            pending: HashMap::new(),
            tally: roster::Tally::default(),
        };
        let signed = this.sign(signer, hash)?;
        Ok((this, signed))
    }

    /// Rebuilds a document from changes this node stored earlier, after it
    /// checked them. Neither signatures nor rules are checked again (that
    /// would cost seconds for a large feed at every start); automerge checks
    /// each change's checksum, which catches a damaged store.
    pub fn load(rules: Rules, stored: Vec<SignedChange>) -> Result<Self, DocError> {
        Self::load_onto(Automerge::new(), rules, stored)
    }

    fn load_onto(
        doc: Automerge,
        rules: Rules,
        stored: Vec<SignedChange>,
    ) -> Result<Self, DocError> {
        let mut this = Self {
            doc,
            signatures: HashMap::new(),
            rules,
            pending: HashMap::new(),
            tally: roster::Tally::default(),
        };
        this.add_stored(stored)?;
        Ok(this)
    }

    /// Adds changes this node stored earlier, after it checked them, as
    /// [`Self::load`] does (after a [`Self::restore`], those stored since
    /// the snapshot; one the snapshot holds already is skipped).
    pub fn add_stored(&mut self, stored: Vec<SignedChange>) -> Result<(), DocError> {
        let mut changes = Vec::with_capacity(stored.len());
        for sc in stored {
            let change =
                Change::from_bytes(sc.bytes).map_err(|e| Rejection::Malformed(e.to_string()))?;
            let sig = <[u8; 64]>::try_from(sc.signature.as_slice())
                .map_err(|_| Rejection::BadSignature(change.hash().to_string()))?;
            self.signatures.insert(change.hash(), sig);
            changes.push(change);
        }
        self.doc.apply_changes(changes)?;
        Ok(())
    }

    /// A department's feed: its deterministic genesis, then the changes
    /// this node stored earlier (not checked again: see [`Self::load`]).
    pub fn feed(dept: &str, stored: Vec<SignedChange>) -> Result<Self, DocError> {
        Self::feed_like(dept, None, stored)
    }

    /// The direct conversation between `a` and `b`: a feed that only those
    /// two write and read.
    pub fn direct(a: MemberId, b: MemberId, stored: Vec<SignedChange>) -> Result<Self, DocError> {
        Self::feed_like(&feed::direct_id(&a, &b), Some([a, b]), stored)
    }

    fn feed_like(
        id: &str,
        pair: Option<[MemberId; 2]>,
        stored: Vec<SignedChange>,
    ) -> Result<Self, DocError> {
        let doc = feed::genesis(id)?;
        let genesis = doc.get_heads()[0];
        let rules = Rules::Feed(FeedRules {
            dept: id.to_owned(),
            genesis,
            pair,
        });
        Self::load_onto(doc, rules, stored)
    }

    /// A department's library: its deterministic genesis, then the changes
    /// this node stored earlier (not checked again: see [`Self::load`]).
    pub fn library(dept: &str, stored: Vec<SignedChange>) -> Result<Self, DocError> {
        let rules = Rules::Library(LibraryRules {
            dept: dept.to_owned(),
        });
        Self::load_onto(library::genesis(dept)?, rules, stored)
    }

    /// The workspace's pin ledger of day `epoch` (`workspace`: its id in
    /// hex), then the changes this node stored earlier.
    pub fn pins(
        workspace: &str,
        epoch: pins::Epoch,
        stored: Vec<SignedChange>,
    ) -> Result<Self, DocError> {
        Self::load_onto(
            pins::genesis(workspace, epoch)?,
            Rules::Pins(PinsRules { epoch }),
            stored,
        )
    }

    /// The rules this document obeys.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The automerge document, for reading.
    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// How many signed changes it holds (cheap: no change is read).
    pub fn len(&self) -> usize {
        self.signatures.len()
    }

    /// Whether it holds no signed change.
    pub fn is_empty(&self) -> bool {
        self.signatures.is_empty()
    }

    /// The current heads.
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// A change of this document with its signature.
    pub fn signed_change(&self, hash: &ChangeHash) -> Option<SignedChange> {
        let change = self.doc.get_change_by_hash(hash)?;
        let sig = self.signatures.get(hash)?;
        Some(SignedChange {
            bytes: change.raw_bytes().to_vec(),
            signature: sig.to_vec(),
        })
    }

    /// `hash` and every change it depends on, with their signatures: the
    /// history a node needs to hold the document as it was at `hash` (a
    /// removed member's proof of its removal, and nothing after it).
    pub fn history_to(&self, hash: ChangeHash) -> Result<Vec<SignedChange>, DocError> {
        let past = self.doc.fork_at(&[hash])?;
        Ok(past
            .get_changes(&[])
            .iter()
            .filter_map(|c| self.signed_change(&c.hash()))
            .collect())
    }

    /// Makes a local change to the roster: `edit` writes through the
    /// transaction, the change is signed by `signer`, and checked by the
    /// same rules every peer will apply. Returns `None` if `edit` wrote
    /// nothing. (Department documents use [`Self::change_under`].)
    pub fn change<F>(
        &mut self,
        signer: &Signer,
        now: Millis,
        edit: F,
    ) -> Result<Option<SignedChange>, DocError>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    {
        self.change_with(signer, now, None, edit)
    }

    /// Makes a local change to a department document (feed, conversation,
    /// library, pin ledger): like [`Self::change`], and the change cites the
    /// roster heads `roster` holds now.
    pub fn change_under<F>(
        &mut self,
        roster: &mut RosterAt<'_>,
        signer: &Signer,
        now: Millis,
        edit: F,
    ) -> Result<Option<SignedChange>, DocError>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    {
        self.change_with(signer, now, Some(roster), edit)
    }

    fn change_with<F>(
        &mut self,
        signer: &Signer,
        now: Millis,
        roster: Option<&mut RosterAt<'_>>,
        edit: F,
    ) -> Result<Option<SignedChange>, DocError>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    {
        let before = self.doc.get_heads();
        self.doc.set_actor(actor(signer));
        let message = roster.as_ref().map(|r| cite::message(&r.heads()));
        let options = |_: &_| {
            let options = CommitOptions::default().with_time(now / 1000);
            match &message {
                Some(m) => options.with_message(m.clone()),
                None => options,
            }
        };
        let Some(hash) = self
            .doc
            .transact_with(options, edit)
            .map_err(|f| f.error)?
            .hash
        else {
            return Ok(None);
        };
        let change = self
            .doc
            .get_change_by_hash(&hash)
            .ok_or(AutomergeError::Fail)?;
        let verdict = match self.authorize(&change, signer.id(), roster) {
            Judged::Allowed => None,
            Judged::Denied(reason) => Some(reason),
            Judged::Waiting => Some("the roster it cites is not here".into()),
        };
        if let Some(reason) = verdict {
            self.rollback(&before, Vec::new())?;
            return Err(Rejection::Unauthorized {
                hash: hash.to_string(),
                reason,
            }
            .into());
        }
        Ok(Some(self.sign(signer, hash)?))
    }

    /// Takes roster changes from a peer: keeps those that are signed and
    /// allowed, refuses the rest, and holds back those whose dependencies
    /// are missing. (Department documents use [`Self::ingest_under`].)
    pub fn ingest(&mut self, incoming: Vec<SignedChange>) -> Ingest {
        self.ingest_with(incoming, None)
    }

    /// Takes changes of a department document from a peer, each judged
    /// against the roster at the heads it cites; one whose heads are not in
    /// `roster` yet waits for them.
    pub fn ingest_under(
        &mut self,
        roster: &mut RosterAt<'_>,
        incoming: Vec<SignedChange>,
    ) -> Ingest {
        self.ingest_with(incoming, Some(roster))
    }

    /// Tries again the changes held back for missing dependencies or roster
    /// heads: call it when the roster has moved.
    pub fn retry(&mut self, roster: &mut RosterAt<'_>) -> Ingest {
        self.ingest_with(Vec::new(), Some(roster))
    }

    /// Whether changes are held back, waiting for their dependencies or for
    /// the roster heads they cite.
    pub fn has_held_back(&self) -> bool {
        !self.pending.is_empty()
    }

    fn ingest_with(
        &mut self,
        incoming: Vec<SignedChange>,
        roster: Option<&mut RosterAt<'_>>,
    ) -> Ingest {
        let mut report = Ingest::default();
        let mut changes = Vec::new();
        let mut sigs = HashMap::new();
        for sc in incoming {
            match Change::from_bytes(sc.bytes) {
                Ok(c) => {
                    if let Ok(sig) = <[u8; 64]>::try_from(sc.signature.as_slice()) {
                        sigs.insert(c.hash(), sig);
                    }
                    changes.push(c);
                }
                Err(e) => report.rejected.push(Rejection::Malformed(e.to_string())),
            }
        }
        self.ingest_changes(changes, &sigs, &HashMap::new(), roster, &mut report);
        report
    }

    /// Produces the next sync message for the peer whose state is `state`,
    /// with the signatures of the changes it carries, at most
    /// [`SYNC_BUDGET`] bytes of them.
    pub fn generate_sync(&self, state: &mut sync::State) -> Option<SyncPayload> {
        self.generate_sync_within(state, SYNC_BUDGET)
    }

    /// [`Self::generate_sync`] with the changes cut to `budget` bytes
    /// (signatures included; at least one change). Those left out are
    /// forgotten as sent, so the next round carries them: a long history
    /// goes in several rounds, each within the transport's message limit.
    pub fn generate_sync_within(
        &self,
        state: &mut sync::State,
        budget: usize,
    ) -> Option<SyncPayload> {
        let sent_before = state.sent_hashes.clone();
        let missing = self.missing_deps();
        // Changes go one per chunk, never as the whole document in one
        // chunk (automerge's v2 messages, for a peer that has nothing),
        // so that a message can be cut anywhere.
        state.their_capabilities = None;
        let hidden = self.hide_beyond(state, budget);
        let generated = self.doc.generate_sync_message(state);
        for h in &hidden {
            state.sent_hashes.remove(h);
        }
        let mut message = match generated {
            Some(m) => m,
            None if !missing.is_empty() => sync::Message {
                heads: self.doc.get_heads(),
                need: Vec::new(),
                have: vec![sync::Have::default()],
                changes: sync::ChunkList::empty(),
                flags: None,
                version: sync::MessageVersion::V1,
            },
            None => return None,
        };
        cut_to(&mut message, state, &sent_before, budget);
        // Ask for what held-back changes are waiting on.
        message.need.extend(missing);
        message.need.sort();
        message.need.dedup();
        let signatures = state
            .sent_hashes
            .difference(&sent_before)
            .filter_map(|h| {
                let sig = self.signatures.get(h)?;
                let mut b = Vec::with_capacity(96);
                b.extend_from_slice(&h.0);
                b.extend_from_slice(sig);
                Some(serde_bytes::ByteBuf::from(b))
            })
            .collect();
        Some(SyncPayload {
            message: message.encode(),
            signatures,
        })
    }

    /// Marks as sent, for the length of one `generate_sync_message`, the
    /// changes the peer lacks past about twice `budget`: automerge builds
    /// every change it means to send from its operations (~10 µs each), so
    /// a message cut afterwards would still cost the whole rest of a long
    /// history, at every round. Reading which changes those are costs only
    /// the change graph. Returns the hashes marked, to unmark.
    fn hide_beyond(&self, state: &mut sync::State, budget: usize) -> Vec<ChangeHash> {
        let (Some(have), Some(need)) = (&state.their_have, &state.their_need) else {
            return Vec::new();
        };
        let last_sync: Vec<ChangeHash> = have.iter().flat_map(|h| h.last_sync.clone()).collect();
        let metas = self.doc.get_changes_meta(&last_sync);
        // Op counts tell a change's size roughly; the cut that follows
        // generation is exact.
        let estimate = |m: &automerge::ChangeMetadata<'_>| {
            let message = m.message.as_ref().map_or(0, |s| s.len());
            64 + message + 16 * (m.max_op + 1).saturating_sub(m.start_op) as usize
        };
        let mut size = 0;
        let mut hidden = Vec::new();
        for m in &metas {
            if state.sent_hashes.contains(&m.hash)
                || need.contains(&m.hash)
                || have.iter().any(|h| h.bloom.contains_hash(&m.hash))
            {
                continue;
            }
            if size > 2 * budget {
                hidden.push(m.hash);
            } else {
                size += estimate(m) + SIGNATURE_COST;
            }
        }
        for h in &hidden {
            state.sent_hashes.insert(*h);
        }
        hidden
    }

    /// Dependencies of held-back changes that nobody has sent yet.
    fn missing_deps(&self) -> Vec<ChangeHash> {
        let mut missing: Vec<ChangeHash> = self
            .pending
            .values()
            .flat_map(|(c, _)| c.deps().iter().copied())
            .filter(|d| {
                !self.pending.contains_key(d) && self.doc.get_change_meta_by_hash(d).is_none()
            })
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// Receives a roster sync message: its changes go through the same
    /// checks as gossip, and only then does the sync state learn of them.
    pub fn receive_sync(
        &mut self,
        state: &mut sync::State,
        payload: SyncPayload,
    ) -> Result<Ingest, DocError> {
        self.receive_sync_with(state, payload, None)
    }

    /// Receives a sync message of a department document, its changes
    /// judged as [`Self::ingest_under`] judges them.
    pub fn receive_sync_under(
        &mut self,
        roster: &mut RosterAt<'_>,
        state: &mut sync::State,
        payload: SyncPayload,
    ) -> Result<Ingest, DocError> {
        self.receive_sync_with(state, payload, Some(roster))
    }

    fn receive_sync_with(
        &mut self,
        state: &mut sync::State,
        payload: SyncPayload,
        roster: Option<&mut RosterAt<'_>>,
    ) -> Result<Ingest, DocError> {
        let mut opened = OpenedSync::open(payload)?;
        opened.forget_known(self);
        opened.verify();
        let report = match opened.next_batch(usize::MAX) {
            Some(batch) => self.ingest_batch(batch, roster),
            None => Ingest::default(),
        };
        self.finish_sync(state, opened)?;
        Ok(report)
    }

    /// The rosters that `batch`, and the changes held back here, cite,
    /// read now from `roster` ([`RosterAt::cited_by`]): judging the batch
    /// against them gives the verdicts judging it against `roster` would,
    /// without holding the roster meanwhile.
    pub fn rosters_for(&self, batch: &SyncBatch, roster: &mut RosterAt<'_>) -> RosterAt<'static> {
        roster.cited_by(
            batch
                .changes
                .iter()
                .chain(self.pending.values().map(|(c, _)| c)),
        )
    }

    /// Takes one batch of an [`OpenedSync`]'s changes, judged as
    /// [`Self::ingest_under`] judges them (`roster` for a department
    /// document, `None` for the roster). Their signatures were checked
    /// when the message was opened.
    pub fn ingest_batch(&mut self, batch: SyncBatch, roster: Option<&mut RosterAt<'_>>) -> Ingest {
        let mut report = Ingest {
            rejected: batch.malformed,
            ..Ingest::default()
        };
        self.ingest_changes(
            batch.changes,
            &batch.sigs,
            &batch.verdicts,
            roster,
            &mut report,
        );
        report
    }

    /// The rest of a sync message once its changes were taken
    /// ([`Self::ingest_batch`]): the sync state learns the peer's heads
    /// and what it has and needs ([`receipt`]: as automerge's
    /// `receive_sync_message`, without its walk over the whole history).
    /// Changes left in `opened` are dropped (sync offers them again).
    ///
    /// The changes it carried that are heads here now count as shared
    /// with the peer, as automerge counts changes it applies from a
    /// message itself: the next "have" this node sends summarises only
    /// what came after them, not a long history that arrives over many
    /// rounds (the summary of 100,000 changes, rebuilt every round, was
    /// most of a round's time).
    pub fn finish_sync(
        &mut self,
        state: &mut sync::State,
        opened: OpenedSync,
    ) -> Result<(), DocError> {
        receipt::receive(&self.doc, state, opened.message);
        let heads: HashSet<ChangeHash> = self.doc.get_heads().into_iter().collect();
        let mut shared: std::collections::BTreeSet<ChangeHash> =
            state.shared_heads.iter().copied().collect();
        shared.extend(opened.carried.into_iter().filter(|h| heads.contains(h)));
        state.shared_heads = shared.into_iter().collect();
        Ok(())
    }

    fn ingest_changes(
        &mut self,
        changes: Vec<Change>,
        sigs: &HashMap<ChangeHash, [u8; 64]>,
        verdicts: &HashMap<ChangeHash, Signed>,
        mut roster: Option<&mut RosterAt<'_>>,
        report: &mut Ingest,
    ) {
        let before = self.doc.get_heads();
        let mut sigs = sigs.clone();
        let mut changes = changes;
        for (hash, (change, sig)) in self.pending.drain() {
            if let Some(sig) = sig {
                sigs.entry(hash).or_insert(sig);
            }
            changes.push(change);
        }
        let sigs = &sigs;
        let (ordered, waiting) = causal_order(&self.doc, changes);
        report.missing_deps = waiting.len();
        for change in waiting {
            self.hold_back(change, sigs);
        }
        // Changes citing roster heads not here yet (and what builds on
        // them) wait without being applied: applying them only to roll
        // them back would cost a copy of the document per batch.
        let mut held = HashSet::new();
        let ordered = match roster.as_deref() {
            Some(r) => self.hold_for_roster(ordered, r, sigs, &mut held, report),
            None => ordered,
        };
        if ordered.is_empty() {
            return;
        }
        let ordered = match self.doc.apply_changes(ordered.clone()) {
            Ok(()) => ordered,
            Err(_) => match self.apply_one_by_one(&before, ordered, report) {
                Ok(applied) => applied,
                Err(e) => {
                    report.rejected.push(Rejection::Malformed(e.to_string()));
                    return;
                }
            },
        };
        // Signatures checked when the message was opened are not checked
        // again; those of held-back changes coming back are.
        let mut signed = signed_by_author(
            ordered.iter().filter(|c| !verdicts.contains_key(&c.hash())),
            sigs,
        );
        for c in &ordered {
            if let Some(v) = verdicts.get(&c.hash()) {
                signed.insert(c.hash(), *v);
            }
        }
        let mut accepted = Vec::with_capacity(ordered.len());
        let mut rejected_hashes = HashSet::new();
        // Whether something applied above was then refused or held back.
        let mut undo = false;
        for change in ordered {
            let hash = change.hash();
            if change.deps().iter().any(|d| held.contains(d)) {
                held.insert(hash);
                undo = true;
                self.hold_back(change, sigs);
                continue;
            }
            match self.check(&change, &signed, &rejected_hashes, roster.as_deref_mut()) {
                Ok(Some(sig)) => accepted.push((change, sig)),
                Ok(None) => {
                    held.insert(hash);
                    undo = true;
                    report.waiting_for_roster += 1;
                    self.hold_back(change, sigs);
                }
                Err(r) => {
                    rejected_hashes.insert(hash);
                    undo = true;
                    report.rejected.push(r);
                }
            }
        }
        if undo {
            let keep = accepted.iter().map(|(c, _)| c.clone()).collect();
            if let Err(e) = self.rollback(&before, keep) {
                report.rejected.push(Rejection::Malformed(e.to_string()));
                return;
            }
        }
        for (change, sig) in accepted {
            self.signatures.insert(change.hash(), sig);
            report.accepted.push(SignedChange {
                bytes: change.raw_bytes().to_vec(),
                signature: sig.to_vec(),
            });
        }
    }

    /// After automerge refused a batch (some change in it is not one it can
    /// hold: a second change with an author's sequence number, say — its
    /// author equivocated): back to `before`, then the changes one at a
    /// time, so the refused one and what builds on it go, and the rest of
    /// the batch is judged as usual. Returns the changes applied.
    fn apply_one_by_one(
        &mut self,
        before: &[ChangeHash],
        ordered: Vec<Change>,
        report: &mut Ingest,
    ) -> Result<Vec<Change>, AutomergeError> {
        self.rollback(before, Vec::new())?;
        let mut applied = Vec::with_capacity(ordered.len());
        let mut refused = HashSet::new();
        for change in ordered {
            let hash = change.hash();
            if change.deps().iter().any(|d| refused.contains(d)) {
                refused.insert(hash);
                report
                    .rejected
                    .push(Rejection::DependsOnRejected(hash.to_string()));
                continue;
            }
            match self.doc.apply_changes([change.clone()]) {
                Ok(()) => applied.push(change),
                Err(e) => {
                    refused.insert(hash);
                    report
                        .rejected
                        .push(Rejection::Malformed(format!("change {hash}: {e}")));
                }
            }
        }
        Ok(applied)
    }

    /// Holds back, unapplied, the changes of `ordered` that cite roster
    /// heads `roster` does not have yet, and those that build on them
    /// (into `held`); returns the rest, still in causal order.
    fn hold_for_roster(
        &mut self,
        ordered: Vec<Change>,
        roster: &RosterAt<'_>,
        sigs: &HashMap<ChangeHash, [u8; 64]>,
        held: &mut HashSet<ChangeHash>,
        report: &mut Ingest,
    ) -> Vec<Change> {
        let mut ready = Vec::with_capacity(ordered.len());
        for change in ordered {
            let waits = change.deps().iter().any(|d| held.contains(d))
                || matches!(cite::cited(&change), Ok(Some(h)) if !roster.holds(&h));
            if waits {
                held.insert(change.hash());
                report.waiting_for_roster += 1;
                self.hold_back(change, sigs);
            } else {
                ready.push(change);
            }
        }
        ready
    }

    /// Keeps a change that cannot be judged yet, to try with later batches.
    fn hold_back(&mut self, change: Change, sigs: &HashMap<ChangeHash, [u8; 64]>) {
        if self.pending.len() < MAX_PENDING {
            let hash = change.hash();
            self.pending
                .insert(hash, (change, sigs.get(&hash).copied()));
        }
    }

    /// `Ok(Some(signature))` to keep the change, `Ok(None)` while the roster
    /// heads it cites are not here, `Err` to refuse it.
    fn check(
        &mut self,
        change: &Change,
        signed: &HashMap<ChangeHash, Signed>,
        rejected: &HashSet<ChangeHash>,
        roster: Option<&mut RosterAt<'_>>,
    ) -> Result<Option<[u8; 64]>, Rejection> {
        let hash = change.hash();
        if change.deps().iter().any(|d| rejected.contains(d)) {
            return Err(Rejection::DependsOnRejected(hash.to_string()));
        }
        let (author, sig) = match signed.get(&hash) {
            None => return Err(Rejection::Unsigned(hash.to_string())),
            Some(Signed::Forged) => return Err(Rejection::BadSignature(hash.to_string())),
            Some(Signed::By(author, sig)) => (*author, *sig),
        };
        match self.authorize(change, author, roster) {
            Judged::Allowed => Ok(Some(sig)),
            Judged::Waiting => Ok(None),
            Judged::Denied(reason) => Err(Rejection::Unauthorized {
                hash: hash.to_string(),
                reason,
            }),
        }
    }

    /// The verdict on `change`, applied to the document, by `author`. A
    /// department document's change is judged against the roster at the
    /// heads it cites (`roster` reads them); see [`crate::cite`].
    fn authorize(
        &mut self,
        change: &Change,
        author: MemberId,
        roster: Option<&mut RosterAt<'_>>,
    ) -> Judged {
        if let Rules::Roster { workspace } = &self.rules {
            return roster::authorize(&self.doc, change, author, workspace, &mut self.tally).into();
        }
        let Some(roster) = roster else {
            return Judged::Denied("a department document judged without a roster".into());
        };
        let (judged_by, legacy) = match cite::cited(change) {
            Err(reason) => return Judged::Denied(reason),
            Ok(Some(heads)) => match roster.at(&heads) {
                Some(r) => (r, false),
                None => return Judged::Waiting,
            },
            Ok(None) => {
                // Written before citations: allowed only where no citing
                // change precedes it (checked on its direct dependencies,
                // which were themselves held to this rule).
                if change.deps().iter().any(|d| self.cites(d)) {
                    return Judged::Denied(
                        "a change without a roster citation after one with".into(),
                    );
                }
                (roster.ever(), true)
            }
        };
        let judged = Judging {
            roster: &judged_by,
            legacy,
        };
        match &self.rules {
            Rules::Roster { .. } => Err("the roster is judged above".into()),
            Rules::Feed(rules) => feed::authorize(&self.doc, change, author, rules, judged),
            Rules::Library(rules) => library::authorize(&self.doc, change, author, rules, judged),
            Rules::Pins(rules) => pins::authorize(rules, &self.doc, change, author, judged),
        }
        .into()
    }

    /// Whether the change `hash` of this document cites a roster.
    fn cites(&self, hash: &ChangeHash) -> bool {
        self.doc
            .get_change_meta_by_hash(hash)
            .is_some_and(|c| c.message.is_some())
    }

    /// Forgets everything since `heads`, then re-applies `keep`.
    fn rollback(&mut self, heads: &[ChangeHash], keep: Vec<Change>) -> Result<(), AutomergeError> {
        let mut doc = self.doc.fork_at(heads)?;
        doc.apply_changes(keep)?;
        self.doc = doc;
        Ok(())
    }

    fn sign(&mut self, signer: &Signer, hash: ChangeHash) -> Result<SignedChange, DocError> {
        let sig = signer.sign_change(&hash.0);
        self.signatures.insert(hash, sig);
        self.signed_change(&hash)
            .ok_or(DocError::Automerge(AutomergeError::Fail))
    }
}

/// What a department document's rules judge a change against.
#[derive(Clone, Copy)]
pub(crate) struct Judging<'a> {
    /// The roster at the heads the change cites (or, for a legacy change,
    /// [`RosterAt::ever`]).
    pub roster: &'a crate::roster::Roster,
    /// A change written before citations: rules added with them (post ids
    /// bound to their author) do not apply.
    pub legacy: bool,
}

/// A rule's verdict.
enum Judged {
    Allowed,
    Denied(String),
    /// The roster heads the change cites are not here yet.
    Waiting,
}

impl From<Result<(), String>> for Judged {
    fn from(r: Result<(), String>) -> Self {
        match r {
            Ok(()) => Judged::Allowed,
            Err(reason) => Judged::Denied(reason),
        }
    }
}

fn actor(signer: &Signer) -> ActorId {
    ActorId::from(signer.id().as_bytes().as_slice())
}

/// What a change's signature says, once checked.
#[derive(Clone, Copy)]
enum Signed {
    /// A valid signature by this author.
    By(MemberId, [u8; 64]),
    /// An actor id that is no key, or a signature that does not verify.
    Forged,
}

/// Checks the signatures of a batch of changes at once (see
/// [`crate::identity::verify_changes`]); changes without one are absent.
fn signed_by_author<'c>(
    changes: impl IntoIterator<Item = &'c Change>,
    sigs: &HashMap<ChangeHash, [u8; 64]>,
) -> HashMap<ChangeHash, Signed> {
    let mut out = HashMap::new();
    let mut items = Vec::new();
    for c in changes {
        let hash = c.hash();
        let Some(sig) = sigs.get(&hash) else { continue };
        match author(c) {
            Some(a) => items.push((a, hash.0, *sig)),
            None => {
                out.insert(hash, Signed::Forged);
            }
        }
    }
    let verdicts = crate::identity::verify_changes(&items);
    for ((author, hash, sig), ok) in items.into_iter().zip(verdicts) {
        let verdict = if ok {
            Signed::By(author, sig)
        } else {
            Signed::Forged
        };
        out.insert(ChangeHash(hash), verdict);
    }
    out
}

/// The change's author: its actor id read as a public key.
fn author(change: &Change) -> Option<MemberId> {
    MemberId::from_bytes(change.actor_id().to_bytes())
}

/// A sync chunk: one or more change chunks back to back (automerge's v1
/// messages), or a whole document (v2). Each change is decoded on its own.
fn decode_chunk(bytes: &[u8]) -> Result<Vec<Change>, Rejection> {
    let mut changes = Vec::new();
    for chunk in split_chunks(bytes)? {
        match chunk.get(8) {
            // 0: a document chunk.
            Some(0) => {
                let doc =
                    Automerge::load(chunk).map_err(|e| Rejection::Malformed(e.to_string()))?;
                changes.extend(doc.get_changes(&[]));
            }
            _ => changes.push(
                Change::from_bytes(chunk.to_vec())
                    .map_err(|e| Rejection::Malformed(e.to_string()))?,
            ),
        }
    }
    Ok(changes)
}

/// Splits concatenated automerge chunks: each is magic (4 bytes),
/// checksum (4), type (1), a LEB128 length, then that many bytes.
fn split_chunks(mut bytes: &[u8]) -> Result<Vec<&[u8]>, Rejection> {
    let bad = || Rejection::Malformed("a sync chunk that is not automerge data".into());
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (mut len, mut shift, mut at) = (0u64, 0u32, 9usize);
        loop {
            let b = *bytes.get(at).ok_or_else(bad)?;
            len |= u64::from(b & 0x7f).checked_shl(shift).ok_or_else(bad)?;
            at += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(bad());
            }
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| at.checked_add(l))
            .filter(|e| *e <= bytes.len())
            .ok_or_else(bad)?;
        out.push(&bytes[..end]);
        bytes = &bytes[end..];
    }
    Ok(out)
}

/// Orders new changes so each comes after its dependencies, dropping those
/// already known; returns them and those that wait on missing dependencies.
/// Kahn's algorithm: linear in the changes and their dependencies, so a
/// catch-up of a long chain costs no more per change than a short one.
fn causal_order(doc: &Automerge, changes: Vec<Change>) -> (Vec<Change>, Vec<Change>) {
    let known = |h: &ChangeHash| doc.get_change_meta_by_hash(h).is_some();
    let mut by_hash: HashMap<ChangeHash, Change> = HashMap::new();
    let mut arrival = Vec::new();
    for c in changes {
        let hash = c.hash();
        if !known(&hash) && !by_hash.contains_key(&hash) {
            arrival.push(hash);
            by_hash.insert(hash, c);
        }
    }
    // For each new change: how many of its dependencies are new and not yet
    // placed, and which new changes wait on it.
    let mut unmet: HashMap<ChangeHash, usize> = HashMap::new();
    let mut children: HashMap<ChangeHash, Vec<ChangeHash>> = HashMap::new();
    let mut missing: HashSet<ChangeHash> = HashSet::new();
    for (hash, c) in &by_hash {
        let mut n = 0;
        for d in c.deps() {
            if by_hash.contains_key(d) {
                n += 1;
                children.entry(*d).or_default().push(*hash);
            } else if !known(d) {
                missing.insert(*hash);
            }
        }
        unmet.insert(*hash, n);
    }
    let mut ready: std::collections::VecDeque<ChangeHash> = arrival
        .iter()
        .filter(|h| unmet[*h] == 0 && !missing.contains(*h))
        .copied()
        .collect();
    let mut ordered = Vec::with_capacity(by_hash.len());
    while let Some(hash) = ready.pop_front() {
        for child in children.remove(&hash).unwrap_or_default() {
            let n = unmet.get_mut(&child).map(|n| {
                *n -= 1;
                *n
            });
            if n == Some(0) && !missing.contains(&child) {
                ready.push_back(child);
            }
        }
        if let Some(c) = by_hash.remove(&hash) {
            ordered.push(c);
        }
    }
    // What is left waits, directly or through a parent, on a missing change.
    let waiting = arrival.iter().filter_map(|h| by_hash.remove(h)).collect();
    (ordered, waiting)
}
