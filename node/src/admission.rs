//! A member's side of a join: checks an invite presented by a connected
//! peer and, if it holds, writes the admission into the roster.

use libp2p::PeerId;
use meshwork_crdt::roster::{write, Invite, Roster};
use meshwork_crdt::{Millis, SignedChange};

use crate::shared::Shared;
use crate::wire::JoinRequest;

/// Admits `peer` if its invite is valid now. `Ok(None)`: already a member.
/// `Err` carries the reason the joiner will read.
pub(crate) fn admit(
    shared: &Shared,
    peer: PeerId,
    request: &JoinRequest,
    now: Millis,
) -> Result<Option<SignedChange>, String> {
    let joiner = crate::ids::member_of(&peer).ok_or("your peer id is not an ed25519 key")?;
    meshwork_crdt::roster::check_display_name(&request.name).map_err(|e| e.to_string())?;
    let signer = &shared.identity.signer;
    shared
        .with_ws(|ws| {
            if ws.meta.id != request.workspace {
                return Ok(Err("this invite is for a different workspace".to_owned()));
            }
            let roster = ws.roster_view();
            if let Some(m) = roster.member(&joiner) {
                return Ok(if m.removed {
                    Err("you were removed from this workspace".to_owned())
                } else {
                    Ok(None)
                });
            }
            if !roster.is_active(&signer.id()) {
                return Ok(Err(
                    "this node is not an active member and cannot admit anyone".to_owned(),
                ));
            }
            let invite = match check_invite(&roster, request, now) {
                Ok(i) => i.clone(),
                Err(e) => return Ok(Err(e)),
            };
            let change = ws.roster.change(signer, now, |tx| {
                write::redeem_invite(tx, &invite, joiner, &request.name, now)
            })?;
            Ok(Ok(change))
        })
        .unwrap_or_else(|e| Err(e.to_string()))
}

fn check_invite<'r>(
    roster: &'r Roster,
    request: &JoinRequest,
    now: Millis,
) -> Result<&'r Invite, String> {
    let invite = roster.invite(&request.invite_id).ok_or(
        "the member you reached does not know this invite (yet): it may not have reached them, \
             or it is for another workspace; try again, or ask an admin for a new one",
    )?;
    if Invite::hash_secret(&request.invite_secret) != invite.secret_hash {
        return Err("this invite token is damaged or forged".into());
    }
    if invite.redeemed_by.is_some() {
        return Err("this invite was already used; ask an admin for a new one".into());
    }
    if now > invite.expires_at {
        return Err(format!(
            "this invite expired {} ago; ask an admin for a new one",
            human_duration(now - invite.expires_at)
        ));
    }
    if let Some(dept) = &invite.dept {
        let d = roster
            .dept(dept)
            .ok_or("the invite's department no longer exists")?;
        if d.members.len() >= meshwork_crdt::roster::DEPT_CAPACITY {
            return Err(format!("department {:?} is full", d.name));
        }
    }
    Ok(invite)
}

/// "3h 20m", "45s": durations as people read them.
pub fn human_duration(ms: Millis) -> String {
    let s = ms.max(0) / 1000;
    match s {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}
