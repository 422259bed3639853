//! A real OpenSSH server on 127.0.0.1, started per test with its own host key, authorized key,
//! config and home directory, and stopped when dropped.

use std::path::{Path, PathBuf};

use azsync_test_support::{Sshd, SshdConfig};

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
    // Declared first so the server stops before its folder is removed.
    server: Sshd,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The client's private key (ed25519, no passphrase), authorized for `user`.
    pub client_key: PathBuf,
    /// A known_hosts file that holds this server's key for `[127.0.0.1]:port`.
    pub known_hosts: PathBuf,
    /// The remote home (`$HOME` and `cd` in sessions point here, not at the real home).
    pub home: PathBuf,
    pub user: String,
}

impl TestSshd {
    pub fn start() -> TestSshd {
        TestSshd::start_with_env(&[])
    }

    /// Like [`start`](Self::start), with more `NAME=value` variables set in every session.
    pub fn start_with_env(env: &[&str]) -> TestSshd {
        TestSshd::start_with(env, "internal-sftp")
    }

    /// Like [`start_with_env`](Self::start_with_env), with `sftp` as the SFTP subsystem's
    /// command.
    pub fn start_with(env: &[&str], sftp: &str) -> TestSshd {
        let dir = tempfile::Builder::new()
            .prefix("azsync-sshd-")
            .tempdir()
            .unwrap();
        let config = SshdConfig {
            env,
            sftp,
            ..SshdConfig::new(dir.path())
        };
        let server = Sshd::start(&config).unwrap_or_else(|e| panic!("{e}"));
        TestSshd {
            port: server.port,
            client_key: server.client_key.clone(),
            known_hosts: server.known_hosts.clone(),
            home: server.home.clone(),
            user: server.user.clone(),
            server,
            dir,
        }
    }

    /// A system ssh command line for `--rsh` / `rsync -e` that trusts only this server.
    pub fn rsh(&self) -> String {
        self.server.ssh_command()
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
        self.server.dest(path)
    }

    /// The agent this build deploys, in this server's home (`.cache/azsync/<version>-<build>`;
    /// the directory need not exist yet).
    pub fn deployed_agent(&self) -> PathBuf {
        let build = sync_core::agent_dir(&super::azsync_bin()).unwrap();
        self.home.join(build).join("azsync")
    }

    /// Stops the server now (for tests of a dead remote).
    pub fn stop(&mut self) {
        self.server.stop();
    }
}
