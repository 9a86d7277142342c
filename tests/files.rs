//! Files between real nodes on 127.0.0.1: shared into a department's
//! library, fetched byte-identical from one or several holders, resumed after
//! the only holder vanished midway, never readable outside the department,
//! and a hostile holder's bad piece refused and fetched from another.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol};
use meshwork::node::disk::DEFAULT_MIN_FREE;
use meshwork::node::net::PIECES_PROTOCOL;
use meshwork::node::wire::RunRequest;
use meshwork::node::{Home, NodeError};
use meshwork_blobs::{ciphertext_size, stored_size};

/// A progress callback that, at the first piece fetched, stops `node` and
/// waits until it has stopped (so the fetch cannot finish meanwhile), and the
/// task that stops it, which yields its home.
fn stop_at_first_piece(
    node: TestNode,
) -> (
    meshwork::node::Progress,
    tokio::task::JoinHandle<tempfile::TempDir>,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (stopped_tx, stopped_rx) = std::sync::mpsc::channel::<()>();
    let stop_tx = std::sync::Mutex::new(Some(stop_tx));
    let stopped_rx = std::sync::Mutex::new(stopped_rx);
    let progress: meshwork::node::Progress = Arc::new(move |done, _| {
        if done > 0 {
            if let Some(tx) = stop_tx.lock().unwrap().take() {
                tx.send(()).unwrap();
                stopped_rx.lock().unwrap().recv().unwrap();
            }
        }
    });
    let task = tokio::spawn(async move {
        stop_rx.await.unwrap();
        let dir = stop(node).await;
        stopped_tx.send(()).unwrap();
        dir
    });
    (progress, task)
}

/// The file at `path` shared by `sharer`, once `viewer`'s library lists it:
/// the file's id.
async fn shared_for(sharer: &TestNode, viewer: &TestNode, path: &Path) -> String {
    let id = sharer
        .share("Research", path, None, None)
        .await
        .unwrap()
        .entry
        .id;
    until("the viewer's library lists it", || lists(viewer, &id, 1)).await;
    id
}

/// `mib` MiB shared by Bob and fetched by Cleo, until Ada's library lists
/// both as holders: the file's id and its bytes.
async fn held_by_bob_and_cleo(
    ada: &TestNode,
    bob: &TestNode,
    cleo: &TestNode,
    work: &Path,
    mib: usize,
    seed: u64,
) -> (String, Vec<u8>) {
    let bytes = content(mib * 1024 * 1024, seed);
    let id = shared_for(bob, cleo, &write_file(work, "data.bin", &bytes)).await;
    cleo.get(&id, &work.join("cleo.bin"), None).await.unwrap();
    until("Ada sees two holders", || lists(ada, &id, 2)).await;
    (id, bytes)
}

