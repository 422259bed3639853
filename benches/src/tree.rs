//! A deterministic, home-like source tree: planned from a seed, written with `std::fs`, and
//! changed in place for the scenarios that need a changed source (1% of files changed, one big
//! file edited, 1% of files deleted).
//!
//! The plan fixes every path, size, mode, mtime (to the nanosecond) and content seed, so the same
//! `--files` and `--seed` always give the same bytes on disk.

use std::collections::HashSet;
use std::fs::{self, File, FileTimes, Permissions};
use std::io::Write;
use std::ops::RangeInclusive;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rand::seq::index::sample;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Files placed in one directory.
const FILES_PER_DIR: RangeInclusive<usize> = 10..=30;
/// Deepest directory level below the root.
const MAX_DEPTH: usize = 5;
/// One "large" file (1–20 MB) per this many files, at least 1 and at most [`MAX_LARGE`]; the
/// first of them is exactly 20 MiB (the file the big-edit scenario edits).
const FILES_PER_LARGE: usize = 2_500;
const MAX_LARGE: usize = 20;
/// Share of the other files that are binaries (16–256 KB); the rest are text (100 B – 8 KB).
const BINARY_SHARE: f64 = 0.03;
/// One relative symlink (to a sibling file) per this many files.
const FILES_PER_SYMLINK: usize = 500;

const TEXT_BYTES: RangeInclusive<u64> = 100..=8 * 1024;
const BINARY_BYTES: RangeInclusive<u64> = 16 * 1024..=256 * 1024;
const LARGE_BYTES: RangeInclusive<u64> = 1024 * 1024..=20 * 1024 * 1024;

/// mtimes fall in 2024 (1704067200 = 2024-01-01T00:00:00Z).
const MTIME_BASE_SECS: u64 = 1_704_067_200;
const MTIME_SPAN_SECS: u64 = 365 * 86_400;

// Names are chosen to stay clear of azsync's built-in secret rules (`*.key`, `*.pem`, `.env`,
// `.ssh/`, `.aws/`, ...) and of the home profile's cache rules, so both tools copy every entry.
const TOP_LEVEL_DIRS: &[&str] = &[
    ".config",
    "projects",
    "Documents",
    ".local",
    "notes",
    "Downloads",
    "src",
    "Pictures",
    "work",
    ".vim",
    "Music",
    "scripts",
    "books",
    "archive",
];
const DIR_WORDS: &[&str] = &[
    "lib", "src", "tests", "docs", "assets", "build", "data", "misc", "old", "v2", "examples",
    "include", "tools", "share", "site", "drafts", "images", "fixtures", "vendor", "bench",
];
const DOTFILES: &[&str] = &[
    ".bashrc",
    ".profile",
    ".gitconfig",
    ".vimrc",
    ".tmux.conf",
    ".inputrc",
    ".zshrc",
    ".editorconfig",
];
const FILE_STEMS: &[&str] = &[
    "main", "util", "readme", "notes", "index", "config", "report", "draft", "mod", "test", "data",
    "table", "summary", "todo", "parser", "server", "client", "model", "view", "page",
];
const TEXT_EXTS: &[&str] = &[
    "txt", "md", "rs", "py", "json", "toml", "c", "h", "sh", "yaml", "js", "html", "csv", "log",
];
const BINARY_EXTS: &[&str] = &["bin", "png", "jpg", "o", "so", "pdf", "zip", "gz", "woff2"];
const LARGE_EXTS: &[&str] = &["tar", "mp4", "iso", "sqlite", "zst"];
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "for", "that", "with", "on", "as", "this", "be", "it",
    "by", "are", "from", "or", "an", "at", "fn", "let", "mut", "self", "return", "if", "else",
    "match", "struct", "impl", "pub", "use", "import", "def", "class", "const", "while", "loop",
    "value", "result", "error", "file", "path", "buffer", "index", "length", "count", "name", "{",
    "}", "(", ")", "=", "==", "+", "-", "*", "//", "#", "0", "1", "42", "true", "false",
];

