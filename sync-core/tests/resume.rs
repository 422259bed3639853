//! Resuming a large file after an interrupted run: a sender that hangs up halfway through a big
//! whole-file transfer leaves the received part under the temp name; the next run sends only a
//! delta against it, and no partial or temp file is left once the file is in place.

use std::path::Path;

mod peer;

use peer::{connect, Peer};
use rand::{RngCore, SeedableRng};
use sync_core::protocol::{Batch, Message, NeedKind, SessionOptions, DATA_CHUNK};
use sync_core::{Entry, Kind, Mtime, SyncBuilder};

const SIZE: usize = 8 << 20;

fn entries_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Sends the first `sent` bytes of `data` as file `big` and hangs up.
fn interrupted_transfer(dest: &Path, data: &[u8], sent: usize) {
    let mut peer = connect(dest, SessionOptions::default());
    let mtime = Mtime {
        sec: 1_700_000_000,
        nsec: 0,
    };
    peer.to
        .send(&Message::Batch(Batch {
            id: 1,
            dir: Vec::new(),
            dir_mode: 0o755,
            dir_mtime: mtime,
            first: true,
            last: true,
            entries: vec![Entry {
                name: b"big".to_vec(),
                kind: Kind::File,
                size: data.len() as u64,
                mtime,
                mode: 0o644,
                target: Vec::new(),
                hash: None,
            }],
        }))
        .unwrap();
    peer.to.flush().unwrap();
    match peer.from.expect().unwrap() {
        Message::Reply { needs, .. } => {
            assert_eq!(needs.len(), 1);
            assert_eq!(needs[0].kind, NeedKind::Whole);
        }
        other => panic!("expected a reply, got {other:?}"),
    }
    for chunk in data[..sent].chunks(DATA_CHUNK) {
        peer.to
            .send(&Message::FileChunk {
                batch: 1,
                index: 0,
                data: chunk.to_vec(),
            })
            .unwrap();
    }
    peer.to.flush().unwrap();
    let Peer { to, from, receiver } = peer;
    drop(to);
    let result = receiver.join().unwrap();
    drop(from);
    let err = result.expect_err("a hang-up mid-file is an error");
    assert!(err.is_hangup(), "{err}");
}

#[test]
fn a_rerun_resumes_a_large_file_cut_short_from_what_arrived() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let mut data = vec![0u8; SIZE];
    rand_chacha::ChaCha8Rng::seed_from_u64(7).fill_bytes(&mut data);
    std::fs::write(src.path().join("big"), &data).unwrap();

    interrupted_transfer(dst.path(), &data, SIZE / 2);
    // Nothing under the final name; the half that arrived waits under the temp name.
    let left = entries_in(dst.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with(".tmp"), "{left:?}");
    assert_eq!(
        std::fs::metadata(dst.path().join(&left[0])).unwrap().len(),
        (SIZE / 2) as u64
    );

    let report = SyncBuilder::new(src.path(), dst.path()).run().unwrap();
    assert_eq!(std::fs::read(dst.path().join("big")).unwrap(), data);
    assert_eq!(report.files_delta, 1, "{report:?}");
    assert!(
        report.bytes_matched >= (SIZE / 2 - (64 << 10)) as u64,
        "the half that arrived is reused: {report:?}"
    );
    assert!(
        report.bytes_literal <= (SIZE / 2 + (64 << 10)) as u64,
        "only the rest is sent: {report:?}"
    );
    assert_eq!(entries_in(dst.path()), ["big"], "no temp or partial left");
}

#[test]
fn a_small_cut_leaves_nothing_behind() {
    let dst = tempfile::tempdir().unwrap();
    let data = vec![b'x'; SIZE];
    // Less than PARTIAL_MIN arrived: not worth keeping.
    interrupted_transfer(dst.path(), &data, DATA_CHUNK);
    assert!(entries_in(dst.path()).is_empty());
}

#[test]
fn a_partial_that_no_longer_matches_still_converges() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let mut first = vec![0u8; SIZE];
    rand_chacha::ChaCha8Rng::seed_from_u64(1).fill_bytes(&mut first);
    interrupted_transfer(dst.path(), &first, SIZE / 2);
    // The source changed completely before the rerun: the partial is useless as a base.
    let mut second = vec![0u8; SIZE];
    rand_chacha::ChaCha8Rng::seed_from_u64(2).fill_bytes(&mut second);
    std::fs::write(src.path().join("big"), &second).unwrap();
    let report = SyncBuilder::new(src.path(), dst.path()).run().unwrap();
    assert_eq!(std::fs::read(dst.path().join("big")).unwrap(), second);
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(entries_in(dst.path()), ["big"]);
}
