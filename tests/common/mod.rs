//! Helpers shared by the end-to-end tests (`tests/differential.rs`, `tests/cli.rs`):
//!
//! - a deterministic tree generator driven by a seed ([`generate_tree`]),
//! - tree snapshots and comparators ([`Snapshot`], [`assert_replica`], [`assert_tolerant`]),
//! - runners for the `azsync` binary and for `rsync`, with a hard timeout so a hang fails the
//!   test instead of blocking the suite,
//! - mutation helpers that always set explicit mtimes, so no test depends on the clock.
//!
//! Everything here uses std only (plus rand_chacha, serde_json, tempfile); nothing follows a
//! symlink unless it says so.
#![allow(dead_code)]

pub mod az;
pub mod sshd;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{symlink, FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------------
// Time and metadata
// ---------------------------------------------------------------------------------------------

/// A point in time `secs.nanos` after the epoch.
pub fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// Hands out distinct, increasing, explicit timestamps (whole seconds apart, with nanoseconds),
/// so mutations never depend on the wall clock and always differ from earlier mtimes in seconds.
#[derive(Debug, Clone)]
pub struct Clock {
    next: u64,
}

impl Clock {
    /// A clock that starts at `start_secs` (pick something clearly past the generator's range).
    pub fn new(start_secs: u64) -> Self {
        Clock { next: start_secs }
    }

    /// The next timestamp: 17 s after the previous one, with a non-zero nanosecond part.
    pub fn tick(&mut self) -> SystemTime {
        let s = self.next;
        self.next += 17;
        let nanos = ((s.wrapping_mul(2_654_435_761)) % 999_999_999) as u32 + 1;
        at(s, nanos)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(1_750_000_000)
    }
}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false)
}

/// Sets atime and mtime of a regular file or directory (never a symlink).
pub fn set_mtime(path: &Path, t: SystemTime) {
    assert!(
        !is_symlink(path),
        "set_mtime called on a symlink: {}",
        path.display()
    );
    let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.set_times(FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap_or_else(|e| panic!("set_times {}: {e}", path.display()));
}

/// Sets the permission bits of a regular file or directory (never a symlink).
pub fn set_mode(path: &Path, mode: u32) {
    assert!(
        !is_symlink(path),
        "set_mode called on a symlink: {}",
        path.display()
    );
    fs::set_permissions(path, Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, path.display()));
}

/// Sets mode then mtime of a directory (in that order: chmod does not touch mtime anyway).
pub fn set_dir_meta(path: &Path, mode: u32, t: SystemTime) {
    set_mode(path, mode);
    set_mtime(path, t);
}

/// The parent directory's mtime is what every create/unlink/rename inside it changes; tests
/// reset it explicitly after each mutation.
pub fn set_parent_mtime(path: &Path, t: SystemTime) {
    let parent = path.parent().expect("path has a parent");
    set_mtime(parent, t);
}

/// Creates (or truncates) a regular file with these contents, mode and mtime.
pub fn write_file(path: &Path, contents: &[u8], mode: u32, mtime: SystemTime) {
    if let Ok(m) = fs::symlink_metadata(path) {
        if m.file_type().is_symlink() {
            fs::remove_file(path).unwrap();
        } else if m.permissions().mode() & 0o200 == 0 {
            set_mode(path, 0o600);
        }
    }
    let mut f = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.write_all(contents)
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    f.set_permissions(Permissions::from_mode(mode)).unwrap();
    f.set_times(FileTimes::new().set_accessed(mtime).set_modified(mtime))
        .unwrap();
}

/// Creates a directory (parents too) with this mode and mtime.
pub fn make_dir(path: &Path, mode: u32, mtime: SystemTime) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    set_dir_meta(path, mode, mtime);
}

/// Creates a symlink `path -> target` (the target is stored verbatim, never resolved).
pub fn make_symlink(target: impl AsRef<OsStr>, path: &Path) {
    symlink(target.as_ref(), path).unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
}

/// Joins a relative path given as raw bytes (may be non-UTF-8) onto a root.
pub fn join_bytes(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

/// Fills `buf` with deterministic pseudo-random bytes (ChaCha8: gigabytes per second).
pub fn random_bytes(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    rng.fill_bytes(&mut buf);
    buf
}

/// Random printable text of `len` bytes (lines of words), for files that look like source code.
pub fn random_text(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "fn", "let", "sync", "delta", "block", "mtime", "the", "tree", "walk", "hash", "=", "{",
        "}", "();", "return", "0x2a", "// note", "receiver", "sender",
    ];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        let w = WORDS[rng.gen_range(0..WORDS.len())];
        out.extend_from_slice(w.as_bytes());
        out.push(if rng.gen_ratio(1, 8) { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------------------------
// Deterministic tree generator
// ---------------------------------------------------------------------------------------------

/// What [`generate_tree`] made, as paths relative to the root (raw bytes).
#[derive(Debug, Default, Clone)]
pub struct GenTree {
    /// Regular files with their sizes.
    pub files: Vec<(Vec<u8>, u64)>,
    /// Directories (not the root), parents before children.
    pub dirs: Vec<Vec<u8>>,
    /// Symlinks with their targets.
    pub links: Vec<(Vec<u8>, Vec<u8>)>,
    /// The big files (1 MB, 5 MB, 20 MB), a subset of `files`.
    pub big: Vec<(Vec<u8>, u64)>,
}

/// Knobs for [`generate_tree`].
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Add the 3 x 1 MiB, 1 x 5 MiB and 1 x exactly 20 MiB files.
    pub big_files: bool,
    /// Maximum nesting depth of generated directories below the root (3 or 4).
    pub max_depth: usize,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            big_files: true,
            max_depth: 4,
        }
    }
}

