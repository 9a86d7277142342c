//! Files: sharing one into a department's library, listing a library, and
//! fetching a file from the members who hold it.
//!
//! Sharing seals the file into the blob store (encrypted under a fresh key,
//! hashed as it goes) and records it — with the key — in the department's
//! library, which only the department's members receive. Fetching asks every
//! connected holder for pieces at once ([`super::download`]), then opens the
//! blob into the destination only once it is complete and verified.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::Stream;
use meshwork_blobs::{BlobHash, FileKey, KeyError};
use meshwork_crdt::automerge::transaction::Transaction;
use meshwork_crdt::automerge::AutomergeError;
use meshwork_crdt::feed::Post;
use meshwork_crdt::library::write::{self, NewFile};
use meshwork_crdt::library::{FileEntry, Library, MAX_NAME};
use meshwork_crdt::pins::PinRequest;
use meshwork_crdt::roster::{Department, Roster};
use meshwork_crdt::{MemberId, Millis};
use serde::{Deserialize, Serialize};

use super::download::Watch;
use super::Node;
use crate::disk::{self, human_size};
use crate::error::Context;
use crate::wire::DocRef;
use crate::NodeError;

/// The media type a shared folder's record carries.
pub const FOLDER_TYPE: &str = "inode/directory";

/// Told how far a long operation has come: (bytes done, bytes in all).
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// `progress` told of `size` bytes where the work counts `blob_size`.
fn in_file_bytes(progress: Progress, size: u64, blob_size: u64) -> Progress {
    Arc::new(move |done, _| {
        let scaled = u128::from(done) * u128::from(size) / u128::from(blob_size.max(1));
        progress(u64::try_from(scaled).unwrap_or(size).min(size), size)
    })
}

