//! The meta service daemon: namespace operations over the native protocol
//! (authenticated with the cluster secret), each one engine transaction,
//! run on a blocking thread unless it cannot wait long (small reads, and a
//! namespace change with no other change in progress: see [`Changing`]).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Client, ClientConfig};
use cairn_proto::frame::{encode_frame, write_frame};
use cairn_proto::meta::{Attr, MetaRequest, MetaResponse};
use cairn_proto::{ClusterSecret, Conn, ErrorCode, ProtoError, Request, Response, ServeLimits, Service, WireError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::changes::ChangeFeed;
use crate::workers::{self, WorkerOptions};
use crate::{Engine, MetaError, Namespace, RedbEngine, Time};

use MetaRequest as Q;

/// File of the embedded engine inside the data directory.
pub const DB_FILE: &str = "meta.redb";

struct MetaService<E: Engine> {
    ns: Arc<Namespace<E>>,
    /// See [`MetaOptions::orphan_lease_secs`].
    lease_secs: u64,
    feed: ChangeFeed,
    /// Changes being carried out now (see [`Changing`]).
    changing: AtomicUsize,
}

/// One change in progress. A namespace change made alone, with nothing
/// else changing, is carried out on the connection's own task: it appends
/// to the log without a sync and commits without waiting for anyone, in
/// less time than a blocking-pool thread takes to wake (one hand-off of
/// two per change on a small machine; mkdir, rename and unlink through a
/// mount 10–25% faster). With others in progress, or with the engine's
/// periodic durable commit due, it goes to the blocking pool as before:
/// it could wait there for an fsync, and a runtime thread must not.
struct Changing<'a> {
    count: &'a AtomicUsize,
    alone: bool,
}

impl<'a> Changing<'a> {
    fn begin(count: &'a AtomicUsize) -> Self {
        let alone = count.fetch_add(1, Ordering::AcqRel) == 0;
        Self { count, alone }
    }

    fn alone(&self) -> bool {
        self.alone
    }
}

impl Drop for Changing<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Longest a mount's request for changes waits.
const CHANGES_WAIT_MAX: Duration = Duration::from_secs(30);

/// Settings of the meta service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaOptions {
    /// How long a file unlinked while open is kept after a mount last said
    /// it has it open.
    pub orphan_lease_secs: u64,
    /// The blob collector and the slice merger, started with the service;
    /// `None` (no trackers known): blobs no file refers to stay, and files
    /// keep their slices.
    pub workers: Option<WorkerOptions>,
}

impl Default for MetaOptions {
    fn default() -> Self {
        Self { orphan_lease_secs: crate::ORPHAN_LEASE_SECS, workers: None }
    }
}

/// Carries out one request from client `session` (0: untagged).
fn dispatch<E: Engine>(
    ns: &Namespace<E>,
    lease_secs: u64,
    session: u64,
    req: MetaRequest,
) -> Result<MetaResponse, MetaError> {
    if req.durable_when_answered() {
        carry_out(ns, lease_secs, session, req)
    } else {
        ns.lazily(|| carry_out(ns, lease_secs, session, req))
    }
}

