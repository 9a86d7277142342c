//! The typed view of a roster document.

use std::collections::HashMap;

use automerge::{hydrate, Automerge, ChangeHash, ObjId, ReadDoc};
use serde::{Deserialize, Serialize};

use super::DEPT_CAPACITY;
use crate::read::View;
use crate::{MemberId, Millis};

/// What a member may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Changes the roster's structure: departments, roles, invites, removals.
    Admin,
    /// Reads the roster, writes in their departments, admits invited joiners.
    Member,
    /// A pin node: keeps blobs (ciphertext) available; belongs to no
    /// department, so it sees pin requests and no department content.
    Pinner,
}

impl Role {
    /// The word stored in the document and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Pinner => "pinner",
        }
    }

    /// Parses the stored word.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            "pinner" => Some(Role::Pinner),
            _ => None,
        }
    }
}

/// A member of the workspace, present or removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The device key.
    pub id: MemberId,
    /// Display name.
    pub name: String,
    /// Role in the workspace.
    pub role: Role,
    /// When they joined, by the admitting node's clock.
    pub joined_at: Millis,
    /// Removed members keep their record (so their old changes stay
    /// attributable) but have no authority and are refused connections.
    pub removed: bool,
    /// The invite they were admitted with, if any.
    pub invite: Option<String>,
}

/// A department: a named group of at most [`DEPT_CAPACITY`] members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    /// Stable id; renaming keeps it. The id is the department's identity.
    pub id: String,
    /// Display name: a label, not an identity. A node refuses to create or
    /// rename a department to a name it already sees, but two admins apart
    /// (a partition) can each create "Ops"; see [`Roster::dept_labels`].
    pub name: String,
    /// Its members, sorted.
    pub members: Vec<MemberId>,
}

/// The fewest characters of a department id that name it (when no other id
/// starts with them); also the shortest suffix a label shows.
pub const MIN_DEPT_PREFIX: usize = 4;

/// An invite an admin issued. Only the hash of its secret is in the roster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// Random id.
    pub id: String,
    /// BLAKE3 of the secret the joiner must present, hex.
    pub secret_hash: String,
    /// The role the joiner gets.
    pub role: Role,
    /// The department the joiner is added to, if any.
    pub dept: Option<String>,
    /// After this instant the invite is refused.
    pub expires_at: Millis,
    /// The admin who issued it.
    pub created_by: MemberId,
    /// Who used it; an invite admits one device.
    pub redeemed_by: Option<MemberId>,
}

impl Invite {
    /// The hash stored for an invite secret.
    pub fn hash_secret(secret: &[u8]) -> String {
        blake3::hash(secret).to_hex().to_string()
    }
}

/// Why a roster operation cannot be done, worded for the person asking.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RosterError {
    /// No member matches.
    #[error("no member {0:?}; `meshwork members` lists them")]
    UnknownMember(String),
    /// Several members share the display name.
    #[error("{name:?} is ambiguous: it names {}; use the member id instead", ids.join(", "))]
    AmbiguousMember {
        /// The name asked for.
        name: String,
        /// The ids it could mean.
        ids: Vec<String>,
    },
    /// No department has this name, id or id prefix.
    #[error("no department {name:?}; departments: {}", words(known))]
    UnknownDept {
        /// The name asked for.
        name: String,
        /// The departments that exist, as [`Roster::dept_labels`] shows them.
        known: Vec<String>,
    },
    /// Several departments share the name (created apart, during a
    /// partition), or share the id prefix.
    #[error(
        "{name:?} could mean {} departments, with ids {}; name one by its id instead, or by enough of its start to be unique (at least {MIN_DEPT_PREFIX} characters), as `meshwork dept list` shows it",
        ids.len(),
        ids.join(", ")
    )]
    AmbiguousDept {
        /// The name (or id prefix) asked for.
        name: String,
        /// The ids it could mean, sorted.
        ids: Vec<String>,
    },
    /// The name is taken.
    #[error("a department named {0:?} already exists")]
    DeptExists(String),
    /// The department has [`DEPT_CAPACITY`] members.
    #[error("department {0:?} is full: it already has {DEPT_CAPACITY} members, the most a department may hold")]
    DeptFull(String),
    /// Adding someone already in.
    #[error("{member} is already in department {dept:?}")]
    AlreadyInDept {
        /// Display name.
        member: String,
        /// Department name.
        dept: String,
    },
    /// Pin nodes hold ciphertext only: never department content.
    #[error("{0} is a pin node; pin nodes belong to no department")]
    PinnerInDept(String),
    /// Removing someone not in.
    #[error("{member} is not in department {dept:?}")]
    NotInDept {
        /// Display name.
        member: String,
        /// Department name.
        dept: String,
    },
    /// A name that cannot be used.
    #[error("invalid name {0:?}: use 1 to 100 characters, not all blank")]
    BadName(String),
    /// The member was removed from the workspace.
    #[error("{0} has been removed from the workspace")]
    Removed(String),
    /// The caller lacks the role.
    #[error("only an admin can do that, and you are not an admin of this workspace")]
    NotAdmin,
    /// The document is not a roster.
    #[error("the roster document is malformed: {0}")]
    Malformed(&'static str),
}

