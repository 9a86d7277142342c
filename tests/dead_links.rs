//! Dead links are noticed: two real nodes on 127.0.0.1 whose only path is a
//! TCP forwarder the test controls. Frozen, the forwarder stops moving
//! bytes but keeps both sockets open — a cable pulled out, no FIN, no RST —
//! and each node must drop the other from its peers within the bound that
//! `meshwork::node::net::PING_INTERVAL` states.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use meshwork::node::wire::InviteToken;
use meshwork::node::{ManualClock, NodeConfig, NodeEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// Pings every half second, and a ping may wait 2 s: the test sees the
/// production behaviour in less time.
const PING_INTERVAL: Duration = Duration::from_millis(500);
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// libp2p's fixed time for negotiating a stream (the second ping's).
const NEGOTIATION: Duration = Duration::from_secs(10);

/// A TCP forwarder on 127.0.0.1 to one target, which can be frozen.
struct Forwarder {
    addr: SocketAddr,
    frozen: watch::Sender<bool>,
    /// How many of the sockets it accepted or opened the node at the other
    /// end has closed.
    closed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    async fn start(target: SocketAddr) -> Self {
        assert!(target.ip().is_loopback(), "loopback only: {target}");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, _) = watch::channel(false);
        let gate = frozen.clone();
        let closed = Arc::new(AtomicUsize::new(0));
        let count = closed.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::spawn(pump(in_read, out_write, gate.subscribe(), count.clone()));
                tokio::spawn(pump(out_read, in_write, gate.subscribe(), count.clone()));
            }
        });
        Self {
            addr,
            frozen,
            closed,
            task,
        }
    }

    /// Stops moving bytes; every socket stays open.
    fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies bytes one way while not frozen. Frozen, it neither reads nor
/// writes: what was sent waits in the kernel's buffers, unanswered. It ends
/// (and counts in `closed`) when the node it reads from closes its socket,
/// even if the other end is gone.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
    closed: Arc<AtomicUsize>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut writable = true;
    loop {
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        writable = writable && to.write_all(&buf[..n]).await.is_ok();
    }
    closed.fetch_add(1, Ordering::SeqCst);
    let _ = to.shutdown().await;
}

fn tweak(cfg: &mut NodeConfig) {
    cfg.net.ping_interval = PING_INTERVAL;
    cfg.net.ping_timeout = PING_TIMEOUT;
    // Periodic rounds also redial members at the addresses they announce,
    // which would go around the forwarder: none happens during the test.
    cfg.net.sync_interval = Duration::from_secs(3600);
}

/// Whether `events` told of `peer` disconnecting.
fn saw_disconnect(events: &mut tokio::sync::broadcast::Receiver<NodeEvent>, peer: &str) -> bool {
    std::iter::from_fn(|| events.try_recv().ok())
        .any(|e| matches!(e, NodeEvent::PeerDisconnected { peer_id } if peer_id == peer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_answering_is_dropped_within_the_bound() {
    let clock = ManualClock::new(T0);
    let ada = spawn_with("Ada", &clock, tweak).await;
    ada.create_workspace("Acme").await.unwrap();
    let bob = spawn_with("Bob", &clock, tweak).await;

    // Bob joins through the forwarder: the invite names only its address.
    let listen = ada.listen_addrs().await[0].to_string();
    let port: u16 = listen.rsplit('/').next().unwrap().parse().unwrap();
    assert!(listen.starts_with("/ip4/127.0.0.1/tcp/"), "{listen}");
    let forwarder = Forwarder::start(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let via = format!(
        "/ip4/127.0.0.1/tcp/{}/p2p/{}",
        forwarder.addr.port(),
        ada.peer_id()
    );
    let mut token = InviteToken::decode(&invite(&ada, None).await).unwrap();
    token.addrs = vec![via.clone()];
    bob.join(&token.encode().unwrap()).await.unwrap();
    until("Ada and Bob connected", || connected(&ada, &bob)).await;
    until("Bob and Ada connected", || connected(&bob, &ada)).await;
    assert_eq!(ada.peers().await.len(), 1);
    assert_eq!(bob.peers().await.len(), 1);

    let mut ada_events = ada.events();
    let mut bob_events = bob.events();
    forwarder.freeze();
    let frozen_at = Instant::now();
    until("Ada drops Bob", || async { !connected(&ada, &bob).await }).await;
    let ada_took = frozen_at.elapsed();
    until("Bob drops Ada", || async { !connected(&bob, &ada).await }).await;
    let bob_took = frozen_at.elapsed();
    println!("dropped after: Ada {ada_took:?}, Bob {bob_took:?}");
    // The bound, with room for a loaded machine.
    let bound = 2 * PING_INTERVAL + PING_TIMEOUT + NEGOTIATION;
    for took in [ada_took, bob_took] {
        assert!(
            took <= bound + Duration::from_secs(3),
            "dropped after {took:?}, bound {bound:?}"
        );
    }
    // Each side took the normal way out: presence and listeners were told.
    assert!(saw_disconnect(&mut ada_events, &bob.peer_id().to_string()));
    assert!(saw_disconnect(&mut bob_events, &ada.peer_id().to_string()));

    // The cable back in. What each node sent meanwhile reaches the
    // forwarder, ending in its close: neither socket stayed open.
    assert_eq!(forwarder.closed(), 0, "nothing passed while frozen");
    forwarder.thaw();
    until("both nodes closed their sockets", || async {
        forwarder.closed() == 2
    })
    .await;
    // And Bob dials again through the forwarder.
    bob.dial(via.parse().unwrap()).await.unwrap();
    until("Ada and Bob reconnected", || connected(&ada, &bob)).await;
    until("Bob and Ada reconnected", || connected(&bob, &ada)).await;
}
