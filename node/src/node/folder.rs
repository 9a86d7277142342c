//! Folders: a directory shared as one library record and one blob.
//!
//! **Decision: a folder is one blob.** Its regular files' bytes follow one
//! another, in the order of their sorted relative paths, and the record's
//! `entries` list each path and size (`meshwork_crdt::library::folder`). So
//! a folder of a thousand files costs one seal, one signed record, one pin
//! request and one transfer of one long run of pieces — not a thousand of
//! each — and it is fetched whole: a member who wants one file of it gets
//! the folder. Fetching writes the tree into a hidden directory beside the
//! destination and renames it into place only once every file is written
//! and synced: the folder appears complete or not at all.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use meshwork_blobs::FileKey;
use meshwork_crdt::library::folder::{self, FolderEntry};

use super::files::{FileInfo, Progress};
use super::opening::Growing;
use super::Node;
use crate::error::Context;
use crate::NodeError;

impl Node {
    /// Shares every regular file under `dir` as one folder named `name`
    /// (default: the directory's name) into department `dept`.
    pub(super) async fn share_folder(
        &self,
        dept: &str,
        dir: &Path,
        name: Option<&str>,
        progress: Option<Progress>,
    ) -> Result<FileInfo, NodeError> {
        let name = match name {
            Some(n) => n.to_owned(),
            None => fs::canonicalize(dir)
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .ok_or_else(|| {
                    NodeError::BadRequest(format!(
                        "{} has no name to share it under; give one with --name",
                        dir.display()
                    ))
                })?,
        };
        let root = dir.to_owned();
        let files = tokio::task::spawn_blocking(move || scan(&root))
            .await
            .context("a background task failed")??;
        let entries: Vec<FolderEntry> = files.iter().map(|(_, e)| e.clone()).collect();
        let size = folder::total(&entries)
            .ok_or_else(|| NodeError::BadRequest("the folder is too large".into()))?;
        let reader = FolderReader {
            files: files.into_iter().map(|(p, e)| (p, e.size)).collect(),
            current: None,
        };
        self.share_stream(
            dept,
            &name,
            reader,
            size,
            Some(folder::encode(&entries)),
            progress,
        )
        .await
    }
}

/// Every regular file under `root`, sorted by relative path. Anything else
/// (a symbolic link, a device, a pipe) is refused, naming it: a share holds
/// what the folder holds, or nothing.
fn scan(root: &Path) -> Result<Vec<(PathBuf, FolderEntry)>, NodeError> {
    let mut out = Vec::new();
    let mut dirs = vec![(root.to_owned(), String::new())];
    while let Some((dir, prefix)) = dirs.pop() {
        let listing = fs::read_dir(&dir)
            .map_err(|e| NodeError::BadRequest(format!("cannot read {}: {e}", dir.display())))?;
        for item in listing {
            let item = item.map_err(|e| {
                NodeError::BadRequest(format!("cannot read {}: {e}", dir.display()))
            })?;
            let path = item.path();
            let name = item.file_name().into_string().map_err(|_| {
                NodeError::BadRequest(format!("{} is not a UTF-8 name", path.display()))
            })?;
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            folder::check_path(&rel).map_err(|e| {
                NodeError::BadRequest(format!("cannot share {}: {e}", path.display()))
            })?;
            let meta = fs::symlink_metadata(&path).map_err(|e| {
                NodeError::BadRequest(format!("cannot read {}: {e}", path.display()))
            })?;
            if meta.is_dir() {
                dirs.push((path, rel));
            } else if meta.is_file() {
                out.push((
                    path,
                    FolderEntry {
                        path: rel,
                        size: meta.len(),
                    },
                ));
            } else {
                return Err(NodeError::BadRequest(format!(
                    "{} is not a regular file or directory (a link, device or pipe); \
                     Meshwork shares regular files",
                    path.display()
                )));
            }
        }
    }
    out.sort_by(|a, b| a.1.path.cmp(&b.1.path));
    if out.is_empty() {
        return Err(NodeError::BadRequest(format!(
            "{} holds no files: nothing to share",
            root.display()
        )));
    }
    if out.len() > folder::MAX_ENTRIES {
        return Err(NodeError::BadRequest(format!(
            "{} holds {} files; a folder holds at most {}",
            root.display(),
            out.len(),
            folder::MAX_ENTRIES
        )));
    }
    let entries: Vec<FolderEntry> = out.iter().map(|(_, e)| e.clone()).collect();
    folder::decode(&folder::encode(&entries))
        .map_err(|e| NodeError::BadRequest(format!("cannot share {}: {e}", root.display())))?;
    Ok(out)
}