/// What a file holds; it decides the size range and the content generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text, 100 B – 8 KB (log-uniform, so most are small).
    Text,
    /// Random bytes, 16–256 KB.
    Binary,
    /// Random bytes, 1–20 MB.
    Large,
}

/// One regular file of the plan.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Relative to the tree's root.
    pub path: PathBuf,
    pub kind: Kind,
    pub size: u64,
    pub mode: u32,
    pub mtime: SystemTime,
    /// Seeds the content generator.
    pub seed: u64,
}

/// The whole tree. Directories are listed parents first.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dirs: Vec<PathBuf>,
    pub files: Vec<FileSpec>,
    /// (link path, target), both relative; the target is a sibling file.
    pub symlinks: Vec<(PathBuf, PathBuf)>,
}

/// What [`Plan::edit_big`] did.
#[derive(Debug, Clone)]
pub struct Edit {
    /// The edited file, relative to the root.
    pub path: PathBuf,
    /// Its size after the edit.
    pub size: u64,
    /// Places edited.
    pub places: usize,
    /// Bytes overwritten or inserted.
    pub bytes: u64,
}

/// What [`Plan::change_some`] did.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub files: usize,
    /// Bytes of the changed files after the change.
    pub bytes: u64,
}

impl Plan {
    /// Plans a tree of `files` regular files from `seed`.
    pub fn generate(files: usize, seed: u64) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let large_count = if files == 0 {
            0
        } else {
            (files / FILES_PER_LARGE).clamp(1, MAX_LARGE).min(files)
        };
        let large: HashSet<usize> = sample(&mut rng, files, large_count).into_iter().collect();

        // Directories grow as a random recursive tree: each new one hangs under a uniformly
        // chosen directory that is not yet at MAX_DEPTH. The root ends up with a handful of
        // top-level folders and the levels below fan out, like a real home.
        let mut dir_paths: Vec<PathBuf> = vec![PathBuf::new()];
        let mut dir_depths: Vec<usize> = vec![0];
        let mut open_dirs: Vec<usize> = vec![0];
        let mut top_level = TOP_LEVEL_DIRS.iter();
        let mut specs = Vec::with_capacity(files);
        let mut next = 0;
        while next < files {
            let dir = if next == 0 {
                0
            } else {
                let parent = open_dirs[rng.gen_range(0..open_dirs.len())];
                let id = dir_paths.len();
                let name = match (parent, top_level.next()) {
                    (0, Some(name)) => (*name).to_string(),
                    _ => format!("{}-{id}", DIR_WORDS[rng.gen_range(0..DIR_WORDS.len())]),
                };
                let depth = dir_depths[parent] + 1;
                dir_paths.push(dir_paths[parent].join(name));
                dir_depths.push(depth);
                if depth < MAX_DEPTH {
                    open_dirs.push(id);
                }
                id
            };
            let count = rng.gen_range(FILES_PER_DIR).min(files - next);
            for _ in 0..count {
                let kind = if large.contains(&next) {
                    Kind::Large
                } else if rng.gen_bool(BINARY_SHARE) {
                    Kind::Binary
                } else {
                    Kind::Text
                };
                let (size, ext) = match kind {
                    Kind::Text => {
                        let (lo, hi) = (*TEXT_BYTES.start() as f64, *TEXT_BYTES.end() as f64);
                        let size = rng.gen_range(lo.ln()..=hi.ln()).exp().round() as u64;
                        (
                            size.clamp(*TEXT_BYTES.start(), *TEXT_BYTES.end()),
                            pick(&mut rng, TEXT_EXTS),
                        )
                    }
                    Kind::Binary => (rng.gen_range(BINARY_BYTES), pick(&mut rng, BINARY_EXTS)),
                    Kind::Large if specs.iter().all(|f: &FileSpec| f.kind != Kind::Large) => {
                        (*LARGE_BYTES.end(), pick(&mut rng, LARGE_EXTS))
                    }
                    Kind::Large => (rng.gen_range(LARGE_BYTES), pick(&mut rng, LARGE_EXTS)),
                };
                let name = match DOTFILES.get(next) {
                    Some(dotfile) if dir == 0 && kind == Kind::Text => (*dotfile).to_string(),
                    _ => format!("{}_{next:06}.{ext}", pick(&mut rng, FILE_STEMS)),
                };
                let mode = if ext == "sh" { 0o755 } else { 0o644 };
                let mtime = UNIX_EPOCH
                    + Duration::new(
                        MTIME_BASE_SECS + rng.gen_range(0..MTIME_SPAN_SECS),
                        rng.gen_range(0..1_000_000_000),
                    );
                specs.push(FileSpec {
                    path: dir_paths[dir].join(name),
                    kind,
                    size,
                    mode,
                    mtime,
                    seed: rng.next_u64(),
                });
                next += 1;
            }
        }

