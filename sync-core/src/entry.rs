//! One file's metadata as it crosses the wire, and the one validator for paths that come from a
//! peer.
//!
//! Paths travel as raw bytes (Unix file names need not be UTF-8). A directory path is relative
//! to the root of the sync, components joined by `/`, the empty path being the root itself.
//! Nothing is ever "cleaned up": a path that is not already in normal form is a protocol error.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest file name accepted from a peer (Linux `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;
/// Longest relative path accepted from a peer (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;

/// What kind of filesystem object an entry is. Devices, fifos and sockets never cross the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (copied as a link, never followed).
    Symlink,
}

/// A modification time with nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mtime {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds, below 1e9.
    pub nsec: u32,
}

/// One directory entry of the source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The file name within its directory (one component).
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// Its kind.
    pub kind: Kind,
    /// Size in bytes (regular files; 0 otherwise).
    pub size: u64,
    /// Modification time.
    pub mtime: Mtime,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// The link target (symlinks only).
    #[serde(with = "serde_bytes")]
    pub target: Vec<u8>,
    /// blake3 of the contents, when `--checksum` asked for it.
    pub hash: Option<[u8; 32]>,
}

/// Checks one file name from the wire: not empty, not `.` or `..`, no `/`, no NUL, not too long.
pub fn validate_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(Error::protocol("empty file name"));
    }
    if name == b"." || name == b".." {
        return Err(Error::protocol(format!(
            "file name {:?} is not allowed",
            String::from_utf8_lossy(name)
        )));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::protocol(format!(
            "file name of {} bytes exceeds {MAX_NAME_LEN}",
            name.len()
        )));
    }
    if let Some(bad) = name.iter().find(|&&b| b == b'/' || b == 0) {
        let what = if *bad == 0 { "NUL" } else { "'/'" };
        return Err(Error::protocol(format!(
            "file name {:?} contains {what}",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

/// Checks a relative directory path from the wire: empty (the root) or components that each pass
/// [`validate_name`], joined by single `/`, with no leading or trailing `/`.
pub fn validate_rel_path(path: &[u8]) -> Result<()> {
    if path.is_empty() {
        return Ok(());
    }
    if path.len() > MAX_PATH_LEN {
        return Err(Error::protocol(format!(
            "path of {} bytes exceeds {MAX_PATH_LEN}",
            path.len()
        )));
    }
    if path.first() == Some(&b'/') {
        return Err(Error::protocol(format!(
            "absolute path {:?} is not allowed",
            String::from_utf8_lossy(path)
        )));
    }
    for component in path.split(|&b| b == b'/') {
        validate_name(component).map_err(|e| {
            Error::protocol(format!(
                "invalid path {:?}: {}",
                String::from_utf8_lossy(path),
                e.to_string().trim_start_matches("protocol error: ")
            ))
        })?;
    }
    Ok(())
}

/// `dir/name` as wire bytes (just `name` at the root).
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        out.extend_from_slice(dir);
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// Wire bytes as a path.
pub fn as_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// Wire bytes as an owned path.
pub fn to_path_buf(bytes: &[u8]) -> PathBuf {
    as_path(bytes).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_are_refused() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b", &[b'x'; 256]] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        for good in [&b"a"[..], b"...", b"caf\xe9", b"with space", b".hidden"] {
            validate_name(good).unwrap();
        }
    }

    #[test]
    fn paths_must_be_relative_and_normal() {
        for bad in [
            &b"/etc"[..],
            b"a/../b",
            b"..",
            b"a//b",
            b"a/",
            b"./a",
            b"a/./b",
            b"a\0",
        ] {
            let err = validate_rel_path(bad).unwrap_err();
            assert!(err.is_protocol(), "{bad:?}: {err}");
        }
        for good in [&b""[..], b"a", b"a/b/c", b"x y/caf\xe9"] {
            validate_rel_path(good).unwrap();
        }
    }

    #[test]
    fn join_puts_root_entries_at_top() {
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"d/e", b"a"), b"d/e/a");
    }
}
