//! The source side's scan: one sorted listing per directory, depth first.
//!
//! Only one directory's listing and the stack of directories still to visit are held at a time,
//! so memory follows the widest directory and the depth, never the size of the tree. Entries of
//! a wide directory are examined in parallel, and with `--checksum` the files of each directory
//! are hashed in parallel.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fs::{self as rfs, AtFlags, OFlags};
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::entry::{self, Entry, Kind, Mtime};
use crate::filter::{Filter, Verdict};
use crate::progress::{FileError, SkipReason, Skipped};

/// One directory of the source, ready to send.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Path relative to the root, as wire bytes.
    pub rel: Vec<u8>,
    /// The directory's own permission bits.
    pub mode: u32,
    /// The directory's own mtime.
    pub mtime: Mtime,
    /// Included entries, sorted by name.
    pub entries: Vec<Entry>,
    /// Entries left out on purpose and reported (secrets, specials, unsafe links).
    pub skipped: Vec<Skipped>,
    /// Entries that could not be examined.
    pub errors: Vec<FileError>,
}

/// Walks a source tree depth first.
#[derive(Debug)]
pub struct Walker<'a> {
    root: PathBuf,
    filter: &'a Filter,
    checksum: bool,
    safe_links: bool,
    /// Directories still to list: relative path and own metadata.
    stack: Vec<(Vec<u8>, u32, Mtime)>,
}

fn mtime_of(meta: &fs::Metadata) -> Mtime {
    Mtime {
        sec: meta.mtime(),
        nsec: meta.mtime_nsec() as u32,
    }
}

