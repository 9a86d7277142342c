//! Fetching a blob from several peers at once.
//!
//! The missing pieces form one queue; every provider has up to
//! [`PER_PEER`] requests in flight, so the pipe to each never waits on a
//! round trip, and a fast peer simply takes more of the queue. Each piece is
//! verified against the blob's hash before it is written (on a blocking
//! thread); a peer that sends one that does not verify is cut off and its
//! piece goes back in the queue for the others, as do the pieces of a peer
//! that disappears. What was written survives a crash: the next `get`
//! resumes with only what is missing. A `watch` hears of every piece on
//! disk, so that the plaintext can be written as the blob grows
//! ([`super::opening`]).

use std::collections::{HashMap, VecDeque};

use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use meshwork_blobs::{Arrived, BlobHash, PieceError, PieceStatus};
use tokio::sync::oneshot;
use tracing::{info, warn};

use meshwork_crdt::MemberId;

use super::files::Progress;
use super::Node;
use crate::net::Command;
use crate::wire::BlobResponse;
use crate::NodeError;

/// Where a download reports the pieces on disk: those there before it
/// began, then each one as it is written.
pub(super) type Watch = std::sync::mpsc::Sender<Arrived>;

/// Requests in flight per provider.
pub const PER_PEER: usize = 16;

/// What became of one piece request.
enum Outcome {
    /// Written (and, if it was the last one, the blob is complete).
    Stored(PieceStatus),
    /// The peer does not have it, refused, or went away.
    Unavailable(String),
    /// The peer sent something that does not verify.
    Bad(PieceError),
    /// This node could not write it (disk full, say): stop.
    Fatal(NodeError),
}

impl Node {
    /// Fetches blob `hash` of `size` bytes from whichever of `sources` are
    /// connected; `what` names it in logs and errors. `watch` hears of every
    /// piece on disk.
    pub(super) async fn download(
        &self,
        what: &str,
        hash: BlobHash,
        size: u64,
        sources: &[MemberId],
        progress: Option<Progress>,
        watch: Option<Watch>,
    ) -> Result<(), NodeError> {
        // A watcher that has gone (its reader failed) stops nothing here:
        // the caller hears why from it.
        let tell = |news: Arrived| {
            if let Some(w) = &watch {
                let _ = w.send(news);
            }
        };
        let blobs = self.shared.blobs.clone();
        let missing = {
            let blobs = blobs.clone();
            tokio::task::spawn_blocking(move || -> Result<Vec<u64>, NodeError> {
                blobs
                    .prepare(&hash, size)
                    .map_err(|e| NodeError::Internal(e.to_string()))?;
                Ok(blobs.missing_pieces(&hash)?.unwrap_or_default())
            })
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))??
        };
        let pieces = meshwork_blobs::piece_count(size);
        let mut done = pieces - missing.len() as u64;
        if watch.is_some() {
            // `missing` is in order: every other piece is here.
            let mut gaps = missing.iter().peekable();
            for i in 0..pieces {
                if gaps.next_if_eq(&&i).is_none() {
                    tell(Arrived::Piece(i));
                }
            }
        }
        let report = |done: u64| {
            if let Some(p) = &progress {
                p((done * meshwork_blobs::PIECE_SIZE).min(size), size);
            }
        };
        report(done);
        let mut queue: VecDeque<u64> = missing.into();
        let mut providers = self.providers(sources).await;
        providers.retain(|p| *p != self.peer_id());
        let Some(net) = self.net().await else {
            return Err(NodeError::Conflict(
                "this node is not connected to its workspace".into(),
            ));
        };
        let mut load: HashMap<PeerId, usize> = providers.iter().map(|p| (*p, 0)).collect();
        let mut running = FuturesUnordered::new();
        let workspace = self.shared.with_ws(|ws| Ok(ws.meta.id))?;
        info!(blob = %what, pieces, missing = queue.len(), providers = providers.len(), "fetching");
        loop {
            // Hand out work a piece at a time round the providers, each up
            // to PER_PEER requests: every holder gets a share from the start.
            while let Some(peer) = providers
                .iter()
                .copied()
                .filter(|p| load.get(p).copied().unwrap_or(0) < PER_PEER)
                .min_by_key(|p| load.get(p).copied().unwrap_or(0))
            {
                let Some(piece) = queue.pop_front() else {
                    break;
                };
                *load.entry(peer).or_default() += 1;
                let rx = net.fetch_piece(peer, workspace, &hash, piece).await;
                running.push(fetch(rx, blobs.clone(), hash, size, peer, piece));
            }
            let Some((peer, piece, outcome)) = running.next().await else {
                // Nothing in flight and nothing to hand out: another fetch
                // of the same blob may have completed it meanwhile.
                let blobs = blobs.clone();
                let complete = tokio::task::spawn_blocking(move || blobs.has(&hash))
                    .await
                    .map_err(|e| NodeError::Internal(e.to_string()))??;
                if complete {
                    tell(Arrived::All);
                    report(pieces);
                    return Ok(());
                }
                return Err(NodeError::Unreachable(no_provider(
                    what,
                    sources.len(),
                    pieces,
                    done,
                )));
            };
            if let Some(n) = load.get_mut(&peer) {
                *n = n.saturating_sub(1);
            }
            match outcome {
                Outcome::Stored(PieceStatus::Completed) => {
                    tell(Arrived::All);
                    report(pieces);
                    return Ok(());
                }
                Outcome::Stored(PieceStatus::Stored) => {
                    tell(Arrived::Piece(piece));
                    done += 1;
                    report(done);
                }
                Outcome::Stored(PieceStatus::Duplicate) => tell(Arrived::Piece(piece)),
                Outcome::Unavailable(why) => {
                    queue.push_back(piece);
                    if providers.contains(&peer) {
                        warn!(%peer, "stops providing {what}: {why}");
                        providers.retain(|p| *p != peer);
                    }
                }
                Outcome::Bad(e) => {
                    queue.push_back(piece);
                    providers.retain(|p| *p != peer);
                    net.send(Command::Penalise(
                        peer,
                        format!("sent piece {piece} of {what} that does not verify: {e}"),
                    ))
                    .await;
                }
                Outcome::Fatal(e) => return Err(e),
            }
        }
    }
}

