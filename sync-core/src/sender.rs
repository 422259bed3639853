//! The source side of a session.
//!
//! Two threads share the connection. The walker lists directories and sends them as batches,
//! never more than `window` batches (and [`MAX_ENTRIES_IN_FLIGHT`] entries) ahead of the
//! receiver, so a slow link is paid once per window rather than once per directory and neither
//! side holds the whole tree. The answering thread
//! reads the receiver's replies and sends what they ask for: whole files in chunks, or a delta
//! against the signature the receiver sent. Every index the receiver names is checked against
//! the batch it came from, so a hostile receiver can only ever get files this side chose to list.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::delta;
use crate::entry::{self, Entry, Kind};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::progress::{FileError, Progress, Report};
use crate::protocol::{
    self, Batch, FrameReader, FrameWriter, Hello, Message, NeedKind, SessionOptions, Summary,
    DATA_CHUNK, MAX_BATCH_ENTRIES, MAX_FRAME, PROTOCOL_VERSION, RULES_CHUNK_BYTES,
};
use crate::walk::{Listings, SharedListings, Walker};

/// Everything the sender needs to know.
#[derive(Debug, Clone)]
pub(crate) struct SenderConfig {
    pub source: PathBuf,
    pub dest: Vec<u8>,
    pub options: SessionOptions,
    pub patterns: Vec<String>,
    pub safe_links: bool,
    pub window: u32,
    /// zstd level for `--compress`, or `None`.
    pub compress: Option<i32>,
}

/// A batch the receiver has not yet settled.
struct Sent {
    dir: Vec<u8>,
    entries: Vec<Entry>,
    /// The receiver has answered it (it may only once).
    replied: bool,
    /// Entries sent as a delta: each may be asked for again, whole, once.
    deltas: HashSet<u32>,
}

struct Shared<'a, W: Write> {
    config: &'a SenderConfig,
    /// The source root, held open: files are opened beneath it without following symlinks.
    root: OwnedFd,
    writer: Mutex<FrameWriter<W>>,
    batches: Mutex<HashMap<u64, Sent>>,
    errors: Mutex<Vec<FileError>>,
    progress: &'a dyn Progress,
}

impl<W: Write> Shared<'_, W> {
    fn send(&self, msg: &Message) -> Result<()> {
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(msg)
    }

    fn flush(&self) -> Result<()> {
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .flush()
    }

    fn file_error(&self, rel: &[u8], message: String) {
        let err = FileError::new(rel, message);
        self.progress.file_error(&err);
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(err);
    }
}

/// Entries in flight at most, whatever the window in batches: bounds the memory both sides spend
/// on unsettled batches (about 100 bytes an entry) when directories are wide.
pub(crate) const MAX_ENTRIES_IN_FLIGHT: usize = 8 << 10;

/// The batches sent and not yet settled by the receiver, counted in batches and in entries.
struct Window {
    state: Mutex<InFlight>,
    room: std::sync::Condvar,
    max_batches: usize,
    max_entries: usize,
}

struct InFlight {
    batches: usize,
    entries: usize,
    /// The answering thread has stopped: nothing will be released any more.
    closed: bool,
}

impl Window {
    fn new(max_batches: usize, max_entries: usize) -> Window {
        Window {
            state: Mutex::new(InFlight {
                batches: 0,
                entries: 0,
                closed: false,
            }),
            room: std::sync::Condvar::new(),
            max_batches,
            max_entries,
        }
    }

    /// Waits until a batch of `entries` fits (one always fits when nothing is in flight).
    fn acquire(&self, entries: usize) -> Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !s.closed
            && s.batches > 0
            && (s.batches >= self.max_batches || s.entries + entries > self.max_entries)
        {
            s = self.room.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        if s.closed {
            return Err(Error::protocol("the receiver stopped answering"));
        }
        s.batches += 1;
        s.entries += entries;
        Ok(())
    }

