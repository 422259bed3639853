//! A real OpenSSH server on 127.0.0.1 for the `--ssh` mode (the shared test server of
//! `tests/support`), and how a client reaches it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use azsync_test_support::SshdConfig;

/// How a client reaches the server: everything but the command.
#[derive(Debug, Clone)]
pub struct Target {
    pub port: u16,
    /// The client's private key (ed25519, no passphrase), authorized for `user`.
    pub key: PathBuf,
    /// A known_hosts file holding this server's key for `[127.0.0.1]:port`, and nothing else.
    pub known_hosts: PathBuf,
    pub user: String,
}

impl Target {
    /// The system ssh command for `--rsh` and `rsync -e`: this key only, this server's host key
    /// only, never a prompt.
    pub fn ssh_command(&self) -> String {
        azsync_test_support::ssh_command(self.port, &self.key, &self.known_hosts)
    }

    /// `user@127.0.0.1:PATH`.
    pub fn dest(&self, path: &Path) -> String {
        format!("{}@127.0.0.1:{}", self.user, path.display())
    }
}

/// A running sshd; killed on drop.
#[derive(Debug)]
pub struct Sshd {
    pub target: Target,
    /// `ssh -V` of the system ssh, for the report.
    pub version: String,
    server: azsync_test_support::Sshd,
}

/// The first line of `ssh -V`.
pub fn ssh_version() -> Result<String> {
    let out = Command::new("ssh")
        .arg("-V")
        .stdin(Stdio::null())
        .output()
        .context("ssh not found on PATH: apt-get install openssh-client")?;
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

impl Sshd {
    /// Starts a loopback sshd with its keys, config and home in `dir` (created if missing) and
    /// its log in `log`. Returns once sshd says it is listening.
    pub fn start(dir: &Path, log: &Path) -> Result<Sshd> {
        let version = ssh_version()?;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let config = SshdConfig {
            log: Some(log),
            ..SshdConfig::new(dir)
        };
        let server = azsync_test_support::Sshd::start(&config).map_err(anyhow::Error::msg)?;
        Ok(Sshd {
            target: Target {
                port: server.port,
                key: server.client_key.clone(),
                known_hosts: server.known_hosts.clone(),
                user: server.user.clone(),
            },
            version,
            server,
        })
    }

    /// The target as seen through a proxy on 127.0.0.1:`port` that forwards to this server: the
    /// same user and key, and a known_hosts file (written to `known_hosts`) that trusts this
    /// server's key at the proxy's port.
    pub fn through_proxy(&self, port: u16, known_hosts: &Path) -> Result<Target> {
        let line = self
            .server
            .known_hosts_line(port)
            .map_err(anyhow::Error::msg)?;
        fs::write(known_hosts, format!("{line}\n"))
            .with_context(|| format!("writing {}", known_hosts.display()))?;
        Ok(Target {
            port,
            known_hosts: known_hosts.to_path_buf(),
            ..self.target.clone()
        })
    }
}