async fn lists(node: &TestNode, id: &str, holders: usize) -> bool {
    node.files("Research")
        .is_ok_and(|fs| fs.iter().any(|f| f.entry.id == id && f.peers >= holders))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_fetched_byte_identical_and_only_inside_its_department() {
    let (_clock, ada, bob, cleo, dave) = research().await;
    let work = tempfile::tempdir().unwrap();
    let bytes = content(3 * 1024 * 1024 + 123, 0x5eed_f11e);
    let path = write_file(work.path(), "plan.pdf", &bytes);
    let shared = bob.share("Research", &path, None, None).await.unwrap();
    assert_eq!(shared.entry.name, "plan.pdf");
    assert_eq!(shared.entry.size, bytes.len() as u64);
    assert_eq!(shared.entry.media_type, "application/pdf");
    assert_eq!(shared.peers, 1);
    let id = shared.entry.id.clone();

    // Cleo fetches it from Bob.
    until("Cleo's library lists it", || lists(&cleo, &id, 1)).await;
    let out = work.path().join("cleo.pdf");
    cleo.get(&id, &out, None).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // Ada fetches it from both, once both say they hold it.
    until("Ada sees two holders", || lists(&ada, &id, 2)).await;
    let out = work.path().join("ada.pdf");
    ada.get(&id, &out, None).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // Asking again for an existing path is refused, not overwritten.
    assert!(matches!(
        ada.get(&id, &out, None).await,
        Err(NodeError::Conflict(_))
    ));

    // Dave is not in Research: no library, no file, no bytes.
    assert!(matches!(
        dave.files("Research"),
        Err(NodeError::Forbidden(_))
    ));
    assert!(matches!(
        dave.get(&id, &work.path().join("dave.pdf"), None).await,
        Err(NodeError::NotFound(_))
    ));
    let marker = std::str::from_utf8(MARKER).unwrap();
    for n in [&bob, &cleo] {
        // Blobs are ciphertext: the plaintext is in no file of a home.
        assert!(!on_disk(n.home().root(), marker));
    }
    assert!(!on_disk(stop(dave).await.path(), marker));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_and_ids_get_clear_errors() {
    let (_clock, _ada, bob, _cleo, _dave) = research().await;
    let work = tempfile::tempdir().unwrap();
    let missing = bob
        .share("Research", &work.path().join("nope.txt"), None, None)
        .await;
    assert!(matches!(missing, Err(NodeError::BadRequest(m)) if m.contains("no file")));
    let dir = bob.share("Research", work.path(), None, None).await;
    assert!(matches!(dir, Err(NodeError::BadRequest(m)) if m.contains("no files")));
    let file = write_file(work.path(), "a.txt", b"hello");
    assert!(matches!(
        bob.share("Nowhere", &file, None, None).await,
        Err(NodeError::NotFound(_))
    ));
    assert!(matches!(
        bob.get("0123456789abcdef", &work.path().join("x"), None)
            .await,
        Err(NodeError::NotFound(_))
    ));
    // An empty file is a file too.
    let empty = write_file(work.path(), "empty", b"");
    let shared = bob.share("Research", &empty, None, None).await.unwrap();
    let out = work.path().join("empty.out");
    bob.get(&shared.entry.id, &out, None).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"");
    // A file's id comes after those of the uploader's earlier files, so
    // that the library's map of files grows at its end (crdt/src/nonce.rs).
    let next = bob.share("Research", &empty, None, None).await.unwrap();
    assert!(
        next.entry.id > shared.entry.id,
        "{} after {}",
        next.entry.id,
        shared.entry.id
    );
}

/// With one byte too few free beyond its reserve, a node refuses to share,
/// fetch, download or pin at once, naming the sizes, and writes nothing: no
/// blob, no partial, no destination, no library record. With exactly
/// enough, each goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_too_large_for_the_disk_is_refused_before_a_byte_is_written() {
    let (_clock, ada, bob, cleo, _dave) = research().await;
    let work = tempfile::tempdir().unwrap();
    let size = 300_000;
    let bytes = content(size, 7);
    let file = write_file(work.path(), "report.pdf", &bytes);
    let blob = stored_size(ciphertext_size(size as u64));

    bob.set_free(blob + DEFAULT_MIN_FREE - 1);
    let refused = bob.share("Research", &file, None, None).await;
    let Err(NodeError::NoSpace(why)) = refused else {
        panic!("sharing on a full disk: {refused:?}")
    };
    assert!(
        why.contains("\"report.pdf\" (293.0 KiB) is too large"),
        "{why}"
    );
    assert!(why.contains("--min-free"), "{why}");
    assert!(bob.files("Research").unwrap().is_empty());
    // The web app's question before an upload gets the same answer.
    assert!(matches!(
        bob.check_share("Research", "report.pdf", size as u64),
        Err(NodeError::NoSpace(_))
    ));
    assert!(no_blobs(&bob));
    bob.set_free(blob + DEFAULT_MIN_FREE);
    bob.check_share("Research", "report.pdf", size as u64)
        .unwrap();

    let id = shared_for(&ada, &cleo, &file).await;
    // Fetching needs room for the blob; downloading to the same disk, for
    // the plaintext too.
    let dest = work.path().join("copy.pdf");
    cleo.set_free(blob + DEFAULT_MIN_FREE - 1);
    let refused = cleo.get(&id, &dest, None).await;
    assert!(
        matches!(&refused, Err(NodeError::NoSpace(m)) if m.contains("downloading \"report.pdf\"")),
        "{refused:?}"
    );
    assert!(matches!(cleo.fetch(&id).await, Err(NodeError::NoSpace(_))));
    let week = std::time::Duration::from_secs(7 * 86_400);
    assert!(matches!(
        cleo.pin(&id, week).await,
        Err(NodeError::NoSpace(_))
    ));
    assert!(!dest.exists());
    assert!(no_blobs(&cleo));
    cleo.set_free(blob + DEFAULT_MIN_FREE);
    cleo.fetch(&id).await.unwrap();
    // The blob is here: the download needs room for the plaintext alone.
    cleo.set_free(size as u64 + DEFAULT_MIN_FREE - 1);
    assert!(matches!(
        cleo.get(&id, &dest, None).await,
        Err(NodeError::NoSpace(_))
    ));
    cleo.set_free(size as u64 + DEFAULT_MIN_FREE);
    cleo.get(&id, &dest, None).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    // And pinning what is here needs nothing more.
    cleo.set_free(0);
    cleo.pin(&id, week).await.unwrap();
}

