//! The pin planner: what a pass of [`super::Node::reconcile_pins`] owes
//! the pinning promise, decided from plain values with no IO and no clock
//! of its own. The pass gathers a [`World`] (the ledger, what the store
//! holds, who is in sight, the time), asks [`plan`] and [`collection`], and
//! carries out their answers: fetches, refusals, step-downs, deletions and
//! releases. Unit tests (below) and simulations drive it the same way.

use std::collections::{HashMap, HashSet};

use meshwork_blobs::BlobHash;
use meshwork_crdt::pins::{Commitment, PinRequest};
use meshwork_crdt::roster::{Role, Roster};
use meshwork_crdt::{MemberId, Millis};

use super::audit::AuditBook;
use super::ledger::{Ledger, SKEW_MARGIN_MS};

/// How long a member ranked just after the ones who should volunteer for a
/// blob below its replica target waits for them before stepping in itself
/// (the next one waits twice as long, and so on).
pub const VOLUNTEER_STAGGER_MS: Millis = 2 * 60 * 1000;

/// What this node does for the promise.
#[derive(Clone, Copy, Debug)]
pub(super) enum Duty {
    /// A pin node: keeps every live request, within its quota (bytes).
    PinNode { quota: u64 },
    /// A member: keeps what it shared or pinned, and volunteers (if it
    /// may) while a blob of its department is below the replica target.
    Member { volunteer: bool },
}

/// A file in one of this member's departments' libraries.
#[derive(Clone, Debug)]
pub(super) struct MyFile {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) dept: String,
    pub(super) holders: Vec<MemberId>,
}

/// What this node sees of the others at `now`.
pub(super) struct Sight<'a> {
    pub(super) me: MemberId,
    pub(super) now: Millis,
    /// Members out of sight for longer than [`super::pins::LOST_AFTER_MS`]
    /// (or never seen).
    pub(super) lost: HashSet<MemberId>,
    /// Members connected now.
    pub(super) connected: HashSet<MemberId>,
    /// What this node's audits found.
    pub(super) audits: &'a AuditBook,
}

impl Sight<'_> {
    /// How many of `commits` to `blob` count: unexpired, by an active
    /// member, not lost, not failing its audit here, `except` left out.
    pub(super) fn counting(
        &self,
        roster: &Roster,
        blob: &str,
        commits: &[Commitment],
        except: Option<&MemberId>,
    ) -> usize {
        commits
            .iter()
            .filter(|c| Some(&c.member) != except)
            .filter(|c| {
                c.until.saturating_add(SKEW_MARGIN_MS) >= self.now && roster.is_active(&c.member)
            })
            .filter(|c| c.member == self.me || !self.lost.contains(&c.member))
            .filter(|c| !self.audits.has_failed(&c.member, blob))
            .count()
    }
}

/// Everything one pass decides on.
pub(super) struct World<'a> {
    pub(super) sight: &'a Sight<'a>,
    pub(super) duty: Duty,
    pub(super) ledger: &'a Ledger,
    /// Files of this member's departments, by blob.
    pub(super) files: &'a HashMap<String, MyFile>,
    /// Complete blobs in the store.
    pub(super) here: &'a HashSet<String>,
    /// Bytes already on disk of downloads that never finished, by blob.
    pub(super) partial: &'a HashMap<String, u64>,
    /// Blobs whose local pin is a volunteer's (not the member's own).
    pub(super) volunteered: &'a HashSet<String>,
    /// Bytes new fetches may take before the disk's reserve.
    pub(super) room: u64,
}

/// Why a pin node turns a request down (other nodes take it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Its quota is taken: `taken` bytes of `quota`.
    Quota { taken: u64, quota: u64 },
    /// The disk keeps only `room` bytes for new blobs.
    Disk { room: u64 },
}

