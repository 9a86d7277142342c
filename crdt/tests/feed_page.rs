//! A feed's first page ([`meshwork_crdt::feed::page`]): what an honest peer
//! sends reads as the feed's own newest threads; what a hostile one forges,
//! misattributes or smuggles in is refused or left out.

mod common;

use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};
use common::{pid, research_roster as roster, signer, tid, T0};
use meshwork_crdt::feed::page::{self, PAGE_REPLIES, PAGE_THREADS};
use meshwork_crdt::feed::write::{self, NewPost};
use meshwork_crdt::feed::{Feed, FeedRules, Thread, MAX_AHEAD, MAX_BODY};
use meshwork_crdt::signed::Rules;
use meshwork_crdt::{RosterAt, RosterBook, SignedChange, SignedDoc, Signer};

fn post(feed: &mut common::Dept, who: &Signer, id: &str, at: i64, reply_to: Option<&str>) {
    let (author, id) = (who.id(), pid(who, id));
    let body = format!("{id} says hello");
    feed.change(who, at, |tx| {
        write::post(
            tx,
            &NewPost {
                id: &id,
                author,
                body: &body,
                created_at: at,
                reply_to,
                mentions: &[signer(1).id()],
                files: &[],
            },
        )
    })
    .unwrap()
    .unwrap();
}

fn rules(feed: &SignedDoc) -> FeedRules {
    match feed.rules() {
        Rules::Feed(r) => r.clone(),
        _ => unreachable!("a feed"),
    }
}

/// What the receiver reads of `changes`, against the feed's roster.
fn read(feed: &common::Dept, changes: Vec<SignedChange>) -> Result<Vec<Thread>, String> {
    let opened = page::open(changes)?;
    let mut book = RosterBook::new();
    let mut at = RosterAt::new(feed.roster.doc(), &mut book);
    Ok(opened.read(&rules(&feed.doc), &mut at, PAGE_THREADS, i64::MAX))
}

/// Threads as `(id, body, deleted, [reply ids])`, to compare pages.
fn shape(threads: &[Thread]) -> Vec<(String, Option<String>, bool, Vec<String>)> {
    threads
        .iter()
        .map(|(p, rs)| {
            let replies = rs.iter().map(|r| r.id.clone()).collect();
            (p.id.clone(), p.body.clone(), p.deleted, replies)
        })
        .collect()
}

/// Bob, Cleo and Ada post 80 threads; some get replies, one is edited, one
/// deleted by an admin.
fn busy_feed() -> common::Dept {
    let (ada, bob, cleo) = (signer(1), signer(2), signer(3));
    let mut feed = common::Dept::new(SignedDoc::feed("d1", vec![]).unwrap(), roster());
    for i in 0..80i64 {
        let who = [&ada, &bob, &cleo][i as usize % 3];
        post(&mut feed, who, &format!("t{i}"), T0 + i * 1000, None);
    }
    let parent = pid(&bob, "t79");
    for i in 0..3 {
        post(
            &mut feed,
            &cleo,
            &format!("r{i}"),
            T0 + 90_000 + i,
            Some(&parent),
        );
    }
    let edited = pid(&ada, "t78");
    feed.change(&ada, T0 + 95_000, |tx| {
        write::edit(tx, &edited, "better words", T0 + 95_000)
    })
    .unwrap();
    let gone = pid(&cleo, "t77");
    feed.change(&ada, T0 + 96_000, |tx| write::delete(tx, &gone))
        .unwrap();
    feed
}

#[test]
fn an_honest_page_reads_as_the_feeds_own_newest_threads() {
    let feed = busy_feed();
    let sent = page::page_changes(&feed.doc, PAGE_THREADS, PAGE_REPLIES);
    // 50 creations and 3 replies, an edit, a deletion: no more.
    assert_eq!(sent.len(), 55, "the page carries what the page shows");
    let got = read(&feed, sent).unwrap();
    let want = Feed::new(feed.doc.doc())
        .threads(PAGE_THREADS, None)
        .unwrap();
    assert_eq!(shape(&got), shape(&want));
    assert_eq!(got[0].1.len(), 3, "Bob's thread has Cleo's three replies");
    assert_eq!(got[1].0.body.as_deref(), Some("better words"));
    assert!(got[2].0.deleted && got[2].0.body.is_none(), "a tombstone");
    assert_eq!(got[3].0.mentions, vec![signer(1).id()]);
}