/// A share whose caller goes away while its bytes are still being read
/// (a browser closed mid-upload, a CLI interrupted) stops, and leaves no
/// blob, no unfinished import and no record behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_dropped_midway_leaves_nothing_behind() {
    let (_clock, _ada, bob, _cleo, _dave) = research().await;
    let (feed, bytes) = std::sync::mpsc::sync_channel::<Vec<u8>>(1);
    let reader = ChannelReader {
        rx: bytes,
        buf: Vec::new(),
    };
    let started = Arc::new(tokio::sync::Notify::new());
    let told = started.clone();
    let progress: meshwork::node::Progress = Arc::new(move |done, _| {
        if done > 0 {
            told.notify_one();
        }
    });
    let node = bob.node.clone();
    let share = tokio::spawn(async move {
        node.share_from("Research", "big.bin", reader, 10 << 20, Some(progress))
            .await
    });
    feed.send(vec![1; 256 * 1024]).unwrap();
    started.notified().await;
    share.abort();
    assert!(share.await.unwrap_err().is_cancelled());
    // The reader is blocked on its next bytes; once they come, it finds
    // the share cancelled.
    let _ = feed.send(vec![2; 256 * 1024]);
    let partial = bob.home().blobs().join("partial");
    until("the import is removed", || async {
        std::fs::read_dir(&partial).unwrap().count() == 0
    })
    .await;
    assert!(no_blobs(&bob));
    assert!(bob.files("Research").unwrap().is_empty());
}

/// A reader of the byte runs sent to `rx`; ends when the sender goes.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            match self.rx.recv() {
                Ok(bytes) => self.buf = bytes,
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.drain(..n);
        Ok(n)
    }
}

/// No blob, complete or partial, in `node`'s store.
fn no_blobs(node: &TestNode) -> bool {
    let blobs = meshwork_blobs::BlobStore::open(node.home().blobs()).unwrap();
    blobs.list().unwrap().is_empty() && blobs.list_partial().unwrap().is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_cut_off_midway_resumes_when_a_holder_is_back() {
    let (clock, _ada, bob, cleo, _dave) = research().await;
    let work = tempfile::tempdir().unwrap();
    let bytes = content(16 * 1024 * 1024, 0x00c0_ffee);
    let id = shared_for(&bob, &cleo, &write_file(work.path(), "video.mp4", &bytes)).await;

    // Cleo's fetch from Bob, its only holder: at the first piece, Bob stops.
    // (The fetch waits on the progress callback while he does, so at most
    // the pieces already in flight arrive: far from all 64.)
    let (progress, bob_dir) = stop_at_first_piece(bob);
    let out = work.path().join("video.out");
    let first = cleo.get(&id, &out, Some(progress)).await;
    assert!(
        matches!(&first, Err(NodeError::Unreachable(m)) if m.contains("again to resume")),
        "{first:?}"
    );
    assert!(!out.exists(), "no half file under the final name");
    let bob_dir = bob_dir.await.unwrap();

    // Bob comes back; the second try takes only what is missing.
    let bob = restart(bob_dir, &clock, vec![addr(&cleo).await]).await;
    until("Cleo and Bob reconnect", || connected(&cleo, &bob)).await;
    let fetched = Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let first_seen = fetched.clone();
    let last = Arc::new(std::sync::Mutex::new((0, 0)));
    let last_seen = last.clone();
    let progress: meshwork::node::Progress = Arc::new(move |done, total| {
        let _ = first_seen.compare_exchange(
            u64::MAX,
            done,
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
        );
        *last_seen.lock().unwrap() = (done, total);
    });
    cleo.get(&id, &out, Some(progress)).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // Progress counts the file's bytes, not the ciphertext's few more.
    let len = bytes.len() as u64;
    assert_eq!(*last.lock().unwrap(), (len, len));
    let resumed_at = fetched.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        resumed_at > 0 && resumed_at < bytes.len() as u64,
        "the second fetch started from what the first left ({resumed_at})"
    );
}

