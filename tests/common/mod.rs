//! Real nodes in one process, on 127.0.0.1, with a shared manual clock.
#![allow(dead_code)]

pub mod bin;
pub mod netns;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meshwork::node::crdt::roster::{Role, Roster};
use meshwork::node::disk::{Disk, DEFAULT_MIN_FREE};
use meshwork::node::{Home, InviteSpec, ManualClock, Node, NodeConfig};
use tempfile::TempDir;

pub const T0: i64 = 1_800_000_000_000;
pub const WAIT: Duration = Duration::from_secs(20);

pub struct TestNode {
    pub node: Node,
    pub dir: TempDir,
    /// The bytes its disk reports free: plenty unless a test says otherwise.
    pub free: Arc<AtomicU64>,
}

/// What a test node's disk reports free unless the test sets it: tests
/// never depend on this machine's free space.
pub const PLENTY: u64 = 1 << 50;

impl TestNode {
    /// Makes this node's disk report `bytes` free from now on.
    pub fn set_free(&self, bytes: u64) {
        self.free.store(bytes, Ordering::SeqCst);
    }
}

impl std::ops::Deref for TestNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

pub fn config(dir: &TempDir, clock: &ManualClock, free: &Arc<AtomicU64>) -> NodeConfig {
    let mut cfg = NodeConfig::new(dir.path());
    let free = free.clone();
    cfg.disk = Disk::measured_by(
        Arc::new(move |_: &std::path::Path| Ok(free.load(Ordering::SeqCst))),
        DEFAULT_MIN_FREE,
    );
    cfg.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    cfg.net.mdns = false;
    cfg.net.probation = Duration::from_millis(500);
    cfg.net.sync_interval = Duration::from_secs(1);
    cfg.clock = std::sync::Arc::new(clock.clone());
    cfg.join_timeout = Duration::from_secs(10);
    // Volunteering for pins is the pinning tests' business: they reconcile
    // by hand, so every other test sees only the holders it made.
    cfg.auto_pin = false;
    // Every document that leaves memory is compacted: what comes back is
    // read through a snapshot.
    cfg.compact_after = 1;
    cfg
}

/// A node with a fresh identity named `name`, in no workspace yet.
pub async fn spawn(name: &str, clock: &ManualClock) -> TestNode {
    spawn_with(name, clock, |_| {}).await
}

/// Likewise, with `tweak` applied to its configuration.
pub async fn spawn_with(
    name: &str,
    clock: &ManualClock,
    tweak: impl FnOnce(&mut NodeConfig),
) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    Home::new(dir.path()).init(name).unwrap();
    let free = Arc::new(AtomicU64::new(PLENTY));
    let mut cfg = config(&dir, clock, &free);
    tweak(&mut cfg);
    let node = Node::start(cfg).await.unwrap();
    TestNode { node, dir, free }
}

/// Stops a node and releases its home.
pub async fn stop(t: TestNode) -> TempDir {
    let TestNode { node, dir, .. } = t;
    node.shutdown().await;
    drop(node);
    dir
}

/// Restarts a stopped node on its old home.
pub async fn restart(dir: TempDir, clock: &ManualClock, peers: Vec<String>) -> TestNode {
    let free = Arc::new(AtomicU64::new(PLENTY));
    let mut cfg = config(&dir, clock, &free);
    cfg.net.peers = peers.iter().map(|p| p.parse().unwrap()).collect();
    let node = Node::start(cfg).await.unwrap();
    TestNode { node, dir, free }
}

/// The id of the department `name` as `node` sees it.
pub fn dept_id(node: &Node, name: &str) -> String {
    node.roster()
        .unwrap()
        .resolve_dept(name)
        .unwrap()
        .id
        .clone()
}

pub async fn invite(by: &Node, dept: Option<&str>) -> String {
    by.invite(InviteSpec {
        dept: dept.map(str::to_owned),
        role: Role::Member,
        ttl: Duration::from_secs(3600),
    })
    .await
    .unwrap()
    .token
}

