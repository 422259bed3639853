//! A pipelining SFTP (version 3) client that speaks paths as raw bytes.
//!
//! russh-sftp's client types carry paths as `String` and decode names lossily, which cannot
//! express the non-UTF-8 names and link targets a Unix tree may hold; this client keeps every
//! path, name and target as bytes. Requests are sent at once from any thread and answered
//! later: [`SftpClient`]'s methods return a [`Pending`] reply, so a caller can put many requests
//! in flight (stats of every component of a path, a file's writes, its `fsetstat` and `close`)
//! and pay one round trip for all of them. A reader task on the session's runtime matches
//! replies to requests by id; a writer task coalesces queued requests into large channel
//! writes. Waiting for a reply blocks the calling thread, so callers must not be runtime tasks.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crossbeam_channel as channel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{sftp, Inner, SshSession};
use crate::error::Result;

const FXP_INIT: u8 = 1;
const FXP_VERSION: u8 = 2;
const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_WRITE: u8 = 6;
const FXP_LSTAT: u8 = 7;
const FXP_SETSTAT: u8 = 9;
const FXP_FSETSTAT: u8 = 10;
const FXP_OPENDIR: u8 = 11;
const FXP_READDIR: u8 = 12;
const FXP_REMOVE: u8 = 13;
const FXP_MKDIR: u8 = 14;
const FXP_RMDIR: u8 = 15;
const FXP_REALPATH: u8 = 16;
const FXP_STAT: u8 = 17;
const FXP_RENAME: u8 = 18;
const FXP_READLINK: u8 = 19;
const FXP_SYMLINK: u8 = 20;
const FXP_STATUS: u8 = 101;
const FXP_HANDLE: u8 = 102;
const FXP_DATA: u8 = 103;
const FXP_NAME: u8 = 104;
const FXP_ATTRS: u8 = 105;
const FXP_EXTENDED: u8 = 200;
const FXP_EXTENDED_REPLY: u8 = 201;

/// `SSH_FXF_*` open flags.
pub(super) const OPEN_READ: u32 = 0x01;
pub(super) const OPEN_WRITE: u32 = 0x02;
pub(super) const OPEN_CREATE: u32 = 0x08;
pub(super) const OPEN_TRUNCATE: u32 = 0x10;
/// With `OPEN_CREATE`: fail if anything (a symlink included) is at the path.
pub(super) const OPEN_EXCLUSIVE: u32 = 0x20;

const ATTR_SIZE: u32 = 0x01;
const ATTR_UIDGID: u32 = 0x02;
const ATTR_PERMISSIONS: u32 = 0x04;
const ATTR_ACMODTIME: u32 = 0x08;
const ATTR_EXTENDED: u32 = 0x8000_0000;

const STATUS_OK: u32 = 0;
const STATUS_EOF: u32 = 1;
const STATUS_NO_SUCH_FILE: u32 = 2;
const STATUS_PERMISSION_DENIED: u32 = 3;
const STATUS_OP_UNSUPPORTED: u32 = 8;

/// The largest reply accepted (OpenSSH sends at most 256 KiB).
const MAX_REPLY: usize = 4 << 20;
/// Requests queued for the channel are written together up to this many bytes.
const COALESCE: usize = 256 << 10;
/// Longest wait for any one reply. A dead connection is noticed sooner by SSH keepalives.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// File attributes (the fields this crate uses).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Attrs {
    pub size: Option<u64>,
    /// `st_mode`: file type and permission bits.
    pub permissions: Option<u32>,
    pub atime: Option<u32>,
    pub mtime: Option<u32>,
}

/// One entry of a `NAME` reply.
#[derive(Debug, Clone)]
pub(super) struct NameEntry {
    pub name: Vec<u8>,
    pub attrs: Attrs,
}

#[derive(Debug)]
enum Reply {
    Version(HashMap<Vec<u8>, Vec<u8>>),
    Status(u32, String),
    Handle(Vec<u8>),
    Data(Vec<u8>),
    Name(Vec<NameEntry>),
    Attrs(Attrs),
    Extended(Vec<u8>),
}

/// Requests waiting for their replies, by id.
struct Table {
    waiting: HashMap<u32, channel::Sender<Reply>>,
    /// Why the connection ended, once it has.
    closed: Option<String>,
    /// We are ending it ourselves.
    closing: bool,
}

