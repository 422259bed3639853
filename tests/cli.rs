//! End-to-end tests of the `azsync sync` command line: secret rules, a 50,000-file tree with
//! 10,000 exclude patterns, destination safety against symlinks, deletions and exclusions,
//! dry runs and itemized output, per-file errors and exit codes, special files and
//! `--safe-links`.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A temp dir with `src/` and the path of `dst/` (not created).
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("azsync-cli-")
        .tempdir()
        .unwrap();
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    fs::create_dir(&src).unwrap();
    (tmp, src, dst)
}

/// Writes the files (relative path, contents) under `root`, creating parents, each with an
/// explicit mtime; then gives every directory (deepest first) and the root explicit mtimes.
fn build(root: &Path, files: &[(&str, &str)]) {
    let mut clock = Clock::new(1_600_000_000);
    let mut dirs = BTreeSet::new();
    for (rel, contents) in files {
        let p = root.join(rel);
        let parent = p.parent().unwrap();
        fs::create_dir_all(parent).unwrap();
        let mut d = Path::new(rel).parent();
        while let Some(x) = d {
            if x.as_os_str().is_empty() {
                break;
            }
            dirs.insert(x.to_path_buf());
            d = x.parent();
        }
        write_file(&p, contents.as_bytes(), 0o644, clock.tick());
    }
    finish_dirs(root, dirs.into_iter().collect(), &mut clock);
}

/// Sets explicit mtimes on these directories (relative to `root`), deepest first, then the root.
fn finish_dirs(root: &Path, mut dirs: Vec<PathBuf>, clock: &mut Clock) {
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        set_mtime(&root.join(d), clock.tick());
    }
    set_mtime(root, clock.tick());
}

fn is_real_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false)
}

fn exists_nofollow(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

fn set_of(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

const SECRETS: &[&str] = &[
    ".ssh/id_ed25519",
    ".ssh/id_rsa",
    ".aws/credentials",
    "x.pem",
    "sub/server.key",
    "cert.p12",
    "cert.pfx",
    ".env",
    ".env.local",
    "proj/.env",
    "proj/.env.production",
    "proj/deploy/tls.pem",
    "home/alice/.ssh/id_rsa",
    "home/alice/.aws/credentials",
];

const ALLOWED: &[&str] = &[
    ".ssh/id_ed25519.pub",
    ".ssh/config",
    ".ssh/known_hosts",
    ".aws/config",
    ".env.example",
    "notes.txt",
    "sub/readme.md",
    "proj/main.rs",
    "home/alice/.ssh/id_rsa.pub",
    "home/alice/notes.txt",
];

fn secret_tree(src: &Path) {
    let mut files: Vec<(&str, &str)> = Vec::new();
    for s in SECRETS {
        files.push((s, "-----BEGIN OPENSSH PRIVATE KEY-----\nnot really\n"));
    }
    for a in ALLOWED {
        files.push((a, "harmless\n"));
    }
    build(src, &files);
}

fn is_secret(p: &[u8]) -> bool {
    SECRETS.iter().any(|s| s.as_bytes() == p)
}

#[test]
fn secrets_are_skipped_and_listed_in_json() {
    let (_tmp, src, dst) = setup();
    secret_tree(&src);
    let (run, rep) = azsync_sync_json(&src, &dst, &[]);
    run.expect_ok();
    check_report_shape(&rep);
    for s in SECRETS {
        assert!(
            !exists_nofollow(&dst.join(s)),
            "secret {s} was copied\n{}",
            run.describe()
        );
    }
    for a in ALLOWED {
        assert!(
            dst.join(a).is_file(),
            "allowed file {a} is missing\n{}",
            run.describe()
        );
    }
    let got: BTreeSet<String> = skipped(&rep)
        .into_iter()
        .map(|(p, reason)| {
            assert_eq!(reason, "secret", "skip of {p} has the wrong reason: {rep}");
            p
        })
        .collect();
    assert_eq!(
        got,
        set_of(SECRETS),
        "skipped secrets in the --json report: {rep}"
    );
    assert!(errors(&rep).is_empty(), "{rep}");
    assert_same(
        &Snapshot::take(&src).without(is_secret),
        &Snapshot::take(&dst),
        Compare::Exact,
        "destination = source less the secrets",
    );
}

#[test]
fn secrets_are_named_on_stderr() {
    let (_tmp, src, dst) = setup();
    secret_tree(&src);
    let run = azsync_sync(&src, &dst, &[]);
    run.expect_ok();
    let err = run.stderr();
    for s in SECRETS {
        assert!(
            err.lines().any(|l| l.contains(s)),
            "skipped secret {s} is not named on stderr\n{}",
            run.describe()
        );
        assert!(!exists_nofollow(&dst.join(s)), "secret {s} was copied");
    }
    for a in ALLOWED {
        assert!(dst.join(a).is_file(), "allowed file {a} is missing");
    }
}

#[test]
fn allow_secrets_copies_everything() {
    let (_tmp, src, dst) = setup();
    secret_tree(&src);
    let (run, rep) = azsync_sync_json(&src, &dst, &["--allow-secrets"]);
    run.expect_ok();
    assert!(
        skipped(&rep).is_empty(),
        "--allow-secrets skipped something: {rep}"
    );
    assert_replica(&src, &dst);
}

// ---------------------------------------------------------------------------------------------
// The seed bug: 50,000 files, 10,000 exclude patterns, --delete-excluded
// ---------------------------------------------------------------------------------------------

const DIRS: usize = 500;
const FILES_PER_DIR: usize = 100;

/// Writes `DIRS` x `FILES_PER_DIR` small files on a few threads, each with an explicit mtime.
fn big_flat_tree(src: &Path) {
    let threads = 4;
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for d in (t..DIRS).step_by(threads) {
                    let dir = src.join(format!("d{d:03}"));
                    fs::create_dir(&dir).unwrap();
                    for f in 0..FILES_PER_DIR {
                        let t = at(
                            1_600_000_000 + (d * FILES_PER_DIR + f) as u64,
                            ((d * 7919 + f * 104_729) % 999_999_937) as u32,
                        );
                        // create + write + futimens: the fewest syscalls per file.
                        let mut file = fs::File::create(dir.join(format!("f{f:03}.txt"))).unwrap();
                        file.write_all(format!("d{d}/f{f}\n").as_bytes()).unwrap();
                        file.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
                            .unwrap();
                    }
                }
            });
        }
    });
}

