//! A real OpenSSH server on 127.0.0.1, started per test with its own host key, authorized key,
//! config and home directory, and stopped when dropped.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// How azsync reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The built-in SSH client (russh).
    Native,
    /// The system ssh command (`--rsh`).
    Rsh,
    /// The built-in SSH client with `--sftp`: no agent, the receiver's work done over SFTP.
    Sftp,
}

pub struct TestSshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The client's private key (ed25519, no passphrase), authorized for `user`.
    pub client_key: PathBuf,
    /// A known_hosts file that holds this server's key for `[127.0.0.1]:port`.
    pub known_hosts: PathBuf,
    /// The remote home (`$HOME` and `cd` in sessions point here, not at the real home).
    pub home: PathBuf,
    pub user: String,
    child: Child,
}

const SSHD: &str = "/usr/sbin/sshd";

pub fn require_sshd() {
    assert!(
        Path::new(SSHD).exists(),
        "sshd is required at {SSHD}: apt-get install openssh-server (the README test command \
         installs it)"
    );
    assert!(
        Command::new("ssh").arg("-V").output().is_ok(),
        "ssh is required: apt-get install openssh-client"
    );
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "azsync-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen is required: apt-get install openssh-client");
    assert!(out.status.success(), "ssh-keygen failed: {out:?}");
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl TestSshd {
    pub fn start() -> TestSshd {
        TestSshd::start_with_env(&[])
    }

    /// Like [`start`](Self::start), with more `NAME=value` variables set in every session (one
    /// `SetEnv` line holds them all: sshd keeps only the first `SetEnv`).
    pub fn start_with_env(env: &[&str]) -> TestSshd {
        TestSshd::start_with(env, "internal-sftp")
    }

    /// Like [`start_with_env`](Self::start_with_env), with `sftp` as the SFTP subsystem's
    /// command.
    pub fn start_with(env: &[&str], sftp: &str) -> TestSshd {
        require_sshd();
        // Privilege separation needs this directory; a fresh container may lack it.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::Builder::new()
            .prefix("azsync-sshd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        let home = d.join("home");
        std::fs::create_dir_all(&home).unwrap();
        // Another test may take a port between our probe and sshd's bind: try a few.
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = d.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\nPort {port}\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                     StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\nUsePAM no\nPidFile none\n\
                     Subsystem sftp {sftp}\nSetEnv HOME={home}{env}\nMaxStartups 100\n\
                     LogLevel INFO\n",
                    hk = d.join("host_key").display(),
                    ak = d.join("authorized_keys").display(),
                    home = home.display(),
                    env = env.iter().map(|v| format!(" {v}")).collect::<String>(),
                ),
            )
            .unwrap();
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("cannot start sshd");
            // Ready when sshd says so on stderr: no sleeping, no polling.
            let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
            let mut log = Vec::new();
            let ready = loop {
                match lines.next() {
                    Some(Ok(line)) => {
                        let listening = line.contains("Server listening on");
                        log.push(line);
                        if listening {
                            break true;
                        }
                    }
                    _ => break false,
                }
            };
            if !ready {
                let _ = child.kill();
                let _ = child.wait();
                if log.iter().any(|l| l.contains("Address already in use")) {
                    continue;
                }
                panic!("sshd did not start:\n{}", log.join("\n"));
            }
            // Keep draining sshd's log so it never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
            let known_hosts = d.join("known_hosts");
            std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}")).unwrap();
            return TestSshd {
                port,
                client_key: d.join("client_key"),
                known_hosts,
                home,
                user: current_user(),
                child,
                dir,
            };
        }
        panic!("no free port for sshd after 10 tries");
    }

    /// A system ssh command line for `--rsh` / `rsync -e` that trusts only this server.
    pub fn rsh(&self) -> String {
        format!(
            "ssh -p {} -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes",
            self.port,
            self.client_key.display(),
            self.known_hosts.display()
        )
    }

    /// The azsync options that reach this server `via` one client or the other, trusting only
    /// this server's key.
    pub fn azsync_args(&self, via: Via) -> Vec<String> {
        match via {
            Via::Rsh => vec!["--rsh".into(), self.rsh()],
            Via::Sftp => {
                let mut args = self.azsync_args(Via::Native);
                args.push("--sftp".into());
                args
            }
            Via::Native => vec![
                "-p".into(),
                self.port.to_string(),
                "--key".into(),
                self.client_key.display().to_string(),
                "--known-hosts".into(),
                self.known_hosts.display().to_string(),
                "--host-key-policy".into(),
                "strict".into(),
            ],
        }
    }

    /// `user@127.0.0.1:PATH`.
    pub fn dest(&self, path: &Path) -> String {
        format!("{}@127.0.0.1:{}", self.user, path.display())
    }

    /// The agent this version deploys, in this server's home.
    pub fn deployed_agent(&self) -> PathBuf {
        self.home
            .join(".cache/azsync")
            .join(env!("CARGO_PKG_VERSION"))
            .join("azsync")
    }

    /// Stops the server now (for tests of a dead remote).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        self.stop();
    }
}
