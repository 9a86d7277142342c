//! The piece protocol: long runs of a blob's pieces on a few streams per
//! peer, outside the event loop.
//!
//! A fetcher opens a stream (`/meshwork/blob/2`, through `libp2p-stream`)
//! and writes a [`RunRequest`] — up to [`MAX_RUN`] consecutive pieces — as a
//! 2-byte length and its postcard bytes; the holder answers with one frame
//! per piece, in order, and then waits for the next request on the same
//! stream. A frame is a tag byte:
//!
//! - `0` piece: a 4-byte length, then the encoded piece (its bytes and the
//!   hash pairs that prove them, at most
//!   [`MAX_ENCODED_PIECE_LEN`](meshwork_blobs::MAX_ENCODED_PIECE_LEN));
//! - `1` not here: the holder lacks that piece (or holds it corrupt); the run
//!   ends there;
//! - `2` refused: a 2-byte length and a reason; the run ends there.
//!
//! Compared with one request-response per piece through the event loop
//! (`/meshwork/blob/1`, which audits still use), this costs no stream
//! negotiation, CBOR copy or event-loop turn per piece, and lets the holder
//! read the next piece from disk while the current one is being sent. The
//! fetcher's side is [`PieceClient`]; the scheduling of runs over holders
//! and streams is the download's (`node::download`).
//!
//! Every length is checked against its limit before anything is allocated;
//! what breaks the framing is a protocol error, and the stream is dropped.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use meshwork_blobs::{BlobError, BlobHash, MAX_ENCODED_PIECE_LEN};
use meshwork_crdt::library::Library;
use meshwork_crdt::pins::{PinRequest, Pins};
use meshwork_crdt::roster::Role;
use meshwork_crdt::MemberId;
use tracing::{debug, warn};

use crate::shared::Shared;
use crate::wire::{DocRef, RunRequest};
use crate::NodeError;

/// The protocol name.
pub const PIECES_PROTOCOL: &str = "/meshwork/blob/2";
/// Pieces one request may ask for: 16 MiB.
pub const MAX_RUN: u32 = 64;
/// A request's encoded size is far below this.
const MAX_REQUEST: usize = 256;
/// A refusal's reason is cut to this.
const MAX_REASON: usize = 1024;
/// Streams served at once to one peer: past it a new stream from that peer
/// is closed at once (its download carries on with the streams it has, or
/// with other holders). Four downloads' worth; the bound on what one
/// hostile member can make this node hold open.
const MAX_STREAMS_PER_PEER: usize = 16;
/// A stream with no request for this long is closed (a download keeps its
/// streams busy; one that ended closes them), and a holder that sends
/// nothing for this long is given up. Long enough for a run queued behind
/// three others on a slow link (64 pieces at 4 Mbit/s: 34 s).
const IDLE: std::time::Duration = std::time::Duration::from_secs(60);
/// How long a run's first answer may take. A holder answers a request at
/// once, behind at most the other runs on the same connection; a request
/// unanswered this long is retried on a new stream. The backstop for a
/// stream whose connection closed under it: its pending read is not always
/// woken (seen after a penalised holder's disconnection, which the download
/// now handles itself by cancelling that holder's runs).
const FIRST_ANSWER: std::time::Duration = std::time::Duration::from_secs(15);

const PIECE: u8 = 0;
const NOT_HERE: u8 = 1;
const REFUSED: u8 = 2;

/// The piece protocol's name as libp2p wants it.
pub(crate) fn protocol() -> StreamProtocol {
    StreamProtocol::new(PIECES_PROTOCOL)
}

/// What a holder answered for one piece.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The encoded piece, to verify against the blob's hash before use.
    Piece(Vec<u8>),
    /// The holder does not have it.
    NotHere,
    /// The holder will not serve it; why.
    Refused(String),
}

/// Why a stream could not go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    /// The connection or stream failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The other side broke the protocol.
    #[error("broke the piece protocol: {0}")]
    Protocol(&'static str),
}

/// The fetching end of one stream to one holder.
pub(crate) struct PieceClient {
    stream: libp2p::Stream,
}