fn carry_out<E: Engine>(
    ns: &Namespace<E>,
    lease_secs: u64,
    session: u64,
    req: MetaRequest,
) -> Result<MetaResponse, MetaError> {
    use MetaResponse as A;
    Ok(match req {
        Q::CreateVolume { name, groups, chunk_size } => A::Volume(ns.create_volume(&name, groups, chunk_size)?),
        Q::ListVolumes => A::Volumes(ns.volumes()?),
        Q::GetVolume { name } => A::Volume(ns.volume(&name)?),
        Q::DeleteVolume { name, force } => {
            ns.delete_volume(&name, force, lease_secs)?;
            A::Ok
        }
        Q::Stats { vol } => A::Stats(ns.stats(vol)?),
        Q::Lookup { vol, parent, name } => A::Attr(ns.lookup(vol, parent, &name)?),
        Q::GetAttr { vol, ino } => A::Attr(ns.getattr(vol, ino)?),
        Q::SetAttr { vol, ino, set } => A::Attr(ns.setattr(vol, ino, set)?),
        Q::Mknod { vol, parent, name, node } => made(ns, vol, parent, ns.mknod(vol, parent, &name, node)?),
        Q::Mkdir { vol, parent, name, perm, uid, gid } => {
            made(ns, vol, parent, ns.mkdir(vol, parent, &name, perm, uid, gid)?)
        }
        Q::Link { vol, ino, newparent, newname } => made(ns, vol, newparent, ns.link(vol, ino, newparent, &newname)?),
        Q::Unlink { vol, parent, name } => {
            ns.unlink(vol, parent, &name)?;
            dirs(ns, vol, &[parent])
        }
        Q::Rmdir { vol, parent, name } => {
            ns.rmdir(vol, parent, &name)?;
            dirs(ns, vol, &[parent])
        }
        Q::Rename { vol, parent, name, newparent, newname, mode } => {
            ns.rename(vol, parent, &name, newparent, &newname, mode)?;
            dirs(ns, vol, &[parent, newparent])
        }
        Q::Readlink { vol, ino } => A::Bytes(ns.readlink(vol, ino)?),
        Q::Readdir { vol, ino, after, limit } => {
            A::Entries(ns.readdir(vol, ino, after.as_deref(), limit.clamp(1, 10_000) as usize)?)
        }
        Q::Changes { .. } => return Err(MetaError::Invalid("the change feed is not a namespace operation".into())),
        Q::ReaddirPlus { vol, ino, after, limit } => {
            A::EntriesPlus(ns.readdir_plus(vol, ino, after.as_deref(), limit.clamp(1, 10_000) as usize)?)
        }
        Q::Write { vol, ino, slices } => A::Attr(ns.write(vol, ino, slices)?),
        Q::CloneContent { vol, from, to } => A::Attr(ns.clone_content(vol, from, to)?),
        Q::Read { vol, ino, offset, len } => {
            let (attr, pieces) = ns.read(vol, ino, offset, len)?;
            A::Pieces(attr, pieces)
        }
        Q::Release { vol, ino } => {
            ns.release(vol, ino, session, lease_secs)?;
            A::Ok
        }
        Q::SetXattr { vol, ino, name, value, create, replace } => {
            ns.setxattr(vol, ino, &name, &value, create, replace)?;
            A::Ok
        }
        Q::GetXattr { vol, ino, name } => A::Bytes(ns.getxattr(vol, ino, &name)?),
        Q::ListXattr { vol, ino } => A::Names(ns.listxattr(vol, ino)?),
        Q::RemoveXattr { vol, ino, name } => {
            ns.removexattr(vol, ino, &name)?;
            A::Ok
        }
        Q::Garbage { before, after, limit } => {
            // Blobs are freed by changes answered before they were on disk
            // (an unlink): on disk before the collector deletes the blobs,
            // whatever its grace period.
            ns.sync()?;
            A::Names(
                ns.garbage(before, after.as_deref(), limit.clamp(1, 10_000) as usize)?
                    .into_iter()
                    .map(String::into_bytes)
                    .collect(),
            )
        }
        Q::Collected { blobs } => {
            ns.collected(&blobs)?;
            A::Ok
        }
        Q::CompactCandidates { limit } => A::Inodes(ns.compact_candidates(limit.clamp(1, 10_000) as usize)?),
        Q::Slices { vol, ino } => {
            let (attr, slices) = ns.slices(vol, ino)?;
            A::Slices(attr, slices)
        }
        Q::Compact { vol, ino, expected, merged } => A::Compacted(ns.compact(vol, ino, &expected, merged)?),
        Q::SlicesPage { vol, ino, from, limit } => {
            let limit = limit.clamp(1, cairn_proto::meta::SLICES_PAGE) as usize;
            let (attr, slices, total, generation) = ns.slices_page(vol, ino, from, limit)?;
            A::SlicesPage { attr, slices, total, generation }
        }
        Q::CompactPrefix { vol, ino, generation, count, merged } => {
            A::Compacted(ns.compact_prefix(vol, ino, generation, count, merged)?)
        }
        Q::Check { vol } => {
            let (examined, problems) = ns.check(vol)?;
            A::Checked { examined, problems }
        }
        Q::KeepOpen { vol, session, inodes } => {
            ns.keep_open(vol, session, &inodes)?;
            A::KeptOpen { lease_secs }
        }
        Q::Sync => {
            ns.sync()?;
            A::Ok
        }
        Q::Attach { vol, session, what } => {
            ns.attach(vol, session, &what, lease_secs)?;
            A::Ok
        }
        Q::Detach { vol, session } => {
            ns.detach(vol, session)?;
            A::Ok
        }
        Q::Clients { vol } => A::Clients(ns.clients(vol, lease_secs)?),
    })
}

