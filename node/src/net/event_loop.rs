//! The event loop that owns the swarm: admission, gossip validation, the
//! sync protocol's rounds, and joins.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, mdns, Multiaddr, PeerId, Swarm};
use meshwork_crdt::MemberId;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::behaviour::{Behaviour, BehaviourEvent};
use super::sessions::Sessions;
use super::{Command, NetConfig, PeerInfo};
use crate::error::Context;
use crate::shared::{NodeEvent, Shared};
use crate::wire::{BlobResponse, DocRef, JoinRequest, JoinResponse};
use crate::NodeError;

mod blobs;
mod first_page;
mod join;
mod liveness;
mod membership;
mod replication;

/// A response computed off the loop (after a flush), to be sent by it.
pub(crate) enum PendingResponse {
    Join(ResponseChannel<JoinResponse>, JoinResponse),
    Blob(ResponseChannel<BlobResponse>, BlobResponse),
    Page(
        ResponseChannel<crate::wire::PageResponse>,
        crate::wire::PageResponse,
    ),
}

pub(crate) use blobs::PieceReply;
pub(crate) use replication::SyncRound;

struct PendingJoin {
    request: JoinRequest,
    reply: oneshot::Sender<Result<PeerId, NodeError>>,
    asked: HashSet<PeerId>,
    in_flight: Option<OutboundRequestId>,
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    shared: Arc<Shared>,
    cfg: NetConfig,
    workspace: [u8; 32],
    topic: IdentTopic,
    commands: mpsc::Receiver<Command>,
    commands_tx: mpsc::Sender<Command>,
    ready: Option<oneshot::Sender<Result<(), NodeError>>>,
    listen_addrs: Vec<Multiaddr>,
    /// Active members, by peer id.
    members: HashMap<PeerId, MemberId>,
    /// Peer ids of every member ever seen: deriving one costs a curve point
    /// decompression, so each is derived once.
    /// Whether this node is itself an active member (a joiner is not yet).
    i_am_member: bool,
    /// This node's own roster says it was removed: it takes part no more.
    i_was_removed: bool,
    /// Removed members' peers: on connecting they may ask for the roster
    /// and are told of their removal, then disconnected (probation).
    removed: HashMap<PeerId, MemberId>,
    /// The documents each connected member shared with this node when last
    /// synced in full: what a roster change adds is synced at once.
    shared_with: HashMap<PeerId, Vec<DocRef>>,
    /// Connected non-members and when they must be gone.
    probation: HashMap<PeerId, Instant>,
    /// Addresses peers told us they listen on (identify).
    peer_addrs: HashMap<PeerId, Vec<Multiaddr>>,
    /// The sync sessions: open ones, reruns, requests in flight, and
    /// whom pushers cover ([`super::sessions`]).
    sessions: Sessions<OutboundRequestId>,
    /// Peers found entitled to a blob, until the roster changes.
    blob_grants: HashSet<(PeerId, [u8; 32])>,
    /// Bumped whenever the grants are cleared: a grant decided off the loop
    /// against an older roster is not remembered.
    grants_epoch: u64,
    /// Downloads waiting for the answer to a piece request.
    piece_replies: HashMap<OutboundRequestId, PieceReply>,
    join: Option<PendingJoin>,
    /// Where asking for each feed's first page stands ([`first_page`]).
    paged: HashMap<DocRef, first_page::Paging>,
    /// First pages asked for and not answered yet.
    pages: HashMap<OutboundRequestId, DocRef>,
    /// Flushes and deferred answers in progress; awaited before shutdown so
    /// that nothing holds the store when the node says it has stopped.
    background: tokio::task::JoinSet<()>,
    /// The piece protocol's server ([`super::pieces::serve`]): stopped, and
    /// its streams with it, at shutdown.
    piece_server: tokio::task::JoinHandle<()>,
}

