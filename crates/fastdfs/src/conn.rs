//! What both listeners share: accepting, reading a request's head within
//! its bounds, streaming file content into the cluster, mapping errors to
//! FastDFS status codes.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_client::{Body, Error as ClientError};
use cairn_proto::ErrorCode;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::request::{body_limit, has_content, name_len};
use crate::wire::{status, write_reply, Header, HEADER_LEN, MAX_SMALL_BODY};

/// Longest wait for the next request on an idle connection (FastDFS
/// clients keep pooled connections open).
const IDLE: Duration = Duration::from_secs(900);
/// Longest wait for the rest of a request once its header arrived.
const STALL: Duration = Duration::from_secs(60);
/// A read of request content shorter than this (a few TCP segments) is
/// taken for a client writing in small pieces (see [`ack_now`]).
const SHORT_READ: usize = 16 * 1024;
/// Content bytes drained to keep a connection usable after a refusal;
/// beyond this the connection is closed instead.
const MAX_DRAIN: u64 = 1 << 20;

/// What went wrong with a request, as the client will see it.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// FastDFS status.
    pub status: u8,
    /// Close the connection after answering (its stream cannot be
    /// resynchronised cheaply).
    pub close: bool,
}

impl Refusal {
    pub fn new(status: u8) -> Self {
        Refusal { status, close: false }
    }
}

/// A listener's connections, for FastDFS's cluster statistics.
#[derive(Debug, Default)]
pub(crate) struct ConnCounters {
    current: AtomicU32,
    max: AtomicU32,
}

impl ConnCounters {
    fn opened(&self) {
        let now = self.current.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        self.max.fetch_max(now, Ordering::Relaxed);
    }

    fn closed(&self) {
        let _ = self.current.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c.saturating_sub(1)));
    }

    /// Open now and most at once; a connection costs no slot beyond its
    /// task, so the slots allocated are the most ever open.
    pub fn snapshot(&self) -> crate::reply::Connections {
        let max = self.max.load(Ordering::Relaxed);
        crate::reply::Connections { alloc: max, current: self.current.load(Ordering::Relaxed), max }
    }
}

/// Counts a connection while it lives.
struct Counted<'a>(Option<&'a ConnCounters>);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.0 {
            c.closed();
        }
    }
}

/// A service that answers one request at a time on a connection.
pub(crate) trait Service: Send + Sync + 'static {
    /// Where to count its connections, if it does.
    fn counters(&self) -> Option<&ConnCounters> {
        None
    }

    /// Handles one request whose header was read. `Ok(false)` closes.
    fn handle(&self, conn: &mut TcpStream, h: Header) -> impl Future<Output = std::io::Result<bool>> + Send;
}

/// Accepts connections until `stop` turns true.
pub(crate) async fn serve<S: Service>(listener: TcpListener, service: Arc<S>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (mut conn, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "FastDFS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = conn.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            if let Some(c) = service.counters() {
                c.opened();
            }
            let _counted = Counted(service.counters());
            loop {
                let mut b = [0u8; HEADER_LEN];
                match tokio::time::timeout(IDLE, read_acking(&mut conn, &mut b, false)).await {
                    Ok(Ok(())) => {}
                    _ => return,
                }
                let h = Header::decode(&b);
                match service.handle(&mut conn, h).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => {
                        debug!(%peer, error = %e, "FastDFS connection ended");
                        return;
                    }
                }
            }
        });
    }
}

/// Has the kernel acknowledge at once what arrived. Some FastDFS clients
/// (the `fastdfs` crate among them) write one request in several small
/// writes on a socket with Nagle's algorithm on: each write after the first
/// waits until the data before it is acknowledged, and a receiver that
/// delays its acknowledgement (up to 40 ms on Linux) stalls the request
/// that long at every write: 44 ms per 4 KiB download measured here. So
/// whenever a request is incomplete and more of it is awaited, the pending
/// acknowledgement goes out now. Linux forgets the setting as it sees fit,
/// so it is set each time; a client whose requests arrive whole never pays
/// for the call.
fn ack_now(conn: &TcpStream) {
    let _ = socket2::SockRef::from(conn).set_tcp_quickack(true);
}

