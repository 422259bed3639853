//! The destination of the SFTP fallback: the receiver runs in this process and makes its
//! changes on the remote through SFTP, with the same rules as [`confined`](crate::confined).
//!
//! SFTP names paths, not descriptors, so the guarantees are kept the path-based way:
//! - a directory is opened only after every component below the root was `lstat`ed and found
//!   to be a directory (never a symlink); all of those `lstat`s and the `opendir` go out
//!   together, one round trip;
//! - files are written to the same temp name as locally, opened `CREATE|EXCLUSIVE` (which never
//!   follows a symlink), given mode and mtime through the handle, and renamed over the target
//!   with `posix-rename@openssh.com` (atomic; a symlink at the target is replaced, not
//!   followed);
//! - symlinks are made at the temp name and renamed into place.
//!
//! Round trips are what SFTP costs, so requests are pipelined: a directory's listing (names
//! with their attributes) is read once, with several `READDIR`s in flight, and answers every
//! `stat` in it; writes go out 64 KiB at a time with many in flight, and the final `fsetstat`
//! and `close` ride behind them. SFTP version 3 carries whole-second mtimes, so this
//! destination tells the receiver to compare mtimes to the second.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::sftp_client::{
    Attrs, Pending, SftpClient, OPEN_CREATE, OPEN_EXCLUSIVE, OPEN_READ, OPEN_TRUNCATE, OPEN_WRITE,
};
use super::SshSession;
use crate::confined::{temp_name, Stat};
use crate::dest::{DestDir, DestRoot, DestTemp};
use crate::entry::{self, Kind, Mtime};
use crate::error::{Error, Result};

/// Bytes per write and read request (every server takes 32 KiB; OpenSSH takes 255 KiB).
const CHUNK: usize = 64 * 1024;
/// Writes in flight per file: 32 x 64 KiB fills OpenSSH's 2 MiB channel window.
const WRITES_IN_FLIGHT: usize = 32;
/// Reads in flight while hashing a file (`--checksum`).
const READS_IN_FLIGHT: usize = 16;
/// `READDIR`s in flight while listing a directory (OpenSSH answers 100 names each).
const READDIRS_IN_FLIGHT: usize = 4;
const POSIX_RENAME: &str = "posix-rename@openssh.com";
const LSETSTAT: &str = "lsetstat@openssh.com";
const LIMITS: &str = "limits@openssh.com";

/// A directory's names and what is at each.
type Listing = HashMap<Vec<u8>, Stat>;

/// What every directory of one destination shares.
struct Shared {
    client: SftpClient,
    /// The root's canonical absolute path.
    root: Vec<u8>,
    /// Bytes per write or read request.
    chunk: usize,
    posix_rename: bool,
    lsetstat: bool,
    /// The server reads `SSH_FXP_SYMLINK`'s target first, as OpenSSH does.
    openssh_symlink: bool,
    /// Directories this session created whose own batch has not been opened yet: they are
    /// empty, and every component above them was checked, so opening one costs nothing.
    fresh: Mutex<HashSet<Vec<u8>>>,
}

/// A destination reached through SFTP.
pub(crate) struct SftpRoot {
    shared: Arc<Shared>,
}

/// One directory of an SFTP destination. Clones share one listing.
#[derive(Clone)]
pub(crate) struct SftpDir {
    shared: Arc<Shared>,
    rel: Vec<u8>,
    path: Vec<u8>,
    /// Name -> what is there, read on first use and kept up to date with our own changes.
    listing: Arc<Mutex<Option<Listing>>>,
    /// This directory's own metadata as of its opening, until something here changes.
    own: Arc<Mutex<Option<Stat>>>,
}

