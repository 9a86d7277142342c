//! The roster's rules, exercised through the crate's public API: honest
//! changes replicate, hand-built forgeries and overreach are refused.

mod common;

use automerge::sync;
use automerge::transaction::Transactable;
use automerge::{ActorId, ReadDoc, ROOT};
use common::forge;
use meshwork_crdt::roster::{write, Invite, Role, Roster, RosterCache, RosterError, DEPT_CAPACITY};
use meshwork_crdt::{Rejection, SignedChange, SignedDoc, Signer};

const T0: i64 = 1_700_000_000_000;

fn signer(n: u8) -> Signer {
    Signer::from_secret([n; 32])
}

/// A workspace created by `admin`, and an empty replica that synced it.
fn workspace(admin: &Signer) -> (SignedDoc, SignedDoc) {
    let (doc, _) = SignedDoc::create_roster(admin, "Acme", "Ada", T0).unwrap();
    let mut replica = SignedDoc::new(doc.rules().clone());
    sync_pair(&doc, &mut replica);
    (doc, replica)
}

/// Runs the sync protocol both ways until neither side has more to say.
fn sync_pair(a: &SignedDoc, b: &mut SignedDoc) -> Vec<Rejection> {
    let mut a = SignedDoc::load(a.rules().clone(), all_changes(a)).unwrap();
    let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
    let mut rejected = Vec::new();
    for _ in 0..20 {
        let m1 = a.generate_sync(&mut sa);
        if let Some(m) = m1.clone() {
            rejected.extend(b.receive_sync(&mut sb, m).unwrap().rejected);
        }
        let m2 = b.generate_sync(&mut sb);
        if let Some(m) = m2.clone() {
            rejected.extend(a.receive_sync(&mut sa, m).unwrap().rejected);
        }
        if m1.is_none() && m2.is_none() {
            break;
        }
    }
    rejected
}

fn all_changes(d: &SignedDoc) -> Vec<SignedChange> {
    d.doc()
        .get_changes(&[])
        .iter()
        .map(|c| d.signed_change(&c.hash()).unwrap())
        .collect()
}

fn add_member(doc: &mut SignedDoc, admin: &Signer, who: &Signer, role: Role) -> SignedChange {
    doc.change(admin, T0, |tx| {
        write::add_member(tx, who.id(), "Bob", role, T0, None)
    })
    .unwrap()
    .unwrap()
}

#[test]
fn honest_changes_replicate() {
    let ada = signer(1);
    let (mut doc, mut replica) = workspace(&ada);
    let c = doc
        .change(&ada, T0, |tx| write::create_dept(tx, "d1", "Research"))
        .unwrap()
        .unwrap();
    let got = replica.ingest(vec![c]);
    assert_eq!(got.accepted.len(), 1, "{:?}", got.rejected);
    let roster = Roster::read(replica.doc());
    assert_eq!(roster.name, "Acme");
    assert_eq!(roster.resolve_dept("Research").unwrap().id, "d1");
    assert!(roster.is_admin(&ada.id()));
}

#[test]
fn a_forged_signature_is_refused() {
    let (ada, mallory) = (signer(1), signer(9));
    let (doc, mut replica) = workspace(&ada);
    // Claims to be Ada (actor = Ada's key) but is signed by Mallory.
    let forged = forge(&doc, &ada, &mallory, |tx| {
        write::create_dept(tx, "evil", "Evil").unwrap()
    });
    let got = replica.ingest(vec![forged]);
    assert!(got.accepted.is_empty());
    assert!(matches!(got.rejected[..], [Rejection::BadSignature(_)]));
    assert!(Roster::read(replica.doc()).depts.is_empty());
}

#[test]
fn an_unsigned_or_garbage_change_is_refused() {
    let ada = signer(1);
    let (doc, mut replica) = workspace(&ada);
    let mut c = forge(&doc, &ada, &ada, |tx| {
        write::create_dept(tx, "d", "D").unwrap()
    });
    c.signature.clear();
    let got = replica.ingest(vec![
        c,
        SignedChange {
            bytes: vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3],
            signature: vec![0; 64],
        },
    ]);
    assert!(got.accepted.is_empty());
    assert_eq!(got.rejected.len(), 2, "{:?}", got.rejected);
}

