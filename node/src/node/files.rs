//! Files: sharing one into a department's library, listing a library, and
//! fetching a file from the members who hold it.
//!
//! Sharing seals the file into the blob store (encrypted under a fresh key,
//! hashed as it goes) and records it — with the key — in the department's
//! library, which only the department's members receive. Fetching asks every
//! connected holder for pieces at once ([`super::download`]), then opens the
//! blob into the destination only once it is complete and verified.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use meshwork_blobs::{BlobHash, FileKey};
use meshwork_crdt::automerge::transaction::Transaction;
use meshwork_crdt::automerge::AutomergeError;
use meshwork_crdt::library::write::{self, NewFile};
use meshwork_crdt::library::{FileEntry, Library, MAX_NAME};
use meshwork_crdt::pins::PinRequest;
use meshwork_crdt::roster::Roster;
use meshwork_crdt::{MemberId, Millis};
use serde::Serialize;

use super::Node;
use crate::wire::DocRef;
use crate::NodeError;

/// Told how far a long operation has come: (bytes done, bytes in all).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// A file as `meshwork files` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct FileInfo {
    /// The library's record.
    #[serde(flatten)]
    pub entry: FileEntry,
    /// The department's name.
    pub dept: String,
    /// The uploader's display name.
    pub uploader_name: String,
    /// Until when it is promised to stay fetchable.
    pub available_until: Millis,
    /// How many members said they hold it.
    pub peers: usize,
}

impl Node {
    /// Shares the file at `path` into department `dept` (a name), under
    /// `name` or the file's own name.
    pub async fn share(
        &self,
        dept: &str,
        path: &Path,
        name: Option<&str>,
        progress: Option<Progress>,
    ) -> Result<FileInfo, NodeError> {
        let name = match name {
            Some(n) => n.to_owned(),
            None => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| {
                    NodeError::BadRequest(format!("{} names no file", path.display()))
                })?,
        };
        if name.trim().is_empty() || name.len() > MAX_NAME {
            return Err(NodeError::BadRequest(format!(
                "a file name is 1 to {MAX_NAME} bytes; give another with --name"
            )));
        }
        let me = self.member_id();
        let dept = self
            .shared
            .with_ws(|ws| super::feed::my_dept(&ws.roster_view(), &me, dept))?;
        let (file, size) = open_for_share(path)?;
        let blobs = self.shared.blobs.clone();
        let sealed = tokio::task::spawn_blocking(move || {
            let reader = Counting {
                inner: std::io::BufReader::with_capacity(1 << 20, file),
                done: 0,
                total: size,
                progress,
            };
            meshwork_blobs::seal(&blobs, reader)
        })
        .await
        .map_err(|e| NodeError::Internal(format!("sealing stopped: {e}")))??;
        let shared_at = self.shared.clock.now();
        let id = meshwork_crdt::library::file_id(&me, rand::random());
        let key = encode_key(&sealed.key)?;
        let blob = sealed.hash.to_hex();
        let media_type = mime_guess::from_path(&name)
            .first_or_octet_stream()
            .essence_str()
            .to_owned();
        let record = NewFile {
            id: &id,
            name: &name,
            size: sealed.plaintext_size,
            media_type: &media_type,
            blob: &blob,
            blob_size: sealed.size,
            key: &key,
            uploader: me,
            shared_at,
        };
        self.change_library(&dept.id, |tx| write::share(tx, &record))
            .await?;
        let retention = self
            .shared
            .with_ws(|ws| Ok(ws.roster_view().policy.retention_ms))?;
        self.request_pin(PinRequest {
            blob: blob.clone(),
            dept: dept.id.clone(),
            size: sealed.size,
            until: shared_at.saturating_add(retention),
            by: me,
        })
        .await?;
        self.file(&id).map(|(_, info)| info)
    }

    /// The files of department `dept` (a name), newest first.
    pub fn files(&self, dept: &str) -> Result<Vec<FileInfo>, NodeError> {
        let me = self.member_id();
        let store = self.shared.store.clone();
        self.shared.with_ws(|ws| {
            let roster = ws.roster_view();
            let dept = super::feed::my_dept(&roster, &me, dept)?;
            let doc = ws.doc_mut(&DocRef::Library(dept.id.clone()), &store)?;
            Ok(Library::new(doc.doc())
                .files()
                .into_iter()
                .map(|entry| info(&roster, &dept.name, entry))
                .collect())
        })
    }

    /// A file in one of my departments' libraries, with its department id.
    pub fn file(&self, id: &str) -> Result<(String, FileInfo), NodeError> {
        let me = self.member_id();
        let store = self.shared.store.clone();
        self.shared.with_ws(|ws| {
            let roster = ws.roster_view();
            for d in roster.depts.iter().filter(|d| d.members.contains(&me)) {
                let doc = ws.doc_mut(&DocRef::Library(d.id.clone()), &store)?;
                if let Some(entry) = Library::new(doc.doc()).file(id) {
                    return Ok((d.id.clone(), info(&roster, &d.name, entry)));
                }
            }
            Err(NodeError::NotFound(format!(
                "no file {id:?} in your departments' libraries; `meshwork files DEPT` lists them"
            )))
        })
    }

    /// Makes sure the blob of file `id` is in this node's store, fetching
    /// it from whoever holds it if need be (the web app calls this before
    /// it downloads, so that a missing holder is an error it can show).
    pub async fn fetch(&self, id: &str) -> Result<(), NodeError> {
        let (_, info) = self.file(id)?;
        self.ensure_blob(&info, None).await.map(drop)
    }

    /// The blob of `info`, fetched first unless it is here.
    async fn ensure_blob(
        &self,
        info: &FileInfo,
        progress: Option<Progress>,
    ) -> Result<BlobHash, NodeError> {
        let hash: BlobHash = info.entry.blob.parse().map_err(|_| {
            NodeError::Internal(format!("file {} names a malformed blob", info.entry.id))
        })?;
        let blobs = self.shared.blobs.clone();
        let have = tokio::task::spawn_blocking(move || blobs.has(&hash))
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))??;
        if !have {
            let sources = self.sources(&info.entry.blob, &info.entry.holders)?;
            self.download(
                &format!("{:?}", info.entry.name),
                hash,
                info.entry.blob_size,
                &sources,
                progress,
            )
            .await?;
        }
        Ok(hash)
    }

    /// Fetches file `id` into `dest` (which must not exist yet): from this
    /// node's blob store if it is there, else from every connected member
    /// who holds it. Resumes a fetch that stopped; writes `dest` only once
    /// the whole file is verified and decrypted.
    pub async fn get(
        &self,
        id: &str,
        dest: &Path,
        progress: Option<Progress>,
    ) -> Result<PathBuf, NodeError> {
        if dest.exists() {
            return Err(NodeError::Conflict(format!(
                "{} exists already; choose another path with -o",
                dest.display()
            )));
        }
        let (dept, info) = self.file(id)?;
        let key = decode_key(&info.entry.key)?;
        let hash = self.ensure_blob(&info, progress.clone()).await?;
        let blobs = self.shared.blobs.clone();
        let dest = dest.to_path_buf();
        let out = dest.clone();
        tokio::task::spawn_blocking(move || {
            meshwork_blobs::open_to_path(&blobs, &hash, &key, &out)
        })
        .await
        .map_err(|e| NodeError::Internal(e.to_string()))??;
        // Only a blob that opened is one this node can vouch for holding.
        if !info.entry.holders.contains(&self.member_id()) {
            let me = self.member_id();
            self.change_library(&dept, |tx| write::hold(tx, id, me, true))
                .await?;
        }
        if let Some(p) = progress {
            p(info.entry.blob_size, info.entry.blob_size);
        }
        Ok(dest)
    }

    /// Records a change in a department's library, durably, and offers it
    /// to the department's connected members.
    pub(super) async fn change_library(
        &self,
        dept_id: &str,
        apply: impl FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    ) -> Result<(), NodeError> {
        let signer = &self.shared.identity.signer;
        let now = self.shared.clock.now();
        let store = self.shared.store.clone();
        let doc = DocRef::Library(dept_id.to_owned());
        let (change, workspace) = self.shared.with_ws(|ws| {
            let change = ws.doc_mut(&doc, &store)?.change(signer, now, apply)?;
            Ok((change, ws.meta.id))
        })?;
        self.offer_change(workspace, doc, change).await
    }

    /// The connected peers among a file's holders.
    pub(super) async fn providers(&self, holders: &[MemberId]) -> Vec<libp2p::PeerId> {
        self.peers()
            .await
            .into_iter()
            .filter(|p| {
                p.member_id
                    .as_ref()
                    .and_then(|m| m.parse::<MemberId>().ok())
                    .is_some_and(|m| holders.contains(&m))
            })
            .filter_map(|p| p.peer_id.parse().ok())
            .collect()
    }
}

