//! The only functions that write the library layout.

use automerge::transaction::Transactable;
use automerge::{AutomergeError, ObjId, ObjType, ReadDoc, Value, ROOT};

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

/// Records a shared file on its shelf ([`super::shelf_of`], made if it is
/// not there yet; a string that is not a file id goes directly in `files`);
/// its uploader holds it.
pub fn share<T: Transactable>(tx: &mut T, f: &NewFile<'_>) -> Result<(), AutomergeError> {
    let files = files(tx)?;
    let parent = match super::shelf_of(f.id) {
        Some(shelf) => match tx.get(&files, shelf.as_str())? {
            Some((Value::Object(ObjType::Map), obj)) => obj,
            _ => tx.put_object(&files, shelf.as_str(), ObjType::Map)?,
        },
        None => files,
    };
    let obj = tx.put_object(&parent, f.id, ObjType::Map)?;
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

/// Says that `member` keeps (`on`) or no longer keeps a file's blob.
pub fn hold<T: Transactable>(
    tx: &mut T,
    file: &str,
    member: MemberId,
    on: bool,
) -> Result<(), AutomergeError> {
    let files = files(tx)?;
    let Some(obj) = super::view::record(tx, &files, file) else {
        return Err(AutomergeError::InvalidObjId(format!("no file {file}")));
    };
    let holders = match tx.get(&obj, "holders")? {
        Some((Value::Object(ObjType::Map), h)) => h,
        _ => tx.put_object(&obj, "holders", ObjType::Map)?,
    };
    if on {
        tx.put(&holders, member.to_string(), true)
    } else {
        tx.delete(&holders, member.to_string())
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
