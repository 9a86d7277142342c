//! Meshwork's data model: typed automerge documents whose every change is
//! signed by its author and checked against the document's authorization rules.
//!
//! This crate is pure: no async, no I/O, no clock reads. Time comes in as an
//! argument (`now`, milliseconds since the Unix epoch), so every rule can be
//! tested and simulated without sockets.
//!
//! - [`cite`]: the roster heads a department document's change was written
//!   under, and [`RosterAt`], the roster every such change is judged by.
//! - [`identity`]: device keys, member ids and change signatures.
//! - [`signed`]: [`SignedDoc`], an automerge document that only accepts signed,
//!   authorized changes, and the sync protocol over it.
//! - [`feed`]: a department's feed — posts, replies, reactions — and its rules.
//! - [`library`]: a department's shared files — names, blob hashes, keys,
//!   who holds them — and its rules.
//! - [`pins`]: the workspace's pin ledger — which blobs must stay available
//!   until when, and who committed to keep them — and its rules.
//! - [`nonce`]: the ascending second half of a post's or file's id.
//! - [`roster`]: the workspace roster — members, roles, departments, invites —
//!   its writers, its typed view and its authorization rules.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod cite;
pub mod feed;
mod genesis;
pub mod identity;
pub mod library;
pub mod nonce;
pub mod pins;
mod read;
pub mod roster;
pub mod signed;

pub use automerge;
pub use cite::{RosterAt, RosterBook};
pub use identity::{MemberId, Signer};
pub use nonce::Nonces;
pub use read::{touched_since, Records};
pub use signed::{Ingest, OpenedSync, Rejection, SignedChange, SignedDoc, SyncBatch, SyncPayload};

/// Whether `s` is lowercase hex digits only, as ids and hashes are written.
pub(crate) fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Milliseconds since the Unix epoch: the only notion of time this crate knows.
pub type Millis = i64;
