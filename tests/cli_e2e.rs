//! The real `meshwork` binary: two daemons, two homes, driven only through
//! the command line — create, invite, join, departments, members — and an
//! acknowledged change surviving `kill -9`; text from the network printed
//! with its control characters escaped; SIGTERM with live event streams
//! open (the CLI's, a web tab's) stopping the daemon promptly; `--json`
//! printing the daemon's own answers, byte for byte.

mod common;

use common::bin::*;
use serde_json::Value;

#[test]
fn two_daemons_create_invite_join_and_organise() {
    let dir = tempfile::tempdir().unwrap();
    let (h1, h2) = (dir.path().join("ada"), dir.path().join("bob"));

    // Commands other than init/daemon/up need a daemon, and say so.
    let out = meshwork(&h1, &["status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("meshwork daemon"));

    ok(&h1, &["init", "--name", "Ada Lovelace"]);
    ok(&h2, &["init", "--name", "Bob"]);
    let _a = daemon(&h1);
    let _b = daemon(&h2);

    let ws = json(&h1, &["workspace", "create", "Acme", "--json"]);
    assert_eq!(ws["name"], "Acme");
    ok(&h1, &["dept", "create", "Research"]);
    let token = ok(&h1, &["invite", "--dept", "Research", "--expires", "1h"]);
    let joined = json(&h2, &["join", token.trim(), "--json"]);
    assert_eq!(joined["id"], ws["id"]);

    // The same token twice: refused, clearly.
    let again = meshwork(&h2, &["join", token.trim()]);
    assert!(!again.status.success());

    // Whoever creates a department is in it.
    ok(&h1, &["dept", "create", "Sales"]);
    for home in [&h1, &h2] {
        until("both departments replicated", || {
            json(home, &["dept", "list", "--json"])
                .as_array()
                .is_some_and(|d| d.len() == 2)
        });
        let depts = json(home, &["dept", "list", "--json"]);
        let names: Vec<&str> = depts
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Research", "Sales"], "on {}", home.display());
        let research = json(home, &["members", "--dept", "Research", "--json"]);
        let mut names: Vec<&str> = research
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["Ada Lovelace", "Bob"], "on {}", home.display());
        let all = json(home, &["members", "--json"]);
        assert_eq!(all.as_array().unwrap().len(), 2);
    }
    let status = json(&h2, &["status", "--json"]);
    assert_eq!(status["workspace"]["name"], "Acme");
    assert_eq!(status["peers"].as_array().unwrap().len(), 1);

    // Wrong input: clear errors, non-zero exit.
    for args in [
        &["dept", "add", "Nobody", "Sales"][..],
        &["dept", "add", "Ada Lovelace", "Sales"],
        &["dept", "create", "Sales"],
        &["invite", "--expires", "soon"],
    ] {
        let out = meshwork(&h1, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
    // A member is not an admin.
    let out = meshwork(&h2, &["dept", "create", "Mine"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("only an admin"));

    // The feed: Bob posts in Research, Ada (its creator) reads and replies.
    let id = ok(&h2, &["post", "Research", "Kick-off at 10, @Ada Lovelace"]);
    let id = id.trim();
    until("Ada sees Bob's post", || {
        json(&h1, &["feed", "Research", "--json"])
            .as_array()
            .is_some_and(|f| f.iter().any(|t| t["id"] == id))
    });
    // It is news to her, and mentions her, until she reads the feed
    // (--json reads without marking).
    let unread = json(&h1, &["unread", "--json"]);
    assert_eq!(
        (unread["total"].as_u64(), unread["mentions"].as_u64()),
        (Some(1), Some(1))
    );
    let said = ok(&h1, &["unread"]);
    assert!(
        said.contains("Research") && said.contains("1 unread, 1 mention"),
        "{said}"
    );
    ok(&h1, &["feed", "Research"]);
    assert_eq!(ok(&h1, &["unread"]).trim(), "Nothing new.");
    ok(
        &h1,
        &["post", "Research", "See you there", "--reply-to", id],
    );
    ok(&h1, &["react", id, "👍"]);
    until("Bob sees the reply and the reaction", || {
        let feed = json(&h2, &["feed", "Research", "--json"]);
        feed[0]["replies"].as_array().is_some_and(|r| r.len() == 1)
            && feed[0]["reactions"]["👍"].is_array()
    });
    let text = ok(&h2, &["feed", "Research"]);
    assert!(
        text.contains("Kick-off at 10") && text.contains("See you there"),
        "{text}"
    );
    // People read names and local times with their zone, never ids: the
    // reply says who wrote it, and the reaction who made it.
    let tz = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .arg("--home")
            .arg(&h2)
            .args(args)
            .env("TZ", "IST-5:30")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let text = tz(&["feed", "Research"]);
    assert!(text.contains(&format!("[{id}] Bob · ")), "{text}");
    assert!(
        text.contains("↳ [") && text.contains("] Ada Lovelace · "),
        "{text}"
    );
    assert!(text.contains("👍 Ada Lovelace"), "{text}");
    assert_eq!(text.matches(" +05:30\n").count(), 2, "{text}");
    ok(&h2, &["dm", "Ada Lovelace", "lunch?"]);
    let dms = tz(&["dms"]);
    assert!(
        dms.starts_with("Ada Lovelace")
            && dms.contains("1 message, last ")
            && dms.contains(" +05:30, Bob: lunch?"),
        "{dms}"
    );
    let dms = tz(&["dms", "Ada Lovelace"]);
    assert!(dms.contains(" +05:30  Bob: lunch?"), "{dms}");
    // Both sides of a conversation go by their names, on both sides.
    ok(&h1, &["dm", "Bob", "yes, at noon"]);
    until("Bob has Ada's answer", || {
        json(&h2, &["dms", "Ada Lovelace", "--json"])
            .as_array()
            .is_some_and(|m| m.len() == 2)
    });
    for (home, with) in [(&h2, "Ada Lovelace"), (&h1, "Bob")] {
        let dms = ok(home, &["dms", with]);
        assert!(
            dms.contains("  Bob: lunch?  [") && dms.contains("  Ada Lovelace: yes, at noon  ["),
            "{dms}"
        );
    }
    let peers = ok(&h2, &["peers"]);
    assert!(peers.starts_with("Ada Lovelace "), "{peers}");
    let status = ok(&h2, &["status"]);
    assert!(
        status.contains("(2 members, 2 departments)")
            && status.contains("1 peer connected: Ada Lovelace"),
        "{status}"
    );
    // Sales has one member: no "1 members", and no debug lists in errors.
    let depts = ok(&h1, &["dept", "list"]);
    assert!(
        depts.contains(" 1 member\n") && depts.contains(" 2 members"),
        "{depts}"
    );
    let out = meshwork(&h2, &["feed", "Sales"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("your departments: Research\n"), "{err}");
    // Ada was @mentioned in Bob's post.
    let mentions = json(&h1, &["feed", "--mentions", "--json"]);
    assert_eq!(mentions[0]["id"], id);
    // `feed --follow` prints new posts as they arrive.
    let mut follower = std::process::Command::new(BIN)
        .arg("--home")
        .arg(&h1)
        .args(["feed", "Research", "--follow"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(follower.stdout.take().unwrap()));
    let seen = std::thread::spawn(move || {
        lines
            .map_while(Result::ok)
            .find(|l| l.contains("live update"))
    });
    // The follower subscribes asynchronously: post until it shows one.
    for n in 0..100 {
        if seen.is_finished() {
            break;
        }
        ok(&h2, &["post", "Research", &format!("live update {n}")]);
    }
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(
        seen.join().unwrap().is_some(),
        "the follower printed a new post"
    );

    // Empty posts and strangers' edits are refused.
    assert!(!meshwork(&h2, &["post", "Research", " "]).status.success());
    let out = meshwork(&h1, &["edit", id, "hijacked"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("only its author"));

    // Bob is removed; his posts stay, under his name.
    ok(&h1, &["member", "remove", "Bob"]);
    let feed = ok(&h1, &["feed", "Research"]);
    assert!(feed.contains("] Bob · "), "{feed}");
    assert_eq!(
        json(&h1, &["members", "--json"]).as_array().unwrap().len(),
        1
    );
}

/// The ids of a department's feed as `home` shows it, newest first.
fn feed_ids(home: &std::path::Path, dept: &str) -> Vec<String> {
    json(home, &["feed", dept, "--limit", "100", "--json"])
        .as_array()
        .expect("a feed is a list")
        .iter()
        .map(|t| t["id"].as_str().expect("a post id").to_owned())
        .collect()
}

/// Issue 14, with real processes: posts written in a department by a member
/// who was later taken out of it stay valid for a member who joins after.
#[test]
fn a_newcomer_sees_every_post_of_a_department_someone_left() {
    let dir = tempfile::tempdir().unwrap();
    let [alice, bob, dave] = ["alice", "bob", "dave"].map(|n| dir.path().join(n));
    for (home, name) in [(&alice, "alice"), (&bob, "bob"), (&dave, "dave")] {
        ok(home, &["init", "--name", name]);
    }
    let _da = daemon(&alice);
    let _db = daemon(&bob);
    let _dd = daemon(&dave);
    ok(&alice, &["workspace", "create", "Acme"]);
    ok(&alice, &["dept", "create", "Sales"]);
    let token = ok(&alice, &["invite", "--dept", "Sales"]);
    ok(&bob, &["join", token.trim()]);
    until("bob sees himself in Sales", || {
        json(&bob, &["members", "--dept", "Sales", "--json"])
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["name"] == "bob"))
    });

    // alice, bob, alice: each post written after seeing the one before.
    let one = ok(&alice, &["post", "Sales", "one"]).trim().to_owned();
    until("bob has alice's first post", || {
        feed_ids(&bob, "Sales") == [one.clone()]
    });
    let two = ok(&bob, &["post", "Sales", "two"]).trim().to_owned();
    until("alice has bob's post", || {
        feed_ids(&alice, "Sales") == [two.clone(), one.clone()]
    });
    let three = ok(&alice, &["post", "Sales", "three"]).trim().to_owned();
    ok(&alice, &["dept", "remove", "bob", "Sales"]);
    let four = ok(&alice, &["post", "Sales", "four"]).trim().to_owned();
    let seen_by_alice = feed_ids(&alice, "Sales");
    assert_eq!(seen_by_alice, [four, three, two, one]);

    // dave joins Sales afterwards, and sees the whole history.
    let token = ok(&alice, &["invite", "--dept", "Sales"]);
    ok(&dave, &["join", token.trim()]);
    // Well within the sync interval (30 s): a newcomer is synced at once.
    until("dave sees the four posts of Sales", || {
        meshwork(&dave, &["feed", "Sales", "--json"])
            .status
            .success()
            && feed_ids(&dave, "Sales").len() == 4
    });
    assert_eq!(feed_ids(&dave, "Sales"), seen_by_alice);
    let bodies: Vec<Value> = json(&dave, &["feed", "Sales", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["body"].clone())
        .collect();
    assert_eq!(bodies, ["four", "three", "two", "one"]);
    // bob is out of Sales on every node, and cannot post there any more.
    for home in [&alice, &bob, &dave] {
        until("bob is out of Sales", || {
            json(home, &["members", "--dept", "Sales", "--json"])
                .as_array()
                .is_some_and(|m| m.iter().all(|m| m["name"] != "bob"))
        });
    }
    assert!(!meshwork(&bob, &["post", "Sales", "five"]).status.success());
    assert_eq!(feed_ids(&alice, "Sales"), seen_by_alice);
}

/// The body of the daemon's answer to `GET route`, asked directly with the
/// bearer token of `home`.
fn api_get(home: &std::path::Path, route: &str) -> String {
    let api: Value = serde_json::from_slice(&std::fs::read(home.join("api.json")).unwrap())
        .expect("api.json is JSON");
    let (addr, token) = (
        api["addr"].as_str().unwrap(),
        api["token"].as_str().unwrap(),
    );
    let answer = http(
        addr,
        &format!("GET {route} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}"),
        "",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").expect("a body");
    body.to_owned()
}

/// `--json` is a contract with scripts: each read command prints the
/// daemon's own answer, byte for byte. The CLI reads answers as the
/// daemon's types; none of their fields may be lost or added on the way
/// (a folder's `entries`, an attachment's `files`, an edit's `edited_at`).
#[test]
fn json_output_is_the_daemons_answer_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _d) = ada_in_acme(dir.path());
    ok(&home, &["dept", "create", "Research"]);
    let folder = dir.path().join("Q3 docs");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("plan.txt"), b"the plan").unwrap();
    ok(&home, &["share", "Research", folder.to_str().unwrap()]);
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"notes").unwrap();
    let file = ok(
        &home,
        &["share", "Research", notes.to_str().unwrap(), "--no-post"],
    );
    let file = file.trim();
    let post = ok(
        &home,
        &["post", "Research", "see the notes", "--file", file],
    );
    let post = post.trim();
    ok(&home, &["post", "Research", "thanks", "--reply-to", post]);
    ok(&home, &["react", post, "👍"]);
    ok(&home, &["edit", post, "see the notes, @Ada"]);
    ok(&home, &["pin", file, "--for", "1d"]);
    for (args, route) in [
        (
            &["feed", "Research", "--json"][..],
            "/v1/feed?dept=Research&limit=20",
        ),
        (&["feed", "--mentions", "--json"], "/v1/mentions?limit=20"),
        (&["files", "Research", "--json"], "/v1/files?dept=Research"),
        (&["dept", "list", "--json"], "/v1/depts"),
        (&["members", "--json"], "/v1/members"),
        (&["unread", "--json"], "/v1/unread"),
        (&["pins", "--json"], "/v1/pins"),
        (&["dms", "--json"], "/v1/dms"),
        (&["peers", "--json"], "/v1/peers"),
    ] {
        let printed = ok(&home, args);
        assert_eq!(
            printed.trim_end(),
            api_get(&home, route),
            "meshwork {args:?}"
        );
    }
    // What was checked holds what it should: the folder's entries, the
    // edit, the reply, the attachment.
    let feed = json(&home, &["feed", "Research", "--json"]);
    assert!(feed[0]["edited_at"].is_i64(), "{feed}");
    assert_eq!(feed[0]["replies"].as_array().map(Vec::len), Some(1));
    assert_eq!(feed[0]["attachments"][file]["name"], "notes.txt");
    let files = json(&home, &["files", "Research", "--json"]);
    assert!(
        files
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["entries"].is_array()),
        "{files}"
    );
}

#[test]
fn an_acknowledged_change_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (home, mut d) = ada_in_acme(dir.path());
    ok(&home, &["dept", "create", "Durable"]);
    d.kill9(); // right after the acknowledgement
    let _d = daemon(&home);
    let depts = json(&home, &["dept", "list", "--json"]);
    assert_eq!(depts[0]["name"], "Durable");
}

#[test]
fn the_api_refuses_requests_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("ada");
    ok(&home, &["init", "--name", "Ada"]);
    let _d = daemon(&home);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("api.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(home.join("identity.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let addr = &api_addr(&home);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "GET /v1/status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
}

/// Ada's home under `dir`, her daemon running, the workspace Acme hers.
fn ada_in_acme(dir: &std::path::Path) -> (std::path::PathBuf, Daemon) {
    let home = dir.join("ada");
    ok(&home, &["init", "--name", "Ada"]);
    let d = daemon(&home);
    ok(&home, &["workspace", "create", "Acme"]);
    (home, d)
}

/// Follows `meshwork events ARGS` (with `tz` as its time zone), calling
/// `change` until a line containing `wanted` shows, at most 200 times: the
/// stream is open only once the daemon counts a subscriber, and a change
/// made before that would be missed. The line.
fn first_event_line(
    home: &std::path::Path,
    args: &[&str],
    tz: &str,
    wanted: &'static str,
    mut change: impl FnMut(usize),
) -> Option<String> {
    use std::io::{BufRead, BufReader};
    let mut follower = std::process::Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(args)
        .env("TZ", tz)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let seen = std::thread::spawn(move || lines.map_while(Result::ok).find(|l| l.contains(wanted)));
    let mut n = 0;
    while !seen.is_finished() && n < 200 {
        change(n);
        n += 1;
    }
    let _ = follower.kill();
    let _ = follower.wait();
    seen.join().unwrap()
}

#[test]
fn events_stream_live_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _d) = ada_in_acme(dir.path());
    let line = first_event_line(&home, &["events", "--json"], "UTC", "roster_changed", |n| {
        ok(&home, &["dept", "create", &format!("D{n}")]);
    })
    .expect("a roster_changed event");
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["type"], "roster_changed");
}

