//! The workspace roster: its name, members and roles, departments and
//! invites. One automerge document per workspace, laid out as
//!
//! ```text
//! { kind: "roster", name,
//!   members: { <member id>: { name, role, joined_at, removed, invite? } },
//!   depts:   { <dept id>:   { name, members: { <member id>: true } } },
//!   invites: { <invite id>: { secret_hash, role, dept?, expires_at, created_by, redeemed_by? } },
//!   policy:  { retention_ms, replicas } }
//! ```
//!
//! - [`Roster`] is the typed view a node reads (now, or at any heads);
//! - [`write`] holds the only functions that write this layout;
//! - [`authorize`](rules) decides whether a change is allowed.

mod cache;
mod rules;
pub(crate) mod view;
pub mod write;

pub use cache::RosterCache;
pub(crate) use rules::{authorize, touched_paths};
pub use view::{
    check_name as check_display_name, Department, Invite, Member, PinPolicy, Role, Roster,
    RosterError, MIN_DEPT_PREFIX,
};

/// The most members a department may hold.
pub const DEPT_CAPACITY: usize = 1000;