/// Carries out a change tagged `(session, seq)`, at most once: a retry of
/// one already applied gets the answer from the namespace as it is now.
fn dispatch_once<E: Engine>(
    ns: &Namespace<E>,
    lease_secs: u64,
    session: u64,
    seq: u64,
    req: MetaRequest,
) -> Result<MetaResponse, MetaError> {
    if !req.is_change() {
        return dispatch(ns, lease_secs, session, req);
    }
    let again = match &req {
        Q::CreateVolume { name, .. } => Replay::Volume(name.clone()),
        Q::Mknod { vol, parent, name, .. } | Q::Mkdir { vol, parent, name, .. } => {
            Replay::Entry(*vol, *parent, name.clone())
        }
        Q::Link { vol, newparent, newname, .. } => Replay::Entry(*vol, *newparent, newname.clone()),
        Q::SetAttr { vol, ino, .. } | Q::Write { vol, ino, .. } | Q::CloneContent { vol, to: ino, .. } => {
            Replay::Inode(*vol, *ino)
        }
        Q::Compact { .. } => Replay::Compacted,
        _ => Replay::Done,
    };
    match ns.tagged(session, seq, || dispatch(ns, lease_secs, session, req)) {
        Err(MetaError::AlreadyApplied) => Ok(match again {
            Replay::Volume(name) => MetaResponse::Volume(ns.volume(&name)?),
            Replay::Entry(vol, parent, name) => MetaResponse::Attr(ns.lookup(vol, parent, &name)?),
            Replay::Inode(vol, ino) => MetaResponse::Attr(ns.getattr(vol, ino)?),
            Replay::Compacted => MetaResponse::Compacted(true),
            Replay::Done => MetaResponse::Ok,
        }),
        other => other,
    }
}

/// How to answer a change that was already applied.
enum Replay {
    Volume(String),
    Entry(u32, u64, Vec<u8>),
    Inode(u32, u64),
    Compacted,
    Done,
}

/// How often (at most) the service frees expired open-unlinked files and
/// forgets old change tags; twice per lease when the lease is shorter.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

async fn sweep_loop<E: Engine>(ns: Arc<Namespace<E>>, lease_secs: u64, mut shutdown: watch::Receiver<bool>) {
    let every = SWEEP_EVERY.min(std::time::Duration::from_millis(lease_secs * 500));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let ns = ns.clone();
        let now = Time::now().secs;
        match tokio::task::spawn_blocking(move || ns.sweep(now, lease_secs, 10_000)).await {
            Ok(Ok((freed, forgotten))) if freed > 0 || forgotten > 0 => {
                info!(freed, forgotten, "freed unlinked files no mount holds open; forgot old change tags")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(error = %e, "meta housekeeping failed"),
            Err(e) => warn!(error = %e, "meta housekeeping task failed"),
        }
    }
}

/// Sends an answer. One too large for a frame (an older client's `Slices`
/// of a file with very many slices) is refused with an error the client
/// hands on (EIO), instead of breaking the connection, which the client
/// would take for a restart of the service and retry for a minute.
async fn send(conn: &mut Conn, answer: MetaResponse) -> Result<(), ProtoError> {
    match encode_frame(&Response::Namespace(answer)) {
        Ok(frame) => Ok(tokio::io::AsyncWriteExt::write_all(conn, &frame).await?),
        Err(ProtoError::FrameTooLarge { len, max }) => {
            let message =
                format!("the answer is {len} bytes, more than the {max} a frame carries (ask a page at a time)");
            write_frame(conn, &Response::Namespace(MetaResponse::Err { errno: cairn_proto::Errno::EIO, message })).await
        }
        Err(e) => Err(e),
    }
}

fn answer_of(r: Result<Result<MetaResponse, MetaError>, tokio::task::JoinError>) -> MetaResponse {
    r.unwrap_or_else(|e| Err(MetaError::Engine(format!("meta worker failed: {e}"))))
        .unwrap_or_else(|e| MetaResponse::Err { errno: e.errno(), message: e.to_string() })
}

/// Reads of one key or two, answered on the connection's own task when the
/// engine reads without waiting (redb: a few microseconds from its cache):
/// a blocking-pool thread's wake-up and the task's own cost more than the
/// read, and on this project's test machine a negative lookup before each
/// create is a third of a create's meta round trips. Everything that
/// writes, fsyncs or reads many keys goes to the blocking pool, and so does
/// every call of an engine across a network.
fn answers_in_place(q: &MetaRequest) -> bool {
    matches!(q, Q::Lookup { .. } | Q::GetAttr { .. } | Q::GetXattr { .. } | Q::ListXattr { .. } | Q::Readlink { .. })
}

