//! The node: shared state, request dispatch, and the daemon's main loop.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::frame::write_frame;
use cairn_proto::{ClusterSecret, Conn, ErrorCode, FileId, Pool, ProtoError, Request, Response, ServeLimits, Service};
use cairn_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::StorageConfig;
use crate::error::{refuse, remote};
use crate::view::View;
use crate::{heartbeat, mutate, read, replica, upload};

/// Stripes of the primary's ordering locks (see [`Node::order`]).
const ORDER_STRIPES: usize = 256;
/// Idle connections kept per peer or tracker.
const POOL_IDLE_PER_PEER: usize = 64;

/// One storage node.
pub struct Node {
    pub(crate) store: Arc<Store>,
    pub(crate) cfg: StorageConfig,
    pub(crate) view: View,
    pub(crate) pool: Pool,
    order: Vec<tokio::sync::Mutex<()>>,
    in_flight: AtomicU32,
}

impl Node {
    pub(crate) fn id(&self) -> u32 {
        self.store.node_id()
    }

    pub(crate) fn load(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The lock a primary holds from applying a mutation of `id` until its
    /// peers acknowledged it, so every member applies a blob's mutations in
    /// the same order.
    pub(crate) async fn order(&self, id: &FileId) -> tokio::sync::MutexGuard<'_, ()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.name().hash(&mut h);
        self.order[h.finish() as usize % ORDER_STRIPES].lock().await
    }
}

/// Runs a blocking store operation off the async runtime; its error becomes
/// the response.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ProtoError>
where
    T: Send + 'static,
    F: FnOnce() -> cairn_store::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(remote(e)),
        Err(e) => Err(refuse(ErrorCode::Internal, format!("storage task failed: {e}"))),
    }
}

/// Parses a file ID from a request.
pub(crate) fn parse_id(s: &str) -> Result<FileId, ProtoError> {
    FileId::parse(s).map_err(|e| refuse(ErrorCode::BadFileId, e.to_string()))
}

struct LoadGuard<'a>(&'a AtomicU32);

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Service for Node {
    async fn handle(&self, req: Request, conn: &mut Conn) -> Result<(), ProtoError> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _load = LoadGuard(&self.in_flight);
        match req {
            Request::Upload { appender, ext, store_path } => {
                upload::upload(self, conn, appender, ext, store_path).await
            }
            Request::UploadSlave { master, prefix, ext } => upload::upload_slave(self, conn, master, prefix, ext).await,
            Request::Download { file_id, offset, length } => read::download(self, conn, &file_id, offset, length).await,
            Request::FileInfo { file_id } => read::file_info(self, conn, &file_id).await,
            Request::GetMeta { file_id } => read::get_meta(self, conn, &file_id).await,
            Request::Append { file_id } => mutate::append(self, conn, &file_id).await,
            Request::Modify { file_id, offset } => mutate::modify(self, conn, &file_id, offset).await,
            Request::Delete { .. } | Request::Truncate { .. } | Request::SetMeta { .. } => {
                mutate::op(self, conn, req).await
            }
            Request::ReplicaBody { epoch, store_path } => replica::body(self, conn, epoch, store_path).await,
            Request::ReplicaOp { epoch, op } => replica::op(self, conn, epoch, op).await,
            Request::Ping => write_frame(conn, &Response::Ok).await,
            other => Err(refuse(
                ErrorCode::InvalidArgument,
                format!("{} is a tracker request; this is a storage node", other.name()),
            )),
        }
    }
}

/// Runs a storage node on `listener` until `shutdown` turns true.
pub async fn run(
    listener: TcpListener,
    secret: ClusterSecret,
    cfg: StorageConfig,
    store: Store,
    shutdown: watch::Receiver<bool>,
) {
    let node = Arc::new(Node {
        store: Arc::new(store),
        pool: Pool::new(secret.clone(), cfg.connect_timeout, POOL_IDLE_PER_PEER),
        view: View::new(cfg.heartbeat_interval),
        cfg,
        order: (0..ORDER_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        in_flight: AtomicU32::new(0),
    });
    info!(node = node.id(), group = node.store.group(), addr = %node.cfg.advertise, "storage node listening");
    let mut tasks = Vec::new();
    for t in node.cfg.trackers.clone() {
        tasks.push(tokio::spawn(heartbeat::heartbeat_loop(node.clone(), t, shutdown.clone())));
    }
    tasks.push(tokio::spawn(binlog_flusher(node.clone(), shutdown.clone())));
    cairn_proto::net::serve(listener, secret, node.clone(), ServeLimits::default(), shutdown).await;
    for t in tasks {
        t.abort();
    }
    let store = node.store.clone();
    let _ = tokio::task::spawn_blocking(move || store.binlog().sync()).await;
}

/// Makes the binlog durable once a second.
async fn binlog_flusher(node: Arc<Node>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let store = node.store.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.binlog().sync()).await {
            warn!(error = %e, "binlog sync failed");
        }
    }
}
