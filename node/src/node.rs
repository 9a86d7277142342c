//! [`Node`]: the handle every front end (control API, examples, tests) uses.
//! Reads come from the roster under the shared lock; writes become signed
//! changes that are stored durably, then gossiped.

use crate::disk::Disk;
use crate::error::Context;
use std::sync::Arc;
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use meshwork_crdt::roster::{Role, Roster};
use meshwork_crdt::{MemberId, SignedDoc};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{info, warn};

mod audit;
mod commit;
mod download;
mod feed;
mod files;
mod folder;
mod idle;
mod ledger;
mod opening;
mod pin_plan;
mod pins;
mod roster;
mod search;
mod thumbs;
pub(crate) use thumbs::image_format;
mod unread;

pub use audit::{AuditResult, AUDITORS_PER_DEPT, AUDITS_PER_ROUND, AUDIT_EVERY_MS};
pub use feed::{Attachment, Conversation, FeedState, Thread};
pub use files::{FileInfo, Progress};
pub use ledger::SKEW_MARGIN_MS;
pub use pins::{
    PinInfo, PinNodeConfig, PinNodeInfo, PinnerInfo, PinsView, Reconciled, LOST_AFTER_MS,
    VOLUNTEER_STAGGER_MS,
};
pub use search::{HitKind, SearchHit, SearchResults, MAX_HITS};
pub use thumbs::KEEP_THUMBNAILS;
pub use unread::{ReadIn, Unread, UnreadIn, COUNT_AT_MOST};

use crate::home::Home;
use crate::net::{Command, NetConfig, NetHandle, PeerInfo};
use crate::shared::{Shared, Workspace};
use crate::store::{Store, WorkspaceMeta};
use crate::wire::{InviteToken, JoinRequest};
use crate::{Clock, NodeError, SystemClock};

/// How often, at most, a download makes the pieces it wrote durable (once
/// 16 MiB of them wait, and this long after its last sync). On a fast link
/// a `get`'s blob then reaches the disk once, as it completes, after the
/// plaintext beside it; a crash loses at most this much of a download's
/// transfer.
const DOWNLOAD_SYNC_INTERVAL: Duration = Duration::from_secs(10);

/// How to run a node.
#[derive(Clone)]
pub struct NodeConfig {
    /// The home directory (identity, database).
    pub home: Home,
    /// Networking.
    pub net: NetConfig,
    /// The clock every expiry reads.
    pub clock: Arc<dyn Clock>,
    /// How long `join` waits for a member to admit us and send the roster.
    pub join_timeout: Duration,
    /// Run as a pin node: keep every requested blob, within this quota.
    pub pin: Option<PinNodeConfig>,
    /// Reconcile pins on their own (on ledger, roster and peer changes, and
    /// every `sync_interval`). Tests that drive passes themselves turn it off.
    pub auto_pin: bool,
    /// Volunteer to keep files of this member's departments while fewer
    /// than the workspace's replica target of pinners hold them.
    pub volunteer: bool,
    /// How this node measures its disk, and the reserve it keeps free: it
    /// refuses to share, fetch or keep a file that would eat into it.
    pub disk: Disk,
    /// Unload a feed, conversation or library from memory once nobody has
    /// used it for this long (`None`: keep everything loaded).
    pub unload_idle_after: Option<Duration>,
    /// When a document leaves memory with at least this many of its
    /// changes stored loose (not in a snapshot), compact them into one snapshot
    /// ([`crate::Store::compact`]): it loads several times faster.
    pub compact_after: usize,
}

impl NodeConfig {
    /// Defaults for a node in `home`.
    pub fn new(home: impl Into<std::path::PathBuf>) -> Self {
        Self {
            home: Home::new(home),
            net: NetConfig::default(),
            clock: Arc::new(SystemClock),
            join_timeout: Duration::from_secs(30),
            pin: None,
            auto_pin: true,
            volunteer: true,
            disk: Disk::system(crate::disk::DEFAULT_MIN_FREE),
            unload_idle_after: Some(Duration::from_secs(300)),
            compact_after: crate::shared::COMPACT_AFTER,
        }
    }
}

/// What to invite someone as.
#[derive(Clone, Debug)]
pub struct InviteSpec {
    /// The department (name) they join, if any.
    pub dept: Option<String>,
    /// Their role.
    pub role: Role,
    /// How long the invite stays valid.
    pub ttl: Duration,
}

/// A created invite.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InviteInfo {
    /// The one-line token to hand the joiner.
    pub token: String,
    /// The invite's id.
    pub id: String,
    /// When it expires (ms since the epoch).
    pub expires_at: i64,
}