    fn release(&self, entries: usize) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.batches = s.batches.saturating_sub(1);
        s.entries = s.entries.saturating_sub(entries);
        self.room.notify_one();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
        self.room.notify_all();
    }
}

/// Runs the sender over a connection to a receiver.
pub(crate) fn run<R: Read + Send, W: Write + Send>(
    config: &SenderConfig,
    shared_walk: Option<SharedListings>,
    reader: R,
    writer: W,
    progress: &dyn Progress,
    abort: &(dyn Fn() + Sync),
) -> Result<Report> {
    let filter = Filter::new(&config.patterns, config.options.allow_secrets)?;
    let mut walker: Box<dyn Listings + '_> = match shared_walk {
        Some(shared) => Box::new(shared),
        None => Box::new(
            Walker::new(
                &config.source,
                &filter,
                config.options.checksum,
                config.safe_links,
            )
            .map_err(|e| Error::io(&config.source, e))?,
        ),
    };

    let root = rustix::fs::open(
        &config.source,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(&config.source, e.into()))?;

    let mut reader = FrameReader::new(reader);
    let mut writer = FrameWriter::new(writer);
    handshake(config, &mut reader, &mut writer)?;
    if let Some(level) = config.compress {
        writer.compress(level)?;
    }

    let shared = Shared {
        config,
        root,
        writer: Mutex::new(writer),
        batches: Mutex::new(HashMap::new()),
        errors: Mutex::new(Vec::new()),
        progress,
    };
    let window = Window::new(config.window.max(1) as usize, MAX_ENTRIES_IN_FLIGHT);
    let mut report = Report {
        dry_run: config.options.dry_run,
        ..Report::default()
    };

    let (walked, answered) = std::thread::scope(|scope| {
        let answering = scope.spawn(|| {
            let result = answer(&shared, &mut reader, &window);
            // Whatever the walker waits for will not come now.
            window.close();
            if result.is_err() {
                // The walker may be blocked writing to a receiver that will never read again.
                abort();
            }
            (result, reader.bytes())
        });
        let walked = walk_and_send(&shared, walker.as_mut(), &window, &mut report);
        if let Err(e) = &walked {
            // Tell the receiver why we stop, so it ends and the answering thread sees the end.
            let _ = shared.send(&Message::Fatal(e.to_string()));
            let _ = shared.flush();
        }
        let answered = answering.join().unwrap_or_else(|_| {
            (
                Err(Error::protocol("the sender's answering thread panicked")),
                0,
            )
        });
        (walked, answered)
    });
    let (summary, bytes_received) = answered;
    // The answering side's failure is the cause when both fail (the walker then only sees that
    // the receiver stopped answering).
    let summary = summary?;
    walked?;

    report.bytes_sent = shared
        .writer
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .bytes();
    report.bytes_received = bytes_received;
    merge(&mut report, summary);
    report.errors.extend(
        shared
            .errors
            .into_inner()
            .unwrap_or_else(|p| p.into_inner()),
    );
    report.errors.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

fn handshake<R: Read, W: Write>(
    config: &SenderConfig,
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
) -> Result<()> {
    writer.write_magic()?;
    writer.send(&Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        max_frame: MAX_FRAME as u32,
        dest: config.dest.clone(),
        options: config.options.clone(),
        window: config.window,
    }))?;
    writer.flush()?;
    reader.read_magic()?;
    match reader.expect()? {
        Message::Hello(h) if h.version == PROTOCOL_VERSION => {}
        Message::Hello(h) => {
            return Err(Error::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: h.version,
            })
        }
        Message::Fatal(message) => {
            return Err(Error::Remote {
                peer: "receiver",
                message,
            })
        }
        other => return Err(unexpected(&other)),
    }
    // Patterns go in bounded frames, however many there are: no buffer to overflow.
    let mut chunk = Vec::new();
    let mut chunk_bytes = 0;
    for pattern in &config.patterns {
        if chunk_bytes + pattern.len() > RULES_CHUNK_BYTES && !chunk.is_empty() {
            writer.send(&Message::Rules(std::mem::take(&mut chunk)))?;
            chunk_bytes = 0;
        }
        chunk_bytes += pattern.len() + 8;
        chunk.push(pattern.clone());
    }
    if !chunk.is_empty() {
        writer.send(&Message::Rules(chunk))?;
    }
    writer.send(&Message::RulesEnd)?;
    Ok(())
}