        let symlink_count = files / FILES_PER_SYMLINK;
        let mut symlinks = Vec::with_capacity(symlink_count);
        for i in 0..symlink_count {
            let target: &FileSpec = &specs[rng.gen_range(0..specs.len())];
            let dir = target.path.parent().unwrap_or(Path::new(""));
            let name = target
                .path
                .file_name()
                .map(PathBuf::from)
                .unwrap_or_default();
            symlinks.push((dir.join(format!("link-{i:05}")), name));
        }

        dir_paths.remove(0);
        Plan {
            dirs: dir_paths,
            files: specs,
            symlinks,
        }
    }

    /// Sum of the regular files' sizes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Roughly what one copy of the tree takes on tmpfs (every file and directory rounded up to
    /// whole 4 KiB pages).
    pub fn footprint(&self) -> u64 {
        let page = 4096;
        let files: u64 = self
            .files
            .iter()
            .map(|f| f.size.div_ceil(page) * page)
            .sum();
        files + (self.dirs.len() + self.symlinks.len()) as u64 * page
    }

    /// Writes the tree under `root` (created if missing), using every CPU.
    pub fn write(&self, root: &Path) -> Result<()> {
        fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        for dir in &self.dirs {
            let path = root.join(dir);
            fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        }
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(8);
        std::thread::scope(|scope| -> Result<()> {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || -> Result<()> {
                        let mut buf = Vec::new();
                        // Interleaved, so the few large files spread over the threads.
                        for file in self.files.iter().skip(t).step_by(threads) {
                            content(file.kind, file.seed, file.size as usize, &mut buf);
                            write_file(&root.join(&file.path), &buf, file.mode, file.mtime)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for worker in workers {
                worker.join().expect("tree writer thread panicked")?;
            }
            Ok(())
        })?;
        for (link, target) in &self.symlinks {
            let path = root.join(link);
            symlink(target, &path)
                .with_context(|| format!("creating symlink {}", path.display()))?;
        }
        for dir in std::iter::once(Path::new("")).chain(self.dirs.iter().map(PathBuf::as_path)) {
            let path = root.join(dir);
            fs::set_permissions(&path, Permissions::from_mode(0o755))
                .with_context(|| format!("chmod {}", path.display()))?;
        }
        Ok(())
    }

    /// Rewrites 1% of the files (at least one) under `root`, chosen from `seed`: a span of about
    /// 5% of each (at most 64 KiB) gets new bytes and 1–64 bytes are appended, so the size
    /// changes too; the mtime moves one day and one millisecond forward.
    pub fn change_some(&self, root: &Path, seed: u64) -> Result<Change> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6368_616e_6765);
        let count = self.files.len().div_ceil(100).min(self.files.len());
        let mut chosen = sample(&mut rng, self.files.len(), count).into_vec();
        chosen.sort_unstable();
        let mut bytes = 0;
        for index in chosen {
            let file = &self.files[index];
            let path = root.join(&file.path);
            let mut data =
                fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let span = (data.len() / 20).clamp(1, 64 * 1024).min(data.len());
            let start = rng.gen_range(0..=data.len() - span);
            let appended = rng.gen_range(1..=64);
            data.resize(data.len() + appended, 0);
            let end = data.len();
            fill(file.kind, &mut rng, &mut data[start..start + span]);
            fill(file.kind, &mut rng, &mut data[end - appended..]);
            let mtime = file.mtime + Duration::from_secs(86_400) + Duration::from_millis(1);
            write_file(&path, &data, file.mode, mtime)?;
            bytes += data.len() as u64;
        }
        Ok(Change {
            files: count,
            bytes,
        })
    }
}