impl EventLoop {
    pub(crate) fn new(
        mut swarm: Swarm<Behaviour>,
        shared: Arc<Shared>,
        cfg: NetConfig,
        workspace: [u8; 32],
        commands: mpsc::Receiver<Command>,
        commands_tx: mpsc::Sender<Command>,
        ready: oneshot::Sender<Result<(), NodeError>>,
    ) -> Result<Self, NodeError> {
        let topic = IdentTopic::new(super::roster_topic(&workspace));
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .context("cannot subscribe")?;
        for addr in &cfg.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NodeError::BadRequest(format!("cannot listen on {addr}: {e}")))?;
        }
        for addr in &cfg.peers {
            dial(&mut swarm, addr.clone());
        }
        let incoming = swarm
            .behaviour()
            .stream
            .new_control()
            .accept(super::pieces::protocol())
            .map_err(|_| NodeError::Internal("the piece protocol is served twice".into()))?;
        let piece_server = tokio::spawn(super::pieces::serve(incoming, shared.clone(), workspace));
        let mut this = Self {
            swarm,
            shared,
            cfg,
            workspace,
            topic,
            commands,
            commands_tx,
            ready: Some(ready),
            listen_addrs: Vec::new(),
            members: HashMap::new(),
            i_am_member: false,
            i_was_removed: false,
            removed: HashMap::new(),
            shared_with: HashMap::new(),
            probation: HashMap::new(),
            peer_addrs: HashMap::new(),
            sessions: Sessions::default(),
            blob_grants: HashSet::new(),
            grants_epoch: 0,
            piece_replies: HashMap::new(),
            join: None,
            paged: HashMap::new(),
            pages: HashMap::new(),
            background: tokio::task::JoinSet::new(),
            piece_server,
        };
        this.refresh_members();
        Ok(this)
    }

    pub(crate) async fn run(mut self) {
        let mut admission_tick = tokio::time::interval(Duration::from_millis(200));
        let mut sync_tick = tokio::time::interval(self.cfg.sync_interval);
        let done = loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown(done)) => break Some(done),
                    Some(cmd) => self.on_command(cmd),
                    None => break None,
                },
                _ = admission_tick.tick() => self.expire_probation(),
                _ = sync_tick.tick() => {
                    self.redial_members();
                    self.sync_all();
                }
                Some(_) = self.background.join_next(), if !self.background.is_empty() => {}
            }
        };
        // Nothing will read commands any more: background work that answers
        // through them (blob pieces, joins) must not wait for room.
        self.commands.close();
        self.piece_server.abort();
        let _ = (&mut self.piece_server).await;
        while self.background.join_next().await.is_some() {}
        // Release the swarm (its sockets) and the shared state before saying
        // we are done, so a restart on the same home finds them free.
        drop(self);
        info!("network stopped");
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial(addr) => dial(&mut self.swarm, addr),
            Command::Publish(data) => self.publish(data),
            Command::RosterChanged => self.refresh_members(),
            Command::Push(doc) => self.push(doc),
            Command::SyncAll => self.sync_all(),
            Command::Peers(reply) => {
                let _ = reply.send(self.peers());
            }
            Command::ListenAddrs(reply) => {
                let _ = reply.send(self.listen_addrs.clone());
            }
            Command::Join(request, reply) => {
                self.join = Some(PendingJoin {
                    request,
                    reply,
                    asked: HashSet::new(),
                    in_flight: None,
                });
                self.try_join();
            }
            Command::FetchPiece(peer, request, reply) => self.fetch_piece(peer, request, reply),
            Command::Penalise(peer, why) => self.penalise(peer, why),
            Command::Stepped(round) => self.on_round(*round),
            Command::Granted(peer, hash, epoch) => self.granted(peer, hash, epoch),
            Command::Respond(PendingResponse::Blob(channel, response)) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .blob
                    .send_response(channel, response);
            }
            Command::Respond(PendingResponse::Page(channel, response)) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .page
                    .send_response(channel, response);
            }
            Command::Respond(PendingResponse::Join(channel, response)) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .join
                    .send_response(channel, response);
            }
            Command::Shutdown(_) => {}
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.listen_addrs.push(address);
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } => {
                debug!(%peer_id, "connected");
                if num_established.get() == 1 {
                    self.shared.saw(peer_id, true);
                    self.shared.emit(NodeEvent::PeerConnected {
                        peer_id: peer_id.to_string(),
                    });
                    self.on_connected(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                debug!(%peer_id, "disconnected");
                self.shared.saw(peer_id, false);
                self.shared.emit(NodeEvent::PeerDisconnected {
                    peer_id: peer_id.to_string(),
                });
                self.probation.remove(&peer_id);
                self.sessions.peer_gone(peer_id);
                self.shared_with.remove(&peer_id);
                // Document locks may be held for a while: not on the loop.
                let shared = self.shared.clone();
                self.background
                    .spawn_blocking(move || shared.forget_peer(&peer_id));
                if let Some(join) = &mut self.join {
                    if join.in_flight.is_some() && join.asked.contains(&peer_id) {
                        join.in_flight = None;
                        self.try_join();
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                debug!(?peer_id, "dial failed: {error}");
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let verdict = self.on_gossip(propagation_source, &message.data);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, verdict);
            }
            BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => self.on_sync_request(peer, request, channel),
                    request_response::Message::Response {
                        response,
                        request_id,
                    } => self.on_sync_response(peer, request_id, response),
                }
            }
            BehaviourEvent::Sync(request_response::Event::OutboundFailure {
                peer,
                error,
                request_id,
                ..
            }) => {
                debug!(%peer, "sync request failed: {error}");
                self.on_sync_failure(peer, request_id);
            }
            BehaviourEvent::Join(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => self.on_join_request(peer, request, channel),
                    request_response::Message::Response {
                        response,
                        request_id,
                    } => self.on_join_response(peer, request_id, response),
                }
            }
            BehaviourEvent::Join(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
                debug!(%peer, "join request failed: {error}");
                if let Some(join) = &mut self.join {
                    if join.in_flight == Some(request_id) {
                        join.in_flight = None;
                        self.try_join();
                    }
                }
            }
            BehaviourEvent::Blob(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => self.on_blob_request(peer, request, channel),
                    request_response::Message::Response {
                        response,
                        request_id,
                    } => self.on_piece(request_id, Ok(response)),
                }
            }
            BehaviourEvent::Blob(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            }) => self.on_piece(request_id, Err(error.to_string())),
            BehaviourEvent::Page(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => self.on_page_request(peer, request, channel),
                    request_response::Message::Response {
                        response,
                        request_id,
                    } => self.on_page_response(peer, request_id, response),
                }
            }
            BehaviourEvent::Page(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
                debug!(%peer, "first page request failed: {error}");
                self.on_page_failure(request_id);
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.peer_addrs.insert(peer_id, info.listen_addrs);
                self.remember(peer_id);
            }
            BehaviourEvent::Ping(event) => self.on_ping(event),
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if !self.swarm.is_connected(&peer) {
                        debug!(%peer, %addr, "found on the LAN");
                        dial(&mut self.swarm, addr);
                    }
                }
            }
            _ => {}
        }
    }

    fn peers(&self) -> Vec<PeerInfo> {
        let mut out: Vec<PeerInfo> = self
            .swarm
            .connected_peers()
            .map(|p| PeerInfo {
                peer_id: p.to_string(),
                member_id: self.members.get(p).map(|m| m.to_string()),
                addrs: self
                    .peer_addrs
                    .get(p)
                    .map(|a| a.iter().map(|a| a.to_string()).collect())
                    .unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        out
    }
}

/// Dials from a fresh port. libp2p reuses the listening port by default, so
/// two nodes that discover each other at the same instant (mDNS) would make
/// a TCP simultaneous open — one connection, both sides initiators — and
/// both handshakes fail.
fn dial(swarm: &mut Swarm<Behaviour>, addr: Multiaddr) {
    let opts = DialOpts::unknown_peer_id()
        .address(addr.clone())
        .allocate_new_port()
        .build();
    if let Err(e) = swarm.dial(opts) {
        warn!(%addr, "cannot dial: {e}");
    }
}
