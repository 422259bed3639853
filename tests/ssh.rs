//! azsync against a real OpenSSH server on 127.0.0.1: agent deployment, host keys,
//! authentication, deltas over SSH, and a connection cut in the middle of a sync.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::sshd::{TestSshd, Via};
use common::*;

/// Each case runs once with the built-in SSH client and once through the system ssh.
macro_rules! both_clients {
    ($($case:ident),* $(,)?) => {
        mod native {
            $(#[test]
            fn $case() {
                super::$case(super::Via::Native);
            })*
        }
        mod rsh {
            $(#[test]
            fn $case() {
                super::$case(super::Via::Rsh);
            })*
        }
    };
}

both_clients!(
    first_contact_deploys_the_agent_and_later_runs_reuse_it,
    relative_destinations_are_under_the_remote_home,
    concurrent_first_contacts_leave_one_whole_agent,
    an_installed_agent_path_is_used_as_is,
    a_small_change_in_a_large_file_sends_a_delta_over_ssh,
    a_changed_host_key_is_refused,
);

/// `azsync sync --no-progress --json <client options> EXTRA SRC user@127.0.0.1:DST`.
fn sync_via(sshd: &TestSshd, via: Via, src: &Path, dst: &Path, extra: &[&str]) -> Run {
    let client = sshd.azsync_args(via);
    let mut args = vec!["sync", "--no-progress", "--json"];
    args.extend(client.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let dest = sshd.dest(dst);
    let src = src.to_str().unwrap();
    args.push(src);
    args.push(&dest);
    run_azsync(args)
}

fn small_tree(root: &Path) {
    let t = at(1_700_000_000, 123_456_789);
    make_dir(root, 0o755, t);
    write_file(&root.join("a.txt"), b"alpha\n", 0o644, t);
    make_dir(&root.join("sub"), 0o700, t);
    write_file(&root.join("sub/b.bin"), &[7u8; 70_000], 0o600, t);
    set_dir_meta(&root.join("sub"), 0o700, t);
    set_dir_meta(root, 0o755, t);
}

fn first_contact_deploys_the_agent_and_later_runs_reuse_it(via: Via) {
    let sshd = TestSshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    small_tree(&src);

    let agent = sshd.deployed_agent();
    assert!(!agent.exists());
    sync_via(&sshd, via, &src, &dst, &[]).expect_ok();
    assert_replica(&src, &dst);
    let meta = std::fs::metadata(&agent).expect("the agent was deployed");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::read(&agent).unwrap(),
        std::fs::read(azsync_bin()).unwrap(),
        "the deployed agent is this build"
    );
    // No temp upload left beside it.
    let siblings: Vec<_> = std::fs::read_dir(agent.parent().unwrap())
        .unwrap()
        .collect();
    assert_eq!(siblings.len(), 1);

    let run = sync_via(&sshd, via, &src, &dst, &[]);
    run.expect_ok();
    assert_eq!(num(&run.json(), "files_transferred"), 0);
    let again = std::fs::metadata(&agent).unwrap();
    assert_eq!(
        (again.ino(), again.mtime(), again.mtime_nsec()),
        (meta.ino(), meta.mtime(), meta.mtime_nsec()),
        "the second run must reuse the agent, not upload it again"
    );
}

fn relative_destinations_are_under_the_remote_home(via: Via) {
    let sshd = TestSshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let mut args = vec!["sync".to_string(), "--no-progress".into()];
    args.extend(sshd.azsync_args(via));
    args.push(src.display().to_string());
    args.push(format!("{}@127.0.0.1:backup/src", sshd.user));
    run_azsync(args).expect_ok();
    assert_replica(&src, &sshd.home.join("backup/src"));
}

fn concurrent_first_contacts_leave_one_whole_agent(via: Via) {
    let sshd = TestSshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..3)
            .map(|i| {
                let (sshd, src) = (&sshd, &src);
                let dst = tmp.path().join(format!("dst{i}"));
                s.spawn(move || (sync_via(sshd, via, src, &dst, &[]), dst))
            })
            .collect();
        for r in runs {
            let (run, dst) = r.join().unwrap();
            run.expect_ok();
            assert_replica(&src, &dst);
        }
    });
    assert_eq!(
        std::fs::read(sshd.deployed_agent()).unwrap(),
        std::fs::read(azsync_bin()).unwrap()
    );
}

