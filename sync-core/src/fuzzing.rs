//! Bodies of the fuzz targets in `fuzz/`. They live here so that `cargo test` runs the same
//! functions over the checked-in corpus (`fuzz/corpus/<target>/`, replayed by
//! `sync-core/tests/fuzz_corpus.rs`) on every CI run, and so they can reach private modules.
//!
//! Each body takes any bytes and must not panic, hang or allocate without bound; where an input
//! is accepted, it checks what acceptance promises (a decoded message re-encodes to itself, a
//! delta stays inside its base, a path has no `..`, a secret stays excluded whatever the user's
//! patterns say, a hostile session writes nothing outside its destination).

use std::fmt::Debug;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::entry::{self, Entry};
use crate::filter::{Filter, Verdict};
use crate::protocol::{self, Batch, FrameReader, Hello, Message, Summary, WireFileError};
use crate::{delta, receiver};

/// The body of one fuzz target.
pub type Body = fn(&[u8]);

/// The fuzz targets, by name: the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*/`.
pub const TARGETS: &[(&str, Body)] = &[
    ("frame_decode", frame_decode),
    ("message_decode", message_decode),
    ("handshake", handshake),
    ("delta_patch", delta_patch),
    ("delta_roundtrip", delta_roundtrip),
    ("signature", signature),
    ("rel_path", rel_path),
    ("filter_rules", filter_rules),
];

/// How many variants [`Message`] has: a message's first encoded byte is its variant.
pub const MESSAGE_VARIANTS: u8 = 14;

/// Decodes bytes as one frame body, and as a stream of frames (length headers, compressed
/// frames included); what decodes must re-encode to the same message.
pub fn frame_decode(data: &[u8]) {
    if let Ok(msg) = protocol::decode(data) {
        assert_round_trip(&msg);
    }
    let mut reader = FrameReader::new(data);
    for _ in 0..64 {
        match reader.recv() {
            Ok(Some(msg)) => assert_round_trip(&msg),
            Ok(None) | Err(_) => break,
        }
    }
}

fn assert_round_trip(msg: &Message) {
    if let Ok(frame) = protocol::encode(msg) {
        let again = protocol::decode(frame.get(4..).unwrap_or_default());
        assert_eq!(
            again.ok().as_ref(),
            Some(msg),
            "re-encoding changed the message"
        );
    }
}

/// The first byte picks a [`Message`] variant, the rest is its body; the rest is also decoded
/// alone as each struct that travels inside messages. Whatever decodes must re-encode to
/// itself.
pub fn message_decode(data: &[u8]) {
    let Some((&tag, rest)) = data.split_first() else {
        return;
    };
    let mut body = vec![tag % MESSAGE_VARIANTS];
    body.extend_from_slice(rest);
    if let Ok(msg) = protocol::decode(&body) {
        assert_round_trip(&msg);
    }
    round_trip::<Hello>(rest);
    round_trip::<Batch>(rest);
    round_trip::<Entry>(rest);
    round_trip::<Summary>(rest);
    round_trip::<WireFileError>(rest);
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    if let Ok((value, _)) = postcard::take_from_bytes::<T>(bytes) {
        let encoded = postcard::to_allocvec(&value).expect("what decoded encodes");
        let again: T = postcard::from_bytes(&encoded).expect("what encoded decodes");
        assert_eq!(again, value);
    }
}

