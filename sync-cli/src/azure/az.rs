//! The one way azsync talks to Azure: the `az` CLI, run as an argument list.
//!
//! Every call is `az ARGS... --output json` (never a shell string, so no value is ever
//! re-parsed by a shell), and its stdout is parsed into the typed structs of `model`. A
//! failure becomes an [`AzError`] that quotes az's own stderr, because az's messages
//! ("The subscription ... could not be found") are what the user needs to act. Before the first
//! real call, `az account show` checks that az is installed and logged in, so those two
//! problems get a message saying what to run instead of az's usage text.
//!
//! In a dry run nothing is run: each command line is printed, shell-quoted, on stdout, and the
//! call returns `None`.

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::io;
use std::process::{Command, Stdio};

use serde::de::DeserializeOwned;

use super::model::Account;

/// How to install az, for the error when it is missing.
const INSTALL_HINT: &str = "install the Azure CLI (https://aka.ms/installazurecli; on \
                            Ubuntu: curl -sL https://aka.ms/InstallAzureCLIDeb | sudo bash), \
                            then run `az login`";

/// Why an az call failed.
#[derive(Debug)]
pub enum AzError {
    /// `az` is not on PATH.
    Missing,
    /// `az account show` failed: not logged in (or the login expired).
    NotLoggedIn { stderr: String },
    /// az ran and failed.
    Failed {
        line: String,
        status: String,
        stderr: String,
    },
    /// az succeeded but its output is not the JSON expected.
    BadJson {
        line: String,
        error: String,
        output: String,
    },
    /// az could not be started for another reason.
    Spawn { line: String, error: io::Error },
}

impl std::fmt::Display for AzError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AzError::Missing => write!(f, "the Azure CLI (az) is not on PATH: {INSTALL_HINT}"),
            AzError::NotLoggedIn { stderr } => write!(
                f,
                "not logged in to Azure (`az account show` failed: {}): run `az login` \
                 (or `az login --use-device-code` where there is no browser)",
                one_line(stderr)
            ),
            AzError::Failed {
                line,
                status,
                stderr,
            } => write!(f, "`{line}` failed ({status}): {}", one_line(stderr)),
            AzError::BadJson {
                line,
                error,
                output,
            } => write!(
                f,
                "`{line}` printed output azsync cannot read ({error}): {}",
                clip(output, 300)
            ),
            AzError::Spawn { line, error } => write!(f, "cannot run `{line}`: {error}"),
        }
    }
}

impl std::error::Error for AzError {}

/// az's stderr on one line: its lines joined, "ERROR: " prefixes kept (they say it is az).
fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    if joined.is_empty() {
        "no message on stderr".to_string()
    } else {
        clip(&joined, 2000)
    }
}

fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Runs az, or prints what it would run.
#[derive(Debug)]
pub struct Az {
    program: OsString,
    dry_run: bool,
    checked_login: Cell<bool>,
}

