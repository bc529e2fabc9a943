//! The binlog: one line per mutation, in the order this node applied them.
//!
//! ```text
//! <seq> <unix ms> <op> <file id>[ <arg>]
//! ```
//! Upper-case ops originated here, lower-case ones arrived as replicas (as in
//! FastDFS, so that a peer replaying this log sends only what started here).
//! Lines are written with one `write` each; [`Binlog::sync`] makes them
//! durable and is called once a second by the daemon. The blobs themselves are
//! fsync'd before any client is answered; the binlog is the index for
//! catching up, and a full comparison covers a tail lost in a crash.
//!
//! A delete's line is the exception: it is the delete's durable tombstone
//! (docs/decisions/0013-batched-deletes.md), made durable by
//! [`Binlog::sync_through`] before the delete is answered. Concurrent
//! deletes share that fsync (group commit, as packs do for small uploads).
//!
//! Lines are written over zeros written ahead of them ([`ZEROED_AHEAD`] at
//! a time), as packs are: an `fdatasync` after a write that grows the file
//! must also write the inode's new size, one over blocks already there
//! flushes the data only (decision 0009 measured 2,750 against 4,100
//! syncs a second for packs; under this session's load a loop of 60-byte
//! lines showed no gain, 0.86 against 0.91 ms: see
//! docs/decisions/0013-batched-deletes.md). The log ends at the last
//! newline before its trailing zeros; a clean close cuts the zeros off.
//!
//! A crash can lose the last lines, and the numbers after them are then
//! given again to other mutations. So the log has a *generation*, kept in
//! `generation` beside it, that changes whenever the log was not closed
//! cleanly (no `clean` mark): a peer's position in an older generation is
//! no longer trusted, and that peer does a full comparison instead.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_proto::{BinlogEntry, SyncPoint};

use crate::error::{Error, Result};

/// Kinds of mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinlogOp {
    /// New blob.
    Create,
    /// Bytes appended.
    Append,
    /// Bytes overwritten.
    Modify,
    /// Resized.
    Truncate,
    /// Removed.
    Delete,
    /// Metadata set.
    SetMeta,
}

/// Where a mutation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client asked this node.
    Local,
    /// A peer forwarded it.
    Replica,
}

impl BinlogOp {
    fn letter(self, origin: Origin) -> char {
        let c = match self {
            BinlogOp::Create => 'C',
            BinlogOp::Append => 'A',
            BinlogOp::Modify => 'M',
            BinlogOp::Truncate => 'T',
            BinlogOp::Delete => 'D',
            BinlogOp::SetMeta => 'U',
        };
        match origin {
            Origin::Local => c,
            Origin::Replica => c.to_ascii_lowercase(),
        }
    }
}

/// The node's binlog.
#[derive(Debug)]
pub struct Binlog {
    path: PathBuf,
    dir: PathBuf,
    generation: u64,
    inner: Mutex<Inner>,
    /// The last sequence number known durable (see [`Binlog::sync_through`]);
    /// its lock is held by whoever is syncing, so the others queue behind
    /// one fsync and then find their line covered.
    synced: Mutex<u64>,
}

#[derive(Debug)]
struct Inner {
    /// Shared with syncs, which run outside this lock.
    file: Arc<File>,
    seq: u64,
    /// Bytes of lines (the offset just past the last line).
    len: u64,
    /// Where the zeros written ahead of `len` end (the file's length).
    zeroed: u64,
}

/// Zeros written ahead of the last line at a time.
const ZEROED_AHEAD: u64 = 1 << 20;

const BINLOG_FILE: &str = "binlog.log";
const GENERATION_FILE: &str = "generation";
const CLEAN_MARK: &str = "clean";

