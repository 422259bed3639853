//! Every filesystem change on the destination goes through here.
//!
//! The receiver holds a directory fd for the destination root and opens each directory below it
//! itself, refusing symlinks at every step (`openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, or a component-by-component `O_NOFOLLOW` walk where the kernel lacks
//! `openat2`). Every create, write, chmod, utimes, rename and unlink is then relative to such an
//! fd and names a single component, so a symlink planted in the destination (by a hostile sender
//! earlier in the session, or by anyone else) can be replaced but never followed.
//!
//! Files are written to a temp name beside the target ([`temp_name`]), given their mode and
//! mtime, and renamed into place: a file never appears half-written under its final name. The
//! temp name is derived from the target's name, so a rerun after a crash finds and replaces it.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};

use crate::dest::{DestDir, DestRoot, DestTemp};
use crate::entry::{self, Kind, Mtime};

/// What is at a name in the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Its kind, or `None` for devices, fifos and sockets.
    pub kind: Option<Kind>,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: Mtime,
    /// Permission bits.
    pub mode: u32,
}

/// The destination root, held open.
#[derive(Debug)]
pub struct Root {
    fd: Arc<OwnedFd>,
}

/// One directory of the destination, held open. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Dir {
    fd: Arc<OwnedFd>,
    /// Path relative to the root, as wire bytes.
    rel: Vec<u8>,
}

fn cstr(name: &[u8]) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

impl Root {
    /// Opens (creating it and its parents if missing) the destination root. The root itself may
    /// be reached through symlinks: that is where the user pointed us.
    pub fn open(path: &Path) -> io::Result<Root> {
        std::fs::create_dir_all(path)?;
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd: Arc::new(fd) })
    }

    fn walk(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        let mut current: Option<OwnedFd> = None;
        for component in rel.split(|&b| b == b'/') {
            let name = cstr(component)?;
            let parent = current.as_ref().map_or(self.fd.as_fd(), |fd| fd.as_fd());
            current = Some(rfs::openat(
                parent,
                name.as_c_str(),
                dir_flags(),
                Mode::empty(),
            )?);
        }
        current.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty path"))
    }
}

impl DestRoot for Root {
    type Dir = Dir;

    /// Opens the directory `rel` (wire bytes, already validated) without following any symlink.
    fn open_dir(&self, rel: &[u8]) -> io::Result<Dir> {
        if rel.is_empty() {
            return Ok(Dir {
                fd: self.fd.clone(),
                rel: Vec::new(),
            });
        }
        let path = cstr(rel)?;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let fd = match rfs::openat2(
            self.fd.as_fd(),
            path.as_c_str(),
            dir_flags(),
            Mode::empty(),
            resolve,
        ) {
            Ok(fd) => fd,
            // Kernels before 5.6, or a seccomp filter that hides openat2: walk by hand.
            Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM) => self.walk(rel)?,
            Err(e) => return Err(e.into()),
        };
        Ok(Dir {
            fd: Arc::new(fd),
            rel: rel.to_vec(),
        })
    }
}

/// The temp name used while `name` is being written: stable, so a rerun finds it.
pub fn temp_name(name: &[u8]) -> Vec<u8> {
    let hash = blake3::hash(name);
    format!(".azsync-{}.tmp", &hash.to_hex()[..16]).into_bytes()
}

/// Where a temp file cut short by a lost connection waits, while a rerun uses it as the base of
/// a delta (so a large transfer resumes instead of starting over).
pub fn partial_name(name: &[u8]) -> Vec<u8> {
    let hash = blake3::hash(name);
    format!(".azsync-{}.partial", &hash.to_hex()[..16]).into_bytes()
}

fn timestamps(mtime: Mtime) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        },
        last_modification: Timespec {
            tv_sec: mtime.sec,
            tv_nsec: mtime.nsec.into(),
        },
    }
}

fn stat_of(st: &rfs::Stat) -> Stat {
    let file_type = rfs::FileType::from_raw_mode(st.st_mode);
    let kind = match file_type {
        rfs::FileType::RegularFile => Some(Kind::File),
        rfs::FileType::Directory => Some(Kind::Dir),
        rfs::FileType::Symlink => Some(Kind::Symlink),
        _ => None,
    };
    Stat {
        kind,
        size: st.st_size as u64,
        mtime: Mtime {
            sec: st.st_mtime,
            nsec: st.st_mtime_nsec as u32,
        },
        mode: st.st_mode & 0o7777,
    }
}

impl DestDir for Dir {
    type Temp = TempFile;

    fn rel(&self) -> &[u8] {
        &self.rel
    }

