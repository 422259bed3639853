//! File upload over SFTP: temp file beside the target, explicit mode, atomic rename.

use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use russh::ChannelMsg;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};
use tokio::task::JoinSet;

use super::{ssh_error, Inner};
use crate::error::{Error, Result};

const POSIX_RENAME: &str = "posix-rename@openssh.com";
const LIMITS: &str = "limits@openssh.com";
/// Bytes per SFTP write request (OpenSSH's sftp-server takes up to 255 KiB).
const WRITE_CHUNK: usize = 64 * 1024;
/// Write requests in flight; 32 x 64 KiB fills OpenSSH's 2 MiB channel window.
const WRITES_IN_FLIGHT: usize = 32;
/// Seconds to wait for any one SFTP reply.
const REQUEST_TIMEOUT_SECS: u64 = 120;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Uploads `local` to `remote` with permission bits `mode`.
pub(super) async fn upload(inner: &Inner, local: &Path, remote: &str, mode: u32) -> Result<()> {
    let mut file = std::fs::File::open(local).map_err(|e| Error::io(local, e))?;
    // SFTP paths without a leading slash are relative to the login directory already.
    let remote = remote.strip_prefix("~/").unwrap_or(remote);
    let (dir, name) = match remote.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", remote),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(Error::Config(format!(
            "sftp upload: {remote:?} does not name a file"
        )));
    }

    let sftp = Arc::new(open(inner).await?);
    let fail = |what: &str, path: &str, e: SftpError| sftp_error(inner, what, path, e);
    let version = sftp
        .init()
        .await
        .map_err(|e| fail("cannot start SFTP", remote, e))?;
    let has = |ext: &str| version.extensions.contains_key(ext);
    let mut chunk = WRITE_CHUNK;
    if has(LIMITS) {
        if let Ok(limits) = sftp.limits().await {
            if limits.max_write_len > 0 {
                chunk = chunk.min(limits.max_write_len as usize);
            }
        }
    }

    if !dir.is_empty() {
        mkdir_p(&sftp, dir)
            .await
            .map_err(|(path, e)| fail("cannot create directory", &path, e))?;
    }

    let temp = {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let stem = format!(".{name}.azsync-tmp-{}-{n}", std::process::id());
        if dir.is_empty() {
            stem
        } else {
            format!("{dir}/{stem}")
        }
    };
    let attrs = FileAttributes {
        permissions: Some(0o600),
        ..Default::default()
    };
    let handle = sftp
        .open(
            temp.as_str(),
            OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE | OpenFlags::TRUNCATE,
            attrs,
        )
        .await
        .map_err(|e| fail("cannot create", &temp, e))?
        .handle;

    let result = async {
        let written = write_all(&sftp, &handle, &mut file, chunk, local).await;
        let closed = sftp.close(handle.as_str()).await;
        written?;
        closed.map_err(|e| fail("cannot close", &temp, e))?;
        let attrs = FileAttributes {
            permissions: Some(mode & 0o7777),
            ..Default::default()
        };
        sftp.setstat(temp.as_str(), attrs)
            .await
            .map_err(|e| fail("cannot set the mode of", &temp, e))?;
        rename(&sftp, &temp, remote, has(POSIX_RENAME))
            .await
            .map_err(|e| fail("cannot rename into place", remote, e))
    }
    .await;
    if result.is_err() {
        let _ = sftp.remove(temp.as_str()).await;
    }
    let _ = sftp.close_session();
    result
}

/// Opens a session channel running the `sftp` subsystem.
async fn open(inner: &Inner) -> Result<RawSftpSession> {
    let sftp = RawSftpSession::new(open_channel(inner).await?.into_stream());
    sftp.set_timeout(REQUEST_TIMEOUT_SECS);
    Ok(sftp)
}

