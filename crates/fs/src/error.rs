//! Errors as a file system answers them: an errno, and why.

use cairn_proto::meta::MetaResponse;
use cairn_proto::Errno;

/// A failed operation, with the errno to answer.
#[derive(Debug, thiserror::Error)]
#[error("{errno}: {message}")]
pub struct FsError {
    /// The errno a front end answers (or maps to its own code).
    pub errno: Errno,
    /// Why.
    pub message: String,
}

impl FsError {
    /// An error from its errno.
    pub fn errno(errno: Errno) -> Self {
        Self { errno, message: String::new() }
    }

    /// An error from its errno, saying why.
    pub fn new(errno: Errno, message: impl Into<String>) -> Self {
        Self { errno, message: message.into() }
    }

    pub(crate) fn protocol(got: MetaResponse) -> Self {
        Self::new(Errno::EIO, format!("unexpected answer from the meta service: {got:?}"))
    }
}

impl From<cairn_client::Error> for FsError {
    fn from(e: cairn_client::Error) -> Self {
        match e {
            cairn_client::Error::Namespace { errno, message } => Self { errno, message },
            other => {
                let errno = match other.code() {
                    Some(cairn_proto::ErrorCode::NotFound) => Errno::ENOENT,
                    Some(cairn_proto::ErrorCode::NoSpace) => Errno::ENOSPC,
                    _ => Errno::EIO,
                };
                // The application only sees EIO: say here what it was.
                if errno == Errno::EIO {
                    tracing::warn!(error = %other, "I/O error answered to the application");
                }
                Self { errno, message: other.to_string() }
            }
        }
    }
}

/// Result of file-system operations.
pub type Result<T> = std::result::Result<T, FsError>;
