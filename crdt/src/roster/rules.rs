//! Who may change what in a roster. Checked on every node for every change,
//! against the roster as it was at the change's own dependencies.
//!
//! - The workspace's genesis change (its hash *is* the workspace id) may do
//!   anything; no other change may lack dependencies.
//! - An admin may change anything, within department capacity; a policy
//!   keeps retention ≥ 72 h and 1–16 replicas; a pinner is in no department.
//! - A member who is not an admin may rename themselves, and may admit one
//!   joiner with a valid invite: the joiner's record with the invite's role,
//!   the invite marked used by that joiner, and the invite's department.
//! - Anyone else — removed members, strangers — may change nothing.

use std::collections::HashMap;

use automerge::legacy::Key;
use automerge::{Automerge, Change, ChangeHash};

use super::tally::Tally;
use super::view::{invite_in, member_in, policy_in};
use super::{Role, DEPT_CAPACITY};
use crate::read::View;
use crate::MemberId;

/// Decides whether `change`, already applied to `doc`, was allowed. `Err`
/// carries a reason for logs. `tally` holds what earlier checks learnt of
/// the roster, and learns what this one reads.
pub(crate) fn authorize(
    doc: &Automerge,
    change: &Change,
    author: MemberId,
    workspace: &ChangeHash,
    tally: &mut Tally,
) -> Result<(), String> {
    let deps = change.deps();
    if deps.is_empty() {
        return if change.hash() == *workspace {
            Ok(())
        } else {
            Err("a change without dependencies that is not this workspace's genesis".into())
        };
    }
    let after = [change.hash()];
    let touched = tally.paths.touched(doc, change)?;
    let standing = tally.standing(doc, deps, &author);
    tally.advance(doc, change, &touched);
    let Some((role, _)) = standing.filter(|(_, removed)| !removed) else {
        return Err(format!(
            "{} is not a member of the workspace",
            author.short()
        ));
    };
    if role != Role::Admin {
        check_member_change(doc, change, author, &touched)?;
    }
    check_capacity(doc, &after, tally, &touched)?;
    let after_view = View::at(doc, &after);
    check_policy(after_view, &touched)?;
    check_pinners(doc, &after, tally, &touched)
}

/// A policy the change wrote must keep the promise's floor.
fn check_policy(after: View<'_>, touched: &[Vec<String>]) -> Result<(), String> {
    if touched
        .iter()
        .any(|p| p.first().is_some_and(|k| k == "policy"))
    {
        policy_in(after).check()?;
    }
    Ok(())
}

/// A pinner belongs to no department: it holds ciphertext, never content.
fn check_pinners(
    doc: &Automerge,
    heads: &[ChangeHash],
    tally: &mut Tally,
    touched: &[Vec<String>],
) -> Result<(), String> {
    let after = View::at(doc, heads);
    for path in touched {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        let (member, dept) = match p.as_slice() {
            ["depts", d, "members", m] => (*m, Some(*d)),
            ["members", m, "role"] => (*m, None),
            _ => continue,
        };
        let Ok(id) = member.parse::<MemberId>() else {
            continue;
        };
        if tally.standing(doc, heads, &id).map(|(role, _)| role) != Some(Role::Pinner) {
            continue;
        }
        let depts = after.path(&["depts"]);
        let in_dept = |d: &str| {
            depts
                .as_ref()
                .and_then(|ds| after.map(ds, d))
                .and_then(|d| after.map(&d, "members"))
                .is_some_and(|ms| after.bool(&ms, member).is_some())
        };
        let listed = match dept {
            Some(d) => in_dept(d),
            None => depts
                .as_ref()
                .is_some_and(|ds| after.keys(ds).iter().any(|d| in_dept(d))),
        };
        if listed {
            return Err(format!("pinner {} may not be in a department", id.short()));
        }
    }
    Ok(())
}

/// A non-admin's change: renaming themselves, or redeeming one invite.
fn check_member_change(
    doc: &Automerge,
    change: &Change,
    author: MemberId,
    touched: &[Vec<String>],
) -> Result<(), String> {
    let me = author.to_string();
    let before = View::at(doc, change.deps());
    let mut joiner: Option<&str> = None;
    let mut redeemed: Option<&str> = None;
    let mut dept_adds: Vec<(&str, &str)> = Vec::new();
    for path in touched {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        match p.as_slice() {
            ["members", id, "name"] if *id == me => {}
            ["members", id, ..] if is_new_member(before, id) => {
                if joiner.is_some_and(|j| j != *id) {
                    return Err("a member may admit only one joiner per change".into());
                }
                joiner = Some(id);
            }
            ["invites", iid, "redeemed_by"] => redeemed = Some(iid),
            ["depts", did, "members", mid] => dept_adds.push((did, mid)),
            _ => return Err(format!("only an admin may change /{}", path.join("/"))),
        }
    }
    let Some(joiner) = joiner else {
        return if redeemed.is_some() || !dept_adds.is_empty() {
            Err("an invite redeemed or department changed without admitting anyone".into())
        } else {
            Ok(())
        };
    };
    let iid = redeemed.ok_or("a new member admitted without an invite")?;
    let invite = invite_in(before, iid).ok_or_else(|| format!("unknown invite {iid}"))?;
    if invite.redeemed_by.is_some() {
        return Err(format!("invite {iid} was already used"));
    }
    let after_heads = [change.hash()];
    let after = View::at(doc, &after_heads);
    let joiner_id: MemberId = joiner
        .parse()
        .map_err(|_| "a joiner id that is not a key")?;
    let record = member_in(after, &joiner_id).ok_or("a joiner record that does not parse")?;
    let used = invite_in(after, iid).and_then(|i| i.redeemed_by);
    if record.role != invite.role
        || record.invite.as_deref() != Some(iid)
        || used != Some(joiner_id)
        || record.joined_at > invite.expires_at
        || record.removed
    {
        return Err(format!("admission does not match invite {iid}"));
    }
    let allowed = invite.dept.as_deref();
    if dept_adds
        .iter()
        .any(|(d, m)| Some(*d) != allowed || *m != joiner)
    {
        return Err("a joiner added to a department their invite does not name".into());
    }
    Ok(())
}

