//! The destination side of a session: decides what it needs, applies data, deletes.
//!
//! One thread reads the sender's frames and does the filesystem work; a second thread writes
//! replies, so this side never blocks on a full pipe while the sender blocks on us. Everything
//! from the wire is validated before use: directory paths and names by [`entry`], batch ids and
//! indexes against the batches in flight, deltas by [`delta::Patcher`]. Every write goes through
//! [`confined`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use crossbeam_channel as channel;
use rayon::prelude::*;

use crate::confined::{self, Root, Stat};
use crate::delta::{self, Patcher};
use crate::dest::{DestDir, DestRoot, DestTemp};
use crate::entry::{self, Entry, Kind, Mtime};
use crate::error::{Error, Result};
use crate::filter::{Filter, Verdict};
use crate::protocol::{
    Batch, Change, FrameReader, FrameWriter, Hello, Message, Need, NeedKind, SessionOptions,
    Summary, WireFileError, MAX_FRAME, PROTOCOL_VERSION,
};

/// Runs the receiver on a connection from a sender: the body of `azsync agent --stdio`.
pub fn serve<R: Read, W: Write + Send>(reader: R, writer: W) -> Result<()> {
    serve_with(reader, writer, |dest: &Path, options: &SessionOptions| {
        // A dry run into a destination that does not exist yet creates nothing.
        if options.dry_run && !dest.exists() {
            return Ok(None);
        }
        Root::open(dest).map(Some).map_err(|e| Error::io(dest, e))
    })
}

/// Runs the receiver with the destination root that `open_root` opens for the path and
/// options the sender asks for (`None`: a dry run into nothing).
pub(crate) fn serve_with<R, W, D>(
    reader: R,
    writer: W,
    open_root: impl FnOnce(&Path, &SessionOptions) -> Result<Option<D>>,
) -> Result<()>
where
    R: Read,
    W: Write + Send,
    D: DestRoot,
{
    let mut reader = FrameReader::new(reader);
    let (tx, rx) = channel::unbounded::<Message>();
    std::thread::scope(|scope| {
        let writing = scope.spawn(move || write_replies(FrameWriter::new(writer), rx));
        let result = session(&mut reader, &tx, open_root);
        if let Err(e) = &result {
            let _ = tx.send(Message::Fatal(e.to_string()));
        }
        drop(tx);
        let written = writing
            .join()
            .unwrap_or_else(|_| Err(Error::protocol("reply writer panicked")));
        result.and(written)
    })
}

fn write_replies<W: Write>(
    mut writer: FrameWriter<W>,
    rx: channel::Receiver<Message>,
) -> Result<()> {
    writer.write_magic()?;
    while let Ok(msg) = rx.recv() {
        writer.send(&msg)?;
        // Batch up whatever is already queued into one write.
        while let Ok(more) = rx.try_recv() {
            writer.send(&more)?;
        }
        writer.flush()?;
    }
    writer.flush()
}

fn session<R: Read, D: DestRoot>(
    reader: &mut FrameReader<R>,
    out: &channel::Sender<Message>,
    open_root: impl FnOnce(&Path, &SessionOptions) -> Result<Option<D>>,
) -> Result<()> {
    reader.read_magic()?;
    let hello = match reader.expect()? {
        Message::Hello(h) => h,
        other => return Err(unexpected(&other)),
    };
    if hello.version != PROTOCOL_VERSION {
        return Err(Error::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: hello.version,
        });
    }
    send(
        out,
        Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            max_frame: MAX_FRAME as u32,
            dest: Vec::new(),
            options: SessionOptions::default(),
            window: 0,
        }),
    )?;
    let mut patterns = Vec::new();
    loop {
        match reader.expect()? {
            Message::Rules(mut more) => patterns.append(&mut more),
            Message::RulesEnd => break,
            Message::Fatal(message) => return Err(remote(message)),
            other => return Err(unexpected(&other)),
        }
    }
    let filter = Filter::new(&patterns, hello.options.allow_secrets)?;
    drop(patterns);
    // An empty path is the home directory (`host:`); the agent starts there.
    let dest = match hello.dest.as_slice() {
        b"" => std::path::PathBuf::from("."),
        bytes => entry::to_path_buf(bytes),
    };
    let root = open_root(&dest, &hello.options)?;
    let mut receiver = Receiver::<D> {
        granularity: root.as_ref().map_or(1, D::mtime_granularity_ns).max(1),
        root,
        options: hello.options,
        filter,
        out: out.clone(),
        batches: HashMap::new(),
        dirs: HashMap::new(),
        current: None,
        summary: Summary::default(),
        end_of_tree: false,
    };
    let result = receiver.run(reader);
    if result.is_err() {
        receiver.keep_partial();
    }
    result
}