/// `get` returns once the plaintext is synced; the node's own copy of the
/// blob and its record as a holder follow in the background, and a node
/// stopped at once still has both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_keeps_its_copy_for_others_when_the_node_stops_at_once() {
    let (clock, ada, bob, cleo, _dave) = research().await;
    let work = tempfile::tempdir().unwrap();
    let bytes = content(8 * 1024 * 1024 + 77, 0x0c0f_fee5);
    let id = shared_for(&bob, &cleo, &write_file(work.path(), "deck.pdf", &bytes)).await;
    let out = work.path().join("cleo.pdf");
    cleo.get(&id, &out, None).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let cleo_dir = stop(cleo).await;
    let blobs = meshwork_blobs::BlobStore::open(Home::new(cleo_dir.path()).blobs()).unwrap();
    assert_eq!(blobs.list().unwrap().len(), 1, "the blob is in place");
    assert!(blobs.list_partial().unwrap().is_empty());
    drop(blobs);

    // Back, she is a holder; with Bob gone, Ada fetches from her alone.
    let _cleo = restart(cleo_dir, &clock, vec![addr(&ada).await]).await;
    until("Ada sees two holders", || lists(&ada, &id, 2)).await;
    let _bob_dir = stop(bob).await;
    let out = work.path().join("ada.pdf");
    ada.get(&id, &out, None).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
}