#[test]
fn seed_bug_50k_files_10k_excludes_delete_excluded() {
    let tmp = fast_tempdir("azsync-50k-");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    fs::create_dir(&src).unwrap();
    big_flat_tree(&src);
    let mut clock = Clock::new(1_650_000_000);
    // Files and directories that the patterns below really match (excluded) or nearly match
    // (copied).
    let extra: &[(&str, bool)] = &[
        ("d000/junk.tmp8", true),     // *.tmp8
        ("d050/junk.tmp8", true),     // *.tmp8
        ("d100/junk.tmp8x", false),   // no pattern matches
        ("d007/build9/out.o", true),  // build9/ (a directory)
        ("d007/build9/deep/x", true), // inside build9/
        ("d007/build9.txt", false),   // not a directory named build9
        ("d008/build9", false),       // a FILE named build9: `build9/` matches directories only
        ("cache-10/a.o", true),       // cache-10/*.o, anchored at the root
        ("cache-10/b.c", false),      //
        ("d009/cache-10/a.o", false), // anchored pattern: not below the root
        ("root-only-11.txt", true),   // /root-only-11.txt
        ("d011/root-only-11.txt", false),
        ("d020/x.log", true), // *.log
        ("d021/sub/y.log", true),
    ];
    let mut dirs = vec![
        PathBuf::from("d007/build9/deep"),
        PathBuf::from("d007/build9"),
        PathBuf::from("cache-10"),
        PathBuf::from("d009/cache-10"),
        PathBuf::from("d021/sub"),
    ];
    for (rel, _) in extra {
        let p = src.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        write_file(&p, rel.as_bytes(), 0o644, clock.tick());
    }
    for d in 0..DIRS {
        dirs.push(PathBuf::from(format!("d{d:03}")));
    }
    finish_dirs(&src, dirs, &mut clock);

    // 10,000 patterns, a mix; a few really match (see `extra`).
    let mut pats = String::from("# generated exclude list\n\n");
    for i in 0..10_000 {
        let line = match i % 4 {
            0 => format!("*.tmp{i}"),
            1 => format!("build{i}/"),
            2 => format!("cache-{i}/*.o"),
            _ => format!("/root-only-{i}.txt"),
        };
        pats.push_str(&line);
        pats.push('\n');
    }
    pats.push_str("*.log\n");
    let excludes = tmp.path().join("excludes.txt");
    fs::write(&excludes, pats).unwrap();

    // The destination already holds excluded files and stray files.
    let stray: &[&str] = &[
        "d000/junk.tmp8",
        "d007/build9/old.o",
        "cache-10/a.o",
        "stray-dir/a",
        "stray-dir/b/c",
        "d001/stray.txt",
        "excluded-only-in-dest.log",
        "d499/f000.txt.bak",
    ];
    for rel in stray {
        let p = dst.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        write_file(&p, b"old stuff in the destination\n", 0o644, clock.tick());
    }

    let excluded: Vec<&str> = vec![
        "d000/junk.tmp8",
        "d050/junk.tmp8",
        "d007/build9",
        "cache-10/a.o",
        "root-only-11.txt",
        "d020/x.log",
        "d021/sub/y.log",
    ];
    let run = azsync_sync(
        &src,
        &dst,
        &[
            "--delete",
            "--delete-excluded",
            "--exclude-from",
            excludes.to_str().unwrap(),
        ],
    );
    run.expect_ok();
    let expected = Snapshot::take(&src).without(|p| excluded.iter().any(|e| e.as_bytes() == p));
    assert_eq!(
        expected.count(&Kind::File),
        DIRS * FILES_PER_DIR + extra.iter().filter(|(_, ex)| !ex).count(),
        "test sanity: expected file count"
    );
    let got = Snapshot::take(&dst);
    for rel in stray {
        assert!(
            !exists_nofollow(&dst.join(rel)),
            "{rel} (stray or excluded) is still in the destination"
        );
    }
    assert_same(
        &expected,
        &got,
        Compare::Exact,
        "destination = source less the excluded paths",
    );
}

