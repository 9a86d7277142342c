//! Keeping documents in step: gossip in and out, and sync sessions.

use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::PeerId;
use meshwork_crdt::Ingest;
use tracing::{debug, warn};

use super::{EventLoop, MAX_SYNC_ROUNDS};
use crate::shared::Side;
use crate::wire::{GossipChange, SyncRequest, SyncResponse};

impl EventLoop {
    pub(super) fn publish(&mut self, data: Vec<u8>) {
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

    pub(super) fn on_gossip(&mut self, source: PeerId, data: &[u8]) -> MessageAcceptance {
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

    pub(super) fn record(&mut self, report: Ingest) {
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

    pub(super) fn sync_all(&mut self) {
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

    pub(super) fn start_sync(&mut self, peer: PeerId) {
        if self.sessions.contains_key(&peer) {
            return;
        }
        self.sessions.insert(peer, 0);
        self.send_sync(peer);
    }

    pub(super) fn send_sync(&mut self, peer: PeerId) {
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

    pub(super) fn on_sync_request(&mut self, peer: PeerId, request: SyncRequest) -> SyncResponse {
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

    pub(super) fn on_sync_response(&mut self, peer: PeerId, response: SyncResponse) {
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
    pub(super) fn penalise_if_rejected(&mut self, peer: PeerId, report: &Ingest) -> bool {
        if let Some(first) = report.rejected.first() {
            warn!(%peer, "refused {} change(s) from this peer: {first}", report.rejected.len());
            let _ = self.swarm.disconnect_peer_id(peer);
            return true;
        }
        false
    }
}
