//! A file's record as a library holds it: packed into one string on its
//! shelf, its holders beside it (the layout since session 21), or a map of
//! fields with its holders inside (the layouts before).

use automerge::{ObjId, ObjType, Value};
use serde::{Deserialize, Serialize};

use crate::{MemberId, Millis};

/// A packed record: what sharing a file says about it, as JSON. Nothing
/// else: a field the rules do not know is refused (every node keeps a
/// record for as long as the library lives).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Packed {
    pub name: String,
    pub size: u64,
    #[serde(default)]
    pub media_type: String,
    pub blob: String,
    pub blob_size: u64,
    pub key: String,
    pub uploader: MemberId,
    #[serde(default)]
    pub shared_at: Millis,
    /// For a folder: its entries ([`super::folder::encode`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<String>,
}

impl Packed {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a record always serialises")
    }

    /// Reads a packed record; the error says what is wrong with it.
    pub fn decode(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("an unreadable record: {e}"))
    }
}

/// The two fields a scan of every record reads ([`super::Library::by_blob`],
/// [`super::Library::named`], [`super::Library::blobs`]), without the rest
/// (a folder's entries may be long).
#[derive(Deserialize)]
pub(crate) struct Glance {
    pub name: String,
    pub blob: String,
}

impl Glance {
    pub fn of(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// What is under a key of a map, as far as finding a record goes.
pub(crate) enum Slot {
    Map(ObjId),
    Text(String),
    Other,
}

impl Slot {
    pub fn of(value: Value<'_>, obj: ObjId) -> Self {
        match value {
            Value::Object(ObjType::Map) => Self::Map(obj),
            Value::Scalar(s) => match s.as_str() {
                Some(text) => Self::Text(text.to_owned()),
                None => Self::Other,
            },
            Value::Object(_) => Self::Other,
        }
    }
}

/// Where a file's record is, and in which form.
#[derive(Clone, Debug)]
pub(crate) enum Place {
    /// A map of fields with a `holders` map inside.
    Map(ObjId),
    /// Packed on `shelf`, which holds its holders too ([`holder_key`]).
    Packed { shelf: ObjId, text: String },
}

/// The key, on a file's shelf, that says `member` holds file `id`.
pub(crate) fn holder_key(id: &str, member: &MemberId) -> String {
    format!("{id}/{member}")
}