/// A file being written under its temp name.
pub(crate) struct SftpTemp {
    dir: SftpDir,
    target: Vec<u8>,
    /// The temp file's full path.
    temp: Vec<u8>,
    /// The removal of a stale temp and the exclusive open, both in flight.
    opening: Option<(Pending, Pending)>,
    handle: Option<Vec<u8>>,
    /// The handle is open (no close sent yet).
    open: bool,
    buf: Vec<u8>,
    offset: u64,
    writes: VecDeque<Pending>,
    /// The first failure; everything after it fails the same way.
    failed: Option<(io::ErrorKind, String)>,
    /// Committed: nothing to clean up.
    done: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `dir/name` (`/name` under the filesystem root).
fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(dir.len() + name.len() + 1);
    path.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

fn kind_of(attrs: &Attrs) -> Option<Kind> {
    match attrs.permissions.unwrap_or(0) & 0o170000 {
        0o100000 => Some(Kind::File),
        0o040000 => Some(Kind::Dir),
        0o120000 => Some(Kind::Symlink),
        _ => None,
    }
}

fn stat_of(attrs: &Attrs) -> Stat {
    Stat {
        kind: kind_of(attrs),
        size: attrs.size.unwrap_or(0),
        mtime: Mtime {
            sec: attrs.mtime.map_or(0, i64::from),
            nsec: 0,
        },
        mode: attrs.permissions.unwrap_or(0) & 0o7777,
    }
}

/// What an `lstat` found; `None` if nothing is there.
fn lstat_reply(pending: Pending) -> io::Result<Option<Stat>> {
    match pending.attrs() {
        Ok(attrs) => Ok(Some(stat_of(&attrs))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Fails unless `stat` is a directory, the way `openat(O_DIRECTORY | O_NOFOLLOW)` would.
fn check_dir(stat: Option<Stat>) -> io::Result<()> {
    match stat.and_then(|s| s.kind) {
        Some(Kind::Dir) => Ok(()),
        Some(Kind::Symlink) => Err(io::Error::from_raw_os_error(libc::ELOOP)),
        _ if stat.is_none() => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        _ => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
    }
}

/// SFTP version 3 times are unsigned 32-bit seconds.
fn sftp_time(mtime: Mtime) -> io::Result<u32> {
    u32::try_from(mtime.sec).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "mtime {} is outside what SFTP can set (1970 to 2106)",
                mtime.sec
            ),
        )
    })
}

fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

fn meta_attrs(mode: u32, mtime: Mtime) -> io::Result<Attrs> {
    Ok(Attrs {
        permissions: Some(mode & 0o7777),
        atime: Some(now()),
        mtime: Some(sftp_time(mtime)?),
        ..Attrs::default()
    })
}

/// Reads a whole directory listing from an open handle.
fn read_listing(client: &SftpClient, handle: &[u8]) -> io::Result<Listing> {
    let mut listing = HashMap::new();
    let mut queue = VecDeque::new();
    let mut end = false;
    loop {
        while !end && queue.len() < READDIRS_IN_FLIGHT {
            queue.push_back(client.readdir(handle)?);
        }
        let Some(next) = queue.pop_front() else {
            break;
        };
        if end {
            // Requests sent before the end was seen have nothing more to say.
            let _ = next.names();
            continue;
        }
        match next.names()? {
            Some(names) => {
                for item in names {
                    if item.name != b"." && item.name != b".." {
                        listing.insert(item.name, stat_of(&item.attrs));
                    }
                }
            }
            None => end = true,
        }
    }
    Ok(listing)
}