/// What [`plan`] decided.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Volunteered copies to let go: pin nodes alone meet the target.
    pub(super) step_down: Vec<PinRequest>,
    /// Blobs to fetch and commit to, each with where it may come from.
    pub(super) fetch: Vec<(PinRequest, Vec<MemberId>)>,
    /// Requests a pin node turns down, and why.
    pub(super) refused: Vec<(PinRequest, Refusal)>,
    /// Requests a member would volunteer for but has no disk for.
    pub(super) no_room: Vec<PinRequest>,
    /// Blobs this node committed to that are no longer here (fetched again).
    pub(super) missing: Vec<String>,
    /// Bytes of live blobs committed to and here.
    pub(super) kept_bytes: u64,
}

/// Decides what this node fetches, refuses and lets go of for the live
/// requests. `below_since` (blob → when this node first saw it below the
/// replica target) is carried from pass to pass: it staggers volunteers.
pub(super) fn plan(w: &World<'_>, below_since: &mut HashMap<String, Millis>) -> Plan {
    let (me, now) = (w.sight.me, w.sight.now);
    let ledger = w.ledger;
    let k = ledger.roster.policy.replicas as usize;
    let live = |r: &&PinRequest| r.until.saturating_add(SKEW_MARGIN_MS) >= now;
    // What is remembered follows the live requests, not every blob seen.
    let requested: HashSet<&str> = ledger
        .requests
        .iter()
        .filter(live)
        .map(|r| r.blob.as_str())
        .collect();
    below_since.retain(|blob, _| requested.contains(blob.as_str()));
    let commits_of = |r: &PinRequest| ledger.commits.get(&r.blob).map_or(&[][..], Vec::as_slice);
    let committed = |r: &PinRequest| {
        commits_of(r)
            .iter()
            .any(|c| c.member == me && c.until >= r.until)
    };
    // Kept: committed to, and still here. A committed blob that has gone
    // (a disk replaced, a file deleted) is fetched again.
    let kept = |r: &PinRequest| committed(r) && w.here.contains(&r.blob);

    // What this node keeps counts against its quota before any new
    // request does, whatever order the requests come in.
    let mut out = Plan {
        kept_bytes: ledger
            .requests
            .iter()
            .filter(live)
            .filter(|r| kept(r))
            .map(|r| r.size)
            .sum(),
        ..Plan::default()
    };
    // Bytes taken on in this pass, whether or not their fetch succeeds
    // (what quota decisions count), and bytes new fetches will write (none
    // may eat into the disk's reserve).
    let mut taken = out.kept_bytes;
    let mut fresh: u64 = 0;
    for r in ledger.requests.iter().filter(live) {
        let member = matches!(w.duty, Duty::Member { .. });
        if member
            && committed(r)
            && w.volunteered.contains(&r.blob)
            && pinners_suffice(w.sight, ledger, r, k)
        {
            out.step_down.push(r.clone());
            continue;
        }
        if kept(r) {
            continue;
        }
        if committed(r) {
            out.missing.push(r.blob.clone());
        }
        let theirs = commits_of(r);
        let take = match w.duty {
            Duty::PinNode { quota } if taken.saturating_add(r.size) > quota => {
                out.refused
                    .push((r.clone(), Refusal::Quota { taken, quota }));
                continue;
            }
            Duty::PinNode { .. } => true,
            // A promise this node made stands, whatever the ranking.
            Duty::Member { .. } if committed(r) => true,
            Duty::Member { volunteer } => {
                volunteer && should_volunteer(w.sight, &ledger.roster, r, theirs, k, below_since)
            }
        };
        if !take {
            continue;
        }
        // What is here already (fetched by `get`, or before a crash cut a
        // pass short) needs no room.
        let needs = if w.here.contains(&r.blob) {
            0
        } else {
            meshwork_blobs::room_needed(r.size, w.partial.get(&r.blob).copied().unwrap_or(0))
        };
        if fresh.saturating_add(needs) > w.room {
            match w.duty {
                Duty::PinNode { .. } => out
                    .refused
                    .push((r.clone(), Refusal::Disk { room: w.room })),
                Duty::Member { .. } => out.no_room.push(r.clone()),
            }
            continue;
        }
        taken += r.size;
        fresh = fresh.saturating_add(needs);
        let sources = sources_for_pin(r, theirs, w.files.get(&r.blob));
        out.fetch.push((r.clone(), sources));
    }
    out
}