/// The folder's bytes: each file in turn, exactly the size it was listed
/// with; a file that shrank or grew meanwhile is an error.
struct FolderReader {
    files: VecDeque<(PathBuf, u64)>,
    current: Option<Current>,
}

struct Current {
    file: io::Take<File>,
    path: PathBuf,
    left: u64,
}

impl Read for FolderReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(cur) = &mut self.current else {
                let Some((path, size)) = self.files.pop_front() else {
                    return Ok(0);
                };
                let file = File::open(&path)?;
                if !file.metadata()?.is_file() {
                    return Err(io::Error::other(format!(
                        "{} is no longer a regular file",
                        path.display()
                    )));
                }
                self.current = Some(Current {
                    file: file.take(size),
                    path,
                    left: size,
                });
                continue;
            };
            let n = cur.file.read(buf)?;
            if n > 0 {
                cur.left -= n as u64;
                return Ok(n);
            }
            let changed = cur.left > 0 || cur.file.get_mut().read(&mut [0u8; 1])? > 0;
            if changed {
                return Err(io::Error::other(format!(
                    "{} changed while it was being shared; share the folder again",
                    cur.path.display()
                )));
            }
            self.current = None;
        }
    }
}

/// Decrypts the folder's blob, as it arrives, into `building` (a new
/// directory beside `dest`), then renames it to `dest`; on error nothing is
/// left of `building`.
pub(super) fn unpack(
    blob: Growing,
    key: &FileKey,
    entries: Vec<FolderEntry>,
    building: &Path,
    dest: &Path,
) -> Result<(), NodeError> {
    let written = write_tree(blob, key, entries, building, dest);
    if written.is_err() {
        let _ = fs::remove_dir_all(building);
    }
    written
}

fn write_tree(
    blob: Growing,
    key: &FileKey,
    entries: Vec<FolderEntry>,
    building: &Path,
    dest: &Path,
) -> Result<(), NodeError> {
    create_private_dir(building)?;
    let mut writer = FolderWriter {
        root: building.to_owned(),
        entries: entries.into(),
        current: None,
        written: Vec::new(),
        dirs: Vec::new(),
    };
    blob.open_into(key, &mut writer)?;
    writer.finish()?;
    writer.sync_all()?;
    if dest.exists() {
        return Err(NodeError::Conflict(format!(
            "{} appeared while the folder was being fetched; nothing was replaced",
            dest.display()
        )));
    }
    fs::rename(building, dest).map_err(|e| {
        NodeError::failed(format!("cannot move the folder into {}", dest.display()), e)
    })?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Writes the decrypted stream as the folder's files, each created new
/// (0600) at its checked path and synced once its last byte is written.
struct FolderWriter {
    root: PathBuf,
    entries: VecDeque<FolderEntry>,
    current: Option<(BufWriter<File>, u64)>,
    /// Files written, to be synced together at the end.
    written: Vec<File>,
    /// Directories created (and the root), synced after the files.
    dirs: Vec<PathBuf>,
}

impl FolderWriter {
    /// Opens the next file; `false` when there is none.
    fn next(&mut self) -> io::Result<bool> {
        let Some(entry) = self.entries.pop_front() else {
            return Ok(false);
        };
        // Checked when the record was accepted; checked again before a
        // byte is written anywhere.
        folder::check_path(&entry.path).map_err(io::Error::other)?;
        let path = self.root.join(&entry.path);
        if let Some(parent) = path.parent() {
            if !parent.exists() {
                fs::create_dir_all(parent)?;
                let mut dir = parent;
                while dir != self.root && !self.dirs.iter().any(|d| d == dir) {
                    self.dirs.push(dir.to_owned());
                    match dir.parent() {
                        Some(up) => dir = up,
                        None => break,
                    }
                }
            }
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = BufWriter::with_capacity(1 << 20, options.open(&path)?);
        self.current = Some((file, entry.size));
        self.close_if_done()?;
        Ok(true)
    }

    fn close_if_done(&mut self) -> io::Result<()> {
        if let Some((_, 0)) = &self.current {
            if let Some((file, _)) = self.current.take() {
                self.written
                    .push(file.into_inner().map_err(|e| e.into_error())?);
                // Bounded open files: a folder may hold 100,000.
                if self.written.len() >= OPEN_AT_MOST {
                    sync_files(std::mem::take(&mut self.written))?;
                }
            }
        }
        Ok(())
    }

    /// One durability barrier for the whole tree instead of one fsync
    /// after each file: every file is synced, several at a time (the file
    /// system commits them together), then every directory. The tree is
    /// renamed into place only after this, so a crash before leaves only
    /// the hidden directory, which the next start removes.
    fn sync_all(&mut self) -> Result<(), NodeError> {
        sync_files(std::mem::take(&mut self.written)).context("cannot sync the folder")?;
        for dir in self.dirs.iter().rev() {
            sync_dir(dir)?;
        }
        sync_dir(&self.root)
    }

    /// After the last byte: the files still due must be empty ones.
    fn finish(&mut self) -> Result<(), NodeError> {
        self.close_if_done()?;
        if self.current.is_some() {
            return Err(NodeError::Internal("the folder's blob ended early".into()));
        }
        while self.next()? {
            if self.current.is_some() {
                return Err(NodeError::Internal("the folder's blob ended early".into()));
            }
        }
        Ok(())
    }
}

impl Write for FolderWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        while self.current.is_none() {
            if !self.next()? {
                return Err(io::Error::other(
                    "the folder's blob is longer than its files",
                ));
            }
        }
        let Some((file, left)) = &mut self.current else {
            return Ok(0);
        };
        let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
        file.write_all(&buf[..n])?;
        *left -= n as u64;
        self.close_if_done()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some((file, _)) => file.flush(),
            None => Ok(()),
        }
    }
}