/// This node's view of itself and its workspace.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// This device's member id.
    pub member_id: String,
    /// This device's libp2p peer id.
    pub peer_id: String,
    /// Display name.
    pub name: String,
    /// The workspace, if any.
    pub workspace: Option<WorkspaceStatus>,
    /// Addresses the node listens on.
    pub listen_addrs: Vec<String>,
    /// Connected peers.
    pub peers: Vec<PeerInfo>,
    /// This node's disk, if it could be measured.
    pub disk: Option<DiskStatus>,
}

/// The disk of this node's home.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DiskStatus {
    /// Bytes free on the file system of the home.
    pub free: u64,
    /// Bytes the node leaves free (`daemon --min-free`).
    pub min_free: u64,
    /// Bytes its blob store holds: files shared, fetched and kept for others.
    pub blobs: u64,
}

/// The workspace part of [`Status`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkspaceStatus {
    /// Workspace id (roster genesis hash).
    pub id: String,
    /// Workspace name.
    pub name: String,
    /// This node's role, if it is an active member.
    pub role: Option<Role>,
    /// Whether this node was removed from the workspace (it then takes
    /// part no more).
    pub removed: bool,
    /// Member count (active).
    pub members: usize,
    /// Department count.
    pub departments: usize,
    /// The documents and their heads.
    pub documents: Vec<DocStatus>,
}

/// A document's sync position.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DocStatus {
    /// Which document.
    pub name: String,
    /// Its heads, hex.
    pub heads: Vec<String>,
    /// How many changes it holds.
    pub changes: usize,
    /// Its size saved as one compressed automerge document, in bytes.
    pub saved_bytes: usize,
}

/// A running Meshwork node.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
    cfg: NodeConfig,
    net: Arc<Mutex<Option<NetHandle>>>,
    /// Held by a pin reconcile pass: passes never overlap.
    pin_pass: Arc<Mutex<()>>,
    ledger_cache: Arc<std::sync::Mutex<ledger::LedgerCache>>,
    /// When this node first saw each blob below its replica target.
    below_target_since:
        Arc<std::sync::Mutex<std::collections::HashMap<String, meshwork_crdt::Millis>>>,
    /// What this node's audits of pinners found.
    audits: Arc<audit::Audits>,
    /// The task that runs pin passes on its own, stopped at shutdown.
    pin_keeper: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// The task that unloads idle documents, stopped at shutdown.
    unloader: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// What `get`s left to finish in the background (`files.rs`, `keep`):
    /// shutdown waits for it.
    keeping: tokio_util::task::TaskTracker,
    /// Turns to make a thumbnail (`thumbs.rs`): a few at a time.
    thumbnailing: Arc<tokio::sync::Semaphore>,
    /// The local search index, opened on first use.
    search: Arc<std::sync::Mutex<Option<Arc<crate::search::SearchIndex>>>>,
    /// The task that keeps the search index up, and its stop signal.
    #[allow(clippy::type_complexity)]
    indexer: Arc<
        std::sync::Mutex<
            Option<(
                tokio::task::JoinHandle<()>,
                tokio::sync::watch::Sender<bool>,
            )>,
        >,
    >,
}

impl Node {
    /// Opens the home, loads the workspace if there is one, and starts
    /// networking for it.
    pub async fn start(cfg: NodeConfig) -> Result<Self, NodeError> {
        crate::memory::tune_allocator();
        let identity = cfg.home.identity()?;
        let store = Store::open(&cfg.home.db())?;
        if let Err(e) = files::sweep_parts(&store) {
            warn!("cannot clean up unfinished downloads: {e}");
        }
        let ws = match store.workspace()? {
            Some(meta) => {
                let rules = meshwork_crdt::signed::Rules::Roster {
                    workspace: meshwork_crdt::automerge::ChangeHash(meta.id),
                };
                let roster = SignedDoc::load(rules, store.changes(&meta.id)?)?;
                ledger::forget_undivided(&store, &meta.id)?;
                Some(Workspace::new(meta, roster))
            }
            None => None,
        };
        let meta = ws.as_ref().map(|w| w.meta.clone());
        let blobs = meshwork_blobs::BlobStore::open(cfg.home.blobs())?
            .with_sync_interval(DOWNLOAD_SYNC_INTERVAL);
        let shared = Arc::new(Shared::new(identity, store, blobs, cfg.clock.clone(), ws));
        let node = Self {
            shared,
            cfg,
            net: Arc::new(Mutex::new(None)),
            pin_pass: Arc::new(Mutex::new(())),
            ledger_cache: Arc::default(),
            below_target_since: Arc::default(),
            audits: Arc::default(),
            pin_keeper: Arc::default(),
            unloader: Arc::default(),
            keeping: tokio_util::task::TaskTracker::new(),
            thumbnailing: Arc::new(tokio::sync::Semaphore::new(thumbs::AT_ONCE)),
            search: Arc::default(),
            indexer: Arc::default(),
        };
        if let Some(meta) = meta {
            node.start_network(&meta).await?;
        }
        info!(member = %node.member_id(), "node started");
        Ok(node)
    }

