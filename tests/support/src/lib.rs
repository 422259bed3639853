//! A real OpenSSH server on 127.0.0.1 for azsync's end-to-end tests and benchmarks: its own host
//! key, client key, authorized_keys, config and home directory, on a free port, stopped when
//! dropped. Sessions see `HOME` (and `cd`) as that home, never the real one.
//!
//! [`proxy`] puts a simulated network (delay, bandwidth cap, a cut after N bytes) between a
//! client and such a server.

pub mod proxy;

pub use proxy::{Proxy, ProxyConfig, ProxyStats};

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where Debian's openssh-server puts the daemon.
pub const SSHD: &str = "/usr/sbin/sshd";

/// How to start a server.
#[derive(Debug, Clone, Copy)]
pub struct SshdConfig<'a> {
    /// Folder for keys, config and the home directory (created if missing).
    pub dir: &'a Path,
    /// More `NAME=value` variables for every session (sshd keeps only one `SetEnv` line, which
    /// also sets `HOME`).
    pub env: &'a [&'a str],
    /// The SFTP subsystem's command.
    pub sftp: &'a str,
    /// Where sshd's log goes; `None` drains it.
    pub log: Option<&'a Path>,
}

impl<'a> SshdConfig<'a> {
    /// Defaults: no extra variables, `internal-sftp`, log drained.
    pub fn new(dir: &'a Path) -> SshdConfig<'a> {
        SshdConfig {
            dir,
            env: &[],
            sftp: "internal-sftp",
            log: None,
        }
    }
}

/// A running `sshd -D -e`.
#[derive(Debug)]
pub struct Sshd {
    pub port: u16,
    /// The client's private key (ed25519, no passphrase), authorized for `user`.
    pub client_key: PathBuf,
    /// A known_hosts file that holds this server's key for `[127.0.0.1]:port`.
    pub known_hosts: PathBuf,
    /// The sessions' home directory.
    pub home: PathBuf,
    /// The user we log in as (the current one).
    pub user: String,
    host_key_pub: PathBuf,
    child: Child,
}

/// Whether the server and client tools are here; the error says what to install.
pub fn require_sshd() -> Result<(), String> {
    if !Path::new(SSHD).exists() {
        return Err(format!(
            "sshd is required at {SSHD}: apt-get install openssh-server (the README test \
             command installs it)"
        ));
    }
    Command::new("ssh")
        .arg("-V")
        .output()
        .map_err(|_| "ssh is required: apt-get install openssh-client".to_string())?;
    Ok(())
}

fn keygen(path: &Path) -> Result<(), String> {
    for stale in [path.to_path_buf(), path.with_extension("pub")] {
        let _ = fs::remove_file(stale);
    }
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "azsync-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ssh-keygen (apt-get install openssh-client): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ssh-keygen -f {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn current_user() -> Result<String, String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .map_err(|e| format!("id -un: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The system ssh command line that reaches a server on `port` with `key`, trusting only the
/// keys in `known_hosts`.
pub fn ssh_command(port: u16, key: &Path, known_hosts: &Path) -> String {
    format!(
        "ssh -p {port} -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} \
         -o StrictHostKeyChecking=yes -o BatchMode=yes",
        key.display(),
        known_hosts.display()
    )
}

impl Sshd {
    /// Starts a server; returns once sshd says it is listening (no sleeping, no polling).
    pub fn start(config: &SshdConfig<'_>) -> Result<Sshd, String> {
        require_sshd()?;
        let dir = config.dir;
        // Privilege separation needs this directory; a fresh container may lack it.
        let _ = fs::create_dir_all("/run/sshd");
        let home = dir.join("home");
        fs::create_dir_all(&home).map_err(|e| format!("{}: {e}", home.display()))?;
        keygen(&dir.join("host_key"))?;
        keygen(&dir.join("client_key"))?;
        fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))
            .map_err(|e| format!("authorized_keys: {e}"))?;
        let sshd_config = dir.join("sshd_config");
        let mut last_log = Vec::new();
        // Someone may take a free port between our probe and sshd's bind: try a few.
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("probing for a free port: {e}"))?
                .port();
            fs::write(
                &sshd_config,
                format!(
                    "ListenAddress 127.0.0.1\nPort {port}\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                     StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\nUsePAM no\nPidFile none\n\
                     Subsystem sftp {sftp}\nSetEnv HOME={home}{env}\nMaxStartups 100\n\
                     LogLevel INFO\n",
                    hk = dir.join("host_key").display(),
                    ak = dir.join("authorized_keys").display(),
                    sftp = config.sftp,
                    home = home.display(),
                    env = config
                        .env
                        .iter()
                        .map(|v| format!(" {v}"))
                        .collect::<String>(),
                ),
            )
            .map_err(|e| format!("{}: {e}", sshd_config.display()))?;
            let mut command = Command::new(SSHD);
            // If the test process is killed, its servers must not live on.
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
                .args(["-D", "-e", "-f"])
                .arg(&sshd_config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start {SSHD}: {e}"))?;
            let stderr = child.stderr.take().ok_or("sshd has no stderr")?;
            let mut lines = BufReader::new(stderr).lines();
            let mut early = Vec::new();
            let ready = loop {
                match lines.next() {
                    Some(Ok(line)) => {
                        let listening = line.contains("Server listening on");
                        early.push(line);
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
                if early.iter().any(|l| l.contains("Address already in use")) {
                    last_log = early;
                    continue;
                }
                return Err(format!("sshd did not start:\n{}", early.join("\n")));
            }
            // Keep draining sshd's log so that it never blocks on a full pipe.
            let mut out = match config.log {
                Some(path) => {
                    Some(File::create(path).map_err(|e| format!("{}: {e}", path.display()))?)
                }
                None => None,
            };
            std::thread::spawn(move || {
                for line in early.into_iter().map(Ok).chain(lines) {
                    let Ok(line) = line else { break };
                    if let Some(out) = out.as_mut() {
                        let _ = writeln!(out, "{line}");
                    }
                }
            });
            let host_pub = fs::read_to_string(dir.join("host_key.pub"))
                .map_err(|e| format!("host_key.pub: {e}"))?;
            let known_hosts = dir.join("known_hosts");
            fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}"))
                .map_err(|e| format!("{}: {e}", known_hosts.display()))?;
            return Ok(Sshd {
                port,
                client_key: dir.join("client_key"),
                known_hosts,
                home,
                user: current_user()?,
                host_key_pub: dir.join("host_key.pub"),
                child,
            });
        }
        Err(format!(
            "no free port for sshd after 10 tries:\n{}",
            last_log.join("\n")
        ))
    }

    /// A system ssh command line (for `--rsh` or `rsync -e`) that trusts only this server.
    pub fn ssh_command(&self) -> String {
        ssh_command(self.port, &self.client_key, &self.known_hosts)
    }

    /// A known_hosts line trusting this server's host key at `[127.0.0.1]:port`: for clients
    /// that reach it through a [`Proxy`] listening on `port`.
    pub fn known_hosts_line(&self, port: u16) -> Result<String, String> {
        let key = fs::read_to_string(&self.host_key_pub)
            .map_err(|e| format!("{}: {e}", self.host_key_pub.display()))?;
        Ok(format!("[127.0.0.1]:{port} {}", key.trim_end()))
    }

    /// `user@127.0.0.1:PATH`.
    pub fn dest(&self, path: &Path) -> String {
        format!("{}@127.0.0.1:{}", self.user, path.display())
    }

    /// Stops the server now (for tests of a dead remote).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}