pub const MIB: u64 = 1024 * 1024;

fn rel_join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        let mut v = parent.to_vec();
        v.push(b'/');
        v.extend_from_slice(name);
        v
    }
}

/// Depth of a relative path (number of components).
pub fn depth_of(rel: &[u8]) -> usize {
    if rel.is_empty() || rel == b"." {
        0
    } else {
        rel.iter().filter(|&&b| b == b'/').count() + 1
    }
}

/// A relative symlink target that reaches `to` from the directory `from_dir` (both relative to
/// the root): `../` up to the root, then down.
pub fn relative_target(from_dir: &[u8], to: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    for _ in 0..depth_of(from_dir) {
        t.extend_from_slice(b"../");
    }
    t.extend_from_slice(to);
    t
}

struct Gen<'a> {
    root: &'a Path,
    rng: ChaCha8Rng,
    counter: u32,
    out: GenTree,
    /// (relative dir, mode, mtime) applied at the end, deepest first.
    dir_meta: Vec<(Vec<u8>, u32, SystemTime)>,
    opts: GenOptions,
}

impl Gen<'_> {
    fn mtime(&mut self) -> SystemTime {
        // 2017..2020, with nanoseconds; a few whole-second and one far-future value elsewhere.
        let secs = 1_500_000_000 + self.rng.gen_range(0..100_000_000u64);
        let nanos = if self.rng.gen_ratio(1, 10) {
            0
        } else {
            self.rng.gen_range(1..1_000_000_000u32)
        };
        at(secs, nanos)
    }

    fn file_mode(&mut self) -> u32 {
        match self.rng.gen_range(0..10) {
            0..=4 => 0o644,
            5 | 6 => 0o600,
            7 | 8 => 0o755,
            _ => 0o444,
        }
    }

    fn dir_mode(&mut self) -> u32 {
        match self.rng.gen_range(0..8) {
            0 => 0o700,
            1 => 0o750,
            _ => 0o755,
        }
    }

    fn next_id(&mut self) -> u32 {
        self.counter += 1;
        self.counter
    }

    fn file_name(&mut self) -> Vec<u8> {
        let id = self.next_id();
        match self.rng.gen_range(0..20) {
            0 => format!("with space {id}.txt").into_bytes(),
            1 => format!("naïve-{id}.md").into_bytes(),
            2 => {
                let mut v = b"bin\xff\xfe-".to_vec();
                v.extend_from_slice(id.to_string().as_bytes());
                v
            }
            3 => format!(".hidden{id}").into_bytes(),
            4 => format!("noext{id}").into_bytes(),
            5 => format!("data{id}.bin").into_bytes(),
            6 => format!("-dash{id}.txt").into_bytes(),
            _ => format!("file{id}.txt").into_bytes(),
        }
    }

    fn dir_name(&mut self) -> Vec<u8> {
        let id = self.next_id();
        match self.rng.gen_range(0..12) {
            0 => format!("dir with space {id}").into_bytes(),
            1 => format!("répertoire{id}").into_bytes(),
            2 => {
                let mut v = b"d\xe9".to_vec();
                v.extend_from_slice(id.to_string().as_bytes());
                v
            }
            3 => format!(".hdir{id}").into_bytes(),
            _ => format!("dir{id}").into_bytes(),
        }
    }

    fn size(&mut self) -> usize {
        match self.rng.gen_range(0..100) {
            0..=9 => 0,
            10..=59 => self.rng.gen_range(1..4096),
            60..=89 => self.rng.gen_range(4096..65536),
            _ => self.rng.gen_range(65536..300_000),
        }
    }

    fn add_file(&mut self, rel: Vec<u8>, contents: &[u8], mode: u32, mtime: SystemTime) {
        write_file(&join_bytes(self.root, &rel), contents, mode, mtime);
        self.out.files.push((rel, contents.len() as u64));
    }

    fn add_random_file(&mut self, dir: &[u8]) {
        let name = self.file_name();
        let rel = rel_join(dir, &name);
        let len = self.size();
        let contents = if self.rng.gen_ratio(1, 3) {
            random_text(&mut self.rng, len)
        } else {
            random_bytes(&mut self.rng, len)
        };
        let (mode, mtime) = (self.file_mode(), self.mtime());
        self.add_file(rel, &contents, mode, mtime);
    }

    fn add_dir(&mut self, rel: Vec<u8>) {
        fs::create_dir(join_bytes(self.root, &rel))
            .unwrap_or_else(|e| panic!("mkdir {:?}: {e}", String::from_utf8_lossy(&rel)));
        let (mode, mtime) = (self.dir_mode(), self.mtime());
        self.dir_meta.push((rel.clone(), mode, mtime));
        self.out.dirs.push(rel);
    }

    fn add_link(&mut self, rel: Vec<u8>, target: Vec<u8>) {
        make_symlink(OsStr::from_bytes(&target), &join_bytes(self.root, &rel));
        self.out.links.push((rel, target));
    }

    fn fill_dir(&mut self, dir: Vec<u8>, depth: usize) {
        let nfiles = self.rng.gen_range(2..7);
        for _ in 0..nfiles {
            self.add_random_file(&dir);
        }
        if depth >= self.opts.max_depth {
            return;
        }
        let nsub = match depth {
            0 => self.rng.gen_range(3..5),
            1 => self.rng.gen_range(2..4),
            2 => self.rng.gen_range(1..3),
            _ => self.rng.gen_range(0..2),
        };
        for _ in 0..nsub {
            let name = self.dir_name();
            let rel = rel_join(&dir, &name);
            self.add_dir(rel.clone());
            self.fill_dir(rel, depth + 1);
        }
    }
}

