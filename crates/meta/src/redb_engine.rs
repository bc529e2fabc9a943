//! The embedded engine: one redb file and its redo log. redb commits with
//! a checksummed, copy-on-write B-tree, so a SIGKILL or power cut at any
//! moment leaves the last durably committed transaction (see
//! docs/decisions/0006); the redo log (`redo_log.rs`) holds what was
//! committed after it.
//!
//! Group commit: write transactions that arrive while one is being
//! committed join one shared redb transaction, committed once nobody else
//! is waiting to join; each caller returns only after that commit. Each
//! operation's writes are held in an [`Overlay`] until it succeeds, so a
//! failed one leaves nothing in the shared transaction.
//!
//! A batch is made durable by appending its writes to the redo log and
//! syncing that (one small sequential write), then committed to redb
//! without an fsync; every [`CHECKPOINT_BATCHES`] batches or
//! [`CHECKPOINT_EVERY`], one is committed to redb durably instead and the
//! log starts over. Each redb transaction records the sequence number of
//! its batch, so opening after a crash applies exactly the logged batches
//! redb's last durable commit does not hold.
//!
//! A batch of namespace changes only ([`Engine::write_lazily`]) is appended
//! without its sync; `lazy_sync.rs` syncs it within a few milliseconds
//! unless a synced record does first.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::engine::{Engine, KvRead, KvWrite, Overlay};
use crate::error::{MetaError, Result};
use crate::lazy_sync::LazySync;
use crate::redo_log::{KvChange, RedoLog};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
/// `applied` → the sequence number of the last batch in the database.
const REDO: TableDefinition<&str, u64> = TableDefinition::new("redo");
const APPLIED: &str = "applied";

/// Batches committed without an fsync between two durable commits. Bounds
/// the log, the replay after a crash, and the growth of the redb file
/// (it reuses pages only after a durable commit).
pub const CHECKPOINT_BATCHES: u64 = 512;
/// Longest time between durable commits while writes come in.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// Largest log before a durable commit.
const CHECKPOINT_LOG_BYTES: u64 = 16 << 20;

fn engine_err(e: impl std::fmt::Display) -> MetaError {
    MetaError::Engine(e.to_string())
}

/// redb in one file.
pub struct RedbEngine {
    db: Database,
    redo: Mutex<Redo>,
    batch: Mutex<Batch>,
    changed: Condvar,
    /// Writers on their way to join the open batch: its leader waits for
    /// them rather than committing without them.
    arriving: AtomicUsize,
    /// Syncs the log's records appended without a sync.
    lazy: Arc<LazySync>,
}

/// The redo log and when the next durable commit is due; held by the
/// committing writer.
struct Redo {
    log: RedoLog,
    /// The next batch's sequence number.
    next_seq: u64,
    /// Batches committed without an fsync since the last durable commit.
    since_durable: u64,
    last_durable: Instant,
    /// An append, sync, cancel or reset failed: the log may hold a torn
    /// record that would hide the records after it, so batches commit
    /// durably until a durable commit succeeds and the log is emptied.
    broken: bool,
}