/// An SFTP session on its own channel of an SSH connection.
pub(super) struct SftpClient {
    out: mpsc::UnboundedSender<Vec<u8>>,
    table: Arc<Mutex<Table>>,
    next_id: AtomicU32,
    extensions: HashMap<Vec<u8>, Vec<u8>>,
    peer: String,
    /// Keeps the runtime that runs the reader and writer alive. Tasks never hold it: the
    /// session must be dropped outside the runtime.
    _session: Arc<Inner>,
}

/// A request in flight.
#[must_use = "a request's reply says whether it worked"]
pub(super) struct Pending {
    rx: channel::Receiver<Reply>,
    table: Arc<Mutex<Table>>,
}

impl SftpClient {
    /// Opens an SFTP channel on `session` and negotiates version 3. If the session ends before
    /// this client is dropped, `lost` is set to why.
    pub(super) fn start(session: &SshSession, lost: Arc<OnceLock<String>>) -> Result<SftpClient> {
        let inner = &session.inner;
        let stream = inner
            .runtime
            .block_on(sftp::open_channel(inner))?
            .into_stream();
        let (reader, writer) = tokio::io::split(stream);
        let (out, queue) = mpsc::unbounded_channel();
        let table = Arc::new(Mutex::new(Table {
            waiting: HashMap::new(),
            closed: None,
            closing: false,
        }));
        inner.runtime.spawn(write_loop(writer, queue));
        let peer = inner.peer.clone();
        inner
            .runtime
            .spawn(read_loop(reader, Arc::clone(&table), peer, lost));
        let mut client = SftpClient {
            out,
            table,
            next_id: AtomicU32::new(1),
            extensions: HashMap::new(),
            peer: inner.peer.clone(),
            _session: Arc::clone(inner),
        };
        // INIT carries no id; its VERSION reply is filed under id 0.
        let mut init = Vec::with_capacity(9);
        put_u32(&mut init, 5);
        init.push(FXP_INIT);
        put_u32(&mut init, 3);
        let version = client
            .send_raw(0, init)
            .and_then(Pending::reply)
            .map_err(|e| super::ssh_error(e.kind(), format!("{}: sftp: {e}", client.peer)))?;
        match version {
            Reply::Version(extensions) => client.extensions = extensions,
            _ => {
                return Err(super::ssh_error(
                    io::ErrorKind::InvalidData,
                    format!("{}: sftp: the server did not answer INIT", client.peer),
                ))
            }
        }
        Ok(client)
    }

    /// Whether the server announced the extension `name` (e.g. `posix-rename@openssh.com`).
    pub(super) fn has_extension(&self, name: &str) -> bool {
        self.extensions.contains_key(name.as_bytes())
    }

    fn send_raw(&self, id: u32, message: Vec<u8>) -> io::Result<Pending> {
        let (tx, rx) = channel::bounded(1);
        {
            let mut table = lock(&self.table);
            if let Some(why) = &table.closed {
                return Err(lost(why));
            }
            table.waiting.insert(id, tx);
        }
        if self.out.send(message).is_err() {
            lock(&self.table).waiting.remove(&id);
            return Err(lost("the SFTP channel is closed"));
        }
        Ok(Pending {
            rx,
            table: Arc::clone(&self.table),
        })
    }