    /// This node's store (the control API keeps browser sessions there).
    pub(crate) fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The time by this node's clock.
    pub fn now(&self) -> meshwork_crdt::Millis {
        self.shared.clock.now()
    }

    /// This device's member id.
    pub fn member_id(&self) -> MemberId {
        self.shared.identity.signer.id()
    }

    /// The second half of a new post's or file's id: ascending, from this
    /// node's clock ([`meshwork_crdt::nonce`]).
    fn new_nonce(&self) -> [u8; 8] {
        self.shared.nonces.next(self.shared.clock.now())
    }

    /// This device's libp2p peer id.
    pub fn peer_id(&self) -> PeerId {
        self.shared.identity.keypair.public().to_peer_id()
    }

    /// The display name chosen at `init`.
    pub fn name(&self) -> String {
        let me = self.member_id();
        self.shared
            .roster()
            .ok()
            .and_then(|r| r.member(&me).map(|m| m.name.clone()))
            .unwrap_or_else(|| {
                self.cfg
                    .home
                    .identity()
                    .map_or_else(|_| self.shared.identity.name.clone(), |i| i.name)
            })
    }

    async fn start_network(&self, meta: &WorkspaceMeta) -> Result<(), NodeError> {
        let handle = NetHandle::start(
            self.shared.clone(),
            self.cfg.net.clone(),
            meta.secret,
            meta.id,
        )
        .await?;
        *self.net.lock().await = Some(handle);
        if self.cfg.auto_pin {
            self.spawn_pin_keeper();
        }
        self.spawn_indexer();
        self.spawn_unloader();
        Ok(())
    }

    async fn net(&self) -> Option<NetHandle> {
        self.net.lock().await.clone()
    }

    /// Creates a workspace with this device as its first admin.
    pub async fn create_workspace(&self, name: &str) -> Result<WorkspaceStatus, NodeError> {
        if self.shared.has_ws() {
            return Err(NodeError::Conflict(
                "this node already belongs to a workspace; use another --home for another one"
                    .into(),
            ));
        }
        let now = self.shared.clock.now();
        let (roster, genesis) =
            SignedDoc::create_roster(&self.shared.identity.signer, name, &self.name(), now)
                .map_err(|e| NodeError::BadRequest(e.to_string()))?;
        let meta = WorkspaceMeta {
            id: roster.heads()[0].0,
            secret: rand::random(),
        };
        self.shared.store.put_changes(&meta.id, &[genesis])?;
        self.shared.store.set_workspace(&meta)?;
        self.shared.store.flush().await?;
        self.shared
            .set_ws(Some(Workspace::new(meta.clone(), roster)));
        self.start_network(&meta).await?;
        info!(workspace = %hex::encode(meta.id), "created workspace {name:?}");
        self.workspace_status()
    }

    /// Joins a workspace with an invite token: connects to the members it
    /// names, presents the invite, and waits for the roster.
    pub async fn join(&self, token: &str) -> Result<WorkspaceStatus, NodeError> {
        let token = InviteToken::decode(token)?;
        if self.shared.has_ws() {
            return Err(NodeError::Conflict(
                "this node already belongs to a workspace; use another --home to join another one"
                    .into(),
            ));
        }
        let meta = WorkspaceMeta {
            id: token.workspace,
            secret: token.secret,
        };
        self.shared.set_ws(Some(Workspace::empty(meta.clone())));
        let result = self.join_inner(&token, &meta).await;
        if result.is_err() {
            if let Some(net) = self.net.lock().await.take() {
                let _ = net.ask(Command::Shutdown).await;
            }
            self.shared.set_ws(None);
        }
        result
    }