impl<'a> Walker<'a> {
    /// Starts at `root`, which must be a directory.
    pub fn new(
        root: &Path,
        filter: &'a Filter,
        checksum: bool,
        safe_links: bool,
    ) -> io::Result<Walker<'a>> {
        let meta = fs::metadata(root)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(Walker {
            root: root.to_path_buf(),
            filter,
            checksum,
            safe_links,
            stack: vec![(Vec::new(), meta.mode() & 0o7777, mtime_of(&meta))],
        })
    }

    fn abs(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(entry::as_path(rel))
        }
    }

    /// Lists the next directory. The root's failure to list is returned as `Err`; any other
    /// directory's failure becomes a [`FileError`] in its parent-less listing.
    pub fn next_dir(&mut self) -> Option<io::Result<Listing>> {
        let (rel, mode, mtime) = self.stack.pop()?;
        let dir_path = self.abs(&rel);
        let mut listing = Listing {
            rel,
            mode,
            mtime,
            entries: Vec::new(),
            skipped: Vec::new(),
            errors: Vec::new(),
        };
        // One descriptor per directory: every entry is examined relative to it (one path
        // component for the kernel to look up instead of the whole path from the root).
        let listed = open_dir(&dir_path, listing.rel.is_empty())
            .and_then(|fd| read_names(&fd).map(|names| (fd, names)));
        let (dir_fd, names) = match listed {
            Ok(listed) => listed,
            Err(e) if listing.rel.is_empty() => return Some(Err(e)),
            Err(e) => {
                listing.errors.push(FileError::new(
                    &listing.rel,
                    format!("cannot list directory: {e}"),
                ));
                return Some(Ok(listing));
            }
        };
        let examined: Vec<Examined> = if names.len() >= 256 {
            names
                .par_iter()
                .map(|n| self.examine(&listing.rel, dir_fd.as_fd(), n))
                .collect()
        } else {
            names
                .iter()
                .map(|n| self.examine(&listing.rel, dir_fd.as_fd(), n))
                .collect()
        };
        drop(dir_fd);
        for item in examined {
            match item {
                Examined::Entry(e) => listing.entries.push(e),
                Examined::Skipped(s) => listing.skipped.push(s),
                Examined::Error(e) => listing.errors.push(e),
                Examined::Excluded | Examined::Vanished => {}
            }
        }
        if self.checksum {
            let failures: Vec<FileError> = listing
                .entries
                .par_iter_mut()
                .filter(|e| e.kind == Kind::File)
                .filter_map(|e| {
                    let path = dir_path.join(entry::as_path(&e.name));
                    match hash_file(&path) {
                        Ok(h) => {
                            e.hash = Some(h);
                            None
                        }
                        Err(err) => Some(FileError::new(
                            &entry::join(&listing.rel, &e.name),
                            format!("cannot read: {err}"),
                        )),
                    }
                })
                .collect();
            listing.errors.extend(failures);
            listing
                .entries
                .retain(|e| e.kind != Kind::File || e.hash.is_some());
        }
        // Visit subdirectories in name order: push them reversed onto the stack.
        for e in listing.entries.iter().rev() {
            if e.kind == Kind::Dir {
                self.stack
                    .push((entry::join(&listing.rel, &e.name), e.mode, e.mtime));
            }
        }
        Some(Ok(listing))
    }

    fn examine(&self, dir_rel: &[u8], dir: BorrowedFd<'_>, name: &[u8]) -> Examined {
        let rel = entry::join(dir_rel, name);
        let Ok(c_name) = CString::new(name) else {
            return Examined::Error(FileError::new(&rel, "name holds a NUL byte".to_string()));
        };
        let meta = match rfs::statat(dir, c_name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(m) => m,
            Err(rustix::io::Errno::NOENT) => return Examined::Vanished,
            Err(e) => {
                let e = io::Error::from(e);
                return Examined::Error(FileError::new(&rel, format!("cannot stat: {e}")));
            }
        };
        let kind = match rfs::FileType::from_raw_mode(meta.st_mode) {
            rfs::FileType::RegularFile => Kind::File,
            rfs::FileType::Directory => Kind::Dir,
            rfs::FileType::Symlink => Kind::Symlink,
            _ => {
                return match self.filter.check(entry::as_path(&rel), false) {
                    Verdict::Include => Examined::Skipped(Skipped::new(&rel, SkipReason::Special)),
                    _ => Examined::Excluded,
                };
            }
        };
        match self.filter.check(entry::as_path(&rel), kind == Kind::Dir) {
            Verdict::Include => {}
            Verdict::Excluded => return Examined::Excluded,
            Verdict::Secret => return Examined::Skipped(Skipped::new(&rel, SkipReason::Secret)),
        }
        let target = if kind == Kind::Symlink {
            match rfs::readlinkat(dir, c_name.as_c_str(), Vec::new()) {
                Ok(t) => t.into_bytes(),
                Err(rustix::io::Errno::NOENT) => return Examined::Vanished,
                Err(e) => {
                    let e = io::Error::from(e);
                    return Examined::Error(FileError::new(&rel, format!("cannot read link: {e}")));
                }
            }
        } else {
            Vec::new()
        };
        if kind == Kind::Symlink && self.safe_links && !is_safe_link(dir_rel, &target) {
            return Examined::Skipped(Skipped::new(&rel, SkipReason::UnsafeLink));
        }
        Examined::Entry(Entry {
            name: name.to_vec(),
            kind,
            size: if kind == Kind::File {
                meta.st_size as u64
            } else {
                0
            },
            mtime: Mtime {
                sec: meta.st_mtime as i64,
                nsec: meta.st_mtime_nsec as u32,
            },
            mode: meta.st_mode & 0o7777,
            target,
            hash: None,
        })
    }
}

/// Where a sender's directory listings come from: its own walk, or a walk shared with the
/// sessions to other destinations.
pub(crate) trait Listings {
    /// The next directory, depth first; `None` at the end of the tree.
    fn next_dir(&mut self) -> Option<io::Result<Listing>>;
}

impl Listings for Walker<'_> {
    fn next_dir(&mut self) -> Option<io::Result<Listing>> {
        Walker::next_dir(self)
    }
}

/// A walk made once for several sessions ([`SyncBuilder::run_many`](crate::SyncBuilder)): each
/// session gets every listing through its own bounded queue, so the slowest destination paces
/// the walk and memory stays bounded.
#[derive(Debug)]
pub(crate) struct SharedListings {
    pub queue: crossbeam_channel::Receiver<std::sync::Arc<Result<Listing, String>>>,
}

impl Listings for SharedListings {
    fn next_dir(&mut self) -> Option<io::Result<Listing>> {
        let item = self.queue.recv().ok()?;
        Some(match &*item {
            Ok(listing) => Ok(listing.clone()),
            Err(message) => Err(io::Error::other(message.clone())),
        })
    }
}

enum Examined {
    Entry(Entry),
    Skipped(Skipped),
    Error(FileError),
    Excluded,
    Vanished,
}

