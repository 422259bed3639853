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
    // Whatever arrived is whole; the big file is absent, never partial.
    for item in std::fs::read_dir(&dst).into_iter().flatten() {
        let item = item.unwrap();
        let name = item.file_name();
        let name = name.to_str().unwrap();
        assert!(name == "a-small", "unexpected {name} after the cut");
        assert_eq!(std::fs::read(item.path()).unwrap(), b"small");
    }
    sync_via(&sshd, Via::Rsh, &src, &dst, &[]).expect_ok();
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