/// Whether this member should volunteer for `r`: it is in the request's
/// department (and not its uploader, whose departure is what the promise
/// is about), fewer than `k` pinners count, and it ranks among the first
/// missing ones of the department's members in sight by rendezvous hash of
/// (blob, member); each next in rank steps in one
/// [`VOLUNTEER_STAGGER_MS`] after the one before it.
fn should_volunteer(
    sight: &Sight<'_>,
    roster: &Roster,
    r: &PinRequest,
    commits: &[Commitment],
    k: usize,
    below_since: &mut HashMap<String, Millis>,
) -> bool {
    let (me, now) = (sight.me, sight.now);
    let Some(dept) = roster.dept(&r.dept) else {
        return false;
    };
    if me == r.by || !dept.members.contains(&me) {
        return false;
    }
    let counting = sight.counting(roster, &r.blob, commits, Some(&me));
    if counting >= k {
        below_since.remove(&r.blob);
        return false;
    }
    let since = *below_since.entry(r.blob.clone()).or_insert(now);
    let committed: HashSet<MemberId> = commits.iter().map(|c| c.member).collect();
    let mut candidates: Vec<(blake3::Hash, MemberId)> = dept
        .members
        .iter()
        .filter(|m| **m != r.by && !committed.contains(m) || **m == me)
        .filter(|m| {
            roster
                .member(m)
                .is_some_and(|m| !m.removed && m.role != Role::Pinner)
        })
        .filter(|m| **m == me || sight.connected.contains(m))
        .map(|m| {
            let mut h = blake3::Hasher::new();
            h.update(r.blob.as_bytes());
            h.update(m.as_bytes());
            (h.finalize(), *m)
        })
        .collect();
    candidates.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let Some(rank) = candidates.iter().position(|(_, m)| *m == me) else {
        return false;
    };
    // The first `missing` in rank volunteer at once. Should they not (they
    // run `--no-volunteer`, or cannot fetch), each next one steps in one
    // stagger later than the one before it.
    let missing = k - counting;
    let late = (rank + 1).saturating_sub(missing) as Millis;
    now.saturating_sub(since) >= late.saturating_mul(VOLUNTEER_STAGGER_MS)
}

/// Whether pin nodes alone meet the replica target for `r`: then a member
/// who volunteered for it may let its copy go (volunteers fill in while pin
/// nodes are missing; they are laptops, not storage).
fn pinners_suffice(sight: &Sight<'_>, ledger: &Ledger, r: &PinRequest, k: usize) -> bool {
    let pin_nodes: Vec<Commitment> = ledger
        .commits
        .get(&r.blob)
        .into_iter()
        .flatten()
        .filter(|c| c.until >= r.until)
        .filter(|c| {
            ledger
                .roster
                .member(&c.member)
                .is_some_and(|m| m.role == Role::Pinner)
        })
        .copied()
        .collect();
    sight.counting(&ledger.roster, &r.blob, &pin_nodes, None) >= k
}

/// Where the blob of `r` may come from: its pinners, its uploader and (if
/// this node sees the library) the file's holders.
pub(super) fn sources_for_pin(
    r: &PinRequest,
    commits: &[Commitment],
    file: Option<&MyFile>,
) -> Vec<MemberId> {
    let mut out: Vec<MemberId> = commits.iter().map(|c| c.member).collect();
    out.push(r.by);
    out.extend(file.into_iter().flat_map(|f| f.holders.iter().copied()));
    out.sort();
    out.dedup();
    out
}

/// What [`collection`] decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Collection {
    /// Stored blobs past every deadline that keeps them: to delete.
    pub(super) delete: Vec<BlobHash>,
    /// Local pins whose time is over (those of deleted blobs included).
    pub(super) unpin: Vec<String>,
    /// Files this member no longer holds, by department: one library
    /// change per department.
    pub(super) withdraw: HashMap<String, Vec<String>>,
    /// Blobs whose commitment by this node is over: released in the ledger.
    pub(super) release: Vec<String>,
}

