//! Connections: the server's accept loop and the client's connect, both
//! doing the handshake, both with timeouts so that a silent or hostile peer
//! cannot hold a task forever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, warn};

use crate::auth::{ClusterSecret, Handshake};
use crate::error::{ErrorCode, ProtoError, Result, WireError};
use crate::frame::{read_frame, write_frame};
use crate::message::{Request, Response};

/// A connection after the handshake: buffered both ways.
pub type Conn = BufStream<TcpStream>;

/// Buffer size of a connection in each direction.
const CONN_BUFFER: usize = 256 * 1024;

/// Limits of a server.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time a new connection has to complete the handshake.
    pub handshake_timeout: Duration,
    /// Time a connection may sit idle between requests.
    pub idle_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// What a daemon does with each request.
///
/// The handler writes its own response (it may stream a body) and must leave
/// the connection at a message boundary: a request's body is read to its end
/// even when the request fails. Returning [`ProtoError::Remote`] sends that
/// error as the response, which is allowed only when nothing was written yet;
/// any other error closes the connection.
pub trait Service: Send + Sync + 'static {
    /// Handles one request.
    fn handle<'a>(&'a self, req: Request, conn: &'a mut Conn) -> impl Future<Output = Result<()>> + Send + 'a;
}

/// Accepts connections until `shutdown` turns true.
pub async fn serve<S: Service>(
    listener: TcpListener,
    secret: ClusterSecret,
    service: Arc<S>,
    limits: ServeLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = service.clone();
        let secret = secret.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = serve_conn(stream, &secret, &*service, &limits).await {
                debug!(%peer, error = %e, "connection closed");
            }
        });
    }
}

async fn serve_conn<S: Service>(
    stream: TcpStream,
    secret: &ClusterSecret,
    service: &S,
    limits: &ServeLimits,
) -> Result<()> {
    let _ = stream.set_nodelay(true);
    let mut conn = BufStream::with_capacity(CONN_BUFFER, CONN_BUFFER, stream);
    match tokio::time::timeout(limits.handshake_timeout, Handshake::server(&mut conn, secret)).await {
        Ok(r) => r?,
        Err(_) => return Err(ProtoError::Auth("handshake timed out".into())),
    }
    loop {
        let req: Request = match tokio::time::timeout(limits.idle_timeout, read_frame(&mut conn)).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(ProtoError::Malformed(m))) => {
                // Tell the peer why before hanging up: the stream position is
                // still sane (the frame was read whole) but the peer is not.
                let err = WireError::new(ErrorCode::InvalidArgument, format!("malformed request: {m}"));
                write_frame(&mut conn, &Response::Error(err)).await?;
                conn.flush().await?;
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
        };
        match service.handle(req, &mut conn).await {
            Ok(()) => {}
            Err(ProtoError::Remote(err)) => write_frame(&mut conn, &Response::Error(err)).await?,
            Err(e) => return Err(e),
        }
        conn.flush().await?;
    }
}

/// Connects to a Cairn daemon and authenticates, within `timeout`.
pub async fn connect(addr: &str, secret: &ClusterSecret, timeout: Duration) -> Result<Conn> {
    let fut = async {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let mut conn = BufStream::with_capacity(CONN_BUFFER, CONN_BUFFER, stream);
        Handshake::client(&mut conn, secret).await?;
        Ok(conn)
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ProtoError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connecting to {addr} timed out"),
        ))),
    }
}

/// Sends a request without a body and reads one response frame.
pub async fn call(conn: &mut Conn, req: &Request) -> Result<Response> {
    write_frame(conn, req).await?;
    conn.flush().await?;
    crate::frame::expect_frame(conn).await
}

/// Turns an error response into an error.
pub fn check(resp: Response) -> Result<Response> {
    match resp {
        Response::Error(e) => Err(ProtoError::Remote(e)),
        other => Ok(other),
    }
}

/// Whether an idle connection is still open: at a message boundary nothing
/// should be readable, so readable bytes or an end of stream both mean the
/// peer has gone (or misbehaved) and the connection is of no further use.
fn still_open(conn: &Conn) -> bool {
    let mut b = [0u8; 1];
    matches!(conn.get_ref().try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Idle authenticated connections, kept per address for reuse.
///
/// A connection taken from the pool may have been closed by the peer since
/// (a restart); callers that get an I/O error on a reused connection retry
/// once on a fresh one ([`Pooled::reused`] says which it was).
#[derive(Debug)]
pub struct Pool {
    secret: ClusterSecret,
    connect_timeout: Duration,
    max_idle_per_addr: usize,
    idle: std::sync::Mutex<std::collections::HashMap<String, Vec<Conn>>>,
}

/// A connection out of a [`Pool`].
#[derive(Debug)]
pub struct Pooled {
    /// The connection.
    pub conn: Conn,
    /// Where it goes.
    pub addr: String,
    /// Whether it was idle in the pool (and so may be stale).
    pub reused: bool,
}

impl Pool {
    /// An empty pool.
    pub fn new(secret: ClusterSecret, connect_timeout: Duration, max_idle_per_addr: usize) -> Self {
        Self { secret, connect_timeout, max_idle_per_addr, idle: Default::default() }
    }

    /// An idle connection to `addr`, or a new one.
    pub async fn get(&self, addr: &str) -> Result<Pooled> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).get_mut(addr).and_then(Vec::pop);
            match idle {
                Some(conn) if still_open(&conn) => return Ok(Pooled { conn, addr: addr.to_string(), reused: true }),
                Some(_) => continue,
                None => return self.fresh(addr).await,
            }
        }
    }

    /// Always a new connection.
    pub async fn fresh(&self, addr: &str) -> Result<Pooled> {
        let conn = connect(addr, &self.secret, self.connect_timeout).await?;
        Ok(Pooled { conn, addr: addr.to_string(), reused: false })
    }

    /// Gives back a connection that is at a message boundary.
    pub fn put(&self, c: Pooled) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(c.addr).or_default();
        if list.len() < self.max_idle_per_addr {
            list.push(c.conn);
        }
    }

    /// Drops every idle connection to `addr` (it failed).
    pub fn forget(&self, addr: &str) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).remove(addr);
    }

    /// One request without a body, one response, on a pooled connection,
    /// retried once on a fresh connection if a reused one turned out stale.
    pub async fn call(&self, addr: &str, req: &Request) -> Result<Response> {
        let mut c = self.get(addr).await?;
        let resp = match call(&mut c.conn, req).await {
            Err(e) if c.reused && e.is_connection() => {
                self.forget(addr);
                c = self.fresh(addr).await?;
                call(&mut c.conn, req).await?
            }
            other => other?,
        };
        self.put(c);
        check(resp)
    }
}