fn an_installed_agent_path_is_used_as_is(via: Via) {
    let sshd = TestSshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    small_tree(&src);
    let bin = azsync_bin();
    sync_via(
        &sshd,
        via,
        &src,
        &dst,
        &["--agent-path", bin.to_str().unwrap()],
    )
    .expect_ok();
    assert_replica(&src, &dst);
    assert!(
        !sshd.deployed_agent().exists(),
        "nothing may be deployed with --agent-path"
    );

    let run = sync_via(
        &sshd,
        via,
        &src,
        &dst,
        &["--agent-path", "/nonexistent/azsync"],
    );
    assert_eq!(run.code(), Some(1), "{}", run.describe());
}

fn a_small_change_in_a_large_file_sends_a_delta_over_ssh(via: Via) {
    let sshd = TestSshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(9);
    let big = random_bytes(&mut rng, 20 * MIB as usize);
    write_file(&src.join("big.bin"), &big, 0o644, at(1_700_000_000, 1));
    sync_via(&sshd, via, &src, &dst, &[]).expect_ok();
    rewrite_range(
        &src.join("big.bin"),
        10 * MIB,
        &random_bytes(&mut rng, 1024),
        at(1_700_000_100, 2),
    );
    let run = sync_via(&sshd, via, &src, &dst, &[]);
    run.expect_ok();
    let report = run.json();
    assert_eq!(num(&report, "files_delta"), 1, "{report}");
    let literal = num(&report, "bytes_literal");
    assert!(
        literal < 20 * MIB / 100,
        "literal {literal} is not under 1%: {report}"
    );
    assert!(num(&report, "bytes_sent") < 20 * MIB / 100, "{report}");
    assert_replica(&src, &dst);
}