#[test]
fn a_member_cannot_change_the_structure() {
    let (ada, bob) = (signer(1), signer(2));
    let (mut doc, mut replica) = workspace(&ada);
    let added = add_member(&mut doc, &ada, &bob, Role::Member);
    assert_eq!(replica.ingest(vec![added]).accepted.len(), 1);

    // Through the API: refused locally, nothing left behind.
    let heads = doc.heads();
    let err = doc
        .change(&bob, T0, |tx| write::create_dept(tx, "d", "Bob's"))
        .unwrap_err();
    assert!(err.to_string().contains("not authorized"), "{err}");
    assert_eq!(doc.heads(), heads);

    // By hand: properly signed by Bob, yet refused by every honest replica.
    for edit in [
        Box::new(|tx: &mut automerge::transaction::Transaction<'_>| {
            write::set_role(tx, signer(2).id(), Role::Admin).unwrap()
        }) as Box<dyn FnOnce(&mut automerge::transaction::Transaction<'_>)>,
        Box::new(|tx| write::remove_member(tx, signer(1).id()).unwrap()),
        Box::new(|tx| write::create_dept(tx, "d", "Sneaky").unwrap()),
        Box::new(|tx| {
            tx.put(ROOT, "name", "Renamed").unwrap();
        }),
    ] {
        let forged = forge(&replica, &bob, &bob, edit);
        let got = replica.ingest(vec![forged]);
        assert!(got.accepted.is_empty());
        assert!(
            matches!(got.rejected[..], [Rejection::Unauthorized { .. }]),
            "{:?}",
            got.rejected
        );
    }
    let roster = Roster::read(replica.doc());
    assert_eq!(roster.name, "Acme");
    assert!(roster.depts.is_empty());
    assert!(!roster.is_admin(&bob.id()));
    // Bob may rename himself.
    let ok = forge(&replica, &bob, &bob, |tx| {
        write::set_name(tx, signer(2).id(), "Robert").unwrap()
    });
    assert_eq!(replica.ingest(vec![ok]).accepted.len(), 1);
}

#[test]
fn a_stranger_and_a_removed_member_change_nothing() {
    let (ada, bob, eve) = (signer(1), signer(2), signer(3));
    let (mut doc, mut replica) = workspace(&ada);
    let added = add_member(&mut doc, &ada, &bob, Role::Admin);
    let removed = doc
        .change(&ada, T0, |tx| write::remove_member(tx, bob.id()))
        .unwrap()
        .unwrap();
    assert_eq!(replica.ingest(vec![added, removed]).accepted.len(), 2);
    for who in [&bob, &eve] {
        let forged = forge(&replica, who, who, |tx| {
            write::create_dept(tx, "x", "X").unwrap()
        });
        assert!(replica.ingest(vec![forged]).accepted.is_empty());
    }
}

#[test]
fn a_change_building_on_a_rejected_one_is_refused_too() {
    let (ada, eve) = (signer(1), signer(3));
    let (doc, mut replica) = workspace(&ada);
    let bad = forge(&doc, &eve, &eve, |tx| {
        write::create_dept(tx, "x", "X").unwrap()
    });
    // Force Eve's change into a raw copy, and have Ada build on it.
    let mut raw = doc.doc().fork();
    raw.apply_changes(vec![
        automerge::Change::from_bytes(bad.bytes.clone()).unwrap()
    ])
    .unwrap();
    raw.set_actor(ActorId::from(ada.id().as_bytes().as_slice()));
    let h = raw
        .transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "name", "After").map(|_| ()))
        .unwrap()
        .hash
        .unwrap();
    let on_top = SignedChange {
        bytes: raw.get_change_by_hash(&h).unwrap().raw_bytes().to_vec(),
        signature: ada.sign_change(&h.0).to_vec(),
    };
    let got = replica.ingest(vec![on_top, bad]);
    assert!(got.accepted.is_empty());
    assert_eq!(got.rejected.len(), 2);
    assert_eq!(Roster::read(replica.doc()).name, "Acme");
}

fn invite(ada: &Signer, role: Role, dept: Option<&str>) -> Invite {
    Invite {
        id: "inv1".into(),
        secret_hash: Invite::hash_secret(b"secret"),
        role,
        dept: dept.map(str::to_owned),
        expires_at: T0 + 3_600_000,
        created_by: ada.id(),
        redeemed_by: None,
    }
}

