//! A shared folder's entries: the relative path and size of every file in
//! it, in the order their bytes follow one another in the folder's one blob.
//!
//! Stored in the library record's `entries` field as text, one entry a line:
//! `<size> <path>\n`. Paths are what a receiver will create under the
//! directory it chooses, so they are held to rules that keep every file
//! inside it: components separated by `/`, none empty, `.` or `..`, no `\`,
//! no control characters, not absolute. Checked when a folder is shared,
//! by every node's library rules, and again before a folder is written.

use std::collections::HashSet;

/// The most files one folder may hold.
pub const MAX_ENTRIES: usize = 100_000;
/// The longest path, in bytes.
pub const MAX_PATH: usize = 4096;
/// The longest path component, in bytes.
pub const MAX_COMPONENT: usize = 255;

/// One file of a folder.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FolderEntry {
    /// Its path inside the folder, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Whether `path` is a safe relative path; the error says why not.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > MAX_PATH {
        return Err(format!("a path of {} bytes", path.len()));
    }
    if path.starts_with('/') {
        return Err(format!("{path:?} is absolute"));
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(format!("{path:?} has an empty, '.' or '..' component"));
        }
        if part.len() > MAX_COMPONENT {
            return Err(format!(
                "{path:?} has a component longer than {MAX_COMPONENT} bytes"
            ));
        }
        if part.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(format!("{path:?} holds a backslash or a control character"));
        }
    }
    Ok(())
}

/// The text stored for `entries`.
pub fn encode(entries: &[FolderEntry]) -> String {
    entries
        .iter()
        .map(|e| format!("{} {}\n", e.size, e.path))
        .collect()
}

/// Reads and checks stored entries: safe paths, no path twice, no file
/// where another needs a directory, at most [`MAX_ENTRIES`].
pub fn decode(text: &str) -> Result<Vec<FolderEntry>, String> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let (size, path) = line.split_once(' ').ok_or("an entry without a size")?;
        let size = size.parse().map_err(|_| format!("a bad size {size:?}"))?;
        check_path(path)?;
        entries.push(FolderEntry {
            path: path.to_owned(),
            size,
        });
        if entries.len() > MAX_ENTRIES {
            return Err(format!("more than {MAX_ENTRIES} files"));
        }
    }
    let files: HashSet<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    if files.len() != entries.len() {
        return Err("a path listed twice".into());
    }
    for e in &entries {
        let mut dir = e.path.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if files.contains(parent) {
                return Err(format!("{parent:?} is a file and a directory"));
            }
            dir = parent;
        }
    }
    Ok(entries)
}

/// The total size of `entries`, or `None` on overflow.
pub fn total(entries: &[FolderEntry]) -> Option<u64> {
    entries.iter().try_fold(0u64, |n, e| n.checked_add(e.size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_paths_pass_and_escapes_do_not() {
        for ok in ["a", "a/b.txt", "Q3 report.xlsx", "dir/sub/ü.md"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a/",
            "a\\b",
            "a\u{1b}b",
            "a\nb",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn entries_round_trip_and_clashes_are_refused() {
        let entries = vec![
            FolderEntry {
                path: "a.txt".into(),
                size: 3,
            },
            FolderEntry {
                path: "d/b c.txt".into(),
                size: 0,
            },
        ];
        assert_eq!(decode(&encode(&entries)).unwrap(), entries);
        assert_eq!(total(&entries), Some(3));
        assert!(decode("1 a\n2 a\n").is_err(), "twice");
        assert!(decode("1 a\n2 a/b\n").is_err(), "a file and a directory");
        assert!(decode("x a\n").is_err(), "bad size");
        assert!(decode("1 ../../etc/passwd\n").is_err());
    }
}
