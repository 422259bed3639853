//! Fault injection: the connection cut at many points of a sync (both directions of a local
//! agent's pipes, and a TCP connection to a real sshd through a proxy that drops it), the agent
//! killed with SIGKILL, the destination filesystem full, a source file growing, shrinking or
//! rewritten while it is sent, a destination file changed while it is the base of a delta.
//!
//! After each fault: no file under its final name is partial or wrong (it holds the source's
//! contents or the old ones), and a rerun leaves no temp file behind and converges to an exact
//! replica. Every fault is injected at a known point (a byte count, a progress callback), never
//! after a sleep.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::sshd::TestSshd;
use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sync_core::protocol::{
    Batch, FrameReader, FrameWriter, Hello, Message, NeedKind, SessionOptions, PROTOCOL_VERSION,
};
use sync_core::{Progress, Report, SyncBuilder};

const T0: u64 = 1_700_000_000;

/// A source (`new`) and the older version of it (`old`) that each destination starts from:
/// small files (a third changed), files changed in the middle (sent as deltas), a 3 MiB file
/// the destination lacks (sent whole, big enough to be resumed), a 2 MiB file changed (delta),
/// an added file, a file only the old tree has, and a symlink whose target changed.
struct Trees {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    old: PathBuf,
    new: PathBuf,
    old_snap: Snapshot,
    new_snap: Snapshot,
}

fn trees() -> Trees {
    let tmp = fast_tempdir("azsync-faults-");
    let root = tmp.path().to_path_buf();
    let (old, new) = (root.join("old"), root.join("new"));
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for tree in [&old, &new] {
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::create_dir_all(tree.join("c")).unwrap();
    }
    for i in 0..24usize {
        let rel = match i % 4 {
            0 => format!("f{i:02}"),
            1 => format!("a/f{i:02}"),
            2 => format!("a/b/f{i:02}"),
            _ => format!("c/f{i:02}"),
        };
        let body = random_bytes(&mut rng, 100 + i * 150);
        write_file(&old.join(&rel), &body, 0o644, at(T0, 0));
        if i % 3 == 0 {
            let changed = random_bytes(&mut rng, 90 + i * 170);
            write_file(&new.join(&rel), &changed, 0o600, at(T0 + 100, 7));
        } else {
            write_file(&new.join(&rel), &body, 0o644, at(T0, 0));
        }
    }
    for (rel, len) in [
        ("a/mid1", 300_000),
        ("c/mid2", 400_000),
        ("big-old", 2 << 20),
    ] {
        let body = random_bytes(&mut rng, len);
        write_file(&old.join(rel), &body, 0o644, at(T0, 0));
        let mut changed = body;
        changed[len / 2..len / 2 + 3000].copy_from_slice(&random_bytes(&mut rng, 3000));
        write_file(&new.join(rel), &changed, 0o644, at(T0 + 200, 9));
    }
    write_file(
        &new.join("big-new"),
        &random_bytes(&mut rng, 3 << 20),
        0o644,
        at(T0 + 300, 0),
    );
    write_file(&new.join("a/b/added"), b"added", 0o644, at(T0 + 5, 0));
    write_file(
        &old.join("c/gone"),
        b"only in the old tree",
        0o644,
        at(T0, 0),
    );
    make_symlink("a/f01", &new.join("link"));
    make_symlink("c/f03", &old.join("link"));
    for tree in [&old, &new] {
        for dir in ["a/b", "a", "c", ""] {
            set_dir_meta(&tree.join(dir), 0o755, at(T0 + 1000, 0));
        }
    }
    // The old tree's extra file stays at the destination (no --delete): the source gets a copy
    // of it, so that "converged" means an exact replica.
    write_file(
        &new.join("c/gone"),
        b"only in the old tree",
        0o644,
        at(T0, 0),
    );
    set_dir_meta(&new.join("c"), 0o755, at(T0 + 1000, 0));
    Trees {
        _tmp: tmp,
        old_snap: Snapshot::take(&old),
        new_snap: Snapshot::take(&new),
        root,
        old,
        new,
    }
}

