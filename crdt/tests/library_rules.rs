//! A department library's rules through the public API: a shared file and
//! its holders replicate; forged uploaders, outsiders, rewrites of someone
//! else's file and holders added in another's name are refused.

mod common;

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ReadDoc, ROOT};
use common::{research_roster as roster, signer, T0};
use meshwork_crdt::library::write::{self, NewFile};
use meshwork_crdt::library::{shelf_of, BlobIndex, Library};
use meshwork_crdt::{MemberId, Rejection, SignedChange, SignedDoc, Signer};

/// The blob every test file names (a BLAKE3 hash's 64 hex digits).
const BLOB: &str = "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12";

fn library() -> common::Dept {
    common::Dept::new(SignedDoc::library("d1", vec![]).unwrap(), roster())
}

fn file<'a>(id: &'a str, name: &'a str, uploader: MemberId) -> NewFile<'a> {
    NewFile {
        id,
        name,
        size: 1234,
        media_type: "text/plain",
        blob: BLOB,
        blob_size: 1250,
        key: "00ff",
        uploader,
        shared_at: T0,
        entries: None,
    }
}

/// File number `n` of `who`.
fn fid(who: &Signer, n: u8) -> String {
    meshwork_crdt::library::file_id(&who.id(), [n; 8])
}

fn share(doc: &mut common::Dept, who: &Signer, id: &str) -> SignedChange {
    let me = who.id();
    doc.change(who, T0, |tx| write::share(tx, &file(id, "report.pdf", me)))
        .unwrap()
        .unwrap()
}

/// The library's map of shelves (and of files from before shelves).
fn files(doc: &impl ReadDoc) -> ObjId {
    doc.get(ROOT, "files").unwrap().unwrap().1
}

/// The shelf of file `id` (which must be there).
fn shelf(doc: &impl ReadDoc, id: &str) -> ObjId {
    let shelf = shelf_of(id).unwrap();
    doc.get(files(doc), shelf.as_str()).unwrap().unwrap().1
}

/// The record of file `id` on its shelf, as a map (session 20's layout).
fn record_map(doc: &impl ReadDoc, id: &str) -> ObjId {
    doc.get(shelf(doc, id), id).unwrap().unwrap().1
}

/// File `f`'s record packed, as `write::share` writes it on its shelf.
fn packed(f: &NewFile<'_>) -> String {
    serde_json::json!({
        "name": f.name,
        "size": f.size,
        "media_type": f.media_type,
        "blob": f.blob,
        "blob_size": f.blob_size,
        "key": f.key,
        "uploader": f.uploader.to_string(),
        "shared_at": f.shared_at,
    })
    .to_string()
}

/// Writes file `f`'s record under `parent` as a map of fields, as nodes
/// did before packed records (session 21).
fn put_record(tx: &mut impl Transactable, parent: &ObjId, f: &NewFile<'_>) {
    let obj = tx.put_object(parent, f.id, ObjType::Map).unwrap();
    tx.put(&obj, "name", f.name).unwrap();
    tx.put(&obj, "size", f.size as i64).unwrap();
    tx.put(&obj, "blob", f.blob).unwrap();
    tx.put(&obj, "blob_size", f.blob_size as i64).unwrap();
    tx.put(&obj, "key", f.key).unwrap();
    tx.put(&obj, "uploader", f.uploader.to_string()).unwrap();
    let holders = tx.put_object(&obj, "holders", ObjType::Map).unwrap();
    tx.put(&holders, f.uploader.to_string(), true).unwrap();
}

/// Bob's library (`b`) and Cleo's (`c`), both holding Bob's file `f1`.
struct BobShared {
    bob: Signer,
    cleo: Signer,
    b: common::Dept,
    c: common::Dept,
    f1: String,
}

