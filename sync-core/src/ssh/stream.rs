//! Remote commands on session channels, and the blocking adapters that let the synchronous
//! engine read and write them from its own threads.
//!
//! Each direction crosses between tokio and the blocking side through a queue of chunks, and a
//! thread reading never waits on a thread writing (the two directions are independent tasks).
//! The writing queue is bounded: a writer waits while the connection cannot take more. The
//! reading queue never makes the connection wait: russh delivers every channel's data and every
//! window adjustment from one loop, so a full reading queue would stop the connection from
//! taking in the window adjustments that let our writes go out, while the thread that should
//! empty the queue waits for one of those writes: a deadlock (seen on a loaded machine, with
//! the sender's answering thread waiting for the walker's write). The reading queue is bounded by
//! bytes instead ([`READ_LIMIT`]): a peer that sends that much more than we read is an error.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use russh::client::Msg;
use russh::{Channel, ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};

use super::{ssh_error, Inner};
use crate::error::{Error, Result};

/// Bytes received and not yet read that make the peer's output an error rather than a queue
/// (the session protocol never has more than a window of replies outstanding).
pub(super) const READ_LIMIT: usize = 256 << 20;
/// Chunks queued from the blocking writer to the channel. Few: russh itself buffers up to the
/// peer's window (2 MiB with OpenSSH) once data is handed over, so more here only adds memory
/// (32 chunks were 4 MiB, half the sender's heap at its peak).
const WRITE_QUEUE: usize = 4;
/// The largest chunk one `write` call hands over; longer writes are short writes.
const MAX_WRITE: usize = 128 * 1024;

/// What the reader task passes to the blocking reader.
enum Chunk {
    Data(Bytes),
    Error(io::Error),
}

/// How a command ended.
#[derive(Debug, Default)]
pub(super) struct Ending {
    pub status: Option<u32>,
    pub signal: Option<String>,
    /// The connection dropped before the command's end was reported.
    pub lost: bool,
}

/// Where the command's stdout goes.
enum Stdout {
    Queue(Option<ReadQueue>),
    Collect(Vec<u8>),
}

/// The sending end of the reading queue, with the count of bytes queued and not yet read.
struct ReadQueue {
    tx: mpsc::UnboundedSender<Chunk>,
    queued: Arc<AtomicUsize>,
}

impl ReadQueue {
    /// Queues `data`; false once the reader is gone or the peer has sent too much unread data
    /// (the reader then gets an error).
    fn push(&self, data: Bytes) -> bool {
        let len = data.len();
        if self.queued.fetch_add(len, Ordering::AcqRel) + len > READ_LIMIT {
            let _ = self.tx.send(Chunk::Error(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the remote command sent more than {} MiB that was not read yet",
                    READ_LIMIT >> 20
                ),
            )));
            return false;
        }
        self.tx.send(Chunk::Data(data)).is_ok()
    }
}

/// Where the command's stderr goes.
enum Stderr {
    /// Written to our stderr line by line, each prefixed with "remote: ".
    Forward(Vec<u8>),
    Collect(Vec<u8>),
}

impl Stderr {
    fn push(&mut self, data: &[u8]) {
        match self {
            Stderr::Collect(all) => all.extend_from_slice(data),
            Stderr::Forward(pending) => {
                pending.extend_from_slice(data);
                if let Some(end) = pending.iter().rposition(|&b| b == b'\n') {
                    let complete: Vec<u8> = pending.drain(..=end).collect();
                    forward_lines(&complete);
                }
                if pending.len() > 64 * 1024 {
                    let long: Vec<u8> = std::mem::take(pending);
                    forward_lines(&long);
                }
            }
        }
    }

    fn finish(&mut self) {
        if let Stderr::Forward(pending) = self {
            if !pending.is_empty() {
                let rest = std::mem::take(pending);
                forward_lines(&rest);
            }
        }
    }
}

