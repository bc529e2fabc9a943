//! The meta engine's redo log (`meta.log` beside `meta.redb`): what makes
//! a batch of operations durable between two durable commits of the redb
//! file.
//!
//! A durable redb commit rewrites about ten scattered 4 KiB pages and
//! fsyncs them: 420–450 µs on this project's test machine, against
//! 110–160 µs to append a few hundred bytes to a log and `fdatasync` it
//! (docs/perf.md). So most batches are appended here, synced, and then
//! committed to redb without an fsync; every so often one is committed
//! durably (a checkpoint), after which the log starts over. After a crash,
//! redb opens at its last durable commit and the records after it are
//! applied again.
//!
//! A record holds the key-value writes a batch made, not the operations:
//! replaying them needs no namespace logic and gives the same bytes. Its
//! layout (little-endian):
//!
//! ```text
//! kind u8 (1 batch, 2 cancel) | seq u64 | payload length u32 | crc32 u32 | payload
//! payload of a batch: count u32, then per write:
//!     key length u32 | key | 0 (delete) or 1 (put) | [value length u32 | value]
//! ```
//!
//! The CRC-32 covers the 13 bytes before it and the payload. A record that
//! is cut short or fails its CRC ends the log: it was being written when
//! the process died, and nobody was told it was committed. A *cancel*
//! names a batch whose redb commit failed after its record was synced: its
//! callers were told it failed, so it must not come back.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::Path;

use crate::error::{MetaError, Result};

/// One key's new value, or `None` for a delete.
pub(crate) type KvChange = (Vec<u8>, Option<Vec<u8>>);

const KIND_BATCH: u8 = 1;
const KIND_CANCEL: u8 = 2;
const HEAD: usize = 1 + 8 + 4 + 4;

fn log_err(what: &str, e: std::io::Error) -> MetaError {
    MetaError::Engine(format!("redo log: {what}: {e}"))
}

/// The open log, appended to by the committing writer only.
pub(crate) struct RedoLog {
    file: File,
    /// Bytes written since the last reset.
    len: u64,
}

/// What a log held when it was opened: the batches to apply again, in
/// order, without the cancelled ones.
pub(crate) struct Replay {
    pub batches: Vec<(u64, Vec<KvChange>)>,
    /// The highest sequence number seen, cancelled or not.
    pub last_seq: u64,
}

impl RedoLog {
    /// Opens (or creates) the log and reads what it holds.
    pub(crate) fn open(path: &Path) -> Result<(Self, Replay)> {
        let file =
            OpenOptions::new().read(true).append(true).create(true).open(path).map_err(|e| log_err("open", e))?;
        let size = file.metadata().map_err(|e| log_err("stat", e))?.len();
        let replay = read_records(BufReader::new(&file), size)?;
        Ok((Self { file, len: size }, replay))
    }

    /// Bytes in the log.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends a batch's writes and syncs them: once this returns, the
    /// batch survives a crash.
    pub(crate) fn append_batch(&mut self, seq: u64, changes: &[KvChange]) -> Result<()> {
        let mut payload = Vec::with_capacity(
            4 + changes.iter().map(|(k, v)| 9 + k.len() + v.as_ref().map_or(0, Vec::len)).sum::<usize>(),
        );
        payload.extend_from_slice(&(changes.len() as u32).to_le_bytes());
        for (k, v) in changes {
            payload.extend_from_slice(&(k.len() as u32).to_le_bytes());
            payload.extend_from_slice(k);
            match v {
                None => payload.push(0),
                Some(v) => {
                    payload.push(1);
                    payload.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    payload.extend_from_slice(v);
                }
            }
        }
        self.append(KIND_BATCH, seq, &payload)
    }

    /// Records that batch `seq` must not be replayed, and syncs it.
    pub(crate) fn append_cancel(&mut self, seq: u64) -> Result<()> {
        self.append(KIND_CANCEL, seq, &[])
    }

    fn append(&mut self, kind: u8, seq: u64, payload: &[u8]) -> Result<()> {
        let len = u32::try_from(payload.len()).map_err(|_| MetaError::Engine("redo log: batch over 4 GiB".into()))?;
        let mut record = Vec::with_capacity(HEAD + payload.len());
        record.push(kind);
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&record);
        crc.update(payload);
        record.extend_from_slice(&crc.finalize().to_le_bytes());
        record.extend_from_slice(payload);
        self.file.write_all(&record).map_err(|e| log_err("append", e))?;
        self.len += record.len() as u64;
        self.file.sync_data().map_err(|e| log_err("sync", e))
    }

    /// Empties the log: everything in it is in a durable redb commit. Not
    /// synced: if the old records come back after a crash, their sequence
    /// numbers say they are applied already.
    pub(crate) fn reset(&mut self) -> Result<()> {
        self.file.set_len(0).map_err(|e| log_err("truncate", e))?;
        self.len = 0;
        Ok(())
    }
}