/// Generates a deterministic tree under `root` (created if missing) from `seed`:
///
/// - nested directories down to `opts.max_depth`, with modes 0755/0750/0700,
/// - files from 0 bytes to ~300 KB (random bytes or text), modes 0644/0600/0755/0444, plus sizes
///   on block boundaries (4095/4096/4097/65536/65537) and, with `opts.big_files`, three 1 MiB
///   files, one 5 MiB file and one file of exactly 20 MiB,
/// - empty directories and empty files, a hard link (copied as an independent file),
/// - names with spaces, a leading dash, tabs, non-ASCII UTF-8, non-UTF-8 bytes and a 250-byte name,
/// - `.gitignore` and `.ignore` files whose patterns match other files (a sync copies everything
///   regardless: only `.azsyncignore` is a filter),
/// - symlinks: relative to a file, to a directory, through `..`, escaping the tree
///   (`../../outside`), absolute (`/etc/passwd`), dangling, and a self-loop,
/// - explicit mtimes with nanoseconds on every file and directory (the root too), directories set
///   last, deepest first; one file with a far-future mtime (after 2038).
///
/// No name looks like a secret (no `.env`, `*.pem`, `*.key`, ...), so the built-in secret rules
/// skip nothing and rsync and azsync see the same files.
pub fn generate_tree(root: &Path, seed: u64, opts: &GenOptions) -> GenTree {
    fs::create_dir_all(root).unwrap();
    let mut g = Gen {
        root,
        rng: ChaCha8Rng::seed_from_u64(seed),
        counter: 0,
        out: GenTree::default(),
        dir_meta: Vec::new(),
        opts: opts.clone(),
    };

    // Fixed special entries at the root.
    let t = g.mtime();
    g.add_file(b"with space.txt".to_vec(), b"spaces\n", 0o644, t);
    let t = g.mtime();
    g.add_file(
        "café ünïcødé 日本.txt".as_bytes().to_vec(),
        "ünï\n".as_bytes(),
        0o644,
        t,
    );
    let t = g.mtime();
    g.add_file(b"caf\xe9".to_vec(), b"latin-1 name\n", 0o600, t);
    let t = g.mtime();
    g.add_file(b"tab\there".to_vec(), b"tab\n", 0o644, t);
    let t = g.mtime();
    g.add_file(b"empty-file".to_vec(), b"", 0o644, t);
    let t = g.mtime();
    let mut long = vec![b'L'; 246];
    long.extend_from_slice(b".txt");
    g.add_file(long, b"a 250-byte name\n", 0o644, t);
    // After 2038 (needs 64-bit time everywhere).
    g.add_file(
        b"future.txt".to_vec(),
        b"from the future\n",
        0o644,
        at(4_200_000_000, 123_456_789),
    );
    // Whole-second mtime.
    g.add_file(
        b"whole-second.txt".to_vec(),
        b"zero ns\n",
        0o644,
        at(1_600_000_000, 0),
    );
    // Filter files of other tools: must be copied, never obeyed.
    let t = g.mtime();
    g.add_file(b".gitignore".to_vec(), b"*.txt\n*.bin\ndir*/\n", 0o644, t);
    let t = g.mtime();
    g.add_file(b".ignore".to_vec(), b"*\n", 0o644, t);
    // Block-boundary sizes.
    for (i, len) in [4095usize, 4096, 4097, 65536, 65537]
        .into_iter()
        .enumerate()
    {
        let contents = random_bytes(&mut g.rng, len);
        let t = g.mtime();
        g.add_file(
            format!("edge{i}-{len}.bin").into_bytes(),
            &contents,
            0o644,
            t,
        );
    }

    // Empty directories, one of them nested inside another empty one.
    g.add_dir(b"empty-dir".to_vec());
    g.add_dir(b"empty".to_vec());
    g.add_dir(b"empty/deeper".to_vec());
    // Directories with special names, each with one file.
    for name in [
        b"dir with space".to_vec(),
        "日本語".as_bytes().to_vec(),
        b"non-utf8-\xfe\xff".to_vec(),
    ] {
        g.add_dir(name.clone());
        let rel = rel_join(&name, b"inside.txt");
        let t = g.mtime();
        g.add_file(rel, b"inside\n", 0o644, t);
    }

    // The random part.
    g.fill_dir(Vec::new(), 0);

    // Big files, in random (generated) directories.
    if opts.big_files {
        let sizes = [MIB, MIB, MIB, 5 * MIB, 20 * MIB];
        for (i, &len) in sizes.iter().enumerate() {
            let dir = if g.out.dirs.is_empty() {
                Vec::new()
            } else {
                let k = g.rng.gen_range(0..g.out.dirs.len());
                let d = g.out.dirs[k].clone();
                // never inside the "empty" directories
                if d.starts_with(b"empty") {
                    Vec::new()
                } else {
                    d
                }
            };
            let rel = rel_join(&dir, format!("big{i}-{len}.bin").as_bytes());
            let contents = random_bytes(&mut g.rng, len as usize);
            let t = g.mtime();
            g.add_file(rel.clone(), &contents, 0o644, t);
            g.out.big.push((rel, len));
        }
    }

    // A hard link: rsync -a (without -H) copies it as a second, independent file.
    let (first, size) = g.out.files[g.out.files.len() / 2].clone();
    fs::hard_link(join_bytes(root, &first), root.join("hard-link")).unwrap();
    g.out.files.push((b"hard-link".to_vec(), size));

    // Symlinks.
    let file_count = g.out.files.len();
    let some_file = g.out.files[g.rng.gen_range(0..file_count)].0.clone();
    g.add_link(b"link-to-file".to_vec(), some_file.clone());
    let deep_dirs: Vec<Vec<u8>> = g
        .out
        .dirs
        .iter()
        .filter(|d| depth_of(d) >= 2 && !d.starts_with(b"empty"))
        .cloned()
        .collect();
    let any_dir = g
        .out
        .dirs
        .iter()
        .find(|d| depth_of(d) == 1 && d.starts_with(b"dir"))
        .cloned()
        .unwrap_or_else(|| b"empty-dir".to_vec());
    g.add_link(b"link-to-dir".to_vec(), any_dir.clone());
    g.add_link(b"link-to-non-utf8".to_vec(), b"caf\xe9".to_vec());
    g.add_link(b"abs-passwd".to_vec(), b"/etc/passwd".to_vec());
    g.add_link(b"dangling".to_vec(), b"does/not/exist".to_vec());
    g.add_link(b"self-loop".to_vec(), b"self-loop".to_vec());
    if let Some(deep) = deep_dirs.first().cloned() {
        // Relative, up through `..` to a file elsewhere in the tree.
        g.add_link(
            rel_join(&deep, b"up-link"),
            relative_target(&deep, &some_file),
        );
        // Escaping the tree.
        g.add_link(rel_join(&deep, b"escape"), {
            let mut t = relative_target(&deep, b"");
            t.extend_from_slice(b"../../outside");
            t
        });
    }
    g.add_link(b"outside-link".to_vec(), b"../../outside".to_vec());
    let d1 = any_dir;
    g.add_link(rel_join(&d1, b"to-sibling-dir"), b"../empty-dir".to_vec());

    // Directory metadata last, deepest first, then the root.
    let mut metas = std::mem::take(&mut g.dir_meta);
    metas.sort_by_key(|(rel, _, _)| std::cmp::Reverse(depth_of(rel)));
    for (rel, mode, t) in metas {
        set_dir_meta(&join_bytes(root, &rel), mode, t);
    }
    let t = g.mtime();
    set_dir_meta(root, 0o755, t);
    g.out
}

