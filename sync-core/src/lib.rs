//! `sync_core` is the engine of azsync: it makes a destination directory an exact replica of a
//! source directory, sending only what changed.
//!
//! The source is scanned one directory at a time and streamed to the receiver in bounded,
//! pipelined batches; the receiver answers per file (up to date, send it whole, or send a delta
//! against this signature of my copy); file data arrives as chunks or rolling-checksum deltas
//! (fast_rsync), is checked end to end with blake3, and lands through a temp file and an atomic
//! rename, with every destination write made relative to directory descriptors that never follow
//! a symlink. Memory follows the widest directory and the batch window, not the size of the tree.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let tmp = tempfile::tempdir()?;
//! # let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
//! # std::fs::create_dir_all(src.join("notes"))?;
//! # std::fs::write(src.join("notes/todo.txt"), "ship it")?;
//! # std::fs::write(src.join("id_ed25519"), "-----BEGIN OPENSSH PRIVATE KEY-----")?;
//! use sync_core::SyncBuilder;
//!
//! let report = SyncBuilder::new(&src, &dst)
//!     .delete(true)
//!     .exclude("*.tmp")
//!     .run()?;
//!
//! assert_eq!(std::fs::read_to_string(dst.join("notes/todo.txt"))?, "ship it");
//! // Private keys are never copied unless asked for; each skip is reported.
//! assert!(!dst.join("id_ed25519").exists());
//! assert_eq!(report.skipped[0].path, std::path::Path::new("id_ed25519"));
//! assert_eq!(report.files_transferred, 1);
//! # Ok(())
//! # }
//! ```
//!
//! The receiving side is [`serve`], run by `azsync agent --stdio` in another process (or at the
//! far end of an SSH channel); [`SyncBuilder::agent`] starts such a process and talks to it.

mod confined;
mod delta;
mod dest;
mod entry;
mod error;
mod filter;
#[doc(hidden)]
pub mod fuzzing;
mod progress;
pub mod protocol;
mod receiver;
mod remote;
mod sender;
pub mod ssh;
mod transport;
mod walk;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

pub use entry::{Entry, Kind, Mtime};
pub use error::{Error, Result};
pub use filter::SECRET_RULES;
pub use progress::{FileError, NoProgress, Progress, Report, SkipReason, Skipped};
pub use protocol::Change;
pub use receiver::serve;
pub use remote::{AgentSource, SystemSsh};
pub use transport::{RemoteShell, Transport};

/// The file in the source root whose lines are read as exclude patterns.
pub const IGNORE_FILE: &str = ".azsyncignore";

/// Batches in flight by default. Enough to hide a WAN round trip behind small directories.
const DEFAULT_WINDOW: u32 = 64;

/// Builds and runs one sync of a source directory's contents into a destination directory.
///
/// Rules, all in one place:
/// - The *contents* of `source` go into `destination` (like `rsync -a source/ destination/`);
///   `destination` is created if missing, and gets the source root's mode and mtime.
/// - Regular files, directories and symlinks are synced with permission bits and nanosecond
///   mtimes. Symlinks are copied as links, never followed. Devices, fifos and sockets are
///   skipped and reported.
/// - A file is up to date when size and mtime match (or, with [`checksum`](Self::checksum), when
///   its blake3 matches). A changed file of 32 KiB or more is sent as a delta against the
///   destination's copy; the result must match the source's blake3 or it is sent again whole.
/// - Exclude patterns use gitignore syntax: [`exclude`](Self::exclude), lines of
///   [`exclude_from`](Self::exclude_from) files and of `.azsyncignore` in the source root. The
///   built-in [`SECRET_RULES`] apply too unless [`allow_secrets`](Self::allow_secrets).
/// - With [`delete`](Self::delete), destination entries the source lacks are removed, except
///   excluded ones; [`delete_excluded`](Self::delete_excluded) removes those too (and implies
///   `delete`).
/// - A failure confined to one path is collected in [`Report::errors`] and the rest goes on.
#[derive(Debug)]
pub struct SyncBuilder {
    source: PathBuf,
    destination: PathBuf,
    options: protocol::SessionOptions,
    excludes: Vec<String>,
    exclude_files: Vec<PathBuf>,
    safe_links: bool,
    window: u32,
    transport: Transport,
    progress: Option<Arc<dyn Progress>>,
}

impl std::fmt::Debug for dyn Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn Progress")
    }
}

