//! The spine with real nodes over real sockets: a workspace that several
//! nodes replicate, and the ways in which outsiders and forgers fail.

mod common;

use std::time::Duration;

use common::*;
use meshwork::crdt::automerge::transaction::CommitOptions;
use meshwork::crdt::automerge::{ActorId, ChangeHash, ReadDoc};
use meshwork::crdt::roster::write;
use meshwork::crdt::signed::Rules;
use meshwork::crdt::{SignedChange, SignedDoc};
use meshwork::node::{Home, NodeError, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_on_a_roster() {
    let (_clock, ada, others) = office(&["Bob", "Cleo"]).await;
    let [bob, cleo] = &others[..] else {
        unreachable!()
    };
    ada.dept_create("Research").await.unwrap();
    ada.dept_add("Bob", "Research").await.unwrap();
    ada.dept_rename("Research", "R&D").await.unwrap();
    for n in [bob, cleo] {
        until_roster(n, "R&D holds Bob", |r| {
            r.resolve_dept("R&D")
                .is_ok_and(|d| d.members == vec![bob.member_id()])
        })
        .await;
    }
    let a = ada.roster().unwrap();
    assert_eq!(a.active_members().count(), 3);
    until_roster(bob, "same roster as Ada", |r| *r == a).await;
    until_roster(cleo, "same roster as Ada", |r| *r == a).await;
    // A member reads, but cannot restructure.
    let err = bob.dept_create("Bob's").await.unwrap_err();
    assert!(matches!(err, NodeError::Forbidden(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_is_admitted_while_the_inviting_admin_is_offline() {
    let (clock, ada, others) = office(&["Bob"]).await;
    let bob = &others[0];
    until("Ada and Bob connected", || connected(&ada, bob)).await;
    let token = invite(&ada, None).await;
    // The invite must have reached a member before its admin goes offline.
    let invite_id = meshwork::node::wire::InviteToken::decode(&token)
        .unwrap()
        .invite_id;
    until_roster(bob, "Bob knows the invite", |r| {
        r.invite(&invite_id).is_some()
    })
    .await;
    ada.shutdown().await;
    let cleo = spawn("Cleo", &clock).await;
    cleo.join(&token).await.unwrap();
    let roster = cleo.roster().unwrap();
    assert!(roster.is_active(&cleo.member_id()));
    assert_eq!(roster.name, "Acme");
    until_roster(bob, "Bob sees Cleo", |r| r.is_active(&cleo.member_id())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_used_invite_is_refused() {
    let (clock, ada, _) = office(&[]).await;
    let token = invite(&ada, None).await;
    clock.advance(Duration::from_secs(2 * 3600));
    let late = spawn("Late", &clock).await;
    let err = late.join(&token).await.unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
    assert!(late.status().await.workspace.is_none());

    let token = invite(&ada, None).await;
    spawn("First", &clock).await.join(&token).await.unwrap();
    let second = spawn("Second", &clock).await;
    let err = second.join(&token).await.unwrap_err();
    assert!(err.to_string().contains("already used"), "{err}");
    assert!(!ada.roster().unwrap().is_active(&second.member_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_were_apart_converge_when_they_reconnect() {
    let (clock, ada, mut others) = office(&["Bob"]).await;
    ada.promote("Bob").await.unwrap();
    let bob = others.pop().unwrap();
    until_roster(&bob, "Bob is admin", |r| r.is_admin(&bob.member_id())).await;

    // Apart: Bob stops; Ada works alone; Ada stops; Bob works alone.
    let bob_dir = stop(bob).await;
    ada.dept_create("Sales").await.unwrap();
    let ada_dir = stop(ada).await;
    let bob = restart(bob_dir, &clock, vec![]).await;
    bob.dept_create("Support").await.unwrap();

    // Together again: Ada dials Bob; no sync command is given.
    let ada = restart(ada_dir, &clock, vec![addr(&bob).await]).await;
    for n in [&ada, &bob] {
        until_roster(n, "both departments", |r| {
            r.resolve_dept("Sales").is_ok() && r.resolve_dept("Support").is_ok()
        })
        .await;
    }
    assert_eq!(ada.roster().unwrap(), bob.roster().unwrap());
}

/// Issue 14: two admins apart each create "Ops". After the heal, the bare
/// name is refused with both ids on both nodes; labels tell them apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_name_created_apart_is_refused_then_told_apart_by_id() {
    let (clock, ada, mut others) = office(&["Bob"]).await;
    ada.promote("Bob").await.unwrap();
    let bob = others.pop().unwrap();
    until_roster(&bob, "Bob is admin", |r| r.is_admin(&bob.member_id())).await;

    let bob_dir = stop(bob).await;
    let east = ada.dept_create("Ops").await.unwrap();
    let ada_dir = stop(ada).await;
    let bob = restart(bob_dir, &clock, vec![]).await;
    let west = bob.dept_create("Ops").await.unwrap();
    let ada = restart(ada_dir, &clock, vec![addr(&bob).await]).await;
    for n in [&ada, &bob] {
        until_roster(n, "both Ops", |r| r.depts.len() == 2).await;
    }
    let roster = ada.roster().unwrap();
    assert_eq!(roster, bob.roster().unwrap());

    for n in [&ada, &bob] {
        let err = n.dept_add("Bob", "Ops").await.unwrap_err();
        assert!(matches!(err, NodeError::BadRequest(_)), "{err}");
        let said = err.to_string();
        assert!(said.contains(&east.id) && said.contains(&west.id), "{said}");
        assert!(n.members(Some("Ops")).is_err());
    }
    // Refused locally: a third "Ops", or renaming one to the other's name.
    let label = roster.dept_label(&east.id).unwrap();
    assert_ne!(label, "Ops");
    for err in [
        ada.dept_create("Ops").await.unwrap_err(),
        ada.dept_rename(&label, "Ops").await.unwrap_err(),
    ] {
        assert!(matches!(err, NodeError::Conflict(_)), "{err}");
    }
    // By label (as `dept list` shows it), or by id.
    ada.dept_add("Ada", &label).await.unwrap();
    ada.post(&label, "east side", None).await.unwrap();
    let threads = ada.feed(&east.id, 10, None).unwrap();
    assert_eq!(threads[0].dept, label);
    // Renaming one ends the clash.
    ada.dept_rename(&label, "Ops East").await.unwrap();
    until_roster(&bob, "the rename", |r| {
        r.resolve_dept("Ops").is_ok_and(|d| d.id == west.id)
            && r.resolve_dept("Ops East").is_ok_and(|d| d.id == east.id)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_finds_its_workspace_from_its_peer_book() {
    let (clock, ada, mut others) = office(&["Bob"]).await;
    let bob = others.pop().unwrap();
    let ada_id = ada.peer_id().to_string();
    until("Bob knows where Ada listens", || async {
        bob.peers()
            .await
            .iter()
            .any(|p| p.peer_id == ada_id && p.member_id.is_some() && !p.addrs.is_empty())
    })
    .await;
    let dir = stop(bob).await;
    ada.dept_create("While away").await.unwrap();
    // No --peer, no mDNS: only the peer book says where Ada is.
    let bob = restart(dir, &clock, vec![]).await;
    until_roster(&bob, "Bob catches up", |r| {
        r.resolve_dept("While away").is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_admin_change_is_rejected_and_not_forwarded() {
    let (clock, ada, mut others) = office(&["Bob", "Cleo"]).await;
    let cleo = others.pop().unwrap();
    let bob = others.pop().unwrap();
    until_roster(&cleo, "Cleo knows Bob", |r| r.is_active(&bob.member_id())).await;

    // Bob's node turns hostile: a change only an admin may make, signed with
    // Bob's own key, is slipped into his store.
    let bob_dir = stop(bob).await;
    let ws_id = ada.status().await.workspace.unwrap().id;
    forge_into_store(&bob_dir, &ws_id, |tx| {
        write::create_dept(tx, "evil", "Evil")
    });
    let bob = restart(bob_dir, &clock, vec![addr(&ada).await]).await;
    assert!(
        bob.roster().unwrap().resolve_dept("Evil").is_ok(),
        "the forgery is in Bob's store"
    );

    // Ada refuses it and cuts Bob off; Cleo never sees it either.
    until("Ada disconnects Bob", || async {
        !connected(&ada, &bob).await
    })
    .await;
    ada.dept_create("After").await.unwrap();
    until_roster(&cleo, "Cleo sees Ada's later change", |r| {
        r.resolve_dept("After").is_ok()
    })
    .await;
    for n in [&ada, &cleo] {
        assert!(n.roster().unwrap().resolve_dept("Evil").is_err());
    }
}

/// Writes a change built by hand, signed by the home's own key, straight
/// into a stopped node's store.
fn forge_into_store(
    dir: &tempfile::TempDir,
    ws_id: &str,
    edit: impl FnOnce(
        &mut meshwork::crdt::automerge::transaction::Transaction<'_>,
    ) -> Result<(), meshwork::crdt::automerge::AutomergeError>,
) {
    let id: [u8; 32] = hex::decode(ws_id).unwrap().try_into().unwrap();
    let signer = Home::new(dir.path()).identity().unwrap().signer;
    let store = Store::open(&dir.path().join("db")).unwrap();
    let doc = SignedDoc::load(
        Rules::Roster {
            workspace: ChangeHash(id),
        },
        store.changes(&id).unwrap(),
    )
    .unwrap();
    let mut raw = doc.doc().fork();
    raw.set_actor(ActorId::from(signer.id().as_bytes().as_slice()));
    let hash = raw
        .transact_with(|_| CommitOptions::default(), edit)
        .unwrap()
        .hash
        .unwrap();
    let change = raw.get_change_by_hash(&hash).unwrap();
    let forged = SignedChange {
        bytes: change.raw_bytes().to_vec(),
        signature: signer.sign_change(&hash.0).to_vec(),
    };
    store.put_changes(&id, &[forged]).unwrap();
    futures::executor::block_on(store.flush()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_without_the_key_cannot_connect() {
    let (clock, ada, _) = office(&[]).await;
    let token = invite(&ada, None).await;
    // Same invite, but a different network key: the handshake cannot finish.
    let mut forged = meshwork::node::wire::InviteToken::decode(&token).unwrap();
    forged.secret = [0x55; 32];
    let outsider = spawn("Mallory", &clock).await;
    let err = outsider.join(&forged.encode().unwrap()).await.unwrap_err();
    assert!(matches!(err, NodeError::Unreachable(_)), "{err}");
    assert!(!connected(&ada, &outsider).await);
    assert!(!ada.roster().unwrap().is_active(&outsider.member_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_holder_without_a_valid_invite_is_disconnected() {
    let (clock, ada, _) = office(&[]).await;
    let token = invite(&ada, None).await;
    let mut forged = meshwork::node::wire::InviteToken::decode(&token).unwrap();
    forged.invite_secret = [0x66; 32];
    let intruder = spawn("Mallory", &clock).await;
    let err = intruder.join(&forged.encode().unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("forged"), "{err}");
    assert!(!ada.roster().unwrap().is_active(&intruder.member_id()));
    // It passed the network key, so it reached Ada, but it may not stay.
    let mut again = forged.clone();
    again.invite_id = "nonsense".into();
    let lingerer = spawn("Lingerer", &clock).await;
    let _ = lingerer.join(&again.encode().unwrap()).await;
    until("Ada drops non-members", || async {
        !connected(&ada, &intruder).await && !connected(&ada, &lingerer).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_is_disconnected_and_learns_it_was_removed() {
    let (_clock, ada, others) = office(&["Bob", "Cleo"]).await;
    let [bob, cleo] = &others[..] else {
        unreachable!()
    };
    until("Ada and Bob connected", || connected(&ada, bob)).await;
    let removed = ada.remove_member("Bob").await.unwrap();
    assert_eq!(removed.id, bob.member_id());
    until_roster(cleo, "Cleo sees Bob removed", |r| {
        !r.is_active(&bob.member_id())
    })
    .await;
    until("Ada and Cleo drop Bob", || async {
        !connected(&ada, bob).await && !connected(cleo, bob).await
    })
    .await;
    // Bob tries again: he is told he was removed (his own roster says so
    // now, his status too), and takes part no more.
    bob.dial(addr(&ada).await.parse().unwrap()).await.unwrap();
    until_roster(bob, "Bob learns he was removed", |r| {
        r.member(&bob.member_id()).is_some_and(|m| m.removed)
    })
    .await;
    let status = bob.status().await;
    assert!(status
        .workspace
        .is_some_and(|w| w.removed && w.role.is_none()));
    until("Bob disconnected", || async { !connected(&ada, bob).await }).await;
    ada.dept_create("Later").await.unwrap();
    until_roster(cleo, "Cleo sees a later change", |r| {
        r.resolve_dept("Later").is_ok()
    })
    .await;
    assert!(!connected(&ada, bob).await);
    assert!(bob.roster().unwrap().resolve_dept("Later").is_err());
}

/// Issue 14: a member removed while away learns it on return — the roster
/// up to the removal and nothing after — and takes part no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_while_away_learns_it_on_return() {
    let (clock, ada, mut others) = office(&["Bob"]).await;
    let bob = others.pop().unwrap();
    until("Ada and Bob connected", || connected(&ada, &bob)).await;
    let bob_dir = stop(bob).await;
    ada.remove_member("Bob").await.unwrap();
    ada.dept_create("After").await.unwrap();
    let bob = restart(bob_dir, &clock, vec![addr(&ada).await]).await;
    until_roster(&bob, "Bob learns he was removed", |r| {
        r.member(&bob.member_id()).is_some_and(|m| m.removed)
    })
    .await;
    until("Bob disconnected", || async {
        !connected(&ada, &bob).await
    })
    .await;
    let roster = bob.roster().unwrap();
    assert!(
        roster.resolve_dept("After").is_err(),
        "nothing after the removal"
    );
    let err = bob.dept_create("Mine").await.unwrap_err();
    assert!(matches!(err, NodeError::Forbidden(_)), "{err}");
}

/// Issue 14, the first report: history written before someone leaves a
/// department stays valid for everyone, including members who join later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_sees_the_posts_of_a_member_who_left() {
    let (_clock, ada, others) = office(&["Bob", "Dave"]).await;
    let [bob, dave] = &others[..] else {
        unreachable!()
    };
    ada.dept_create("Sales").await.unwrap();
    ada.dept_add("Ada", "Sales").await.unwrap();
    ada.dept_add("Bob", "Sales").await.unwrap();
    until_roster(bob, "Bob in Sales", |r| {
        r.resolve_dept("Sales")
            .is_ok_and(|d| d.members.contains(&bob.member_id()))
    })
    .await;
    ada.post("Sales", "one", None).await.unwrap();
    until("Bob has Ada's post", || async {
        bob.feed("Sales", 10, None).is_ok_and(|f| f.len() == 1)
    })
    .await;
    bob.post("Sales", "two", None).await.unwrap();
    until("Ada has Bob's post", || async {
        ada.feed("Sales", 10, None).is_ok_and(|f| f.len() == 2)
    })
    .await;
    ada.post("Sales", "three", None).await.unwrap();
    ada.dept_remove("Bob", "Sales").await.unwrap();
    ada.post("Sales", "four", None).await.unwrap();
    ada.dept_add("Dave", "Sales").await.unwrap();
    until("Dave sees all four posts", || async {
        dave.feed("Sales", 10, None).is_ok_and(|f| f.len() == 4)
    })
    .await;
    let bodies: Vec<String> = dave
        .feed("Sales", 10, None)
        .unwrap()
        .into_iter()
        .filter_map(|t| t.post.body)
        .collect();
    assert_eq!(bodies, ["four", "three", "two", "one"]);
}

/// A member added to a department while connected gets its history at
/// once, not at the next periodic sync (the test's nodes sync every hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_to_a_department_gets_its_history_at_once() {
    let clock = meshwork::node::ManualClock::new(T0);
    let slow = |cfg: &mut meshwork::node::NodeConfig| {
        cfg.net.sync_interval = Duration::from_secs(3600);
    };
    let ada = spawn_with("Ada", &clock, slow).await;
    ada.create_workspace("Acme").await.unwrap();
    let bob = spawn_with("Bob", &clock, slow).await;
    bob.join(&invite(&ada, None).await).await.unwrap();
    until("Ada and Bob connected", || connected(&ada, &bob)).await;
    ada.dept_create("Sales").await.unwrap();
    ada.dept_add("Ada", "Sales").await.unwrap();
    ada.post("Sales", "before Bob", None).await.unwrap();
    // A round trip through Ada's event loop: the post's push has gone (to
    // nobody) before Bob joins the department.
    ada.peers().await;
    ada.dept_add("Bob", "Sales").await.unwrap();
    until("Bob has the history", || async {
        bob.feed("Sales", 10, None).is_ok_and(|f| f.len() == 1)
    })
    .await;
}
