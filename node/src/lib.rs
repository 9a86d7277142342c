//! The Meshwork peer.
//!
//! A [`Node`] owns this device's identity (its [`Home`]), a sled [`Store`],
//! and — once it belongs to a workspace — a libp2p swarm run by one event
//! loop. Nodes of a workspace share its network key (the noise handshake's
//! prologue), admit only roster members and invite holders, gossip signed
//! roster changes with gossipsub (validated before forwarding) and catch up
//! with automerge's sync protocol over request-response.
//!
//! - [`node`]: the [`Node`] handle and its operations;
//! - [`net`]: behaviour, transport and the event loop;
//! - [`api`]: the HTTP control API on loopback;
//! - [`store`], [`home`], [`clock`], [`wire`]: storage, files, time, wire types;
//! - [`thumbnail`]: thumbnails of shared images.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod admission;
pub mod api;
pub mod clock;
pub mod disk;
mod error;
pub mod home;
mod ids;
mod memory;
pub mod net;
pub mod node;
mod search;
mod shared;

pub use shared::NodeEvent;
pub mod store;
pub mod thumbnail;
pub mod wire;

pub use admission::human_duration;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::NodeError;
pub use home::Home;
pub use libp2p::Multiaddr;
pub use meshwork_crdt as crdt;
pub use net::{NetConfig, PeerInfo};
pub use node::{
    DiskStatus, FeedState, FileInfo, InviteInfo, InviteSpec, Node, NodeConfig, PinInfo,
    PinNodeConfig, PinsView, Progress, ReadIn, Reconciled, SearchHit, SearchResults, Status,
    Unread, UnreadIn, AUDIT_EVERY_MS, LOST_AFTER_MS, SKEW_MARGIN_MS, VOLUNTEER_STAGGER_MS,
};
pub use store::Store;
