//! [`Tally`]: the few facts the roster rules read — an author's role, a
//! department's size — known at given heads and carried from a change to
//! the next instead of read again.
//!
//! Why: a fresh node checks every roster change against the roster at the
//! change's own dependencies and just after it. Reading those facts anew
//! cost, per change, a walk of the author's record and a count of the whole
//! department (O(members)): a 1,000-member roster's 2,001 changes took half
//! a second. The roster at heads `[c]` differs from the roster at `c`'s
//! dependencies only at the paths `c` wrote, so the facts known at the
//! dependencies are taken over and only what `c` wrote is read again.
//!
//! Every fact is the roster *at some heads*, and heads name one history:
//! a fact is a function of the heads alone, so verdicts stay the same
//! whatever the order or grouping in which changes arrive.

use std::collections::{HashMap, HashSet};

use automerge::{Automerge, Change, ChangeHash, ObjId};

use super::Role;
use crate::read::View;
use crate::MemberId;

/// How many heads a tally keeps facts for: one per branch being checked.
const KEPT: usize = 16;

/// Beyond this many members written in one department by one change, a
/// count of the department costs less than looking at each of them twice.
const MAX_ADJUSTED: usize = 32;

/// A member as the rules see them: role, and whether removed. `None`: no
/// record that parses.
type Standing = Option<(Role, bool)>;

/// What is known of the roster at one set of heads.
#[derive(Default)]
struct Facts {
    members: HashMap<MemberId, Standing>,
    depts: HashMap<String, Dept>,
}

/// A department's member map and how many it lists.
struct Dept {
    /// `None`: no such department (or no member map).
    members: Option<ObjId>,
    size: usize,
}

/// Facts about the roster at a few heads (see the module docs).
#[derive(Default)]
pub(crate) struct Tally {
    at: HashMap<Vec<ChangeHash>, Facts>,
    /// Where the objects changes write sit (heads play no part in that).
    pub(crate) paths: super::rules::ObjectPaths,
}

impl Tally {
    /// `id`'s role and removal at `heads`.
    pub(crate) fn standing(
        &mut self,
        doc: &Automerge,
        heads: &[ChangeHash],
        id: &MemberId,
    ) -> Standing {
        let facts = self.facts(heads);
        *facts
            .members
            .entry(*id)
            .or_insert_with(|| standing_in(View::at(doc, heads), id))
    }

    /// How many members department `dept` holds at `heads`.
    pub(crate) fn size(&mut self, doc: &Automerge, heads: &[ChangeHash], dept: &str) -> usize {
        let facts = self.facts(heads);
        if let Some(d) = facts.depts.get(dept) {
            return d.size;
        }
        let v = View::at(doc, heads);
        let members = v.path(&["depts", dept, "members"]);
        let size = members.as_ref().map_or(0, |m| v.keys(m).len());
        facts.depts.insert(dept.to_owned(), Dept { members, size });
        size
    }

    /// Takes the facts known at `change`'s dependencies over to the heads
    /// `[change]`, dropping or adjusting those it wrote (`touched`: its
    /// paths). Call before asking about `[change]`; `change` is applied to
    /// `doc`.
    pub(crate) fn advance(&mut self, doc: &Automerge, change: &Change, touched: &[Vec<String>]) {
        let Some(mut facts) = self.at.remove(&key(change.deps())) else {
            return;
        };
        let mut adjust: HashMap<&str, HashSet<&str>> = HashMap::new();
        for path in touched {
            let p: Vec<&str> = path.iter().map(String::as_str).collect();
            match p.as_slice() {
                ["members"] => facts.members.clear(),
                ["members", id, ..] => {
                    if let Ok(id) = id.parse() {
                        facts.members.remove(&id);
                    }
                }
                ["depts"] => facts.depts.clear(),
                ["depts", d] | ["depts", d, "members"] => drop(facts.depts.remove(*d)),
                ["depts", d, "members", m, ..] => drop(adjust.entry(d).or_default().insert(m)),
                _ => {}
            }
        }
        let after = [change.hash()];
        let (before, after) = (View::at(doc, change.deps()), View::at(doc, &after));
        for (dept, written) in adjust {
            let Some(d) = facts.depts.get_mut(dept) else {
                continue;
            };
            if written.len() > MAX_ADJUSTED {
                facts.depts.remove(dept);
                continue;
            }
            // The change wrote no path above the member map, so the map
            // found at its dependencies is the one found after it.
            let Some(obj) = &d.members else { continue };
            for m in written {
                let (was, is) = (before.has(obj, m), after.has(obj, m));
                d.size = (d.size + usize::from(is)).saturating_sub(usize::from(was));
            }
        }
        self.keep(vec![change.hash()], facts);
    }

    fn facts(&mut self, heads: &[ChangeHash]) -> &mut Facts {
        let key = key(heads);
        if !self.at.contains_key(&key) {
            self.keep(key.clone(), Facts::default());
        }
        self.at.entry(key).or_default()
    }

