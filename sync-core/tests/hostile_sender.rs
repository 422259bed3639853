//! A scripted sender that sends what an attacker would, against the real receiver (`serve`).
//! Each case must end in a clear error or a per-file refusal: no panic, nothing written outside
//! the destination, and no half-written file under a final name.

use std::io::{PipeWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

mod peer;

use peer::{connect, Peer};
use sync_core::protocol::{
    Batch, FrameWriter, Hello, Message, NeedKind, SessionOptions, PROTOCOL_VERSION,
};
use sync_core::{Entry, Kind, Mtime};

const T: Mtime = Mtime {
    sec: 1_700_000_000,
    nsec: 5,
};

impl Peer {
    fn send(&mut self, msg: Message) {
        // The receiver may already have hung up on an earlier message: that is fine here.
        let _ = self.to.send(&msg).and_then(|()| self.to.flush());
    }

    /// Drops our end and returns how the receiver ended and what it last said.
    fn end(self) -> (sync_core::Result<()>, Vec<Message>) {
        let Peer {
            to,
            mut from,
            receiver,
        } = self;
        drop(to);
        let mut said = Vec::new();
        while let Ok(Some(msg)) = from.recv() {
            said.push(msg);
        }
        (receiver.join().unwrap(), said)
    }
}

fn file(name: &[u8], size: u64) -> Entry {
    Entry {
        name: name.to_vec(),
        kind: Kind::File,
        size,
        mtime: T,
        mode: 0o644,
        target: Vec::new(),
        hash: None,
    }
}

fn link(name: &[u8], target: &[u8]) -> Entry {
    Entry {
        kind: Kind::Symlink,
        target: target.to_vec(),
        ..file(name, 0)
    }
}

fn batch(id: u64, dir: &[u8], entries: Vec<Entry>) -> Message {
    Message::Batch(Batch {
        id,
        dir: dir.to_vec(),
        dir_mode: 0o755,
        dir_mtime: T,
        first: true,
        last: true,
        entries,
    })
}

fn fatal_text(result: &sync_core::Result<()>, said: &[Message]) -> String {
    let err = result.as_ref().expect_err("the receiver must refuse");
    assert!(
        said.iter().any(|m| matches!(m, Message::Fatal(_))),
        "the receiver must tell the sender why it stopped"
    );
    err.to_string()
}

/// Every path under `dir`, for "nothing was written" checks.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for item in std::fs::read_dir(dir).unwrap() {
        let item = item.unwrap();
        let p = item.path();
        out.push(p.display().to_string());
        if item.file_type().unwrap().is_dir() {
            out.extend(listing(&p));
        }
    }
    out.sort();
    out
}

struct Scene {
    _tmp: tempfile::TempDir,
    dest: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("dest");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&dest).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("victim"), b"untouched").unwrap();
    Scene {
        _tmp: tmp,
        dest,
        outside,
    }
}

impl Scene {
    fn assert_outside_untouched(&self) {
        assert_eq!(
            listing(&self.outside),
            vec![self.outside.join("victim").display().to_string()]
        );
        assert_eq!(
            std::fs::read(self.outside.join("victim")).unwrap(),
            b"untouched"
        );
    }
}

#[test]
fn dot_dot_and_absolute_directories_are_protocol_errors() {
    for dir in [&b"../outside"[..], b"/tmp", b"a/../../outside", b"a//b"] {
        let s = scene();
        let mut peer = connect(&s.dest, SessionOptions::default());
        peer.send(batch(0, dir, vec![file(b"victim", 3)]));
        let (result, said) = peer.end();
        let text = fatal_text(&result, &said);
        assert!(text.contains("protocol error"), "{text}");
        s.assert_outside_untouched();
        assert!(listing(&s.dest).is_empty());
    }
}

#[test]
fn bad_names_and_repeated_names_are_protocol_errors() {
    let cases: Vec<(Vec<Entry>, &str)> = vec![
        (vec![file(b"..", 1)], "not allowed"),
        (vec![file(b"a/b", 1)], "contains '/'"),
        (vec![file(b"", 1)], "empty file name"),
        (vec![file(b"x", 1), file(b"x", 1)], "not sorted or repeat"),
        (vec![file(b"b", 1), file(b"a", 1)], "not sorted or repeat"),
    ];
    for (entries, expect) in cases {
        let s = scene();
        let mut peer = connect(&s.dest, SessionOptions::default());
        peer.send(batch(0, b"", entries));
        let (result, said) = peer.end();
        let text = fatal_text(&result, &said);
        assert!(text.contains(expect), "{text} should say {expect}");
        assert!(listing(&s.dest).is_empty());
    }
}

