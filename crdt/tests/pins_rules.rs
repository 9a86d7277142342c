//! The pin ledger's rules through the public API: requests and commitments
//! replicate; requests in another's name or for another's department,
//! rewritten requests, commitments and quota reports in another's name,
//! deadlines outside the document's day, and writes by non-members are
//! refused.

mod common;

use common::{signer, T0};
use meshwork_crdt::pins::{epoch_of, write, Commitment, PinRequest, Pins};
use meshwork_crdt::roster::{write as roster_write, Role};
use meshwork_crdt::{Rejection, SignedChange, SignedDoc, Signer};

const DAY: i64 = 24 * 3600 * 1000;
/// The deadline of every request here: the ledger's day is the one it is in.
const UNTIL: i64 = T0 + 3 * DAY;

/// Ada (admin) and Bob in "Research" (d1); Pia a pinner; Eve removed.
fn roster() -> SignedDoc {
    let ada = signer(1);
    let (mut doc, _) = SignedDoc::create_roster(&ada, "Acme", "Ada", T0).unwrap();
    doc.change(&ada, T0, |tx| {
        roster_write::create_dept(tx, "d1", "Research")?;
        roster_write::add_member(tx, signer(2).id(), "Bob", Role::Member, T0, None)?;
        roster_write::add_member(tx, signer(3).id(), "Pia", Role::Pinner, T0, None)?;
        roster_write::add_member(tx, signer(5).id(), "Eve", Role::Member, T0, None)?;
        roster_write::remove_member(tx, signer(5).id())?;
        for n in [1, 2] {
            roster_write::dept_add(tx, "d1", signer(n).id())?;
        }
        Ok(())
    })
    .unwrap();
    doc
}

fn ledger() -> common::Dept {
    common::Dept::new(
        SignedDoc::pins("ws", epoch_of(UNTIL), vec![]).unwrap(),
        roster(),
    )
}

fn blob(n: u8) -> String {
    hex::encode([n; 32])
}

fn request(n: u8, by: &Signer, dept: &str) -> PinRequest {
    PinRequest {
        blob: blob(n),
        dept: dept.into(),
        size: 1 << 20,
        until: UNTIL,
        by: by.id(),
    }
}

fn refused(doc: &mut common::Dept, change: SignedChange) {
    let got = doc.ingest(vec![change]);
    assert!(got.accepted.is_empty(), "accepted a forbidden change");
    assert!(
        matches!(got.rejected[..], [Rejection::Unauthorized { .. }]),
        "{:?}",
        got.rejected
    );
}

#[test]
fn requests_commitments_and_reports_replicate() {
    let (bob, pia) = (signer(2), signer(3));
    let mut b = ledger();
    let mut p = ledger();
    assert_eq!(b.heads(), p.heads(), "one genesis everywhere");
    let asked = b
        .change(&bob, T0, |tx| write::request(tx, &request(1, &bob, "d1")))
        .unwrap()
        .unwrap();
    assert_eq!(p.ingest(vec![asked]).accepted.len(), 1);
    let committed = p
        .change(&pia, T0, |tx| {
            write::commit(tx, &blob(1), &pia.id(), UNTIL)?;
            write::report(tx, &pia.id(), 10 << 30, 1 << 20, 0)
        })
        .unwrap()
        .unwrap();
    assert_eq!(b.ingest(vec![committed]).accepted.len(), 1);
    let pins = Pins::new(b.doc());
    assert_eq!(pins.requests(), vec![request(1, &bob, "d1")]);
    assert_eq!(
        pins.commitments(&blob(1)),
        vec![Commitment {
            member: pia.id(),
            until: UNTIL
        }]
    );
    assert!(pins.commitments(&blob(2)).is_empty());
    assert_eq!(pins.all_commitments().len(), 1);
    assert_eq!(pins.nodes()[0].used, 1 << 20);
    // Pia withdraws.
    let released = p
        .change(&pia, T0, |tx| write::release(tx, &blob(1), &pia.id()))
        .unwrap()
        .unwrap();
    assert_eq!(b.ingest(vec![released]).accepted.len(), 1);
    assert!(Pins::new(b.doc()).commitments(&blob(1)).is_empty());
}

#[test]
fn forged_requests_commitments_and_reports_are_refused() {
    let (ada, bob, pia, eve) = (signer(1), signer(2), signer(3), signer(5));
    let mut b = ledger();
    let asked = b
        .change(&bob, T0, |tx| write::request(tx, &request(1, &bob, "d1")))
        .unwrap()
        .unwrap();
    let mut c = ledger();
    assert_eq!(c.ingest(vec![asked]).accepted.len(), 1);

    // A request in Bob's name, signed by Pia.
    refused(
        &mut c,
        common::forge_cited(&b, &pia, &pia, |tx| {
            write::request(tx, &request(2, &bob, "d1")).unwrap()
        }),
    );
    // Pia (in no department) requests for Research.
    refused(
        &mut c,
        common::forge_cited(&b, &pia, &pia, |tx| {
            write::request(tx, &request(3, &pia, "d1")).unwrap()
        }),
    );
    // Ada rewrites Bob's request (a later deadline), or requests it again.
    refused(
        &mut c,
        common::forge_cited(&b, &ada, &ada, |tx| {
            write::request(tx, &request(1, &ada, "d1")).unwrap()
        }),
    );
    // Pia commits in Bob's name, or reports Bob's quota.
    refused(
        &mut c,
        common::forge_cited(&b, &pia, &pia, |tx| {
            write::commit(tx, &blob(1), &bob.id(), UNTIL).unwrap()
        }),
    );
    refused(
        &mut c,
        common::forge_cited(&b, &pia, &pia, |tx| {
            write::report(tx, &bob.id(), 1, 1, 1).unwrap()
        }),
    );
    // A removed member commits.
    refused(
        &mut c,
        common::forge_cited(&b, &eve, &eve, |tx| {
            write::commit(tx, &blob(1), &eve.id(), UNTIL).unwrap()
        }),
    );
    // A request that is not a blob hash.
    refused(
        &mut c,
        common::forge_cited(&b, &bob, &bob, |tx| {
            let mut r = request(4, &bob, "d1");
            r.blob = "not-a-hash".into();
            write::request(tx, &r).unwrap()
        }),
    );
    // A request, or a commitment, whose deadline is in another day: the
    // day's document is dropped whole once the day is over, so nothing in
    // it may outlive it.
    for until in [UNTIL - DAY, UNTIL + DAY, i64::MAX] {
        refused(
            &mut c,
            common::forge_cited(&b, &bob, &bob, |tx| {
                let mut r = request(5, &bob, "d1");
                r.until = until;
                write::request(tx, &r).unwrap()
            }),
        );
        refused(
            &mut c,
            common::forge_cited(&b, &pia, &pia, |tx| {
                write::commit(tx, &blob(1), &pia.id(), until).unwrap()
            }),
        );
    }
    assert_eq!(Pins::new(c.doc()).requests(), vec![request(1, &bob, "d1")]);
    assert!(Pins::new(c.doc()).all_commitments().is_empty());
}