// ---------------------------------------------------------------------------------------------
// Snapshots and comparison
// ---------------------------------------------------------------------------------------------

/// What kind of filesystem object an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// FIFO, socket, device: described.
    Special(String),
}

/// One entry of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// `st_mode & 0o7777` (symlinks: 0, Linux ignores it).
    pub mode: u32,
    /// mtime seconds and nanoseconds (files and directories; 0 for symlinks and specials).
    pub mtime: (i64, i64),
    /// File size in bytes (files only).
    pub size: u64,
    /// Content hash (files only).
    pub hash: u64,
    /// Link target (symlinks only).
    pub target: Vec<u8>,
}

/// Every entry under a root, keyed by relative path as raw bytes; the root itself is `"."`.
/// Taken with `symlink_metadata` only: nothing is followed.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub root: PathBuf,
    pub nodes: BTreeMap<Vec<u8>, Node>,
}

/// A fast 64-bit content hash (not cryptographic). Each 8-byte word goes through a bijective
/// step of the state, so any single-word difference always changes the result; the length is
/// mixed in too.
pub fn content_hash(path: &Path) -> (u64, u64) {
    let mut f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 1 << 20]);
    }
    BUF.with(|b| hash_reader(path, &mut f, &mut b.borrow_mut()))
}

fn hash_reader(path: &Path, f: &mut File, buf: &mut [u8]) -> (u64, u64) {
    let mut h: u64 = 0x243F_6A88_85A3_08D3;
    let mut total: u64 = 0;
    loop {
        // Fill the whole buffer (short reads must not change the word alignment).
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("read {}: {e}", path.display()),
            }
        }
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let mut words = chunk.chunks_exact(8);
        for w in &mut words {
            let w = u64::from_le_bytes(w.try_into().unwrap());
            h = mix(h ^ w);
        }
        for &b in words.remainder() {
            h = mix(h ^ (b as u64) ^ 0x100);
        }
        total += n as u64;
        if n < buf.len() {
            break;
        }
    }
    (mix(h ^ total), total)
}

#[inline]
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 32)
}

