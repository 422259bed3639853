//! Tests against a real OpenSSH server (one per test, each in its own temp dir).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::test_sshd::{free_port, keygen, pub_path, TestSshd};
use super::*;

fn connect(sshd: &TestSshd, opts: &SshOptions) -> Result<SshSession> {
    SshSession::connect(&sshd.target(), opts)
}

fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn ssh_connect_and_run_echo() {
    let sshd = TestSshd::start();
    let session = connect(&sshd, &sshd.options()).unwrap();
    let out = session.run("echo hi", None).unwrap();
    assert_eq!(out.stdout, b"hi\n");
    assert_eq!(out.stderr, b"");
    assert_eq!(out.status, Some(0));
    assert_eq!(session.peer(), format!("{}", sshd.target()));
}

#[test]
fn ssh_run_feeds_stdin_and_collects_stderr_and_status() {
    let sshd = TestSshd::start();
    let session = connect(&sshd, &sshd.options()).unwrap();
    let out = session
        .run("cat; echo oops >&2; exit 3", Some(b"some input"))
        .unwrap();
    assert_eq!(out.stdout, b"some input");
    assert_eq!(out.stderr, b"oops\n");
    assert_eq!(out.status, Some(3));

    // A command that never reads its (large) stdin must not hang the call.
    let out = session.run("exit 0", Some(&vec![7u8; 8 << 20])).unwrap();
    assert_eq!(out.status, Some(0));

    // Several commands on one connection, from several threads.
    std::thread::scope(|s| {
        for i in 0..4 {
            let session = &session;
            s.spawn(move || {
                let out = session.run(&format!("echo {i}"), None).unwrap();
                assert_eq!(out.stdout, format!("{i}\n").as_bytes());
            });
        }
    });
}

#[test]
fn ssh_session_survives_commands_that_stop_reading_their_input() {
    // A command that exits before reading all its input can leave russh with data it can
    // never send, which would hang every later request on that connection (see
    // `Client::channel_close`); the session must move to a new connection instead.
    let sshd = TestSshd::start();
    let session = connect(&sshd, &sshd.options()).unwrap();
    let input = vec![5u8; 4 << 20];
    for i in 0..3 {
        let out = session
            .run(
                &format!("head -c {} >/dev/null", 50_000 * (i + 1)),
                Some(&input),
            )
            .unwrap();
        assert_eq!(out.status, Some(0));
        let mut process = session.exec_stream("head -c 100000 >/dev/null").unwrap();
        let chunk = vec![6u8; 256 * 1024];
        while process.writer.write_all(&chunk).is_ok() {}
        assert_eq!(process.wait().unwrap(), Some(0));
        let out = session.run("echo still here", None).unwrap();
        assert_eq!(out.stdout, b"still here\n");
    }
}

#[test]
fn ssh_exec_stream_round_trips_5_mb_through_cat() {
    let sshd = TestSshd::start();
    let session = connect(&sshd, &sshd.options()).unwrap();
    let data = pseudo_random(5 << 20, 0x9e37_79b9_7f4a_7c15);
    let mut process = session.exec_stream("cat").unwrap();
    let mut writer = std::mem::replace(&mut process.writer, Box::new(std::io::sink()));
    let mut reader = std::mem::replace(&mut process.reader, Box::new(std::io::empty()));
    let received = std::thread::scope(|s| {
        let to_send = &data;
        s.spawn(move || {
            // Uneven write sizes, including writes longer than one packet.
            let mut rest = &to_send[..];
            let mut size = 1;
            while !rest.is_empty() {
                let n = size.min(rest.len());
                writer.write_all(&rest[..n]).unwrap();
                rest = &rest[n..];
                size = (size * 7 + 13) % 300_000 + 1;
            }
            writer.flush().unwrap();
            // Dropping the writer sends EOF, which ends `cat`.
        });
        let mut received = Vec::new();
        reader.read_to_end(&mut received).unwrap();
        received
    });
    assert_eq!(process.wait().unwrap(), Some(0));
    assert_eq!(received.len(), data.len());
    assert!(received == data, "cat returned different bytes");
}

