//! A feed's posts on shelves ([`meshwork_crdt::feed`]): each author's day
//! on a shelf of its own, a post packed into one record with its text,
//! edits, deletion and reactions beside it. Honest writes replicate and
//! read newest first; every hostile write below is built by hand and
//! refused for its reason; posts from before shelves read as one feed with
//! the shelved ones.

mod common;

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType, ReadDoc, ROOT};
use common::{pid, research_roster as roster, signer, tid, T0};
use meshwork_crdt::feed::write::{self, NewPost};
use meshwork_crdt::feed::{posts_added, shelf_of, Cursor, Feed, MAX_ATTACHED, MAX_BODY};
use meshwork_crdt::{Rejection, SignedChange, SignedDoc, Signer};

const DAY: i64 = 86_400_000;

fn feed() -> common::Dept {
    common::Dept::new(SignedDoc::feed("d1", vec![]).unwrap(), roster())
}

fn new_post<'a>(
    who: &Signer,
    id: &'a str,
    body: &'a str,
    reply_to: Option<&'a str>,
) -> NewPost<'a> {
    NewPost {
        id,
        author: who.id(),
        body,
        created_at: meshwork_crdt::feed::time_of(id).unwrap_or(T0),
        reply_to,
        mentions: &[],
        files: &[],
    }
}

/// `who` posts, at the time its id carries.
fn post(
    d: &mut common::Dept,
    who: &Signer,
    id: &str,
    body: &str,
    reply_to: Option<&str>,
) -> SignedChange {
    d.change(who, T0, |tx| {
        write::post(tx, &new_post(who, id, body, reply_to))
    })
    .unwrap()
    .unwrap()
}

