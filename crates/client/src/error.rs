//! Errors of the client. Each variant's message includes what caused it,
//! and none returns that cause again from `source()`: a chain printed
//! whole (anyhow's `{:#}`) then names every cause once.

use cairn_proto::{ErrorCode, ProtoError, WireError};

/// Which kind of daemon a peer is, so that a message names the right one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// A tracker.
    Tracker,
    /// A storage node.
    StorageNode,
    /// The meta service.
    MetaService,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Tracker => "tracker",
            Role::StorageNode => "storage node",
            Role::MetaService => "meta service",
        })
    }
}

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No tracker answered.
    #[error("no tracker reachable: {last}{}", tried_note(.tried))]
    TrackersUnreachable {
        /// Addresses tried.
        tried: String,
        /// The last failure.
        last: String,
    },
    /// A server refused the request.
    #[error("{0}")]
    Remote(WireError),
    /// A daemon could not be reached, refused the handshake or broke the
    /// protocol.
    #[error("{role} {addr}: {error}")]
    Peer {
        /// What the daemon is.
        role: Role,
        /// Its address.
        addr: String,
        /// What happened.
        error: ProtoError,
    },
    /// A file ID did not validate.
    #[error(transparent)]
    BadFileId(#[from] cairn_proto::file_id::BadFileId),
    /// The local input could not be read.
    #[error("reading input: {0}")]
    Input(std::io::Error),
    /// The meta service refused a namespace operation.
    #[error("{message}")]
    Namespace {
        /// The errno a file system answers (ENOENT, EEXIST, …).
        errno: cairn_proto::Errno,
        /// What happened.
        message: String,
    },
    /// The local output could not be written.
    #[error("writing output: {0}")]
    Output(std::io::Error),
}

/// The trackers tried, when there were several (one is named in `last`).
fn tried_note(tried: &str) -> String {
    if tried.contains(',') {
        format!(" (tried {tried})")
    } else {
        String::new()
    }
}

impl Error {
    /// The server's error kind, when a server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Remote(e) => Some(e.code),
            Error::Peer { error: ProtoError::Remote(e), .. } => Some(e.code),
            _ => None,
        }
    }

    /// A storage node's failure; its refusals are [`Error::Remote`].
    pub fn node(addr: &str, e: ProtoError) -> Error {
        Self::peer(Role::StorageNode, addr, e)
    }

    /// A failure of the daemon `role` at `addr`; its refusals are
    /// [`Error::Remote`].
    pub fn peer(role: Role, addr: &str, e: ProtoError) -> Error {
        match e {
            ProtoError::Remote(w) => Error::Remote(w),
            other => Error::Peer { role, addr: addr.to_string(), error: other },
        }
    }

    /// Whether a daemon and this client do not hold the same cluster secret.
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Peer { error: ProtoError::WrongSecret(_), .. })
            || self.code() == Some(ErrorCode::AuthFailed)
    }

    /// Whether the local output was closed by its reader (`| head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Whether another member might succeed where this one failed.
    pub(crate) fn try_elsewhere(&self) -> bool {
        match self {
            Error::Peer { error, .. } => error.is_connection(),
            Error::Remote(e) => matches!(
                e.code,
                ErrorCode::NotReady
                    | ErrorCode::NotFound
                    | ErrorCode::ChecksumMismatch
                    | ErrorCode::Io
                    | ErrorCode::Unavailable
            ),
            _ => false,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
