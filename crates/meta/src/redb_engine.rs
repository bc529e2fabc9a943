//! The embedded engine: one redb file. redb commits with a checksummed,
//! copy-on-write B-tree and fsync, so a SIGKILL or power cut at any moment
//! leaves the last committed transaction (see docs/decisions/0006).
//!
//! Group commit: write transactions that arrive while one is being
//! committed join one shared redb transaction, committed (one fsync) once
//! nobody else is waiting to join; each caller returns only after that
//! commit. Each operation's writes are held in an [`Overlay`] until it
//! succeeds, so a failed one leaves nothing in the shared transaction.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::engine::{Engine, KvRead, KvWrite, Overlay};
use crate::error::{MetaError, Result};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

fn engine_err(e: impl std::fmt::Display) -> MetaError {
    MetaError::Engine(e.to_string())
}

/// redb in one file.
pub struct RedbEngine {
    db: Database,
    batch: Mutex<Batch>,
    changed: Condvar,
    /// Writers on their way to join the open batch: its leader waits for
    /// them rather than committing without them.
    arriving: AtomicUsize,
}

/// The group commit's state.
#[derive(Default)]
struct Batch {
    /// The transaction operations are joining.
    open: Option<redb::WriteTransaction>,
    /// Its number.
    open_id: u64,
    /// Operations in it that succeeded (nothing to commit when none did).
    writes: usize,
    /// An operation's writes reached it only in part: it must be aborted.
    poisoned: bool,
    /// A batch is being committed: the next cannot begin before it ends.
    committing: bool,
    /// Batches up to this one have ended.
    ended: u64,
    /// Recent batches whose commit failed, with why.
    failed: VecDeque<(u64, String)>,
}

impl RedbEngine {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(engine_err)?;
        let txn = db.begin_write().map_err(engine_err)?;
        txn.open_table(KV).map_err(engine_err)?;
        txn.commit().map_err(engine_err)?;
        Ok(Self { db, batch: Mutex::default(), changed: Condvar::new(), arriving: AtomicUsize::new(0) })
    }

    fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Writer<'t> {
    table: redb::Table<'t, &'static [u8], &'static [u8]>,
}

fn scan_table<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    start: &[u8],
    end: &[u8],
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    if start >= end {
        return Ok(out);
    }
    for item in t.range::<&[u8]>(start..end).map_err(engine_err)? {
        if out.len() >= limit {
            break;
        }
        let (k, v) = item.map_err(engine_err)?;
        out.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(out)
}

impl KvRead for Writer<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.table.get(key).map_err(engine_err)?.map(|v| v.value().to_vec()))
    }
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        scan_table(&self.table, start, end, limit)
    }
}

impl KvWrite for Writer<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.table.insert(key, value).map_err(engine_err)?;
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.table.remove(key).map_err(engine_err)?;
        Ok(())
    }
}

/// Runs one operation in the shared transaction; its writes reach the
/// transaction only if it succeeds. The outer error is the engine failing
/// while applying them (the transaction is then unusable).
fn run_in<T>(txn: &redb::WriteTransaction, f: impl FnOnce(&mut dyn KvWrite) -> Result<T>) -> Result<Result<T>> {
    let table = txn.open_table(KV).map_err(engine_err)?;
    let mut w = Writer { table };
    let (out, changes) = {
        let mut held = Overlay::new(&w);
        let out = f(&mut held);
        (out, held.into_changes())
    };
    if out.is_ok() {
        for (k, v) in changes {
            match v {
                Some(v) => w.put(&k, &v)?,
                None => w.delete(&k)?,
            }
        }
    }
    Ok(out)
}

struct Reader {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl KvRead for Reader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.table.get(key).map_err(engine_err)?.map(|v| v.value().to_vec()))
    }
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        scan_table(&self.table, start, end, limit)
    }
}