fn a_changed_host_key_is_refused(via: Via) {
    let sshd = TestSshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    small_tree(&src);
    // known_hosts claims another key for this host.
    let other = tmp.path().join("other_key");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(out.status.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    std::fs::write(
        &sshd.known_hosts,
        format!("[127.0.0.1]:{} {other_pub}", sshd.port),
    )
    .unwrap();
    let run = sync_via(&sshd, via, &src, &dst, &[]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        !dst.exists(),
        "nothing may be written after a host key mismatch"
    );
}

/// The connection dies after a few MB of a large file: no file appears half-written under its
/// final name, the temp file is gone or reused, and the next run completes.
#[test]
fn a_connection_cut_mid_sync_loses_nothing_and_the_rerun_completes() {
    let sshd = TestSshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
    write_file(&src.join("a-small"), b"small", 0o644, at(1_700_000_000, 0));
    write_file(
        &src.join("big"),
        &random_bytes(&mut rng, 12 * MIB as usize),
        0o644,
        at(1_700_000_000, 0),
    );
    // A wrapper ssh that forwards only the first reads (at most 4 MB) the client sends to the
    // agent. (dd passes each read through at once; `head -c` would hold it back.)
    let wrapper = tmp.path().join("cutting-ssh");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\ncase \"$*\" in\n  *'agent --stdio'*) dd bs=4096 count=1000 2>/dev/null | ssh \"$@\" ;;\n  *) exec ssh \"$@\" ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rsh = sshd.rsh().replacen("ssh", wrapper.to_str().unwrap(), 1);
    let dest = sshd.dest(&dst);
    let cut = run_azsync([
        "sync",
        "--no-progress",
        "--rsh",
        &rsh,
        src.to_str().unwrap(),
        &dest,
    ]);
    assert_eq!(cut.code(), Some(1), "{}", cut.describe());
    // Whatever arrived is whole; the big file is absent under its name, and what arrived of it
    // waits under its temp name for the rerun to resume from.
    let mut partial = 0;
    for item in std::fs::read_dir(&dst).into_iter().flatten() {
        let item = item.unwrap();
        let name = item.file_name();
        let name = name.to_str().unwrap();
        if name.starts_with(".azsync-") && name.ends_with(".tmp") {
            partial = item.metadata().unwrap().len();
            continue;
        }
        assert!(name == "a-small", "unexpected {name} after the cut");
        assert_eq!(std::fs::read(item.path()).unwrap(), b"small");
    }
    let rerun = sync_via(&sshd, Via::Rsh, &src, &dst, &[]);
    rerun.expect_ok();
    // Resumed: the part that arrived (about 4 MB) is matched, not sent again.
    assert!(partial >= MIB, "only {partial} bytes kept for the rerun");
    assert!(
        num(&rerun.json(), "bytes_matched") >= partial - MIB,
        "{partial} bytes arrived before the cut: {}",
        rerun.json()
    );
    // No temp file left: the replica has exactly the source's entries.
    assert_replica(&src, &dst);
}

/// The built-in client with the default policy records a host it has never seen (like
/// OpenSSH's accept-new) and refuses it under `--host-key-policy strict`.
#[test]
fn native_accept_new_records_a_new_host_and_strict_refuses_it() {
    let sshd = TestSshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    small_tree(&src);
    let known = tmp.path().join("known_hosts");
    let base = |policy: &str| {
        vec![
            "sync".to_string(),
            "--no-progress".into(),
            "-p".into(),
            sshd.port.to_string(),
            "--key".into(),
            sshd.client_key.display().to_string(),
            "--known-hosts".into(),
            known.display().to_string(),
            "--host-key-policy".into(),
            policy.into(),
            src.display().to_string(),
            sshd.dest(&dst),
        ]
    };
    let run = run_azsync(base("strict"));
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(!dst.exists());

    run_azsync(base("accept-new")).expect_ok();
    assert_replica(&src, &dst);
    let recorded = std::fs::read_to_string(&known).unwrap();
    let host_key = std::fs::read_to_string(sshd.dir.path().join("host_key.pub")).unwrap();
    let key_fields: Vec<&str> = host_key.split_whitespace().take(2).collect();
    assert!(
        recorded.contains(&format!("[127.0.0.1]:{}", sshd.port))
            && recorded.contains(key_fields[1]),
        "{recorded}"
    );
    // Now known: strict accepts it.
    run_azsync(base("strict")).expect_ok();
}

#[test]
fn native_a_key_the_server_does_not_know_is_an_auth_error() {
    let sshd = TestSshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    small_tree(&src);
    let mut args = vec!["sync".to_string(), "--no-progress".into()];
    args.extend(sshd.azsync_args(Via::Native));
    // Offer the server's own host key as the client key: valid, but not authorized.
    let key_at = args.iter().position(|a| a == "--key").unwrap() + 1;
    args[key_at] = sshd.dir.path().join("host_key").display().to_string();
    args.push(src.display().to_string());
    args.push(sshd.dest(&dst));
    let run = run_azsync(args);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    let stderr = run.stderr();
    assert!(
        stderr.contains("permission denied") && stderr.contains("host_key"),
        "{stderr}"
    );
    assert!(!dst.exists());
}

#[test]
fn native_nothing_listening_is_a_clear_connection_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let run = run_azsync([
        "sync".to_string(),
        "--no-progress".into(),
        "-p".into(),
        port.to_string(),
        tmp.path().display().to_string(),
        "root@127.0.0.1:/tmp/never".into(),
    ]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr().contains("connection refused"),
        "{}",
        run.stderr()
    );
}

// ---------------------------------------------------------------------------------------------
// SFTP mode (`--sftp`) and the automatic fallback to it
// ---------------------------------------------------------------------------------------------

/// SRC and DST agree to the second (all SFTP carries), except for what `skip` names.
fn assert_sftp_replica(src: &Path, dst: &Path, skip: impl Fn(&[u8]) -> bool) {
    assert_same(
        &Snapshot::take(src).without(&skip),
        &Snapshot::take(dst).without(&skip),
        Compare::Seconds,
        "replica over SFTP (mtimes to the second)",
    );
}

fn sftp_stderr_lines(run: &Run) -> usize {
    run.stderr()
        .lines()
        .filter(|l| l.contains("cannot run the azsync agent"))
        .count()
}

