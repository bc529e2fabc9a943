//! The node: shared state, request dispatch, and the daemon's main loop.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use cairn_proto::frame::write_frame;
use cairn_proto::{
    BlobSummary, ClusterSecret, Conn, ErrorCode, FileId, HealStatus, Miss, Pool, ProtoError, Request, Response,
    ScrubStatus, ServeLimits, Service,
};
use cairn_store::Store;

use crate::deleter::Deleter;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::StorageConfig;
use crate::error::{refuse, remote};
use crate::inflight::InFlight;
use crate::local::LocalNode;
use crate::rate::Rate;
use crate::view::{Snapshot, View};
use crate::{heartbeat, mutate, read, replica, scrub, upload};

/// Stripes of the primary's ordering locks (see [`Node::order`]).
const ORDER_STRIPES: usize = 256;
/// Idle connections kept per peer or tracker.
const POOL_IDLE_PER_PEER: usize = 64;

/// One storage node.
pub struct Node {
    pub(crate) store: Arc<Store>,
    /// Applies deletes in batches, one binlog sync each (`deleter.rs`).
    pub(crate) deleter: Deleter,
    pub(crate) cfg: StorageConfig,
    pub(crate) view: View,
    pub(crate) pool: Pool,
    order: Vec<tokio::sync::Mutex<()>>,
    in_flight: AtomicU32,
    /// Changes at every start, so trackers notice restarts.
    pub(crate) incarnation: u64,
    /// Writes this node originates that are still running.
    pub(crate) inflight: InFlight,
    /// Members left out of writes, per tracker, until it acted on it.
    pub(crate) missed: Mutex<Vec<(String, Miss)>>,
    /// Per tracker, the round for which this node last caught up.
    pub(crate) caught_up: Mutex<HashMap<String, u64>>,
    /// Blobs a change was forwarded for while this node, still catching
    /// up, held no current copy: copied again before it reports caught up.
    pub(crate) dirty: Mutex<HashSet<String>>,
    /// Wakes the heartbeat loops for an early report (see [`Node::beat_now`]).
    beat_requests: tokio::sync::watch::Sender<u64>,
    heal: Mutex<HealStatus>,
    scrub: Mutex<ScrubStatus>,
    /// Blobs being repaired after a bad read.
    pub(crate) repairing: Mutex<HashSet<String>>,
    pub(crate) heal_rate: Rate,
    pub(crate) scrub_rate: Rate,
    me: Weak<Node>,
}

impl Node {
    pub(crate) fn id(&self) -> u32 {
        self.store.node_id()
    }

    /// This node as an `Arc`, for work that outlives a request.
    pub(crate) fn arc(&self) -> Option<Arc<Node>> {
        self.me.upgrade()
    }

    pub(crate) fn heal_state(&self) -> MutexGuard<'_, HealStatus> {
        self.heal.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn scrub_state(&self) -> MutexGuard<'_, ScrubStatus> {
        self.scrub.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn load(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request in the load the node reports until the guard goes.
    pub(crate) fn busy(&self) -> LoadGuard<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        LoadGuard(&self.in_flight)
    }

    /// The group, provided this node is active in it and not removed.
    pub(crate) fn ready(&self) -> Result<Snapshot, ProtoError> {
        if self.store.is_removed() {
            return Err(removed());
        }
        self.view.ready(self.id())
    }

    /// Asks every heartbeat loop for a report now. A counter, not a
    /// `Notify`: a loop busy with a heartbeat when this is asked still sees
    /// it when it next waits (with `notify_waiters` it did not, and a new
    /// node's "caught up" waited out a whole interval: `cairn server` took
    /// uploads 2.1 s after it started instead of within a few ms).
    pub(crate) fn beat_now(&self) {
        self.beat_requests.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A heartbeat loop's view of [`Node::beat_now`]'s requests.
    pub(crate) fn beat_requests(&self) -> tokio::sync::watch::Receiver<u64> {
        self.beat_requests.subscribe()
    }

    /// Whether every tracker counts this node active.
    pub(crate) fn fully_active(&self) -> bool {
        let s = self.view.standing(self.id());
        !s.is_empty() && s.iter().all(|s| s.state == cairn_proto::MemberState::Active)
    }

    /// The round this node last caught up for at `tracker`.
    pub(crate) fn caught_up_round(&self, tracker: &str) -> u64 {
        self.caught_up.lock().unwrap_or_else(|p| p.into_inner()).get(tracker).copied().unwrap_or(0)
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
    joined(tokio::task::spawn_blocking(f)).await
}

/// The outcome of a store task already handed to the blocking pool.
pub(crate) async fn joined<T>(task: tokio::task::JoinHandle<cairn_store::Result<T>>) -> Result<T, ProtoError> {
    match task.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(remote(e)),
        Err(e) => Err(refuse(ErrorCode::Internal, format!("storage task failed: {e}"))),
    }
}

/// Parses a file ID from a request.
pub(crate) fn parse_id(s: &str) -> Result<FileId, ProtoError> {
    FileId::parse(s).map_err(|e| refuse(ErrorCode::BadFileId, e.to_string()))
}

fn removed() -> ProtoError {
    refuse(ErrorCode::NotReady, "this storage node was removed from its group; it serves nothing")
}

/// Counts a request as running on the node until dropped.
pub(crate) struct LoadGuard<'a>(&'a AtomicU32);