fn bob_shares_f1() -> BobShared {
    let (bob, cleo) = (signer(2), signer(3));
    let (mut b, mut c) = (library(), library());
    let f1 = fid(&bob, 1);
    accepted(&mut c, share(&mut b, &bob, &f1));
    BobShared {
        bob,
        cleo,
        b,
        c,
        f1,
    }
}

fn accepted(doc: &mut common::Dept, change: SignedChange) {
    let got = doc.ingest(vec![change]);
    assert!(got.rejected.is_empty(), "{:?}", got.rejected);
    assert_eq!(got.accepted.len(), 1);
}

/// Like [`refused`], for the reason `why` (a part of the message).
fn refused_because(doc: &mut common::Dept, change: SignedChange, why: &str) {
    let got = doc.ingest(vec![change]);
    match &got.rejected[..] {
        [Rejection::Unauthorized { reason, .. }] => assert!(reason.contains(why), "{reason}"),
        other => panic!("{other:?}"),
    }
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
fn a_shared_file_and_its_holders_replicate() {
    let (bob, cleo) = (signer(2), signer(3));
    let mut b = library();
    let mut c = library();
    assert_eq!(b.heads(), c.heads(), "one genesis everywhere");
    let f1 = fid(&bob, 1);
    let shared = share(&mut b, &bob, &f1);
    assert_eq!(c.ingest(vec![shared]).accepted.len(), 1);
    let holds = c
        .change(&cleo, T0, |tx| write::hold(tx, &f1, cleo.id(), true))
        .unwrap()
        .unwrap();
    assert_eq!(b.ingest(vec![holds]).accepted.len(), 1);
    let f = Library::new(b.doc()).file(&f1).unwrap();
    assert_eq!(f.name, "report.pdf");
    assert_eq!((f.size, f.blob_size), (1234, 1250));
    assert_eq!(f.uploader, bob.id());
    let mut both = vec![bob.id(), cleo.id()];
    both.sort();
    assert_eq!(f.holders, both);
    assert_eq!(Library::new(c.doc()).files(), Library::new(b.doc()).files());
    assert_eq!(Library::new(b.doc()).by_blob(BLOB).unwrap().id, f1);
}

#[test]
fn forgeries_outsiders_and_rewrites_are_refused() {
    let (bob, cleo, dave) = (signer(2), signer(3), signer(4));
    let mut b = library();
    let f1 = fid(&bob, 1);
    let before_bob = library();
    let shared = share(&mut b, &bob, &f1);
    let mut c = library();
    c.ingest(vec![shared]);

    // Signed by Cleo, naming Bob as the uploader.
    let bob_id = bob.id();
    refused(
        &mut c,
        common::forge_cited(&b, &cleo, &cleo, |tx| {
            write::share(tx, &file(&fid(&bob, 2), "x", bob_id)).unwrap()
        }),
    );
    // Dave is not in the department.
    let dave_id = dave.id();
    refused(
        &mut c,
        common::forge_cited(&b, &dave, &dave, |tx| {
            write::share(tx, &file(&fid(&dave, 3), "x", dave_id)).unwrap()
        }),
    );
    // Cleo renames Bob's file, or swaps its blob; Bob renames his own
    // (once shared, a record does not change); either deletes it.
    let mut evil_blob = file(&f1, "report.pdf", bob_id);
    evil_blob.blob = "evil";
    for (who, evil, why) in [
        (&cleo, file(&f1, "evil.exe", bob_id), "is not one of"),
        (&cleo, evil_blob, "is not one of"),
        (&bob, file(&f1, "renamed.pdf", bob_id), "already exists"),
    ] {
        let text = packed(&evil);
        refused_because(
            &mut c,
            common::forge_cited(&b, who, who, |tx| {
                let shelf = shelf(tx, &f1);
                tx.put(&shelf, f1.as_str(), text.as_str()).unwrap();
            }),
            why,
        );
    }
    for who in [&cleo, &bob] {
        refused(
            &mut c,
            common::forge_cited(&b, who, who, |tx| {
                let shelf = shelf(tx, &f1);
                tx.delete(&shelf, f1.as_str()).unwrap();
            }),
        );
    }
    // Cleo sharing a file under Bob's file's id — also concurrently, from
    // the state before it, where "already exists" would not see it.
    let cleo_id = cleo.id();
    for state in [&b, &before_bob] {
        refused(
            &mut c,
            common::forge_cited(state, &cleo, &cleo, |tx| {
                write::share(tx, &file(&f1, "again", cleo_id)).unwrap()
            }),
        );
    }
    // Cleo adds Bob... as a holder of something; Bob's own claim is his.
    refused(
        &mut c,
        common::forge_cited(&b, &cleo, &cleo, |tx| {
            write::hold(tx, &f1, bob_id, false).unwrap()
        }),
    );
    // A name too long, or none.
    for name in ["", &"n".repeat(256)] {
        refused(
            &mut c,
            common::forge_cited(&b, &cleo, &cleo, |tx| {
                write::share(tx, &file(&fid(&cleo, 4), name, cleo_id)).unwrap()
            }),
        );
    }
    let f = Library::new(c.doc()).file(&f1).unwrap();
    assert_eq!(
        (f.blob.as_str(), f.holders.as_slice()),
        (BLOB, &[bob_id][..])
    );
}

#[test]
fn a_folder_is_one_record_and_its_paths_stay_inside_it() {
    let bob = signer(2);
    let b = library();
    let mut c = library();
    let me = bob.id();
    let folder = |id: &str, entries: &str, size: u64| {
        let (id, entries) = (id.to_owned(), entries.to_owned());
        common::forge_cited(&b, &bob, &bob, move |tx| {
            let mut f = file(&id, "Q3", me);
            f.size = size;
            f.entries = Some(&entries);
            write::share(tx, &f).unwrap()
        })
    };
    let good = folder(&fid(&bob, 1), "3 a.txt\n1231 sub/b.txt\n", 1234);
    assert_eq!(c.ingest(vec![good]).accepted.len(), 1);
    let f = Library::new(c.doc()).file(&fid(&bob, 1)).unwrap();
    let paths: Vec<_> = f.entries.unwrap().into_iter().map(|e| e.path).collect();
    assert_eq!(paths, ["a.txt", "sub/b.txt"]);
    // Hostile paths, and sizes that do not add up, are refused by every node.
    for (n, entries) in [
        (2, "1234 ../../.bashrc\n"),
        (3, "1234 /etc/passwd\n"),
        (4, "1234 a\\..\\b\n"),
        (5, "1000 a\n"),
    ] {
        // Each on a fresh copy: forged from one state, two changes would
        // share a sequence number.
        refused(&mut library(), folder(&fid(&bob, n), entries, 1234));
    }
}

/// A file sits on its uploader's shelf of its day, and nowhere else: no
/// member makes a shelf of another's, puts a file on a shelf not its own,
/// or makes a shelf again (which would hide the files on it).
#[test]
fn shelves_hold_only_their_uploaders_files_of_their_day() {
    let BobShared {
        bob,
        cleo,
        mut b,
        mut c,
        f1,
    } = bob_shares_f1();
    let (bob_id, cleo_id) = (bob.id(), cleo.id());
    // A file id names its shelf: its uploader's prefix and its day.
    let day = |n: u8| (u64::from_be_bytes([n; 8]) >> 16) / (24 * 3600 * 1000);
    assert_eq!(shelf_of(&f1).unwrap(), format!("{}.{}", &f1[..16], day(1)));
    assert_eq!(shelf_of("a1"), None, "not a file id");

    // Cleo makes a shelf under Bob's prefix.
    let bobs = shelf_of(&fid(&bob, 2)).unwrap();
    refused_because(
        &mut c,
        common::forge_cited(&b, &cleo, &cleo, |tx| {
            let files = files(tx);
            tx.put_object(&files, bobs.as_str(), ObjType::Map).unwrap();
        }),
        "is not one of",
    );
    // Cleo puts a file of hers on Bob's shelf.
    refused_because(
        &mut c,
        common::forge_cited(&b, &cleo, &cleo, |tx| {
            let shelf = shelf(tx, &f1);
            put_record(tx, &shelf, &file(&fid(&cleo, 1), "mine", cleo_id));
        }),
        "does not belong on shelf",
    );
    // Bob puts a file of one day on the shelf of another.
    refused_because(
        &mut c,
        common::forge_cited(&b, &bob, &bob, |tx| {
            let files = files(tx);
            let other = shelf_of(&fid(&bob, 9)).unwrap();
            let shelf = tx.put_object(&files, other.as_str(), ObjType::Map).unwrap();
            put_record(tx, &shelf, &file(&fid(&bob, 3), "late", bob_id));
        }),
        "does not belong on shelf",
    );
    // Bob makes his shelf of f1's day again, or deletes it; Cleo deletes it.
    let of_f1 = shelf_of(&f1).unwrap();
    let remake = |tx: &mut automerge::transaction::Transaction<'_>| {
        let files = files(tx);
        tx.put_object(&files, of_f1.as_str(), ObjType::Map).unwrap();
    };
    let delete = |tx: &mut automerge::transaction::Transaction<'_>| {
        let files = files(tx);
        tx.delete(&files, of_f1.as_str()).unwrap();
    };
    refused_because(
        &mut c,
        common::forge_cited(&b, &bob, &bob, remake),
        "already exists",
    );
    refused(&mut c, common::forge_cited(&b, &bob, &bob, delete));
    refused(&mut c, common::forge_cited(&b, &cleo, &cleo, delete));
    // Not a shelf: a scalar at a shelf's key, a key on a shelf that is not a
    // file id, a shelf's key written with a leading zero.
    let bob5 = shelf_of(&fid(&bob, 5)).unwrap();
    refused_because(
        &mut c,
        common::forge_cited(&b, &bob, &bob, |tx| {
            let files = files(tx);
            tx.put(&files, bob5.as_str(), "x").unwrap();
        }),
        "may not write",
    );
    refused_because(
        &mut c,
        common::forge_cited(&b, &bob, &bob, |tx| {
            let shelf = shelf(tx, &f1);
            tx.put_object(&shelf, "notanid", ObjType::Map).unwrap();
        }),
        "is not one of",
    );
    let (prefix, day) = bob5.split_once('.').unwrap();
    let padded = format!("{prefix}.0{day}");
    refused_because(
        &mut c,
        common::forge_cited(&b, &bob, &bob, |tx| {
            let files = files(tx);
            tx.put_object(&files, padded.as_str(), ObjType::Map)
                .unwrap();
        }),
        "is not one of",
    );
    // One id both on its shelf and directly in `files`: in one change, or
    // directly in `files` once it is on its shelf.
    let f6 = fid(&bob, 6);
    refused_because(
        &mut c,
        common::forge_cited(&b, &bob, &bob, |tx| {
            write::share(tx, &file(&f6, "twice", bob_id)).unwrap();
            let files = files(tx);
            put_record(tx, &files, &file(&f6, "twice", bob_id));
        }),
        "already exists",
    );
    refused_because(
        &mut c,
        common::forge_cited(&b, &bob, &bob, |tx| {
            let files = files(tx);
            put_record(tx, &files, &file(&f1, "again", bob_id));
        }),
        "already exists",
    );
    // A second file of that day goes on the same shelf; one of another day
    // on a new one.
    let f2 = meshwork_crdt::library::file_id(&bob_id, [1, 1, 1, 1, 1, 1, 0, 9]);
    assert_eq!(shelf_of(&f2), shelf_of(&f1));
    let f3 = fid(&bob, 9);
    for id in [&f2, &f3] {
        accepted(&mut c, share(&mut b, &bob, id));
    }
    assert_eq!(c.doc().keys(files(c.doc())).count(), 2, "two shelves");
    let mut listed: Vec<String> = Library::new(c.doc())
        .files()
        .into_iter()
        .map(|f| f.id)
        .collect();
    listed.sort();
    let mut want = vec![f1, f2, f3];
    want.sort();
    assert_eq!(listed, want);
}

