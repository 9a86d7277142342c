//! A department library's rules through the public API: a shared file and
//! its holders replicate; forged uploaders, outsiders, rewrites of someone
//! else's file and holders added in another's name are refused.

mod common;

use automerge::transaction::Transactable;
use automerge::ReadDoc;
use common::{research_roster as roster, signer, T0};
use meshwork_crdt::library::write::{self, NewFile};
use meshwork_crdt::library::Library;
use meshwork_crdt::{MemberId, Rejection, SignedChange, SignedDoc, Signer};

fn library() -> common::Dept {
    common::Dept::new(SignedDoc::library("d1", vec![]).unwrap(), roster())
}

fn file<'a>(id: &'a str, name: &'a str, uploader: MemberId) -> NewFile<'a> {
    NewFile {
        id,
        name,
        size: 1234,
        media_type: "text/plain",
        blob: "ab12",
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
    assert_eq!(Library::new(b.doc()).by_blob("ab12").unwrap().id, f1);
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
    let files = |d: &common::Dept| d.doc().get(automerge::ROOT, "files").unwrap().unwrap().1;

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
    // Cleo renames Bob's file, or swaps its blob.
    let fs = files(&b);
    refused(
        &mut c,
        common::forge_cited(&b, &cleo, &cleo, |tx| {
            let (_, obj) = tx.get(&fs, f1.as_str()).unwrap().unwrap();
            tx.put(&obj, "blob", "evil").unwrap();
        }),
    );
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
        ("ab12", &[bob_id][..])
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