/// A snapshot of the roster, read from the document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    /// Workspace name.
    pub name: String,
    /// All members ever admitted, sorted by id.
    pub members: Vec<Member>,
    /// Departments, sorted by name.
    pub depts: Vec<Department>,
    /// Invites, sorted by id.
    pub invites: Vec<Invite>,
    /// How long shared files are kept and by how many pinners.
    pub policy: PinPolicy,
}

/// The workspace's pinning policy, set by admins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinPolicy {
    /// How long a shared file stays available, in milliseconds
    /// (at least [`PinPolicy::MIN_RETENTION_MS`]).
    pub retention_ms: Millis,
    /// How many pinners should hold each unexpired blob (k).
    pub replicas: u32,
}

impl PinPolicy {
    /// The promise's floor: 72 hours.
    pub const MIN_RETENTION_MS: Millis = 72 * 3600 * 1000;
    /// The longest retention: ten years (deadlines stay far from overflow).
    pub const MAX_RETENTION_MS: Millis = 3650 * 24 * 3600 * 1000;
    /// The most replicas a policy may ask for.
    pub const MAX_REPLICAS: u32 = 16;

    /// Whether an admin may set this policy.
    pub fn check(&self) -> Result<(), String> {
        if self.retention_ms < Self::MIN_RETENTION_MS {
            return Err(format!(
                "retention must be at least 72h (asked for {} ms)",
                self.retention_ms
            ));
        }
        if self.retention_ms > Self::MAX_RETENTION_MS {
            return Err(format!(
                "retention must be at most ten years (asked for {} ms)",
                self.retention_ms
            ));
        }
        if !(1..=Self::MAX_REPLICAS).contains(&self.replicas) {
            return Err(format!(
                "replicas must be 1 to {} (asked for {})",
                Self::MAX_REPLICAS,
                self.replicas
            ));
        }
        Ok(())
    }
}

impl Default for PinPolicy {
    fn default() -> Self {
        Self {
            retention_ms: Self::MIN_RETENTION_MS,
            replicas: 2,
        }
    }
}

impl Roster {
    /// Reads the roster as it is now.
    pub fn read(doc: &Automerge) -> Self {
        Self::read_hydrated(doc, None)
    }

    /// Reads the roster as it was at `heads`.
    pub fn read_at(doc: &Automerge, heads: &[ChangeHash]) -> Self {
        Self::read_hydrated(doc, Some(heads))
    }

    /// One pass over the document (`hydrate`) rather than a lookup per
    /// field: reading a 1,000-member roster key by key costs ~40× more.
    fn read_hydrated(doc: &Automerge, heads: Option<&[ChangeHash]>) -> Self {
        let root = match ReadDoc::hydrate(doc, automerge::ROOT, heads) {
            Ok(hydrate::Value::Map(m)) => m,
            _ => return Self::default(),
        };
        let entries = |key: &str| map(&root, key).map(|m| m.iter()).into_iter().flatten();
        let mut members: Vec<Member> = entries("members")
            .filter_map(|(k, v)| hydrated_member(k, as_map(&v.value)?))
            .collect();
        members.sort_by_key(|m| m.id);
        let mut depts: Vec<Department> = entries("depts")
            .filter_map(|(k, v)| hydrated_dept(k, as_map(&v.value)?))
            .collect();
        depts.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        let mut invites: Vec<Invite> = entries("invites")
            .filter_map(|(k, v)| hydrated_invite(k, as_map(&v.value)?))
            .collect();
        invites.sort_by(|a, b| a.id.cmp(&b.id));
        Self {
            name: string(&root, "name").unwrap_or_default(),
            members,
            depts,
            invites,
            policy: map(&root, "policy")
                .map(hydrated_policy)
                .unwrap_or_default(),
        }
    }

