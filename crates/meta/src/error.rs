//! Namespace errors, each with the errno a file system front end answers.

use cairn_proto::Errno;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum MetaError {
    /// No such volume, inode or entry.
    #[error("not found: {0}")]
    NotFound(String),
    /// The name is taken.
    #[error("already exists: {0}")]
    Exists(String),
    /// A directory was needed.
    #[error("not a directory")]
    NotDir,
    /// Not allowed on a directory.
    #[error("is a directory")]
    IsDir,
    /// The directory has entries.
    #[error("directory not empty")]
    NotEmpty,
    /// The name is longer than 255 bytes.
    #[error("name too long")]
    NameTooLong,
    /// No such extended attribute.
    #[error("no such attribute")]
    NoAttr,
    /// Bad argument (a rename into its own subtree, a bad name, …).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Too many links to one inode.
    #[error("too many links")]
    TooManyLinks,
    /// The engine failed.
    #[error("meta engine: {0}")]
    Engine(String),
    /// In use (a volume with mounts attached).
    #[error("busy: {0}")]
    Busy(String),
    /// A tagged change was applied before (its client is retrying): the
    /// service answers from the namespace as it is.
    #[error("change already applied")]
    AlreadyApplied,
    /// The database was written by a newer Cairn, in a format this one
    /// would misread (`format.rs`).
    #[error(
        "the meta database is format version {found}, newer than this cairn reads (up to {newest}): run a newer cairn"
    )]
    FormatTooNew {
        /// The database's version.
        found: u32,
        /// The newest this binary reads.
        newest: u32,
    },
}

impl MetaError {
    /// The errno for this error.
    pub fn errno(&self) -> Errno {
        match self {
            MetaError::NotFound(_) => Errno::ENOENT,
            MetaError::Exists(_) => Errno::EEXIST,
            MetaError::NotDir => Errno::ENOTDIR,
            MetaError::IsDir => Errno::EISDIR,
            MetaError::NotEmpty => Errno::ENOTEMPTY,
            MetaError::NameTooLong => Errno::ENAMETOOLONG,
            MetaError::NoAttr => Errno::ENODATA,
            MetaError::Invalid(_) => Errno::EINVAL,
            MetaError::TooManyLinks => Errno::EMLINK,
            MetaError::Busy(_) => Errno::EBUSY,
            MetaError::Engine(_) | MetaError::AlreadyApplied | MetaError::FormatTooNew { .. } => Errno::EIO,
        }
    }
}

/// Result of namespace operations.
pub type Result<T, E = MetaError> = std::result::Result<T, E>;
