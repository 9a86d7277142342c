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
mod tally;
pub(crate) mod view;
pub mod write;

pub use cache::RosterCache;
pub(crate) use rules::{authorize, ObjectPaths};
pub(crate) use tally::Tally;
pub use view::{
    check_name as check_display_name, Department, Invite, Member, PinPolicy, Role, Roster,
    RosterError, MIN_DEPT_PREFIX,
};

/// The first change (in the document's order) that marked `member`
/// removed: with its history, what tells a removed member's node that it
/// was removed, and nothing written after.
pub fn removal_of(
    doc: &automerge::Automerge,
    member: &crate::MemberId,
) -> Option<automerge::ChangeHash> {
    let id = member.to_string();
    let mut places = ObjectPaths::default();
    doc.get_changes(&[]).into_iter().find_map(|c| {
        let paths = places.touched(doc, &c).ok()?;
        paths
            .iter()
            .any(|p| matches!(p.as_slice(), [m, who, r] if m == "members" && *who == id && r == "removed"))
            .then(|| c.hash())
    })
}

/// The most members a department may hold.
pub const DEPT_CAPACITY: usize = 1000;
