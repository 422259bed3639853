//! A native SSH client (russh) behind a blocking facade, for the synchronous engine.
//!
//! An [`SshSession`] owns a small tokio runtime and one authenticated connection. Commands run
//! on session channels: [`SshSession::run`] collects a command's output, and
//! [`SshSession::exec_stream`] hands out a blocking [`Read`] (the command's stdout) and
//! [`Write`] (its stdin) that any thread may use, with bounded buffering in between (in chunks
//! for writing, in bytes for reading, so reading never stalls the connection: see `stream`).
//! [`SshSession::sftp_upload`] puts a file in place atomically.
//!
//! It behaves the way an OpenSSH user expects:
//! - keys from ssh-agent first, then each `--key` file, then `~/.ssh/id_ed25519`, `id_ecdsa`,
//!   `id_rsa`; RSA keys sign with rsa-sha2-512/256; an encrypted key must be in the agent
//!   (there is never a passphrase prompt);
//! - host keys are checked against `~/.ssh/known_hosts` (plain, `[host]:port` and hashed
//!   entries); by default a new host is recorded, a changed key is always refused;
//! - every failure is one line naming the host.
//!
//! The methods block the calling thread; call them from ordinary threads, never from async
//! code. One session may be shared by several threads. If its connection is lost (or has to be
//! abandoned, see `Client::channel_close`), the next command transparently opens a new one
//! with the same options; commands already running on the old one see the loss as an error.

mod auth;
mod known_hosts;
mod sftp;
mod sftp_client;
pub(crate) mod sftp_dest;
mod stream;
#[cfg(test)]
mod test_sshd;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{Config, Handle, Handler};
use russh::keys::{Algorithm, HashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelId, Preferred};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use known_hosts::HostStatus;

/// The `peer` named in transport errors from this module.
const PEER: &str = "SSH server";

/// Initial receive window per channel. Large, so that a long fat pipe stays full; memory is
/// bounded separately (see `stream`), since russh re-opens the window as data arrives.
const WINDOW_SIZE: u32 = 32 * 1024 * 1024;
/// The largest channel packet we accept: OpenSSH's own value. Larger ones (up to the 256 KiB
/// OpenSSH allows) measured no faster on loopback, and russh warns above 64 KiB.
const MAX_PACKET_SIZE: u32 = 32 * 1024;
/// AES-GCM first: with AES-NI (every Azure VM) it is the fastest cipher on both ends; then
/// OpenSSH's own order.
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];
/// Keepalives keep idle connections through NAT and load balancers (Azure drops idle flows
/// after 4 minutes) and notice a dead peer.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// Where to connect: `user@host:port`. `host` is a name or an address; an IPv6 literal is
/// given without brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// The remote user.
    pub user: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port, usually 22.
    pub port: u16,
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            write!(f, "{}@{}:{}", self.user, self.host, self.port)
        }
    }
}

/// What to do with the server's host key (OpenSSH's `StrictHostKeyChecking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// Only hosts already in known_hosts (`yes`).
    Strict,
    /// Record unknown hosts in known_hosts; refuse changed keys (`accept-new`).
    #[default]
    AcceptNew,
    /// Accept any key and record nothing (`no`, with no file written). For tests and
    /// throwaway hosts only.
    Off,
}

/// Which ssh-agent to ask for keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SshAgent {
    /// The agent at `$SSH_AUTH_SOCK`, if set and reachable.
    #[default]
    Env,
    /// The agent listening on this socket.
    Socket(PathBuf),
    /// No agent.
    Off,
}

/// How to connect and authenticate.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Private key files (`--key`), tried after the ssh-agent's keys and before the default
    /// `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`.
    pub keys: Vec<PathBuf>,
    /// The known_hosts file; `None` is `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
    /// Host key checking.
    pub policy: HostKeyPolicy,
    /// Limit for the TCP connect and, separately, for the SSH handshake (default 15 s).
    pub connect_timeout: Duration,
    /// The home directory whose `.ssh` holds the default keys and known_hosts; `None` is
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// Which ssh-agent to use (default `$SSH_AUTH_SOCK`).
    pub agent: SshAgent,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            keys: Vec::new(),
            known_hosts: None,
            policy: HostKeyPolicy::default(),
            connect_timeout: Duration::from_secs(15),
            home: None,
            agent: SshAgent::default(),
        }
    }
}

/// A finished remote command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit status; `None` when the command was killed by a signal or the server sent no
    /// status.
    pub status: Option<u32>,
    /// Everything the command wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the command wrote to stderr.
    pub stderr: Vec<u8>,
}