fn is_new_member(before: View<'_>, id: &str) -> bool {
    let Some(members) = before.path(&["members"]) else {
        return false;
    };
    before.map(&members, id).is_none()
}

/// No department the change touched may exceed its capacity.
fn check_capacity(
    doc: &Automerge,
    heads: &[ChangeHash],
    tally: &mut Tally,
    touched: &[Vec<String>],
) -> Result<(), String> {
    let mut depts: Vec<&str> = touched
        .iter()
        .filter_map(|p| match p.as_slice() {
            [d, id, ..] if d == "depts" => Some(id.as_str()),
            _ => None,
        })
        .collect();
    depts.dedup();
    for d in depts {
        let n = tally.size(doc, heads, d);
        if n > DEPT_CAPACITY {
            return Err(format!(
                "department {d} would hold {n} members, more than {DEPT_CAPACITY}"
            ));
        }
    }
    Ok(())
}

/// Where the roster's objects sit, learnt once: an object's place (the map
/// and key that made it) never changes, so a long-lived map (`members`, a
/// department's member map) is located in the document once, not at every
/// change that writes into it. Objects a change makes itself are placed from
/// the change's own operations, without the document.
#[derive(Default)]
pub(crate) struct ObjectPaths {
    known: HashMap<String, Vec<String>>,
}

/// Past this many objects, the cache starts over (a roster has a few
/// thousand: one per member, department and invite).
const MAX_KNOWN_OBJECTS: usize = 100_000;

impl ObjectPaths {
    /// The document paths `change` writes, as keys from the root: one per
    /// operation, read from the change itself (its operations' objects are
    /// located in `doc`, where the change is applied). This costs the size
    /// of the change, where a document diff would cost the size of the
    /// document.
    pub(crate) fn touched(
        &mut self,
        doc: &Automerge,
        change: &Change,
    ) -> Result<Vec<Vec<String>>, String> {
        if self.known.len() > MAX_KNOWN_OBJECTS {
            self.known.clear();
        }
        let start = change.start_op().get();
        let actor = change.actor_id().to_hex_string();
        let mut touched = Vec::new();
        for (i, op) in change.decode().operations.into_iter().enumerate() {
            let obj = op.obj.to_string();
            let mut path = match self.known.get(&obj) {
                Some(p) => p.clone(),
                None => {
                    let p = crate::read::object_path(doc, &obj)
                        .ok_or("an operation on an unknown object")?;
                    self.known.insert(obj, p.clone());
                    p
                }
            };
            let key = match &op.key {
                Key::Map(k) => k.to_string(),
                Key::Seq(_) => "[sequence]".into(),
            };
            path.push(key);
            // An object this operation makes sits at the path it wrote
            // (a list element's index moves: those are looked up).
            if matches!(op.action, automerge::legacy::OpType::Make(_))
                && matches!(op.key, Key::Map(_))
            {
                self.known
                    .insert(format!("{}@{actor}", start + i as u64), path.clone());
            }
            touched.push(path);
        }
        Ok(touched)
    }
}

#[cfg(test)]
mod tests {
    use automerge::{ActorId, AutomergeError, ReadDoc};

    use super::*;
    use crate::roster::{write, Role};
    use crate::Signer;

    type Edit<'a> =
        dyn Fn(&mut automerge::transaction::Transaction<'_>) -> Result<(), AutomergeError> + 'a;

    /// Every operation's path, each object located in the document anew.
    fn looked_up(doc: &Automerge, change: &Change) -> Vec<Vec<String>> {
        change
            .decode()
            .operations
            .iter()
            .map(|op| {
                let mut path = crate::read::object_path(doc, &op.obj.to_string()).unwrap();
                path.push(match &op.key {
                    Key::Map(k) => k.to_string(),
                    Key::Seq(_) => "[sequence]".into(),
                });
                path
            })
            .collect()
    }

    #[test]
    fn remembered_places_are_the_places_the_document_gives() {
        let ids: Vec<MemberId> = (1..=6u8)
            .map(|i| Signer::from_secret([i; 32]).id())
            .collect();
        let mut doc = Automerge::new();
        doc.set_actor(ActorId::from(vec![7u8; 32]));
        let mut paths = ObjectPaths::default();
        let mut edits: Vec<Box<Edit<'_>>> = vec![
            Box::new(|tx| write::genesis(tx, "W", ids[0], "A", 0)),
            Box::new(|tx| write::create_dept(tx, "d", "D")),
        ];
        for (i, id) in ids.iter().enumerate().skip(1) {
            let id = *id;
            edits.push(Box::new(move |tx| {
                write::add_member(tx, id, &format!("M{i}"), Role::Member, 0, None)?;
                write::dept_add(tx, "d", id)
            }));
            edits.push(Box::new(move |tx| write::set_role(tx, id, Role::Admin)));
        }
        edits.push(Box::new(|tx| write::create_dept(tx, "e", "E")));
        edits.push(Box::new(|tx| write::dept_add(tx, "e", ids[2])));
        for edit in edits {
            let hash = doc
                .transact::<_, _, AutomergeError>(|tx| edit(tx))
                .unwrap()
                .hash
                .unwrap();
            let change = doc.get_change_by_hash(&hash).unwrap();
            assert_eq!(
                paths.touched(&doc, &change).unwrap(),
                looked_up(&doc, &change)
            );
        }
    }
}
