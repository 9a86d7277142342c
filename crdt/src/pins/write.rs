//! The only functions that write the pin ledger's layout.

use automerge::transaction::Transactable;
use automerge::{AutomergeError, ObjId, ObjType, ReadDoc, Value, ROOT};

use super::{commit_key, PinRequest};
use crate::{MemberId, Millis};

/// Publishes a request: `r.blob` must stay available until `r.until`.
pub fn request<T: Transactable>(tx: &mut T, r: &PinRequest) -> Result<(), AutomergeError> {
    let requests = top(tx, "requests")?;
    let obj = tx.put_object(&requests, r.blob.as_str(), ObjType::Map)?;
    tx.put(&obj, "dept", r.dept.as_str())?;
    tx.put(&obj, "size", i64::try_from(r.size).unwrap_or(i64::MAX))?;
    tx.put(&obj, "until", r.until)?;
    tx.put(&obj, "by", r.by.to_string())
}

/// `member` commits to keep `blob` until `until`.
pub fn commit<T: Transactable>(
    tx: &mut T,
    blob: &str,
    member: &MemberId,
    until: Millis,
) -> Result<(), AutomergeError> {
    let commits = top(tx, "commits")?;
    tx.put(&commits, commit_key(blob, member), until)
}

/// `member` withdraws its commitment to `blob`.
pub fn release<T: Transactable>(
    tx: &mut T,
    blob: &str,
    member: &MemberId,
) -> Result<(), AutomergeError> {
    let commits = top(tx, "commits")?;
    tx.delete(&commits, commit_key(blob, member))
}

/// A pin node reports its quota, what it has committed and what it refused.
pub fn report<T: Transactable>(
    tx: &mut T,
    member: &MemberId,
    quota: u64,
    used: u64,
    refused: u64,
) -> Result<(), AutomergeError> {
    let nodes = top(tx, "nodes")?;
    let obj = match tx.get(&nodes, member.to_string())? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => tx.put_object(&nodes, member.to_string(), ObjType::Map)?,
    };
    let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    tx.put(&obj, "quota", int(quota))?;
    tx.put(&obj, "used", int(used))?;
    tx.put(&obj, "refused", int(refused))
}

fn top<T: ReadDoc>(tx: &T, key: &str) -> Result<ObjId, AutomergeError> {
    match tx.get(ROOT, key)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(AutomergeError::InvalidObjId(format!(
            "the pin ledger has no {key} map"
        ))),
    }
}