/// An admin's workspace "Acme" and `others` members who joined it.
pub async fn office(others: &[&str]) -> (ManualClock, TestNode, Vec<TestNode>) {
    let clock = ManualClock::new(T0);
    let admin = spawn("Ada", &clock).await;
    admin.create_workspace("Acme").await.unwrap();
    let mut nodes = Vec::new();
    for name in others {
        let n = spawn(name, &clock).await;
        n.join(&invite(&admin, None).await).await.unwrap();
        nodes.push(n);
    }
    (clock, admin, nodes)
}

/// Waits until `pred` holds for `node`'s roster.
pub async fn until_roster(node: &Node, what: &str, pred: impl Fn(&Roster) -> bool) {
    assert!(
        node.wait_roster(pred, WAIT).await,
        "timed out waiting for: {what}"
    );
}

/// Polls an async condition (every 50 ms) until it holds, or fails the test.
pub async fn until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn connected(a: &Node, b: &Node) -> bool {
    let id = b.peer_id().to_string();
    a.peers().await.iter().any(|p| p.peer_id == id)
}

pub async fn addr(n: &Node) -> String {
    format!("{}/p2p/{}", n.listen_addrs().await[0], n.peer_id())
}

/// Planted at the start of test files: it must never appear where only
/// ciphertext belongs.
pub const MARKER: &[u8] = b"PLAINTEXT-MARKER-4f1c9e";

/// `len` pseudo-random bytes (the seed is printed) starting with MARKER.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    println!("content seed: {seed}");
    let mut x = seed | 1;
    let mut out: Vec<u8> = MARKER.to_vec();
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn write_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Whether `text` appears in any file under `dir`.
pub fn on_disk(dir: &std::path::Path, text: &str) -> bool {
    let needle = text.as_bytes();
    walk(dir).iter().any(|f| {
        std::fs::read(f).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A bare libp2p swarm with a member's key and the workspace's network key,
/// running `behaviour`: how the hand-built hostile peers speak our protocols.
pub fn raw_swarm<B: libp2p::swarm::NetworkBehaviour>(
    key: libp2p::identity::Keypair,
    secret: [u8; 32],
    behaviour: impl FnOnce(&libp2p::identity::Keypair) -> B,
) -> libp2p::Swarm<B> {
    use libp2p::core::upgrade::Version;
    use libp2p::Transport;
    let prologue = meshwork::node::net::network_key(&secret);
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default())
                .upgrade(Version::V1Lazy)
                .authenticate(
                    libp2p::noise::Config::new(key)
                        .unwrap()
                        .with_prologue(prologue),
                )
                .multiplex(libp2p::yamux::Config::default())
        })
        .unwrap()
        .with_behaviour(behaviour)
        .unwrap()
        // Stay connected while idle, as a real node does.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build()
}

/// Ada (admin), Bob and Cleo in "Research"; Dave in the workspace only.
pub async fn research() -> (ManualClock, TestNode, TestNode, TestNode, TestNode) {
    let (clock, ada, mut others) = office(&["Bob", "Cleo", "Dave"]).await;
    let dave = others.pop().unwrap();
    let cleo = others.pop().unwrap();
    let bob = others.pop().unwrap();
    ada.dept_create("Research").await.unwrap();
    for who in ["Ada", "Bob", "Cleo"] {
        ada.dept_add(who, "Research").await.unwrap();
    }
    for n in [&bob, &cleo, &dave] {
        until_roster(n, "Research has three members", |r| {
            r.resolve_dept("Research")
                .is_ok_and(|d| d.members.len() == 3)
        })
        .await;
    }
    (clock, ada, bob, cleo, dave)
}

/// Logs to the test's output, filtered by `RUST_LOG` (nothing unless it is
/// set): `RUST_LOG=meshwork_node=debug cargo test --test NAME -- --nocapture`.
#[allow(dead_code)]
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