impl PieceClient {
    /// Opens a stream to `peer`.
    pub(crate) async fn open(
        control: &mut libp2p_stream::Control,
        peer: PeerId,
    ) -> Result<Self, String> {
        let stream = control
            .open_stream(peer, protocol())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self { stream })
    }

    /// Asks for a run; read its answers with [`next`](Self::next).
    pub(crate) async fn request(&mut self, run: &RunRequest) -> Result<(), StreamError> {
        let bytes = postcard::to_stdvec(run).map_err(|_| StreamError::Protocol("encoding"))?;
        let mut frame = Vec::with_capacity(2 + bytes.len());
        frame.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        frame.extend_from_slice(&bytes);
        self.stream.write_all(&frame).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// The answer for the run's next piece. A holder that sends nothing
    /// for [`IDLE`] has gone, as far as this download is concerned; for the
    /// first answer of a run (`first`), [`FIRST_ANSWER`] is enough.
    pub(crate) async fn next(&mut self, first: bool) -> Result<Answer, StreamError> {
        let wait = if first { FIRST_ANSWER } else { IDLE };
        match tokio::time::timeout(wait, read_answer(&mut self.stream)).await {
            Ok(answer) => answer,
            Err(_) => Err(StreamError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("sent nothing for {wait:?}"),
            ))),
        }
    }
}

/// Reads one answer frame, checking its lengths first.
async fn read_answer(
    stream: &mut (impl futures::AsyncRead + Unpin),
) -> Result<Answer, StreamError> {
    let mut tag = [0u8; 1];
    stream.read_exact(&mut tag).await?;
    match tag[0] {
        PIECE => {
            let mut len = [0u8; 4];
            stream.read_exact(&mut len).await?;
            let len = u64::from(u32::from_le_bytes(len));
            let piece = read_at_most(
                stream,
                len,
                MAX_ENCODED_PIECE_LEN,
                "a piece longer than any piece",
            )
            .await?;
            Ok(Answer::Piece(piece))
        }
        NOT_HERE => Ok(Answer::NotHere),
        REFUSED => {
            let mut len = [0u8; 2];
            stream.read_exact(&mut len).await?;
            let len = u64::from(u16::from_le_bytes(len));
            let reason = read_at_most(
                stream,
                len,
                MAX_REASON as u64,
                "a refusal longer than any reason",
            )
            .await?;
            Ok(Answer::Refused(
                String::from_utf8_lossy(&reason).into_owned(),
            ))
        }
        _ => Err(StreamError::Protocol("an unknown frame")),
    }
}

/// Reads the `len` bytes a frame announced, refusing (before allocating)
/// more than `max`.
async fn read_at_most(
    stream: &mut (impl futures::AsyncRead + Unpin),
    len: u64,
    max: u64,
    too_long: &'static str,
) -> Result<Vec<u8>, StreamError> {
    if len > max {
        return Err(StreamError::Protocol(too_long));
    }
    let mut bytes = vec![0u8; len as usize];
    stream.read_exact(&mut bytes).await?;
    Ok(bytes)
}

/// Reads one request; `None` at the end of the stream.
async fn read_request(
    stream: &mut (impl futures::AsyncRead + Unpin),
) -> Result<Option<RunRequest>, StreamError> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u64::from(u16::from_le_bytes(len));
    let bytes = read_at_most(
        stream,
        len,
        MAX_REQUEST as u64,
        "a request longer than any request",
    )
    .await?;
    let run: RunRequest =
        postcard::from_bytes(&bytes).map_err(|_| StreamError::Protocol("a malformed request"))?;
    if run.count == 0 || run.count > MAX_RUN {
        return Err(StreamError::Protocol("a run of no pieces or too many"));
    }
    Ok(Some(run))
}

/// Serves the piece protocol, each incoming stream in a task of its own,
/// until the event loop aborts it at shutdown (which drops the streams'
/// tasks with it).
pub(crate) async fn serve(
    mut incoming: libp2p_stream::IncomingStreams,
    shared: Arc<Shared>,
    workspace: [u8; 32],
) {
    let mut streams = tokio::task::JoinSet::new();
    let mut per_peer: HashMap<PeerId, usize> = HashMap::new();
    loop {
        tokio::select! {
            next = incoming.next() => {
                let Some((peer, stream)) = next else { break };
                let open = per_peer.entry(peer).or_default();
                if *open >= MAX_STREAMS_PER_PEER {
                    debug!(%peer, "serving {MAX_STREAMS_PER_PEER} piece streams to it already: one more is dropped");
                    drop(stream);
                    continue;
                }
                *open += 1;
                let shared = shared.clone();
                streams.spawn(async move {
                    if let Err(e) = serve_stream(peer, stream, &shared, workspace).await {
                        debug!(%peer, "piece stream ended: {e}");
                    }
                    peer
                });
            }
            Some(ended) = streams.join_next(), if !streams.is_empty() => {
                if let Ok(peer) = ended {
                    if let Some(open) = per_peer.get_mut(&peer) {
                        *open -= 1;
                        if *open == 0 {
                            per_peer.remove(&peer);
                        }
                    }
                }
            }
        }
    }
}

