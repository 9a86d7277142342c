//! The network: one event loop owns the libp2p swarm; the rest of the node
//! talks to it through a cloneable [`NetHandle`] (commands over a channel,
//! answers over oneshots).

mod behaviour;
mod event_loop;
pub(crate) mod pieces;
mod sessions;
mod sync_work;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use meshwork_crdt::SignedChange;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

pub use behaviour::{BLOB_PROTOCOL, JOIN_PROTOCOL, SYNC_PROTOCOL};
pub(crate) use event_loop::EventLoop;
pub use libp2p::Multiaddr;
pub use pieces::{MAX_RUN, PIECES_PROTOCOL};
pub use transport::network_key;

/// The gossipsub topic on which a workspace's roster changes travel.
pub fn roster_topic(workspace: &[u8; 32]) -> String {
    format!("meshwork/{}/roster", hex::encode(workspace))
}

use crate::shared::Shared;
use crate::wire::{DocRef, GossipChange, JoinRequest};
use crate::NodeError;

/// How often a node pings each connection: how a dead link (a cable pulled,
/// a laptop asleep — no FIN ever arrives, and an idle TCP connection stays
/// ESTABLISHED for good) is noticed. A ping and its answer are a few dozen
/// bytes.
///
/// **The bound.** A peer that stops answering is dropped — its connection
/// closed, so it leaves `peers`, presence counts it absent and its sync
/// sessions end — within `2 × interval + timeout + 10 s` = 26 s at these
/// defaults (23 s at the earliest). libp2p's ping handler keeps the first
/// failed ping to itself and pings again an interval later on a new stream,
/// whose negotiation gives up after libp2p's fixed 10 s: that failure is
/// reported, and the event loop closes the connection on it
/// (`docs/architecture.md`, Network).
pub const PING_INTERVAL: Duration = Duration::from_secs(3);

/// How long a ping may wait for its answer. Long enough for a live but
/// loaded slow link: a ping queues behind what the connection is sending,
/// and a full 4 MB TCP send buffer takes 8 s to drain at 4 Mbit/s. The
/// bound it gives is stated at [`PING_INTERVAL`].
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Networking settings.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start.
    pub peers: Vec<Multiaddr>,
    /// Discover peers on the LAN with mDNS.
    pub mdns: bool,
    /// How long a connected peer that is not a member may stay connected
    /// (time to present an invite).
    pub probation: Duration,
    /// How often to run sync with every connected member.
    pub sync_interval: Duration,
    /// How often to ping each connection ([`PING_INTERVAL`]).
    pub ping_interval: Duration,
    /// How long a ping may wait for its answer ([`PING_TIMEOUT`]).
    pub ping_timeout: Duration,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/0.0.0.0/tcp/0".parse().expect("a valid multiaddr")],
            peers: Vec::new(),
            mdns: true,
            probation: Duration::from_secs(10),
            sync_interval: Duration::from_secs(30),
            ping_interval: PING_INTERVAL,
            ping_timeout: PING_TIMEOUT,
        }
    }
}

/// A connected peer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its member id, when it is an active member.
    pub member_id: Option<String>,
    /// Addresses it told us it listens on.
    pub addrs: Vec<String>,
}

pub(crate) enum Command {
    Dial(Multiaddr),
    Publish(Vec<u8>),
    RosterChanged,
    Push(crate::wire::DocRef),
    SyncAll,
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Join(JoinRequest, oneshot::Sender<Result<PeerId, NodeError>>),
    Respond(event_loop::PendingResponse),
    /// Ask a peer for a piece of a blob; the answer goes to the reply.
    FetchPiece(PeerId, crate::wire::BlobRequest, event_loop::PieceReply),
    /// Cut off a peer that misbehaved.
    Penalise(PeerId, String),
    /// A sync round done off the loop: answer or continue the session.
    Stepped(Box<event_loop::SyncRound>),
    /// A peer was found entitled to a blob, against the roster of the
    /// grants' epoch then (remembered until the roster changes).
    Granted(PeerId, [u8; 32], u64),
    Shutdown(oneshot::Sender<()>),
}

/// What tells the peers of a change this node made: the roster goes by
/// gossip to the whole workspace, any other document by a push to the
/// connected peers that share it.
pub(crate) fn announcement(
    workspace: [u8; 32],
    doc: &DocRef,
    change: SignedChange,
) -> Result<Vec<Command>, NodeError> {
    Ok(match doc {
        DocRef::Roster => vec![
            Command::Publish(GossipChange { workspace, change }.encode()?),
            Command::RosterChanged,
        ],
        _ => vec![Command::Push(doc.clone())],
    })
}

/// The handle to a running network event loop.
#[derive(Clone)]
pub(crate) struct NetHandle {
    tx: mpsc::Sender<Command>,
    /// Opens piece-protocol streams without the event loop.
    streams: libp2p_stream::Control,
}

impl NetHandle {
    /// Builds the swarm for this workspace, starts listening and dialing, and
    /// returns once it listens.
    pub(crate) async fn start(
        shared: Arc<Shared>,
        cfg: NetConfig,
        secret: [u8; 32],
        workspace: [u8; 32],
    ) -> Result<Self, NodeError> {
        let swarm = transport::build_swarm(shared.identity.keypair.clone(), &secret, &cfg)?;
        let streams = swarm.behaviour().stream.new_control();
        let (tx, rx) = mpsc::channel(256);
        let (ready_tx, ready_rx) = oneshot::channel();
        let event_loop = EventLoop::new(swarm, shared, cfg, workspace, rx, tx.clone(), ready_tx)?;
        tokio::spawn(event_loop.run());
        match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
            Ok(Ok(Ok(()))) => Ok(Self { tx, streams }),
            Ok(Ok(Err(e))) => Err(e),
            _ => Err(NodeError::Internal(
                "the network did not start listening".into(),
            )),
        }
    }

    pub(crate) async fn send(&self, cmd: Command) {
        // A closed channel means the loop has stopped: nothing left to do.
        let _ = self.tx.send(cmd).await;
    }

    /// Tells the peers of a change this node made (and persisted).
    pub(crate) async fn announce(
        &self,
        workspace: [u8; 32],
        doc: &DocRef,
        change: SignedChange,
    ) -> Result<(), NodeError> {
        for cmd in announcement(workspace, doc, change)? {
            self.send(cmd).await;
        }
        Ok(())
    }

    /// Asks `peer` for piece `piece` of blob `hash`; the answer comes on
    /// the returned channel (an error if the peer is not connected or the
    /// request fails).
    pub(crate) async fn fetch_piece(
        &self,
        peer: PeerId,
        workspace: [u8; 32],
        hash: &meshwork_blobs::BlobHash,
        piece: u64,
    ) -> oneshot::Receiver<Result<crate::wire::BlobResponse, String>> {
        let (tx, rx) = oneshot::channel();
        let request = crate::wire::BlobRequest {
            workspace,
            hash: *hash.as_bytes(),
            piece,
        };
        self.send(Command::FetchPiece(peer, request, tx)).await;
        rx
    }

    /// Opens a piece-protocol stream to `peer`.
    pub(crate) async fn open_pieces(&self, peer: PeerId) -> Result<pieces::PieceClient, String> {
        pieces::PieceClient::open(&mut self.streams.clone(), peer).await
    }

    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await;
        rx.await
            .map_err(|_| NodeError::Internal("the network has stopped".into()))
    }
}
