//! A real OpenSSH server on 127.0.0.1 for the `--ssh` mode: its own host key, client key,
//! authorized_keys, config and home directory under one directory of the harness, stopped when
//! dropped. The same recipe as the tests' `tests/common/sshd.rs`, which this crate cannot import.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};

const SSHD: &str = "/usr/sbin/sshd";
/// Tries at binding a port: another process may take the probed port before sshd binds it.
const PORT_TRIES: usize = 10;

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
        format!(
            "ssh -p {} -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} \
             -o StrictHostKeyChecking=yes -o BatchMode=yes",
            self.port,
            self.key.display(),
            self.known_hosts.display()
        )
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
    /// The first line of `ssh -V`, e.g. "OpenSSH_9.6p1 Ubuntu-3ubuntu13.5, OpenSSL 3.0.13 ...".
    pub version: String,
    child: Child,
}

fn keygen(path: &Path) -> Result<()> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "azsync-bench", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .context("running ssh-keygen (apt-get install openssh-client)")?;
    if !out.status.success() {
        bail!(
            "ssh-keygen -f {} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn current_user() -> Result<String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .context("running id -un")?;
    let user = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || user.is_empty() {
        bail!("id -un failed ({})", out.status);
    }
    Ok(user)
}

/// `ssh -V` (it prints to stderr).
fn ssh_version() -> Result<String> {
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
    /// Starts sshd with its files in `dir` (created; must not hold anything that matters) and
    /// its log in `log`. Returns once sshd says it is listening.
    pub fn start(dir: &Path, log: &Path) -> Result<Sshd> {
        if !Path::new(SSHD).exists() {
            bail!("{SSHD} not found; the --ssh mode needs it: apt-get install openssh-server");
        }
        let version = ssh_version()?;
        // Privilege separation needs this directory; a fresh container may lack it.
        let _ = fs::create_dir_all("/run/sshd");
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for name in ["host_key", "client_key"] {
            for file in [name.to_string(), format!("{name}.pub")] {
                let _ = fs::remove_file(dir.join(file));
            }
            keygen(&dir.join(name))?;
        }
        fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))
            .context("writing authorized_keys")?;
        let home = dir.join("home");
        fs::create_dir_all(&home)?;
        let user = current_user()?;
        let config = dir.join("sshd_config");
        let mut messages = Vec::new();
        for _ in 0..PORT_TRIES {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .context("probing for a free port")?
                .port();
            fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\nPort {port}\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                     StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\nUsePAM no\nPidFile none\n\
                     Subsystem sftp internal-sftp\nSetEnv HOME={home}\nMaxStartups 100\n\
                     LogLevel INFO\n",
                    hk = dir.join("host_key").display(),
                    ak = dir.join("authorized_keys").display(),
                    home = home.display(),
                ),
            )
            .with_context(|| format!("writing {}", config.display()))?;
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting {SSHD}"))?;
            // Ready when sshd says so on stderr: no sleeping, no polling.
            let stderr = child.stderr.take().context("sshd's stderr")?;
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
                    messages = early;
                    continue;
                }
                bail!("sshd did not start:\n{}", early.join("\n"));
            }
            // Keep draining sshd's log (into `log`) so that it never blocks on a full pipe.
            let mut out =
                File::create(log).with_context(|| format!("creating {}", log.display()))?;
            for line in &early {
                let _ = writeln!(out, "{line}");
            }
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    let _ = writeln!(out, "{line}");
                }
            });
            let host_pub = fs::read_to_string(dir.join("host_key.pub"))?;
            let known_hosts = dir.join("known_hosts");
            fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}"))?;
            return Ok(Sshd {
                target: Target {
                    port,
                    key: dir.join("client_key"),
                    known_hosts,
                    user,
                },
                version,
                child,
            });
        }
        bail!(
            "no free port for sshd after {PORT_TRIES} tries:\n{}",
            messages.join("\n")
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
