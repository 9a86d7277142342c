//! Typed reads of a library.

use std::collections::{HashMap, HashSet};

use automerge::{Automerge, ObjId, ObjType, ReadDoc, Value, ROOT};
use serde::{Deserialize, Serialize};

use super::is_shelf;
use super::record::{Glance, Packed, Place, Slot};
use crate::read::beside_range;
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
            .filter_map(|(id, found)| self.entry(id, found))
            .collect();
        out.sort_by(|a, b| b.shared_at.cmp(&a.shared_at).then(a.id.cmp(&b.id)));
        out
    }

    /// The file with this id.
    pub fn file(&self, id: &str) -> Option<FileEntry> {
        let found = match place(self.doc, self.files.as_ref()?, id)? {
            Place::Map(obj) => Found::Map(obj),
            Place::Packed { shelf, text } => {
                let holders = self
                    .doc
                    .map_range(&shelf, beside_range(id))
                    .filter(|item| is_true(item.value.clone().into_value()))
                    .filter_map(|item| item.key.split_once('/')?.1.parse().ok())
                    .collect();
                Found::Packed { text, holders }
            }
        };
        self.entry(id.to_owned(), found)
    }

    /// The file whose record is `found`.
    fn entry(&self, id: String, found: Found) -> Option<FileEntry> {
        match found {
            Found::Map(obj) => self.map_entry(id, &obj),
            Found::Packed { text, mut holders } => {
                let r = Packed::decode(&text).ok()?;
                holders.sort();
                Some(FileEntry {
                    id,
                    name: r.name,
                    size: r.size,
                    media_type: r.media_type,
                    blob: r.blob,
                    blob_size: r.blob_size,
                    key: r.key,
                    uploader: r.uploader,
                    shared_at: r.shared_at,
                    holders,
                    entries: match r.entries {
                        Some(text) => Some(super::folder::decode(&text).ok()?),
                        None => None,
                    },
                })
            }
        }
    }

    /// The file whose record is the map `obj`. Its fields are read in one
    /// pass over its map (a lookup per field seeks through the whole
    /// document).
    fn map_entry(&self, id: String, obj: &ObjId) -> Option<FileEntry> {
        let mut text: HashMap<String, String> = HashMap::new();
        let mut number: HashMap<String, i64> = HashMap::new();
        let mut holders: Vec<MemberId> = Vec::new();
        for item in self.doc.map_range(obj, ..) {
            let key = item.key.to_string();
            match item.value.clone().into_value() {
                Value::Object(ObjType::Map) if key == "holders" => {
                    holders = self
                        .doc
                        .map_range(item.id(), ..)
                        .filter(|h| is_true(h.value.clone().into_value()))
                        .filter_map(|h| h.key.parse().ok())
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
    /// files share one blob). Only each file's blob (and a packed record's
    /// name) is read: a scan of every file, so for lookups a node repeats,
    /// keep a [`super::BlobIndex`].
    pub fn by_blob(&self, blob: &str) -> Option<FileEntry> {
        let mut found = self.where_str(Field::Blob, blob);
        found.sort_by(|a, b| b.shared_at.cmp(&a.shared_at).then(a.id.cmp(&b.id)));
        found.into_iter().next()
    }

    /// Each file's blob and id, reading no more of each record than its
    /// blob and name.
    pub fn blobs(&self) -> Vec<(String, String)> {
        self.records()
            .into_iter()
            .filter_map(|(id, found)| Some((self.field(&found, Field::Blob)?, id)))
            .collect()
    }

    /// The files named `name`.
    pub fn named(&self, name: &str) -> Vec<FileEntry> {
        self.where_str(Field::Name, name)
    }

    /// The files whose `field` is `value`: of the others, only that field
    /// (and a packed record's name and blob) is read: a library holds
    /// every file ever shared.
    fn where_str(&self, field: Field, value: &str) -> Vec<FileEntry> {
        self.records()
            .into_iter()
            .filter(|(_, found)| self.field(found, field).as_deref() == Some(value))
            .filter_map(|(id, found)| self.entry(id, found))
            .collect()
    }

    /// One text field of a record.
    fn field(&self, found: &Found, field: Field) -> Option<String> {
        match found {
            Found::Map(obj) => {
                let key = match field {
                    Field::Blob => "blob",
                    Field::Name => "name",
                };
                Some(scalar(self.doc, obj, key)?.as_str()?.to_owned())
            }
            Found::Packed { text, .. } => {
                let r = Glance::of(text)?;
                Some(match field {
                    Field::Blob => r.blob,
                    Field::Name => r.name,
                })
            }
        }
    }

    /// Every file's id and record: on each shelf, and directly in `files`
    /// (a library from before shelves).
    fn records(&self) -> Vec<(String, Found)> {
        let Some(files) = self.files.as_ref() else {
            return Vec::new();
        };
        let (mut out, mut direct) = (Vec::new(), Vec::new());
        for key in self.doc.keys(files) {
            let Some(obj) = map(self.doc, files, &key) else {
                continue;
            };
            if is_shelf(&key) {
                self.shelf(&obj, &mut out);
            } else {
                direct.push((key, Found::Map(obj)));
            }
        }
        // An id both on its shelf and directly in `files` (two changes of
        // one uploader made concurrently: the rules refuse it otherwise)
        // is the one on its shelf, as `file` finds it.
        let shelved: HashSet<&str> = out.iter().map(|(id, _)| id.as_str()).collect();
        direct.retain(|(id, _)| !shelved.contains(id.as_str()));
        out.extend(direct);
        out
    }

    /// The records on `shelf`, in one pass over it: a packed record's
    /// holders follow it (`<id>/<member>` sorts right after `<id>`).
    fn shelf(&self, shelf: &ObjId, out: &mut Vec<(String, Found)>) {
        for item in self.doc.map_range(shelf, ..) {
            let value = item.value.clone().into_value();
            match item.key.split_once('/') {
                Some((id, member)) => {
                    if let Some((last, Found::Packed { holders, .. })) = out.last_mut() {
                        if last == id && is_true(value) {
                            holders.extend(member.parse::<MemberId>().ok());
                        }
                    }
                }
                None => match Slot::of(value, item.id()) {
                    Slot::Map(obj) => out.push((item.key.to_string(), Found::Map(obj))),
                    Slot::Text(text) => out.push((
                        item.key.to_string(),
                        Found::Packed {
                            text,
                            holders: Vec::new(),
                        },
                    )),
                    Slot::Other => {}
                },
            }
        }
    }
}

/// A record as found, with what reading it whole takes.
enum Found {
    Map(ObjId),
    Packed {
        text: String,
        holders: Vec<MemberId>,
    },
}

#[derive(Clone, Copy)]
enum Field {
    Blob,
    Name,
}

fn is_true(value: Value<'_>) -> bool {
    matches!(value, Value::Scalar(s) if s.as_bool() == Some(true))
}

/// Where the record of file `id` is in `files`, in the document now.
pub(crate) fn place<R: ReadDoc>(doc: &R, files: &ObjId, id: &str) -> Option<Place> {
    super::locate(files, id, |parent, key| {
        let (value, obj) = doc.get(parent, key).ok()??;
        Some(Slot::of(value, obj))
    })
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