/// Decides which stored blobs (complete, or downloads that never finished)
/// are past their deadline — the later of the local pin's and the
/// request's, plus [`SKEW_MARGIN_MS`] — and what goes with them. A blob
/// that nothing gives a deadline is kept. (Whom this node sees plays no
/// part: only deadlines, this node's `me`, and `now`.)
pub(super) fn collection(
    me: MemberId,
    now: Millis,
    ledger: &Ledger,
    files: &HashMap<String, MyFile>,
    local: &HashMap<String, Millis>,
    stored: &[BlobHash],
) -> Collection {
    let over = |until: Millis| until.saturating_add(SKEW_MARGIN_MS) < now;
    let requested: HashMap<&str, &PinRequest> = ledger
        .requests
        .iter()
        .map(|r| (r.blob.as_str(), r))
        .collect();
    let expired = |blob: &str| match (local.get(blob), requested.get(blob)) {
        (None, None) => false,
        (l, r) => over(l.copied().unwrap_or(0).max(r.map_or(0, |r| r.until))),
    };
    let mut out = Collection::default();
    let mut unpin = std::collections::BTreeSet::new();
    for hash in stored {
        let blob = hash.to_hex();
        if !expired(&blob) {
            continue;
        }
        out.delete.push(*hash);
        if let Some(f) = files.get(&blob).filter(|f| f.holders.contains(&me)) {
            out.withdraw
                .entry(f.dept.clone())
                .or_default()
                .push(f.id.clone());
        }
        unpin.insert(blob);
    }
    unpin.extend(
        local
            .iter()
            .filter(|(_, until)| over(**until))
            .map(|(blob, _)| blob.clone()),
    );
    out.unpin = unpin.into_iter().collect();
    for (blob, commits) in ledger.commits.iter() {
        if commits.iter().any(|c| c.member == me && over(c.until)) {
            out.release.push(blob.clone());
        }
    }
    out.release.sort();
    out
}

#[cfg(test)]
mod tests {
    //! The planner on hand-built worlds: quotas, disk room, volunteers by
    //! rank and stagger, lost and failing pinners, stepping down, and what
    //! a collection takes away.

    use std::sync::Arc;

    use meshwork_crdt::roster::{Department, Member, PinPolicy};

    use super::super::audit::Answer;
    use super::*;

    const DAY: Millis = 24 * 3600 * 1000;
    const NOW: Millis = 100 * DAY;
    const LATER: Millis = NOW + 3 * DAY;

    fn id(n: u8) -> MemberId {
        MemberId::from_bytes(&[n; 32]).unwrap()
    }