impl Az {
    /// `az` from PATH.
    pub fn new(dry_run: bool) -> Az {
        Az {
            program: "az".into(),
            dry_run,
            checked_login: Cell::new(false),
        }
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// The full argument list of a call: `args` and `--output json`.
    pub fn argv<S: AsRef<OsStr>>(args: &[S]) -> Vec<OsString> {
        let mut argv: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        argv.extend(["--output".into(), "json".into()]);
        argv
    }

    /// `az ARGS --output json`, shell-quoted so it can be pasted into a shell.
    pub fn line<S: AsRef<OsStr>>(args: &[S]) -> String {
        let argv = Az::argv(args);
        let words: Vec<String> = std::iter::once("az".to_string())
            .chain(argv.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect();
        shell_words::join(words)
    }

    /// Runs a call and parses its JSON output; `None` in a dry run (the line is printed).
    pub fn call<T: DeserializeOwned, S: AsRef<OsStr>>(
        &self,
        args: &[S],
    ) -> Result<Option<T>, AzError> {
        let Some(stdout) = self.exec(args)? else {
            return Ok(None);
        };
        parse(&Az::line(args), &stdout).map(Some)
    }

    /// Runs a call whose output is not needed (az prints nothing, or `null`, for some).
    pub fn call_unit<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<(), AzError> {
        self.exec(args).map(|_| ())
    }

    fn exec<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Option<Vec<u8>>, AzError> {
        if self.dry_run {
            println!("{}", Az::line(args));
            return Ok(None);
        }
        self.ensure_logged_in()?;
        self.run_raw(args).map(Some).map_err(|(e, line)| match e {
            RawError::Missing => AzError::Missing,
            RawError::Spawn(error) => AzError::Spawn { line, error },
            RawError::Failed { status, stderr } => AzError::Failed {
                line,
                status,
                stderr,
            },
        })
    }

    /// Checks once per process that az is installed and logged in; returns the account the
    /// first time it asks.
    pub fn ensure_logged_in(&self) -> Result<Option<Account>, AzError> {
        if self.dry_run || self.checked_login.get() {
            return Ok(None);
        }
        let args = ["account", "show"];
        let stdout = self.run_raw(&args).map_err(|(e, line)| match e {
            RawError::Missing => AzError::Missing,
            RawError::Spawn(error) => AzError::Spawn { line, error },
            RawError::Failed { stderr, .. } => AzError::NotLoggedIn { stderr },
        })?;
        let account: Account = parse(&Az::line(&args), &stdout)?;
        self.checked_login.set(true);
        Ok(Some(account))
    }

    fn run_raw<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Vec<u8>, (RawError, String)> {
        let line = Az::line(args);
        let output = Command::new(&self.program)
            .args(Az::argv(args))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                let raw = if e.kind() == io::ErrorKind::NotFound {
                    RawError::Missing
                } else {
                    RawError::Spawn(e)
                };
                (raw, line.clone())
            })?;
        if !output.status.success() {
            let status = match output.status.code() {
                Some(code) => format!("exit status {code}"),
                None => output.status.to_string(),
            };
            return Err((
                RawError::Failed {
                    status,
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                },
                line,
            ));
        }
        Ok(output.stdout)
    }
}

enum RawError {
    Missing,
    Spawn(io::Error),
    Failed { status: String, stderr: String },
}

/// Parses az's JSON output into `T`; the error quotes the command and the start of the output.
pub fn parse<T: DeserializeOwned>(line: &str, stdout: &[u8]) -> Result<T, AzError> {
    serde_json::from_slice(stdout).map_err(|e| AzError::BadJson {
        line: line.to_string(),
        error: e.to_string(),
        output: String::from_utf8_lossy(stdout).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::model::{Account, Vm};

    #[test]
    fn lines_are_shell_quoted_and_ask_for_json() {
        let line = Az::line(&[
            "vm",
            "create",
            "--name",
            "my vm",
            "--custom-data",
            "/tmp/a'b",
        ]);
        assert_eq!(
            line,
            "az vm create --name 'my vm' --custom-data '/tmp/a'\\''b' --output json"
        );
        assert_eq!(
            shell_words::split(&line).unwrap(),
            [
                "az",
                "vm",
                "create",
                "--name",
                "my vm",
                "--custom-data",
                "/tmp/a'b",
                "--output",
                "json"
            ]
        );
    }

    #[test]
    fn malformed_json_names_the_command_and_quotes_the_output() {
        let err = parse::<Vec<Vm>>("az vm list -d", b"WARNING: something\n[{").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("`az vm list -d` printed output azsync cannot read ("),
            "{msg}"
        );
        assert!(msg.contains("WARNING: something"), "{msg}");
        // The right JSON of the wrong shape is refused too.
        let err = parse::<Account>("az account show", b"[]").unwrap_err();
        assert!(matches!(err, AzError::BadJson { .. }));
    }

    #[test]
    fn failures_quote_stderr_on_one_line() {
        let err = AzError::Failed {
            line: "az group exists --name rg --output json".into(),
            status: "exit status 1".into(),
            stderr: "ERROR: (AuthorizationFailed) no access\nCode: AuthorizationFailed\n".into(),
        };
        assert_eq!(
            err.to_string(),
            "`az group exists --name rg --output json` failed (exit status 1): ERROR: \
             (AuthorizationFailed) no access / Code: AuthorizationFailed"
        );
        let err = AzError::NotLoggedIn {
            stderr: "ERROR: Please run 'az login' to setup account.\n".into(),
        };
        assert!(err.to_string().contains("run `az login`"), "{err}");
        assert!(AzError::Missing
            .to_string()
            .contains("https://aka.ms/installazurecli"));
    }
}