impl Plan {
    /// The big-edit scenario's file: the first large one (exactly 20 MiB).
    pub fn big_file(&self) -> Option<&FileSpec> {
        self.files.iter().find(|f| f.kind == Kind::Large)
    }

    /// Edits [`big_file`](Self::big_file) under `root` in place, as a user's tool would: six
    /// spans of 0.5–1.5 KiB overwritten at places spread over the file and 100 bytes inserted
    /// in the middle (so that what follows shifts), and the mtime moved one day forward.
    pub fn edit_big(&self, root: &Path, seed: u64) -> Result<Edit> {
        let file = self.big_file().context("the plan has no large file")?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0062_6967_6564_6974);
        let path = root.join(&file.path);
        let mut data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        const PLACES: usize = 6;
        let mut bytes = 0u64;
        for place in 0..PLACES {
            let span = rng.gen_range(512..=1536).min(data.len());
            let slot = data.len() / PLACES;
            let start = (place * slot + rng.gen_range(0..slot.max(1))).min(data.len() - span);
            fill(file.kind, &mut rng, &mut data[start..start + span]);
            bytes += span as u64;
        }
        let mut inserted = vec![0u8; 100];
        fill(file.kind, &mut rng, &mut inserted);
        let middle = data.len() / 2;
        data.splice(middle..middle, inserted);
        bytes += 100;
        let mtime = file.mtime + Duration::from_secs(86_400);
        write_file(&path, &data, file.mode, mtime)?;
        Ok(Edit {
            path: file.path.clone(),
            size: data.len() as u64,
            places: PLACES + 1,
            bytes,
        })
    }

    /// Deletes 1% of the regular files (at least one) under `root`, chosen from `seed`, leaving
    /// the big-edit file alone. Returns how many.
    pub fn delete_some(&self, root: &Path, seed: u64) -> Result<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6465_6c65_7465);
        let big = self.big_file().map(|f| &f.path);
        let candidates: Vec<&FileSpec> =
            self.files.iter().filter(|f| Some(&f.path) != big).collect();
        let count = self.files.len().div_ceil(100).min(candidates.len());
        for index in sample(&mut rng, candidates.len(), count) {
            let path = root.join(&candidates[index].path);
            fs::remove_file(&path).with_context(|| format!("deleting {}", path.display()))?;
        }
        Ok(count)
    }
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[rng.gen_range(0..items.len())]
}

/// The content of a file of `kind`, `size` bytes, from `seed`, into `buf`.
pub fn content(kind: Kind, seed: u64, size: usize, buf: &mut Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    buf.clear();
    match kind {
        Kind::Text => {
            while buf.len() < size {
                let words = rng.gen_range(3..14);
                for w in 0..words {
                    if w > 0 {
                        buf.push(b' ');
                    }
                    buf.extend_from_slice(pick(&mut rng, WORDS).as_bytes());
                }
                buf.push(b'\n');
            }
            buf.truncate(size);
            if let Some(last) = buf.last_mut() {
                *last = b'\n';
            }
        }
        Kind::Binary | Kind::Large => {
            buf.resize(size, 0);
            rng.fill_bytes(buf);
        }
    }
}

/// New bytes in the style of `kind`: lowercase letters for text, random bytes otherwise.
fn fill(kind: Kind, rng: &mut ChaCha8Rng, out: &mut [u8]) {
    match kind {
        Kind::Text => out
            .iter_mut()
            .for_each(|b| *b = b'a' + rng.gen_range(0..26)),
        Kind::Binary | Kind::Large => rng.fill_bytes(out),
    }
}