    /// What is at `name`, without following a symlink; `None` if nothing is.
    fn stat(&self, name: &[u8]) -> io::Result<Option<Stat>> {
        let name = cstr(name)?;
        match rfs::statat(self.fd.as_fd(), name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(stat_of(&st))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the directory `name` (mode 0700 until its own batch sets the real one).
    fn mkdir(&self, name: &[u8]) -> io::Result<()> {
        let name = cstr(name)?;
        rfs::mkdirat(self.fd.as_fd(), name.as_c_str(), Mode::from_raw_mode(0o700))?;
        Ok(())
    }

    /// Removes `name`, a file, symlink or empty directory.
    fn remove(&self, name: &[u8], is_dir: bool) -> io::Result<()> {
        let name = cstr(name)?;
        let flags = if is_dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rfs::unlinkat(self.fd.as_fd(), name.as_c_str(), flags)?;
        Ok(())
    }

    /// Opens the subdirectory `name` without following a symlink.
    fn subdir(&self, name: &[u8]) -> io::Result<Self> {
        let c = cstr(name)?;
        let fd = rfs::openat(self.fd.as_fd(), c.as_c_str(), dir_flags(), Mode::empty())?;
        Ok(Dir {
            fd: Arc::new(fd),
            rel: entry::join(&self.rel, name),
        })
    }

    /// Lists the names in this directory with their kinds (`.` and `..` left out).
    fn list(&self) -> io::Result<Vec<(Vec<u8>, Option<Kind>)>> {
        let mut out = Vec::new();
        for item in rfs::Dir::read_from(self.fd.as_fd())? {
            let item = item?;
            let name = item.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let kind = match item.file_type() {
                rfs::FileType::RegularFile => Some(Kind::File),
                rfs::FileType::Directory => Some(Kind::Dir),
                rfs::FileType::Symlink => Some(Kind::Symlink),
                rfs::FileType::Unknown => self.stat(name)?.and_then(|s| s.kind),
                _ => None,
            };
            out.push((name.to_vec(), kind));
        }
        Ok(out)
    }

    /// Creates the temp file for `name`, replacing a stale one left by an interrupted run.
    fn create_temp(&self, name: &[u8]) -> io::Result<TempFile> {
        let temp = cstr(&temp_name(name))?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o600);
        let fd = match rfs::openat(self.fd.as_fd(), temp.as_c_str(), flags, mode) {
            Err(rustix::io::Errno::EXIST) => {
                rfs::unlinkat(self.fd.as_fd(), temp.as_c_str(), AtFlags::empty())?;
                rfs::openat(self.fd.as_fd(), temp.as_c_str(), flags, mode)?
            }
            other => other?,
        };
        Ok(TempFile {
            dir: self.clone(),
            temp,
            target: name.to_vec(),
            file: File::from(fd),
        })
    }

    /// Creates (or atomically replaces whatever is at) `name` with a symlink to `target`.
    fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        let temp = cstr(&temp_name(name))?;
        let target = cstr(target)?;
        match rfs::symlinkat(target.as_c_str(), self.fd.as_fd(), temp.as_c_str()) {
            Err(rustix::io::Errno::EXIST) => {
                rfs::unlinkat(self.fd.as_fd(), temp.as_c_str(), AtFlags::empty())?;
                rfs::symlinkat(target.as_c_str(), self.fd.as_fd(), temp.as_c_str())?;
            }
            other => other?,
        }
        let name = cstr(name)?;
        rfs::renameat(
            self.fd.as_fd(),
            temp.as_c_str(),
            self.fd.as_fd(),
            name.as_c_str(),
        )
        .inspect_err(|_| {
            let _ = rfs::unlinkat(self.fd.as_fd(), temp.as_c_str(), AtFlags::empty());
        })?;
        Ok(())
    }

    /// Reads the target of the symlink `name`.
    fn read_link(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        let name = cstr(name)?;
        Ok(rfs::readlinkat(self.fd.as_fd(), name.as_c_str(), Vec::new())?.into_bytes())
    }

    /// Sets the mode and mtime of the existing regular file `name` (never through a symlink).
    fn set_file_meta(&self, name: &[u8], mode: u32, mtime: Mtime) -> io::Result<()> {
        let file = self.open_file(name)?;
        rfs::fchmod(&file, Mode::from_raw_mode(mode & 0o7777))?;
        rfs::futimens(&file, &timestamps(mtime))?;
        Ok(())
    }

