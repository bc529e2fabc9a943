//! The client proper.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_proto::frame::{expect_frame, write_frame, BodyReader};
use cairn_proto::net::check;
use cairn_proto::{
    BlobInfo, ClusterMap, ClusterSecret, ErrorCode, FileId, Metadata, Pool, Pooled, ProtoError, Request, Response,
    StoreTarget,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};

use crate::blocks::{BlocksError, BlocksReply, BLOCKS_MIN_READ};
use crate::body::{Body, SendError};
use crate::error::{Error, Result, Role};
use crate::routes::Routes;

/// How a client reaches the cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Trackers, tried in turn.
    pub trackers: Vec<String>,
    /// The cluster secret.
    pub secret: ClusterSecret,
    /// Time to connect and authenticate.
    pub connect_timeout: Duration,
    /// How long to keep retrying while a group has no reachable primary
    /// (a primary that died is replaced once the trackers notice).
    pub failover_wait: Duration,
    /// How long an upload waits on a member that stopped answering before
    /// it tries another (plus time for the size: see [`upload_deadline`]).
    /// Uploads are safe to repeat elsewhere: at worst the silent member
    /// keeps an orphan copy under a name nobody was given.
    pub upload_stall: Duration,
}

impl ClientConfig {
    /// Defaults for the given trackers and secret.
    pub fn new(trackers: Vec<String>, secret: ClusterSecret) -> Self {
        Self {
            trackers,
            secret,
            connect_timeout: Duration::from_secs(3),
            failover_wait: Duration::from_secs(15),
            upload_stall: Duration::from_secs(1),
        }
    }
}

/// Options of an upload.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// Group to upload into (the tracker chooses when `None`).
    pub group: Option<String>,
    /// Make an appender blob.
    pub appender: bool,
    /// Extension, without the dot.
    pub ext: String,
}

/// A connection to the cluster. Cheap to share: clone an `Arc` of it.
#[derive(Debug)]
pub struct Client {
    cfg: ClientConfig,
    pool: Pool,
    tracker_cursor: AtomicUsize,
    routes: Routes,
}

/// Time to allow a body of `bytes` on top of the stall limit: sending at 1
/// MiB/s at least, and the members' fsync at 32 MiB/s.
fn upload_deadline(stall: Duration, bytes: Option<u64>) -> (Option<Duration>, Duration) {
    let fsync = stall + Duration::from_secs(bytes.unwrap_or(0) >> 25);
    (bytes.map(|b| stall + Duration::from_secs(b >> 20)), fsync)
}

/// Tries of an upload on different members before giving up.
const UPLOAD_TRIES: usize = 4;
/// Pause between tries while a primary is being replaced.
const FAILOVER_PAUSE: Duration = Duration::from_millis(250);

impl Client {
    /// A client for the cluster.
    pub fn new(cfg: ClientConfig) -> Self {
        let pool = Pool::new(cfg.secret.clone(), cfg.connect_timeout, 32);
        Self { cfg, pool, tracker_cursor: AtomicUsize::new(0), routes: Routes::default() }
    }