/// `who` posts on a shelf at `at`; the post's id.
fn shelved_post(feed: &mut common::Dept, who: &Signer, at: i64, reply_to: Option<&str>) -> String {
    let id = tid(who, at, 0);
    let body = format!("{id} says hello");
    feed.change(who, at, |tx| {
        let post = NewPost {
            id: &id,
            author: who.id(),
            body: &body,
            created_at: at,
            reply_to,
            mentions: &[signer(1).id()],
            files: &[],
        };
        write::post(tx, &post)
    })
    .unwrap()
    .unwrap();
    id
}

/// [`busy_feed`] on shelves, over two days: ids that carry their time, as
/// nodes write them now.
fn busy_shelved_feed() -> (common::Dept, Vec<String>) {
    let (ada, bob, cleo) = (signer(1), signer(2), signer(3));
    let mut feed = common::Dept::new(SignedDoc::feed("d1", vec![]).unwrap(), roster());
    let mut ids = Vec::new();
    const HOUR: i64 = 3_600_000;
    for i in 0..80i64 {
        let who = [&ada, &bob, &cleo][i as usize % 3];
        ids.push(shelved_post(&mut feed, who, T0 + i * HOUR, None));
    }
    let parent = ids[79].clone();
    for i in 0..3 {
        ids.push(shelved_post(
            &mut feed,
            &cleo,
            T0 + 90 * HOUR + i,
            Some(&parent),
        ));
    }
    let edited = ids[78].clone();
    feed.change(&ada, T0, |tx| {
        write::edit(tx, &edited, "better words", T0 + 95 * HOUR)
    })
    .unwrap();
    let gone = ids[77].clone();
    feed.change(&ada, T0, |tx| write::delete(tx, &gone))
        .unwrap();
    (feed, ids)
}

#[test]
fn a_page_of_shelved_posts_carries_their_shelves_and_reads_as_the_feed() {
    let (feed, ids) = busy_shelved_feed();
    let sent = page::page_changes(&feed.doc, PAGE_THREADS, PAGE_REPLIES);
    let got = read(&feed, sent.clone()).unwrap();
    let want = Feed::new(feed.doc.doc())
        .threads(PAGE_THREADS, None)
        .unwrap();
    assert_eq!(shape(&got), shape(&want));
    assert_eq!(got[0].0.id, ids[79]);
    assert_eq!(got[0].1.len(), 3, "Bob's thread has Cleo's three replies");
    assert_eq!(got[1].0.body.as_deref(), Some("better words"));
    assert_eq!(got[1].0.edited_at, Some(T0 + 95 * 3_600_000));
    assert!(got[2].0.deleted && got[2].0.body.is_none(), "a tombstone");
    assert_eq!(got[3].0.mentions, vec![signer(1).id()]);
    assert_eq!(got[3].0.edited_at, None, "written, not edited");
    // 53 posts, an edit, a deletion, and the changes that made the shelves
    // of the page's days that the page's posts did not make themselves.
    assert!(
        sent.len() > 55 && sent.len() <= 55 + 6,
        "{} changes",
        sent.len()
    );

    // Without the changes that made its shelves, a page shows nothing of
    // them: a post's shelf is how the receiver knows it is this feed's.
    let makers: Vec<SignedChange> = sent
        .iter()
        .filter(|c| {
            let change = automerge::Change::from_bytes(c.bytes.clone()).unwrap();
            change.decode().operations.iter().any(|op| {
                matches!(
                    op.action,
                    automerge::legacy::OpType::Make(automerge::ObjType::Map)
                )
            })
        })
        .cloned()
        .collect();
    assert!(!makers.is_empty());
    let without: Vec<SignedChange> = sent.into_iter().filter(|c| !makers.contains(c)).collect();
    assert!(read(&feed, without).unwrap().is_empty());

    // Bob's post naming Cleo, and Bob's edit of Cleo's post, are left out.
    let (bob, cleo) = (signer(2), signer(3));
    let mut sent = page::page_changes(&feed.doc, PAGE_THREADS, PAGE_REPLIES);
    let newest = T0 + 100 * 3_600_000;
    let lie = tid(&bob, newest, 0);
    sent.push(common::forge_cited(&feed, &bob, &bob, |tx| {
        let post = NewPost {
            id: &lie,
            author: cleo.id(),
            body: "Cleo said this",
            created_at: newest,
            reply_to: None,
            mentions: &[],
            files: &[],
        };
        write::post(tx, &post).unwrap();
    }));
    let cleos = ids[77 - 3].clone();
    sent.push(common::forge_cited(&feed, &bob, &bob, |tx| {
        write::edit(tx, &cleos, "Bob's words", newest).unwrap();
    }));
    // A post written beside what the history refuses (a reaction in
    // Cleo's name): the history refuses the change whole, so the page
    // shows nothing of it.
    let smuggled = tid(&bob, newest + 1, 0);
    sent.push(common::forge_cited(&feed, &bob, &bob, |tx| {
        let post = NewPost {
            id: &smuggled,
            author: bob.id(),
            body: "with a forged reaction",
            created_at: newest,
            reply_to: None,
            mentions: &[],
            files: &[],
        };
        write::post(tx, &post).unwrap();
        write::react(tx, &cleos, "👍", cleo.id(), true).unwrap();
    }));
    let got = read(&feed, sent).unwrap();
    assert_eq!(shape(&got), shape(&want));

    // A post dated years ahead (a wrong clock, or a lie) would head the
    // preview, and keep it up for as long as the history lacks it: a
    // reader leaves out what is dated past its clock and MAX_AHEAD.
    let years = newest + 3 * 365 * 86_400_000;
    let ahead = tid(&bob, years, 0);
    let mut sent = page::page_changes(&feed.doc, PAGE_THREADS, PAGE_REPLIES);
    sent.push(common::forge_cited(&feed, &bob, &bob, |tx| {
        let post = NewPost {
            id: &ahead,
            author: bob.id(),
            body: "first, for ever",
            created_at: years,
            reply_to: None,
            mentions: &[],
            files: &[],
        };
        write::post(tx, &post).unwrap();
    }));
    let opened = page::open(sent).unwrap();
    let mut book = RosterBook::new();
    let mut at = RosterAt::new(feed.roster.doc(), &mut book);
    let rules = rules(&feed.doc);
    let trusting = opened.read(&rules, &mut at, PAGE_THREADS, i64::MAX);
    assert_eq!(trusting[0].0.id, ahead);
    let now = newest + 60_000;
    let wary = opened.read(&rules, &mut at, PAGE_THREADS, now + MAX_AHEAD);
    assert_eq!(shape(&wary), shape(&want));
}

