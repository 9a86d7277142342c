//! Fetching a blob from several peers at once.
//!
//! The missing pieces form one queue, in order. Every holder gets up to
//! [`STREAMS_PER_PEER`] streams of the piece protocol
//! ([`crate::net::pieces`]), and each stream asks for one run of up to
//! [`RUN`] consecutive pieces at a time from the front of the queue: the
//! pipe to each holder stays full, a fast holder simply takes more runs, and
//! the pieces arrive roughly in order, so the plaintext can be written
//! behind them ([`super::opening`]). Each piece is verified against the
//! blob's hash before it is written (on a blocking thread). A holder that
//! sends a piece that does not verify, or breaks the protocol, is cut off;
//! what it did not deliver goes back to the front of the queue for the
//! others, as do the pieces of a holder that refuses or disappears. What
//! was written survives a crash: the next `get` resumes with only what is
//! missing. A `watch` hears of every piece on disk; a watched download
//! ends with every piece written, and the watcher's owner syncs the blob
//! into place ([`BlobStore::finish_download`]) when it suits it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use meshwork_blobs::{Arrived, BlobError, BlobHash, BlobStore, ByteBudget, PieceStatus};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use meshwork_crdt::MemberId;

use super::files::Progress;
use super::Node;
use crate::error::Context;
use crate::net::pieces::{Answer, PieceClient, StreamError};
use crate::net::{Command, NetHandle};
use crate::wire::RunRequest;
use crate::NodeError;

/// Where a download reports the pieces on disk: those there before it
/// began, then each one as it is written — with its bytes while the
/// watcher keeps up, within [`WATCH_BUDGET`].
pub(super) type Watch = std::sync::mpsc::Sender<Arrived>;

/// Piece bytes in memory between a download and its watcher, at most.
const WATCH_BUDGET: usize = 32 << 20;

/// Streams per holder, each with one run in flight.
pub const STREAMS_PER_PEER: usize = 4;
/// Runs in flight in all, whatever the number of holders: more only puts
/// more pieces out of order (the plaintext waits for the earliest) and
/// more streams on the same cores.
pub const RUNS_IN_FLIGHT: usize = 6;
/// Pieces per run: 4 MiB.
pub const RUN: u32 = 16;
/// Streams to one holder that may fail in a row (nothing delivered in
/// between) before the holder is given up. A stream can fail without the
/// holder being gone: libp2p-stream drops an inbound stream that arrives
/// while the holder's acceptor has one waiting already (its channel holds
/// one), which a burst of opens can hit.
const BROKEN_STREAMS: u32 = 8;

/// How a run ended.
enum RunEnd {
    /// Every piece of it is written; the stream can take another.
    Done,
    /// The last missing piece of the blob was written.
    Completed,
    /// The holder does not have it, or refused.
    Unavailable(String),
    /// The stream could not be opened, or failed: try another, up to
    /// [`BROKEN_STREAMS`] in a row.
    Broken(String),
    /// The holder sent something that does not verify or breaks the
    /// protocol.
    Bad(String),
    /// This node could not write (disk full, say): stop.
    Fatal(NodeError),
}

/// What every run of one download shares.
struct Fetch {
    what: String,
    hash: BlobHash,
    size: u64,
    pieces: u64,
    workspace: [u8; 32],
    blobs: Arc<BlobStore>,
    done: AtomicU64,
    progress: Option<Progress>,
    watch: Option<Watch>,
    budget: ByteBudget,
}

impl Fetch {
    /// Tells the watcher piece `index` is written, with its bytes if they
    /// fit the budget.
    fn tell_bytes(&self, index: u64, bytes: Vec<u8>) {
        match self.budget.hold(bytes) {
            Ok(held) => self.tell(Arrived::Bytes(index, held)),
            Err(_) => self.tell(Arrived::Piece(index)),
        }
    }

    fn tell(&self, news: Arrived) {
        // A watcher that has gone (its reader failed) stops nothing here:
        // the caller hears why from it.
        if let Some(w) = &self.watch {
            let _ = w.send(news);
        }
    }

    fn report(&self, done: u64) {
        if let Some(p) = &self.progress {
            p(
                (done * meshwork_blobs::PIECE_SIZE).min(self.size),
                self.size,
            );
        }
    }

    /// One run on one stream (opened first if need be), until it ends or
    /// `cut` says the holder was given up. Returns the stream if it can take
    /// another run, and the pieces it did not deliver.
    async fn run(
        &self,
        net: &NetHandle,
        peer: PeerId,
        client: Option<PieceClient>,
        first: u64,
        count: u32,
        cut: CancellationToken,
    ) -> (PeerId, Option<PieceClient>, Vec<u64>, RunEnd) {
        let end = first + u64::from(count);
        let mut at = first;
        // A stream's reads are not woken when libp2p closes its connection
        // (a penalised holder): the download says so instead.
        let outcome = cut
            .run_until_cancelled(self.run_on(net, peer, client, first, count, &mut at))
            .await;
        match outcome {
            Some((client, end_of_run)) => {
                let undelivered = if client.is_some() {
                    Vec::new()
                } else {
                    (at..end).collect()
                };
                (peer, client, undelivered, end_of_run)
            }
            None => (
                peer,
                None,
                (at..end).collect(),
                RunEnd::Unavailable("given up".into()),
            ),
        }
    }

