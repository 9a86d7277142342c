//! [`RosterCache`]: the typed roster kept current as changes arrive, by
//! re-reading only the records those changes wrote.
//!
//! Reading a whole 1,000-member roster costs milliseconds; most changes touch
//! one member, one department or one invite.

use automerge::ChangeHash;

use super::rules::ObjectPaths;
use super::view::{dept_in, invite_in, member_in, policy_in};
use super::Roster;
use crate::read::View;
use crate::SignedDoc;

/// Beyond this many new changes, a full read is cheaper than patching.
const MAX_PATCHED_CHANGES: usize = 64;

/// A typed roster and the heads it was read at.
#[derive(Default)]
pub struct RosterCache {
    heads: Vec<ChangeHash>,
    roster: Roster,
    read: bool,
    paths: ObjectPaths,
}

impl RosterCache {
    /// The roster of `doc` as it is now.
    pub fn get(&mut self, doc: &SignedDoc) -> &Roster {
        let heads = doc.heads();
        if self.read && heads == self.heads {
            return &self.roster;
        }
        if !(self.read && self.patch(doc, &heads)) {
            self.roster = Roster::read(doc.doc());
        }
        self.heads = heads;
        self.read = true;
        &self.roster
    }

    /// Re-reads the records the changes since the cached heads wrote;
    /// `false` when that is not possible and a full read is needed.
    fn patch(&mut self, doc: &SignedDoc, heads: &[ChangeHash]) -> bool {
        let am = doc.doc();
        if self
            .heads
            .iter()
            .any(|h| am.get_change_meta_by_hash(h).is_none())
        {
            return false;
        }
        let new = am.get_changes(&self.heads);
        if new.len() > MAX_PATCHED_CHANGES {
            return false;
        }
        let view = View::at(am, heads);
        for change in &new {
            let Ok(paths) = self.paths.touched(am, change) else {
                return false;
            };
            for path in paths {
                let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                match keys.as_slice() {
                    ["members", id, ..] => {
                        let Ok(id) = id.parse() else { return false };
                        let members = &mut self.roster.members;
                        match (
                            members.binary_search_by_key(&id, |m| m.id),
                            member_in(view, &id),
                        ) {
                            (Ok(i), Some(m)) => members[i] = m,
                            (Err(i), Some(m)) => members.insert(i, m),
                            (Ok(i), None) => drop(members.remove(i)),
                            (Err(_), None) => {}
                        }
                    }
                    ["depts", id, ..] => {
                        let depts = &mut self.roster.depts;
                        depts.retain(|d| d.id != *id);
                        depts.extend(dept_in(view, id));
                        depts.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
                    }
                    ["invites", id, ..] => {
                        let invites = &mut self.roster.invites;
                        invites.retain(|i| i.id != *id);
                        invites.extend(invite_in(view, id));
                        invites.sort_by(|a, b| a.id.cmp(&b.id));
                    }
                    ["policy", ..] => self.roster.policy = policy_in(view),
                    ["name"] => {
                        self.roster.name = view.str(&automerge::ROOT, "name").unwrap_or_default()
                    }
                    _ => return false,
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::{write, Invite, Role};
    use crate::Signer;

    #[test]
    fn a_patched_roster_equals_a_fresh_read() {
        let ada = Signer::from_secret([1; 32]);
        let (mut doc, _) = SignedDoc::create_roster(&ada, "Acme", "Ada", 0).unwrap();
        let mut cache = RosterCache::default();
        let ids: Vec<_> = (2..6u8)
            .map(|i| Signer::from_secret([i; 32]).id())
            .collect();
        let invite = Invite {
            id: "i1".into(),
            secret_hash: Invite::hash_secret(b"s"),
            role: Role::Member,
            dept: None,
            expires_at: 10,
            created_by: ada.id(),
            redeemed_by: None,
        };
        type Edit = Box<
            dyn Fn(
                &mut automerge::transaction::Transaction<'_>,
            ) -> Result<(), automerge::AutomergeError>,
        >;
        let (a, b) = (ids[0], ids[1]);
        let edits: Vec<Edit> = vec![
            Box::new(move |tx| write::add_member(tx, a, "A", Role::Member, 1, None)),
            Box::new(|tx| write::create_dept(tx, "d1", "Research")),
            Box::new(move |tx| write::dept_add(tx, "d1", a)),
            Box::new(move |tx| write::add_member(tx, b, "B", Role::Member, 1, None)),
            Box::new(|tx| write::rename_dept(tx, "d1", "R&D")),
            Box::new(move |tx| write::set_role(tx, b, Role::Admin)),
            Box::new(move |tx| write::remove_member(tx, a)),
            Box::new(move |tx| write::create_invite(tx, &invite)),
            Box::new(|tx| {
                write::set_policy(
                    tx,
                    &crate::roster::PinPolicy {
                        retention_ms: 96 * 3600 * 1000,
                        replicas: 3,
                    },
                )
            }),
        ];
        for edit in edits {
            doc.change(&ada, 1, |tx| edit(tx)).unwrap();
            assert_eq!(*cache.get(&doc), Roster::read(doc.doc()));
        }
    }
}
