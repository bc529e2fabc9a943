//! An engine in memory: nothing is durable. For tests (the workers' unit
//! tests run the namespace over it), and the second implementation that
//! keeps the [`Engine`] trait honest: nothing in it is redb's.
//!
//! It can behave as an optimistic remote engine does after a conflict:
//! with [`MemEngine::rerunning_writes`], every write transaction runs its
//! closure once, throws that run away, and runs it again, so a namespace
//! operation that is not safe to retry shows in tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use crate::engine::{Engine, KvRead, KvWrite, Overlay};
use crate::error::Result;

/// Key-value pairs in a `BTreeMap`, one writer at a time.
#[derive(Default)]
pub struct MemEngine {
    data: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    rerun_writes: bool,
}

impl MemEngine {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty engine that runs every write closure twice, keeping the
    /// second run (as an engine retrying after a conflict does).
    pub fn rerunning_writes() -> Self {
        Self { rerun_writes: true, ..Self::default() }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Snapshot<'a>(&'a BTreeMap<Vec<u8>, Vec<u8>>);

impl KvRead for Snapshot<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(key).cloned())
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        Ok(self.0.range(start.to_vec()..end.to_vec()).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

impl Engine for MemEngine {
    fn write<T>(&self, mut f: impl FnMut(&mut dyn KvWrite) -> Result<T>) -> Result<T> {
        let mut data = self.lock();
        let changes = {
            let base = Snapshot(&data);
            if self.rerun_writes {
                // The first run's writes are dropped, as a conflict drops them.
                let mut lost = Overlay::new(&base);
                let _ = f(&mut lost);
            }
            let mut held = Overlay::new(&base);
            let out = f(&mut held)?;
            (out, held.into_changes())
        };
        let (out, changes) = changes;
        for (k, v) in changes {
            match v {
                Some(v) => data.insert(k, v),
                None => data.remove(&k),
            };
        }
        Ok(out)
    }

    fn reads_without_waiting(&self) -> bool {
        true
    }

    fn read<T>(&self, mut f: impl FnMut(&dyn KvRead) -> Result<T>) -> Result<T> {
        let data = self.lock();
        f(&Snapshot(&data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::MetaError;

    #[test]
    fn a_write_commits_whole_or_not_at_all_and_a_rerun_keeps_the_last_run_only() {
        let e = MemEngine::rerunning_writes();
        let mut runs = 0;
        e.write(|w| {
            runs += 1;
            let n = w.get(b"n")?.map_or(0, |v| v[0]);
            w.put(b"n", &[n + 1])
        })
        .unwrap();
        assert_eq!(runs, 2);
        let failed: Result<()> = e.write(|w| {
            w.put(b"x", b"1")?;
            Err(MetaError::Invalid("no".into()))
        });
        assert!(failed.is_err());
        e.read(|r| {
            assert_eq!(r.get(b"n")?, Some(vec![1]), "counted once");
            assert_eq!(r.get(b"x")?, None);
            assert_eq!(r.scan(b"a", b"z", 10)?.len(), 1);
            Ok(())
        })
        .unwrap();
    }
}
