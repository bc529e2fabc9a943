use cairn_proto::{ErrorCode, ProtoError, WireError};

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No tracker answered.
    #[error("no tracker reachable (tried {tried}): {last}")]
    TrackersUnreachable {
        /// Addresses tried.
        tried: String,
        /// The last failure.
        last: String,
    },
    /// A server refused the request.
    #[error("{0}")]
    Remote(WireError),
    /// A storage node could not be reached or broke the protocol.
    #[error("storage node {addr}: {source}")]
    Node {
        /// The node.
        addr: String,
        /// What happened.
        #[source]
        source: ProtoError,
    },
    /// A file ID did not validate.
    #[error(transparent)]
    BadFileId(#[from] cairn_proto::file_id::BadFileId),
    /// The local input could not be read.
    #[error("reading input: {0}")]
    Input(#[source] std::io::Error),
    /// The meta service refused a namespace operation.
    #[error("{message}")]
    Namespace {
        /// The errno a file system answers (ENOENT, EEXIST, …).
        errno: i32,
        /// What happened.
        message: String,
    },
    /// The local output could not be written.
    #[error("writing output: {0}")]
    Output(#[source] std::io::Error),
}

impl Error {
    /// The server's error kind, when a server refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Remote(e) => Some(e.code),
            Error::Node { source: ProtoError::Remote(e), .. } => Some(e.code),
            _ => None,
        }
    }

    pub(crate) fn node(addr: &str, e: ProtoError) -> Error {
        match e {
            ProtoError::Remote(w) => Error::Remote(w),
            other => Error::Node { addr: addr.to_string(), source: other },
        }
    }

    /// Whether another member might succeed where this one failed.
    pub(crate) fn try_elsewhere(&self) -> bool {
        match self {
            Error::Node { source, .. } => source.is_connection(),
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
