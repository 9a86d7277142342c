//! The 72-hour promise between real nodes on 127.0.0.1, days moved on
//! manual clocks: a pin node keeps a file after its uploader left and never
//! holds its plaintext; a lost pinner's replica is taken over; bytes are
//! collected past the deadline unless a local pin keeps them; a pin node at
//! its quota (or with no disk to spare) refuses and others pick the work up.

mod common;

use std::time::Duration;

use common::*;
use meshwork::node::crdt::roster::Role;
use meshwork::node::disk::DEFAULT_MIN_FREE;
use meshwork::node::{
    Clock, ManualClock, NodeError, PinInfo, PinNodeConfig, PinsView, AUDIT_EVERY_MS, LOST_AFTER_MS,
    VOLUNTEER_STAGGER_MS,
};

const HOUR: Duration = Duration::from_secs(3600);
const MIB: usize = 1024 * 1024;

/// A pin node named `name` with `quota` bytes on `clock`, admitted by
/// `admin`.
async fn pin_node(admin: &TestNode, name: &str, clock: &ManualClock, quota: u64) -> TestNode {
    let node = spawn_with(name, clock, |cfg| {
        cfg.pin = Some(PinNodeConfig { quota });
    })
    .await;
    let (member, token) = admin
        .add_pinner(&node.peer_id().to_string(), Some(name))
        .await
        .unwrap();
    assert_eq!(member.role, Role::Pinner);
    assert_eq!(member.id, node.member_id());
    node.join(&token.token).await.unwrap();
    node
}

/// Waits until `node`'s ledger lists a pin request for `blob`.
async fn until_requested(node: &TestNode, blob: &str) {
    until(&format!("{} sees the request", node.name()), || async {
        node.pins().unwrap().pins.iter().any(|p| p.blob == blob)
    })
    .await;
}

/// Waits until `node`'s ledger lists `blob` with `pinners` pinners.
async fn until_pinners(node: &TestNode, blob: &str, pinners: usize) {
    until(
        &format!("{} sees {pinners} pinner(s)", node.name()),
        || async {
            node.pins()
                .unwrap()
                .pins
                .iter()
                .any(|p| p.blob == blob && p.pinners.len() == pinners)
        },
    )
    .await;
}

fn pin_of<'a>(view: &'a PinsView, blob: &str) -> &'a PinInfo {
    view.pins
        .iter()
        .find(|p| p.blob == blob)
        .expect("the blob is pinned")
}

fn stored(node: &TestNode, blob: &str) -> bool {
    node.home().blobs().join(blob).exists()
}