    /// The member with this id, present or removed.
    pub fn member(&self, id: &MemberId) -> Option<&Member> {
        self.members.iter().find(|m| &m.id == id)
    }

    /// Whether `id` is a member who has not been removed.
    pub fn is_active(&self, id: &MemberId) -> bool {
        self.member(id).is_some_and(|m| !m.removed)
    }

    /// Whether `id` is an active admin.
    pub fn is_admin(&self, id: &MemberId) -> bool {
        self.member(id)
            .is_some_and(|m| !m.removed && m.role == Role::Admin)
    }

    /// Members who have not been removed.
    pub fn active_members(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| !m.removed)
    }

    /// Finds an active member by id or by an unambiguous display name.
    pub fn resolve_member(&self, query: &str) -> Result<&Member, RosterError> {
        if let Ok(id) = query.parse::<MemberId>() {
            return match self.member(&id) {
                Some(m) if m.removed => Err(RosterError::Removed(m.name.clone())),
                Some(m) => Ok(m),
                None => Err(RosterError::UnknownMember(query.to_owned())),
            };
        }
        let named: Vec<&Member> = self
            .active_members()
            .filter(|m| m.name.eq_ignore_ascii_case(query))
            .collect();
        match named.as_slice() {
            [one] => Ok(one),
            [] => Err(RosterError::UnknownMember(query.to_owned())),
            many => Err(RosterError::AmbiguousMember {
                name: query.to_owned(),
                ids: many.iter().map(|m| m.id.to_string()).collect(),
            }),
        }
    }

    /// Finds a department, trying in turn, so that every node resolves a
    /// query the same way given the same roster:
    ///
    /// 1. its exact id;
    /// 2. its name — an error naming the ids if several departments have it
    ///    ([`RosterError::AmbiguousDept`]), never the first of them;
    /// 3. its label as [`Roster::dept_labels`] shows it, `Ops (3f2a)`: the
    ///    name and a prefix of the id;
    /// 4. a prefix of its id, at least [`MIN_DEPT_PREFIX`] characters long,
    ///    that no other department's id starts with.
    pub fn resolve_dept(&self, query: &str) -> Result<&Department, RosterError> {
        if let Some(d) = self.dept(query) {
            return Ok(d);
        }
        let named: Vec<&Department> = self.depts.iter().filter(|d| d.name == query).collect();
        if let Some(found) = one_of(query, named) {
            return found;
        }
        if let Some((name, prefix)) = query
            .strip_suffix(')')
            .and_then(|q| q.rsplit_once(" ("))
            .filter(|(_, prefix)| !prefix.is_empty())
        {
            let labelled: Vec<&Department> = self
                .depts
                .iter()
                .filter(|d| d.name == name && d.id.starts_with(prefix))
                .collect();
            if let Some(found) = one_of(query, labelled) {
                return found;
            }
        }
        if query.chars().count() >= MIN_DEPT_PREFIX {
            let prefixed: Vec<&Department> = self
                .depts
                .iter()
                .filter(|d| d.id.starts_with(query))
                .collect();
            if let Some(found) = one_of(query, prefixed) {
                return found;
            }
        }
        Err(RosterError::UnknownDept {
            name: query.to_owned(),
            known: self.dept_labels().into_iter().map(|(_, l)| l).collect(),
        })
    }

    /// Every department with the label a person sees, in roster order (by
    /// name, then id). The label is the name; when several departments have
    /// that name (created apart, during a partition), each also shows the
    /// shortest prefix of its id, at least [`MIN_DEPT_PREFIX`] characters,
    /// that no other department's id starts with: `Ops (3f2a)`, `Ops (9c01)`.
    /// Every node shows the same labels for the same roster, and
    /// [`Roster::resolve_dept`] accepts a label, or its id prefix alone.
    pub fn dept_labels(&self) -> Vec<(&Department, String)> {
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for d in &self.depts {
            *uses.entry(d.name.as_str()).or_default() += 1;
        }
        self.depts
            .iter()
            .map(|d| (d, self.label(d, uses[d.name.as_str()] > 1)))
            .collect()
    }

    /// The label of the department with this id (see [`Roster::dept_labels`]).
    pub fn dept_label(&self, id: &str) -> Option<String> {
        let d = self.dept(id)?;
        let clashes = self.depts.iter().filter(|o| o.name == d.name).count() > 1;
        Some(self.label(d, clashes))
    }

    fn label(&self, d: &Department, clashes: bool) -> String {
        if clashes {
            format!("{} ({})", d.name, self.short_dept_id(&d.id))
        } else {
            d.name.clone()
        }
    }

    /// The shortest prefix of `id`, at least [`MIN_DEPT_PREFIX`] characters,
    /// that no other department's id starts with; the whole id if none is.
    fn short_dept_id<'a>(&self, id: &'a str) -> &'a str {
        id.char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .skip(MIN_DEPT_PREFIX - 1)
            .map(|end| &id[..end])
            .find(|prefix| {
                !self
                    .depts
                    .iter()
                    .any(|o| o.id != id && o.id.starts_with(prefix))
            })
            .unwrap_or(id)
    }

    /// The department with this id.
    pub fn dept(&self, id: &str) -> Option<&Department> {
        self.depts.iter().find(|d| d.id == id)
    }

    /// The invite with this id.
    pub fn invite(&self, id: &str) -> Option<&Invite> {
        self.invites.iter().find(|i| i.id == id)
    }

    /// Checks that `member` can be added to `dept`.
    pub fn check_dept_add(&self, dept: &Department, member: &Member) -> Result<(), RosterError> {
        if dept.members.contains(&member.id) {
            return Err(RosterError::AlreadyInDept {
                member: member.name.clone(),
                dept: dept.name.clone(),
            });
        }
        if member.role == Role::Pinner {
            return Err(RosterError::PinnerInDept(member.name.clone()));
        }
        if dept.members.len() >= DEPT_CAPACITY {
            return Err(RosterError::DeptFull(dept.name.clone()));
        }
        Ok(())
    }

    /// Checks a new department name: valid and not taken.
    pub fn check_new_dept_name(&self, name: &str) -> Result<(), RosterError> {
        check_name(name)?;
        if self.depts.iter().any(|d| d.name == name) {
            return Err(RosterError::DeptExists(name.to_owned()));
        }
        Ok(())
    }
}