/// A library written before shelves (or by an older node) holds its files
/// directly in `files`: they are read, found by blob and held where they
/// are, beside files on shelves.
#[test]
fn a_library_from_before_shelves_is_read_and_held() {
    let (bob, cleo) = (signer(2), signer(3));
    let bob_id = bob.id();
    let mut b = library();
    let mut c = library();
    let old = fid(&bob, 1);
    let legacy = common::forge_cited(&b, &bob, &bob, |tx| {
        let files = files(tx);
        put_record(tx, &files, &file(&old, "old.pdf", bob_id));
    });
    let mut index = BlobIndex::default();
    index.refresh(c.doc());
    accepted(&mut b, legacy.clone());
    accepted(&mut c, legacy);
    // Taken in from the change alone, as a later refresh does.
    index.refresh(c.doc());
    assert_eq!(index.files_of(BLOB), [old.as_str()]);
    // The same id again, now on its shelf: it exists.
    refused_because(
        &mut c,
        common::forge_cited(&b, &bob, &bob, |tx| {
            write::share(tx, &file(&old, "again", bob_id)).unwrap()
        }),
        "already exists",
    );
    let new = fid(&bob, 2);
    accepted(&mut c, share(&mut b, &bob, &new));
    assert!(
        c.doc().get(files(c.doc()), old.as_str()).unwrap().is_some(),
        "old stays in files"
    );

    let library = Library::new(c.doc());
    assert_eq!(library.file(&old).unwrap().name, "old.pdf");
    assert_eq!(library.files().len(), 2);
    index.refresh(c.doc());
    let mut found = index.files_of(BLOB).to_vec();
    found.sort();
    let mut want = vec![old.clone(), new.clone()];
    want.sort();
    assert_eq!(found, want);

    // Cleo renames the old file, or swaps its blob: refused in this
    // layout too.
    for (field, value) in [("name", "evil.exe"), ("blob", "evil")] {
        refused(
            &mut c,
            common::forge_cited(&b, &cleo, &cleo, |tx| {
                let files = files(tx);
                let obj = tx.get(&files, old.as_str()).unwrap().unwrap().1;
                tx.put(&obj, field, value).unwrap();
            }),
        );
    }
    // Cleo holds the old file, where it is; then lets it go.
    for on in [true, false] {
        let held = c
            .change(&cleo, T0, |tx| write::hold(tx, &old, cleo.id(), on))
            .unwrap();
        assert!(held.is_some());
        let holders = Library::new(c.doc()).file(&old).unwrap().holders;
        assert_eq!(holders.contains(&cleo.id()), on);
    }
}

