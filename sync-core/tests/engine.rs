//! The engine through its public API, in process.

use std::fs;
use std::path::Path;

use sync_core::SyncBuilder;

fn many_small_dirs(root: &Path, dirs: usize) {
    for d in 0..dirs {
        let dir = root.join(format!("d{d:04}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("f"), d.to_string()).unwrap();
    }
}

/// Regression: the sender recorded a batch only after sending it, so a receiver that answered
/// quickly (every entry up to date) named a batch the sender did not know yet, and the sync
/// failed with "the receiver stopped answering". Many tiny directories in a no-op sync made it
/// happen about half the time.
#[test]
fn reply_arriving_before_the_batch_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    many_small_dirs(&src, 400);
    SyncBuilder::new(&src, &dst).run().unwrap();
    for _ in 0..10 {
        let report = SyncBuilder::new(&src, &dst).run().unwrap();
        assert_eq!(report.files_up_to_date, 400);
        assert_eq!(report.files_transferred, 0);
    }
}

/// A window of one batch and a wide window reach the same result (the pipeline must not change
/// what is synced, only how fast).
#[test]
fn window_size_does_not_change_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    many_small_dirs(&src, 50);
    fs::write(src.join("d0001/big"), vec![3u8; 300_000]).unwrap();
    for window in [1, 2, 64] {
        let dst = tmp.path().join(format!("dst{window}"));
        let report = SyncBuilder::new(&src, &dst).window(window).run().unwrap();
        assert_eq!(report.files_transferred, 51, "window {window}");
        assert_eq!(fs::read(dst.join("d0001/big")).unwrap(), vec![3u8; 300_000]);
        assert_eq!(fs::read_to_string(dst.join("d0049/f")).unwrap(), "49");
    }
}

#[test]
fn a_bad_exclude_pattern_is_named_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let err = SyncBuilder::new(tmp.path(), tmp.path().join("dst"))
        .exclude("a{b")
        .run()
        .unwrap_err();
    assert!(err.to_string().contains("\"a{b\""), "{err}");
    assert!(!tmp.path().join("dst").exists());
}

#[test]
fn a_missing_exclude_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let err = SyncBuilder::new(tmp.path(), tmp.path().join("dst"))
        .exclude_from(tmp.path().join("nope.txt"))
        .run()
        .unwrap_err();
    assert!(err.to_string().contains("nope.txt"), "{err}");
}

/// An agent that dies is reported by how it died, not as a bare hang-up.
#[test]
fn a_killed_agent_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut agent = std::process::Command::new("sh");
    agent.args(["-c", "kill -9 $$"]);
    let err = SyncBuilder::new(tmp.path(), tmp.path().join("dst"))
        .agent(agent)
        .run()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("signal: 9"), "{text}");
}
