//! Citations: the roster a department document's change was written under.
//!
//! A change of a feed, conversation, library or the pin ledger names the
//! roster heads its author held, in the change's message. The message is part
//! of the change's bytes, so of its hash, so of what the author signs: nobody
//! can re-cite a change without re-signing it. Every node judges the change
//! against the roster *at those heads* — the same roster everywhere, whatever
//! the order of arrival — and a change whose cited heads are not here yet
//! waits for them, as a change with missing dependencies does.
//!
//! Changes written before citations existed ("legacy") carry no message; see
//! [`RosterBook::ever`] for how they are judged.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use automerge::{Automerge, Change, ChangeHash};

use crate::roster::{Department, Roster};
use crate::MemberId;

/// What a citation's message starts with.
const PREFIX: &str = "meshwork/roster ";

/// The most heads a change may cite: a roster has as many heads as it has
/// concurrent branches, a handful at most.
pub const MAX_CITED_HEADS: usize = 32;

/// How many rosters-at-heads a book keeps read (each is a full typed roster).
const SNAPSHOTS: usize = 32;

/// The message that cites `heads` (public for tests that forge changes).
pub fn message(heads: &[ChangeHash]) -> String {
    let mut heads = heads.to_vec();
    heads.sort();
    let hex: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
    format!("{PREFIX}{}", hex.join(","))
}

/// The roster heads `change` cites: `Ok(None)` for a legacy change without a
/// message, `Err` for a message that is not a well-formed citation.
pub(crate) fn cited(change: &Change) -> Result<Option<Vec<ChangeHash>>, String> {
    let Some(msg) = change.message() else {
        return Ok(None);
    };
    let list = msg
        .strip_prefix(PREFIX)
        .ok_or("a change message that is not a roster citation")?;
    let mut heads = Vec::new();
    for hex in list.split(',') {
        let bytes: [u8; 32] = hex::decode(hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("a roster citation that is not a list of change hashes")?;
        heads.push(ChangeHash(bytes));
    }
    if heads.is_empty() || heads.len() > MAX_CITED_HEADS {
        return Err(format!("a roster citation of {} heads", heads.len()));
    }
    heads.sort();
    heads.dedup();
    Ok(Some(heads))
}

/// Whether every one of `heads` is in `doc`.
fn holds(doc: &Automerge, heads: &[ChangeHash]) -> bool {
    heads
        .iter()
        .all(|h| doc.get_change_meta_by_hash(h).is_some())
}

/// The roster as department documents' changes are judged by it: either
/// the roster document itself with a [`RosterBook`] of typed rosters
/// already read at cited heads, or ([`RosterAt::cited_by`]) just the
/// rosters some changes cite, read beforehand — what lets a node judge a
/// batch without holding the roster.
pub struct RosterAt<'a> {
    source: Source<'a>,
}

enum Source<'a> {
    Live {
        doc: &'a Automerge,
        book: &'a mut RosterBook,
    },
    /// The rosters at the heads some changes cite (those the roster held
    /// when they were read), and the one legacy changes are judged by.
    Read {
        rosters: HashMap<Vec<ChangeHash>, Arc<Roster>>,
        ever: Option<Arc<Roster>>,
    },
}

impl<'a> RosterAt<'a> {
    /// Judges against `roster` (the workspace's roster document), reading
    /// through `book`.
    pub fn new(roster: &'a Automerge, book: &'a mut RosterBook) -> Self {
        Self {
            source: Source::Live { doc: roster, book },
        }
    }

    /// The rosters that `changes` cite, read now: a change citing heads
    /// the roster does not hold yet finds none and waits, as it would
    /// have; the roster legacy changes are judged by is read if one of
    /// them is legacy. Judging against this gives the verdicts judging
    /// against `self` would.
    pub(crate) fn cited_by<'c>(
        &mut self,
        changes: impl IntoIterator<Item = &'c Change>,
    ) -> RosterAt<'static> {
        let mut rosters = HashMap::new();
        let mut ever = None;
        for change in changes {
            match cited(change) {
                Ok(Some(heads)) => {
                    if let Entry::Vacant(slot) = rosters.entry(heads) {
                        if let Some(r) = self.at(slot.key()) {
                            slot.insert(r);
                        }
                    }
                }
                Ok(None) if ever.is_none() => ever = Some(self.ever()),
                Ok(None) | Err(_) => {}
            }
        }
        RosterAt {
            source: Source::Read { rosters, ever },
        }
    }

    /// The heads a local change cites: the roster as the author holds it.
    pub(crate) fn heads(&self) -> Vec<ChangeHash> {
        match &self.source {
            Source::Live { doc, .. } => doc.get_heads(),
            // Rosters read ahead judge a peer's changes, never make one: a
            // change citing no heads is refused, its own maker's included.
            Source::Read { .. } => Vec::new(),
        }
    }

    /// Whether every one of `heads` is in the roster.
    pub(crate) fn holds(&self, heads: &[ChangeHash]) -> bool {
        match &self.source {
            Source::Live { doc, .. } => holds(doc, heads),
            Source::Read { rosters, .. } => rosters.contains_key(heads),
        }
    }

    /// The roster at `heads`, or `None` while some of them are not here.
    pub(crate) fn at(&mut self, heads: &[ChangeHash]) -> Option<Arc<Roster>> {
        match &mut self.source {
            Source::Live { doc, book } => book.at(doc, heads),
            Source::Read { rosters, .. } => rosters.get(heads).cloned(),
        }
    }

    /// The roster a legacy (uncited) change is judged against.
    pub(crate) fn ever(&mut self) -> Arc<Roster> {
        match &mut self.source {
            Source::Live { doc, book } => book.ever(doc),
            // Read ahead whenever a legacy change was among those cited;
            // an empty roster (which allows nothing) otherwise.
            Source::Read { ever, .. } => ever.clone().unwrap_or_default(),
        }
    }
}