fn send(out: &channel::Sender<Message>, msg: Message) -> Result<()> {
    out.send(msg)
        .map_err(|_| Error::protocol("the reply writer stopped"))
}

fn remote(message: String) -> Error {
    Error::Remote {
        peer: "sender",
        message,
    }
}

fn unexpected(msg: &Message) -> Error {
    let name = format!("{msg:?}");
    let name = name.split(['(', ' ', '{']).next().unwrap_or("?");
    Error::protocol(format!("unexpected {name} message from the sender"))
}

/// What the receiver expects next for one needed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Whole,
    Delta,
}

/// Whole-file transfers cut short with at least this much written leave their temp file for
/// the next run, which resumes from it (smaller files are simply sent again).
pub const PARTIAL_MIN: u64 = 1 << 20;

/// A batch whose files are not all settled.
struct Pending<D> {
    dir_key: Vec<u8>,
    dir: Option<D>,
    entries: Vec<Entry>,
    outstanding: BTreeMap<u32, Expect>,
    /// Entries whose delta base is the partial file left by an interrupted run.
    resumed: BTreeSet<u32>,
}

/// A directory some of whose batches are in flight.
struct DirState<D> {
    dir: Option<D>,
    mode: u32,
    mtime: Mtime,
    seen_last: bool,
    open_batches: usize,
    /// Last name seen, to check the sender's ordering across slices.
    last_name: Option<Vec<u8>>,
    /// Names the source has here (only kept with `--delete`).
    names: HashSet<Vec<u8>>,
}

/// The file whose data is arriving.
struct InFlight<T> {
    batch: u64,
    index: u32,
    expect: Expect,
    temp: Option<T>,
    hasher: blake3::Hasher,
    written: u64,
    delta: Option<(Patcher, delta::FileBase)>,
    /// Set when writing failed; the rest of the file's data is discarded.
    failure: Option<String>,
}

struct Receiver<R: DestRoot> {
    root: Option<R>,
    options: SessionOptions,
    filter: Filter,
    out: channel::Sender<Message>,
    batches: HashMap<u64, Pending<R::Dir>>,
    dirs: HashMap<Vec<u8>, DirState<R::Dir>>,
    current: Option<InFlight<<R::Dir as DestDir>::Temp>>,
    summary: Summary,
    end_of_tree: bool,
    /// The destination's mtime resolution in nanoseconds (see [`same_mtime`]).
    granularity: u32,
}

/// What to do with one entry, decided before anything changes.
enum Plan {
    Nothing,
    UpToDate,
    FixMeta {
        code: String,
    },
    Need {
        code: String,
        delta: bool,
        /// An empty (or, with `--delete`, any) directory stands where the file goes.
        clear_dir: bool,
    },
    MakeDir {
        replace: Option<Kind>,
    },
    Link {
        code: String,
        replace: Option<Kind>,
    },
    Fail(String),
}

fn code(y: char, x: char, flags: &str) -> String {
    let mut c = format!("{y}{x}{flags}");
    while c.len() < 11 {
        c.push('.');
    }
    c
}

impl<R: DestRoot> Receiver<R> {
    fn run<S: Read>(&mut self, reader: &mut FrameReader<S>) -> Result<()> {
        loop {
            if self.end_of_tree && self.batches.is_empty() {
                if let Some((dir, _)) = self.dirs.iter().next() {
                    return Err(Error::protocol(format!(
                        "directory {:?} ended without its last slice",
                        confined::display(dir)
                    )));
                }
                self.summary.errors.sort_by(|a, b| a.path.cmp(&b.path));
                return send(
                    &self.out,
                    Message::Summary(std::mem::take(&mut self.summary)),
                );
            }
            let msg = reader.expect()?;
            match msg {
                Message::Batch(batch) if !self.end_of_tree => self.batch(batch)?,
                Message::FileChunk { batch, index, data } => {
                    self.data(batch, index, Expect::Whole, &data)?
                }
                Message::DeltaChunk { batch, index, data } => {
                    self.data(batch, index, Expect::Delta, &data)?
                }
                Message::FileEnd {
                    batch,
                    index,
                    size,
                    hash,
                } => self.file_end(batch, index, size, hash)?,
                Message::FileFailed { batch, index } => self.file_failed(batch, index)?,
                Message::EndOfTree if !self.end_of_tree => self.end_of_tree = true,
                Message::Fatal(message) => return Err(remote(message)),
                other => return Err(unexpected(&other)),
            }
        }
    }