impl Binlog {
    /// Opens (or starts) the binlog in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let path = dir.join(BINLOG_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        let (seq, len, zeroed) = last_seq(&mut file).map_err(Error::io(&path))?;
        let generation = open_generation(dir)?;
        Ok(Self {
            path,
            dir: dir.to_path_buf(),
            generation,
            inner: Mutex::new(Inner { file: Arc::new(file), seq, len, zeroed }),
            synced: Mutex::new(0),
        })
    }

    /// Makes the log durable and marks it closed cleanly, so the next open
    /// keeps its generation. Nothing may be appended afterwards.
    pub fn close_clean(&self) -> Result<()> {
        {
            // Without the zeros ahead, as a log of older versions was.
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.file.set_len(inner.len).map_err(Error::io(&self.path))?;
            inner.zeroed = inner.len;
        }
        self.sync()?;
        crate::layout::write_durably(&self.dir.join(CLEAN_MARK), b"")
    }

    /// Where the log ends now.
    pub fn point(&self) -> SyncPoint {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        SyncPoint { generation: self.generation, seq: inner.seq, offset: inner.len }
    }

    /// Up to `limit` entries after `after_seq`, starting the read at
    /// `offset` when that is where they begin (else from the start). Returns
    /// them, the point after the last one, and whether more follow.
    pub fn tail(&self, after_seq: u64, offset: u64, limit: usize) -> Result<(Vec<BinlogEntry>, SyncPoint, bool)> {
        use std::io::BufRead;
        let end = self.point();
        let mut out = Vec::new();
        let mut last = SyncPoint { generation: self.generation, seq: after_seq, offset };
        if after_seq >= end.seq {
            return Ok((out, end, false));
        }
        let mut file = File::open(&self.path).map_err(Error::io(&self.path))?;
        // The hint is right when the line there is the one after `after_seq`.
        let mut pos = if offset <= end.offset { offset } else { 0 };
        let first = read_seq_at(&mut file, pos).map_err(Error::io(&self.path))?;
        if first != Some(after_seq + 1) {
            pos = 0;
        }
        file.seek(SeekFrom::Start(pos)).map_err(Error::io(&self.path))?;
        let mut reader = std::io::BufReader::new(file.take(end.offset - pos));
        let mut line = String::new();
        let mut more = false;
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(Error::io(&self.path))?;
            if n == 0 || !line.ends_with('\n') {
                break;
            }
            pos += n as u64;
            let Some((seq, op, id)) = parse_line(&line) else { continue };
            if seq <= after_seq {
                continue;
            }
            if out.len() == limit {
                more = true;
                break;
            }
            out.push(BinlogEntry {
                seq,
                delete: op == 'D' || op == 'd',
                here: op.is_ascii_uppercase(),
                create: op == 'C' || op == 'c',
                file_id: id.to_string(),
            });
            last = SyncPoint { generation: self.generation, seq, offset: pos };
        }
        Ok((out, last, more))
    }

    /// The generation (see the module notes).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Records a mutation; returns its sequence number.
    pub fn append(&self, op: BinlogOp, origin: Origin, file_id: &str, arg: Option<u64>) -> Result<u64> {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.seq += 1;
        let line = match arg {
            Some(a) => format!("{} {} {} {} {}\n", inner.seq, ms, op.letter(origin), file_id, a),
            None => format!("{} {} {} {}\n", inner.seq, ms, op.letter(origin), file_id),
        };
        let end = inner.len + line.len() as u64;
        if end > inner.zeroed {
            let upto = (end + ZEROED_AHEAD).next_multiple_of(4096);
            let zeros = vec![0u8; (upto - inner.zeroed) as usize];
            inner.file.write_all_at(&zeros, inner.zeroed).map_err(Error::io(&self.path))?;
            inner.zeroed = upto;
        }
        // A failed write leaves garbage past `len`, overwritten by the next line.
        inner.file.write_all_at(line.as_bytes(), inner.len).map_err(Error::io(&self.path))?;
        inner.len = end;
        Ok(inner.seq)
    }

    /// Sequence number of the last line.
    pub fn last_seq(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).seq
    }

    /// Makes every line written so far durable.
    pub fn sync(&self) -> Result<()> {
        let seq = self.last_seq();
        self.sync_through(seq)
    }

    /// Returns once every line up to `seq` is on disk. One caller syncs for
    /// every line written before its sync began; callers that queued behind
    /// it find their line covered and return without a sync of their own.
    pub fn sync_through(&self, seq: u64) -> Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if *synced >= seq {
            return Ok(());
        }
        let (file, upto) = {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            (inner.file.clone(), inner.seq)
        };
        file.sync_data().map_err(Error::io(&self.path))?;
        *synced = upto;
        Ok(())
    }

    /// Deleted IDs with their sequence numbers, after `after_seq`, at most
    /// `limit` of them (for a peer's catch-up). Returns them and whether more follow.
    pub fn deletes_after(&self, after_seq: u64, limit: usize) -> Result<(Vec<(u64, String)>, bool)> {
        let mut out = Vec::new();
        let mut more = false;
        self.scan(|seq, op, id| {
            if seq > after_seq && (op == 'D' || op == 'd') {
                if out.len() == limit {
                    more = true;
                    return false;
                }
                out.push((seq, id.to_string()));
            }
            true
        })?;
        Ok((out, more))
    }

    /// Which of `ids` any line names (reads the whole log, so callers ask
    /// only when `ids` is not empty).
    pub fn mentioned(&self, ids: &std::collections::HashSet<String>) -> Result<std::collections::HashSet<String>> {
        let mut out = std::collections::HashSet::new();
        if ids.is_empty() {
            return Ok(out);
        }
        self.scan(|_, _, id| {
            if ids.contains(id) {
                out.insert(id.to_string());
            }
            true
        })?;
        Ok(out)
    }

    /// Every ID ever deleted here (IDs are never reused, so this set only
    /// grows; it guards against bringing a deleted file back).
    pub fn all_deletes(&self) -> Result<std::collections::HashSet<String>> {
        let mut out = std::collections::HashSet::new();
        self.scan(|_, op, id| {
            if op == 'D' || op == 'd' {
                out.insert(id.to_string());
            }
            true
        })?;
        Ok(out)
    }

    /// Calls `f(seq, op, file_id)` for each line until it returns false.
    fn scan(&self, mut f: impl FnMut(u64, char, &str) -> bool) -> Result<()> {
        use std::io::BufRead;
        let len = self.point().offset;
        let file = File::open(&self.path).map_err(Error::io(&self.path))?;
        for line in std::io::BufReader::new(file.take(len)).lines() {
            let line = line.map_err(Error::io(&self.path))?;
            let Some((seq, op, id)) = parse_line(&line) else { continue };
            if !f(seq, op, id) {
                break;
            }
        }
        Ok(())
    }

    /// Path of the log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Splits a line into sequence number, op letter and file ID.
