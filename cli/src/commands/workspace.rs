//! The workspace and its people: identity, workspace, invites,
//! departments, members, this node's status and peers, the web app's
//! login link.

use std::time::Duration;

use anyhow::Result;
use meshwork_node::api::types::{
    DeptListing, InviteBody, JoinBody, LoginLink, MemberBody, MemberDeptBody, NameBody,
    PinnerAdded, PinnerBody, PolicyBody, RenameBody,
};
use meshwork_node::crdt::roster::{Member, PinPolicy, Role};
use meshwork_node::node::WorkspaceStatus;
use meshwork_node::{Home, InviteInfo, PeerInfo, Status};

use super::{names, names_unless, urlencode};
use crate::args::{DeptCmd, MemberCmd, PolicyKey, RoleArg, WorkspaceCmd};
use crate::client::Client;
use crate::format::{self, table};
use crate::output::{print, say};
use crate::safe;
use crate::text::{count, Names};

/// `init --name NAME`: this device's identity.
pub(super) fn init(home: &Home, name: &str) -> Result<()> {
    let id = home.init(name)?;
    println!(
        "Created identity {} for {:?} in {}",
        id.signer.id(),
        id.name,
        home.root().display()
    );
    println!(
        "Next: `meshwork daemon`, then `meshwork workspace create NAME` or `meshwork join TOKEN`."
    );
    Ok(())
}

/// `profile set name NAME`: renames me, for everyone.
pub(super) fn rename_self(client: &Client, name: String) -> Result<()> {
    client.send("/v1/profile/name", &NameBody { name: name.clone() })?;
    say(&format!(
        "You are now \"{}\" for everyone",
        safe::line(&name)
    ));
    Ok(())
}

/// `workspace …`.
pub(super) fn workspace(client: &Client, cmd: WorkspaceCmd) -> Result<()> {
    match cmd {
        WorkspaceCmd::Create { name, json } => create_workspace(client, name, json),
        WorkspaceCmd::Rename { name } => rename_workspace(client, name),
        WorkspaceCmd::Set { key, value } => set_policy(client, key, &value),
    }
}

/// `workspace create NAME`: I am its first admin.
fn create_workspace(client: &Client, name: String, json: bool) -> Result<()> {
    let ws: WorkspaceStatus = client.post("/v1/workspace", &NameBody { name })?;
    print(json, &ws, |w| {
        format!(
            "Created workspace \"{}\" ({}); you are its admin",
            safe::line(&w.name),
            safe::line(&w.id)
        )
    })
}

/// `workspace rename NAME`.
fn rename_workspace(client: &Client, name: String) -> Result<()> {
    client.send("/v1/workspace/name", &NameBody { name: name.clone() })?;
    say(&format!("The workspace is now \"{}\"", safe::line(&name)));
    Ok(())
}

/// `workspace set KEY VALUE`: the pinning policy.
fn set_policy(client: &Client, key: PolicyKey, value: &str) -> Result<()> {
    let body = match key {
        PolicyKey::Retention => {
            let d = crate::duration::parse(value).map_err(anyhow::Error::msg)?;
            PolicyBody {
                retention_secs: Some(d.as_secs()),
                replicas: None,
            }
        }
        PolicyKey::Replicas => {
            let k: u32 = value
                .parse()
                .map_err(|_| anyhow::anyhow!("replicas is a count, like 2 (got {value:?})"))?;
            PolicyBody {
                retention_secs: None,
                replicas: Some(k),
            }
        }
    };
    let policy: PinPolicy = client.post("/v1/workspace/policy", &body)?;
    say(&format::policy_text(&policy));
    Ok(())
}

/// `invite`: a token for a new member or pin node.
pub(super) fn invite(
    client: &Client,
    dept: Option<String>,
    role: RoleArg,
    expires: Duration,
    json: bool,
) -> Result<()> {
    let role = match role {
        RoleArg::Member => Role::Member,
        RoleArg::Admin => Role::Admin,
        RoleArg::Pinner => Role::Pinner,
    };
    let body = InviteBody {
        dept,
        role,
        expires_secs: expires.as_secs(),
    };
    let invite: InviteInfo = client.post("/v1/invites", &body)?;
    print(json, &invite, |i| i.token.clone())
}

/// `join TOKEN`.
pub(super) fn join(client: &Client, token: String, json: bool) -> Result<()> {
    let ws: WorkspaceStatus = client.post("/v1/join", &JoinBody { token })?;
    print(json, &ws, |w| {
        format!(
            "Joined workspace \"{}\" ({})",
            safe::line(&w.name),
            count(w.members as u64, "member", "members")
        )
    })
}

