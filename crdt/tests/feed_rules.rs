//! A department feed's rules through the public API: honest posts, replies,
//! edits, deletions and reactions replicate in one order everywhere; forged
//! authors, foreign edits, outsiders and oversized posts are refused.

mod common;

use automerge::transaction::{Transactable, Transaction};
use automerge::{ReadDoc, ROOT};
use meshwork_crdt::feed::write::{self, NewPost};
use meshwork_crdt::feed::{Feed, MAX_BODY};
use meshwork_crdt::roster::{write as roster_write, Role, Roster};
use meshwork_crdt::{MemberId, Rejection, SignedChange, SignedDoc, Signer};

const T0: i64 = 1_700_000_000_000;

fn signer(n: u8) -> Signer {
    Signer::from_secret([n; 32])
}

/// Ada (admin) with Bob and Cleo in "Research" (id d1); Dave is a member
/// outside it.
fn roster() -> Roster {
    let ada = signer(1);
    let (mut doc, _) = SignedDoc::create_roster(&ada, "Acme", "Ada", T0).unwrap();
    doc.change(&ada, T0, |tx| {
        roster_write::create_dept(tx, "d1", "Research")?;
        for (n, name) in [(2, "Bob"), (3, "Cleo"), (4, "Dave")] {
            roster_write::add_member(tx, signer(n).id(), name, Role::Member, T0, None)?;
        }
        for n in [1, 2, 3] {
            roster_write::dept_add(tx, "d1", signer(n).id())?;
        }
        Ok(())
    })
    .unwrap();
    Roster::read(doc.doc())
}

fn feed() -> SignedDoc {
    SignedDoc::feed("d1", roster(), vec![]).unwrap()
}

fn post(
    doc: &mut SignedDoc,
    who: &Signer,
    id: &str,
    body: &str,
    reply_to: Option<&str>,
) -> SignedChange {
    let author = who.id();
    doc.change(who, T0, |tx| {
        write::post(
            tx,
            &NewPost {
                id,
                author,
                body,
                created_at: T0,
                reply_to,
                mentions: &[],
            },
        )
    })
    .unwrap()
    .unwrap()
}

