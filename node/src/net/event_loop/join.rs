//! Joins: presenting an invite (joiner) and admitting (member).

use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use tracing::{info, warn};

use super::{Command, EventLoop, PendingResponse};
use crate::admission;
use crate::net::announcement;
use crate::shared::Shared;
use crate::wire::{DocRef, JoinRequest, JoinResponse};
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

    /// Judges a join off the loop: checks the invite, writes the admission,
    /// makes it durable, gossips it, and only then answers the joiner.
    pub(super) fn on_join_request(
        &mut self,
        peer: PeerId,
        request: JoinRequest,
        channel: ResponseChannel<JoinResponse>,
    ) {
        let shared = self.shared.clone();
        let (workspace, tx) = (self.workspace, self.commands_tx.clone());
        self.background.spawn(async move {
            let response = match admit(&shared, workspace, peer, &request).await {
                Ok(commands) => {
                    for cmd in commands {
                        let _ = tx.send(cmd).await;
                    }
                    JoinResponse::Admitted
                }
                Err(why) => JoinResponse::Refused(why),
            };
            let _ = tx
                .send(Command::Respond(PendingResponse::Join(channel, response)))
                .await;
        });
    }
}

/// Admits `peer` if its invite holds, and persists the admission. Returns
/// what announces it (nothing if `peer` was already a member), or the
/// reason the joiner reads.
async fn admit(
    shared: &Shared,
    workspace: [u8; 32],
    peer: PeerId,
    request: &JoinRequest,
) -> Result<Vec<Command>, String> {
    let now = shared.clock.now();
    let Some(change) = admission::admit(shared, peer, request, now).inspect_err(|why| {
        info!(%peer, "refused a join: {why}");
    })?
    else {
        return Ok(Vec::new());
    };
    info!(%peer, name = %request.name, "admitted a joiner");
    let stored = shared.persist(&workspace, &DocRef::Roster, &change).await;
    let announce = stored.and_then(|()| announcement(workspace, &DocRef::Roster, change));
    announce.map_err(|e| {
        warn!("cannot store the admission: {e}");
        format!("the admitting node could not store the admission ({e}); try again")
    })
}