/// One directory far larger than any batch: it is sent in slices, and `--delete` must still
/// see the whole directory (an entry in one slice is not "missing" from another).
#[test]
fn huge_single_directory_with_delete() {
    let tmp = fast_tempdir("azsync-bigdir-");
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let big = src.join("big");
    fs::create_dir_all(&big).unwrap();
    const N: usize = 30_000;
    let write = |p: PathBuf, i: usize| {
        let t = at(1_600_000_000 + i as u64, (i * 7919 % 1_000_000_000) as u32);
        let mut f = fs::File::create(p).unwrap();
        f.write_all(format!("{i}\n").as_bytes()).unwrap();
        f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
            .unwrap();
    };
    for i in 0..N {
        write(big.join(format!("f{i:05}")), i);
    }
    write(src.join("z-after.txt"), 1);
    set_mtime(&big, at(1_610_000_000, 1));
    set_mtime(&src, at(1_610_000_000, 2));
    azsync_sync(&src, &dst, &[]).expect_ok();
    assert_replica(&src, &dst);

    for i in (0..N).step_by(3) {
        fs::remove_file(big.join(format!("f{i:05}"))).unwrap();
    }
    for i in 0..1000 {
        write(big.join(format!("g{i:05}")), i);
    }
    for i in (0..N).step_by(1000) {
        write(dst.join(format!("big/f{i:05}.stray")), i);
    }
    set_mtime(&big, at(1_620_000_000, 3));
    let (run, rep) = azsync_sync_json(&src, &dst, &["--delete"]);
    run.expect_ok();
    assert_replica(&src, &dst);
    assert_eq!(
        num(&rep, "deleted"),
        (N / 3 + N / 1000) as u64,
        "deleted count: {rep}"
    );
}

// ---------------------------------------------------------------------------------------------
// Destination safety
// ---------------------------------------------------------------------------------------------

/// A directory outside both trees, with files, whose snapshot must never change.
fn outside_dir(tmp: &Path, name: &str) -> PathBuf {
    let o = tmp.join(name);
    build(
        &o,
        &[
            ("f.txt", "outside, must not change\n"),
            ("keep/inner.txt", "inner\n"),
        ],
    );
    o
}

#[test]
fn dest_symlink_where_source_has_dir_is_replaced_not_followed() {
    let (tmp, src, dst) = setup();
    let out_abs = outside_dir(tmp.path(), "outside-abs");
    let out_rel = outside_dir(tmp.path(), "outside-rel");
    build(
        &src,
        &[
            ("a/f1.txt", "one\n"),
            ("a/sub/f2.txt", "two\n"),
            ("b/f.txt", "bee\n"),
            ("b/keep/inner.txt", "new inner\n"),
        ],
    );
    fs::create_dir(&dst).unwrap();
    make_symlink(&out_abs, &dst.join("a"));
    make_symlink("../outside-rel", &dst.join("b"));
    let before_abs = Snapshot::take(&out_abs);
    let before_rel = Snapshot::take(&out_rel);
    let run = azsync_sync(&src, &dst, &[]);
    run.expect_ok();
    assert_same(
        &before_abs,
        &Snapshot::take(&out_abs),
        Compare::Exact,
        "outside dir (absolute link)",
    );
    assert_same(
        &before_rel,
        &Snapshot::take(&out_rel),
        Compare::Exact,
        "outside dir (relative link)",
    );
    assert!(
        is_real_dir(&dst.join("a")),
        "DEST/a is not a real directory"
    );
    assert!(
        is_real_dir(&dst.join("b")),
        "DEST/b is not a real directory"
    );
    assert_replica(&src, &dst);
}