#[test]
fn a_member_admits_a_joiner_with_a_valid_invite_once() {
    let (ada, bob, carol, dave) = (signer(1), signer(2), signer(3), signer(4));
    let (mut doc, _) = workspace(&ada);
    add_member(&mut doc, &ada, &bob, Role::Member);
    doc.change(&ada, T0, |tx| write::create_dept(tx, "d1", "Research"))
        .unwrap();
    let inv = invite(&ada, Role::Member, Some("d1"));
    doc.change(&ada, T0, |tx| write::create_invite(tx, &inv))
        .unwrap();
    let mut replica = SignedDoc::new(doc.rules().clone());
    assert!(sync_pair(&doc, &mut replica).is_empty());

    // Bob (not an admin) admits Carol: allowed.
    let admit = forge(&replica, &bob, &bob, |tx| {
        write::redeem_invite(tx, &inv, signer(3).id(), "Carol", T0 + 1).unwrap()
    });
    let mut other = SignedDoc::load(replica.rules().clone(), all_changes(&replica)).unwrap();
    let got = replica.ingest(vec![admit]);
    assert_eq!(got.accepted.len(), 1, "{:?}", got.rejected);
    let roster = Roster::read(replica.doc());
    assert!(roster.is_active(&carol.id()));
    assert_eq!(
        roster.resolve_dept("Research").unwrap().members,
        vec![carol.id()]
    );

    // The same invite again, for Dave: refused.
    let again = forge(&replica, &bob, &bob, |tx| {
        write::redeem_invite(tx, &inv, signer(4).id(), "Dave", T0 + 2).unwrap()
    });
    assert!(replica.ingest(vec![again]).accepted.is_empty());
    assert!(!Roster::read(replica.doc()).is_active(&dave.id()));

    // Redeeming with a better role than the invite grants: refused.
    let mut promoted = inv.clone();
    promoted.role = Role::Admin;
    let overreach = forge(&other, &bob, &bob, |tx| {
        write::redeem_invite(tx, &promoted, signer(4).id(), "Dave", T0 + 2).unwrap()
    });
    assert!(other.ingest(vec![overreach]).accepted.is_empty());
    // After expiry: refused.
    let late = forge(&other, &bob, &bob, |tx| {
        write::redeem_invite(tx, &inv, signer(4).id(), "Dave", T0 + 3_600_001).unwrap()
    });
    assert!(other.ingest(vec![late]).accepted.is_empty());
}

#[test]
fn a_department_holds_at_most_its_capacity() {
    let ada = signer(1);
    let (mut doc, _) = workspace(&ada);
    let keys: Vec<Signer> = (0..=DEPT_CAPACITY as u32)
        .map(|i| {
            let mut s = [0u8; 32];
            s[..4].copy_from_slice(&i.to_le_bytes());
            s[31] = 7;
            Signer::from_secret(s)
        })
        .collect();
    doc.change(&ada, T0, |tx| {
        write::create_dept(tx, "d1", "Big")?;
        for k in &keys[..DEPT_CAPACITY - 1] {
            write::add_member(tx, k.id(), "m", Role::Member, T0, None)?;
            write::dept_add(tx, "d1", k.id())?;
        }
        write::dept_add(tx, "d1", ada.id())
    })
    .unwrap();
    let last = &keys[DEPT_CAPACITY];
    doc.change(&ada, T0, |tx| {
        write::add_member(tx, last.id(), "last", Role::Member, T0, None)
    })
    .unwrap();
    let roster = Roster::read(doc.doc());
    let dept = roster.resolve_dept("Big").unwrap();
    assert_eq!(dept.members.len(), DEPT_CAPACITY);
    let member = roster.resolve_member(&last.id().to_string()).unwrap();
    assert_eq!(
        roster.check_dept_add(dept, member),
        Err(RosterError::DeptFull("Big".into()))
    );
    // Past the friendly check, the rule itself refuses the 1,001st.
    let err = doc
        .change(&ada, T0, |tx| write::dept_add(tx, "d1", last.id()))
        .unwrap_err();
    assert!(err.to_string().contains("more than 1000"), "{err}");
}

