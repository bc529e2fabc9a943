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

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

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
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    seq: u64,
}

const BINLOG_FILE: &str = "binlog.log";

impl Binlog {
    /// Opens (or starts) the binlog in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let path = dir.join(BINLOG_FILE);
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(Error::io(&path))?;
        let seq = last_seq(&mut file).map_err(Error::io(&path))?;
        Ok(Self { path, inner: Mutex::new(Inner { file, seq }) })
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
        inner.file.write_all(line.as_bytes()).map_err(Error::io(&self.path))?;
        Ok(inner.seq)
    }

    /// Sequence number of the last line.
    pub fn last_seq(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).seq
    }

    /// Makes every line written so far durable.
    pub fn sync(&self) -> Result<()> {
        let file = {
            let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.file.try_clone().map_err(Error::io(&self.path))?
        };
        file.sync_data().map_err(Error::io(&self.path))
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
        let file = File::open(&self.path).map_err(Error::io(&self.path))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(Error::io(&self.path))?;
            let mut parts = line.split(' ');
            let (Some(seq), Some(_ms), Some(op), Some(id)) = (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let (Ok(seq), Some(op)) = (seq.parse::<u64>(), op.chars().next()) else { continue };
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

/// Finds the sequence number of the last complete line by reading the tail.
fn last_seq(file: &mut File) -> std::io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(4096);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = String::new();
    file.take(4096).read_to_string(&mut tail).ok();
    let seq =
        tail.lines().rev().filter_map(|l| l.split(' ').next().and_then(|s| s.parse::<u64>().ok())).next().unwrap_or(0);
    Ok(seq)
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
}