/// Opens a directory of the source for listing; below the root, never through a symlink
/// swapped in since its parent was listed.
fn open_dir(path: &Path, is_root: bool) -> io::Result<OwnedFd> {
    let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if !is_root {
        flags |= OFlags::NOFOLLOW;
    }
    Ok(rfs::open(path, flags, rfs::Mode::empty())?)
}

fn read_names(dir: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for item in rfs::Dir::read_from(dir)? {
        let item = item?;
        let name = item.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// Opens a source file for reading without following a symlink swapped in after the scan.
pub fn open_source(path: &Path) -> io::Result<File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no longer a regular file",
        ));
    }
    Ok(file)
}

/// blake3 of a file, large files hashed in parallel.
pub fn hash_file(path: &Path) -> io::Result<[u8; 32]> {
    let file = open_source(path)?;
    hash_open_file(&file)
}

/// blake3 of an open file. Read with plain reads, never mapped: a mapped file truncated by
/// someone else meanwhile would kill this process with SIGBUS.
pub fn hash_open_file(mut file: &File) -> io::Result<[u8; 32]> {
    thread_local! {
        // One buffer per hashing thread, reused: a fresh zeroed buffer per file cost more than
        // hashing the small files it held (`--checksum` over 50,000 files).
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let len = file.metadata()?.len();
    // A small file in one read (and the read that finds its end); big ones 1 MiB at a time,
    // hashed while still in cache, in parallel.
    let piece = (len.saturating_add(1)).clamp(16 << 10, 1 << 20) as usize;
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.len() < piece {
            buf.resize(piece, 0);
        }
        let buf = &mut buf[..piece];
        let mut hasher = blake3::Hasher::new();
        loop {
            let n = match file.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n >= 128 << 10 {
                hasher.update_rayon(&buf[..n]);
            } else {
                hasher.update(&buf[..n]);
            }
        }
        Ok(*hasher.finalize().as_bytes())
    })
}

/// Whether a symlink in `dir_rel` pointing at `target` stays inside the tree (rsync's
/// `--safe-links` rule: not absolute, and no `..` climbs above the root).
pub fn is_safe_link(dir_rel: &[u8], target: &[u8]) -> bool {
    if target.is_empty() || target.first() == Some(&b'/') {
        return false;
    }
    let mut depth: i64 = if dir_rel.is_empty() {
        0
    } else {
        dir_rel.split(|&b| b == b'/').count() as i64
    };
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => depth += 1,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_links_stay_inside() {
        assert!(is_safe_link(b"", b"a/b"));
        assert!(is_safe_link(b"d", b"../x"));
        assert!(!is_safe_link(b"d", b"../../x"));
        assert!(!is_safe_link(b"", b"/etc/passwd"));
        assert!(!is_safe_link(b"", b"a/../../x"));
        assert!(is_safe_link(b"d/e", b"../../f"));
    }

    #[test]
    fn listings_are_sorted_depth_first_and_filtered() {
        let t = tempfile::tempdir().unwrap();
        for d in ["b/y", "a", "c"] {
            fs::create_dir_all(t.path().join(d)).unwrap();
        }
        for f in ["z", "b/y/f", "a/x.log", "a/k.pem", "c/n"] {
            fs::write(t.path().join(f), f).unwrap();
        }
        let filter = Filter::new(&["*.log"], false).unwrap();
        let mut w = Walker::new(t.path(), &filter, true, false).unwrap();
        let mut seen = Vec::new();
        while let Some(l) = w.next_dir() {
            let l = l.unwrap();
            let names: Vec<String> = l
                .entries
                .iter()
                .map(|e| String::from_utf8_lossy(&e.name).into_owned())
                .collect();
            seen.push((
                String::from_utf8_lossy(&l.rel).into_owned(),
                names,
                l.skipped.len(),
            ));
            assert!(l
                .entries
                .iter()
                .all(|e| e.kind != Kind::File || e.hash.is_some()));
        }
        let expect = |d: &str, n: &[&str], s: usize| {
            (
                d.to_string(),
                n.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                s,
            )
        };
        assert_eq!(
            seen,
            vec![
                expect("", &["a", "b", "c", "z"], 0),
                expect("a", &[], 1),
                expect("b", &["y"], 0),
                expect("b/y", &["f"], 0),
                expect("c", &["n"], 0),
            ]
        );
    }
}