fn node_of(path: &Path, meta: &fs::Metadata) -> Node {
    let ft = meta.file_type();
    let mode = meta.mode() & 0o7777;
    let mtime = (meta.mtime(), meta.mtime_nsec());
    if ft.is_symlink() {
        let target = fs::read_link(path).unwrap().into_os_string().into_vec();
        Node {
            kind: Kind::Symlink,
            mode: 0,
            mtime: (0, 0),
            size: 0,
            hash: 0,
            target,
        }
    } else if ft.is_dir() {
        Node {
            kind: Kind::Dir,
            mode,
            mtime,
            size: 0,
            hash: 0,
            target: Vec::new(),
        }
    } else if ft.is_file() {
        let (hash, size) = content_hash(path);
        assert_eq!(size, meta.len(), "{} changed while hashing", path.display());
        Node {
            kind: Kind::File,
            mode,
            mtime,
            size,
            hash,
            target: Vec::new(),
        }
    } else {
        let what = if ft.is_fifo() {
            "fifo"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_block_device() {
            "block device"
        } else if ft.is_char_device() {
            "char device"
        } else {
            "unknown"
        };
        Node {
            kind: Kind::Special(what.to_string()),
            mode,
            mtime: (0, 0),
            size: 0,
            hash: 0,
            target: Vec::new(),
        }
    }
}

impl Snapshot {
    /// Walks `root` (which must be a real directory) without following any symlink.
    pub fn take(root: &Path) -> Snapshot {
        let meta = fs::symlink_metadata(root)
            .unwrap_or_else(|e| panic!("snapshot: cannot stat {}: {e}", root.display()));
        assert!(
            meta.is_dir(),
            "snapshot root {} is not a directory",
            root.display()
        );
        let mut nodes = BTreeMap::new();
        nodes.insert(b".".to_vec(), node_of(root, &meta));
        let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_path_buf(), Vec::new())];
        while let Some((dir, rel)) = stack.pop() {
            let rd = fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("snapshot: read_dir {}: {e}", dir.display()));
            for ent in rd {
                let ent = ent.unwrap();
                let path = ent.path();
                let child_rel = rel_join(&rel, ent.file_name().as_bytes());
                // DirEntry::metadata never follows a symlink (fstatat with AT_SYMLINK_NOFOLLOW).
                let meta = ent.metadata().unwrap();
                let node = node_of(&path, &meta);
                if node.kind == Kind::Dir {
                    stack.push((path, child_rel.clone()));
                }
                nodes.insert(child_rel, node);
            }
        }
        Snapshot {
            root: root.to_path_buf(),
            nodes,
        }
    }

    /// The entry at a relative path (`"."` for the root).
    pub fn get(&self, rel: impl AsRef<[u8]>) -> Option<&Node> {
        self.nodes.get(rel.as_ref())
    }

    /// Relative paths of all entries of this kind, sorted.
    pub fn paths_of(&self, kind: &Kind) -> Vec<Vec<u8>> {
        self.nodes
            .iter()
            .filter(|(p, n)| &n.kind == kind && p.as_slice() != b".")
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// A copy without the entries for which `excluded(rel)` holds, nor anything below them.
    pub fn without(&self, excluded: impl Fn(&[u8]) -> bool) -> Snapshot {
        let mut nodes = BTreeMap::new();
        for (p, n) in &self.nodes {
            if p.as_slice() == b"." {
                nodes.insert(p.clone(), n.clone());
                continue;
            }
            let mut cut = false;
            for (i, &b) in p.iter().enumerate() {
                if b == b'/' && excluded(&p[..i]) {
                    cut = true;
                    break;
                }
            }
            if !cut && !excluded(p) {
                nodes.insert(p.clone(), n.clone());
            }
        }
        Snapshot {
            root: self.root.clone(),
            nodes,
        }
    }

    /// Number of entries of this kind (the root not counted).
    pub fn count(&self, kind: &Kind) -> usize {
        self.paths_of(kind).len()
    }
}

/// How strictly two snapshots must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Kinds, contents, link targets, modes, file and directory mtimes to the nanosecond.
    Exact,
    /// Like `Exact`, but directory mtimes only to the second (rsync compares and sets directory
    /// times at one-second granularity when a directory already exists).
    RsyncTolerant,
    /// Like `Exact`, but file and directory mtimes only to the second: what SFTP (version 3)
    /// can carry, so what azsync's SFTP mode gives.
    Seconds,
}

/// Shows a relative path as text (non-UTF-8 bytes escaped).
pub fn show(rel: &[u8]) -> String {
    rel.escape_ascii().to_string()
}

fn show_time(t: (i64, i64)) -> String {
    format!("{}.{:09}", t.0, t.1)
}

/// All differences between two snapshots, one line each, sorted by path.
pub fn diff(a: &Snapshot, b: &Snapshot, how: Compare) -> Vec<String> {
    let mut out = Vec::new();
    let mut keys: Vec<&Vec<u8>> = a.nodes.keys().chain(b.nodes.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let p = show(k);
        match (a.nodes.get(k), b.nodes.get(k)) {
            (Some(x), None) => out.push(format!("{p}: only in A ({:?})", x.kind)),
            (None, Some(y)) => out.push(format!("{p}: only in B ({:?})", y.kind)),
            (Some(x), Some(y)) => {
                if x.kind != y.kind {
                    out.push(format!("{p}: kind {:?} vs {:?}", x.kind, y.kind));
                    continue;
                }
                match x.kind {
                    Kind::Symlink => {
                        if x.target != y.target {
                            out.push(format!(
                                "{p}: link target {} vs {}",
                                show(&x.target),
                                show(&y.target)
                            ));
                        }
                    }
                    Kind::File => {
                        if x.size != y.size {
                            out.push(format!("{p}: size {} vs {}", x.size, y.size));
                        } else if x.hash != y.hash {
                            out.push(format!("{p}: contents differ (same size {})", x.size));
                        }
                        if x.mode != y.mode {
                            out.push(format!("{p}: mode {:o} vs {:o}", x.mode, y.mode));
                        }
                        let differs = match how {
                            Compare::Seconds => x.mtime.0 != y.mtime.0,
                            Compare::Exact | Compare::RsyncTolerant => x.mtime != y.mtime,
                        };
                        if differs {
                            out.push(format!(
                                "{p}: mtime {} vs {}",
                                show_time(x.mtime),
                                show_time(y.mtime)
                            ));
                        }
                    }
                    Kind::Dir => {
                        if x.mode != y.mode {
                            out.push(format!("{p}/: mode {:o} vs {:o}", x.mode, y.mode));
                        }
                        let differs = match how {
                            Compare::Exact => x.mtime != y.mtime,
                            Compare::RsyncTolerant | Compare::Seconds => x.mtime.0 != y.mtime.0,
                        };
                        if differs {
                            out.push(format!(
                                "{p}/: dir mtime {} vs {}",
                                show_time(x.mtime),
                                show_time(y.mtime)
                            ));
                        }
                    }
                    Kind::Special(_) => {
                        if x.mode != y.mode {
                            out.push(format!("{p}: mode {:o} vs {:o}", x.mode, y.mode));
                        }
                    }
                }
            }
            (None, None) => unreachable!(),
        }
    }
    out
}

