//! A throwaway OpenSSH server for tests: its own temp dir, host key, client key and port, and
//! key helpers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{HostKeyPolicy, SshAgent, SshOptions, SshTarget};

/// A running `sshd -D -e` on 127.0.0.1 (the shared test server of `tests/support`), killed on
/// drop. Unlike the end-to-end tests, these tests start with an empty known_hosts.
pub(crate) struct TestSshd {
    // Declared first so the server stops before its folder is removed.
    _server: azsync_test_support::Sshd,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// A client key listed in authorized_keys.
    pub client_key: PathBuf,
    /// The host's public key line (`ssh-ed25519 AAAA... comment`).
    pub host_public: String,
}

impl TestSshd {
    /// Starts a server that accepts `client_key` for the current user.
    pub fn start() -> TestSshd {
        let dir = tempfile::tempdir().expect("temp dir");
        let server =
            azsync_test_support::Sshd::start(&azsync_test_support::SshdConfig::new(dir.path()))
                .unwrap_or_else(|e| panic!("{e}"));
        let host_public =
            std::fs::read_to_string(dir.path().join("host_key.pub")).expect("host key");
        TestSshd {
            port: server.port,
            client_key: server.client_key.clone(),
            host_public,
            _server: server,
            dir,
        }
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

    /// The client's known_hosts: empty at first (the server's own pre-filled file is not it).
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("client_known_hosts")
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
            .arg(self.dir.path().join("host_key.pub"))
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