    fn error(&mut self, rel: &[u8], message: impl Into<String>) {
        self.summary.errors.push(WireFileError {
            path: rel.to_vec(),
            message: message.into(),
        });
    }

    fn protected(&self, rel: &[u8], is_dir: bool) -> bool {
        !self.options.delete_excluded
            && self.filter.check(entry::as_path(rel), is_dir) != Verdict::Include
    }

    fn batch(&mut self, batch: Batch) -> Result<()> {
        entry::validate_rel_path(&batch.dir)?;
        if self.batches.contains_key(&batch.id) {
            return Err(Error::protocol(format!("batch id {} used twice", batch.id)));
        }
        if batch.dir_mtime.nsec >= 1_000_000_000 {
            return Err(Error::protocol("directory mtime nanoseconds out of range"));
        }
        let key = batch.dir.clone();
        match (self.dirs.contains_key(&key), batch.first) {
            (false, true) => {
                let dir = self.open_dir(&key);
                self.dirs.insert(
                    key.clone(),
                    DirState {
                        dir,
                        mode: batch.dir_mode,
                        mtime: batch.dir_mtime,
                        seen_last: false,
                        open_batches: 0,
                        last_name: None,
                        names: HashSet::new(),
                    },
                );
            }
            (true, false) => {}
            _ => {
                return Err(Error::protocol(format!(
                    "slices of directory {:?} out of order",
                    confined::display(&key)
                )))
            }
        }
        let state = self
            .dirs
            .get_mut(&key)
            .ok_or_else(|| Error::protocol("lost directory state"))?;
        for e in &batch.entries {
            entry::validate_name(&e.name)?;
            if state.last_name.as_ref().is_some_and(|last| e.name <= *last) {
                return Err(Error::protocol(format!(
                    "entries of {:?} are not sorted or repeat {:?}",
                    confined::display(&key),
                    confined::display(&e.name)
                )));
            }
            if e.mtime.nsec >= 1_000_000_000 {
                return Err(Error::protocol("mtime nanoseconds out of range"));
            }
            if e.kind == Kind::Symlink && (e.target.is_empty() || e.target.contains(&0)) {
                return Err(Error::protocol("symlink target empty or containing NUL"));
            }
            state.last_name = Some(e.name.clone());
            if self.options.delete {
                state.names.insert(e.name.clone());
            }
        }
        state.seen_last = batch.last;
        state.open_batches += 1;
        let dir = state.dir.clone();

        let plans = self.plan(&key, dir.as_ref(), &batch.entries);
        let mut needs = Vec::new();
        let mut changes = Vec::new();
        let mut outstanding = BTreeMap::new();
        let mut resumed = BTreeSet::new();
        let report = self.options.itemize || self.options.dry_run;
        for (i, (e, plan)) in batch.entries.iter().zip(plans).enumerate() {
            let rel = entry::join(&key, &e.name);
            let mut change = |code: String, path: Vec<u8>, target: Vec<u8>| {
                if report {
                    changes.push(Change { code, path, target });
                }
            };
            match plan {
                Plan::Nothing => {}
                Plan::UpToDate => self.summary.files_up_to_date += 1,
                Plan::FixMeta { code } => {
                    if let (Some(dir), false) = (&dir, self.options.dry_run) {
                        if let Err(err) = dir.set_file_meta(&e.name, e.mode, e.mtime) {
                            self.error(&rel, format!("cannot set mode and time: {err}"));
                            continue;
                        }
                    }
                    self.summary.metadata_updated += 1;
                    change(code, rel, Vec::new());
                }
                Plan::Need {
                    code,
                    delta,
                    clear_dir,
                } => {
                    change(code, rel.clone(), Vec::new());
                    if self.options.dry_run {
                        self.summary.files_whole += 1;
                        continue;
                    }
                    if let (Some(dir), true) = (&dir, clear_dir) {
                        if let Err(message) = self.clear(dir, &e.name, &rel, Kind::Dir) {
                            self.error(&rel, message);
                            continue;
                        }
                    }
                    let mut kind = NeedKind::Whole;
                    if let Some(d) = &dir {
                        if delta {
                            if let Ok(signature) = base_signature(d, &e.name) {
                                kind = NeedKind::Delta { signature };
                            }
                        } else if e.size >= PARTIAL_MIN {
                            if let Some(signature) = partial_signature(d, &e.name) {
                                kind = NeedKind::Delta { signature };
                                resumed.insert(i as u32);
                            }
                        }
                    }
                    let expect = match kind {
                        NeedKind::Whole => Expect::Whole,
                        NeedKind::Delta { .. } => Expect::Delta,
                    };
                    outstanding.insert(i as u32, expect);
                    needs.push(Need {
                        index: i as u32,
                        kind,
                    });
                }
                Plan::MakeDir { replace } => {
                    let mut path = rel.clone();
                    path.push(b'/');
                    if let (Some(dir), false) = (&dir, self.options.dry_run) {
                        let made = match replace {
                            Some(kind) => self.clear(dir, &e.name, &rel, kind),
                            None => Ok(()),
                        }
                        .and_then(|()| {
                            dir.mkdir(&e.name)
                                .map_err(|err| format!("cannot create directory: {err}"))
                        });
                        if let Err(message) = made {
                            self.error(&rel, message);
                            continue;
                        }
                    }
                    self.summary.dirs_created += 1;
                    change(code('c', 'd', "+++++++++"), path, Vec::new());
                }
                Plan::Link { code, replace } => {
                    if let (Some(dir), false) = (&dir, self.options.dry_run) {
                        let made = match replace {
                            Some(kind) => self.clear(dir, &e.name, &rel, kind),
                            None => Ok(()),
                        }
                        .and_then(|()| {
                            dir.symlink(&e.target, &e.name)
                                .and_then(|()| dir.set_link_mtime(&e.name, e.mtime))
                                .map_err(|err| format!("cannot create symlink: {err}"))
                        });
                        if let Err(message) = made {
                            self.error(&rel, message);
                            continue;
                        }
                    }
                    self.summary.symlinks_created += 1;
                    change(code, rel, e.target.clone());
                }
                Plan::Fail(message) => self.error(&rel, message),
            }
        }
        if batch.last && self.options.delete {
            self.delete_extras(&key, dir.as_ref(), &mut changes);
        }
        send(
            &self.out,
            Message::Reply {
                batch: batch.id,
                needs,
                changes,
            },
        )?;
        self.batches.insert(
            batch.id,
            Pending {
                dir_key: key,
                dir,
                entries: batch.entries,
                outstanding,
                resumed,
            },
        );
        self.settle(batch.id)
    }

