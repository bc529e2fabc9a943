//! Reused buffers for body chunks.
//!
//! A 1 MiB download or upload allocates a chunk buffer on the receiving
//! side and one on the reading side. Fresh allocations of that size come
//! from the operating system: every page is faulted in and zeroed by the
//! kernel, then zeroed again by `vec![0; n]`. A profile of 1 MiB downloads
//! at concurrency 8 had 40% of the machine's CPU in those two passes
//! (`clear_page_erms`, `memset`). Chunks of [`POOLED_MIN`] bytes or more are
//! therefore taken from a small process-wide pool of [`POOLED_SIZE`]-byte
//! buffers and given back when the last reference goes; smaller ones are
//! left to the allocator, which keeps them in its own thread caches.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use bytes::Bytes;

/// Size of every pooled buffer: the largest chunk a blob read produces.
pub const POOLED_SIZE: usize = 1 << 20;
/// Chunks from this size up use a pooled buffer.
pub const POOLED_MIN: usize = 64 << 10;
/// Most buffers kept idle (16 MiB); more in flight are simply freed.
const KEPT: usize = 16;

static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// A byte buffer of a requested length, from the pool when it is large
/// enough to be worth it. Its contents are unspecified (not zeroed): the
/// taker overwrites them. Derefs to the window `[start, end)`.
pub struct ChunkBuf {
    vec: Vec<u8>,
    start: usize,
    end: usize,
}

impl ChunkBuf {
    /// A buffer of `len` bytes.
    pub fn new(len: usize) -> Self {
        let vec = if (POOLED_MIN..=POOLED_SIZE).contains(&len) {
            let spare = SPARE.lock().unwrap_or_else(|p| p.into_inner()).pop();
            spare.unwrap_or_else(|| vec![0; POOLED_SIZE])
        } else {
            vec![0; len]
        };
        Self { vec, start: 0, end: len }
    }

    /// Narrows the window to `[from, to)` of the current window (no copy).
    ///
    /// # Panics
    /// If the range is not inside the current window.
    pub fn narrow(&mut self, from: usize, to: usize) {
        assert!(from <= to && self.start + to <= self.end, "window out of range");
        self.end = self.start + to;
        self.start += from;
    }

    /// The window as shared bytes; the buffer returns to the pool when the
    /// last clone is dropped.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl Deref for ChunkBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.vec[self.start..self.end]
    }
}

impl DerefMut for ChunkBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..self.end]
    }
}

impl AsRef<[u8]> for ChunkBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for ChunkBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkBuf").field("len", &(self.end - self.start)).finish()
    }
}

impl Drop for ChunkBuf {
    fn drop(&mut self) {
        if self.vec.len() == POOLED_SIZE {
            let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
            if spare.len() < KEPT {
                spare.push(std::mem::take(&mut self.vec));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_buffers_are_reused_and_windows_narrow() {
        let mut a = ChunkBuf::new(POOLED_SIZE);
        a[..3].copy_from_slice(b"abc");
        let ptr = a.vec.as_ptr();
        drop(a);
        // Another test may take it first; only check when it came back.
        let b = ChunkBuf::new(100 << 10);
        assert_eq!(b.len(), 100 << 10);
        if b.vec.as_ptr() == ptr {
            assert_eq!(&b[..3], b"abc");
        }
        let mut c = ChunkBuf::new(10);
        c.copy_from_slice(b"0123456789");
        c.narrow(2, 7);
        assert_eq!(&*c, b"23456");
        c.narrow(1, 3);
        assert_eq!(&*c, b"34");
        let bytes = c.into_bytes();
        assert_eq!(&bytes[..], b"34");
        assert_eq!(&bytes.slice(1..)[..], b"4");
    }
}