fn unexpected(msg: &Message) -> Error {
    let name = format!("{msg:?}");
    let name = name.split(['(', ' ', '{']).next().unwrap_or("?");
    Error::protocol(format!("unexpected {name} message from the receiver"))
}

fn walk_and_send<W: Write>(
    shared: &Shared<'_, W>,
    walker: &mut dyn Listings,
    window: &Window,
    report: &mut Report,
) -> Result<()> {
    let mut next_id = 0u64;
    while let Some(listing) = walker.next_dir() {
        let listing = listing.map_err(|e| Error::io(&shared.config.source, e))?;
        report.dirs_scanned += u64::from(listing.rel.is_empty());
        let (mut files, mut bytes) = (0, 0);
        for e in &listing.entries {
            match e.kind {
                Kind::File => {
                    files += 1;
                    bytes += e.size;
                }
                Kind::Dir => report.dirs_scanned += 1,
                Kind::Symlink => report.symlinks_scanned += 1,
            }
        }
        report.files_scanned += files;
        report.bytes_scanned += bytes;
        shared.progress.scanned(files, bytes);
        for s in &listing.skipped {
            shared.progress.skipped(s);
        }
        report.skipped.extend(listing.skipped);
        for e in listing.errors {
            shared.progress.file_error(&e);
            shared
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e);
        }

        let slices = listing.entries.len().div_ceil(MAX_BATCH_ENTRIES).max(1);
        let mut entries = listing.entries.into_iter();
        for slice in 0..slices {
            let part: Vec<Entry> = entries.by_ref().take(MAX_BATCH_ENTRIES).collect();
            // Wait for room in the window: this is what bounds memory on both sides.
            window.acquire(part.len())?;
            let id = next_id;
            next_id += 1;
            let batch = Batch {
                id,
                dir: listing.rel.clone(),
                dir_mode: listing.mode,
                dir_mtime: listing.mtime,
                first: slice == 0,
                last: slice + 1 == slices,
                entries: part,
            };
            // Record the batch before the receiver can see it: its reply may come back before
            // this thread runs again.
            let msg = Message::Batch(batch);
            let frame = protocol::encode(&msg)?;
            let Message::Batch(batch) = msg else {
                unreachable!("just built as a batch")
            };
            shared
                .batches
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    id,
                    Sent {
                        dir: batch.dir,
                        entries: batch.entries,
                        replied: false,
                        deltas: HashSet::new(),
                    },
                );
            let mut writer = shared.writer.lock().unwrap_or_else(|p| p.into_inner());
            writer.send_frame(&frame)?;
            writer.flush()?;
        }
    }
    shared.send(&Message::EndOfTree)?;
    shared.flush()
}