fn read_records(mut r: impl Read, size: u64) -> Result<Replay> {
    let mut batches = Vec::new();
    let mut cancelled = std::collections::HashSet::new();
    let mut last_seq = 0;
    let mut left = size;
    loop {
        let mut head = [0u8; HEAD];
        if left < HEAD as u64 || r.read_exact(&mut head).is_err() {
            break;
        }
        left -= HEAD as u64;
        let kind = head[0];
        let seq = u64::from_le_bytes(head[1..9].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(head[9..13].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(head[13..17].try_into().unwrap_or_default());
        // Bounded by what the file holds before anything is allocated.
        if u64::from(len) > left || !matches!(kind, KIND_BATCH | KIND_CANCEL) {
            break;
        }
        let mut payload = vec![0u8; len as usize];
        if r.read_exact(&mut payload).is_err() {
            break;
        }
        left -= u64::from(len);
        let mut h = crc32fast::Hasher::new();
        h.update(&head[..13]);
        h.update(&payload);
        if h.finalize() != crc {
            break;
        }
        last_seq = last_seq.max(seq);
        if kind == KIND_CANCEL {
            cancelled.insert(seq);
            continue;
        }
        match decode_batch(&payload) {
            Some(changes) => batches.push((seq, changes)),
            // A record whose CRC holds but whose payload does not parse was
            // not written by this code: refuse to guess.
            None => return Err(MetaError::Engine(format!("redo log: batch {seq} is malformed"))),
        }
    }
    batches.retain(|(seq, _)| !cancelled.contains(seq));
    Ok(Replay { batches, last_seq })
}

fn decode_batch(p: &[u8]) -> Option<Vec<KvChange>> {
    fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if p.len() < n {
            return None;
        }
        let (a, b) = p.split_at(n);
        *p = b;
        Some(a)
    }
    fn take_u32(p: &mut &[u8]) -> Option<usize> {
        take(p, 4).and_then(|b| b.try_into().ok()).map(|b| u32::from_le_bytes(b) as usize)
    }
    let mut p = p;
    let count = take_u32(&mut p)?;
    // Each write takes at least 5 bytes: a count beyond that is a lie.
    if count > p.len() / 5 {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let klen = take_u32(&mut p)?;
        let key = take(&mut p, klen)?.to_vec();
        let value = match take(&mut p, 1)?[0] {
            0 => None,
            1 => {
                let vlen = take_u32(&mut p)?;
                Some(take(&mut p, vlen)?.to_vec())
            }
            _ => return None,
        };
        out.push((key, value));
    }
    p.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> KvChange {
        (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
    }

    #[test]
    fn batches_come_back_in_order_without_the_cancelled_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        {
            let (mut log, replay) = RedoLog::open(&path).unwrap();
            assert!(replay.batches.is_empty());
            log.append_batch(1, &[put("a", "1"), (b"b".to_vec(), None)]).unwrap();
            log.append_batch(2, &[put("c", "")]).unwrap();
            log.append_cancel(2).unwrap();
            log.append_batch(3, &[put("d", "4")]).unwrap();
        }
        let (_, replay) = RedoLog::open(&path).unwrap();
        assert_eq!(replay.last_seq, 3);
        let seqs: Vec<u64> = replay.batches.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(replay.batches[0].1, vec![put("a", "1"), (b"b".to_vec(), None)]);
    }

    #[test]
    fn a_torn_or_damaged_tail_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        {
            let (mut log, _) = RedoLog::open(&path).unwrap();
            log.append_batch(1, &[put("a", "1")]).unwrap();
            log.append_batch(2, &[put("b", "2")]).unwrap();
        }
        let whole = std::fs::read(&path).unwrap();
        let first = HEAD + 4 + 4 + 1 + 1 + 4 + 1;
        for cut in [whole.len() - 1, first + 3, first + HEAD] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let (_, replay) = RedoLog::open(&path).unwrap();
            assert_eq!(replay.batches.len(), 1, "cut at {cut}");
        }
        let mut flipped = whole.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(RedoLog::open(&path).unwrap().1.batches.len(), 1);
        // A length past the end of the file is not allocated.
        let mut huge = whole[..first].to_vec();
        huge.extend_from_slice(&[KIND_BATCH, 9, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        std::fs::write(&path, &huge).unwrap();
        assert_eq!(RedoLog::open(&path).unwrap().1.batches.len(), 1);
    }

    #[test]
    fn a_reset_log_is_empty_and_takes_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        let (mut log, _) = RedoLog::open(&path).unwrap();
        log.append_batch(1, &[put("a", "1")]).unwrap();
        log.reset().unwrap();
        assert_eq!(log.len(), 0);
        log.append_batch(2, &[put("b", "2")]).unwrap();
        drop(log);
        let (_, replay) = RedoLog::open(&path).unwrap();
        assert_eq!(replay.batches.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn garbage_payloads_are_refused() {
        assert!(decode_batch(&[]).is_none());
        assert!(decode_batch(&[0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(decode_batch(&[1, 0, 0, 0, 1, 0, 0, 0, b'k', 7]).is_none());
        assert_eq!(decode_batch(&[0, 0, 0, 0]), Some(vec![]));
    }
}