#[test]
fn a_symlink_then_a_file_under_it_never_writes_outside() {
    let s = scene();
    let mut peer = connect(&s.dest, SessionOptions::default());
    peer.send(batch(
        0,
        b"",
        vec![link(b"a", s.outside.as_os_str().as_bytes())],
    ));
    // The same session then sends a directory listing "through" the link.
    peer.send(batch(1, b"a", vec![file(b"victim", 4)]));
    // Whatever the receiver asked for, answer as an attacker: overwrite data.
    peer.send(Message::FileChunk {
        batch: 1,
        index: 0,
        data: b"evil".to_vec(),
    });
    peer.send(Message::FileEnd {
        batch: 1,
        index: 0,
        size: 4,
        hash: *blake3::hash(b"evil").as_bytes(),
    });
    peer.send(Message::EndOfTree);
    let (_result, _said) = peer.end();
    s.assert_outside_untouched();
    assert!(std::fs::symlink_metadata(s.dest.join("a"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn data_that_was_not_asked_for_is_a_protocol_error() {
    let s = scene();
    let mut peer = connect(&s.dest, SessionOptions::default());
    peer.send(Message::FileChunk {
        batch: 9,
        index: 0,
        data: b"x".to_vec(),
    });
    let (result, said) = peer.end();
    assert!(fatal_text(&result, &said).contains("unknown batch 9"));

    let s = scene();
    let mut peer = connect(&s.dest, SessionOptions::default());
    peer.send(batch(0, b"", vec![file(b"f", 1)]));
    peer.send(Message::FileChunk {
        batch: 0,
        index: 7,
        data: b"x".to_vec(),
    });
    let (result, said) = peer.end();
    assert!(fatal_text(&result, &said).contains("not asked for"));
    assert!(!s.dest.join("f").exists());
}

/// Reads replies until the one for `batch`, returning its needs.
fn needs_of(peer: &mut Peer, batch: u64) -> Vec<sync_core::protocol::Need> {
    loop {
        match peer.from.expect().unwrap() {
            Message::Reply {
                batch: b, needs, ..
            } if b == batch => return needs,
            Message::Fatal(m) => panic!("receiver failed: {m}"),
            _ => {}
        }
    }
}

#[test]
fn a_wrong_hash_leaves_no_file_under_its_final_name() {
    let s = scene();
    let mut peer = connect(&s.dest, SessionOptions::default());
    peer.send(batch(0, b"", vec![file(b"f", 5)]));
    assert_eq!(needs_of(&mut peer, 0)[0].kind, NeedKind::Whole);
    peer.send(Message::FileChunk {
        batch: 0,
        index: 0,
        data: b"hello".to_vec(),
    });
    peer.send(Message::FileEnd {
        batch: 0,
        index: 0,
        size: 5,
        hash: [0; 32],
    });
    peer.send(Message::EndOfTree);
    let (result, said) = peer.end();
    result.unwrap();
    let Some(Message::Summary(summary)) = said.last() else {
        panic!("no summary: {said:?}")
    };
    assert_eq!(summary.errors.len(), 1, "{summary:?}");
    assert!(summary.errors[0].message.contains("blake3"));
    assert!(listing(&s.dest).is_empty(), "{:?}", listing(&s.dest));
}

#[test]
fn a_delta_with_out_of_range_blocks_is_refused_and_the_old_file_kept() {
    let s = scene();
    let old = vec![7u8; 100_000];
    std::fs::write(s.dest.join("f"), &old).unwrap();
    let mut peer = connect(&s.dest, SessionOptions::default());
    peer.send(batch(0, b"", vec![file(b"f", 200_000)]));
    let needs = needs_of(&mut peer, 0);
    assert!(matches!(needs[0].kind, NeedKind::Delta { .. }), "{needs:?}");
    // COPY_N4_N4: 150,000 bytes at offset 90,000 of a 100,000-byte base.
    let mut delta = 0x7273_0236u32.to_be_bytes().to_vec();
    delta.push(0x45 + 10);
    delta.extend_from_slice(&90_000u32.to_be_bytes());
    delta.extend_from_slice(&150_000u32.to_be_bytes());
    delta.push(0);
    peer.send(Message::DeltaChunk {
        batch: 0,
        index: 0,
        data: delta,
    });
    peer.send(Message::FileEnd {
        batch: 0,
        index: 0,
        size: 200_000,
        hash: [1; 32],
    });
    // The receiver asks for the whole file instead; an attacker gives up on it.
    loop {
        match peer.from.expect().unwrap() {
            Message::Retry { batch: 0, index: 0 } => break,
            Message::Fatal(m) => panic!("{m}"),
            _ => {}
        }
    }
    peer.send(Message::FileFailed { batch: 0, index: 0 });
    peer.send(Message::EndOfTree);
    let (result, said) = peer.end();
    result.unwrap();
    assert!(matches!(said.last(), Some(Message::Summary(s)) if s.delta_retries == 1));
    assert_eq!(std::fs::read(s.dest.join("f")).unwrap(), old);
    assert_eq!(listing(&s.dest).len(), 1);
}

#[test]
fn truncated_and_oversized_frames_end_the_session_cleanly() {
    let s = scene();
    let mut peer = connect(&s.dest, SessionOptions::default());
    peer.to.flush().unwrap();
    // A frame header announcing 3 GiB, then nothing.
    let raw = peer_raw(&mut peer);
    raw.write_all(&(3u32 << 30).to_le_bytes()).unwrap();
    raw.flush().unwrap();
    let (result, said) = peer.end();
    assert!(fatal_text(&result, &said).contains("exceeds the limit"));

    let s = scene();
    let mut peer = connect(&s.dest, SessionOptions::default());
    let raw = peer_raw(&mut peer);
    raw.write_all(&100u32.to_le_bytes()).unwrap();
    raw.write_all(&[1, 2, 3]).unwrap();
    let (result, said) = peer.end();
    assert!(fatal_text(&result, &said).contains("truncated frame"));
    assert!(listing(&s.dest).is_empty());
}

fn peer_raw(peer: &mut Peer) -> &mut PipeWriter {
    peer.to.flush().unwrap();
    peer.to.get_mut()
}

#[test]
fn a_version_mismatch_names_both_versions() {
    let s = scene();
    let (a_r, a_w) = std::io::pipe().unwrap();
    let (b_r, b_w) = std::io::pipe().unwrap();
    let receiver = std::thread::spawn(move || sync_core::serve(a_r, b_w));
    let mut to = FrameWriter::new(a_w);
    to.write_magic().unwrap();
    to.send(&Message::Hello(Hello {
        version: 99,
        max_frame: 1 << 20,
        dest: s.dest.as_os_str().as_bytes().to_vec(),
        options: SessionOptions::default(),
        window: 1,
    }))
    .unwrap();
    to.flush().unwrap();
    drop(to);
    drop(b_r);
    let err = receiver.join().unwrap().unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("version {PROTOCOL_VERSION}"))
            && err.to_string().contains("version 99"),
        "{err}"
    );
}

fn dir_entry(name: &[u8]) -> Entry {
    Entry {
        kind: Kind::Dir,
        mode: 0o755,
        ..file(name, 0)
    }
}

/// The race forced: the receiver has started writing `d/f` (its temp file is open in `d`) when
/// `d` is swapped for a symlink to a directory outside. The rest of the file still lands in the
/// directory the receiver opened (now renamed), never through the link.
#[test]
fn a_directory_swapped_for_a_symlink_mid_file_is_never_written_through() {
    let s = scene();
    let mut peer = connect(&s.dest, SessionOptions::default());
    peer.send(batch(0, b"", vec![dir_entry(b"d"), dir_entry(b"e")]));
    needs_of(&mut peer, 0);
    peer.send(batch(1, b"d", vec![file(b"victim", 10)]));
    assert_eq!(needs_of(&mut peer, 1)[0].kind, NeedKind::Whole);
    peer.send(Message::FileChunk {
        batch: 1,
        index: 0,
        data: b"hello".to_vec(),
    });
    // The reply to a later batch proves the chunk was taken (frames are handled in order).
    peer.send(batch(2, b"e", Vec::new()));
    needs_of(&mut peer, 2);
    std::fs::rename(s.dest.join("d"), s.dest.join("d-moved")).unwrap();
    std::os::unix::fs::symlink(&s.outside, s.dest.join("d")).unwrap();
    peer.send(Message::FileChunk {
        batch: 1,
        index: 0,
        data: b"world".to_vec(),
    });
    peer.send(Message::FileEnd {
        batch: 1,
        index: 0,
        size: 10,
        hash: *blake3::hash(b"helloworld").as_bytes(),
    });
    peer.send(Message::EndOfTree);
    let (result, _) = peer.end();
    result.unwrap();
    s.assert_outside_untouched();
    assert_eq!(
        std::fs::read(s.dest.join("d-moved/victim")).unwrap(),
        b"helloworld"
    );
}

/// The race forced the other way: `d` is swapped for a symlink after the receiver created it
/// and before its listing arrives. The receiver does not enter it: a per-path error, and data
/// sent for it anyway is refused.
#[test]
fn a_directory_swapped_for_a_symlink_before_its_listing_is_not_entered() {
    let s = scene();
    let mut peer = connect(&s.dest, SessionOptions::default());
    peer.send(batch(0, b"", vec![dir_entry(b"d")]));
    needs_of(&mut peer, 0);
    std::fs::remove_dir(s.dest.join("d")).unwrap();
    std::os::unix::fs::symlink(&s.outside, s.dest.join("d")).unwrap();
    peer.send(batch(1, b"d", vec![file(b"victim", 4)]));
    let needs = needs_of(&mut peer, 1);
    assert!(needs.is_empty(), "{needs:?}");
    peer.send(Message::FileChunk {
        batch: 1,
        index: 0,
        data: b"evil".to_vec(),
    });
    let (result, said) = peer.end();
    // The batch settled at once (nothing needed), so its id is already forgotten.
    let text = fatal_text(&result, &said);
    assert!(text.contains("data for unknown batch 1"), "{text}");
    s.assert_outside_untouched();
    assert!(std::fs::symlink_metadata(s.dest.join("d"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn the_same_directory_listed_twice_is_a_protocol_error() {
    let s = scene();
    let mut peer = connect(&s.dest, SessionOptions::default());
    peer.send(batch(0, b"", vec![file(b"a", 1)]));
    peer.send(batch(1, b"", vec![file(b"a", 1)]));
    let (result, said) = peer.end();
    assert!(fatal_text(&result, &said).contains("out of order"));
    s.assert_outside_untouched();

    // A file, then a listing "inside" it: nothing to enter, nothing written.
    let s = scene();
    let mut peer = connect(&s.dest, SessionOptions::default());
    peer.send(batch(0, b"", vec![link(b"a", b"x")]));
    needs_of(&mut peer, 0);
    peer.send(batch(1, b"a", vec![file(b"f", 1)]));
    assert!(needs_of(&mut peer, 1).is_empty());
    peer.send(Message::EndOfTree);
    let (result, said) = peer.end();
    result.unwrap();
    let Some(Message::Summary(summary)) = said.last() else {
        panic!("no summary: {said:?}")
    };
    assert!(
        summary.errors[0].message.contains("cannot open directory"),
        "{summary:?}"
    );
    assert_eq!(listing(&s.dest), [s.dest.join("a").display().to_string()]);
}

/// Deltas whose counts lie: a zero-length copy, a literal longer than what follows, a result
/// size of 2^64 - 1. Each fails the file's check (and a retry is asked); the old copy stays.
#[test]
fn deltas_with_absurd_counts_are_refused_and_the_old_file_kept() {
    let magic = 0x7273_0236u32.to_be_bytes();
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        (
            "zero-length copy",
            [&magic[..], &[0x45, 0, 0, 0]].concat(),
            10,
        ),
        (
            "literal of 2^64 - 1 bytes",
            [&magic[..], &[0x44], &[0xff; 8], b"abc"].concat(),
            3,
        ),
        (
            "result of 2^64 - 1 bytes",
            [&magic[..], &[3], b"abc", &[0]].concat(),
            u64::MAX,
        ),
    ];
    for (what, delta, size) in cases {
        let s = scene();
        let old = vec![7u8; 100_000];
        std::fs::write(s.dest.join("f"), &old).unwrap();
        let mut peer = connect(&s.dest, SessionOptions::default());
        peer.send(batch(0, b"", vec![file(b"f", 200_000)]));
        assert!(matches!(
            needs_of(&mut peer, 0)[0].kind,
            NeedKind::Delta { .. }
        ));
        peer.send(Message::DeltaChunk {
            batch: 0,
            index: 0,
            data: delta,
        });
        peer.send(Message::FileEnd {
            batch: 0,
            index: 0,
            size,
            hash: *blake3::hash(b"abc").as_bytes(),
        });
        loop {
            match peer.from.expect().unwrap() {
                Message::Retry { batch: 0, index: 0 } => break,
                Message::Fatal(m) => panic!("{what}: {m}"),
                _ => {}
            }
        }
        peer.send(Message::FileFailed { batch: 0, index: 0 });
        peer.send(Message::EndOfTree);
        let (result, _) = peer.end();
        result.unwrap();
        assert_eq!(std::fs::read(s.dest.join("f")).unwrap(), old, "{what}");
        assert_eq!(listing(&s.dest).len(), 1, "{what}");
        s.assert_outside_untouched();
    }
}

#[test]
fn a_batch_claiming_billions_of_entries_is_a_protocol_error() {
    let s = scene();
    let mut peer = connect(&s.dest, SessionOptions::default());
    let body = sync_core::protocol::encode(&batch(0, b"", Vec::new())).unwrap()[4..].to_vec();
    // The entry count is the last byte of an empty batch; claim 4,294,967,295 entries instead.
    let mut hostile = body[..body.len() - 1].to_vec();
    hostile.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let raw = peer_raw(&mut peer);
    raw.write_all(&(hostile.len() as u32).to_le_bytes())
        .unwrap();
    raw.write_all(&hostile).unwrap();
    let (result, said) = peer.end();
    assert!(fatal_text(&result, &said).contains("malformed frame"));
    assert!(listing(&s.dest).is_empty());
}
