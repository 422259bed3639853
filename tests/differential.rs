//! Differential end-to-end tests: the same source tree, the same sequence of changes, synced by
//! `azsync sync SRC DST_A` and by `rsync -a SRC/ DST_R/`.
//!
//! After every step:
//! - DST_A is an exact replica of SRC (contents, link targets, modes, file and directory mtimes
//!   to the nanosecond, the root included; to the second in SFTP mode, all SFTP carries),
//! - DST_R matches SRC in the rsync-tolerant mode (a sanity check of the test itself),
//! - DST_A agrees with DST_R in the rsync-tolerant mode.
//!
//! The generated trees have no secret-looking names, so azsync's built-in secret rules skip
//! nothing and the runs are made without `--allow-secrets`; every report is checked to have
//! skipped nothing and failed nothing.

mod common;

use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One differential case: a source, the azsync destination and the rsync destination.
struct Case {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    dst_a: PathBuf,
    dst_r: PathBuf,
    clock: Clock,
    rng: ChaCha8Rng,
    seed: u64,
    /// When set, both tools reach their destinations through this real sshd (azsync through
    /// the given client).
    ssh: Option<(common::sshd::TestSshd, common::sshd::Via)>,
}

impl Case {
    fn new(seed: u64, opts: &GenOptions) -> Case {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("azsync-diff-{seed}-"))
            .tempdir()
            .unwrap();
        // SRC sits two levels down so that `../../outside` links point into the temp dir, at a
        // path that does not exist.
        let src = tmp.path().join("a/b/src");
        generate_tree(&src, seed, opts);
        Case {
            src,
            dst_a: tmp.path().join("a/b/dst-azsync"),
            dst_r: tmp.path().join("a/b/dst-rsync"),
            _tmp: tmp,
            clock: Clock::default(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x00D1_FFEE),
            seed,
            ssh: None,
        }
    }

    fn over_ssh(mut self, via: common::sshd::Via) -> Case {
        self.ssh = Some((common::sshd::TestSshd::start(), via));
        self
    }

    /// How azsync's copy must match SRC: exactly, except that SFTP (version 3) carries
    /// whole-second mtimes, so in SFTP mode every mtime with nanoseconds lands truncated and
    /// file and directory times can only match to the second (the generated trees set
    /// nanoseconds on purpose).
    fn exact(&self) -> Compare {
        match &self.ssh {
            Some((_, common::sshd::Via::Sftp)) => Compare::Seconds,
            _ => Compare::Exact,
        }
    }

    /// How azsync's copy must match rsync's (which keeps file mtimes to the nanosecond).
    fn tolerant(&self) -> Compare {
        match &self.ssh {
            Some((_, common::sshd::Via::Sftp)) => Compare::Seconds,
            _ => Compare::RsyncTolerant,
        }
    }

    fn s(&self, rel: &[u8]) -> PathBuf {
        join_bytes(&self.src, rel)
    }

    /// Runs both tools with these options (azsync always with `--json`), checks both succeeded
    /// and azsync reported no skip and no error; returns azsync's report. Compares nothing.
    fn run_both(&self, azsync_opts: &[&str], rsync_opts: &[&str], step: &str) -> serde_json::Value {
        let (run, report) = match &self.ssh {
            None => azsync_sync_json(&self.src, &self.dst_a, azsync_opts),
            Some((sshd, via)) => {
                let args = sshd.azsync_args(*via);
                let mut opts: Vec<&str> = args.iter().map(String::as_str).collect();
                opts.extend_from_slice(azsync_opts);
                azsync_sync_json(&self.src, Path::new(&sshd.dest(&self.dst_a)), &opts)
            }
        };
        assert_eq!(
            run.code(),
            Some(0),
            "seed {} step {step:?}: azsync failed\n{}",
            self.seed,
            run.describe()
        );
        check_report_shape(&report);
        assert!(
            skipped(&report).is_empty() && errors(&report).is_empty(),
            "seed {} step {step:?}: azsync skipped or failed entries: {report}",
            self.seed
        );
        let r = match &self.ssh {
            None => rsync_a(&self.src, &self.dst_r, rsync_opts),
            Some((sshd, _)) => {
                let rsh = sshd.rsh();
                let mut opts = vec!["-e", &rsh];
                opts.extend_from_slice(rsync_opts);
                rsync_a(&self.src, Path::new(&sshd.dest(&self.dst_r)), &opts)
            }
        };
        assert_eq!(
            r.code(),
            Some(0),
            "seed {} step {step:?}: rsync failed\n{}",
            self.seed,
            r.describe()
        );
        report
    }

    /// Runs both tools, then asserts the three comparisons of the module doc.
    fn sync(&self, azsync_opts: &[&str], rsync_opts: &[&str], step: &str) -> serde_json::Value {
        let report = self.run_both(azsync_opts, rsync_opts, step);
        let s = Snapshot::take(&self.src);
        let a = Snapshot::take(&self.dst_a);
        let r = Snapshot::take(&self.dst_r);
        let ctx = |what: &str| format!("seed {} step {step:?}: {what}", self.seed);
        assert_same(
            &s,
            &r,
            Compare::RsyncTolerant,
            &ctx("rsync's copy vs SRC (test sanity)"),
        );
        assert_same(&s, &a, self.exact(), &ctx("azsync's copy vs SRC"));
        assert_same(&a, &r, self.tolerant(), &ctx("azsync's copy vs rsync's"));
        report
    }
}