    async fn join_inner(
        &self,
        token: &InviteToken,
        meta: &WorkspaceMeta,
    ) -> Result<WorkspaceStatus, NodeError> {
        self.start_network(meta).await?;
        let net = self
            .net()
            .await
            .ok_or_else(|| NodeError::Internal("no network".into()))?;
        let addrs: Vec<Multiaddr> = token.addrs.iter().filter_map(|a| a.parse().ok()).collect();
        if addrs.is_empty() && !self.cfg.net.mdns {
            return Err(NodeError::BadRequest(
                "the invite names no address to reach a member at".into(),
            ));
        }
        for addr in &addrs {
            net.send(Command::Dial(addr.clone())).await;
        }
        if token.invite_id.is_empty() {
            // Admitted beforehand (a pin node added by its peer id): the
            // roster we fetch on connecting says so.
            return self.joined(token, meta).await;
        }
        let request = JoinRequest {
            workspace: token.workspace,
            invite_id: token.invite_id.clone(),
            invite_secret: token.invite_secret,
            name: self.name().to_owned(),
        };
        let unreachable = || {
            NodeError::Unreachable(format!(
                "no member of {:?} answered within {}s at {}; is any member online and reachable?",
                token.name,
                self.cfg.join_timeout.as_secs(),
                token.addrs.join(", ")
            ))
        };
        let admitted = tokio::time::timeout(
            self.cfg.join_timeout,
            net.ask(|tx| Command::Join(request, tx)),
        )
        .await
        .map_err(|_| unreachable())??;
        admitted?;
        self.joined(token, meta).await
    }

    /// Waits for the roster to list this node, then remembers the workspace.
    async fn joined(
        &self,
        token: &InviteToken,
        meta: &WorkspaceMeta,
    ) -> Result<WorkspaceStatus, NodeError> {
        let unreachable = || {
            NodeError::Unreachable(format!(
                "no member of {:?} sent a roster that admits this node within {}s at {}; is a member online, and were you admitted?",
                token.name,
                self.cfg.join_timeout.as_secs(),
                token.addrs.join(", ")
            ))
        };
        let me = self.member_id();
        if !self
            .wait_roster(|r| r.is_active(&me), self.cfg.join_timeout)
            .await
        {
            return Err(unreachable());
        }
        self.shared.store.set_workspace(meta)?;
        self.shared.store.flush().await?;
        info!("joined workspace {:?}", token.name);
        self.workspace_status()
    }

