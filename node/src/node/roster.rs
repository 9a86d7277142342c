//! Editing the roster: invites, departments, members. Every edit has one
//! shape ([`Node::change_roster`]): check the caller's role and the request,
//! then the node's one write path ([`Node::change`]): write one signed
//! change, make it durable, gossip it.

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use meshwork_crdt::automerge::transaction::Transaction;
use meshwork_crdt::automerge::AutomergeError;
use meshwork_crdt::roster::{
    write, Department, Invite, Member, PinPolicy, Role, Roster, RosterError,
};
use meshwork_crdt::{MemberId, Millis};

use super::{InviteInfo, InviteSpec, Node};
use crate::net::Command;
use crate::wire::{DocRef, InviteToken};
use crate::NodeError;

impl Node {
    /// Creates an invite and returns its token.
    pub async fn invite(&self, spec: InviteSpec) -> Result<InviteInfo, NodeError> {
        let secret: [u8; 32] = rand::random();
        let id = hex::encode(rand::random::<[u8; 8]>());
        let expires_at = self.shared.clock.now() + spec.ttl.as_millis() as i64;
        let me = self.member_id();
        let invite = self
            .change_roster(
                true,
                |roster| {
                    if spec.role == Role::Pinner && spec.dept.is_some() {
                        return Err(NodeError::BadRequest(
                            "a pin node belongs to no department: invite it without --dept".into(),
                        ));
                    }
                    let dept = match &spec.dept {
                        Some(name) => Some(roster.resolve_dept(name)?.id.clone()),
                        None => None,
                    };
                    Ok(Invite {
                        id: id.clone(),
                        secret_hash: Invite::hash_secret(&secret),
                        role: spec.role,
                        dept,
                        expires_at,
                        created_by: me,
                        redeemed_by: None,
                    })
                },
                |tx, invite| write::create_invite(tx, invite),
            )
            .await?;
        let (workspace, ws_secret, name) = self
            .shared
            .with_ws(|ws| Ok((ws.meta.id, ws.meta.secret, ws.roster_view().name)))?;
        let token = InviteToken {
            workspace,
            secret: ws_secret,
            name,
            invite_id: invite.id.clone(),
            invite_secret: secret,
            addrs: self.reachable_addrs().await,
        };
        Ok(InviteInfo {
            token: token.encode()?,
            id: invite.id,
            expires_at,
        })
    }

