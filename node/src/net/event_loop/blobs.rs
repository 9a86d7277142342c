//! The one-piece blob protocol (`/meshwork/blob/1`): serving single pieces
//! to the members entitled to them, and asking peers for single pieces on
//! behalf of an audit. Downloads use the piece protocol
//! ([`crate::net::pieces`]), which shares this one's entitlement rule.
//!
//! A blob is served to a peer only if a library of a department both belong
//! to lists it, or if the pin ledger requests it and the peer is a pinner or
//! a member of the request's department (how a pin node, which sees no
//! library, gets blobs and serves them back). That decision and reading a
//! piece from disk happen on a blocking thread, never on this loop; so does
//! everything a download does with what comes back.

use libp2p::request_response::{OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use meshwork_blobs::{BlobError, BlobHash};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::{EventLoop, PendingResponse};
use crate::net::Command;
use crate::wire::{BlobRequest, BlobResponse};

/// What a download is told about one request.
pub(crate) type PieceReply = oneshot::Sender<Result<BlobResponse, String>>;

/// The most blob grants remembered. A grant saves one entitlement check (a
/// read of the ledger's days and a library); forgetting them all costs one
/// check per peer and blob served next.
const MAX_GRANTS: usize = 16_384;

impl EventLoop {
    /// A piece asked for by `peer`: whether it may have it is decided off
    /// the loop (it reads the ledger and libraries, under their own locks),
    /// then the piece is read off the loop too.
    pub(super) fn on_blob_request(
        &mut self,
        peer: PeerId,
        request: BlobRequest,
        channel: ResponseChannel<BlobResponse>,
    ) {
        if request.workspace != self.workspace {
            let refused = BlobResponse::Refused("a different workspace".into());
            let _ = self
                .swarm
                .behaviour_mut()
                .blob
                .send_response(channel, refused);
            return;
        }
        let granted = self.blob_grants.contains(&(peer, request.hash));
        let epoch = self.grants_epoch;
        let them = self.members.get(&peer).copied();
        let shared = self.shared.clone();
        let tx = self.commands_tx.clone();
        let hash = BlobHash::from_bytes(request.hash);
        self.background.spawn(async move {
            let serve = move || {
                let allowed = granted
                    || them.is_some_and(|m| {
                        crate::net::pieces::may_have_blob(&shared, &m, &request.hash)
                    });
                allowed.then(|| (!granted, shared.blobs.read_piece(&hash, request.piece)))
            };
            let response = match tokio::task::spawn_blocking(serve).await {
                Ok(None) => BlobResponse::Refused(
                    "that blob is neither in a library you share with this node nor pinned for you"
                        .into(),
                ),
                Ok(Some((newly, piece))) => {
                    if newly {
                        let _ = tx.send(Command::Granted(peer, request.hash, epoch)).await;
                    }
                    piece_response(peer, piece)
                }
                Err(_) => BlobResponse::Refused("this node is stopping".into()),
            };
            let _ = tx
                .send(Command::Respond(PendingResponse::Blob(channel, response)))
                .await;
        });
    }

    /// Remembers that `peer` may have blob `hash`, until the roster
    /// changes — unless it changed while the grant was being decided. Past
    /// [`MAX_GRANTS`] the grants are forgotten together: a node serving for
    /// a year would otherwise keep one per peer and blob it ever served.
    pub(super) fn granted(&mut self, peer: PeerId, hash: [u8; 32], epoch: u64) {
        if epoch != self.grants_epoch {
            return;
        }
        if self.blob_grants.len() >= MAX_GRANTS {
            self.blob_grants.clear();
        }
        self.blob_grants.insert((peer, hash));
    }

    pub(super) fn fetch_piece(&mut self, peer: PeerId, request: BlobRequest, reply: PieceReply) {
        if !self.swarm.is_connected(&peer) {
            let _ = reply.send(Err("not connected".into()));
            return;
        }
        let id = self.swarm.behaviour_mut().blob.send_request(&peer, request);
        self.piece_replies.insert(id, reply);
    }

    pub(super) fn on_piece(&mut self, id: OutboundRequestId, result: Result<BlobResponse, String>) {
        if let Some(reply) = self.piece_replies.remove(&id) {
            let _ = reply.send(result);
        }
    }

    /// A peer that sent a piece that does not verify loses its connection.
    pub(super) fn penalise(&mut self, peer: PeerId, why: String) {
        warn!(%peer, "penalised: {why}");
        let _ = self.swarm.disconnect_peer_id(peer);
    }
}

/// What a piece read tells the asker.
fn piece_response(
    peer: PeerId,
    piece: Result<meshwork_blobs::EncodedPiece, BlobError>,
) -> BlobResponse {
    match piece {
        Ok(p) => BlobResponse::Piece(p.into_bytes()),
        // Not here, or not here intact (auditors count on this).
        Err(
            e
            @ (BlobError::NotFound(_) | BlobError::NoSuchPiece { .. } | BlobError::Corrupt { .. }),
        ) => {
            debug!(%peer, "cannot serve a piece: {e}");
            BlobResponse::NotHere
        }
        // A disk that cannot be read just now is no proof either way.
        Err(e) => {
            warn!(%peer, "cannot read a piece to serve: {e}");
            BlobResponse::Refused("this node cannot read that blob just now".into())
        }
    }
}
