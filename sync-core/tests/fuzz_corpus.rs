//! The fuzz corpus, on every `cargo test`.
//!
//! - [`the_checked_in_corpus_replays`] runs every file of `fuzz/corpus/<target>/` through the
//!   target's body ([`sync_core::fuzzing::TARGETS`]), as `cargo fuzz run <target>` starts.
//! - [`recorded_sessions_replay`] records real syncs (a tee on both directions of the byte
//!   stream between the real sender and the real receiver), splits the streams into frames and
//!   the inputs of each target, and runs them through the bodies too. With
//!   `AZSYNC_RECORD_CORPUS=1` it also writes them into `fuzz/corpus/` (how the corpus was
//!   seeded: `AZSYNC_RECORD_CORPUS=1 cargo test -p sync-core --test fuzz_corpus`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use sync_core::fuzzing::{self, TARGETS};
use sync_core::protocol::{self, Message, NeedKind};
use sync_core::{Kind, SyncBuilder, Transport};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

#[test]
fn the_checked_in_corpus_replays() {
    let mut total = 0;
    let mut counts = Vec::new();
    for (name, body) in TARGETS {
        let dir = corpus_dir().join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: no corpus", dir.display());
        for file in &files {
            body(&fuzzing::read_input(file).unwrap());
        }
        total += files.len();
        counts.push(format!("{name} {}", files.len()));
    }
    eprintln!(
        "fuzz corpus: {total} inputs replayed ({})",
        counts.join(", ")
    );
}

/// Keeps every byte that passes, in order.
struct Tee<T> {
    inner: T,
    kept: Arc<Mutex<Vec<u8>>>,
}

impl<T: Read> Read for Tee<T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.kept.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl<T: Write> Write for Tee<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.kept.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Both directions of one real session.
struct Recording {
    /// Sender to receiver, magic included.
    up: Vec<u8>,
    /// Receiver to sender, magic included.
    down: Vec<u8>,
}

fn mkfifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

