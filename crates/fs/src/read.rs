//! The read path: a file's slice map (kept a few seconds), resolved into
//! blob ranges; read-ahead for sequential readers, the block cache for
//! random ones, and this client's buffered writes laid on top.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use cairn_proto::extents::Extents;
use cairn_proto::meta::Piece;
use cairn_proto::{Errno, FileId};

use crate::block_cache;
use crate::{Fs, FsError, Result};

/// A sequential reader is served this much ahead of what it asked for, in
/// one meta call and one download per blob piece; the next window is
/// fetched in the background while this one is served.
const READ_AHEAD: u64 = 4 << 20;
/// How far past a sequential reader's position a read still counts as
/// part of its stream (the kernel reads up to 16 MiB ahead, see
/// `cairn mount --read-ahead-kib`).
const STREAM_REACH: u64 = 32 << 20;
/// A blob piece larger than this is downloaded in parts of this size at
/// once.
const FETCH_PART: u64 = 1 << 20;
/// Files with a read-ahead window kept at once (bounds the memory).
const READ_AHEAD_FILES: usize = 16;

/// The read-ahead windows, and a count of invalidations: a read that
/// fetched before one keeps nothing (what it fetched may be older than a
/// write this mount just committed).
#[derive(Default)]
pub(crate) struct ReadAhead {
    windows: HashMap<u64, Window>,
    /// Files' slice maps, fetched at a first read: a random reader then
    /// costs one blob request per read, not a meta round trip too.
    maps: HashMap<u64, Arc<FileMap>>,
    epoch: u64,
}

impl ReadAhead {
    /// `[offset, offset + size)` of file `ino` if its window holds it all.
    pub(crate) fn in_window(&mut self, ino: u64, offset: u64, size: u32) -> Option<bytes::Bytes> {
        let w = self.windows.get_mut(&ino)?;
        let end = offset + u64::from(size);
        if offset < w.offset || end > w.offset + w.data.len() as u64 {
            return None;
        }
        let at = (offset - w.offset) as usize;
        w.last_end = end;
        Some(w.data.slice(at..at + size as usize))
    }

    /// The slice map of `ino` if it is fresh.
    pub(crate) fn fresh_map(&self, ino: u64) -> Option<Arc<FileMap>> {
        self.maps.get(&ino).filter(|m| m.fetched.elapsed() < MAP_FRESH).cloned()
    }
}

/// What a file is made of, as the meta service last said.
pub(crate) struct FileMap {
    pub(crate) size: u64,
    /// The slices laid over each other, for lookups by range.
    pub(crate) extents: Extents,
    fetched: Instant,
}

/// How long a slice map is used: the same close-to-open rule as read-ahead
/// (dropped at every open and at this mount's writes), and short enough
/// that blobs a compaction replaced are still there (the collector keeps
/// them for a grace period of minutes).
const MAP_FRESH: std::time::Duration = std::time::Duration::from_secs(5);
/// Slice maps kept at once.
const MAP_FILES: usize = 64;

/// Bytes of a file read ahead.
struct Window {
    offset: u64,
    data: bytes::Bytes,
    /// Where the last read served from this file ended.
    last_end: u64,
    /// The window after this one, being fetched.
    next: Option<Prefetch>,
}

/// A read-ahead window on its way: its offset and the task fetching it.
struct Prefetch {
    offset: u64,
    task: tokio::task::JoinHandle<Result<Vec<u8>>>,
}

