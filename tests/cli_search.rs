//! `meshwork search` on real daemons: Bob finds posts, replies, direct
//! messages and file names of what he may read — never a department he is
//! not in — ranked, with the matched words located; edits and deletions
//! reach the index; the index outlives a `kill -9` and is rebuilt when it
//! is damaged; wrong input gets a clear error.

mod common;

use common::bin::*;
use serde_json::Value;

/// Bob's hits for `query` (more arguments after it), as JSON.
fn search(home: &std::path::Path, query: &str, more: &[&str]) -> Value {
    let mut args = vec!["search", query, "--json"];
    args.extend_from_slice(more);
    json(home, &args)
}

/// The `(kind, id)` of each hit.
fn kinds(found: &Value) -> Vec<(String, String)> {
    found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["kind"].as_str().unwrap().to_owned(),
                h["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The words each hit's highlights cover, lower-cased.
fn highlighted(found: &Value) -> Vec<String> {
    let mut words = Vec::new();
    for h in found["hits"].as_array().unwrap() {
        let snippet = h["snippet"].as_str().unwrap();
        for r in h["highlights"].as_array().unwrap() {
            let (a, b) = (r[0].as_u64().unwrap(), r[1].as_u64().unwrap());
            words.push(snippet[a as usize..b as usize].to_lowercase());
        }
    }
    words
}

#[test]
fn members_find_what_they_may_read_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (ada, bob) = (dir.path().join("ada"), dir.path().join("bob"));
    ok(&ada, &["init", "--name", "Ada"]);
    ok(&bob, &["init", "--name", "Bob"]);
    let _a = daemon(&ada);
    let mut b = daemon(&bob);
    ok(&ada, &["workspace", "create", "Acme"]);
    ok(&ada, &["dept", "create", "Research"]);
    ok(&ada, &["dept", "create", "Sales"]);
    let token = ok(&ada, &["invite", "--dept", "Research"]);
    ok(&bob, &["join", token.trim()]);

    let secret = ok(&ada, &["post", "Sales", "the budget for Sales is secret"]);
    let draft = ok(
        &ada,
        &["post", "Research", "Budget draft for Q3: see the sheet"],
    );
    let draft = draft.trim();
    until("Bob has Ada's draft", || {
        ok(&bob, &["feed", "Research", "--json"]).contains(draft)
    });
    let reply = ok(
        &bob,
        &[
            "post",
            "Research",
            "the budget looks fine to me",
            "--reply-to",
            draft,
        ],
    );
    let dm = ok(&ada, &["dm", "Bob", "budget call at three?"]);
    let sheet = dir.path().join("sheet.xlsx");
    std::fs::write(&sheet, b"cells").unwrap();
    let file = ok(
        &ada,
        &[
            "share",
            "Research",
            sheet.to_str().unwrap(),
            "--name",
            "Budget 2027.xlsx",
            "--no-post",
        ],
    );
    let unrelated = ok(&ada, &["post", "Research", "lunch at noon"]);

    until("Bob's index holds the four matches", || {
        search(&bob, "budget", &[])["total"] == 4
    });
    let found = search(&bob, "budget", &[]);
    let mut got = kinds(&found);
    got.sort();
    let mut want = vec![
        ("file".to_owned(), file.trim().to_owned()),
        ("message".to_owned(), dm.trim().to_owned()),
        ("post".to_owned(), draft.to_owned()),
        ("reply".to_owned(), reply.trim().to_owned()),
    ];
    want.sort();
    assert_eq!(got, want, "Bob never sees Sales ({})", secret.trim());
    assert!(highlighted(&found).iter().all(|w| w == "budget"), "{found}");
    assert_eq!(highlighted(&found).len(), 4, "{found}");
    for h in found["hits"].as_array().unwrap() {
        match h["kind"].as_str().unwrap() {
            "message" => assert_eq!(h["with_name"], "Ada", "{h}"),
            _ => assert_eq!(h["dept"], "Research", "{h}"),
        }
        assert!(h["score"].as_f64().unwrap() > 0.0);
    }
    let reply_hit = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["kind"] == "reply")
        .unwrap();
    assert_eq!(reply_hit["thread"], draft);
    assert_eq!(reply_hit["author_name"], "Bob");

    // Every word must match; a quoted phrase matches in order.
    assert_eq!(kinds(&search(&bob, "budget fine", &[])).len(), 1);
    assert_eq!(kinds(&search(&bob, "\"draft budget\"", &[])).len(), 0);
    assert_eq!(
        kinds(&search(&bob, "\"budget draft\"", &[])),
        [("post".to_owned(), draft.to_owned())]
    );
    // Case and accents fold; stray syntax is text, not an error.
    assert_eq!(search(&bob, "BÜDGET", &[])["total"], 4);
    assert_eq!(search(&bob, "budget AND (\"", &[])["total"], 4);
    // Ranked: a name that is all "budget" outranks a long message.
    assert_eq!(found["hits"][0]["kind"], "file", "{found}");

    // Ada, in both departments, narrows to one.
    let sales = search(&ada, "budget", &["--dept", "Sales"]);
    assert_eq!(
        kinds(&sales),
        [("post".to_owned(), secret.trim().to_owned())]
    );
    // Bob may not narrow to a department he is not in.
    let out = meshwork(&bob, &["search", "budget", "--dept", "Sales"]);
    assert!(!out.status.success());

    // Chinese has no spaces: its characters are words, a query a phrase.
    let cn = ok(&ada, &["post", "Research", "明天的预算会议在三楼"]);
    until("Bob finds the Chinese post", || {
        search(&bob, "预算会议", &[])["total"] == 1
    });
    assert_eq!(kinds(&search(&bob, "预算会议", &[]))[0].1, cn.trim());
    assert_eq!(search(&bob, "会议预算", &[])["total"], 0);

    // Edits and deletions reach the index.
    ok(&ada, &["edit", draft, "Plan draft for Q3"]);
    ok(&ada, &["delete", dm.trim()]);
    until("Bob's index forgets the edited and deleted matches", || {
        search(&bob, "budget", &[])["total"] == 2
    });
    until("and finds the new text", || {
        search(&bob, "plan", &[])["total"] == 1
    });
    assert_eq!(
        search(&bob, "lunch", &[])["hits"][0]["id"],
        unrelated.trim()
    );

    // The text a person reads.
    let text = ok(&bob, &["search", "budget"]);
    assert!(text.contains("reply by Bob in Research · "), "{text}");
    assert!(text.contains("file shared by Ada in Research"), "{text}");
    assert!(
        text.contains(&format!("`meshwork get {}`", file.trim())),
        "{text}"
    );
    assert!(text.ends_with("2 matches for \"budget\"\n"), "{text}");
    assert!(!text.contains('\x1b'), "no bold into a pipe: {text:?}");
    assert_eq!(
        ok(&bob, &["search", "zebra"]).trim(),
        "no matches for \"zebra\""
    );

    // Wrong input: clear errors.
    for (args, says) in [
        (&["search", "  "][..], "say what to search for"),
        (&["search", "x", "--limit", "0"], "--limit"),
        (&["search", "x", "--limit", "500"], "--limit"),
    ] {
        let out = meshwork(&bob, args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }

    // The index is Bob's own and survives kill -9…
    b.kill9();
    let b = daemon(&bob);
    assert_eq!(search(&bob, "budget", &[])["total"], 2);
    // …and is rebuilt from the documents when damaged.
    drop(b);
    let index = bob.join("search");
    for entry in std::fs::read_dir(&index).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::write(&path, b"{ not json").unwrap();
        }
    }
    let _b = daemon(&bob);
    assert_eq!(search(&bob, "budget", &[])["total"], 2);
    assert_eq!(search(&bob, "预算", &[])["total"], 1);
}
