//! Sending a blob's blocks from the page cache to a socket without copying
//! them through this process (`sendfile`), for clients that check the
//! blocks' CRCs themselves ([`cairn_proto::Request::DownloadBlocks`]).
//!
//! The whole answer (its frame, the chunks, the end of the body) goes out
//! on a blocking thread through a duplicate of the connection's socket:
//! `sendfile` reads the file, and a page not in memory is a disk read that
//! would otherwise stall an async worker and every connection on it. The
//! socket is corked meanwhile, so the frame and the chunk lengths leave in
//! the same packets as the bytes around them instead of waking the client
//! on their own. It stays non-blocking: a full send buffer is waited out
//! with `poll`, bounded by [`SEND_STALL`].

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use cairn_proto::frame::SEND_CHUNK;
use cairn_proto::{Conn, ProtoError};
use cairn_store::RawBlocks;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::SendFlags;
use tokio::io::AsyncWriteExt;

/// How far past the chunk being sent the kernel is asked to read.
const READ_AHEAD: u64 = 4 * SEND_CHUNK as u64;

/// How long a peer may leave its receive buffer full before the send gives up.
const SEND_STALL: Duration = Duration::from_secs(30);

// A body chunk holds whole checksum blocks.
const _: () = assert!((SEND_CHUNK as u64).is_multiple_of(cairn_store::BLOCK_SIZE));

/// Sends `frame` (an encoded control frame), then `blocks` as a body of
/// chunks of whole blocks, and the end of the body. An error may leave the
/// connection in the middle of a chunk: the caller must close it.
pub(crate) async fn send_blocks(conn: &mut Conn, frame: Vec<u8>, blocks: RawBlocks) -> Result<(), ProtoError> {
    conn.flush().await?;
    let socket = conn.get_ref().as_fd().try_clone_to_owned()?;
    let sent = tokio::task::spawn_blocking(move || {
        rustix::net::sockopt::set_tcp_cork(&socket, true)?;
        let sent = send_body(&socket, frame, &blocks);
        // Uncorking pushes out what is queued; after a failure the
        // connection is dropped anyway.
        let uncorked = rustix::net::sockopt::set_tcp_cork(&socket, false);
        sent?;
        uncorked.map_err(io::Error::from)
    })
    .await;
    match sent {
        Ok(sent) => sent.map_err(ProtoError::Io),
        Err(e) => Err(ProtoError::Io(io::Error::other(format!("send task failed: {e}")))),
    }
}

fn send_body(socket: &OwnedFd, mut head: Vec<u8>, blocks: &RawBlocks) -> io::Result<()> {
    let mut at = blocks.file_offset;
    let mut left = blocks.length;
    let end = at + left;
    let mut advised = at;
    while left > 0 {
        let n = left.min(SEND_CHUNK as u64) as usize;
        // `sendfile` reads a cold file in small steps (a fresh open has no
        // read-ahead history): ask for this chunk and a few after it in one
        // go, so the disk reads ahead of the socket (advice only: a failure
        // changes nothing).
        let want = (at + READ_AHEAD).min(end);
        if want > advised {
            let _ = rustix::fs::fadvise(&*blocks.file, advised, want - advised, rustix::fs::Advice::WillNeed);
            advised = want;
        }
        head.extend_from_slice(&(n as u32).to_be_bytes());
        send_all(socket, &head)?;
        head.clear();
        let mut offset = at;
        let mut rest = n;
        while rest > 0 {
            match rustix::fs::sendfile(socket, &*blocks.file, Some(&mut offset), rest) {
                Ok(0) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob file ends before its record says"))
                }
                Ok(k) => rest -= k,
                Err(Errno::AGAIN) => wait_writable(socket)?,
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        at += n as u64;
        left -= n as u64;
    }
    head.extend_from_slice(&0u32.to_be_bytes());
    send_all(socket, &head)
}

fn send_all(socket: &OwnedFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::net::send(socket, bytes, SendFlags::NOSIGNAL) {
            Ok(k) => bytes = &bytes[k..],
            Err(Errno::AGAIN) => wait_writable(socket)?,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn wait_writable(socket: &OwnedFd) -> io::Result<()> {
    let mut fds = [PollFd::new(socket, PollFlags::OUT)];
    loop {
        match rustix::event::poll(&mut fds, SEND_STALL.as_millis() as i32) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading")),
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