#[test]
fn sftp_mode_syncs_excludes_deletes_and_dry_runs() {
    let sshd = TestSshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    small_tree(&src);
    let mut clock = Clock::default();
    make_dir(&src.join(".ssh"), 0o700, clock.tick());
    write_file(
        &src.join(".ssh/id_ed25519"),
        b"-----BEGIN OPENSSH PRIVATE KEY-----\n",
        0o600,
        clock.tick(),
    );
    write_file(&src.join(".ssh/config"), b"Host *\n", 0o644, clock.tick());
    write_file(&src.join(".env"), b"TOKEN=x\n", 0o600, clock.tick());
    write_file(&src.join("build.tmp"), b"scratch\n", 0o644, clock.tick());
    make_symlink("a.txt", &src.join("link"));
    set_dir_meta(&src.join(".ssh"), 0o700, clock.tick());
    set_mtime(&src, clock.tick());
    let excluded =
        |p: &[u8]| matches!(p, b".ssh/id_ed25519" | b".env" | b"build.tmp" | b"keep.tmp");

    let run = sync_via(&sshd, Via::Sftp, &src, &dst, &["--exclude", "*.tmp"]);
    run.expect_ok();
    assert_eq!(
        sftp_stderr_lines(&run),
        0,
        "--sftp is asked for, not a fallback"
    );
    let report = run.json();
    let mut skipped: Vec<String> = skipped(&report).into_iter().map(|(p, _)| p).collect();
    skipped.sort();
    assert_eq!(skipped, [".env", ".ssh/id_ed25519"], "{report}");
    assert_eq!(num(&report, "files_delta"), 0, "{report}");
    assert_sftp_replica(&src, &dst, excluded);
    assert!(!sshd.deployed_agent().exists(), "no agent in SFTP mode");

    // Nothing changed: nothing is sent, although SRC has nanoseconds and DST has none.
    let run = sync_via(&sshd, Via::Sftp, &src, &dst, &["--exclude", "*.tmp"]);
    run.expect_ok();
    assert_eq!(
        num(&run.json(), "files_transferred"),
        0,
        "{}",
        run.describe()
    );

    // Changes in SRC, extras in DST (one of them excluded, so protected from --delete).
    write_file(&src.join("a.txt"), b"alpha, two\n", 0o644, clock.tick());
    add_file(&src.join("sub/new.txt"), b"new\n", 0o640, clock.tick());
    set_mtime(&src.join("sub"), clock.tick());
    write_file(&dst.join("extra.txt"), b"x", 0o644, clock.tick());
    std::fs::create_dir_all(dst.join("extra-dir/deeper")).unwrap();
    write_file(&dst.join("extra-dir/deeper/f"), b"x", 0o644, clock.tick());
    write_file(&dst.join("keep.tmp"), b"mine", 0o644, clock.tick());

    // A dry run changes nothing and says what it would do.
    let before = Snapshot::take(&dst);
    let run = sync_via(
        &sshd,
        Via::Sftp,
        &src,
        &dst,
        &["-n", "--delete", "--exclude", "*.tmp"],
    );
    run.expect_ok();
    assert_same(
        &before,
        &Snapshot::take(&dst),
        Compare::Exact,
        "DST after -n",
    );
    let report = run.json();
    assert!(num(&report, "deleted") >= 2, "{report}");
    assert!(num(&report, "files_transferred") >= 2, "{report}");

    // The real run, itemized.
    let mut args = vec!["sync".to_string(), "--no-progress".into(), "-i".into()];
    args.extend(sshd.azsync_args(Via::Sftp));
    args.extend(["--delete".into(), "--exclude".into(), "*.tmp".into()]);
    args.extend([src.display().to_string(), sshd.dest(&dst)]);
    let run = run_azsync(args);
    run.expect_ok();
    let out = run.stdout();
    let has = |pred: &dyn Fn(&str) -> bool, what: &str| {
        assert!(
            out.lines().any(pred),
            "no itemize line {what}\n{}",
            run.describe()
        );
    };
    has(&|l| l == ">f+++++++++ sub/new.txt", "for sub/new.txt");
    has(
        &|l| l.starts_with("*deleting") && l.ends_with(" extra.txt"),
        "deleting extra.txt",
    );
    has(
        &|l| l.starts_with("*deleting") && l.ends_with(" extra-dir/"),
        "deleting extra-dir/",
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(">f") && l.ends_with(" a.txt")),
        "a.txt is not itemized\n{}",
        run.describe()
    );
    assert_eq!(std::fs::read(dst.join("keep.tmp")).unwrap(), b"mine");
    assert!(!dst.join("extra.txt").exists() && !dst.join("extra-dir").exists());
    assert_sftp_replica(&src, &dst, excluded);
}

