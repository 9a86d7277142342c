//! The node's durable state in sled: which workspace it belongs to, every
//! accepted change of every document with its signature (or, once
//! compacted, a snapshot of the document: [`snapshots`]), and the peer book
//! (where members said they listen, to find them again after a restart), and
//! this node's own pins (which blobs it keeps until when). Nothing is
//! acknowledged before [`Store::flush`] returns.

use meshwork_crdt::pins::Epoch;
use meshwork_crdt::{Millis, SignedChange};
use serde::{Deserialize, Serialize};

use crate::error::Context;
use crate::NodeError;

mod pins;
pub use pins::PinMap;
mod snapshots;
pub use snapshots::Compacted;
mod thumbnails;
pub use thumbnails::{Bound as ThumbnailBound, Kept as KeptThumbnail, ThumbnailsKept};

/// What a node remembers of its workspace besides the documents.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkspaceMeta {
    /// The roster's genesis change hash.
    pub id: [u8; 32],
    /// Seed of the pre-shared network key.
    pub secret: [u8; 32],
}

/// The sled database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    changes: sled::Tree,
    peers: sled::Tree,
    pins: pins::Pins,
    /// Temporary plaintext files a `get` is writing: removed at the next
    /// start if the daemon died before it could.
    parts: sled::Tree,
    /// Browser sessions of the control API, by the hash of their cookie:
    /// the hash of their token and when they were last used. They outlive
    /// a restart of the daemon; neither secret is kept.
    web_sessions: sled::Tree,
    /// Per conversation (a feed, a direct one), the newest post it held
    /// when this member last read it. This node's alone, never synced.
    read_marks: sled::Tree,
    /// The days of the pin ledger this node holds changes of (a document's
    /// store key is a hash: this is how the days are found again).
    ledger_days: sled::Tree,
    /// Thumbnails of images, by blob hash: each the thumbnail, or why the
    /// image got none, and when it was made (see [`Store::keep_thumbnail`]).
    thumbnails: sled::Tree,
    /// The same thumbnails by when they were made (sled's id, which only
    /// grows), with their blob and size: the oldest go first.
    thumbnail_order: sled::Tree,
}

const WORKSPACE: &[u8] = b"workspace";

/// sled's page cache. Its default (1 GiB) would let a long-running node's
/// memory grow with its history; documents are read once into automerge
/// anyway, so a small cache costs little.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// How long [`Store::open`] waits for the database's lock.
pub const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether sled refused to open because another handle holds the lock. (It
/// reports that as a plain `Other` error whose text names the `flock`'s
/// `WouldBlock`.)
fn is_locked(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().starts_with("could not acquire lock")
        }
        _ => false,
    }
}

/// A peer (its libp2p peer id bytes) and the addresses it listens on.
pub type BookEntry = (Vec<u8>, Vec<String>);

impl Store {
    /// Opens (or creates) the database at `path`, waiting up to
    /// [`LOCK_PATIENCE`] for a node that just stopped to let go of it.
    pub fn open(path: &std::path::Path) -> Result<Self, NodeError> {
        Self::open_within(path, LOCK_PATIENCE)
    }

    /// Likewise, waiting up to `patience` for the lock.
    ///
    /// sled takes an exclusive `flock` on the database and drops it only
    /// when its background threads have ended, which a dropped `Db` does
    /// not wait for: a daemon restarted at once (or a test reopening a
    /// home) can find its own last run still holding it for a moment
    /// (sled #1234, #1289). A second daemon on the same home holds it for
    /// good and is told so once the patience runs out.
    pub fn open_within(
        path: &std::path::Path,
        patience: std::time::Duration,
    ) -> Result<Self, NodeError> {
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(5);
        let db = loop {
            let opened = sled::Config::new()
                .path(path)
                .cache_capacity(CACHE_BYTES)
                .open();
            match opened {
                Err(e) if is_locked(&e) && start.elapsed() < patience => {
                    std::thread::sleep(pause.min(patience.saturating_sub(start.elapsed())));
                    pause = (pause * 2).min(std::time::Duration::from_millis(100));
                }
                Err(e) if is_locked(&e) => {
                    return Err(NodeError::Conflict(format!(
                        "{} is in use: is a daemon already running on this home?",
                        path.display()
                    )))
                }
                opened => break opened?,
            }
        };
        Ok(Self {
            meta: db.open_tree("meta")?,
            changes: db.open_tree("changes")?,
            peers: db.open_tree("peers")?,
            pins: pins::Pins::new(db.open_tree("pins")?),
            parts: db.open_tree("parts")?,
            web_sessions: db.open_tree("web_sessions")?,
            read_marks: db.open_tree("read_marks")?,
            ledger_days: db.open_tree("ledger_days")?,
            thumbnails: db.open_tree("thumbnails")?,
            thumbnail_order: db.open_tree("thumbnail_order")?,
            db,
        })
    }

