//! The store's thumbnails: what [`crate::thumbnail`] made of an image, kept
//! by blob hash so that the next request costs a lookup — the thumbnail, or
//! why the image got none (a hostile file is decoded once, not on every
//! page view). What is kept follows what is live: at most a [`Bound`] of
//! entries and bytes, the oldest going first, and an entry goes with its
//! blob when the blob is collected ([`Store::forget_thumbnail`]). Not
//! flushed: a cache lost to a crash is made again.

use std::convert::Infallible;

use serde::Serialize;
use sled::transaction::{
    ConflictableTransactionResult, TransactionError, Transactional, TransactionalTree,
};

use super::Store;
use crate::thumbnail::{Kind, Thumbnail};
use crate::NodeError;

/// What is kept of an image: its thumbnail, or why it has none.
pub type Kept = Result<Thumbnail, String>;

/// The most the store keeps.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// Entries (thumbnails and refusals).
    pub count: usize,
    /// Bytes, all entries together.
    pub bytes: u64,
}

/// What the store keeps now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ThumbnailsKept {
    /// Entries (thumbnails and refusals).
    pub count: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// An entry's layout: this version, what it holds, when it was made, then
/// the thumbnail's bytes or the refusal's text. An entry of another version
/// is made again.
const VERSION: u8 = 1;
const JPEG: u8 = b'j';
const PNG: u8 = b'p';
const REFUSED: u8 = b'r';
const HEAD: usize = 10;

impl Store {
    /// What is kept of blob `blob`'s image, if anything.
    pub fn thumbnail(&self, blob: &[u8; 32]) -> Result<Option<Kept>, NodeError> {
        Ok(self.thumbnails.get(blob)?.as_deref().and_then(decode))
    }

    /// Keeps `kept` for blob `blob` (in place of what was), then lets the
    /// oldest entries go until what is kept is within `bound`.
    pub fn keep_thumbnail(
        &self,
        blob: &[u8; 32],
        kept: &Kept,
        bound: Bound,
    ) -> Result<(), NodeError> {
        let made = self.db.generate_id()?;
        let value = encode(made, kept);
        let mut order = blob.to_vec();
        order.extend((value.len() as u64).to_be_bytes());
        transact((&self.thumbnails, &self.thumbnail_order), |t, o| {
            if let Some(old) = t.insert(blob, value.as_slice())? {
                if let Some(old) = made_at(&old) {
                    o.remove(&old.to_be_bytes())?;
                }
            }
            o.insert(&made.to_be_bytes(), order.as_slice())?;
            Ok(())
        })?;
        self.evict(bound)
    }

    /// Forgets what is kept of blob `blob`'s image (the blob is gone).
    pub fn forget_thumbnail(&self, blob: &[u8; 32]) -> Result<(), NodeError> {
        transact((&self.thumbnails, &self.thumbnail_order), |t, o| {
            if let Some(old) = t.remove(blob)? {
                if let Some(old) = made_at(&old) {
                    o.remove(&old.to_be_bytes())?;
                }
            }
            Ok(())
        })
    }

    /// How many entries are kept, and their bytes.
    pub fn thumbnails_kept(&self) -> Result<ThumbnailsKept, NodeError> {
        let mut kept = ThumbnailsKept::default();
        for v in self.thumbnail_order.iter().values() {
            kept.count += 1;
            kept.bytes += order_entry(&v?).map_or(0, |(_, len)| len);
        }
        Ok(kept)
    }

    /// Lets the oldest entries go until what is kept is within `bound`.
    fn evict(&self, bound: Bound) -> Result<(), NodeError> {
        let mut kept = self.thumbnails_kept()?;
        while kept.count > bound.count || kept.bytes > bound.bytes {
            let Some((key, v)) = self.thumbnail_order.first()? else {
                break;
            };
            let (blob, len) = order_entry(&v).unwrap_or(([0; 32], 0));
            // Its entry goes only if it is that one (not one made since).
            let made = made_at_key(&key);
            transact((&self.thumbnails, &self.thumbnail_order), |t, o| {
                o.remove(&key)?;
                if t.get(blob)?.as_deref().and_then(made_at) == made {
                    t.remove(&blob)?;
                }
                Ok(())
            })?;
            kept.count -= 1;
            kept.bytes = kept.bytes.saturating_sub(len);
        }
        Ok(())
    }
}

fn encode(made: u64, kept: &Kept) -> Vec<u8> {
    let (tag, payload) = match kept {
        Ok(t) if t.kind == Kind::Jpeg => (JPEG, t.bytes.as_slice()),
        Ok(t) => (PNG, t.bytes.as_slice()),
        Err(why) => (REFUSED, why.as_bytes()),
    };
    let mut out = Vec::with_capacity(HEAD + payload.len());
    out.extend([VERSION, tag]);
    out.extend(made.to_be_bytes());
    out.extend(payload);
    out
}

