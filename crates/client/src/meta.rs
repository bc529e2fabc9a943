//! A client of the meta service: namespace operations by request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_proto::meta::{Attr, MetaRequest, MetaResponse, Slice, Volume, SLICES_PAGE};
use cairn_proto::{ClusterSecret, Pool, Request, Response};
use tracing::warn;

use crate::error::{Error, Result, Role};

/// A connection pool to one meta service.
///
/// With [`MetaClient::retrying_for`], a request whose connection fails is
/// sent again until the service answers or the time is up, so a restart of
/// the service is a pause, not an error. Changes go out tagged with this
/// client's session and a sequence number, so the service applies each at
/// most once however often it is sent.
#[derive(Debug)]
pub struct MetaClient {
    addr: String,
    pool: Pool,
    session: u64,
    next_seq: AtomicU64,
    retry_for: Duration,
}

impl MetaClient {
    /// A client of the meta service at `addr`; a failed connection is an
    /// error at once.
    pub fn new(addr: String, secret: ClusterSecret) -> Self {
        Self {
            addr,
            pool: Pool::new(secret, Duration::from_secs(3), 16),
            session: rand::random(),
            next_seq: AtomicU64::new(1),
            retry_for: Duration::ZERO,
        }
    }

    /// The same client, retrying requests whose connection fails for up to
    /// `retry_for` (a mount rides out a restart of the service).
    pub fn retrying_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    /// This client's session: changes it sends are tagged with it.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// The service's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one request; a namespace error comes back as
    /// [`Error::Namespace`] with its errno.
    pub async fn call(&self, req: MetaRequest) -> Result<MetaResponse> {
        let req = if req.is_change() {
            Request::NamespaceOnce { session: self.session, seq: self.next_seq.fetch_add(1, Ordering::Relaxed), req }
        } else {
            Request::Namespace(req)
        };
        let deadline = Instant::now() + self.retry_for;
        let mut pause = Duration::from_millis(20);
        loop {
            match self.pool.call(&self.addr, &req).await {
                Ok(resp) => return self.answer(resp),
                Err(e) if e.is_connection() && Instant::now() + pause < deadline => {
                    warn!(meta = %self.addr, error = %e, "meta service unreachable; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(e) => return Err(Error::peer(Role::MetaService, &self.addr, e)),
            }
        }
    }

    fn answer(&self, resp: Response) -> Result<MetaResponse> {
        match resp {
            Response::Namespace(MetaResponse::Err { errno, message }) => Err(Error::Namespace { errno, message }),
            Response::Namespace(r) => Ok(r),
            Response::Error(e) => Err(Error::Remote(e)),
            other => Err(Error::Peer {
                role: Role::MetaService,
                addr: self.addr.clone(),
                error: cairn_proto::ProtoError::Unexpected { expected: "namespace", got: other.name() },
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

    /// Deletes a volume; refused while mounts or gateways use it, unless
    /// `force`.
    pub async fn delete_volume(&self, name: &str, force: bool) -> Result<()> {
        match self.call(MetaRequest::DeleteVolume { name: name.into(), force }).await? {
            MetaResponse::Ok => Ok(()),
            other => Err(self.unexpected("ok", other)),
        }
    }

    /// A file's attributes, its whole slice list (oldest first) and the
    /// list's generation, read a page at a time: a file written at random
    /// has more slices than one answer carries. Pages read under different
    /// generations (a compaction or truncation came between them) are
    /// thrown away and the list is read again.
    pub async fn slices(&self, vol: u32, ino: u64) -> Result<(Attr, Vec<Slice>, u64)> {
        const TRIES: usize = 8;
        'list: for _ in 0..TRIES {
            let mut all: Vec<Slice> = Vec::new();
            let mut read_at = None;
            loop {
                let from = all.len() as u64;
                match self.call(MetaRequest::SlicesPage { vol, ino, from, limit: SLICES_PAGE }).await? {
                    MetaResponse::SlicesPage { attr, slices, total, generation } => {
                        if *read_at.get_or_insert(generation) != generation {
                            continue 'list;
                        }
                        let got = slices.len();
                        all.extend(slices);
                        // Within a generation slices are only appended, so
                        // the list read so far stays true and `total` grows.
                        if got == 0 || all.len() as u64 >= total {
                            return Ok((attr, all, generation));
                        }
                    }
                    other => return Err(self.unexpected("slices", other)),
                }
            }
        }
        Err(Error::Namespace {
            errno: cairn_proto::Errno::EAGAIN,
            message: format!("the slices of inode {ino} changed under {TRIES} readings in a row"),
        })
    }

    fn unexpected(&self, expected: &'static str, got: MetaResponse) -> Error {
        Error::Peer {
            role: Role::MetaService,
            addr: self.addr.clone(),
            error: cairn_proto::ProtoError::Malformed(format!("expected {expected}, got {got:?}")),
        }
    }
}