/// Panics, listing the first differences, unless the snapshots agree.
pub fn assert_same(a: &Snapshot, b: &Snapshot, how: Compare, what: &str) {
    let d = diff(a, b, how);
    if d.is_empty() {
        return;
    }
    let mut msg = format!(
        "{what}: {} difference(s) ({how:?}) between\n  A = {}\n  B = {}\n",
        d.len(),
        a.root.display(),
        b.root.display()
    );
    for line in d.iter().take(15) {
        let _ = writeln!(msg, "  - {line}");
    }
    if d.len() > 15 {
        let _ = writeln!(msg, "  ... and {} more", d.len() - 15);
    }
    panic!("{msg}");
}

/// `dst` is an exact replica of `src`: same entries, kinds, contents, link targets, modes, and
/// file and directory mtimes (the root's too) to the nanosecond.
pub fn assert_replica(src: &Path, dst: &Path) {
    assert_same(
        &Snapshot::take(src),
        &Snapshot::take(dst),
        Compare::Exact,
        "exact replica",
    );
}

/// Like [`assert_replica`] but with directory mtimes compared to the second (what rsync gives).
pub fn assert_tolerant(src: &Path, dst: &Path) {
    assert_same(
        &Snapshot::take(src),
        &Snapshot::take(dst),
        Compare::RsyncTolerant,
        "rsync-tolerant replica",
    );
}

// ---------------------------------------------------------------------------------------------
// Running azsync and rsync
// ---------------------------------------------------------------------------------------------

/// Longest any single run may take before it is killed and the test fails (a hang, e.g. a FIFO
/// opened for reading, must fail the test, not block the suite).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Path of the `azsync` binary built for these tests.
pub fn azsync_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_azsync"))
}

fn clip(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() <= max {
        s.into_owned()
    } else {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... [{} more bytes]", &s[..end], s.len() - end)
    }
}

/// A readable account of a finished command, for panic messages.
pub fn describe(cmdline: &str, out: &Output) -> String {
    format!(
        "command: {cmdline}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n",
        out.status,
        clip(&out.stdout, 6000),
        clip(&out.stderr, 6000)
    )
}

fn cmdline_of(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() {
            s.push('\'');
            s.push_str(&a);
            s.push('\'');
        } else {
            s.push_str(&a);
        }
    }
    s
}

/// Runs a command to completion with stdin closed and both outputs captured; kills it and panics
/// if it runs longer than `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let line = cmdline_of(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("`{line}`: waiting failed: {e}"),
        Err(_) => {
            // Our own child, by pid.
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("`{line}` did not finish within {timeout:?}; killed pid {pid}");
        }
    }
}

/// A finished run: its command line and output.
#[derive(Debug)]
pub struct Run {
    pub cmdline: String,
    pub out: Output,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    pub fn describe(&self) -> String {
        describe(&self.cmdline, &self.out)
    }
    /// Panics with the full account unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "expected exit code {code}\n{}",
            self.describe()
        );
        self
    }
    pub fn expect_ok(&self) -> &Self {
        self.expect_code(0)
    }
    /// stdout parsed as the single JSON object of `--json`.
    pub fn json(&self) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| {
            panic!("stdout is not one JSON document: {e}\n{}", self.describe())
        });
        assert!(
            v.is_object(),
            "--json output is not an object\n{}",
            self.describe()
        );
        v
    }
}

/// Runs `azsync` with exactly these arguments.
pub fn run_azsync<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(azsync_bin());
    cmd.args(args);
    let cmdline = cmdline_of(&cmd);
    let out = run_with_timeout(cmd, RUN_TIMEOUT);
    Run { cmdline, out }
}

/// `azsync sync --no-progress OPTS SRC DEST`.
pub fn azsync_sync(src: &Path, dst: &Path, opts: &[&str]) -> Run {
    let mut args: Vec<OsString> = vec!["sync".into(), "--no-progress".into()];
    args.extend(opts.iter().map(OsString::from));
    args.push(src.as_os_str().to_owned());
    args.push(dst.as_os_str().to_owned());
    run_azsync(args)
}