    fn blob(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn request(n: u8, size: u64, until: Millis, by: u8) -> PinRequest {
        PinRequest {
            blob: blob(n),
            dept: "d".into(),
            size,
            until,
            by: id(by),
        }
    }

    /// A workspace of `members` (number, role), the ones of `dept` in
    /// department "d", with replica target `k`.
    fn roster(members: &[(u8, Role)], dept: &[u8], k: u32) -> Roster {
        let mut all: Vec<Member> = members
            .iter()
            .map(|&(n, role)| Member {
                id: id(n),
                name: format!("m{n}"),
                role,
                joined_at: 0,
                removed: false,
                invite: None,
            })
            .collect();
        all.sort_by_key(|m| m.id);
        let mut in_dept: Vec<MemberId> = dept.iter().map(|&n| id(n)).collect();
        in_dept.sort();
        Roster {
            name: "w".into(),
            members: all,
            depts: vec![Department {
                id: "d".into(),
                name: "D".into(),
                members: in_dept,
            }],
            invites: Vec::new(),
            policy: PinPolicy {
                replicas: k,
                ..PinPolicy::default()
            },
        }
    }

    /// One node's world, owned, to plan from.
    struct Case {
        me: u8,
        now: Millis,
        duty: Duty,
        roster: Roster,
        requests: Vec<PinRequest>,
        /// (blob, pinner, until)
        commits: Vec<(u8, u8, Millis)>,
        here: HashSet<String>,
        partial: HashMap<String, u64>,
        volunteered: HashSet<String>,
        room: u64,
        lost: HashSet<MemberId>,
        connected: HashSet<MemberId>,
        audits: AuditBook,
    }

    impl Case {
        fn new(me: u8, duty: Duty, roster: Roster) -> Self {
            let connected = roster.members.iter().map(|m| m.id).collect();
            Self {
                me,
                now: NOW,
                duty,
                roster,
                requests: Vec::new(),
                commits: Vec::new(),
                here: HashSet::new(),
                partial: HashMap::new(),
                volunteered: HashSet::new(),
                room: u64::MAX,
                lost: HashSet::new(),
                connected,
                audits: AuditBook::default(),
            }
        }

        fn ledger(&self) -> Ledger {
            let mut commits: HashMap<String, Vec<Commitment>> = HashMap::new();
            for &(b, m, until) in &self.commits {
                commits.entry(blob(b)).or_default().push(Commitment {
                    member: id(m),
                    until,
                });
            }
            Ledger {
                roster: self.roster.clone(),
                requests: self.requests.clone().into(),
                commits: Arc::new(commits),
                nodes: Arc::new([]),
                reported: None,
            }
        }

        fn sight(&self) -> Sight<'_> {
            Sight {
                me: id(self.me),
                now: self.now,
                lost: self.lost.clone(),
                connected: self.connected.clone(),
                audits: &self.audits,
            }
        }

        fn plan(&self, below_since: &mut HashMap<String, Millis>) -> Plan {
            let (ledger, sight, files) = (self.ledger(), self.sight(), HashMap::new());
            let world = World {
                sight: &sight,
                duty: self.duty,
                ledger: &ledger,
                files: &files,
                here: &self.here,
                partial: &self.partial,
                volunteered: &self.volunteered,
                room: self.room,
            };
            plan(&world, below_since)
        }

        fn fetched(&self) -> Vec<String> {
            let plan = self.plan(&mut HashMap::new());
            plan.fetch.into_iter().map(|(r, _)| r.blob).collect()
        }
    }

    fn pin_node(quota: u64) -> Case {
        let roster = roster(&[(1, Role::Member), (9, Role::Pinner)], &[1], 2);
        Case::new(9, Duty::PinNode { quota }, roster)
    }

    #[test]
    fn a_pin_node_takes_what_its_quota_holds_counting_what_it_keeps_first() {
        let mut case = pin_node(100);
        // Soonest first; the kept one comes last and still counts first.
        case.requests = vec![
            request(2, 30, LATER, 1),
            request(3, 30, LATER, 1),
            request(1, 60, LATER + 1, 1),
        ];
        case.commits = vec![(1, 9, LATER + 1)];
        case.here.insert(blob(1));
        let plan = case.plan(&mut HashMap::new());
        assert_eq!(plan.kept_bytes, 60);
        let fetch: Vec<_> = plan.fetch.iter().map(|(r, _)| r.blob.clone()).collect();
        assert_eq!(fetch, vec![blob(2)]);
        assert_eq!(
            plan.refused,
            vec![(
                request(3, 30, LATER, 1),
                Refusal::Quota {
                    taken: 90,
                    quota: 100
                }
            )]
        );
        // Where it may come from: the uploader.
        assert_eq!(plan.fetch[0].1, vec![id(1)]);
    }

    #[test]
    fn a_pin_node_refuses_what_the_disk_cannot_hold_counting_bytes_already_there() {
        let mut case = pin_node(u64::MAX);
        case.requests = vec![request(1, 50_000, LATER, 1), request(2, 10, LATER, 1)];
        case.partial.insert(blob(1), 20_000);
        case.room = meshwork_blobs::stored_size(50_000) - 20_000;
        let plan = case.plan(&mut HashMap::new());
        assert_eq!(plan.fetch.len(), 1);
        assert_eq!(plan.fetch[0].0.blob, blob(1));
        assert_eq!(
            plan.refused,
            vec![(request(2, 10, LATER, 1), Refusal::Disk { room: case.room })]
        );
        // A blob already here needs no room at all.
        case.here.insert(blob(2));
        case.room = 0;
        assert_eq!(case.fetched(), vec![blob(2)]);
    }