fn forward_lines(text: &[u8]) {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() + 16);
    for line in text.split(|&b| b == b'\n') {
        out.extend_from_slice(b"remote: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    let _ = io::stderr().lock().write_all(&out);
}

/// Starts `command` on a new session channel and waits for the server to accept it. Messages
/// that arrive before the server's answer are returned so that nothing is lost.
pub(super) async fn start(
    inner: &Inner,
    command: &str,
) -> Result<(Channel<Msg>, VecDeque<ChannelMsg>)> {
    let started = tokio::time::timeout(inner.request_timeout(), async {
        let mut channel = inner.open_session().await?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| channel_error(inner, "cannot start the command", e))?;
        let early = wait_for_reply(inner, &mut channel, command).await?;
        Ok((channel, early))
    })
    .await;
    started.unwrap_or_else(|_| {
        Err(ssh_error(
            io::ErrorKind::TimedOut,
            format!(
                "{}: no answer from the server within {} s while starting `{command}`",
                inner.peer,
                inner.request_timeout().as_secs()
            ),
        ))
    })
}

/// Waits for the server's answer to the exec request, keeping what arrives before it.
async fn wait_for_reply(
    inner: &Inner,
    channel: &mut Channel<Msg>,
    command: &str,
) -> Result<VecDeque<ChannelMsg>> {
    let mut early = VecDeque::new();
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => return Ok(early),
            Some(ChannelMsg::Failure) => {
                let _ = channel.close().await;
                return Err(ssh_error(
                    io::ErrorKind::Other,
                    format!("{}: the server refused to run `{command}`", inner.peer),
                ));
            }
            Some(msg @ (ChannelMsg::Eof | ChannelMsg::Close)) => {
                early.push_back(msg);
                return Ok(early);
            }
            Some(msg) => early.push_back(msg),
            None => {
                return Err(ssh_error(
                    io::ErrorKind::ConnectionAborted,
                    format!(
                        "{}: the connection closed while starting `{command}`",
                        inner.peer
                    ),
                ))
            }
        }
    }
}

fn channel_error(inner: &Inner, what: &str, e: russh::Error) -> Error {
    ssh_error(
        io::ErrorKind::ConnectionAborted,
        format!("{}: {what}: {e}", inner.peer),
    )
}

/// Reads the channel until the server closes it, sending stdout and stderr where asked.
async fn drive_output(
    read: &mut ChannelReadHalf,
    mut early: VecDeque<ChannelMsg>,
    stdout: &mut Stdout,
    stderr: &mut Stderr,
) -> Ending {
    let mut ending = Ending::default();
    loop {
        let msg = match early.pop_front() {
            Some(msg) => Some(msg),
            None => read.wait().await,
        };
        match msg {
            Some(ChannelMsg::Data { data }) => match stdout {
                Stdout::Collect(all) => all.extend_from_slice(&data),
                Stdout::Queue(queue) => {
                    if let Some(q) = queue {
                        if !q.push(data) {
                            // The reader is gone (or was told why not); keep draining to see
                            // the exit status.
                            *queue = None;
                        }
                    }
                }
            },
            Some(ChannelMsg::ExtendedData { data, ext }) => {
                if ext == 1 {
                    stderr.push(&data);
                }
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => ending.status = Some(exit_status),
            Some(ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                ..
            }) => {
                let mut text = format!("{signal_name:?}");
                if core_dumped {
                    text.push_str(" (core dumped)");
                }
                if !error_message.is_empty() {
                    text.push_str(&format!(": {error_message}"));
                }
                ending.signal = Some(text);
            }
            Some(ChannelMsg::Eof) => {
                if let Stdout::Queue(queue) = stdout {
                    *queue = None;
                }
            }
            Some(ChannelMsg::Close) => break,
            Some(_) => {}
            None => {
                ending.lost = ending.status.is_none() && ending.signal.is_none();
                break;
            }
        }
    }
    stderr.finish();
    if ending.lost {
        if let Stdout::Queue(Some(q)) = stdout {
            let _ = q.tx.send(Chunk::Error(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the SSH connection was lost",
            )));
        }
    }
    ending
}

/// Sends what the blocking writer queues, then EOF once it is dropped. Stops early (dropping
/// the queue, so the writer sees a broken pipe) when the remote side closes the channel.
async fn drive_input(
    write: ChannelWriteHalf<Msg>,
    mut queue: mpsc::Receiver<Bytes>,
    mut closed: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            next = queue.recv() => match next {
                Some(data) => {
                    tokio::select! {
                        sent = write.data_bytes(data) => if sent.is_err() { return },
                        _ = closed.changed() => return,
                    }
                }
                None => {
                    let _ = write.eof().await;
                    return;
                }
            },
            _ = closed.changed() => return,
        }
    }
}

