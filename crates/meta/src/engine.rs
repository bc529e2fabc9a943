//! The engine trait: an ordered, transactional key-value store. The
//! namespace (`namespace.rs`) is written against it alone, so another
//! engine (a distributed transactional store) can replace the embedded one
//! without anything above this trait knowing.

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
    /// and rolled back otherwise. Write transactions run one at a time.
    fn write<T>(&self, f: impl FnOnce(&mut dyn KvWrite) -> Result<T>) -> Result<T>;
    /// Runs `f` on a consistent snapshot; readers do not block writers.
    fn read<T>(&self, f: impl FnOnce(&dyn KvRead) -> Result<T>) -> Result<T>;
}