/// Runs `builder` against the real receiver in this process, with a tee on both directions:
/// the sender's "agent" is `sh` relaying its stdin and stdout through two FIFOs to here.
fn record(tmp: &Path, name: &str, builder: SyncBuilder) -> Recording {
    let a = tmp.join(format!("{name}-up"));
    let b = tmp.join(format!("{name}-down"));
    mkfifo(&a);
    mkfifo(&b);
    let mut relay = Command::new("sh");
    relay
        .args(["-c", r#"cat "$1" & exec cat > "$0""#])
        .arg(&a)
        .arg(&b);
    let sync = std::thread::spawn(move || builder.transport(Transport::Agent(relay)).run());
    let up = Arc::new(Mutex::new(Vec::new()));
    let down = Arc::new(Mutex::new(Vec::new()));
    let reader = Tee {
        inner: File::open(&a).unwrap(),
        kept: Arc::clone(&up),
    };
    let writer = Tee {
        inner: File::options().write(true).open(&b).unwrap(),
        kept: Arc::clone(&down),
    };
    sync_core::serve(reader, writer).unwrap();
    let report = sync.join().unwrap().unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let take = |v: Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *v.lock().unwrap());
    Recording {
        up: take(up),
        down: take(down),
    }
}

/// The frames of a stream (after its magic): header word and body.
fn frames(stream: &[u8]) -> Vec<(u32, &[u8])> {
    assert_eq!(&stream[..8], &protocol::MAGIC);
    let mut rest = &stream[8..];
    let mut out = Vec::new();
    while rest.len() >= 4 {
        let header = u32::from_le_bytes(rest[..4].try_into().unwrap());
        let len = (header & 0x7fff_ffff) as usize;
        out.push((header, &rest[4..4 + len]));
        rest = &rest[4 + len..];
    }
    assert!(rest.is_empty(), "a torn frame at the end of a recording");
    out
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// A small source: nested directories, text files, a 40 KB file (deltas), a symlink, a secret
/// and an excluded file.
fn source(root: &Path) {
    for d in ["a/b", "c"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("readme.md"), b"# notes\n").unwrap();
    std::fs::write(root.join("a/main.rs"), b"fn main() {}\n").unwrap();
    std::fs::write(root.join("a/b/deep.txt"), b"deep").unwrap();
    std::fs::write(root.join("c/empty"), b"").unwrap();
    std::fs::write(root.join("build.log"), b"excluded").unwrap();
    std::fs::write(root.join(".env"), b"TOKEN=secret").unwrap();
    let big: Vec<u8> = (0..40_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(root.join("big.dat"), big).unwrap();
    std::os::unix::fs::symlink("a/main.rs", root.join("link")).unwrap();
}

/// Edits for a second sync: a delta, an added file, a removed one.
fn change(root: &Path) {
    let mut big = std::fs::read(root.join("big.dat")).unwrap();
    big[20_000..20_100].fill(0xaa);
    std::fs::write(root.join("big.dat"), big).unwrap();
    std::fs::write(root.join("c/new.txt"), b"new").unwrap();
    std::fs::remove_file(root.join("a/b/deep.txt")).unwrap();
}

#[test]
fn recorded_sessions_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    source(&src);
    let base = || SyncBuilder::new(&src, &dst).exclude("*.log").itemize(true);
    let mut sessions = vec![("first", record(tmp.path(), "first", base()))];
    change(&src);
    sessions.push(("delta", record(tmp.path(), "delta", base().delete(true))));
    let dst2 = tmp.path().join("dst2");
    sessions.push((
        "compressed",
        record(
            tmp.path(),
            "compressed",
            SyncBuilder::new(&src, &dst2)
                .compress(Some(3))
                .checksum(true),
        ),
    ));

    // Inputs per target, keyed by content so each appears once.
    let mut inputs: BTreeMap<&str, BTreeMap<Vec<u8>, ()>> = BTreeMap::new();
    let mut add = |target: &'static str, data: Vec<u8>| {
        inputs.entry(target).or_default().insert(data, ());
    };
    let mut kinds = std::collections::BTreeSet::new();
    for (name, rec) in &sessions {
        add("handshake", rec.up[8..].to_vec());
        add("frame_decode", rec.up.clone());
        add("frame_decode", rec.down.clone());
        let mut deltas: BTreeMap<(u64, u32), Vec<u8>> = BTreeMap::new();
        let mut patterns = Vec::new();
        let mut paths = Vec::new();
        for (header, body) in frames(&rec.up).into_iter().chain(frames(&rec.down)) {
            if header >> 31 == 1 {
                add("frame_decode", [&header.to_le_bytes()[..], body].concat());
                continue;
            }
            add("frame_decode", body.to_vec());
            add("message_decode", body.to_vec());
            let msg = protocol::decode(body).unwrap_or_else(|e| panic!("{name}: {e}"));
            kinds.insert(
                format!("{msg:?}")
                    .split(['(', ' ', '{'])
                    .next()
                    .unwrap()
                    .to_string(),
            );
            match msg {
                Message::Batch(batch) => {
                    add("rel_path", batch.dir.clone());
                    for e in &batch.entries {
                        let mut path = batch.dir.clone();
                        if !path.is_empty() {
                            path.push(b'/');
                        }
                        path.extend_from_slice(&e.name);
                        if e.kind == Kind::Symlink {
                            add("rel_path", e.target.clone());
                        }
                        paths.push(String::from_utf8_lossy(&path).into_owned());
                        add("rel_path", path);
                    }
                }
                Message::Rules(more) => patterns.extend(more),
                Message::Reply { needs, .. } => {
                    for need in needs {
                        if let NeedKind::Delta { signature } = need.kind {
                            add("signature", signature);
                        }
                    }
                }
                Message::DeltaChunk { batch, index, data } => {
                    deltas.entry((batch, index)).or_default().extend(data);
                }
                _ => {}
            }
        }
        for (_, delta) in deltas {
            add("delta_patch", delta);
        }
        paths.extend([".ssh/id_rsa", "x/.env", "build.log", "a/b/c.pem"].map(String::from));
        patterns.extend(["!build.log", "a/**", "!.env"].map(String::from));
        add(
            "filter_rules",
            format!("{}\0{}", patterns.join("\n"), paths.join("\n")).into_bytes(),
        );
    }
    // The real base and new version of the delta file, as a roundtrip input (cut at 50%).
    let new = std::fs::read(src.join("big.dat")).unwrap();
    let old: Vec<u8> = (0..40_000u32).map(|i| (i * 13 % 251) as u8).collect();
    add("delta_roundtrip", [&[127u8, 3][..], &old, &new].concat());
    add(
        "delta_roundtrip",
        [&[200u8, 0][..], b"abcdefgh".repeat(900).as_slice()].concat(),
    );

    for kind in [
        "Hello",
        "Rules",
        "RulesEnd",
        "Batch",
        "EndOfTree",
        "Reply",
        "FileChunk",
        "DeltaChunk",
        "FileEnd",
        "BatchDone",
        "Summary",
    ] {
        assert!(kinds.contains(kind), "no {kind} recorded: {kinds:?}");
    }
    let record = std::env::var_os("AZSYNC_RECORD_CORPUS").is_some();
    let mut total = 0;
    for (name, body) in TARGETS {
        let set = inputs
            .get(name)
            .unwrap_or_else(|| panic!("no inputs for {name}"));
        for data in set.keys() {
            body(data);
            if record {
                let hash = blake3::hash(data).to_hex();
                write(&corpus_dir().join(name).join(&hash[..16]), data);
            }
        }
        total += set.len();
    }
    eprintln!("recorded sessions: {total} inputs replayed");
}