/// A packed record is checked as a map record was: it must read, and name
/// its signer; a holder beside it is its writer alone, of a file that is
/// there, on that file's shelf, and only ever `true` (or deleted).
#[test]
fn packed_records_and_their_holders_are_checked() {
    let BobShared {
        bob,
        cleo,
        b,
        mut c,
        f1,
    } = bob_shares_f1();
    let (bob_id, cleo_id) = (bob.id(), cleo.id());
    let f2 = meshwork_crdt::library::file_id(&bob_id, [1, 1, 1, 1, 1, 1, 0, 9]);
    assert_eq!(shelf_of(&f2), shelf_of(&f1), "f2 would go on f1's shelf");
    let on_shelf = |who: &Signer, key: String, value: automerge::ScalarValue| {
        let id = f1.clone();
        common::forge_cited(&b, who, who, move |tx| {
            let shelf = shelf(tx, &id);
            tx.put(&shelf, key, value).unwrap();
        })
    };
    let text = |s: &str| automerge::ScalarValue::Str(s.into());

    // Records that do not read, or name another uploader.
    let mut cleos = file(&f2, "x", cleo_id);
    cleos.uploader = cleo_id;
    let without_blob = packed(&file(&f2, "x", bob_id)).replace("\"blob\"", "\"blub\"");
    for (record, why) in [
        ("not json".to_owned(), "an unreadable record"),
        (without_blob, "an unreadable record"),
        ("{}".to_owned(), "an unreadable record"),
        (packed(&cleos), "names an uploader other than its signer"),
        (packed(&file(&f2, "", bob_id)), "a name of 0 bytes"),
    ] {
        refused_because(&mut c, on_shelf(&bob, f2.clone(), text(&record)), why);
    }
    // A number where a record goes; a key on a shelf that is not a file id.
    refused_because(
        &mut c,
        on_shelf(&bob, f2.clone(), 7.into()),
        "may not write",
    );
    refused_because(
        &mut c,
        on_shelf(
            &bob,
            "notanid".into(),
            text(&packed(&file(&f2, "x", bob_id))),
        ),
        "is not one of",
    );
    // Cleo's file on Bob's shelf.
    let c2 = fid(&cleo, 1);
    refused_because(
        &mut c,
        common::forge_cited(&b, &cleo, &cleo, |tx| {
            let shelf = shelf(tx, &f1);
            tx.put(&shelf, c2.as_str(), packed(&file(&c2, "x", cleo_id)))
                .unwrap();
        }),
        "does not belong on shelf",
    );

    // Holders: Cleo names Dave; says something other than `true`; holds a
    // file that is not there, or names a file of another shelf.
    let holder = |id: &str, who: MemberId| format!("{id}/{who}");
    for (key, value, why) in [
        (holder(&f1, signer(4).id()), true.into(), "may not write"),
        (holder(&f1, cleo_id), false.into(), "may not write"),
        (holder(&f1, cleo_id), text("yes"), "may not write"),
        (holder(&f2, cleo_id), true.into(), "which is not there"),
        (
            holder(&fid(&bob, 9), cleo_id),
            true.into(),
            "does not belong on shelf",
        ),
    ] {
        refused_because(&mut c, on_shelf(&cleo, key, value), why);
    }
    // Cleo takes Bob's claim back.
    refused_because(
        &mut c,
        common::forge_cited(&b, &cleo, &cleo, |tx| {
            let shelf = shelf(tx, &f1);
            tx.delete(&shelf, holder(&f1, bob_id)).unwrap();
        }),
        "may not write",
    );
    // A key with two slashes; a counter at her holder key; a list where a
    // record goes.
    refused_because(
        &mut c,
        on_shelf(&cleo, format!("{}/x", holder(&f1, cleo_id)), true.into()),
        "may not write",
    );
    refused_because(
        &mut c,
        on_shelf(
            &cleo,
            holder(&f1, cleo_id),
            automerge::ScalarValue::counter(1),
        ),
        "may not write",
    );
    refused_because(
        &mut c,
        common::forge_cited(&b, &bob, &bob, |tx| {
            let shelf = shelf(tx, &f1);
            tx.put_object(&shelf, f2.as_str(), ObjType::List).unwrap();
        }),
        "may not write",
    );
    // A record with a field the rules do not know, or no blob worth the
    // name.
    let extra = packed(&file(&f2, "x", bob_id)).replace('}', ",\"pad\":\"xxxx\"}");
    refused_because(
        &mut c,
        on_shelf(&bob, f2.clone(), text(&extra)),
        "unknown field",
    );
    let (long, zeros, upper) = ("x".repeat(256), "0".repeat(258), BLOB.to_uppercase());
    let mut bad: Vec<(NewFile<'_>, &str)> = Vec::new();
    let mut padded = file(&f2, "x", bob_id);
    padded.media_type = &long;
    bad.push((padded, "a media type of 256 bytes"));
    for key in ["", "FF", "0g", &zeros] {
        let mut f = file(&f2, "x", bob_id);
        f.key = key;
        bad.push((f, "names no blob or no key"));
    }
    for blob in ["", "ab12", &upper] {
        let mut f = file(&f2, "x", bob_id);
        f.blob = blob;
        bad.push((f, "names no blob"));
    }
    for (f, why) in bad {
        refused_because(&mut c, on_shelf(&bob, f2.clone(), text(&packed(&f))), why);
    }
    // Her own claim, made by hand as `write::hold` makes it, is hers.
    accepted(&mut c, on_shelf(&cleo, holder(&f1, cleo_id), true.into()));
    let mut both = vec![bob_id, cleo_id];
    both.sort();
    assert_eq!(Library::new(c.doc()).file(&f1).unwrap().holders, both);
    assert_eq!(Library::new(c.doc()).files()[0].holders, both);
    let f = Library::new(c.doc()).file(&f1).unwrap();
    assert_eq!(
        (f.name.as_str(), f.blob.as_str(), f.uploader),
        ("report.pdf", BLOB, bob_id)
    );
    // And she takes it back.
    let let_go = c
        .change(&cleo, T0, |tx| write::hold(tx, &f1, cleo_id, false))
        .unwrap();
    assert!(let_go.is_some());
    assert_eq!(Library::new(c.doc()).file(&f1).unwrap().holders, [bob_id]);
}

/// Map records on a shelf (session 20's layout) are read, held and let go
/// where they are; their holders, like packed ones, are only ever `true`;
/// a holder key beside a map record is not how a map record is held.
#[test]
fn map_records_on_a_shelf_are_read_and_held() {
    let (bob, cleo) = (signer(2), signer(3));
    let (bob_id, cleo_id) = (bob.id(), cleo.id());
    let mut c = library();
    let f1 = fid(&bob, 1);
    let mapped = common::forge_cited(&c, &bob, &bob, |tx| {
        let files = files(tx);
        let shelf = tx
            .put_object(&files, shelf_of(&f1).unwrap().as_str(), ObjType::Map)
            .unwrap();
        put_record(tx, &shelf, &file(&f1, "mapped.pdf", bob_id));
    });
    accepted(&mut c, mapped);
    let listed = Library::new(c.doc()).files();
    assert_eq!(listed.len(), 1);
    assert_eq!(Library::new(c.doc()).file(&f1).as_ref(), listed.first());
    assert_eq!(listed[0].name, "mapped.pdf");
    let mut index = BlobIndex::default();
    index.refresh(c.doc());
    assert_eq!(index.files_of(BLOB), [f1.as_str()]);

    // A holder key beside it, and a holder that is not `true`: refused.
    let beside = common::forge_cited(&c, &cleo, &cleo, |tx| {
        let shelf = shelf(tx, &f1);
        tx.put(&shelf, format!("{f1}/{cleo_id}"), true).unwrap();
    });
    refused_because(&mut c, beside, "which is not there");
    let not_true = common::forge_cited(&c, &cleo, &cleo, |tx| {
        let holders = tx.get(record_map(tx, &f1), "holders").unwrap().unwrap().1;
        tx.put(&holders, cleo_id.to_string(), false).unwrap();
    });
    refused_because(&mut c, not_true, "may not write");
    for on in [true, false] {
        let held = c
            .change(&cleo, T0, |tx| write::hold(tx, &f1, cleo_id, on))
            .unwrap();
        assert!(held.is_some());
        let holders = Library::new(c.doc()).file(&f1).unwrap().holders;
        assert_eq!(holders.contains(&cleo_id), on);
    }
}
