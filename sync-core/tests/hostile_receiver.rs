//! A scripted receiver that asks the real sender for what an attacker would: batches and entries
//! that do not exist, directories and symlinks as files, hostile signatures, the same file again
//! and again, absurd counts, a source directory swapped for a symlink after the scan. Each must
//! be refused with a clear error (or, for a source that changed under the sender, a per-file
//! error), and the bytes the hostile receiver gets must never hold a secret, an excluded file or
//! anything outside the source tree.
//!
//! The real sender is driven through the public API ([`SyncBuilder`] with an agent command). The
//! "agent" is `sh` relaying its stdin and stdout through two FIFOs to this test, which plays the
//! receiver on the other ends.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sync_core::protocol::{
    self, Batch, FrameReader, FrameWriter, Hello, Message, Need, NeedKind, SessionOptions, Summary,
    PROTOCOL_VERSION,
};
use sync_core::{Kind, Report, SyncBuilder, Transport};

const PUBLIC: &[u8] = b"PUBLIC-NOTES-contents";
const SECRET_KEY: &[u8] = b"SECRET-KEY-7f3c9e1d-never-on-the-wire";
const SECRET_SSH: &[u8] = b"SECRET-SSH-0b8a44c2-never-on-the-wire";
const SECRET_ENV: &[u8] = b"SECRET-ENV-5d1e7a90-never-on-the-wire";
const EXCLUDED: &[u8] = b"EXCLUDED-LOG-2c6f0b3e-never-on-the-wire";
const OUTSIDE: &[u8] = b"OUTSIDE-TREE-9a4d2f11-never-on-the-wire";

/// What must never cross the wire, with a name for messages.
const NEVER: &[(&str, &[u8])] = &[
    ("the private key", SECRET_KEY),
    ("the ssh key", SECRET_SSH),
    ("the .env file", SECRET_ENV),
    ("the excluded file", EXCLUDED),
    ("the file outside the tree", OUTSIDE),
];

/// A source with public files, secrets, an excluded file, symlinks (one pointing out of the
/// tree) and a delta-sized file; and beside it, a directory outside the tree.
struct Scene {
    _tmp: tempfile::TempDir,
    tmp: PathBuf,
    src: PathBuf,
    outside: PathBuf,
}

fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let src = root.join("src");
    let outside = root.join("outside");
    for d in [src.join("sub"), src.join(".ssh"), outside.clone()] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(src.join("notes.txt"), PUBLIC).unwrap();
    std::fs::write(src.join("sub/a.txt"), b"PUBLIC-SUB").unwrap();
    std::fs::write(src.join("id_ed25519"), SECRET_KEY).unwrap();
    std::fs::write(src.join(".ssh/id_rsa"), SECRET_SSH).unwrap();
    std::fs::write(src.join(".env"), SECRET_ENV).unwrap();
    std::fs::write(src.join("build.log"), EXCLUDED).unwrap();
    std::fs::write(src.join("big.bin"), big()).unwrap();
    std::os::unix::fs::symlink("notes.txt", src.join("link")).unwrap();
    std::os::unix::fs::symlink("../outside/secret", src.join("outlink")).unwrap();
    std::fs::write(outside.join("secret"), OUTSIDE).unwrap();
    std::fs::write(outside.join("a.txt"), OUTSIDE).unwrap();
    Scene {
        _tmp: tmp,
        tmp: root,
        src,
        outside,
    }
}