/// A remote command whose stdin and stdout are streamed.
pub struct RemoteProcess {
    /// The command's stdout. EOF when the command closes it; a lost connection is an error.
    pub reader: Box<dyn Read + Send>,
    /// The command's stdin. Dropping it sends EOF.
    pub writer: Box<dyn Write + Send>,
    ending: oneshot::Receiver<stream::Ending>,
    command: String,
    peer: String,
    /// Keeps the runtime that reports the ending alive.
    _session: Arc<Inner>,
}

impl fmt::Debug for RemoteProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteProcess")
            .field("peer", &self.peer)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

impl RemoteProcess {
    /// Drops the streams still held here (sending EOF) and waits for the command to end.
    /// Returns its exit status, or `None` if it was killed by a signal (the signal is shown on
    /// stderr, like the command's own stderr). If the streams were moved out, wait only after
    /// dropping them: the command sees EOF on its stdin only when the writer is gone.
    pub fn wait(self) -> Result<Option<u32>> {
        let RemoteProcess {
            reader,
            writer,
            ending,
            command,
            peer,
            _session,
        } = self;
        drop(writer);
        drop(reader);
        let ending = ending.blocking_recv().map_err(|_| {
            ssh_error(
                io::ErrorKind::ConnectionAborted,
                format!("{peer}: lost track of `{command}`"),
            )
        })?;
        if ending.lost {
            return Err(ssh_error(
                io::ErrorKind::ConnectionAborted,
                format!("{peer}: the connection was lost while running `{command}`"),
            ));
        }
        if let Some(signal) = &ending.signal {
            let _ = writeln!(
                io::stderr(),
                "remote: `{command}` was killed by signal {signal}"
            );
        }
        Ok(ending.status)
    }
}

/// An authenticated SSH connection.
pub struct SshSession {
    inner: Arc<Inner>,
}

impl fmt::Debug for SshSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshSession")
            .field("peer", &self.inner.peer)
            .finish_non_exhaustive()
    }
}

/// What the session and its adapters share. Dropped last, from a blocking thread.
struct Inner {
    // Field order matters: the connection is dropped before the runtime that drives it.
    connection: tokio::sync::Mutex<Arc<Connection>>,
    runtime: tokio::runtime::Runtime,
    /// `user@host:port`, for messages.
    peer: String,
    /// What to reconnect to, and how.
    target: SshTarget,
    options: SshOptions,
    /// Set when the host key was added to known_hosts during the first connect.
    learned: Option<String>,
}

/// One authenticated SSH connection.
struct Connection {
    handle: Handle<Client>,
    /// Set by the handler when russh can no longer send on this connection (see
    /// [`Client::channel_close`]).
    wedged: Arc<AtomicBool>,
}

impl Connection {
    fn usable(&self) -> bool {
        !self.wedged.load(Ordering::SeqCst) && !self.handle.is_closed()
    }
}

impl Inner {
    /// The connection to open channels on. If the last one was lost (the server or the
    /// network dropped it, or it had to be abandoned), a new one is made first, so one failed
    /// command does not leave the session unusable.
    async fn connection(&self) -> Result<Arc<Connection>> {
        let mut current = self.connection.lock().await;
        if !current.usable() {
            let (fresh, _) = open_connection(&self.target, &self.options).await?;
            *current = Arc::new(fresh);
        }
        Ok(Arc::clone(&current))
    }

    /// Opens a session channel. If that fails because the connection is gone (it may have
    /// just been ended by [`Client::channel_close`]), it is tried once more on a new one.
    async fn open_session(&self) -> Result<russh::Channel<russh::client::Msg>> {
        let connection = self.connection().await?;
        let error = match connection.handle.channel_open_session().await {
            Ok(channel) => return Ok(channel),
            Err(russh::Error::ChannelOpenFailure(reason)) => {
                return Err(ssh_error(
                    io::ErrorKind::ConnectionRefused,
                    format!(
                        "{}: the server refused to open a session channel ({reason:?}; sshd \
                         allows MaxSessions channels per connection, 10 by default)",
                        self.peer
                    ),
                ))
            }
            Err(e) => e,
        };
        connection.wedged.store(true, Ordering::SeqCst);
        let connection = self.connection().await?;
        connection.handle.channel_open_session().await.map_err(|e| {
            ssh_error(
                io::ErrorKind::ConnectionAborted,
                format!(
                    "{}: cannot open a session channel: {e} (before reconnecting: {error})",
                    self.peer
                ),
            )
        })
    }

