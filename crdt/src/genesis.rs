//! Documents whose first change every node builds alike: a department's
//! feed and library exist from the moment the department does, and no two
//! members can race to create them.

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{ActorId, Automerge, AutomergeError, ROOT};

/// A document of `kind` for `id`, its first change written by `layout` with
/// an actor and a time derived from nothing but `kind` and `id`: identical
/// bytes, hence an identical hash, on every node.
pub(crate) fn deterministic(
    kind: &str,
    id: &str,
    layout: impl FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
) -> Result<Automerge, AutomergeError> {
    let mut doc = Automerge::new();
    let context = format!("meshwork {kind} genesis actor v1");
    let actor = blake3::derive_key(&context, id.as_bytes());
    doc.set_actor(ActorId::from(&actor[..16]));
    doc.transact_with(
        |_| CommitOptions::default().with_time(0),
        |tx| {
            tx.put(ROOT, "kind", kind)?;
            tx.put(ROOT, "dept", id)?;
            layout(tx)
        },
    )
    .map_err(|f| f.error)?;
    Ok(doc)
}