/// `mkdir -p path` with the server's umask, like [`Root::open`](crate::confined::Root::open).
fn mkdir_p(client: &SftpClient, path: &[u8]) -> io::Result<()> {
    let mut prefix = Vec::new();
    if path.starts_with(b"/") {
        prefix.push(b'/');
    }
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() && !prefix.ends_with(b"/") {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(part);
        if part == b"." || part == b".." {
            continue;
        }
        let is_dir = |c: &SftpClient| {
            c.stat(&prefix)
                .and_then(Pending::attrs)
                .map(|a| kind_of(&a))
        };
        match is_dir(client) {
            Ok(Some(Kind::Dir)) => continue,
            Ok(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Err(e) = client.mkdir(&prefix, Attrs::default())?.status() {
            // Someone else may have made it meanwhile.
            if !matches!(is_dir(client), Ok(Some(Kind::Dir))) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Renames `from` over `to`: atomically with `posix-rename@openssh.com`, else with plain SFTP
/// rename (which refuses an existing target, so that is removed first).
fn rename_over(shared: &Shared, from: &[u8], to: &[u8]) -> io::Result<()> {
    let c = &shared.client;
    if shared.posix_rename {
        return c.extended(POSIX_RENAME, &[from, to])?.status();
    }
    match c.rename(from, to)?.status() {
        Ok(()) => Ok(()),
        Err(first) => {
            if c.remove(to)?.status().is_err() {
                return Err(first);
            }
            c.rename(from, to)?.status()
        }
    }
}

impl SftpRoot {
    /// Opens the destination `dest` on `session` (creating it and its parents if missing). A
    /// relative `dest` is under `home` when given (the remote `$HOME`, as for the agent), else
    /// under the SFTP login directory. A dry run into a missing destination is `None`. If the
    /// SFTP session ends while the root is in use, `lost` is set to why.
    pub(crate) fn open(
        session: &SshSession,
        dest: &Path,
        home: Option<&[u8]>,
        dry_run: bool,
        lost: Arc<OnceLock<String>>,
    ) -> Result<Option<SftpRoot>> {
        let client = SftpClient::start(session, lost)?;
        let fail = |e: io::Error| Error::io(dest, e);
        let dest_bytes = dest.as_os_str().as_bytes();
        let path = match home {
            Some(home) if !dest_bytes.starts_with(b"/") => join(home, dest_bytes),
            _ => dest_bytes.to_vec(),
        };
        let created = match client.stat(&path).and_then(Pending::attrs) {
            Ok(attrs) if kind_of(&attrs) == Some(Kind::Dir) => false,
            Ok(_) => return Err(fail(io::Error::from_raw_os_error(libc::ENOTDIR))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if dry_run {
                    return Ok(None);
                }
                mkdir_p(&client, &path).map_err(fail)?;
                true
            }
            Err(e) => return Err(fail(e)),
        };
        // The root itself may be reached through symlinks (that is where the user pointed):
        // from here on every path starts at its canonical form.
        let root = client
            .realpath(&path)
            .and_then(Pending::name)
            .map_err(fail)?;
        let mut chunk = CHUNK;
        if client.has_extension(LIMITS) {
            if let Ok(limits) = client
                .extended(LIMITS, &[])
                .and_then(Pending::extended_reply)
            {
                // max-packet-length, max-read-length, max-write-length, max-open-handles.
                let field = |i: usize| {
                    limits
                        .get(i * 8..i * 8 + 8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes)
                        .unwrap_or(0)
                };
                for limit in [field(1), field(2)] {
                    if limit >= 4096 {
                        chunk = chunk.min(limit as usize);
                    }
                }
            }
        }
        let openssh = client.has_extension(POSIX_RENAME) || client.has_extension(LSETSTAT);
        let shared = Shared {
            posix_rename: client.has_extension(POSIX_RENAME),
            lsetstat: client.has_extension(LSETSTAT),
            openssh_symlink: openssh,
            client,
            root,
            chunk,
            fresh: Mutex::new(HashSet::new()),
        };
        if created {
            lock(&shared.fresh).insert(Vec::new());
        }
        Ok(Some(SftpRoot {
            shared: Arc::new(shared),
        }))
    }
}

impl Shared {
    /// Forgets that `rel` and everything under it is fresh (it was removed or replaced).
    fn forget_tree(&self, rel: &[u8]) {
        let mut fresh = lock(&self.fresh);
        if fresh.is_empty() {
            return;
        }
        fresh.retain(|p| {
            !(p.starts_with(rel) && (p.len() == rel.len() || p.get(rel.len()) == Some(&b'/')))
        });
    }
}

impl DestRoot for SftpRoot {
    type Dir = SftpDir;

    fn open_dir(&self, rel: &[u8]) -> io::Result<SftpDir> {
        let shared = &self.shared;
        let path = if rel.is_empty() {
            shared.root.clone()
        } else {
            join(&shared.root, rel)
        };
        let dir = SftpDir {
            shared: Arc::clone(shared),
            rel: rel.to_vec(),
            path,
            listing: Arc::new(Mutex::new(None)),
            own: Arc::new(Mutex::new(None)),
        };
        if lock(&shared.fresh).remove(rel) {
            *lock(&dir.listing) = Some(HashMap::new());
            return Ok(dir);
        }
        // Every component below the root must be a real directory. The lstats and the opendir
        // go out together; the listing is used only if every check passes. The last lstat
        // (of the directory itself, or of the root) is also its own metadata.
        let c = &shared.client;
        let mut checks = Vec::new();
        for (i, _) in rel.iter().enumerate().filter(|(_, &b)| b == b'/') {
            checks.push(c.lstat(&join(&shared.root, &rel[..i]))?);
        }
        checks.push(c.lstat(&dir.path)?);
        let opening = c.opendir(&dir.path)?;
        let checked = checks.into_iter().try_fold(None, |_, check| {
            let stat = lstat_reply(check)?;
            check_dir(stat).map(|()| stat)
        });
        let handle = match checked {
            Ok(own) => {
                *lock(&dir.own) = own;
                opening.handle()?
            }
            Err(e) => {
                if let Ok(handle) = opening.handle() {
                    let _ = c.close(&handle);
                }
                return Err(e);
            }
        };
        let listing = read_listing(c, &handle);
        let _ = c.close(&handle);
        *lock(&dir.listing) = Some(listing?);
        Ok(dir)
    }

    fn mtime_granularity_ns(&self) -> u32 {
        1_000_000_000
    }
}

impl SftpDir {
    fn child(&self, name: &[u8]) -> Vec<u8> {
        join(&self.path, name)
    }

    fn client(&self) -> &SftpClient {
        &self.shared.client
    }

    /// The listing, read now if it was not yet.
    fn listing(&self) -> io::Result<MutexGuard<'_, Option<Listing>>> {
        let mut listing = lock(&self.listing);
        if listing.is_none() {
            let c = self.client();
            let handle = c.opendir(&self.path)?.handle()?;
            let read = read_listing(c, &handle);
            let _ = c.close(&handle);
            *listing = Some(read?);
        }
        Ok(listing)
    }

    /// Something here changes (and with it this directory's mtime).
    fn touch(&self) {
        *lock(&self.own) = None;
    }

    /// Records a change we made at `name`.
    fn note(&self, name: &[u8], stat: Option<Stat>) {
        self.touch();
        if let Some(listing) = lock(&self.listing).as_mut() {
            match stat {
                Some(stat) => listing.insert(name.to_vec(), stat),
                None => listing.remove(name),
            };
        }
        lock(&self.shared.fresh).remove(&self.rel);
        self.shared.forget_tree(&entry::join(&self.rel, name));
    }

    /// Updates the mode and mtime recorded for `name`.
    fn note_meta(&self, name: &[u8], mode: u32, mtime: Mtime) {
        if let Some(stat) = lock(&self.listing)
            .as_mut()
            .and_then(|listing| listing.get_mut(name))
        {
            stat.mode = mode & 0o7777;
            stat.mtime = Mtime {
                sec: mtime.sec,
                nsec: 0,
            };
        }
    }
}

impl DestDir for SftpDir {
    type Temp = SftpTemp;

    fn rel(&self) -> &[u8] {
        &self.rel
    }

    fn stat(&self, name: &[u8]) -> io::Result<Option<Stat>> {
        Ok(self
            .listing()?
            .as_ref()
            .and_then(|listing| listing.get(name).copied()))
    }

    fn own_stat(&self) -> io::Result<Stat> {
        if let Some(own) = *lock(&self.own) {
            return Ok(own);
        }
        Ok(stat_of(&self.client().lstat(&self.path)?.attrs()?))
    }

    fn list(&self) -> io::Result<Vec<(Vec<u8>, Option<Kind>)>> {
        Ok(self
            .listing()?
            .iter()
            .flatten()
            .map(|(name, stat)| (name.clone(), stat.kind))
            .collect())
    }

    fn subdir(&self, name: &[u8]) -> io::Result<Self> {
        let known = lock(&self.listing)
            .as_ref()
            .map(|listing| listing.get(name).copied());
        let stat = match known {
            Some(stat) => stat,
            None => lstat_reply(self.client().lstat(&self.child(name))?)?,
        };
        check_dir(stat)?;
        Ok(SftpDir {
            shared: Arc::clone(&self.shared),
            rel: entry::join(&self.rel, name),
            path: self.child(name),
            listing: Arc::new(Mutex::new(None)),
            own: Arc::new(Mutex::new(None)),
        })
    }

    fn mkdir(&self, name: &[u8]) -> io::Result<()> {
        self.touch();
        let attrs = Attrs {
            permissions: Some(0o700),
            ..Attrs::default()
        };
        self.client().mkdir(&self.child(name), attrs)?.status()?;
        self.note(
            name,
            Some(Stat {
                kind: Some(Kind::Dir),
                size: 0,
                mtime: Mtime {
                    sec: now().into(),
                    nsec: 0,
                },
                mode: 0o700,
            }),
        );
        lock(&self.shared.fresh).insert(entry::join(&self.rel, name));
        Ok(())
    }

    fn remove(&self, name: &[u8], is_dir: bool) -> io::Result<()> {
        self.touch();
        let path = self.child(name);
        let c = self.client();
        if is_dir {
            c.rmdir(&path)?.status()?;
        } else {
            c.remove(&path)?.status()?;
        }
        self.note(name, None);
        Ok(())
    }

    fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        self.touch();
        if !self.shared.openssh_symlink {
            // The draft and OpenSSH disagree on the order of SSH_FXP_SYMLINK's arguments; a
            // guess could make a link at the target's path instead.
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this SFTP server is not OpenSSH-compatible: cannot tell how it makes symlinks",
            ));
        }
        let c = self.client();
        let temp = self.child(&temp_name(name));
        // A stale temp from an interrupted run goes first; both requests go out together.
        let removed = c.remove(&temp)?;
        let made = c.symlink_raw(target, &temp)?;
        let _ = removed.status();
        made.status()?;
        if let Err(e) = rename_over(&self.shared, &temp, &self.child(name)) {
            let _ = c.remove(&temp).and_then(Pending::status);
            return Err(e);
        }
        self.note(
            name,
            Some(Stat {
                kind: Some(Kind::Symlink),
                size: target.len() as u64,
                mtime: Mtime {
                    sec: now().into(),
                    nsec: 0,
                },
                mode: 0o777,
            }),
        );
        Ok(())
    }

    fn read_link(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        self.client().readlink(&self.child(name))?.name()
    }

    fn create_temp(&self, name: &[u8]) -> io::Result<SftpTemp> {
        self.touch();
        let c = self.client();
        let temp = self.child(&temp_name(name));
        // A stale temp is removed, then the exclusive open refuses anything that is still (or
        // again) there, a symlink included. Neither waits: the first write does.
        let removed = c.remove(&temp)?;
        let attrs = Attrs {
            permissions: Some(0o600),
            ..Attrs::default()
        };
        let opened = c.open(
            &temp,
            OPEN_WRITE | OPEN_CREATE | OPEN_EXCLUSIVE | OPEN_TRUNCATE,
            attrs,
        )?;
        Ok(SftpTemp {
            dir: self.clone(),
            target: name.to_vec(),
            temp,
            opening: Some((removed, opened)),
            handle: None,
            open: false,
            buf: Vec::new(),
            offset: 0,
            writes: VecDeque::new(),
            failed: None,
            done: false,
        })
    }

    fn set_file_meta(&self, name: &[u8], mode: u32, mtime: Mtime) -> io::Result<()> {
        self.client()
            .setstat(&self.child(name), meta_attrs(mode, mtime)?)?
            .status()?;
        self.note_meta(name, mode, mtime);
        Ok(())
    }

    /// With `lsetstat@openssh.com` the link's own mtime is set (to the second); without it,
    /// SFTP has no way to, and the link keeps the time it was made.
    fn set_link_mtime(&self, name: &[u8], mtime: Mtime) -> io::Result<()> {
        let Ok(time) = sftp_time(mtime) else {
            return Ok(());
        };
        if !self.shared.lsetstat {
            return Ok(());
        }
        let attrs = Attrs {
            atime: Some(now()),
            mtime: Some(time),
            ..Attrs::default()
        };
        match self.client().lsetstat(&self.child(name), attrs)?.status() {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(()),
            other => other,
        }
    }

    fn set_own_meta(&self, mode: u32, mtime: Mtime) -> io::Result<()> {
        self.touch();
        self.client()
            .setstat(&self.path, meta_attrs(mode, mtime)?)?
            .status()
    }

    fn hash_file(&self, name: &[u8]) -> io::Result<[u8; 32]> {
        let c = self.client();
        let handle = c
            .open(&self.child(name), OPEN_READ, Attrs::default())?
            .handle()?;
        let hashed = hash_remote(c, &handle, self.shared.chunk);
        let _ = c.close(&handle);
        hashed
    }

    fn open_base(&self, _name: &[u8]) -> io::Result<(std::fs::File, u64)> {
        // Reading the old copy back over the network costs what sending it again does.
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no deltas over SFTP",
        ))
    }
}