impl Drop for Prefetch {
    /// A window dropped (the file changed, the reader went elsewhere) need
    /// not be fetched.
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fs {
    pub(crate) fn forget_ahead(&self, ino: u64) {
        let mut ra = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        ra.windows.remove(&ino);
        ra.maps.remove(&ino);
        ra.epoch += 1;
    }

    /// The slice map of `ino`: kept, or asked of the meta service.
    pub(crate) async fn file_map(&self, ino: u64) -> Result<Arc<FileMap>> {
        let epoch = {
            let ra = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = ra.fresh_map(ino) {
                return Ok(m);
            }
            ra.epoch
        };
        // A page at a time: a file written at random has more slices than
        // one answer carries.
        let (attr, slices, _) = self.meta.slices(self.vol.id, ino).await?;
        // Flattened once here, on a blocking thread (150,000 slices take a
        // few tens of milliseconds), so that each read looks its range up.
        let extents = tokio::task::spawn_blocking(move || Extents::build(&slices))
            .await
            .map_err(|e| FsError::new(Errno::EIO, format!("slice map task failed: {e}")))?;
        let map = Arc::new(FileMap { size: attr.size, extents, fetched: Instant::now() });
        let mut ra = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        // Not kept if the file changed here while it was asked for.
        if ra.epoch == epoch {
            if ra.maps.len() >= MAP_FILES {
                ra.maps.retain(|_, m| m.fetched.elapsed() < MAP_FRESH);
                if ra.maps.len() >= MAP_FILES {
                    ra.maps.clear();
                }
            }
            ra.maps.insert(ino, map.clone());
        }
        Ok(map)
    }

    /// Reads `size` bytes at `offset` (fewer at the end of the file): what
    /// is committed, with what this mount's handles still buffer on top, so
    /// a program reading what it just wrote does not force an upload (fsx,
    /// databases, editors do that constantly). Only when two handles buffer
    /// writes to the file (which is newer is unknown) are they written out
    /// first.
    pub async fn read(self: &Arc<Self>, ino: u64, offset: u64, size: u32) -> Result<bytes::Bytes> {
        let end = offset.saturating_add(u64::from(size));
        let mut overlay = Vec::new();
        let mut buffering = 0;
        for h in self.handles_of(ino) {
            let h = h.lock().await;
            if h.uploading.is_some() {
                // Bytes on their way are in neither the buffer nor the
                // file yet: they must land before this read.
                buffering += 2;
            } else if !h.is_empty() {
                buffering += 1;
                overlay = h.runs_in(offset, end);
            }
        }
        if buffering > 1 {
            self.flush_ino(ino).await?;
            overlay.clear();
        }
        let data = self.read_committed(ino, offset, size).await?;
        let pending = self.pending_end.lock().unwrap_or_else(|p| p.into_inner()).get(&ino).copied().unwrap_or(0);
        let covered = offset + data.len() as u64;
        let gap = pending > covered && covered < end;
        if !gap && overlay.is_empty() {
            return Ok(data);
        }
        // Buffered bytes go over the committed ones: a copy of its own.
        let mut data = data.to_vec();
        if gap {
            // Buffered writes past the committed end: the gap reads as zeros.
            data.resize((pending.min(end) - offset) as usize, 0);
        }
        for (at, bytes) in overlay {
            let from = (at - offset) as usize;
            let to = (from + bytes.len()).min(data.len());
            if from < to {
                data[from..to].copy_from_slice(&bytes[..to - from]);
            }
        }
        Ok(data.into())
    }

    /// What is committed of `[offset, offset + size)`. A read that
    /// continues where the last one ended fetches [`READ_AHEAD`] bytes and
    /// keeps what it did not return for the next reads.
    pub(crate) async fn read_committed(self: &Arc<Self>, ino: u64, offset: u64, size: u32) -> Result<bytes::Bytes> {
        let want = u64::from(size);
        let (sequential, near_stream, epoch, prefetched) = {
            let mut ra = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
            let epoch = ra.epoch;
            if let Some(d) = ra.in_window(ino, offset, size) {
                return Ok(d);
            }
            match ra.windows.get_mut(&ino) {
                Some(w) => {
                    let next = w.next.take_if(|p| p.offset == offset);
                    // The kernel's read-ahead sends a sequential reader's
                    // requests to several FUSE threads at once, so some
                    // arrive out of order just past (or before) the window.
                    let near =
                        offset + want > w.offset.saturating_sub(READ_AHEAD) && offset < w.last_end + STREAM_REACH;
                    (offset == w.last_end, near, epoch, next)
                }
                None => (offset == 0, false, epoch, None),
            }
        };
        // Out-of-order reads of a stream are fetched as asked, as before
        // the cache: taken for random reads, they would fill the cache with
        // the whole file and write it to the local disk at every re-read.
        if !sequential && !near_stream && prefetched.is_none() && self.blocks.is_some() {
            return self.fetch_through_cache(ino, offset, want).await.map(bytes::Bytes::from);
        }
        let fetch = if sequential { want.max(READ_AHEAD) } else { want };
        let data = match prefetched {
            // A window fetched in the background, unless its task failed
            // (then fetched again here, with the error this time).
            Some(mut p) => match (&mut p.task).await {
                Ok(Ok(d)) if d.len() as u64 >= want || (d.len() as u64) < READ_AHEAD => d,
                _ => self.fetch(ino, offset, fetch).await?,
            },
            None => self.fetch(ino, offset, fetch).await?,
        };
        let data = bytes::Bytes::from(data);
        let full = sequential && data.len() as u64 >= fetch;
        let served = data.len().min(size as usize);
        // What is served and what is kept share the window's one buffer.
        let rest = data.slice(served..);
        let mut ra = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        if ra.epoch == epoch {
            if ra.windows.len() >= READ_AHEAD_FILES && !ra.windows.contains_key(&ino) {
                if let Some(k) = ra.windows.keys().next().copied() {
                    ra.windows.remove(&k);
                }
            }
            let last_end = offset + served as u64;
            // A reader still going: fetch what follows this window now, so
            // it is there (or on its way) when the reader gets to it.
            let next = full.then(|| {
                let at = last_end + rest.len() as u64;
                let fs = self.clone();
                Prefetch { offset: at, task: tokio::spawn(async move { fs.fetch(ino, at, READ_AHEAD).await }) }
            });
            ra.windows.insert(ino, Window { offset: last_end, data: rest, last_end, next });
        }
        Ok(data.slice(..served))
    }

    /// The bytes of `[offset, offset + len)` as the meta service resolves
    /// them into blob pieces and holes.
    pub(crate) async fn fetch(&self, ino: u64, offset: u64, len: u64) -> Result<Vec<u8>> {
        let map = self.file_map(ino).await?;
        let pieces = map.extents.resolve(map.size, offset, len);
        let mut out = Vec::with_capacity(len as usize);
        for p in pieces {
            match p {
                Piece::Hole { len } => out.resize(out.len() + len as usize, 0),
                Piece::Data { blob, blob_offset, len } => {
                    let id = FileId::parse(&blob).map_err(|_| FsError::errno(Errno::EIO))?;
                    if len <= FETCH_PART {
                        // Straight into the window: no buffer of its own.
                        self.download_exactly(&id, blob_offset, len, &mut out).await?;
                        continue;
                    }
                    let start = out.len();
                    // A large piece comes in parts at once, which the client
                    // spreads over the group's members (one stream of
                    // verified reads keeps neither a disk nor a core busy),
                    // each written into its own place in the window.
                    out.resize(start + len as usize, 0);
                    let parts = out[start..].chunks_mut(FETCH_PART as usize).enumerate().map(|(i, place)| {
                        let (blobs, id) = (&self.blobs, &id);
                        async move {
                            let want = place.len() as u64;
                            let mut sink = std::io::Cursor::new(place);
                            let at = blob_offset + i as u64 * FETCH_PART;
                            let got = blobs.download_to(id, at, Some(want), &mut sink).await?;
                            if got != want {
                                return Err(FsError::errno(Errno::EIO));
                            }
                            Ok(())
                        }
                    });
                    futures::future::try_join_all(parts).await?;
                }
            }
        }
        Ok(out)
    }

    /// [`Fs::fetch`] for a random read, through the block cache: a block
    /// cached is read from the local disk; a block asked for a second time
    /// is fetched whole in the background and kept, while this read, like
    /// any other, is fetched as asked. A random reader waits for its 4 KiB,
    /// never for a 1 MiB block, and the cache fills beside it.
    pub(crate) async fn fetch_through_cache(self: &Arc<Self>, ino: u64, offset: u64, len: u64) -> Result<Vec<u8>> {
        let Some(cache) = &self.blocks else { return self.fetch(ino, offset, len).await };
        let map = self.file_map(ino).await?;
        let mut out = Vec::with_capacity(len as usize);
        for p in map.extents.resolve(map.size, offset, len) {
            let (blob, blob_offset, len) = match p {
                Piece::Hole { len } => {
                    out.resize(out.len() + len as usize, 0);
                    continue;
                }
                Piece::Data { blob, blob_offset, len } => (blob, blob_offset, len),
            };
            let id = FileId::parse(&blob).map_err(|_| FsError::errno(Errno::EIO))?;
            // An appender blob (its size is not in its name) can change:
            // never cached.
            let Some(blob_size) = id.info().size() else {
                self.download_exactly(&id, blob_offset, len, &mut out).await?;
                continue;
            };
            for s in block_cache::spans(blob_offset, blob_offset + len) {
                if let Some(d) = cache.read(&blob, s.block, s.from, s.to) {
                    out.extend_from_slice(&d);
                    continue;
                }
                // With every fill slot taken the sighting is not even
                // counted: the block is asked for again soon enough if the
                // reader keeps coming back to it.
                if let Ok(slot) = self.fills.clone().try_acquire_owned() {
                    if cache.wanted(&blob, s.block) {
                        let block_len = (s.block_start + block_cache::BLOCK).min(blob_size) - s.block_start;
                        let (fs, cache, blob, id) = (self.clone(), cache.clone(), blob.clone(), id.clone());
                        tokio::spawn(async move {
                            let mut whole = Vec::with_capacity(block_len as usize);
                            if fs.download_exactly(&id, s.block_start, block_len, &mut whole).await.is_ok() {
                                let _ = tokio::task::spawn_blocking(move || cache.insert(&blob, s.block, &whole)).await;
                            }
                            drop(slot);
                        });
                    }
                }
                let at = s.block_start + s.from as u64;
                self.download_exactly(&id, at, (s.to - s.from) as u64, &mut out).await?;
            }
        }
        Ok(out)
    }

    /// Appends `len` bytes of blob `id` at `offset` to `out`; fewer is an
    /// I/O error (the blob is shorter than the slice says).
    pub(crate) async fn download_exactly(&self, id: &FileId, offset: u64, len: u64, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        self.blobs.download_to(id, offset, Some(len), out).await?;
        if (out.len() - start) as u64 != len {
            return Err(FsError::errno(Errno::EIO));
        }
        Ok(())
    }
}
