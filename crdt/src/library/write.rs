//! The only functions that write the library layout.

use automerge::transaction::Transactable;
use automerge::{AutomergeError, ObjId, ObjType, ReadDoc, Value, ROOT};

use super::record::{holder_key, Packed, Place};
use crate::{MemberId, Millis};

/// What sharing a file records.
#[derive(Clone, Debug)]
pub struct NewFile<'a> {
    /// Its id ([`super::file_id`]).
    pub id: &'a str,
    /// Its name as shown.
    pub name: &'a str,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Media type, e.g. `image/png`.
    pub media_type: &'a str,
    /// Hex hash of the ciphertext blob.
    pub blob: &'a str,
    /// Ciphertext size in bytes.
    pub blob_size: u64,
    /// The file key, hex (only department members read this document).
    pub key: &'a str,
    /// The uploader: the signer.
    pub uploader: MemberId,
    /// When, by the uploader's clock.
    pub shared_at: Millis,
    /// For a folder: its entries ([`super::folder::encode`]).
    pub entries: Option<&'a str>,
}

/// Records a shared file: packed on its shelf ([`super::shelf_of`], made
/// if it is not there yet), held by its uploader. A string that is not a
/// file id goes directly in `files` as a map of fields, as every file did
/// before shelves.
pub fn share<T: Transactable>(tx: &mut T, f: &NewFile<'_>) -> Result<(), AutomergeError> {
    let files = files(tx)?;
    let Some(shelf) = super::shelf_of(f.id) else {
        return share_as_map(tx, &files, f);
    };
    let shelf = crate::read::child_map_or_make(tx, &files, &shelf)?;
    let record = Packed {
        name: f.name.to_owned(),
        size: f.size,
        media_type: f.media_type.to_owned(),
        blob: f.blob.to_owned(),
        blob_size: f.blob_size,
        key: f.key.to_owned(),
        uploader: f.uploader,
        shared_at: f.shared_at,
        entries: f.entries.map(str::to_owned),
    };
    tx.put(&shelf, f.id, record.encode())?;
    tx.put(&shelf, holder_key(f.id, &f.uploader), true)
}

/// A record as a map of fields, directly in `files`: the layout before
/// shelves, which benchmarks and tests of that layout still write.
fn share_as_map<T: Transactable>(
    tx: &mut T,
    files: &ObjId,
    f: &NewFile<'_>,
) -> Result<(), AutomergeError> {
    let obj = tx.put_object(files, f.id, ObjType::Map)?;
    tx.put(&obj, "name", f.name)?;
    tx.put(&obj, "size", clamp(f.size))?;
    tx.put(&obj, "media_type", f.media_type)?;
    tx.put(&obj, "blob", f.blob)?;
    tx.put(&obj, "blob_size", clamp(f.blob_size))?;
    tx.put(&obj, "key", f.key)?;
    tx.put(&obj, "uploader", f.uploader.to_string())?;
    tx.put(&obj, "shared_at", f.shared_at)?;
    if let Some(entries) = f.entries {
        tx.put(&obj, "entries", entries)?;
    }
    let holders = tx.put_object(&obj, "holders", ObjType::Map)?;
    tx.put(&holders, f.uploader.to_string(), true)
}

/// Says that `member` keeps (`on`) or no longer keeps a file's blob: beside
/// a packed record on its shelf, or in a map record's `holders`.
pub fn hold<T: Transactable>(
    tx: &mut T,
    file: &str,
    member: MemberId,
    on: bool,
) -> Result<(), AutomergeError> {
    let files = files(tx)?;
    let (parent, key) = match super::view::place(tx, &files, file) {
        Some(Place::Packed { shelf, .. }) => (shelf, holder_key(file, &member)),
        Some(Place::Map(obj)) => {
            let holders = match tx.get(&obj, "holders")? {
                Some((Value::Object(ObjType::Map), h)) => h,
                _ => tx.put_object(&obj, "holders", ObjType::Map)?,
            };
            (holders, member.to_string())
        }
        None => return Err(AutomergeError::InvalidObjId(format!("no file {file}"))),
    };
    if on {
        tx.put(&parent, key, true)
    } else {
        tx.delete(&parent, key)
    }
}

fn files<T: ReadDoc>(tx: &T) -> Result<ObjId, AutomergeError> {
    match tx.get(ROOT, "files")? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(AutomergeError::InvalidObjId(
            "library has no files map".into(),
        )),
    }
}

/// Automerge integers are signed: sizes past `i64::MAX` cannot occur.
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