/// Answers every run on a piece-protocol stream, written by hand from the
/// protocol's description, with pieces whose last byte is flipped; counts
/// them.
async fn serve_bad_pieces(
    mut stream: libp2p::Stream,
    honest: Arc<meshwork_blobs::BlobStore>,
    bad: Arc<std::sync::atomic::AtomicUsize>,
) -> std::io::Result<()> {
    use futures::{AsyncReadExt, AsyncWriteExt};
    loop {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut request = vec![0u8; u16::from_le_bytes(len) as usize];
        stream.read_exact(&mut request).await?;
        let run: RunRequest = postcard::from_bytes(&request).unwrap();
        let hash = meshwork_blobs::BlobHash::from_bytes(run.hash);
        for index in run.first..run.first + u64::from(run.count) {
            let mut piece = honest.read_piece(&hash, index).unwrap().into_bytes();
            let last = piece.len() - 1;
            piece[last] ^= 0x01;
            stream.write_all(&[0]).await?;
            stream
                .write_all(&(piece.len() as u32).to_le_bytes())
                .await?;
            stream.write_all(&piece).await?;
            bad.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        stream.flush().await?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_sends_a_bad_piece_is_cut_off_and_another_serves_it() {
    logs();
    let (_clock, ada, bob, cleo, _dave) = research().await;
    let work = tempfile::tempdir().unwrap();
    let (id, bytes) = held_by_bob_and_cleo(&ada, &bob, &cleo, work.path(), 8, 0x0bad_f00d).await;

    // Cleo's device turns hostile: her key, speaking the piece protocol by
    // hand, answering every run with pieces that have one byte flipped.
    let secret = meshwork::node::wire::InviteToken::decode(&invite(&ada, None).await)
        .unwrap()
        .secret;
    let cleo_peer = cleo.peer_id().to_string();
    let cleo_dir = stop(cleo).await;
    let key = Home::new(cleo_dir.path()).identity().unwrap().keypair;
    let honest =
        Arc::new(meshwork_blobs::BlobStore::open(Home::new(cleo_dir.path()).blobs()).unwrap());
    let mut hostile = raw_swarm(key, secret, |_| libp2p_stream::Behaviour::new());
    let mut incoming = hostile
        .behaviour()
        .new_control()
        .accept(StreamProtocol::new(PIECES_PROTOCOL))
        .unwrap();
    hostile
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let listen: Multiaddr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = hostile.select_next_some().await {
            break address;
        }
    };
    let lists_cleo = |node: &TestNode| {
        let cleo_peer = cleo_peer.clone();
        let node = node.node.clone();
        async move { node.peers().await.iter().any(|p| p.peer_id == cleo_peer) }
    };
    until("Ada has seen Cleo's node go", || async {
        !lists_cleo(&ada).await
    })
    .await;
    ada.dial(listen).await.unwrap();
    let bad = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = bad.clone();
    tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            tokio::spawn(serve_bad_pieces(stream, honest.clone(), counted.clone()));
        }
    });
    let cut_off = {
        let bad = bad.clone();
        tokio::spawn(async move {
            loop {
                if let SwarmEvent::ConnectionClosed { .. } = hostile.select_next_some().await {
                    if bad.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                        return;
                    }
                }
            }
        })
    };
    until(
        "Ada is connected to the hostile holder and to Bob",
        || async {
            let peers = ada.peers().await;
            peers
                .iter()
                .any(|p| p.peer_id == cleo_peer && p.member_id.is_some())
                && connected(&ada, &bob).await
        },
    )
    .await;
    let out = work.path().join("ada.bin");
    ada.get(&id, &out, None).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes, "every byte from Bob");
    tokio::time::timeout(WAIT, cut_off).await.unwrap().unwrap();
    assert!(
        bad.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the hostile holder was asked, and cut off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_from_two_holders_carries_on_when_one_goes() {
    let (_clock, ada, bob, cleo, _dave) = research().await;
    let work = tempfile::tempdir().unwrap();
    let (id, bytes) = held_by_bob_and_cleo(&ada, &bob, &cleo, work.path(), 16, 0x0007_0a57).await;

    // At Ada's first piece, Bob stops (the fetch waits for it): the rest
    // must come from Cleo.
    let (progress, bob_gone) = stop_at_first_piece(bob);
    let out = work.path().join("ada.out");
    ada.get(&id, &out, Some(progress)).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let _ = bob_gone.await.unwrap();
}

/// Issue 15: what is not a regular file is refused at once, and a reader
/// that yields more than it announced (a file growing, a device that never
/// ends) is stopped one byte past its size instead of filling the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_pipes_and_endless_readers_are_refused() {
    let (_clock, _ada, bob, _cleo, _dave) = research().await;
    let work = tempfile::tempdir().unwrap();
    let zero = bob
        .share("Research", std::path::Path::new("/dev/zero"), None, None)
        .await;
    assert!(
        matches!(&zero, Err(NodeError::BadRequest(m)) if m.contains("not a regular file")),
        "{zero:?}"
    );
    let fifo = work.path().join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        // Opening a FIFO would block until a writer comes: it is refused
        // before it is opened.
        let piped = bob.share("Research", &fifo, None, None).await;
        assert!(
            matches!(&piped, Err(NodeError::BadRequest(m)) if m.contains("not a regular file")),
            "{piped:?}"
        );
    }
    let endless = bob
        .share_from("Research", "endless", std::io::repeat(7), 1000, None)
        .await;
    assert!(
        matches!(&endless, Err(NodeError::Conflict(m)) if m.contains("changed while")),
        "{endless:?}"
    );
    assert!(no_blobs(&bob));
    assert!(bob.files("Research").unwrap().is_empty());
}

/// Issue 15: a download's temporary plaintext is recorded before it is
/// written, so one that a killed daemon left behind is removed at the next
/// start; a finished download is readable by its owner only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_left_by_a_killed_download_is_removed_at_the_next_start() {
    let (clock, _ada, bob, _cleo, _dave) = research().await;
    let work = tempfile::tempdir().unwrap();
    let file = write_file(work.path(), "notes.txt", b"private notes");
    let shared = bob.share("Research", &file, None, None).await.unwrap();
    let out = work.path().join("copy.txt");
    bob.get(&shared.entry.id, &out, None).await.unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "a download is its owner's alone");

    // The window a SIGKILL can hit: recorded, written, not yet removed.
    let home = stop(bob).await;
    let leftover = work.path().join(".copy2.txt.00000000deadbeef.part");
    std::fs::write(&leftover, b"private notes").unwrap();
    {
        let store = meshwork::node::Store::open(&home.path().join("db")).unwrap();
        store.add_part(&leftover).unwrap();
        store.flush().await.unwrap();
    }
    let bob = restart(home, &clock, vec![]).await;
    assert!(!leftover.exists(), "the leftover plaintext is gone");
    assert!(out.exists(), "a finished download is kept");
    drop(bob);
}