/// A change built by hand on a copy of `doc`, signed by `who`.
fn forge(doc: &SignedDoc, who: &Signer, edit: impl FnOnce(&mut Transaction<'_>)) -> SignedChange {
    common::forge(doc, who, who, edit)
}

/// A post written by hand, naming `author`, signed by `signer`.
fn forged_post(
    doc: &SignedDoc,
    signer: &Signer,
    author: MemberId,
    id: &str,
    body: &str,
) -> SignedChange {
    forge(doc, signer, |tx| {
        let post = NewPost {
            id,
            author,
            body,
            created_at: T0,
            reply_to: None,
            mentions: &[],
        };
        write::post(tx, &post).unwrap()
    })
}

fn refused(doc: &mut SignedDoc, change: SignedChange) {
    let got = doc.ingest(vec![change]);
    assert!(
        got.accepted.is_empty(),
        "accepted a change that should be refused"
    );
    assert!(
        matches!(got.rejected[..], [Rejection::Unauthorized { .. }]),
        "{:?}",
        got.rejected
    );
}

#[test]
fn every_node_builds_the_same_genesis() {
    assert_eq!(feed().heads(), feed().heads());
    let other = SignedDoc::feed("d2", roster(), vec![]).unwrap();
    assert_ne!(feed().heads(), other.heads());
}

#[test]
fn posts_replies_edits_deletions_and_reactions_replicate() {
    let (ada, bob, cleo) = (signer(1), signer(2), signer(3));
    let mut b = feed();
    let mut c = feed();
    let mut changes = vec![post(&mut b, &bob, "p1", "Hello @Cleo", None)];
    c.ingest(changes.clone());
    changes.push(post(&mut c, &cleo, "p2", "Hi Bob", Some("p1")));
    b.ingest(changes[1..].to_vec());
    let edit = b
        .change(&bob, T0, |tx| write::edit(tx, "p1", "Hello Cleo!", T0 + 1))
        .unwrap()
        .unwrap();
    let react = c
        .change(&cleo, T0, |tx| {
            write::react(tx, "p1", "👍", cleo.id(), true)
        })
        .unwrap()
        .unwrap();
    assert_eq!(c.ingest(vec![edit]).accepted.len(), 1);
    assert_eq!(b.ingest(vec![react]).accepted.len(), 1);
    // Ada (admin, in the department) deletes Cleo's post.
    let mut a = SignedDoc::feed("d1", roster(), vec![]).unwrap();
    a.ingest(all(&b));
    let del = a
        .change(&ada, T0, |tx| write::delete(tx, "p2"))
        .unwrap()
        .unwrap();
    assert_eq!(b.ingest(vec![del.clone()]).accepted.len(), 1);
    c.ingest(vec![del]);

    assert_eq!(Feed::new(b.doc()).all(), Feed::new(c.doc()).all());
    let feed = Feed::new(b.doc());
    let p1 = feed.post("p1").unwrap();
    assert_eq!(p1.body.as_deref(), Some("Hello Cleo!"));
    assert_eq!(p1.reactions["👍"], vec![cleo.id()]);
    let p2 = feed.post("p2").unwrap();
    assert!(
        p2.deleted && p2.body.is_none(),
        "a tombstone without the text"
    );
    assert_eq!(p2.reply_to.as_deref(), Some("p1"));
    // The text is gone from the current document, not just hidden.
    let posts = b.doc().get(ROOT, "posts").unwrap().unwrap().1;
    let p2obj = b.doc().get(&posts, "p2").unwrap().unwrap().1;
    assert!(b.doc().get(&p2obj, "body").unwrap().is_none());
}

fn all(d: &SignedDoc) -> Vec<SignedChange> {
    d.doc()
        .get_changes(&[])
        .iter()
        .filter_map(|c| d.signed_change(&c.hash()))
        .collect()
}

#[test]
fn concurrent_posts_show_in_one_order_everywhere() {
    let (bob, cleo) = (signer(2), signer(3));
    let (mut b, mut c) = (feed(), feed());
    let from_b: Vec<_> = (0..5)
        .map(|i| post(&mut b, &bob, &format!("b{i}"), "x", None))
        .collect();
    let from_c: Vec<_> = (0..5)
        .map(|i| post(&mut c, &cleo, &format!("c{i}"), "y", None))
        .collect();
    b.ingest(from_c);
    c.ingest(from_b);
    let order = |d: &SignedDoc| {
        Feed::new(d.doc())
            .all()
            .into_iter()
            .map(|p| p.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(order(&b), order(&c));
    assert_eq!(order(&b).len(), 10);
}

#[test]
fn forged_authors_foreign_edits_and_outsiders_are_refused() {
    let (bob, cleo, dave) = (signer(2), signer(3), signer(4));
    let mut b = feed();
    let p1 = post(&mut b, &bob, "p1", "mine", None);
    let mut c = feed();
    c.ingest(vec![p1]);

    // Signed by Cleo, but naming Bob as the author.
    let bob_id = bob.id();
    refused(&mut c, forged_post(&b, &cleo, bob_id, "p9", "as Bob"));
    // Cleo edits Bob's post; Cleo (not an admin) deletes it.
    refused(
        &mut c,
        forge(&b, &cleo, |tx| {
            write::edit(tx, "p1", "changed", T0).unwrap()
        }),
    );
    refused(
        &mut c,
        forge(&b, &cleo, |tx| write::delete(tx, "p1").unwrap()),
    );
    // Cleo reacts in Bob's name.
    refused(
        &mut c,
        forge(&b, &cleo, |tx| {
            write::react(tx, "p1", "👎", bob_id, true).unwrap()
        }),
    );
    // Dave is in the workspace but not in the department.
    let dave_id = dave.id();
    refused(&mut c, forged_post(&b, &dave, dave_id, "p8", "let me in"));
    // Rewriting the structure.
    refused(
        &mut c,
        forge(&b, &cleo, |tx| {
            tx.put(ROOT, "dept", "d2").unwrap();
        }),
    );
    // Too long.
    let long = "x".repeat(MAX_BODY + 1);
    let cleo_id = cleo.id();
    refused(&mut c, forged_post(&b, &cleo, cleo_id, "p7", &long));
    // Bob's post stands as he wrote it.
    let feed = Feed::new(c.doc());
    assert_eq!(feed.len(), 1);
    assert_eq!(feed.post("p1").unwrap().body.as_deref(), Some("mine"));
}

#[test]
fn a_removed_member_may_no_longer_write() {
    let bob = signer(2);
    let mut r = roster();
    r.depts[0].members.retain(|m| *m != bob.id());
    let mut judged_by_new_roster = SignedDoc::feed("d1", r, vec![]).unwrap();
    let mut b = feed();
    let late = post(&mut b, &bob, "p1", "after my removal", None);
    refused(&mut judged_by_new_roster, late);
}

#[test]
fn a_direct_conversation_is_written_by_its_two_members_only() {
    let (ada, bob, cleo, dave) = (signer(1), signer(2), signer(3), signer(4));
    let mut bc = SignedDoc::direct(bob.id(), cleo.id(), roster(), vec![]).unwrap();
    let mut cb = SignedDoc::direct(cleo.id(), bob.id(), roster(), vec![]).unwrap();
    assert_eq!(
        bc.heads(),
        cb.heads(),
        "the same conversation whichever side opens it"
    );
    let hi = post(&mut bc, &bob, "m1", "hi Cleo", None);
    assert_eq!(cb.ingest(vec![hi]).accepted.len(), 1);
    // Dave, and even Ada the admin, cannot write into it.
    for outsider in [&dave, &ada] {
        let id = outsider.id();
        refused(&mut cb, forged_post(&bc, outsider, id, "x", "hello?"));
    }
    assert_eq!(Feed::new(cb.doc()).len(), 1);
}

#[test]
fn a_post_must_take_its_one_place_in_the_order() {
    let (bob, cleo) = (signer(2), signer(3));
    let mut b = feed();
    let p1 = post(&mut b, &bob, "p1", "first", None);
    let mut c = feed();
    c.ingest(vec![p1]);
    let order = |d: &SignedDoc| {
        let (_, id) = d.doc().get(ROOT, "order").unwrap().unwrap();
        id
    };
    let o = order(&b);
    // Bob's id pushed into the order again, without a post.
    refused(
        &mut c,
        forge(&b, &bob, |tx| {
            tx.insert(&o, 0, "p1").unwrap();
        }),
    );
    // A post placed twice.
    let cleo_id = cleo.id();
    refused(
        &mut c,
        forge(&b, &cleo, |tx| {
            let p = NewPost {
                id: "p2",
                author: cleo_id,
                body: "twice",
                created_at: T0,
                reply_to: None,
                mentions: &[],
            };
            write::post(tx, &p).unwrap();
            tx.insert(&o, 0, "p2").unwrap();
        }),
    );
    // A post left out of the order.
    refused(
        &mut c,
        forge(&b, &cleo, |tx| {
            let posts = tx.get(ROOT, "posts").unwrap().unwrap().1;
            let p = tx
                .put_object(&posts, "p3", automerge::ObjType::Map)
                .unwrap();
            tx.put(&p, "author", cleo_id.to_string()).unwrap();
            tx.put(&p, "body", "hidden").unwrap();
        }),
    );
    assert_eq!(Feed::new(c.doc()).len(), 1);
}

#[test]
fn a_page_of_threads_reads_newest_first_with_replies_under_their_post() {
    let (bob, cleo) = (signer(2), signer(3));
    let mut b = feed();
    for i in 0..10 {
        post(&mut b, &bob, &format!("p{i}"), "post", None);
    }
    post(&mut b, &cleo, "r3", "reply to p3", Some("p3"));
    post(&mut b, &cleo, "r3b", "another", Some("p3"));
    post(&mut b, &cleo, "orphan", "to nothing", Some("gone"));
    let feed = Feed::new(b.doc());
    assert_eq!(feed.len(), 13);
    let ids = |page: &[meshwork_crdt::feed::Thread]| -> Vec<String> {
        page.iter().map(|(p, _)| p.id.clone()).collect()
    };
    let first = feed.threads(3, None).unwrap();
    assert_eq!(ids(&first), ["orphan", "p9", "p8"]);
    let next = feed.threads(6, Some("p8")).unwrap();
    assert_eq!(ids(&next), ["p7", "p6", "p5", "p4", "p3", "p2"]);
    let (_, replies) = &next[4];
    let reply_ids: Vec<_> = replies.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(reply_ids, ["r3", "r3b"], "replies oldest first");
    assert!(feed.threads(5, Some("nope")).is_err());
    assert!(feed.threads(5, Some("p0")).unwrap().is_empty());
}
