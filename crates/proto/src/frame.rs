//! Framing on a byte stream.
//!
//! A *control frame* is a big-endian `u32` length followed by that many bytes
//! of a postcard-encoded message; its length is bounded by
//! [`MAX_CONTROL_FRAME`]. A *body* follows some messages as a run of chunks:
//! each a big-endian `u32` length and that many bytes (at most [`MAX_CHUNK`]);
//! a zero length ends the body and [`ABORT_MARKER`] aborts it. Chunking lets
//! either side stream a body of any size, even one whose size is unknown when
//! it starts (an upload from a pipe), in bounded memory.

use bytes::Bytes;
use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::buffers::ChunkBuf;
use crate::error::{ProtoError, Result};

/// Largest control frame accepted. Messages are small (names, metadata of at
/// most a few KiB); anything larger is garbage or an attack.
pub const MAX_CONTROL_FRAME: u32 = 1 << 20;
/// Largest body chunk accepted from a peer.
pub const MAX_CHUNK: u32 = 4 << 20;
/// Size of the chunks this implementation sends.
pub const SEND_CHUNK: usize = 1 << 20;
/// Chunk length that tells the receiver the sender gave up on the body.
pub const ABORT_MARKER: u32 = u32::MAX;

/// Writes one control frame (without flushing).
pub async fn write_frame<W, M>(w: &mut W, msg: &M) -> Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
    M: Serialize,
{
    w.write_all(&encode_frame(msg)?).await?;
    Ok(())
}

/// One control frame as bytes, for a sender that writes it itself.
pub fn encode_frame<M: Serialize>(msg: &M) -> Result<Vec<u8>> {
    let bytes = postcard::to_allocvec(msg).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_CONTROL_FRAME as usize {
        return Err(ProtoError::FrameTooLarge { len: bytes.len() as u64, max: MAX_CONTROL_FRAME as u64 });
    }
    let mut buf = Vec::with_capacity(4 + bytes.len());
    buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    buf.extend_from_slice(&bytes);
    Ok(buf)
}

/// Reads one control frame. Returns `Ok(None)` on a clean end of stream
/// before the first byte of a frame.
pub async fn read_frame<R, M>(r: &mut R) -> Result<Option<M>>
where
    R: AsyncRead + Unpin + ?Sized,
    M: DeserializeOwned,
{
    let mut len = [0u8; 4];
    match r.read(&mut len[..1]).await? {
        0 => return Ok(None),
        _ => r.read_exact(&mut len[1..]).await?,
    };
    if let Some(hint) = foreign_protocol(len) {
        return Err(ProtoError::Foreign(hint));
    }
    let len = u32::from_be_bytes(len);
    if len > MAX_CONTROL_FRAME {
        return Err(ProtoError::FrameTooLarge { len: len as u64, max: MAX_CONTROL_FRAME as u64 });
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).await?;
    postcard::from_bytes(&buf).map(Some).map_err(|e| ProtoError::Malformed(e.to_string()))
}

/// What the first four bytes of a control frame say when they are another
/// protocol's: a length Cairn would never send. Without this, pointing a
/// client at an HTTP port reads "HTTP" as a frame of 1,213,486,160 bytes.
fn foreign_protocol(first: [u8; 4]) -> Option<&'static str> {
    match &first {
        b"HTTP" => Some("is it an HTTP port?"),
        b"GET " | b"POST" | b"PUT " | b"HEAD" => Some("the peer sent an HTTP request"),
        b"SSH-" => Some("is it an SSH port?"),
        // A TLS record: handshake or alert, version 3.x.
        [0x15 | 0x16, 0x03, _, _] => Some("is it a TLS port?"),
        // FastDFS headers start with a 64-bit length whose high half is 0
        // (packets are under 4 GiB), and every Cairn message is at least
        // one byte long: a zero length is FastDFS, never Cairn.
        [0, 0, 0, 0] => Some("is it a FastDFS port?"),
        _ => None,
    }
}

/// Reads a control frame that must be there.
pub async fn expect_frame<R, M>(r: &mut R) -> Result<M>
where
    R: AsyncRead + Unpin + ?Sized,
    M: DeserializeOwned,
{
    read_frame(r).await?.ok_or_else(|| {
        ProtoError::Io(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "peer closed the connection"))
    })
}

/// Writes one body chunk; empty chunks are skipped because a zero length ends the body.
pub async fn write_chunk<W: AsyncWrite + Unpin + ?Sized>(w: &mut W, data: &[u8]) -> Result<()> {
    for piece in data.chunks(SEND_CHUNK) {
        w.write_all(&(piece.len() as u32).to_be_bytes()).await?;
        w.write_all(piece).await?;
    }
    Ok(())
}