/// Typed rosters read at the heads changes cite. Changes cite few distinct
/// heads (the roster moves rarely next to a feed), so a small cache spares a
/// full read per change.
#[derive(Default)]
pub struct RosterBook {
    snapshots: HashMap<Vec<ChangeHash>, Arc<Roster>>,
    order: VecDeque<Vec<ChangeHash>>,
    ever: Option<(Vec<ChangeHash>, Arc<Roster>)>,
}

impl RosterBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    fn at(&mut self, doc: &Automerge, heads: &[ChangeHash]) -> Option<Arc<Roster>> {
        if let Some(r) = self.snapshots.get(heads) {
            return Some(r.clone());
        }
        if !holds(doc, heads) {
            return None;
        }
        let roster = Arc::new(Roster::read_at(doc, heads));
        if self.order.len() >= SNAPSHOTS {
            if let Some(old) = self.order.pop_front() {
                self.snapshots.remove(&old);
            }
        }
        self.order.push_back(heads.to_vec());
        self.snapshots.insert(heads.to_vec(), roster.clone());
        Some(roster)
    }

    /// The roster legacy changes are judged against: everyone the roster's
    /// history ever admitted, as active members with their current role, in
    /// every department the history ever put them in.
    ///
    /// This predicate only grows with the roster, so two nodes that hold the
    /// same roster reach the same verdict. Legacy changes are only accepted
    /// where no cited change precedes them (see `signed.rs`), so a member
    /// removed today cannot use it to write after a citing change.
    fn ever(&mut self, doc: &Automerge) -> Arc<Roster> {
        let heads = doc.get_heads();
        if let Some((h, r)) = &self.ever {
            if *h == heads {
                return r.clone();
            }
        }
        let mut roster = Roster::read(doc);
        for m in &mut roster.members {
            m.removed = false;
        }
        let mut ever_in: HashMap<String, HashSet<MemberId>> = HashMap::new();
        let mut places = crate::roster::ObjectPaths::default();
        for change in doc.get_changes(&[]) {
            let Ok(paths) = places.touched(doc, &change) else {
                continue;
            };
            for path in paths {
                if let [d, dept, m, member] = path.as_slice() {
                    if d == "depts" && m == "members" {
                        if let Ok(id) = member.parse() {
                            ever_in.entry(dept.clone()).or_default().insert(id);
                        }
                    }
                }
            }
        }
        for Department { id, members, .. } in &mut roster.depts {
            if let Some(ever) = ever_in.remove(id) {
                members.extend(ever);
                members.sort();
                members.dedup();
            }
        }
        let roster = Arc::new(roster);
        self.ever = Some((heads, roster.clone()));
        roster
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change with `message`, on a document of its own.
    fn change_with(message: &str) -> Change {
        let mut doc = Automerge::new();
        let hash = doc
            .transact_with::<_, _, automerge::AutomergeError, _>(
                |_| automerge::transaction::CommitOptions::default().with_message(message),
                |tx| {
                    use automerge::transaction::Transactable;
                    tx.put(automerge::ROOT, "k", 1)?;
                    Ok(())
                },
            )
            .unwrap()
            .hash
            .unwrap();
        automerge::ReadDoc::get_change_by_hash(&doc, &hash).unwrap()
    }

    #[test]
    fn a_citation_round_trips_sorted() {
        let a = ChangeHash([2; 32]);
        let b = ChangeHash([1; 32]);
        let change = change_with(&message(&[a, b]));
        assert_eq!(cited(&change).unwrap(), Some(vec![b, a]));
    }

    #[test]
    fn malformed_citations_are_errors() {
        for msg in [
            "hello",
            "meshwork/roster ",
            "meshwork/roster zz",
            "meshwork/roster 0101",
        ] {
            assert!(cited(&change_with(msg)).is_err(), "{msg:?} was accepted");
        }
    }
}