impl Drop for LoadGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Service for Node {
    async fn handle(&self, req: Request, conn: &mut Conn) -> Result<(), ProtoError> {
        let _load = self.busy();
        let admin = matches!(req, Request::Ping | Request::HealStatus | Request::Scrub { start: false });
        if !admin && self.store.is_removed() {
            if matches!(
                req,
                Request::Upload { .. }
                    | Request::Append { .. }
                    | Request::Modify { .. }
                    | Request::UploadSlave { .. }
                    | Request::ReplicaBody { .. }
            ) {
                return Err(upload::refuse_body(conn, removed()).await);
            }
            return Err(removed());
        }
        match req {
            Request::Upload { appender, ext, store_path } => {
                upload::upload(self, conn, appender, ext, store_path).await
            }
            Request::UploadSlave { master, prefix, ext } => upload::upload_slave(self, conn, master, prefix, ext).await,
            Request::Download { file_id, offset, length } => read::download(self, conn, &file_id, offset, length).await,
            Request::DownloadBlocks { file_id, offset, length } => {
                read::download_blocks(self, conn, &file_id, offset, length).await
            }
            Request::FileInfo { file_id } => read::file_info(self, conn, &file_id).await,
            Request::GetMeta { file_id } => read::get_meta(self, conn, &file_id).await,
            Request::Append { file_id } => mutate::append(self, conn, &file_id).await,
            Request::Modify { file_id, offset } => mutate::modify(self, conn, &file_id, offset).await,
            Request::Delete { .. } | Request::Discard { .. } | Request::Truncate { .. } | Request::SetMeta { .. } => {
                mutate::op(self, conn, req).await
            }
            Request::ReplicaBody { epoch, store_path } => replica::body(self, conn, epoch, store_path).await,
            Request::ReplicaOp { epoch, op } => replica::op(self, conn, epoch, op).await,
            Request::Ping => write_frame(conn, &Response::Ok).await,
            Request::ListBlobs { after, limit } => {
                let store = self.store.clone();
                let limit = limit.clamp(1, 5000) as usize;
                let (blobs, more) = blocking(move || store.summaries(after.as_deref(), limit)).await?;
                write_frame(conn, &Response::Blobs { blobs, more }).await
            }
            Request::Tombstones { after_seq, limit } => {
                let store = self.store.clone();
                let limit = limit.clamp(1, 5000) as usize;
                let (dels, more) = blocking(move || store.binlog().deletes_after(after_seq, limit)).await?;
                let next_seq = dels.last().map(|(s, _)| *s).unwrap_or(after_seq);
                let ids = dels.into_iter().map(|(_, id)| id).collect();
                write_frame(conn, &Response::Tombstones { ids, next_seq, more }).await
            }
            Request::FetchBlob { file_id } => read::fetch_blob(self, conn, &file_id).await,
            Request::Scrub { start } => {
                if start {
                    if let Some(me) = self.arc() {
                        scrub::start(&me);
                    }
                }
                let status = self.scrub_state().clone();
                write_frame(conn, &Response::Scrub(status)).await
            }
            Request::SetRates { heal_mib, scrub_mib } => {
                if let Some(r) = heal_mib {
                    self.heal_rate.set(r);
                }
                if let Some(r) = scrub_mib {
                    self.scrub_rate.set(r);
                }
                write_frame(conn, &Response::Ok).await
            }
            Request::HealStatus => {
                let status = self.heal_state().clone();
                write_frame(conn, &Response::Heal(status)).await
            }
            Request::SyncPoint => {
                let stats = self.store.stats();
                let point = self.store.binlog().point();
                write_frame(conn, &Response::SyncPoint { point, files: stats.files, bytes: stats.bytes }).await
            }
            Request::BinlogTail { generation, after_seq, offset, limit } => {
                if generation != self.store.binlog().generation() {
                    return Err(refuse(
                        ErrorCode::Gone,
                        "binlog generation changed (this node restarted after a crash)",
                    ));
                }
                let store = self.store.clone();
                let limit = limit.clamp(1, 5000) as usize;
                let (entries, end, more) = blocking(move || store.binlog().tail(after_seq, offset, limit)).await?;
                write_frame(conn, &Response::BinlogTail { entries, end, more }).await
            }
            Request::BlobSummaries { ids } => {
                if ids.len() > 5000 {
                    return Err(refuse(ErrorCode::InvalidArgument, "at most 5000 IDs per request"));
                }
                let store = self.store.clone();
                let blobs = blocking(move || {
                    Ok(ids
                        .into_iter()
                        .filter_map(|s| {
                            let id = FileId::parse(&s).ok()?;
                            let r = store.contains(&id).then(|| store.record(&id).ok()).flatten()?;
                            Some(BlobSummary { file_id: s, size: r.size, crc32: r.crc32, appender: r.appender })
                        })
                        .collect::<Vec<_>>())
                })
                .await?;
                write_frame(conn, &Response::Blobs { blobs, more: false }).await
            }
            other => Err(refuse(
                ErrorCode::InvalidArgument,
                format!("{} is a tracker request; this is a storage node", other.name()),
            )),
        }
    }
}

