//! Running one sync under GNU time: wall time from the harness's own clock, peak RSS from
//! `/usr/bin/time -f '%e %M'`.
//!
//! GNU time waits for its child with `wait4` and prints `ru_maxrss`. On Linux that is the high
//! water mark of the largest single process among the child and the descendants it waited for
//! (a maximum, not a sum): for azsync the CLI or its `azsync agent --stdio` receiver, for rsync
//! the largest of its sender, generator and receiver.
//!
//! In `--ssh` mode the local side is the client (azsync, or rsync, with its `ssh` child; the
//! built-in SSH client of azsync-native has none), and the remote side, which sshd starts, is
//! measured by a second GNU time on the remote command line: a wrapper script passed as azsync's
//! `--agent-path`, and `--rsync-path` for rsync. Each appends `%M` to a log that is read and
//! cleared after every run. Bytes on the wire are what each tool reports: azsync's `--json`
//! `bytes_sent` and `bytes_received`, rsync's `--stats` "Total bytes sent/received".

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::sshd::Target;

const GNU_TIME: &str = "/usr/bin/time";

/// One measured run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// `ru_maxrss` in KiB of the local side (the command the harness started).
    pub max_rss_kib: u64,
    /// `ru_maxrss` in KiB of the remote side that sshd started (`--ssh` mode only; `None` when
    /// local, or if the remote side left no report).
    pub remote_rss_kib: Option<u64>,
    /// Bytes on the connection as the tool counts them (`--ssh` mode only).
    pub wire: Option<Wire>,
    /// Bytes on the TCP connection through the WAN proxy, as the proxy counts them: SSH
    /// encryption and framing included (`--wan` mode only).
    pub link: Option<Wire>,
}

/// Bytes a tool wrote to and read from its connection, as it reports them: the payload inside
/// SSH (before encryption and SSH framing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire {
    pub sent: u64,
    pub received: u64,
}

impl Wire {
    pub fn total(&self) -> u64 {
        self.sent + self.received
    }
}

/// A command that ran to a successful end.
#[derive(Debug, Clone)]
pub struct Finished {
    pub wall: Duration,
    /// `ru_maxrss` in KiB, from GNU time.
    pub max_rss_kib: u64,
    /// Everything it printed on stdout.
    pub stdout: String,
}

/// A run whose command exited unsuccessfully: a result of the benchmark, not an error of the
/// harness.
#[derive(Debug, Clone)]
pub struct Failure {
    /// How it ended, e.g. "exit status: 1".
    pub status: String,
    /// The last lines of its output.
    pub tail: String,
    /// All of its stderr and stdout (for recognizing "not available in this build").
    pub output: String,
    /// Where all of its output is.
    pub log: PathBuf,
}

/// A sync tool and how it is invoked.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: &'static str,
    pub program: PathBuf,
    style: Style,
    /// How the remote side is reached and measured (`--ssh` mode).
    remote: Option<Remote>,
    /// Compress on the wire: azsync `--compress`, rsync `-z` (`--wan` mode).
    pub compress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `azsync sync --no-progress SRC DST`, or over SSH with the system ssh (`--rsh`).
    Azsync,
    /// azsync over SSH with its built-in SSH client (`-p --key --known-hosts`).
    AzsyncNative,
    /// The built-in SSH client in `--sftp` mode: no agent, so no remote process of ours.
    AzsyncSftp,
    /// `rsync -a SRC/ DST/`
    Rsync,
    /// `cp -a SRC/. DST`: the first sync's floor, a plain copy on the same disk.
    Cp,
}

/// What a scenario asks of every tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// Remove what the source lacks: azsync and rsync `--delete`.
    pub delete: bool,
    /// Compare contents, not size and mtime: azsync `--checksum`, rsync `-c`.
    pub checksum: bool,
}