/// Files written and not yet synced, at most: each holds a descriptor.
const OPEN_AT_MOST: usize = 256;

/// Syncs `files`, 16 at a time, and closes them.
fn sync_files(files: Vec<File>) -> io::Result<()> {
    const AT_ONCE: usize = 16;
    let chunk = files.len().div_ceil(AT_ONCE).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = files
            .chunks(chunk)
            .map(|group| s.spawn(move || group.iter().try_for_each(File::sync_all)))
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(io::Error::other("a sync thread panicked")))
        })
    })
}

fn create_private_dir(path: &Path) -> Result<(), NodeError> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .context(format!("cannot create {}", path.display()))
}

fn sync_dir(dir: &Path) -> Result<(), NodeError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(format!("cannot sync {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_splits_the_stream_into_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out");
        fs::create_dir(&root).unwrap();
        let entries = vec![
            FolderEntry {
                path: "a".into(),
                size: 3,
            },
            FolderEntry {
                path: "empty".into(),
                size: 0,
            },
            FolderEntry {
                path: "d/e/b".into(),
                size: 4,
            },
            FolderEntry {
                path: "z".into(),
                size: 0,
            },
        ];
        let mut w = FolderWriter {
            root: root.clone(),
            entries: entries.into(),
            current: None,
            written: Vec::new(),
            dirs: Vec::new(),
        };
        for part in [&b"ab"[..], b"cde", b"fg"] {
            w.write_all(part).unwrap();
        }
        w.finish().unwrap();
        w.sync_all().unwrap();
        assert_eq!(fs::read(root.join("a")).unwrap(), b"abc");
        assert_eq!(fs::read(root.join("d/e/b")).unwrap(), b"defg");
        assert!(fs::read(root.join("empty")).unwrap().is_empty());
        assert!(root.join("z").exists());
        assert!(w.write_all(b"x").is_err(), "more bytes than files");
    }

    #[test]
    fn a_reader_yields_the_files_in_turn_and_catches_a_change() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("b"), b"22").unwrap();
        fs::create_dir(dir.path().join("a")).unwrap();
        fs::write(dir.path().join("a/x"), b"1").unwrap();
        let files = scan(dir.path()).unwrap();
        let paths: Vec<&str> = files.iter().map(|(_, e)| e.path.as_str()).collect();
        assert_eq!(paths, ["a/x", "b"]);
        let mut r = FolderReader {
            files: files.iter().map(|(p, e)| (p.clone(), e.size)).collect(),
            current: None,
        };
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"122");
        // A file that grew after the scan.
        fs::write(dir.path().join("b"), b"2222").unwrap();
        let mut r = FolderReader {
            files: files.iter().map(|(p, e)| (p.clone(), e.size)).collect(),
            current: None,
        };
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
    }
}