/// Waits for one piece and writes it if it verifies.
async fn fetch(
    rx: oneshot::Receiver<Result<BlobResponse, String>>,
    blobs: std::sync::Arc<meshwork_blobs::BlobStore>,
    hash: BlobHash,
    size: u64,
    peer: PeerId,
    piece: u64,
) -> (PeerId, u64, Outcome) {
    let outcome = match rx.await {
        Ok(Ok(BlobResponse::Piece(bytes))) => {
            match tokio::task::spawn_blocking(move || blobs.write_piece(&hash, size, piece, &bytes))
                .await
            {
                Ok(Ok(status)) => Outcome::Stored(status),
                Ok(Err(e)) if e.is_peer_fault() => Outcome::Bad(e),
                Ok(Err(e)) => Outcome::Fatal(NodeError::Internal(e.to_string())),
                Err(e) => Outcome::Fatal(NodeError::Internal(e.to_string())),
            }
        }
        Ok(Ok(BlobResponse::NotHere)) => Outcome::Unavailable("does not have it".into()),
        Ok(Ok(BlobResponse::Refused(why))) => Outcome::Unavailable(why),
        Ok(Err(e)) => Outcome::Unavailable(e),
        Err(_) => Outcome::Unavailable("the network stopped".into()),
    };
    (peer, piece, outcome)
}

fn no_provider(what: &str, sources: usize, pieces: u64, done: u64) -> String {
    let got = if done > 0 {
        format!(" ({done} of {pieces} pieces are here: run `meshwork get` again to resume)")
    } else {
        String::new()
    };
    format!(
        "no reachable peer has {what}: none of the {sources} member(s) who hold it is connected{got}"
    )
}