/// blake3 of an open remote file, read with many requests in flight.
fn hash_remote(c: &SftpClient, handle: &[u8], chunk: usize) -> io::Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    let mut queue: VecDeque<(u64, Pending)> = VecDeque::new();
    let mut next = 0u64;
    let len = chunk as u32;
    loop {
        while queue.len() < READS_IN_FLIGHT {
            queue.push_back((next, c.read(handle, next, len)?));
            next += chunk as u64;
        }
        let Some((at, pending)) = queue.pop_front() else {
            break;
        };
        let Some(data) = pending.data()?.filter(|d| !d.is_empty()) else {
            break;
        };
        hasher.update(&data);
        if data.len() < chunk {
            // A short read: fetch the rest of this range before going on (at the end of the
            // file there is none).
            let mut pos = at + data.len() as u64;
            let end = at + chunk as u64;
            while pos < end {
                match c.read(handle, pos, (end - pos) as u32)?.data()? {
                    Some(more) if !more.is_empty() => {
                        hasher.update(&more);
                        pos += more.len() as u64;
                    }
                    _ => return Ok(*hasher.finalize().as_bytes()),
                }
            }
        }
    }
    Ok(*hasher.finalize().as_bytes())
}

impl SftpTemp {
    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some((kind, message)) => Err(io::Error::new(*kind, message.clone())),
            None => Ok(()),
        }
    }

    fn remember<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            if self.failed.is_none() {
                self.failed = Some((e.kind(), e.to_string()));
            }
        }
        result
    }

    /// The open handle, waiting for the open if it is still in flight.
    fn handle(&mut self) -> io::Result<Vec<u8>> {
        if let Some((removed, opened)) = self.opening.take() {
            let _ = removed.status();
            self.handle = Some(opened.handle()?);
            self.open = true;
        }
        self.handle
            .clone()
            .ok_or_else(|| io::Error::other("the temp file was not created"))
    }

    /// Sends one write request, first waiting for the oldest if too many are in flight.
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        let handle = self.handle()?;
        while self.writes.len() >= WRITES_IN_FLIGHT {
            if let Some(oldest) = self.writes.pop_front() {
                oldest.status()?;
            }
        }
        let request = self.dir.client().write(&handle, self.offset, data)?;
        self.writes.push_back(request);
        self.offset += data.len() as u64;
        Ok(())
    }

    fn buffer(&mut self, mut data: &[u8]) -> io::Result<()> {
        let chunk = self.dir.shared.chunk;
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= chunk {
                self.send(&data[..chunk])?;
                data = &data[chunk..];
                continue;
            }
            let take = (chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == chunk {
                let full = std::mem::take(&mut self.buf);
                self.send(&full)?;
                self.buf = full;
                self.buf.clear();
            }
        }
        Ok(())
    }

    fn finish(&mut self, mode: u32, mtime: Mtime) -> io::Result<()> {
        self.check()?;
        let attrs = meta_attrs(mode, mtime)?;
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.send(&rest)?;
        }
        let handle = self.handle()?;
        let c = self.dir.client();
        // Same handle, so the server applies these after the writes, in order.
        let set = c.fsetstat(&handle, attrs);
        let closing = c.close(&handle);
        self.open = false;
        let mut result = Ok(());
        for write in self.writes.drain(..) {
            let r = write.status();
            if result.is_ok() {
                result = r;
            }
        }
        for pending in [set, closing] {
            let r = pending.and_then(Pending::status);
            if result.is_ok() {
                result = r;
            }
        }
        result?;
        rename_over(&self.dir.shared, &self.temp, &self.dir.child(&self.target))?;
        self.done = true;
        self.dir.note(
            &self.target,
            Some(Stat {
                kind: Some(Kind::File),
                size: self.offset,
                mtime: Mtime {
                    sec: mtime.sec,
                    nsec: 0,
                },
                mode: mode & 0o7777,
            }),
        );
        Ok(())
    }
}

