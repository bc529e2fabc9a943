//! Verified reads.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use std::os::unix::fs::FileExt as _;

use cairn_proto::ChunkBuf;

use crate::checksum::{self, BLOCK_SIZE};
use crate::error::{Error, Result};
use crate::record::BlobRecord;

/// How much one call to [`BlobReader::next_chunk`] reads: 16 blocks.
const READ_CHUNK: u64 = 16 * BLOCK_SIZE;
// A full chunk fits one pooled buffer.
const _: () = assert!(READ_CHUNK as usize == cairn_proto::buffers::POOLED_SIZE);
/// How far ahead of the chunk being read the kernel is asked to read.
const READ_AHEAD: u64 = 4 * READ_CHUNK;

/// Reads a range of a blob in chunks, checking every block against its CRC
/// before handing out any byte of it.
#[derive(Debug)]
pub struct BlobReader {
    pub(crate) file: Arc<File>,
    /// Where the blob's content starts in `file` (non-zero in a pack).
    pub(crate) base: u64,
    pub(crate) file_id: String,
    pub(crate) record: BlobRecord,
    pub(crate) record_path: PathBuf,
    pub(crate) pos: u64,
    pub(crate) end: u64,
    /// Appender blobs change under readers: each chunk is read under the
    /// blob's lock with the record as it is at that moment.
    pub(crate) lock: Option<(Arc<Vec<RwLock<()>>>, usize)>,
}

/// The checksum blocks that cover a range of a blob, for a reader that
/// checks them itself: where they lie in which file, and their CRCs.
#[derive(Debug)]
pub struct RawBlocks {
    /// The file holding the blob (a pack or the blob's own file).
    pub file: Arc<File>,
    /// Where the first block starts in `file`.
    pub file_offset: u64,
    /// Offset in the blob of the first block: a multiple of [`BLOCK_SIZE`].
    pub start: u64,
    /// Bytes of the blocks (the blob's last block may be short).
    pub length: u64,
    /// The blob's size.
    pub size: u64,
    /// CRC-32 of each block, in order.
    pub crcs: Vec<u32>,
}

impl BlobReader {
    /// The blocks that cover what is left of the range, at most
    /// `max_blocks` of them, to be sent unchecked to a reader that checks
    /// them. `None` for an appender blob, whose blocks and CRCs change under
    /// readers, and for a record that lacks CRCs for the range (the checked
    /// read reports that one).
    pub fn raw_blocks(&self, max_blocks: usize) -> Option<RawBlocks> {
        if self.lock.is_some() {
            return None;
        }
        let first = self.pos / BLOCK_SIZE;
        let last =
            if self.pos >= self.end { first } else { self.end.div_ceil(BLOCK_SIZE).min(first + max_blocks as u64) };
        let crcs = self.record.blocks.get(first as usize..last as usize)?.to_vec();
        let start = first * BLOCK_SIZE;
        let length = (last * BLOCK_SIZE).min(self.record.size).saturating_sub(start);
        Some(RawBlocks {
            file: self.file.clone(),
            file_offset: self.base + start,
            start,
            length,
            size: self.record.size,
            crcs,
        })
    }

    /// Bytes left to return.
    pub fn remaining(&self) -> u64 {
        self.end - self.pos
    }

    /// The blob's record as of opening.
    pub fn record(&self) -> &BlobRecord {
        &self.record
    }

    /// The next verified chunk of the range, or `None` at its end. Chunks
    /// of a large read come in reused buffers (see [`ChunkBuf`]).
    pub fn next_chunk(&mut self) -> Result<Option<ChunkBuf>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let lock = self.lock.clone();
        let _guard = match &lock {
            Some((locks, i)) => {
                let g = locks[*i].read().unwrap_or_else(|p| p.into_inner());
                self.record = BlobRecord::load(&self.record_path, &self.file_id)?
                    .ok_or_else(|| Error::NotFound(self.file_id.clone()))?;
                Some(g)
            }
            None => None,
        };
        if self.record.size < self.end {
            return Err(Error::InvalidArgument(format!("{} shrank while being read", self.file_id)));
        }
        let block_start = self.pos / BLOCK_SIZE * BLOCK_SIZE;
        let block_end =
            (block_start + READ_CHUNK).min(self.end.div_ceil(BLOCK_SIZE) * BLOCK_SIZE).min(self.record.size);
        // Ask the kernel to start reading the chunks after this one while
        // this one is checked and sent (advice only: a failure changes
        // nothing), so a cold read keeps the disk busy.
        if block_end < self.end {
            let ahead = (self.end - block_end).min(READ_AHEAD);
            let _ = rustix::fs::fadvise(&*self.file, self.base + block_end, ahead, rustix::fs::Advice::WillNeed);
        }
        let mut buf = ChunkBuf::new((block_end - block_start) as usize);
        read_exact_at(&self.file, &mut buf, self.base + block_start).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                Error::ChecksumMismatch { file_id: self.file_id.clone(), offset: block_start }
            }
            _ => Error::Io { path: self.record_path.clone(), error: e },
        })?;
        for (i, block) in buf.chunks(BLOCK_SIZE as usize).enumerate() {
            let index = (block_start / BLOCK_SIZE) as usize + i;
            let expected = self.record.blocks.get(index).copied();
            if expected != Some(checksum::crc32(block)) {
                return Err(Error::ChecksumMismatch {
                    file_id: self.file_id.clone(),
                    offset: index as u64 * BLOCK_SIZE,
                });
            }
        }
        let from = (self.pos - block_start) as usize;
        let to = (self.end.min(block_end) - block_start) as usize;
        self.pos = block_start + to as u64;
        buf.narrow(from, to);
        Ok(Some(buf))
    }
}

fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