/// Regression: with a bounded reading queue, a writer that reads the echo only after writing
/// everything wedged the whole connection (russh's one loop stopped at our full queue, so the
/// window adjustments our writes waited for were never taken in). 64 MiB through `cat` is far
/// more than every buffer on the way (queues, channel windows, pipes) holds.
#[test]
fn ssh_writer_that_reads_its_echo_last_never_wedges_the_connection() {
    let sshd = TestSshd::start();
    let session = connect(&sshd, &sshd.options()).unwrap();
    let mut process = session.exec_stream("cat").unwrap();
    let data = pseudo_random(64 << 20, 11);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let writing = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let result = process.writer.write_all(&data);
            let _ = done_tx.send(());
            result
        });
        // A wedge shows as a writer that never finishes; fail instead of hanging the suite.
        let finished = done_rx.recv_timeout(Duration::from_secs(120)).is_ok();
        if !finished {
            eprintln!("the writer is wedged: 64 MiB through cat did not go out in 120 s");
            std::process::abort();
        }
        writer.join().unwrap()
    });
    writing.unwrap();
    drop(process.writer);
    let mut echoed = Vec::new();
    process.reader.read_to_end(&mut echoed).unwrap();
    assert!(echoed == data, "the echo differs from what was written");
}

#[test]
fn ssh_exec_stream_reports_status_and_broken_pipe() {
    let sshd = TestSshd::start();
    let session = connect(&sshd, &sshd.options()).unwrap();
    let mut process = session.exec_stream("echo done; exit 7").unwrap();
    let mut out = String::new();
    process.reader.read_to_string(&mut out).unwrap();
    assert_eq!(out, "done\n");
    // The command is gone: writing must fail (not block) once the channel closes.
    let chunk = vec![0u8; 64 * 1024];
    let mut failed = None;
    for _ in 0..10_000 {
        if let Err(e) = process.writer.write_all(&chunk) {
            failed = Some(e);
            break;
        }
    }
    let e = failed.expect("writing to an exited command kept succeeding");
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    assert_eq!(process.wait().unwrap(), Some(7));
}

#[test]
fn ssh_sftp_upload_sets_mode_and_renames_atomically() {
    let sshd = TestSshd::start();
    let session = connect(&sshd, &sshd.options()).unwrap();
    let local = sshd.dir.path().join("local.bin");
    let data = pseudo_random(1_000_003, 42);
    std::fs::write(&local, &data).unwrap();
    let remote_dir = sshd.dir.path().join("remote/a/b");
    let remote = remote_dir.join("tool");
    let remote_str = remote.to_str().unwrap();

    session.sftp_upload(&local, remote_str, 0o755).unwrap();
    let out = session
        .run(&format!("stat -c %a '{remote_str}'"), None)
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "755");
    assert_eq!(std::fs::read(&remote).unwrap(), data);
    let names: Vec<_> = std::fs::read_dir(&remote_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["tool".to_string()], "temp file left behind");

    // Replacing an existing file, with a mode the umask would not give.
    std::fs::write(&local, b"v2").unwrap();
    session.sftp_upload(&local, remote_str, 0o640).unwrap();
    let out = session
        .run(&format!("stat -c %a '{remote_str}'"), None)
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "640");
    assert_eq!(std::fs::read(&remote).unwrap(), b"v2");
    assert_eq!(std::fs::read_dir(&remote_dir).unwrap().count(), 1);

    // An empty file works too.
    std::fs::write(&local, b"").unwrap();
    session.sftp_upload(&local, remote_str, 0o700).unwrap();
    assert_eq!(std::fs::read(&remote).unwrap(), b"");

    // A parent that is a file is a clear error naming it.
    let blocker = sshd.dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let err = session
        .sftp_upload(&local, &format!("{}/x/y", blocker.display()), 0o644)
        .unwrap_err()
        .to_string();
    eprintln!("{err}");
    assert!(err.contains("cannot create directory"), "{err}");
    assert!(
        err.contains("blocker: exists and is not a directory"),
        "{err}"
    );
}

#[test]
fn ssh_strict_policy_refuses_unknown_host() {
    let sshd = TestSshd::start();
    let mut opts = sshd.options();
    opts.policy = HostKeyPolicy::Strict;
    let err = connect(&sshd, &opts).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("host key verification failed"), "{err}");
    assert!(err.contains(&sshd.host_fingerprint()), "{err}");
    assert!(err.contains(&format!("[127.0.0.1]:{}", sshd.port)), "{err}");
    assert!(!sshd.known_hosts().exists());
}