async fn serve_stream(
    peer: PeerId,
    mut stream: libp2p::Stream,
    shared: &Arc<Shared>,
    workspace: [u8; 32],
) -> Result<(), StreamError> {
    let them = crate::ids::member_of(&peer);
    // The blob this stream was last allowed: asked again and again.
    let mut granted: Option<[u8; 32]> = None;
    loop {
        let Ok(next) = tokio::time::timeout(IDLE, read_request(&mut stream)).await else {
            debug!(%peer, "a piece stream idle for {IDLE:?} is closed");
            break;
        };
        let Some(run) = next? else { break };
        debug!(%peer, first = run.first, count = run.count, "asked for a run");
        let refusal = if run.workspace != workspace {
            Some("a different workspace")
        } else if granted == Some(run.hash) {
            None
        } else if them.is_some_and(|m| may_have_blob(shared, &m, &run.hash)) {
            granted = Some(run.hash);
            None
        } else {
            Some("that blob is neither in a library you share with this node nor pinned for you")
        };
        if let Some(why) = refusal {
            let mut frame = vec![REFUSED];
            frame.extend_from_slice(&(why.len() as u16).to_le_bytes());
            frame.extend_from_slice(why.as_bytes());
            stream.write_all(&frame).await?;
            stream.flush().await?;
            continue;
        }
        send_run(&peer, &mut stream, shared, &run).await?;
    }
    stream.close().await?;
    Ok(())
}

/// Sends a run's pieces in order, reading the next from disk (on a blocking
/// thread) while the current one is being sent.
async fn send_run(
    peer: &PeerId,
    stream: &mut libp2p::Stream,
    shared: &Arc<Shared>,
    run: &RunRequest,
) -> Result<(), StreamError> {
    let hash = BlobHash::from_bytes(run.hash);
    let read = |index: u64| {
        let blobs = shared.blobs.clone();
        tokio::task::spawn_blocking(move || blobs.read_piece(&hash, index))
    };
    let end = run.first.saturating_add(u64::from(run.count));
    let mut next = Some(read(run.first));
    for index in run.first..end {
        let Some(reading) = next.take() else { break };
        let piece = reading
            .await
            .map_err(|_| std::io::Error::other("this node is stopping"))?;
        if index + 1 < end {
            next = Some(read(index + 1));
        }
        match piece {
            Ok(piece) => {
                let bytes = piece.into_bytes();
                let mut header = [PIECE, 0, 0, 0, 0];
                header[1..].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
                stream.write_all(&header).await?;
                stream.write_all(&bytes).await?;
            }
            // Not here, or not here intact (auditors count on this).
            Err(
                e @ (BlobError::NotFound(_)
                | BlobError::NoSuchPiece { .. }
                | BlobError::Corrupt { .. }),
            ) => {
                debug!(%peer, "cannot serve a piece: {e}");
                stream.write_all(&[NOT_HERE]).await?;
                break;
            }
            // A disk that cannot be read just now is no proof either way.
            Err(e) => {
                warn!(%peer, "cannot read a piece to serve: {e}");
                let why = "this node cannot read that blob just now";
                let mut frame = vec![REFUSED];
                frame.extend_from_slice(&(why.len() as u16).to_le_bytes());
                frame.extend_from_slice(why.as_bytes());
                stream.write_all(&frame).await?;
                break;
            }
        }
    }
    stream.flush().await?;
    Ok(())
}

/// Whether member `them` may be served blob `hash`: an active member with
/// whom this node shares a department whose library lists it, or — for a
/// blob the pin ledger requests — a pinner or a member of the request's
/// department (how a pin node, which sees no library, gets blobs and serves
/// them back).
pub(crate) fn may_have_blob(shared: &Shared, them: &MemberId, hash: &[u8; 32]) -> bool {
    may_have(shared, them, hash).unwrap_or(false)
}