    fn open_dir(&mut self, rel: &[u8]) -> Option<R::Dir> {
        let root = self.root.as_ref()?;
        match root.open_dir(rel) {
            Ok(dir) => Some(dir),
            // In a dry run the directory may exist only in the plan.
            Err(e) if self.options.dry_run && e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                let rel = rel.to_vec();
                self.error(&rel, format!("cannot open directory: {e}"));
                None
            }
        }
    }

    /// Decides, for every entry of a batch, what to do. Reads only.
    fn plan(&mut self, dir_key: &[u8], dir: Option<&R::Dir>, entries: &[Entry]) -> Vec<Plan> {
        let Some(dir) = dir else {
            if self.options.dry_run && self.root.is_some() || self.root.is_none() {
                return entries.iter().map(new_entry_plan).collect();
            }
            // The directory could not be opened: its error is already reported.
            return entries.iter().map(|_| Plan::Nothing).collect();
        };
        let stats: Vec<io::Result<Option<Stat>>> =
            entries.iter().map(|e| dir.stat(&e.name)).collect();
        // Hash candidates in parallel with --checksum (the expensive part of a checksum no-op).
        let hashes: Vec<Option<[u8; 32]>> = if self.options.checksum {
            entries
                .par_iter()
                .zip(stats.par_iter())
                .map(|(e, st)| match st {
                    Ok(Some(st))
                        if st.kind == Some(Kind::File)
                            && e.kind == Kind::File
                            && st.size == e.size =>
                    {
                        dir.hash_file(&e.name).ok()
                    }
                    _ => None,
                })
                .collect()
        } else {
            vec![None; entries.len()]
        };
        let delete = self.options.delete;
        entries
            .iter()
            .zip(stats)
            .zip(hashes)
            .map(|((e, st), hash)| {
                let st = match st {
                    Ok(st) => st,
                    Err(err) => return Plan::Fail(format!("cannot stat destination: {err}")),
                };
                let Some(st) = st else {
                    return new_entry_plan(e);
                };
                let rel = entry::join(dir_key, &e.name);
                match (e.kind, st.kind) {
                    (Kind::Dir, Some(Kind::Dir)) => Plan::Nothing,
                    (Kind::Dir, other) => Plan::MakeDir {
                        replace: Some(other.unwrap_or(Kind::File)),
                    },
                    (Kind::Symlink, Some(Kind::Symlink)) => match dir.read_link(&e.name) {
                        Ok(t) if t == e.target => Plan::Nothing,
                        _ => Plan::Link {
                            code: code('c', 'L', "c.t"),
                            replace: None,
                        },
                    },
                    (_, Some(Kind::Dir)) if !delete && !self.dir_is_empty(dir, &e.name) => {
                        Plan::Fail(format!(
                            "cannot replace non-empty directory {:?} with a {} (use --delete)",
                            confined::display(&rel),
                            if e.kind == Kind::File {
                                "file"
                            } else {
                                "symlink"
                            }
                        ))
                    }
                    (Kind::Symlink, other) => Plan::Link {
                        code: code('c', 'L', "+++++++++"),
                        replace: other.filter(|k| *k == Kind::Dir),
                    },
                    (Kind::File, Some(Kind::File)) => {
                        file_plan(e, &st, hash, self.options.checksum, self.granularity)
                    }
                    (Kind::File, other) => Plan::Need {
                        code: code('>', 'f', "+++++++++"),
                        delta: false,
                        // A symlink or special file in the way is replaced by the rename.
                        clear_dir: other == Some(Kind::Dir),
                    },
                }
            })
            .collect()
    }

    fn dir_is_empty(&self, dir: &R::Dir, name: &[u8]) -> bool {
        dir.subdir(name)
            .and_then(|d| d.list())
            .map(|l| l.is_empty())
            .unwrap_or(false)
    }

    /// Removes what is in the way of a new entry at `name`.
    fn clear(&mut self, dir: &R::Dir, name: &[u8], rel: &[u8], kind: Kind) -> Result<(), String> {
        if kind != Kind::Dir {
            return dir
                .remove(name, false)
                .map_err(|e| format!("cannot remove old entry: {e}"));
        }
        let filter = &self.filter;
        let delete_excluded = self.options.delete_excluded;
        let keep = |p: &[u8], is_dir: bool| {
            !delete_excluded && filter.check(entry::as_path(p), is_dir) != Verdict::Include
        };
        match dir.remove_tree(name, true, &keep) {
            Ok(true) => {
                self.summary.deleted += 1;
                Ok(())
            }
            Ok(false) => Err(format!(
                "cannot replace directory {:?}: it holds excluded files",
                confined::display(rel)
            )),
            Err(e) => Err(format!("cannot remove old directory: {e}")),
        }
    }

    fn delete_extras(&mut self, key: &[u8], dir: Option<&R::Dir>, changes: &mut Vec<Change>) {
        let Some(dir) = dir else { return };
        let Some(state) = self.dirs.get_mut(key) else {
            return;
        };
        let names = std::mem::take(&mut state.names);
        let listing = match dir.list() {
            Ok(l) => l,
            Err(e) => {
                self.error(key, format!("cannot list for --delete: {e}"));
                return;
            }
        };
        let in_use: HashSet<Vec<u8>> = names
            .iter()
            .flat_map(|n| [confined::temp_name(n), confined::partial_name(n)])
            .collect();
        let mut extras: Vec<(Vec<u8>, Option<Kind>)> = listing
            .into_iter()
            .filter(|(n, _)| !names.contains(n) && !in_use.contains(n))
            .collect();
        extras.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, kind) in extras {
            let rel = entry::join(key, &name);
            let is_dir = kind == Some(Kind::Dir);
            if self.protected(&rel, is_dir) {
                continue;
            }
            if self.options.itemize || self.options.dry_run {
                let mut path = rel.clone();
                if is_dir {
                    path.push(b'/');
                }
                changes.push(Change {
                    code: "*deleting".to_string(),
                    path,
                    target: Vec::new(),
                });
            }
            if self.options.dry_run {
                self.summary.deleted += 1;
                continue;
            }
            let filter = &self.filter;
            let delete_excluded = self.options.delete_excluded;
            let keep = |p: &[u8], d: bool| {
                !delete_excluded && filter.check(entry::as_path(p), d) != Verdict::Include
            };
            match dir.remove_tree(&name, is_dir, &keep) {
                Ok(true) => self.summary.deleted += 1,
                Ok(false) => {}
                Err(e) => self.error(&rel, format!("cannot delete: {e}")),
            }
        }
    }

    fn pending(&self, batch: u64, index: u32) -> Result<(&Pending<R::Dir>, Expect)> {
        let pending = self
            .batches
            .get(&batch)
            .ok_or_else(|| Error::protocol(format!("data for unknown batch {batch}")))?;
        let expect = *pending.outstanding.get(&index).ok_or_else(|| {
            Error::protocol(format!(
                "data for entry {index} of batch {batch}, which was not asked for"
            ))
        })?;
        Ok((pending, expect))
    }

    fn data(&mut self, batch: u64, index: u32, kind: Expect, data: &[u8]) -> Result<()> {
        if self.current.is_none() {
            self.start_file(batch, index)?;
        }
        let Some(current) = self.current.as_mut() else {
            return Err(Error::protocol("no file in flight"));
        };
        if (current.batch, current.index) != (batch, index) {
            return Err(Error::protocol(format!(
                "data for entry {index} of batch {batch} while entry {} of batch {} is unfinished",
                current.index, current.batch
            )));
        }
        if current.expect != kind {
            return Err(Error::protocol(
                "whole-file data where a delta was asked for, or the reverse",
            ));
        }
        if current.failure.is_some() {
            return Ok(());
        }
        let Some(temp) = current.temp.as_mut() else {
            return Ok(());
        };
        let hasher = &mut current.hasher;
        let written = &mut current.written;
        let result = match &mut current.delta {
            Some((patcher, base)) => {
                // A delta copies block-sized pieces of the base: buffer them into large writes.
                let mut sink = HashingWriter {
                    inner: BufWriter::with_capacity(256 << 10, temp),
                    hasher,
                    written,
                };
                let fed = patcher
                    .feed_from(base, data, &mut sink)
                    .map_err(|e| match e {
                        delta::DeltaError::Io(io) => format!("cannot apply the delta: {io}"),
                        other => format!("{other}"),
                    });
                fed.and_then(|()| sink.flush().map_err(|e| format!("write failed: {e}")))
            }
            None => HashingWriter {
                inner: temp,
                hasher,
                written,
            }
            .write_all(data)
            .map_err(|e| format!("write failed: {e}")),
        };
        if let Err(message) = result {
            current.failure = Some(message);
            current.temp = None;
        }
        Ok(())
    }

    fn start_file(&mut self, batch: u64, index: u32) -> Result<()> {
        let (pending, expect) = self.pending(batch, index)?;
        let resumed = pending.resumed.contains(&index);
        let e = pending
            .entries
            .get(index as usize)
            .ok_or_else(|| Error::protocol("index out of range"))?;
        let dir = pending
            .dir
            .clone()
            .ok_or_else(|| Error::protocol("data for a directory that was not opened"))?;
        let mut failure = None;
        let temp = match dir.create_temp(&e.name) {
            Ok(t) => Some(t),
            Err(err) => {
                failure = Some(format!("cannot create temp file: {err}"));
                None
            }
        };
        let delta = if expect == Expect::Delta {
            // The base is reopened now rather than held open since the reply: a wide directory
            // could otherwise hold thousands of descriptors.
            let base = if resumed {
                confined::partial_name(&e.name)
            } else {
                e.name.clone()
            };
            match dir.open_base(&base) {
                Ok((file, len)) => Some((Patcher::new(), delta::FileBase::new(file, len))),
                Err(err) => {
                    failure.get_or_insert(format!("cannot reopen the old copy: {err}"));
                    None
                }
            }
        } else {
            None
        };
        self.current = Some(InFlight {
            batch,
            index,
            expect,
            temp,
            hasher: blake3::Hasher::new(),
            written: 0,
            delta,
            failure,
        });
        Ok(())
    }

    fn file_end(&mut self, batch: u64, index: u32, size: u64, hash: [u8; 32]) -> Result<()> {
        if self
            .current
            .as_ref()
            .is_none_or(|c| (c.batch, c.index) != (batch, index))
        {
            if self.current.is_some() {
                return Err(Error::protocol("file end for a file that is not in flight"));
            }
            // An empty file sends no chunks.
            self.start_file(batch, index)?;
        }
        let Some(current) = self.current.take() else {
            return Err(Error::protocol("no file in flight"));
        };
        let (pending, _) = self.pending(batch, index)?;
        let e = pending
            .entries
            .get(index as usize)
            .ok_or_else(|| Error::protocol("index out of range"))?
            .clone();
        let rel = entry::join(&pending.dir_key, &e.name);
        let mut failure = current.failure;
        let mut retry = false;
        if failure.is_none() {
            if let Some((patcher, _)) = &current.delta {
                if let Err(err) = patcher.finish() {
                    failure = Some(err.to_string());
                }
            }
        }
        if failure.is_none()
            && (current.written != size || *current.hasher.finalize().as_bytes() != hash)
        {
            failure = Some("the result does not match the sender's blake3".to_string());
        }
        if failure.is_some() && current.expect == Expect::Delta {
            // Bad base, hash collision in the weak signature, file changed under us: try again
            // with the whole file.
            retry = true;
        }
        let outcome = match (failure, current.temp) {
            (None, Some(temp)) => temp
                .commit(e.mode, e.mtime, self.options.fsync)
                .map_err(|err| format!("cannot rename into place: {err}")),
            (None, None) => Err("no temp file".to_string()),
            (Some(f), _) => Err(f),
        };
        match outcome {
            Ok(()) => {
                match &current.delta {
                    Some((patcher, _)) => {
                        self.summary.files_delta += 1;
                        self.summary.bytes_literal += patcher.literal_bytes();
                        self.summary.bytes_matched += patcher.matched_bytes();
                    }
                    None => {
                        self.summary.files_whole += 1;
                        self.summary.bytes_literal += current.written;
                    }
                }
                self.finish_entry(batch, index)
            }
            Err(_) if retry => {
                self.summary.delta_retries += 1;
                self.drop_partial(batch, index);
                if let Some(p) = self.batches.get_mut(&batch) {
                    p.outstanding.insert(index, Expect::Whole);
                }
                send(&self.out, Message::Retry { batch, index })
            }
            Err(message) => {
                self.error(&rel, message);
                self.finish_entry(batch, index)
            }
        }
    }

    fn file_failed(&mut self, batch: u64, index: u32) -> Result<()> {
        self.pending(batch, index)?;
        if let Some(current) = &self.current {
            if (current.batch, current.index) != (batch, index) {
                return Err(Error::protocol("failure for a file that is not in flight"));
            }
        }
        self.current = None;
        self.finish_entry(batch, index)
    }

    fn finish_entry(&mut self, batch: u64, index: u32) -> Result<()> {
        self.drop_partial(batch, index);
        if let Some(p) = self.batches.get_mut(&batch) {
            p.outstanding.remove(&index);
        }
        self.settle(batch)
    }

    /// Removes the partial file an entry was resumed from, once it is no longer the base.
    fn drop_partial(&mut self, batch: u64, index: u32) {
        let Some(p) = self.batches.get_mut(&batch) else {
            return;
        };
        if !p.resumed.remove(&index) {
            return;
        }
        if let (Some(dir), Some(e)) = (&p.dir, p.entries.get(index as usize)) {
            let _ = dir.remove(&confined::partial_name(&e.name), false);
        }
    }

    /// The session ends with an error: a large whole file cut short keeps what arrived, under
    /// its temp name, for the next run to resume from.
    fn keep_partial(&mut self) {
        let Some(current) = self.current.take() else {
            return;
        };
        match current.temp {
            Some(temp)
                if current.expect == Expect::Whole
                    && current.failure.is_none()
                    && current.written >= PARTIAL_MIN =>
            {
                temp.keep()
            }
            _ => {}
        }
    }

    /// If every file of `batch` is settled: tell the sender, and finish its directory when that
    /// was the directory's last open batch.
    fn settle(&mut self, batch: u64) -> Result<()> {
        let done = self
            .batches
            .get(&batch)
            .is_some_and(|p| p.outstanding.is_empty());
        if !done {
            return Ok(());
        }
        let Some(pending) = self.batches.remove(&batch) else {
            return Ok(());
        };
        send(&self.out, Message::BatchDone(batch))?;
        let finished = match self.dirs.get_mut(&pending.dir_key) {
            Some(state) => {
                state.open_batches -= 1;
                state.seen_last && state.open_batches == 0
            }
            None => false,
        };
        if finished {
            if let Some(state) = self.dirs.remove(&pending.dir_key) {
                self.finish_dir(&pending.dir_key, state);
            }
        }
        Ok(())
    }

    /// Gives a directory its own mode and mtime, now that nothing in it will change.
    fn finish_dir(&mut self, rel: &[u8], state: DirState<R::Dir>) {
        if self.options.dry_run {
            return;
        }
        let Some(dir) = state.dir else { return };
        let needs = match dir.own_stat() {
            Ok(st) => st.mode != state.mode || !same_mtime(st.mtime, state.mtime, self.granularity),
            Err(_) => true,
        };
        if needs {
            if let Err(e) = dir.set_own_meta(state.mode, state.mtime) {
                self.error(rel, format!("cannot set directory mode and time: {e}"));
            }
        }
    }
}