impl Redo {
    fn durable_due(&self) -> bool {
        self.broken
            || self.since_durable + 1 >= CHECKPOINT_BATCHES
            || self.last_durable.elapsed() >= CHECKPOINT_EVERY
            || self.log.len() >= CHECKPOINT_LOG_BYTES
    }
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
    /// Their writes, in order: what the redo log records.
    changes: Vec<KvChange>,
    /// One of them must be on disk before it is answered.
    durable: bool,
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
    /// Opens (or creates) the database file and its redo log beside it
    /// (`<name>.log`), applying the batches the log holds that the
    /// database's last durable commit does not.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(engine_err)?;
        let mut log = RedoLog::open(&path.with_extension("log"))?;
        let replay = log.replay()?;
        let txn = db.begin_write().map_err(engine_err)?;
        let applied = {
            let mut kv = txn.open_table(KV).map_err(engine_err)?;
            let mut redo = txn.open_table(REDO).map_err(engine_err)?;
            let applied = redo.get(APPLIED).map_err(engine_err)?.map(|v| v.value()).unwrap_or(0);
            let mut last = applied;
            let mut replayed = 0usize;
            for (seq, changes) in replay.batches.iter().filter(|(seq, _)| *seq > applied) {
                for (k, v) in changes {
                    match v {
                        Some(v) => kv.insert(k.as_slice(), v.as_slice()).map(drop),
                        None => kv.remove(k.as_slice()).map(drop),
                    }
                    .map_err(engine_err)?;
                }
                last = *seq;
                replayed += 1;
            }
            redo.insert(APPLIED, last).map_err(engine_err)?;
            if replayed > 0 {
                tracing::info!(
                    batches = replayed,
                    last,
                    "meta engine: applied the redo log's batches after an unclean stop"
                );
            }
            last
        };
        txn.commit().map_err(engine_err)?;
        log.reset();
        let lazy = LazySync::start(log.file_for_sync()?)?;
        let redo = Redo {
            log,
            next_seq: applied.max(replay.last_seq) + 1,
            since_durable: 0,
            last_durable: Instant::now(),
            broken: false,
        };
        Ok(Self {
            db,
            redo: Mutex::new(redo),
            batch: Mutex::default(),
            changed: Condvar::new(),
            arriving: AtomicUsize::new(0),
            lazy,
        })
    }

    /// Commits a batch: logged (synced if `durable`) and committed without
    /// an fsync, or, when due, committed durably and the log emptied.
    fn commit_batch(
        &self,
        txn: redb::WriteTransaction,
        changes: &[KvChange],
        durable: bool,
    ) -> std::result::Result<(), String> {
        let mut redo = self.redo.lock().unwrap_or_else(|p| p.into_inner());
        let seq = redo.next_seq;
        redo.next_seq += 1;
        let mut txn = txn;
        {
            let mut t = txn.open_table(REDO).map_err(|e| e.to_string())?;
            t.insert(APPLIED, seq).map_err(|e| e.to_string())?;
        }
        // A failed sync may have lost records: only a durable commit of the
        // database covers them again.
        if !redo.durable_due() && !self.lazy.failed() {
            match redo.log.append_batch(seq, changes, durable) {
                Ok(()) => {
                    txn.set_durability(Durability::None).map_err(|e| e.to_string())?;
                    if let Err(e) = txn.commit() {
                        // Logged but not applied, and its callers are told
                        // it failed: it must not come back at the next open.
                        match redo.log.append_cancel(seq) {
                            Ok(()) => self.lazy.all_synced(),
                            Err(c) => {
                                tracing::error!(error = %c, seq, "meta engine: could not cancel a failed batch in the redo log; it will be applied at the next start");
                                redo.broken = true;
                            }
                        }
                        return Err(e.to_string());
                    }
                    if durable {
                        self.lazy.all_synced();
                    } else {
                        self.lazy.appended_unsynced();
                    }
                    redo.since_durable += 1;
                    return Ok(());
                }
                Err(e) => {
                    // Maybe half written: commit durably from now on, this
                    // batch too.
                    tracing::warn!(error = %e, "meta engine: redo log append failed; committing durably");
                    redo.broken = true;
                }
            }
        }
        txn.set_durability(Durability::Immediate).map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())?;
        self.lazy.all_synced();
        redo.since_durable = 0;
        redo.last_durable = Instant::now();
        redo.log.reset();
        redo.broken = false;
        Ok(())
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
fn run_in<T>(
    txn: &redb::WriteTransaction,
    log: &mut Vec<KvChange>,
    f: impl FnOnce(&mut dyn KvWrite) -> Result<T>,
) -> Result<Result<T>> {
    let table = txn.open_table(KV).map_err(engine_err)?;
    let mut w = Writer { table };
    let (out, changes) = {
        let mut held = Overlay::new(&w);
        let out = f(&mut held);
        (out, held.into_changes())
    };
    if out.is_ok() {
        for (k, v) in changes {
            match &v {
                Some(v) => w.put(&k, v)?,
                None => w.delete(&k)?,
            }
            log.push((k, v));
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

impl Drop for RedbEngine {
    fn drop(&mut self) {
        self.lazy.stop();
    }
}

impl Engine for RedbEngine {
    fn write<T>(&self, f: impl FnMut(&mut dyn KvWrite) -> Result<T>) -> Result<T> {
        self.write_as(true, f)
    }

    fn write_lazily<T>(&self, f: impl FnMut(&mut dyn KvWrite) -> Result<T>) -> Result<T> {
        self.write_as(false, f)
    }

    fn sync(&self) -> Result<()> {
        if self.lazy.failed() {
            // Records since the failed sync may be lost: a durable commit
            // of the database (an empty batch takes that path) holds them.
            return self.write(|_| Ok(()));
        }
        self.lazy.sync_now()
    }

    fn writes_lazily_without_waiting(&self) -> bool {
        let idle = self.batch.try_lock().is_ok_and(|b| !b.committing);
        idle && !self.lazy.failed() && self.redo.try_lock().is_ok_and(|r| !r.durable_due())
    }

    /// redb reads from its page cache or the local disk, in microseconds.
    fn reads_without_waiting(&self) -> bool {
        true
    }

    /// Runs `f` once: redb never conflicts.
    fn read<T>(&self, mut f: impl FnMut(&dyn KvRead) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read().map_err(engine_err)?;
        let table = txn.open_table(KV).map_err(engine_err)?;
        f(&Reader { table })
    }
}

impl RedbEngine {
    /// A write joining the group commit; `durable`: answered only once on
    /// disk (see [`Engine::write_lazily`]).
    fn write_as<T>(&self, durable: bool, f: impl FnOnce(&mut dyn KvWrite) -> Result<T>) -> Result<T> {
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
                    b.changes.clear();
                    b.durable = false;
                }
                Err(e) => return Err(engine_err(e)),
            }
        }
        let mine = b.open_id;
        let b_ref = &mut *b;
        let out = match b_ref.open.as_ref() {
            Some(txn) => run_in(txn, &mut b_ref.changes, f),
            None => Err(MetaError::Engine("no open transaction".into())),
        };
        let out = match out {
            Ok(Ok(v)) => {
                b.writes += 1;
                b.durable |= durable;
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
            let (writes, poisoned, durable) = (b.writes, std::mem::take(&mut b.poisoned), b.durable);
            let changes = std::mem::take(&mut b.changes);
            b.committing = true;
            drop(b);
            let result = match txn {
                Some(t) if poisoned => {
                    let _ = t.abort();
                    Err("an operation failed half-way through the batch".to_string())
                }
                Some(t) if writes > 0 => self.commit_batch(t, &changes, durable),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lazy_write_is_said_to_wait_while_a_durable_commit_is_due() {
        let dir = tempfile::tempdir().unwrap();
        let e = RedbEngine::open(&dir.path().join("meta.redb")).unwrap();
        assert!(e.writes_lazily_without_waiting());
        {
            let mut r = e.redo.lock().unwrap();
            r.last_durable = Instant::now().checked_sub(CHECKPOINT_EVERY).unwrap();
        }
        assert!(!e.writes_lazily_without_waiting(), "a checkpoint is due: the next write commits durably");
        e.write_lazily(|w| w.put(b"a", b"1")).unwrap();
        assert!(e.writes_lazily_without_waiting(), "the write took the checkpoint");
        let batch = e.batch.lock().unwrap();
        assert!(!e.writes_lazily_without_waiting(), "a batch is open or committing");
        drop(batch);
    }

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
    fn logged_batches_the_database_lacks_are_applied_at_open_and_no_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let e = RedbEngine::open(&path).unwrap();
            for i in 0..20u8 {
                e.write(|w| w.put(&[b'k', i], &[i])).unwrap();
            }
            e.write(|w| w.put(b"gone", b"1")).unwrap();
            e.write(|w| w.delete(b"gone")).unwrap();
        }
        // Whether the close made the batches durable in redb or left them
        // to the log, they are there once, and the deleted key is not.
        let e = RedbEngine::open(&path).unwrap();
        e.read(|r| {
            assert_eq!(r.scan(b"k", b"l", 100)?.len(), 20);
            assert_eq!(r.get(b"gone")?, None);
            Ok(())
        })
        .unwrap();
        let applied = e.redo.lock().unwrap().next_seq - 1;
        drop(e);
        // As a crash leaves it: batches logged after the last durable commit.
        {
            let mut log = RedoLog::open(&path.with_extension("log")).unwrap();
            log.append_batch(applied, &[(b"stale".to_vec(), Some(b"x".to_vec()))], true).unwrap();
            log.append_batch(applied + 1, &[(b"k\x00".to_vec(), None), (b"new".to_vec(), Some(b"1".to_vec()))], true)
                .unwrap();
            log.append_batch(applied + 2, &[(b"new".to_vec(), Some(b"2".to_vec()))], true).unwrap();
        }
        let e = RedbEngine::open(&path).unwrap();
        e.read(|r| {
            assert_eq!(r.get(b"stale")?, None, "a batch the database holds is not applied again");
            assert_eq!(r.get(b"k\x00")?, None);
            assert_eq!(r.get(b"new")?, Some(b"2".to_vec()), "in order");
            Ok(())
        })
        .unwrap();
        assert_eq!(e.redo.lock().unwrap().next_seq, applied + 3);
        e.write(|w| w.put(b"after", b"1")).unwrap();
        drop(e);
        let e = RedbEngine::open(&path).unwrap();
        e.read(|r| {
            assert_eq!(r.get(b"after")?, Some(b"1".to_vec()));
            assert_eq!(r.get(b"new")?, Some(b"2".to_vec()));
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

    #[test]
    fn lazy_batches_reach_the_log_at_once_and_the_disk_within_the_delay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let e = RedbEngine::open(&path).unwrap();
        for i in 0..20u8 {
            e.write_lazily(|w| w.put(&[b'l', i], &[i])).unwrap();
        }
        // In the log (a crashed process loses nothing), whether synced yet or not.
        let logged = RedoLog::open(&path.with_extension("log")).unwrap().replay().unwrap();
        assert_eq!(logged.batches.len(), 20);
        let waited = Instant::now();
        while e.lazy.pending() {
            assert!(waited.elapsed() < Duration::from_secs(5), "the lazy batches were never synced");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(e.lazy.delayed_syncs() >= 1, "synced by the thread, not by a later write");
        // A durable write or an explicit sync covers every lazy one before it.
        e.write_lazily(|w| w.put(b"x", b"1")).unwrap();
        e.sync().unwrap();
        assert!(!e.lazy.pending());
        e.write_lazily(|w| w.put(b"y", b"1")).unwrap();
        e.write(|w| w.put(b"z", b"1")).unwrap();
        assert!(!e.lazy.pending());
        drop(e);
        let e = RedbEngine::open(&path).unwrap();
        e.read(|r| {
            assert_eq!(r.get(&[b'l', 19])?, Some(vec![19]));
            assert_eq!(r.get(b"y")?, Some(b"1".to_vec()));
            Ok(())
        })
        .unwrap();
    }
}