/// `azsync sync --no-progress --json OPTS SRC DEST`, returning the run and its parsed report.
pub fn azsync_sync_json(src: &Path, dst: &Path, opts: &[&str]) -> (Run, serde_json::Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(opts);
    let run = azsync_sync(src, dst, &all);
    let v = run.json();
    (run, v)
}

/// A numeric field of the `--json` report.
pub fn num(report: &serde_json::Value, key: &str) -> u64 {
    report
        .get(key)
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("--json report has no numeric {key:?}: {report}"))
}

/// `skipped` of the `--json` report as (path, reason) pairs.
pub fn skipped(report: &serde_json::Value) -> Vec<(String, String)> {
    pairs(report, "skipped", "reason")
}

/// `errors` of the `--json` report as (path, message) pairs.
pub fn errors(report: &serde_json::Value) -> Vec<(String, String)> {
    pairs(report, "errors", "message")
}

fn pairs(report: &serde_json::Value, key: &str, second: &str) -> Vec<(String, String)> {
    let arr = report
        .get(key)
        .and_then(|v| v.as_array())
        .unwrap_or_else(|| panic!("--json report has no array {key:?}: {report}"));
    arr.iter()
        .map(|e| {
            let p = e.get("path").and_then(|v| v.as_str());
            let s = e.get(second).and_then(|v| v.as_str());
            match (p, s) {
                (Some(p), Some(s)) => (p.to_string(), s.to_string()),
                _ => panic!("{key} entry without string path/{second}: {e}"),
            }
        })
        .collect()
}

/// Panics with a clear message unless rsync is installed: the differential tests need it and are
/// never skipped silently.
pub fn require_rsync() {
    match Command::new("rsync").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "rsync is required: apt-get install rsync (the README test command installs it); \
             `rsync --version` failed: {}",
            o.status
        ),
        Err(e) => panic!(
            "rsync is required: apt-get install rsync (the README test command installs it); \
             cannot run rsync: {e}"
        ),
    }
}

/// Runs `rsync` with exactly these arguments.
pub fn run_rsync<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    require_rsync();
    let mut cmd = Command::new("rsync");
    cmd.args(args);
    let cmdline = cmdline_of(&cmd);
    let out = run_with_timeout(cmd, RUN_TIMEOUT);
    Run { cmdline, out }
}

/// A path with a trailing slash (rsync's "contents of" form).
pub fn with_slash(p: &Path) -> OsString {
    let mut s = p.as_os_str().to_owned();
    if !s.as_bytes().ends_with(b"/") {
        s.push("/");
    }
    s
}

/// `rsync -a EXTRA SRC/ DST/`; panics unless it exits with `code`.
pub fn rsync_a(src: &Path, dst: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<OsString> = vec!["-a".into()];
    args.extend(extra.iter().map(OsString::from));
    args.push(with_slash(src));
    args.push(with_slash(dst));
    run_rsync(args)
}

// ---------------------------------------------------------------------------------------------
// Mutations with explicit mtimes
// ---------------------------------------------------------------------------------------------

/// Runs `f` with the file writable by its owner, restoring the mode afterwards.
fn with_writable<T>(path: &Path, f: impl FnOnce() -> T) -> T {
    let meta = fs::symlink_metadata(path).unwrap();
    assert!(meta.is_file(), "{} is not a regular file", path.display());
    let mode = meta.mode() & 0o7777;
    if mode & 0o200 == 0 {
        set_mode(path, mode | 0o200);
    }
    let r = f();
    if mode & 0o200 == 0 {
        set_mode(path, mode);
    }
    r
}

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for writing: {e}", path.display()))
}

/// Appends bytes to a file and sets its mtime.
pub fn append(path: &Path, data: &[u8], mtime: SystemTime) {
    with_writable(path, || {
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(data).unwrap();
        f.set_modified(mtime).unwrap();
    });
}

/// Truncates (or extends with zeros) a file to `len` and sets its mtime.
pub fn truncate(path: &Path, len: u64, mtime: SystemTime) {
    with_writable(path, || {
        let f = open_rw(path);
        f.set_len(len).unwrap();
        f.set_modified(mtime).unwrap();
    });
}

/// Overwrites `data.len()` bytes at `offset` (which must lie within the file, keeping its size)
/// and sets the mtime.
pub fn rewrite_range(path: &Path, offset: u64, data: &[u8], mtime: SystemTime) {
    with_writable(path, || {
        let f = open_rw(path);
        let len = f.metadata().unwrap().len();
        assert!(
            offset + data.len() as u64 <= len,
            "rewrite_range past the end of {} ({offset}+{} > {len})",
            path.display(),
            data.len()
        );
        f.write_all_at(data, offset).unwrap();
        f.set_modified(mtime).unwrap();
    });
}

/// Rewrites the middle of a file with different bytes (each byte complemented, so it surely
/// changes), keeping its size. Returns the number of bytes changed.
pub fn rewrite_middle(path: &Path, len: usize, mtime: SystemTime) -> usize {
    let size = fs::metadata(path).unwrap().len();
    let len = len.min(size as usize);
    let offset = (size - len as u64) / 2;
    let f = File::open(path).unwrap();
    let mut old = vec![0u8; len];
    f.read_exact_at(&mut old, offset).unwrap();
    let new: Vec<u8> = old.iter().map(|b| !b).collect();
    rewrite_range(path, offset, &new, mtime);
    len
}

/// Sets a file's or directory's mtime only (contents unchanged).
pub fn touch(path: &Path, mtime: SystemTime) {
    set_mtime(path, mtime);
}