#[test]
fn sftp_replaces_a_symlinked_directory_instead_of_following_it() {
    let sshd = TestSshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst, outside) = (
        tmp.path().join("src"),
        tmp.path().join("dst"),
        tmp.path().join("outside"),
    );
    let t = at(1_700_000_000, 0);
    make_dir(&src, 0o755, t);
    make_dir(&src.join("a"), 0o755, t);
    write_file(&src.join("a/f.txt"), b"inside a\n", 0o644, t);
    set_dir_meta(&src.join("a"), 0o755, t);
    set_dir_meta(&src, 0o755, t);
    std::fs::create_dir_all(&outside).unwrap();
    write_file(&outside.join("victim"), b"keep", 0o644, t);
    std::fs::create_dir_all(&dst).unwrap();
    std::os::unix::fs::symlink(&outside, dst.join("a")).unwrap();
    let before = Snapshot::take(&outside);

    sync_via(&sshd, Via::Sftp, &src, &dst, &[]).expect_ok();
    let meta = std::fs::symlink_metadata(dst.join("a")).unwrap();
    assert!(meta.is_dir(), "a is a real directory now");
    assert_eq!(std::fs::read(dst.join("a/f.txt")).unwrap(), b"inside a\n");
    assert_same(
        &before,
        &Snapshot::take(&outside),
        Compare::Exact,
        "the directory the link pointed at",
    );
    assert_sftp_replica(&src, &dst, |_| false);
}

/// A remote `uname` that reports another platform: the agent cannot be deployed, and the
/// built-in client syncs over SFTP instead, saying so once.
#[test]
fn another_platform_falls_back_to_sftp() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("fake-bin");
    std::fs::create_dir_all(&fake).unwrap();
    let real = ["/usr/bin/uname", "/bin/uname"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("uname");
    std::fs::write(
        fake.join("uname"),
        format!(
            "#!/bin/sh\nif [ \"$*\" = \"-sm\" ]; then echo 'FreeBSD amd64'; else exec {real} \"$@\"; fi\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(fake.join("uname"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sshd = TestSshd::start_with_env(&[&format!("PATH={}:/usr/bin:/bin", fake.display())]);
    let src = tmp.path().join("src");
    small_tree(&src);

    // A relative destination is under the remote $HOME, as with the agent.
    let mut args = vec!["sync".to_string(), "--no-progress".into(), "--json".into()];
    args.extend(sshd.azsync_args(Via::Native));
    args.extend([
        src.display().to_string(),
        format!("{}@127.0.0.1:backup/src", sshd.user),
    ]);
    let run = run_azsync(&args);
    run.expect_ok();
    assert_eq!(sftp_stderr_lines(&run), 1, "{}", run.describe());
    assert!(
        run.stderr().lines().any(|l| l.starts_with(
            "azsync: 127.0.0.1 cannot run the azsync agent (it runs FreeBSD amd64 and this \
             azsync is built for "
        ) && l.ends_with("); syncing over SFTP (no deltas)")),
        "{}",
        run.describe()
    );
    assert!(!sshd.deployed_agent().exists(), "nothing may be deployed");
    assert_sftp_replica(&src, &sshd.home.join("backup/src"), |_| false);

    let run = run_azsync(&args);
    run.expect_ok();
    assert_eq!(
        num(&run.json(), "files_transferred"),
        0,
        "{}",
        run.describe()
    );
    assert_eq!(sftp_stderr_lines(&run), 1, "{}", run.describe());

    // A system ssh has no SFTP session of ours to fall back on: a clear error.
    let run = sync_via(&sshd, Via::Rsh, &src, &tmp.path().join("dst"), &[]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr()
            .contains("cannot run the azsync agent (it runs FreeBSD amd64"),
        "{}",
        run.describe()
    );
}

/// Unmounts on drop (before the temp dirs go).
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A remote home where nothing can be executed: the agent is uploaded once, found unable to
/// run, and the sync goes over SFTP; later runs see that at once, without uploading again.
#[test]
fn a_noexec_home_falls_back_to_sftp() {
    let sshd = TestSshd::start();
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    small_tree(&src);
    let cache = sshd.home.join(".cache");
    std::fs::create_dir_all(&cache).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "noexec,size=256m", "tmpfs"])
        .arg(&cache)
        .output()
        .is_ok_and(|o| o.status.success());
    let _mount = mounted.then(|| Mount(cache.clone()));
    if !mounted {
        // Without the privilege to mount, the second half still runs: an agent that is there
        // but not executable is what a noexec mount looks like to `test -x`.
        eprintln!("note: cannot mount a noexec tmpfs here; testing a non-executable agent only");
        let agent = sshd.deployed_agent();
        std::fs::create_dir_all(agent.parent().unwrap()).unwrap();
        std::fs::copy(azsync_bin(), &agent).unwrap();
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    let run = sync_via(&sshd, Via::Native, &src, &dst, &[]);
    run.expect_ok();
    assert_eq!(sftp_stderr_lines(&run), 1, "{}", run.describe());
    assert!(run.stderr().contains("noexec"), "{}", run.describe());
    assert_sftp_replica(&src, &dst, |_| false);
    let agent = std::fs::metadata(sshd.deployed_agent()).expect("the agent was uploaded");

    let run = sync_via(&sshd, Via::Native, &src, &dst, &[]);
    run.expect_ok();
    assert_eq!(sftp_stderr_lines(&run), 1, "{}", run.describe());
    assert_eq!(num(&run.json(), "files_transferred"), 0);
    let again = std::fs::metadata(sshd.deployed_agent()).unwrap();
    assert_eq!(
        (again.ino(), again.mtime_nsec()),
        (agent.ino(), agent.mtime_nsec()),
        "not uploaded again"
    );
}

#[test]
fn sftp_with_rsh_or_a_local_destination_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().display().to_string();
    for args in [
        vec!["--sftp", "--rsh", "ssh", &src, "host:dst"],
        vec!["--sftp", "--agent-path", "/x/azsync", &src, "host:dst"],
        vec!["--sftp", &src, "/tmp/local-dst"],
    ] {
        let mut all = vec!["sync", "--no-progress"];
        all.extend(args);
        let run = run_azsync(&all);
        assert_eq!(run.code(), Some(2), "{}", run.describe());
        assert!(run.stderr().contains("--sftp"), "{}", run.describe());
    }
}