/// The remote side of a tool in `--ssh` mode.
#[derive(Debug, Clone)]
pub struct Remote {
    pub target: Target,
    /// The file the remote side's GNU time appends its `%M` to.
    pub rss_log: PathBuf,
    /// azsync only: the `--agent-path` wrapper script that runs the agent under GNU time.
    pub agent_wrapper: Option<PathBuf>,
}

/// What `--ssh-variants` chooses from: the ways azsync reaches the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The system ssh command (`--rsh`); the tool is named "azsync".
    Rsh,
    /// The built-in SSH client; the tool is named "azsync-native".
    Native,
    /// The built-in SSH client with `--sftp` (no agent, no deltas); "azsync-sftp".
    Sftp,
}

impl Variant {
    pub fn tool_name(self) -> &'static str {
        match self {
            Variant::Rsh => "azsync",
            Variant::Native => "azsync-native",
            Variant::Sftp => "azsync-sftp",
        }
    }
}

impl Tool {
    pub fn azsync(program: PathBuf) -> Tool {
        Tool {
            name: "azsync",
            program,
            style: Style::Azsync,
            remote: None,
            compress: false,
        }
    }

    pub fn rsync(program: PathBuf) -> Tool {
        Tool {
            name: "rsync",
            program,
            style: Style::Rsync,
            remote: None,
            compress: false,
        }
    }

    /// azsync to the sshd of `remote`, in the way `variant` says; `remote.agent_wrapper` must be
    /// set (see [`write_agent_wrapper`]).
    pub fn azsync_ssh(program: PathBuf, variant: Variant, remote: Remote) -> Tool {
        let style = match variant {
            Variant::Rsh => Style::Azsync,
            Variant::Native => Style::AzsyncNative,
            Variant::Sftp => Style::AzsyncSftp,
        };
        Tool {
            name: variant.tool_name(),
            program,
            style,
            remote: Some(remote),
            compress: false,
        }
    }

    /// `rsync -a` to the sshd of `remote`, through the system ssh.
    pub fn rsync_ssh(program: PathBuf, remote: Remote) -> Tool {
        Tool {
            name: "rsync",
            program,
            style: Style::Rsync,
            remote: Some(remote),
            compress: false,
        }
    }

    /// `cp -a`, the local baseline of the first sync.
    pub fn cp(program: PathBuf) -> Tool {
        Tool {
            name: "cp -a",
            program,
            style: Style::Cp,
            remote: None,
            compress: false,
        }
    }

    pub fn is_rsync(&self) -> bool {
        self.style == Style::Rsync
    }

    pub fn is_cp(&self) -> bool {
        self.style == Style::Cp
    }

