//! Byte streams between the two sides.
//!
//! The session protocol runs over any ordered pair of streams. This module makes them: a pair of
//! OS pipes to a receiver thread in this process, or the stdin and stdout of an agent process
//! (`azsync agent --stdio`, locally or, later, at the far end of an SSH channel).

use std::io::{self, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::receiver;
use crate::remote::{self, AgentSource, SystemSsh};
use crate::ssh::{RemoteProcess, SshOptions, SshSession, SshTarget};

/// How to reach a remote machine.
#[derive(Debug, Clone)]
pub enum RemoteShell {
    /// The built-in SSH client.
    Native {
        /// Who and where.
        target: SshTarget,
        /// Keys, known_hosts, policy, timeout.
        options: SshOptions,
    },
    /// A system `ssh` command (`--rsh`).
    System(SystemSsh),
}

/// How the sender reaches its receiver.
#[derive(Debug, Default)]
pub enum Transport {
    /// A receiver thread in this process, over OS pipes.
    #[default]
    InProcess,
    /// A receiver process started from this command, speaking the protocol on its stdin and
    /// stdout (its stderr is passed through).
    Agent(Command),
    /// An agent on another machine, reached over SSH and deployed there if missing. The destination path is then a path on that machine (relative paths are
    /// under the remote home).
    Ssh {
        /// How to reach the remote.
        shell: RemoteShell,
        /// Where the remote agent comes from.
        agent: AgentSource,
    },
}

/// An open connection to a receiver.
pub(crate) struct Connection {
    pub reader: Box<dyn Read + Send>,
    pub writer: Box<dyn Write + Send>,
    pub end: End,
    /// Breaks the connection at once, so that a thread blocked writing to a peer that stopped
    /// reading gets an error instead of waiting forever.
    pub abort: Box<dyn Fn() + Send + Sync>,
}

/// An abort that kills a child process (one not yet waited for, so its pid is still ours).
pub(crate) fn kill_child(child: &Child) -> Box<dyn Fn() + Send + Sync> {
    let pid = child.id();
    Box::new(move || {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    })
}

/// What is left to wait for once the streams are closed.
pub(crate) enum End {
    Thread(JoinHandle<Result<()>>),
    Child(Child, String),
    Remote(RemoteProcess),
}

impl Transport {
    /// Whether the destination path is on this machine.
    pub(crate) fn is_local(&self) -> bool {
        !matches!(self, Transport::Ssh { .. })
    }

    pub(crate) fn connect(self) -> Result<Connection> {
        match self {
            Transport::Ssh { shell, agent } => match shell {
                RemoteShell::System(ssh) => remote::start_agent(&ssh, &agent),
                RemoteShell::Native { target, options } => {
                    let session = SshSession::connect(&target, &options)?;
                    remote::start_agent(&session, &agent)
                }
            },
            Transport::InProcess => {
                let (to_receiver_r, to_receiver_w) = io::pipe().map_err(pipe_error)?;
                let (from_receiver_r, from_receiver_w) = io::pipe().map_err(pipe_error)?;
                let handle = std::thread::Builder::new()
                    .name("azsync-receiver".into())
                    .spawn(move || receiver::serve(to_receiver_r, from_receiver_w))
                    .map_err(pipe_error)?;
                Ok(Connection {
                    reader: Box::new(from_receiver_r),
                    writer: Box::new(to_receiver_w),
                    end: End::Thread(handle),
                    // The receiver thread drops its end of the pipe when it stops.
                    abort: Box::new(|| {}),
                })
            }
            Transport::Agent(mut command) => {
                let program = command.get_program().to_string_lossy().into_owned();
                let mut child = command
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|e| Error::Transport {
                        peer: "receiver",
                        source: io::Error::new(
                            e.kind(),
                            format!("cannot start agent {program}: {e}"),
                        ),
                    })?;
                let stdin: ChildStdin = child
                    .stdin
                    .take()
                    .ok_or_else(|| Error::protocol("agent has no stdin"))?;
                let stdout: ChildStdout = child
                    .stdout
                    .take()
                    .ok_or_else(|| Error::protocol("agent has no stdout"))?;
                Ok(Connection {
                    reader: Box::new(stdout),
                    writer: Box::new(stdin),
                    abort: kill_child(&child),
                    end: End::Child(child, program),
                })
            }
        }
    }
}

impl End {
    /// Waits for the receiver to end (call after dropping both streams).
    pub(crate) fn finish(self) -> Result<()> {
        match self {
            End::Thread(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(Error::protocol("the receiver thread panicked"))),
            End::Child(mut child, program) => {
                let status = child.wait().map_err(|e| Error::Transport {
                    peer: "receiver",
                    source: e,
                })?;
                if status.success() {
                    Ok(())
                } else {
                    Err(Error::Remote {
                        peer: "receiver",
                        message: format!("agent {program} exited with {status}"),
                    })
                }
            }
            End::Remote(process) => match process.wait()? {
                Some(0) => Ok(()),
                Some(code) => Err(Error::Remote {
                    peer: "receiver",
                    message: format!("the remote agent exited with status {code}"),
                }),
                None => Err(Error::Remote {
                    peer: "receiver",
                    message: "the remote agent was killed".to_string(),
                }),
            },
        }
    }
}

fn pipe_error(source: io::Error) -> Error {
    Error::Transport {
        peer: "receiver",
        source,
    }
}