/// Runs a storage node on `listener` (and HTTP downloads on `http`) until
/// `shutdown` turns true; `local` then reads its blobs for front ends in
/// this process.
pub async fn run(
    listener: TcpListener,
    http: Option<TcpListener>,
    secret: ClusterSecret,
    cfg: StorageConfig,
    store: Store,
    local: LocalNode,
    shutdown: watch::Receiver<bool>,
) {
    let (heal_rate, scrub_rate) = (cfg.heal_rate_mib, cfg.scrub_rate_mib);
    let store = Arc::new(store);
    let deleter = match Deleter::start(store.clone()) {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "cannot start the delete thread; the storage node does not start");
            return;
        }
    };
    let node = Arc::new_cyclic(|me: &Weak<Node>| Node {
        store,
        deleter,
        pool: Pool::new(secret.clone(), cfg.connect_timeout, POOL_IDLE_PER_PEER),
        view: View::new(cfg.heartbeat_interval),
        cfg,
        order: (0..ORDER_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        in_flight: AtomicU32::new(0),
        incarnation: incarnation(),
        inflight: InFlight::default(),
        missed: Mutex::new(Vec::new()),
        caught_up: Mutex::new(HashMap::new()),
        beat_requests: tokio::sync::watch::Sender::new(0),
        dirty: Mutex::new(HashSet::new()),
        heal: Mutex::new(HealStatus::default()),
        scrub: Mutex::new(ScrubStatus::default()),
        repairing: Mutex::new(HashSet::new()),
        heal_rate: Rate::new(heal_rate),
        scrub_rate: Rate::new(scrub_rate),
        me: me.clone(),
    });
    local.bind(&node);
    info!(node = node.id(), group = node.store.group(), addr = %node.cfg.advertise, "storage node listening");
    let mut tasks = Vec::new();
    for t in node.cfg.trackers.clone() {
        tasks.push(tokio::spawn(heartbeat::heartbeat_loop(node.clone(), t, shutdown.clone())));
    }
    tasks.push(tokio::spawn(binlog_flusher(node.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(crate::compact::compactor(node.clone(), shutdown.clone())));
    if let Some(l) = http {
        tasks.push(tokio::spawn(crate::http::serve(l, node.clone(), shutdown.clone())));
    }
    if let Some(every) = node.cfg.scrub_interval {
        tasks.push(tokio::spawn(scrub::periodic(node.clone(), every)));
    }
    cairn_proto::net::serve(listener, secret, node.clone(), ServeLimits::default(), shutdown).await;
    for t in tasks {
        t.abort();
    }
    let store = node.store.clone();
    match tokio::task::spawn_blocking(move || store.binlog().close_clean()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "could not close the binlog cleanly"),
        Err(e) => warn!(error = %e, "binlog close failed"),
    }
}

/// A number that differs at every start of the process.
fn incarnation() -> u64 {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    now ^ (std::process::id() as u64).rotate_left(40)
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
