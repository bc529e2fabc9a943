//! Answers without waiting, for a front end whose requests arrive on
//! threads that must not block (FUSE's): each either answers at once or
//! says the caller must take the asynchronous path. A gateway has no use
//! for them, so they are a trait it does not import.

use cairn_proto::meta::{Attr, Piece};

use crate::block_cache;
use crate::{Fs, Result};

/// Operations of [`Fs`] answered in the caller's thread when they need no
/// waiting; `None` means "use the asynchronous operation".
pub trait AnswerNow {
    /// See [`Fs::write`].
    fn write_now(&self, fh: u64, offset: u64, data: &[u8]) -> Option<Result<u32>>;
    /// See [`Fs::read`].
    fn read_now(&self, ino: u64, offset: u64, size: u32) -> Option<bytes::Bytes>;
    /// See [`Fs::flush`].
    fn flush_now(&self, fh: u64) -> Option<Result<()>>;
    /// See [`Fs::release`].
    fn release_now(&self, fh: u64) -> Option<Result<()>>;
    /// Attributes as the meta service last answered them, without this
    /// client's buffered writes (what a content cache stamps its pages
    /// with when it has nothing fresher).
    fn committed_attr(&self, ino: u64) -> Option<Attr>;
}

impl AnswerNow for Fs {
    /// Buffers a write at once when that needs no waiting: the handle is
    /// free, not in append mode, and the write does not fill its buffer.
    /// `None` means the caller must go through [`Fs::write`]. FUSE lends the
    /// bytes only for the length of its call: taking them here saves the
    /// copy that queueing them for an async task would cost.
    fn write_now(&self, fh: u64, offset: u64, data: &[u8]) -> Option<Result<u32>> {
        let h = match self.handle(fh) {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        let mut h = h.try_lock().ok()?;
        if h.append || h.would_fill(data.len()) {
            return None;
        }
        h.add(offset, data);
        self.note_pending(h.ino, offset + data.len() as u64);
        Some(Ok(data.len() as u32))
    }

    /// [`Fs::read`] when it needs no waiting: nothing of the file is
    /// buffered here and its bytes are in its read-ahead window or in the
    /// block cache. `None` means the caller must go through [`Fs::read`].
    /// A FUSE request served in its own thread skips two thread hand-offs,
    /// which cost more than a read of the page cache on a small machine.
    fn read_now(&self, ino: u64, offset: u64, size: u32) -> Option<bytes::Bytes> {
        for h in self.handles_of(ino) {
            let h = h.try_lock().ok()?;
            if h.uploading.is_some() || !h.is_empty() {
                return None;
            }
        }
        if self.pending_end.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&ino) {
            return None;
        }
        let map = {
            let mut ra = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = ra.in_window(ino, offset, size) {
                return Some(d);
            }
            ra.fresh_map(ino)?
        };
        let cache = self.blocks.as_ref()?;
        let mut out = Vec::with_capacity(size as usize);
        for p in map.extents.resolve(map.size, offset, u64::from(size)) {
            match p {
                Piece::Hole { len } => out.resize(out.len() + len as usize, 0),
                Piece::Data { blob, blob_offset, len } => {
                    for s in block_cache::spans(blob_offset, blob_offset + len) {
                        out.extend(cache.read(&blob, s.block, s.from, s.to)?);
                    }
                }
            }
        }
        Some(out.into())
    }

    /// [`Fs::flush`] when it needs no waiting: the handle is free and holds
    /// nothing, buffered or on its way (a file opened to be read). `None`
    /// means the caller must go through [`Fs::flush`]. Every `close` is a
    /// flush the kernel waits for; answered in the FUSE thread, a reader's
    /// `close` skips two thread hand-offs.
    fn flush_now(&self, fh: u64) -> Option<Result<()>> {
        let h = match self.handle(fh) {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        let h = h.try_lock().ok()?;
        (h.uploading.is_none() && h.is_empty()).then_some(Ok(()))
    }

    /// [`Fs::release`] when it needs no waiting: the handle is free and
    /// holds nothing, and the file is known to keep a link, so there is no
    /// orphan to release. `None` means the caller must go through
    /// [`Fs::release`].
    fn release_now(&self, fh: u64) -> Option<Result<()>> {
        let shared = match self.handle(fh) {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        let h = shared.try_lock().ok()?;
        let linked = self.attrs.get(h.ino).is_some_and(|a| a.nlink > 0);
        if h.uploading.is_some() || !h.is_empty() || !linked {
            return None;
        }
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).remove(&fh);
        Some(Ok(()))
    }

    fn committed_attr(&self, ino: u64) -> Option<Attr> {
        self.attrs.get(ino)
    }
}