    #[test]
    fn past_requests_are_neither_fetched_nor_remembered() {
        let mut case = pin_node(u64::MAX);
        case.requests = vec![request(1, 10, NOW - SKEW_MARGIN_MS - 1, 1)];
        let mut below = HashMap::from([(blob(1), NOW - DAY), (blob(7), NOW)]);
        assert!(case.plan(&mut below).fetch.is_empty());
        assert!(below.is_empty(), "{below:?}");
    }

    /// Members 1..=6 in the department, 1 the uploader, k = 1, nobody
    /// committed: who volunteers at `at` after the blob went below target
    /// at NOW.
    fn volunteers_at(at: Millis) -> Vec<u8> {
        let members: Vec<(u8, Role)> = (1..=6).map(|n| (n, Role::Member)).collect();
        let ids: Vec<u8> = (1..=6).collect();
        (2..=6)
            .filter(|&me| {
                let mut case = Case::new(
                    me,
                    Duty::Member { volunteer: true },
                    roster(&members, &ids, 1),
                );
                case.requests = vec![request(1, 10, LATER, 1)];
                case.now = at;
                let mut below = HashMap::from([(blob(1), NOW)]);
                !case.plan(&mut below).fetch.is_empty()
            })
            .collect()
    }

    #[test]
    fn members_volunteer_by_rank_and_each_next_one_a_stagger_later() {
        let first = volunteers_at(NOW);
        assert_eq!(first.len(), 1, "{first:?}");
        let second = volunteers_at(NOW + VOLUNTEER_STAGGER_MS);
        assert_eq!(second.len(), 2, "{second:?}");
        assert!(second.contains(&first[0]));
        assert_eq!(volunteers_at(NOW + 2 * VOLUNTEER_STAGGER_MS - 1), second);
        assert_eq!(volunteers_at(NOW + 4 * VOLUNTEER_STAGGER_MS).len(), 5);
        // A first pass starts the clock for this node.
        let mut case = Case::new(
            3,
            Duty::Member { volunteer: true },
            roster(&[(1, Role::Member), (3, Role::Member)], &[1, 3], 1),
        );
        case.requests = vec![request(1, 10, LATER, 1)];
        let mut below = HashMap::new();
        assert_eq!(case.plan(&mut below).fetch.len(), 1);
        assert_eq!(below.get(&blob(1)), Some(&NOW));
    }

    #[test]
    fn the_uploader_outsiders_and_members_who_opted_out_never_volunteer() {
        let members = [(1, Role::Member), (2, Role::Member), (3, Role::Member)];
        let at = |me, volunteer| {
            let mut case = Case::new(me, Duty::Member { volunteer }, roster(&members, &[1, 2], 1));
            case.requests = vec![request(1, 10, LATER, 1)];
            case.now = NOW + 100 * VOLUNTEER_STAGGER_MS;
            case.fetched()
        };
        assert_eq!(at(2, true), vec![blob(1)]);
        assert!(at(1, true).is_empty(), "the uploader");
        assert!(at(3, true).is_empty(), "not in the department");
        assert!(at(2, false).is_empty(), "--no-volunteer");
    }

    #[test]
    fn a_lost_or_failing_pinner_does_not_count() {
        let members = [(1, Role::Member), (2, Role::Member), (3, Role::Member)];
        let mut case = Case::new(
            3,
            Duty::Member { volunteer: true },
            roster(&members, &[1, 2, 3], 1),
        );
        case.requests = vec![request(1, 10, LATER, 1)];
        case.commits = vec![(1, 2, LATER)];
        assert!(case.fetched().is_empty(), "2 holds it: target met");

        case.lost.insert(id(2));
        assert_eq!(case.fetched(), vec![blob(1)], "2 is lost");

        case.lost.clear();
        case.audits
            .record(id(2), &blob(1), Answer::Lacks("not here".into()));
        assert_eq!(case.fetched(), vec![blob(1)], "2 failed its audit");

        // An expired or removed pinner does not count either.
        case.audits = AuditBook::default();
        case.commits = vec![(1, 2, NOW - SKEW_MARGIN_MS - 1)];
        assert_eq!(case.fetched(), vec![blob(1)], "2's commitment is over");
        case.commits = vec![(1, 2, LATER)];
        case.roster.members.iter_mut().for_each(|m| {
            if m.id == id(2) {
                m.removed = true;
            }
        });
        assert_eq!(case.fetched(), vec![blob(1)], "2 was removed");
    }