/// The answering thread: serves the receiver's needs until its summary arrives.
fn answer<R: Read, W: Write>(
    shared: &Shared<'_, W>,
    reader: &mut FrameReader<R>,
    window: &Window,
) -> Result<Summary> {
    loop {
        let msg = reader.expect()?;
        match msg {
            Message::Reply {
                batch,
                needs,
                changes,
            } => {
                for change in &changes {
                    shared.progress.change(change);
                }
                let (dir, picked) = {
                    let mut batches = shared.batches.lock().unwrap_or_else(|p| p.into_inner());
                    let sent = lookup(&mut batches, batch)?;
                    if sent.replied {
                        return Err(Error::protocol(format!(
                            "receiver answered batch {batch} twice"
                        )));
                    }
                    sent.replied = true;
                    let mut picked = Vec::with_capacity(needs.len());
                    let mut last = None;
                    for need in needs {
                        if last.is_some_and(|l| need.index <= l) {
                            return Err(Error::protocol(
                                "needs are not in increasing order (or repeat an entry)",
                            ));
                        }
                        last = Some(need.index);
                        picked.push((file_entry(sent, need.index)?.clone(), need));
                    }
                    for (_, need) in &picked {
                        if matches!(need.kind, NeedKind::Delta { .. }) {
                            sent.deltas.insert(need.index);
                        }
                    }
                    (sent.dir.clone(), picked)
                };
                for (entry, need) in picked {
                    send_file(shared, batch, need.index, &dir, &entry, need.kind)?;
                }
                shared.flush()?;
            }
            Message::Retry { batch, index } => {
                let (dir, entry) = {
                    let mut batches = shared.batches.lock().unwrap_or_else(|p| p.into_inner());
                    let sent = lookup(&mut batches, batch)?;
                    let entry = file_entry(sent, index)?.clone();
                    // Only a delta result can fail its check, and the whole file fixes it.
                    if !sent.deltas.remove(&index) {
                        return Err(Error::protocol(format!(
                            "receiver asked again for entry {index} of batch {batch}, which was \
                             not sent as a delta (or was already sent again)"
                        )));
                    }
                    (sent.dir.clone(), entry)
                };
                send_file(shared, batch, index, &dir, &entry, NeedKind::Whole)?;
                shared.flush()?;
            }
            Message::BatchDone(id) => {
                let done = shared
                    .batches
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id)
                    .ok_or_else(|| {
                        Error::protocol(format!("receiver settled unknown batch {id}"))
                    })?;
                window.release(done.entries.len());
            }
            Message::Summary(summary) => return Ok(summary),
            Message::Fatal(message) => {
                return Err(Error::Remote {
                    peer: "receiver",
                    message,
                })
            }
            other => return Err(unexpected(&other)),
        }
    }
}

fn lookup(batches: &mut HashMap<u64, Sent>, id: u64) -> Result<&mut Sent> {
    batches
        .get_mut(&id)
        .ok_or_else(|| Error::protocol(format!("receiver named unknown batch {id}")))
}

fn file_entry(sent: &Sent, index: u32) -> Result<&Entry> {
    match sent.entries.get(index as usize) {
        Some(e) if e.kind == Kind::File => Ok(e),
        Some(_) => Err(Error::protocol(format!(
            "receiver asked for data of entry {index}, which is not a regular file"
        ))),
        None => Err(Error::protocol(format!(
            "receiver asked for entry {index} of a batch of {}",
            sent.entries.len()
        ))),
    }
}

fn send_file<W: Write>(
    shared: &Shared<'_, W>,
    batch: u64,
    index: u32,
    dir: &[u8],
    entry: &Entry,
    kind: NeedKind,
) -> Result<()> {
    let rel = entry::join(dir, &entry.name);
    let path = shared.config.source.join(entry::as_path(&rel));
    // The signature is checked before the file is even opened: a hostile one costs nothing.
    let signature = match kind {
        NeedKind::Whole => None,
        NeedKind::Delta { signature } => Some(
            delta::parse_signature(signature)
                .map_err(|e| Error::protocol(format!("{}: {e}", path.display())))?,
        ),
    };
    let opened = open_beneath(&shared.root, &rel).and_then(|f| {
        let before = Version::of(&f)?;
        Ok((f, before))
    });
    let (mut file, before) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            shared.file_error(&rel, format!("cannot open: {e}"));
            return shared.send(&Message::FileFailed { batch, index });
        }
    };
    let sent = match &signature {
        None => send_whole(shared, batch, index, &mut file, before.size),
        Some(signature) => send_delta(shared, batch, index, &mut file, before.size, signature),
    };
    // What was sent is what was read, and its hash covers exactly that; but if the file changed
    // while it was read, that may be a mix of two versions that never existed as a whole. The
    // receiver is told to drop it (nothing lands under the final name) and the next run sends
    // the file again.
    let sent = sent.and_then(|(size, hash)| match Version::of(&file) {
        Ok(after) if after == before && size == before.size => Ok((size, hash)),
        Ok(_) => Err(SendError::Changed),
        Err(e) => Err(SendError::Source(e)),
    });
    match sent {
        Ok((size, hash)) => {
            shared.progress.file_sent(entry::as_path(&rel));
            shared.send(&Message::FileEnd {
                batch,
                index,
                size,
                hash,
            })
        }
        Err(SendError::Source(e)) => {
            shared.file_error(&rel, format!("read failed: {e}"));
            shared.send(&Message::FileFailed { batch, index })
        }
        Err(SendError::Changed) => {
            shared.file_error(&rel, "changed while being sent; not updated".to_string());
            shared.send(&Message::FileFailed { batch, index })
        }
        Err(SendError::Session(e)) => Err(e),
    }
}

