//! The only functions that write the roster layout. Each takes an open
//! transaction; [`crate::SignedDoc::change`] signs and checks what they wrote.
//!
//! They assume the caller has resolved names and checked preconditions
//! against a [`super::Roster`] (which gives users clear errors); the
//! authorization rules re-check what matters on every node.

use automerge::transaction::Transactable;
use automerge::{AutomergeError, ObjId, ObjType, Value, ROOT};

use super::{Invite, PinPolicy, Role};
use crate::{MemberId, Millis};

/// Writes the first change of a workspace: its name, the empty maps, and the
/// creator as its first admin.
pub fn genesis<T: Transactable>(
    tx: &mut T,
    name: &str,
    creator: MemberId,
    creator_name: &str,
    now: Millis,
) -> Result<(), AutomergeError> {
    tx.put(ROOT, "kind", "roster")?;
    tx.put(ROOT, "name", name)?;
    tx.put_object(ROOT, "members", ObjType::Map)?;
    tx.put_object(ROOT, "depts", ObjType::Map)?;
    tx.put_object(ROOT, "invites", ObjType::Map)?;
    add_member(tx, creator, creator_name, Role::Admin, now, None)
}

/// Adds a member record.
pub fn add_member<T: Transactable>(
    tx: &mut T,
    id: MemberId,
    name: &str,
    role: Role,
    now: Millis,
    invite: Option<&str>,
) -> Result<(), AutomergeError> {
    let members = map(tx, &ROOT, "members")?;
    let m = tx.put_object(&members, id.to_string(), ObjType::Map)?;
    tx.put(&m, "name", name)?;
    tx.put(&m, "role", role.as_str())?;
    tx.put(&m, "joined_at", now)?;
    if let Some(invite) = invite {
        tx.put(&m, "invite", invite)?;
    }
    Ok(())
}

/// Changes a member's role.
pub fn set_role<T: Transactable>(
    tx: &mut T,
    id: MemberId,
    role: Role,
) -> Result<(), AutomergeError> {
    let m = member(tx, id)?;
    tx.put(&m, "role", role.as_str())
}

/// Renames the workspace.
pub fn rename_workspace<T: Transactable>(tx: &mut T, name: &str) -> Result<(), AutomergeError> {
    tx.put(ROOT, "name", name)
}

/// Changes a member's display name.
pub fn set_name<T: Transactable>(
    tx: &mut T,
    id: MemberId,
    name: &str,
) -> Result<(), AutomergeError> {
    let m = member(tx, id)?;
    tx.put(&m, "name", name)
}

/// Marks a member removed and takes them out of every department.
pub fn remove_member<T: Transactable>(tx: &mut T, id: MemberId) -> Result<(), AutomergeError> {
    let m = member(tx, id)?;
    tx.put(&m, "removed", true)?;
    let depts = map(tx, &ROOT, "depts")?;
    let key = id.to_string();
    let dept_ids: Vec<String> = tx.keys(&depts).collect();
    for d in dept_ids {
        let dm = dept_members(tx, &d)?;
        if tx.get(&dm, key.as_str())?.is_some() {
            tx.delete(&dm, key.as_str())?;
        }
    }
    Ok(())
}

/// Creates a department.
pub fn create_dept<T: Transactable>(
    tx: &mut T,
    dept_id: &str,
    name: &str,
) -> Result<(), AutomergeError> {
    let depts = map(tx, &ROOT, "depts")?;
    let d = tx.put_object(&depts, dept_id, ObjType::Map)?;
    tx.put(&d, "name", name)?;
    tx.put_object(&d, "members", ObjType::Map)?;
    Ok(())
}

/// Sets the pinning policy (the caller checked it: [`PinPolicy::check`]).
pub fn set_policy<T: Transactable>(tx: &mut T, policy: &PinPolicy) -> Result<(), AutomergeError> {
    let obj = match tx.get(ROOT, "policy")? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => tx.put_object(ROOT, "policy", ObjType::Map)?,
    };
    tx.put(&obj, "retention_ms", policy.retention_ms)?;
    tx.put(&obj, "replicas", i64::from(policy.replicas))
}

/// Renames a department; its id stays.
pub fn rename_dept<T: Transactable>(
    tx: &mut T,
    dept_id: &str,
    name: &str,
) -> Result<(), AutomergeError> {
    let d = map(tx, &map(tx, &ROOT, "depts")?, dept_id)?;
    tx.put(&d, "name", name)
}

/// Adds a member to a department.
pub fn dept_add<T: Transactable>(
    tx: &mut T,
    dept_id: &str,
    id: MemberId,
) -> Result<(), AutomergeError> {
    let dm = dept_members(tx, dept_id)?;
    tx.put(&dm, id.to_string(), true)
}

/// Takes a member out of a department.
pub fn dept_remove<T: Transactable>(
    tx: &mut T,
    dept_id: &str,
    id: MemberId,
) -> Result<(), AutomergeError> {
    let dm = dept_members(tx, dept_id)?;
    tx.delete(&dm, id.to_string())
}

/// Records an invite (only the hash of its secret).
pub fn create_invite<T: Transactable>(tx: &mut T, invite: &Invite) -> Result<(), AutomergeError> {
    let invites = map(tx, &ROOT, "invites")?;
    let i = tx.put_object(&invites, invite.id.as_str(), ObjType::Map)?;
    tx.put(&i, "secret_hash", invite.secret_hash.as_str())?;
    tx.put(&i, "role", invite.role.as_str())?;
    if let Some(dept) = &invite.dept {
        tx.put(&i, "dept", dept.as_str())?;
    }
    tx.put(&i, "expires_at", invite.expires_at)?;
    tx.put(&i, "created_by", invite.created_by.to_string())?;
    Ok(())
}

/// Admits a joiner with an invite: the member record, the invite marked
/// used, and the invite's department. This is the one roster change a
/// non-admin member may write.
pub fn redeem_invite<T: Transactable>(
    tx: &mut T,
    invite: &Invite,
    joiner: MemberId,
    name: &str,
    now: Millis,
) -> Result<(), AutomergeError> {
    add_member(tx, joiner, name, invite.role, now, Some(&invite.id))?;
    let i = map(tx, &map(tx, &ROOT, "invites")?, &invite.id)?;
    tx.put(&i, "redeemed_by", joiner.to_string())?;
    if let Some(dept) = &invite.dept {
        dept_add(tx, dept, joiner)?;
    }
    Ok(())
}

fn dept_members<T: Transactable>(tx: &T, dept_id: &str) -> Result<ObjId, AutomergeError> {
    map(tx, &map(tx, &map(tx, &ROOT, "depts")?, dept_id)?, "members")
}

fn member<T: Transactable>(tx: &T, id: MemberId) -> Result<ObjId, AutomergeError> {
    map(tx, &map(tx, &ROOT, "members")?, &id.to_string())
}

fn map<T: Transactable>(tx: &T, obj: &ObjId, key: &str) -> Result<ObjId, AutomergeError> {
    match tx.get(obj, key)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(AutomergeError::InvalidObjId(format!(
            "roster has no map at {key:?}"
        ))),
    }
}