#[test]
fn dest_symlinked_parent_of_updated_file_is_not_followed() {
    let (tmp, src, dst) = setup();
    let out_p = outside_dir(tmp.path(), "outside-p");
    let out_r = outside_dir(tmp.path(), "outside-r");
    build(
        &src,
        &[
            ("p/f.txt", "new contents from the source\n"),
            ("q/r/f.txt", "deeper\n"),
        ],
    );
    fs::create_dir_all(dst.join("q")).unwrap();
    make_symlink(&out_p, &dst.join("p"));
    make_symlink(&out_r, &dst.join("q/r"));
    let before_p = Snapshot::take(&out_p);
    let before_r = Snapshot::take(&out_r);
    let run = azsync_sync(&src, &dst, &[]);
    run.expect_ok();
    assert_same(
        &before_p,
        &Snapshot::take(&out_p),
        Compare::Exact,
        "outside dir behind DEST/p",
    );
    assert_same(
        &before_r,
        &Snapshot::take(&out_r),
        Compare::Exact,
        "outside dir behind DEST/q/r",
    );
    assert!(is_real_dir(&dst.join("p")) && is_real_dir(&dst.join("q/r")));
    assert_replica(&src, &dst);
}

#[test]
fn dest_symlink_where_source_has_file_is_replaced_not_written_through() {
    let (tmp, src, dst) = setup();
    let out = outside_dir(tmp.path(), "outside");
    build(
        &src,
        &[
            ("f.txt", "the source's f.txt, longer than the outside one\n"),
            ("g.txt", "g\n"),
        ],
    );
    // A different mode and mtime in the source, so a chmod or utimes through the link shows.
    set_mode(&src.join("f.txt"), 0o600);
    set_mtime(&src, at(1_600_100_000, 1));
    fs::create_dir(&dst).unwrap();
    make_symlink(out.join("f.txt"), &dst.join("f.txt"));
    make_symlink("../outside/keep/inner.txt", &dst.join("g.txt"));
    let before = Snapshot::take(&out);
    for opts in [&[][..], &["--checksum"][..], &["--delete"][..]] {
        let run = azsync_sync(&src, &dst, opts);
        run.expect_ok();
        assert_same(
            &before,
            &Snapshot::take(&out),
            Compare::Exact,
            &format!("outside dir behind DEST/f.txt (options {opts:?})"),
        );
        assert_replica(&src, &dst);
    }
}

#[test]
fn dest_symlink_with_delete_never_deletes_outside() {
    let (tmp, src, dst) = setup();
    let out = outside_dir(tmp.path(), "outside");
    build(&src, &[("a/only.txt", "only\n"), ("z.txt", "zed\n")]);
    fs::create_dir(&dst).unwrap();
    make_symlink(&out, &dst.join("a"));
    let before = Snapshot::take(&out);
    let run = azsync_sync(&src, &dst, &["--delete"]);
    run.expect_ok();
    assert_same(
        &before,
        &Snapshot::take(&out),
        Compare::Exact,
        "outside dir behind DEST/a",
    );
    assert_replica(&src, &dst);
}

// ---------------------------------------------------------------------------------------------
// Deletion and exclusion
// ---------------------------------------------------------------------------------------------

#[test]
fn delete_keeps_excluded_and_delete_excluded_removes_them() {
    let (_tmp, src, dst) = setup();
    build(
        &src,
        &[
            ("keep.txt", "keep\n"),
            ("src.log", "never copied\n"),
            ("d/new.txt", "new\n"),
        ],
    );
    build(
        &dst,
        &[
            ("keep.txt", "old\n"),
            ("ignored.log", "excluded, in DEST\n"),
            ("d/old.log", "x\n"),
            ("stray.txt", "stray\n"),
        ],
    );
    let run = azsync_sync(&src, &dst, &["--delete", "--exclude", "*.log"]);
    run.expect_ok();
    assert!(
        dst.join("ignored.log").is_file(),
        "--delete removed an excluded file\n{}",
        run.describe()
    );
    assert!(
        dst.join("d/old.log").is_file(),
        "--delete removed an excluded file\n{}",
        run.describe()
    );
    assert!(
        !exists_nofollow(&dst.join("stray.txt")),
        "--delete kept a stray file"
    );
    assert!(
        !exists_nofollow(&dst.join("src.log")),
        "an excluded file was copied"
    );
    assert_eq!(fs::read(dst.join("keep.txt")).unwrap(), b"keep\n");

    let run = azsync_sync(
        &src,
        &dst,
        &["--delete", "--delete-excluded", "--exclude", "*.log"],
    );
    run.expect_ok();
    assert!(
        !exists_nofollow(&dst.join("ignored.log")),
        "--delete-excluded kept ignored.log"
    );
    assert!(
        !exists_nofollow(&dst.join("d/old.log")),
        "--delete-excluded kept d/old.log"
    );
    assert_same(
        &Snapshot::take(&src).without(|p| p == b"src.log"),
        &Snapshot::take(&dst),
        Compare::Exact,
        "destination after --delete-excluded",
    );
}