impl Trees {
    /// A destination holding the old tree.
    fn dest(&self, name: &str) -> PathBuf {
        let dst = self.root.join(name);
        let report = SyncBuilder::new(&self.old, &dst).run().unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        dst
    }

    /// Every file under its final name in `dst` holds the source's contents or the old ones.
    fn assert_nothing_partial(&self, dst: &Path, what: &str) {
        let got = Snapshot::take(dst);
        for (rel, node) in &got.nodes {
            if node.kind != Kind::File || is_leftover(rel) {
                continue;
            }
            let same = |s: &Snapshot| {
                s.get(rel).is_some_and(|n| {
                    n.kind == Kind::File && (n.size, n.hash) == (node.size, node.hash)
                })
            };
            assert!(
                same(&self.new_snap) || same(&self.old_snap),
                "{what}: {} holds neither the source's contents nor the old ones",
                show(rel)
            );
        }
    }

    /// A rerun succeeds, leaves no temp file and gives an exact replica.
    fn converge(&self, dst: &Path, what: &str) {
        let report = SyncBuilder::new(&self.new, dst)
            .agent(agent())
            .run()
            .unwrap_or_else(|e| panic!("{what}: the rerun failed: {e}"));
        assert!(report.errors.is_empty(), "{what}: {:?}", report.errors);
        assert_eq!(leftovers(dst), Vec::<String>::new(), "{what}: left behind");
        assert_same(
            &self.new_snap,
            &Snapshot::take(dst),
            Compare::Exact,
            &format!("{what}: after the rerun"),
        );
    }
}

/// A temp (`.azsync-*.tmp`) or resumable partial (`.azsync-*.partial`) file.
fn is_leftover(rel: &[u8]) -> bool {
    rel.rsplit(|&b| b == b'/')
        .next()
        .is_some_and(|n| n.starts_with(b".azsync-"))
}

fn leftovers(dst: &Path) -> Vec<String> {
    Snapshot::take(dst)
        .nodes
        .keys()
        .filter(|rel| is_leftover(rel))
        .map(|rel| show(rel))
        .collect()
}

/// The real agent, as a local sync runs it.
fn agent() -> Command {
    let mut c = Command::new(azsync_bin());
    c.args(["agent", "--stdio"]);
    c
}

/// A bash script as the agent command, with `$0` the azsync binary. Scripts `exec` the agent,
/// so the process the engine waits for (and kills) is the agent itself.
fn agent_script(script: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg("-c").arg(script).arg(azsync_bin());
    c
}