#[test]
fn a_second_genesis_is_refused() {
    let (ada, eve) = (signer(1), signer(3));
    let (_, mut replica) = workspace(&ada);
    let (_, eve_genesis) = SignedDoc::create_roster(&eve, "Evil", "Eve", T0).unwrap();
    let got = replica.ingest(vec![eve_genesis]);
    assert!(got.accepted.is_empty());
    assert_eq!(Roster::read(replica.doc()).name, "Acme");
}

#[test]
fn a_sync_message_carrying_several_changes_is_taken_whole() {
    let ada = signer(1);
    let (mut doc, mut replica) = workspace(&ada);
    let dept = |doc: &mut SignedDoc, i: usize| {
        doc.change(&ada, T0, |tx| {
            write::create_dept(tx, &format!("d{i}"), &format!("Dept {i}"))
        })
        .unwrap();
    };
    for i in 0..20 {
        dept(&mut doc, i);
    }
    assert!(sync_pair(&doc, &mut replica).is_empty());
    // Few enough, against the whole, that automerge sends them as change
    // chunks back to back in one message rather than the whole document.
    for i in 20..23 {
        dept(&mut doc, i);
    }
    assert!(sync_pair(&doc, &mut replica).is_empty());
    assert_eq!(replica.heads(), doc.heads());
    assert_eq!(Roster::read(replica.doc()).depts.len(), 23);
}

#[test]
fn a_policy_keeps_the_72_hour_floor_and_a_pinner_stays_out_of_departments() {
    use meshwork_crdt::roster::PinPolicy;
    let (ada, pia) = (signer(1), signer(3));
    let (mut doc, mut replica) = workspace(&ada);
    let added = add_member(&mut doc, &ada, &pia, Role::Pinner);
    let dept = doc
        .change(&ada, T0, |tx| write::create_dept(tx, "d1", "Research"))
        .unwrap()
        .unwrap();
    assert_eq!(replica.ingest(vec![added, dept]).accepted.len(), 2);
    assert_eq!(Roster::read(replica.doc()).policy, PinPolicy::default());

    // An admin may raise the policy.
    let raised = PinPolicy {
        retention_ms: 7 * 24 * 3600 * 1000,
        replicas: 3,
    };
    let ok = forge(&replica, &ada, &ada, |tx| {
        write::set_policy(tx, &raised).unwrap()
    });
    assert_eq!(replica.ingest(vec![ok]).accepted.len(), 1);
    assert_eq!(Roster::read(replica.doc()).policy, raised);

    // Even an admin may not go below 72 h, ask for 0 replicas, or put a
    // pinner in a department (or make a department member a pinner).
    let short = PinPolicy {
        retention_ms: 71 * 3600 * 1000,
        replicas: 2,
    };
    let none = PinPolicy {
        retention_ms: PinPolicy::MIN_RETENTION_MS,
        replicas: 0,
    };
    for edit in [
        Box::new(move |tx: &mut automerge::transaction::Transaction<'_>| {
            write::set_policy(tx, &short).unwrap()
        }) as Box<dyn FnOnce(&mut automerge::transaction::Transaction<'_>)>,
        Box::new(move |tx| write::set_policy(tx, &none).unwrap()),
        Box::new(|tx| write::dept_add(tx, "d1", signer(3).id()).unwrap()),
        Box::new(|tx| {
            write::dept_add(tx, "d1", signer(1).id()).unwrap();
            write::set_role(tx, signer(1).id(), Role::Pinner).unwrap()
        }),
    ] {
        let forged = forge(&replica, &ada, &ada, edit);
        let got = replica.ingest(vec![forged]);
        assert!(got.accepted.is_empty());
        assert!(
            matches!(got.rejected[..], [Rejection::Unauthorized { .. }]),
            "{:?}",
            got.rejected
        );
    }
    let roster = Roster::read(replica.doc());
    assert_eq!(roster.policy, raised);
    assert!(roster.depts[0].members.is_empty());
    // The typed roster says so before anything is written.
    let pinner = roster.member(&pia.id()).unwrap();
    assert_eq!(
        roster.check_dept_add(&roster.depts[0], pinner),
        Err(RosterError::PinnerInDept("Bob".into()))
    );
}

