//! Reaching a receiver on another machine: find or deploy our agent there, then run it.
//!
//! On first contact the remote is asked, in one round trip, for its platform and whether an
//! agent of this build is already installed at `~/.cache/azsync/<version>-<build>/azsync` (the
//! build is named by the blake3 of this executable, so a rebuilt azsync of the same version never
//! runs a stale agent). If not, and
//! the platform matches this executable's, this executable is uploaded to a unique temp name
//! beside its final place, given mode 0755 explicitly (never trusting the remote umask), and
//! renamed into place, so two clients making first contact at once both end with a whole agent.
//! Then `azsync agent --stdio` runs on an exec channel and the session protocol runs over it.
//!
//! A remote that cannot run the agent is reported as [`Agent::Unavailable`] rather than as an
//! error, so that the transport can sync over SFTP instead: another platform, an agent that is
//! there but not executable (`test -x` is false on a `noexec` mount), or a freshly uploaded one
//! that does not run (`--version` fails; checked on first contact only).
//!
//! Every remote command starts with `cd` (to `$HOME`), so relative paths mean the same thing for
//! the shell, the agent and the destination path.

use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::ssh::{CommandOutput, SshSession};
use crate::transport::{kill_child, Connection, End};

/// Where the remote agent comes from.
#[derive(Debug, Clone)]
pub enum AgentSource {
    /// Use `~/.cache/azsync/<version>-<build>/azsync`, uploading this local executable there
    /// first if it is missing (`<build>`: the start of the executable's blake3).
    Deploy(PathBuf),
    /// Use an agent already installed at this path on the remote.
    Installed(String),
}

/// A way to run commands on the remote machine.
pub(crate) trait Shell {
    /// Where we are connecting, for messages (`user@host`).
    fn describe(&self) -> String;
    /// Runs `command` (a POSIX shell command line) to completion.
    fn run(&self, command: &str, stdin: Option<&[u8]>) -> Result<CommandOutput>;
    /// Uploads `local` to the absolute path `remote` with `mode`, atomically, creating missing
    /// parent directories.
    fn upload(&self, local: &Path, remote: &str, mode: u32) -> Result<()>;
    /// Starts `command` with its stdin and stdout as the session's streams.
    fn exec(&self, command: &str) -> Result<Connection>;
}

/// The directory of the agent built from the executable `local`, relative to the remote home.
pub fn agent_dir(local: &Path) -> Result<String> {
    let file = std::fs::File::open(local).map_err(|e| Error::io(local, e))?;
    let hash = crate::walk::hash_open_file(&file).map_err(|e| Error::io(local, e))?;
    let build: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        ".cache/azsync/{}-{build}",
        env!("CARGO_PKG_VERSION")
    ))
}

/// Quotes a string for a POSIX shell.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `uname -s` and `uname -m` of this executable's platform.
fn local_platform() -> (&'static str, &'static str) {
    let os = match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        "freebsd" => "FreeBSD",
        other => other,
    };
    (os, std::env::consts::ARCH)
}

fn same_arch(local: &str, remote: &str) -> bool {
    local == remote || matches!((local, remote), ("aarch64", "arm64") | ("x86_64", "amd64"))
}

/// How starting the agent went.
pub(crate) enum Agent {
    /// It runs; the session goes over this connection.
    Started(Connection),
    /// The remote cannot run it (another platform, a home mounted `noexec`); the sync can
    /// still go over SFTP.
    Unavailable {
        /// Why, for one line on stderr.
        reason: String,
        /// The remote `$HOME`, under which a relative destination lies.
        home: String,
    },
}

/// Finds or deploys the agent and starts it.
pub(crate) fn start_agent(shell: &dyn Shell, source: &AgentSource) -> Result<Agent> {
    let program = match source {
        AgentSource::Installed(path) => shell_quote(path),
        AgentSource::Deploy(local) => {
            let dir = agent_dir(local)?;
            // One round trip: platform, home directory, and whether our agent is there (and
            // can be run: `test -x` is false on a `noexec` mount).
            let probe = format!(
                "cd && uname -sm && pwd && if test -x {dir}/azsync; then echo present; \
                 elif test -e {dir}/azsync; then echo noexec; else echo absent; fi"
            );
            let out = shell.run(&probe, None)?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines().rev();
            let state = lines.next().unwrap_or("");
            let home = lines.next().unwrap_or("").to_string();
            let uname = lines.next().unwrap_or("");
            if out.status != Some(0)
                || !matches!(state, "present" | "absent" | "noexec")
                || !home.starts_with('/')
            {
                return Err(remote_error(shell, "could not probe", &out));
            }
            let unavailable = |reason: String| Agent::Unavailable {
                reason,
                home: home.clone(),
            };
            if state == "noexec" {
                return Ok(unavailable(format!(
                    "~/{dir}/azsync is there but not executable; is the home directory mounted \
                     noexec?"
                )));
            }
            if state == "absent" {
                let mut parts = uname.split_whitespace();
                let (os, arch) = (parts.next().unwrap_or("?"), parts.next().unwrap_or("?"));
                let (local_os, local_arch) = local_platform();
                if os != local_os || !same_arch(local_arch, arch) {
                    return Ok(unavailable(format!(
                        "it runs {os} {arch} and this azsync is built for {local_os} {local_arch}"
                    )));
                }
                shell.upload(local, &format!("{home}/{dir}/azsync"), 0o755)?;
                // First contact only: make sure it runs there before relying on it.
                let check = shell.run(&format!("cd && {dir}/azsync --version"), None)?;
                if check.status != Some(0) {
                    return Ok(unavailable(match check.status {
                        Some(126) => format!(
                            "~/{dir}/azsync cannot be executed there; is the home directory \
                             mounted noexec?"
                        ),
                        _ => format!(
                            "the uploaded agent does not run there: {}",
                            last_line(&check)
                        ),
                    }));
                }
            }
            format!("{dir}/azsync")
        }
    };
    shell
        .exec(&format!("cd && exec {program} agent --stdio"))
        .map(Agent::Started)
}