fn decode(v: &[u8]) -> Option<Kept> {
    let (&[version, tag], rest) = v.split_first_chunk::<2>()?;
    let payload = rest.get(8..)?;
    if version != VERSION {
        return None;
    }
    let thumbnail = |kind| {
        Ok(Thumbnail {
            kind,
            bytes: payload.to_vec(),
        })
    };
    match tag {
        JPEG => Some(thumbnail(Kind::Jpeg)),
        PNG => Some(thumbnail(Kind::Png)),
        REFUSED => Some(Err(String::from_utf8_lossy(payload).into_owned())),
        _ => None,
    }
}

/// When an entry was made.
fn made_at(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(2..HEAD)?.try_into().ok()?))
}

fn made_at_key(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(k.try_into().ok()?))
}

/// An order entry's blob and size.
fn order_entry(v: &[u8]) -> Option<([u8; 32], u64)> {
    let (blob, len) = v.split_first_chunk::<32>()?;
    Some((*blob, u64::from_be_bytes(len.try_into().ok()?)))
}

/// Runs `f` on two trees as one transaction.
fn transact<A>(
    trees: (&sled::Tree, &sled::Tree),
    f: impl Fn(&TransactionalTree, &TransactionalTree) -> ConflictableTransactionResult<A, Infallible>,
) -> Result<A, NodeError> {
    trees.transaction(|(a, b)| f(a, b)).map_err(|e| match e {
        TransactionError::Storage(e) => NodeError::from(e),
        TransactionError::Abort(never) => match never {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(n: usize) -> Kept {
        Ok(Thumbnail {
            kind: Kind::Jpeg,
            bytes: vec![7; n],
        })
    }

    const ROOMY: Bound = Bound {
        count: 100,
        bytes: 1 << 20,
    };

    #[test]
    fn a_kept_thumbnail_or_refusal_is_found_again_and_forgotten_with_its_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, b) = ([1; 32], [2; 32]);
        assert_eq!(store.thumbnail(&a).unwrap(), None);
        store.keep_thumbnail(&a, &jpeg(100), ROOMY).unwrap();
        let png = Ok(Thumbnail {
            kind: Kind::Png,
            bytes: vec![1, 2, 3],
        });
        store.keep_thumbnail(&b, &png, ROOMY).unwrap();
        assert_eq!(store.thumbnail(&a).unwrap(), Some(jpeg(100)));
        assert_eq!(store.thumbnail(&b).unwrap(), Some(png));
        let kept = store.thumbnails_kept().unwrap();
        assert_eq!(kept.count, 2);
        assert_eq!(kept.bytes, (HEAD * 2 + 103) as u64);
        // Made again: one entry still.
        let refused: Kept = Err("not a valid PNG".into());
        store.keep_thumbnail(&b, &refused, ROOMY).unwrap();
        assert_eq!(store.thumbnail(&b).unwrap(), Some(refused));
        assert_eq!(store.thumbnails_kept().unwrap().count, 2);
        // The blob is collected: its entry goes, all of it.
        store.forget_thumbnail(&a).unwrap();
        store.forget_thumbnail(&[3; 32]).unwrap();
        assert_eq!(store.thumbnail(&a).unwrap(), None);
        assert_eq!(store.thumbnails_kept().unwrap().count, 1);
        store.forget_thumbnail(&b).unwrap();
        assert_eq!(store.thumbnails_kept().unwrap(), ThumbnailsKept::default());
        assert!(store.thumbnails.is_empty() && store.thumbnail_order.is_empty());
    }

    #[test]
    fn the_oldest_go_first_past_the_bound_in_entries_or_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let by_count = Bound {
            count: 3,
            bytes: 1 << 20,
        };
        for i in 0..5u8 {
            store.keep_thumbnail(&[i; 32], &jpeg(10), by_count).unwrap();
        }
        let here = |i: u8| store.thumbnail(&[i; 32]).unwrap().is_some();
        assert_eq!(
            (0..5).map(here).collect::<Vec<_>>(),
            [false, false, true, true, true]
        );
        // Made again, an entry is young again: 3 is now the newest.
        store.keep_thumbnail(&[2; 32], &jpeg(10), by_count).unwrap();
        store.keep_thumbnail(&[5; 32], &jpeg(10), by_count).unwrap();
        assert_eq!(
            (0..6).map(here).collect::<Vec<_>>(),
            [false, false, true, false, true, true]
        );
        // By bytes: room for two entries of 100 bytes.
        let by_bytes = Bound {
            count: 100,
            bytes: 2 * (HEAD as u64 + 100),
        };
        store
            .keep_thumbnail(&[6; 32], &jpeg(100), by_bytes)
            .unwrap();
        store
            .keep_thumbnail(&[7; 32], &jpeg(100), by_bytes)
            .unwrap();
        assert_eq!(
            (0..8).map(here).collect::<Vec<_>>(),
            [false, false, false, false, false, false, true, true]
        );
        assert_eq!(
            store.thumbnails_kept().unwrap(),
            ThumbnailsKept {
                count: 2,
                bytes: 2 * (HEAD as u64 + 100)
            }
        );
        assert_eq!(store.thumbnails.len(), 2);
        // One larger than the bound is not kept at all.
        store
            .keep_thumbnail(&[8; 32], &jpeg(1000), by_bytes)
            .unwrap();
        assert_eq!(store.thumbnails_kept().unwrap().count, 0);
    }
}