/// Small (non-big) regular files with at least `min` bytes.
fn small_file(min: u64) -> impl Fn(&[u8], &Node) -> bool {
    move |_, n| n.size >= min && n.size < MIB
}

fn any(_: &[u8], _: &Node) -> bool {
    true
}

/// The whole sequence of steps for one seed.
fn differential(seed: u64) {
    differential_case(Case::new(seed, &GenOptions::default()));
}

fn differential_case(mut c: Case) {
    require_rsync();
    let seed = c.seed;
    let file_count = Snapshot::take(&c.src).count(&Kind::File) as u64;

    // 1. First sync into destinations that do not exist yet.
    let rep = c.sync(&[], &[], "first sync");
    assert!(
        num(&rep, "files_transferred") >= file_count,
        "seed {seed} first sync: files_transferred < {file_count} regular files: {rep}"
    );

    // 2. Nothing changed: nothing is transferred.
    let rep = c.sync(&[], &[], "no-op re-sync");
    assert_eq!(
        num(&rep, "files_transferred"),
        0,
        "seed {seed} no-op: {rep}"
    );
    assert_eq!(num(&rep, "files_delta"), 0, "seed {seed} no-op: {rep}");
    assert_eq!(num(&rep, "bytes_literal"), 0, "seed {seed} no-op: {rep}");
    assert_eq!(num(&rep, "deleted"), 0, "seed {seed} no-op: {rep}");

    // 3. Contents: appends, truncations, rewrites in the middle (size kept), big files too.
    let snap = Snapshot::take(&c.src);
    let gen_big: Vec<Vec<u8>> = snap
        .nodes
        .iter()
        .filter(|(_, n)| n.kind == Kind::File && n.size >= MIB)
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(gen_big.len(), 5, "the generator makes 5 big files");
    let mut changed = 0u64;
    for big in &gen_big {
        let p = c.s(big);
        let t = c.clock.tick();
        match snap.get(big).unwrap().size {
            s if s == 20 * MIB => {
                rewrite_middle(&p, 1024, t);
            }
            s if s == 5 * MIB => {
                let extra = random_bytes(&mut c.rng, 10_000);
                append(&p, &extra, t);
            }
            _ => truncate(&p, 700_000, t),
        }
        changed += 1;
    }
    let mut picker = Picker::default();
    for (i, rel) in picker
        .pick(&snap, Kind::File, 9, &mut c.rng, small_file(16))
        .into_iter()
        .enumerate()
    {
        let p = c.s(&rel);
        let size = snap.get(&rel).unwrap().size;
        let t = c.clock.tick();
        match i % 4 {
            0 => {
                let extra = random_bytes(&mut c.rng, 1 + (size as usize) / 3);
                append(&p, &extra, t);
            }
            1 => truncate(&p, size / 2, t),
            2 => truncate(&p, 0, t),
            _ => {
                rewrite_middle(&p, 8, t);
            }
        }
        changed += 1;
    }
    let t = c.clock.tick();
    append(&c.s(b"empty-file"), b"no longer empty\n", t);
    changed += 1;
    let rep = c.sync(&[], &[], "contents changed");
    assert!(
        num(&rep, "files_transferred") >= changed,
        "seed {seed} contents: files_transferred < {changed} changed files: {rep}"
    );

    // 4. Metadata only: chmod files and a directory keeping mtimes; new mtimes, same contents.
    let snap = Snapshot::take(&c.src);
    let mut picker = Picker::default();
    for rel in picker.pick(&snap, Kind::File, 3, &mut c.rng, small_file(0)) {
        let old = snap.get(&rel).unwrap().mode;
        let new = if old == 0o600 { 0o640 } else { 0o600 };
        set_mode(&c.s(&rel), new);
    }
    for rel in picker.pick(&snap, Kind::Dir, 1, &mut c.rng, any) {
        let old = snap.get(&rel).unwrap().mode;
        let new = if old == 0o700 { 0o755 } else { 0o700 };
        set_mode(&c.s(&rel), new);
    }
    for rel in picker.pick(&snap, Kind::File, 3, &mut c.rng, small_file(0)) {
        let t = c.clock.tick();
        touch(&c.s(&rel), t);
    }
    for rel in picker.pick(&snap, Kind::Dir, 2, &mut c.rng, any) {
        let t = c.clock.tick();
        touch(&c.s(&rel), t);
    }
    c.sync(&[], &[], "metadata only");

    // 4b. The destinations were edited behind our back: contents with a newer mtime, a mode, a
    //     directory's mode and mtime. A sync puts the source's version back (no -u).
    let snap = Snapshot::take(&c.src);
    let mut picker = Picker::default();
    let files = picker.pick(&snap, Kind::File, 3, &mut c.rng, small_file(0));
    let dirs = picker.pick(&snap, Kind::Dir, 1, &mut c.rng, any);
    for dst in [&c.dst_a, &c.dst_r] {
        let t = c.clock.tick();
        for rel in &files {
            write_file(
                &join_bytes(dst, rel),
                b"edited in the destination",
                0o600,
                t,
            );
        }
        for rel in &dirs {
            set_dir_meta(&join_bytes(dst, rel), 0o711, t);
        }
    }
    c.sync(&[], &[], "destination edited");

    // 5. Additions: new files, a new nested directory, a new empty directory, new symlinks, a
    //    symlink retargeted.
    let snap = Snapshot::take(&c.src);
    let mut picker = Picker::default();
    let dirs = picker.pick(&snap, Kind::Dir, 3, &mut c.rng, |p, _| {
        !p.starts_with(b"empty")
    });
    for (i, d) in dirs.iter().enumerate() {
        let len = c.rng.gen_range(0..20_000);
        let data = random_bytes(&mut c.rng, len);
        let t = c.clock.tick();
        add_file(&c.s(d).join(format!("added-{i}.dat")), &data, 0o640, t);
    }
    let nested = c.src.join("new-dir/sub dir/ñ");
    std::fs::create_dir_all(&nested).unwrap();
    let t = c.clock.tick();
    write_file(&nested.join("leaf.txt"), b"leaf\n", 0o644, t);
    set_dir_meta(&nested, 0o750, c.clock.tick());
    set_dir_meta(&c.src.join("new-dir/sub dir"), 0o755, c.clock.tick());
    make_dir(&c.src.join("new-dir/empty-new"), 0o700, c.clock.tick());
    make_symlink("sub dir/ñ/leaf.txt", &c.src.join("new-dir/leaf-link"));
    set_dir_meta(&c.src.join("new-dir"), 0o755, c.clock.tick());
    let t = c.clock.tick();
    replace_with_symlink(&c.s(b"dangling"), "with space.txt", t);
    let t = c.clock.tick();
    set_mtime(&c.src, t);
    c.sync(&[], &[], "additions");

    // 6. Removals: first without --delete (both keep the extras), then with --delete.
    let snap = Snapshot::take(&c.src);
    let mut picker = Picker::default();
    let mut removed: Vec<Vec<u8>> = Vec::new();
    for rel in picker.pick(&snap, Kind::Dir, 2, &mut c.rng, |p, _| depth_of(p) >= 2) {
        let t = c.clock.tick();
        remove_dir(&c.s(&rel), t);
        removed.push(rel);
    }
    for rel in picker.pick(&snap, Kind::File, 4, &mut c.rng, any) {
        let t = c.clock.tick();
        remove_file(&c.s(&rel), t);
        removed.push(rel);
    }
    for rel in picker.pick(&snap, Kind::Symlink, 1, &mut c.rng, any) {
        let t = c.clock.tick();
        remove_file(&c.s(&rel), t);
        removed.push(rel);
    }
    if !picker.conflicts(b"empty") {
        let t = c.clock.tick();
        remove_dir(&c.s(b"empty"), t);
        removed.push(b"empty".to_vec());
    }
    let rep = c.run_both(&[], &[], "removals without --delete");
    assert_eq!(
        num(&rep, "deleted"),
        0,
        "seed {seed}: deleted without --delete: {rep}"
    );
    let s = Snapshot::take(&c.src);
    let a = Snapshot::take(&c.dst_a);
    let r = Snapshot::take(&c.dst_r);
    assert_same(
        &a,
        &r,
        c.tolerant(),
        &format!("seed {seed} removals without --delete: azsync vs rsync"),
    );
    let is_removed = |p: &[u8]| removed.iter().any(|x| x.as_slice() == p);
    assert_same(
        &s,
        &a.without(is_removed),
        c.exact(),
        &format!("seed {seed} removals without --delete: azsync's copy (less the extras) vs SRC"),
    );
    for rel in &removed {
        assert!(
            a.get(rel).is_some(),
            "seed {seed}: {} removed from DST without --delete",
            show(rel)
        );
    }
    let rep = c.sync(&["--delete"], &["--delete"], "removals with --delete");
    assert!(
        num(&rep, "deleted") >= removed.len() as u64,
        "seed {seed}: deleted < {} removed entries: {rep}",
        removed.len()
    );

    // 7. Type changes (with --delete): file -> dir, dir -> file, symlink -> file,
    //    file -> symlink, dir -> symlink, symlink -> dir.
    let snap = Snapshot::take(&c.src);
    let mut picker = Picker::default();
    for rel in picker.pick(&snap, Kind::File, 1, &mut c.rng, small_file(0)) {
        let t = c.clock.tick();
        replace_file_with_dir(&c.s(&rel), t);
    }
    for rel in picker.pick(&snap, Kind::Dir, 1, &mut c.rng, |p, _| depth_of(p) >= 2) {
        let t = c.clock.tick();
        replace_dir_with_file(&c.s(&rel), b"was a directory\n", t);
    }
    for rel in picker.pick(&snap, Kind::Symlink, 1, &mut c.rng, any) {
        let p = c.s(&rel);
        std::fs::remove_file(&p).unwrap();
        let t = c.clock.tick();
        add_file(&p, b"was a symlink\n", 0o600, t);
    }
    for rel in picker.pick(&snap, Kind::File, 1, &mut c.rng, small_file(0)) {
        let t = c.clock.tick();
        replace_with_symlink(&c.s(&rel), "/nonexistent/target", t);
    }
    for rel in picker.pick(&snap, Kind::Dir, 1, &mut c.rng, |p, _| depth_of(p) >= 2) {
        let t = c.clock.tick();
        replace_with_symlink(&c.s(&rel), "..", t);
    }
    if !picker.conflicts(b"link-to-dir") {
        let p = c.src.join("link-to-dir");
        std::fs::remove_file(&p).unwrap();
        std::fs::create_dir(&p).unwrap();
        write_file(&p.join("f"), b"real dir now\n", 0o644, c.clock.tick());
        set_dir_meta(&p, 0o755, c.clock.tick());
        set_parent_mtime(&p, c.clock.tick());
    }
    c.sync(&["--delete"], &["--delete"], "type changes");

    // 8. Same size, same mtime, different contents: invisible without --checksum, found with it.
    let snap = Snapshot::take(&c.src);
    let mut picker = Picker::default();
    let sneaky = picker.pick(&snap, Kind::File, 1, &mut c.rng, small_file(64));
    assert_eq!(sneaky.len(), 1, "seed {seed}: no file to change sneakily");
    let rel = &sneaky[0];
    let p = c.s(rel);
    let old = snap.get(rel).unwrap().mtime;
    rewrite_middle(&p, 8, at(old.0 as u64, old.1 as u32));
    let rep = c.run_both(&[], &[], "sneaky change without --checksum");
    assert_eq!(
        num(&rep, "files_transferred"),
        0,
        "seed {seed}: same size+mtime must be up to date without --checksum: {rep}"
    );
    let s = Snapshot::take(&c.src);
    let a = Snapshot::take(&c.dst_a);
    let r = Snapshot::take(&c.dst_r);
    assert_same(
        &a,
        &r,
        c.tolerant(),
        &format!("seed {seed} sneaky change without -c: azsync vs rsync"),
    );
    let d = diff(&s, &a, c.exact());
    assert_eq!(
        d,
        vec![format!(
            "{}: contents differ (same size {})",
            show(rel),
            s.get(rel).unwrap().size
        )],
        "seed {seed}: without -c only the sneaky file may differ"
    );
    let rep = c.sync(
        &["--checksum"],
        &["--checksum"],
        "sneaky change with --checksum",
    );
    assert!(
        num(&rep, "files_transferred") >= 1,
        "seed {seed}: --checksum transferred nothing: {rep}"
    );

    // 9. A final no-op with --delete and --checksum.
    let rep = c.sync(&["--delete", "-c"], &["--delete", "-c"], "final no-op");
    assert_eq!(
        num(&rep, "files_transferred"),
        0,
        "seed {seed} final: {rep}"
    );
    assert_eq!(num(&rep, "deleted"), 0, "seed {seed} final: {rep}");
}