    #[test]
    fn a_volunteer_steps_down_once_pin_nodes_alone_meet_the_target() {
        let members = [
            (1, Role::Member),
            (3, Role::Member),
            (8, Role::Pinner),
            (9, Role::Pinner),
        ];
        let mut case = Case::new(
            3,
            Duty::Member { volunteer: true },
            roster(&members, &[1, 3], 2),
        );
        case.requests = vec![request(1, 10, LATER, 1)];
        case.commits = vec![(1, 3, LATER), (1, 8, LATER)];
        case.here.insert(blob(1));
        case.volunteered.insert(blob(1));
        let plan = case.plan(&mut HashMap::new());
        assert!(plan.step_down.is_empty() && plan.fetch.is_empty());
        assert_eq!(plan.kept_bytes, 10);

        case.commits.push((1, 9, LATER));
        let plan = case.plan(&mut HashMap::new());
        assert_eq!(plan.step_down, vec![request(1, 10, LATER, 1)]);
        // A pin node committed for less time than the request does not count.
        case.commits = vec![(1, 3, LATER), (1, 8, LATER), (1, 9, LATER - 1)];
        assert!(case.plan(&mut HashMap::new()).step_down.is_empty());
        // A copy the member pinned itself is never let go that way.
        case.commits = vec![(1, 3, LATER), (1, 8, LATER), (1, 9, LATER)];
        case.volunteered.clear();
        assert!(case.plan(&mut HashMap::new()).step_down.is_empty());
    }

    #[test]
    fn a_committed_blob_gone_from_the_disk_is_fetched_again_whatever_the_rank() {
        let members = [(1, Role::Member), (3, Role::Member), (4, Role::Member)];
        let mut case = Case::new(
            3,
            Duty::Member { volunteer: false },
            roster(&members, &[1, 3, 4], 1),
        );
        case.requests = vec![request(1, 10, LATER, 1)];
        case.commits = vec![(1, 3, LATER), (1, 4, LATER)];
        let plan = case.plan(&mut HashMap::new());
        assert_eq!(plan.missing, vec![blob(1)]);
        assert_eq!(plan.fetch.len(), 1);
        // From its pinners and its uploader.
        assert_eq!(plan.fetch[0].1, {
            let mut s = vec![id(1), id(3), id(4)];
            s.sort();
            s
        });
    }

    #[test]
    fn a_collection_takes_expired_blobs_with_their_holds_and_commitments() {
        let mut case = Case::new(
            3,
            Duty::Member { volunteer: true },
            roster(&[(1, Role::Member), (3, Role::Member)], &[1, 3], 1),
        );
        let past = NOW - SKEW_MARGIN_MS - 1;
        case.requests = vec![
            request(1, 10, past, 1),  // over, nothing else keeps it
            request(2, 10, past, 1),  // over, but pinned here for longer
            request(4, 10, LATER, 1), // live
        ];
        case.commits = vec![(1, 3, past), (4, 3, LATER)];
        let local = HashMap::from([(blob(2), LATER), (blob(5), past)]);
        let files = HashMap::from([(
            blob(1),
            MyFile {
                id: "f1".into(),
                name: "a.txt".into(),
                dept: "d".into(),
                holders: vec![id(3)],
            },
        )]);
        let hash = |n: u8| blob(n).parse::<BlobHash>().unwrap();
        // Blob 3: no request, no pin, nothing says when: kept.
        let stored = [hash(1), hash(2), hash(3), hash(4)];
        let ledger = case.ledger();
        let c = collection(id(3), NOW, &ledger, &files, &local, &stored);
        assert_eq!(
            c,
            Collection {
                delete: vec![hash(1)],
                unpin: {
                    let mut u = vec![blob(1), blob(5)];
                    u.sort();
                    u
                },
                withdraw: HashMap::from([("d".to_owned(), vec!["f1".to_owned()])]),
                release: vec![blob(1)],
            }
        );
    }
}