    /// How long to wait for the server to open a channel or accept a request.
    fn request_timeout(&self) -> Duration {
        self.options.connect_timeout.max(Duration::from_secs(30))
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let connection = self.connection.get_mut();
        if !connection.usable() {
            return;
        }
        let handle = &connection.handle;
        let _ = self.runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(2),
                handle.disconnect(russh::Disconnect::ByApplication, "", "en"),
            )
            .await
        });
    }
}

/// Connects, checks the host key and authenticates. Returns the connection and, if the host
/// key was recorded in known_hosts, OpenSSH's message saying so.
async fn open_connection(
    target: &SshTarget,
    opts: &SshOptions,
) -> Result<(Connection, Option<String>)> {
    let peer = target.to_string();
    let home = opts
        .home
        .clone()
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from));
    let known_hosts = match (&opts.known_hosts, &home) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(home)) => Some(known_hosts::default_path(home)),
        (None, None) if opts.policy == HostKeyPolicy::Off => None,
        (None, None) => {
            return Err(Error::Config(
                "cannot find known_hosts: $HOME is not set and no known_hosts file was given"
                    .into(),
            ))
        }
    };
    for key in &opts.keys {
        std::fs::metadata(key).map_err(|e| Error::io(key, e))?;
    }

    let entry_name = known_hosts::host_entry_name(&target.host, target.port);
    let mut preferred = Preferred {
        cipher: Cow::Borrowed(CIPHERS),
        ..Preferred::default()
    };
    if let Some(path) = &known_hosts {
        if opts.policy != HostKeyPolicy::Off {
            preferred.key = Cow::Owned(host_key_order(
                &known_hosts::known_algorithms(path, &entry_name),
                &preferred.key,
            ));
        }
    }
    let config = Arc::new(Config {
        window_size: WINDOW_SIZE,
        maximum_packet_size: MAX_PACKET_SIZE,
        nodelay: true,
        keepalive_interval: Some(KEEPALIVE),
        keepalive_max: 4,
        inactivity_timeout: None,
        preferred,
        ..Config::default()
    });
    let learned = Arc::new(Mutex::new(None));
    let wedged = Arc::new(AtomicBool::new(false));
    let client = Client {
        entry_name,
        known_hosts,
        policy: opts.policy,
        peer: peer.clone(),
        learned: Arc::clone(&learned),
        wedged: Arc::clone(&wedged),
    };
    let plan = auth::AuthPlan {
        user: &target.user,
        peer: &peer,
        agent: &opts.agent,
        explicit_keys: &opts.keys,
        home: home.as_deref(),
        timeout: opts.connect_timeout,
    };
    let mut handle = handshake(target, &peer, opts.connect_timeout, config, client).await?;
    // Generous: an agent may ask its user to confirm each signature.
    let auth_timeout = opts.connect_timeout.max(Duration::from_secs(120));
    tokio::time::timeout(auth_timeout, auth::authenticate(&mut handle, &plan))
        .await
        .unwrap_or_else(|_| {
            Err(ssh_error(
                io::ErrorKind::TimedOut,
                format!(
                    "{peer}: authentication did not finish within {}",
                    seconds(auth_timeout)
                ),
            ))
        })?;
    let learned = learned.lock().map(|mut l| l.take()).unwrap_or(None);
    Ok((Connection { handle, wedged }, learned))
}

