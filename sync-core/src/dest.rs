//! The destination as the receiver sees it: a root, and directories opened under it one at a
//! time. The agent's destination is the local filesystem through [`confined`](crate::confined);
//! the SFTP fallback puts a remote filesystem behind the same traits, so the receiver's rules
//! (what is up to date, what to replace, what `--delete` may remove) exist once.

use std::io::{self, Write};

use crate::confined::Stat;
use crate::entry::{self, Kind, Mtime};

/// The root of a destination.
pub(crate) trait DestRoot {
    /// A directory under it.
    type Dir: DestDir;
    /// Opens the directory `rel` (validated wire bytes; empty is the root itself), never
    /// through a symlink.
    fn open_dir(&self, rel: &[u8]) -> io::Result<Self::Dir>;
    /// The resolution of the mtimes it keeps, in nanoseconds: times equal when truncated to it
    /// are the same time. 1 for a local filesystem; a second for SFTP (version 3).
    fn mtime_granularity_ns(&self) -> u32 {
        1
    }
}

/// One open directory of a destination. Names are single validated components.
pub(crate) trait DestDir: Clone + Sized + Send + Sync {
    /// A file being written beside its target.
    type Temp: DestTemp;

    /// This directory's path relative to the root.
    fn rel(&self) -> &[u8];
    /// What is at `name`, without following a symlink; `None` if nothing is.
    fn stat(&self, name: &[u8]) -> io::Result<Option<Stat>>;
    /// This directory's own metadata.
    fn own_stat(&self) -> io::Result<Stat>;
    /// The names here with their kinds.
    fn list(&self) -> io::Result<Vec<(Vec<u8>, Option<Kind>)>>;
    /// Opens the subdirectory `name`, refusing a symlink.
    fn subdir(&self, name: &[u8]) -> io::Result<Self>;
    /// Creates the directory `name` (private until its own batch sets its mode).
    fn mkdir(&self, name: &[u8]) -> io::Result<()>;
    /// Removes the file, symlink or empty directory `name`.
    fn remove(&self, name: &[u8], is_dir: bool) -> io::Result<()>;
    /// Creates or atomically replaces `name` with a symlink to `target`.
    fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()>;
    /// The target of the symlink `name`.
    fn read_link(&self, name: &[u8]) -> io::Result<Vec<u8>>;
    /// Starts writing a new version of `name` under a temp name.
    fn create_temp(&self, name: &[u8]) -> io::Result<Self::Temp>;
    /// Sets mode and mtime of the regular file `name`.
    fn set_file_meta(&self, name: &[u8], mode: u32, mtime: Mtime) -> io::Result<()>;
    /// Sets the mtime of the symlink `name` itself.
    fn set_link_mtime(&self, name: &[u8], mtime: Mtime) -> io::Result<()>;
    /// Sets this directory's own mode and mtime.
    fn set_own_meta(&self, mode: u32, mtime: Mtime) -> io::Result<()>;
    /// blake3 of the regular file `name`.
    fn hash_file(&self, name: &[u8]) -> io::Result<[u8; 32]>;
    /// The regular file `name` opened for reading as a delta base, with its size now;
    /// `Unsupported` where reading it back is no cheaper than sending it again.
    fn open_base(&self, name: &[u8]) -> io::Result<(std::fs::File, u64)>;
    /// Renames `from` to `to` in this directory, replacing `to`. Only needed where
    /// [`open_base`](Self::open_base) works (resuming from a partial file).
    fn rename(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        let _ = (from, to);
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Removes `name` and, if a directory, everything under it except what `keep` (given the
    /// path relative to the root and whether it is a directory) says to keep. Returns whether
    /// `name` itself is gone. Never follows a symlink.
    fn remove_tree(
        &self,
        name: &[u8],
        is_dir: bool,
        keep: &dyn Fn(&[u8], bool) -> bool,
    ) -> io::Result<bool> {
        if !is_dir {
            self.remove(name, false)?;
            return Ok(true);
        }
        let sub = self.subdir(name)?;
        let mut all_gone = true;
        for (child, kind) in sub.list()? {
            let child_is_dir = kind == Some(Kind::Dir);
            if keep(&entry::join(sub.rel(), &child), child_is_dir) {
                all_gone = false;
                continue;
            }
            all_gone &= sub.remove_tree(&child, child_is_dir, keep)?;
        }
        drop(sub);
        if all_gone {
            self.remove(name, true)?;
        }
        Ok(all_gone)
    }
}

/// A file being written; dropped without [`commit`](Self::commit), it removes itself.
pub(crate) trait DestTemp: Write + Sized {
    /// Sets mode and mtime and renames over the target, atomically; with `fsync`, the data is
    /// on disk before the rename and the rename before this returns.
    fn commit(self, mode: u32, mtime: Mtime, fsync: bool) -> io::Result<()>;
    /// Leaves what was written under the temp name, for the next run to resume from (a
    /// destination that cannot resume removes it, as a drop does).
    fn keep(self) {}
}