/// `dept …`.
pub(super) fn dept(client: &Client, cmd: DeptCmd) -> Result<()> {
    match cmd {
        DeptCmd::Create { name } => create_dept(client, name),
        DeptCmd::Rename { old, new } => rename_dept(client, old, new),
        DeptCmd::Add { member, dept } => add_to_dept(client, member, dept),
        DeptCmd::Remove { member, dept } => remove_from_dept(client, member, dept),
        DeptCmd::List { json } => {
            let depts: Vec<DeptListing> = client.get("/v1/depts")?;
            print(json, &depts, |d| format::depts_text(d))
        }
    }
}

/// `dept create NAME`: I am in it.
fn create_dept(client: &Client, name: String) -> Result<()> {
    client.send("/v1/depts", &NameBody { name: name.clone() })?;
    say(&format!("Created department \"{}\"", safe::line(&name)));
    Ok(())
}

/// `dept rename OLD NEW`.
fn rename_dept(client: &Client, old: String, new: String) -> Result<()> {
    let body = RenameBody {
        old: old.clone(),
        new: new.clone(),
    };
    client.send("/v1/depts/rename", &body)?;
    say(&format!(
        "Renamed department \"{}\" to \"{}\"",
        safe::line(&old),
        safe::line(&new)
    ));
    Ok(())
}

/// `dept add MEMBER DEPT`.
fn add_to_dept(client: &Client, member: String, dept: String) -> Result<()> {
    let body = MemberDeptBody {
        member: member.clone(),
        dept: dept.clone(),
    };
    client.send("/v1/depts/add", &body)?;
    say(&format!(
        "Added {} to \"{}\"",
        member_name(client, &member)?,
        safe::line(&dept)
    ));
    Ok(())
}

/// `dept remove MEMBER DEPT`.
fn remove_from_dept(client: &Client, member: String, dept: String) -> Result<()> {
    let body = MemberDeptBody {
        member: member.clone(),
        dept: dept.clone(),
    };
    client.send("/v1/depts/remove", &body)?;
    say(&format!(
        "Removed {} from \"{}\"",
        member_name(client, &member)?,
        safe::line(&dept)
    ));
    Ok(())
}

/// The name of `member` as typed on the command line (an id or a name):
/// its display name when it is a member's id.
fn member_name(client: &Client, member: &str) -> Result<String> {
    let names = names(client)?;
    Ok(if names.knows(member) {
        names.of_str(member)
    } else {
        safe::line(member).into_owned()
    })
}

/// `members [--dept DEPT]`.
pub(super) fn members(client: &Client, dept: Option<String>, json: bool) -> Result<()> {
    let path = match &dept {
        Some(d) => format!("/v1/members?dept={}", urlencode(d)),
        None => "/v1/members".to_owned(),
    };
    let members: Vec<Member> = client.get(&path)?;
    print(json, &members, |m| format::members_text(m))
}

/// `member …` (admins).
pub(super) fn member(client: &Client, cmd: MemberCmd) -> Result<()> {
    match cmd {
        MemberCmd::Promote { member } => {
            let m: Member = client.post("/v1/members/promote", &MemberBody { member })?;
            say(&format!("{} is now an admin", safe::line(&m.name)));
            Ok(())
        }
        MemberCmd::Remove { member } => {
            let m: Member = client.post("/v1/members/remove", &MemberBody { member })?;
            say(&format!(
                "{} was removed from the workspace",
                safe::line(&m.name)
            ));
            Ok(())
        }
        MemberCmd::AddPinner {
            peer_id,
            name,
            json,
        } => add_pinner(client, peer_id, name, json),
    }
}

/// `member add-pinner PEER`: prints the token the pin node joins with.
fn add_pinner(client: &Client, peer: String, name: Option<String>, json: bool) -> Result<()> {
    let added: PinnerAdded = client.post("/v1/members/add-pinner", &PinnerBody { peer, name })?;
    print(json, &added, |a| {
        format!(
            "{} is now a pin node of this workspace. On it (its `meshwork daemon --pin` running), run:\n\n  meshwork join {}",
            safe::line(&a.member.name),
            a.token
        )
    })
}

/// `open`: a link that logs a browser into the web app, opened on a
/// desktop.
pub(super) fn open(client: &Client, no_browser: bool) -> Result<()> {
    let link: LoginLink = client.post("/v1/login-links", &serde_json::Map::new())?;
    say(&link.url);
    if !no_browser {
        crate::daemon::open_browser(&link.url);
    }
    Ok(())
}

/// `status`.
pub(super) fn status(client: &Client, json: bool) -> Result<()> {
    let s: Status = client.get("/v1/status")?;
    // Before joining there are no members to name.
    let names = if s.workspace.is_none() {
        Names::default()
    } else {
        names_unless(json, client)?
    };
    print(json, &s, |s| format::status_text(s, &names))
}

/// `peers`.
pub(super) fn peers(client: &Client, json: bool) -> Result<()> {
    let peers: Vec<PeerInfo> = client.get("/v1/peers")?;
    let names = names_unless(json, client)?;
    print(json, &peers, |ps| {
        table(ps, |p| format::peer_text(p, &names))
    })
}