/// Runs `command` to completion, feeding it `stdin` (then EOF) while collecting its output.
pub(super) async fn run(inner: &Inner, command: &str, stdin: Option<&[u8]>) -> Result<Output> {
    let (channel, early) = start(inner, command).await?;
    let (mut read, write) = channel.split();
    let input = async {
        if let Some(data) = stdin {
            if !data.is_empty() {
                write.data_bytes(Bytes::copy_from_slice(data)).await?;
            }
        }
        write.eof().await
    };
    let mut stdout = Stdout::Collect(Vec::new());
    let mut stderr = Stderr::Collect(Vec::new());
    let ending = {
        let output = drive_output(&mut read, early, &mut stdout, &mut stderr);
        tokio::pin!(input, output);
        let mut input_done = false;
        loop {
            tokio::select! {
                _ = &mut input, if !input_done => input_done = true,
                ending = &mut output => break ending,
            }
        }
    };
    if ending.lost {
        return Err(ssh_error(
            io::ErrorKind::ConnectionAborted,
            format!(
                "{}: the connection was lost while running `{command}`",
                inner.peer
            ),
        ));
    }
    let (Stdout::Collect(stdout), Stderr::Collect(stderr)) = (stdout, stderr) else {
        unreachable!("collecting sinks")
    };
    Ok(Output {
        ending,
        stdout,
        stderr,
    })
}

/// A finished command's output.
pub(super) struct Output {
    pub ending: Ending,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// The parts of a streamed command: its two adapters and its end.
pub(super) struct Streamed {
    pub reader: ChannelReader,
    pub writer: ChannelWriter,
    pub ending: oneshot::Receiver<Ending>,
}

/// Starts `command` with stdin and stdout streamed through blocking adapters; stderr goes to
/// our stderr prefixed "remote: ".
pub(super) async fn stream(inner: &Arc<Inner>, command: &str) -> Result<Streamed> {
    let (channel, early) = start(inner, command).await?;
    let (mut read, write) = channel.split();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let queued_by_task = Arc::clone(&queued);
    let (in_tx, in_rx) = mpsc::channel(WRITE_QUEUE);
    let (ending_tx, ending_rx) = oneshot::channel();
    let (closed_tx, closed_rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut stdout = Stdout::Queue(Some(ReadQueue {
            tx: out_tx,
            queued: queued_by_task,
        }));
        let mut stderr = Stderr::Forward(Vec::new());
        let ending = drive_output(&mut read, early, &mut stdout, &mut stderr).await;
        let _ = closed_tx.send(true);
        let _ = ending_tx.send(ending);
    });
    tokio::spawn(drive_input(write, in_rx, closed_rx));
    Ok(Streamed {
        reader: ChannelReader {
            queue: out_rx,
            queued,
            current: Bytes::new(),
            _session: Arc::clone(inner),
        },
        writer: ChannelWriter {
            queue: Some(in_tx),
            _session: Arc::clone(inner),
        },
        ending: ending_rx,
    })
}

/// The remote command's stdout, as a blocking [`Read`]. End of file is the command's EOF; a
/// lost connection is an error, never a silent EOF.
pub(super) struct ChannelReader {
    queue: mpsc::UnboundedReceiver<Chunk>,
    queued: Arc<AtomicUsize>,
    current: Bytes,
    /// Keeps the runtime and connection alive while the adapter is.
    _session: Arc<Inner>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.current.is_empty() {
            match self.queue.blocking_recv() {
                Some(Chunk::Data(data)) => {
                    self.queued.fetch_sub(data.len(), Ordering::AcqRel);
                    self.current = data;
                }
                Some(Chunk::Error(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// The remote command's stdin, as a blocking [`Write`]. Dropping it sends EOF.
pub(super) struct ChannelWriter {
    queue: Option<mpsc::Sender<Bytes>>,
    _session: Arc<Inner>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(MAX_WRITE);
        let queue = self.queue.as_ref().ok_or_else(broken_pipe)?;
        match queue.blocking_send(Bytes::copy_from_slice(&buf[..n])) {
            Ok(()) => Ok(n),
            Err(_) => {
                self.queue = None;
                Err(broken_pipe())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // Every write is already handed to the connection; nothing is buffered here. Like a
        // pipe's, this succeeds even once the command has exited (a write would fail then).
        Ok(())
    }
}

fn broken_pipe() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the remote command closed its input",
    )
}