/// Ends a body.
pub async fn write_body_end<W: AsyncWrite + Unpin + ?Sized>(w: &mut W) -> Result<()> {
    w.write_all(&0u32.to_be_bytes()).await?;
    Ok(())
}

/// Aborts a body; the receiver sees [`ProtoError::BodyAborted`].
pub async fn write_body_abort<W: AsyncWrite + Unpin + ?Sized>(w: &mut W) -> Result<()> {
    w.write_all(&ABORT_MARKER.to_be_bytes()).await?;
    Ok(())
}

/// Streams a whole body from a reader, returning the number of bytes sent.
pub async fn copy_body<R, W>(src: &mut R, w: &mut W) -> Result<u64>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; SEND_CHUNK];
    let mut total = 0u64;
    loop {
        let n = src.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        write_chunk(w, &buf[..n]).await?;
        total += n as u64;
    }
    write_body_end(w).await?;
    Ok(total)
}

/// Reads the chunks of one body.
pub struct BodyReader {
    done: bool,
    received: u64,
}

impl Default for BodyReader {
    fn default() -> Self {
        Self::new()
    }
}

impl BodyReader {
    /// Starts reading a body.
    pub fn new() -> Self {
        Self { done: false, received: 0 }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next chunk, or `None` once the body has ended.
    pub async fn next<R: AsyncRead + Unpin + ?Sized>(&mut self, r: &mut R) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        let len = r.read_u32().await?;
        if len == 0 {
            self.done = true;
            return Ok(None);
        }
        if len == ABORT_MARKER {
            self.done = true;
            return Err(ProtoError::BodyAborted);
        }
        if len > MAX_CHUNK {
            return Err(ProtoError::FrameTooLarge { len: len as u64, max: MAX_CHUNK as u64 });
        }
        let mut buf = ChunkBuf::new(len as usize);
        r.read_exact(&mut buf).await?;
        self.received += len as u64;
        Ok(Some(buf.into_bytes()))
    }

    /// Reads and throws away the rest of a body, keeping the connection usable.
    pub async fn drain<R: AsyncRead + Unpin + ?Sized>(&mut self, r: &mut R) -> Result<()> {
        while self.next(r).await?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_and_bodies_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &("hello".to_string(), 7u64)).await.unwrap();
        write_chunk(&mut buf, b"abc").await.unwrap();
        write_chunk(&mut buf, b"").await.unwrap();
        write_chunk(&mut buf, b"de").await.unwrap();
        write_body_end(&mut buf).await.unwrap();
        let mut r = &buf[..];
        let m: (String, u64) = expect_frame(&mut r).await.unwrap();
        assert_eq!(m, ("hello".to_string(), 7));
        let mut body = BodyReader::new();
        let mut got = Vec::new();
        while let Some(c) = body.next(&mut r).await.unwrap() {
            got.extend_from_slice(&c);
        }
        assert_eq!(got, b"abcde");
        assert_eq!(body.received(), 5);
    }

    #[tokio::test]
    async fn oversized_lengths_are_refused_before_allocation() {
        let buf = (MAX_CONTROL_FRAME + 1).to_be_bytes();
        let err = read_frame::<_, String>(&mut &buf[..]).await.unwrap_err();
        assert!(matches!(err, ProtoError::FrameTooLarge { .. }));
        let buf = (MAX_CHUNK + 1).to_be_bytes();
        let err = BodyReader::new().next(&mut &buf[..]).await.unwrap_err();
        assert!(matches!(err, ProtoError::FrameTooLarge { .. }));
    }

    #[tokio::test]
    async fn other_protocols_are_named() {
        for (bytes, hint) in [
            (&b"HTTP/1.1 400 Bad Request\r\n"[..], "HTTP port"),
            (&[0, 0, 0, 0, 0, 0, 0, 0, 100, 22][..], "FastDFS port"),
            (&[0x16, 0x03, 0x01, 0x00, 0x40][..], "TLS port"),
        ] {
            let err = read_frame::<_, String>(&mut &bytes[..]).await.unwrap_err();
            assert!(matches!(err, ProtoError::Foreign(_)), "{err}");
            assert!(err.to_string().contains(hint), "{err}");
        }
    }

    #[tokio::test]
    async fn abort_marker_is_reported() {
        let mut buf = Vec::new();
        write_body_abort(&mut buf).await.unwrap();
        let err = BodyReader::new().next(&mut &buf[..]).await.unwrap_err();
        assert!(matches!(err, ProtoError::BodyAborted));
    }
}