#[test]
fn a_page_stops_at_its_budget_and_an_empty_feed_sends_nothing() {
    let empty = common::Dept::new(SignedDoc::feed("d1", vec![]).unwrap(), roster());
    assert!(page::page_changes(&empty.doc, PAGE_THREADS, PAGE_REPLIES).is_empty());
    let bob = signer(2);
    let mut feed = common::Dept::new(SignedDoc::feed("d1", vec![]).unwrap(), roster());
    let long = "x".repeat(MAX_BODY);
    for i in 0..50 {
        let id = pid(&bob, &format!("long{i}"));
        feed.change(&bob, T0, |tx| {
            write::post(
                tx,
                &NewPost {
                    id: &id,
                    author: bob.id(),
                    body: &long,
                    created_at: T0 + i,
                    reply_to: None,
                    mentions: &[],
                    files: &[],
                },
            )
        })
        .unwrap();
    }
    let sent = page::page_changes(&feed.doc, PAGE_THREADS, PAGE_REPLIES);
    let bytes: usize = sent.iter().map(|c| c.bytes.len()).sum();
    assert!(sent.len() < 50 && bytes <= page::PAGE_BUDGET + MAX_BODY + 4096);
}

#[test]
fn forged_malformed_or_oversized_pages_are_refused_whole() {
    let feed = busy_feed();
    let honest = page::page_changes(&feed.doc, PAGE_THREADS, PAGE_REPLIES);

    let mut forged = honest.clone();
    forged[3].signature = signer(4).sign_change(&[7; 32]).to_vec();
    let err = read(&feed, forged).unwrap_err();
    assert!(err.contains("forged signature"), "{err}");

    let mut short = honest.clone();
    short[0].signature.truncate(10);
    assert!(read(&feed, short)
        .unwrap_err()
        .contains("malformed signature"));

    let mut garbage = honest.clone();
    garbage[1].bytes = b"not an automerge change".to_vec();
    assert!(read(&feed, garbage)
        .unwrap_err()
        .contains("malformed change"));

    let flood = vec![honest[0].clone(); page::MAX_PAGE_CHANGES + 1];
    assert!(read(&feed, flood).unwrap_err().contains("at most"));
}