    /// [`run`](Self::run)'s work; `at` follows the next piece it waits for.
    async fn run_on(
        &self,
        net: &NetHandle,
        peer: PeerId,
        client: Option<PieceClient>,
        first: u64,
        count: u32,
        at: &mut u64,
    ) -> (Option<PieceClient>, RunEnd) {
        let end = first + u64::from(count);
        let mut client = match client {
            Some(c) => c,
            None => match net.open_pieces(peer).await {
                Ok(c) => c,
                Err(e) => return (None, RunEnd::Broken(e)),
            },
        };
        let request = RunRequest {
            workspace: self.workspace,
            hash: *self.hash.as_bytes(),
            first,
            count,
        };
        debug!(%peer, first, count, "asking for a run");
        if let Err(e) = client.request(&request).await {
            return (None, broken(e));
        }
        for piece in first..end {
            *at = piece;
            let outcome = match client.next(piece == first).await {
                Ok(Answer::Piece(bytes)) => self.store(piece, bytes).await,
                Ok(Answer::NotHere) => Err(RunEnd::Unavailable("does not have it".into())),
                Ok(Answer::Refused(why)) => Err(RunEnd::Unavailable(why)),
                Err(e) => Err(broken(e)),
            };
            match outcome {
                // Full: every piece is written, and the blob is synced into
                // place by whoever watched, once it has what it needed
                // (`get`: after the plaintext, which then has the disk to
                // itself).
                Ok((PieceStatus::Completed | PieceStatus::Full, data)) => {
                    self.tell_bytes(piece, data);
                    self.tell(Arrived::All);
                    self.report(self.pieces);
                    return (Some(client), RunEnd::Completed);
                }
                Ok((PieceStatus::Stored, data)) => {
                    self.tell_bytes(piece, data);
                    self.report(self.done.fetch_add(1, Ordering::Relaxed) + 1);
                }
                Ok((PieceStatus::Duplicate, _)) => self.tell(Arrived::Piece(piece)),
                Err(end_of_run) => {
                    // After a refusal the stream is still in step; after
                    // anything else it is not to be trusted.
                    return (None, end_of_run);
                }
            }
        }
        (Some(client), RunEnd::Done)
    }

    /// Verifies piece `index` and writes it, on a blocking thread; with
    /// its bytes of the blob if someone watches.
    async fn store(&self, index: u64, bytes: Vec<u8>) -> Result<(PieceStatus, Vec<u8>), RunEnd> {
        let (blobs, hash, size) = (self.blobs.clone(), self.hash, self.size);
        let keep = self.watch.is_some();
        match tokio::task::spawn_blocking(move || {
            if keep {
                blobs.write_piece_data(&hash, size, index, &bytes)
            } else {
                blobs
                    .write_piece(&hash, size, index, &bytes)
                    .map(|status| (status, Vec::new()))
            }
        })
        .await
        {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) if e.is_peer_fault() => Err(RunEnd::Bad(format!(
                "sent piece {index} of {} that does not verify: {e}",
                self.what
            ))),
            Ok(Err(meshwork_blobs::PieceError::Store(e))) => Err(RunEnd::Fatal(e.into())),
            Ok(Err(e)) => Err(RunEnd::Fatal(NodeError::failed("cannot store a piece", e))),
            Err(e) => Err(RunEnd::Fatal(e.into())),
        }
    }
}

/// A stream that failed: gone, or a holder that broke the protocol.
fn broken(e: StreamError) -> RunEnd {
    match e {
        StreamError::Io(e) => RunEnd::Broken(e.to_string()),
        e @ StreamError::Protocol(_) => RunEnd::Bad(e.to_string()),
    }
}

