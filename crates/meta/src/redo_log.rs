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
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
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

/// Room added to the log at a time, written with zeros: overwriting
/// written blocks and syncing them costs a quarter less than appending
/// (no size change for the file system's journal to commit), measured on
/// this project's test machine: 150–165 µs against 204–212 µs.
const GROW: u64 = 1 << 20;

/// The open log, written by the committing writer only.
pub(crate) struct RedoLog {
    file: File,
    /// Where the next record goes.
    pos: u64,
    /// The file's size: zeros (or records older than the last reset) past
    /// `pos`.
    size: u64,
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
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| log_err("open", e))?;
        let size = file.metadata().map_err(|e| log_err("stat", e))?.len();
        Ok(Self { file, pos: 0, size })
    }

    /// Reads the records from the start, up to the first that is not whole
    /// and valid. Records from before a reset may follow the newer ones:
    /// their sequence numbers are all below the database's.
    pub(crate) fn replay(&self) -> Result<Replay> {
        read_records(BufReader::new(&self.file), self.size)
    }

    /// Bytes of records since the last reset.
    pub(crate) fn len(&self) -> u64 {
        self.pos
    }

    /// Appends a batch's writes, and syncs them when `sync`: once this
    /// returns, the batch survives a process crash, and with `sync` a
    /// power cut too (so does every record before it: the log is
    /// sequential and a replay stops at the first record missing).
    pub(crate) fn append_batch(&mut self, seq: u64, changes: &[KvChange], sync: bool) -> Result<()> {
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
        self.append(KIND_BATCH, seq, &payload, sync)
    }

    /// Records that batch `seq` must not be replayed, and syncs it.
    pub(crate) fn append_cancel(&mut self, seq: u64) -> Result<()> {
        self.append(KIND_CANCEL, seq, &[], true)
    }

    /// A second handle on the log's file, for syncing it from another
    /// thread while records are appended.
    pub(crate) fn file_for_sync(&self) -> Result<File> {
        self.file.try_clone().map_err(|e| log_err("dup", e))
    }

    fn append(&mut self, kind: u8, seq: u64, payload: &[u8], sync: bool) -> Result<()> {
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
        let end = self.pos + record.len() as u64;
        if end > self.size {
            // Zeros up to a whole step past the record: they end the log
            // at a replay until records overwrite them.
            let new_size = end.div_ceil(GROW) * GROW;
            let zeros = vec![0u8; usize::try_from(new_size - self.size).unwrap_or(usize::MAX)];
            self.file.write_all_at(&zeros, self.size).map_err(|e| log_err("grow", e))?;
            self.size = new_size;
        }
        self.file.write_all_at(&record, self.pos).map_err(|e| log_err("append", e))?;
        self.pos = end;
        if sync {
            self.file.sync_data().map_err(|e| log_err("sync", e))?;
        }
        Ok(())
    }

    /// Starts the log over: everything in it is in a durable redb commit.
    /// The old records stay until overwritten; a replay skips them by
    /// their sequence numbers, or stops at the first one a newer record
    /// cut. Nothing to sync.
    pub(crate) fn reset(&mut self) {
        self.pos = 0;
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

    fn open(path: &Path) -> (RedoLog, Replay) {
        let log = RedoLog::open(path).unwrap();
        let replay = log.replay().unwrap();
        (log, replay)
    }

    #[test]
    fn batches_come_back_in_order_without_the_cancelled_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        {
            let (mut log, replay) = open(&path);
            assert!(replay.batches.is_empty());
            log.append_batch(1, &[put("a", "1"), (b"b".to_vec(), None)], true).unwrap();
            log.append_batch(2, &[put("c", "")], true).unwrap();
            log.append_cancel(2).unwrap();
            log.append_batch(3, &[put("d", "4")], true).unwrap();
        }
        let (_, replay) = open(&path);
        assert_eq!(replay.last_seq, 3);
        let seqs: Vec<u64> = replay.batches.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(replay.batches[0].1, vec![put("a", "1"), (b"b".to_vec(), None)]);
    }

    #[test]
    fn a_torn_or_damaged_record_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        {
            let (mut log, _) = open(&path);
            log.append_batch(1, &[put("a", "1")], true).unwrap();
            log.append_batch(2, &[put("b", "2")], true).unwrap();
        }
        let whole = std::fs::read(&path).unwrap();
        assert_eq!(whole.len() as u64, GROW, "grown a step at a time");
        let one = HEAD + 4 + 4 + 1 + 1 + 4 + 1;
        for cut in [2 * one - 1, one + 3, one + HEAD] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            assert_eq!(open(&path).1.batches.len(), 1, "cut at {cut}");
            // Zeros after a torn record, as the file's growth leaves them.
            let mut padded = whole[..cut].to_vec();
            padded.resize(whole.len(), 0);
            std::fs::write(&path, &padded).unwrap();
            assert_eq!(open(&path).1.batches.len(), 1, "cut at {cut}, padded");
        }
        let mut flipped = whole.clone();
        flipped[2 * one - 1] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(open(&path).1.batches.len(), 1);
        // A length past the end of the file is not allocated.
        let mut huge = whole[..one].to_vec();
        huge.extend_from_slice(&[KIND_BATCH, 9, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        std::fs::write(&path, &huge).unwrap();
        assert_eq!(open(&path).1.batches.len(), 1);
    }

    #[test]
    fn after_a_reset_new_records_overwrite_the_old_and_the_rest_is_skipped_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        let (mut log, _) = open(&path);
        for seq in 1..=5 {
            log.append_batch(seq, &[put("old", &seq.to_string())], true).unwrap();
        }
        log.reset();
        assert_eq!(log.len(), 0);
        log.append_batch(6, &[put("new-and-longer", "6")], true).unwrap();
        drop(log);
        // What follows the new record is the middle of an old one, which
        // ends the log, or whole old records, which the engine skips (their
        // numbers are below the database's).
        let (_, replay) = open(&path);
        assert_eq!(replay.batches.first().map(|(s, _)| *s), Some(6));
        assert!(replay.batches[1..].iter().all(|(s, _)| *s < 6));
        assert_eq!(replay.last_seq, 6);
    }

    #[test]
    fn garbage_payloads_are_refused() {
        assert!(decode_batch(&[]).is_none());
        assert!(decode_batch(&[0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(decode_batch(&[1, 0, 0, 0, 1, 0, 0, 0, b'k', 7]).is_none());
        assert_eq!(decode_batch(&[0, 0, 0, 0]), Some(vec![]));
    }
}