impl Engine for RedbEngine {
    fn write<T>(&self, f: impl FnOnce(&mut dyn KvWrite) -> Result<T>) -> Result<T> {
        self.arriving.fetch_add(1, Ordering::SeqCst);
        let mut b = self.lock();
        while b.committing {
            b = self.changed.wait(b).unwrap_or_else(|p| p.into_inner());
        }
        self.arriving.fetch_sub(1, Ordering::SeqCst);
        if b.open.is_none() {
            match self.db.begin_write() {
                Ok(t) => {
                    b.open = Some(t);
                    b.open_id += 1;
                    b.writes = 0;
                }
                Err(e) => return Err(engine_err(e)),
            }
        }
        let mine = b.open_id;
        let out = match b.open.as_ref() {
            Some(txn) => run_in(txn, f),
            None => Err(MetaError::Engine("no open transaction".into())),
        };
        let out = match out {
            Ok(Ok(v)) => {
                b.writes += 1;
                Ok(v)
            }
            Ok(Err(e)) => Err(e),
            Err(e) => {
                // Half applied: the whole batch must not commit.
                b.poisoned = true;
                Err(e)
            }
        };
        if self.arriving.load(Ordering::SeqCst) == 0 {
            // Nobody else is coming: commit the batch, for everyone in it.
            let txn = b.open.take();
            let (writes, poisoned) = (b.writes, std::mem::take(&mut b.poisoned));
            b.committing = true;
            drop(b);
            let result = match txn {
                Some(t) if poisoned => {
                    let _ = t.abort();
                    Err("an operation failed half-way through the batch".to_string())
                }
                Some(t) if writes > 0 => t.commit().map_err(|e| e.to_string()),
                Some(t) => t.abort().map_err(|e| e.to_string()),
                None => Ok(()),
            };
            b = self.lock();
            b.committing = false;
            b.ended = mine;
            if let Err(e) = result {
                b.failed.push_back((mine, e));
                if b.failed.len() > 64 {
                    b.failed.pop_front();
                }
            }
            self.changed.notify_all();
        } else {
            while b.ended < mine {
                b = self.changed.wait(b).unwrap_or_else(|p| p.into_inner());
            }
        }
        if let Some((_, e)) = b.failed.iter().find(|(id, _)| *id == mine) {
            return Err(MetaError::Engine(format!("commit failed: {e}")));
        }
        out
    }

    fn read<T>(&self, f: impl FnOnce(&dyn KvRead) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read().map_err(engine_err)?;
        let table = txn.open_table(KV).map_err(engine_err)?;
        f(&Reader { table })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_transaction_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let e = RedbEngine::open(&dir.path().join("meta.redb")).unwrap();
        e.write(|w| w.put(b"a", b"1")).unwrap();
        let r: Result<()> = e.write(|w| {
            w.put(b"b", b"2")?;
            Err(MetaError::Invalid("no".into()))
        });
        assert!(r.is_err());
        e.read(|r| {
            assert_eq!(r.get(b"a")?, Some(b"1".to_vec()));
            assert_eq!(r.get(b"b")?, None);
            assert_eq!(r.scan(b"a", b"z", 10)?.len(), 1);
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn concurrent_writers_share_commits_and_a_failed_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let e = std::sync::Arc::new(RedbEngine::open(&dir.path().join("meta.redb")).unwrap());
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let e = e.clone();
                std::thread::spawn(move || {
                    for i in 0..50u8 {
                        let fail = i % 10 == 9;
                        let r: Result<()> = e.write(|w| {
                            // Read-modify-write of a shared counter: lost updates would show.
                            let n = w.get(b"count")?.map(|v| u16::from_be_bytes([v[0], v[1]])).unwrap_or(0);
                            w.put(&[b'k', t, i], b"x")?;
                            if fail {
                                return Err(MetaError::Invalid("refused".into()));
                            }
                            w.put(b"count", &(n + 1).to_be_bytes())
                        });
                        assert_eq!(r.is_err(), fail);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        e.read(|r| {
            let v = r.get(b"count")?.unwrap();
            assert_eq!(u16::from_be_bytes([v[0], v[1]]), 8 * 45);
            assert_eq!(r.scan(b"k", b"l", usize::MAX)?.len(), 8 * 45);
            Ok(())
        })
        .unwrap();
    }
}