impl SyncBuilder {
    /// A sync of `source`'s contents into `destination`, with default options.
    pub fn new(source: impl Into<PathBuf>, destination: impl Into<PathBuf>) -> SyncBuilder {
        SyncBuilder {
            source: source.into(),
            destination: destination.into(),
            options: protocol::SessionOptions::default(),
            excludes: Vec::new(),
            exclude_files: Vec::new(),
            safe_links: false,
            window: DEFAULT_WINDOW,
            transport: Transport::InProcess,
            progress: None,
        }
    }

    /// Remove destination entries that the source does not have.
    pub fn delete(mut self, yes: bool) -> Self {
        self.options.delete = yes;
        self
    }

    /// Also remove excluded destination entries; implies [`delete`](Self::delete), as in rsync.
    pub fn delete_excluded(mut self, yes: bool) -> Self {
        self.options.delete_excluded = yes;
        self
    }

    /// Compare files by blake3 (computed on both sides, in parallel) instead of size and mtime.
    pub fn checksum(mut self, yes: bool) -> Self {
        self.options.checksum = yes;
        self
    }

    /// Change nothing; report what would change.
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.options.dry_run = yes;
        self
    }

    /// Report every change through [`Progress::change`].
    pub fn itemize(mut self, yes: bool) -> Self {
        self.options.itemize = yes;
        self
    }

    /// Turn off the built-in secret rules.
    pub fn allow_secrets(mut self, yes: bool) -> Self {
        self.options.allow_secrets = yes;
        self
    }

    /// Skip symlinks that point outside the tree (absolute, or climbing above the root).
    pub fn safe_links(mut self, yes: bool) -> Self {
        self.safe_links = yes;
        self
    }

    /// Add one exclude pattern (gitignore syntax).
    pub fn exclude(mut self, pattern: impl Into<String>) -> Self {
        self.excludes.push(pattern.into());
        self
    }

    /// Add the patterns of a file, one per line.
    pub fn exclude_from(mut self, path: impl Into<PathBuf>) -> Self {
        self.exclude_files.push(path.into());
        self
    }

    /// How many batches may be in flight (at least 1).
    pub fn window(mut self, batches: u32) -> Self {
        self.window = batches.max(1);
        self
    }

    /// Run the receiving side in a process started from `command`, which must run [`serve`] on
    /// its stdin and stdout (`azsync agent --stdio` does).
    pub fn agent(mut self, command: Command) -> Self {
        self.transport = Transport::Agent(command);
        self
    }

    /// Reach the receiver through `transport` (the default is a receiver thread in this
    /// process). With a remote transport the destination is a path on the remote machine.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Receive progress callbacks.
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Runs the sync.
    pub fn run(self) -> Result<Report> {
        let meta = std::fs::metadata(&self.source).map_err(|e| Error::io(&self.source, e))?;
        if !meta.is_dir() {
            return Err(Error::io(
                &self.source,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        let mut patterns = Vec::new();
        let ignore_file = self.source.join(IGNORE_FILE);
        if ignore_file.is_file() {
            patterns.extend(sender::read_patterns(&ignore_file)?);
        }
        for file in &self.exclude_files {
            patterns.extend(sender::read_patterns(file)?);
        }
        patterns.extend(self.excludes.iter().cloned());
        // Compile once here so a bad pattern is reported before anything starts.
        filter::Filter::new(&patterns, self.options.allow_secrets)?;

        let mut options = self.options;
        options.delete |= options.delete_excluded;
        let config = sender::SenderConfig {
            source: self.source.clone(),
            dest: if self.transport.is_local() {
                absolute(&self.destination).as_os_str().as_bytes().to_vec()
            } else {
                self.destination.as_os_str().as_bytes().to_vec()
            },
            options,
            patterns,
            safe_links: self.safe_links,
            window: self.window,
        };
        let progress: Arc<dyn Progress> = self.progress.unwrap_or_else(|| Arc::new(NoProgress));
        let connection = self.transport.connect(progress.as_ref())?;
        let result = sender::run(
            &config,
            connection.reader,
            connection.writer,
            progress.as_ref(),
            connection.abort.as_ref(),
        );
        let ended = connection.end.finish();
        match (result, ended) {
            (Ok(report), Ok(())) => Ok(report),
            // How the receiver ended ("exited with signal 9") says more than the hang-up.
            (Err(e), Err(end)) if e.is_hangup() => Err(end),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(e),
        }
    }
}

/// The destination as an absolute path, so an agent started elsewhere finds the same place.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
