//! What an upload, append or modify sends.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use cairn_proto::frame::{copy_body, write_body_end, write_chunk};
use cairn_proto::{Conn, ProtoError};
use tokio::io::AsyncRead;

/// Content to send. Bytes and files can be sent again when a retry needs
/// it; a reader (a pipe) only once.
pub enum Body {
    /// Content in memory.
    Bytes(Bytes),
    /// A local file, streamed from disk.
    File(PathBuf),
    /// A local file, streamed from disk, its bytes sent so far counted in
    /// the counter (set back to 0 when a retry starts over): what a
    /// progress bar shows.
    CountedFile(PathBuf, Arc<AtomicU64>),
    /// Any stream, e.g. standard input.
    Reader(Box<dyn AsyncRead + Send + Unpin>),
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Body::Bytes(Bytes::from(v))
    }
}

impl From<&'static [u8]> for Body {
    fn from(v: &'static [u8]) -> Self {
        Body::Bytes(Bytes::from_static(v))
    }
}

/// Why sending a body failed: the local side or the connection.
pub(crate) enum SendError {
    Input(std::io::Error),
    Conn(ProtoError),
}

impl Body {
    /// Its size, when known before sending.
    pub(crate) async fn len(&mut self) -> Option<u64> {
        match self {
            Body::Bytes(b) => Some(b.len() as u64),
            Body::File(p) | Body::CountedFile(p, _) => tokio::fs::metadata(p).await.ok().map(|m| m.len()),
            Body::Reader(_) => None,
        }
    }

    /// Whether the body can be sent a second time.
    pub(crate) fn replayable(&self) -> bool {
        !matches!(self, Body::Reader(_))
    }

    /// Streams the body as chunks. A reader is taken out (so a second send
    /// finds it gone and refuses).
    pub(crate) async fn send(&mut self, conn: &mut Conn) -> Result<u64, SendError> {
        match self {
            Body::Bytes(b) => {
                write_chunk(conn, b).await.map_err(SendError::Conn)?;
                write_body_end(conn).await.map_err(SendError::Conn)?;
                Ok(b.len() as u64)
            }
            Body::File(path) => {
                let mut f = tokio::fs::File::open(&*path).await.map_err(SendError::Input)?;
                copy(&mut f, conn).await
            }
            Body::CountedFile(path, sent) => {
                sent.store(0, Ordering::Relaxed);
                let f = tokio::fs::File::open(&*path).await.map_err(SendError::Input)?;
                copy(&mut Counted { inner: f, sent: sent.clone() }, conn).await
            }
            Body::Reader(r) => {
                let mut r = std::mem::replace(r, Box::new(tokio::io::empty()));
                copy(&mut r, conn).await
            }
        }
    }
}

/// Copies a stream into a body, telling a failure to read the input apart
/// from a failure of the connection.
async fn copy<R: AsyncRead + Unpin + ?Sized>(src: &mut R, conn: &mut Conn) -> Result<u64, SendError> {
    let mut tap = Tap { inner: src, err: None };
    match copy_body(&mut tap, conn).await {
        Ok(n) => Ok(n),
        Err(e) => match tap.err.take() {
            Some(input) => Err(SendError::Input(input)),
            None => Err(SendError::Conn(e)),
        },
    }
}

/// Adds what is read through it to a counter.
struct Counted<R> {
    inner: R,
    sent: Arc<AtomicU64>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        this.sent.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        r
    }
}

/// Remembers a read error of the input so it is not blamed on the network.
struct Tap<'a, R: ?Sized> {
    inner: &'a mut R,
    err: Option<std::io::Error>,
}

impl<R: AsyncRead + Unpin + ?Sized> AsyncRead for Tap<'_, R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        match std::pin::Pin::new(&mut *this.inner).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e)) => {
                this.err = Some(std::io::Error::new(e.kind(), e.to_string()));
                std::task::Poll::Ready(Err(e))
            }
            other => other,
        }
    }
}
