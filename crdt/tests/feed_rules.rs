//! A department feed's rules through the public API: honest posts, replies,
//! edits, deletions and reactions replicate in one order everywhere; forged
//! authors, foreign edits, outsiders and oversized posts are refused.

mod common;

use automerge::transaction::{Transactable, Transaction};
use automerge::{ReadDoc, ROOT};
use common::{pid, research_roster as roster, signer, T0};
use meshwork_crdt::feed::write::{self, NewPost};
use meshwork_crdt::feed::{Feed, MAX_ATTACHED, MAX_BODY};
use meshwork_crdt::roster::write as roster_write;
use meshwork_crdt::{MemberId, Rejection, SignedChange, SignedDoc, Signer};

fn feed() -> common::Dept {
    common::Dept::new(SignedDoc::feed("d1", vec![]).unwrap(), roster())
}

fn post(
    doc: &mut common::Dept,
    who: &Signer,
    id: &str,
    body: &str,
    reply_to: Option<&str>,
) -> SignedChange {
    let author = who.id();
    let id = &pid(who, id);
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
                files: &[],
            },
        )
    })
    .unwrap()
    .unwrap()
}

/// A change built by hand on a copy of `doc`, signed by `who`.
fn forge(
    doc: &common::Dept,
    who: &Signer,
    edit: impl FnOnce(&mut Transaction<'_>),
) -> SignedChange {
    common::forge_cited(doc, who, who, edit)
}

/// A post written by hand, naming `author`, signed by `signer`.
fn forged_post(
    doc: &common::Dept,
    signer: &Signer,
    author: MemberId,
    id: &str,
    body: &str,
) -> SignedChange {
    let id = &pid(signer, id);
    forge(doc, signer, |tx| {
        let post = NewPost {
            id,
            author,
            body,
            created_at: T0,
            reply_to: None,
            mentions: &[],
            files: &[],
        };
        write::post(tx, &post).unwrap()
    })
}

fn refused(doc: &mut common::Dept, change: SignedChange) {
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
    let other = SignedDoc::feed("d2", vec![]).unwrap();
    assert_ne!(feed().heads(), other.heads());
}

#[test]
fn posts_replies_edits_deletions_and_reactions_replicate() {
    let (ada, bob, cleo) = (signer(1), signer(2), signer(3));
    let mut b = feed();
    let mut c = feed();
    let (p1, p2) = (&pid(&bob, "p1"), &pid(&cleo, "p2"));
    let mut changes = vec![post(&mut b, &bob, "p1", "Hello @Cleo", None)];
    c.ingest(changes.clone());
    changes.push(post(&mut c, &cleo, "p2", "Hi Bob", Some(p1)));
    b.ingest(changes[1..].to_vec());
    let edit = b
        .change(&bob, T0, |tx| write::edit(tx, p1, "Hello Cleo!", T0 + 1))
        .unwrap()
        .unwrap();
    let react = c
        .change(&cleo, T0, |tx| write::react(tx, p1, "👍", cleo.id(), true))
        .unwrap()
        .unwrap();
    assert_eq!(c.ingest(vec![edit]).accepted.len(), 1);
    assert_eq!(b.ingest(vec![react]).accepted.len(), 1);
    // Ada (admin, in the department) deletes Cleo's post.
    let mut a = common::Dept::new(SignedDoc::feed("d1", vec![]).unwrap(), roster());
    a.ingest(all(&b));
    let del = a
        .change(&ada, T0, |tx| write::delete(tx, p2))
        .unwrap()
        .unwrap();
    assert_eq!(b.ingest(vec![del.clone()]).accepted.len(), 1);
    c.ingest(vec![del]);

    assert_eq!(Feed::new(b.doc()).all(), Feed::new(c.doc()).all());
    let feed = Feed::new(b.doc());
    let first = feed.post(p1).unwrap();
    assert_eq!(first.body.as_deref(), Some("Hello Cleo!"));
    assert_eq!(first.reactions["👍"], vec![cleo.id()]);
    let second = feed.post(p2).unwrap();
    assert!(
        second.deleted && second.body.is_none(),
        "a tombstone without the text"
    );
    assert_eq!(second.reply_to.as_deref(), Some(p1.as_str()));
    // The text is gone from the current document, not just hidden.
    let posts = b.doc().get(ROOT, "posts").unwrap().unwrap().1;
    let p2obj = b.doc().get(&posts, p2.as_str()).unwrap().unwrap().1;
    assert!(b.doc().get(&p2obj, "body").unwrap().is_none());
}

fn all(d: &common::Dept) -> Vec<SignedChange> {
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
    let order = |d: &common::Dept| {
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
    let first = post(&mut b, &bob, "p1", "mine", None);
    let p1 = &pid(&bob, "p1");
    let mut c = feed();
    c.ingest(vec![first]);

    // Signed by Cleo, but naming Bob as the author.
    let bob_id = bob.id();
    refused(&mut c, forged_post(&b, &cleo, bob_id, "p9", "as Bob"));
    // Cleo edits Bob's post; Cleo (not an admin) deletes it.
    refused(
        &mut c,
        forge(&b, &cleo, |tx| write::edit(tx, p1, "changed", T0).unwrap()),
    );
    refused(
        &mut c,
        forge(&b, &cleo, |tx| write::delete(tx, p1).unwrap()),
    );
    // Cleo reacts in Bob's name.
    refused(
        &mut c,
        forge(&b, &cleo, |tx| {
            write::react(tx, p1, "👎", bob_id, true).unwrap()
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
    assert_eq!(feed.post(p1).unwrap().body.as_deref(), Some("mine"));
}

/// Ada's roster change: Bob leaves the department.
fn remove_bob(roster: &mut SignedDoc) -> SignedChange {
    roster
        .change(&signer(1), T0, |tx| {
            roster_write::dept_remove(tx, "d1", signer(2).id())
        })
        .unwrap()
        .unwrap()
}

#[test]
fn history_written_before_a_removal_stays_valid_for_everyone() {
    let bob = signer(2);
    let mut b = feed();
    let before = post(&mut b, &bob, "p1", "before my removal", None);
    // A node that already holds the removal, say a member who joins later.
    let mut later = feed();
    remove_bob(&mut later.roster);
    let got = later.ingest(vec![before]);
    assert_eq!(got.accepted.len(), 1, "{:?}", got.rejected);
}

#[test]
fn removal_means_removal() {
    let bob = signer(2);
    let mut b = feed();
    let removal = remove_bob(&mut b.roster);
    // Bob's own node knows: it refuses to write.
    let err = b
        .change(&bob, T0, |tx| {
            let id = pid(&bob, "p1");
            let p = NewPost {
                id: &id,
                author: bob.id(),
                body: "after my removal",
                created_at: T0,
                reply_to: None,
                mentions: &[],
                files: &[],
            };
            write::post(tx, &p)
        })
        .unwrap_err();
    assert!(err.to_string().contains("not a member"), "{err}");
    // Forged anyway, citing the roster with the removal: refused by all,
    // whether they hold the removal already or receive it afterwards.
    let late = forged_post(&b, &bob, bob.id(), "p2", "after my removal");
    let mut c = feed();
    c.roster.ingest(vec![removal.clone()]);
    refused(&mut c, late.clone());
    let mut d = feed();
    let got = d.ingest(vec![late.clone()]);
    assert_eq!(got.waiting_for_roster, 1, "waits for the roster it cites");
    assert!(got.accepted.is_empty() && got.rejected.is_empty());
    // The roster arrives: the verdict is the same as c's.
    assert_eq!(d.roster.ingest(vec![removal]).accepted.len(), 1);
    let got = d.retry();
    assert!(got.accepted.is_empty());
    assert!(matches!(got.rejected[..], [Rejection::Unauthorized { .. }]));
}

#[test]
fn a_change_waits_for_the_roster_it_cites_then_counts() {
    let dave = signer(4);
    let mut a = feed();
    let admit = a
        .roster
        .change(&signer(1), T0, |tx| {
            roster_write::dept_add(tx, "d1", dave.id())
        })
        .unwrap()
        .unwrap();
    let hello = post(&mut a, &dave, "p1", "hello, I am new", None);
    let mut b = feed();
    let got = b.ingest(vec![hello]);
    assert_eq!((got.waiting_for_roster, got.accepted.len()), (1, 0));
    assert!(got.rejected.is_empty(), "not refused: {:?}", got.rejected);
    assert!(b.has_held_back());
    let got = b.roster_ingest(vec![admit]);
    assert_eq!(
        got.accepted.len(),
        1,
        "Dave's post, once his admission is here"
    );
    assert_eq!(Feed::new(b.doc()).len(), 1);
}

#[test]
fn a_post_id_is_bound_to_its_author() {
    let (bob, cleo) = (signer(2), signer(3));
    let b = feed();
    let mut c = feed();
    // Cleo's post under an id of Bob's.
    let cleo_id = cleo.id();
    let id = pid(&bob, "p1");
    let forged = forge(&b, &cleo, |tx| {
        let p = NewPost {
            id: &id,
            author: cleo_id,
            body: "squatting",
            created_at: T0,
            reply_to: None,
            mentions: &[],
            files: &[],
        };
        write::post(tx, &p).unwrap()
    });
    refused(&mut c, forged);
}

#[test]
fn legacy_changes_without_a_citation_load_and_sync_but_never_follow_a_citing_one() {
    let (bob, cleo) = (signer(2), signer(3));
    let b = feed();
    let mut c = feed();
    // Written by a node before citations (no message): judged against
    // everyone the roster ever admitted.
    let legacy = common::forge(&b.doc, &bob, &bob, |tx| {
        let p = NewPost {
            id: "old1",
            author: bob.id(),
            body: "from an older version",
            created_at: T0,
            reply_to: None,
            mentions: &[],
            files: &[],
        };
        write::post(tx, &p).unwrap()
    });
    assert_eq!(c.ingest(vec![legacy.clone()]).accepted.len(), 1);
    // A legacy change on top of a citing change is refused.
    let cited = post(&mut c, &cleo, "p1", "new version", None);
    let mut d = feed();
    d.ingest(vec![legacy, cited]);
    let after = common::forge(&d.doc, &bob, &bob, |tx| {
        write::react(tx, &pid(&cleo, "p1"), "👍", bob.id(), true).unwrap()
    });
    refused(&mut d, after);
}

#[test]
fn a_direct_conversation_is_written_by_its_two_members_only() {
    let (ada, bob, cleo, dave) = (signer(1), signer(2), signer(3), signer(4));
    let mut bc = common::Dept::new(
        SignedDoc::direct(bob.id(), cleo.id(), vec![]).unwrap(),
        roster(),
    );
    let mut cb = common::Dept::new(
        SignedDoc::direct(cleo.id(), bob.id(), vec![]).unwrap(),
        roster(),
    );
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
    let first = post(&mut b, &bob, "p1", "first", None);
    let p1 = pid(&bob, "p1");
    let mut c = feed();
    c.ingest(vec![first]);
    let order = |d: &common::Dept| {
        let (_, id) = d.doc().get(ROOT, "order").unwrap().unwrap();
        id
    };
    let o = order(&b);
    // Bob's id pushed into the order again, without a post.
    refused(
        &mut c,
        forge(&b, &bob, |tx| {
            tx.insert(&o, 0, p1.as_str()).unwrap();
        }),
    );
    // A post placed twice.
    let cleo_id = cleo.id();
    let (p2, p3) = (pid(&cleo, "p2"), pid(&cleo, "p3"));
    refused(
        &mut c,
        forge(&b, &cleo, |tx| {
            let p = NewPost {
                id: &p2,
                author: cleo_id,
                body: "twice",
                created_at: T0,
                reply_to: None,
                mentions: &[],
                files: &[],
            };
            write::post(tx, &p).unwrap();
            tx.insert(&o, 0, p2.as_str()).unwrap();
        }),
    );
    // A post left out of the order.
    refused(
        &mut c,
        forge(&b, &cleo, |tx| {
            let posts = tx.get(ROOT, "posts").unwrap().unwrap().1;
            let p = tx
                .put_object(&posts, p3.as_str(), automerge::ObjType::Map)
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
    let p = |name: &str| pid(&bob, name);
    post(&mut b, &cleo, "r3", "reply to p3", Some(&p("p3")));
    post(&mut b, &cleo, "r3b", "another", Some(&p("p3")));
    post(&mut b, &cleo, "orphan", "to nothing", Some("gone"));
    let feed = Feed::new(b.doc());
    assert_eq!(feed.len(), 13);
    // Ids without their author's prefix, to read the order.
    let short = |id: &str| id[16..].to_owned();
    let ids = |page: &[meshwork_crdt::feed::Thread]| -> Vec<String> {
        page.iter().map(|(p, _)| short(&p.id)).collect()
    };
    let first = feed.threads(3, None).unwrap();
    assert_eq!(ids(&first), ["orphan", "p9", "p8"]);
    let next = feed.threads(6, Some(&p("p8"))).unwrap();
    assert_eq!(ids(&next), ["p7", "p6", "p5", "p4", "p3", "p2"]);
    let (_, replies) = &next[4];
    let reply_ids: Vec<_> = replies.iter().map(|r| short(&r.id)).collect();
    assert_eq!(reply_ids, ["r3", "r3b"], "replies oldest first");
    assert!(feed.threads(5, Some("nope")).is_err());
    assert!(feed.threads(5, Some(&p("p0"))).unwrap().is_empty());
}

#[test]
fn an_equivocating_author_loses_its_second_change_not_the_batch() {
    let (bob, cleo) = (signer(2), signer(3));
    let b = feed();
    // Two different changes by Bob from the same state: the same sequence
    // number twice, which automerge cannot hold together.
    let one = forged_post(&b, &bob, bob.id(), "one", "first version");
    let two = forged_post(&b, &bob, bob.id(), "two", "second version");
    let mut c = feed();
    assert_eq!(c.ingest(vec![one]).accepted.len(), 1);
    let honest = {
        let mut other = feed();
        post(&mut other, &cleo, "p1", "an honest post", None)
    };
    let got = c.ingest(vec![two, honest]);
    assert_eq!(got.accepted.len(), 1, "the honest change is kept");
    assert!(
        matches!(got.rejected[..], [Rejection::Malformed(_)]),
        "{:?}",
        got.rejected
    );
    assert_eq!(Feed::new(c.doc()).len(), 2);
}

#[test]
fn a_post_attaches_files_when_written_and_never_after() {
    let (bob, cleo) = (signer(2), signer(3));
    let (file_a, file_b) = (
        "0123456789abcdef0123456789abcdef",
        "fedcba9876543210fedcba9876543210",
    );
    let mut b = feed();
    let p1 = &pid(&bob, "p1");
    let with_files = forge(&b, &bob, |tx| {
        let post = NewPost {
            id: p1,
            author: bob.id(),
            body: "the Q3 numbers",
            created_at: T0,
            reply_to: None,
            mentions: &[],
            files: &[file_a.to_owned(), file_b.to_owned()],
        };
        write::post(tx, &post).unwrap();
    });
    let mut c = feed();
    assert_eq!(c.ingest(vec![with_files.clone()]).accepted.len(), 1);
    b.ingest(vec![with_files]);
    assert_eq!(
        Feed::new(c.doc()).post(p1).unwrap().files,
        vec![file_a.to_owned(), file_b.to_owned()]
    );

    // Hostile: attaching to an existing post (even one's own), to
    // someone else's, something that is not a file id, or too many.
    let files_of = |tx: &mut Transaction<'_>, post: &str| -> automerge::ObjId {
        let posts = tx.get(ROOT, "posts").unwrap().unwrap().1;
        let post = tx.get(&posts, post).unwrap().unwrap().1;
        tx.get(&post, "files").unwrap().unwrap().1
    };
    refused(
        &mut c,
        forge(&b, &bob, |tx| {
            let list = files_of(tx, p1);
            tx.insert(&list, 2, file_a).unwrap();
        }),
    );
    refused(
        &mut c,
        forge(&b, &bob, |tx| {
            let list = files_of(tx, p1);
            tx.delete(&list, 0).unwrap();
        }),
    );
    refused(
        &mut c,
        forge(&b, &cleo, |tx| {
            let list = files_of(tx, p1);
            tx.insert(&list, 0, file_b).unwrap();
        }),
    );
    let new_post = |tx: &mut Transaction<'_>, id: &str, files: &[&str]| {
        let files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        let post = NewPost {
            id,
            author: cleo.id(),
            body: "see attached",
            created_at: T0,
            reply_to: None,
            mentions: &[],
            files: &files,
        };
        write::post(tx, &post).unwrap();
    };
    let p2 = &pid(&cleo, "p2");
    refused(
        &mut c,
        forge(&b, &cleo, |tx| new_post(tx, p2, &["../../etc/passwd"])),
    );
    refused(
        &mut c,
        forge(&b, &cleo, |tx| new_post(tx, p2, &[&file_a.to_uppercase()])),
    );
    let many = vec![file_a; MAX_ATTACHED + 1];
    refused(&mut c, forge(&b, &cleo, |tx| new_post(tx, p2, &many)));
    let most = vec![file_b; MAX_ATTACHED];
    assert_eq!(
        c.ingest(vec![forge(&b, &cleo, |tx| new_post(tx, p2, &most))])
            .accepted
            .len(),
        1
    );
    assert_eq!(Feed::new(c.doc()).post(p1).unwrap().files.len(), 2);
}