    /// Waits until `pred` holds for the roster, or `timeout` passes.
    pub async fn wait_roster(&self, pred: impl Fn(&Roster) -> bool, timeout: Duration) -> bool {
        let mut rx = self.shared.roster_version.subscribe();
        let wait = async {
            loop {
                if self.shared.roster().map(|r| pred(&r)).unwrap_or(false) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
            && self.shared.roster().map(|r| pred(&r)).unwrap_or(false)
    }

    /// The roster as this node sees it now.
    pub fn roster(&self) -> Result<Roster, NodeError> {
        self.shared.roster()
    }

    /// Connected peers.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        match self.net().await {
            Some(net) => net.ask(Command::Peers).await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Addresses this node listens on.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        match self.net().await {
            Some(net) => net.ask(Command::ListenAddrs).await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Dials a peer (in addition to those configured).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NodeError> {
        let net = self.net().await.ok_or_else(NodeError::no_workspace)?;
        net.send(Command::Dial(addr)).await;
        Ok(())
    }

    /// Everything `meshwork status` shows.
    pub async fn status(&self) -> Status {
        Status {
            member_id: self.member_id().to_string(),
            peer_id: self.peer_id().to_string(),
            name: self.name().to_owned(),
            workspace: self.workspace_status().ok(),
            listen_addrs: self
                .listen_addrs()
                .await
                .iter()
                .map(|a| a.to_string())
                .collect(),
            peers: self.peers().await,
            disk: self.disk_status().await.ok(),
        }
    }

    async fn disk_status(&self) -> Result<DiskStatus, NodeError> {
        let blobs = self.shared.blobs.clone();
        let disk = self.cfg.disk.clone();
        tokio::task::spawn_blocking(move || {
            Ok(DiskStatus {
                free: disk.available(blobs.dir())?,
                min_free: disk.min_free,
                blobs: blobs.total_bytes()?,
            })
        })
        .await
        .context("a background task failed")?
    }

    /// The workspace part of [`Status`].
    pub fn workspace_status(&self) -> Result<WorkspaceStatus, NodeError> {
        let me = self.member_id();
        self.shared.with_ws(|ws| {
            let roster = ws.roster_view();
            Ok(WorkspaceStatus {
                id: hex::encode(ws.meta.id),
                name: roster.name.clone(),
                role: roster.member(&me).filter(|m| !m.removed).map(|m| m.role),
                removed: roster.member(&me).is_some_and(|m| m.removed),
                members: roster.active_members().count(),
                departments: roster.depts.len(),
                documents: vec![DocStatus {
                    name: "roster".into(),
                    heads: ws.roster.heads().iter().map(|h| h.to_string()).collect(),
                    changes: ws.roster.len(),
                    saved_bytes: ws.roster_saved_bytes(),
                }],
            })
        })
    }

    /// Stops networking, compacts the documents in memory that hold
    /// [`NodeConfig::compact_after`] changes stored loose, and flushes
    /// the store.
    pub async fn shutdown(&self) {
        // Blobs that `get`s fetched are synced into place and recorded.
        self.keeping.close();
        self.keeping.wait().await;
        for task in [&self.pin_keeper, &self.unloader] {
            let task = task
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let Some(task) = task {
                task.abort();
                let _ = task.await;
            }
        }
        // The indexer finishes its pass (it holds the store) and stops.
        let indexer = self
            .indexer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some((task, stop)) = indexer {
            let _ = stop.send(true);
            let _ = task.await;
        }
        if let Some(net) = self.net.lock().await.take() {
            let _ = net.ask(Command::Shutdown).await;
        }
        let (shared, after) = (self.shared.clone(), self.cfg.compact_after);
        let _ = tokio::task::spawn_blocking(move || shared.compact_loaded(after)).await;
        let _ = self.shared.store.flush().await;
        info!("node stopped");
    }

    /// Runs a sync round with every connected member now.
    pub async fn sync_now(&self) {
        if let Some(net) = self.net().await {
            net.send(Command::SyncAll).await;
        }
    }

    /// Live events: roster changes, peers coming and going.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<crate::NodeEvent> {
        self.shared.events.subscribe()
    }

    /// The node's home.
    pub fn home(&self) -> &Home {
        &self.cfg.home
    }
}

#[cfg(test)]
mod tests {
    //! The lock order (`shared.rs`): a document held long stalls nobody who
    //! does not need it.

    use std::sync::mpsc;
    use std::time::Duration;

    use super::{Node, NodeConfig};
    use crate::wire::DocRef;

    /// Runs `f` on a blocking thread and fails the test if it does not
    /// finish in time (a deadlock or a wait on the held document).
    async fn soon<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
        tokio::time::timeout(Duration::from_secs(20), tokio::task::spawn_blocking(f))
            .await
            .unwrap_or_else(|_| panic!("{what} waited for the held document"))
            .expect("the call panicked")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_document_held_long_holds_up_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = NodeConfig::new(dir.path());
        cfg.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        cfg.net.mdns = false;
        cfg.auto_pin = false;
        cfg.disk = crate::disk::Disk::measured_by(
            std::sync::Arc::new(|_: &std::path::Path| Ok(u64::MAX / 2)),
            crate::disk::DEFAULT_MIN_FREE,
        );
        cfg.home.init("Ada").unwrap();
        let node = Node::start(cfg).await.unwrap();
        node.create_workspace("W").await.unwrap();
        let eng = node.dept_create_joined("Eng").await.unwrap();
        node.dept_create_joined("Ops").await.unwrap();
        node.post("Eng", "before", None).await.unwrap();

        // Someone (a sync message for a fresh member, say) holds Eng's feed.
        let (held_tx, held) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let shared = node.shared.clone();
        let feed = DocRef::Feed(eng.id.clone());
        let holder = std::thread::spawn(move || {
            shared.with_doc(&feed, |_| {
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(())
            })
        });
        held.recv().unwrap();

        // Meanwhile the rest of the node answers: the roster, status,
        // another department's feed, a post there, and the network loop.
        let n = node.clone();
        soon("status", move || n.workspace_status().unwrap()).await;
        let n = node.clone();
        soon("the roster", move || n.roster().unwrap()).await;
        node.post("Ops", "still here", None).await.unwrap();
        let n = node.clone();
        let ops = soon("Ops' feed", move || n.feed("Ops", 10, None).unwrap()).await;
        assert_eq!(ops[0].post.body.as_deref(), Some("still here"));
        tokio::time::timeout(Duration::from_secs(20), node.peers())
            .await
            .expect("the network loop waited for the held document");

        // Eng itself waits for the holder, then goes on.
        let n = node.clone();
        let reader = tokio::task::spawn_blocking(move || n.feed("Eng", 10, None));
        release.send(()).unwrap();
        holder.join().unwrap().unwrap();
        let eng_feed = reader.await.unwrap().unwrap();
        assert_eq!(eng_feed[0].post.body.as_deref(), Some("before"));
        node.shutdown().await;
    }
}