#[test]
fn differential_seed_1() {
    differential(1);
}

#[test]
fn differential_seed_2() {
    differential(2);
}

#[test]
fn differential_seed_3() {
    differential(3);
}

/// The same sequence through a real sshd: azsync deploys and runs its agent with its built-in
/// SSH client; rsync runs `rsync --server` through the system ssh.
#[test]
fn differential_over_ssh_native() {
    differential_case(Case::new(4, &GenOptions::default()).over_ssh(common::sshd::Via::Native));
}

/// Again, with azsync going through a system ssh command (`--rsh`).
#[test]
fn differential_over_ssh_rsh() {
    differential_case(Case::new(5, &GenOptions::default()).over_ssh(common::sshd::Via::Rsh));
}

/// Again through the SFTP fallback (`--sftp`): no agent, whole files, mtimes to the second
/// (compared as such, see `Case::exact`); everything else as over the agent, the no-op
/// re-syncs included.
#[test]
fn differential_over_sftp() {
    differential_case(Case::new(6, &GenOptions::default()).over_ssh(common::sshd::Via::Sftp));
}

/// A 20 MiB random file, then 1 KiB changed in the middle: the re-sync is a delta whose literal
/// data is a tiny fraction of the file, and the result is byte-identical.
#[test]
fn delta_20mib_one_kib_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    let mut rng = ChaCha8Rng::seed_from_u64(20);
    make_dir(&src, 0o755, at(1_600_000_000, 1));
    let f = src.join("big.bin");
    write_file(
        &f,
        &random_bytes(&mut rng, (20 * MIB) as usize),
        0o644,
        at(1_600_000_000, 5),
    );
    set_mtime(&src, at(1_600_000_100, 7));
    let (run, rep) = azsync_sync_json(&src, &dst, &[]);
    run.expect_ok();
    assert_replica(&src, &dst);
    assert!(num(&rep, "bytes_literal") >= 20 * MIB, "first sync: {rep}");

    rewrite_middle(&f, 1024, at(1_700_000_000, 123_456_789));
    let (run, rep) = azsync_sync_json(&src, &dst, &[]);
    run.expect_ok();
    assert_replica(&src, &dst);
    let literal = num(&rep, "bytes_literal");
    assert!(
        literal < 100_000,
        "1 KiB changed in 20 MiB: bytes_literal = {literal} (want < 100000): {rep}"
    );
    assert_eq!(num(&rep, "files_delta"), 1, "one delta transfer: {rep}");
    assert!(
        num(&rep, "bytes_matched") >= 20 * MIB - 100_000,
        "most of the file must be matched: {rep}"
    );
}

