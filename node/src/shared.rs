//! State shared by the node's handle and its network event loop: identity,
//! store, clock, and the workspace's documents behind one lock.
//!
//! Work under the lock is synchronous and short (automerge operations); no
//! await happens while it is held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use libp2p::PeerId;
use meshwork_crdt::automerge::sync;
use meshwork_crdt::roster::{Roster, RosterCache};
use meshwork_crdt::signed::Rules;
use meshwork_crdt::{automerge::ChangeHash, Ingest, SignedChange, SignedDoc, SyncPayload};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::home::Identity;
use crate::store::{Store, WorkspaceMeta};
use crate::{Clock, NodeError};

/// Which side of a sync exchange a state belongs to: each direction runs its
/// own automerge sync session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Side {
    Initiator,
    Responder,
}

/// Something that happened, as the control API's event stream tells it.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeEvent {
    /// New roster changes were stored (local or from peers).
    RosterChanged {
        /// How many.
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
}

/// The documents of the workspace this node belongs to.
pub(crate) struct Workspace {
    pub meta: WorkspaceMeta,
    pub roster: SignedDoc,
    pub sync: HashMap<(PeerId, Side), sync::State>,
    /// The typed roster, kept current by re-reading what changes touch.
    cache: RosterCache,
}

impl Workspace {
    pub(crate) fn new(meta: WorkspaceMeta, roster: SignedDoc) -> Self {
        Self {
            meta,
            roster,
            sync: HashMap::new(),
            cache: RosterCache::default(),
        }
    }

    /// One round of the sync protocol with `peer` on `side`: takes in what
    /// the peer sent (if anything) and produces our next message (if any).
    pub(crate) fn sync_step(
        &mut self,
        peer: PeerId,
        side: Side,
        received: Option<SyncPayload>,
    ) -> Result<(Ingest, Option<SyncPayload>), NodeError> {
        let state = self.sync.entry((peer, side)).or_default();
        let report = match received {
            Some(p) => self.roster.receive_sync(state, p)?,
            None => Ingest::default(),
        };
        Ok((report, self.roster.generate_sync(state)))
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

pub(crate) struct Shared {
    pub identity: Identity,
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    ws: Mutex<Option<Workspace>>,
    /// Bumped whenever the roster changes, so waiters can re-check it.
    pub roster_version: watch::Sender<u64>,
    /// Live events for the control API's event stream.
    pub events: broadcast::Sender<NodeEvent>,
}

impl Shared {
    pub(crate) fn new(
        identity: Identity,
        store: Store,
        clock: Arc<dyn Clock>,
        ws: Option<Workspace>,
    ) -> Self {
        Self {
            identity,
            store,
            clock,
            ws: Mutex::new(ws),
            roster_version: watch::channel(0).0,
            events: broadcast::channel(1024).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Workspace>> {
        self.ws
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the workspace, or fails if there is none.
    pub(crate) fn with_ws<R>(
        &self,
        f: impl FnOnce(&mut Workspace) -> Result<R, NodeError>,
    ) -> Result<R, NodeError> {
        let mut guard = self.lock();
        let ws = guard.as_mut().ok_or_else(NodeError::no_workspace)?;
        f(ws)
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

    /// The roster as it is now.
    pub(crate) fn roster(&self) -> Result<Roster, NodeError> {
        self.with_ws(|ws| Ok(ws.roster_view()))
    }

    /// Stores accepted roster changes (durable after [`Store::flush`]) and
    /// tells waiters.
    pub(crate) fn record(
        &self,
        workspace: &[u8; 32],
        accepted: &[SignedChange],
    ) -> Result<(), NodeError> {
        if accepted.is_empty() {
            return Ok(());
        }
        self.store.put_changes(workspace, accepted)?;
        self.roster_version.send_modify(|v| *v += 1);
        self.emit(NodeEvent::RosterChanged {
            changes: accepted.len(),
        });
        Ok(())
    }
}
