//! The write path: bytes buffered per handle, uploaded as new blobs when
//! a buffer fills or the file is flushed, then committed to the meta
//! service as slices on top of the file's content.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cairn_client::{Body, UploadOptions};
use cairn_proto::meta::{MetaRequest, Slice};
use cairn_proto::{Errno, FileId};

use crate::fs::expect_attr;
use crate::handle::Handle;
use crate::{Fs, FsError, Result};

/// How long an upload waits for the cluster to have a member ready (a
/// cluster starting, a group failing over) before the write fails.
const UPLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl Fs {
    /// Records that buffered writes reach `end` (sizes shown include them).
    pub(crate) fn note_pending(&self, ino: u64, end: u64) {
        let mut p = self.pending_end.lock().unwrap_or_else(|p| p.into_inner());
        let e = p.entry(ino).or_insert(end);
        *e = (*e).max(end);
    }

    /// Writes through a handle (buffered); returns the bytes taken.
    /// A full buffer starts uploading in the background while the writer
    /// fills the next one; the upload before it is then waited for and
    /// committed, so slices are committed in the order they were written
    /// and at most one buffer per file is in flight.
    pub async fn write(self: &Arc<Self>, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let h = self.handle(fh)?;
        let mut h = h.lock().await;
        let offset = if h.append { self.getattr(h.ino).await?.size.max(h.buffered_end()) } else { offset };
        h.add(offset, data);
        self.note_pending(h.ino, offset + data.len() as u64);
        if h.full() {
            self.forget_ahead(h.ino);
            let runs = h.take();
            let fs = self.clone();
            let before = h.uploading.replace(tokio::spawn(async move { fs.upload_runs(runs).await }));
            if let Some(before) = before {
                self.commit_upload(h.ino, before).await?;
            }
        }
        Ok(data.len() as u32)
    }

    /// Uploads and commits everything a handle holds: the buffer in flight
    /// first, then what is buffered.
    pub(crate) async fn write_out(&self, h: &mut Handle) -> Result<()> {
        if let Some(before) = h.uploading.take() {
            self.commit_upload(h.ino, before).await?;
        }
        let runs = h.take();
        if runs.is_empty() {
            return Ok(());
        }
        self.forget_ahead(h.ino);
        let slices = self.upload_runs(runs).await.inspect_err(|_| self.forget_unstored(h.ino))?;
        self.commit(h.ino, slices).await
    }

    /// After a write that could not be stored: the file shows what was
    /// committed, not the lost bytes (as zeros) nor pages the kernel kept
    /// of them.
    pub(crate) fn forget_unstored(&self, ino: u64) {
        if let Some(c) = self.content.get() {
            c.unsure(ino);
        }
        self.pending_end.lock().unwrap_or_else(|p| p.into_inner()).remove(&ino);
    }

    /// Waits for a background upload and commits its slices.
    pub(crate) async fn commit_upload(
        &self,
        ino: u64,
        task: tokio::task::JoinHandle<Result<Vec<Slice>>>,
    ) -> Result<()> {
        let slices = task
            .await
            .map_err(|e| FsError::new(Errno::EIO, format!("upload task failed: {e}")))
            .and_then(|r| r)
            .inspect_err(|_| self.forget_unstored(ino))?;
        self.commit(ino, slices).await
    }

    /// Uploads buffered runs as one new blob; returns them as slices.
    /// Several runs (scattered or random writes) go up as one blob, each
    /// run a slice of a range of it: one upload and one fsync per member
    /// for the whole buffer, where a blob per run cost a round trip and a
    /// commit each (2,048 of them for a buffer of random 4 KiB writes).
    pub(crate) async fn upload_runs(&self, mut runs: Vec<(u64, Vec<u8>)>) -> Result<Vec<Slice>> {
        // (file offset, length, offset in the blob) of each run.
        let placed: Vec<(u64, u64, u64)> = runs
            .iter()
            .scan(0, |at, (offset, data)| {
                let len = data.len() as u64;
                *at += len;
                Some((*offset, len, *at - len))
            })
            .collect();
        let blob = match runs.len() {
            0 => return Ok(Vec::new()),
            1 => runs.swap_remove(0).1, // a sequential writer's run: no copy
            _ => runs.into_iter().map(|(_, data)| data).collect::<Vec<_>>().concat(),
        };
        let opts = UploadOptions { group: self.pick_group(), appender: false, ext: String::new() };
        let id = self.upload(&opts, blob).await?.to_string();
        Ok(placed
            .into_iter()
            .map(|(offset, len, blob_offset)| Slice { offset, len, blob: id.clone(), blob_offset })
            .collect())
    }

    /// Commits uploaded slices on top of a file.
    pub(crate) async fn commit(&self, ino: u64, slices: Vec<Slice>) -> Result<()> {
        let a = expect_attr(self.call(MetaRequest::Write { vol: self.vol.id, ino, slices }).await?)?;
        // Again after the commit: a read may have fetched the old bytes meanwhile.
        self.forget_ahead(ino);
        let mut p = self.pending_end.lock().unwrap_or_else(|p| p.into_inner());
        if p.get(&ino).is_some_and(|end| *end <= a.size) {
            p.remove(&ino);
        }
        Ok(())
    }

    /// Uploads one blob, waiting (up to [`UPLOAD_WAIT`]) while no member
    /// is ready to take it.
    pub(crate) async fn upload(&self, opts: &UploadOptions, data: Vec<u8>) -> Result<FileId> {
        let data = bytes::Bytes::from(data);
        let deadline = std::time::Instant::now() + UPLOAD_WAIT;
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            match self.blobs.upload(opts, Body::Bytes(data.clone())).await {
                Err(e)
                    if e.code() == Some(cairn_proto::ErrorCode::Unavailable)
                        && std::time::Instant::now() + pause < deadline =>
                {
                    tracing::debug!(error = %e, "no member ready for an upload; waiting");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
                other => return other.map_err(|e| self.not_stored(opts, data.len(), e)),
            }
        }
    }

    /// A write that could not be stored fails with EIO (ENOSPC when the
    /// groups are full), never with what the blob layer answered (a
    /// missing group is ENOENT there, which `close` must not say), and the
    /// mount's log says why.
    pub(crate) fn not_stored(&self, opts: &UploadOptions, len: usize, e: cairn_client::Error) -> FsError {
        let group = opts.group.as_deref().unwrap_or("(any)");
        let errno = if e.code() == Some(cairn_proto::ErrorCode::NoSpace) { Errno::ENOSPC } else { Errno::EIO };
        tracing::error!(volume = %self.vol.name, group, bytes = len, error = %e, "a write could not be stored; the application is answered an error");
        FsError { errno, message: format!("cannot store {len} bytes in group {group}: {e}") }
    }

    pub(crate) fn pick_group(&self) -> Option<String> {
        if self.vol.groups.is_empty() {
            return None;
        }
        let i = self.next_group.fetch_add(1, Ordering::Relaxed) % self.vol.groups.len();
        Some(self.vol.groups[i].clone())
    }
}