/// 1000 bytes inserted near the front of a 5 MiB file shift every later block: the rolling
/// checksum still finds them.
#[test]
fn delta_insertion_shifts_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    make_dir(&src, 0o755, at(1_600_000_000, 1));
    let f = src.join("shifted.bin");
    let mut data = random_bytes(&mut rng, (5 * MIB) as usize);
    write_file(&f, &data, 0o644, at(1_600_000_000, 5));
    set_mtime(&src, at(1_600_000_100, 7));
    azsync_sync(&src, &dst, &[]).expect_ok();
    assert_replica(&src, &dst);

    let ins = random_bytes(&mut rng, 1000);
    data.splice(300_001..300_001, ins);
    write_file(&f, &data, 0o644, at(1_700_000_000, 42));
    set_mtime(&src, at(1_600_000_100, 7));
    let (run, rep) = azsync_sync_json(&src, &dst, &[]);
    run.expect_ok();
    assert_replica(&src, &dst);
    let literal = num(&rep, "bytes_literal");
    assert!(
        literal < 100_000,
        "1000 bytes inserted into 5 MiB: bytes_literal = {literal} (want < 100000): {rep}"
    );
}

/// rsync's quick check ignores a change of the nanoseconds alone; azsync compares mtimes to the
/// nanosecond and must carry the new value (files and directories).
#[test]
fn nanosecond_only_mtime_change_is_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    generate_tree(
        &src,
        7,
        &GenOptions {
            big_files: false,
            max_depth: 3,
        },
    );
    azsync_sync(&src, &dst, &[]).expect_ok();
    assert_replica(&src, &dst);
    let f = src.join("with space.txt");
    let m = std::fs::metadata(&f).unwrap();
    use std::os::unix::fs::MetadataExt;
    let (secs, ns) = (m.mtime() as u64, m.mtime_nsec() as u32);
    touch(&f, at(secs, (ns + 1) % 1_000_000_000));
    let d = src.join("dir with space");
    let m = std::fs::metadata(&d).unwrap();
    touch(
        &d,
        at(
            m.mtime() as u64,
            (m.mtime_nsec() as u32 + 500) % 1_000_000_000,
        ),
    );
    azsync_sync(&src, &dst, &[]).expect_ok();
    assert_replica(&src, &dst);
}