fn new_entry_plan(e: &Entry) -> Plan {
    match e.kind {
        Kind::File => Plan::Need {
            code: code('>', 'f', "+++++++++"),
            delta: false,
            clear_dir: false,
        },
        Kind::Dir => Plan::MakeDir { replace: None },
        Kind::Symlink => Plan::Link {
            code: code('c', 'L', "+++++++++"),
            replace: None,
        },
    }
}

/// Whether two mtimes are the same at a destination that keeps `granularity` nanoseconds (an
/// SFTP destination keeps whole seconds: a source time with nanoseconds lands truncated, and
/// must not look changed forever).
fn same_mtime(a: Mtime, b: Mtime, granularity: u32) -> bool {
    a.sec == b.sec && a.nsec / granularity == b.nsec / granularity
}

fn file_plan(
    e: &Entry,
    st: &Stat,
    hash: Option<[u8; 32]>,
    checksum: bool,
    granularity: u32,
) -> Plan {
    let same_time = same_mtime(st.mtime, e.mtime, granularity);
    let same_size = st.size == e.size;
    let same_content = if checksum {
        same_size && hash.is_some() && hash == e.hash
    } else {
        same_size && same_time
    };
    let mut flags = String::new();
    if same_content {
        if same_time && st.mode == e.mode {
            return Plan::UpToDate;
        }
        flags.push_str("..");
        flags.push(if same_time { '.' } else { 't' });
        flags.push(if st.mode == e.mode { '.' } else { 'p' });
        return Plan::FixMeta {
            code: code('.', 'f', &flags),
        };
    }
    flags.push(if checksum { 'c' } else { '.' });
    flags.push(if same_size { '.' } else { 's' });
    flags.push(if same_time { '.' } else { 't' });
    flags.push(if st.mode == e.mode { '.' } else { 'p' });
    Plan::Need {
        code: code('>', 'f', &flags),
        delta: st.size >= delta::DELTA_MIN_SIZE && e.size >= delta::DELTA_MIN_SIZE,
        clear_dir: false,
    }
}