    /// The workspace this node belongs to, if any.
    pub fn workspace(&self) -> Result<Option<WorkspaceMeta>, NodeError> {
        match self.meta.get(WORKSPACE)? {
            Some(v) => Ok(Some(postcard::from_bytes(&v)?)),
            None => Ok(None),
        }
    }

    /// Records the workspace this node belongs to.
    pub fn set_workspace(&self, meta: &WorkspaceMeta) -> Result<(), NodeError> {
        self.meta.insert(WORKSPACE, postcard::to_stdvec(meta)?)?;
        Ok(())
    }

    /// Adds changes of document `doc` (not yet durable: call [`Self::flush`]):
    /// one alone under its own key, several together under one key (a
    /// bundle, see [`BUNDLE_KEY`]).
    pub fn put_changes(&self, doc: &[u8; 32], changes: &[SignedChange]) -> Result<(), NodeError> {
        match changes {
            [] => {}
            [c] => {
                let hash = blake3::hash(&c.bytes);
                let k = key(doc, hash.as_bytes());
                self.changes.insert(k.as_slice(), postcard::to_stdvec(c)?)?;
            }
            _ => {
                for bundle in changes.chunks(usize::from(u16::MAX)) {
                    let k = bundle_key(doc, bundle);
                    self.changes
                        .insert(k.as_slice(), postcard::to_stdvec(bundle)?)?;
                }
            }
        }
        Ok(())
    }