/// Bob shares `len` bytes into Research: the file's id, its blob and bytes.
async fn bob_shares(
    bob: &TestNode,
    work: &std::path::Path,
    len: usize,
) -> (String, String, Vec<u8>) {
    let bytes = content(len, 0x0091_7ed5);
    let path = write_file(work, "payroll-secret.xlsx", &bytes);
    let shared = bob.share("Research", &path, None, None).await.unwrap();
    (shared.entry.id, shared.entry.blob, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_node_keeps_a_file_for_72_hours_after_its_uploader_left_and_then_lets_it_go() {
    let (clock, ada, bob, cleo, _dave) = research().await;
    // The pin node's clock runs ten minutes ahead: within the skew margin.
    let pia_clock = ManualClock::new(clock.now() + 10 * 60 * 1000);
    let pia = pin_node(&ada, "Pia", &pia_clock, 1 << 30).await;
    let advance = |by: Duration| {
        clock.advance(by);
        pia_clock.advance(by);
    };
    let work = tempfile::tempdir().unwrap();
    let (id, blob, bytes) = bob_shares(&bob, work.path(), 3 * MIB + 7).await;

    // Pia sees the request (hash, size, deadline — not the file), fetches
    // and commits.
    until_requested(&pia, &blob).await;
    let view = pia.pins().unwrap();
    let seen = pin_of(&view, &blob);
    assert_eq!(
        (seen.file_id.as_deref(), seen.name.as_deref()),
        (None, None)
    );
    assert!(
        seen.size > bytes.len() as u64,
        "the blob is ciphertext, tags and all"
    );
    let done = pia.reconcile_pins().await.unwrap();
    assert_eq!(done.committed, vec![blob.clone()]);
    assert!(stored(&pia, &blob));
    // Ciphertext only: neither the bytes nor the file's name anywhere in
    // what the pin node stores (blobs, ledger, sled).
    assert!(!on_disk(
        pia.dir.path(),
        std::str::from_utf8(MARKER).unwrap()
    ));
    assert!(!on_disk(pia.dir.path(), "payroll-secret"));
    // A pass with nothing new changes nothing; should the blob vanish
    // from Pia's disk, her next pass fetches it again (Bob still has it).
    assert!(pia.reconcile_pins().await.unwrap().committed.is_empty());
    std::fs::remove_file(pia.home().blobs().join(&blob)).unwrap();
    assert!(!stored(&pia, &blob));
    assert_eq!(
        pia.reconcile_pins().await.unwrap().committed,
        vec![blob.clone()]
    );
    assert!(stored(&pia, &blob));
    // Pia sees no department content.
    assert!(matches!(
        pia.files("Research"),
        Err(NodeError::Forbidden(_) | NodeError::NotFound(_))
    ));

    until_pinners(&cleo, &blob, 1).await;
    let view = cleo.pins().unwrap();
    let p = pin_of(&view, &blob);
    assert_eq!(p.file_id.as_deref(), Some(id.as_str()));
    assert_eq!(p.pinners[0].name, "Pia");
    assert_eq!((p.replicas, p.target, p.meets_target), (1, 2, false));

    // Bob leaves for good; 71 hours later Cleo fetches from Pia.
    let bob_dir = stop(bob).await;
    advance(71 * HOUR);
    let out = work.path().join("cleo.xlsx");
    cleo.get(&id, &out, None).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // Ada keeps it a week longer on her own node.
    let pinned = ada.pin(&id, 7 * 24 * HOUR).await.unwrap();
    assert!(pinned.here);
    assert!(pinned
        .pinners
        .iter()
        .any(|p| p.member_id == ada.member_id()));

    // At t+72h the deadline has passed by Pia's fast clock, but not past the
    // skew margin: nothing is collected.
    advance(HOUR);
    assert!(pia.reconcile_pins().await.unwrap().collected.is_empty());
    assert!(stored(&pia, &blob));

    // At t+73h: the pin node and Cleo collect the bytes; Ada's pin keeps
    // hers.
    advance(HOUR);
    assert_eq!(
        pia.reconcile_pins().await.unwrap().collected,
        vec![blob.clone()]
    );
    assert!(!stored(&pia, &blob));
    assert_eq!(
        cleo.reconcile_pins().await.unwrap().collected,
        vec![blob.clone()]
    );
    assert!(!stored(&cleo, &blob));
    assert!(ada.reconcile_pins().await.unwrap().collected.is_empty());
    assert!(stored(&ada, &blob));
    until("Cleo's library no longer lists her as a holder", || async {
        cleo.files("Research")
            .unwrap()
            .iter()
            .any(|f| f.entry.id == id && f.peers == 1)
    })
    .await;
    // Pia withdrew her commitment: only Ada's is left.
    until_pinners(&ada, &blob, 1).await;
    let view = ada.pins().unwrap();
    let p = pin_of(&view, &blob);
    assert!(p.here);
    assert_eq!(p.pinners[0].member_id, ada.member_id());

    // Ada unpins: her copy goes at the next pass.
    ada.unpin(&id).await.unwrap();
    assert!(matches!(ada.unpin(&id).await, Err(NodeError::NotFound(_))));
    assert_eq!(
        ada.reconcile_pins().await.unwrap().collected,
        vec![blob.clone()]
    );
    assert!(!stored(&ada, &blob));
    drop(bob_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_a_lost_pinner_is_replaced_and_the_file_stays_fetchable() {
    let (clock, ada, bob, cleo, dave) = research().await;
    let pia = pin_node(&ada, "Pia", &clock, 1 << 30).await;
    let pete = pin_node(&ada, "Pete", &clock, 1 << 30).await;
    let work = tempfile::tempdir().unwrap();
    let (id, blob, bytes) = bob_shares(&bob, work.path(), 2 * MIB).await;
    for pinner in [&pia, &pete] {
        until("the pin node sees the request", || async {
            pinner.pins().unwrap().pins.iter().any(|p| p.blob == blob)
        })
        .await;
        assert_eq!(
            pinner.reconcile_pins().await.unwrap().committed,
            vec![blob.clone()]
        );
    }
    for n in [&ada, &cleo] {
        until_pinners(n, &blob, 2).await;
        assert!(pin_of(&n.pins().unwrap(), &blob).meets_target);
        // The target is met: nobody volunteers.
        assert!(n.reconcile_pins().await.unwrap().committed.is_empty());
    }

    // Pia goes; once she has been out of sight past the bound, her
    // commitment no longer counts and exactly one department member takes
    // over (Bob, the uploader, is not asked: his leaving is the point).
    let pia_peer = pia.peer_id();
    let _pia_dir = stop(pia).await;
    for n in [&ada, &cleo] {
        until("Pia's node is gone", || async {
            !n.peers()
                .await
                .iter()
                .any(|p| p.peer_id == pia_peer.to_string())
        })
        .await;
    }
    clock.advance(Duration::from_millis(LOST_AFTER_MS as u64 + 60_000));
    let lost = |n: &TestNode| pin_of(&n.pins().unwrap(), &blob).clone();
    let p = lost(&ada);
    assert_eq!(p.replicas, 1);
    assert!(p.pinners.iter().any(|x| x.name == "Pia" && x.lost));
    assert!(!p.meets_target);
    // Dave is not in Research: never a volunteer.
    assert!(dave.reconcile_pins().await.unwrap().committed.is_empty());
    let first = ada.reconcile_pins().await.unwrap().committed.len();
    if first == 1 {
        until_pinners(&cleo, &blob, 3).await;
    }
    let second = cleo.reconcile_pins().await.unwrap().committed.len();
    assert_eq!(first + second, 1, "exactly one of Ada and Cleo takes over");
    let (taker, other) = if first == 1 {
        (&ada, &cleo)
    } else {
        (&cleo, &ada)
    };
    until_pinners(other, &blob, 3).await;
    let p = lost(other);
    assert_eq!((p.replicas, p.meets_target), (2, true));
    assert!(p
        .pinners
        .iter()
        .any(|x| x.member_id == taker.member_id() && !x.lost));
    assert!(bob.reconcile_pins().await.unwrap().committed.is_empty());

    // With Bob and Pia gone, the other fetches from Pete and the taker.
    let _bob_dir = stop(bob).await;
    let out = work.path().join("other.bin");
    other.get(&id, &out, None).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_node_at_its_quota_refuses_says_so_and_members_pick_the_work_up() {
    let (clock, ada, bob, cleo, _dave) = research().await;
    let pia = pin_node(&ada, "Pia", &clock, MIB as u64).await;
    let work = tempfile::tempdir().unwrap();
    let (id, blob, _) = bob_shares(&bob, work.path(), 3 * MIB).await;
    until_requested(&pia, &blob).await;
    let done = pia.reconcile_pins().await.unwrap();
    assert!(done.committed.is_empty());
    assert_eq!(done.refused, vec![blob.clone()]);
    assert!(!stored(&pia, &blob), "a refused blob is not fetched");
    until("Ada sees Pia's quota full", || async {
        ada.pins()
            .unwrap()
            .nodes
            .iter()
            .any(|n| n.name == "Pia" && n.full)
    })
    .await;
    let view = ada.pins().unwrap();
    let node = view.nodes.iter().find(|n| n.name == "Pia").unwrap();
    assert_eq!((node.quota, node.used, node.refused), (MIB as u64, 0, 1));
    assert_eq!(pin_of(&view, &blob).replicas, 0);

    // However large its quota, a pin node whose disk has nothing to spare
    // beyond its reserve refuses too.
    let pim = pin_node(&ada, "Pim", &clock, 1 << 40).await;
    pim.set_free(DEFAULT_MIN_FREE + (2 * MIB) as u64);
    until_requested(&pim, &blob).await;
    let done = pim.reconcile_pins().await.unwrap();
    assert!(done.committed.is_empty());
    assert_eq!(done.refused, vec![blob.clone()]);
    assert!(!stored(&pim, &blob), "a refused blob is not fetched");

    // k = 2 and no pinner: both department members besides the uploader
    // volunteer — Cleo even with no disk to spare, since she fetched the
    // file already — and Ada only once she has room.
    cleo.get(&id, &work.path().join("cleo.bin"), None)
        .await
        .unwrap();
    cleo.set_free(0);
    ada.set_free(0);
    assert!(ada.reconcile_pins().await.unwrap().committed.is_empty());
    ada.set_free(PLENTY);
    assert_eq!(
        ada.reconcile_pins().await.unwrap().committed,
        vec![blob.clone()]
    );
    until_pinners(&cleo, &blob, 1).await;
    assert_eq!(
        cleo.reconcile_pins().await.unwrap().committed,
        vec![blob.clone()]
    );
    until_pinners(&ada, &blob, 2).await;
    assert!(pin_of(&ada.pins().unwrap(), &blob).meets_target);
    assert!(stored(&ada, &blob) && stored(&cleo, &blob));

    // A member keeps her promise too: should the blob vanish from Cleo's
    // disk, her next pass fetches it again, target met or not.
    std::fs::remove_file(cleo.home().blobs().join(&blob)).unwrap();
    cleo.set_free(PLENTY);
    assert_eq!(
        cleo.reconcile_pins().await.unwrap().committed,
        vec![blob.clone()]
    );
    assert!(stored(&cleo, &blob));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volunteers_let_their_copies_go_once_pin_nodes_meet_the_target() {
    let (clock, ada, bob, cleo, _dave) = research().await;
    let work = tempfile::tempdir().unwrap();
    let (id, blob, bytes) = bob_shares(&bob, work.path(), 2 * MIB).await;
    // Cleo fetches the file for herself; then, with k = 2 and no pin node,
    // Ada and Cleo both volunteer.
    until_requested(&cleo, &blob).await;
    until("Cleo sees the file", || async {
        cleo.files("Research").is_ok_and(|f| !f.is_empty())
    })
    .await;
    cleo.get(&id, &work.path().join("cleo.bin"), None)
        .await
        .unwrap();
    for (n, who) in [(&ada, "Ada"), (&cleo, "Cleo")] {
        until_requested(n, &blob).await;
        assert_eq!(
            n.reconcile_pins().await.unwrap().committed,
            vec![blob.clone()],
            "{who} volunteers"
        );
    }
    // Pin nodes arrive and take the blob on.
    let pia = pin_node(&ada, "Pia", &clock, 1 << 40).await;
    let pim = pin_node(&ada, "Pim", &clock, 1 << 40).await;
    for p in [&pia, &pim] {
        until_requested(p, &blob).await;
        assert_eq!(
            p.reconcile_pins().await.unwrap().committed,
            vec![blob.clone()]
        );
    }
    // One pin node is not enough for k = 2: nobody steps down early.
    // With both, the volunteers let go: Ada's copy goes, Cleo keeps the
    // one she fetched for herself, and both commitments are released.
    for n in [&ada, &cleo] {
        until_pinners(n, &blob, 4).await;
    }
    let done = ada.reconcile_pins().await.unwrap();
    assert_eq!(done.stepped_down, vec![blob.clone()]);
    assert!(!stored(&ada, &blob), "a volunteered copy is deleted");
    let done = cleo.reconcile_pins().await.unwrap();
    assert_eq!(done.stepped_down, vec![blob.clone()]);
    assert!(stored(&cleo, &blob), "a copy its member fetched stays");
    until_pinners(&bob, &blob, 2).await;
    let view = bob.pins().unwrap();
    assert!(pin_of(&view, &blob).meets_target);
    assert!(pin_of(&view, &blob)
        .pinners
        .iter()
        .all(|p| p.name == "Pia" || p.name == "Pim"));
    // The next pass volunteers again for nothing, and the file is still
    // there for Ada.
    assert!(ada.reconcile_pins().await.unwrap().committed.is_empty());
    let out = work.path().join("ada.bin");
    ada.get(&id, &out, None).await.unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_keeps_72_hours_and_pinners_stay_out_of_departments() {
    let (clock, ada, bob, _cleo, _dave) = research().await;
    let pia = pin_node(&ada, "Pia", &clock, 1 << 30).await;

    // Retention below 72 h, or a replica target out of range, is refused;
    // so is a policy set by a non-admin.
    for (retention, replicas) in [
        (Some(71 * HOUR), None),
        (Some(11 * 365 * 24 * HOUR), None),
        (None, Some(0)),
        (None, Some(17)),
    ] {
        assert!(matches!(
            ada.set_policy(retention, replicas).await,
            Err(NodeError::BadRequest(_))
        ));
    }
    assert!(matches!(
        bob.set_policy(Some(96 * HOUR), None).await,
        Err(NodeError::Forbidden(_))
    ));
    let policy = ada.set_policy(Some(96 * HOUR), Some(3)).await.unwrap();
    assert_eq!((policy.retention_ms, policy.replicas), (96 * 3_600_000, 3));
    until_roster(&bob, "Bob sees the new policy", |r| r.policy == policy).await;
    let work = tempfile::tempdir().unwrap();
    let (id, _, _) = bob_shares(&bob, work.path(), 1000).await;
    let (_, info) = bob.file(&id).unwrap();
    assert_eq!(info.available_until, info.entry.shared_at + 96 * 3_600_000);

    // A pinner is in no department, and is not admitted twice.
    assert!(ada.dept_add("Pia", "Research").await.is_err());
    assert!(matches!(
        ada.add_pinner(&pia.peer_id().to_string(), None).await,
        Err(NodeError::Conflict(_))
    ));
    assert!(matches!(
        ada.add_pinner("not-a-peer-id", None).await,
        Err(NodeError::BadRequest(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_first_in_rank_does_not_volunteer_the_next_steps_in_a_stagger_later() {
    let (clock, ada, bob, cleo, _dave) = research().await;
    let pia = pin_node(&ada, "Pia", &clock, 1 << 30).await;
    let work = tempfile::tempdir().unwrap();
    let (_id, blob, _) = bob_shares(&bob, work.path(), MIB).await;
    until_requested(&pia, &blob).await;
    assert_eq!(
        pia.reconcile_pins().await.unwrap().committed,
        vec![blob.clone()]
    );
    until_pinners(&ada, &blob, 1).await;
    until_pinners(&cleo, &blob, 1).await;

    // One replica is missing; Ada and Cleo are the candidates (Bob shared
    // it). The first in rank — by the same rendezvous hash the nodes use —
    // never runs a pass here, as if it ran `--no-volunteer`.
    let rank = |n: &TestNode| {
        let mut h = blake3::Hasher::new();
        h.update(blob.as_bytes());
        h.update(n.member_id().as_bytes());
        *h.finalize().as_bytes()
    };
    let second = if rank(&ada) < rank(&cleo) {
        &cleo
    } else {
        &ada
    };
    assert!(second.reconcile_pins().await.unwrap().committed.is_empty());
    clock.advance(Duration::from_millis(VOLUNTEER_STAGGER_MS as u64 / 2));
    assert!(second.reconcile_pins().await.unwrap().committed.is_empty());
    clock.advance(Duration::from_millis(VOLUNTEER_STAGGER_MS as u64 / 2));
    assert_eq!(
        second.reconcile_pins().await.unwrap().committed,
        vec![blob.clone()],
        "a stagger after it first saw the gap, the next in rank steps in"
    );
}

/// A pinner that no longer has a blob it committed to fails a member's
/// audit and stops counting there, so the member steps in; once the pinner
/// has the blob again, the next audit counts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinner_that_lost_a_blob_fails_its_audit_and_a_member_steps_in() {
    let (clock, ada, bob, cleo, _dave) = research().await;
    ada.set_policy(None, Some(1)).await.unwrap();
    until_roster(&cleo, "one replica is the target", |r| {
        r.policy.replicas == 1
    })
    .await;
    let pia = pin_node(&ada, "Pia", &clock, 1 << 30).await;
    let work = tempfile::tempdir().unwrap();
    let (_id, blob, _) = bob_shares(&bob, work.path(), MIB).await;
    until_requested(&pia, &blob).await;
    assert_eq!(
        pia.reconcile_pins().await.unwrap().committed,
        vec![blob.clone()]
    );
    until_pinners(&cleo, &blob, 1).await;
    let audited = |done: &meshwork::node::Reconciled| -> Vec<(String, bool)> {
        done.audits
            .iter()
            .map(|a| (a.blob.clone(), a.pinner == pia.member_id() && a.passed))
            .collect()
    };

    // Pia holds it: Cleo's audit passes and, with k = 1, she keeps nothing.
    let done = cleo.reconcile_pins().await.unwrap();
    assert_eq!(audited(&done), vec![(blob.clone(), true)]);
    assert!(done.committed.is_empty());

    // Until the next round is due, Cleo's passes audit nothing.
    assert!(cleo.reconcile_pins().await.unwrap().audits.is_empty());

    // Pia loses it, and runs no pass that would notice.
    std::fs::remove_file(pia.home().blobs().join(&blob)).unwrap();
    clock.advance(Duration::from_millis(AUDIT_EVERY_MS as u64));
    let done = cleo.reconcile_pins().await.unwrap();
    assert_eq!(audited(&done), vec![(blob.clone(), false)]);
    let view = cleo.pins().unwrap();
    let pin = pin_of(&view, &blob);
    let of_pia = |pin: &PinInfo| {
        pin.pinners
            .iter()
            .find(|p| p.member_id == pia.member_id())
            .unwrap()
            .failed_audit
    };
    assert!(of_pia(pin));
    assert_eq!(pin.replicas, usize::from(!done.committed.is_empty()));
    // Cleo steps in: at once if she ranks first among the volunteers, a
    // stagger later if Ada does (Ada has not audited Pia, so she still
    // counts her and stays put).
    let mut committed = done.committed;
    if committed.is_empty() {
        clock.advance(Duration::from_millis(VOLUNTEER_STAGGER_MS as u64));
        committed = cleo.reconcile_pins().await.unwrap().committed;
    }
    assert_eq!(committed, vec![blob.clone()]);
    assert!(stored(&cleo, &blob));

    // Pia's own pass finds the blob gone and fetches it again; Cleo's next
    // audit counts her again.
    assert_eq!(
        pia.reconcile_pins().await.unwrap().committed,
        vec![blob.clone()]
    );
    // With Pia enough for k = 1 again, Cleo lets her volunteered copy go.
    clock.advance(Duration::from_millis(AUDIT_EVERY_MS as u64));
    let done = cleo.reconcile_pins().await.unwrap();
    assert_eq!(audited(&done), vec![(blob.clone(), true)]);
    assert_eq!(done.stepped_down, vec![blob.clone()]);
    assert!(!stored(&cleo, &blob));
    until_pinners(&cleo, &blob, 1).await;
    let view = cleo.pins().unwrap();
    let pin = pin_of(&view, &blob);
    assert!(!of_pia(pin));
    assert_eq!(pin.replicas, 1);
}
