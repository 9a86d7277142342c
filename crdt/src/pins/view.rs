//! Typed reads of the pin ledger.

use std::collections::HashMap;

use automerge::{Automerge, ObjId, ObjType, ReadDoc, Value, ROOT};
use serde::{Deserialize, Serialize};

use crate::read::{child_map as map, scalar};
use crate::{MemberId, Millis};

/// A blob that must stay available until `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinRequest {
    /// Hex hash of the blob (ciphertext).
    pub blob: String,
    /// The department whose library lists it (its members may fetch it).
    pub dept: String,
    /// Its size in bytes.
    pub size: u64,
    /// Until when, by the requester's clock.
    pub until: Millis,
    /// Who asked: the uploader.
    pub by: MemberId,
}

/// A pinner's promise to keep a blob until `until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment {
    /// The pinner.
    pub member: MemberId,
    /// Until when.
    pub until: Millis,
}

/// What a pin node says about its capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinNodeReport {
    /// The pin node.
    pub member: MemberId,
    /// Its quota in bytes.
    pub quota: u64,
    /// Bytes it has committed to.
    pub used: u64,
    /// Requests it could not take because of its quota.
    pub refused: u64,
}

/// A reader over a pin ledger.
pub struct Pins<'a> {
    doc: &'a Automerge,
    requests: Option<ObjId>,
    commits: Option<ObjId>,
    nodes: Option<ObjId>,
}

impl<'a> Pins<'a> {
    /// Reads `doc` as a pin ledger (an empty one without the layout).
    pub fn new(doc: &'a Automerge) -> Self {
        let top = |key: &str| match doc.get(ROOT, key) {
            Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
            _ => None,
        };
        Self {
            doc,
            requests: top("requests"),
            commits: top("commits"),
            nodes: top("nodes"),
        }
    }

    /// Every request, soonest deadline first.
    pub fn requests(&self) -> Vec<PinRequest> {
        let Some(requests) = &self.requests else {
            return Vec::new();
        };
        let mut out: Vec<PinRequest> = self
            .doc
            .keys(requests)
            .filter_map(|blob| self.request(&blob))
            .collect();
        out.sort_by(|a, b| a.until.cmp(&b.until).then(a.blob.cmp(&b.blob)));
        out
    }

    /// The request for `blob`.
    pub fn request(&self, blob: &str) -> Option<PinRequest> {
        let obj = map(self.doc, self.requests.as_ref()?, blob)?;
        let s = |k: &str| scalar(self.doc, &obj, k).and_then(|v| v.as_str().map(str::to_owned));
        let n = |k: &str| scalar(self.doc, &obj, k).and_then(|v| v.as_i64());
        Some(PinRequest {
            blob: blob.to_owned(),
            dept: s("dept")?,
            size: u64::try_from(n("size")?).ok()?,
            until: n("until")?,
            by: s("by")?.parse().ok()?,
        })
    }

    /// The commitments to `blob`, by pinner.
    pub fn commitments(&self, blob: &str) -> Vec<Commitment> {
        let Some(commits) = &self.commits else {
            return Vec::new();
        };
        // '/' sorts just before '0': the keys "<blob>/…" form one range.
        self.doc
            .map_range(commits, format!("{blob}/")..format!("{blob}0"))
            .filter_map(|item| {
                commitment(&item.key, &Value::from(item.value.clone())).map(|(_, c)| c)
            })
            .collect()
    }

    /// Every commitment, by blob.
    pub fn all_commitments(&self) -> HashMap<String, Vec<Commitment>> {
        let mut out: HashMap<String, Vec<Commitment>> = HashMap::new();
        if let Some(commits) = &self.commits {
            for item in self.doc.map_range(commits, ..) {
                if let Some((blob, c)) = commitment(&item.key, &Value::from(item.value.clone())) {
                    out.entry(blob.to_owned()).or_default().push(c);
                }
            }
        }
        out
    }

    /// What pin nodes report about their quota.
    pub fn nodes(&self) -> Vec<PinNodeReport> {
        let Some(nodes) = &self.nodes else {
            return Vec::new();
        };
        self.doc
            .keys(nodes)
            .filter_map(|id| {
                let obj = map(self.doc, nodes, &id)?;
                let n = |k: &str| {
                    scalar(self.doc, &obj, k)
                        .and_then(|v| v.as_i64())
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0)
                };
                Some(PinNodeReport {
                    member: id.parse().ok()?,
                    quota: n("quota"),
                    used: n("used"),
                    refused: n("refused"),
                })
            })
            .collect()
    }
}

fn commitment<'k>(key: &'k str, value: &Value<'_>) -> Option<(&'k str, Commitment)> {
    let (blob, member) = key.split_once('/')?;
    let until = match value {
        Value::Scalar(s) => s.as_i64()?,
        _ => return None,
    };
    Some((
        blob,
        Commitment {
            member: member.parse().ok()?,
            until,
        },
    ))
}