/// Reads what the connection has into `b`; if it has nothing yet, first
/// sends the pending acknowledgement when `ack` says a client may be
/// waiting for it (see [`ack_now`]), then waits. A request that has arrived
/// costs no extra call.
async fn read_some(conn: &mut TcpStream, b: &mut [u8], ack: bool) -> std::io::Result<usize> {
    loop {
        match conn.try_read(b) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if ack {
                    ack_now(conn);
                }
                conn.readable().await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Fills `b` from the connection. `mid_request`: the bytes before `b`
/// belong to the same request, so a wait for `b`'s first byte may be a
/// client's wait for their acknowledgement too.
async fn read_acking(conn: &mut TcpStream, b: &mut [u8], mid_request: bool) -> std::io::Result<()> {
    let mut got = 0;
    while got < b.len() {
        match read_some(conn, &mut b[got..], mid_request || got > 0).await? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(())
}

/// Reads `n` bytes of a request whose header was read, failing after
/// [`STALL`] without progress.
pub(crate) async fn read_n(conn: &mut TcpStream, n: usize) -> std::io::Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    tokio::time::timeout(STALL, read_acking(conn, &mut b, true))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client stalled"))??;
    Ok(b)
}

/// Reads and throws away `n` bytes.
pub(crate) async fn drain<R: AsyncRead + Unpin>(r: &mut R, n: u64) -> std::io::Result<()> {
    let mut take = r.take(n);
    let copied = tokio::time::timeout(STALL, tokio::io::copy(&mut take, &mut tokio::io::sink()))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client stalled"))??;
    if copied != n {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Reads a request's head: the fixed part and names of a command with
/// content (the content stays on the connection), else the whole body.
/// Every length is bounded before anything is allocated.
pub(crate) async fn read_head(conn: &mut TcpStream, h: &Header) -> std::io::Result<Result<Vec<u8>, Refusal>> {
    let Some(limit) = body_limit(h.cmd) else {
        // Unknown command: skip a small body and answer; close on a big one.
        if h.len <= MAX_SMALL_BODY {
            drain(conn, h.len).await?;
            return Ok(Err(Refusal::new(status::EINVAL)));
        }
        return Ok(Err(Refusal { status: status::EINVAL, close: true }));
    };
    if !has_content(h.cmd) {
        if h.len > limit as u64 {
            return Ok(Err(Refusal { status: status::EINVAL, close: true }));
        }
        return Ok(Ok(read_n(conn, h.len as usize).await?));
    }
    let fixed_len = (limit as u64).min(h.len) as usize;
    let mut head = read_n(conn, fixed_len).await?;
    if fixed_len == limit {
        match name_len(h.cmd, &head) {
            Ok(n) if (limit + n) as u64 <= h.len => head.extend(read_n(conn, n).await?),
            _ => return Ok(Err(skip_rest(conn, h.len - fixed_len as u64).await?)),
        }
    }
    Ok(Ok(head))
}

/// After a refused head, skips the rest of the request if that is cheap.
pub(crate) async fn skip_rest(conn: &mut TcpStream, rest: u64) -> std::io::Result<Refusal> {
    if rest <= MAX_DRAIN {
        drain(conn, rest).await?;
        Ok(Refusal::new(status::EINVAL))
    } else {
        Ok(Refusal { status: status::EINVAL, close: true })
    }
}

/// Answers a refusal; `Ok(false)` when the connection must close.
pub(crate) async fn refuse<W: AsyncWrite + Unpin>(conn: &mut W, r: Refusal) -> std::io::Result<bool> {
    write_reply(conn, r.status, &[]).await?;
    Ok(!r.close)
}

/// Runs `op` with a body fed by the next `n` bytes of the connection.
/// A connection that breaks midway makes the body fail (never end
/// early), so a short upload is never stored.
pub(crate) async fn with_content<T, F, Fut>(conn: &mut TcpStream, n: u64, op: F) -> (Result<T, ClientError>, bool)
where
    F: FnOnce(Body) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    with_content_chunks(conn, n, |chunks| op(Body::Reader(Box::new(tokio_util::io::StreamReader::new(chunks))))).await
}

/// [`with_content`] with the content as a stream of chunks, as they
/// arrive. What `op` leaves unread is still read off the connection (it
/// stays usable); the second value says whether the whole content came.
pub(crate) async fn with_content_chunks<T, F, Fut>(
    conn: &mut TcpStream,
    n: u64,
    op: F,
) -> (Result<T, ClientError>, bool)
where
    F: FnOnce(BoxStream<'static, std::io::Result<bytes::Bytes>>) -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let (tx, rx) = mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let body = channel_stream(rx).boxed();
    let pump = async {
        let mut left = n;
        let mut last = 0;
        let mut feeding = true;
        while left > 0 {
            let want = left.min(256 * 1024) as usize;
            let mut buf = vec![0u8; want];
            // A small write of the client's may be waiting for the
            // acknowledgement of the last (see `ack_now`): before the
            // content's first read (the head was read just before), and
            // after a short read, the sign of a client writing in small
            // pieces. Whole segments are acknowledged promptly anyway.
            let got = match tokio::time::timeout(STALL, read_some(conn, &mut buf, last < SHORT_READ)).await {
                Ok(Ok(0)) | Err(_) => Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
                Ok(Ok(k)) => Ok(k),
                Ok(Err(e)) => Err(e),
            };
            match got {
                Ok(k) => {
                    left -= k as u64;
                    last = k;
                    buf.truncate(k);
                    if feeding && tx.send(Ok(bytes::Bytes::from(buf))).await.is_err() {
                        feeding = false;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::new(e.kind(), "the FastDFS client stopped sending"))).await;
                    return false;
                }
            }
        }
        drop(tx);
        true
    };
    tokio::join!(op(body), pump)
}

/// A stream over a channel's items.
fn channel_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// The FastDFS status for a cluster error. EBUSY invites a retry, so an
/// append of uncertain outcome is EIO.
pub(crate) fn status_of(e: &ClientError) -> u8 {
    match e.code() {
        Some(ErrorCode::NotFound) => status::ENOENT,
        Some(ErrorCode::InvalidArgument | ErrorCode::BadFileId | ErrorCode::NotAppender) => status::EINVAL,
        Some(ErrorCode::Exists) => status::EEXIST,
        Some(ErrorCode::NoSpace) => status::ENOSPC,
        Some(ErrorCode::Io | ErrorCode::ChecksumMismatch | ErrorCode::Uncertain) => status::EIO,
        Some(_) => status::EBUSY,
        None => match e {
            ClientError::BadFileId(_) => status::EINVAL,
            _ => status::EBUSY,
        },
    }
}