/// As in rsync, `--delete-excluded` alone implies `--delete`.
#[test]
fn delete_excluded_alone_implies_delete_like_rsync() {
    require_rsync();
    let (tmp, src, dst) = setup();
    let dst_r = tmp.path().join("dst-rsync");
    build(&src, &[("keep.txt", "keep\n"), ("a.log", "log\n")]);
    let junk: &[(&str, &str)] = &[
        ("stray.txt", "stray\n"),
        ("b.log", "excluded\n"),
        ("keep.txt", "old\n"),
    ];
    build(&dst, junk);
    build(&dst_r, junk);
    azsync_sync(&src, &dst, &["--delete-excluded", "--exclude", "*.log"]).expect_ok();
    rsync_a(&src, &dst_r, &["--delete-excluded", "--exclude", "*.log"]).expect_ok();
    assert!(
        !exists_nofollow(&dst.join("stray.txt")),
        "--delete-excluded did not delete stray.txt"
    );
    assert_same(
        &Snapshot::take(&dst),
        &Snapshot::take(&dst_r),
        Compare::RsyncTolerant,
        "azsync vs rsync",
    );
}

#[test]
fn exclude_syntax_and_azsyncignore() {
    let (_tmp, src, dst) = setup();
    build(
        &src,
        &[
            ("a.log", "x"),
            ("sub/b.log", "x"),
            ("sub/c.txt", "copied"),
            ("logs.txt", "copied: *.log does not match"),
            ("x/build", "a FILE named build: copied"),
            ("y/build/out.bin", "excluded"),
            ("z/deep/build/o", "excluded"),
            ("build/top", "excluded"),
            ("builder/f", "copied"),
            ("a.bak", "excluded by .azsyncignore"),
            ("sub/c.bak", "excluded by .azsyncignore"),
            ("keep.bak", "re-included by !keep.bak"),
            ("scratch-notes/n.txt", "excluded by /scratch-notes/"),
            ("sub/scratch-notes/n.txt", "copied: the pattern is anchored"),
            (
                ".azsyncignore",
                "# comment\n*.bak\n!keep.bak\n/scratch-notes/\n",
            ),
        ],
    );
    let run = azsync_sync(&src, &dst, &["--exclude", "*.log", "--exclude", "build/"]);
    run.expect_ok();
    let excluded = [
        "a.log",
        "sub/b.log",
        "y/build",
        "z/deep/build",
        "build",
        "a.bak",
        "sub/c.bak",
        "scratch-notes",
        // Whether the ignore file itself is copied is not specified.
        ".azsyncignore",
    ];
    let is_excl = |p: &[u8]| excluded.iter().any(|e| e.as_bytes() == p);
    assert_same(
        &Snapshot::take(&src).without(is_excl),
        &Snapshot::take(&dst).without(|p| p == b".azsyncignore"),
        Compare::Exact,
        "destination = source less the excluded paths",
    );
}

// ---------------------------------------------------------------------------------------------
// Dry run and itemize
// ---------------------------------------------------------------------------------------------