impl SshSession {
    /// Connects, checks the host key, and authenticates.
    pub fn connect(target: &SshTarget, opts: &SshOptions) -> Result<SshSession> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("azsync-ssh")
            .enable_all()
            .build()
            .map_err(|e| {
                ssh_error(
                    e.kind(),
                    format!("cannot start the SSH client runtime: {e}"),
                )
            })?;
        let (connection, learned) = runtime.block_on(open_connection(target, opts))?;
        Ok(SshSession {
            inner: Arc::new(Inner {
                connection: tokio::sync::Mutex::new(Arc::new(connection)),
                runtime,
                peer: target.to_string(),
                target: target.clone(),
                options: opts.clone(),
                learned,
            }),
        })
    }

    /// `user@host:port` of this connection.
    pub fn peer(&self) -> &str {
        &self.inner.peer
    }

    /// If this connection recorded a new host key in known_hosts (policy `AcceptNew`), the
    /// line OpenSSH would print: `Warning: Permanently added '...' (ED25519) to the list of
    /// known hosts.`
    pub fn added_host_key(&self) -> Option<&str> {
        self.inner.learned.as_deref()
    }

    /// Runs a command to completion; `stdin` (if any) is written, then EOF is sent.
    pub fn run(&self, command: &str, stdin: Option<&[u8]>) -> Result<CommandOutput> {
        let output = self
            .inner
            .runtime
            .block_on(stream::run(&self.inner, command, stdin))?;
        Ok(CommandOutput {
            status: output.ending.status,
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }

    /// Starts a command whose stdin and stdout are streamed through blocking adapters that
    /// may be used from other threads (one reading while another writes). The command's stderr
    /// is copied to ours, each line prefixed `remote: `.
    pub fn exec_stream(&self, command: &str) -> Result<RemoteProcess> {
        let streamed = self
            .inner
            .runtime
            .block_on(stream::stream(&self.inner, command))?;
        Ok(RemoteProcess {
            reader: Box::new(streamed.reader),
            writer: Box::new(streamed.writer),
            ending: streamed.ending,
            command: command.to_string(),
            peer: self.inner.peer.clone(),
            _session: Arc::clone(&self.inner),
        })
    }

    /// Uploads the bytes of a local file to `remote_path` over SFTP: writes a temp file in the
    /// same directory, sets `mode` explicitly (the remote umask does not apply), then renames
    /// it into place atomically (`posix-rename@openssh.com` when offered). Missing parent
    /// directories are created (`mkdir -p`). A relative path (or `~/...`) is relative to the
    /// remote home.
    pub fn sftp_upload(&self, local: &Path, remote_path: &str, mode: u32) -> Result<()> {
        self.inner
            .runtime
            .block_on(sftp::upload(&self.inner, local, remote_path, mode))
    }
}

/// An error of this module: a failure to reach, trust or use the SSH server, one line.
pub(crate) fn ssh_error(kind: io::ErrorKind, message: impl Into<String>) -> Error {
    Error::Transport {
        peer: PEER,
        source: io::Error::new(kind, message.into()),
    }
}

/// The OS's text for an I/O error, without Rust's " (os error N)" suffix.
fn os_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// TCP connect (each resolved address in turn, each within the timeout), then the SSH
/// handshake (within the timeout again).
async fn handshake(
    target: &SshTarget,
    peer: &str,
    timeout: Duration,
    config: Arc<Config>,
    client: Client,
) -> Result<Handle<Client>> {
    let host = target.host.as_str();
    let port = target.port;
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => {
                return Err(ssh_error(
                    io::ErrorKind::NotFound,
                    format!("{peer}: cannot resolve host name {host}: {}", os_text(&e)),
                ))
            }
            Err(_) => {
                return Err(ssh_error(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{peer}: resolving host name {host} timed out after {}",
                        seconds(timeout)
                    ),
                ))
            }
        };
    let mut last: Option<io::Error> = None;
    let mut socket = None;
    for addr in &addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                socket = Some(s);
                break;
            }
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("timed out after {}", seconds(timeout)),
                ))
            }
        }
    }
    let Some(socket) = socket else {
        let e = last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"));
        let text = match e.kind() {
            io::ErrorKind::ConnectionRefused => {
                "connection refused (is sshd running on that port?)".to_string()
            }
            _ => os_text(&e),
        };
        return Err(ssh_error(
            e.kind(),
            format!("{peer}: cannot connect to {host} port {port}: {text}"),
        ));
    };
    let _ = socket.set_nodelay(true);

    match tokio::time::timeout(
        timeout,
        russh::client::connect_stream(config, socket, client),
    )
    .await
    {
        Ok(Ok(handle)) => Ok(handle),
        Ok(Err(ClientError::HostKey(e))) => Err(e),
        Ok(Err(ClientError::Wedged)) => Err(ssh_error(
            io::ErrorKind::ConnectionAborted,
            format!("{peer}: the connection ended during the handshake"),
        )),
        Ok(Err(ClientError::Ssh(e))) => Err(ssh_error(
            io::ErrorKind::ConnectionAborted,
            format!("{peer}: SSH handshake failed: {e}"),
        )),
        Err(_) => Err(ssh_error(
            io::ErrorKind::TimedOut,
            format!(
                "{peer}: no SSH handshake within {} (is this an SSH server?)",
                seconds(timeout)
            ),
        )),
    }
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 && s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

/// The host key algorithms to ask for: those recorded for this host first (so the server
/// presents a key we can check), then the rest in russh's order.
fn host_key_order(known: &[Algorithm], defaults: &[Algorithm]) -> Vec<Algorithm> {
    let mut order: Vec<Algorithm> = Vec::new();
    for algorithm in known {
        if matches!(algorithm, Algorithm::Rsa { .. }) {
            for hash in [Some(HashAlg::Sha512), Some(HashAlg::Sha256)] {
                let rsa = Algorithm::Rsa { hash };
                if defaults.contains(&rsa) && !order.contains(&rsa) {
                    order.push(rsa);
                }
            }
        } else if defaults.contains(algorithm) && !order.contains(algorithm) {
            order.push(algorithm.clone());
        }
    }
    for algorithm in defaults {
        if !order.contains(algorithm) {
            order.push(algorithm.clone());
        }
    }
    order
}