    fn request(&self, kind: u8, body: impl FnOnce(&mut Vec<u8>)) -> io::Result<Pending> {
        let mut id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if id == 0 {
            id = self.next_id.fetch_add(1, Ordering::Relaxed);
        }
        let mut message = Vec::with_capacity(64);
        put_u32(&mut message, 0);
        message.push(kind);
        put_u32(&mut message, id);
        body(&mut message);
        let len = u32::try_from(message.len() - 4)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "SFTP request too large"))?;
        message[..4].copy_from_slice(&len.to_be_bytes());
        self.send_raw(id, message)
    }

    fn path_request(&self, kind: u8, path: &[u8]) -> io::Result<Pending> {
        self.request(kind, |m| put_bytes(m, path))
    }

    pub(super) fn open(&self, path: &[u8], flags: u32, attrs: Attrs) -> io::Result<Pending> {
        self.request(FXP_OPEN, |m| {
            put_bytes(m, path);
            put_u32(m, flags);
            put_attrs(m, &attrs);
        })
    }

    pub(super) fn close(&self, handle: &[u8]) -> io::Result<Pending> {
        self.path_request(FXP_CLOSE, handle)
    }

    pub(super) fn read(&self, handle: &[u8], offset: u64, len: u32) -> io::Result<Pending> {
        self.request(FXP_READ, |m| {
            put_bytes(m, handle);
            put_u64(m, offset);
            put_u32(m, len);
        })
    }

    pub(super) fn write(&self, handle: &[u8], offset: u64, data: &[u8]) -> io::Result<Pending> {
        self.request(FXP_WRITE, |m| {
            m.reserve(handle.len() + data.len() + 16);
            put_bytes(m, handle);
            put_u64(m, offset);
            put_bytes(m, data);
        })
    }

    pub(super) fn lstat(&self, path: &[u8]) -> io::Result<Pending> {
        self.path_request(FXP_LSTAT, path)
    }

    pub(super) fn stat(&self, path: &[u8]) -> io::Result<Pending> {
        self.path_request(FXP_STAT, path)
    }

    pub(super) fn setstat(&self, path: &[u8], attrs: Attrs) -> io::Result<Pending> {
        self.request(FXP_SETSTAT, |m| {
            put_bytes(m, path);
            put_attrs(m, &attrs);
        })
    }

    pub(super) fn fsetstat(&self, handle: &[u8], attrs: Attrs) -> io::Result<Pending> {
        self.request(FXP_FSETSTAT, |m| {
            put_bytes(m, handle);
            put_attrs(m, &attrs);
        })
    }

    pub(super) fn opendir(&self, path: &[u8]) -> io::Result<Pending> {
        self.path_request(FXP_OPENDIR, path)
    }

    pub(super) fn readdir(&self, handle: &[u8]) -> io::Result<Pending> {
        self.path_request(FXP_READDIR, handle)
    }

    pub(super) fn remove(&self, path: &[u8]) -> io::Result<Pending> {
        self.path_request(FXP_REMOVE, path)
    }

    pub(super) fn mkdir(&self, path: &[u8], attrs: Attrs) -> io::Result<Pending> {
        self.request(FXP_MKDIR, |m| {
            put_bytes(m, path);
            put_attrs(m, &attrs);
        })
    }

    pub(super) fn rmdir(&self, path: &[u8]) -> io::Result<Pending> {
        self.path_request(FXP_RMDIR, path)
    }

    pub(super) fn realpath(&self, path: &[u8]) -> io::Result<Pending> {
        self.path_request(FXP_REALPATH, path)
    }

    pub(super) fn rename(&self, from: &[u8], to: &[u8]) -> io::Result<Pending> {
        self.request(FXP_RENAME, |m| {
            put_bytes(m, from);
            put_bytes(m, to);
        })
    }

    pub(super) fn readlink(&self, path: &[u8]) -> io::Result<Pending> {
        self.path_request(FXP_READLINK, path)
    }

    /// `SSH_FXP_SYMLINK` with its two paths in the order given. The draft puts the link's
    /// path first; OpenSSH (and servers compatible with it) read the target first.
    pub(super) fn symlink_raw(&self, first: &[u8], second: &[u8]) -> io::Result<Pending> {
        self.request(FXP_SYMLINK, |m| {
            put_bytes(m, first);
            put_bytes(m, second);
        })
    }

    /// An `SSH_FXP_EXTENDED` request whose data is a list of strings.
    pub(super) fn extended(&self, name: &str, args: &[&[u8]]) -> io::Result<Pending> {
        self.request(FXP_EXTENDED, |m| {
            put_bytes(m, name.as_bytes());
            for arg in args {
                put_bytes(m, arg);
            }
        })
    }

    /// `lsetstat@openssh.com`: setstat that never follows a symlink.
    pub(super) fn lsetstat(&self, path: &[u8], attrs: Attrs) -> io::Result<Pending> {
        self.request(FXP_EXTENDED, |m| {
            put_bytes(m, b"lsetstat@openssh.com");
            put_bytes(m, path);
            put_attrs(m, &attrs);
        })
    }
}

impl Drop for SftpClient {
    fn drop(&mut self) {
        // Dropping `out` ends the writer, which closes our side of the channel; the server
        // then ends the subsystem and the reader sees EOF.
        let mut table = lock(&self.table);
        table.closing = true;
        table.waiting.clear();
    }
}