/// Takes the next run off the front of the queue: consecutive pieces, at
/// most [`RUN`].
fn next_run(queue: &mut VecDeque<u64>) -> Option<(u64, u32)> {
    let first = queue.pop_front()?;
    let mut count = 1;
    while count < RUN && queue.front() == Some(&(first + u64::from(count))) {
        queue.pop_front();
        count += 1;
    }
    Some((first, count))
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
        let blobs = self.shared.blobs.clone();
        let missing = {
            let blobs = blobs.clone();
            tokio::task::spawn_blocking(move || -> Result<Vec<u64>, NodeError> {
                blobs
                    .prepare(&hash, size)
                    .context("cannot prepare the blob's file")?;
                Ok(blobs.missing_pieces(&hash)?.unwrap_or_default())
            })
            .await
            .context("a background task failed")??
        };
        let pieces = meshwork_blobs::piece_count(size);
        let fetch = Fetch {
            what: what.to_owned(),
            hash,
            size,
            pieces,
            workspace: self.shared.with_ws(|ws| Ok(ws.meta.id))?,
            blobs,
            done: AtomicU64::new(pieces - missing.len() as u64),
            progress,
            watch,
            budget: ByteBudget::new(WATCH_BUDGET),
        };
        if fetch.watch.is_some() {
            // `missing` is in order: every other piece is here.
            let mut gaps = missing.iter().peekable();
            for i in 0..pieces {
                if gaps.next_if_eq(&&i).is_none() {
                    fetch.tell(Arrived::Piece(i));
                }
            }
        }
        fetch.report(fetch.done.load(Ordering::Relaxed));
        let mut queue: VecDeque<u64> = missing.into();
        let mut providers = self.providers(sources).await;
        providers.retain(|p| *p != self.peer_id());
        let Some(net) = self.net().await else {
            return Err(NodeError::Conflict(
                "this node is not connected to its workspace".into(),
            ));
        };
        // Per holder: its streams waiting for a run, and runs in flight.
        let mut idle: HashMap<PeerId, Vec<PieceClient>> = HashMap::new();
        let mut busy: HashMap<PeerId, usize> = HashMap::new();
        // Streams that failed in a row, per holder.
        let mut failures: HashMap<PeerId, u32> = HashMap::new();
        // Cancelled when a holder is given up: its runs in flight end.
        let mut cut: HashMap<PeerId, CancellationToken> = HashMap::new();
        let mut running = FuturesUnordered::new();
        info!(blob = %what, pieces, missing = queue.len(), providers = providers.len(), "fetching");
        loop {
            // Hand out runs round the holders, each up to its streams:
            // every holder gets a share from the start.
            while let Some(peer) = providers
                .iter()
                .copied()
                .filter(|p| busy.get(p).copied().unwrap_or(0) < STREAMS_PER_PEER)
                .filter(|_| running.len() < RUNS_IN_FLIGHT)
                .min_by_key(|p| busy.get(p).copied().unwrap_or(0))
            {
                let Some((first, count)) = next_run(&mut queue) else {
                    break;
                };
                *busy.entry(peer).or_default() += 1;
                let client = idle.get_mut(&peer).and_then(Vec::pop);
                let token = cut.entry(peer).or_default().clone();
                running.push(fetch.run(&net, peer, client, first, count, token));
            }
            let Some((peer, client, undelivered, end)) = running.next().await else {
                // Nothing in flight and nothing to hand out: another fetch
                // of the same blob may have completed it meanwhile, or
                // every piece is here but the blob was never synced into
                // place (a node stopped after a `get` had its plaintext).
                let blobs = fetch.blobs.clone();
                let complete =
                    tokio::task::spawn_blocking(move || match blobs.finish_download(&hash) {
                        Ok(()) => Ok(true),
                        Err(BlobError::Incomplete { .. } | BlobError::NotFound(_)) => Ok(false),
                        Err(e) => Err(e),
                    })
                    .await
                    .context("a background task failed")??;
                if complete {
                    fetch.tell(Arrived::All);
                    fetch.report(pieces);
                    return Ok(());
                }
                let done = fetch.done.load(Ordering::Relaxed);
                return Err(NodeError::Unreachable(no_provider(
                    what,
                    sources.len(),
                    pieces,
                    done,
                )));
            };
            if let Some(n) = busy.get_mut(&peer) {
                *n = n.saturating_sub(1);
            }
            // Back to the front, in order: the plaintext waits for them.
            for piece in undelivered.into_iter().rev() {
                queue.push_front(piece);
            }
            let providing = providers.contains(&peer);
            let mut give_up = |peer: PeerId| {
                providers.retain(|p| *p != peer);
                idle.remove(&peer);
                if let Some(token) = cut.remove(&peer) {
                    token.cancel();
                }
            };
            match end {
                RunEnd::Done => {
                    failures.remove(&peer);
                    idle.entry(peer).or_default().extend(client);
                }
                RunEnd::Broken(why) => {
                    let failed = failures.entry(peer).or_default();
                    *failed += 1;
                    if *failed >= BROKEN_STREAMS && providing {
                        warn!(%peer, "stops providing {what}: {failed} streams failed in a row, the last: {why}");
                        give_up(peer);
                    }
                }
                RunEnd::Completed => return Ok(()),
                RunEnd::Unavailable(why) => {
                    if providing {
                        warn!(%peer, "stops providing {what}: {why}");
                        give_up(peer);
                    }
                }
                RunEnd::Bad(why) => {
                    give_up(peer);
                    net.send(Command::Penalise(peer, why)).await;
                }
                RunEnd::Fatal(e) => return Err(e),
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_consecutive_pieces_from_the_front() {
        let mut queue: VecDeque<u64> = [0, 1, 2, 5, 6, 9].into_iter().collect();
        assert_eq!(next_run(&mut queue), Some((0, 3)));
        assert_eq!(next_run(&mut queue), Some((5, 2)));
        assert_eq!(next_run(&mut queue), Some((9, 1)));
        assert_eq!(next_run(&mut queue), None);
        let mut long: VecDeque<u64> = (0..40).collect();
        assert_eq!(next_run(&mut long), Some((0, RUN)));
        assert_eq!(long.front(), Some(&u64::from(RUN)));
    }
}