#[test]
fn what_the_history_would_refuse_is_left_out_of_a_page() {
    let (ada, bob, cleo, dave) = (signer(1), signer(2), signer(3), signer(4));
    let mut feed = common::Dept::new(SignedDoc::feed("d1", vec![]).unwrap(), roster());
    post(&mut feed, &bob, "real", T0, None);
    post(&mut feed, &cleo, "cleos", T0 + 1, None);
    let mut sent = page::page_changes(&feed.doc, PAGE_THREADS, PAGE_REPLIES);

    let forge_post = |who: &Signer, id: String, author: String, body: String| {
        common::forge_cited(&feed, who, who, move |tx| {
            let posts = match tx.get(ROOT, "posts").unwrap() {
                Some((_, id)) => id,
                None => unreachable!(),
            };
            let obj = tx.put_object(&posts, &id, automerge::ObjType::Map).unwrap();
            tx.put(&obj, "author", author).unwrap();
            tx.put(&obj, "body", body).unwrap();
            tx.put(&obj, "created_at", T0 + 10).unwrap();
            let order = match tx.get(ROOT, "order").unwrap() {
                Some((_, id)) => id,
                None => unreachable!(),
            };
            tx.insert(&order, 0, id).unwrap();
        })
    };
    // Dave is not in the department.
    sent.push(forge_post(
        &dave,
        pid(&dave, "x"),
        dave.id().to_string(),
        "hi".into(),
    ));
    // Bob signs a post that names Cleo as its author.
    sent.push(forge_post(
        &bob,
        pid(&bob, "y"),
        cleo.id().to_string(),
        "hi".into(),
    ));
    // Bob posts under Cleo's id prefix.
    sent.push(forge_post(
        &bob,
        pid(&cleo, "z"),
        bob.id().to_string(),
        "hi".into(),
    ));
    // A body over the limit.
    let big = "x".repeat(MAX_BODY + 1);
    sent.push(forge_post(
        &bob,
        pid(&bob, "big"),
        bob.id().to_string(),
        big,
    ));
    // Bob edits and deletes Cleo's post; only its author or an admin may.
    let cleos = pid(&cleo, "cleos");
    sent.push(common::forge_cited(&feed, &bob, &bob, |tx| {
        write::edit(tx, &cleos, "Bob's words", T0 + 20).unwrap();
    }));
    sent.push(common::forge_cited(&feed, &bob, &bob, |tx| {
        write::delete(tx, &cleos).unwrap();
    }));
    // A post written in another department's feed (its own `posts` map).
    let other = common::Dept::new(SignedDoc::feed("d2", vec![]).unwrap(), roster());
    sent.push(common::forge_cited(&other, &bob, &bob, |tx| {
        write::post(
            tx,
            &NewPost {
                id: &pid(&bob, "elsewhere"),
                author: bob.id(),
                body: "elsewhere",
                created_at: T0 + 30,
                reply_to: None,
                mentions: &[],
                files: &[],
            },
        )
        .unwrap();
    }));
    // A post citing a roster this node does not hold.
    let mut ahead = feed.roster.doc().fork();
    ahead.set_actor(automerge::ActorId::from(ada.id().as_bytes().as_slice()));
    ahead
        .transact::<_, _, automerge::AutomergeError>(|tx| tx.put(ROOT, "x", 1).map(|_| ()))
        .unwrap();
    let unknown_heads = ahead.get_heads();
    sent.push(common::forge_with(
        &feed.doc,
        &bob,
        &bob,
        Some(meshwork_crdt::cite::message(&unknown_heads)),
        |tx| {
            write::post(
                tx,
                &NewPost {
                    id: &pid(&bob, "later"),
                    author: bob.id(),
                    body: "later",
                    created_at: T0 + 40,
                    reply_to: None,
                    mentions: &[],
                    files: &[],
                },
            )
            .unwrap();
        },
    ));

    let got = read(&feed, sent).unwrap();
    let want = vec![
        (
            cleos.clone(),
            Some(format!("{cleos} says hello")),
            false,
            vec![],
        ),
        (
            pid(&bob, "real"),
            Some(format!("{} says hello", pid(&bob, "real"))),
            false,
            vec![],
        ),
    ];
    assert_eq!(shape(&got), want);

    // The admin's deletion of Cleo's post is taken.
    let by_admin = common::forge_cited(&feed, &ada, &ada, |tx| {
        write::delete(tx, &cleos).unwrap();
    });
    let mut sent = page::page_changes(&feed.doc, PAGE_THREADS, PAGE_REPLIES);
    sent.push(by_admin);
    let got = read(&feed, sent).unwrap();
    assert!(got[0].0.deleted && got[0].0.body.is_none());
}