fn write_file(path: &Path, data: &[u8], mode: u32, mtime: SystemTime) -> Result<()> {
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(data)
        .with_context(|| format!("writing {}", path.display()))?;
    file.set_permissions(Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))?;
    file.set_times(FileTimes::new().set_accessed(mtime).set_modified(mtime))
        .with_context(|| format!("setting times of {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_plan() {
        let a = Plan::generate(3_000, 7);
        let b = Plan::generate(3_000, 7);
        assert_eq!(a.files.len(), 3_000);
        assert_eq!(a.dirs, b.dirs);
        assert_eq!(a.total_bytes(), b.total_bytes());
        for (x, y) in a.files.iter().zip(&b.files) {
            assert_eq!(
                (&x.path, x.size, x.mtime, x.seed),
                (&y.path, y.size, y.mtime, y.seed)
            );
        }
        assert_ne!(Plan::generate(3_000, 8).total_bytes(), a.total_bytes());
    }

    #[test]
    fn plan_shape() {
        let plan = Plan::generate(50_000, 1);
        let depth = plan
            .dirs
            .iter()
            .map(|d| d.components().count())
            .max()
            .unwrap();
        assert!(depth <= MAX_DEPTH, "depth {depth}");
        let per_dir = plan.files.len() as f64 / (plan.dirs.len() + 1) as f64;
        assert!((15.0..=25.0).contains(&per_dir), "{per_dir} files per dir");
        let large = plan.files.iter().filter(|f| f.kind == Kind::Large).count();
        assert_eq!(large, MAX_LARGE);
        let unique: HashSet<_> = plan.files.iter().map(|f| &f.path).collect();
        assert_eq!(unique.len(), plan.files.len());
        for f in &plan.files {
            let range = match f.kind {
                Kind::Text => TEXT_BYTES,
                Kind::Binary => BINARY_BYTES,
                Kind::Large => LARGE_BYTES,
            };
            assert!(range.contains(&f.size), "{f:?}");
        }
    }

    #[test]
    fn content_is_deterministic_and_sized() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for kind in [Kind::Text, Kind::Binary] {
            content(kind, 99, 1234, &mut a);
            content(kind, 99, 1234, &mut b);
            assert_eq!(a.len(), 1234);
            assert_eq!(a, b);
            if kind == Kind::Text {
                assert_eq!(a.last(), Some(&b'\n'));
            }
        }
    }

    #[test]
    fn write_and_change() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("azsync-bench-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let plan = Plan::generate(300, 3);
        plan.write(&dir)?;
        let f = &plan.files[5];
        let meta = fs::metadata(dir.join(&f.path))?;
        assert_eq!(meta.len(), f.size);
        assert_eq!(meta.modified()?, f.mtime);
        assert_eq!(meta.permissions().mode() & 0o7777, f.mode);
        let change = plan.change_some(&dir, 3)?;
        assert_eq!(change.files, 3);
        let changed = plan
            .files
            .iter()
            .filter(|f| fs::metadata(dir.join(&f.path)).map(|m| m.len()).ok() != Some(f.size))
            .count();
        assert_eq!(changed, 3);

        let big = plan.big_file().unwrap().clone();
        assert_eq!(big.size, *LARGE_BYTES.end());
        let before = fs::read(dir.join(&big.path))?;
        let edit = plan.edit_big(&dir, 3)?;
        let after = fs::read(dir.join(&big.path))?;
        assert_eq!((edit.size, edit.places), (before.len() as u64 + 100, 7));
        assert_eq!(after.len() as u64, edit.size);
        // Small edits: most of the file is where it was (before the insertion) or shifted by
        // 100 bytes (after it).
        let half = before.len() / 2;
        let same_head = (0..half).filter(|&i| before[i] == after[i]).count();
        let same_tail = (half..before.len())
            .filter(|&i| before[i] == after[i + 100])
            .count();
        let changed = before.len() - same_head - same_tail;
        assert!(
            changed > 1000 && changed <= 6 * 1536,
            "{changed} bytes changed"
        );
        let deleted = plan.delete_some(&dir, 3)?;
        assert_eq!(deleted, 3);
        let missing = plan
            .files
            .iter()
            .filter(|f| !dir.join(&f.path).exists())
            .count();
        assert_eq!(missing, 3);
        assert!(dir.join(&big.path).exists());
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
