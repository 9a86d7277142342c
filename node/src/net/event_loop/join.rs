//! Joins: presenting an invite (joiner) and admitting (member).

use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use tracing::{info, warn};

use super::{Command, EventLoop, PendingResponse};
use crate::admission;
use crate::wire::{DocRef, GossipChange, JoinRequest, JoinResponse};
use crate::NodeError;

impl EventLoop {
    pub(super) fn try_join(&mut self) {
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

    pub(super) fn on_join_response(
        &mut self,
        peer: PeerId,
        id: OutboundRequestId,
        response: JoinResponse,
    ) {
        let Some(join) = self.join.take_if(|j| j.in_flight == Some(id)) else {
            return;
        };
        match response {
            JoinResponse::Admitted => {
                info!(%peer, "admitted to the workspace");
                let _ = join.reply.send(Ok(peer));
                self.start_sync(peer, DocRef::Roster);
            }
            JoinResponse::Refused(why) => {
                let _ = join.reply.send(Err(NodeError::Forbidden(why)));
            }
        }
    }

    pub(super) fn on_join_request(
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
                if let Err(e) = self.shared.record(
                    &self.workspace,
                    &DocRef::Roster,
                    std::slice::from_ref(&change),
                ) {
                    warn!("cannot store the admission: {e}");
                    let _ = self.swarm.behaviour_mut().join.send_response(
                        channel,
                        JoinResponse::Refused(
                            "the admitting node could not store the admission; try again".into(),
                        ),
                    );
                    return;
                }
                self.refresh_members();
                let gossip = GossipChange {
                    workspace: self.workspace,
                    change,
                }
                .encode()
                .ok();
                (JoinResponse::Admitted, gossip)
            }
            Ok(None) => (JoinResponse::Admitted, None),
            Err(why) => {
                info!(%peer, "refused a join: {why}");
                (JoinResponse::Refused(why), None)
            }
        };
        // Announce and acknowledge only once the admission is durable:
        // record, flush, then tell others (as every local change does).
        let (response, gossip) = response;
        let store = self.shared.store.clone();
        let tx = self.commands_tx.clone();
        self.background.spawn(async move {
            let response = match store.flush().await {
                Ok(()) => {
                    if let Some(data) = gossip {
                        let _ = tx.send(Command::Publish(data)).await;
                    }
                    response
                }
                Err(e) => JoinResponse::Refused(format!(
                    "the admitting node could not store the admission: {e}"
                )),
            };
            let _ = tx
                .send(Command::Respond(PendingResponse::Join(channel, response)))
                .await;
        });
    }
}
