//! Typed reads of a library.

use automerge::{Automerge, ObjId, ObjType, ReadDoc, Value, ROOT};
use serde::{Deserialize, Serialize};

use crate::read::{child_map as map, scalar};
use crate::{MemberId, Millis};

/// A shared file, as the library records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Media type.
    pub media_type: String,
    /// Hex hash of the ciphertext blob.
    pub blob: String,
    /// Ciphertext size in bytes.
    pub blob_size: u64,
    /// The file key, hex.
    #[serde(skip_serializing)]
    pub key: String,
    /// Who shared it.
    pub uploader: MemberId,
    /// When.
    pub shared_at: Millis,
    /// Members who said they keep its blob, sorted.
    pub holders: Vec<MemberId>,
    /// For a folder: its files, in the order of their bytes in the blob.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub entries: Option<Vec<super::folder::FolderEntry>>,
}

/// A reader over a library document.
pub struct Library<'a> {
    doc: &'a Automerge,
    files: Option<ObjId>,
}

impl<'a> Library<'a> {
    /// Reads `doc` as a library (an empty one if it has no library layout).
    pub fn new(doc: &'a Automerge) -> Self {
        let files = match doc.get(ROOT, "files") {
            Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
            _ => None,
        };
        Self { doc, files }
    }

    /// Every file, newest first (ties by id).
    pub fn files(&self) -> Vec<FileEntry> {
        let Some(files) = &self.files else {
            return Vec::new();
        };
        let mut out: Vec<FileEntry> = self
            .doc
            .keys(files)
            .filter_map(|id| self.file(&id))
            .collect();
        out.sort_by(|a, b| b.shared_at.cmp(&a.shared_at).then(a.id.cmp(&b.id)));
        out
    }

    /// The file with this id.
    pub fn file(&self, id: &str) -> Option<FileEntry> {
        let obj = map(self.doc, self.files.as_ref()?, id)?;
        let s = |k: &str| scalar(self.doc, &obj, k).and_then(|v| v.as_str().map(str::to_owned));
        let n = |k: &str| scalar(self.doc, &obj, k).and_then(|v| v.as_i64());
        let mut holders: Vec<MemberId> = map(self.doc, &obj, "holders")
            .map(|h| self.doc.keys(&h).filter_map(|k| k.parse().ok()).collect())
            .unwrap_or_default();
        holders.sort();
        Some(FileEntry {
            name: s("name")?,
            size: u64::try_from(n("size")?).ok()?,
            media_type: s("media_type").unwrap_or_default(),
            blob: s("blob")?,
            blob_size: u64::try_from(n("blob_size")?).ok()?,
            key: s("key")?,
            uploader: s("uploader")?.parse().ok()?,
            shared_at: n("shared_at").unwrap_or(0),
            holders,
            entries: match s("entries") {
                Some(text) => Some(super::folder::decode(&text).ok()?),
                None => None,
            },
            id: id.to_owned(),
        })
    }

    /// The file whose blob has this hex hash.
    pub fn by_blob(&self, blob: &str) -> Option<FileEntry> {
        self.files().into_iter().find(|f| f.blob == blob)
    }
}