    fn keep(&mut self, heads: Vec<ChangeHash>, facts: Facts) {
        if self.at.len() >= KEPT && !self.at.contains_key(&heads) {
            // Facts are a cache: any can go, and will be read again.
            self.at.clear();
        }
        self.at.insert(heads, facts);
    }
}

fn key(heads: &[ChangeHash]) -> Vec<ChangeHash> {
    let mut key = heads.to_vec();
    key.sort();
    key
}

/// `id`'s role and removal at `v`: `None` where
/// [`member_in`](super::view::member_in) finds no record (one without a
/// name, or with a role that does not parse), without reading the rest.
fn standing_in(v: View<'_>, id: &MemberId) -> Standing {
    let record = v.map(&v.path(&["members"])?, &id.to_string())?;
    let role = Role::parse(&v.str(&record, "role")?)?;
    v.str(&record, "name")?;
    Some((role, v.bool(&record, "removed").unwrap_or(false)))
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, ReadDoc};
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::roster::{write, ObjectPaths};
    use crate::Signer;

    /// Department `dept`'s members at `heads`, counted anew.
    fn counted(doc: &Automerge, heads: &[ChangeHash], dept: &str) -> usize {
        let v = View::at(doc, heads);
        v.path(&["depts", dept, "members"])
            .map_or(0, |m| v.keys(&m).len())
    }

    /// One random roster edit: the writes that move what a tally holds.
    fn edit(
        tx: &mut automerge::transaction::Transaction<'_>,
        rng: &mut impl Rng,
        ids: &[MemberId],
    ) {
        let id = ids[rng.gen_range(0..ids.len())];
        let dept = ["a", "b"][rng.gen_range(0..2)];
        let roles = [Role::Admin, Role::Member, Role::Pinner];
        let _ = match rng.gen_range(0..8) {
            0 => write::add_member(tx, id, "M", roles[rng.gen_range(0..3)], 0, None),
            1 => write::set_role(tx, id, roles[rng.gen_range(0..3)]),
            2 => write::remove_member(tx, id),
            3 => write::create_dept(tx, dept, "D"),
            4 => write::dept_remove(tx, dept, id),
            // Many members at once: past what a tally adjusts one by one.
            5 => ids.iter().try_for_each(|m| write::dept_add(tx, dept, *m)),
            _ => write::dept_add(tx, dept, id),
        };
    }

    #[test]
    fn carried_facts_equal_fresh_reads_across_branches() {
        let ids: Vec<MemberId> = (1..=40u8)
            .map(|i| Signer::from_secret([i; 32]).id())
            .collect();
        for seed in 0..10u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let mut doc = Automerge::new();
            doc.set_actor(ActorId::from(vec![0u8; 32]));
            doc.transact::<_, _, automerge::AutomergeError>(|tx| {
                write::genesis(tx, "W", ids[0], "A", 0)?;
                write::create_dept(tx, "a", "A")?;
                write::create_dept(tx, "b", "B")
            })
            .unwrap();
            // A second writer on a fork: its changes are concurrent, and a
            // merge makes a change with two dependencies.
            let mut other = doc.fork();
            other.set_actor(ActorId::from(vec![1u8; 32]));
            let mut tally = Tally::default();
            for step in 0..120 {
                let writer = if rng.gen_bool(0.2) {
                    &mut other
                } else {
                    &mut doc
                };
                let Some(hash) = writer
                    .transact::<_, _, automerge::AutomergeError>(|tx| {
                        edit(tx, &mut rng, &ids);
                        tx.put(automerge::ROOT, "step", step as i64)
                    })
                    .unwrap()
                    .hash
                else {
                    continue;
                };
                let change = writer.get_change_by_hash(&hash).unwrap();
                if rng.gen_bool(0.1) {
                    doc.merge(&mut other).unwrap();
                    other.merge(&mut doc).unwrap();
                }
                let am = if doc.get_change_by_hash(&hash).is_some() {
                    &doc
                } else {
                    &other
                };
                // What the rules do: ask at the dependencies, advance, ask after.
                for id in &ids[..3] {
                    tally.standing(am, change.deps(), id);
                }
                for d in ["a", "b"] {
                    tally.size(am, change.deps(), d);
                }
                let touched = ObjectPaths::default().touched(am, &change).unwrap();
                tally.advance(am, &change, &touched);
                let after = [hash];
                for d in ["a", "b"] {
                    assert_eq!(
                        tally.size(am, &after, d),
                        counted(am, &after, d),
                        "seed {seed}"
                    );
                }
                for id in &ids {
                    let fresh = crate::roster::view::member_in(View::at(am, &after), id)
                        .map(|m| (m.role, m.removed));
                    assert_eq!(tally.standing(am, &after, id), fresh, "seed {seed}");
                }
            }
        }
    }
}
