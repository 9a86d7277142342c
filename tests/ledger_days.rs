//! The pin ledger follows what is live, not the workspace's history: it is
//! one document per day of deadlines, and a day that is over is dropped
//! whole. Real nodes on 127.0.0.1, days moved on a manual clock.

mod common;

use std::time::Duration;

use common::*;
use meshwork::node::crdt::pins::{epoch_end, epoch_of, Epoch};
use meshwork::node::{Clock, ManualClock, Node, PinNodeConfig, SKEW_MARGIN_MS};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Bob shares a small file named `name` into Research: its blob and
/// deadline.
async fn share(bob: &Node, work: &std::path::Path, name: &str) -> (String, i64) {
    let path = write_file(work, name, &content(4000, u64::from(name.as_bytes()[0])));
    let shared = bob.share("Research", &path, None, None).await.unwrap();
    (shared.entry.blob, shared.available_until)
}

/// The blobs `node`'s ledger lists as live.
fn live_pins(node: &Node) -> Vec<String> {
    let mut blobs: Vec<String> = node
        .pins()
        .unwrap()
        .pins
        .into_iter()
        .map(|p| p.blob)
        .collect();
    blobs.sort();
    blobs
}

/// Waits until `node`'s ledger lists exactly `blobs` as live.
async fn until_pins(node: &Node, what: &str, blobs: &[&String]) {
    let mut want: Vec<String> = blobs.iter().map(|b| (*b).clone()).collect();
    want.sort();
    until(what, || async { live_pins(node) == want }).await;
}

/// Moves `clock` to just past the end of day `day` and its skew margin.
fn past(clock: &ManualClock, day: Epoch) {
    let to = epoch_end(day) + SKEW_MARGIN_MS + 1;
    clock.advance(Duration::from_millis((to - clock.now()) as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_days_are_dropped_whole_and_late_or_new_members_find_every_live_pin() {
    let (clock, ada, bob, cleo, _dave) = research().await;
    let pia = spawn_with("Pia", &clock, |cfg| {
        cfg.pin = Some(PinNodeConfig { quota: 1 << 30 });
    })
    .await;
    let (_, token) = ada
        .add_pinner(&pia.peer_id().to_string(), Some("Pia"))
        .await
        .unwrap();
    pia.join(&token.token).await.unwrap();
    let work = tempfile::tempdir().unwrap();

    // A share under the 72-hour policy; then retention goes to five days:
    // the next share's deadline is later, in another day. Each request
    // sits in the day of its deadline.
    let (a, a_until) = share(&bob, work.path(), "a.txt").await;
    ada.set_policy(Some(120 * HOUR), None).await.unwrap();
    until_roster(&bob, "Bob sees the five-day policy", |r| {
        r.policy.retention_ms == 120 * 3_600_000
    })
    .await;
    let (b, b_until) = share(&bob, work.path(), "b.txt").await;
    assert_eq!(
        b_until - a_until,
        48 * 3_600_000,
        "retention moved B's deadline"
    );
    let (day_a, day_b) = (epoch_of(a_until), epoch_of(b_until));
    assert_ne!(day_a, day_b);
    until_pins(&pia, "Pia sees both requests", &[&a, &b]).await;
    let done = pia.reconcile_pins().await.unwrap();
    assert_eq!(done.committed.len(), 2);
    until("Cleo sees both pinned by Pia", || async {
        let view = cleo.pins().unwrap();
        view.pins.len() == 2 && view.pins.iter().all(|p| p.pinners.len() == 1)
    })
    .await;
    for node in [&pia, &cleo] {
        let days = node.ledger_days().unwrap();
        assert!(days.contains(&day_a) && days.contains(&day_b), "{days:?}");
    }

    // Cleo goes away. Once A's day is over, Pia's pass collects A's bytes
    // and drops the whole day; B's stays.
    let cleo_dir = stop(cleo).await;
    past(&clock, day_a);
    let done = pia.reconcile_pins().await.unwrap();
    assert_eq!(done.collected, vec![a.clone()]);
    assert!(!pia.ledger_days().unwrap().contains(&day_a));
    assert!(pia.ledger_days().unwrap().contains(&day_b));
    assert_eq!(live_pins(&pia), vec![b.clone()]);

    // A month on, Bob shares C. Every day Cleo held is over.
    clock.advance(30 * DAY);
    let (c, c_until) = share(&bob, work.path(), "c.txt").await;
    until_pins(&pia, "Pia sees C alone", &[&c]).await;
    assert_eq!(
        pia.reconcile_pins().await.unwrap().committed,
        vec![c.clone()]
    );
    assert!(pia
        .ledger_days()
        .unwrap()
        .iter()
        .all(|d| epoch_end(*d) > clock.now()));

    // Cleo, back after a month, finds C (and only C); her pass drops the
    // days she held, and none of them travels back to anyone.
    let cleo = restart(cleo_dir, &clock, vec![addr(&ada).await, addr(&pia).await]).await;
    until_pins(&cleo, "Cleo, back, finds C", &[&c]).await;
    assert!(cleo.ledger_days().unwrap().contains(&day_a));
    cleo.reconcile_pins().await.unwrap();
    let live = |node: &Node| {
        node.ledger_days()
            .unwrap()
            .iter()
            .all(|d| epoch_end(*d) + SKEW_MARGIN_MS > clock.now())
    };
    assert!(live(&cleo), "{:?}", cleo.ledger_days());
    assert!(cleo.ledger_days().unwrap().contains(&epoch_of(c_until)));

    // A new member of Research finds C, and holds no day that is over.
    let eve = spawn("Eve", &clock).await;
    eve.join(&invite(&ada, Some("Research")).await)
        .await
        .unwrap();
    until_pins(&eve, "Eve, new, finds C", &[&c]).await;
    assert!(live(&eve), "{:?}", eve.ledger_days());
    assert!(live(&pia), "{:?}", pia.ledger_days());
    until("Eve sees Pia's commitment to C", || async {
        // (Cleo's pass may have volunteered for C as well.)
        eve.pins().unwrap().pins[0]
            .pinners
            .iter()
            .any(|p| p.member_id == pia.member_id())
    })
    .await;
}