/// Opens the source file `rel` (wire bytes) for reading, beneath the source root and without
/// following any symlink on the way: a directory swapped for a symlink after the scan cannot
/// lead the sender out of the tree (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or a
/// component-by-component `O_NOFOLLOW` walk where the kernel lacks it).
fn open_beneath(root: &OwnedFd, rel: &[u8]) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let fd = match rustix::fs::openat2(root, entry::as_path(rel), flags, Mode::empty(), resolve) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM) => {
            let mut dir: Option<OwnedFd> = None;
            let mut components = rel.split(|&b| b == b'/').peekable();
            loop {
                let name = entry::as_path(components.next().unwrap_or_default());
                let parent = dir.as_ref().map_or(root.as_fd(), |d| d.as_fd());
                if components.peek().is_none() {
                    break rustix::fs::openat(parent, name, flags, Mode::empty())?;
                }
                let dir_flags =
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                dir = Some(rustix::fs::openat(parent, name, dir_flags, Mode::empty())?);
            }
        }
        Err(e) => return Err(e.into()),
    };
    let file = File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no longer a regular file",
        ));
    }
    Ok(file)
}

/// What identifies one version of an open source file: a write changes its size or its mtime
/// and ctime (a restored mtime still moves ctime, which no one can set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Version {
    fn of(file: &File) -> io::Result<Version> {
        let meta = file.metadata()?;
        Ok(Version {
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }
}

enum SendError {
    /// The source file failed: that file is lost for this run, the session goes on.
    Source(io::Error),
    /// The source file changed while it was read: what was read is not sent as a result.
    Changed,
    /// The connection failed: the session ends.
    Session(Error),
}

fn send_whole<W: Write>(
    shared: &Shared<'_, W>,
    batch: u64,
    index: u32,
    file: &mut File,
    size_hint: u64,
) -> Result<(u64, [u8; 32]), SendError> {
    let mut hasher = blake3::Hasher::new();
    // Most files are small: a buffer their size (plus one byte to see the end in one read)
    // costs less than a full chunk each.
    let mut buf = vec![0u8; (size_hint as usize).saturating_add(1).min(DATA_CHUNK)];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SendError::Source(e)),
        };
        // The hash is taken over exactly the bytes that go on the wire.
        let data = buf.get(..n).unwrap_or_default();
        hasher.update(data);
        total += n as u64;
        shared
            .send(&Message::FileChunk {
                batch,
                index,
                data: data.to_vec(),
            })
            .map_err(SendError::Session)?;
        shared.progress.transferred(n as u64);
    }
    Ok((total, *hasher.finalize().as_bytes()))
}