#[test]
fn events_read_as_lines_with_names_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _d) = ada_in_acme(dir.path());
    ok(&home, &["dept", "create", "Research"]);
    let line = first_event_line(&home, &["events"], "XYZ+2", "Research · Ada: hello", |n| {
        ok(
            &home,
            &["post", "Research", &format!("hello {n} \x1b]0;pwned\x07")],
        );
    })
    .expect("a line for the post");
    // "2026-12-03 07:14 -02:00  Research · Ada: hello 3 \u{1b}]0;pwned\u{7}"
    let (time, what) = line.split_once("  ").unwrap();
    assert!(time.ends_with(" -02:00") && time.len() == 23, "{line}");
    assert!(what.starts_with("Research · Ada: hello "), "{line}");
    assert!(what.ends_with(r" \u{1b}]0;pwned\u{7}"), "{line}");
    assert!(!line.chars().any(char::is_control), "{line:?}");
}

#[test]
fn a_file_shared_by_one_daemon_is_fetched_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let (h1, h2) = (dir.path().join("ada"), dir.path().join("bob"));
    ok(&h1, &["init", "--name", "Ada"]);
    ok(&h2, &["init", "--name", "Bob"]);
    let _a = daemon(&h1);
    let _b = daemon(&h2);
    ok(&h1, &["workspace", "create", "Acme"]);
    ok(&h1, &["dept", "create", "Research"]);
    let token = ok(&h1, &["invite", "--dept", "Research"]);
    ok(&h2, &["join", token.trim()]);

    let bytes: Vec<u8> = (0..(2 * 1024 * 1024 + 17u32))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let src = dir.path().join("slides.pdf");
    std::fs::write(&src, &bytes).unwrap();
    let id = ok(
        &h1,
        &[
            "share",
            "Research",
            src.to_str().unwrap(),
            "--name",
            "Q3 slides.pdf",
        ],
    );
    let id = id.trim();
    until("Bob's library lists the file", || {
        json(&h2, &["files", "Research", "--json"])
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["id"] == id))
    });
    let listed = json(&h2, &["files", "Research", "--json"]);
    assert_eq!(listed[0]["name"], "Q3 slides.pdf");
    assert_eq!(listed[0]["size"], bytes.len());
    assert_eq!(listed[0]["uploader_name"], "Ada");
    assert!(
        listed[0].get("key").is_none(),
        "the file key is not printed"
    );
    let text = ok(&h2, &["files", "Research"]);
    assert!(
        text.contains("Q3 slides.pdf") && text.contains("2.0 MiB"),
        "{text}"
    );

    let out = dir.path().join("fetched.pdf");
    let printed = ok(&h2, &["get", id, "-o", out.to_str().unwrap()]);
    assert_eq!(printed.trim(), out.to_str().unwrap());
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // Into a directory that exists: under the file's name, as `cp` does.
    let into = dir.path().join("inbox");
    std::fs::create_dir(&into).unwrap();
    let printed = ok(&h2, &["get", id, "-o", &format!("{}/", into.display())]);
    let landed = into.join("Q3 slides.pdf");
    assert_eq!(printed.trim(), landed.to_str().unwrap());
    assert_eq!(std::fs::read(&landed).unwrap(), bytes);
    // Status counts the ciphertext Bob now keeps, and his disk's reserve.
    let disk = &json(&h2, &["status", "--json"])["disk"];
    assert!(
        disk["blobs"].as_u64().unwrap() > bytes.len() as u64,
        "{disk}"
    );
    assert_eq!(disk["min_free"], 1u64 << 30);
    assert!(ok(&h2, &["status"]).contains("(keeping 1.0 GiB free)"));

    // A folder: one entry, fetched by name as a whole tree.
    let folder = dir.path().join("Q3 docs");
    std::fs::create_dir_all(folder.join("drafts")).unwrap();
    std::fs::write(folder.join("plan.txt"), b"the plan").unwrap();
    std::fs::write(folder.join("drafts/v1.txt"), &bytes[..1000]).unwrap();
    let folder_id = ok(&h1, &["share", "Research", folder.to_str().unwrap()]);
    until("Bob's library lists the folder", || {
        ok(&h2, &["files", "Research"]).contains("folder, 2 files")
    });
    let listed = json(&h2, &["files", "Research", "--json"]);
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == folder_id.trim())
        .unwrap();
    assert_eq!(entry["entries"].as_array().unwrap().len(), 2, "{entry}");
    let tree = dir.path().join("fetched docs");
    ok(&h2, &["get", "Q3 docs", "-o", tree.to_str().unwrap()]);
    assert_eq!(std::fs::read(tree.join("plan.txt")).unwrap(), b"the plan");
    assert_eq!(
        std::fs::read(tree.join("drafts/v1.txt")).unwrap(),
        &bytes[..1000]
    );

    // Each share said so in the feed, the file attached; `--no-post` does
    // not, and a post attaches a file by name.
    until("Bob's feed shows both shares", || {
        json(&h2, &["feed", "Research", "--json"])
            .as_array()
            .is_some_and(|t| t.len() == 2)
    });
    let feed = json(&h2, &["feed", "Research", "--json"]);
    assert_eq!(
        feed[0]["body"],
        "shared the folder Q3 docs (2 files, 1008 B)"
    );
    assert_eq!(feed[0]["files"][0], folder_id.trim());
    assert_eq!(feed[1]["body"], "shared Q3 slides.pdf (2.0 MiB)");
    assert_eq!(feed[1]["files"][0], id);
    assert_eq!(feed[1]["attachments"][id]["name"], "Q3 slides.pdf");
    assert_eq!(feed[0]["attachments"][folder_id.trim()]["files"], 2);
    let text = ok(&h2, &["feed", "Research"]);
    assert!(
        text.contains(&format!("📎 Q3 slides.pdf (2.0 MiB)  `meshwork get {id}`")),
        "{text}"
    );
    let quiet = dir.path().join("quiet.txt");
    std::fs::write(&quiet, b"no fanfare").unwrap();
    let quiet_id = ok(
        &h1,
        &["share", "Research", quiet.to_str().unwrap(), "--no-post"],
    );
    let post = ok(
        &h1,
        &["post", "Research", "the plan, again", "--file", "quiet.txt"],
    );
    until("Bob sees the post", || {
        json(&h2, &["feed", "Research", "--json"])
            .as_array()
            .is_some_and(|t| t.len() == 3)
    });
    let feed = json(&h2, &["feed", "Research", "--json"]);
    assert_eq!(feed[0]["id"], post.trim());
    assert_eq!(feed[0]["files"][0], quiet_id.trim());

    // Wrong input: clear errors, non-zero exit, nothing written.
    for (home, args, says) in [
        (
            &h2,
            vec!["get", id, "-o", out.to_str().unwrap()],
            "exists already",
        ),
        (&h2, vec!["get", "ffffffffffffffff"], "no file"),
        (&h1, vec!["share", "Research", "/nonexistent/x"], "no file"),
        (
            &h1,
            vec!["share", "Research", "/dev/zero"],
            "not a regular file",
        ),
        (
            &h1,
            vec!["share", "Nowhere", src.to_str().unwrap()],
            "Nowhere",
        ),
        (
            &h1,
            vec!["post", "Research", "see this", "--file", "nothing.txt"],
            "no file",
        ),
    ] {
        let run = meshwork(home, &args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn a_pin_node_serves_a_file_after_its_uploader_was_killed() {
    let dir = tempfile::tempdir().unwrap();
    let [ada, bob, pia] = ["ada", "bob", "pia"].map(|n| dir.path().join(n));
    for (home, name) in [(&ada, "Ada"), (&bob, "Bob"), (&pia, "Pia")] {
        ok(home, &["init", "--name", name]);
    }
    let mut uploader = daemon(&ada);
    // Bob does not volunteer: whatever he fetches comes from the pin node.
    let _reader = LOCAL.daemon(&bob, &[LOOPBACK_ARGS, &["--no-volunteer"]].concat());
    let _pin_node = LOCAL.daemon(
        &pia,
        &[LOOPBACK_ARGS, &["--pin", "--pin-quota", "1G"]].concat(),
    );
    ok(&ada, &["workspace", "create", "Acme"]);
    ok(&ada, &["dept", "create", "Research"]);
    let token = ok(&ada, &["invite", "--dept", "Research"]);
    ok(&bob, &["join", token.trim()]);
    // Retention below 72 h is refused, with the reason.
    let run = meshwork(&ada, &["workspace", "set", "retention", "71h"]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("72"));
    ok(&ada, &["workspace", "set", "replicas", "1"]);

    // The pin node is admitted by its peer id and joins with the token.
    let peer = json(&pia, &["status", "--json"])["peer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admitted = json(
        &ada,
        &["member", "add-pinner", &peer, "--name", "Pia", "--json"],
    );
    assert_eq!(admitted["member"]["role"], "pinner");
    ok(&pia, &["join", admitted["token"].as_str().unwrap()]);

    let bytes: Vec<u8> = (0..(3 * 1024 * 1024 + 5u32))
        .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
        .collect();
    let src = dir.path().join("board-minutes.pdf");
    std::fs::write(&src, &bytes).unwrap();
    let id = ok(&ada, &["share", "Research", src.to_str().unwrap()]);
    let id = id.trim();

    // The reader sees the pin node's commitment in `pins`.
    until("Bob sees Pia pin the file", || {
        let pins = json(&bob, &["pins", "--json"]);
        pins["pins"].as_array().is_some_and(|ps| {
            ps.iter().any(|p| {
                p["file_id"] == id && p["meets_target"] == true && p["pinners"][0]["name"] == "Pia"
            })
        })
    });
    let text = ok(&bob, &["pins"]);
    assert!(
        text.contains("board-minutes.pdf") && text.contains("Pia"),
        "{text}"
    );
    // The pin node sees hashes and sizes, never the file's name.
    let theirs = ok(&pia, &["pins"]);
    assert!(!theirs.contains("board-minutes"), "{theirs}");

    uploader.kill9();
    let out = dir.path().join("fetched.pdf");
    ok(&bob, &["get", id, "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);

    // Bob keeps it longer himself, then lets go.
    let pinned = ok(&bob, &["pin", id, "--for", "7d"]);
    assert!(pinned.contains("until"), "{pinned}");
    ok(&bob, &["unpin", id]);
    let run = meshwork(&bob, &["unpin", id]);
    assert!(!run.status.success());
}

/// One raw HTTP/1.1 exchange with the daemon's API: the answer's head and
/// body as text.
/// Every file under `dir`, at any depth.
fn leftovers(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(leftovers(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn http(addr: &str, head: &str, body: &str) -> String {
    http_raw(
        addr,
        &format!(
            "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Sends `request` as it is, over a fresh connection; the whole answer.
fn http_raw(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp
}

#[test]
fn the_web_app_needs_a_session_cookie_its_token_and_its_own_host() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _d) = ada_in_acme(dir.path());
    let addr = &api_addr(&home);

    // The app's shell is public, and every answer carries a strict CSP.
    let page = http(addr, &format!("GET / HTTP/1.1\r\nHost: {addr}"), "");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let lower = page.to_ascii_lowercase();
    assert!(
        lower.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{page}"
    );
    assert!(lower.contains("x-frame-options: deny"), "{page}");
    // The API is not: no session, no answer; another host name, no answer.
    let anon = http(
        addr,
        &format!("GET /v1/status HTTP/1.1\r\nHost: {addr}"),
        "",
    );
    assert!(anon.starts_with("HTTP/1.1 401"), "{anon}");
    let port = addr.rsplit(':').next().unwrap();
    let rebound = http(
        addr,
        &format!("GET / HTTP/1.1\r\nHost: attacker.example:{port}"),
        "",
    );
    assert!(rebound.starts_with("HTTP/1.1 421"), "{rebound}");

    // A login link works once, and sets an HttpOnly, SameSite=Strict cookie.
    let link = ok(&home, &["open", "--no-browser"]);
    let path = link
        .trim()
        .strip_prefix(&format!("http://{addr}"))
        .expect("a link to this daemon")
        .to_owned();
    let login = http(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}"), "");
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let cookie_line = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a cookie");
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );
    let cookie = cookie_line["set-cookie:".len()..]
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let again = http(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}"), "");
    assert!(again.starts_with("HTTP/1.1 401"), "{again}");

    // The redirect hands the page the session's token, in the fragment.
    let token = login
        .lines()
        .find_map(|l| l.strip_prefix("location: /#session="))
        .or_else(|| {
            login
                .lines()
                .find_map(|l| l.strip_prefix("Location: /#session="))
        })
        .expect("the token in the redirect's fragment")
        .trim()
        .to_owned();

    // The cookie alone opens nothing, not even a read: any server on this
    // host may have been sent it. The token alone opens nothing either.
    let read = |extra: &str| {
        http(
            addr,
            &format!("GET /v1/status HTTP/1.1\r\nHost: {addr}{extra}"),
            "",
        )
    };
    let cookie_only = read(&format!("\r\nCookie: {cookie}"));
    assert!(cookie_only.starts_with("HTTP/1.1 403"), "{cookie_only}");
    let token_only = read(&format!("\r\nX-Session-Token: {token}"));
    assert!(token_only.starts_with("HTTP/1.1 401"), "{token_only}");
    let both = read(&format!("\r\nCookie: {cookie}\r\nX-Session-Token: {token}"));
    assert!(both.starts_with("HTTP/1.1 200"), "{both}");
    // Where a browser cannot set a header (event stream, download link),
    // the token may ride in the query of a GET — never of a write.
    let in_query = http(
        addr,
        &format!("GET /v1/status?session={token} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}"),
        "",
    );
    assert!(in_query.starts_with("HTTP/1.1 200"), "{in_query}");
    let write_in_query = http(
        addr,
        &format!(
            "POST /v1/depts?session={token} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nContent-Type: application/json"
        ),
        r#"{"name":"Research"}"#,
    );
    assert!(
        write_in_query.starts_with("HTTP/1.1 403"),
        "{write_in_query}"
    );
    let create = |extra: &str| {
        http(
            addr,
            &format!(
                "POST /v1/depts HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nContent-Type: application/json{extra}"
            ),
            r#"{"name":"Research"}"#,
        )
    };
    let forged = create("");
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");
    let wrong = create("\r\nX-Session-Token: 00");
    assert!(wrong.starts_with("HTTP/1.1 403"), "{wrong}");
    let made = create(&format!("\r\nX-Session-Token: {token}"));
    assert!(made.starts_with("HTTP/1.1 200"), "{made}");
    // An upload must declare its length, and one cut short (the browser
    // went away) shares nothing and leaves nothing behind.
    let upload = format!(
        "POST /v1/web/upload?dept=Research&name=cut.txt HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nX-Session-Token: {token}"
    );
    let chunked = http_raw(
        addr,
        &format!("{upload}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    );
    assert!(chunked.starts_with("HTTP/1.1 400"), "{chunked}");
    assert!(chunked.contains("Content-Length"), "{chunked}");
    let cut = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "{upload}\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        s.write_all(&[b'x'; 200_000]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut resp = Vec::new();
        let _ = s.read_to_end(&mut resp);
        String::from_utf8_lossy(&resp).into_owned()
    };
    assert!(cut.starts_with("HTTP/1.1 400"), "{cut}");
    assert!(cut.contains("upload interrupted"), "{cut}");
    until("the daemon has dropped the cut upload", || {
        json(&home, &["files", "Research", "--json"])
            .as_array()
            .is_some_and(|files| files.is_empty())
            && leftovers(&home.join("blobs")).is_empty()
    });
    // A browser session cannot mint more sessions.
    let mint = http(
        addr,
        &format!(
            "POST /v1/login-links HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nX-Session-Token: {token}"
        ),
        "",
    );
    assert!(mint.starts_with("HTTP/1.1 403"), "{mint}");
    // Logging out ends the session: its cookie and token open nothing.
    let out = http(
        addr,
        &format!(
            "POST /v1/web/logout HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nX-Session-Token: {token}"
        ),
        "",
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let after = read(&format!("\r\nCookie: {cookie}\r\nX-Session-Token: {token}"));
    assert!(after.starts_with("HTTP/1.1 401"), "{after}");
}

#[test]
fn control_characters_from_the_network_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _d) = ada_in_acme(dir.path());
    ok(&home, &["dept", "create", "Research"]);
    // Retitles the terminal, then clears it.
    let hostile = "hi \x1b]0;pwned\x07\x1b[2J\u{9b}31m\x7f there\r";
    let id = ok(&home, &["post", "Research", hostile]);
    ok(
        &home,
        &[
            "post",
            "Research",
            "line one\n\tline \x1b[2J two",
            "--reply-to",
            id.trim(),
        ],
    );
    let src = dir.path().join("plain.txt");
    std::fs::write(&src, b"x").unwrap();
    ok(
        &home,
        &[
            "share",
            "Research",
            src.to_str().unwrap(),
            "--name",
            "a\x1b[2Jb\nc.txt",
        ],
    );

    let feed = ok(&home, &["feed", "Research"]);
    let raw = |s: &str| s.chars().any(|c| c.is_control() && c != '\n' && c != '\t');
    assert!(!raw(&feed), "{feed:?}");
    assert!(
        feed.contains(r"hi \u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\u{7f} there\r"),
        "{feed:?}"
    );
    // A body keeps its line breaks and tabs.
    assert!(feed.contains("line one\n\tline \\u{1b}[2J two"), "{feed:?}");
    let files = ok(&home, &["files", "Research"]);
    assert!(!raw(&files), "{files:?}");
    // A name is one line: its line break is shown, not made.
    assert!(files.contains(r"a\u{1b}[2Jb\nc.txt"), "{files:?}");
    // `--json` carries the text as it is, escaped by JSON itself.
    let json = ok(&home, &["feed", "Research", "--json"]);
    assert!(!json.contains('\x1b'), "{json:?}");
    let threads: Value = serde_json::from_str(&json).unwrap();
    // The share said so in the feed, its name escaped like any text.
    assert_eq!(threads[0]["body"], "shared a\x1b[2Jb\nc.txt (1 B)");
    assert!(feed.contains(r"shared a\u{1b}[2Jb"), "{feed:?}");
    assert_eq!(threads[1]["body"], hostile);
}

#[test]
fn sigterm_with_an_event_stream_open_stops_the_daemon_promptly() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let (home, mut d) = ada_in_acme(dir.path());
    let addr = api_addr(&home);
    let api: Value =
        serde_json::from_slice(&std::fs::read(home.join("api.json")).unwrap()).unwrap();
    let token = api["token"].as_str().unwrap();

    // A web tab's session (logged in as the app is).
    let link = ok(&home, &["open", "--no-browser"]);
    let path = link.trim().strip_prefix(&format!("http://{addr}")).unwrap();
    let login = http(&addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}"), "");
    let cookie = login
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("a cookie in {login}"))
        .to_owned();
    let session = login
        .lines()
        .find_map(|l| l.strip_prefix("location: /#session="))
        .unwrap_or_else(|| panic!("a session token in {login}"))
        .trim()
        .to_owned();

    // Followers of the live events — `meshwork events` with the bearer
    // token, and the tab — their answers' heads read, the connections
    // held open and read.
    let follow = |auth: String| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "GET /v1/events{auth}\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut stream = BufReader::new(s);
        let mut status = String::new();
        stream.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        std::thread::spawn(move || stream.lines().map_while(Result::ok).count())
    };
    let readers = [
        follow(format!(" HTTP/1.1\r\nAuthorization: Bearer {token}")),
        follow(format!("?session={session} HTTP/1.1\r\nCookie: {cookie}")),
    ];

    let asked = std::time::Instant::now();
    let kill = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(d.0.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let exited = loop {
        if let Some(status) = d.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(30),
            "the daemon still runs {:?} after SIGTERM with an event stream open",
            asked.elapsed()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let took = asked.elapsed();
    println!("stopped {took:?} after SIGTERM");
    assert!(exited.success(), "{exited:?}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "stopping took {took:?}"
    );
    // The streams ended with the daemon: their readers are done.
    for r in readers {
        r.join().unwrap();
    }
    assert!(!home.join("api.json").exists(), "api.json is cleared");
}

/// Issue 17: `up` takes your name and the workspace's; both can be changed
/// later from the CLI, and the change reaches colleagues.
#[test]
fn up_names_you_and_the_workspace_and_both_can_be_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let (h1, h2) = (dir.path().join("ada"), dir.path().join("bob"));
    let mut args = LOOPBACK_ARGS.to_vec();
    args.extend([
        "--name",
        "Ada Lovelace",
        "--workspace",
        "Analytical Engines",
    ]);
    let (_a, printed) = LOCAL.up(&h1, &args);
    assert!(
        printed.contains("Created workspace \"Analytical Engines\""),
        "{printed}"
    );
    let status = json(&h1, &["status", "--json"]);
    assert_eq!(status["name"], "Ada Lovelace");
    assert_eq!(status["workspace"]["name"], "Analytical Engines");

    ok(&h2, &["init", "--name", "bob"]);
    let _b = daemon(&h2);
    let token = ok(&h1, &["invite"]);
    ok(&h2, &["join", token.trim()]);
    ok(&h2, &["profile", "set", "name", "Bob Babbage"]);
    ok(&h1, &["workspace", "rename", "Difference Engines"]);
    until("each sees the other's rename", || {
        let members = json(&h1, &["members", "--json"]);
        let bob_named = members
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["name"] == "Bob Babbage"));
        bob_named && json(&h2, &["status", "--json"])["workspace"]["name"] == "Difference Engines"
    });
    // A member is not an admin.
    let out = meshwork(&h2, &["workspace", "rename", "Mine"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only an admin"));
}

/// Issue 17: `react ID thumbsup` is a 👍, and a word that names no emoji
/// is refused instead of being shown as text.
#[test]
fn reactions_by_name_are_emoji_and_other_words_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("ada");
    ok(&h, &["init", "--name", "Ada"]);
    let _d = daemon(&h);
    ok(&h, &["workspace", "create", "Acme"]);
    ok(&h, &["dept", "create", "Sales"]);
    let id = ok(&h, &["post", "Sales", "hello"]);
    ok(&h, &["react", id.trim(), "thumbsup"]);
    let feed = json(&h, &["feed", "Sales", "--json"]);
    assert!(feed[0]["reactions"]["👍"].is_array(), "{feed}");
    assert!(feed[0]["reactions"]["thumbsup"].is_null(), "{feed}");
    let out = meshwork(&h, &["react", id.trim(), "lol"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a reaction is an emoji"));
}

/// Issue 17: a reader that stops reading (`meshwork members | head -1`)
/// ends the command quietly, never with a panic.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (home, _d) = ada_in_acme(dir.path());
    for n in 0..40 {
        ok(&home, &["dept", "create", &format!("Department {n}")]);
    }
    // The reading end is closed before the command writes a byte.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(BIN)
        .arg("--home")
        .arg(&home)
        .args(["dept", "list"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
