//! Changing appender blobs in place: append, modify and truncate, each
//! re-deriving the block checksums of what it touched.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::atomic::Ordering;

use cairn_proto::FileId;

use super::Store;
use crate::binlog::{BinlogOp, Origin};
use crate::checksum::{self, BLOCK_SIZE};
use crate::error::{Error, Result};
use crate::layout::StorePath;
use crate::record::BlobRecord;
use crate::spool::Spooled;

impl Store {
    fn appender_record(&self, sp: &StorePath, id: &FileId) -> Result<BlobRecord> {
        let rec = self.load_record(sp, id)?;
        if !rec.appender {
            return Err(Error::NotAppender(id.to_string()));
        }
        Ok(rec)
    }

    /// Appends a spool's content. `expect_at` is the size the primary saw
    /// before its own append; a replica at another size is out of sync
    /// (unless it already applied this very append). Returns the offset the
    /// data landed at.
    pub fn append(&self, id: &FileId, spooled: Spooled, expect_at: Option<u64>, origin: Origin) -> Result<u64> {
        let sp = self.place(id)?;
        let at = {
            let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
            let mut rec = self.appender_record(sp, id)?;
            if let Some(at) = expect_at {
                if rec.size == at + spooled.size && spooled.size > 0 {
                    return Ok(at);
                }
                if rec.size != at {
                    return Err(Error::OutOfSync(format!("{id}: size is {}, primary appended at {at}", rec.size)));
                }
            }
            let at = rec.size;
            self.log_before(BinlogOp::Append, origin, id, Some(at))?;
            self.write_into(sp, id, &mut rec, &spooled, at)?;
            at
        };
        self.bytes.fetch_add(spooled.size, Ordering::Relaxed);
        self.log_after(BinlogOp::Append, origin, id, Some(at))?;
        Ok(at)
    }

    /// Overwrites part of an appender blob with a spool's content, growing it
    /// if the data runs past the end. `offset` may not exceed the size.
    pub fn modify(&self, id: &FileId, offset: u64, spooled: Spooled, origin: Origin) -> Result<()> {
        let sp = self.place(id)?;
        {
            let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
            let mut rec = self.appender_record(sp, id)?;
            if offset > rec.size {
                return Err(Error::InvalidArgument(format!(
                    "offset {offset} is past the end of {id} ({} bytes)",
                    rec.size
                )));
            }
            self.log_before(BinlogOp::Modify, origin, id, Some(offset))?;
            self.write_into(sp, id, &mut rec, &spooled, offset)?;
        }
        self.log_after(BinlogOp::Modify, origin, id, Some(offset))
    }

    /// Writes spool content into a blob at `offset`, fsyncs, and re-derives
    /// the checksums of the blocks it touched. Caller holds the write lock.
    fn write_into(
        &self,
        sp: &StorePath,
        id: &FileId,
        rec: &mut BlobRecord,
        spooled: &Spooled,
        offset: u64,
    ) -> Result<()> {
        let path = sp.blob_path(id);
        let mut blob = OpenOptions::new().read(true).write(true).open(&path).map_err(Error::io(&path))?;
        blob.seek(SeekFrom::Start(offset)).map_err(Error::io(&path))?;
        if let Some(bytes) = spooled.bytes() {
            blob.write_all(bytes).map_err(Error::io(&path))?;
        } else {
            let src_path = spooled.path()?;
            let mut src = File::open(src_path).map_err(Error::io(src_path))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = src.read(&mut buf).map_err(Error::io(src_path))?;
                if n == 0 {
                    break;
                }
                blob.write_all(&buf[..n]).map_err(Error::io(&path))?;
            }
        }
        blob.sync_data().map_err(Error::io(&path))?;
        let new_size = rec.size.max(offset + spooled.size);
        let first = offset / BLOCK_SIZE;
        // Blocks from the one holding `offset` up to the end of the new data
        // changed; when the blob grew, the old last (partial) block is in
        // that span because offset <= old size.
        let last = (offset + spooled.size).div_ceil(BLOCK_SIZE);
        rec.size = new_size;
        resum_blocks(&blob, &path, rec, first, last)?;
        rec.save(&sp.record_path(id))
    }

    /// Cuts or extends (with zeros) an appender blob.
    pub fn truncate(&self, id: &FileId, size: u64, origin: Origin) -> Result<()> {
        let sp = self.place(id)?;
        {
            let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
            let mut rec = self.appender_record(sp, id)?;
            self.log_before(BinlogOp::Truncate, origin, id, Some(size))?;
            if rec.size != size {
                let path = sp.blob_path(id);
                let blob = OpenOptions::new().read(true).write(true).open(&path).map_err(Error::io(&path))?;
                blob.set_len(size).map_err(Error::io(&path))?;
                blob.sync_all().map_err(Error::io(&path))?;
                let first = rec.size.min(size) / BLOCK_SIZE;
                rec.size = size;
                let last = checksum::block_count(size) as u64;
                resum_blocks(&blob, &path, &mut rec, first, last)?;
                rec.save(&sp.record_path(id))?;
            }
        }
        self.log_after(BinlogOp::Truncate, origin, id, Some(size))
    }
}

/// Recomputes block CRCs `[first, last)` from the blob file, drops blocks
/// beyond the size, and refreshes the whole CRC.
fn resum_blocks(blob: &File, path: &Path, rec: &mut BlobRecord, first: u64, last: u64) -> Result<()> {
    let count = checksum::block_count(rec.size);
    rec.blocks.resize(count, 0);
    let last = last.min(count as u64);
    let mut buf = vec![0u8; BLOCK_SIZE as usize];
    for b in first..last {
        let start = b * BLOCK_SIZE;
        let len = BLOCK_SIZE.min(rec.size - start) as usize;
        blob.read_exact_at(&mut buf[..len], start).map_err(Error::io(path))?;
        rec.blocks[b as usize] = checksum::crc32(&buf[..len]);
    }
    rec.refresh_crc();
    Ok(())
}