#[test]
fn dry_run_changes_nothing_and_itemizes() {
    let (_tmp, src, dst) = setup();
    build(
        &src,
        &[
            ("same.txt", "same\n"),
            ("changed.txt", "v1\n"),
            ("d/keep.txt", "k\n"),
        ],
    );
    azsync_sync(&src, &dst, &[]).expect_ok();
    assert_replica(&src, &dst);

    let mut clock = Clock::default();
    write_file(
        &src.join("changed.txt"),
        b"version two\n",
        0o644,
        clock.tick(),
    );
    add_file(&src.join("new.txt"), b"new\n", 0o644, clock.tick());
    make_dir(&src.join("newdir"), 0o755, clock.tick());
    write_file(
        &src.join("newdir/inner.txt"),
        b"inner\n",
        0o644,
        clock.tick(),
    );
    set_mtime(&src.join("newdir"), clock.tick());
    make_symlink("new.txt", &src.join("newlink"));
    set_mtime(&src, clock.tick());
    write_file(
        &dst.join("old.txt"),
        b"to be deleted\n",
        0o644,
        clock.tick(),
    );

    let before = Snapshot::take(&dst);
    let run = azsync_sync(&src, &dst, &["-n", "--delete", "-i"]);
    run.expect_ok();
    assert_same(
        &before,
        &Snapshot::take(&dst),
        Compare::Exact,
        "DEST after a dry run",
    );
    check_itemize(&run);

    // The real run itemizes the same changes and then DEST is a replica.
    let run = azsync_sync(&src, &dst, &["--delete", "-i"]);
    run.expect_ok();
    check_itemize(&run);
    assert_replica(&src, &dst);
}

#[test]
fn dry_run_does_not_create_dest() {
    let (_tmp, src, dst) = setup();
    build(&src, &[("a.txt", "a\n"), ("d/b.txt", "b\n")]);
    let run = azsync_sync(&src, &dst, &["-n", "-i"]);
    run.expect_ok();
    assert!(
        !exists_nofollow(&dst),
        "a dry run created DEST\n{}",
        run.describe()
    );
    assert!(
        run.stdout().lines().any(|l| l == ">f+++++++++ d/b.txt"),
        "the dry run does not itemize d/b.txt\n{}",
        run.describe()
    );
}

fn check_itemize(run: &Run) {
    let out = run.stdout();
    let lines: Vec<&str> = out.lines().collect();
    let has = |pred: &dyn Fn(&str) -> bool, what: &str| {
        assert!(
            lines.iter().any(|l| pred(l)),
            "no itemize line for {what}\n{}",
            run.describe()
        );
    };
    has(&|l| l == ">f+++++++++ new.txt", "`>f+++++++++ new.txt`");
    has(
        &|l| l.starts_with(">f") && l.ends_with(" changed.txt"),
        "`>f... changed.txt`",
    );
    has(&|l| l == "cd+++++++++ newdir/", "`cd+++++++++ newdir/`");
    has(
        &|l| l == ">f+++++++++ newdir/inner.txt",
        "`>f+++++++++ newdir/inner.txt`",
    );
    has(
        &|l| l == "cL+++++++++ newlink -> new.txt",
        "`cL+++++++++ newlink -> new.txt`",
    );
    has(
        &|l| l.starts_with("*deleting") && l.ends_with(" old.txt"),
        "`*deleting   old.txt`",
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("same.txt") || l.contains("keep.txt")),
        "an unchanged file is itemized\n{}",
        run.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// Errors and exit codes
// ---------------------------------------------------------------------------------------------

#[test]
fn dir_in_the_way_of_a_file_fails_that_file_only() {
    let (_tmp, src, dst) = setup();
    build(
        &src,
        &[
            ("blocker", "a file in the source\n"),
            ("other.txt", "o\n"),
            ("d/inner.txt", "i\n"),
        ],
    );
    build(
        &dst,
        &[("blocker/keep.txt", "a directory in the destination\n")],
    );
    let is_blocker = |p: &[u8]| p == b"blocker" || p == b".";

    let run = azsync_sync(&src, &dst, &[]);
    run.expect_code(23);
    assert!(
        run.stderr().lines().any(|l| l.contains("blocker")),
        "stderr does not name the failed path\n{}",
        run.describe()
    );
    assert!(is_real_dir(&dst.join("blocker")));
    assert_eq!(
        fs::read(dst.join("blocker/keep.txt")).unwrap(),
        b"a directory in the destination\n"
    );
    assert_same(
        &Snapshot::take(&src).without(is_blocker),
        &Snapshot::take(&dst).without(is_blocker),
        Compare::Exact,
        "the rest of the tree is synced",
    );

    let (run, rep) = azsync_sync_json(&src, &dst, &[]);
    run.expect_code(23);
    let errs = errors(&rep);
    assert!(
        errs.iter().any(|(p, _)| p == "blocker"),
        "--json errors do not list `blocker`: {rep}"
    );
    assert_eq!(errs.len(), 1, "only one error expected: {rep}");

    let run = azsync_sync(&src, &dst, &["--delete"]);
    run.expect_ok();
    assert_replica(&src, &dst);
}

#[test]
fn usage_errors_exit_2() {
    let (_tmp, src, dst) = setup();
    let s = src.to_str().unwrap();
    let d = dst.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["sync"],
        vec!["sync", s],
        vec!["sync", "--no-such-flag", s, d],
        vec!["sync", s, d, "extra-positional"],
        vec!["no-such-subcommand"],
        vec!["sync", "--exclude"],
    ];
    for args in cases {
        let run = run_azsync(&args);
        run.expect_code(2);
        assert!(
            !run.stderr().trim().is_empty(),
            "usage error without a message\n{}",
            run.describe()
        );
    }
    assert!(!exists_nofollow(&dst), "a usage error created DEST");
}

