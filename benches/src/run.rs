//! Running one sync under GNU time: wall time from the harness's own clock, peak RSS from
//! `/usr/bin/time -f '%e %M'`.
//!
//! GNU time waits for its child with `wait4` and prints `ru_maxrss`. On Linux that is the high
//! water mark of the largest single process among the child and the descendants it waited for
//! (a maximum, not a sum): for azsync the CLI or its `azsync agent --stdio` receiver, for rsync
//! the largest of its sender, generator and receiver.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const GNU_TIME: &str = "/usr/bin/time";

/// One measured run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// `ru_maxrss` in KiB.
    pub max_rss_kib: u64,
}

/// A run whose command exited unsuccessfully: a result of the benchmark, not an error of the
/// harness.
#[derive(Debug, Clone)]
pub struct Failure {
    /// How it ended, e.g. "exit status: 1".
    pub status: String,
    /// The last lines of its output.
    pub tail: String,
    /// Where all of its output is.
    pub log: PathBuf,
}

/// A sync tool and how it is invoked.
#[derive(Debug, Clone)]
pub struct Tool {
    pub name: &'static str,
    pub program: PathBuf,
    style: Style,
}

#[derive(Debug, Clone, Copy)]
enum Style {
    /// `azsync sync --no-progress SRC DST`
    Azsync,
    /// `rsync -a SRC/ DST/`
    Rsync,
}

impl Tool {
    pub fn azsync(program: PathBuf) -> Tool {
        Tool {
            name: "azsync",
            program,
            style: Style::Azsync,
        }
    }

    pub fn rsync(program: PathBuf) -> Tool {
        Tool {
            name: "rsync",
            program,
            style: Style::Rsync,
        }
    }

    /// The command line that copies the contents of `src` into `dst`.
    pub fn argv(&self, src: &Path, dst: &Path) -> Vec<OsString> {
        let mut argv = vec![self.program.clone().into_os_string()];
        match self.style {
            Style::Azsync => {
                argv.extend(["sync", "--no-progress"].map(OsString::from));
                argv.push(src.into());
                argv.push(dst.into());
            }
            Style::Rsync => {
                argv.push("-a".into());
                argv.push(with_slash(src));
                argv.push(with_slash(dst));
            }
        }
        argv
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

    /// Runs `argv` to completion, its output going to `log` (and GNU time's report to
    /// `log` + `.time`). `Ok(Err(_))` if the command failed; `Err(_)` if it could not be run or
    /// measured.
    pub fn run(&self, argv: &[OsString], log: &Path) -> Result<Result<Sample, Failure>> {
        let time_out = {
            let mut p = log.as_os_str().to_owned();
            p.push(".time");
            PathBuf::from(p)
        };
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&self.time);
        cmd.args(["-f", "%e %M", "-o"])
            .arg(&time_out)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let start = Instant::now();
        let status = cmd
            .status()
            .with_context(|| format!("running {}", shell_words(argv)))?;
        let wall = start.elapsed();
        if !status.success() {
            return Ok(Err(Failure {
                status: status.to_string(),
                tail: tail(log, 5),
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
        Ok(Ok(Sample { wall, max_rss_kib }))
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

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

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
            shell_words(&az.argv(src, dst)),
            "/x/azsync sync --no-progress /t/src /t/dst"
        );
        assert_eq!(
            shell_words(&rs.argv(src, dst)),
            "/usr/bin/rsync -a /t/src/ /t/dst/"
        );
        assert_eq!(quote(OsStr::new("a b")), "'a b'");
    }
}