impl Write for SftpTemp {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.check()?;
        let result = self.buffer(data);
        self.remember(result).map(|()| data.len())
    }

    /// Data goes out in whole requests; the last one at commit.
    fn flush(&mut self) -> io::Result<()> {
        self.check()
    }
}

impl DestTemp for SftpTemp {
    /// `fsync` is not honoured: SFTP v3 has no fsync (OpenSSH's `fsync@openssh.com` extension
    /// would be needed); the server's own write-back applies.
    fn commit(mut self, mode: u32, mtime: Mtime, _fsync: bool) -> io::Result<()> {
        let result = self.finish(mode, mtime);
        self.remember(result)
    }
}

impl Drop for SftpTemp {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.opening.is_some() && self.handle().is_err() {
            // Never created: whatever is at the temp name is not ours.
            return;
        }
        self.writes.clear();
        let c = self.dir.client();
        let closing = match (&self.handle, self.open) {
            (Some(handle), true) => c.close(handle).ok(),
            _ => None,
        };
        let removing = c.remove(&self.temp).ok();
        for pending in [closing, removing].into_iter().flatten() {
            let _ = pending.status();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::PathBuf;

    use super::super::test_sshd::TestSshd;
    use super::*;

    fn session(sshd: &TestSshd) -> SshSession {
        SshSession::connect(&sshd.target(), &sshd.options()).unwrap()
    }

    fn root_at(session: &SshSession, dest: &Path) -> SftpRoot {
        SftpRoot::open(session, dest, None, false, Arc::default())
            .unwrap()
            .unwrap()
    }

    fn local(dest: &Path, rel: &[u8]) -> PathBuf {
        dest.join(OsStr::from_bytes(rel))
    }

    fn t(sec: i64, nsec: u32) -> Mtime {
        Mtime { sec, nsec }
    }

    #[test]
    fn sftp_dest_writes_files_dirs_and_links_with_raw_names() {
        let sshd = TestSshd::start();
        let session = session(&sshd);
        let dest = sshd.dir.path().join("dest/deeper");
        let root = root_at(&session, &dest);
        assert!(dest.is_dir(), "the root and its parents are created");
        assert_eq!(root.mtime_granularity_ns(), 1_000_000_000);

        let top = root.open_dir(b"").unwrap();
        assert!(top.list().unwrap().is_empty());
        top.mkdir(b"d\xff\xfe").unwrap();
        assert_eq!(
            top.stat(b"d\xff\xfe").unwrap().unwrap().kind,
            Some(Kind::Dir)
        );
        let sub = root.open_dir(b"d\xff\xfe").unwrap();

        // Several requests' worth, written in uneven pieces.
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut temp = sub.create_temp(b"f\xe9").unwrap();
        for piece in data.chunks(70_001) {
            temp.write_all(piece).unwrap();
        }
        temp.commit(0o640, t(1_600_000_000, 999_999_999), false)
            .unwrap();
        let file = local(&dest, b"d\xff\xfe/f\xe9");
        assert_eq!(std::fs::read(&file).unwrap(), data);
        let meta = std::fs::symlink_metadata(&file).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.mtime(), meta.mtime_nsec()),
            (0o640, 1_600_000_000, 0),
            "mode and whole-second mtime"
        );
        let stat = sub.stat(b"f\xe9").unwrap().unwrap();
        assert_eq!(
            (stat.kind, stat.size),
            (Some(Kind::File), data.len() as u64)
        );
        assert_eq!(
            sub.hash_file(b"f\xe9").unwrap(),
            *blake3::hash(&data).as_bytes()
        );