#[test]
fn missing_source_exits_1_naming_it() {
    let (tmp, _src, dst) = setup();
    let missing = tmp.path().join("no-such-source-dir");
    let run = azsync_sync(&missing, &dst, &[]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("no-such-source-dir"),
        "the error does not name the missing path\n{}",
        run.describe()
    );
}

#[test]
fn relative_paths_from_the_working_directory() {
    let (tmp, src, _dst) = setup();
    build(&src, &[("a.txt", "a\n"), ("d/b.txt", "b\n")]);
    let mut cmd = std::process::Command::new(azsync_bin());
    cmd.current_dir(tmp.path())
        .args(["sync", "--no-progress", "src", "dst"]);
    let out = run_with_timeout(cmd, RUN_TIMEOUT);
    assert!(
        out.status.success(),
        "{}",
        describe("azsync sync src dst (in the temp dir)", &out)
    );
    assert_replica(&src, &tmp.path().join("dst"));

    // A trailing slash on SRC changes nothing: still the contents.
    let mut cmd = std::process::Command::new(azsync_bin());
    cmd.current_dir(tmp.path())
        .args(["sync", "--no-progress", "src/", "dst2/"]);
    let out = run_with_timeout(cmd, RUN_TIMEOUT);
    assert!(
        out.status.success(),
        "{}",
        describe("azsync sync src/ dst2/ (in the temp dir)", &out)
    );
    assert_replica(&src, &tmp.path().join("dst2"));
}

// ---------------------------------------------------------------------------------------------
// Special files and links
// ---------------------------------------------------------------------------------------------

#[test]
fn fifo_and_socket_are_skipped_as_special() {
    let (_tmp, src, dst) = setup();
    build(&src, &[("a.txt", "a\n"), ("d/b.txt", "b\n")]);
    make_fifo(&src.join("pipe"));
    make_fifo(&src.join("d/pipe2"));
    let sock = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    set_mtime(&src.join("d"), at(1_600_000_500, 5));
    set_mtime(&src, at(1_600_000_600, 6));
    let (run, rep) = azsync_sync_json(&src, &dst, &[]);
    drop(sock);
    run.expect_ok();
    let got: BTreeSet<(String, String)> = skipped(&rep).into_iter().collect();
    let want: BTreeSet<(String, String)> = ["pipe", "d/pipe2", "sock"]
        .iter()
        .map(|p| (p.to_string(), "special".to_string()))
        .collect();
    assert_eq!(got, want, "skipped specials: {rep}");
    let specials = |p: &[u8]| p == b"pipe" || p == b"d/pipe2" || p == b"sock";
    assert_same(
        &Snapshot::take(&src).without(specials),
        &Snapshot::take(&dst),
        Compare::Exact,
        "destination = source less the special files",
    );

    // A FIFO in the destination that the source lacks is deleted by --delete (never opened).
    make_fifo(&dst.join("old-pipe"));
    make_fifo(&dst.join("d/old-pipe"));
    let run = azsync_sync(&src, &dst, &["--delete"]);
    run.expect_ok();
    assert_same(
        &Snapshot::take(&src).without(specials),
        &Snapshot::take(&dst),
        Compare::Exact,
        "destination after --delete of FIFOs",
    );
}