/// The one department among `found`; an ambiguity error if several; `None`
/// if none, to try the next way of naming one.
/// Names as a person lists them: "Engineering, Sales", or "none".
fn words(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn one_of<'a>(
    query: &str,
    found: Vec<&'a Department>,
) -> Option<Result<&'a Department, RosterError>> {
    match found.as_slice() {
        [] => None,
        [one] => Some(Ok(one)),
        many => {
            let mut ids: Vec<String> = many.iter().map(|d| d.id.clone()).collect();
            ids.sort();
            Some(Err(RosterError::AmbiguousDept {
                name: query.to_owned(),
                ids,
            }))
        }
    }
}

/// Checks a display name: 1 to 100 characters, not all blank, no control characters.
pub fn check_name(name: &str) -> Result<(), RosterError> {
    let n = name.chars().count();
    if n == 0 || n > 100 || name.trim().is_empty() || name.chars().any(char::is_control) {
        return Err(RosterError::BadName(name.to_owned()));
    }
    Ok(())
}

/// One member's record, read through `v`.
pub(super) fn member_in(v: View<'_>, id: &MemberId) -> Option<Member> {
    read_member(v, &v.path(&["members"])?, &id.to_string())
}

/// One department, read through `v`.
pub(super) fn dept_in(v: View<'_>, id: &str) -> Option<Department> {
    let obj = v.map(&v.path(&["depts"])?, id)?;
    let mut members: Vec<MemberId> = v
        .map(&obj, "members")
        .map(|m| v.keys(&m).iter().filter_map(|k| k.parse().ok()).collect())
        .unwrap_or_default();
    members.sort();
    Some(Department {
        id: id.to_owned(),
        name: v.str(&obj, "name")?,
        members,
    })
}

/// One invite, read through `v`.
pub(super) fn invite_in(v: View<'_>, id: &str) -> Option<Invite> {
    read_invite(v, &v.path(&["invites"])?, id)
}

