//! What the crdt examples share: their one flag, and a file shared into a
//! library as the node writes it.

use meshwork_crdt::automerge::Automerge;
use meshwork_crdt::library::write::{self, NewFile};
use meshwork_crdt::Signer;

/// The number after `flag` on the command line, or `default`.
pub fn count_arg(flag: &str, default: usize) -> usize {
    match std::env::args().skip_while(|a| a != flag).nth(1) {
        Some(n) => n.parse().unwrap_or_else(|_| panic!("{flag} N")),
        None => default,
    }
}

/// Shares file number `n`, with id `id`, into library `doc` in a change of
/// its own, under `doc`'s actor; returns its blob.
#[allow(dead_code)] // not every example shares files
pub fn share(doc: &mut Automerge, uploader: &Signer, id: &str, n: u64, shared_at: i64) -> String {
    let blob = format!("{n:064x}");
    let mut tx = doc.transaction();
    write::share(
        &mut tx,
        &NewFile {
            id,
            name: &format!("report {n}.pdf"),
            size: 1024,
            media_type: "application/pdf",
            blob: &blob,
            blob_size: 1064,
            key: &"ab".repeat(32),
            uploader: uploader.id(),
            shared_at,
            entries: None,
        },
    )
    .expect("share");
    tx.commit();
    blob
}