/// A failed command's exit status and the last line of its stderr.
fn last_line(out: &CommandOutput) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let detail = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    match out.status {
        Some(s) => format!("exit status {s}: {detail}"),
        None => format!("no exit status: {detail}"),
    }
}

fn remote_error(shell: &dyn Shell, what: &str, out: &CommandOutput) -> Error {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let detail = stderr
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    let status = out.status.map_or_else(
        || "no exit status".to_string(),
        |s| format!("exit status {s}"),
    );
    Error::Transport {
        peer: "remote",
        source: io::Error::other(format!("{what} {} ({status}): {detail}", shell.describe())),
    }
}

/// A system `ssh` command (`--rsh`), for ProxyJump, bastions and ControlMaster setups.
#[derive(Debug, Clone)]
pub struct SystemSsh {
    program: OsString,
    /// Options, ending with the destination.
    args: Vec<OsString>,
    destination: String,
}

impl SystemSsh {
    /// `argv` is the command and its options, ending with the destination (`user@host`);
    /// `destination` names it in messages.
    pub fn new(argv: Vec<OsString>, destination: String) -> Result<SystemSsh> {
        let mut argv = argv.into_iter();
        let program = argv
            .next()
            .ok_or_else(|| Error::Config("the ssh command is empty".into()))?;
        Ok(SystemSsh {
            program,
            args: argv.collect(),
            destination,
        })
    }

    fn command(&self, remote: &str) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).arg(remote);
        cmd
    }

    fn program(&self) -> &OsString {
        &self.program
    }
}

impl Shell for SystemSsh {
    fn describe(&self) -> String {
        self.destination.clone()
    }

    fn run(&self, command: &str, stdin: Option<&[u8]>) -> Result<CommandOutput> {
        let mut cmd = self.command(command);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| spawn_error(self.program(), e))?;
        // Feed stdin from a thread while the outputs drain, so neither side can fill a pipe
        // and wait on the other.
        let writer = match (stdin, child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => {
                let bytes = bytes.to_vec();
                Some(std::thread::spawn(move || {
                    io::Write::write_all(&mut pipe, &bytes)
                }))
            }
            _ => None,
        };
        let out = child
            .wait_with_output()
            .map_err(|e| spawn_error(self.program(), e))?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        Ok(CommandOutput {
            status: out.status.code().map(|c| c as u32),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    fn upload(&self, local: &Path, remote: &str, mode: u32) -> Result<()> {
        let bytes = std::fs::read(local).map_err(|e| Error::io(local, e))?;
        let (dir, _) = remote.rsplit_once('/').unwrap_or((".", remote));
        let temp = format!("{remote}.tmp.{}.{}", std::process::id(), unique());
        let script = format!(
            "mkdir -p {dir} && cat > {temp} && chmod {mode:o} {temp} && mv -f {temp} {remote}",
            dir = shell_quote(dir),
            temp = shell_quote(&temp),
            remote = shell_quote(remote),
        );
        let out = self.run(&script, Some(&bytes))?;
        if out.status != Some(0) {
            return Err(remote_error(self, "could not install the agent on", &out));
        }
        Ok(())
    }

    fn exec(&self, command: &str) -> Result<Connection> {
        let mut cmd = self.command(command);
        let program = self.program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| spawn_error(self.program(), e))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| Error::protocol("ssh has no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::protocol("ssh has no stdout"))?;
        Ok(Connection {
            reader: Box::new(stdout) as Box<dyn Read + Send>,
            writer: Box::new(stdin),
            abort: kill_child(&child),
            end: End::Child(child, program),
        })
    }
}

fn spawn_error(program: &OsString, e: io::Error) -> Error {
    Error::Transport {
        peer: "remote",
        source: io::Error::new(
            e.kind(),
            format!("cannot run {}: {e}", program.to_string_lossy()),
        ),
    }
}

impl Shell for SshSession {
    fn describe(&self) -> String {
        self.peer().to_string()
    }

    fn run(&self, command: &str, stdin: Option<&[u8]>) -> Result<CommandOutput> {
        SshSession::run(self, command, stdin)
    }

    fn upload(&self, local: &Path, remote: &str, mode: u32) -> Result<()> {
        self.sftp_upload(local, remote, mode)
    }

    fn exec(&self, command: &str) -> Result<Connection> {
        let mut process = self.exec_stream(command)?;
        let reader = std::mem::replace(&mut process.reader, Box::new(io::empty()));
        let writer = std::mem::replace(&mut process.writer, Box::new(io::sink()));
        Ok(Connection {
            reader,
            writer,
            end: End::Remote(process),
            // Closing the channel is what unblocks a writer here, and the session does that when
            // the agent exits.
            abort: Box::new(|| {}),
        })
    }
}

/// A number unlikely to repeat between two clients started at the same moment.
pub(crate) fn unique() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn arch_synonyms() {
        assert!(same_arch("aarch64", "arm64"));
        assert!(same_arch("x86_64", "x86_64"));
        assert!(!same_arch("x86_64", "aarch64"));
    }
}