    /// Every change of document `doc` stored loose, alone or in bundles
    /// (not those a snapshot holds: [`Self::stored`] reads both).
    pub fn changes(&self, doc: &[u8; 32]) -> Result<Vec<SignedChange>, NodeError> {
        let mut out = Vec::new();
        for kv in self.changes.scan_prefix(doc) {
            let (k, v) = kv?;
            match k.len() {
                CHANGE_KEY => out.push(postcard::from_bytes(&v)?),
                BUNDLE_KEY => out.extend(postcard::from_bytes::<Vec<SignedChange>>(&v)?),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Whether document `doc` has anything stored (a change or a snapshot).
    pub fn has_changes(&self, doc: &[u8; 32]) -> Result<bool, NodeError> {
        Ok(self.changes.scan_prefix(doc).next().transpose()?.is_some())
    }

    /// Forgets every change of document `doc`, and its snapshot (not yet
    /// durable: call [`Self::flush`]).
    pub fn remove_changes(&self, doc: &[u8; 32]) -> Result<(), NodeError> {
        let mut batch = sled::Batch::default();
        for key in self.changes.scan_prefix(doc).keys() {
            batch.remove(key?);
        }
        self.changes.apply_batch(batch)?;
        Ok(())
    }

    /// Notes that this node holds changes of the pin ledger's day `epoch`.
    pub fn add_ledger_day(&self, epoch: Epoch) -> Result<(), NodeError> {
        // Read first: every batch of a day's changes names it, and a write
        // would log the same key again each time.
        let key = epoch.to_be_bytes();
        if !self.ledger_days.contains_key(key)? {
            self.ledger_days.insert(key, &[])?;
        }
        Ok(())
    }

    /// The pin ledger's days this node holds changes of, in order (days
    /// since 1970: never negative, so big-endian keys sort as numbers).
    pub fn ledger_days(&self) -> Result<Vec<Epoch>, NodeError> {
        self.ledger_days
            .iter()
            .keys()
            .map(|k| {
                let k = k?;
                let bytes: [u8; 8] = k
                    .as_ref()
                    .try_into()
                    .map_err(|_| NodeError::Internal("a ledger day's key is not 8 bytes".into()))?;
                Ok(Epoch::from_be_bytes(bytes))
            })
            .collect()
    }

    /// Forgets the pin ledger's day `epoch`, once its changes are gone.
    pub fn remove_ledger_day(&self, epoch: Epoch) -> Result<(), NodeError> {
        self.ledger_days.remove(epoch.to_be_bytes())?;
        Ok(())
    }

    /// Remembers where a peer said it listens (the peer book).
    pub fn set_peer_addrs(&self, peer: &[u8], addrs: &[String]) -> Result<(), NodeError> {
        self.peers.insert(peer, postcard::to_stdvec(addrs)?)?;
        Ok(())
    }

    /// Every peer in the book with its addresses.
    pub fn peer_addrs(&self) -> Result<Vec<BookEntry>, NodeError> {
        self.peers
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), postcard::from_bytes(&v)?))
            })
            .collect()
    }

    /// Keeps blob `blob` (hex) here until `until`; a later deadline
    /// already set stays.
    pub fn pin(&self, blob: &str, until: Millis) -> Result<Millis, NodeError> {
        self.pins.pin(blob, until, false)
    }

    /// Pins `blob` as a volunteer for the pinning promise: a pin this
    /// member's node lets go once pin nodes meet the replica target. A pin
    /// of the member's own ([`pin`](Self::pin)) stays one.
    pub fn pin_volunteered(&self, blob: &str, until: Millis) -> Result<Millis, NodeError> {
        self.pins.pin(blob, until, true)
    }

    /// Whether this node's pin of `blob` is a volunteer's alone.
    pub fn volunteered(&self, blob: &str) -> Result<bool, NodeError> {
        self.pins.volunteered(blob)
    }

    /// Until when this node keeps `blob`, if it pinned it.
    pub fn pinned(&self, blob: &str) -> Result<Option<Millis>, NodeError> {
        self.pins.until(blob)
    }

    /// Forgets this node's pin of `blob`.
    pub fn unpin(&self, blob: &str) -> Result<(), NodeError> {
        self.pins.unpin(blob)
    }

    /// Every blob this node pinned, with its deadline (from memory once
    /// read: [`pins`]).
    pub fn pins(&self) -> Result<std::sync::Arc<PinMap>, NodeError> {
        self.pins.all()
    }

    /// Records that `path` (a temporary plaintext file) is being written.
    pub fn add_part(&self, path: &std::path::Path) -> Result<(), NodeError> {
        self.parts
            .insert(path.as_os_str().as_encoded_bytes(), &[])?;
        Ok(())
    }

    /// `path` is gone (linked into place and removed, or cleaned up).
    pub fn remove_part(&self, path: &std::path::Path) -> Result<(), NodeError> {
        self.parts.remove(path.as_os_str().as_encoded_bytes())?;
        Ok(())
    }

    /// Temporary files recorded and not yet known to be gone.
    pub fn parts(&self) -> Result<Vec<std::path::PathBuf>, NodeError> {
        self.parts
            .iter()
            .keys()
            .map(|k| {
                let k = k?;
                Ok(std::path::PathBuf::from(
                    String::from_utf8_lossy(&k).into_owned(),
                ))
            })
            .collect()
    }

    /// The post conversation `key` was last read up to.
    pub fn read_mark(&self, key: &str) -> Result<Option<String>, NodeError> {
        Ok(self
            .read_marks
            .get(key)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Marks conversation `key` read up to `post`. Not flushed: a mark lost
    /// to a crash only shows a few posts as new again.
    pub fn set_read_mark(&self, key: &str, post: &str) -> Result<(), NodeError> {
        self.read_marks.insert(key, post.as_bytes())?;
        Ok(())
    }

    /// Records browser session `id` (a hash): its token's hash and when it
    /// was last used. Not flushed: see [`flush`](Self::flush).
    pub fn save_web_session(
        &self,
        id: &[u8; 32],
        token: &[u8; 32],
        last_used: Millis,
    ) -> Result<(), NodeError> {
        let mut value = token.to_vec();
        value.extend_from_slice(&last_used.to_be_bytes());
        self.web_sessions.insert(id, value)?;
        Ok(())
    }

    /// Browser session `id`'s token hash and when it was last used.
    pub fn web_session(&self, id: &[u8; 32]) -> Result<Option<([u8; 32], Millis)>, NodeError> {
        let Some(v) = self.web_sessions.get(id)? else {
            return Ok(None);
        };
        let token = v.get(..32).and_then(|t| <[u8; 32]>::try_from(t).ok());
        Ok(token.zip(millis(v.get(32..).unwrap_or_default())))
    }

    /// Forgets browser session `id`, and any used last before `idle_since`.
    pub fn remove_web_session(&self, id: &[u8; 32], idle_since: Millis) -> Result<(), NodeError> {
        self.web_sessions.remove(id)?;
        for kv in self.web_sessions.iter() {
            let (k, v) = kv?;
            if millis(v.get(32..).unwrap_or_default()).is_none_or(|t| t < idle_since) {
                self.web_sessions.remove(k)?;
            }
        }
        Ok(())
    }

    /// Makes everything written so far durable.
    ///
    /// On a blocking thread of tokio's, not with sled's `flush_async`: that
    /// one waits on sled's small global thread pool, which the log writes it
    /// waits for also need — a few concurrent flushes (a feed catching up,
    /// or many nodes in one process) deadlocked it.
    pub async fn flush(&self) -> Result<(), NodeError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .context("flush task")??;
        Ok(())
    }
}