/// Opens a session channel and starts the `sftp` subsystem on it.
pub(super) async fn open_channel(inner: &Inner) -> Result<russh::Channel<russh::client::Msg>> {
    let aborted = |what: &str, e: &dyn std::fmt::Display| {
        ssh_error(
            io::ErrorKind::ConnectionAborted,
            format!("{}: {what}: {e}", inner.peer),
        )
    };
    let mut channel = inner.open_session().await?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| aborted("cannot start SFTP", &e))?;
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => break,
            Some(ChannelMsg::Failure) | Some(ChannelMsg::Close) | None => {
                let _ = channel.close().await;
                return Err(ssh_error(
                    io::ErrorKind::Unsupported,
                    format!(
                        "{}: the server does not offer the SFTP subsystem",
                        inner.peer
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(channel)
}

/// Streams the local file to the open remote handle with many writes in flight.
async fn write_all(
    sftp: &Arc<RawSftpSession>,
    handle: &str,
    file: &mut std::fs::File,
    chunk: usize,
    local: &Path,
) -> Result<()> {
    let mut in_flight: JoinSet<(u64, Result<(), SftpError>)> = JoinSet::new();
    let mut offset = 0u64;
    let mut first_error: Option<(u64, SftpError)> = None;
    loop {
        while in_flight.len() >= WRITES_IN_FLIGHT {
            collect(&mut in_flight, &mut first_error).await;
        }
        if first_error.is_some() {
            break;
        }
        let mut data = vec![0u8; chunk];
        let n = read_full(file, &mut data).map_err(|e| Error::io(local, e))?;
        if n == 0 {
            break;
        }
        data.truncate(n);
        let (sftp, handle) = (Arc::clone(sftp), handle.to_string());
        let at = offset;
        in_flight.spawn(async move { (at, sftp.write(handle, at, data).await.map(|_| ())) });
        offset += n as u64;
    }
    while !in_flight.is_empty() {
        collect(&mut in_flight, &mut first_error).await;
    }
    match first_error {
        None => Ok(()),
        Some((at, e)) => Err(ssh_error(
            io::ErrorKind::Other,
            format!("sftp write at offset {at} failed: {e}"),
        )),
    }
}

async fn collect(
    in_flight: &mut JoinSet<(u64, Result<(), SftpError>)>,
    first_error: &mut Option<(u64, SftpError)>,
) {
    if let Some(joined) = in_flight.join_next().await {
        let (at, result) = joined.unwrap_or_else(|e| {
            (
                0,
                Err(SftpError::UnexpectedBehavior(format!(
                    "write task failed: {e}"
                ))),
            )
        });
        if let Err(e) = result {
            if first_error.is_none() {
                *first_error = Some((at, e));
            }
        }
    }
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// `mkdir -p dir`: creates each missing component (mode from the server's umask, as mkdir
/// does). On failure, returns the path that could not be created.
async fn mkdir_p(sftp: &RawSftpSession, dir: &str) -> Result<(), (String, SftpError)> {
    if is_dir(sftp, dir).await {
        return Ok(());
    }
    let mut prefix = String::new();
    if dir.starts_with('/') {
        prefix.push('/');
    }
    for part in dir.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        prefix.push_str(part);
        if part == ".." || is_dir(sftp, &prefix).await {
            continue;
        }
        if let Err(e) = sftp.mkdir(prefix.as_str(), FileAttributes::default()).await {
            // Someone else may have made it meanwhile.
            match sftp.stat(prefix.as_str()).await {
                Ok(attrs) if attrs.attrs.is_dir() => {}
                Ok(_) => {
                    let why = SftpError::UnexpectedBehavior("exists and is not a directory".into());
                    return Err((prefix, why));
                }
                Err(_) => return Err((prefix, e)),
            }
        }
    }
    Ok(())
}

async fn is_dir(sftp: &RawSftpSession, path: &str) -> bool {
    match sftp.stat(path).await {
        Ok(attrs) => attrs.attrs.is_dir(),
        Err(_) => false,
    }
}

/// Renames over an existing target: atomically with `posix-rename@openssh.com`, else with
/// plain SFTP rename (which refuses an existing target, so that is removed first).
async fn rename(sftp: &RawSftpSession, from: &str, to: &str, posix: bool) -> Result<(), SftpError> {
    if posix {
        let mut data = Vec::with_capacity(from.len() + to.len() + 8);
        for path in [from, to] {
            data.extend_from_slice(&(path.len() as u32).to_be_bytes());
            data.extend_from_slice(path.as_bytes());
        }
        return match sftp.extended(POSIX_RENAME, data).await? {
            Packet::Status(status) if status.status_code == StatusCode::Ok => Ok(()),
            Packet::Status(status) => Err(SftpError::Status(status)),
            _ => Err(SftpError::UnexpectedPacket),
        };
    }
    match sftp.rename(from, to).await {
        Ok(_) => Ok(()),
        Err(first) => {
            if sftp.remove(to).await.is_err() {
                return Err(first);
            }
            sftp.rename(from, to).await.map(|_| ())
        }
    }
}

fn sftp_error(inner: &Inner, what: &str, path: &str, e: SftpError) -> Error {
    let kind = match &e {
        SftpError::Status(status) => match status.status_code {
            StatusCode::NoSuchFile => io::ErrorKind::NotFound,
            StatusCode::PermissionDenied => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::Other,
        },
        SftpError::Timeout => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::Other,
    };
    let why = match &e {
        // OpenSSH's messages repeat the code's name ("Failure: Failure").
        SftpError::Status(status)
            if status.error_message.is_empty()
                || status.error_message == status.status_code.to_string() =>
        {
            status.status_code.to_string()
        }
        SftpError::Status(status) => status.error_message.clone(),
        other => other.to_string(),
    };
    ssh_error(kind, format!("{}: sftp: {what} {path}: {why}", inner.peer))
}