/// A scratch directory removed on drop (fuzz bodies cannot use `tempfile`).
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("azsync-fuzz-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const CANARY: &[u8] = b"must not change";

/// Feeds the real receiver ([`receiver::serve`]) the sender's magic and then these bytes, as
/// the rest of a session from a sender (hello, rules, batches, file data), on an in-memory
/// stream. The destination the hello names is replaced by a fresh directory beside an
/// `outside` directory holding a canary file: afterwards, nothing but those two directories may
/// exist there, and the canary must be untouched, whatever links and paths the session held.
pub fn handshake(data: &[u8]) {
    let scratch = Scratch::new("handshake");
    let dest = scratch.0.join("dest");
    let outside = scratch.0.join("outside");
    std::fs::create_dir_all(&outside).expect("create outside");
    std::fs::write(outside.join("canary"), CANARY).expect("write the canary");
    let mut input = protocol::MAGIC.to_vec();
    input.extend_from_slice(&pin_dest(data, &dest));
    let _ = receiver::serve(&input[..], io::sink());
    let mut names: Vec<_> = std::fs::read_dir(&scratch.0)
        .expect("list the scratch directory")
        .map(|e| e.expect("a scratch entry").file_name())
        .collect();
    names.sort();
    names.retain(|n| n != "dest");
    assert_eq!(
        names,
        ["outside"],
        "the session wrote beside its destination"
    );
    let outside_names: Vec<_> = std::fs::read_dir(&outside)
        .expect("list outside")
        .map(|e| e.expect("an outside entry").file_name())
        .collect();
    assert_eq!(outside_names, ["canary"], "the session wrote outside");
    assert_eq!(
        std::fs::read(outside.join("canary")).expect("read the canary"),
        CANARY
    );
}

/// If the first frame of `data` is a hello, the same frame naming `dest`.
fn pin_dest(data: &[u8], dest: &Path) -> Vec<u8> {
    let Some(len) = data
        .get(..4)
        .and_then(|h| <[u8; 4]>::try_from(h).ok())
        .map(u32::from_le_bytes)
    else {
        return data.to_vec();
    };
    let end = 4usize.saturating_add(len as usize);
    let Some(Ok(Message::Hello(mut hello))) = data.get(4..end).map(protocol::decode) else {
        return data.to_vec();
    };
    hello.dest = dest.as_os_str().as_encoded_bytes().to_vec();
    let Ok(mut out) = protocol::encode(&Message::Hello(hello)) else {
        return data.to_vec();
    };
    out.extend_from_slice(data.get(end..).unwrap_or_default());
    out
}

/// Applies bytes as a delta, split in two pieces, to a fixed base: copies must stay inside it.
pub fn delta_patch(data: &[u8]) {
    let base: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut patcher = delta::Patcher::new();
    let mut out = Vec::new();
    let (a, b) = data.split_at(data.len() / 2);
    let fed = patcher
        .feed(&base, a, &mut out)
        .and_then(|()| patcher.feed(&base, b, &mut out));
    if fed.is_ok() && patcher.finish().is_ok() {
        assert_eq!(
            out.len() as u64,
            patcher.literal_bytes() + patcher.matched_bytes()
        );
    }
}

/// Splits bytes into a base and a new version (first byte: where; second: the segment size of
/// the sender's reads), and checks that the sender's segmented delta rebuilds the new version
/// from the base exactly.
pub fn delta_roundtrip(data: &[u8]) {
    let [cut, segment, rest @ ..] = data else {
        return;
    };
    let at = rest.len() * usize::from(*cut) / 255;
    let (base, new) = rest.split_at(at);
    let signature = delta::parse_signature(delta::signature(base)).expect("our own signature");
    let mut encoded = Vec::new();
    let mut seen = Vec::new();
    let segment = 1024 * (usize::from(*segment) + 1);
    let read = delta::diff_segments(
        &signature,
        &mut &new[..],
        &mut encoded,
        new.len() as u64,
        |d| seen.extend_from_slice(d),
        segment,
    )
    .expect("a delta of in-memory data");
    assert_eq!(read, new.len() as u64);
    assert_eq!(seen, new);
    let mut patcher = delta::Patcher::new();
    let mut out = Vec::new();
    for piece in encoded.chunks(777) {
        patcher.feed(base, piece, &mut out).expect("our own delta");
    }
    patcher.finish().expect("our own delta ends");
    assert!(out == new, "the delta does not rebuild the new version");
}

/// Bytes as a signature from a hostile receiver: refused, or usable. A usable one gives a delta
/// (of a fixed new version) whose copies stay inside the base the signature describes.
pub fn signature(data: &[u8]) {
    let Ok(signature) = delta::parse_signature(data.to_vec()) else {
        return;
    };
    let word = |i: usize| {
        data.get(i..i + 4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .map_or(0, u32::from_be_bytes) as usize
    };
    let (block, strong) = (word(4), word(8));
    let blocks = (data.len() - 12) / (4 + strong);
    let new: Vec<u8> = data.iter().copied().cycle().take(8192).collect();
    let mut encoded = Vec::new();
    delta::diff_reader(&signature, &mut &new[..], &mut encoded, 8192, |_| {})
        .expect("a delta against an accepted signature");
    let base_len = blocks * block;
    if base_len <= 4 << 20 {
        let base = vec![0u8; base_len];
        let mut patcher = delta::Patcher::new();
        let mut out = Vec::new();
        patcher
            .feed(&base, &encoded, &mut out)
            .expect("copies stay inside the signed base");
        patcher.finish().expect("the delta ends");
        assert_eq!(out.len(), new.len());
    }
}

/// Validates bytes as a directory path: what passes has no `..`, no empty component, no NUL
/// and no leading `/`.
pub fn rel_path(data: &[u8]) {
    if entry::validate_rel_path(data).is_ok() && !data.is_empty() {
        assert!(data.first() != Some(&b'/'));
        for c in data.split(|&b| b == b'/') {
            assert!(!c.is_empty() && c != b".." && c != b"." && !c.contains(&0));
        }
    }
}

/// Text as user patterns, then (after a NUL) paths: whatever the patterns, a path the secret
/// rules exclude is never included, and a path the user's patterns exclude stays excluded.
pub fn filter_rules(data: &[u8]) {
    static SECRETS: OnceLock<Filter> = OnceLock::new();
    let secrets = SECRETS.get_or_init(|| Filter::new::<&str>(&[], false).expect("secret rules"));
    let text = String::from_utf8_lossy(data);
    let (patterns, paths) = text
        .split_once('\0')
        .unwrap_or((&text, "a\nb/c\n.ssh/id_rsa"));
    let patterns: Vec<&str> = patterns.lines().take(64).collect();
    let Ok(with_secrets) = Filter::new(&patterns, false) else {
        return;
    };
    let user_only = Filter::new(&patterns, true).expect("the same patterns compile again");
    for path in paths.lines().take(64) {
        if entry::validate_rel_path(path.as_bytes()).is_err() || path.is_empty() {
            continue;
        }
        let path = Path::new(path);
        for is_dir in [false, true] {
            let verdict = with_secrets.check(path, is_dir);
            if secrets.check(path, is_dir) == Verdict::Secret {
                assert_ne!(verdict, Verdict::Include, "{path:?}: a secret got through");
            }
            if user_only.check(path, is_dir) == Verdict::Excluded {
                assert_eq!(verdict, Verdict::Excluded, "{path:?}");
            }
        }
    }
}

/// Reads a whole corpus file (for the replay test and the fuzz crate's tooling).
pub fn read_input(path: &Path) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut data)?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_variants_are_counted() {
        let last = protocol::encode(&Message::Fatal(String::new())).unwrap();
        assert_eq!(last[4], MESSAGE_VARIANTS - 1, "Fatal is the last variant");
    }

    /// Replays fixed inputs through each target body: real frames, edge cases, noise.
    #[test]
    fn fuzz_bodies_hold_on_fixed_inputs() {
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0xff; 64],
            b"../..".to_vec(),
            b"a/b/c".to_vec(),
            b"/etc/passwd".to_vec(),
            b"*.log\n!keep.log\n**/.ssh/\0a.log\nkeep.log\n.ssh/id_rsa\nx/.env".to_vec(),
            vec![0x72, 0x73, 0x02, 0x36, 0x45, 0, 0x10, 0],
            vec![
                0x72, 0x73, 0x02, 0x36, 0x54, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0,
            ],
            delta::signature(&[9u8; 3000]),
        ];
        for msg in [
            Message::EndOfTree,
            Message::BatchDone(3),
            Message::Fatal("x".into()),
            Message::Rules(vec!["*.o".into(), "!keep.o".into()]),
        ] {
            inputs.push(protocol::encode(&msg).unwrap()[4..].to_vec());
        }
        let mut x = 0x9e37_79b9u32;
        for len in 0..200 {
            inputs.push(
                (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect(),
            );
        }
        for input in &inputs {
            for (_, body) in TARGETS {
                body(input);
            }
        }
    }
}
