//! Room on disk.
//!
//! Before a node writes a file's bytes — a shared file's ciphertext, a
//! fetched blob, a downloaded file, a blob it volunteers to keep — it checks
//! what that needs against what the file system has, less a reserve kept
//! for its database and the rest of the machine (`daemon --min-free`). A
//! file too large for the disk is then an answer given at once, naming the
//! sizes, instead of a "disk full" after most of its bytes; and a node never
//! fills its own disk with colleagues' files.
//!
//! The check is advice, not a reservation: something else may fill the disk
//! meanwhile, and the writers still turn a full disk into a clear error and
//! leave nothing half-written.

use std::path::Path;
use std::sync::Arc;

use crate::NodeError;

/// The reserve a node keeps free unless told otherwise: 1 GiB.
pub const DEFAULT_MIN_FREE: u64 = 1 << 30;

/// Tells the bytes free to this user on the file system holding an
/// existing path: the file system's own answer, or a test's.
pub type FreeSpace = Arc<dyn Fn(&Path) -> std::io::Result<u64> + Send + Sync>;

/// A node's disk: how it measures free space, and the reserve it keeps.
#[derive(Clone)]
pub struct Disk {
    free: FreeSpace,
    /// Bytes this node leaves free (`daemon --min-free`).
    pub min_free: u64,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("min_free", &self.min_free)
            .finish_non_exhaustive()
    }
}

impl Disk {
    /// The file system's free space, keeping `min_free` of it.
    pub fn system(min_free: u64) -> Self {
        Self::measured_by(Arc::new(|p: &Path| fs2::available_space(p)), min_free)
    }

    /// Free space as `free` tells it (tests give exact numbers).
    pub fn measured_by(free: FreeSpace, min_free: u64) -> Self {
        Self { free, min_free }
    }

    /// Bytes free on the file system that holds `path`, or would hold it:
    /// a path that does not exist yet is measured at its nearest existing
    /// ancestor.
    pub fn available(&self, path: &Path) -> Result<u64, NodeError> {
        let existing = path
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(Path::new("."));
        (self.free)(existing).map_err(|e| {
            NodeError::failed(
                format!("cannot tell the free space at {}", existing.display()),
                e,
            )
        })
    }

    /// Bytes that may still be written at `dir` with the reserve kept.
    pub(crate) fn room(&self, dir: &Path) -> Result<u64, NodeError> {
        Ok(self.available(dir)?.saturating_sub(self.min_free))
    }

    /// Fails with [`NodeError::NoSpace`] unless `needed` bytes fit at
    /// `dir`, with the reserve kept if `reserve` (the home's file system).
    /// `what` names the work, as in `sharing "report.pdf" (1.2 GiB)`.
    pub(crate) fn ensure_room(
        &self,
        dir: &Path,
        needed: u64,
        reserve: bool,
        what: &str,
    ) -> Result<(), NodeError> {
        let keep = if reserve { self.min_free } else { 0 };
        let free = self.available(dir)?;
        if needed.saturating_add(keep) <= free {
            return Ok(());
        }
        let kept = if keep > 0 {
            format!(
                ", and Meshwork keeps {} of it free (daemon --min-free)",
                human_size(keep)
            )
        } else {
            String::new()
        };
        Err(NodeError::NoSpace(format!(
            "{what} is too large for the disk: it needs {} at {} and {} is free{kept}; free some space first",
            human_size(needed),
            dir.display(),
            human_size(free),
        )))
    }
}

/// Whether `a` and `b` (or their nearest existing ancestors) are on the
/// same file system. Where this cannot be told, they are taken to be, which
/// makes the check stricter, never looser.
pub(crate) fn same_file_system(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &Path| {
            p.ancestors()
                .find_map(|p| std::fs::metadata(p).ok())
                .map(|m| m.dev())
        };
        match (dev(a), dev(b)) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        true
    }
}

/// `n` bytes as people read them: "512 B", "1.5 GiB".
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut size = n as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn a_path_to_be_is_measured_at_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let later = dir.path().join("not/yet/here");
        let root = dir.path().to_owned();
        let disk = Disk::measured_by(
            Arc::new(move |p: &Path| {
                assert_eq!(p, root, "measured where it exists");
                Ok(42)
            }),
            0,
        );
        assert_eq!(disk.available(&later).unwrap(), 42);
        assert!(same_file_system(&later, dir.path()));
    }

    #[test]
    fn room_is_exact_and_too_large_names_the_sizes_and_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let disk = Disk::measured_by(Arc::new(|_: &Path| Ok(1000)), 100);
        assert_eq!(disk.room(dir.path()).unwrap(), 900);
        assert!(disk.ensure_room(dir.path(), 900, true, "x").is_ok());
        assert!(disk.ensure_room(dir.path(), 1000, false, "x").is_ok());
        let err = disk
            .ensure_room(dir.path(), 901, true, "sharing \"a\" (901 B)")
            .unwrap_err();
        assert!(matches!(err, NodeError::NoSpace(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("sharing \"a\" (901 B) is too large"),
            "{text}"
        );
        assert!(
            text.contains("keeps 100 B of it free (daemon --min-free)"),
            "{text}"
        );
        assert!(!disk
            .ensure_room(dir.path(), 1001, false, "x")
            .unwrap_err()
            .to_string()
            .contains("--min-free"));
    }
}
