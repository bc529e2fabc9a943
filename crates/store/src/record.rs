//! The record kept beside each blob.
//!
//! On disk: the magic `CRNR`, a format version byte, the postcard encoding of
//! [`BlobRecord`], and a CRC32 of everything before it, so a torn or
//! scribbled record is detected rather than trusted.

use std::path::Path;

use cairn_proto::{BlobInfo, Metadata};
use serde::{Deserialize, Serialize};

use crate::checksum;
use crate::error::{Error, Result};
use crate::layout::write_durably;

const MAGIC: &[u8; 4] = b"CRNR";
const VERSION: u8 = 1;
/// Records hold 4 bytes per 64 KiB block: 1 MiB covers 16 GiB of content,
/// plus metadata. Anything larger is garbage.
const MAX_RECORD: u64 = 8 << 20;

/// Everything known about a blob besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    /// Current size in bytes.
    pub size: u64,
    /// CRC32 of the current content.
    pub crc32: u32,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Node that created the blob.
    pub source_node: u32,
    /// Whether the blob takes appends.
    pub appender: bool,
    /// CRC32 of each 64 KiB block.
    pub blocks: Vec<u32>,
    /// Metadata, sorted by key.
    pub meta: Metadata,
}

impl BlobRecord {
    /// The facts clients see.
    pub fn info(&self) -> BlobInfo {
        BlobInfo {
            size: self.size,
            crc32: self.crc32,
            created: self.created,
            source_node: self.source_node,
            appender: self.appender,
        }
    }

    /// Re-derives the whole CRC from the block CRCs after a change.
    pub fn refresh_crc(&mut self) {
        self.crc32 = checksum::combine(&self.blocks, self.size);
    }

    /// Encodes for disk.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.blocks.len() * 5);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        // Encoding a plain struct into a Vec cannot fail.
        out.extend_from_slice(&postcard::to_allocvec(self).unwrap_or_default());
        let crc = checksum::crc32(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes from disk bytes.
    pub fn decode(bytes: &[u8], file_id: &str) -> Result<Self> {
        let corrupt = |reason: &str| Error::CorruptRecord { file_id: file_id.to_string(), reason: reason.to_string() };
        if bytes.len() < MAGIC.len() + 1 + 4 || &bytes[..4] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        if bytes[4] != VERSION {
            return Err(corrupt("unknown record version"));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        if checksum::crc32(body).to_be_bytes() != tail {
            return Err(corrupt("record checksum mismatch"));
        }
        let rec: BlobRecord = postcard::from_bytes(&body[5..]).map_err(|e| corrupt(&e.to_string()))?;
        if rec.blocks.len() != checksum::block_count(rec.size) {
            return Err(corrupt("block count does not match size"));
        }
        Ok(rec)
    }

    /// Reads a record; `Ok(None)` when there is none.
    pub fn load(path: &Path, file_id: &str) -> Result<Option<Self>> {
        let len = match std::fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path)(e)),
        };
        if len > MAX_RECORD {
            return Err(Error::CorruptRecord {
                file_id: file_id.to_string(),
                reason: format!("record of {len} bytes"),
            });
        }
        match std::fs::read(path) {
            Ok(bytes) => Self::decode(&bytes, file_id).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path)(e)),
        }
    }

    /// Writes a record atomically and durably.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_durably(path, &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_detect_damage() {
        let rec = BlobRecord {
            size: 70_000,
            crc32: 5,
            created: 1,
            source_node: 100_001,
            appender: true,
            blocks: vec![1, 2],
            meta: vec![("k".into(), "v".into())],
        };
        let bytes = rec.encode();
        assert_eq!(BlobRecord::decode(&bytes, "x").unwrap(), rec);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(BlobRecord::decode(&bad, "x").is_err(), "flip at {i} went unnoticed");
        }
        assert!(BlobRecord::decode(&bytes[..bytes.len() - 1], "x").is_err());
    }
}

#[cfg(test)]
mod fuzz {
    use rand::{Rng, RngCore};

    use super::*;

    #[test]
    fn random_records_never_panic() {
        let mut rng = rand::thread_rng();
        let valid = BlobRecord {
            size: 5,
            crc32: 1,
            created: 2,
            source_node: 3,
            appender: false,
            blocks: vec![9],
            meta: vec![("a".into(), "b".into())],
        }
        .encode();
        for i in 0..20_000 {
            let mut b = if i % 2 == 0 { valid.clone() } else { vec![0u8; rng.gen_range(0..80)] };
            if i % 2 == 1 {
                rng.fill_bytes(&mut b);
                if b.len() > 5 {
                    b[..5].copy_from_slice(b"CRNR\x01");
                }
            } else {
                let n = rng.gen_range(5..b.len());
                b[n] = rng.gen();
                // re-seal so the body, not just the checksum, is exercised
                let len = b.len();
                let crc = crate::checksum::crc32(&b[..len - 4]);
                b[len - 4..].copy_from_slice(&crc.to_be_bytes());
            }
            let _ = BlobRecord::decode(&b, "x");
        }
    }
}
