//! The embedded engine: one redb file. redb commits with a checksummed,
//! copy-on-write B-tree and fsync, so a SIGKILL or power cut at any moment
//! leaves the last committed transaction (see docs/decisions/0006).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::engine::{Engine, KvRead, KvWrite};
use crate::error::{MetaError, Result};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

fn engine_err(e: impl std::fmt::Display) -> MetaError {
    MetaError::Engine(e.to_string())
}

/// redb in one file.
pub struct RedbEngine {
    db: Database,
}

impl RedbEngine {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(engine_err)?;
        let txn = db.begin_write().map_err(engine_err)?;
        txn.open_table(KV).map_err(engine_err)?;
        txn.commit().map_err(engine_err)?;
        Ok(Self { db })
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
        let txn = self.db.begin_write().map_err(engine_err)?;
        let out = {
            let table = txn.open_table(KV).map_err(engine_err)?;
            let mut w = Writer { table };
            f(&mut w)
        };
        match out {
            Ok(v) => {
                txn.commit().map_err(engine_err)?;
                Ok(v)
            }
            Err(e) => {
                let _ = txn.abort();
                Err(e)
            }
        }
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
}
