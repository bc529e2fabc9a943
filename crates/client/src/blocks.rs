//! Reads of whole checksum blocks that the node sends unchecked
//! ([`Request::DownloadBlocks`](cairn_proto::Request::DownloadBlocks)):
//! every block is checked against its CRC here before any byte of it goes
//! to the caller, so the node can send from its page cache without copying.

use cairn_proto::frame::BodyReader;
use cairn_proto::{Conn, ProtoError, MAX_CHUNK};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Reads shorter than this ask the node to check the bytes (it then sends
/// only those asked, not the whole blocks around them); longer ones ask for
/// blocks, which cost the node no copy.
pub(crate) const BLOCKS_MIN_READ: u64 = 256 * 1024;

/// Smallest checksum block accepted from a node.
const MIN_BLOCK: u32 = 512;

/// Why reading a blocks body stopped.
#[derive(Debug)]
pub(crate) enum BlocksError {
    /// The connection failed or the node broke the protocol.
    Conn(ProtoError),
    /// The block at this offset of the blob does not match its CRC.
    Damaged {
        /// Offset of the block in the blob.
        offset: u64,
    },
    /// The caller's sink failed.
    Output(std::io::Error),
}

/// A [`cairn_proto::Response::Blocks`] reply, checked for sense.
#[derive(Debug)]
pub(crate) struct BlocksReply {
    start: u64,
    sent: u64,
    block_size: u64,
    crcs: Vec<u32>,
    /// The part of the blocks the caller wants, as offsets in the blob.
    from: u64,
    to: u64,
    /// Where the range asked ends (the blob's end at most).
    wanted_end: u64,
}

impl BlocksReply {
    /// Checks a reply to a request for `len` bytes (or all) from `at`.
    pub(crate) fn check(
        at: u64,
        len: Option<u64>,
        start: u64,
        sent: u64,
        size: u64,
        block_size: u32,
        crcs: Vec<u32>,
    ) -> Result<Self, ProtoError> {
        let bad = |what: &str| Err(ProtoError::Malformed(format!("blocks reply: {what}")));
        if !block_size.is_power_of_two() || !(MIN_BLOCK..=MAX_CHUNK).contains(&block_size) {
            return bad("block size");
        }
        let block = u64::from(block_size);
        let Some(end) = start.checked_add(sent) else { return bad("length") };
        if !start.is_multiple_of(block) || start > at || at > size || end > size {
            return bad("range");
        }
        if crcs.len() as u64 != sent.div_ceil(block) {
            return bad("number of CRCs");
        }
        let wanted_end = len.map_or(size, |l| at.saturating_add(l).min(size));
        if wanted_end > at && end <= at {
            return bad("no byte of the range");
        }
        Ok(Self { start, sent, block_size: block, crcs, from: at, to: end.min(wanted_end), wanted_end })
    }

    /// Whether this reply covers the rest of the range asked.
    pub(crate) fn reaches_end(&self) -> bool {
        self.start + self.sent >= self.wanted_end
    }

    /// Reads the body, checks every block and writes the wanted part of
    /// the good ones to `sink`, counting it in `written`.
    pub(crate) async fn take<W: AsyncWrite + Unpin>(
        &self,
        conn: &mut Conn,
        sink: &mut W,
        written: &mut u64,
    ) -> Result<(), BlocksError> {
        let end = self.start + self.sent;
        let mut body = BodyReader::new();
        let mut pos = self.start;
        while let Some(chunk) = body.next(conn).await.map_err(BlocksError::Conn)? {
            let chunk_end = pos + chunk.len() as u64;
            if chunk_end > end || (chunk_end < end && !(chunk.len() as u64).is_multiple_of(self.block_size)) {
                return Err(BlocksError::Conn(ProtoError::Malformed("blocks body: a chunk of part of a block".into())));
            }
            let first = ((pos - self.start) / self.block_size) as usize;
            for (i, block) in chunk.chunks(self.block_size as usize).enumerate() {
                if self.crcs.get(first + i) != Some(&crc32fast::hash(block)) {
                    return Err(BlocksError::Damaged { offset: pos + i as u64 * self.block_size });
                }
            }
            let (a, b) = (pos.max(self.from), chunk_end.min(self.to));
            if a < b {
                sink.write_all(&chunk[(a - pos) as usize..(b - pos) as usize]).await.map_err(BlocksError::Output)?;
                *written += b - a;
            }
            pos = chunk_end;
        }
        if pos != end {
            return Err(BlocksError::Conn(ProtoError::Malformed(format!(
                "blocks body: announced {} bytes, sent {}",
                self.sent,
                pos - self.start
            ))));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K64: u32 = 64 * 1024;

    #[test]
    fn replies_that_make_no_sense_are_refused() {
        // A start that is not a block boundary, or past the offset asked.
        assert!(BlocksReply::check(100, None, 10, 1000, 2000, K64, vec![0]).is_err());
        assert!(BlocksReply::check(100, None, 65536, 1000, 70000, K64, vec![0]).is_err());
        // Too few or too many CRCs for the bytes.
        assert!(BlocksReply::check(0, None, 0, 65537, 70000, K64, vec![0]).is_err());
        assert!(BlocksReply::check(0, None, 0, 10, 70000, K64, vec![0, 0]).is_err());
        // Past the blob's end; a block size that is no size.
        assert!(BlocksReply::check(0, None, 0, 100, 50, K64, vec![0]).is_err());
        assert!(BlocksReply::check(0, None, 0, 100, 100, 3, vec![0]).is_err());
        // Nothing of a range that is not empty (the client would ask forever).
        assert!(BlocksReply::check(65536, Some(10), 0, 0, 70000, K64, vec![]).is_err());
        // A sensible one, and an empty range at the end.
        let r = BlocksReply::check(70_000, Some(10), 65536, 4464, 70000, K64, vec![0]).unwrap();
        assert!(r.reaches_end());
        assert!(BlocksReply::check(70_000, None, 65536, 4464, 70000, K64, vec![0]).unwrap().reaches_end());
        // A reply that stops short: the client asks again.
        let r = BlocksReply::check(0, None, 0, 65536, 200_000, K64, vec![0]).unwrap();
        assert!(!r.reaches_end());
    }
}