/// A time stored as 8 big-endian bytes (what follows them, if anything, is
/// the caller's).
fn millis(v: &[u8]) -> Option<Millis> {
    Some(Millis::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// A stored change's key: its document's, then the hash of its bytes.
const CHANGE_KEY: usize = 64;

/// A bundle's key: its document's, the hash of its changes' hashes, and
/// how many changes it holds (u16, big-endian). Changes that arrive
/// together (a sync round's batch) are stored under one key: a fresh
/// member's 100,000-post feed is ~1,600 keys rather than 100,000, and so
/// is what its compaction deletes (100,000 deletes left ~200 MiB of sled's
/// tree nodes and log buffers in memory: BENCHMARKS.md, "Memory by what is
/// open, with compacted documents"). The same bundle stored twice is one
/// key; a change stored in two bundles is read twice and applied once.
const BUNDLE_KEY: usize = 66;

fn bundle_key(doc: &[u8; 32], changes: &[SignedChange]) -> [u8; BUNDLE_KEY] {
    let mut hasher = blake3::Hasher::new();
    for c in changes {
        hasher.update(blake3::hash(&c.bytes).as_bytes());
    }
    let mut k = [0u8; BUNDLE_KEY];
    k[..32].copy_from_slice(doc);
    k[32..64].copy_from_slice(hasher.finalize().as_bytes());
    let n = u16::try_from(changes.len()).unwrap_or(u16::MAX);
    k[64..].copy_from_slice(&n.to_be_bytes());
    k
}

/// How many changes the loose record under `key` holds (a change alone,
/// a bundle, or none: a snapshot).
fn loose_in(key: &[u8]) -> usize {
    match key.len() {
        CHANGE_KEY => 1,
        BUNDLE_KEY => usize::from(u16::from_be_bytes([key[64], key[65]])),
        _ => 0,
    }
}

fn key(doc: &[u8; 32], hash: &[u8; 32]) -> [u8; CHANGE_KEY] {
    let mut k = [0u8; CHANGE_KEY];
    k[..32].copy_from_slice(doc);
    k[32..].copy_from_slice(hash);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_stays_volunteered_only_while_every_pin_of_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.pin_volunteered("a", 10).unwrap(), 10);
        assert!(store.volunteered("a").unwrap());
        // A later, longer volunteer pin keeps the marker and the deadline.
        assert_eq!(store.pin_volunteered("a", 20).unwrap(), 20);
        assert!(store.volunteered("a").unwrap());
        // The member pins it too: theirs now, whatever a pass does later.
        assert_eq!(store.pin("a", 5).unwrap(), 20);
        assert!(!store.volunteered("a").unwrap());
        assert_eq!(store.pin_volunteered("a", 30).unwrap(), 30);
        assert!(!store.volunteered("a").unwrap());
        assert_eq!(store.pinned("a").unwrap(), Some(30));
        assert_eq!(*store.pins().unwrap(), PinMap::from([("a".to_owned(), 30)]));
        // A pin written before the marker existed is the member's own.
        store.pins.tree().insert("b", &7i64.to_be_bytes()).unwrap();
        assert_eq!(store.pinned("b").unwrap(), Some(7));
        assert!(!store.volunteered("b").unwrap());
        assert!(!store.volunteered("nothing").unwrap());
    }

    #[test]
    fn the_pins_read_once_follow_every_write_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.pin("a", 10).unwrap();
        let held = store.pins().unwrap();
        store.pin("b", 20).unwrap();
        store.unpin("a").unwrap();
        store.pin_volunteered("b", 30).unwrap();
        store.pin("c", 5).unwrap();
        store.pin("c", 4).unwrap();
        store.pin_volunteered("d", 40).unwrap();
        assert_eq!(
            *held,
            PinMap::from([("a".to_owned(), 10)]),
            "a reader's copy stays"
        );
        let now = PinMap::from([
            ("b".to_owned(), 30),
            ("c".to_owned(), 5),
            ("d".to_owned(), 40),
        ]);
        assert_eq!(*store.pins().unwrap(), now);
        store.db.flush().unwrap();
        drop((store, held));
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(*store.pins().unwrap(), now);
        assert!(store.volunteered("d").unwrap());
        assert!(
            !store.volunteered("b").unwrap(),
            "b was the member's own first"
        );
    }

    fn change(n: u8) -> SignedChange {
        SignedChange {
            bytes: vec![n; 40],
            signature: vec![n; 64],
        }
    }

    #[test]
    fn changes_stored_together_are_one_key_and_read_back_each() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (doc, other) = ([3; 32], [4; 32]);
        store
            .put_changes(&doc, &[change(1), change(2), change(3)])
            .unwrap();
        store.put_changes(&doc, &[change(4)]).unwrap();
        // The same bundle again is the same key; another holding a change
        // already stored holds it twice.
        store
            .put_changes(&doc, &[change(1), change(2), change(3)])
            .unwrap();
        store.put_changes(&doc, &[change(3), change(5)]).unwrap();
        store.put_changes(&other, &[change(9), change(8)]).unwrap();
        store.put_changes(&doc, &[]).unwrap();
        assert_eq!(store.changes.scan_prefix(doc).count(), 3, "three keys");
        assert_eq!(store.loose_changes(&doc).unwrap(), 6);
        let mut got: Vec<u8> = store
            .changes(&doc)
            .unwrap()
            .iter()
            .map(|c| c.bytes[0])
            .collect();
        got.sort();
        assert_eq!(got, [1, 2, 3, 3, 4, 5]);
        store.remove_changes(&doc).unwrap();
        assert!(store.changes(&doc).unwrap().is_empty());
        assert_eq!(
            store.loose_changes(&other).unwrap(),
            2,
            "another document's stay"
        );
    }

    #[test]
    fn a_held_database_is_waited_for_then_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        let short = std::time::Duration::from_millis(50);
        let err = Store::open_within(dir.path(), short).err().unwrap();
        assert!(matches!(err, NodeError::Conflict(_)), "{err:?}");
        assert!(
            err.to_string().contains("is a daemon already running"),
            "{err}"
        );

        // Released while a second open waits: the second open gets it.
        let path = dir.path().to_owned();
        let waiting = std::thread::spawn(move || Store::open_within(&path, LOCK_PATIENCE * 10));
        first
            .set_workspace(&WorkspaceMeta {
                id: [1; 32],
                secret: [2; 32],
            })
            .unwrap();
        first.db.flush().unwrap();
        drop(first);
        let second = waiting.join().unwrap().unwrap();
        assert_eq!(second.workspace().unwrap().unwrap().id, [1; 32]);
    }
}
