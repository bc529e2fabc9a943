//! Reads: downloads, file info, metadata. Reads need no tracker, so a node
//! keeps serving them while every tracker is down.

use cairn_proto::frame::{encode_frame, write_body_abort, write_body_end, write_chunk, write_frame};
use cairn_proto::{Conn, ProtoError, Response};
use cairn_store::{BlobReader, RawBlocks};
use tokio::io::AsyncWriteExt;
use tracing::{debug, error};

use crate::error::wire;
use crate::node::{blocking, parse_id, Node};

/// Chunks read ahead of the socket during a download.
const READ_AHEAD: usize = 4;

/// Most checksum blocks one [`Response::Blocks`] reply carries (64 MiB of
/// 64 KiB blocks, 4 KiB of CRCs); the client asks again for the rest.
const MAX_BLOCKS_PER_REPLY: usize = 1024;
/// Fewer bytes than this are sent checked even when blocks are asked for
/// (a whole small blob): copying a few pages costs less than the second
/// hand-off to a blocking thread that `sendfile` takes.
const SENDFILE_MIN: u64 = 256 * 1024;

/// Streams a verified range of a blob. A checksum failure midway aborts the
/// body and sends the error, so the client never takes bad bytes for good
/// ones and can go to another member.
pub async fn download(
    node: &Node,
    conn: &mut Conn,
    file_id: &str,
    offset: u64,
    length: Option<u64>,
) -> Result<(), ProtoError> {
    let id = parse_id(file_id)?;
    let store = node.store.clone();
    let read_id = id.clone();
    // The first chunk is read with the opening, on the same blocking
    // thread: a small read (most are) then needs no streaming task.
    let (reader, first) = blocking(move || {
        store.read(&read_id, offset, length).map(|mut r| {
            let first = r.next_chunk();
            (r, first)
        })
    })
    .await?;
    send_checked(node, conn, id, reader, first).await
}

/// Sends the blocks covering a range unchecked, from the page cache with
/// `sendfile`, with their CRCs for the client to check; an appender blob is
/// sent checked, as [`download`] does.
pub async fn download_blocks(
    node: &Node,
    conn: &mut Conn,
    file_id: &str,
    offset: u64,
    length: Option<u64>,
) -> Result<(), ProtoError> {
    enum Opened {
        Raw(RawBlocks),
        Checked(BlobReader, cairn_store::Result<Option<cairn_proto::ChunkBuf>>),
    }
    let id = parse_id(file_id)?;
    let store = node.store.clone();
    let read_id = id.clone();
    let opened = blocking(move || {
        let mut reader = store.read(&read_id, offset, length)?;
        // A file shorter than its record says is damage the checked read
        // reports (and has repaired); sendfile would only stop short.
        if let Some(raw) = reader.raw_blocks(MAX_BLOCKS_PER_REPLY).filter(|r| r.length >= SENDFILE_MIN) {
            let on_disk = raw.file.metadata().map(|m| m.len()).unwrap_or(0);
            if on_disk >= raw.file_offset + raw.length {
                return Ok(Opened::Raw(raw));
            }
        }
        let first = reader.next_chunk();
        Ok(Opened::Checked(reader, first))
    })
    .await?;
    let raw = match opened {
        Opened::Raw(raw) => raw,
        Opened::Checked(reader, first) => return send_checked(node, conn, id, reader, first).await,
    };
    let block_size = cairn_store::BLOCK_SIZE as u32;
    let frame = encode_frame(&Response::Blocks {
        start: raw.start,
        length: raw.length,
        size: raw.size,
        block_size,
        crcs: raw.crcs.clone(),
    })?;
    crate::sendfile::send_blocks(conn, frame, raw).await.inspect_err(|e| {
        // The body may stop inside a chunk: the connection is closed, and
        // the client takes the rest from another member. A client that
        // closed first (it read all it wanted) is routine.
        if e.is_peer_gone() {
            debug!(file_id = %id, error = %e, "the client closed the connection during a download");
        } else {
            error!(file_id = %id, error = %e, "sending blocks failed; connection closed");
        }
    })
}

/// Sends a range read by `reader`, whose first chunk was read already.
async fn send_checked(
    node: &Node,
    conn: &mut Conn,
    id: cairn_proto::FileId,
    reader: BlobReader,
    first: cairn_store::Result<Option<cairn_proto::ChunkBuf>>,
) -> Result<(), ProtoError> {
    let first = match first {
        Ok(chunk) => chunk,
        Err(e) => {
            // Nothing sent yet: a plain error, and the client asks another member.
            damaged(node, &id, &e);
            return Err(crate::error::remote(e));
        }
    };
    write_frame(conn, &Response::Data { length: reader.remaining() + first.as_ref().map_or(0, |c| c.len() as u64) })
        .await?;
    if let Some(chunk) = first {
        write_chunk(conn, &chunk).await?;
    }
    if reader.remaining() == 0 {
        return write_body_end(conn).await;
    }
    stream(node, conn, id, reader).await
}

/// Queues a repair of a blob whose read found it damaged.
pub(crate) fn damaged(node: &Node, id: &cairn_proto::FileId, e: &cairn_store::Error) {
    if matches!(e, cairn_store::Error::ChecksumMismatch { .. } | cairn_store::Error::CorruptRecord { .. }) {
        if let Some(me) = node.arc() {
            crate::scrub::queue_repair(&me, id.clone());
        }
    }
}

/// A whole blob with its record, for a peer's catch-up or repair.
pub async fn fetch_blob(node: &Node, conn: &mut Conn, file_id: &str) -> Result<(), ProtoError> {
    let id = parse_id(file_id)?;
    let store = node.store.clone();
    let read_id = id.clone();
    let reader = blocking(move || store.read(&read_id, 0, None)).await?;
    let rec = reader.record();
    write_frame(conn, &Response::Blob { info: rec.info(), meta: rec.meta.clone() }).await?;
    stream(node, conn, id, reader).await
}

/// Streams a reader as a body, reading ahead on a blocking thread.
async fn stream(
    node: &Node,
    conn: &mut Conn,
    id: cairn_proto::FileId,
    mut reader: BlobReader,
) -> Result<(), ProtoError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || loop {
        let item = reader.next_chunk();
        let last = !matches!(item, Ok(Some(_)));
        if tx.blocking_send(item).is_err() || last {
            return;
        }
    });
    while let Some(item) = rx.recv().await {
        match item {
            Ok(Some(chunk)) => write_chunk(conn, &chunk).await?,
            Ok(None) => break,
            Err(e) => {
                error!(file_id = %id, error = %e, "read failed; download aborted");
                damaged(node, &id, &e);
                write_body_abort(conn).await?;
                write_frame(conn, &Response::Error(wire(e))).await?;
                conn.flush().await?;
                return Ok(());
            }
        }
    }
    write_body_end(conn).await
}

/// Size, CRC32, creation facts.
pub async fn file_info(node: &Node, conn: &mut Conn, file_id: &str) -> Result<(), ProtoError> {
    let id = parse_id(file_id)?;
    let store = node.store.clone();
    let rec = blocking(move || store.record(&id)).await?;
    write_frame(conn, &Response::Info(rec.info())).await
}

/// Metadata pairs, sorted by key.
pub async fn get_meta(node: &Node, conn: &mut Conn, file_id: &str) -> Result<(), ProtoError> {
    let id = parse_id(file_id)?;
    let store = node.store.clone();
    let rec = blocking(move || store.record(&id)).await?;
    write_frame(conn, &Response::Meta(rec.meta)).await
}
