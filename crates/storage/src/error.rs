//! One place that turns store errors into wire errors.

use cairn_proto::{ErrorCode, ProtoError, WireError};
use cairn_store::Error;

/// The wire form of a store error.
pub fn wire(e: Error) -> WireError {
    let code = match &e {
        Error::NotFound(_) => ErrorCode::NotFound,
        Error::Exists(_) => ErrorCode::Exists,
        Error::ChecksumMismatch { .. } | Error::CorruptRecord { .. } => ErrorCode::ChecksumMismatch,
        Error::NotAppender(_) => ErrorCode::NotAppender,
        Error::InvalidArgument(_) | Error::WrongPlace(_) => ErrorCode::InvalidArgument,
        Error::OutOfSync(_) => ErrorCode::OutOfSync,
        Error::Setup { .. } | Error::Io { .. } => ErrorCode::Io,
        _ => ErrorCode::Internal,
    };
    WireError::new(code, e.to_string())
}

/// The protocol-level error for a store error, sent back as the response.
pub fn remote(e: Error) -> ProtoError {
    ProtoError::Remote(wire(e))
}

/// A wire error as a response.
pub fn refuse(code: ErrorCode, msg: impl Into<String>) -> ProtoError {
    ProtoError::Remote(WireError::new(code, msg))
}