fn forge(d: &common::Dept, who: &Signer, edit: impl FnOnce(&mut Transaction<'_>)) -> SignedChange {
    common::forge_cited(d, who, who, edit)
}

/// `change` is refused, for the reason `why` (a part of the message).
fn refused_because(d: &mut common::Dept, change: SignedChange, why: &str) {
    let got = d.ingest(vec![change]);
    assert!(got.accepted.is_empty(), "accepted what breaks: {why}");
    match &got.rejected[..] {
        [Rejection::Unauthorized { reason, .. }] => assert!(reason.contains(why), "{reason}"),
        other => panic!("{other:?}"),
    }
}

fn all(d: &common::Dept) -> Vec<SignedChange> {
    d.doc()
        .get_changes(&[])
        .iter()
        .filter_map(|c| d.signed_change(&c.hash()))
        .collect()
}

/// The shelf post `id` sits on, in a transaction.
fn shelf(tx: &Transaction<'_>, id: &str) -> ObjId {
    let posts = tx.get(ROOT, "posts").unwrap().unwrap().1;
    tx.get(&posts, shelf_of(id).unwrap()).unwrap().unwrap().1
}

fn ids(posts: &[meshwork_crdt::feed::Post]) -> Vec<String> {
    posts.iter().map(|p| p.id.clone()).collect()
}

#[test]
fn posts_sit_on_their_authors_shelves_and_read_newest_first() {
    let (ada, bob, cleo) = (signer(1), signer(2), signer(3));
    let (mut b, mut c) = (feed(), feed());
    let p1 = tid(&bob, T0, 1);
    let p2 = tid(&cleo, T0 + 1_000, 1);
    let reply = tid(&cleo, T0 + 2_000, 1);
    let p3 = tid(&bob, T0 + DAY, 1);
    let mut changes = vec![post(&mut b, &bob, &p1, "Hello @Cleo", None)];
    c.ingest(changes.clone());
    changes.push(post(&mut c, &cleo, &p2, "Hi all", None));
    changes.push(post(&mut c, &cleo, &reply, "Hi Bob", Some(&p1)));
    b.ingest(changes[1..].to_vec());
    let next_day = post(&mut b, &bob, &p3, "A day later", None);
    c.ingest(vec![next_day]);

    // One shelf per author and day, sorted newest day first; no list.
    let doc = b.doc();
    let posts = doc.get(ROOT, "posts").unwrap().unwrap().1;
    let shelves: Vec<String> = doc.keys(&posts).collect();
    let mut want = vec![
        shelf_of(&p3).unwrap(),
        shelf_of(&p1).unwrap(),
        shelf_of(&p2).unwrap(),
    ];
    want[1..].sort();
    assert_eq!(shelves, want);
    let order = doc.get(ROOT, "order").unwrap().unwrap().1;
    assert_eq!(doc.length(&order), 0);

    // Edited by its author, reacted to, deleted by an admin.
    let edit = b
        .change(&bob, T0, |tx| write::edit(tx, &p1, "Hello Cleo!", T0 + 5))
        .unwrap()
        .unwrap();
    let mut more = vec![edit];
    for (emoji, on) in [("👍", true), ("🎉", true), ("🎉", false)] {
        let r = c
            .change(&cleo, T0, |tx| write::react(tx, &p1, emoji, cleo.id(), on))
            .unwrap()
            .unwrap();
        more.push(r);
    }
    let mut a = feed();
    a.ingest(all(&b));
    let del = a
        .change(&ada, T0, |tx| write::delete(tx, &p2))
        .unwrap()
        .unwrap();
    more.push(del);
    for d in [&mut b, &mut c] {
        d.ingest(more.clone());
    }

    let (fb, fc) = (Feed::new(b.doc()), Feed::new(c.doc()));
    assert_eq!(fb.all(), fc.all());
    assert_eq!(
        ids(&fb.newest().collect::<Vec<_>>()),
        [p3.clone(), reply.clone(), p2.clone(), p1.clone()]
    );
    let first = fb.post(&p1).unwrap();
    assert_eq!(first.body.as_deref(), Some("Hello Cleo!"));
    assert_eq!(first.edited_at, Some(T0 + 5));
    assert_eq!(first.reactions.len(), 1);
    assert_eq!(first.reactions["👍"], vec![cleo.id()]);
    let gone = fb.post(&p2).unwrap();
    assert!(gone.deleted && gone.body.is_none(), "a tombstone");
    // The text is gone from the current document, not just hidden.
    let s = doc_shelf(b.doc(), &p2);
    assert!(b.doc().get(&s, format!("{p2}/body")).unwrap().is_none());
    // A page: threads newest first, each reply under its post.
    let page = fb.threads(10, None).unwrap();
    let roots: Vec<&str> = page.iter().map(|(p, _)| p.id.as_str()).collect();
    assert_eq!(roots, [&p3, &p2, &p1]);
    assert_eq!(ids(&page[2].1), [reply.as_str()]);
    assert_eq!(fb.threads(10, Some(&p2)).unwrap().len(), 1);
    assert_eq!(fb.len(), 4);
    assert!(fb.contains(&reply) && !fb.contains(&tid(&bob, T0, 2)));
    // The newest post's time in a window: what a node posts after.
    assert_eq!(fb.newest_time_between(T0, T0 + 2 * DAY), Some(T0 + DAY));
    assert_eq!(fb.newest_time_between(T0, T0 + 1_500), Some(T0 + 1_000));
    assert_eq!(fb.newest_time_between(T0 + 1, T0 + 999), None);
    assert_eq!(fb.newest_time_between(T0 + DAY + 1, T0 + 3 * DAY), None);
}

fn doc_shelf(doc: &automerge::Automerge, id: &str) -> ObjId {
    let posts = doc.get(ROOT, "posts").unwrap().unwrap().1;
    doc.get(&posts, shelf_of(id).unwrap()).unwrap().unwrap().1
}

#[test]
fn a_long_feed_is_read_a_stretch_at_a_time_every_post_once() {
    let (bob, cleo) = (signer(2), signer(3));
    let mut d = feed();
    // Posts before shelves, then on shelves over five days.
    let mut want = Vec::new();
    for i in 0..7 {
        let id = pid(&bob, &format!("old{i}"));
        post(&mut d, &bob, &id, "before shelves", None);
        want.push(id);
    }
    for i in 0..40 {
        let who = [&bob, &cleo][i % 2];
        let id = tid(who, T0 + (i as i64) * DAY / 8, 0);
        post(&mut d, who, &id, "on a shelf", None);
        want.push(id);
    }
    // A count kept from the changes since (as a node keeps it while a
    // history arrives) agrees with one made whole.
    let mark = d.doc().get_heads();
    let since = posts_added(d.doc(), &mark, 100).unwrap();
    assert_eq!(since, 0);
    let counted = Feed::new(d.doc()).len();
    post(
        &mut d,
        &bob,
        &pid(&bob, "late"),
        "before shelves, late",
        None,
    );
    let p = tid(&cleo, T0 + 9 * DAY, 0);
    post(&mut d, &cleo, &p, "on a shelf, late", None);
    d.change(&cleo, T0, |tx| write::edit(tx, &p, "edited", T0))
        .unwrap();
    d.change(&bob, T0, |tx| write::react(tx, &p, "👍", bob.id(), true))
        .unwrap();
    let added = posts_added(d.doc(), &mark, 100).unwrap();
    assert_eq!(added, 2, "two posts; an edit and a reaction are none");
    assert_eq!(counted + added, Feed::new(d.doc()).len());
    assert_eq!(
        posts_added(d.doc(), &mark, 3),
        None,
        "more changes than asked for"
    );
    let unknown = automerge::ChangeHash([9; 32]);
    assert_eq!(posts_added(d.doc(), &[unknown], 100), None);
    want.extend([pid(&bob, "late"), p]);
    let feed = Feed::new(d.doc());
    let (mut got, mut at, mut stretches) = (Vec::new(), Some(Cursor::default()), 0);
    while let Some(from) = at {
        let (posts, next) = feed.stretch(&from, 5);
        got.extend(ids(&posts));
        at = next;
        stretches += 1;
    }
    assert!(stretches > 5, "{stretches} stretches");
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(feed.len(), 49);
}

#[test]
fn posts_from_before_shelves_and_on_them_read_as_one_feed() {
    let (bob, cleo) = (signer(2), signer(3));
    let mut d = feed();
    // An older node's posts: untimed ids, a map each, in the order list.
    let old = pid(&bob, "old");
    d.change(&bob, T0, |tx| {
        write::post(
            tx,
            &NewPost {
                created_at: T0 - 10_000,
                ..new_post(&bob, &old, "from before", None)
            },
        )
    })
    .unwrap();
    let new = tid(&cleo, T0, 0);
    let answer = tid(&cleo, T0 + 1, 0);
    post(&mut d, &cleo, &new, "on a shelf", None);
    post(&mut d, &cleo, &answer, "answering the old one", Some(&old));
    // Both layouts are edited and reacted to where they are.
    d.change(&bob, T0, |tx| write::edit(tx, &old, "edited", T0 + 2))
        .unwrap();
    d.change(&bob, T0, |tx| write::react(tx, &new, "👍", bob.id(), true))
        .unwrap();
    d.change(&cleo, T0, |tx| {
        write::react(tx, &old, "👍", cleo.id(), true)
    })
    .unwrap();
    let feed = Feed::new(d.doc());
    assert_eq!(
        ids(&feed.newest().collect::<Vec<_>>()),
        [answer.clone(), new.clone(), old.clone()]
    );
    let page = feed.threads(5, None).unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[1].0.body.as_deref(), Some("edited"));
    assert_eq!(page[1].0.reactions["👍"], vec![cleo.id()]);
    assert_eq!(ids(&page[1].1), [answer.as_str()]);
    assert_eq!(page[0].0.reactions["👍"], vec![bob.id()]);
    assert_eq!(feed.len(), 3);
}

