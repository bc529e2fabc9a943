//! Reading blobs: records, presence checks, and verified readers over a
//! range of a blob, packed or in a file of its own.

use std::fs::File;
use std::sync::Arc;

use cairn_proto::FileId;

use super::{stripe, Store};
use crate::error::{Error, Result};
use crate::layout::StorePath;
use crate::reader::BlobReader;
use crate::record::BlobRecord;

impl Store {
    /// The record of a blob.
    pub fn record(&self, id: &FileId) -> Result<BlobRecord> {
        let sp = self.place(id)?;
        let _g = self.lock(id).read().unwrap_or_else(|p| p.into_inner());
        self.load_record(sp, id)
    }

    pub(super) fn load_record(&self, sp: &StorePath, id: &FileId) -> Result<BlobRecord> {
        if let Some(packs) = self.packs_of(id) {
            if let Some((_, _, record)) = packs.open_blob(&id.to_string())? {
                return Ok(record);
            }
        }
        let rec =
            BlobRecord::load(&sp.record_path(id), &id.to_string())?.ok_or_else(|| Error::NotFound(id.to_string()))?;
        Ok(rec)
    }

    /// True when the blob's content or its record is here (even one
    /// without the other: a damaged blob).
    pub fn contains_any(&self, id: &FileId) -> bool {
        self.is_packed(id)
            || self.place(id).map(|sp| sp.record_path(id).exists() || sp.blob_path(id).exists()).unwrap_or(false)
    }

    /// Whether the blob is in a pack here (from memory: no disk access).
    pub fn is_packed(&self, id: &FileId) -> bool {
        id.group() == self.group && self.packs_of(id).is_some_and(|p| p.locate(&id.to_string()).is_some())
    }

    /// True when the blob is here.
    pub fn contains(&self, id: &FileId) -> bool {
        self.is_packed(id)
            || self.place(id).map(|sp| sp.record_path(id).exists() && sp.blob_path(id).exists()).unwrap_or(false)
    }

    /// Opens a verified reader over `[offset, offset + length)`, the length
    /// clamped to the end of the blob.
    pub fn read(&self, id: &FileId, offset: u64, length: Option<u64>) -> Result<BlobReader> {
        let sp = self.place(id)?;
        let packed = match self.packs_of(id) {
            Some(packs) => packs.open_blob(&id.to_string())?,
            None => None,
        };
        let (file, base, record) = match packed {
            Some((file, loc, record)) => (file, loc.content_at(), record),
            None => {
                let _g = self.lock(id).read().unwrap_or_else(|p| p.into_inner());
                let record = self.load_record(sp, id)?;
                let path = sp.blob_path(id);
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound(id.to_string())),
                    Err(e) => return Err(Error::io(&path)(e)),
                };
                (Arc::new(file), 0, record)
            }
        };
        if offset > record.size {
            return Err(Error::InvalidArgument(format!(
                "offset {offset} is past the end of {id} ({} bytes)",
                record.size
            )));
        }
        let end = match length {
            Some(l) => offset.saturating_add(l).min(record.size),
            None => record.size,
        };
        let lock = record.appender.then(|| (self.locks.clone(), stripe(id)));
        Ok(BlobReader {
            file,
            base,
            file_id: id.to_string(),
            record_path: sp.record_path(id),
            record,
            pos: offset,
            end,
            lock,
        })
    }
}