    /// The program's name for the report's command lines.
    pub fn program_name(&self) -> &'static str {
        match self.style {
            Style::Rsync => "rsync",
            Style::Cp => "cp",
            _ => "azsync",
        }
    }

    /// The column header of this tool in the report.
    pub fn label(&self) -> &'static str {
        match (self.style, &self.remote) {
            (Style::Azsync, None) => "azsync",
            (Style::Azsync, Some(_)) => "`--rsh`",
            (Style::AzsyncNative, _) => "built-in",
            (Style::AzsyncSftp, _) => "`--sftp`",
            (Style::Rsync, _) => "rsync",
            (Style::Cp, _) => "`cp -a`",
        }
    }

    /// Whether the remote side is sshd's SFTP server (mtimes to the second).
    pub fn is_sftp(&self) -> bool {
        self.style == Style::AzsyncSftp
    }

    /// The command line that copies the contents of `src` into `dst` (on the remote, over SSH,
    /// in `--ssh` mode; `dst` must then be absolute).
    pub fn argv(&self, src: &Path, dst: &Path, flags: Flags) -> Vec<OsString> {
        let mut argv = vec![self.program.clone().into_os_string()];
        let azsync_flags = |argv: &mut Vec<OsString>| {
            if flags.delete {
                argv.push("--delete".into());
            }
            if flags.checksum {
                argv.push("--checksum".into());
            }
            if self.compress {
                argv.push("--compress".into());
            }
        };
        let rsync_flags = |argv: &mut Vec<OsString>| {
            if flags.delete {
                argv.push("--delete".into());
            }
            if flags.checksum {
                argv.push("-c".into());
            }
            if self.compress {
                argv.push("-z".into());
            }
        };
        let Some(remote) = &self.remote else {
            match self.style {
                Style::Azsync | Style::AzsyncNative | Style::AzsyncSftp => {
                    argv.extend(["sync", "--no-progress"].map(OsString::from));
                    azsync_flags(&mut argv);
                    argv.push(src.into());
                    argv.push(dst.into());
                }
                Style::Rsync => {
                    argv.push("-a".into());
                    rsync_flags(&mut argv);
                    argv.push(with_slash(src));
                    argv.push(with_slash(dst));
                }
                Style::Cp => {
                    // The contents of SRC into the existing DST.
                    let mut from = with_slash(src);
                    from.push(".");
                    argv.push("-a".into());
                    argv.push(from);
                    argv.push(dst.into());
                }
            }
            return argv;
        };
        let target = &remote.target;
        match self.style {
            Style::Azsync | Style::AzsyncNative | Style::AzsyncSftp => {
                argv.extend(["sync", "--no-progress", "--json"].map(OsString::from));
                azsync_flags(&mut argv);
                if self.style == Style::Azsync {
                    argv.push("--rsh".into());
                    argv.push(target.ssh_command().into());
                } else {
                    argv.push("-p".into());
                    argv.push(target.port.to_string().into());
                    argv.push("--key".into());
                    argv.push(target.key.clone().into());
                    argv.push("--known-hosts".into());
                    argv.push(target.known_hosts.clone().into());
                }
                if self.style == Style::AzsyncSftp {
                    argv.push("--sftp".into());
                } else if let Some(wrapper) = &remote.agent_wrapper {
                    argv.push("--agent-path".into());
                    argv.push(wrapper.clone().into());
                }
                argv.push(src.into());
                argv.push(target.dest(dst).into());
            }
            Style::Cp => unreachable!("cp -a has no remote"),
            Style::Rsync => {
                argv.extend(["-a", "--stats"].map(OsString::from));
                rsync_flags(&mut argv);
                argv.push("-e".into());
                argv.push(target.ssh_command().into());
                // The remote shell splits this; GNU time appends the server's peak RSS.
                argv.push(
                    format!(
                        "--rsync-path={GNU_TIME} -f %M -a -o {} {}",
                        sh_quote(&remote.rss_log.to_string_lossy()),
                        sh_quote(&self.program.to_string_lossy())
                    )
                    .into(),
                );
                argv.push(with_slash(src));
                let mut dest = OsString::from(target.dest(dst));
                if !dest.to_string_lossy().ends_with('/') {
                    dest.push("/");
                }
                argv.push(dest);
            }
        }
        argv
    }

    /// Before a run: forgets what the remote side reported for the last one.
    pub fn clear_remote(&self) -> Result<()> {
        if let Some(remote) = &self.remote {
            fs::write(&remote.rss_log, "")
                .with_context(|| format!("clearing {}", remote.rss_log.display()))?;
        }
        Ok(())
    }

    /// After a successful run: the sample, with the remote side's peak RSS (read and cleared)
    /// and the bytes on the wire (from the output) in `--ssh` mode.
    pub fn sample(&self, finished: &Finished) -> Result<Sample> {
        let mut sample = Sample {
            wall: finished.wall,
            max_rss_kib: finished.max_rss_kib,
            remote_rss_kib: None,
            wire: None,
            link: None,
        };
        let Some(remote) = &self.remote else {
            return Ok(sample);
        };
        if self.style == Style::AzsyncSftp {
            // The remote side is sshd's own SFTP server: nothing of ours to measure there.
            sample.wire = parse_azsync_json(&finished.stdout);
            return Ok(sample);
        }
        // The remote side's GNU time writes its report when the remote command ends, which is
        // before sshd closes the channel and so before the local side exits; the short wait is
        // only a safety net.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let text = fs::read_to_string(&remote.rss_log)
                .with_context(|| format!("reading {}", remote.rss_log.display()))?;
            sample.remote_rss_kib = parse_rss_log(&text);
            if sample.remote_rss_kib.is_some() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.clear_remote()?;
        sample.wire = match self.style {
            Style::Azsync | Style::AzsyncNative | Style::AzsyncSftp => {
                parse_azsync_json(&finished.stdout)
            }
            Style::Rsync => parse_rsync_stats(&finished.stdout),
            Style::Cp => None,
        };
        Ok(sample)
    }

    /// The first line of `PROGRAM --version`.
    pub fn version(&self) -> Result<String> {
        let out = Command::new(&self.program)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {} --version", self.program.display()))?;
        if !out.status.success() {
            bail!(
                "{} --version failed ({}): {}",
                self.program.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.lines().next().unwrap_or("").trim().to_string())
    }
}

