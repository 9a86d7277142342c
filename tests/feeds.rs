//! Department feeds with real nodes over loopback: live delivery, catching
//! up after an absence, one order everywhere, and privacy — a member outside
//! the department never holds a post's text, not even on disk.

mod common;

use common::*;
use meshwork::node::wire::DocRef;
use meshwork::node::{NodeError, Store};

async fn sees(node: &TestNode, text: &str) -> bool {
    node.feed("Research", 100, None)
        .is_ok_and(|f| f.iter().any(|t| t.post.body.as_deref() == Some(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_reaches_the_department_live_and_no_one_else() {
    let (_clock, ada, bob, cleo, dave) = research().await;
    let secret = "the launch moves to Thursday 7f3a";
    let post = bob.post("Research", secret, None).await.unwrap();
    for n in [&ada, &cleo] {
        until("the post arrives", || sees(n, secret)).await;
    }
    let reply = cleo
        .post("Research", "noted @Bob", Some(&post.id))
        .await
        .unwrap();
    until("Bob sees the reply under his post", || async {
        bob.feed("Research", 10, None).is_ok_and(|f| {
            f.first()
                .is_some_and(|t| t.post.id == post.id && t.replies.iter().any(|r| r.id == reply.id))
        })
    })
    .await;
    assert_eq!(
        cleo.feed("Research", 10, None).unwrap()[0].replies[0].mentions,
        vec![bob.member_id()]
    );
    // Once in step, nothing is said to be still arriving.
    until("Ada holds both posts, and no more is coming", || async {
        ada.feed_state("Research")
            .is_ok_and(|s| s.posts == 2 && !s.arriving)
    })
    .await;

    // Dave is in the workspace, not in Research: refused, and after all
    // that traffic his disk holds not one copy of the text.
    let err = dave.feed("Research", 10, None).unwrap_err();
    assert!(matches!(err, NodeError::Forbidden(_)), "{err}");
    ada.dept_create("After").await.unwrap();
    until_roster(&dave, "Dave keeps up with the roster", |r| {
        r.resolve_dept("After").is_ok()
    })
    .await;
    let ws: [u8; 32] = hex::decode(ada.status().await.workspace.unwrap().id)
        .unwrap()
        .try_into()
        .unwrap();
    let dept = dept_id(&ada, "Research");
    let dave_dir = stop(dave).await;
    assert!(
        !on_disk(dave_dir.path(), secret),
        "a non-member's disk holds the post text"
    );
    let store = Store::open(&dave_dir.path().join("db")).unwrap();
    assert!(store
        .changes(&DocRef::Feed(dept).store_key(&ws))
        .unwrap()
        .is_empty());
    // The members' disks do hold it (the check above can fail).
    let cleo_dir = stop(cleo).await;
    assert!(on_disk(cleo_dir.path(), secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_catches_up_after_an_absence_and_all_show_one_order() {
    let (clock, ada, bob, cleo, _dave) = research().await;
    bob.post("Research", "before", None).await.unwrap();
    until("Cleo has the first post", || sees(&cleo, "before")).await;
    let cleo_dir = stop(cleo).await;
    for i in 0..5 {
        bob.post("Research", &format!("while away {i}"), None)
            .await
            .unwrap();
        ada.post("Research", &format!("from Ada {i}"), None)
            .await
            .unwrap();
    }
    // Back, with no --peer: the peer book finds the others.
    let cleo = restart(cleo_dir, &clock, vec![]).await;
    until("Cleo caught up", || async {
        cleo.feed("Research", 100, None)
            .is_ok_and(|f| f.len() == 11)
    })
    .await;
    let order = |n: &TestNode| {
        n.feed("Research", 100, None)
            .unwrap()
            .into_iter()
            .map(|t| t.post.id)
            .collect::<Vec<_>>()
    };
    until("one order everywhere", || async {
        let (a, b, c) = (order(&ada), order(&bob), order(&cleo));
        if a != c || b != c {
            eprintln!("ada  {a:?}\nbob  {b:?}\ncleo {c:?}");
        }
        a == c && b == c
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletions_reactions_and_their_limits() {
    let (_clock, ada, bob, cleo, _dave) = research().await;
    let p = bob.post("Research", "first draft", None).await.unwrap();
    until("Cleo has it", || sees(&cleo, "first draft")).await;
    bob.edit(&p.id, "final text").await.unwrap();
    cleo.react(&p.id, "🎉").await.unwrap();
    until("Cleo sees the edit", || sees(&cleo, "final text")).await;
    until("Bob sees the reaction", || async {
        bob.feed("Research", 10, None)
            .is_ok_and(|f| f[0].post.reactions.get("🎉") == Some(&vec![cleo.member_id()]))
    })
    .await;
    // Only the author edits; only the author or an admin deletes.
    assert!(matches!(
        cleo.edit(&p.id, "mine now").await,
        Err(NodeError::Forbidden(_))
    ));
    assert!(matches!(
        cleo.delete(&p.id).await,
        Err(NodeError::Forbidden(_))
    ));
    ada.delete(&p.id).await.unwrap();
    until("the tombstone replicates", || async {
        bob.feed("Research", 10, None)
            .is_ok_and(|f| f[0].post.deleted && f[0].post.body.is_none())
    })
    .await;
    // Bad input: clear errors, nothing written.
    let before = bob.feed("Research", 100, None).unwrap().len();
    assert!(matches!(
        bob.post("Research", "   ", None).await,
        Err(NodeError::BadRequest(_))
    ));
    let long = "x".repeat(64 * 1024 + 1);
    assert!(matches!(
        bob.post("Research", &long, None).await,
        Err(NodeError::BadRequest(_))
    ));
    let err = bob.post("Nowhere", "hi", None).await.unwrap_err();
    assert!(
        err.to_string().contains("Research"),
        "names the valid departments: {err}"
    );
    assert!(matches!(
        bob.react("0123456789abcdef", "👍").await,
        Err(NodeError::NotFound(_))
    ));
    assert!(matches!(
        bob.post("Research", "re", Some("nope")).await,
        Err(NodeError::NotFound(_))
    ));
    assert_eq!(bob.feed("Research", 100, None).unwrap().len(), before);
    // A post's id comes after those of the author's earlier posts, so that
    // the feed's map of posts grows at its end (crdt/src/nonce.rs).
    let next = bob.post("Research", "second thoughts", None).await.unwrap();
    assert!(next.id > p.id, "{} after {}", next.id, p.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_from_the_department_receives_nothing_new() {
    let (_clock, ada, bob, cleo, _dave) = research().await;
    bob.post("Research", "while Cleo is in", None)
        .await
        .unwrap();
    until("Cleo has it", || sees(&cleo, "while Cleo is in")).await;
    ada.dept_remove("Cleo", "Research").await.unwrap();
    until_roster(&bob, "Bob knows Cleo left", |r| {
        r.resolve_dept("Research")
            .is_ok_and(|d| !d.members.contains(&cleo.member_id()))
    })
    .await;
    until_roster(&cleo, "Cleo knows she left", |r| {
        r.resolve_dept("Research")
            .is_ok_and(|d| !d.members.contains(&cleo.member_id()))
    })
    .await;
    let later = "after Cleo left b81c";
    bob.post("Research", later, None).await.unwrap();
    until("Ada has the later post", || sees(&ada, later)).await;
    // Cleo can no longer read the feed, and never received the later post.
    assert!(matches!(
        cleo.feed("Research", 10, None),
        Err(NodeError::Forbidden(_))
    ));
    ada.dept_create("Barrier").await.unwrap();
    until_roster(&cleo, "Cleo still follows the roster", |r| {
        r.resolve_dept("Barrier").is_ok()
    })
    .await;
    let dir = stop(cleo).await;
    assert!(!on_disk(dir.path(), later));
    assert!(
        on_disk(dir.path(), "while Cleo is in"),
        "what she could read before stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_is_read_by_the_two_alone() {
    let (_clock, ada, bob, cleo, dave) = research().await;
    let secret = "just between us 5d2e";
    bob.dm("Cleo", secret).await.unwrap();
    until("Cleo receives it", || async {
        cleo.dm_conversation("Bob")
            .is_ok_and(|c| c.iter().any(|p| p.body.as_deref() == Some(secret)))
    })
    .await;
    cleo.dm("Bob", "got it").await.unwrap();
    until("Bob sees the answer", || async {
        bob.dm_conversation("Cleo").is_ok_and(|c| c.len() == 2)
    })
    .await;
    let list = cleo.dm_list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].member, bob.member_id());
    // A direct message takes reactions, edits and deletion like a post.
    let answer = cleo.dm_conversation("Bob").unwrap()[1].id.clone();
    let first = cleo.dm_conversation("Bob").unwrap()[0].id.clone();
    bob.react(&answer, "👍").await.unwrap();
    cleo.edit(&answer, "got it, thanks").await.unwrap();
    bob.delete(&first).await.unwrap();
    assert!(
        matches!(
            bob.edit(&answer, "in your name").await,
            Err(NodeError::Forbidden(_))
        ),
        "only its author edits a message"
    );
    until(
        "both see the reaction, the edit and the tombstone",
        || async {
            [&bob, &cleo].iter().all(|n| {
                n.dm_conversation(if n.member_id() == bob.member_id() {
                    "Cleo"
                } else {
                    "Bob"
                })
                .is_ok_and(|c| {
                    c[0].deleted
                        && c[1].body.as_deref() == Some("got it, thanks")
                        && c[1].reactions.get("👍") == Some(&vec![bob.member_id()])
                })
            })
        },
    )
    .await;
    assert!(matches!(
        ada.react(&answer, "👀").await,
        Err(NodeError::NotFound(_))
    ));
    assert!(matches!(
        bob.dm("Bob", "me").await,
        Err(NodeError::BadRequest(_))
    ));
    // Neither the admin nor anyone else ever holds the text.
    ada.dept_create("Barrier").await.unwrap();
    until_roster(&dave, "Dave keeps up", |r| {
        r.resolve_dept("Barrier").is_ok()
    })
    .await;
    for n in [ada, dave] {
        let dir = stop(n).await;
        assert!(!on_disk(dir.path(), secret));
    }
    assert!(on_disk(stop(cleo).await.path(), secret));
}

/// Issue 17: what is new, per department and conversation, by others, with
/// mentions — read state kept by each member for itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_follow_what_each_member_read() {
    use meshwork::node::ReadIn;
    let (_clock, ada, bob, cleo, _dave) = research().await;
    let unread_in = |n: &TestNode| {
        let u = n.unread().unwrap();
        let r = u.depts.iter().find(|d| d.name == "Research").unwrap();
        (r.unread, r.mentions, u.total)
    };
    assert_eq!(unread_in(&ada), (0, 0, 0));
    bob.post("Research", "agenda for Monday", None)
        .await
        .unwrap();
    bob.post("Research", "@Ada can you chair?", None)
        .await
        .unwrap();
    ada.post("Research", "mine, not news to me", None)
        .await
        .unwrap();
    for n in [&ada, &cleo] {
        until("both of Bob's posts arrive", || async {
            n.feed("Research", 10, None).is_ok_and(|f| f.len() == 3)
        })
        .await;
    }
    // Ada's own post is not news to her; Cleo sees all three, no mention.
    assert_eq!(unread_in(&ada), (2, 1, 2));
    assert_eq!(unread_in(&cleo), (3, 0, 3));

    // Ada reads Research; Cleo has not, and what Ada read is hers alone.
    ada.mark_read(&ReadIn::Dept("Research".into())).unwrap();
    assert_eq!(unread_in(&ada), (0, 0, 0));
    assert_eq!(unread_in(&cleo), (3, 0, 3));
    let later = bob.post("Research", "room 4", None).await.unwrap();
    until("the next post arrives", || async {
        ada.feed("Research", 10, None)
            .is_ok_and(|f| f.first().is_some_and(|t| t.post.id == later.id))
    })
    .await;
    assert_eq!(unread_in(&ada), (1, 0, 1));

    // A direct message counts in its conversation.
    bob.dm("Ada", "lunch?").await.unwrap();
    until("Ada has Bob's message", || async {
        ada.unread()
            .is_ok_and(|u| u.dms.iter().any(|d| d.name == "Bob" && d.unread == 1))
    })
    .await;
    assert_eq!(ada.unread().unwrap().total, 2);
    ada.mark_read(&ReadIn::Member("Bob".into())).unwrap();
    ada.mark_read(&ReadIn::Dept("Research".into())).unwrap();
    assert_eq!(ada.unread().unwrap().total, 0);

    // Read marks survive a restart (they are in the store).
    let ada_dir = stop(ada).await;
    let ada = restart(ada_dir, &_clock, vec![addr(&bob).await]).await;
    assert_eq!(ada.unread().unwrap().total, 0);
    // Wrong input: a department she is not in, a member who is not one.
    assert!(ada.mark_read(&ReadIn::Dept("Nowhere".into())).is_err());
    assert!(ada.mark_read(&ReadIn::Member("Nobody".into())).is_err());
}

/// Issue 16, memory by what is open: a member's documents leave memory
/// once nobody uses them, and come back whole — read from disk, and with
/// their sync sessions resumed, so posts still flow both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_documents_leave_memory_and_come_back_whole() {
    let (_clock, ada, bob, _cleo, _dave) = research().await;
    let unloaded = |n: &TestNode| {
        n.unload_idle(std::time::Duration::ZERO).is_ok() && n.loaded_docs().is_empty()
    };
    ada.post("Research", "before the break", None)
        .await
        .unwrap();
    until("Bob has the post", || sees(&bob, "before the break")).await;
    until("Bob's documents leave memory", || async { unloaded(&bob) }).await;

    assert!(sees(&bob, "before the break").await, "read again from disk");
    let research = dept_id(&bob, "Research");
    // (Another document may be back too: a periodic round with a peer
    // not in step on it loads it.)
    assert!(bob.loaded_docs().contains(&DocRef::Feed(research)));
    until("they leave memory again", || async { unloaded(&bob) }).await;

    let post = ada.post("Research", "after the break", None).await.unwrap();
    until("Ada's new post reaches Bob's unloaded feed", || {
        sees(&bob, "after the break")
    })
    .await;
    until("Bob's documents leave memory once more", || async {
        unloaded(&bob)
    })
    .await;
    bob.post("Research", "welcome back", Some(&post.id))
        .await
        .unwrap();
    until("Bob's reply reaches Ada", || async {
        ada.feed("Research", 10, None).is_ok_and(|f| {
            f.iter().any(|t| {
                t.replies
                    .iter()
                    .any(|r| r.body.as_deref() == Some("welcome back"))
            })
        })
    })
    .await;
    until(
        "Bob's search finds what came while his feed was out",
        || async {
            bob.search("break", Some("Research"), 10)
                .await
                .is_ok_and(|r| r.total == 2)
        },
    )
    .await;

    // What left memory was compacted: Bob's store holds his feed as a
    // snapshot, and a restart reads it back whole.
    until("Bob's documents leave memory at the end", || async {
        unloaded(&bob)
    })
    .await;
    let key = feed_key(&bob, "Research").await;
    let bob_dir = stop(bob).await;
    {
        let store = Store::open(&bob_dir.path().join("db")).unwrap();
        let (snapshot, loose) = store.stored(&key).unwrap();
        assert!(snapshot.is_some(), "the feed was compacted");
        assert!(loose.len() < 3, "{} changes left loose", loose.len());
    }
    let bob = restart(bob_dir, &_clock, vec![addr(&ada).await]).await;
    let page = bob.feed("Research", 10, None).unwrap();
    assert_eq!(page.len(), 2, "both threads, read through the snapshot");
    assert!(page.iter().any(|t| t.replies.len() == 1));
}

/// A node that stops compacts the documents it holds in memory: its next
/// start reads each from a snapshot, not change by change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_compacts_what_it_holds_in_memory() {
    let (clock, ada, bob, _cleo, _dave) = research().await;
    for i in 0..3 {
        ada.post("Research", &format!("note {i}"), None)
            .await
            .unwrap();
    }
    until("Bob has the posts", || sees(&bob, "note 2")).await;
    let research = DocRef::Feed(dept_id(&bob, "Research"));
    assert!(bob.loaded_docs().contains(&research), "Bob's feed is open");
    let key = feed_key(&bob, "Research").await;
    let bob_dir = stop(bob).await;
    {
        let store = Store::open(&bob_dir.path().join("db")).unwrap();
        let (snapshot, loose) = store.stored(&key).unwrap();
        assert!(
            snapshot.is_some(),
            "the open feed was compacted as Bob stopped"
        );
        assert!(loose.is_empty(), "{} changes left loose", loose.len());
    }
    let bob = restart(bob_dir, &clock, vec![addr(&ada).await]).await;
    let page = bob.feed("Research", 10, None).unwrap();
    assert_eq!(page.len(), 3, "every thread, read through the snapshot");
}

/// Where `node` stores department `dept`'s feed.
async fn feed_key(node: &TestNode, dept: &str) -> [u8; 32] {
    let ws: [u8; 32] = hex::decode(node.status().await.workspace.unwrap().id)
        .unwrap()
        .try_into()
        .unwrap();
    DocRef::Feed(dept_id(node, dept)).store_key(&ws)
}

/// Thread and reply ids of a page, to compare pages.
fn shape(page: &[meshwork::node::node::Thread]) -> Vec<(String, Vec<String>)> {
    page.iter()
        .map(|t| {
            let replies = t.replies.iter().map(|r| r.id.clone()).collect();
            (t.post.id.clone(), replies)
        })
        .collect()
}

/// A fresh member of a department with a history is sent its newest
/// threads ahead of that history (a colleague's first page, each change
/// checked), then the history itself; the page is Ada's either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_member_gets_the_newest_threads_ahead_of_the_history() {
    use meshwork::node::NodeEvent;
    use tokio::sync::broadcast::error::RecvError;

    let (clock, ada, _) = office(&[]).await;
    ada.dept_create("Research").await.unwrap();
    ada.dept_add("Ada", "Research").await.unwrap();
    let mut newest = None;
    for i in 0..60 {
        clock.advance(std::time::Duration::from_secs(1));
        newest = Some(
            ada.post("Research", &format!("thread {i}"), None)
                .await
                .unwrap(),
        );
    }
    let newest = newest.unwrap();
    ada.post("Research", "an answer", Some(&newest.id))
        .await
        .unwrap();
    let want = shape(&ada.feed("Research", 50, None).unwrap());
    let research = dept_id(&ada, "Research");

    let erin = spawn("Erin", &clock).await;
    let mut events = erin.events();
    erin.join(&invite(&ada, Some("Research")).await)
        .await
        .unwrap();
    let preview = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(NodeEvent::FeedPreview { dept, threads, .. }) if dept == research => {
                    break threads;
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("Erin's node stopped"),
            }
        }
    })
    .await
    .expect("a first page of Research reaches Erin");
    assert_eq!(preview, 50, "the page holds the newest 50 threads");
    // Shown from the page, or from the history if it was quicker: the
    // newest threads are Ada's.
    let roots: Vec<String> = shape(&erin.feed("Research", 50, None).unwrap())
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let ada_roots: Vec<String> = want.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(roots, ada_roots);

    until("Erin holds the whole history, and no preview", || async {
        erin.feed_state("Research")
            .is_ok_and(|s| s.posts == 61 && !s.preview && !s.arriving)
    })
    .await;
    assert_eq!(shape(&erin.feed("Research", 50, None).unwrap()), want);
}