        // An empty file.
        sub.create_temp(b"empty")
            .unwrap()
            .commit(0o600, t(1_600_000_001, 0), false)
            .unwrap();
        assert_eq!(
            std::fs::read(local(&dest, b"d\xff\xfe/empty")).unwrap(),
            b""
        );
        assert_eq!(
            sub.hash_file(b"empty").unwrap(),
            *blake3::hash(b"").as_bytes()
        );

        // The link is made at its name and points at the target (SSH_FXP_SYMLINK's argument
        // order), raw bytes both.
        sub.symlink(b"../caf\xe9", b"l\xff").unwrap();
        let link = local(&dest, b"d\xff\xfe/l\xff");
        assert_eq!(
            std::fs::read_link(&link).unwrap().as_os_str().as_bytes(),
            b"../caf\xe9"
        );
        assert!(!local(&dest, b"caf\xe9").exists());
        assert_eq!(sub.read_link(b"l\xff").unwrap(), b"../caf\xe9");
        sub.set_link_mtime(b"l\xff", t(1_500_000_000, 5)).unwrap();
        assert_eq!(
            std::fs::symlink_metadata(&link).unwrap().mtime(),
            1_500_000_000
        );
        // Retargeting replaces it.
        sub.symlink(b"elsewhere", b"l\xff").unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("elsewhere"));

        sub.set_file_meta(b"f\xe9", 0o600, t(1_600_000_100, 0))
            .unwrap();
        sub.set_own_meta(0o750, t(1_600_000_200, 0)).unwrap();
        let own = sub.own_stat().unwrap();
        assert_eq!(
            (own.kind, own.mode, own.mtime),
            (Some(Kind::Dir), 0o750, t(1_600_000_200, 0))
        );

        // A fresh view agrees with what was recorded.
        let again = root.open_dir(b"d\xff\xfe").unwrap();
        let mut names: Vec<_> = again.list().unwrap();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            names,
            vec![
                (b"empty".to_vec(), Some(Kind::File)),
                (b"f\xe9".to_vec(), Some(Kind::File)),
                (b"l\xff".to_vec(), Some(Kind::Symlink)),
            ]
        );
        let f = again.stat(b"f\xe9").unwrap().unwrap();
        assert_eq!((f.mode, f.mtime), (0o600, t(1_600_000_100, 0)));
        assert_eq!(again.stat(b"nothing").unwrap(), None);

        assert!(top.remove_tree(b"d\xff\xfe", true, &|_, _| false).unwrap());
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
        assert_eq!(top.stat(b"d\xff\xfe").unwrap(), None);
    }

    #[test]
    fn sftp_a_symlinked_directory_is_never_entered() {
        let sshd = TestSshd::start();
        let session = session(&sshd);
        let dest = sshd.dir.path().join("dest");
        let outside = sshd.dir.path().join("outside");
        std::fs::create_dir_all(outside.join("x")).unwrap();
        std::fs::create_dir_all(dest.join("real")).unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("a")).unwrap();
        std::os::unix::fs::symlink(&outside, dest.join("real/b")).unwrap();
        let root = root_at(&session, &dest);
        for rel in [&b"a"[..], b"a/x", b"real/b", b"real/b/x"] {
            let err = root.open_dir(rel).err().expect("refused");
            assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{rel:?}: {err}");
        }
        assert_eq!(
            root.open_dir(b"missing/x").err().unwrap().kind(),
            io::ErrorKind::NotFound
        );
        let top = root.open_dir(b"").unwrap();
        assert!(top.subdir(b"a").is_err());
        assert!(top.subdir(b"real").unwrap().subdir(b"b").is_err());
        // Replacing the link removes the link, not what it points at.
        top.remove(b"a", false).unwrap();
        top.mkdir(b"a").unwrap();
        let a = root.open_dir(b"a").unwrap();
        assert!(a.list().unwrap().is_empty());
        assert!(outside.join("x").is_dir());
    }

    #[test]
    fn sftp_commit_replaces_a_symlink_and_never_writes_through_one() {
        let sshd = TestSshd::start();
        let session = session(&sshd);
        let dest = sshd.dir.path().join("dest");
        let outside = sshd.dir.path().join("outside");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let victim = outside.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, dest.join("f")).unwrap();
        // A symlink planted at the temp name of "g" must not be written through either.
        std::os::unix::fs::symlink(&victim, local(&dest, &temp_name(b"g"))).unwrap();
        let dir = root_at(&session, &dest).open_dir(b"").unwrap();
        for name in [&b"f"[..], b"g"] {
            let mut temp = dir.create_temp(name).unwrap();
            temp.write_all(b"new").unwrap();
            temp.commit(0o644, t(1_600_000_000, 0), false).unwrap();
            let meta = std::fs::symlink_metadata(local(&dest, name)).unwrap();
            assert!(meta.is_file());
            assert_eq!(std::fs::read(local(&dest, name)).unwrap(), b"new");
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 2);
    }

    #[test]
    fn sftp_a_dropped_temp_leaves_nothing_and_dry_runs_create_nothing() {
        let sshd = TestSshd::start();
        let session = session(&sshd);
        let dest = sshd.dir.path().join("dest");
        let dir = root_at(&session, &dest).open_dir(b"").unwrap();
        let mut temp = dir.create_temp(b"x").unwrap();
        temp.write_all(&vec![1u8; 200_000]).unwrap();
        drop(temp);
        // Never written to: the open is still in flight when it is dropped.
        drop(dir.create_temp(b"y").unwrap());
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
        assert_eq!(
            dir.open_base(b"x").unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );

        let missing = sshd.dir.path().join("missing");
        assert!(
            SftpRoot::open(&session, &missing, None, true, Arc::default())
                .unwrap()
                .is_none()
        );
        assert!(!missing.exists());
        // Relative to the given home.
        let home = sshd.dir.path().as_os_str().as_bytes();
        let root = SftpRoot::open(
            &session,
            Path::new("rel/dest"),
            Some(home),
            false,
            Arc::default(),
        )
        .unwrap()
        .unwrap();
        root.open_dir(b"").unwrap().mkdir(b"m").unwrap();
        assert!(sshd.dir.path().join("rel/dest/m").is_dir());
        let mode = std::fs::metadata(sshd.dir.path().join("rel/dest/m"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