impl Pending {
    fn reply(self) -> io::Result<Reply> {
        match self.rx.recv_timeout(REPLY_TIMEOUT) {
            Ok(reply) => Ok(reply),
            Err(channel::RecvTimeoutError::Timeout) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no SFTP reply within {} s", REPLY_TIMEOUT.as_secs()),
            )),
            Err(channel::RecvTimeoutError::Disconnected) => {
                let why = lock(&self.table).closed.clone();
                Err(lost(why.as_deref().unwrap_or("the SFTP session ended")))
            }
        }
    }

    /// Waits for a plain success.
    pub(super) fn status(self) -> io::Result<()> {
        match self.reply()? {
            Reply::Status(STATUS_OK, _) => Ok(()),
            other => Err(failure(other)),
        }
    }

    /// Waits for a handle.
    pub(super) fn handle(self) -> io::Result<Vec<u8>> {
        match self.reply()? {
            Reply::Handle(handle) => Ok(handle),
            other => Err(failure(other)),
        }
    }

    /// Waits for attributes.
    pub(super) fn attrs(self) -> io::Result<Attrs> {
        match self.reply()? {
            Reply::Attrs(attrs) => Ok(attrs),
            other => Err(failure(other)),
        }
    }

    /// Waits for data; `None` at end of file.
    pub(super) fn data(self) -> io::Result<Option<Vec<u8>>> {
        match self.reply()? {
            Reply::Data(data) => Ok(Some(data)),
            Reply::Status(STATUS_EOF, _) => Ok(None),
            other => Err(failure(other)),
        }
    }

    /// Waits for names; `None` at the end of a directory.
    pub(super) fn names(self) -> io::Result<Option<Vec<NameEntry>>> {
        match self.reply()? {
            Reply::Name(names) => Ok(Some(names)),
            Reply::Status(STATUS_EOF, _) => Ok(None),
            other => Err(failure(other)),
        }
    }

    /// Waits for the data of an extension's reply.
    pub(super) fn extended_reply(self) -> io::Result<Vec<u8>> {
        match self.reply()? {
            Reply::Extended(data) => Ok(data),
            other => Err(failure(other)),
        }
    }

    /// Waits for the one name of a `REALPATH` or `READLINK` reply.
    pub(super) fn name(self) -> io::Result<Vec<u8>> {
        match self.names()? {
            Some(mut names) if names.len() == 1 => Ok(names.remove(0).name),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "SFTP server sent no single name",
            )),
        }
    }
}

fn lock(table: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lost(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, why.to_string())
}

/// A reply that is not the one asked for: the server's status as an I/O error.
fn failure(reply: Reply) -> io::Error {
    match reply {
        Reply::Status(code, message) => {
            let kind = match code {
                STATUS_EOF => io::ErrorKind::UnexpectedEof,
                STATUS_NO_SUCH_FILE => io::ErrorKind::NotFound,
                STATUS_PERMISSION_DENIED => io::ErrorKind::PermissionDenied,
                STATUS_OP_UNSUPPORTED => io::ErrorKind::Unsupported,
                _ => io::ErrorKind::Other,
            };
            let message = if message.is_empty() {
                format!("SFTP status {code}")
            } else {
                message
            };
            io::Error::new(kind, message)
        }
        other => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected SFTP reply {other:?}"),
        ),
    }
}

