//! Load: many small files, one very wide directory, and a large file synced then updated with a
//! delta, with the peak memory of both sides measured and bounded by figures that do not grow
//! with the tree (only the widest directory, by design, costs memory per entry).
//!
//! The default scale runs in CI in seconds: 20,000 small files, one directory of 20,000
//! entries, a 256 MiB file. The full load of the issue is the same test with
//!
//! ```sh
//! AZSYNC_LOAD_FILES=500000 AZSYNC_LOAD_WIDE=200000 AZSYNC_LOAD_BIG_MB=4096 \
//!     cargo test --release -p sync-cli --test load -- --nocapture
//! ```
//!
//! (about 10 GiB of free space in `/dev/shm` or the temp dir for the 4 GiB file's two copies).
//!
//! Each sync goes over SSH to a loopback sshd so that the two sides are separate processes
//! measured separately: the sender is `azsync sync` run under GNU time, the agent is started
//! through `--agent-path` by a wrapper that runs it under GNU time (`ru_maxrss`, peak RSS).

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::sshd::TestSshd;
use common::*;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const GNU_TIME: &str = "/usr/bin/time";
const MIB: u64 = 1 << 20;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
        .unwrap_or(default)
}

/// Peak RSS of each side of one sync, in bytes.
#[derive(Debug, Clone, Copy)]
struct Peak {
    sender: u64,
    agent: u64,
}

struct Rig {
    sshd: TestSshd,
    dir: PathBuf,
    wrapper: PathBuf,
    agent_log: PathBuf,
}

impl Rig {
    fn new(dir: &Path) -> Rig {
        assert!(
            Path::new(GNU_TIME).is_file(),
            "the load test measures peak memory with GNU time: install it (apt-get install time)"
        );
        let sshd = TestSshd::start();
        let agent_log = dir.join("agent-rss");
        let wrapper = dir.join("agent-under-time");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec {GNU_TIME} -f %M -o '{}' '{}' \"$@\"\n",
                agent_log.display(),
                azsync_bin().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        Rig {
            sshd,
            dir: dir.to_path_buf(),
            wrapper,
            agent_log,
        }
    }