    /// Addresses (with `/p2p/`) where this node and its connected members
    /// can be reached: what an invite carries.
    async fn reachable_addrs(&self) -> Vec<String> {
        let Some(net) = self.net().await else {
            return Vec::new();
        };
        let mut out: Vec<String> = net
            .ask(Command::ListenAddrs)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|a| with_peer(a, self.peer_id()))
            .collect();
        for peer in net.ask(Command::Peers).await.unwrap_or_default() {
            if peer.member_id.is_none() {
                continue;
            }
            let Ok(id) = peer.peer_id.parse::<PeerId>() else {
                continue;
            };
            out.extend(
                peer.addrs
                    .iter()
                    .filter_map(|a| a.parse().ok())
                    .map(|a| with_peer(a, id)),
            );
        }
        out.dedup();
        out
    }

    /// Creates a department, empty.
    pub async fn dept_create(&self, name: &str) -> Result<Department, NodeError> {
        self.create_dept(name, false).await
    }

    /// Creates a department with its creator in it (one change): what a
    /// person who makes a department expects, and what the CLI and the web
    /// app do.
    pub async fn dept_create_joined(&self, name: &str) -> Result<Department, NodeError> {
        self.create_dept(name, true).await
    }

    async fn create_dept(&self, name: &str, join: bool) -> Result<Department, NodeError> {
        let id = hex::encode(rand::random::<[u8; 8]>());
        let me = self.member_id();
        self.change_roster(
            true,
            |roster| {
                roster.check_new_dept_name(name)?;
                Ok(Department {
                    id: id.clone(),
                    name: name.to_owned(),
                    members: if join { vec![me] } else { Vec::new() },
                })
            },
            |tx, d| {
                write::create_dept(tx, &d.id, &d.name)?;
                d.members
                    .iter()
                    .try_for_each(|m| write::dept_add(tx, &d.id, *m))
            },
        )
        .await
    }

    /// Renames this member: the roster (so every colleague sees it) and
    /// this home's profile.
    pub async fn rename_self(&self, name: &str) -> Result<(), NodeError> {
        meshwork_crdt::roster::check_display_name(name)
            .map_err(|e| NodeError::BadRequest(e.to_string()))?;
        if self.shared.has_ws() {
            let me = self.member_id();
            self.change_roster(
                false,
                |roster| match roster.member(&me) {
                    Some(m) if !m.removed => Ok(()),
                    _ => Err(NodeError::Forbidden(
                        "this device is not an active member of its workspace".into(),
                    )),
                },
                |tx, ()| write::set_name(tx, me, name),
            )
            .await?;
        }
        self.cfg.home.set_name(name)
    }

    /// Renames the workspace (admins only).
    pub async fn rename_workspace(&self, name: &str) -> Result<(), NodeError> {
        meshwork_crdt::roster::check_display_name(name)
            .map_err(|e| NodeError::BadRequest(e.to_string()))?;
        self.change_roster(true, |_| Ok(()), |tx, ()| write::rename_workspace(tx, name))
            .await
    }

    /// Renames a department.
    pub async fn dept_rename(&self, old: &str, new: &str) -> Result<(), NodeError> {
        self.change_roster(
            true,
            |roster| {
                let id = roster.resolve_dept(old)?.id.clone();
                roster.check_new_dept_name(new)?;
                Ok(id)
            },
            |tx, id| write::rename_dept(tx, id, new),
        )
        .await
        .map(drop)
    }

    /// Adds a member to a department.
    pub async fn dept_add(&self, member: &str, dept: &str) -> Result<(), NodeError> {
        self.change_roster(
            true,
            |roster| {
                let m = roster.resolve_member(member)?;
                let d = roster.resolve_dept(dept)?;
                roster.check_dept_add(d, m)?;
                Ok((d.id.clone(), m.id))
            },
            |tx, (d, m)| write::dept_add(tx, d, *m),
        )
        .await
        .map(drop)
    }

    /// Adds many members to a department in one change (bulk onboarding).
    pub async fn dept_add_many(&self, members: &[MemberId], dept: &str) -> Result<(), NodeError> {
        self.change_roster(
            true,
            |roster| {
                let d = roster.resolve_dept(dept)?;
                if d.members.len() + members.len() > meshwork_crdt::roster::DEPT_CAPACITY {
                    return Err(RosterError::DeptFull(d.name.clone()).into());
                }
                for m in members {
                    roster.resolve_member(&m.to_string())?;
                }
                Ok(d.id.clone())
            },
            |tx, d| members.iter().try_for_each(|m| write::dept_add(tx, d, *m)),
        )
        .await
        .map(drop)
    }

    /// Takes a member out of a department.
    pub async fn dept_remove(&self, member: &str, dept: &str) -> Result<(), NodeError> {
        self.change_roster(
            true,
            |roster| {
                let m = roster.resolve_member(member)?;
                let d = roster.resolve_dept(dept)?;
                if !d.members.contains(&m.id) {
                    return Err(RosterError::NotInDept {
                        member: m.name.clone(),
                        dept: d.name.clone(),
                    }
                    .into());
                }
                Ok((d.id.clone(), m.id))
            },
            |tx, (d, m)| write::dept_remove(tx, d, *m),
        )
        .await
        .map(drop)
    }

    /// Admits a pin node by its peer id (or member id): a member with the
    /// pinner role, in no department. Returns its record and the token it
    /// joins with (the network key and members' addresses, no invite).
    pub async fn add_pinner(
        &self,
        who: &str,
        name: Option<&str>,
    ) -> Result<(Member, InviteInfo), NodeError> {
        let id = parse_node_id(who)?;
        let name = name.map_or_else(|| format!("pin-{}", id.short()), str::to_owned);
        let now = self.shared.clock.now();
        let member = self
            .change_roster(
                true,
                |roster| {
                    meshwork_crdt::roster::check_display_name(&name)?;
                    if let Some(m) = roster.member(&id) {
                        return Err(NodeError::Conflict(format!(
                            "{} is already a member ({}{})",
                            m.name,
                            m.role.as_str(),
                            if m.removed { ", removed" } else { "" }
                        )));
                    }
                    Ok(Member {
                        id,
                        name: name.clone(),
                        role: Role::Pinner,
                        joined_at: now,
                        removed: false,
                        invite: None,
                    })
                },
                |tx, m| write::add_member(tx, m.id, &m.name, Role::Pinner, now, None),
            )
            .await?;
        let (workspace, secret, ws_name) = self
            .shared
            .with_ws(|ws| Ok((ws.meta.id, ws.meta.secret, ws.roster_view().name)))?;
        let token = InviteToken {
            workspace,
            secret,
            name: ws_name,
            invite_id: String::new(),
            invite_secret: [0; 32],
            addrs: self.reachable_addrs().await,
        };
        let info = InviteInfo {
            token: token.encode()?,
            id: String::new(),
            expires_at: 0,
        };
        Ok((member, info))
    }

    /// Sets the workspace's pinning policy (admins only); what is not
    /// given stays.
    pub async fn set_policy(
        &self,
        retention: Option<std::time::Duration>,
        replicas: Option<u32>,
    ) -> Result<PinPolicy, NodeError> {
        self.change_roster(
            true,
            |roster| {
                let mut policy = roster.policy;
                if let Some(r) = retention {
                    policy.retention_ms = Millis::try_from(r.as_millis()).unwrap_or(Millis::MAX);
                }
                if let Some(k) = replicas {
                    policy.replicas = k;
                }
                policy.check().map_err(NodeError::BadRequest)?;
                Ok(policy)
            },
            |tx, policy| write::set_policy(tx, policy),
        )
        .await
    }

    /// Makes a member an admin.
    pub async fn promote(&self, member: &str) -> Result<Member, NodeError> {
        self.change_roster(
            true,
            |roster| Ok(roster.resolve_member(member)?.clone()),
            |tx, m| write::set_role(tx, m.id, Role::Admin),
        )
        .await
    }

    /// Removes a member from the workspace: out of every department,
    /// disconnected, and refused from then on.
    pub async fn remove_member(&self, member: &str) -> Result<Member, NodeError> {
        let me = self.member_id();
        self.change_roster(
            true,
            |roster| {
                let m = roster.resolve_member(member)?;
                if m.id == me {
                    return Err(NodeError::BadRequest(
                        "you cannot remove yourself; ask another admin".into(),
                    ));
                }
                Ok(m.clone())
            },
            |tx, m| write::remove_member(tx, m.id),
        )
        .await
    }

    /// Adds members directly (admin only): for bulk onboarding and benchmarks.
    pub async fn add_members(&self, members: &[(MemberId, String)]) -> Result<(), NodeError> {
        let now = self.shared.clock.now();
        self.change_roster(
            true,
            |roster| {
                for (id, name) in members {
                    meshwork_crdt::roster::check_display_name(name)?;
                    if roster.member(id).is_some() {
                        return Err(NodeError::Conflict(format!("{id} is already a member")));
                    }
                }
                Ok(())
            },
            |tx, ()| {
                members.iter().try_for_each(|(id, name)| {
                    write::add_member(tx, *id, name, Role::Member, now, None)
                })
            },
        )
        .await
    }

    /// Departments, sorted by name.
    pub fn depts(&self) -> Result<Vec<Department>, NodeError> {
        Ok(self.roster()?.depts)
    }

    /// Active members, of one department or of the workspace.
    pub fn members(&self, dept: Option<&str>) -> Result<Vec<Member>, NodeError> {
        let roster = self.roster()?;
        let members: Vec<Member> = match dept {
            Some(name) => {
                let d = roster.resolve_dept(name)?;
                roster
                    .active_members()
                    .filter(|m| d.members.contains(&m.id))
                    .cloned()
                    .collect()
            }
            None => roster.active_members().cloned().collect(),
        };
        Ok(members)
    }

    /// The shape of every roster edit: check the caller's role and the
    /// request against the roster (`plan`), then [`Node::change`]. Returns
    /// what `plan` decided.
    async fn change_roster<P>(
        &self,
        admin_only: bool,
        plan: impl FnOnce(&Roster) -> Result<P, NodeError>,
        apply: impl FnOnce(&mut Transaction<'_>, &P) -> Result<(), AutomergeError>,
    ) -> Result<P, NodeError> {
        let me = self.member_id();
        let check = |roster: &Roster, _: &meshwork_crdt::SignedDoc| {
            if admin_only && !roster.is_admin(&me) {
                return Err(RosterError::NotAdmin.into());
            }
            plan(roster)
        };
        self.change(DocRef::Roster, check, apply).await
    }
}

/// A node named by its libp2p peer id (`12D3Koo…`) or its member id (hex).
fn parse_node_id(who: &str) -> Result<MemberId, NodeError> {
    if let Ok(id) = who.parse::<MemberId>() {
        return Ok(id);
    }
    let bad = || {
        NodeError::BadRequest(format!(
            "{who:?} is neither a peer id (12D3Koo…, as `meshwork status` prints it on the pin node) nor a member id"
        ))
    };
    let peer: PeerId = who.parse().map_err(|_| bad())?;
    let key = libp2p::identity::PublicKey::try_decode_protobuf(peer.as_ref().digest())
        .map_err(|_| bad())?
        .try_into_ed25519()
        .map_err(|_| bad())?;
    MemberId::from_bytes(&key.to_bytes()).ok_or_else(bad)
}

fn with_peer(mut addr: Multiaddr, peer: PeerId) -> String {
    if !matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.push(Protocol::P2p(peer));
    }
    addr.to_string()
}
