//! The engine trait: an ordered, transactional key-value store. The
//! namespace (`namespace.rs`) and the server are written against it alone,
//! so another engine (a distributed transactional store: etcd, TiKV) can
//! replace the embedded one without anything above this trait knowing.
//!
//! What the trait asks of an engine, and what it allows a remote one:
//! - keys and values are bytes, keys ordered bytewise; no engine type
//!   crosses the trait, and errors are [`crate::MetaError::Engine`] with a cause;
//! - a write transaction is serialisable: it sees its own writes, and it
//!   commits whole or not at all. An engine with optimistic transactions
//!   (etcd's compare-and-swap on revisions) may run the closure again
//!   after a conflict, so closures are `FnMut` and must have no effects
//!   outside the transaction: everything they do goes through `KvWrite`;
//! - a read is one consistent snapshot (etcd: one revision), and may be
//!   run again too;
//! - every call may block for a network round trip: the server calls the
//!   engine on blocking threads, except where the engine says it would
//!   not wait ([`Engine::reads_without_waiting`],
//!   [`Engine::writes_lazily_without_waiting`]).

use crate::error::Result;

/// Reads inside a transaction.
pub trait KvRead {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Up to `limit` pairs with `start <= key < end`, in key order.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

/// Reads and writes inside a read-write transaction.
pub trait KvWrite: KvRead {
    /// Sets `key` to `value`.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Removes `key` (absent is fine).
    fn delete(&mut self, key: &[u8]) -> Result<()>;
}

/// A transactional key-value engine. Every write transaction is atomic and
/// durable once `write` returns `Ok`; a crash at any moment leaves either
/// all of it or none.
pub trait Engine: Send + Sync + 'static {
    /// Runs `f` in one read-write transaction, committed if it returns `Ok`
    /// and rolled back otherwise. Write transactions are serialisable; an
    /// engine may run `f` more than once (a conflict), committing only the
    /// last run.
    fn write<T>(&self, f: impl FnMut(&mut dyn KvWrite) -> Result<T>) -> Result<T>;
    /// [`Engine::write`], except that a power cut (not a process crash)
    /// right after it returns may still lose the transaction: it is on
    /// disk a few milliseconds later, or at the next [`Engine::write`] or
    /// [`Engine::sync`], whichever comes first, and never after a later
    /// transaction (what survives is always a prefix). Namespace changes
    /// take this, as they do on a local file system: durable at `fsync`.
    fn write_lazily<T>(&self, f: impl FnMut(&mut dyn KvWrite) -> Result<T>) -> Result<T> {
        self.write(f)
    }
    /// Puts every transaction committed so far on disk.
    fn sync(&self) -> Result<()> {
        Ok(())
    }
    /// Whether a [`Engine::write_lazily`] begun now would finish without
    /// waiting: no batch being committed, no sync or durable commit due.
    /// A hint (another writer may arrive at once); `false` when unknown.
    fn writes_lazily_without_waiting(&self) -> bool {
        false
    }
    /// Whether a read answers without waiting on a disk or a network (an
    /// embedded engine's cached pages): the server then answers small
    /// reads on the connection's own task instead of a blocking thread.
    /// `false` when unknown, as for any remote engine.
    fn reads_without_waiting(&self) -> bool {
        false
    }
    /// Runs `f` on a consistent snapshot; readers do not block writers. An
    /// engine may run `f` more than once (a snapshot it lost).
    fn read<T>(&self, f: impl FnMut(&dyn KvRead) -> Result<T>) -> Result<T>;
}

/// One operation's writes, held aside over a shared transaction until the
/// operation succeeds: several operations share one engine transaction
/// (group commit), and a failed one must leave nothing of itself in it.
pub struct Overlay<'a> {
    base: &'a dyn KvRead,
    /// Key → new value, or `None` for a delete.
    changes: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Overlay<'a> {
    /// Writes held over `base`.
    pub fn new(base: &'a dyn KvRead) -> Self {
        Self { base, changes: Default::default() }
    }

    /// The held writes, in key order, to apply to the transaction.
    pub fn into_changes(self) -> std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        self.changes
    }
}

impl KvRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.changes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let held: Vec<_> =
            self.changes.range::<[u8], _>((std::ops::Bound::Included(start), std::ops::Bound::Excluded(end))).collect();
        // Enough of the base to fill `limit` even if held deletes hide some.
        let deletes = held.iter().filter(|(_, v)| v.is_none()).count();
        let base = self.base.scan(start, end, limit.saturating_add(deletes))?;
        let mut out = Vec::with_capacity(limit.min(base.len() + held.len()));
        let (mut b, mut h) = (base.into_iter().peekable(), held.into_iter().peekable());
        while out.len() < limit {
            let take_held = match (b.peek(), h.peek()) {
                (None, None) => break,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((bk, _)), Some((hk, _))) => hk.as_slice() <= bk.as_slice(),
            };
            if take_held {
                let Some((k, v)) = h.next() else { break };
                if b.peek().is_some_and(|(bk, _)| bk == k) {
                    b.next();
                }
                if let Some(v) = v {
                    out.push((k.clone(), v.clone()));
                }
            } else if let Some(pair) = b.next() {
                out.push(pair);
            }
        }
        Ok(out)
    }
}

impl KvWrite for Overlay<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.changes.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.changes.insert(key.to_vec(), None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Mem(BTreeMap<Vec<u8>, Vec<u8>>);
    impl KvRead for Mem {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(key).cloned())
        }
        fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            Ok(self.0.range(start.to_vec()..end.to_vec()).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect())
        }
    }

    #[test]
    fn overlay_reads_its_own_writes_over_the_base() {
        let base =
            Mem([(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec()), (b"d".to_vec(), b"4".to_vec())]
                .into_iter()
                .collect());
        let mut o = Overlay::new(&base);
        o.delete(b"a").unwrap();
        o.put(b"c", b"3").unwrap();
        o.put(b"d", b"40").unwrap();
        assert_eq!(o.get(b"a").unwrap(), None);
        assert_eq!(o.get(b"b").unwrap(), Some(b"2".to_vec()));
        let all = o.scan(b"a", b"z", 10).unwrap();
        let keys: Vec<_> = all.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        assert_eq!(keys, vec![(&b"b"[..], &b"2"[..]), (b"c", b"3"), (b"d", b"40")]);
        assert_eq!(o.scan(b"a", b"z", 1).unwrap().len(), 1);
        assert_eq!(o.scan(b"c", b"d", 10).unwrap(), vec![(b"c".to_vec(), b"3".to_vec())]);
        assert_eq!(o.into_changes().len(), 3);
    }
}
