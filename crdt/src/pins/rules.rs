//! Who may write what in the pin ledger. Judged by a change's own
//! operations, against the ledger at its dependencies and the roster at the
//! heads it cites ([`crate::cite`]).
//!
//! - Only active members write.
//! - A new request names a blob (64 hex digits) not requested before, its
//!   requester is the signer, and its department is one the signer belongs
//!   to; once written it does not change.
//! - A member writes or withdraws only its own commitments, and only its
//!   own quota report.
//! - A request's and a commitment's deadline fall in the document's day
//!   ([`super::Epoch`]): nothing in it outlives the day, so dropping the
//!   day whole loses nothing live.

use std::collections::HashSet;

use automerge::legacy::{Key, OpType};
use automerge::{Automerge, Change, ObjType, ScalarValue};

use super::{epoch_of, is_blob_hex, Epoch};
use crate::read::{object_path, View};
use crate::signed::Judging;
use crate::MemberId;

/// The rules of one day of a workspace's pin ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinsRules {
    /// The day whose deadlines this document holds.
    pub epoch: Epoch,
}

const REQUEST_FIELDS: [&str; 4] = ["dept", "size", "until", "by"];
const REPORT_FIELDS: [&str; 3] = ["quota", "used", "refused"];

pub(crate) fn authorize(
    rules: &PinsRules,
    doc: &Automerge,
    change: &Change,
    author: MemberId,
    judging: Judging<'_>,
) -> Result<(), String> {
    let roster = judging.roster;
    if change.deps().is_empty() {
        return Err("a pin ledger change without dependencies that is not its genesis".into());
    }
    if !roster.is_active(&author) {
        return Err(format!(
            "{} is not a member of the workspace",
            author.short()
        ));
    }
    let me = author.to_string();
    let before = View::at(doc, change.deps());
    let mut created: HashSet<String> = HashSet::new();
    for op in change.decode().operations {
        let path =
            object_path(doc, &op.obj.to_string()).ok_or("an operation on an unknown object")?;
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let key = match &op.key {
            Key::Map(k) => Some(k.to_string()),
            Key::Seq(_) => None,
        };
        let denied = || {
            format!(
                "may not write /{}/{}",
                path.join("/"),
                key.as_deref().unwrap_or("[sequence]")
            )
        };
        let make_map = matches!(op.action, OpType::Make(ObjType::Map));
        match (path.as_slice(), key.as_deref()) {
            (["requests"], Some(blob)) if make_map && is_blob_hex(blob) => {
                if before.path(&["requests", blob]).is_some() || !created.insert(blob.to_owned()) {
                    return Err(format!("blob {blob} was already requested"));
                }
            }
            (["requests", blob], Some(field))
                if created.contains(*blob) && REQUEST_FIELDS.contains(&field) && !op.insert => {}
            (["commits"], Some(k))
                if k.split_once('/')
                    .is_some_and(|(blob, who)| is_blob_hex(blob) && who == me) =>
            {
                match &op.action {
                    OpType::Put(ScalarValue::Int(until)) if epoch_of(*until) == rules.epoch => {}
                    OpType::Delete => {}
                    _ => {
                        return Err(format!(
                            "commitment {k} has no deadline in day {}",
                            rules.epoch
                        ))
                    }
                }
            }
            (["nodes"], Some(who)) if who == me && make_map => {}
            (["nodes", who], Some(field)) if *who == me && REPORT_FIELDS.contains(&field) => {}
            _ => return Err(denied()),
        }
    }
    let after_heads = [change.hash()];
    let after = View::at(doc, &after_heads);
    for blob in &created {
        let obj = after
            .path(&["requests", blob])
            .ok_or("a request that vanished")?;
        if after.str(&obj, "by").as_deref() != Some(me.as_str()) {
            return Err(format!(
                "request {blob} names a requester other than its signer"
            ));
        }
        let dept = after.str(&obj, "dept").unwrap_or_default();
        if !roster
            .dept(&dept)
            .is_some_and(|d| d.members.contains(&author))
        {
            return Err(format!(
                "request {blob} names a department its signer is not in"
            ));
        }
        if after.int(&obj, "size").is_none_or(|n| n < 0) {
            return Err(format!("request {blob} has no valid size"));
        }
        if after.int(&obj, "until").map(epoch_of) != Some(rules.epoch) {
            return Err(format!(
                "request {blob} has no deadline in day {}",
                rules.epoch
            ));
        }
    }
    Ok(())
}