    /// One sync of `src` into `dst` over SSH; the JSON report and both sides' peak RSS.
    fn sync(&self, src: &Path, dst: &Path, what: &str) -> (serde_json::Value, Peak) {
        let sender_log = self.dir.join("sender-rss");
        let _ = std::fs::remove_file(&self.agent_log);
        let mut cmd = Command::new(GNU_TIME);
        cmd.args(["-f", "%M", "-o"])
            .arg(&sender_log)
            .arg(azsync_bin());
        cmd.args(["sync", "--no-progress", "--json"]);
        cmd.args(self.sshd.azsync_args(common::sshd::Via::Native));
        cmd.arg("--agent-path").arg(&self.wrapper);
        cmd.arg(src).arg(self.sshd.dest(dst));
        let started = std::time::Instant::now();
        let out = run_with_timeout(cmd, std::time::Duration::from_secs(3600));
        let run = Run {
            cmdline: what.to_string(),
            out,
        };
        run.expect_ok();
        let report = run.json();
        let kib = |log: &Path| -> u64 {
            let text = std::fs::read_to_string(log)
                .unwrap_or_else(|e| panic!("{what}: {}: {e}", log.display()));
            text.lines()
                .rev()
                .find_map(|l| l.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{what}: no peak RSS in {text:?}"))
        };
        let peak = Peak {
            sender: kib(&sender_log) * 1024,
            agent: kib(&self.agent_log) * 1024,
        };
        eprintln!(
            "load: {what}: {:.1} s, peak RSS sender {:.1} MiB, agent {:.1} MiB",
            started.elapsed().as_secs_f64(),
            peak.sender as f64 / MIB as f64,
            peak.agent as f64 / MIB as f64
        );
        (report, peak)
    }
}

fn assert_below(peak: Peak, bound: u64, what: &str) {
    assert!(
        peak.sender <= bound && peak.agent <= bound,
        "{what}: peak RSS sender {} MiB, agent {} MiB, over the bound of {} MiB",
        peak.sender / MIB,
        peak.agent / MIB,
        bound / MIB
    );
}

/// `count` small files, 100 per directory, two levels deep.
fn many_files(root: &Path, count: u64) {
    for i in 0..count {
        let dir = root.join(format!("d{:03}/e{:03}", i / 10_000, (i / 100) % 100));
        if i % 100 == 0 {
            std::fs::create_dir_all(&dir).unwrap();
        }
        std::fs::write(dir.join(format!("f{i:07}.txt")), format!("file {i}\n")).unwrap();
    }
}

/// Memory follows the batch window and the widest directory, not the number of files: a tree
/// ten times larger costs the same within a few MiB, on both sides, and stays under a fixed
/// bound.
#[test]
fn many_small_files_sync_in_flat_memory() {
    let files = env_or("AZSYNC_LOAD_FILES", 20_000);
    let tmp = fast_tempdir("azsync-load-files-");
    let rig = Rig::new(tmp.path());
    let mut peaks = Vec::new();
    for (n, name) in [(files / 10, "tenth"), (files, "full")] {
        let (src, dst) = (
            tmp.path().join(format!("src-{name}")),
            tmp.path().join(format!("dst-{name}")),
        );
        many_files(&src, n);
        let what = format!("{n} files, first sync");
        let (report, first) = rig.sync(&src, &dst, &what);
        assert_eq!(num(&report, "files_transferred"), n, "{what}");
        let what = format!("{n} files, no-op re-sync");
        let (report, again) = rig.sync(&src, &dst, &what);
        assert_eq!(num(&report, "files_transferred"), 0, "{what}");
        assert_eq!(num(&report, "files_up_to_date"), n, "{what}");
        assert_replica(&src, &dst);
        peaks.push(Peak {
            sender: first.sender.max(again.sender),
            agent: first.agent.max(again.agent),
        });
        std::fs::remove_dir_all(&src).unwrap();
        std::fs::remove_dir_all(&dst).unwrap();
    }
    let (small, large) = (peaks[0], peaks[1]);
    for (side, a, b) in [
        ("sender", small.sender, large.sender),
        ("agent", small.agent, large.agent),
    ] {
        assert!(
            b <= a + 6 * MIB,
            "{side}: {} MiB for {} files against {} MiB for {files}: memory grows with the tree",
            a / MIB,
            files / 10,
            b / MIB
        );
    }
    assert_below(large, 64 * MIB, "many files");
}

/// One directory of many entries: held as one listing on each side (and sent as slices of
/// 4,096 entries), so memory grows with that directory only, by a bounded amount per entry.
#[test]
fn one_wide_directory_syncs_in_bounded_memory() {
    let wide = env_or("AZSYNC_LOAD_WIDE", 20_000);
    let tmp = fast_tempdir("azsync-load-wide-");
    let rig = Rig::new(tmp.path());
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let dir = src.join("wide");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..wide {
        std::fs::write(dir.join(format!("entry-{i:07}")), b"x").unwrap();
    }
    let what = format!("one directory of {wide} entries, first sync");
    let (report, first) = rig.sync(&src, &dst, &what);
    assert_eq!(num(&report, "files_transferred"), wide, "{what}");
    let what = format!("one directory of {wide} entries, no-op re-sync");
    let (report, again) = rig.sync(&src, &dst, &what);
    assert_eq!(num(&report, "files_up_to_date"), wide, "{what}");
    assert_replica(&src, &dst);
    // 48 MiB of fixed costs, plus at most 512 bytes per entry of the widest directory.
    let bound = 48 * MIB + wide * 512;
    assert_below(first, bound, "wide directory, first sync");
    assert_below(again, bound, "wide directory, re-sync");
}

/// Writes `len` bytes of seeded random data without holding them.
fn big_file(path: &Path, len: u64, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut buf = vec![0u8; 8 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

/// A large file synced whole, then changed in the middle and at the end and synced as a delta:
/// the sender reads it in segments and never holds it, so its memory is the same whatever the
/// file's size.
#[test]
fn a_large_file_and_its_delta_sync_without_holding_it() {
    let mb = env_or("AZSYNC_LOAD_BIG_MB", 256);
    let len = mb * MIB;
    let tmp = fast_tempdir("azsync-load-big-");
    let rig = Rig::new(tmp.path());
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    let path = src.join("big.bin");
    big_file(&path, len, 11);
    set_mtime(&path, at(1_700_000_000, 0));
    let what = format!("a {mb} MiB file, first sync");
    let (report, first) = rig.sync(&src, &dst, &what);
    assert_eq!(num(&report, "files_transferred"), 1, "{what}");
    // 1 MiB rewritten in the middle, 1 MiB appended.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    rewrite_range(
        &path,
        len / 2,
        &random_bytes(&mut rng, MIB as usize),
        at(1_700_000_100, 0),
    );
    append(
        &path,
        &random_bytes(&mut rng, MIB as usize),
        at(1_700_000_100, 0),
    );
    let what = format!("a {mb} MiB file, 2 MiB changed, delta");
    let (report, delta) = rig.sync(&src, &dst, &what);
    assert_eq!(num(&report, "files_delta"), 1, "{what}");
    assert!(
        num(&report, "bytes_literal") < 4 * MIB,
        "{what}: {} literal bytes",
        num(&report, "bytes_literal")
    );
    assert_replica(&src, &dst);
    // Both sides read through fixed buffers (the sender its source in segments, the agent its
    // old copy with positioned reads for the signature and the patch): neither peak may grow
    // with the file.
    for (peak, what) in [(first, "first sync"), (delta, "delta")] {
        assert!(
            peak.sender <= 64 * MIB,
            "a {mb} MiB file, {what}: the sender peaked at {} MiB",
            peak.sender / MIB
        );
        assert!(
            peak.agent <= 64 * MIB,
            "a {mb} MiB file, {what}: the agent peaked at {} MiB",
            peak.agent / MIB
        );
    }
}