/// Runs `action` once, at the `at`-th (from 0) progress report of sent data of at least
/// `min_bytes` bytes: a known point in the sender's stream.
struct Hook {
    min_bytes: u64,
    at: u64,
    calls: AtomicU64,
    action: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Hook {
    fn new(min_bytes: u64, at: u64, action: impl FnOnce() + Send + 'static) -> Arc<Hook> {
        Arc::new(Hook {
            min_bytes,
            at,
            calls: AtomicU64::new(0),
            action: Mutex::new(Some(Box::new(action))),
        })
    }

    fn fired(&self) -> bool {
        self.action.lock().unwrap().is_none()
    }
}

impl Progress for Hook {
    fn transferred(&self, bytes: u64) {
        if bytes < self.min_bytes {
            return;
        }
        if self.calls.fetch_add(1, Ordering::SeqCst) == self.at {
            if let Some(action) = self.action.lock().unwrap().take() {
                action();
            }
        }
    }
}

/// Cut points spread over a stream of `total` bytes, with the edges of the handshake.
fn cut_points(total: u64, spread: u64) -> Vec<u64> {
    let mut points = vec![0, 1, 7, 8, 9, 12, 60];
    points.extend((1..spread).map(|k| total * k / spread));
    points.push(total - 1);
    points.sort_unstable();
    points.dedup();
    points.retain(|&n| n < total);
    points
}

#[test]
fn a_connection_cut_at_any_point_loses_nothing() {
    let t = trees();
    let baseline = t.dest("baseline");
    let report = SyncBuilder::new(&t.new, &baseline)
        .agent(agent())
        .run()
        .unwrap();
    assert!(
        report.errors.is_empty() && report.files_delta >= 3,
        "{report:?}"
    );
    let mut cuts = 0;
    for (direction, total) in [
        ("sender to agent", report.bytes_sent),
        ("agent to sender", report.bytes_received),
    ] {
        for n in cut_points(total, 16) {
            let what = format!("cut {direction} after {n} of {total} bytes");
            let dst = t.dest(&format!("cut-{}-{n}", cuts));
            // dd passes on exactly n bytes, then ends that direction of the stream.
            let dd = format!("exec dd bs=65536 iflag=count_bytes count={n} 2>/dev/null");
            let script = if direction == "sender to agent" {
                format!(r#"exec "$0" agent --stdio < <({dd})"#)
            } else {
                format!(r#"exec "$0" agent --stdio > >({dd})"#)
            };
            let result = SyncBuilder::new(&t.new, &dst)
                .agent(agent_script(&script))
                .run();
            assert!(
                result.is_err(),
                "{what}: the sync cannot succeed: {result:?}"
            );
            t.assert_nothing_partial(&dst, &what);
            t.converge(&dst, &what);
            cuts += 1;
        }
    }
    eprintln!("faults: {cuts} connection cuts, files lost or corrupted: 0");
}

/// The agent is killed with SIGKILL (no cleanup at all) at points spread over the sync.
#[test]
fn the_agent_killed_mid_sync_loses_nothing() {
    let t = trees();
    // How many data reports a whole sync makes.
    let counter = Hook::new(0, u64::MAX, || {});
    let dst = t.dest("count");
    SyncBuilder::new(&t.new, &dst)
        .agent(agent())
        .progress(counter.clone())
        .run()
        .unwrap();
    let reports = counter.calls.load(Ordering::SeqCst);
    assert!(reports >= 10, "{reports}");
    let mut kills = 0;
    for at in (0..reports).step_by((reports as usize / 8).max(1)) {
        let what = format!("agent killed at data report {at} of {reports}");
        let dst = t.dest(&format!("kill-{at}"));
        let pid_file = t.root.join(format!("kill-{at}.pid"));
        let pid_path = pid_file.clone();
        let hook = Hook::new(0, at, move || {
            let pid = std::fs::read_to_string(&pid_path).unwrap();
            let status = Command::new("kill")
                .args(["-KILL", pid.trim()])
                .status()
                .unwrap();
            assert!(status.success(), "kill -KILL {pid}");
        });
        let script = format!(
            r#"echo $$ > '{}'; exec "$0" agent --stdio"#,
            pid_file.display()
        );
        let result = SyncBuilder::new(&t.new, &dst)
            .agent(agent_script(&script))
            .progress(hook.clone())
            .run();
        assert!(hook.fired(), "{what}: never reached");
        assert!(
            result.is_err(),
            "{what}: a killed agent cannot finish the sync"
        );
        t.assert_nothing_partial(&dst, &what);
        t.converge(&dst, &what);
        kills += 1;
    }
    eprintln!("faults: agent killed {kills} times, files lost or corrupted: 0");
}

/// A small tmpfs, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "azsync-full"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount(8): {e}"));
        assert!(
            out.status.success(),
            "this test fills a destination filesystem: it mounts a {size} tmpfs at {}, which \
             needs root (or CAP_SYS_ADMIN) and mount(8); run the tests as root or in a container \
             allowed to mount. mount said: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Mount(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {} to {size}", self.0.display());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_destination_fails_files_not_the_tree() {
    let t = trees();
    let mount = Mount::tmpfs(&t.root.join("full"), "2m");
    let dst = mount.0.join("dst");
    let report = SyncBuilder::new(&t.new, &dst)
        .agent(agent())
        .run()
        .expect("a full disk fails files, not the session");
    assert!(!report.errors.is_empty(), "2 MiB cannot hold the tree");
    assert!(
        report
            .errors
            .iter()
            .all(|e| e.message.contains("No space left on device")),
        "{:?}",
        report.errors
    );
    // What did land is whole, and nothing half-written waits under a temp name.
    t.assert_nothing_partial(&dst, "disk full");
    assert_eq!(leftovers(&dst), Vec::<String>::new());
    mount.resize("64m");
    t.converge(&dst, "disk full, then room");
    eprintln!(
        "faults: destination full ({} files failed), files lost or corrupted: 0",
        report.errors.len()
    );
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Grow,
    Shrink,
    /// Same size, mtime put back: only ctime tells.
    RewriteKeepingMtime,
}

/// A source file changes while it is sent (whole, or as a delta against the destination's
/// copy): the file is reported as failed, the destination keeps what it had (nothing, or the old
/// copy), and the next run sends the new version.
fn source_changed_while_sent(change: Change, as_delta: bool) {
    let what = format!(
        "{change:?} while sent as {}",
        if as_delta { "a delta" } else { "a whole file" }
    );
    let tmp = fast_tempdir("azsync-changed-");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // A delta reads 4 MiB before its first report; a whole file reports every 256 KiB.
    let len = if as_delta { 5 << 20 } else { 1 << 20 };
    let body = random_bytes(&mut rng, len);
    let old: Vec<u8> = body.iter().map(|b| b ^ 1).collect();
    if as_delta {
        write_file(&dst.join("big"), &old, 0o644, at(T0, 0));
    }
    write_file(&src.join("big"), &body, 0o644, at(T0 + 10, 0));
    write_file(&src.join("small"), b"small", 0o644, at(T0, 0));
    let path = src.join("big");
    let hook = Hook::new(256 << 10, 0, move || match change {
        Change::Grow => append(&path, &[7u8; 100_000], at(T0 + 20, 0)),
        Change::Shrink => truncate(&path, 100_000, at(T0 + 20, 0)),
        Change::RewriteKeepingMtime => rewrite_range(&path, 0, &[0u8; 4096], at(T0 + 10, 0)),
    });
    let report: Report = SyncBuilder::new(&src, &dst)
        .agent(agent())
        .progress(hook.clone())
        .run()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(hook.fired(), "{what}: never reached");
    let errors: Vec<String> = report
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.path.display(), e.message))
        .collect();
    assert_eq!(
        errors,
        ["big: changed while being sent; not updated"],
        "{what}"
    );
    if as_delta {
        assert_eq!(std::fs::read(dst.join("big")).unwrap(), old, "{what}");
    } else {
        assert!(!dst.join("big").exists(), "{what}");
    }
    assert_eq!(std::fs::read(dst.join("small")).unwrap(), b"small");
    assert_eq!(leftovers(&dst), Vec::<String>::new(), "{what}");
    let report = SyncBuilder::new(&src, &dst).agent(agent()).run().unwrap();
    assert!(report.errors.is_empty(), "{what}: {:?}", report.errors);
    assert_eq!(leftovers(&dst), Vec::<String>::new(), "{what}");
    assert_replica(&src, &dst);
}

#[test]
fn a_source_file_growing_while_sent_is_not_committed() {
    source_changed_while_sent(Change::Grow, false);
    source_changed_while_sent(Change::Grow, true);
}

#[test]
fn a_source_file_shrinking_while_sent_is_not_committed() {
    source_changed_while_sent(Change::Shrink, false);
    source_changed_while_sent(Change::Shrink, true);
}

#[test]
fn a_source_file_rewritten_while_sent_is_not_committed() {
    source_changed_while_sent(Change::RewriteKeepingMtime, false);
    source_changed_while_sent(Change::RewriteKeepingMtime, true);
}

/// Someone rewrites the destination's copy after its signature was taken and before the delta
/// against it is applied: the result fails its blake3 check and the file is sent again whole.
#[test]
fn a_destination_file_changed_during_the_sync_is_still_replaced_by_the_source() {
    let tmp = fast_tempdir("azsync-dest-changed-");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&dst).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let body = random_bytes(&mut rng, 1 << 20);
    let mut old = body.clone();
    old[1000..2000].fill(0);
    write_file(&src.join("big"), &body, 0o644, at(T0 + 10, 0));
    write_file(&dst.join("big"), &old, 0o644, at(T0, 0));
    let base = dst.join("big");
    // Runs while the sender reads the file, before the delta's first byte is sent, so before
    // the receiver opens its copy to apply the delta.
    let hook = Hook::new(256 << 10, 0, move || {
        let scrambled: Vec<u8> = std::fs::read(&base).unwrap().iter().map(|b| !b).collect();
        std::fs::write(&base, scrambled).unwrap();
    });
    let report = SyncBuilder::new(&src, &dst)
        .agent(agent())
        .progress(hook.clone())
        .run()
        .unwrap();
    assert!(hook.fired());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.delta_retries, 1, "{report:?}");
    assert_eq!(leftovers(&dst), Vec::<String>::new());
    assert_replica(&src, &dst);
}

