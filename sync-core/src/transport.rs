//! Byte streams between the two sides.
//!
//! The session protocol runs over any ordered pair of streams. This module makes them: a pair of
//! OS pipes to a receiver thread in this process, or the stdin and stdout of an agent process
//! (`azsync agent --stdio`, locally or, later, at the far end of an SSH channel).

use std::io::{self, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::receiver;
use crate::remote::{self, Agent, AgentSource, SystemSsh};
use crate::ssh::sftp_dest::SftpRoot;
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
    /// An agent on another machine, reached over SSH and deployed there if missing. The
    /// destination path is then a path on that machine (relative paths are under the remote
    /// home). With the built-in client, a remote that cannot run the agent (another platform,
    /// a home mounted `noexec`) is synced over SFTP instead, as with [`Transport::Sftp`], and
    /// one line on stderr says so.
    Ssh {
        /// How to reach the remote.
        shell: RemoteShell,
        /// Where the remote agent comes from.
        agent: AgentSource,
    },
    /// No agent: the receiver runs in this process and changes the remote through SFTP
    /// (whole files, no deltas; mtimes to the second, all SFTP carries). Relative destination
    /// paths are under the SFTP login directory (the remote home).
    Sftp {
        /// Who and where.
        target: SshTarget,
        /// Keys, known_hosts, policy, timeout.
        options: SshOptions,
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
        !matches!(self, Transport::Ssh { .. } | Transport::Sftp { .. })
    }

    pub(crate) fn connect(self, progress: &dyn Progress) -> Result<Connection> {
        match self {
            Transport::Ssh { shell, agent } => match shell {
                RemoteShell::System(ssh) => match remote::start_agent(&ssh, &agent)? {
                    Agent::Started(connection) => Ok(connection),
                    // Through a system ssh there is no SFTP session of ours to fall back on.
                    Agent::Unavailable { reason, .. } => Err(Error::Config(format!(
                        "{} cannot run the azsync agent ({reason}): install azsync there and \
                         pass --agent-path, or use the built-in SSH client (without --rsh), \
                         which syncs over SFTP then",
                        remote::Shell::describe(&ssh)
                    ))),
                },
                RemoteShell::Native { target, options } => {
                    let session = connect_ssh(&target, &options, progress)?;
                    match remote::start_agent(&session, &agent)? {
                        Agent::Started(connection) => Ok(connection),
                        Agent::Unavailable { reason, home } => {
                            progress.notice(&format!(
                                "{} cannot run the azsync agent ({reason}); syncing over SFTP \
                                 (no deltas)",
                                target.host
                            ));
                            sftp_receiver(session, Some(home))
                        }
                    }
                }
            },
            Transport::Sftp { target, options } => {
                sftp_receiver(connect_ssh(&target, &options, progress)?, None)
            }
            Transport::InProcess => receiver_thread(receiver::serve),
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

/// A receiver thread in this process whose destination is reached through SFTP on `session`;
/// relative destinations are under `home` (else the SFTP login directory).
///
/// If the SFTP session is lost, the receiver stops at its next read from the sender and the
/// sync ends with that error (rather than failing every remaining file one by one).
fn sftp_receiver(session: SshSession, home: Option<String>) -> Result<Connection> {
    let lost: Arc<OnceLock<String>> = Arc::default();
    receiver_thread(move |to_receiver_r, from_receiver_w| {
        let mut reader = UntilLost {
            inner: to_receiver_r,
            lost: Arc::clone(&lost),
        };
        let result = receiver::serve_with(&mut reader, from_receiver_w, |dest, options| {
            let home = home.as_ref().map(|h| h.as_bytes());
            SftpRoot::open(&session, dest, home, options.dry_run, Arc::clone(&lost))
        });
        match lost.get() {
            Some(why) => {
                // The sender learns why from our last message; until it stops, whatever it
                // still sends is read and dropped, so that it never fails on a broken pipe
                // first.
                let _ = io::copy(&mut reader.inner, &mut io::sink());
                Err(Error::Transport {
                    peer: "receiver",
                    source: io::Error::new(io::ErrorKind::ConnectionAborted, why.clone()),
                })
            }
            None => result,
        }
    })
}

/// Runs `serve` in a receiver thread of this process, connected by a pair of OS pipes.
fn receiver_thread(
    serve: impl FnOnce(io::PipeReader, io::PipeWriter) -> Result<()> + Send + 'static,
) -> Result<Connection> {
    let (to_receiver_r, to_receiver_w) = io::pipe().map_err(pipe_error)?;
    let (from_receiver_r, from_receiver_w) = io::pipe().map_err(pipe_error)?;
    let handle = std::thread::Builder::new()
        .name("azsync-receiver".into())
        .spawn(move || serve(to_receiver_r, from_receiver_w))
        .map_err(pipe_error)?;
    Ok(Connection {
        reader: Box::new(from_receiver_r),
        writer: Box::new(to_receiver_w),
        end: End::Thread(handle),
        // The receiver thread drops its end of the pipe when it stops.
        abort: Box::new(|| {}),
    })
}

/// A reader that fails once `lost` is set.
struct UntilLost<R> {
    inner: R,
    lost: Arc<OnceLock<String>>,
}

impl<R: Read> Read for UntilLost<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(why) = self.lost.get() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                why.clone(),
            ));
        }
        self.inner.read(buf)
    }
}

/// Connects, telling the user (as OpenSSH does) when a new host key was recorded.
fn connect_ssh(
    target: &SshTarget,
    options: &SshOptions,
    progress: &dyn Progress,
) -> Result<SshSession> {
    let session = SshSession::connect(target, options)?;
    if let Some(added) = session.added_host_key() {
        progress.notice(added);
    }
    Ok(session)
}

fn pipe_error(source: io::Error) -> Error {
    Error::Transport {
        peer: "receiver",
        source,
    }
}
