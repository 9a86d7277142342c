//! Issue 14, for real: a partition between two network namespaces this test
//! creates, joined by a veth pair. alice is alone in one; bob and carol share
//! the other (they reach each other on its veth address). While the link is
//! down alice takes carol out of Sales, and bob and carol go on posting
//! there; once it is up again everything converges, carol's posts written
//! before she knew included, and carol learns she left.
//!
//! Three real `meshwork` daemons, mDNS off, fixed ports on 10.77.0.x (the
//! namespaces are fresh, so the ports are free), `--peer` addresses and
//! invite tokens only. After the heal the nodes find each other by their
//! peer book, redialled every sync interval (30 s): no test-only knob.
//!
//! Needs root and iproute2 (as on CI); elsewhere it says why it skipped.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::bin::{until_within, Host};
use common::netns::Lan;
use serde_json::Value;

const ALICE: &str = "/ip4/10.77.0.1/tcp/4001";
const BOB: &str = "/ip4/10.77.0.2/tcp/4001";
const CAROL: &str = "/ip4/10.77.0.2/tcp/4002";

/// A daemon's node and where its commands run.
#[derive(Clone, Copy)]
struct At<'a> {
    host: Host<'a>,
    home: &'a Path,
}

impl At<'_> {
    fn ok(&self, args: &[&str]) -> String {
        self.host.ok(self.home, args)
    }

    fn json(&self, args: &[&str]) -> Value {
        self.host.json(self.home, args)
    }

    fn post(&self, text: &str) -> String {
        self.ok(&["post", "Sales", text]).trim().to_owned()
    }

    /// Sales as this node shows it: post ids, newest first.
    fn sales(&self) -> Vec<String> {
        self.json(&["feed", "Sales", "--limit", "100", "--json"])
            .as_array()
            .expect("a feed is a list")
            .iter()
            .map(|t| t["id"].as_str().expect("a post id").to_owned())
            .collect()
    }

    fn has_posts(&self, ids: &[&String]) -> bool {
        let feed = self.sales();
        ids.iter().all(|id| feed.contains(id))
    }

    fn peer_id(&self) -> String {
        self.json(&["status", "--json"])["peer_id"]
            .as_str()
            .expect("a peer id")
            .to_owned()
    }

    fn connected_to(&self, peer: &str) -> bool {
        self.json(&["peers", "--json"])
            .as_array()
            .expect("peers is a list")
            .iter()
            .any(|p| p["peer_id"] == peer)
    }

    fn roster_heads(&self) -> Value {
        let status = self.json(&["status", "--json"]);
        let docs = status["workspace"]["documents"].as_array().unwrap().clone();
        let roster = docs.iter().find(|d| d["name"] == "roster").unwrap();
        roster["heads"].clone()
    }

    /// The names of Sales' members, sorted.
    fn sales_members(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .json(&["members", "--dept", "Sales", "--json"])
            .as_array()
            .expect("members is a list")
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn a_partition_heals_and_sales_converges_with_the_posts_of_a_member_removed_meanwhile() {
    // Dropped last: after the daemons in it.
    let Some(lan) = Lan::for_root("p") else {
        return;
    };
    let (a, b) = lan.hosts();
    let dir = tempfile::tempdir().unwrap();
    let homes = ["alice", "bob", "carol"].map(|n| dir.path().join(n));
    let alice = At {
        host: a,
        home: &homes[0],
    };
    let bob = At {
        host: b,
        home: &homes[1],
    };
    let carol = At {
        host: b,
        home: &homes[2],
    };
    for (at, name) in [(alice, "alice"), (bob, "bob"), (carol, "carol")] {
        at.ok(&["init", "--name", name]);
    }
    let flags = |me: &'static str| {
        let mut f = vec!["--no-mdns", "--listen", me];
        for other in [ALICE, BOB, CAROL].into_iter().filter(|o| *o != me) {
            f.extend(["--peer", other]);
        }
        f
    };
    let _da = a.daemon(alice.home, &flags(ALICE));
    let _db = b.daemon(bob.home, &flags(BOB));
    let _dc = b.daemon(carol.home, &flags(CAROL));
    let [pa, pb, pc] = [alice, bob, carol].map(|at| at.peer_id());

    // Everyone in Sales, everyone connected.
    alice.ok(&["workspace", "create", "Acme"]);
    alice.ok(&["dept", "create", "Sales"]);
    for at in [bob, carol] {
        let token = alice.ok(&["invite", "--dept", "Sales"]);
        at.ok(&["join", token.trim()]);
    }
    for (at, others) in [(alice, [&pb, &pc]), (bob, [&pa, &pc]), (carol, [&pa, &pb])] {
        until_within(MINUTE, "all three connected and in Sales", || {
            others.iter().all(|p| at.connected_to(p)) && at.sales_members().len() == 3
        });
    }
    let a1 = alice.post("a1: kick-off");
    until_within(MINUTE, "bob and carol have a1", || {
        bob.has_posts(&[&a1]) && carol.has_posts(&[&a1])
    });
    let c1 = carol.post("c1: numbers are in");
    until_within(MINUTE, "alice and bob have c1", || {
        alice.has_posts(&[&c1]) && bob.has_posts(&[&c1])
    });

    // The link goes down: each side notices by itself (the bound is 26 s).
    lan.set_link("down");
    let cut = Instant::now();
    until_within(MINUTE, "each side drops the other", || {
        !alice.connected_to(&pb)
            && !alice.connected_to(&pc)
            && !bob.connected_to(&pa)
            && !carol.connected_to(&pa)
    });
    eprintln!("the partition was noticed after {:?}", cut.elapsed());
    assert!(bob.connected_to(&pc), "bob and carol are on the same side");

    // alice takes carol out of Sales; meanwhile, on the other side, carol
    // (who cannot know) and bob go on posting there, and so does alice.
    alice.ok(&["dept", "remove", "carol", "Sales"]);
    assert_eq!(alice.sales_members(), ["alice", "bob"]);
    let a2 = alice.post("a2: carol moved to Support");
    let c2 = carol.post("c2: the Q3 deck is done");
    until_within(MINUTE, "bob has c2", || bob.has_posts(&[&c2]));
    let b1 = bob.post("b1: thanks carol");
    until_within(MINUTE, "carol has b1", || carol.has_posts(&[&b1]));
    let c3 = carol.post("c3: sent to the client");
    until_within(MINUTE, "bob has c3", || bob.has_posts(&[&c3]));
    assert!(!alice.has_posts(&[&c2]) && !bob.has_posts(&[&a2]));

    // The link comes back: the nodes find each other again by themselves.
    lan.set_link("up");
    let healed = Instant::now();
    until_within(2 * MINUTE, "the two sides reconnect", || {
        alice.connected_to(&pb) && bob.connected_to(&pa)
    });
    eprintln!("reconnected {:?} after the heal", healed.elapsed());

    // The roster converges, on all three (carol is still a member of the
    // workspace).
    until_within(MINUTE, "the roster converges", || {
        let heads = alice.roster_heads();
        bob.roster_heads() == heads && carol.roster_heads() == heads
    });
    assert_eq!(bob.sales_members(), ["alice", "bob"]);

    // Sales converges: the same posts in the same order for alice and bob,
    // carol's posts written before she knew of her removal included.
    let all = [&a1, &c1, &a2, &c2, &b1, &c3];
    until_within(MINUTE, "alice and bob hold every Sales post", || {
        alice.has_posts(&all) && bob.has_posts(&all)
    });
    let converged = alice.sales();
    assert_eq!(bob.sales(), converged);
    assert_eq!(converged.len(), all.len(), "{converged:?}");
    // Newest first; what was written after seeing a post stays before it.
    let at = |id: &String| converged.iter().position(|p| p == id).unwrap();
    assert!(at(&c1) < at(&a1));
    assert!(at(&a2) < at(&c1));
    assert!(at(&c3) < at(&b1) && at(&b1) < at(&c2) && at(&c2) < at(&c1));

    // A post bob makes after the heal reaches alice, on top.
    let b2 = bob.post("b2: welcome back alice");
    until_within(MINUTE, "alice has b2", || alice.has_posts(&[&b2]));
    let after = alice.sales();
    assert_eq!(after[0], b2);
    assert_eq!(after[1..], converged[..]);
    until_within(MINUTE, "bob and alice agree after b2", || {
        bob.sales() == after
    });

    // carol learns she left Sales (she is still in the workspace), and can
    // no longer post or read there.
    until_within(MINUTE, "carol sees herself out of Sales", || {
        carol.sales_members() == ["alice", "bob"]
    });
    let status = carol.json(&["status", "--json"]);
    assert_eq!(status["workspace"]["role"], "member");
    assert_eq!(status["workspace"]["removed"], false);
    assert!(!carol
        .host
        .run(carol.home, &["post", "Sales", "c4: still here?"])
        .status
        .success());
    assert!(!carol
        .host
        .run(carol.home, &["feed", "Sales", "--json"])
        .status
        .success());
    assert_eq!(alice.sales(), after);
}