fn parse_line(line: &str) -> Option<(u64, char, &str)> {
    let mut parts = line.trim_end().split(' ');
    let (seq, _ms, op, id) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some((seq.parse().ok()?, op.chars().next()?, id))
}

/// The sequence number of the line starting at `pos`, if one does.
fn read_seq_at(file: &mut File, pos: u64) -> std::io::Result<Option<u64>> {
    file.seek(SeekFrom::Start(pos))?;
    let mut buf = [0u8; 24];
    let n = file.read(&mut buf)?;
    let text = String::from_utf8_lossy(&buf[..n]);
    Ok(text.split(' ').next().and_then(|s| s.parse().ok()).filter(|_| text.contains(' ')))
}

/// Reads the generation, and starts a new one unless the log was closed
/// cleanly. The clean mark is removed (durably) before any line is added.
fn open_generation(dir: &Path) -> Result<u64> {
    let gen_path = dir.join(GENERATION_FILE);
    let clean = dir.join(CLEAN_MARK);
    let kept = match (clean.exists(), std::fs::read_to_string(&gen_path)) {
        (true, Ok(text)) => text.trim().parse::<u64>().ok(),
        _ => None,
    };
    let generation = match kept {
        Some(g) => g,
        None => {
            let g = rand::random::<u64>() | 1;
            crate::layout::write_durably(&gen_path, g.to_string().as_bytes())?;
            g
        }
    };
    match std::fs::remove_file(&clean) {
        Ok(()) => crate::layout::fsync_dir(dir)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&clean)(e)),
    }
    Ok(generation)
}