/// Writes `path`, an executable script for azsync's `--agent-path`: azsync runs
/// `cd && exec PATH agent --stdio` on the remote, and the script runs `azsync agent --stdio`
/// under GNU time, which appends the agent's peak RSS in KiB to `rss_log`.
pub fn write_agent_wrapper(path: &Path, azsync: &Path, rss_log: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let script = format!(
        "#!/bin/sh\nexec {GNU_TIME} -f %M -a -o {} {} \"$@\"\n",
        sh_quote(&rss_log.to_string_lossy()),
        sh_quote(&azsync.to_string_lossy())
    );
    fs::write(path, script).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}

/// The largest `%M` in a remote GNU time log (one line per remote command; a line "Command
/// exited with non-zero status N" may come before one).
fn parse_rss_log(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.trim().parse::<u64>().ok())
        .max()
}

/// `bytes_sent` and `bytes_received` of azsync's `--json` summary (one JSON object on a line).
fn parse_azsync_json(stdout: &str) -> Option<Wire> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))?;
    Some(Wire {
        sent: json_u64(line, "bytes_sent")?,
        received: json_u64(line, "bytes_received")?,
    })
}

/// The unsigned integer value of `"key":` in a flat JSON object (enough for azsync's summary,
/// whose top-level byte counters are plain numbers).
fn json_u64(json: &str, key: &str) -> Option<u64> {
    let pattern = format!("\"{key}\"");
    let at = json.find(&pattern)? + pattern.len();
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// "Total bytes sent: 1,234" and "Total bytes received: 56" of `rsync --stats`.
fn parse_rsync_stats(stdout: &str) -> Option<Wire> {
    let field = |name: &str| -> Option<u64> {
        let line = stdout.lines().find_map(|l| l.trim().strip_prefix(name))?;
        let digits: String = line
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    Some(Wire {
        sent: field("Total bytes sent:")?,
        received: field("Total bytes received:")?,
    })
}

/// Quotes `s` for a POSIX shell when it needs it.
pub fn sh_quote(s: &str) -> String {
    quote(OsStr::new(s))
}

fn with_slash(path: &Path) -> OsString {
    let mut s = path.as_os_str().to_owned();
    if !s.to_string_lossy().ends_with('/') {
        s.push("/");
    }
    s
}

/// Finds `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs commands under GNU time.
#[derive(Debug)]
pub struct Timer {
    time: PathBuf,
}

impl Timer {
    /// Checks that `/usr/bin/time` is GNU time (it needs `-f` and `-o`).
    pub fn new() -> Result<Timer> {
        let time = PathBuf::from(GNU_TIME);
        if !time.exists() {
            bail!(
                "{GNU_TIME} not found; the harness needs GNU time to measure peak RSS. \
                 Install it with: apt-get install time"
            );
        }
        let status = Command::new(&time)
            .args(["-f", "%e %M", "-o", "/dev/null", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("running {GNU_TIME}"))?;
        if !status.success() {
            bail!(
                "{GNU_TIME} does not accept `-f FORMAT -o FILE`; is it GNU time? \
                 Install it with: apt-get install time"
            );
        }
        Ok(Timer { time })
    }

    /// Runs `argv` to completion, its stderr going to `log`, its stdout to `log` + `.out` (and
    /// GNU time's report to `log` + `.time`). `Ok(Err(_))` if the command failed; `Err(_)` if it
    /// could not be run or measured.
    ///
    /// A run still going after `timeout` is killed with its whole process group (GNU time, the
    /// tool and its children) and reported as a failure: a hung run must not hang the benchmark.
    pub fn run(
        &self,
        argv: &[OsString],
        log: &Path,
        timeout: Duration,
    ) -> Result<Result<Finished, Failure>> {
        let with_suffix = |suffix: &str| {
            let mut p = log.as_os_str().to_owned();
            p.push(suffix);
            PathBuf::from(p)
        };
        let (time_out, stdout_path) = (with_suffix(".time"), with_suffix(".out"));
        let err = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let out = File::create(&stdout_path)
            .with_context(|| format!("creating {}", stdout_path.display()))?;
        let mut cmd = Command::new(&self.time);
        cmd.args(["-f", "%e %M", "-o"])
            .arg(&time_out)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // Its own process group, so that a timeout kills the tool's children too.
        cmd.process_group(0);
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("running {}", shell_words(argv)))?;
        let group = child.id() as libc::pid_t;
        let (done, watch) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let expired = matches!(watch.recv_timeout(timeout), Err(RecvTimeoutError::Timeout));
            if expired {
                // SAFETY: kill(2) with a negative pid signals that process group; no memory
                // is touched.
                unsafe { libc::kill(-group, libc::SIGKILL) };
            }
            expired
        });
        let status = child.wait();
        let _ = done.send(());
        let timed_out = watchdog.join().unwrap_or(false);
        let status = status.with_context(|| format!("waiting for {}", shell_words(argv)))?;
        let wall = start.elapsed();
        let stdout = fs::read_to_string(&stdout_path).unwrap_or_default();
        if timed_out {
            let stderr = fs::read_to_string(log).unwrap_or_default();
            return Ok(Err(Failure {
                status: format!("timed out after {} s, killed", timeout.as_secs()),
                tail: tail(&format!("{stderr}{stdout}"), 5),
                output: format!("{stderr}\n{stdout}"),
                log: log.to_path_buf(),
            }));
        }
        if !status.success() {
            let stderr = fs::read_to_string(log).unwrap_or_default();
            let both = if stderr.trim().is_empty() {
                stdout.clone()
            } else {
                stderr.clone()
            };
            return Ok(Err(Failure {
                status: status.to_string(),
                tail: tail(&both, 5),
                output: format!("{stderr}\n{stdout}"),
                log: log.to_path_buf(),
            }));
        }
        let report = fs::read_to_string(&time_out)
            .with_context(|| format!("reading GNU time's report {}", time_out.display()))?;
        let max_rss_kib = parse_time_report(&report).with_context(|| {
            format!(
                "unexpected GNU time report in {}: {report:?}",
                time_out.display()
            )
        })?;
        Ok(Ok(Finished {
            wall,
            max_rss_kib,
            stdout,
        }))
    }
}