impl<E: Engine> Service for MetaService<E> {
    async fn handle<'a>(&'a self, req: Request, conn: &'a mut Conn) -> Result<(), ProtoError> {
        match req {
            Request::Namespace(Q::Changes { vol, session, epoch, after, wait_ms }) => {
                let wait = Duration::from_millis(u64::from(wait_ms)).min(CHANGES_WAIT_MAX);
                let s = self.feed.since(vol, session, epoch, after, wait).await;
                let answer = MetaResponse::Changes { epoch: s.epoch, next: s.next, lost: s.lost, changes: s.changes };
                send(conn, answer).await
            }
            Request::Namespace(q) => {
                let (ns, lease_secs) = (self.ns.clone(), self.lease_secs);
                let (vol, stale) = q.touched();
                let answer = if answers_in_place(&q) && ns.reads_without_waiting() {
                    Ok(dispatch(&ns, lease_secs, 0, q))
                } else {
                    // Counted, so a change beside it goes to the pool too.
                    let _changing = Changing::begin(&self.changing);
                    tokio::task::spawn_blocking(move || dispatch(&ns, lease_secs, 0, q)).await
                };
                let answer = answer_of(answer);
                if !matches!(answer, MetaResponse::Err { .. }) {
                    self.feed.record(0, vol, stale);
                }
                send(conn, answer).await
            }
            Request::NamespaceOnce { session, seq, req } => {
                // Nearly every close is of a file with links: nothing to
                // change, answered here without a blocking-pool hand-off.
                if let Q::Release { vol, ino } = &req {
                    if self.ns.reads_without_waiting() && matches!(self.ns.is_orphan(*vol, *ino), Ok(false)) {
                        return send(conn, MetaResponse::Ok).await;
                    }
                }
                let (ns, lease_secs) = (self.ns.clone(), self.lease_secs);
                let (vol, stale) = req.touched();
                let changing = Changing::begin(&self.changing);
                let answer =
                    if !req.durable_when_answered() && changing.alone() && self.ns.changes_lazily_without_waiting() {
                        Ok(dispatch_once(&ns, lease_secs, session, seq, req))
                    } else {
                        tokio::task::spawn_blocking(move || dispatch_once(&ns, lease_secs, session, seq, req)).await
                    };
                drop(changing);
                let answer = answer_of(answer);
                if !matches!(answer, MetaResponse::Err { .. }) {
                    self.feed.record(session, vol, stale);
                }
                send(conn, answer).await
            }
            Request::Ping => write_frame(conn, &Response::Ok).await,
            other => Err(ProtoError::Remote(WireError::new(
                ErrorCode::InvalidArgument,
                format!("the meta service does not take {} requests", other.name()),
            ))),
        }
    }
}

/// Runs the meta service on `listener` with its engine in `data`, until
/// `shutdown` turns true. The one place that chooses the engine: the
/// embedded redb file `data/meta.redb`.
pub async fn run(
    listener: TcpListener,
    secret: ClusterSecret,
    data: &Path,
    opts: MetaOptions,
    shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    std::fs::create_dir_all(data).map_err(|e| MetaError::Engine(format!("cannot create {}: {e}", data.display())))?;
    let engine = RedbEngine::open(&data.join(DB_FILE))?;
    info!(data = %data.display(), "meta engine: redb");
    serve(listener, secret, engine, opts, shutdown).await
}

/// Runs the meta service on `listener` over the namespace in `engine`,
/// until `shutdown` turns true: whatever the engine, from here on nothing
/// knows which it is.
pub async fn serve<E: Engine>(
    listener: TcpListener,
    secret: ClusterSecret,
    engine: E,
    opts: MetaOptions,
    shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    let ns = Arc::new(Namespace::open(engine)?);
    ns.count_usage_where_missing()?;
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "meta service listening");
    }
    let lease_secs = opts.orphan_lease_secs.max(1);
    tokio::spawn(sweep_loop(ns.clone(), lease_secs, shutdown.clone()));
    match &opts.workers {
        Some(w) => {
            let blobs = Arc::new(Client::new(ClientConfig::new(w.trackers.clone(), secret.clone())));
            workers::spawn(ns.clone(), blobs, w, shutdown.clone());
        }
        None => warn!("no trackers known: blobs no file refers to are not deleted, and slices are not merged"),
    }
    let service = Arc::new(MetaService { ns, lease_secs, feed: ChangeFeed::new(), changing: AtomicUsize::new(0) });
    cairn_proto::net::serve(listener, secret, service, ServeLimits::default(), shutdown).await;
    Ok(())
}

/// The answer to a create or link: the new inode with its directory's
/// attributes, read right after the change (a later change by another
/// client reaches mounts through the change feed, which forgets them).
fn made<E: Engine>(ns: &Namespace<E>, vol: u32, parent: u64, attr: Attr) -> MetaResponse {
    match ns.getattr(vol, parent) {
        Ok(parent) => MetaResponse::Made { attr, parent },
        Err(_) => MetaResponse::Attr(attr),
    }
}

/// The answer to a removal or rename: the directories it changed.
fn dirs<E: Engine>(ns: &Namespace<E>, vol: u32, inos: &[u64]) -> MetaResponse {
    let mut out: Vec<Attr> = Vec::new();
    for &ino in inos {
        if out.iter().all(|a| a.ino != ino) {
            match ns.getattr(vol, ino) {
                Ok(a) => out.push(a),
                Err(_) => return MetaResponse::Ok,
            }
        }
    }
    MetaResponse::Dirs(out)
}
