//! Benchmark: a 1,000-member department.
//!
//! Measures, with real nodes on loopback and a real sled store:
//! - building it: 999 members admitted and added to one department, one
//!   signed, durable change per admin action (2 per member) — and the same
//!   as one bulk change, as an onboarding import would;
//! - the roster's saved size;
//! - a fresh node joining and syncing the whole roster;
//!
//! and, beside each, the ceiling: plain automerge doing the same edits in one
//! process (no signatures, no rules, no disk, no network).
//!
//! Run: `cargo run --release --example roster_bench`

use std::time::{Duration, Instant};

use meshwork::crdt::automerge::sync::{self, SyncDoc};
use meshwork::crdt::automerge::transaction::Transactable;
use meshwork::crdt::automerge::{Automerge, ObjType, ROOT};
use meshwork::crdt::roster::Role;
use meshwork::crdt::{MemberId, Signer};
use meshwork::node::{Home, InviteSpec, Node, NodeConfig};

const MEMBERS: usize = 1000;

fn member(i: usize) -> MemberId {
    let mut s = [9u8; 32];
    s[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Signer::from_secret(s).id()
}

async fn node(dir: &std::path::Path, name: &str) -> anyhow::Result<Node> {
    Home::new(dir).init(name)?;
    let mut cfg = NodeConfig::new(dir);
    cfg.net.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    cfg.net.mdns = false;
    cfg.join_timeout = Duration::from_secs(600);
    Ok(Node::start(cfg).await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let admin = node(&dir.path().join("admin"), "Admin").await?;
    admin.create_workspace("Bench").await?;
    admin.dept_create("Big").await?;

    let t = Instant::now();
    for i in 1..MEMBERS {
        let id = member(i);
        admin.add_members(&[(id, format!("Member {i}"))]).await?;
        admin.dept_add_many(&[id], "Big").await?;
    }
    admin
        .dept_add(&admin.member_id().to_string(), "Big")
        .await?;
    let build = t.elapsed();
    let ws = admin.workspace_status()?;
    let doc = &ws.documents[0];

    let bulk_admin = node(&dir.path().join("bulk"), "Bulk").await?;
    bulk_admin.create_workspace("Bulk").await?;
    bulk_admin.dept_create("Big").await?;
    let everyone: Vec<_> = (1..MEMBERS)
        .map(|i| (member(i), format!("Member {i}")))
        .collect();
    let ids: Vec<_> = everyone.iter().map(|(id, _)| *id).collect();
    let t = Instant::now();
    bulk_admin.add_members(&everyone).await?;
    bulk_admin.dept_add_many(&ids, "Big").await?;
    let bulk = t.elapsed();
    bulk_admin.shutdown().await;

    let joiner = node(&dir.path().join("joiner"), "Joiner").await?;
    let token = admin
        .invite(InviteSpec {
            dept: None,
            role: Role::Member,
            ttl: Duration::from_secs(3600),
        })
        .await?
        .token;
    let t = Instant::now();
    joiner.join(&token).await?;
    let sync_time = t.elapsed();
    let got = joiner.roster()?;
    assert_eq!(got.resolve_dept("Big")?.members.len(), MEMBERS);

    joiner.shutdown().await;
    admin.shutdown().await;
    drop((joiner, admin));
    let check = check_in_memory(&dir.path().join("admin"), &ws.id)?;

    let (plain_build, plain_size, plain_sync) = plain_automerge();

    println!("| 1,000-member department | Meshwork | plain automerge (ceiling) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| build ({} changes) | {:.2} s | {:.3} s | {:.0}× |",
        doc.changes,
        build.as_secs_f64(),
        plain_build.as_secs_f64(),
        build.as_secs_f64() / plain_build.as_secs_f64()
    );
    println!(
        "| build in bulk (2 changes) | {:.3} s | {:.3} s | {:.1}× |",
        bulk.as_secs_f64(),
        plain_build.as_secs_f64(),
        bulk.as_secs_f64() / plain_build.as_secs_f64()
    );
    println!(
        "| saved size | {} KiB | {} KiB | {:.2}× |",
        doc.saved_bytes / 1024,
        plain_size / 1024,
        doc.saved_bytes as f64 / plain_size as f64
    );
    println!(
        "| fresh node join + full sync | {:.3} s | {:.3} s | {:.1}× |",
        sync_time.as_secs_f64(),
        plain_sync.as_secs_f64(),
        sync_time.as_secs_f64() / plain_sync.as_secs_f64()
    );
    println!(
        "| the same changes checked in memory (signatures + rules, no network) | {:.3} s | {:.3} s | {:.1}× |",
        check.as_secs_f64(),
        plain_sync.as_secs_f64(),
        check.as_secs_f64() / plain_sync.as_secs_f64()
    );
    Ok(())
}

/// Feeds every stored roster change into an empty `SignedDoc` at once: the
/// cost of verifying and authorizing them, without sockets or disk.
fn check_in_memory(home: &std::path::Path, ws_id: &str) -> anyhow::Result<Duration> {
    let id: [u8; 32] = hex::decode(ws_id)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("bad workspace id"))?;
    let changes = meshwork::node::Store::open(&home.join("db"))?.changes(&id)?;
    let rules = meshwork::crdt::signed::Rules::Roster {
        workspace: meshwork::crdt::automerge::ChangeHash(id),
    };
    let t = Instant::now();
    let report = meshwork::crdt::SignedDoc::new(rules).ingest(changes);
    let elapsed = t.elapsed();
    anyhow::ensure!(report.rejected.is_empty() && report.missing_deps == 0);
    Ok(elapsed)
}

/// The same edits with plain automerge in memory, and a sync of the result
/// to an empty document in the same process.
fn plain_automerge() -> (Duration, usize, Duration) {
    let t = Instant::now();
    let mut doc = Automerge::new();
    let (members, dept) = doc
        .transact::<_, _, meshwork::crdt::automerge::AutomergeError>(|tx| {
            let members = tx.put_object(ROOT, "members", ObjType::Map)?;
            let depts = tx.put_object(ROOT, "depts", ObjType::Map)?;
            let d = tx.put_object(&depts, "d", ObjType::Map)?;
            let dm = tx.put_object(&d, "members", ObjType::Map)?;
            Ok((members, dm))
        })
        .expect("plain automerge")
        .result;
    for i in 0..MEMBERS {
        let key = member(i).to_string();
        doc.transact::<_, _, meshwork::crdt::automerge::AutomergeError>(|tx| {
            let m = tx.put_object(&members, key.as_str(), ObjType::Map)?;
            tx.put(&m, "name", format!("Member {i}"))?;
            tx.put(&m, "role", "member")?;
            tx.put(&m, "joined_at", 0i64)
        })
        .expect("plain automerge");
        doc.transact::<_, _, meshwork::crdt::automerge::AutomergeError>(|tx| {
            tx.put(&dept, key.as_str(), true)
        })
        .expect("plain automerge");
    }
    let build = t.elapsed();
    let size = doc.save().len();
    let t = Instant::now();
    let mut fresh = Automerge::new();
    let (mut s1, mut s2) = (sync::State::new(), sync::State::new());
    loop {
        let a = doc.generate_sync_message(&mut s1);
        if let Some(m) = a.clone() {
            fresh.receive_sync_message(&mut s2, m).expect("sync");
        }
        let b = fresh.generate_sync_message(&mut s2);
        if let Some(m) = b.clone() {
            doc.receive_sync_message(&mut s1, m).expect("sync");
        }
        if a.is_none() && b.is_none() {
            break;
        }
    }
    (build, size, t.elapsed())
}