/// Sends a delta of `file` against the receiver's `signature`, reading the file in segments
/// (never mapping it: a source truncated while mapped would kill this process with SIGBUS).
fn send_delta<W: Write>(
    shared: &Shared<'_, W>,
    batch: u64,
    index: u32,
    file: &mut File,
    size_hint: u64,
    signature: &fast_rsync::Signature,
) -> Result<(u64, [u8; 32]), SendError> {
    let mut hasher = blake3::Hasher::new();
    let mut out = DeltaSink {
        shared,
        batch,
        index,
        buf: Vec::with_capacity(DATA_CHUNK),
        failed: None,
    };
    let progress = shared.progress;
    // The hash is taken over exactly the bytes the delta encodes, as they are read.
    let result = delta::diff_reader(signature, file, &mut out, size_hint, |data| {
        if data.len() >= 128 << 10 {
            hasher.update_rayon(data);
        } else {
            hasher.update(data);
        }
        progress.transferred(data.len() as u64);
    });
    if let Some(e) = out.failed.take() {
        return Err(SendError::Session(e));
    }
    let total = match result {
        Ok(total) => total,
        Err(delta::DeltaError::Read(e)) => return Err(SendError::Source(e)),
        Err(e) => return Err(SendError::Session(Error::protocol(e.to_string()))),
    };
    out.flush_chunk().map_err(SendError::Session)?;
    Ok((total, *hasher.finalize().as_bytes()))
}

/// Cuts a delta into `DeltaChunk` frames as fast_rsync writes it.
struct DeltaSink<'s, 'a, W: Write> {
    shared: &'s Shared<'a, W>,
    batch: u64,
    index: u32,
    buf: Vec<u8>,
    failed: Option<Error>,
}

impl<W: Write> DeltaSink<'_, '_, W> {
    fn flush_chunk(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(DATA_CHUNK));
        self.shared.send(&Message::DeltaChunk {
            batch: self.batch,
            index: self.index,
            data,
        })
    }
}

impl<W: Write> Write for DeltaSink<'_, '_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = DATA_CHUNK - self.buf.len();
        let take = room.min(data.len());
        self.buf
            .extend_from_slice(data.get(..take).unwrap_or_default());
        if self.buf.len() >= DATA_CHUNK {
            if let Err(e) = self.flush_chunk() {
                self.failed = Some(e);
                return Err(io::Error::other("connection failed"));
            }
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn merge(report: &mut Report, s: Summary) {
    report.files_transferred = s.files_whole + s.files_delta;
    report.files_delta = s.files_delta;
    report.files_up_to_date = s.files_up_to_date;
    report.delta_retries = s.delta_retries;
    report.metadata_updated = s.metadata_updated;
    report.dirs_created = s.dirs_created;
    report.symlinks_created = s.symlinks_created;
    report.deleted = s.deleted;
    report.bytes_literal = s.bytes_literal;
    report.bytes_matched = s.bytes_matched;
    report.errors.extend(
        s.errors
            .into_iter()
            .map(|e| FileError::new(&e.path, e.message)),
    );
}

/// Reads a `--exclude-from` file: one pattern per line.
pub(crate) fn read_patterns(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(text).map_err(|_| {
        Error::io(
            path,
            io::Error::new(
                io::ErrorKind::InvalidData,
                "exclude file is not valid UTF-8",
            ),
        )
    })?;
    Ok(text.lines().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn the_window_bounds_batches_and_entries_and_a_close_frees_the_walker() {
        let window = Window::new(3, 100);
        // One batch always fits, however wide.
        window.acquire(500).unwrap();
        window.release(500);
        for _ in 0..3 {
            window.acquire(10).unwrap();
        }
        let w = &window;
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            s.spawn(move || tx.send(w.acquire(10)).unwrap());
            // Three batches in flight: the fourth waits until one is settled.
            assert!(rx.try_recv().is_err());
            window.release(10);
            rx.recv().unwrap().unwrap();
            // 30 entries in flight: 80 more would pass the cap of 100.
            window.release(10);
            let (tx, rx) = mpsc::channel();
            s.spawn(move || tx.send(w.acquire(80)).unwrap());
            assert!(rx.try_recv().is_err());
            // The answering thread stops: the waiting walker gets an error, not a hang.
            window.close();
            assert!(rx.recv().unwrap().is_err());
        });
    }
}
