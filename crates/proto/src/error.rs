use serde::{Deserialize, Serialize};

/// Stable error kinds carried on the wire. Numbers never change meaning:
/// clients written against an older release must still understand them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The file, group or node does not exist.
    NotFound,
    /// The request is malformed or names something invalid.
    InvalidArgument,
    /// A file ID failed validation.
    BadFileId,
    /// No group has room for the upload (free space below the reserved space).
    NoSpace,
    /// The node is not the primary of its group for this mutation.
    NotPrimary,
    /// The request carries an older epoch than the node knows.
    StaleEpoch,
    /// The operation needs an appender blob.
    NotAppender,
    /// The peer did not prove it holds the cluster secret.
    AuthFailed,
    /// The node is not ready to serve (no group view from any tracker yet).
    NotReady,
    /// A stored blob failed its checksum.
    ChecksumMismatch,
    /// A replica's state does not match what the primary expects.
    OutOfSync,
    /// The file already exists.
    Exists,
    /// No member or tracker that could serve the request is available.
    Unavailable,
    /// A disk error on the serving node.
    Io,
    /// Anything else; the message says what.
    Internal,
    /// What was asked for no longer exists in that form (a binlog position
    /// from before a crash).
    Gone,
    /// A mutation was applied on the node that answers (and perhaps on
    /// some peers) but could not be acknowledged: whether it stands is
    /// unknown, and one that is not idempotent (an append) must not be
    /// sent again.
    Uncertain,
}

/// An error as it travels in a [`crate::Response::Error`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    /// What kind of failure, for callers that branch on it.
    pub code: ErrorCode,
    /// A one-line explanation for humans.
    pub message: String,
}

impl WireError {
    /// Builds an error from its kind and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// Errors of the protocol layer itself: framing, decoding, authentication.
///
/// Messages include their cause (they are logged with `%e`), so no variant
/// returns it again from `source()`: a chain printed whole would say it twice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The connection failed or closed.
    #[error("connection error: {0}")]
    Io(std::io::Error),
    /// The peer answered in another protocol (an HTTP server, say): the
    /// address is not a Cairn daemon's.
    #[error("this port does not speak Cairn's protocol; {0}")]
    Foreign(&'static str),
    /// A frame announced more bytes than the protocol allows.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Announced length.
        len: u64,
        /// Limit that applies to this kind of frame.
        max: u64,
    },
    /// A frame's bytes did not decode as the expected message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The peer answered with a message of the wrong kind.
    #[error("unexpected message: expected {expected}, got {got}")]
    Unexpected {
        /// What the protocol required here.
        expected: &'static str,
        /// What arrived.
        got: String,
    },
    /// The handshake failed: another protocol version, or no answer in time.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The handshake failed because the two sides hold different cluster
    /// secrets.
    #[error("authentication failed: {0}")]
    WrongSecret(String),
    /// The sender aborted a body stream.
    #[error("the sender aborted the transfer")]
    BodyAborted,
    /// The peer answered with an error.
    #[error(transparent)]
    Remote(WireError),
}

impl From<std::io::Error> for ProtoError {
    fn from(e: std::io::Error) -> Self {
        ProtoError::Io(e)
    }
}

impl From<WireError> for ProtoError {
    fn from(e: WireError) -> Self {
        ProtoError::Remote(e)
    }
}

impl ProtoError {
    /// True when the failure is in the connection rather than the request,
    /// so that trying another member or tracker may succeed.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            ProtoError::Io(_) | ProtoError::Malformed(_) | ProtoError::FrameTooLarge { .. } | ProtoError::Foreign(_)
        )
    }

    /// Whether the peer closed its end (a reader that had enough: `cairn
    /// download … | head`): routine, not a fault of either side.
    pub fn is_peer_gone(&self) -> bool {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
        matches!(self, ProtoError::Io(e) if matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof))
    }

    /// Whether the peer stopped answering (a time limit passed).
    pub fn is_timeout(&self) -> bool {
        matches!(self, ProtoError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
    }
}

/// Result alias of this crate.
pub type Result<T, E = ProtoError> = std::result::Result<T, E>;