/// The russh event handler: checks the host key.
struct Client {
    entry_name: String,
    known_hosts: Option<PathBuf>,
    policy: HostKeyPolicy,
    peer: String,
    learned: Arc<Mutex<Option<String>>>,
    wedged: Arc<AtomicBool>,
}

/// Errors out of the handler: russh's own, or a host key refusal with its full explanation.
#[derive(Debug)]
enum ClientError {
    Ssh(russh::Error),
    HostKey(Error),
    /// The connection is ended on purpose (see [`Client::channel_close`]).
    Wedged,
}

impl From<russh::Error> for ClientError {
    fn from(e: russh::Error) -> Self {
        ClientError::Ssh(e)
    }
}

impl Handler for Client {
    type Error = ClientError;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => {
                PublicKey::new(cert.public_key().clone(), "")
            }
        };
        self.check_host_key(&key).map_err(ClientError::HostKey)?;
        Ok(true)
    }

    /// russh (0.63) keeps data it could not send yet (the window was full) queued on the
    /// channel, and stops taking any new outgoing message while such data is queued. If the
    /// server closes the channel first (a command exited without reading all its input), that
    /// data can never leave, and every later request on the connection would hang. So the
    /// connection is ended here (its other channels see a lost connection, not a hang), and
    /// the session opens a new one for the next command.
    async fn channel_close(
        &mut self,
        channel: ChannelId,
        session: &mut russh::client::Session,
    ) -> Result<(), Self::Error> {
        if session.has_pending_data(channel) {
            self.wedged.store(true, Ordering::SeqCst);
            return Err(ClientError::Wedged);
        }
        Ok(())
    }
}

impl Client {
    fn check_host_key(&self, key: &PublicKey) -> Result<()> {
        if self.policy == HostKeyPolicy::Off {
            return Ok(());
        }
        let Some(path) = &self.known_hosts else {
            return Err(Error::Config(
                "no known_hosts file to check the host key".into(),
            ));
        };
        let name = &self.entry_name;
        let offered = format!(
            "{} key {}",
            known_hosts::key_type_label(key),
            known_hosts::fingerprint(key)
        );
        let status = known_hosts::check(path, name, key).map_err(|e| {
            ssh_error(
                e.kind(),
                format!("cannot read known hosts file {}: {e}", path.display()),
            )
        })?;
        match status {
            HostStatus::Known { .. } => Ok(()),
            HostStatus::Revoked { line } => Err(ssh_error(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{}: the host key ({offered}) is marked as revoked at {}; refusing to connect",
                    self.peer,
                    known_hosts::location(path, line)
                ),
            )),
            HostStatus::Changed { line } => Err(ssh_error(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{}: REMOTE HOST IDENTIFICATION HAS CHANGED: the server offered {offered}, \
                     but {} records a different key for {name}; someone could be \
                     eavesdropping, or the host was reinstalled. If you trust the change, \
                     remove the old key with: ssh-keygen -R '{name}' -f '{}'",
                    self.peer,
                    known_hosts::location(path, line),
                    path.display()
                ),
            )),
            HostStatus::Unknown => match self.policy {
                HostKeyPolicy::Strict => Err(ssh_error(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{}: host key verification failed: {name} is not in {} (it offered \
                         {offered}) and host key checking is strict; add it with: \
                         ssh-keyscan -p {} {} >> '{}'",
                        self.peer,
                        path.display(),
                        port_of(name),
                        host_of(name),
                        path.display()
                    ),
                )),
                HostKeyPolicy::AcceptNew | HostKeyPolicy::Off => {
                    known_hosts::append(path, name, key).map_err(|e| {
                        ssh_error(
                            e.kind(),
                            format!(
                                "{}: cannot record the host key in {}: {e}",
                                self.peer,
                                path.display()
                            ),
                        )
                    })?;
                    if let Ok(mut learned) = self.learned.lock() {
                        *learned = Some(format!(
                            "Warning: Permanently added '{name}' ({}) to the list of known hosts.",
                            known_hosts::key_type_label(key)
                        ));
                    }
                    Ok(())
                }
            },
        }
    }
}

/// `[host]:port` → `port`, `host` → 22.
fn port_of(name: &str) -> u16 {
    name.rsplit_once("]:")
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(22)
}

/// `[host]:port` → `host`.
fn host_of(name: &str) -> &str {
    match name.strip_prefix('[').and_then(|n| n.rsplit_once("]:")) {
        Some((host, _)) => host,
        None => name,
    }
}
