//! What a caller sees of a running sync ([`Progress`]) and of a finished one ([`Report`]).

use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use crate::entry;
use crate::protocol::Change;

/// Callbacks from a running sync. Every method has an empty default; implement what you draw.
/// Called from the sync's own threads, so implementations must be cheap and thread-safe.
pub trait Progress: Send + Sync {
    /// More of the source was scanned: `files` more regular files totalling `bytes`.
    fn scanned(&self, files: u64, bytes: u64) {
        let _ = (files, bytes);
    }
    /// `bytes` more of file contents were sent (literal data or delta) or found up to date.
    fn transferred(&self, bytes: u64) {
        let _ = bytes;
    }
    /// One file's data is complete on the sender's side.
    fn file_sent(&self, path: &Path) {
        let _ = path;
    }
    /// One itemized change (only with `itemize` or `dry_run`).
    fn change(&self, change: &Change) {
        let _ = change;
    }
    /// A path was left out on purpose (a secret, a special file, an unsafe link).
    fn skipped(&self, skipped: &Skipped) {
        let _ = skipped;
    }
    /// A path failed; the sync goes on.
    fn file_error(&self, error: &FileError) {
        let _ = error;
    }
    /// Something the user should know about how the sync runs (say, a fallback to SFTP).
    fn notice(&self, message: &str) {
        let _ = message;
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Why a path was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// A built-in secret rule matched.
    Secret,
    /// A device, fifo or socket.
    Special,
    /// A symlink pointing outside the tree, with `safe_links`.
    UnsafeLink,
}

impl SkipReason {
    /// A short word for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Secret => "secret",
            SkipReason::Special => "special",
            SkipReason::UnsafeLink => "unsafe-link",
        }
    }
}

fn lossy<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// A path left out on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Relative to the root of the sync.
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    /// Why.
    pub reason: SkipReason,
}

impl Skipped {
    pub(crate) fn new(rel: &[u8], reason: SkipReason) -> Skipped {
        Skipped {
            path: entry::to_path_buf(rel),
            reason,
        }
    }
}

/// A failure confined to one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileError {
    /// Relative to the root of the sync.
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl FileError {
    pub(crate) fn new(rel: &[u8], message: impl Into<String>) -> FileError {
        FileError {
            path: entry::to_path_buf(rel),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// What a finished sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Regular files in the source (after exclusions).
    pub files_scanned: u64,
    /// Directories in the source, the root included.
    pub dirs_scanned: u64,
    /// Symlinks in the source.
    pub symlinks_scanned: u64,
    /// Total size of the regular files scanned.
    pub bytes_scanned: u64,
    /// Files whose contents were written (whole or by delta); in a dry run, would be.
    pub files_transferred: u64,
    /// Of those, files rebuilt from a delta.
    pub files_delta: u64,
    /// Files already identical.
    pub files_up_to_date: u64,
    /// Deltas whose result failed the blake3 check and were sent whole instead.
    pub delta_retries: u64,
    /// Entries whose mode or mtime alone changed.
    pub metadata_updated: u64,
    /// Directories created.
    pub dirs_created: u64,
    /// Symlinks created or replaced.
    pub symlinks_created: u64,
    /// Destination entries removed.
    pub deleted: u64,
    /// File data sent as literal bytes.
    pub bytes_literal: u64,
    /// File data the receiver reused from its own copy.
    pub bytes_matched: u64,
    /// Bytes written to the connection.
    pub bytes_sent: u64,
    /// Bytes read from the connection.
    pub bytes_received: u64,
    /// Paths left out on purpose.
    pub skipped: Vec<Skipped>,
    /// Paths that failed.
    pub errors: Vec<FileError>,
    /// Nothing was changed.
    pub dry_run: bool,
}

impl Report {
    /// Whether every path synced.
    pub fn is_success(&self) -> bool {
        self.errors.is_empty()
    }
}
