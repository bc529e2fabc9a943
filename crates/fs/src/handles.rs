//! Open files: the table of handles, each with its write buffer
//! ([`crate::handle::Handle`]); flushing one, closing one.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use cairn_proto::meta::MetaRequest;
use cairn_proto::Errno;

use crate::handle::Handle;
use crate::{Fs, FsError, Result};

/// An open handle, shared by the requests that use it.
pub(crate) type SharedHandle = Arc<tokio::sync::Mutex<Handle>>;

impl Fs {
    /// Opens a file: a handle that buffers writes.
    pub fn open_handle(&self, ino: u64, append: bool) -> u64 {
        self.forget_ahead(ino);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let h = Handle::new(ino, append, self.vol.chunk_size.min(8 << 20) as usize);
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).insert(fh, (ino, Arc::new(tokio::sync::Mutex::new(h))));
        fh
    }

    pub(crate) fn handle(&self, fh: u64) -> Result<SharedHandle> {
        let hs = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        hs.get(&fh).map(|(_, h)| h.clone()).ok_or(FsError::errno(Errno::EBADF))
    }

    /// The open handles of one file.
    pub(crate) fn handles_of(&self, ino: u64) -> Vec<SharedHandle> {
        let hs = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        hs.values().filter(|(i, _)| *i == ino).map(|(_, h)| h.clone()).collect()
    }

    /// Writes out a handle's buffer (flush, fsync).
    pub async fn flush(&self, fh: u64) -> Result<()> {
        let h = self.handle(fh)?;
        let mut h = h.lock().await;
        self.write_out(&mut h).await
    }

    /// Writes out every open handle of `ino` (before a read or truncate
    /// sees the file).
    pub(crate) async fn flush_ino(&self, ino: u64) -> Result<()> {
        for h in self.handles_of(ino) {
            self.write_out(&mut *h.lock().await).await?;
        }
        Ok(())
    }

    /// Closes a handle: writes out its buffer; a file whose last link went
    /// while it was open is released once no handle holds it.
    pub async fn release(&self, fh: u64) -> Result<()> {
        let h = self.handle(fh)?;
        let ino = {
            let mut h = h.lock().await;
            let r = self.write_out(&mut h).await;
            self.handles.lock().unwrap_or_else(|p| p.into_inner()).remove(&fh);
            r?;
            h.ino
        };
        // Only an unlinked file (an orphan) has anything to release. One
        // this mount knows to have a link is skipped: a round trip per
        // closed file saved. If another mount unlinked it a moment ago and
        // the change feed has not said so yet, the orphan is freed when
        // its lease runs out instead (no `KeepOpen` lists it any more).
        let linked = self.attrs.get(ino).is_some_and(|a| a.nlink > 0);
        if !linked && self.handles_of(ino).is_empty() {
            self.call(MetaRequest::Release { vol: self.vol.id, ino }).await?;
        }
        Ok(())
    }

    /// Lets go of a handle whose content is not wanted (an upload that
    /// failed or was cut off): what it buffers is dropped; a buffer already
    /// on its way is committed, so that its blob goes to the collector with
    /// the file rather than staying in the cluster unknown to the meta
    /// service; the file, if it has no name, is released.
    pub(crate) async fn abandon(&self, fh: u64) {
        let Ok(h) = self.handle(fh) else { return };
        let ino = {
            let mut h = h.lock().await;
            if let Some(before) = h.uploading.take() {
                if let Err(e) = self.commit_upload(h.ino, before).await {
                    tracing::warn!(error = %e, "an abandoned upload's last buffer could not be committed");
                }
            }
            h.take();
            self.handles.lock().unwrap_or_else(|p| p.into_inner()).remove(&fh);
            h.ino
        };
        self.forget_unstored(ino);
        if self.handles_of(ino).is_empty() {
            if let Err(e) = self.call(MetaRequest::Release { vol: self.vol.id, ino }).await {
                tracing::warn!(error = %e, "an abandoned upload could not be released; its lease frees it");
            }
        }
    }
}