fn info(roster: &Roster, dept: &str, entry: FileEntry) -> FileInfo {
    FileInfo {
        dept: dept.to_owned(),
        uploader_name: roster
            .member(&entry.uploader)
            .map_or_else(|| "?".into(), |m| m.name.clone()),
        available_until: entry.shared_at.saturating_add(roster.policy.retention_ms),
        peers: entry.holders.len(),
        entry,
    }
}

/// Opens a file to share, with errors that say what is wrong with the path.
fn open_for_share(path: &Path) -> Result<(std::fs::File, u64), NodeError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            NodeError::BadRequest(format!("there is no file at {}", path.display()))
        }
        _ => NodeError::BadRequest(format!("cannot read {}: {e}", path.display())),
    })?;
    if meta.is_dir() {
        return Err(NodeError::BadRequest(format!(
            "{} is a directory; share the files in it one by one (or an archive of it)",
            path.display()
        )));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| NodeError::BadRequest(format!("cannot read {}: {e}", path.display())))?;
    Ok((file, meta.len()))
}

fn encode_key(key: &FileKey) -> Result<String, NodeError> {
    Ok(hex::encode(postcard::to_stdvec(key)?))
}

fn decode_key(hex_key: &str) -> Result<FileKey, NodeError> {
    hex::decode(hex_key)
        .ok()
        .and_then(|b| postcard::from_bytes(&b).ok())
        .ok_or_else(|| NodeError::Internal("the library holds a malformed file key".into()))
}

/// A reader that reports how much of the file it has read.
struct Counting<R> {
    inner: R,
    done: u64,
    total: u64,
    progress: Option<Progress>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if let Some(p) = &self.progress {
            p(self.done, self.total);
        }
        Ok(n)
    }
}
