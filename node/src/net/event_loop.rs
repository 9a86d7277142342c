//! The event loop that owns the swarm: admission, gossip validation, the
//! sync protocol's rounds, and joins.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, mdns, Multiaddr, PeerId, Swarm};
use meshwork_crdt::{Ingest, MemberId};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::behaviour::{Behaviour, BehaviourEvent};
use super::{Command, NetConfig, PeerInfo};
use crate::admission;
use crate::shared::{Shared, Side};
use crate::wire::{GossipChange, JoinRequest, JoinResponse, SyncRequest, SyncResponse};
use crate::NodeError;

/// Most rounds one sync session may take before it is cut off (a peer that
/// keeps sending what we refuse would otherwise loop forever).
const MAX_SYNC_ROUNDS: u32 = 64;

/// A response computed off the loop (after a flush), to be sent by it.
pub(crate) enum PendingResponse {
    Join(ResponseChannel<JoinResponse>, JoinResponse),
}

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
    peer_ids: HashMap<MemberId, Option<PeerId>>,
    /// Whether this node is itself an active member (a joiner is not yet).
    i_am_member: bool,
    /// Connected non-members and when they must be gone.
    probation: HashMap<PeerId, Instant>,
    /// Addresses peers told us they listen on (identify).
    peer_addrs: HashMap<PeerId, Vec<Multiaddr>>,
    /// Sync sessions this node initiated, by peer: rounds so far.
    sessions: HashMap<PeerId, u32>,
    join: Option<PendingJoin>,
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
        let topic = IdentTopic::new(format!("meshwork/{}/roster", hex::encode(workspace)));
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .map_err(|e| NodeError::Internal(format!("cannot subscribe: {e}")))?;
        for addr in &cfg.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NodeError::BadRequest(format!("cannot listen on {addr}: {e}")))?;
        }
        for addr in &cfg.peers {
            dial(&mut swarm, addr.clone());
        }
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
            peer_ids: HashMap::new(),
            i_am_member: false,
            probation: HashMap::new(),
            peer_addrs: HashMap::new(),
            sessions: HashMap::new(),
            join: None,
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
            }
        };
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
                    self.on_connected(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                debug!(%peer_id, "disconnected");
                self.probation.remove(&peer_id);
                self.sessions.remove(&peer_id);
                let _ = self.shared.with_ws(|ws| {
                    ws.sync.remove(&(peer_id, Side::Initiator));
                    ws.sync.remove(&(peer_id, Side::Responder));
                    Ok(())
                });
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
                    } => {
                        let response = self.on_sync_request(peer, request);
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .sync
                            .send_response(channel, response);
                    }
                    request_response::Message::Response { response, .. } => {
                        self.on_sync_response(peer, response)
                    }
                }
            }
            BehaviourEvent::Sync(request_response::Event::OutboundFailure {
                peer, error, ..
            }) => {
                debug!(%peer, "sync request failed: {error}");
                self.sessions.remove(&peer);
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
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                self.peer_addrs.insert(peer_id, info.listen_addrs);
                self.remember(peer_id);
            }
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

    // --- admission ---

    fn on_connected(&mut self, peer: PeerId) {
        if self.members.contains_key(&peer) {
            self.start_sync(peer);
        } else if self.i_am_member {
            self.probation
                .insert(peer, Instant::now() + self.cfg.probation);
        }
        self.try_join();
    }

    /// Re-reads the roster: who is a member, who is blocked.
    fn refresh_members(&mut self) {
        let Ok(roster) = self.shared.roster() else {
            return;
        };
        let me = self.shared.identity.signer.id();
        self.i_am_member = roster.is_active(&me);
        let peer_ids = &mut self.peer_ids;
        let mut peer_of = |id: &MemberId| *peer_ids.entry(*id).or_insert_with(|| peer_id(id));
        self.members = roster
            .active_members()
            .filter_map(|m| Some((peer_of(&m.id)?, m.id)))
            .collect();
        for removed in roster.members.iter().filter(|m| m.removed) {
            if let Some(peer) = peer_of(&removed.id) {
                if self.swarm.behaviour_mut().blocked.block_peer(peer) {
                    info!(member = %removed.name, "removed from the workspace: disconnected and refused");
                }
            }
        }
        let members = &self.members;
        self.probation.retain(|p, _| !members.contains_key(p));
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in connected {
            self.remember(p);
        }
        if self.i_am_member {
            let now = Instant::now() + self.cfg.probation;
            let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
            for p in connected {
                if !self.members.contains_key(&p) {
                    self.probation.entry(p).or_insert(now);
                }
            }
        }
    }

    fn expire_probation(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .probation
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.probation.remove(&peer);
            info!(%peer, "not a member and no valid invite: disconnecting");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    // --- gossip ---

    fn publish(&mut self, data: Vec<u8>) {
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), data)
        {
            Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => debug!("publish: {e}"),
        }
    }

    fn on_gossip(&mut self, source: PeerId, data: &[u8]) -> MessageAcceptance {
        let Some(msg) = GossipChange::decode(data) else {
            warn!(%source, "malformed gossip");
            return MessageAcceptance::Reject;
        };
        if msg.workspace != self.workspace {
            return MessageAcceptance::Reject;
        }
        let report = self
            .shared
            .with_ws(|ws| Ok(ws.roster.ingest(vec![msg.change])));
        let Ok(report) = report else {
            return MessageAcceptance::Ignore;
        };
        let verdict = if !report.rejected.is_empty() {
            warn!(%source, "rejected gossip: {}", report.rejected[0]);
            MessageAcceptance::Reject
        } else if report.missing_deps > 0 {
            self.start_sync(source);
            MessageAcceptance::Ignore
        } else if report.accepted.is_empty() {
            MessageAcceptance::Ignore
        } else {
            MessageAcceptance::Accept
        };
        self.record(report);
        verdict
    }

    fn record(&mut self, report: Ingest) {
        if report.accepted.is_empty() {
            return;
        }
        if let Err(e) = self.shared.record(&self.workspace, &report.accepted) {
            warn!("cannot store changes: {e}");
            return;
        }
        let store = self.shared.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.flush().await {
                warn!("cannot flush: {e}");
            }
        });
        self.refresh_members();
    }

    // --- sync ---

    /// Writes a connected member's listen addresses into the peer book.
    fn remember(&self, peer: PeerId) {
        let (true, Some(addrs)) = (self.members.contains_key(&peer), self.peer_addrs.get(&peer))
        else {
            return;
        };
        let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        if let Err(e) = self.shared.store.set_peer_addrs(&peer.to_bytes(), &addrs) {
            warn!("cannot update the peer book: {e}");
        }
    }

    /// Dials members from the peer book that are not connected: how a node
    /// finds its workspace again after a restart or a partition, with no
    /// `--peer` and no mDNS.
    fn redial_members(&mut self) {
        let book = match self.shared.store.peer_addrs() {
            Ok(book) => book,
            Err(e) => return warn!("cannot read the peer book: {e}"),
        };
        let me = *self.swarm.local_peer_id();
        for (peer, addrs) in book {
            let Ok(peer) = PeerId::from_bytes(&peer) else {
                continue;
            };
            if peer == me || !self.members.contains_key(&peer) || self.swarm.is_connected(&peer) {
                continue;
            }
            let addrs: Vec<Multiaddr> = addrs.iter().filter_map(|a| a.parse().ok()).collect();
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .allocate_new_port()
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(%peer, "cannot redial: {e}");
            }
        }
    }

    fn sync_all(&mut self) {
        let peers: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|p| self.members.contains_key(p))
            .copied()
            .collect();
        for p in peers {
            self.start_sync(p);
        }
    }

    fn start_sync(&mut self, peer: PeerId) {
        if self.sessions.contains_key(&peer) {
            return;
        }
        self.sessions.insert(peer, 0);
        self.send_sync(peer);
    }

    fn send_sync(&mut self, peer: PeerId) {
        let payload = self
            .shared
            .with_ws(|ws| {
                let state = ws.sync.entry((peer, Side::Initiator)).or_default();
                Ok(ws.roster.generate_sync(state))
            })
            .ok()
            .flatten();
        let request = SyncRequest {
            workspace: self.workspace,
            payload,
        };
        self.swarm.behaviour_mut().sync.send_request(&peer, request);
    }

    fn on_sync_request(&mut self, peer: PeerId, request: SyncRequest) -> SyncResponse {
        if request.workspace != self.workspace {
            return SyncResponse::Refused("a different workspace".into());
        }
        if !self.members.contains_key(&peer) {
            return SyncResponse::Refused("not a member of this workspace".into());
        }
        let result = self
            .shared
            .with_ws(|ws| ws.sync_step(peer, Side::Responder, request.payload));
        match result {
            Ok((report, reply)) => {
                self.penalise_if_rejected(peer, &report);
                self.record(report);
                SyncResponse::Sync(reply)
            }
            Err(e) => {
                warn!(%peer, "bad sync message: {e}");
                SyncResponse::Refused("malformed sync message".into())
            }
        }
    }

    fn on_sync_response(&mut self, peer: PeerId, response: SyncResponse) {
        let payload = match response {
            SyncResponse::Sync(p) => p,
            SyncResponse::Refused(why) => {
                debug!(%peer, "sync refused: {why}");
                self.sessions.remove(&peer);
                return;
            }
        };
        let their_silence = payload.is_none();
        let result = self
            .shared
            .with_ws(|ws| ws.sync_step(peer, Side::Initiator, payload));
        let (report, next) = match result {
            Ok(step) => step,
            Err(e) => {
                warn!(%peer, "bad sync message: {e}");
                self.sessions.remove(&peer);
                return;
            }
        };
        let refused = self.penalise_if_rejected(peer, &report);
        self.record(report);
        let rounds = self.sessions.get(&peer).copied().unwrap_or(0) + 1;
        if refused || (next.is_none() && their_silence) || rounds >= MAX_SYNC_ROUNDS {
            self.sessions.remove(&peer);
            return;
        }
        self.sessions.insert(peer, rounds);
        let request = SyncRequest {
            workspace: self.workspace,
            payload: next,
        };
        self.swarm.behaviour_mut().sync.send_request(&peer, request);
    }

    /// A peer that sent refused changes loses its connection; returns
    /// whether it did.
    fn penalise_if_rejected(&mut self, peer: PeerId, report: &Ingest) -> bool {
        if let Some(first) = report.rejected.first() {
            warn!(%peer, "refused {} change(s) from this peer: {first}", report.rejected.len());
            let _ = self.swarm.disconnect_peer_id(peer);
            return true;
        }
        false
    }

    // --- join ---

    fn try_join(&mut self) {
        let Some(join) = &mut self.join else {
            return;
        };
        if join.in_flight.is_some() {
            return;
        }
        let next = self
            .swarm
            .connected_peers()
            .find(|p| !join.asked.contains(p))
            .copied();
        if let Some(peer) = next {
            join.asked.insert(peer);
            let id = self
                .swarm
                .behaviour_mut()
                .join
                .send_request(&peer, join.request.clone());
            join.in_flight = Some(id);
        }
    }

    fn on_join_response(&mut self, peer: PeerId, id: OutboundRequestId, response: JoinResponse) {
        let Some(join) = self.join.take_if(|j| j.in_flight == Some(id)) else {
            return;
        };
        match response {
            JoinResponse::Admitted => {
                info!(%peer, "admitted to the workspace");
                let _ = join.reply.send(Ok(peer));
                self.start_sync(peer);
            }
            JoinResponse::Refused(why) => {
                let _ = join.reply.send(Err(NodeError::Forbidden(why)));
            }
        }
    }

    fn on_join_request(
        &mut self,
        peer: PeerId,
        request: JoinRequest,
        channel: ResponseChannel<JoinResponse>,
    ) {
        let now = self.shared.clock.now();
        let outcome = admission::admit(&self.shared, peer, &request, now);
        let response = match outcome {
            Ok(Some(change)) => {
                info!(%peer, name = %request.name, "admitted a joiner");
                if let Err(e) = self
                    .shared
                    .record(&self.workspace, std::slice::from_ref(&change))
                {
                    warn!("cannot store the admission: {e}");
                    let _ = self.swarm.behaviour_mut().join.send_response(
                        channel,
                        JoinResponse::Refused(
                            "the admitting node could not store the admission; try again".into(),
                        ),
                    );
                    return;
                }
                if let Ok(data) = (GossipChange {
                    workspace: self.workspace,
                    change,
                })
                .encode()
                {
                    self.publish(data);
                }
                self.refresh_members();
                JoinResponse::Admitted
            }
            Ok(None) => JoinResponse::Admitted,
            Err(why) => {
                info!(%peer, "refused a join: {why}");
                JoinResponse::Refused(why)
            }
        };
        // Acknowledge only once the admission is durable.
        let store = self.shared.store.clone();
        let tx = self.commands_tx.clone();
        tokio::spawn(async move {
            let response = match store.flush().await {
                Ok(()) => response,
                Err(e) => JoinResponse::Refused(format!(
                    "the admitting node could not store the admission: {e}"
                )),
            };
            let _ = tx
                .send(Command::Respond(PendingResponse::Join(channel, response)))
                .await;
        });
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

/// The libp2p peer id of a member: the same ed25519 key.
pub(crate) fn peer_id(member: &MemberId) -> Option<PeerId> {
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(member.as_bytes()).ok()?;
    Some(libp2p::identity::PublicKey::from(key).to_peer_id())
}