#[test]
fn hostile_writes_on_shelves_are_refused_for_their_reason() {
    let (bob, cleo) = (signer(2), signer(3));
    let mut b = feed();
    let p = tid(&bob, T0, 1);
    post(&mut b, &bob, &p, "mine", None);
    let mut c = feed();
    c.ingest(all(&b));
    let cleo_id = cleo.id().to_string();
    let bob_id = bob.id().to_string();
    let posts = |tx: &Transaction<'_>| tx.get(ROOT, "posts").unwrap().unwrap().1;

    // Shelves: only their author's, made once.
    let bobs_next_day = tid(&bob, T0 + DAY, 1);
    refused_because(
        &mut c,
        forge(&b, &cleo, |tx| {
            let posts = posts(tx);
            tx.put_object(&posts, shelf_of(&bobs_next_day).unwrap(), ObjType::Map)
                .unwrap();
        }),
        "is not one of",
    );
    refused_because(
        &mut c,
        forge(&b, &bob, |tx| {
            let posts = posts(tx);
            tx.put_object(&posts, shelf_of(&p).unwrap(), ObjType::Map)
                .unwrap();
        }),
        "already exists",
    );
    // Records: the signer's, on their own shelf, once, well formed.
    let cleos = tid(&cleo, T0, 1);
    refused_because(
        &mut c,
        forge(&b, &cleo, |tx| {
            let s = shelf(tx, &p);
            tx.put(&s, cleos.as_str(), "{}").unwrap();
        }),
        "does not belong on shelf",
    );
    let record =
        |author: &str, extra: &str| format!(r#"{{"author":"{author}","created_at":{T0}{extra}}}"#);
    let p2 = tid(&bob, T0, 2);
    let write_raw = |tx: &mut Transaction<'_>, id: &str, text: &str, body: Option<&str>| {
        let s = shelf(tx, &p);
        tx.put(&s, id, text).unwrap();
        if let Some(body) = body {
            tx.put(&s, format!("{id}/body"), body).unwrap();
        }
    };
    for (who, id, text, why) in [
        // (Not the same text: automerge leaves out a put that changes nothing.)
        (
            &bob,
            &p,
            record(&bob_id, r#","mentions":[]"#),
            "already exists",
        ),
        (&cleo, &p, record(&cleo_id, ""), "is not one of"),
        (
            &bob,
            &p2,
            record(&bob_id, r#","pinned":true"#),
            "unreadable post record",
        ),
        (
            &bob,
            &p2,
            record(&cleo_id, ""),
            "an author other than its signer",
        ),
        (&bob, &p2, "not json".to_owned(), "unreadable post record"),
        (
            &bob,
            &p2,
            record(
                &bob_id,
                &format!(r#","files":{:?}"#, vec!["a".repeat(32); MAX_ATTACHED + 1]),
            ),
            "more than",
        ),
        (
            &bob,
            &p2,
            record(&bob_id, r#","files":["../../etc/passwd"]"#),
            "not a file id",
        ),
        (
            &bob,
            &p2,
            record(&bob_id, &format!(r#","reply_to":"{}""#, tid(&cleo, T0, 9))),
            "not in the feed",
        ),
    ] {
        let (id, text) = (id.clone(), text.clone());
        refused_because(
            &mut c,
            forge(&b, who, |tx| write_raw(tx, &id, &text, Some("x"))),
            why,
        );
    }
    // Written without its text, or with too much of it.
    let fine = record(&bob_id, "");
    refused_because(
        &mut c,
        forge(&b, &bob, |tx| write_raw(tx, &p2, &fine, None)),
        "without its text",
    );
    let long = "x".repeat(MAX_BODY + 1);
    refused_because(
        &mut c,
        forge(&b, &bob, |tx| write_raw(tx, &p2, &fine, Some(&long))),
        "more than",
    );
    // A reply older than its post.
    let early = tid(&cleo, T0 - 1, 0);
    refused_because(
        &mut c,
        forge(&b, &cleo, |tx| {
            let posts = posts(tx);
            let s = tx
                .put_object(&posts, shelf_of(&early).unwrap(), ObjType::Map)
                .unwrap();
            let text = format!(r#"{{"author":"{cleo_id}","created_at":{T0},"reply_to":"{p}"}}"#);
            tx.put(&s, early.as_str(), text).unwrap();
            tx.put(&s, format!("{early}/body"), "first!").unwrap();
        }),
        "not older",
    );
    // A shelf with no post on it, or of a day no id can carry.
    refused_because(
        &mut c,
        forge(&b, &bob, |tx| {
            let posts = posts(tx);
            tx.put_object(&posts, shelf_of(&bobs_next_day).unwrap(), ObjType::Map)
                .unwrap();
        }),
        "made without a post on it",
    );
    refused_because(
        &mut c,
        forge(&b, &bob, |tx| {
            let posts = posts(tx);
            let key = format!("~0000000.{}", &bob_id[..16]);
            tx.put_object(&posts, key, ObjType::Map).unwrap();
        }),
        "is not one of",
    );
    // A record padded out, or written in another order than nodes write.
    for text in [
        format!(r#"{{"author":"{bob_id}",  "created_at":{T0}}}"#),
        format!(r#"{{"created_at":{T0},"author":"{bob_id}"}}"#),
    ] {
        refused_because(
            &mut c,
            forge(&b, &bob, |tx| write_raw(tx, &p2, &text, Some("x"))),
            "not written as nodes write it",
        );
    }
    // An edit past the limit.
    refused_because(
        &mut c,
        forge(&b, &bob, |tx| {
            let s = shelf(tx, &p);
            tx.put(&s, format!("{p}/body"), long.as_str()).unwrap();
        }),
        "more than",
    );
    // The same id again, as a post of the layout before shelves.
    refused_because(
        &mut c,
        forge(&b, &bob, |tx| {
            let posts = posts(tx);
            let obj = tx.put_object(&posts, p.as_str(), ObjType::Map).unwrap();
            tx.put(&obj, "author", bob_id.as_str()).unwrap();
            tx.put(&obj, "body", "a second copy").unwrap();
            let order = tx.get(ROOT, "order").unwrap().unwrap().1;
            tx.insert(&order, 0, p.as_str()).unwrap();
        }),
        "already exists",
    );
    // Beside a record: only what the rules know, by whom they let.
    let denied = "may not write";
    let beside = |key: String, value: automerge::ScalarValue| {
        let p = p.clone();
        move |tx: &mut Transaction<'_>| {
            let s = shelf(tx, &p);
            tx.put(&s, key, value).unwrap();
        }
    };
    let str_ = |s: &str| automerge::ScalarValue::Str(s.into());
    let yes = automerge::ScalarValue::Boolean(true);
    for (who, key, value) in [
        (
            &cleo,
            format!("{p}/body"),
            str_("Cleo's words in Bob's mouth"),
        ),
        (
            &cleo,
            format!("{p}/edited_at"),
            automerge::ScalarValue::Int(T0),
        ),
        (&bob, format!("{p}/edited_at"), str_("yesterday")),
        (
            &bob,
            format!("{p}/deleted"),
            automerge::ScalarValue::Boolean(false),
        ),
        (&cleo, format!("{p}/deleted"), yes.clone()),
        (&cleo, format!("{p}/r/{bob_id}/👍"), yes.clone()),
        (&cleo, format!("{p}/r/{cleo_id}/👍"), str_("yes")),
        (&cleo, format!("{p2}/r/{cleo_id}/👍"), yes.clone()),
        (
            &cleo,
            format!("{p}/r/{cleo_id}/{}", "👍".repeat(17)),
            yes.clone(),
        ),
        (&bob, format!("{p}/pinned"), yes.clone()),
        (&bob, p.clone(), automerge::ScalarValue::Int(1)),
    ] {
        refused_because(&mut c, forge(&b, who, beside(key, value)), denied);
    }
    // Taking away what is not one's own.
    refused_because(
        &mut c,
        forge(&b, &cleo, |tx| {
            let s = shelf(tx, &p);
            tx.delete(&s, format!("{p}/body")).unwrap();
        }),
        denied,
    );
    refused_because(
        &mut c,
        forge(&b, &bob, |tx| {
            let s = shelf(tx, &p);
            tx.delete(&s, p.as_str()).unwrap();
        }),
        denied,
    );
    // Nothing got through: Bob's one post, as he wrote it.
    let feed = Feed::new(c.doc());
    assert_eq!(feed.len(), 1);
    let kept = feed.post(&p).unwrap();
    assert_eq!(kept.body.as_deref(), Some("mine"));
    assert!(kept.reactions.is_empty() && !kept.deleted);
}

#[test]
fn a_reply_to_a_reply_is_in_its_thread() {
    let (bob, cleo) = (signer(2), signer(3));
    let mut d = feed();
    let root = tid(&bob, T0, 0);
    let reply = tid(&cleo, T0 + 1, 0);
    let deeper = tid(&bob, T0 + 2, 0);
    let later = tid(&cleo, T0 + 3, 0);
    post(&mut d, &bob, &root, "a question", None);
    post(&mut d, &cleo, &reply, "an answer", Some(&root));
    post(
        &mut d,
        &bob,
        &deeper,
        "a question about the answer",
        Some(&reply),
    );
    post(&mut d, &cleo, &later, "another thread", None);
    let page = Feed::new(d.doc()).threads(10, None).unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[1].0.id, root);
    assert_eq!(ids(&page[1].1), [reply.as_str(), deeper.as_str()]);
}

/// A legacy-layout post (a map in `posts`, in `order`) whose id carries a
/// time, as nodes before shelves wrote them, with nothing beside it.
#[test]
fn keys_beside_a_post_from_before_shelves_are_refused() {
    let bob = signer(2);
    let mut b = feed();
    let old = tid(&bob, T0, 1);
    let bob_id = bob.id().to_string();
    let old_post = forge(&b, &bob, |tx| {
        let posts = tx.get(ROOT, "posts").unwrap().unwrap().1;
        let obj = tx.put_object(&posts, old.as_str(), ObjType::Map).unwrap();
        tx.put(&obj, "author", bob_id.as_str()).unwrap();
        tx.put(&obj, "body", "from before").unwrap();
        let order = tx.get(ROOT, "order").unwrap().unwrap().1;
        tx.insert(&order, 0, old.as_str()).unwrap();
    });
    assert_eq!(b.ingest(vec![old_post]).accepted.len(), 1);
    // A post of the same day makes the shelf that id would sit on.
    let same_day = tid(&bob, T0, 2);
    post(&mut b, &bob, &same_day, "on the shelf", None);
    let mut c = feed();
    c.ingest(all(&b));
    for (key, value) in [
        (format!("{old}/edited_at"), automerge::ScalarValue::Int(T0)),
        (
            format!("{old}/deleted"),
            automerge::ScalarValue::Boolean(true),
        ),
        (
            format!("{old}/body"),
            automerge::ScalarValue::Str("new words".into()),
        ),
    ] {
        refused_because(
            &mut c,
            forge(&b, &bob, |tx| {
                let s = shelf(tx, &same_day);
                tx.put(&s, key, value).unwrap();
            }),
            "may not write",
        );
    }
    let feed = Feed::new(c.doc());
    assert_eq!(
        feed.post(&old).unwrap().body.as_deref(),
        Some("from before")
    );
    assert_eq!(feed.len(), 2);
}

#[test]
fn before_shelves_a_deletion_is_true_and_a_reaction_needs_its_post() {
    let (bob, cleo) = (signer(2), signer(3));
    let mut b = feed();
    let p = pid(&bob, "p1");
    post(&mut b, &bob, &p, "mine", None);
    let mut c = feed();
    c.ingest(all(&b));
    let map_of = |tx: &Transaction<'_>, key: &str| {
        let posts = tx.get(ROOT, "posts").unwrap().unwrap().1;
        tx.get(&posts, key).unwrap().unwrap().1
    };
    refused_because(
        &mut c,
        forge(&b, &bob, |tx| {
            let obj = map_of(tx, &p);
            tx.put(&obj, "deleted", false).unwrap();
        }),
        "may not write",
    );
    refused_because(
        &mut c,
        forge(&b, &cleo, |tx| {
            let all = tx.get(ROOT, "reactions").unwrap().unwrap().1;
            tx.put_object(&all, pid(&bob, "nothing").as_str(), ObjType::Map)
                .unwrap();
        }),
        "may not write",
    );
}
