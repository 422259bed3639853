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
mod fanout;
mod filter;
#[doc(hidden)]
pub mod fuzzing;
mod progress;
pub mod protocol;
mod receiver;
mod remote;
mod scan;
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
pub use fanout::{Destination, Outcome};
pub use filter::{HOME_PROFILE_RULES, SECRET_RULES};
pub use progress::{FileError, NoProgress, Progress, Report, SkipReason, Skipped};
pub use protocol::Change;
pub use receiver::serve;
pub use remote::{agent_dir, AgentSource, SystemSsh};
pub use scan::{link_into_credentials, looks_like_credential, SCAN_LIMIT};
pub use transport::{RemoteShell, Transport};

/// The file in the source root whose lines are read as exclude patterns.
pub const IGNORE_FILE: &str = ".azsyncignore";
/// The zstd level of `--compress` when none is given (zstd's own default).
pub const DEFAULT_COMPRESS_LEVEL: i32 = 3;

/// Batches in flight by default (one per directory, or a slice of a wide one). Enough to keep a
/// long link busy with small directories: at 64, a 50,000-file no-op over 40 ms round trips
/// spent 2.2 s waiting on them, at 1024 0.85 s (`benches/RESULTS.md`). Memory is bounded by
/// entries in flight as well, whatever the window.
const DEFAULT_WINDOW: u32 = 1024;

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
/// - With [`scan_secrets`](Self::scan_secrets), files whose first [`SCAN_LIMIT`] bytes hold a
///   credential (cloud keys, PEM private keys, storage account keys, GitHub and OAuth tokens)
///   and symlinks into `~/.ssh`, `~/.aws`, `~/.azure` or `~/.config/gcloud` are skipped and
///   reported, and protected from `--delete` on the destination like excluded paths.
/// - [`home_profile`](Self::home_profile) is what `azsync push` syncs a home with: the
///   [`HOME_PROFILE_RULES`] (caches, toolchains) first, then the user's patterns, plus
///   `scan_secrets` and `safe_links`.
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
    compress: Option<i32>,
    transport: Transport,
    progress: Option<Arc<dyn Progress>>,
    home_profile: bool,
    scan_secrets: bool,
    /// A scan already made for several destinations at once (see `fanout`).
    prescanned: Option<Arc<scan::Found>>,
    /// Listings of a walk shared with other destinations (see `fanout`).
    shared_walk: Option<walk::SharedListings>,
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
            compress: None,
            transport: Transport::InProcess,
            progress: None,
            home_profile: false,
            scan_secrets: false,
            prescanned: None,
            shared_walk: None,
        }
    }

    /// Sync a home directory: exclude caches and toolchains ([`HOME_PROFILE_RULES`], before the
    /// user's own patterns so a `!pattern` can bring one back), scan contents for credentials
    /// ([`scan_secrets`](Self::scan_secrets)) and skip links that leave the tree
    /// ([`safe_links`](Self::safe_links)). Later calls to those two can turn them off again.
    pub fn home_profile(mut self, yes: bool) -> Self {
        self.home_profile = yes;
        if yes {
            self.scan_secrets = true;
            self.safe_links = true;
        }
        self
    }

    /// Before syncing, read the start of every file that would be synced and skip (and report)
    /// those that hold credentials, and skip links into credential directories. See the rules
    /// above.
    pub fn scan_secrets(mut self, yes: bool) -> Self {
        self.scan_secrets = yes;
        self
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

    /// Flush every written file to disk before it is renamed into place, and the rename after
    /// (slower; without it a crash of the destination machine can lose the latest writes, as
    /// with rsync and cp, though never leave a half-written file under its final name).
    pub fn fsync(mut self, yes: bool) -> Self {
        self.options.fsync = yes;
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

    /// Compress what is sent with zstd at `level` (1 fast .. 19 small; 3 is zstd's default),
    /// frame by frame and only where it pays: file lists always shrink, already compressed files
    /// are detected by their first chunk and sent as they are. Worth it on slow links; on a
    /// local disk or a fast LAN it costs more CPU than it saves. `None` turns it off.
    pub fn compress(mut self, level: Option<i32>) -> Self {
        self.compress = level;
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

    /// The exclude patterns in force, in order (later lines win), after checking the source.
    fn patterns(&self) -> Result<Vec<String>> {
        let meta = std::fs::metadata(&self.source).map_err(|e| Error::io(&self.source, e))?;
        if !meta.is_dir() {
            return Err(Error::io(
                &self.source,
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        let mut patterns = Vec::new();
        if self.home_profile {
            patterns.extend(HOME_PROFILE_RULES.iter().map(|p| p.to_string()));
        }
        let ignore_file = self.source.join(IGNORE_FILE);
        if ignore_file.is_file() {
            patterns.extend(sender::read_patterns(&ignore_file)?);
        }
        for file in &self.exclude_files {
            patterns.extend(sender::read_patterns(file)?);
        }
        patterns.extend(self.excludes.iter().cloned());
        Ok(patterns)
    }

    /// The content scan's findings for this sync: made now, reused, or none.
    fn scan(&self, filter: &filter::Filter) -> Result<Arc<scan::Found>> {
        Ok(match &self.prescanned {
            Some(found) => Arc::clone(found),
            None if self.scan_secrets => {
                Arc::new(scan::scan_tree(&self.source, filter, self.safe_links)?)
            }
            None => Arc::default(),
        })
    }

    /// Runs the sync.
    pub fn run(self) -> Result<Report> {
        let mut patterns = self.patterns()?;
        // Compile once here so a bad pattern is reported before anything starts.
        let filter = filter::Filter::new(&patterns, self.options.allow_secrets)?;
        let found = self.scan(&filter)?;
        patterns.extend(found.patterns.iter().cloned());
        if let Some(progress) = &self.progress {
            for skipped in &found.skipped {
                progress.skipped(skipped);
            }
        }

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
            compress: self.compress,
        };
        let progress: Arc<dyn Progress> = self.progress.unwrap_or_else(|| Arc::new(NoProgress));
        let connection = self.transport.connect(progress.as_ref())?;
        let result = sender::run(
            &config,
            self.shared_walk,
            connection.reader,
            connection.writer,
            progress.as_ref(),
            connection.abort.as_ref(),
        );
        let ended = connection.end.finish();
        let result = result.map(|mut report| {
            report.skipped.splice(0..0, found.skipped.iter().cloned());
            report
        });
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