fn read_member(v: View<'_>, members: &ObjId, key: &str) -> Option<Member> {
    let obj = v.map(members, key)?;
    Some(Member {
        id: key.parse().ok()?,
        name: v.str(&obj, "name")?,
        role: Role::parse(&v.str(&obj, "role")?)?,
        joined_at: v.int(&obj, "joined_at").unwrap_or(0),
        removed: v.bool(&obj, "removed").unwrap_or(false),
        invite: v.str(&obj, "invite"),
    })
}

fn as_map(v: &hydrate::Value) -> Option<&hydrate::Map> {
    match v {
        hydrate::Value::Map(m) => Some(m),
        _ => None,
    }
}

fn map<'a>(m: &'a hydrate::Map, key: &str) -> Option<&'a hydrate::Map> {
    as_map(m.get(key)?)
}

fn scalar<'a>(m: &'a hydrate::Map, key: &str) -> Option<&'a automerge::ScalarValue> {
    match m.get(key)? {
        hydrate::Value::Scalar(s) => Some(s),
        _ => None,
    }
}

fn string(m: &hydrate::Map, key: &str) -> Option<String> {
    scalar(m, key)?.as_str().map(str::to_owned)
}

fn hydrated_member(key: &str, m: &hydrate::Map) -> Option<Member> {
    Some(Member {
        id: key.parse().ok()?,
        name: string(m, "name")?,
        role: Role::parse(&string(m, "role")?)?,
        joined_at: scalar(m, "joined_at").and_then(|s| s.as_i64()).unwrap_or(0),
        removed: scalar(m, "removed")
            .and_then(|s| s.as_bool())
            .unwrap_or(false),
        invite: string(m, "invite"),
    })
}

fn hydrated_dept(key: &str, m: &hydrate::Map) -> Option<Department> {
    let mut members: Vec<MemberId> = map(m, "members")
        .map(|ms| ms.keys().filter_map(|k| k.parse().ok()).collect())
        .unwrap_or_default();
    members.sort();
    Some(Department {
        id: key.to_owned(),
        name: string(m, "name")?,
        members,
    })
}

fn hydrated_policy(m: &hydrate::Map) -> PinPolicy {
    let int = |k: &str| scalar(m, k).and_then(|s| s.as_i64());
    let default = PinPolicy::default();
    PinPolicy {
        retention_ms: int("retention_ms").unwrap_or(default.retention_ms),
        replicas: int("replicas")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default.replicas),
    }
}

/// The pinning policy, read through `v`.
pub(super) fn policy_in(v: View<'_>) -> PinPolicy {
    let default = PinPolicy::default();
    let Some(obj) = v.path(&["policy"]) else {
        return default;
    };
    PinPolicy {
        retention_ms: v.int(&obj, "retention_ms").unwrap_or(default.retention_ms),
        replicas: v
            .int(&obj, "replicas")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default.replicas),
    }
}

fn hydrated_invite(key: &str, m: &hydrate::Map) -> Option<Invite> {
    Some(Invite {
        id: key.to_owned(),
        secret_hash: string(m, "secret_hash")?,
        role: Role::parse(&string(m, "role")?)?,
        dept: string(m, "dept"),
        expires_at: scalar(m, "expires_at")?.as_i64()?,
        created_by: string(m, "created_by")?.parse().ok()?,
        redeemed_by: string(m, "redeemed_by").and_then(|s| s.parse().ok()),
    })
}