/// When a run was cut short while `name` arrived whole: moves what arrived to the partial name
/// (unless an earlier resume left one there already) and returns its signature, so the file is
/// sent as a delta against it. `None` where there is nothing to resume from or the destination
/// cannot read files back.
fn partial_signature<D: DestDir>(dir: &D, name: &[u8]) -> Option<Vec<u8>> {
    let partial = confined::partial_name(name);
    if !worth_resuming(dir, &partial) {
        let temp = confined::temp_name(name);
        if !worth_resuming(dir, &temp) {
            return None;
        }
        dir.rename(&temp, &partial).ok()?;
    }
    base_signature(dir, &partial).ok()
}

/// Whether `name` is a regular file large enough to resume from.
fn worth_resuming<D: DestDir>(dir: &D, name: &[u8]) -> bool {
    matches!(dir.stat(name), Ok(Some(st)) if st.kind == Some(Kind::File) && st.size >= PARTIAL_MIN)
}

/// The signature of our copy of `name`.
fn base_signature<D: DestDir>(dir: &D, name: &[u8]) -> io::Result<Vec<u8>> {
    let (mut file, len) = dir.open_base(name)?;
    delta::signature_of(&mut file, len)
}

struct HashingWriter<'a, W: Write> {
    inner: W,
    hasher: &'a mut blake3::Hasher,
    written: &'a mut u64,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        *self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
