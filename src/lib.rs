//! Meshwork: a serverless workspace. This facade re-exports the crates;
//! `examples/` and `tests/` live here.
//!
//! - [`crdt`]: documents, signatures, authorization rules (pure);
//! - [`node`]: the peer — libp2p, sync, sled, control API;
//! - the `meshwork` binary: the command line (`meshwork-cli`).
#![deny(missing_docs)]

pub use meshwork_crdt as crdt;
pub use meshwork_node as node;