/// Finds the end of the lines (just past the last newline before the
/// zeros written ahead, if any), the sequence number of the last line, and
/// the file's length. A torn last line, never synced, is left past the end
/// and overwritten by the next.
fn last_seq(file: &mut File) -> std::io::Result<(u64, u64, u64)> {
    let zeroed = file.seek(SeekFrom::End(0))?;
    // The last byte that is not zero: at most ZEROED_AHEAD and a page back.
    let mut content_end = 0;
    let mut at = zeroed;
    let mut buf = vec![0u8; 64 << 10];
    while at > 0 {
        let from = at.saturating_sub(buf.len() as u64);
        let n = (at - from) as usize;
        file.read_exact_at(&mut buf[..n], from)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            content_end = from + i as u64 + 1;
            break;
        }
        at = from;
    }
    let start = content_end.saturating_sub(4096);
    let mut tail = vec![0u8; (content_end - start) as usize];
    file.read_exact_at(&mut tail, start)?;
    let len = match tail.iter().rposition(|&b| b == b'\n') {
        Some(i) => start + i as u64 + 1,
        None if start == 0 => 0,
        None => content_end,
    };
    let text = String::from_utf8_lossy(&tail[..(len - start) as usize]);
    let seq =
        text.lines().rev().filter_map(|l| l.split(' ').next().and_then(|s| s.parse::<u64>().ok())).next().unwrap_or(0);
    Ok((seq, len, zeroed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = Binlog::open(dir.path()).unwrap();
            assert_eq!(b.append(BinlogOp::Create, Origin::Local, "g/M00/00/00/x", None).unwrap(), 1);
            assert_eq!(b.append(BinlogOp::Append, Origin::Replica, "g/M00/00/00/x", Some(10)).unwrap(), 2);
            b.sync().unwrap();
        }
        let b = Binlog::open(dir.path()).unwrap();
        assert_eq!(b.last_seq(), 2);
        let text = std::fs::read_to_string(b.path()).unwrap();
        assert!(text.lines().nth(1).unwrap().contains(" a g/M00/00/00/x 10"));
    }

    #[test]
    fn tail_pages_from_a_point_and_generation_changes_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let b = Binlog::open(dir.path()).unwrap();
        for i in 0..10u64 {
            let op = if i % 3 == 0 { BinlogOp::Delete } else { BinlogOp::Create };
            b.append(op, Origin::Local, &format!("g/M00/00/00/f{i}"), None).unwrap();
        }
        let (page, end, more) = b.tail(0, 0, 4).unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
        assert!(page[0].delete && !page[1].delete && more);
        let (page, end2, more) = b.tail(end.seq, end.offset, 100).unwrap();
        assert_eq!(page.first().map(|e| e.seq), Some(5));
        assert_eq!((end2.seq, more), (10, false));
        assert_eq!(end2, b.point());
        // a wrong offset hint falls back to a scan from the start
        let (page, _, _) = b.tail(6, 3, 100).unwrap();
        assert_eq!(page.first().map(|e| e.seq), Some(7));
        let (page, _, _) = b.tail(10, end2.offset, 100).unwrap();
        assert!(page.is_empty());
        let g = b.generation();
        b.close_clean().unwrap();
        drop(b);
        let b = Binlog::open(dir.path()).unwrap();
        assert_eq!(b.generation(), g, "a clean close keeps the generation");
        drop(b);
        let b = Binlog::open(dir.path()).unwrap();
        assert_ne!(b.generation(), g, "an open without a clean close starts a new one");
    }

    #[test]
    fn lines_over_zeros_ahead_survive_a_crash_and_a_torn_line_is_overwritten() {
        use std::os::unix::fs::FileExt as _;
        let dir = tempfile::tempdir().unwrap();
        let b = Binlog::open(dir.path()).unwrap();
        for i in 1..=3u64 {
            b.append(BinlogOp::Delete, Origin::Local, &format!("g/M00/00/00/d{i}"), None).unwrap();
        }
        b.sync().unwrap();
        let end = b.point().offset;
        drop(b); // no clean close: a crash
        let path = dir.path().join(BINLOG_FILE);
        assert!(std::fs::metadata(&path).unwrap().len() > end, "zeros are written ahead of the lines");
        // A torn fourth line, never synced, on the zeros.
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().write_all_at(b"4 17 D g/M0", end).unwrap();
        let b = Binlog::open(dir.path()).unwrap();
        assert_eq!((b.last_seq(), b.point().offset), (3, end), "the log ends at its last whole line");
        assert_eq!(b.append(BinlogOp::Delete, Origin::Replica, "g/M00/00/00/d4", None).unwrap(), 4);
        let (dels, more) = b.deletes_after(0, 10).unwrap();
        let ids: Vec<&str> = dels.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!((ids, more), (vec!["g/M00/00/00/d1", "g/M00/00/00/d2", "g/M00/00/00/d3", "g/M00/00/00/d4"], false));
        assert_eq!(b.all_deletes().unwrap().len(), 4);
        let (page, _, _) = b.tail(2, 0, 10).unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
        let len = b.point().offset;
        b.close_clean().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "a clean close cuts the zeros off");
        drop(b);
        let b = Binlog::open(dir.path()).unwrap();
        assert_eq!((b.last_seq(), b.point().offset), (4, len));
    }
}