fn may_have(shared: &Shared, them: &MemberId, hash: &[u8; 32]) -> Result<bool, NodeError> {
    let me = shared.identity.signer.id();
    let blob = BlobHash::from_bytes(*hash).to_hex();
    let roster = shared.roster()?;
    if !roster.is_active(them) {
        return Ok(false);
    }
    let pinner = roster.member(them).is_some_and(|m| m.role == Role::Pinner);
    for day in shared.ledger_days(shared.clock.now())? {
        let request = shared.read_doc(&DocRef::Pins(day), |d| Pins::new(d.doc()).request(&blob))?;
        let in_dept = |r: &PinRequest| {
            roster
                .dept(&r.dept)
                .is_some_and(|d| d.members.contains(them))
        };
        if request.is_some_and(|r| pinner || in_dept(&r)) {
            return Ok(true);
        }
    }
    for d in roster
        .depts
        .iter()
        .filter(|d| d.members.contains(&me) && d.members.contains(them))
    {
        let listed = shared.with_blob_index(&DocRef::Library(d.id.clone()), |doc, index| {
            !index.files(&Library::new(doc.doc()), &blob).is_empty()
        })?;
        if listed {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(count: u32) -> RunRequest {
        RunRequest {
            workspace: [1; 32],
            hash: [2; 32],
            first: 7,
            count,
        }
    }

    fn request_bytes(run: &RunRequest) -> Vec<u8> {
        let bytes = postcard::to_stdvec(run).unwrap();
        let mut frame = (bytes.len() as u16).to_le_bytes().to_vec();
        frame.extend_from_slice(&bytes);
        frame
    }

    fn read<T>(
        bytes: &[u8],
        f: impl for<'a> FnOnce(
            &'a mut futures::io::Cursor<Vec<u8>>,
        ) -> futures::future::BoxFuture<'a, Result<T, StreamError>>,
    ) -> Result<T, StreamError> {
        let mut cursor = futures::io::Cursor::new(bytes.to_vec());
        futures::executor::block_on(f(&mut cursor))
    }

    #[test]
    fn requests_round_trip_and_bad_ones_are_refused() {
        let good = run(3);
        let got = read(&request_bytes(&good), |c| Box::pin(read_request(c))).unwrap();
        assert_eq!(got, Some(good));
        // The end of the stream between requests is no error.
        assert!(read(&[], |c| Box::pin(read_request(c))).unwrap().is_none());
        for (bytes, what) in [
            (request_bytes(&run(0)), "no pieces"),
            (request_bytes(&run(MAX_RUN + 1)), "too many"),
            ([0xff, 0xff].to_vec(), "too long"),
            ([3, 0, 1, 2, 3].to_vec(), "malformed"),
            ([10, 0, 1].to_vec(), "cut short"),
        ] {
            assert!(
                read(&bytes, |c| Box::pin(read_request(c))).is_err(),
                "{what}"
            );
        }
    }

    #[test]
    fn answers_are_checked_before_anything_is_allocated() {
        let mut piece = vec![PIECE];
        piece.extend_from_slice(&3u32.to_le_bytes());
        piece.extend_from_slice(b"abc");
        assert!(matches!(
            read(&piece, |c| Box::pin(read_answer(c))),
            Ok(Answer::Piece(p)) if p == b"abc"
        ));
        assert!(matches!(
            read(&[NOT_HERE], |c| Box::pin(read_answer(c))),
            Ok(Answer::NotHere)
        ));
        let mut refused = vec![REFUSED, 2, 0];
        refused.extend_from_slice(b"no");
        assert!(matches!(
            read(&refused, |c| Box::pin(read_answer(c))),
            Ok(Answer::Refused(r)) if r == "no"
        ));
        // Hostile: a 4 GiB piece, a huge reason, an unknown tag, a cut frame.
        let mut huge = vec![PIECE];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut long_reason = vec![REFUSED];
        long_reason.extend_from_slice(&u16::MAX.to_le_bytes());
        for bytes in [huge, long_reason, vec![9], vec![PIECE, 3, 0, 0, 0, b'a']] {
            assert!(read(&bytes, |c| Box::pin(read_answer(c))).is_err());
        }
    }
}