/// Dropping everything: SRC emptied, --delete empties DEST (the root stays).
#[test]
fn delete_everything() {
    require_rsync();
    let mut c = Case::new(
        11,
        &GenOptions {
            big_files: false,
            max_depth: 3,
        },
    );
    c.sync(&[], &[], "first sync");
    for ent in std::fs::read_dir(&c.src).unwrap() {
        let p = ent.unwrap().path();
        if p.symlink_metadata().unwrap().is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    let t = c.clock.tick();
    set_mtime(&c.src, t);
    c.sync(&["--delete"], &["--delete"], "everything deleted");
    assert_eq!(Snapshot::take(&c.dst_a).nodes.len(), 1);
}

/// The comparator itself: an rsync copy passes, and each kind of difference is caught (the
/// tests above would be vacuous otherwise).
#[test]
fn comparator_catches_differences() {
    require_rsync();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    generate_tree(
        &src,
        99,
        &GenOptions {
            big_files: false,
            max_depth: 3,
        },
    );
    rsync_a(&src, &dst, &[]).expect_ok();
    let s = Snapshot::take(&src);
    assert_same(
        &s,
        &Snapshot::take(&dst),
        Compare::Exact,
        "fresh rsync copy",
    );
    assert!(s.count(&Kind::File) > 50 && s.count(&Kind::Dir) > 10 && s.count(&Kind::Symlink) >= 8);

    let check = |what: &str, mutate: &dyn Fn(&Path), exact: bool, tolerant: bool| {
        let d = tmp.path().join(format!("copy-{what}"));
        rsync_a(&src, &d, &[]).expect_ok();
        mutate(&d);
        let got = Snapshot::take(&d);
        assert_eq!(
            !diff(&s, &got, Compare::Exact).is_empty(),
            exact,
            "{what}: exact"
        );
        assert_eq!(
            !diff(&s, &got, Compare::RsyncTolerant).is_empty(),
            tolerant,
            "{what}: tolerant"
        );
    };
    let file = |d: &Path| d.join("edge3-65536.bin");
    check(
        "byte flipped",
        &|d| {
            let m = std::fs::metadata(file(d)).unwrap();
            let t = std::time::UNIX_EPOCH
                + std::time::Duration::new(m.mtime() as u64, m.mtime_nsec() as u32);
            rewrite_range(
                &file(d),
                40_001,
                &[0xAA ^ std::fs::read(file(d)).unwrap()[40_001]],
                t,
            );
        },
        true,
        true,
    );
    check("file mode", &|d| set_mode(&file(d), 0o640), true, true);
    check(
        "file mtime ns",
        &|d| {
            let m = std::fs::metadata(file(d)).unwrap();
            touch(
                &file(d),
                at(
                    m.mtime() as u64,
                    (m.mtime_nsec() as u32 + 1) % 1_000_000_000,
                ),
            );
        },
        true,
        true,
    );
    check(
        "dir mtime ns",
        &|d| {
            let m = std::fs::metadata(d.join("empty-dir")).unwrap();
            touch(
                &d.join("empty-dir"),
                at(
                    m.mtime() as u64,
                    (m.mtime_nsec() as u32 + 1) % 1_000_000_000,
                ),
            );
        },
        true,
        false,
    );
    check(
        "root mtime s",
        &|d| {
            let m = std::fs::metadata(d).unwrap();
            touch(d, at(m.mtime() as u64 + 1, m.mtime_nsec() as u32));
        },
        true,
        true,
    );
    check(
        "dir mode",
        &|d| set_mode(&d.join("empty-dir"), 0o700),
        true,
        true,
    );
    check(
        "link target",
        &|d| {
            std::fs::remove_file(d.join("dangling")).unwrap();
            make_symlink("does/not/exis", &d.join("dangling"));
        },
        true,
        true,
    );
    check(
        "extra file",
        &|d| std::fs::write(d.join("empty/x"), b"").unwrap(),
        true,
        true,
    );
    check(
        "missing link",
        &|d| std::fs::remove_file(d.join("self-loop")).unwrap(),
        true,
        true,
    );
    check(
        "non-utf8 missing",
        &|d| std::fs::remove_file(join_bytes(d, b"caf\xe9")).unwrap(),
        true,
        true,
    );
    check(
        "file became dir",
        &|d| {
            std::fs::remove_file(d.join("empty-file")).unwrap();
            std::fs::create_dir(d.join("empty-file")).unwrap();
        },
        true,
        true,
    );
}