/// Two admins apart each create "Ops": after the heal both departments
/// exist, every copy refuses the bare name with both ids, and shows and
/// resolves them the same way.
#[test]
fn departments_created_apart_with_one_name_are_told_apart_alike() {
    let (ada, bob) = (signer(1), signer(2));
    let (mut east, mut west) = workspace(&ada);
    let promoted = add_member(&mut east, &ada, &bob, Role::Admin);
    assert_eq!(west.ingest(vec![promoted]).accepted.len(), 1);
    let mut east_cache = RosterCache::default();
    east_cache.get(&east);

    // The partition: each side checks the name against what it sees.
    let (a, b) = ("9c01ffee12345678", "3f2a91c04d5e6f70");
    for (doc, admin, id) in [(&mut east, &ada, a), (&mut west, &bob, b)] {
        Roster::read(doc.doc()).check_new_dept_name("Ops").unwrap();
        doc.change(admin, T0, |tx| write::create_dept(tx, id, "Ops"))
            .unwrap()
            .unwrap();
    }
    // Still apart: each side refuses a second "Ops" of its own.
    assert_eq!(
        Roster::read(east.doc()).check_new_dept_name("Ops"),
        Err(RosterError::DeptExists("Ops".into()))
    );

    // The heal, both ways.
    assert!(sync_pair(&east, &mut west).is_empty());
    assert!(sync_pair(&west, &mut east).is_empty());
    assert_eq!(east.heads(), west.heads());

    let rosters = [
        Roster::read(east.doc()),
        Roster::read(west.doc()),
        east_cache.get(&east).clone(),
    ];
    for r in &rosters {
        assert_eq!(r, &rosters[0]);
        assert_eq!(
            r.resolve_dept("Ops"),
            Err(RosterError::AmbiguousDept {
                name: "Ops".into(),
                ids: vec![b.into(), a.into()],
            })
        );
        let labels: Vec<(&str, String)> = r
            .dept_labels()
            .into_iter()
            .map(|(d, l)| (d.id.as_str(), l))
            .collect();
        assert_eq!(
            labels,
            [(b, "Ops (3f2a)".to_owned()), (a, "Ops (9c01)".to_owned())]
        );
        assert_eq!(r.resolve_dept("Ops (9c01)").unwrap().id, a);
        assert_eq!(r.resolve_dept("3f2a").unwrap().id, b);
        assert_eq!(r.resolve_dept(a).unwrap().id, a);
        assert!(matches!(
            r.resolve_dept("Ops East"),
            Err(RosterError::UnknownDept { .. })
        ));
    }

    // Renaming one ends the clash; its id, and so its feed, stay.
    east.change(&ada, T0, |tx| write::rename_dept(tx, a, "Ops East"))
        .unwrap()
        .unwrap();
    let r = east_cache.get(&east);
    assert_eq!(r.resolve_dept("Ops").unwrap().id, b);
    assert_eq!(r.resolve_dept("Ops East").unwrap().id, a);
    assert_eq!(r.dept_label(b).as_deref(), Some("Ops"));
}

#[test]
fn a_long_history_syncs_in_messages_cut_to_the_budget() {
    let admin = signer(1);
    let (mut doc, _) = workspace(&admin);
    for n in 0..200u16 {
        let mut secret = [9u8; 32];
        secret[..2].copy_from_slice(&n.to_le_bytes());
        add_member(&mut doc, &admin, &Signer::from_secret(secret), Role::Member);
    }
    let mut replica = SignedDoc::new(doc.rules().clone());
    let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
    let budget = 8 * 1024;
    let mut carrying = 0;
    for _ in 0..500 {
        let m1 = doc.generate_sync_within(&mut sa, budget);
        if let Some(m) = m1.clone() {
            let message = sync::Message::decode(&m.message).unwrap();
            let bytes: usize = message.changes.iter().map(|c| c.len() + 100).sum();
            assert!(
                bytes <= budget || message.changes.len() == 1,
                "{bytes} bytes"
            );
            assert_eq!(m.signatures.len(), message.changes.len());
            carrying += usize::from(!message.changes.is_empty());
            let report = replica.receive_sync(&mut sb, m).unwrap();
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        }
        let m2 = replica.generate_sync_within(&mut sb, budget);
        if let Some(m) = m2.clone() {
            doc.receive_sync(&mut sa, m).unwrap();
        }
        if m1.is_none() && m2.is_none() {
            break;
        }
    }
    assert_eq!(replica.heads(), doc.heads(), "the replica caught up");
    assert!(carrying > 3, "{carrying} messages carried the history");
}