/// Issue 15: Ctrl-C on `meshwork share` (the CLI hanging up on the API
/// while the file is being sealed) stops the share before it is published
/// and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_whose_caller_hangs_up_is_not_published() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (_clock, _ada, bob, _cleo, _dave) = research().await;
    let work = tempfile::tempdir().unwrap();
    let big = write_file(work.path(), "big.bin", &content(64 << 20, 9));
    let (server, _task) = meshwork::node::api::serve(
        bob.node.clone(),
        "127.0.0.1:0".parse().unwrap(),
        std::future::pending(),
    )
    .await
    .unwrap();
    let body = serde_json::json!({ "dept": "Research", "path": big }).to_string();
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /v1/files HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        server.addr,
        server.token,
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    // Read until the first progress line, then hang up.
    let mut lines = tokio::io::BufReader::new(s).lines();
    loop {
        let line = lines.next_line().await.unwrap().expect("progress comes");
        if line.contains("\"progress\"") && !line.contains("\"done\":0") {
            break;
        }
    }
    drop(lines);
    let partial = bob.home().blobs().join("partial");
    until("the import is removed", || async {
        std::fs::read_dir(&partial).unwrap().count() == 0
    })
    .await;
    assert!(no_blobs(&bob), "the sealed blob was kept");
    assert!(
        bob.files("Research").unwrap().is_empty(),
        "it was published"
    );
}

/// Issue 15: a folder is shared as one entry and fetched as a whole tree,
/// byte for byte, by id or by name; what it would write outside its
/// destination, or links and devices inside it, are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_is_shared_as_one_entry_and_fetched_whole() {
    let (_clock, _ada, bob, cleo, _dave) = research().await;
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("Q3");
    std::fs::create_dir_all(src.join("drafts/old")).unwrap();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("report.xlsx", content(300_000, 1)),
        ("drafts/v1.txt", b"first".to_vec()),
        ("drafts/old/empty", Vec::new()),
        ("notes ü.md", content(70_000, 2)),
    ];
    for (path, bytes) in &files {
        std::fs::write(src.join(path), bytes).unwrap();
    }
    let shared = bob.share("Research", &src, None, None).await.unwrap();
    assert_eq!(shared.entry.name, "Q3");
    let entries = shared.entry.entries.clone().expect("a folder");
    assert_eq!(entries.len(), 4);
    let total: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(shared.entry.size, total);
    assert_eq!(bob.files("Research").unwrap().len(), 1, "one entry");

    until("Cleo sees the folder", || async {
        cleo.files("Research").is_ok_and(|f| f.len() == 1)
    })
    .await;
    let out = work.path().join("fetched");
    // By name: only one file is called "Q3".
    cleo.get("Q3", &out, None).await.unwrap();
    for (path, bytes) in &files {
        assert_eq!(&std::fs::read(out.join(path)).unwrap(), bytes, "{path}");
    }
    let again = cleo.get(&shared.entry.id, &out, None).await;
    assert!(matches!(again, Err(NodeError::Conflict(_))), "{again:?}");
    // Nothing but the tree was written beside it.
    let beside: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(beside.iter().all(|n| !n.ends_with(".part")), "{beside:?}");

    // A link inside is refused, naming it.
    std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
    let linked = bob.share("Research", &src, Some("Q3b"), None).await;
    assert!(
        matches!(&linked, Err(NodeError::BadRequest(m)) if m.contains("link")),
        "{linked:?}"
    );
    // The web app cannot stream a folder as one file.
    assert!(matches!(
        cleo.read_file(&shared.entry.id).await,
        Err(NodeError::BadRequest(_))
    ));
}