/// The destination's copy is truncated after the agent opened it as the base of a delta and
/// before the delta copies from it. A scripted sender forces the order: the first delta chunk
/// makes the agent open the base; the reply to a later batch proves it did; then the file is
/// truncated and a copy from its old middle is sent. The agent must end the file with an error
/// (or a retry), not die of SIGBUS.
#[test]
fn a_delta_base_truncated_while_the_agent_reads_it_does_not_kill_the_agent() {
    let tmp = fast_tempdir("azsync-base-truncated-");
    let dst = tmp.path().join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    let old: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    write_file(&dst.join("f"), &old, 0o644, at(T0, 0));
    let mut child = agent()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to = FrameWriter::new(child.stdin.take().unwrap());
    let mut from = FrameReader::new(child.stdout.take().unwrap());
    to.write_magic().unwrap();
    to.send(&Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        max_frame: 1 << 20,
        dest: dst.as_os_str().as_encoded_bytes().to_vec(),
        options: SessionOptions::default(),
        window: 4,
    }))
    .unwrap();
    to.send(&Message::RulesEnd).unwrap();
    let entry = |name: &[u8], kind: sync_core::Kind, size: u64| sync_core::Entry {
        name: name.to_vec(),
        kind,
        size,
        mtime: sync_core::Mtime {
            sec: T0 as i64 + 5,
            nsec: 0,
        },
        mode: 0o755,
        target: Vec::new(),
        hash: None,
    };
    let batch = |id: u64, dir: &[u8], entries| {
        Message::Batch(Batch {
            id,
            dir: dir.to_vec(),
            dir_mode: 0o755,
            dir_mtime: sync_core::Mtime {
                sec: T0 as i64,
                nsec: 0,
            },
            first: true,
            last: true,
            entries,
        })
    };
    to.send(&batch(
        0,
        b"",
        vec![
            entry(b"d", sync_core::Kind::Dir, 0),
            entry(b"f", sync_core::Kind::File, 50_000),
        ],
    ))
    .unwrap();
    to.flush().unwrap();
    from.read_magic().unwrap();
    let reply_to = |from: &mut FrameReader<_>, id: u64| loop {
        match from.expect().unwrap() {
            Message::Reply { batch, needs, .. } if batch == id => return needs,
            Message::Hello(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    let needs = reply_to(&mut from, 0);
    assert!(
        matches!(needs.as_slice(), [n] if n.index == 1 && matches!(n.kind, NeedKind::Delta { .. })),
        "{needs:?}"
    );
    // The magic alone: the agent starts the file and opens its copy as the base.
    to.send(&Message::DeltaChunk {
        batch: 0,
        index: 1,
        data: 0x7273_0236u32.to_be_bytes().to_vec(),
    })
    .unwrap();
    to.send(&batch(1, b"d", Vec::new())).unwrap();
    to.flush().unwrap();
    reply_to(&mut from, 1);
    std::fs::File::options()
        .write(true)
        .open(dst.join("f"))
        .unwrap()
        .set_len(0)
        .unwrap();
    // COPY_N4_N4: 50,000 bytes at offset 100,000, then END.
    let mut copy = vec![0x45 + 10];
    copy.extend_from_slice(&100_000u32.to_be_bytes());
    copy.extend_from_slice(&50_000u32.to_be_bytes());
    copy.push(0);
    let _ = to.send(&Message::DeltaChunk {
        batch: 0,
        index: 1,
        data: copy,
    });
    let _ = to.send(&Message::FileEnd {
        batch: 0,
        index: 1,
        size: 50_000,
        hash: [0; 32],
    });
    let _ = to.flush();
    // Whatever the agent says now (a retry, most likely), end the session.
    let mut said = Vec::new();
    loop {
        match from.recv() {
            Ok(Some(Message::Retry { .. })) => {
                let _ = to.send(&Message::FileFailed { batch: 0, index: 1 });
                let _ = to.send(&Message::EndOfTree);
                let _ = to.flush();
            }
            Ok(Some(msg)) => said.push(msg),
            Ok(None) | Err(_) => break,
        }
        if matches!(said.last(), Some(Message::Summary(_))) {
            break;
        }
    }
    drop(to);
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        None,
        "the agent died of signal {:?} (7 is SIGBUS: a read of a mapped base past its new end); \
         it said {said:?}",
        status.signal()
    );
    assert_eq!(leftovers(&dst), Vec::<String>::new());
    // Never half-written: the truncated copy stays as it is, or holds the whole new contents.
    let now = std::fs::read(dst.join("f")).unwrap();
    assert!(
        now.is_empty() || now == old[100_000..150_000],
        "{} bytes",
        now.len()
    );
}

/// A real sshd behind a TCP proxy that drops the connection after N client-to-server bytes, N
/// spread over a whole sync (SSH handshake, agent start, protocol): the remote destination is
/// never left with a partial file, and a rerun converges.
#[test]
fn an_ssh_connection_dropped_by_a_proxy_loses_nothing() {
    use azsync_test_support::proxy::{Proxy, ProxyConfig};
    let t = trees();
    let sshd = TestSshd::start();
    // The agent holds a lock while it runs, which the test takes after each run: a rerun never
    // overlaps an agent still finishing from a cut session (flock(1) waits, no polling).
    let lock = t.root.join("agent.lock");
    std::fs::write(&lock, b"").unwrap();
    let wrapper = t.root.join("agent-wrapper");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec flock '{}' '{}' \"$@\"\n",
            lock.display(),
            azsync_bin().display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let proxy = Proxy::start(([127, 0, 0, 1], sshd.port).into(), ProxyConfig::default()).unwrap();
    // The known_hosts entry for the proxy's port is the server's key.
    let known = std::fs::read_to_string(&sshd.known_hosts).unwrap();
    let via_proxy = t.root.join("known_hosts_proxy");
    std::fs::write(
        &via_proxy,
        known.replace(
            &format!("[127.0.0.1]:{}", sshd.port),
            &format!("[127.0.0.1]:{}", proxy.port()),
        ),
    )
    .unwrap();
    let run = |dst: &Path, port: u16, known_hosts: &Path| {
        let out = run_azsync([
            "sync".to_string(),
            "--no-progress".into(),
            "-p".into(),
            port.to_string(),
            "--key".into(),
            sshd.client_key.display().to_string(),
            "--known-hosts".into(),
            known_hosts.display().to_string(),
            "--host-key-policy".into(),
            "strict".into(),
            "--agent-path".into(),
            wrapper.display().to_string(),
            t.new.display().to_string(),
            sshd.dest(dst),
        ]);
        let waited = Command::new("flock").arg(&lock).arg("true").status();
        assert!(
            waited.is_ok_and(|s| s.success()),
            "this test needs flock(1) (util-linux)"
        );
        out
    };
    let baseline = t.dest("ssh-baseline");
    run(&baseline, proxy.port(), &via_proxy).expect_ok();
    let total = proxy.stats().client_to_server;
    let mut cuts = 0;
    for k in 1..10 {
        let n = total * k / 10;
        let what = format!("ssh connection dropped after {n} of {total} bytes");
        let dst = t.dest(&format!("ssh-cut-{k}"));
        proxy.set_cut_after_bytes(Some(n));
        let out = run(&dst, proxy.port(), &via_proxy);
        assert_ne!(out.code(), Some(0), "{what}: {}", out.describe());
        proxy.set_cut_after_bytes(None);
        t.assert_nothing_partial(&dst, &what);
        run(&dst, sshd.port, &sshd.known_hosts).expect_ok();
        assert_eq!(leftovers(&dst), Vec::<String>::new(), "{what}");
        assert_same(&t.new_snap, &Snapshot::take(&dst), Compare::Exact, &what);
        cuts += 1;
    }
    eprintln!("faults: {cuts} SSH connections dropped by the proxy, files lost or corrupted: 0");
}
