//! The control API's request bodies, and the answers that are not a node
//! type of their own: the daemon (`api.rs`) deserialises the bodies and
//! serialises the answers, the CLI does the reverse with the same structs.
//! One definition for both ends, so that a renamed field is a compile
//! error, not a silent `null`. Every other answer is the node's own type
//! ([`crate::Status`], [`crate::node::Thread`], [`crate::FileInfo`], …),
//! deserialisable for the same reason.

use meshwork_crdt::roster::{Member, Role};
use meshwork_crdt::MemberId;
use serde::{Deserialize, Serialize};

fn default_role() -> Role {
    Role::Member
}

fn default_expiry() -> u64 {
    24 * 3600
}

pub(super) fn yes() -> bool {
    true
}

/// A name: of a new workspace or department, or the new name of this
/// member or of the workspace.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NameBody {
    /// The name.
    pub name: String,
}

/// `POST /v1/invites`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InviteBody {
    /// A department: name, label or id.
    pub dept: Option<String>,
    /// The role the invite gives (member by default).
    #[serde(default = "default_role")]
    pub role: Role,
    /// How long the invite stays valid, in seconds (a day by default).
    #[serde(default = "default_expiry")]
    pub expires_secs: u64,
}

/// `POST /v1/join`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinBody {
    /// The invite token an admin gave.
    pub token: String,
}

/// `POST /v1/depts/rename`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RenameBody {
    /// The department as it is named now.
    pub old: String,
    /// Its new name.
    pub new: String,
}

/// `POST /v1/depts/add` and `/v1/depts/remove`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberDeptBody {
    /// A member: display name or id.
    pub member: String,
    /// A department: name, label or id.
    pub dept: String,
}

/// `POST /v1/members/promote` and `/v1/members/remove`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberBody {
    /// A member: display name or id.
    pub member: String,
}

/// `POST /v1/posts`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PostBody {
    /// A department: name, label or id.
    pub dept: String,
    /// The text.
    pub text: String,
    /// The post this one answers, if any.
    pub reply_to: Option<String>,
    /// Files of the department's library to attach, by id.
    #[serde(default)]
    pub files: Vec<String>,
}

/// `POST /v1/dms`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DmBody {
    /// A member: display name or id.
    pub member: String,
    /// The text.
    pub text: String,
}

/// `POST /v1/read`: where something was read, a department or a conversation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReadBody {
    /// A department: name, label or id.
    pub dept: Option<String>,
    /// A member: display name or id.
    pub member: Option<String>,
}

/// `POST /v1/posts/react`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReactBody {
    /// The post, by id.
    pub post: String,
    /// One emoji.
    pub emoji: String,
}

/// `POST /v1/posts/edit`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EditBody {
    /// The post, by id.
    pub post: String,
    /// The text.
    pub text: String,
}

/// `POST /v1/posts/delete`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PostRef {
    /// The post, by id.
    pub post: String,
}

/// `POST /v1/files` (the CLI only).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShareBody {
    /// A department: name, label or id.
    pub dept: String,
    /// A path on the daemon's machine.
    pub path: std::path::PathBuf,
    /// The name.
    pub name: Option<String>,
    /// Say so in the department's feed (the default).
    #[serde(default = "yes")]
    pub announce: bool,
}

/// `POST /v1/files/get` (the CLI only).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GetBody {
    /// A file or folder: id, or a name only one of them has.
    pub id: String,
    /// Where to write it, on the daemon's machine.
    pub dest: std::path::PathBuf,
}

/// `POST /v1/pins`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PinBody {
    /// A file or folder: id, or a name only one of them has.
    pub id: String,
    /// How long to keep it, in seconds.
    pub for_secs: u64,
}

/// `POST /v1/pins/remove`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnpinBody {
    /// A file or folder: id, or a name only one of them has.
    pub id: String,
}

/// `POST /v1/members/add-pinner`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PinnerBody {
    /// The pin node: its peer id (12D3Koo…) or member id.
    pub peer: String,
    /// The name.
    pub name: Option<String>,
}

/// `POST /v1/workspace/policy`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyBody {
    /// How long shared files stay available, in seconds.
    pub retention_secs: Option<u64>,
    /// How many pinners each file should have.
    pub replicas: Option<u32>,
}

/// `GET /v1/depts`: a department as `dept list` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeptListing {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What to show: the name, with the start of the id when another
    /// department has the same name ("Ops (3f2a)").
    pub label: String,
    /// Its members.
    pub members: Vec<DeptMember>,
}

/// A member of a [`DeptListing`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeptMember {
    /// The member's id.
    pub id: MemberId,
    /// Their display name (`?` if the roster has no record of them).
    pub name: String,
}

/// `POST /v1/members/add-pinner`: the pin node, and the token it joins
/// with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PinnerAdded {
    /// Its record in the roster.
    pub member: Member,
    /// The invite token to run `meshwork join` with on the pin node.
    pub token: String,
}

/// `POST /v1/files/get`, once done: where the file or folder was written.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fetched {
    /// The path, on the daemon's machine.
    pub path: std::path::PathBuf,
}

/// `POST /v1/login-links`: a link that opens the web app logged in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginLink {
    /// The link (single use, short-lived).
    pub url: String,
}

/// Every refusal and failure, whatever the route.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Why, for a person to read.
    pub error: String,
}

/// One line of a long operation's answer (`POST /v1/files`, `POST
/// /v1/files/get`), which is newline-delimited JSON: a progress line now
/// and then, then the result or the error.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressLine<T> {
    /// `{"progress": {"done", "total"}}`.
    Progress(ProgressReport),
    /// `{"ok": …}`: the result; the last line.
    Ok(T),
    /// `{"error": …}`: why it failed; the last line.
    Error(String),
}

/// How far a long operation has come, in bytes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ProgressReport {
    /// Bytes done.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
}
