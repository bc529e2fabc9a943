//! Errors as a file system answers them: an errno.

use cairn_proto::meta::MetaResponse;

/// A failed operation, with the errno to answer.
#[derive(Debug, thiserror::Error)]
#[error("errno {errno}: {message}")]
pub struct FsError {
    /// errno.
    pub errno: i32,
    /// Why.
    pub message: String,
}

impl FsError {
    /// An error from its errno.
    pub fn errno(errno: i32) -> Self {
        Self { errno, message: String::new() }
    }

    pub(crate) fn protocol(got: MetaResponse) -> Self {
        Self { errno: 5, message: format!("unexpected answer from the meta service: {got:?}") }
    }
}

impl From<cairn_client::Error> for FsError {
    fn from(e: cairn_client::Error) -> Self {
        match e {
            cairn_client::Error::Namespace { errno, message } => Self { errno, message },
            other => {
                let errno = match other.code() {
                    Some(cairn_proto::ErrorCode::NotFound) => 2,
                    Some(cairn_proto::ErrorCode::NoSpace) => 28,
                    _ => 5,
                };
                // The application only sees EIO: say here what it was.
                if errno == 5 {
                    tracing::warn!(error = %other, "I/O error answered to the application");
                }
                Self { errno, message: other.to_string() }
            }
        }
    }
}

/// Result of file-system operations.
pub type Result<T> = std::result::Result<T, FsError>;