    /// Sets the mtime of the symlink `name` itself.
    fn set_link_mtime(&self, name: &[u8], mtime: Mtime) -> io::Result<()> {
        let name = cstr(name)?;
        rfs::utimensat(
            self.fd.as_fd(),
            name.as_c_str(),
            &timestamps(mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }

    /// Sets this directory's own mode and mtime.
    fn set_own_meta(&self, mode: u32, mtime: Mtime) -> io::Result<()> {
        rfs::fchmod(self.fd.as_fd(), Mode::from_raw_mode(mode & 0o7777))?;
        rfs::futimens(self.fd.as_fd(), &timestamps(mtime))?;
        Ok(())
    }

    /// This directory's own mode and mtime.
    fn own_stat(&self) -> io::Result<Stat> {
        Ok(stat_of(&rfs::fstat(self.fd.as_fd())?))
    }

    fn hash_file(&self, name: &[u8]) -> io::Result<[u8; 32]> {
        crate::walk::hash_open_file(&self.open_file(name)?)
    }

    fn open_base(&self, name: &[u8]) -> io::Result<(File, u64)> {
        // Read, not mapped: someone truncating the file meanwhile makes a short read (and the
        // file is sent again whole), where a map would kill us with SIGBUS.
        let file = self.open_file(name)?;
        let len = file.metadata()?.len();
        Ok((file, len))
    }

    fn rename(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        let (from, to) = (cstr(from)?, cstr(to)?);
        rfs::renameat(
            self.fd.as_fd(),
            from.as_c_str(),
            self.fd.as_fd(),
            to.as_c_str(),
        )?;
        Ok(())
    }
}

impl Dir {
    /// Opens the existing regular file `name` for reading, refusing a symlink.
    pub fn open_file(&self, name: &[u8]) -> io::Result<File> {
        let name = cstr(name)?;
        let fd = rfs::openat(
            self.fd.as_fd(),
            name.as_c_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(file)
    }
}

/// A file being written beside its target. Dropped without [`commit`](Self::commit), it removes
/// itself.
#[derive(Debug)]
pub struct TempFile {
    dir: Dir,
    temp: CString,
    target: Vec<u8>,
    file: File,
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl DestTemp for TempFile {
    /// Sets mode and mtime, then renames over the target (atomically replacing whatever is
    /// there, a symlink included: the link itself is replaced, not followed).
    fn commit(mut self, mode: u32, mtime: Mtime, fsync: bool) -> io::Result<()> {
        rfs::fchmod(&self.file, Mode::from_raw_mode(mode & 0o7777))?;
        rfs::futimens(&self.file, &timestamps(mtime))?;
        if fsync {
            rfs::fsync(&self.file)?;
        }
        let target = cstr(&self.target)?;
        let result = rfs::renameat(
            self.dir.fd.as_fd(),
            self.temp.as_c_str(),
            self.dir.fd.as_fd(),
            target.as_c_str(),
        );
        if result.is_ok() {
            self.temp = CString::default();
            if fsync {
                // The rename is durable once the directory is.
                rfs::fsync(self.dir.fd.as_fd())?;
            }
        }
        Ok(result?)
    }

    fn keep(mut self) {
        self.temp = CString::default();
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.temp.as_bytes().is_empty() {
            let _ = rfs::unlinkat(self.dir.fd.as_fd(), self.temp.as_c_str(), AtFlags::empty());
        }
    }
}

/// A wire path as an `OsStr`, for messages.
pub fn display(rel: &[u8]) -> std::borrow::Cow<'_, str> {
    OsStr::from_bytes(rel).to_string_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_symlinked_directory_is_never_entered() {
        let dest = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.path().join("a")).unwrap();
        let root = Root::open(dest.path()).unwrap();
        let err = root.open_dir(b"a").unwrap_err();
        assert!(
            matches!(
                err.raw_os_error(),
                Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EXDEV)
            ),
            "{err}"
        );
        assert!(root.open_dir(b"").unwrap().subdir(b"a").is_err());
        // The component walk refuses it too.
        assert!(root.walk(b"a").is_err());
    }

    #[test]
    fn commit_replaces_a_symlink_instead_of_writing_through_it() {
        let dest = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, dest.path().join("f")).unwrap();
        let dir = Root::open(dest.path()).unwrap().open_dir(b"").unwrap();
        let mut temp = dir.create_temp(b"f").unwrap();
        temp.write_all(b"new").unwrap();
        temp.commit(
            0o640,
            Mtime {
                sec: 1_600_000_000,
                nsec: 123_456_789,
            },
            false,
        )
        .unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let meta = std::fs::symlink_metadata(dest.path().join("f")).unwrap();
        assert!(meta.is_file());
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (meta.mode() & 0o7777, meta.mtime(), meta.mtime_nsec()),
            (0o640, 1_600_000_000, 123_456_789)
        );
        assert!(!dest
            .path()
            .join(OsStr::from_bytes(&temp_name(b"f")))
            .exists());
    }

    #[test]
    fn a_dropped_temp_file_leaves_nothing() {
        let dest = tempfile::tempdir().unwrap();
        let dir = Root::open(dest.path()).unwrap().open_dir(b"").unwrap();
        let mut temp = dir.create_temp(b"x").unwrap();
        temp.write_all(b"partial").unwrap();
        // A stale temp from an earlier crash is replaced, not an error.
        std::mem::forget(dir.create_temp(b"y").unwrap());
        dir.create_temp(b"y").unwrap();
        drop(temp);
        assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    }

    #[test]
    fn remove_tree_keeps_protected_paths() {
        let dest = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dest.path().join("d/e")).unwrap();
        std::fs::write(dest.path().join("d/e/keep.log"), b"").unwrap();
        std::fs::write(dest.path().join("d/gone"), b"").unwrap();
        let dir = Root::open(dest.path()).unwrap().open_dir(b"").unwrap();
        let gone = dir
            .remove_tree(b"d", true, &|rel, _| rel.ends_with(b".log"))
            .unwrap();
        assert!(!gone);
        assert!(dest.path().join("d/e/keep.log").exists());
        assert!(!dest.path().join("d/gone").exists());
        assert!(dir.remove_tree(b"d", true, &|_, _| false).unwrap());
        assert!(!dest.path().join("d").exists());
    }
}