    /// Asks the trackers in turn, starting with the last one that answered.
    async fn tracker(&self, req: &Request) -> Result<Response> {
        let n = self.cfg.trackers.len();
        if n == 0 {
            return Err(Error::TrackersUnreachable { tried: "none".into(), last: "no tracker configured".into() });
        }
        let start = self.tracker_cursor.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..n {
            let k = (start + i) % n;
            let addr = &self.cfg.trackers[k];
            match self.pool.call(addr, req).await {
                Ok(resp) => {
                    self.tracker_cursor.store(k, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(ProtoError::Remote(e)) => return Err(Error::Remote(e)),
                Err(e @ (ProtoError::Auth(_) | ProtoError::WrongSecret(_))) => {
                    return Err(Error::peer(Role::Tracker, addr, e))
                }
                Err(e) => {
                    debug!(tracker = %addr, error = %e, "tracker failed; trying the next");
                    self.pool.forget(addr);
                    last = format!("{addr}: {e}");
                }
            }
        }
        Err(Error::TrackersUnreachable { tried: self.cfg.trackers.join(","), last })
    }

    /// Where an upload should go.
    pub async fn query_store(&self, group: Option<&str>, exclude: &[String]) -> Result<StoreTarget> {
        match self.tracker(&Request::QueryStore { group: group.map(String::from), exclude: exclude.to_vec() }).await? {
            Response::StoreTarget(t) => Ok(t),
            other => Err(unexpected("store target", other)),
        }
    }

    /// Members that can serve reads of `id`, in the order to try them.
    pub async fn query_fetch(&self, id: &FileId) -> Result<Vec<String>> {
        match self.tracker(&Request::QueryFetch { file_id: id.to_string() }).await? {
            Response::Members(m) => Ok(m),
            other => Err(unexpected("members", other)),
        }
    }

    /// The member that takes changes to `id` (its group's primary).
    pub async fn query_update(&self, id: &FileId) -> Result<String> {
        match self.tracker(&Request::QueryUpdate { file_id: id.to_string() }).await? {
            Response::Members(m) => m.into_iter().next().ok_or_else(|| Error::Remote(unavailable("no primary"))),
            other => Err(unexpected("members", other)),
        }
    }

    /// The group's primary, for a mutation of `id`: from the cached map when
    /// it names one, else from a tracker. A stale map costs one refusal
    /// (`NotPrimary`), after which [`Client::mutate`] drops it and retries.
    async fn primary_of(&self, id: &FileId) -> Result<String> {
        self.refresh_routes().await;
        match self.routes.primary(id.group()) {
            Some(addr) => Ok(addr),
            None => self.query_update(id).await,
        }
    }

    /// The cluster map from the first tracker that answers.
    pub async fn status(&self) -> Result<ClusterMap> {
        match self.tracker(&Request::ClusterStatus).await? {
            Response::Cluster(m) => {
                self.routes.learn(&m);
                Ok(m)
            }
            other => Err(unexpected("cluster", other)),
        }
    }

    /// Refreshes the cached group map when it is stale (see `routes.rs`).
    /// A tracker that cannot answer leaves the map absent: callers then ask
    /// the trackers per request, which reports the failure.
    async fn refresh_routes(&self) {
        if !self.routes.fresh() {
            let _ = self.status().await;
        }
    }

    /// Members to read `id` from, in order: from the cached map when it
    /// knows the group, else from a tracker.
    pub async fn readers(&self, id: &FileId) -> Result<Vec<String>> {
        self.refresh_routes().await;
        match self.routes.readers(id.group()) {
            Some(m) => Ok(m),
            None => self.query_fetch(id).await,
        }
    }

    /// Where an upload goes: with a group named, the next ready member of
    /// it that was not tried yet, from the cached map; else (or when the
    /// map has none) the trackers' choice.
    async fn upload_target(&self, group: Option<&str>, exclude: &[String]) -> Result<String> {
        if let Some(g) = group {
            self.refresh_routes().await;
            if let Some(addr) = self.routes.takers(g).and_then(|t| t.into_iter().find(|a| !exclude.contains(a))) {
                return Ok(addr);
            }
        }
        Ok(self.query_store(group, exclude).await?.addr)
    }

    /// Uploads a new blob. Returns its ID once every active member of the
    /// group has it on disk.
    pub async fn upload(&self, opts: &UploadOptions, mut body: Body) -> Result<FileId> {
        let req = Request::Upload { appender: opts.appender, ext: opts.ext.clone(), store_path: None };
        let mut exclude = Vec::new();
        let mut last = None;
        for _ in 0..UPLOAD_TRIES {
            let target = self.upload_target(opts.group.as_deref(), &exclude).await?;
            match self.send_with_body(&target, &req, &mut body, SendMode::UPLOAD).await {
                Ok(Response::FileId(id)) => return Ok(FileId::parse(&id)?),
                Ok(other) => return Err(unexpected("file id", other)),
                Err(Attempt { err, retry }) => {
                    if !retry || !err.try_elsewhere() {
                        return Err(err);
                    }
                    debug!(node = %target, error = %err, "upload failed; trying another member");
                    self.routes.forget();
                    exclude.push(target);
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Remote(unavailable("no member took the upload"))))
    }

    /// Uploads a new blob through one given member (a front end that runs
    /// beside it); no other member is tried, so a one-shot body is fine.
    pub async fn upload_at(&self, addr: &str, opts: &UploadOptions, mut body: Body) -> Result<FileId> {
        let req = Request::Upload { appender: opts.appender, ext: opts.ext.clone(), store_path: None };
        // The body may come from a slow remote sender: no stall limit.
        let mode = SendMode { watch: false, repeatable: false };
        match self.send_with_body(addr, &req, &mut body, mode).await {
            Ok(Response::FileId(id)) => Ok(FileId::parse(&id)?),
            Ok(other) => Err(unexpected("file id", other)),
            Err(Attempt { err, .. }) => Err(err),
        }
    }

    /// Uploads a slave file of `master` (a thumbnail, say), named from the
    /// master's ID with `prefix` inserted before the extension.
    pub async fn upload_slave(&self, master: &FileId, prefix: &str, ext: &str, mut body: Body) -> Result<FileId> {
        let req = Request::UploadSlave { master: master.to_string(), prefix: prefix.into(), ext: ext.into() };
        let members = self.query_fetch(master).await?;
        let mut last = None;
        for addr in members {
            match self.send_with_body(&addr, &req, &mut body, SendMode::UPLOAD).await {
                Ok(Response::FileId(id)) => return Ok(FileId::parse(&id)?),
                Ok(other) => return Err(unexpected("file id", other)),
                Err(Attempt { err, retry })
                    if retry && err.try_elsewhere() && err.code() != Some(ErrorCode::NotFound) =>
                {
                    last = Some(err)
                }
                Err(Attempt { err, .. }) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| Error::Remote(unavailable("no member took the upload"))))
    }

    /// Sends a request and its body, reads the response. On a stale pooled
    /// connection it retries once on a fresh one if the body allows it.
    /// With `watch`, a member that stops answering is given up after the
    /// upload stall limit (only for requests that are safe to repeat).
    async fn send_with_body(
        &self,
        addr: &str,
        req: &Request,
        body: &mut Body,
        mode: SendMode,
    ) -> Result<Response, Attempt> {
        let stall = mode.watch.then_some(self.cfg.upload_stall);
        let mut c = self.open(addr, stall, false).await?;
        match self.exchange(&mut c, req, body, stall, mode.repeatable).await {
            // A pooled connection the node had closed: once more on a fresh
            // one (not after a stall: the node is there but silent).
            Err(Attempt { err: Error::Peer { error, .. }, retry: true })
                if c.reused && error.is_connection() && !error.is_timeout() =>
            {
                self.pool.forget(addr);
                c = self.open(addr, stall, true).await?;
                let r = self.exchange(&mut c, req, body, stall, mode.repeatable).await;
                if r.is_ok() {
                    self.pool.put(c);
                }
                r
            }
            Ok(r) => {
                self.pool.put(c);
                Ok(r)
            }
            Err(e) => Err(e),
        }
    }

    /// A connection to `addr` (pooled, or `fresh`), given up after `stall`.
    async fn open(&self, addr: &str, stall: Option<Duration>, fresh: bool) -> Result<Pooled, Attempt> {
        let conn =
            if fresh { within(stall, self.pool.fresh(addr)).await } else { within(stall, self.pool.get(addr)).await };
        conn.ok_or_else(|| Attempt::retry(stalled(addr, "connecting")))?
            .map_err(|e| Attempt::retry(Error::node(addr, e)))
    }

    /// Sends one request with its body and reads the answer. A failure once
    /// the request is out may leave it applied or not: it is offered for a
    /// retry only when `repeatable`.
    async fn exchange(
        &self,
        c: &mut Pooled,
        req: &Request,
        body: &mut Body,
        stall: Option<Duration>,
        repeatable: bool,
    ) -> Result<Response, Attempt> {
        let addr = c.addr.clone();
        // A refusal means the request was not applied; a broken connection
        // leaves it unknown.
        let refused_retry = body.replayable();
        let replayable = refused_retry && repeatable;
        let (send_limit, answer_limit) = match stall {
            Some(s) => {
                let (send, answer) = upload_deadline(s, body.len().await);
                (send, Some(answer))
            }
            None => (None, None),
        };
        let stalled = |what: &str| Attempt { err: stalled(&addr, what), retry: replayable };
        write_frame(&mut c.conn, req).await.map_err(|e| Attempt::retry(Error::node(&addr, e)))?;
        let sent = within(send_limit, body.send(&mut c.conn)).await.ok_or_else(|| stalled("sending"))?;
        match sent {
            Ok(_) => {}
            Err(SendError::Input(e)) => return Err(Attempt::fatal(Error::Input(e))),
            Err(SendError::Conn(e)) => return Err(Attempt { err: Error::node(&addr, e), retry: replayable }),
        }
        let resp = within(answer_limit, async {
            c.conn.flush().await?;
            let resp: Response = expect_frame(&mut c.conn).await?;
            check(resp)
        })
        .await
        .ok_or_else(|| stalled("answering"))?;
        resp.map_err(|e| {
            let retry = if matches!(e, ProtoError::Remote(_)) { refused_retry } else { replayable };
            Attempt { err: Error::node(&addr, e), retry }
        })
    }

    /// Downloads `[offset, offset + length)` of a blob into `sink`, from any
    /// member; if one fails midway, the next one continues where it stopped.
    /// Returns the number of bytes written.
    pub async fn download_to<W: AsyncWrite + Unpin>(
        &self,
        id: &FileId,
        offset: u64,
        length: Option<u64>,
        sink: &mut W,
    ) -> Result<u64> {
        self.download_inner(id, offset, length, sink, &mut Head::default()).await
    }

    /// Like [`Client::download_to`], for protocols whose reply announces
    /// its length before the body (FastDFS): writes `head(n)` into `sink`
    /// first, `n` being the number of bytes that follow, learnt from the
    /// first member's answer, so the download costs one round trip and no
    /// separate size query. The bytes after the head never exceed `n`; if
    /// fewer arrive, the call fails. `head` is not called when the download
    /// fails before its first byte.
    pub async fn download_with_head<W: AsyncWrite + Unpin>(
        &self,
        id: &FileId,
        offset: u64,
        length: Option<u64>,
        sink: &mut W,
        head: impl FnOnce(u64) -> Vec<u8> + Send,
    ) -> Result<u64> {
        let mut h = Head { make: Some(Box::new(head)), end: None };
        let n = self.download_inner(id, offset, length, sink, &mut h).await?;
        match h.end {
            Some(end) if offset + n != end => {
                Err(Error::Remote(unavailable("the file ended before its announced length")))
            }
            _ => Ok(n),
        }
    }

    async fn download_inner<W: AsyncWrite + Unpin>(
        &self,
        id: &FileId,
        offset: u64,
        length: Option<u64>,
        sink: &mut W,
        head: &mut Head<'_>,
    ) -> Result<u64> {
        let mut written = 0u64;
        let mut last = None;
        // A cached map may name members that are gone: after they all
        // failed, once more with a tracker's fresh answer.
        for fresh in [false, true] {
            let members = if fresh { self.query_fetch(id).await? } else { self.readers(id).await? };
            for addr in members {
                match self.read_from(&addr, id, offset, length, sink, &mut written, head).await {
                    Ok(()) => return Ok(written),
                    Err(e) if e.try_elsewhere() => {
                        debug!(node = %addr, error = %e, "download failed; trying another member");
                        self.routes.forget();
                        last = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Remote(unavailable("no member could serve the file"))))
    }

    /// Downloads from one storage node and nowhere else (to check a replica).
    pub async fn download_from<W: AsyncWrite + Unpin>(
        &self,
        addr: &str,
        id: &FileId,
        offset: u64,
        length: Option<u64>,
        sink: &mut W,
    ) -> Result<u64> {
        let mut written = 0;
        self.read_from(addr, id, offset, length, sink, &mut written, &mut Head::default()).await?;
        Ok(written)
    }

    /// Downloads into memory; for small files and tests.
    pub async fn download_bytes(&self, id: &FileId, offset: u64, length: Option<u64>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.download_to(id, offset, length, &mut out).await?;
        Ok(out)
    }

    /// Reads `[offset + written, offset + length)` from one member, adding
    /// what it writes to `written`.
    #[allow(clippy::too_many_arguments)]
    async fn read_from<W: AsyncWrite + Unpin>(
        &self,
        addr: &str,
        id: &FileId,
        offset: u64,
        length: Option<u64>,
        sink: &mut W,
        written: &mut u64,
        head: &mut Head<'_>,
    ) -> Result<()> {
        loop {
            let at = offset + *written;
            let len = head.left(at, length.map(|l| l - *written));
            if len.is_some_and(|l| l < BLOCKS_MIN_READ) {
                return self.read_checked(addr, id, at, len, sink, written, head).await;
            }
            let req = Request::DownloadBlocks { file_id: id.to_string(), offset: at, length: len };
            let (mut c, resp) = self.open_read(addr, &req).await?;
            let reply = match resp {
                Response::Data { length: expected } => {
                    head.announce(sink, at, expected).await?;
                    return self.take_body(c, addr, expected, sink, written).await;
                }
                Response::Blocks { start, length: sent, size, block_size, crcs } => {
                    let reply = BlocksReply::check(at, len, start, sent, size, block_size, crcs)
                        .map_err(|e| Error::node(addr, e))?;
                    let total = size.saturating_sub(at);
                    head.announce(sink, at, len.map_or(total, |l| l.min(total))).await?;
                    reply
                }
                other => return Err(unexpected("blocks", other)),
            };
            match reply.take(&mut c.conn, sink, written).await {
                Ok(()) => self.pool.put(c),
                Err(BlocksError::Output(e)) => return Err(Error::Output(e)),
                Err(BlocksError::Conn(e)) => return Err(Error::node(addr, e)),
                Err(BlocksError::Damaged { offset: bad }) => {
                    // The node did not check what it sent; asked to, it
                    // checks, has a damaged copy repaired and refuses,
                    // and the caller goes to another member. The
                    // connection is dropped mid-body.
                    warn!(node = %addr, file_id = %id, offset = bad, "a block failed its CRC here; reading it checked");
                    let at = offset + *written;
                    let len = head.left(at, length.map(|l| l - *written));
                    return self.read_checked(addr, id, at, len, sink, written, head).await;
                }
            }
            if reply.reaches_end() || head.end == Some(offset + *written) {
                return Ok(());
            }
        }
    }

    /// Reads a range the node checks before sending.
    #[allow(clippy::too_many_arguments)]
    async fn read_checked<W: AsyncWrite + Unpin>(
        &self,
        addr: &str,
        id: &FileId,
        offset: u64,
        length: Option<u64>,
        sink: &mut W,
        written: &mut u64,
        head: &mut Head<'_>,
    ) -> Result<()> {
        let req = Request::Download { file_id: id.to_string(), offset, length };
        let (c, resp) = self.open_read(addr, &req).await?;
        let expected = match resp {
            Response::Data { length } => length,
            other => return Err(unexpected("data", other)),
        };
        head.announce(sink, offset, expected).await?;
        self.take_body(c, addr, expected, sink, written).await
    }

    /// Sends a read request on a pooled connection (a fresh one if the pooled
    /// one turns out dead) and returns the connection with the answer.
    async fn open_read(&self, addr: &str, req: &Request) -> Result<(Pooled, Response)> {
        let mut c = self.pool.get(addr).await.map_err(|e| Error::node(addr, e))?;
        let resp = match cairn_proto::net::call(&mut c.conn, req).await {
            Err(e) if c.reused && e.is_connection() => {
                self.pool.forget(addr);
                c = self.pool.fresh(addr).await.map_err(|e| Error::node(addr, e))?;
                cairn_proto::net::call(&mut c.conn, req).await
            }
            other => other,
        };
        let resp = check(resp.map_err(|e| Error::node(addr, e))?).map_err(|e| Error::node(addr, e))?;
        Ok((c, resp))
    }

    /// Copies a checked body of `expected` bytes into `sink`.
    async fn take_body<W: AsyncWrite + Unpin>(
        &self,
        mut c: Pooled,
        addr: &str,
        expected: u64,
        sink: &mut W,
        written: &mut u64,
    ) -> Result<()> {
        let mut body = BodyReader::new();
        loop {
            match body.next(&mut c.conn).await {
                Ok(Some(chunk)) => {
                    sink.write_all(&chunk).await.map_err(Error::Output)?;
                    *written += chunk.len() as u64;
                }
                Ok(None) => break,
                Err(ProtoError::BodyAborted) => {
                    let why: Response = expect_frame(&mut c.conn).await.map_err(|e| Error::node(addr, e))?;
                    self.pool.put(c);
                    return Err(match why {
                        Response::Error(e) => Error::Remote(e),
                        other => unexpected("error", other),
                    });
                }
                Err(e) => return Err(Error::node(addr, e)),
            }
        }
        if body.received() != expected {
            return Err(Error::node(
                addr,
                ProtoError::Malformed(format!("announced {expected} bytes, sent {}", body.received())),
            ));
        }
        self.pool.put(c);
        Ok(())
    }

    /// Calls the first member that answers, for reads of small facts.
    async fn read_call(&self, id: &FileId, req: Request) -> Result<Response> {
        let mut last = None;
        for addr in self.readers(id).await? {
            match self.pool.call(&addr, &req).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    let e = Error::node(&addr, e);
                    if !e.try_elsewhere() {
                        return Err(e);
                    }
                    self.routes.forget();
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Remote(unavailable("no member could serve the file"))))
    }

    /// Size, CRC32 and creation facts of a blob.
    pub async fn info(&self, id: &FileId) -> Result<BlobInfo> {
        match self.read_call(id, Request::FileInfo { file_id: id.to_string() }).await? {
            Response::Info(i) => Ok(i),
            other => Err(unexpected("info", other)),
        }
    }

    /// A blob's metadata.
    pub async fn get_meta(&self, id: &FileId) -> Result<Metadata> {
        match self.read_call(id, Request::GetMeta { file_id: id.to_string() }).await? {
            Response::Meta(m) => Ok(m),
            other => Err(unexpected("meta", other)),
        }
    }

    /// Sends a mutation to the group's primary, following a primary change
    /// for up to [`ClientConfig::failover_wait`].
    async fn mutate(&self, id: &FileId, req: Request, mut body: Option<Body>) -> Result<()> {
        let deadline = Instant::now() + self.cfg.failover_wait;
        // An append applied twice would duplicate bytes: after a failure
        // that leaves unknown whether it was applied, it is not repeated.
        let mode = SendMode { watch: false, repeatable: !matches!(req, Request::Append { .. }) };
        let mut tries = 0;
        loop {
            tries += 1;
            let attempt = async {
                let primary = self.primary_of(id).await.map_err(Attempt::retry)?;
                match body.as_mut() {
                    Some(b) => self.send_with_body(&primary, &req, b, mode).await,
                    None => self.pool.call(&primary, &req).await.map_err(|e| Attempt::retry(Error::node(&primary, e))),
                }
            }
            .await;
            match attempt {
                Ok(Response::Ok) => return Ok(()),
                // A repeated delete finds the file gone: the first one did it.
                Err(Attempt { err, .. })
                    if tries > 1
                        && matches!(req, Request::Delete { .. })
                        && err.code() == Some(ErrorCode::NotFound) =>
                {
                    return Ok(())
                }
                Ok(other) => return Err(unexpected("ok", other)),
                Err(Attempt { err, retry }) => {
                    let failover = matches!(
                        err.code(),
                        Some(
                            ErrorCode::NotPrimary
                                | ErrorCode::NotReady
                                | ErrorCode::Unavailable
                                | ErrorCode::StaleEpoch
                        )
                    ) || matches!(&err, Error::Peer { error, .. } if error.is_connection());
                    if !retry || !failover || Instant::now() >= deadline {
                        return Err(err);
                    }
                    // The cached map may name a primary that no longer is.
                    self.routes.forget();
                    debug!(error = %err, "primary unavailable; retrying");
                    tokio::time::sleep(FAILOVER_PAUSE).await;
                }
            }
        }
    }

    /// Asks one storage node directly (operators' commands: scrub, heal).
    pub async fn node_call(&self, addr: &str, req: &Request) -> Result<Response> {
        self.pool.call(addr, req).await.map_err(|e| Error::node(addr, e))
    }

    /// Deletes a blob from every member of its group.
    pub async fn delete(&self, id: &FileId) -> Result<()> {
        self.mutate(id, Request::Delete { file_id: id.to_string() }, None).await
    }

    /// Appends to an appender blob.
    pub async fn append(&self, id: &FileId, body: Body) -> Result<()> {
        self.mutate(id, Request::Append { file_id: id.to_string() }, Some(body)).await
    }

    /// Overwrites part of an appender blob, starting at `offset`.
    pub async fn modify(&self, id: &FileId, offset: u64, body: Body) -> Result<()> {
        self.mutate(id, Request::Modify { file_id: id.to_string(), offset }, Some(body)).await
    }

    /// Truncates (or extends with zeros) an appender blob.
    pub async fn truncate(&self, id: &FileId, size: u64) -> Result<()> {
        self.mutate(id, Request::Truncate { file_id: id.to_string(), size }, None).await
    }

    /// Sets metadata, replacing it all or merging key by key.
    pub async fn set_meta(&self, id: &FileId, meta: Metadata, merge: bool) -> Result<()> {
        self.mutate(id, Request::SetMeta { file_id: id.to_string(), meta, merge }, None).await
    }
}

/// The error for a member that stopped answering during `what`.
fn stalled(addr: &str, what: &str) -> Error {
    let e = std::io::Error::new(std::io::ErrorKind::TimedOut, format!("member stopped answering ({what})"));
    Error::node(addr, ProtoError::Io(e))
}

/// Runs `f` to completion, or until `limit` passes (`None`).
async fn within<F: std::future::Future>(limit: Option<Duration>, f: F) -> Option<F::Output> {
    match limit {
        Some(l) => tokio::time::timeout(l, f).await.ok(),
        None => Some(f.await),
    }
}

/// How a request with a body may be sent.
#[derive(Debug, Clone, Copy)]
struct SendMode {
    /// Give up on a member that stops answering after the upload stall
    /// limit, to try another.
    watch: bool,
    /// The request may be sent again after a failure that leaves unknown
    /// whether it was applied.
    repeatable: bool,
}

impl SendMode {
    /// Uploads: a repeat makes at worst an orphan copy under a name nobody
    /// was given.
    const UPLOAD: SendMode = SendMode { watch: true, repeatable: true };
}

/// A failed try, and whether trying again could work.
struct Attempt {
    err: Error,
    retry: bool,
}

impl Attempt {
    fn retry(err: Error) -> Self {
        Self { err, retry: true }
    }
    fn fatal(err: Error) -> Self {
        Self { err, retry: false }
    }
}

fn unexpected(expected: &'static str, got: Response) -> Error {
    Error::Peer {
        role: Role::StorageNode,
        addr: String::new(),
        error: ProtoError::Unexpected { expected, got: got.name() },
    }
}

/// What a download writes before its body once the body's length is known
/// (see [`Client::download_with_head`]).
#[derive(Default)]
struct Head<'a> {
    /// Makes the bytes from the length; taken when they are written.
    make: Option<Box<dyn FnOnce(u64) -> Vec<u8> + Send + 'a>>,
    /// Where the announced body ends, once announced.
    end: Option<u64>,
}

impl Head<'_> {
    /// How much to ask for from `at`: what is `asked`, or, once a head
    /// announced the length, exactly what is left of it, so nothing goes
    /// past it.
    fn left(&self, at: u64, asked: Option<u64>) -> Option<u64> {
        match self.end {
            Some(end) => Some(end.saturating_sub(at)),
            None => asked,
        }
    }

    /// Writes the head for `len` bytes from `at`, the first time only.
    async fn announce<W: AsyncWrite + Unpin>(&mut self, sink: &mut W, at: u64, len: u64) -> Result<()> {
        if let Some(make) = self.make.take() {
            sink.write_all(&make(len)).await.map_err(Error::Output)?;
            self.end = Some(at + len);
        }
        Ok(())
    }
}
fn unavailable(msg: &str) -> cairn_proto::WireError {
    cairn_proto::WireError::new(ErrorCode::Unavailable, msg)
}