fn read_invite(v: View<'_>, invites: &ObjId, key: &str) -> Option<Invite> {
    let obj = v.map(invites, key)?;
    Some(Invite {
        id: key.to_owned(),
        secret_hash: v.str(&obj, "secret_hash")?,
        role: Role::parse(&v.str(&obj, "role")?)?,
        dept: v.str(&obj, "dept"),
        expires_at: v.int(&obj, "expires_at")?,
        created_by: v.str(&obj, "created_by")?.parse().ok()?,
        redeemed_by: v.str(&obj, "redeemed_by").and_then(|s| s.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roster(depts: &[(&str, &str)]) -> Roster {
        let mut r = Roster {
            depts: depts
                .iter()
                .map(|(id, name)| Department {
                    id: (*id).to_owned(),
                    name: (*name).to_owned(),
                    members: Vec::new(),
                })
                .collect(),
            ..Roster::default()
        };
        r.depts
            .sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        r
    }

    fn labels(r: &Roster) -> Vec<String> {
        r.dept_labels().into_iter().map(|(_, l)| l).collect()
    }

    #[test]
    fn a_unique_name_is_its_own_label_and_resolves() {
        let r = roster(&[("3f2a91c0", "Ops"), ("77aa0011", "Sales")]);
        assert_eq!(labels(&r), ["Ops", "Sales"]);
        assert_eq!(r.resolve_dept("Ops").unwrap().id, "3f2a91c0");
        assert_eq!(r.dept_label("77aa0011").as_deref(), Some("Sales"));
        assert_eq!(r.dept_label("nope"), None);
    }

    #[test]
    fn a_clashing_name_is_refused_with_both_ids() {
        let r = roster(&[
            ("9c01ffee", "Ops"),
            ("3f2a91c0", "Ops"),
            ("77aa0011", "Sales"),
        ]);
        let err = r.resolve_dept("Ops").unwrap_err();
        assert_eq!(
            err,
            RosterError::AmbiguousDept {
                name: "Ops".into(),
                ids: vec!["3f2a91c0".into(), "9c01ffee".into()],
            }
        );
        let said = err.to_string();
        assert!(said.contains("3f2a91c0, 9c01ffee"), "{said}");
        assert!(said.contains("by its id instead"), "{said}");
    }

    #[test]
    fn an_id_a_prefix_or_a_label_picks_one() {
        let r = roster(&[("9c01ffee", "Ops"), ("3f2a91c0", "Ops")]);
        assert_eq!(r.resolve_dept("9c01ffee").unwrap().id, "9c01ffee");
        assert_eq!(r.resolve_dept("3f2a").unwrap().id, "3f2a91c0");
        assert_eq!(r.resolve_dept("3f2a91").unwrap().id, "3f2a91c0");
        assert_eq!(r.resolve_dept("Ops (9c01)").unwrap().id, "9c01ffee");
        assert_eq!(r.resolve_dept("Ops (9c01ffee)").unwrap().id, "9c01ffee");
        // Too short to be a prefix, or the wrong name in a label.
        assert!(matches!(
            r.resolve_dept("3f2"),
            Err(RosterError::UnknownDept { .. })
        ));
        assert!(matches!(
            r.resolve_dept("Sales (9c01)"),
            Err(RosterError::UnknownDept { .. })
        ));
    }

    #[test]
    fn a_shared_prefix_is_ambiguous_and_an_unknown_name_lists_labels() {
        let r = roster(&[
            ("abcd0001", "Ops"),
            ("abcd0002", "Ops"),
            ("ffff0000", "Sales"),
        ]);
        assert!(matches!(
            r.resolve_dept("abcd"),
            Err(RosterError::AmbiguousDept { ids, .. }) if ids.len() == 2
        ));
        assert_eq!(
            r.resolve_dept("Nope").unwrap_err(),
            RosterError::UnknownDept {
                name: "Nope".into(),
                known: vec![
                    "Ops (abcd0001)".into(),
                    "Ops (abcd0002)".into(),
                    "Sales".into()
                ],
            }
        );
        // Worded as a list, not Rust's debug output.
        assert_eq!(
            r.resolve_dept("Nope").unwrap_err().to_string(),
            r#"no department "Nope"; departments: Ops (abcd0001), Ops (abcd0002), Sales"#
        );
        assert_eq!(
            roster(&[]).resolve_dept("Nope").unwrap_err().to_string(),
            r#"no department "Nope"; departments: none"#
        );
    }

    #[test]
    fn labels_show_the_shortest_unique_prefix_sorted_by_name_then_id() {
        // The suffix grows past 4 characters only when another id shares them;
        // ids shorter than that show whole.
        let r = roster(&[
            ("9c01ffee", "Ops"),
            ("3f2a91c0", "Ops"),
            ("3f2a77", "Legal"),
            ("d1", "Ops"),
        ]);
        assert_eq!(
            labels(&r),
            ["Legal", "Ops (3f2a9)", "Ops (9c01)", "Ops (d1)"]
        );
        for (d, label) in r.dept_labels() {
            assert_eq!(r.dept_label(&d.id).as_deref(), Some(label.as_str()));
            assert_eq!(r.resolve_dept(&label).unwrap().id, d.id, "{label}");
        }
    }

    #[test]
    fn a_new_name_must_not_clash() {
        let r = roster(&[("3f2a91c0", "Ops")]);
        assert_eq!(
            r.check_new_dept_name("Ops"),
            Err(RosterError::DeptExists("Ops".into()))
        );
        assert!(r.check_new_dept_name("Ops East").is_ok());
    }
}
