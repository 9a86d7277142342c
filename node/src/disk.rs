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

use crate::NodeError;

/// The reserve a node keeps free unless told otherwise: 1 GiB.
pub const DEFAULT_MIN_FREE: u64 = 1 << 30;

/// Bytes free to this user on the file system that holds `path`, or would
/// hold it: a path that does not exist yet is measured at its nearest
/// existing ancestor.
pub(crate) fn available(path: &Path) -> Result<u64, NodeError> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("."));
    fs2::available_space(existing).map_err(|e| {
        NodeError::Internal(format!(
            "cannot tell the free space at {}: {e}",
            existing.display()
        ))
    })
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

/// Bytes that may still be written at `dir` while `keep` stay free.
pub(crate) fn room(dir: &Path, keep: u64) -> Result<u64, NodeError> {
    Ok(available(dir)?.saturating_sub(keep))
}

/// Fails with [`NodeError::NoSpace`] unless `needed` bytes fit at `dir`
/// with `keep` left free. `what` names the work, as in "sharing
/// \"report.pdf\" (1.2 GiB)".
pub(crate) fn ensure_room(dir: &Path, needed: u64, keep: u64, what: &str) -> Result<(), NodeError> {
    let free = available(dir)?;
    if needed.saturating_add(keep) <= free {
        return Ok(());
    }
    let reserve = if keep > 0 {
        format!(
            ", and Meshwork keeps {} of it free (daemon --min-free)",
            human_size(keep)
        )
    } else {
        String::new()
    };
    Err(NodeError::NoSpace(format!(
        "{what} is too large for the disk: it needs {} at {} and {} is free{reserve}; free some space first",
        human_size(needed),
        dir.display(),
        human_size(free),
    )))
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
        assert_eq!(
            available(&later).unwrap() / (1 << 20),
            available(dir.path()).unwrap() / (1 << 20)
        );
        assert!(same_file_system(&later, dir.path()));
    }

    #[test]
    fn too_large_names_the_sizes_and_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ensure_room(dir.path(), 1, 0, "sharing \"a\"").is_ok());
        let err = ensure_room(dir.path(), 1, u64::MAX / 2, "sharing \"a\" (1 B)").unwrap_err();
        assert!(matches!(err, NodeError::NoSpace(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("sharing \"a\" (1 B) is too large"), "{text}");
        assert!(text.contains("--min-free"), "{text}");
    }
}