#[test]
fn safe_links_drops_links_leaving_the_tree() {
    require_rsync();
    let (tmp, src, dst) = setup();
    build(&src, &[("file.txt", "f\n"), ("sub/inner.txt", "i\n")]);
    make_symlink("file.txt", &src.join("in-tree"));
    make_symlink("../file.txt", &src.join("sub/up"));
    make_symlink("/etc/passwd", &src.join("abs"));
    make_symlink("../../x", &src.join("sub/escape"));
    make_symlink("../x", &src.join("escape-root"));
    set_mtime(&src.join("sub"), at(1_600_000_500, 5));
    set_mtime(&src, at(1_600_000_600, 6));
    let (run, rep) = azsync_sync_json(&src, &dst, &["--safe-links"]);
    run.expect_ok();
    let got: BTreeSet<(String, String)> = skipped(&rep).into_iter().collect();
    let want: BTreeSet<(String, String)> = ["abs", "sub/escape", "escape-root"]
        .iter()
        .map(|p| (p.to_string(), "unsafe-link".to_string()))
        .collect();
    assert_eq!(got, want, "skipped unsafe links: {rep}");
    assert_eq!(
        fs::read_link(dst.join("in-tree")).unwrap(),
        Path::new("file.txt")
    );
    assert_eq!(
        fs::read_link(dst.join("sub/up")).unwrap(),
        Path::new("../file.txt")
    );
    let unsafe_ = |p: &[u8]| p == b"abs" || p == b"sub/escape" || p == b"escape-root";
    assert_same(
        &Snapshot::take(&src).without(unsafe_),
        &Snapshot::take(&dst),
        Compare::Exact,
        "destination = source less the unsafe links",
    );
    let dst_r = tmp.path().join("dst-rsync");
    rsync_a(&src, &dst_r, &["--safe-links"]).expect_ok();
    assert_same(
        &Snapshot::take(&dst),
        &Snapshot::take(&dst_r),
        Compare::RsyncTolerant,
        "azsync vs rsync --safe-links",
    );
}

/// Without --safe-links every link is copied verbatim, none is followed.
#[test]
fn links_are_copied_verbatim_without_safe_links() {
    let (_tmp, src, dst) = setup();
    build(&src, &[("file.txt", "f\n")]);
    for (name, target) in [
        ("abs", "/etc/passwd"),
        ("esc", "../../x"),
        ("dangling", "nope"),
        ("dir", "/etc"),
    ] {
        make_symlink(target, &src.join(name));
    }
    set_mtime(&src, at(1_600_000_600, 6));
    let (run, rep) = azsync_sync_json(&src, &dst, &[]);
    run.expect_ok();
    assert!(skipped(&rep).is_empty(), "{rep}");
    assert_replica(&src, &dst);
}

/// `-z` shrinks text on the wire, sends random data as it is (no growth), and the result is the
/// same replica; `--fsync` changes nothing but durability.
#[test]
fn compress_shrinks_text_and_leaves_random_data_alone() {
    use rand::SeedableRng;
    let (tmp, src, dst) = setup();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut text_bytes = 0u64;
    for i in 0..100 {
        let text = random_text(&mut rng, 40_000);
        text_bytes += text.len() as u64;
        write_file(
            &src.join(format!("t{i:03}.rs")),
            &text,
            0o644,
            at(1_600_000_000 + i, 0),
        );
    }
    let noise = random_bytes(&mut rng, 4 << 20);
    write_file(&src.join("noise.bin"), &noise, 0o644, at(1_600_001_000, 0));

    let (run, plain) = azsync_sync_json(&src, &dst, &[]);
    run.expect_ok();
    let plain_sent = num(&plain, "bytes_sent");
    assert!(plain_sent > text_bytes + noise.len() as u64, "{plain}");

    let zdst = tmp.path().join("zdst");
    let (run, packed) = azsync_sync_json(&src, &zdst, &["-z", "--fsync"]);
    run.expect_ok();
    assert_replica(&src, &zdst);
    let sent = num(&packed, "bytes_sent");
    // Text of a few words compresses several times over; the noise may not grow by more than
    // the frame headers.
    assert!(
        sent < text_bytes / 3 + noise.len() as u64 + 64 * 1024,
        "sent {sent} of {text_bytes} text + {} noise: {packed}",
        noise.len()
    );

    let out_of_range = run_azsync([
        "sync".as_ref(),
        "--compress-level".as_ref(),
        "0".as_ref(),
        src.as_os_str(),
        zdst.as_os_str(),
    ] as [&std::ffi::OsStr; 5]);
    out_of_range.expect_code(2);
}

/// `azsync bench` runs the harness of `benches/` against this very binary and rsync, and prints
/// its Markdown report (a small tree, one run: the same code path as the full benchmark).
#[test]
fn bench_compares_against_rsync_and_prints_a_report() {
    require_rsync();
    let (tmp, _, _) = setup();
    let work = tmp.path().join("bench");
    let run = run_azsync([
        "bench".as_ref(),
        "--files".as_ref(),
        "300".as_ref(),
        "--runs".as_ref(),
        "1".as_ref(),
        "--dir".as_ref(),
        work.as_os_str(),
    ] as [&std::ffi::OsStr; 7]);
    run.expect_ok();
    let report = run.stdout();
    for needle in ["| scenario", "rsync", "no-op", "ratio"] {
        assert!(
            report.contains(needle),
            "no {needle:?} in the report:\n{report}"
        );
    }
}