#[test]
fn ssh_accept_new_records_host_then_strict_accepts_it() {
    let sshd = TestSshd::start();
    let opts = sshd.options();
    let session = connect(&sshd, &opts).unwrap();
    let added = session.added_host_key().expect("host key added");
    assert!(added.contains(&format!("'[127.0.0.1]:{}' (ED25519)", sshd.port)));
    drop(session);
    assert_eq!(
        std::fs::read_to_string(sshd.known_hosts()).unwrap(),
        sshd.known_hosts_line()
    );
    let mut strict = opts.clone();
    strict.policy = HostKeyPolicy::Strict;
    let session = connect(&sshd, &strict).unwrap();
    assert!(session.added_host_key().is_none());
}

#[test]
fn ssh_changed_host_key_is_refused_with_fingerprint_and_line() {
    let sshd = TestSshd::start();
    let other = std::fs::read_to_string(pub_path(&sshd.client_key)).unwrap();
    let mut fields = other.split_whitespace();
    let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
    std::fs::write(
        sshd.known_hosts(),
        format!(
            "# a comment\nsomewhere.else {kind} {key}\n[127.0.0.1]:{} {kind} {key}\n",
            sshd.port
        ),
    )
    .unwrap();
    for policy in [HostKeyPolicy::AcceptNew, HostKeyPolicy::Strict] {
        let mut opts = sshd.options();
        opts.policy = policy;
        let err = connect(&sshd, &opts).unwrap_err().to_string();
        eprintln!("{err}");
        assert!(err.contains("HAS CHANGED"), "{err}");
        assert!(err.contains(&sshd.host_fingerprint()), "{err}");
        let location = format!("{}:3", sshd.known_hosts().display());
        assert!(err.contains(&location), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
    // Nothing was appended.
    assert_eq!(
        std::fs::read_to_string(sshd.known_hosts())
            .unwrap()
            .lines()
            .count(),
        3
    );
    // Off accepts anything.
    let mut opts = sshd.options();
    opts.policy = HostKeyPolicy::Off;
    connect(&sshd, &opts).unwrap();
}

#[test]
fn ssh_hashed_known_hosts_entry_is_accepted() {
    let sshd = TestSshd::start();
    std::fs::write(sshd.known_hosts(), sshd.known_hosts_line()).unwrap();
    let status = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(sshd.known_hosts())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(sshd.known_hosts()).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
    let mut opts = sshd.options();
    opts.policy = HostKeyPolicy::Strict;
    let session = connect(&sshd, &opts).unwrap();
    assert_eq!(session.run("echo ok", None).unwrap().stdout, b"ok\n");
}

#[test]
fn ssh_wrong_client_key_is_an_auth_error() {
    let sshd = TestSshd::start();
    let wrong = sshd.dir.path().join("id_wrong");
    keygen(&wrong, "ed25519", "");
    let mut opts = sshd.options();
    opts.keys = vec![wrong.clone()];
    let err = connect(&sshd, &opts).unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.contains("permission denied"), "{text}");
    assert!(
        text.contains(&format!("@127.0.0.1:{}", sshd.port)),
        "{text}"
    );
    assert!(text.contains(&wrong.display().to_string()), "{text}");
    assert!(text.contains("publickey"), "{text}");
    assert!(!text.contains('\n'), "{text}");
    assert!(matches!(
        err,
        Error::Transport { ref source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied
    ));

    // No key at all.
    opts.keys.clear();
    let text = connect(&sshd, &opts).unwrap_err().to_string();
    eprintln!("{text}");
    assert!(text.contains("no key to offer"), "{text}");

    // A --key that does not exist is named before anything is tried.
    opts.keys = vec![sshd.dir.path().join("missing_key")];
    let text = connect(&sshd, &opts).unwrap_err().to_string();
    eprintln!("{text}");
    assert!(text.contains("missing_key"), "{text}");
}

#[test]
fn ssh_encrypted_key_without_agent_is_a_clear_error() {
    let sshd = TestSshd::start();
    let encrypted = sshd.dir.path().join("id_encrypted");
    keygen(&encrypted, "ed25519", "correct horse");
    sshd.authorize(&pub_path(&encrypted));
    let mut opts = sshd.options();
    opts.keys = vec![encrypted.clone()];
    let err = connect(&sshd, &opts).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(
        err.contains(&format!(
            "{} is encrypted; add it to ssh-agent",
            encrypted.display()
        )),
        "{err}"
    );
}

/// `ssh-agent -D -a socket`, killed on drop.
struct TestAgent {
    socket: std::path::PathBuf,
    child: Child,
}

impl TestAgent {
    fn start(dir: &Path) -> TestAgent {
        let socket = dir.join("agent.sock");
        let mut child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent is required (openssh-client)");
        // It prints its environment once the socket is listening.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("SSH_AUTH_SOCK="), "{line}");
        TestAgent { socket, child }
    }

    fn add(&self, key: &Path, passphrase: &str, dir: &Path) {
        let askpass = dir.join("askpass.sh");
        std::fs::write(&askpass, format!("#!/bin/sh\necho '{passphrase}'\n")).unwrap();
        let mut perms = std::fs::metadata(&askpass).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
        std::fs::set_permissions(&askpass, perms).unwrap();
        let status = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", "none")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "ssh-add failed");
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ssh_agent_key_is_used_even_when_its_file_is_encrypted() {
    let sshd = TestSshd::start();
    let encrypted = sshd.dir.path().join("id_encrypted");
    keygen(&encrypted, "ed25519", "correct horse");
    sshd.authorize(&pub_path(&encrypted));
    let agent = TestAgent::start(sshd.dir.path());
    agent.add(&encrypted, "correct horse", sshd.dir.path());

    let mut opts = sshd.options();
    opts.keys = vec![encrypted];
    opts.agent = SshAgent::Socket(agent.socket.clone());
    let session = connect(&sshd, &opts).unwrap();
    assert_eq!(session.run("echo agent", None).unwrap().stdout, b"agent\n");

    // An unreachable agent is noted, and the files are still tried.
    opts.agent = SshAgent::Socket(sshd.dir.path().join("no-agent.sock"));
    opts.keys = vec![sshd.client_key.clone()];
    connect(&sshd, &opts).unwrap();
}

#[test]
fn ssh_rsa_key_signs_with_sha2_and_default_keys_are_found() {
    let sshd = TestSshd::start();
    let home = sshd.dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    let rsa = home.join(".ssh/id_rsa");
    keygen(&rsa, "rsa", "");
    sshd.authorize(&pub_path(&rsa));
    let mut opts = sshd.options();
    opts.keys.clear();
    opts.home = Some(home);
    // OpenSSH 8.8+ refuses ssh-rsa (SHA-1) signatures: this only passes with rsa-sha2-*.
    let session = connect(&sshd, &opts).unwrap();
    assert_eq!(session.run("echo rsa", None).unwrap().stdout, b"rsa\n");
}

#[test]
fn ssh_refused_port_is_a_clear_error() {
    let port = free_port();
    let target = SshTarget {
        user: "nobody".into(),
        host: "127.0.0.1".into(),
        port,
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = SshOptions {
        known_hosts: Some(dir.path().join("known_hosts")),
        agent: SshAgent::Off,
        home: Some(dir.path().to_path_buf()),
        ..SshOptions::default()
    };
    let err = SshSession::connect(&target, &opts).unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(text.contains(&format!("127.0.0.1 port {port}")), "{text}");
    assert!(matches!(
        err,
        Error::Transport { ref source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused
    ));
}

#[test]
fn ssh_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = SshTarget {
        user: "nobody".into(),
        host: "127.0.0.1".into(),
        port,
    };
    let dir = tempfile::tempdir().unwrap();
    let opts = SshOptions {
        known_hosts: Some(dir.path().join("known_hosts")),
        agent: SshAgent::Off,
        home: Some(dir.path().to_path_buf()),
        connect_timeout: Duration::from_millis(300),
        ..SshOptions::default()
    };
    let started = Instant::now();
    // The listener accepts (in the kernel backlog) but never says anything.
    let err = SshSession::connect(&target, &opts).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("no SSH handshake within 0.3 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(listener);
}

#[test]
fn ssh_types_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<SshSession>();
    send::<RemoteProcess>();
    send_sync::<SshOptions>();
}

#[test]
fn ssh_target_display_brackets_ipv6() {
    let target = SshTarget {
        user: "me".into(),
        host: "::1".into(),
        port: 2222,
    };
    assert_eq!(target.to_string(), "me@[::1]:2222");
    assert_eq!(
        known_hosts::host_entry_name("::1", 2222),
        "[::1]:2222".to_string()
    );
    assert_eq!(port_of("[::1]:2222"), 2222);
    assert_eq!(host_of("[::1]:2222"), "::1");
    assert_eq!(host_of("example.com"), "example.com");
}

#[test]
fn ssh_known_host_key_types_are_asked_for_first() {
    let defaults = Preferred::default().key.to_vec();
    let order = host_key_order(&[Algorithm::Rsa { hash: None }], &defaults);
    assert_eq!(
        &order[..2],
        &[
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512)
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256)
            }
        ]
    );
    assert_eq!(order.len(), defaults.len());
}
