//! The blob layer as the workers use it: delete a blob, read a range of
//! one, upload new content. [`cairn_client::Client`] is the real one; tests
//! give the workers a map in memory.

use std::future::Future;

use cairn_client::{Body, Client, UploadOptions};
use cairn_proto::{ErrorCode, FileId};

/// Why a blob operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// The name is not a file ID: no blob is behind it, nothing to do.
    #[error("{0:?} is not a file ID")]
    NotAFileId(String),
    /// The blob layer cannot do it now (a group down, the network): later.
    #[error("blob layer: {0}")]
    Unavailable(String),
}

/// Deletes, reads and uploads blobs.
pub trait Blobs: Send + Sync + 'static {
    /// Deletes `blob`; `Ok` also when it was already gone.
    fn delete(&self, blob: &str) -> impl Future<Output = Result<(), BlobError>> + Send;
    /// Appends `len` bytes of `blob` from `offset` to `into`.
    fn read(
        &self,
        blob: &str,
        offset: u64,
        len: u64,
        into: &mut Vec<u8>,
    ) -> impl Future<Output = Result<(), BlobError>> + Send;
    /// Stores `data` as a new blob, in `group` if given; returns its ID.
    fn upload(&self, data: Vec<u8>, group: Option<String>) -> impl Future<Output = Result<String, BlobError>> + Send;
}

fn file_id(blob: &str) -> Result<FileId, BlobError> {
    FileId::parse(blob).map_err(|_| BlobError::NotAFileId(blob.to_string()))
}

fn unavailable(e: cairn_client::Error) -> BlobError {
    BlobError::Unavailable(e.to_string())
}

impl Blobs for Client {
    async fn delete(&self, blob: &str) -> Result<(), BlobError> {
        match Client::delete(self, &file_id(blob)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn read(&self, blob: &str, offset: u64, len: u64, into: &mut Vec<u8>) -> Result<(), BlobError> {
        let id = file_id(blob)?;
        self.download_to(&id, offset, Some(len), into).await.map(drop).map_err(unavailable)
    }

    async fn upload(&self, data: Vec<u8>, group: Option<String>) -> Result<String, BlobError> {
        let opts = UploadOptions { group, appender: false, ext: String::new() };
        let id = Client::upload(self, &opts, Body::from(data)).await.map_err(unavailable)?;
        Ok(id.to_string())
    }
}