/// Removes a file or symlink and sets its parent directory's mtime.
pub fn remove_file(path: &Path, parent_mtime: SystemTime) {
    fs::remove_file(path).unwrap_or_else(|e| panic!("rm {}: {e}", path.display()));
    set_parent_mtime(path, parent_mtime);
}

/// Removes a directory tree and sets its parent directory's mtime.
pub fn remove_dir(path: &Path, parent_mtime: SystemTime) {
    fs::remove_dir_all(path).unwrap_or_else(|e| panic!("rm -r {}: {e}", path.display()));
    set_parent_mtime(path, parent_mtime);
}

/// Replaces a file (or symlink) by a directory holding one file `inside.txt`; sets the mtimes of
/// the new file, the new directory and the parent.
pub fn replace_file_with_dir(path: &Path, mtime: SystemTime) {
    fs::remove_file(path).unwrap_or_else(|e| panic!("rm {}: {e}", path.display()));
    fs::create_dir(path).unwrap();
    write_file(&path.join("inside.txt"), b"now a directory\n", 0o644, mtime);
    set_dir_meta(path, 0o755, mtime);
    set_parent_mtime(path, mtime);
}

/// Replaces a directory tree by a regular file with these contents; sets the mtimes of the file
/// and the parent.
pub fn replace_dir_with_file(path: &Path, contents: &[u8], mtime: SystemTime) {
    fs::remove_dir_all(path).unwrap_or_else(|e| panic!("rm -r {}: {e}", path.display()));
    write_file(path, contents, 0o644, mtime);
    set_parent_mtime(path, mtime);
}

/// Replaces a file, directory or symlink by a symlink to `target`; sets the parent's mtime.
pub fn replace_with_symlink(path: &Path, target: &str, mtime: SystemTime) {
    let meta = fs::symlink_metadata(path).unwrap();
    if meta.is_dir() {
        fs::remove_dir_all(path).unwrap();
    } else {
        fs::remove_file(path).unwrap();
    }
    make_symlink(target, path);
    set_parent_mtime(path, mtime);
}

/// Creates a new file (setting its parent's mtime too).
pub fn add_file(path: &Path, contents: &[u8], mode: u32, mtime: SystemTime) {
    write_file(path, contents, mode, mtime);
    set_parent_mtime(path, mtime);
}

/// Creates a FIFO with `mkfifo` (std has no mkfifo).
pub fn make_fifo(path: &Path) {
    let st = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo (coreutils) is needed to make a FIFO");
    assert!(st.success(), "mkfifo {} failed", path.display());
}

/// Lists a directory tree's relative paths (for messages).
pub fn listing(root: &Path) -> Vec<String> {
    Snapshot::take(root).nodes.keys().map(|k| show(k)).collect()
}

/// The keys every `--json` report must have.
pub const REPORT_NUMBERS: &[&str] = &[
    "files_scanned",
    "files_transferred",
    "files_delta",
    "files_up_to_date",
    "deleted",
    "bytes_literal",
    "bytes_matched",
    "bytes_sent",
    "bytes_received",
];

/// Panics unless the `--json` report has every documented key with the right type.
pub fn check_report_shape(report: &serde_json::Value) {
    for k in REPORT_NUMBERS {
        num(report, k);
    }
    skipped(report);
    errors(report);
}

/// Picks paths without overlaps: no path picked twice, none inside another picked one.
#[derive(Debug, Default)]
pub struct Picker {
    taken: Vec<Vec<u8>>,
}

fn is_within(p: &[u8], dir: &[u8]) -> bool {
    p.len() > dir.len() && p.starts_with(dir) && p[dir.len()] == b'/'
}

impl Picker {
    /// Whether `p` overlaps something already picked (same, ancestor or descendant).
    pub fn conflicts(&self, p: &[u8]) -> bool {
        self.taken
            .iter()
            .any(|t| t.as_slice() == p || is_within(p, t) || is_within(t, p))
    }

    /// Marks a path as taken.
    pub fn take(&mut self, p: &[u8]) {
        self.taken.push(p.to_vec());
    }

    /// Picks up to `n` entries of `snap` of this kind for which `ok(path, node)` holds and that
    /// overlap nothing picked so far; deterministic for a given rng state.
    pub fn pick(
        &mut self,
        snap: &Snapshot,
        kind: Kind,
        n: usize,
        rng: &mut ChaCha8Rng,
        ok: impl Fn(&[u8], &Node) -> bool,
    ) -> Vec<Vec<u8>> {
        let mut cands: Vec<Vec<u8>> = snap
            .nodes
            .iter()
            .filter(|(p, node)| {
                p.as_slice() != b"." && node.kind == kind && ok(p, node) && !self.conflicts(p)
            })
            .map(|(p, _)| p.clone())
            .collect();
        let mut out = Vec::new();
        while out.len() < n && !cands.is_empty() {
            let c = cands.swap_remove(rng.gen_range(0..cands.len()));
            if self.conflicts(&c) {
                continue;
            }
            self.take(&c);
            out.push(c);
        }
        out
    }
}

/// A temp dir on a tmpfs (`/dev/shm`) when there is a writable one, else in the default temp
/// dir. For tests that create tens of thousands of files, where the disk's file creation rate
/// (not the code under test) would dominate the run time.
pub fn fast_tempdir(prefix: &str) -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::Builder::new().prefix(prefix).tempdir_in(shm) {
            return t;
        }
    }
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}
