//! Errors.
//!
//! Policy: [`Error`] is for failures that end a whole sync (the source root cannot be read, the
//! peer broke the protocol, the connection dropped). Every variant that comes from the filesystem
//! names the path it was working on. Failures confined to one file (it vanished, it could not be
//! replaced) are not errors of the sync: they are [`FileError`](crate::FileError)s collected in
//! the [`Report`](crate::Report), and the rest of the tree still syncs.

use std::io;
use std::path::PathBuf;

/// Everything that can end a sync early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem call failed on a path this side owns.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path the call was made on.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Reading from or writing to the peer failed.
    #[error("connection to the {peer} failed: {source}")]
    Transport {
        /// Which peer: "receiver" or "sender".
        peer: &'static str,
        /// What the OS said.
        source: io::Error,
    },
    /// The peer sent something this side does not accept: a malformed frame, an out-of-range
    /// value, a path that escapes the tree. The session cannot continue.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer closed the connection before the session ended (it crashed, was killed, or the
    /// network went away).
    #[error("the connection closed in the middle of the session")]
    Disconnected,
    /// The two sides speak different protocol versions.
    #[error("protocol version mismatch: this side speaks version {ours}, the peer speaks version {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u32,
        /// The peer's version.
        theirs: u32,
    },
    /// The peer reported a failure that ended its side of the session.
    #[error("the {peer} failed: {message}")]
    Remote {
        /// Which peer: "receiver" or "sender".
        peer: &'static str,
        /// The peer's own message.
        message: String,
    },
    /// An exclude pattern could not be parsed.
    #[error("invalid exclude pattern {pattern:?}: {message}")]
    Filter {
        /// The pattern as given.
        pattern: String,
        /// Why it is invalid.
        message: String,
    },
    /// The options given to the builder contradict each other or name something unusable.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether this error came from a filesystem call on this side.
    pub fn is_io(&self) -> bool {
        matches!(self, Error::Io { .. })
    }

    /// Whether the peer broke the protocol (a hostile or broken peer).
    pub fn is_protocol(&self) -> bool {
        matches!(self, Error::Protocol(_) | Error::VersionMismatch { .. })
    }

    /// Whether the peer simply went away (closed the stream, or a write found it gone).
    pub fn is_hangup(&self) -> bool {
        match self {
            Error::Disconnected => true,
            Error::Transport { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Error {
        Error::Protocol(message.into())
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
