//! A client of the meta service: namespace operations by request.

use cairn_proto::meta::{MetaRequest, MetaResponse, Volume};
use cairn_proto::{ClusterSecret, Pool, Request, Response};

use crate::error::{Error, Result};

/// A connection pool to one meta service.
#[derive(Debug)]
pub struct MetaClient {
    addr: String,
    pool: Pool,
}

impl MetaClient {
    /// A client of the meta service at `addr`.
    pub fn new(addr: String, secret: ClusterSecret) -> Self {
        Self { addr, pool: Pool::new(secret, std::time::Duration::from_secs(3), 16) }
    }

    /// The service's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request; a namespace error comes back as
    /// [`Error::Namespace`] with its errno.
    pub async fn call(&self, req: MetaRequest) -> Result<MetaResponse> {
        let resp =
            self.pool.call(&self.addr, &Request::Namespace(req)).await.map_err(|e| Error::node(&self.addr, e))?;
        match resp {
            Response::Namespace(MetaResponse::Err { errno, message }) => Err(Error::Namespace { errno, message }),
            Response::Namespace(r) => Ok(r),
            Response::Error(e) => Err(Error::Remote(e)),
            other => Err(Error::Node {
                addr: self.addr.clone(),
                source: cairn_proto::ProtoError::Unexpected { expected: "namespace", got: other.name() },
            }),
        }
    }

    /// Creates a volume.
    pub async fn create_volume(&self, name: &str, groups: Vec<String>, chunk_size: u64) -> Result<Volume> {
        match self.call(MetaRequest::CreateVolume { name: name.into(), groups, chunk_size }).await? {
            MetaResponse::Volume(v) => Ok(v),
            other => Err(self.unexpected("volume", other)),
        }
    }

    /// Every volume.
    pub async fn volumes(&self) -> Result<Vec<Volume>> {
        match self.call(MetaRequest::ListVolumes).await? {
            MetaResponse::Volumes(v) => Ok(v),
            other => Err(self.unexpected("volumes", other)),
        }
    }

    /// One volume.
    pub async fn volume(&self, name: &str) -> Result<Volume> {
        match self.call(MetaRequest::GetVolume { name: name.into() }).await? {
            MetaResponse::Volume(v) => Ok(v),
            other => Err(self.unexpected("volume", other)),
        }
    }

    /// Deletes a volume.
    pub async fn delete_volume(&self, name: &str) -> Result<()> {
        match self.call(MetaRequest::DeleteVolume { name: name.into() }).await? {
            MetaResponse::Ok => Ok(()),
            other => Err(self.unexpected("ok", other)),
        }
    }

    fn unexpected(&self, expected: &'static str, got: MetaResponse) -> Error {
        Error::Node {
            addr: self.addr.clone(),
            source: cairn_proto::ProtoError::Malformed(format!("expected {expected}, got {got:?}")),
        }
    }
}