/// 100 KB: large enough for a delta.
fn big() -> Vec<u8> {
    (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// Every byte read from the sender, kept for the "never on the wire" checks.
struct Tee {
    inner: File,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// The hostile receiver's end of a session with the real sender.
struct Hostile {
    from: FrameReader<Tee>,
    to: FrameWriter<File>,
    seen: Arc<Mutex<Vec<u8>>>,
    sync: JoinHandle<sync_core::Result<Report>>,
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

/// Starts a real sync of the scene's source (excluding `*.log`) whose agent is this test, and
/// reads the sender's magic and hello. The handshake is left to the caller.
fn start(s: &Scene, name: &str) -> Hostile {
    let a = s.tmp.join(format!("{name}-to-receiver"));
    let b = s.tmp.join(format!("{name}-from-receiver"));
    mkfifo(&a);
    mkfifo(&b);
    let mut relay = Command::new("sh");
    // stdin -> FIFO a (we read it); FIFO b (we write it) -> stdout.
    relay
        .args(["-c", r#"cat "$1" & exec cat > "$0""#])
        .arg(&a)
        .arg(&b);
    let builder = SyncBuilder::new(&s.src, s.tmp.join("dest-never-written"))
        .exclude("*.log")
        .transport(Transport::Agent(relay));
    let sync = std::thread::spawn(move || builder.run());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let from = FrameReader::new(Tee {
        inner: File::open(&a).unwrap(),
        seen: Arc::clone(&seen),
    });
    let to = FrameWriter::new(File::options().write(true).open(&b).unwrap());
    Hostile {
        from,
        to,
        seen,
        sync,
    }
}

fn our_hello() -> Message {
    Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        max_frame: protocol::MAX_FRAME as u32,
        dest: Vec::new(),
        options: SessionOptions::default(),
        window: 0,
    })
}

/// Starts a session and completes the handshake as an honest receiver would; returns the
/// batches the sender lists (it sends them all up front: the tree is smaller than its window).
fn connect(s: &Scene, name: &str) -> (Hostile, Vec<Batch>) {
    let mut h = start(s, name);
    h.from.read_magic().unwrap();
    assert!(matches!(h.from.expect().unwrap(), Message::Hello(_)));
    h.to.write_magic().unwrap();
    h.send(our_hello());
    let mut batches = Vec::new();
    loop {
        match h.from.expect().unwrap() {
            Message::Rules(_) | Message::RulesEnd => {}
            Message::Batch(b) => batches.push(b),
            Message::EndOfTree => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    (h, batches)
}

impl Hostile {
    fn send(&mut self, msg: Message) {
        // The sender may already have hung up on an earlier message: that is fine here.
        let _ = self.to.send(&msg).and_then(|()| self.to.flush());
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.to.flush();
        let _ = self.to.get_mut().write_all(bytes);
    }

    /// Reads whatever the sender still sends, hangs up, and returns how the sync ended, the
    /// messages read, and every byte the sender sent. Checks that no secret, excluded or
    /// out-of-tree content is among those bytes.
    fn end(mut self) -> (sync_core::Result<Report>, Vec<Message>, Vec<u8>) {
        let mut said = Vec::new();
        while let Ok(Some(msg)) = self.from.recv() {
            said.push(msg);
        }
        let Hostile { to, seen, sync, .. } = self;
        drop(to);
        let result = sync.join().unwrap();
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        for (what, bytes) in NEVER {
            assert!(
                !seen.windows(bytes.len()).any(|w| w == *bytes),
                "{what} was sent to the receiver"
            );
        }
        (result, said, seen)
    }

    /// Reads until the sender has finished sending entry `index` of `batch`.
    fn until_file_end(&mut self, batch: u64, index: u32) -> Vec<Message> {
        let mut got = Vec::new();
        loop {
            let msg = self.from.expect().unwrap();
            let done = matches!(
                msg,
                Message::FileEnd { batch: b, index: i, .. } | Message::FileFailed { batch: b, index: i }
                    if b == batch && i == index
            );
            got.push(msg);
            if done {
                return got;
            }
        }
    }
}

fn refused(result: &sync_core::Result<Report>) -> String {
    match result {
        Ok(report) => panic!("the sender must refuse, but the sync succeeded: {report:?}"),
        Err(e) => e.to_string(),
    }
}

fn batch_of<'a>(batches: &'a [Batch], dir: &[u8]) -> &'a Batch {
    batches
        .iter()
        .find(|b| b.dir == dir)
        .unwrap_or_else(|| panic!("no batch for {:?}", String::from_utf8_lossy(dir)))
}

fn index_of(batch: &Batch, name: &[u8]) -> u32 {
    batch
        .entries
        .iter()
        .position(|e| e.name == name)
        .unwrap_or_else(|| panic!("{:?} is not listed", String::from_utf8_lossy(name))) as u32
}

fn whole(index: u32) -> Need {
    Need {
        index,
        kind: NeedKind::Whole,
    }
}

fn reply(batch: u64, needs: Vec<Need>) -> Message {
    Message::Reply {
        batch,
        needs,
        changes: Vec::new(),
    }
}

fn delta(index: u32, signature: Vec<u8>) -> Need {
    Need {
        index,
        kind: NeedKind::Delta { signature },
    }
}

/// A well-formed signature of `base`, with the block size the protocol uses for it.
fn signature_of(base: &[u8]) -> Vec<u8> {
    fast_rsync::Signature::calculate(
        base,
        fast_rsync::SignatureOptions {
            block_size: 512,
            crypto_hash_size: 8,
        },
    )
    .into_serialized()
}

#[test]
fn a_receiver_that_asks_for_everything_gets_only_listed_files() {
    let s = scene();
    let (mut h, batches) = connect(&s, "all");
    // Secrets and excluded files are not even named.
    let names: Vec<String> = batches
        .iter()
        .flat_map(|b| &b.entries)
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect();
    for hidden in ["id_ed25519", "id_rsa", ".env", "build.log"] {
        assert!(
            !names.iter().any(|n| n == hidden),
            "{hidden} listed: {names:?}"
        );
    }
    // Ask for every regular file of every batch.
    let mut asked = 0;
    for b in &batches {
        let needs: Vec<Need> = (0..b.entries.len() as u32)
            .filter(|&i| b.entries[i as usize].kind == Kind::File)
            .map(whole)
            .collect();
        asked += needs.len();
        let last = needs.last().map(|n| n.index);
        h.send(reply(b.id, needs));
        if let Some(last) = last {
            // The hash and size the sender promises cover exactly the bytes it sent, and those
            // are the source file's.
            let mut data: std::collections::BTreeMap<u32, Vec<u8>> = Default::default();
            for msg in h.until_file_end(b.id, last) {
                match msg {
                    Message::FileChunk { index, data: d, .. } => {
                        data.entry(index).or_default().extend(d)
                    }
                    Message::FileEnd {
                        index, size, hash, ..
                    } => {
                        let sent = data.remove(&index).unwrap_or_default();
                        assert_eq!(size, sent.len() as u64);
                        assert_eq!(hash, *blake3::hash(&sent).as_bytes());
                        let name = &b.entries[index as usize].name;
                        let mut path = s.src.join(String::from_utf8_lossy(&b.dir).as_ref());
                        path.push(String::from_utf8_lossy(name).as_ref());
                        assert_eq!(sent, std::fs::read(&path).unwrap(), "{}", path.display());
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        h.send(Message::BatchDone(b.id));
    }
    assert_eq!(asked, 3, "notes.txt, big.bin, sub/a.txt");
    h.send(Message::Summary(Summary::default()));
    let (result, _, seen) = h.end();
    result.unwrap();
    assert!(seen.windows(PUBLIC.len()).any(|w| w == PUBLIC));
}

#[test]
fn unknown_batches_are_refused() {
    let s = scene();
    let (mut h, _) = connect(&s, "reply");
    h.send(reply(999, vec![whole(0)]));
    assert!(refused(&h.end().0).contains("receiver named unknown batch 999"));

    let (mut h, _) = connect(&s, "done");
    h.send(Message::BatchDone(12345));
    assert!(refused(&h.end().0).contains("receiver settled unknown batch 12345"));

    let (mut h, _) = connect(&s, "retry");
    h.send(Message::Retry {
        batch: u64::MAX,
        index: 0,
    });
    assert!(refused(&h.end().0).contains("unknown batch"));
}

#[test]
fn out_of_range_indexes_are_refused() {
    let s = scene();
    for (n, index) in [0usize, 1, u32::MAX as usize].into_iter().enumerate() {
        let (mut h, batches) = connect(&s, &format!("range{n}"));
        let root = batch_of(&batches, b"");
        let index = (root.entries.len() + index).min(u32::MAX as usize) as u32;
        h.send(reply(root.id, vec![whole(index)]));
        let text = refused(&h.end().0);
        assert!(
            text.contains(&format!("asked for entry {index} of a batch of")),
            "{text}"
        );
    }
}

#[test]
fn directories_and_symlinks_are_not_files_to_send() {
    let s = scene();
    for name in [&b"sub"[..], b"link", b"outlink", b".ssh"] {
        for as_delta in [false, true] {
            let tag = format!("kind-{}-{as_delta}", String::from_utf8_lossy(name));
            let (mut h, batches) = connect(&s, &tag);
            let root = batch_of(&batches, b"");
            let index = index_of(root, name);
            let need = if as_delta {
                delta(index, signature_of(b""))
            } else {
                whole(index)
            };
            h.send(reply(root.id, vec![need]));
            let text = refused(&h.end().0);
            assert!(
                text.contains("which is not a regular file"),
                "{tag}: {text}"
            );
        }
    }
}

#[test]
fn hostile_signatures_are_refused() {
    let s = scene();
    let good = signature_of(&big()[..50_000]);
    let with = |at: usize, value: u32| {
        let mut sig = good.clone();
        sig[at..at + 4].copy_from_slice(&value.to_be_bytes());
        sig
    };
    // 1,000,000 blocks of 512 bytes: within the frame limit, far more than any base has.
    let mut huge_count = good[..12].to_vec();
    huge_count.resize(12 + 1_000_000 * 12, 0x5a);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "too short"),
        ("zero block", with(4, 0), "block size 0"),
        ("huge block", with(4, u32::MAX), "block size 4294967295"),
        (
            "hash longer than the digest",
            with(8, 32),
            "strong hash of 32 bytes",
        ),
        ("zero-length hash", with(8, 0), "strong hash of 0 bytes"),
        ("wrong magic", with(0, 0xdead_beef), "invalid signature"),
        (
            "torn block",
            good[..good.len() - 3].to_vec(),
            "whole number",
        ),
        (
            "huge count",
            huge_count,
            "not a signature this protocol makes",
        ),
    ];
    for (what, signature, expect) in cases {
        let (mut h, batches) = connect(&s, &what.replace(' ', "-"));
        let root = batch_of(&batches, b"");
        h.send(reply(
            root.id,
            vec![delta(index_of(root, b"big.bin"), signature)],
        ));
        let text = refused(&h.end().0);
        assert!(
            text.contains("invalid signature") && text.contains(expect),
            "{what}: {text}"
        );
    }
}

#[test]
fn repeated_requests_are_refused() {
    let s = scene();
    // The same entry twice in one reply.
    let (mut h, batches) = connect(&s, "twice-in-one");
    let root = batch_of(&batches, b"");
    let i = index_of(root, b"notes.txt");
    h.send(reply(root.id, vec![whole(i), whole(i)]));
    assert!(refused(&h.end().0).contains("repeat an entry"));

    // A second reply for the same batch.
    let (mut h, batches) = connect(&s, "two-replies");
    let root = batch_of(&batches, b"");
    let i = index_of(root, b"notes.txt");
    h.send(reply(root.id, vec![whole(i)]));
    h.until_file_end(root.id, i);
    h.send(reply(root.id, vec![whole(i)]));
    assert!(refused(&h.end().0).contains(&format!("answered batch {} twice", root.id)));

    // "Send it again" for a file that went whole (only a delta can fail its check).
    let (mut h, batches) = connect(&s, "retry-whole");
    let root = batch_of(&batches, b"");
    let i = index_of(root, b"notes.txt");
    h.send(reply(root.id, vec![whole(i)]));
    h.until_file_end(root.id, i);
    h.send(Message::Retry {
        batch: root.id,
        index: i,
    });
    assert!(refused(&h.end().0).contains("was not sent as a delta"));

    // A delta, asked for again whole (fine, once), then again (refused).
    let (mut h, batches) = connect(&s, "retry-twice");
    let root = batch_of(&batches, b"");
    let i = index_of(root, b"big.bin");
    h.send(reply(
        root.id,
        vec![delta(i, signature_of(&big()[..60_000]))],
    ));
    let sent = h.until_file_end(root.id, i);
    assert!(sent.iter().any(|m| matches!(m, Message::DeltaChunk { .. })));
    // A delta's promised hash is that of the file it encodes.
    assert!(matches!(
        sent.last(),
        Some(Message::FileEnd { size: 100_000, hash, .. }) if *hash == *blake3::hash(&big()).as_bytes()
    ));
    h.send(Message::Retry {
        batch: root.id,
        index: i,
    });
    let again = h.until_file_end(root.id, i);
    assert!(again.iter().any(|m| matches!(m, Message::FileChunk { .. })));
    h.send(Message::Retry {
        batch: root.id,
        index: i,
    });
    assert!(refused(&h.end().0).contains("already sent again"));
}

#[test]
fn absurd_counts_and_sizes_in_frames_are_refused() {
    let s = scene();
    // A reply whose needs claim 4,294,967,295 entries, backed by nothing.
    let (mut h, _) = connect(&s, "count");
    let body = protocol::encode(&reply(0, Vec::new())).unwrap()[4..].to_vec();
    assert_eq!(
        body,
        [body[0], 0, 0, 0],
        "Reply{{0, [], []}} encodes as tag, 0, 0, 0"
    );
    let hostile = [body[0], 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0];
    h.send_raw(&(hostile.len() as u32).to_le_bytes());
    h.send_raw(&hostile);
    let _ = h.to.flush();
    assert!(refused(&h.end().0).contains("malformed frame"));

    // A frame header announcing 1 GiB.
    let (mut h, _) = connect(&s, "frame");
    h.send_raw(&(1u32 << 30).to_le_bytes());
    let _ = h.to.flush();
    assert!(refused(&h.end().0).contains("exceeds the limit"));
}

#[test]
fn a_receiver_that_does_not_speak_the_protocol_is_refused_at_the_handshake() {
    let s = scene();
    let mut h = start(&s, "banner");
    h.from.read_magic().unwrap();
    h.send_raw(b"Welcome to Ubuntu 24.04\n");
    assert!(refused(&h.end().0).contains("not an azsync session"));

    let mut h = start(&s, "version");
    h.from.read_magic().unwrap();
    h.to.write_magic().unwrap();
    h.send(Message::Hello(Hello {
        version: 99,
        max_frame: 1 << 20,
        dest: Vec::new(),
        options: SessionOptions::default(),
        window: 0,
    }));
    let text = refused(&h.end().0);
    assert!(
        text.contains("version 99") && text.contains(&format!("version {PROTOCOL_VERSION}")),
        "{text}"
    );

    let mut h = start(&s, "no-hello");
    h.from.read_magic().unwrap();
    h.to.write_magic().unwrap();
    h.send(Message::BatchDone(0));
    assert!(refused(&h.end().0).contains("unexpected BatchDone"));
}

/// After the scan, a source directory is swapped for a symlink to a directory outside the tree
/// (and a file for a symlink to a file outside): asked for the listed files, the sender opens
/// beneath the source root without following symlinks, so it fails those files instead of
/// sending what the links point at. The race is forced: the swap happens after the listing
/// reached the receiver and before the receiver asks.
#[test]
fn a_directory_swapped_for_a_symlink_after_the_scan_is_not_followed() {
    let s = scene();
    let (mut h, batches) = connect(&s, "swap");
    let root = batch_of(&batches, b"");
    let sub = batch_of(&batches, b"sub");
    std::fs::rename(s.src.join("sub"), s.tmp.join("sub-moved")).unwrap();
    std::os::unix::fs::symlink(&s.outside, s.src.join("sub")).unwrap();
    std::fs::remove_file(s.src.join("notes.txt")).unwrap();
    std::os::unix::fs::symlink(s.outside.join("secret"), s.src.join("notes.txt")).unwrap();
    assert_eq!(std::fs::read(s.src.join("sub/a.txt")).unwrap(), OUTSIDE);

    let notes = index_of(root, b"notes.txt");
    let a = index_of(sub, b"a.txt");
    h.send(reply(root.id, vec![whole(notes)]));
    let got = h.until_file_end(root.id, notes);
    assert!(
        matches!(got.last(), Some(Message::FileFailed { .. })),
        "{got:?}"
    );
    h.send(reply(sub.id, vec![whole(a)]));
    let got = h.until_file_end(sub.id, a);
    assert!(
        matches!(got.last(), Some(Message::FileFailed { .. })),
        "{got:?}"
    );
    for b in &batches {
        if b.id == root.id || b.id == sub.id {
            h.send(Message::BatchDone(b.id));
            continue;
        }
        h.send(reply(b.id, Vec::new()));
        h.send(Message::BatchDone(b.id));
    }
    h.send(Message::Summary(Summary::default()));
    let (result, _, _) = h.end();
    let report = result.unwrap();
    let failed: Vec<String> = report
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.path.display(), e.message))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed[0].starts_with("notes.txt: cannot open"),
        "{failed:?}"
    );
    assert!(
        failed[1].starts_with("sub/a.txt: cannot open"),
        "{failed:?}"
    );
}