/// The SFTP session dies in the middle of a sync: the sync fails with that (not with an error
/// per remaining file), nothing appears half-written under its final name, and a rerun
/// completes.
#[test]
fn a_lost_sftp_session_ends_the_sync_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // While `cut` exists, the SFTP server sees only the first reads (at most 2.8 MB) of what
    // the client sends. (dd passes each read through at once; `head -c` would hold the end of
    // it back and stall the session instead of ending it.)
    let cut = tmp.path().join("cut");
    std::fs::write(&cut, b"").unwrap();
    let subsystem = tmp.path().join("cutting-sftp-server");
    std::fs::write(
        &subsystem,
        format!(
            "#!/bin/sh\nif [ -e '{cut}' ]; then dd bs=4096 count=700 2>/dev/null | \
             /usr/lib/openssh/sftp-server; else exec /usr/lib/openssh/sftp-server; fi\n",
            cut = cut.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&subsystem, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sshd = TestSshd::start_with(&[], subsystem.to_str().unwrap());
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(8);
    let t = at(1_700_000_000, 0);
    for i in 0..8 {
        let data = random_bytes(&mut rng, 1_000_000);
        write_file(&src.join(format!("f{i}")), &data, 0o644, t);
    }
    set_mtime(&src, t);

    let run = sync_via(&sshd, Via::Sftp, &src, &dst, &[]);
    assert_eq!(run.code(), Some(1), "{}", run.describe());
    assert!(
        run.stderr().contains("SFTP session ended"),
        "{}",
        run.describe()
    );
    for item in std::fs::read_dir(&dst).unwrap() {
        let item = item.unwrap();
        let name = item.file_name();
        if name.to_string_lossy().starts_with(".azsync-") {
            // The temp file in flight when the session died: the rerun reuses it.
            continue;
        }
        assert_eq!(
            std::fs::read(item.path()).unwrap(),
            std::fs::read(src.join(&name)).unwrap(),
            "{name:?} is under its final name but not whole"
        );
    }

    std::fs::remove_file(&cut).unwrap();
    sync_via(&sshd, Via::Sftp, &src, &dst, &[]).expect_ok();
    // No temp file left either.
    assert_sftp_replica(&src, &dst, |_| false);
}
