//! A throwaway OpenSSH server for tests: its own temp dir, host key, client key and port.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::{HostKeyPolicy, SshAgent, SshOptions, SshTarget};

const SSHD: &str = "/usr/sbin/sshd";

/// A running `sshd -D -e` on 127.0.0.1, killed on drop.
pub(crate) struct TestSshd {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// A client key listed in authorized_keys.
    pub client_key: PathBuf,
    /// The host's public key line (`ssh-ed25519 AAAA... comment`).
    pub host_public: String,
    child: Child,
}

impl TestSshd {
    /// Starts a server that accepts `client_key` for the current user.
    pub fn start() -> TestSshd {
        let sshd = Path::new(SSHD);
        if !sshd.exists() {
            panic!("sshd is required: apt-get install openssh-server (the README test command installs it)");
        }
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("mkdir -p /run/sshd");
        let dir = tempfile::tempdir().expect("temp dir");
        let host_key = dir.path().join("host_ed25519");
        keygen(&host_key, "ed25519", "");
        let client_key = dir.path().join("id_ed25519");
        keygen(&client_key, "ed25519", "");
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(pub_path(&client_key), &authorized).expect("authorized_keys");
        let host_public = std::fs::read_to_string(pub_path(&host_key)).expect("host key");

        // A free port can be taken by someone else before sshd binds it; try a few.
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\n\
                     HostKey {host}\n\
                     AuthorizedKeysFile {authorized}\n\
                     StrictModes no\n\
                     PubkeyAuthentication yes\n\
                     PasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\n\
                     PidFile none\n\
                     UsePAM no\n\
                     LogLevel INFO\n\
                     Subsystem sftp internal-sftp\n",
                    host = host_key.display(),
                    authorized = authorized.display(),
                ),
            )
            .expect("sshd_config");
            let mut command = Command::new(sshd);
            // If this test process is killed, its servers must not live on.
            // SAFETY: prctl is async-signal-safe and touches no memory of this process.
            unsafe {
                command.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut child = command
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .arg("-p")
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start sshd");
            let stderr = child.stderr.take().expect("sshd stderr");
            let (ready_tx, ready_rx) = mpsc::channel();
            // Reads sshd's log until it says it listens, then keeps draining it so that sshd
            // never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut log = String::new();
                let mut ready_tx = Some(ready_tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(tx) = &ready_tx {
                        log.push_str(&line);
                        log.push('\n');
                        if line.contains("Server listening on") {
                            let _ = tx.send(Ok(()));
                            ready_tx = None;
                        }
                    } else if std::env::var_os("AZSYNC_SSHD_LOG").is_some() {
                        eprintln!("sshd: {line}");
                    }
                }
                if let Some(tx) = ready_tx {
                    let _ = tx.send(Err(log));
                }
            });
            match ready_rx.recv_timeout(Duration::from_secs(20)) {
                Ok(Ok(())) => {
                    return TestSshd {
                        port,
                        dir,
                        client_key,
                        host_public,
                        child,
                    }
                }
                Ok(Err(log)) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = log;
                    if last_log.contains("Address already in use") {
                        continue;
                    }
                    panic!("sshd did not start:\n{last_log}");
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("sshd did not report \"Server listening on\" within 20 s");
                }
            }
        }
        panic!("sshd could not bind a port:\n{last_log}");
    }

    pub fn target(&self) -> SshTarget {
        SshTarget {
            user: current_user(),
            host: "127.0.0.1".into(),
            port: self.port,
        }
    }

    /// Options that touch nothing outside the temp dir: no agent, this server's client key,
    /// a known_hosts file in the temp dir, a home without keys.
    pub fn options(&self) -> SshOptions {
        SshOptions {
            keys: vec![self.client_key.clone()],
            known_hosts: Some(self.known_hosts()),
            policy: HostKeyPolicy::AcceptNew,
            connect_timeout: Duration::from_secs(10),
            home: Some(self.dir.path().join("home")),
            agent: SshAgent::Off,
        }
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// The known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        let mut fields = self.host_public.split_whitespace();
        let (kind, key) = (fields.next().unwrap(), fields.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {key}\n", self.port)
    }

    /// The host key's fingerprint as `ssh-keygen -l` prints it (`SHA256:...`).
    pub fn host_fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(self.dir.path().join("host_ed25519.pub"))
            .output()
            .expect("ssh-keygen -l");
        let text = String::from_utf8(out.stdout).unwrap();
        text.split_whitespace().nth(1).unwrap().to_string()
    }

    /// Adds a public key file to authorized_keys.
    pub fn authorize(&self, public_key: &Path) {
        let line = std::fs::read_to_string(public_key).unwrap();
        let path = self.dir.path().join("authorized_keys");
        let mut all = std::fs::read_to_string(&path).unwrap();
        all.push_str(&line);
        std::fs::write(path, all).unwrap();
    }
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ssh-keygen -t kind -N passphrase -f path`.
pub(crate) fn keygen(path: &Path, kind: &str, passphrase: &str) {
    let mut command = Command::new("ssh-keygen");
    command.args([
        "-q",
        "-t",
        kind,
        "-N",
        passphrase,
        "-C",
        "azsync-test",
        "-f",
    ]);
    command.arg(path);
    if kind == "rsa" {
        command.args(["-b", "2048"]);
    }
    let status = command
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen is required (openssh-client)");
    assert!(status.success(), "ssh-keygen -t {kind} failed");
}

pub(crate) fn pub_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

pub(crate) fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
