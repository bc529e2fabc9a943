use std::path::PathBuf;

/// Errors of the blob store, in its own terms.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No blob with that ID on this node.
    #[error("no such file: {0}")]
    NotFound(String),
    /// A blob with that ID is already here (with other content).
    #[error("file already exists: {0}")]
    Exists(String),
    /// Stored bytes do not match their checksum.
    #[error("checksum mismatch in {file_id} at offset {offset}")]
    ChecksumMismatch {
        /// The blob.
        file_id: String,
        /// Start of the bad block.
        offset: u64,
    },
    /// A blob's record is unreadable.
    #[error("corrupt record for {file_id}: {reason}")]
    CorruptRecord {
        /// The blob.
        file_id: String,
        /// What is wrong.
        reason: String,
    },
    /// The operation needs an appender blob.
    #[error("{0} is not an appender file")]
    NotAppender(String),
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    InvalidArgument(String),
    /// The file ID names a group or store path this node does not have.
    #[error("{0}")]
    WrongPlace(String),
    /// A replica's copy differs from what the primary expects.
    #[error("{0}")]
    OutOfSync(String),
    /// Another process runs on this directory.
    #[error(transparent)]
    Locked(#[from] crate::dir_lock::LockError),
    /// The data directory or a store path is not usable.
    #[error("{path}: {reason}")]
    Setup {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A disk error. The OS error is in the message and so not also a
    /// `source()`: a chain printed whole would name it twice.
    #[error("I/O error on {path}: {error}")]
    Io {
        /// The path being worked on.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |error| Error::Io { path, error }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