/// The `%M` of the last `%e %M` line of a GNU time report (earlier lines may say "Command
/// exited with non-zero status").
fn parse_time_report(report: &str) -> Option<u64> {
    let line = report.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut fields = line.split_whitespace();
    fields.next()?.parse::<f64>().ok()?;
    let rss = fields.next()?.parse().ok()?;
    fields.next().is_none().then_some(rss)
}

/// `argv` as one line for messages and the report.
pub fn shell_words(argv: &[OsString]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

fn quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_run_is_killed_and_reported() -> Result<()> {
        if !Path::new(GNU_TIME).exists() {
            return Ok(());
        }
        let dir = std::env::temp_dir().join(format!("azsync-bench-hang-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let timer = Timer::new()?;
        // A shell whose child would outlive a kill of the shell alone.
        let argv: Vec<OsString> = ["sh", "-c", "sleep 600 & wait"]
            .map(OsString::from)
            .to_vec();
        let result = timer.run(&argv, &dir.join("hang.log"), Duration::from_millis(200))?;
        let failure = result.expect_err("the run must not succeed");
        assert!(
            failure.status.starts_with("timed out after 0 s"),
            "{failure:?}"
        );
        let ok = timer.run(
            &["true".into()],
            &dir.join("ok.log"),
            Duration::from_secs(600),
        )?;
        assert!(ok.is_ok());
        fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn parses_time_reports() {
        assert_eq!(parse_time_report("0.52 12345\n"), Some(12345));
        assert_eq!(
            parse_time_report("Command exited with non-zero status 1\n1.00 99\n"),
            Some(99)
        );
        assert_eq!(parse_time_report("garbage\n"), None);
        assert_eq!(parse_time_report(""), None);
    }

    #[test]
    fn command_lines() {
        let az = Tool::azsync("/x/azsync".into());
        let rs = Tool::rsync("/usr/bin/rsync".into());
        let (src, dst) = (Path::new("/t/src"), Path::new("/t/dst"));
        assert_eq!(
            shell_words(&az.argv(src, dst, Flags::default())),
            "/x/azsync sync --no-progress /t/src /t/dst"
        );
        assert_eq!(
            shell_words(&rs.argv(src, dst, Flags::default())),
            "/usr/bin/rsync -a /t/src/ /t/dst/"
        );
        assert_eq!(quote(OsStr::new("a b")), "'a b'");
        let both = Flags {
            delete: true,
            checksum: true,
        };
        assert_eq!(
            shell_words(&az.argv(src, dst, both)),
            "/x/azsync sync --no-progress --delete --checksum /t/src /t/dst"
        );
        assert_eq!(
            shell_words(&rs.argv(src, dst, both)),
            "/usr/bin/rsync -a --delete -c /t/src/ /t/dst/"
        );
        let cp = Tool::cp("/bin/cp".into());
        assert!(cp.is_cp() && !cp.is_rsync());
        assert_eq!(
            shell_words(&cp.argv(src, dst, both)),
            "/bin/cp -a /t/src/. /t/dst"
        );
    }

    fn remote(wrapper: Option<&str>, log: &str) -> Remote {
        Remote {
            target: Target {
                port: 2222,
                key: "/k/id".into(),
                known_hosts: "/k/kh".into(),
                user: "root".into(),
            },
            rss_log: log.into(),
            agent_wrapper: wrapper.map(PathBuf::from),
        }
    }

    #[test]
    fn ssh_command_lines() {
        let (src, dst) = (Path::new("/t/src"), Path::new("/t/dst"));
        let ssh = "ssh -p 2222 -i /k/id -o IdentitiesOnly=yes -o UserKnownHostsFile=/k/kh \
                   -o StrictHostKeyChecking=yes -o BatchMode=yes";
        let az = Tool::azsync_ssh(
            "/x/azsync".into(),
            Variant::Rsh,
            remote(Some("/w/agent"), "/w/a.rss"),
        );
        assert_eq!(az.name, "azsync");
        assert_eq!(
            shell_words(&az.argv(src, dst, Flags::default())),
            format!(
                "/x/azsync sync --no-progress --json --rsh '{ssh}' --agent-path /w/agent \
                 /t/src root@127.0.0.1:/t/dst"
            )
        );
        let native = Tool::azsync_ssh(
            "/x/azsync".into(),
            Variant::Native,
            remote(Some("/w/agent"), "/w/a.rss"),
        );
        assert_eq!(native.name, "azsync-native");
        assert_eq!(
            shell_words(&native.argv(src, dst, Flags::default())),
            "/x/azsync sync --no-progress --json -p 2222 --key /k/id --known-hosts /k/kh \
             --agent-path /w/agent /t/src root@127.0.0.1:/t/dst"
        );
        let mut zipped = native.clone();
        zipped.compress = true;
        let delete = Flags {
            delete: true,
            ..Flags::default()
        };
        assert_eq!(
            shell_words(&zipped.argv(src, dst, delete)),
            "/x/azsync sync --no-progress --json --delete --compress -p 2222 --key /k/id \
             --known-hosts /k/kh --agent-path /w/agent /t/src root@127.0.0.1:/t/dst"
        );
        let mut rs = Tool::rsync_ssh("/usr/bin/rsync".into(), remote(None, "/w/x.rss"));
        rs.compress = true;
        assert_eq!(
            shell_words(&rs.argv(src, dst, delete)),
            format!(
                "/usr/bin/rsync -a --stats --delete -z -e '{ssh}' \
                 '--rsync-path=/usr/bin/time -f %M -a -o /w/x.rss /usr/bin/rsync' \
                 /t/src/ root@127.0.0.1:/t/dst/"
            )
        );
        let rs = Tool::rsync_ssh("/usr/bin/rsync".into(), remote(None, "/w/r s.rss"));
        assert!(rs.is_rsync());
        assert_eq!(
            shell_words(&rs.argv(src, dst, Flags::default())),
            format!(
                "/usr/bin/rsync -a --stats -e '{ssh}' \
                 '--rsync-path=/usr/bin/time -f %M -a -o '\\''/w/r s.rss'\\'' /usr/bin/rsync' \
                 /t/src/ root@127.0.0.1:/t/dst/"
            )
        );
    }

    #[test]
    fn parses_remote_reports() {
        assert_eq!(parse_rss_log(""), None);
        assert_eq!(
            parse_rss_log("1234\nCommand exited with non-zero status 1\n99\n"),
            Some(1234)
        );
        let json = concat!(
            r#"{"files_scanned":3,"bytes_literal":10,"#,
            r#""bytes_sent":123456,"bytes_received": 789,"errors":[]}"#
        );
        assert_eq!(
            parse_azsync_json(&format!("{json}\n")),
            Some(Wire {
                sent: 123_456,
                received: 789
            })
        );
        assert_eq!(parse_azsync_json("no json here\n"), None);
        let stats = "Number of files: 10 (reg: 9, dir: 1)\n\
                     Total bytes sent: 1,234,567\n\
                     Total bytes received: 8,910\n\n\
                     sent 1,234,567 bytes  received 8,910 bytes  123.00 bytes/sec\n";
        let wire = parse_rsync_stats(stats).unwrap();
        assert_eq!(
            wire,
            Wire {
                sent: 1_234_567,
                received: 8_910
            }
        );
        assert_eq!(wire.total(), 1_243_477);
        assert_eq!(parse_rsync_stats("sent 1 bytes\n"), None);
    }

    #[test]
    fn agent_wrapper_script() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("azsync-bench-wrap-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let wrapper = dir.join("agent");
        let log = dir.join("agent.rss");
        // `true` stands in for azsync: the script must pass its arguments on and log %M.
        write_agent_wrapper(&wrapper, Path::new("/bin/true"), &log)?;
        let text = fs::read_to_string(&wrapper)?;
        assert!(
            text.starts_with("#!/bin/sh\nexec /usr/bin/time -f %M -a -o "),
            "{text}"
        );
        assert!(text.ends_with(" /bin/true \"$@\"\n"), "{text}");
        if Path::new(GNU_TIME).exists() {
            let status = Command::new(&wrapper).args(["agent", "--stdio"]).status()?;
            assert!(status.success());
            assert!(parse_rss_log(&fs::read_to_string(&log)?).is_some());
        }
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
