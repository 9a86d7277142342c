//! Typed reads of a library.

use std::collections::HashMap;

use automerge::{Automerge, ObjId, ObjType, ReadDoc, Value, ROOT};
use serde::{Deserialize, Serialize};

use super::is_shelf;
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
    /// The file key, hex. Never serialised (it would reach the control
    /// API's answers); read back from one, it is empty.
    #[serde(skip_serializing, default)]
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
        let mut out: Vec<FileEntry> = self
            .records()
            .into_iter()
            .filter_map(|(id, obj)| self.entry(id, &obj))
            .collect();
        out.sort_by(|a, b| b.shared_at.cmp(&a.shared_at).then(a.id.cmp(&b.id)));
        out
    }

    /// The file with this id.
    pub fn file(&self, id: &str) -> Option<FileEntry> {
        let obj = record(self.doc, self.files.as_ref()?, id)?;
        self.entry(id.to_owned(), &obj)
    }

    /// The file whose record is `obj`. Its fields are read in one pass over
    /// its map (a lookup per field seeks through the whole document).
    fn entry(&self, id: String, obj: &ObjId) -> Option<FileEntry> {
        let mut text: HashMap<String, String> = HashMap::new();
        let mut number: HashMap<String, i64> = HashMap::new();
        let mut holders: Vec<MemberId> = Vec::new();
        for item in self.doc.map_range(obj, ..) {
            let key = item.key.to_string();
            match item.value.clone().into_value() {
                Value::Object(ObjType::Map) if key == "holders" => {
                    holders = self
                        .doc
                        .keys(item.id())
                        .filter_map(|k| k.parse().ok())
                        .collect();
                }
                value => {
                    if let Some(s) = value.as_str() {
                        text.insert(key, s.to_owned());
                    } else if let Some(n) = value.as_i64() {
                        number.insert(key, n);
                    }
                }
            }
        }
        holders.sort();
        let mut s = |k: &str| text.remove(k);
        let n = |k: &str| number.get(k).copied();
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
            id,
        })
    }

    /// The file whose blob has this hex hash (the newest, if several
    /// files share one blob). Only each file's `blob` is read until one
    /// matches: a scan of every file, so for lookups a node repeats, keep
    /// a [`super::BlobIndex`].
    pub fn by_blob(&self, blob: &str) -> Option<FileEntry> {
        let mut found = self.where_str("blob", blob);
        found.sort_by(|a, b| b.shared_at.cmp(&a.shared_at).then(a.id.cmp(&b.id)));
        found.into_iter().next()
    }

    /// Each file's blob and id, reading that field alone.
    pub fn blobs(&self) -> Vec<(String, String)> {
        self.records()
            .into_iter()
            .filter_map(|(id, obj)| {
                let blob = scalar(self.doc, &obj, "blob")?.as_str()?.to_owned();
                Some((blob, id))
            })
            .collect()
    }

    /// The files named `name`.
    pub fn named(&self, name: &str) -> Vec<FileEntry> {
        self.where_str("name", name)
    }

    /// The files whose `field` is the string `value`: only that field of
    /// the others is read (a library holds every file ever shared).
    fn where_str(&self, field: &str, value: &str) -> Vec<FileEntry> {
        self.records()
            .into_iter()
            .filter(|(_, obj)| {
                scalar(self.doc, obj, field).is_some_and(|v| v.as_str() == Some(value))
            })
            .filter_map(|(id, obj)| self.entry(id, &obj))
            .collect()
    }

    /// Every file's id and record: on each shelf, and directly in `files`
    /// (a library from before shelves).
    fn records(&self) -> Vec<(String, ObjId)> {
        let Some(files) = self.files.as_ref() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for key in self.doc.keys(files) {
            let Some(obj) = map(self.doc, files, &key) else {
                continue;
            };
            if is_shelf(&key) {
                out.extend(
                    self.doc
                        .keys(&obj)
                        .filter_map(|id| Some((id.clone(), map(self.doc, &obj, &id)?))),
                );
            } else {
                out.push((key, obj));
            }
        }
        out
    }
}

/// Where the record of file `id` is in `files`, in the document now.
pub(crate) fn record<R: ReadDoc>(doc: &R, files: &ObjId, id: &str) -> Option<ObjId> {
    super::locate(files, id, |parent, key| map(doc, parent, key))
}

#[cfg(test)]
mod tests {
    use automerge::AutomergeError;

    use super::*;
    use crate::library::write::{share, NewFile};
    use crate::Signer;

    fn file<'a>(id: &'a str, blob: &'a str, shared_at: Millis, uploader: MemberId) -> NewFile<'a> {
        NewFile {
            id,
            name: "Q3 report.xlsx",
            size: 1234,
            media_type: "application/vnd.ms-excel",
            blob,
            blob_size: 1300,
            key: "00ff",
            uploader,
            shared_at,
            entries: None,
        }
    }

    #[test]
    fn a_file_reads_back_as_written_and_a_blob_or_a_name_finds_its_files() {
        let me = Signer::from_secret([3; 32]).id();
        let mut doc = crate::library::genesis("d").unwrap();
        doc.transact::<_, _, AutomergeError>(|tx| {
            share(tx, &file("a1", "b0", 10, me))?;
            share(tx, &file("a2", "b0", 20, me))?;
            share(tx, &file("a3", "b9", 30, me))
        })
        .unwrap();
        let library = Library::new(&doc);
        let one = library.file("a1").unwrap();
        assert_eq!(
            (
                one.name.as_str(),
                one.size,
                one.media_type.as_str(),
                one.blob.as_str()
            ),
            ("Q3 report.xlsx", 1234, "application/vnd.ms-excel", "b0")
        );
        assert_eq!(
            (one.blob_size, one.key.as_str(), one.uploader),
            (1300, "00ff", me)
        );
        assert_eq!(
            (one.shared_at, one.holders.clone(), one.entries),
            (10, vec![me], None)
        );
        assert_eq!(library.by_blob("b0").unwrap().id, "a2");
        assert_eq!(library.by_blob("b9").unwrap().id, "a3");
        assert!(library.by_blob("zz").is_none());
        assert_eq!(library.files().len(), 3);
        assert_eq!(library.named("Q3 report.xlsx").len(), 3);
        assert!(library.named("a1").is_empty(), "an id is not a name");
    }
}