/// A file as `meshwork files` lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileInfo {
    /// The library's record.
    #[serde(flatten)]
    pub entry: FileEntry,
    /// The department, as [`Roster::dept_labels`] shows it.
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
            None => match path.file_name() {
                Some(n) => n.to_string_lossy().into_owned(),
                // `.` or `..`: a folder, named after the directory itself.
                None if path.is_dir() => {
                    return self.share_folder(dept, path, None, progress).await
                }
                None => {
                    return Err(NodeError::BadRequest(format!(
                        "{} names no file",
                        path.display()
                    )))
                }
            },
        };
        if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return self.share_folder(dept, path, Some(&name), progress).await;
        }
        let (file, size) = open_for_share(path)?;
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        self.share_from(dept, &name, reader, size, progress).await
    }

    /// Whether `size` bytes named `name` may be shared into department
    /// `dept` (a name) by this node now: a good name, a department of mine,
    /// and room for the ciphertext. Returns the department. The web app
    /// asks this before it sends a file's bytes.
    pub fn check_share(&self, dept: &str, name: &str, size: u64) -> Result<Department, NodeError> {
        if name.trim().is_empty() || name.len() > MAX_NAME {
            return Err(NodeError::BadRequest(format!(
                "a file name is 1 to {MAX_NAME} bytes; rename the file (with `meshwork share`: --name)"
            )));
        }
        let me = self.member_id();
        let dept = super::feed::my_dept(&self.shared.roster()?, &me, dept)?;
        let sealed = meshwork_blobs::ciphertext_size(size);
        if sealed > meshwork_blobs::MAX_BLOB_SIZE {
            return Err(NodeError::BadRequest(format!(
                "{name:?} ({}) is too large: Meshwork shares files up to {}",
                human_size(size),
                human_size(meshwork_blobs::MAX_BLOB_SIZE)
            )));
        }
        self.cfg.disk.ensure_room(
            self.shared.blobs.dir(),
            meshwork_blobs::stored_size(sealed),
            true,
            &format!("sharing {name:?} ({})", human_size(size)),
        )?;
        Ok(dept)
    }

    /// Shares the `size` bytes that `plaintext` yields into department
    /// `dept` (a name) as `name`, sealing them as they are read: the
    /// plaintext is never written anywhere.
    pub async fn share_from(
        &self,
        dept: &str,
        name: &str,
        plaintext: impl std::io::Read + Send + 'static,
        size: u64,
        progress: Option<Progress>,
    ) -> Result<FileInfo, NodeError> {
        self.share_stream(dept, name, plaintext, size, None, progress)
            .await
    }

    /// Says in the department's feed that `file` was just shared: a post
    /// that attaches it, as people expect of Slack or Teams.
    pub async fn announce_share(&self, file: &FileInfo) -> Result<Post, NodeError> {
        let e = &file.entry;
        let text = match &e.entries {
            Some(entries) => format!(
                "shared the folder {} ({} file{}, {})",
                e.name,
                entries.len(),
                if entries.len() == 1 { "" } else { "s" },
                human_size(e.size)
            ),
            None => format!("shared {} ({})", e.name, human_size(e.size)),
        };
        self.post_with_files(&file.dept, &text, None, std::slice::from_ref(&e.id))
            .await
    }

    /// [`Self::share_from`], for a file or (with `entries`) a folder.
    pub(super) async fn share_stream(
        &self,
        dept: &str,
        name: &str,
        plaintext: impl std::io::Read + Send + 'static,
        size: u64,
        entries: Option<String>,
        progress: Option<Progress>,
    ) -> Result<FileInfo, NodeError> {
        let dept = self.check_share(dept, name, size)?;
        // Sealing and recording run as a task of their own, so that a
        // caller who goes away (a browser closed, a CLI interrupted) never
        // leaves a blob without a record: while the bytes are being read,
        // its going stops the reading and the unfinished blob is removed;
        // once they are all sealed, the share completes.
        let stop = Arc::new(AtomicBool::new(false));
        let _stop_if_dropped = StopOnDrop(stop.clone());
        let node = self.clone();
        let name = name.to_owned();
        let reader = Counting {
            inner: plaintext,
            done: 0,
            total: size,
            progress,
            stop,
        };
        tokio::spawn(async move { node.seal_and_record(dept, &name, reader, entries).await })
            .await
            .context("sharing stopped")?
    }

    /// Seals what `reader` yields (it says how much it promised) and, if
    /// that much came, records it — a file, or with `entries` a folder.
    async fn seal_and_record<R: std::io::Read + Send + 'static>(
        &self,
        dept: Department,
        name: &str,
        reader: Counting<R>,
        entries: Option<String>,
    ) -> Result<FileInfo, NodeError> {
        let me = self.member_id();
        let blobs = self.shared.blobs.clone();
        let size = reader.total;
        let sealed = tokio::task::spawn_blocking(move || meshwork_blobs::seal(&blobs, reader))
            .await
            .context("sealing stopped")??;
        if sealed.plaintext_size != size {
            let blobs = self.shared.blobs.clone();
            let hash = sealed.hash;
            let _ = tokio::task::spawn_blocking(move || blobs.delete(&hash)).await;
            return Err(NodeError::Conflict(format!(
                "{name:?} changed while it was being shared ({size} bytes expected, {} read); share it again",
                sealed.plaintext_size
            )));
        }
        let shared_at = self.shared.clock.now();
        let id = meshwork_crdt::library::file_id(&me, self.new_nonce());
        let key = encode_key(&sealed.key);
        let blob = sealed.hash.to_hex();
        let media_type = match entries {
            Some(_) => FOLDER_TYPE.to_owned(),
            None => mime_guess::from_path(name)
                .first_or_octet_stream()
                .essence_str()
                .to_owned(),
        };
        let record = NewFile {
            id: &id,
            name,
            size: sealed.plaintext_size,
            media_type: &media_type,
            blob: &blob,
            blob_size: sealed.size,
            key: &key,
            uploader: me,
            shared_at,
            entries: entries.as_deref(),
        };
        self.change_library(&dept.id, |tx| write::share(tx, &record))
            .await?;
        let retention = self.shared.roster()?.policy.retention_ms;
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
        let roster = self.shared.roster()?;
        let dept = super::feed::my_dept(&roster, &me, dept)?;
        let label = roster.dept_label(&dept.id).unwrap_or(dept.name);
        let entries = self
            .shared
            .read_doc(&DocRef::Library(dept.id.clone()), |d| {
                Library::new(d.doc()).files()
            })?;
        Ok(entries
            .into_iter()
            .map(|entry| info(&roster, &label, entry))
            .collect())
    }

    /// A file or folder in one of my departments' libraries, by its id or
    /// by a name only one of them has; with its department id.
    pub fn file(&self, id: &str) -> Result<(String, FileInfo), NodeError> {
        let me = self.member_id();
        let roster = self.shared.roster()?;
        let mine: Vec<&Department> = roster
            .depts
            .iter()
            .filter(|d| d.members.contains(&me))
            .collect();
        let with_dept = |d: &Department, entry| {
            let label = roster.dept_label(&d.id).unwrap_or_default();
            (d.id.clone(), info(&roster, &label, entry))
        };
        // By id first: one lookup per library, where a name is a scan.
        for d in &mine {
            let library = DocRef::Library(d.id.clone());
            if let Some(entry) = self
                .shared
                .read_doc(&library, |doc| Library::new(doc.doc()).file(id))?
            {
                return Ok(with_dept(d, entry));
            }
        }
        let mut named = Vec::new();
        for d in &mine {
            let library = DocRef::Library(d.id.clone());
            let found = self
                .shared
                .read_doc(&library, |doc| Library::new(doc.doc()).named(id))?;
            named.extend(found.into_iter().map(|entry| with_dept(d, entry)));
        }
        match named.len() {
            1 => Ok(named.remove(0)),
            0 => Err(NodeError::NotFound(format!(
                "no file {id:?} in your departments' libraries; `meshwork files DEPT` lists them"
            ))),
            n => Err(NodeError::BadRequest(format!(
                "{n} files are named {id:?}: {}; use the id",
                named
                    .iter()
                    .map(|(_, f)| format!(
                        "{} (in {}, shared by {})",
                        f.entry.id, f.dept, f.uploader_name
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Makes sure the blob of file `id` is in this node's store, fetching
    /// it from whoever holds it if need be (the web app calls this before
    /// it downloads, so that a missing holder is an error it can show).
    pub async fn fetch(&self, id: &str) -> Result<(), NodeError> {
        let (_, info) = self.file(id)?;
        self.ensure_blob(&info, None).await.map(drop)
    }

    /// The blob of `info`, fetched first unless it is here.
    pub(super) async fn ensure_blob(
        &self,
        info: &FileInfo,
        progress: Option<Progress>,
    ) -> Result<BlobHash, NodeError> {
        self.fetch_blob(info, progress, None).await
    }

    /// [`ensure_blob`](Self::ensure_blob), telling `watch` of every piece
    /// on disk (all of them at once if the blob is here already).
    pub(super) async fn fetch_blob(
        &self,
        info: &FileInfo,
        progress: Option<Progress>,
        watch: Option<Watch>,
    ) -> Result<BlobHash, NodeError> {
        let hash = blob_hash(info)?;
        let needed = self.fetch_needs(hash, info.entry.blob_size).await?;
        if needed == 0 {
            if let Some(watch) = watch {
                let _ = watch.send(meshwork_blobs::Arrived::All);
            }
            return Ok(hash);
        }
        self.cfg.disk.ensure_room(
            self.shared.blobs.dir(),
            needed,
            true,
            &format!(
                "fetching {:?} ({})",
                info.entry.name,
                human_size(info.entry.size)
            ),
        )?;
        let sources = self.sources(&info.entry.blob, &info.entry.holders)?;
        self.download(
            &format!("{:?}", info.entry.name),
            hash,
            info.entry.blob_size,
            &sources,
            progress,
            watch,
        )
        .await?;
        Ok(hash)
    }

    /// The bytes a fetch of blob `hash` (of `size` bytes) still has to
    /// write here: none once it is here, less what a stopped fetch has.
    pub(super) async fn fetch_needs(&self, hash: BlobHash, size: u64) -> Result<u64, NodeError> {
        let blobs = self.shared.blobs.clone();
        tokio::task::spawn_blocking(move || {
            if blobs.has(&hash)? {
                return Ok(0);
            }
            let present = blobs.progress(&hash)?.map_or(0, |p| p.present_bytes());
            Ok(meshwork_blobs::room_needed(size, present))
        })
        .await
        .context("a background task failed")?
    }

    /// Fetches file `id` into `dest` (which must not exist yet): from this
    /// node's blob store if it is there, else from every connected member
    /// who holds it. Resumes a fetch that stopped. The plaintext is written
    /// into a hidden temporary file while the pieces arrive
    /// ([`super::opening`]), and appears at `dest` only once the whole file
    /// is verified, decrypted and synced. This node's copy of the blob, and
    /// its record as a holder, follow in the background.
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
        // Counted in the file's bytes, not the ciphertext's (a little more).
        let progress = progress.map(|p| in_file_bytes(p, info.entry.size, info.entry.blob_size));
        self.ensure_room_for(&info, dest).await?;
        // The temporary file (or directory) holds plaintext: recorded
        // (durably) before it exists, so that a daemon killed meanwhile
        // removes it at its next start (`sweep_parts`).
        let temp = meshwork_blobs::temp_path_for(dest)?;
        let store = &self.shared.store;
        store.add_part(&temp)?;
        store.flush().await?;
        let (building, target) = (temp.clone(), dest.to_path_buf());
        let opened = match info.entry.entries.clone() {
            Some(entries) => {
                let name = info.entry.name.clone();
                self.fetch_opening(&info, progress.clone(), move |growing| {
                    super::folder::unpack(growing, &key, entries, &building, &target).map_err(|e| {
                        match e {
                            NodeError::Internal(_) | NodeError::Failed { .. } => {
                                NodeError::failed(format!("writing {name:?}"), e)
                            }
                            other => other,
                        }
                    })
                })
                .await
            }
            None => {
                self.fetch_opening(&info, progress.clone(), move |growing| {
                    meshwork_blobs::write_via(&target, &building, |out| {
                        growing.open_into(&key, out)
                    })
                    .map(drop)
                    .map_err(Into::into)
                })
                .await
            }
        };
        store.remove_part(&temp)?;
        opened?;
        self.keep(dept, info.clone());
        if let Some(p) = progress {
            p(info.entry.blob_size, info.entry.blob_size);
        }
        Ok(dest.to_path_buf())
    }

    /// File `id`'s plaintext as a stream of pieces (fetching its blob first
    /// if it is not here), decrypted as the stream is read: nothing is
    /// written to disk. Every piece is authenticated before it is sent; an
    /// error ends the stream with that error, so a reader that checks for
    /// one never takes a prefix for the file.
    pub async fn read_file(
        &self,
        id: &str,
    ) -> Result<(FileInfo, impl Stream<Item = std::io::Result<Vec<u8>>>), NodeError> {
        let (dept, info) = self.file(id)?;
        if info.entry.entries.is_some() {
            return Err(NodeError::BadRequest(format!(
                "{:?} is a folder of {} files: fetch it with `meshwork get {id} -o DIR`",
                info.entry.name,
                info.entry.entries.as_ref().map_or(0, Vec::len)
            )));
        }
        // The record's size is what a reader is promised (a download's
        // Content-Length); the blob's size, bound into its hash, is what
        // it gets. A record where they disagree is refused.
        if meshwork_blobs::plaintext_size(info.entry.blob_size) != Some(info.entry.size) {
            return Err(NodeError::Conflict(format!(
                "the library's record of {:?} is inconsistent: its size does not match its blob's",
                info.entry.name
            )));
        }
        let key = decode_key(&info.entry.key)?;
        let hash = self.ensure_blob(&info, None).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let blobs = self.shared.blobs.clone();
        let node = self.clone();
        let file = info.clone();
        tokio::spawn(async move {
            let errors = tx.clone();
            let opened = tokio::task::spawn_blocking(move || {
                let mut out = std::io::BufWriter::with_capacity(READ_PIECE, ChannelWriter(tx));
                let opened = meshwork_blobs::open(&blobs, &hash, &key, &mut out);
                if opened.is_err() {
                    // Drop what is buffered rather than send it.
                    let _ = out.into_parts();
                }
                opened
            })
            .await;
            let failure = match opened {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = failure {
                let _ = errors.send(Err(std::io::Error::other(why))).await;
                return;
            }
            // The stream ends here, before the holder is recorded (which
            // may wait for a pin pass).
            drop(errors);
            if let Err(e) = node.vouch_for(&dept, &file).await {
                tracing::warn!(
                    "cannot record that this node holds {:?}: {e}",
                    file.entry.id
                );
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|piece| (piece, rx))
        });
        Ok((info, stream))
    }

    /// What a `get` leaves to the background once the plaintext is durable:
    /// syncing the blob into place (its download wrote every piece but left
    /// the disk to the plaintext), then this node's record as one of the
    /// file's holders. [`Node::shutdown`] waits for it.
    fn keep(&self, dept: String, info: FileInfo) {
        let node = self.clone();
        self.keeping.spawn(async move {
            let kept = async {
                let (blobs, hash) = (node.shared.blobs.clone(), blob_hash(&info)?);
                tokio::task::spawn_blocking(move || blobs.finish_download(&hash))
                    .await
                    .context("a background task failed")??;
                node.vouch_for(&dept, &info).await
            };
            if let Err(e) = kept.await {
                tracing::warn!(file = %info.entry.name, "cannot keep this file's blob for others: {e}");
            }
        });
    }

    /// Records that this node holds `info`'s blob, once it has opened it:
    /// only such a blob is one it can vouch for.
    async fn vouch_for(&self, dept: &str, info: &FileInfo) -> Result<(), NodeError> {
        let me = self.member_id();
        if info.entry.holders.contains(&me) {
            return Ok(());
        }
        // Not while a pin pass runs, and only if the blob is still here: a
        // pass that collected it meanwhile (its deadline passed) withdrew
        // this node as a holder, and this must not put it back.
        let _no_pass = self.pin_pass.lock().await;
        if !self.have(blob_hash(info)?).await? {
            return Ok(());
        }
        let id = info.entry.id.clone();
        self.change_library(dept, |tx| write::hold(tx, &id, me, true))
            .await
    }

    /// Fails unless `info`'s file fits at `dest`, with the blob still to
    /// fetch if it shares the disk of the blob store (and then with the
    /// node's reserve kept free).
    async fn ensure_room_for(&self, info: &FileInfo, dest: &Path) -> Result<(), NodeError> {
        let blobs_dir = self.shared.blobs.dir();
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let what = format!(
            "downloading {:?} ({}) to {}",
            info.entry.name,
            human_size(info.entry.size),
            dir.display()
        );
        if disk::same_file_system(dir, blobs_dir) {
            let hash = blob_hash(info)?;
            let fetch = self.fetch_needs(hash, info.entry.blob_size).await?;
            self.cfg
                .disk
                .ensure_room(dir, info.entry.size.saturating_add(fetch), true, &what)
        } else {
            self.cfg
                .disk
                .ensure_room(dir, info.entry.size, false, &what)
        }
    }

    /// Records a change in a department's library ([`Node::change`]).
    pub(super) async fn change_library(
        &self,
        dept_id: &str,
        apply: impl FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    ) -> Result<(), NodeError> {
        let doc = DocRef::Library(dept_id.to_owned());
        self.change(doc, |_, _| Ok(()), |tx, ()| apply(tx)).await
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

/// Removes the temporary plaintext files of `get`s a killed daemon left
/// behind (recorded in the store before they were created).
pub(crate) fn sweep_parts(store: &crate::store::Store) -> Result<(), NodeError> {
    for part in store.parts()? {
        let removed = if part.is_dir() {
            std::fs::remove_dir_all(&part)
        } else {
            std::fs::remove_file(&part)
        };
        match removed {
            Ok(()) => tracing::info!(path = %part.display(), "removed an unfinished download"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %part.display(), "cannot remove an unfinished download: {e}")
            }
        }
        store.remove_part(&part)?;
    }
    Ok(())
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
        // (`share` sends directories to `share_folder`: this one became a
        // directory since it looked.)
        return Err(NodeError::BadRequest(format!(
            "{} became a directory while it was being shared; share it again to share it as a folder",
            path.display()
        )));
    }
    let not_regular = || {
        NodeError::BadRequest(format!(
            "{} is not a regular file (a device, pipe or socket); Meshwork shares regular files",
            path.display()
        ))
    };
    if !meta.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path)
        .map_err(|e| NodeError::BadRequest(format!("cannot read {}: {e}", path.display())))?;
    // The path may have been swapped between the two looks.
    let opened = file
        .metadata()
        .map_err(|e| NodeError::BadRequest(format!("cannot read {}: {e}", path.display())))?;
    if !opened.is_file() {
        return Err(not_regular());
    }
    Ok((file, opened.len()))
}

pub(super) fn blob_hash(info: &FileInfo) -> Result<BlobHash, NodeError> {
    info.entry
        .blob
        .parse()
        .map_err(|_| NodeError::Internal(format!("file {} names a malformed blob", info.entry.id)))
}

fn encode_key(key: &FileKey) -> String {
    hex::encode(key.to_bytes())
}

fn decode_key(hex_key: &str) -> Result<FileKey, NodeError> {
    let malformed = || NodeError::Internal("the library holds a malformed file key".into());
    let bytes = zeroize::Zeroizing::new(hex::decode(hex_key).map_err(|_| malformed())?);
    FileKey::from_bytes(&bytes).map_err(|e| match e {
        KeyError::Malformed => malformed(),
        KeyError::NewerFormat(_) => NodeError::Conflict(format!("{e}: update it to open it")),
    })
}

/// Bytes in a piece of [`Node::read_file`]'s stream.
const READ_PIECE: usize = 256 * 1024;

/// A blocking writer into a channel: each write is one piece of a stream.
/// Writes fail once the stream's reader has gone, which stops the writer.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(Ok(buf.to_vec())).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader has gone")
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sets its flag when dropped: tells a task that its caller has gone.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A reader that reports how much of the file it has read, and fails once
/// `stop` is set.
struct Counting<R> {
    inner: R,
    done: u64,
    total: u64,
    progress: Option<Progress>,
    stop: Arc<AtomicBool>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("the share was cancelled"));
        }
        // Never more than one byte past the size it announced: a file that
        // grows (or a device that never ends) is caught by the size check
        // instead of filling the disk.
        let room = (self.total + 1).saturating_sub(self.done);
        let len = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if len == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..len])?;
        self.done += n as u64;
        if let Some(p) = &self.progress {
            p(self.done, self.total);
        }
        Ok(n)
    }
}