fn put_u32(m: &mut Vec<u8>, v: u32) {
    m.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(m: &mut Vec<u8>, v: u64) {
    m.extend_from_slice(&v.to_be_bytes());
}

fn put_bytes(m: &mut Vec<u8>, b: &[u8]) {
    // Callers pass paths, handles and chunks far below 4 GiB.
    put_u32(m, b.len() as u32);
    m.extend_from_slice(b);
}

fn put_attrs(m: &mut Vec<u8>, a: &Attrs) {
    let mut flags = 0;
    if a.size.is_some() {
        flags |= ATTR_SIZE;
    }
    if a.permissions.is_some() {
        flags |= ATTR_PERMISSIONS;
    }
    if a.atime.is_some() || a.mtime.is_some() {
        flags |= ATTR_ACMODTIME;
    }
    put_u32(m, flags);
    if let Some(size) = a.size {
        put_u64(m, size);
    }
    if let Some(permissions) = a.permissions {
        put_u32(m, permissions);
    }
    if flags & ATTR_ACMODTIME != 0 {
        put_u32(m, a.atime.or(a.mtime).unwrap_or(0));
        put_u32(m, a.mtime.or(a.atime).unwrap_or(0));
    }
}

/// A cursor over one reply; every read is checked against what is left.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "truncated SFTP reply",
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> io::Result<u64> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }

    fn bytes(&mut self) -> io::Result<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn attrs(&mut self) -> io::Result<Attrs> {
        let flags = self.u32()?;
        let mut a = Attrs::default();
        if flags & ATTR_SIZE != 0 {
            a.size = Some(self.u64()?);
        }
        if flags & ATTR_UIDGID != 0 {
            self.take(8)?;
        }
        if flags & ATTR_PERMISSIONS != 0 {
            a.permissions = Some(self.u32()?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            a.atime = Some(self.u32()?);
            a.mtime = Some(self.u32()?);
        }
        if flags & ATTR_EXTENDED != 0 {
            let count = self.u32()?;
            for _ in 0..count {
                self.bytes()?;
                self.bytes()?;
            }
        }
        Ok(a)
    }
}

/// Parses one reply (without its length): its id (0 for `VERSION`) and contents.
fn parse(packet: &[u8]) -> io::Result<(u32, Reply)> {
    let mut c = Cursor(packet);
    let kind = c.u8()?;
    if kind == FXP_VERSION {
        c.u32()?;
        let mut extensions = HashMap::new();
        while !c.0.is_empty() {
            let name = c.bytes()?.to_vec();
            let data = c.bytes()?.to_vec();
            extensions.insert(name, data);
        }
        return Ok((0, Reply::Version(extensions)));
    }
    let id = c.u32()?;
    let reply = match kind {
        FXP_STATUS => {
            let code = c.u32()?;
            // Some old servers omit the message.
            let message = c.bytes().unwrap_or_default();
            Reply::Status(code, String::from_utf8_lossy(message).into_owned())
        }
        FXP_HANDLE => Reply::Handle(c.bytes()?.to_vec()),
        FXP_DATA => Reply::Data(c.bytes()?.to_vec()),
        FXP_NAME => {
            let count = c.u32()? as usize;
            // Each entry takes at least 12 bytes: no allocation beyond what was received.
            let mut names = Vec::with_capacity(count.min(c.0.len() / 12));
            for _ in 0..count {
                let name = c.bytes()?.to_vec();
                c.bytes()?; // longname
                let attrs = c.attrs()?;
                names.push(NameEntry { name, attrs });
            }
            Reply::Name(names)
        }
        FXP_ATTRS => Reply::Attrs(c.attrs()?),
        FXP_EXTENDED_REPLY => Reply::Extended(c.0.to_vec()),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown SFTP reply type {other}"),
            ))
        }
    };
    Ok((id, reply))
}

async fn read_loop<R: tokio::io::AsyncRead + Unpin>(
    mut reader: R,
    table: Arc<Mutex<Table>>,
    peer: String,
    lost: Arc<OnceLock<String>>,
) {
    let why = loop {
        let mut len = [0u8; 4];
        if let Err(e) = reader.read_exact(&mut len).await {
            break if e.kind() == io::ErrorKind::UnexpectedEof {
                format!("{peer}: the SFTP session ended unexpectedly")
            } else {
                format!("{peer}: the SFTP connection was lost: {e}")
            };
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_REPLY {
            break format!("{peer}: SFTP reply of {len} bytes");
        }
        let mut packet = vec![0u8; len];
        if let Err(e) = reader.read_exact(&mut packet).await {
            break format!("{peer}: the SFTP connection was lost: {e}");
        }
        match parse(&packet) {
            Ok((id, reply)) => {
                let waiter = lock(&table).waiting.remove(&id);
                if let Some(tx) = waiter {
                    // The asker may have given up; that is fine.
                    let _ = tx.send(reply);
                }
            }
            Err(e) => break format!("{peer}: bad SFTP reply: {e}"),
        }
    };
    let mut table = lock(&table);
    if !table.closing {
        let _ = lost.set(why.clone());
    }
    table.closed = Some(why);
    table.waiting.clear();
}

async fn write_loop<W: tokio::io::AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(mut batch) = queue.recv().await {
        while batch.len() < COALESCE {
            match queue.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if writer.write_all(&batch).await.is_err() || writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}
