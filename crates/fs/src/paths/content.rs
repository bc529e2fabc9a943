//! File content by path: a range read as a stream, a file created or
//! replaced from a stream atomically, and a server-side copy.
//!
//! An upload is written to a file of its own that has no name (made, then
//! unlinked while open: the meta service keeps it for as long as this
//! client says it has it open), and is given its name only once all of
//! its content is committed: linked under a hidden name, then renamed
//! over the old file in one meta transaction. A reader sees the old file
//! or the new one, never a part. An upload that fails or is cut off is
//! let go: the file, and with it its blobs, go to the collector, and a
//! client that dies mid-upload stops keeping its file open, so the meta
//! service frees it after the open-file lease.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cairn_proto::meta::{Attr, Kind, MetaRequest, NewNode, RenameMode};
use cairn_proto::Errno;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{PathFs, Resolved, VolPath};
use crate::fs::expect_attr;
use crate::permissions::{check, check_create, check_delete, new_owner, Caller, READ};
use crate::{Fs, FsError, Result};

/// Names of uploads not yet published start with this: listings leave
/// them out. A name lives only for the one round trip between the link
/// and the rename that publish an upload.
pub(crate) const UPLOAD_PREFIX: &[u8] = b".cairn-upload-";
/// Bytes read from an upload's stream and handed to the write path at
/// once, and bytes of a read stream's items.
const CHUNK: usize = 1 << 20;

/// A file's bytes, as a stream of chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<bytes::Bytes>> + Send>>;

/// How a new file is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOptions {
    /// Permission bits (the front end applies its umask).
    pub perm: u32,
    /// Extended attributes set before the file appears (S3's user
    /// metadata as `user.*`): the file never shows without them.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Default for PutOptions {
    fn default() -> Self {
        Self { perm: 0o644, xattrs: Vec::new() }
    }
}

/// Makes each upload's hidden name unique within this client.
static NEXT_UPLOAD: AtomicU64 = AtomicU64::new(1);

/// An open handle, closed when dropped: the meta service keeps an
/// unlinked file (an upload, or a file replaced while it is read) while a
/// handle on it is open.
struct Opened {
    fs: Arc<Fs>,
    fh: u64,
}

impl Drop for Opened {
    fn drop(&mut self) {
        let (fs, fh) = (self.fs.clone(), self.fh);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = fs.release(fh).await {
                    tracing::warn!(error = %e, "cannot close a file read by path");
                }
            });
        }
    }
}

impl PathFs {
    /// `len` bytes (to the end if `None`) of the file at `path` from
    /// `offset`, as a stream, with the file's attributes. The file read is
    /// the one the path leads to now: a replace meanwhile does not change
    /// what the stream yields. `who` needs read permission.
    pub async fn read(
        &self,
        who: &Caller,
        path: &VolPath,
        offset: u64,
        len: Option<u64>,
    ) -> Result<(Attr, ByteStream)> {
        let a = self.stat(who, path).await?;
        match a.kind {
            Kind::File => {}
            Kind::Dir => return Err(FsError::new(Errno::EISDIR, "is a directory")),
            _ => return Err(FsError::new(Errno::EINVAL, "not a regular file")),
        }
        check(who, &a, READ, "cannot read the file")?;
        let end = len.map_or(a.size, |l| offset.saturating_add(l).min(a.size));
        let opened = Opened { fs: self.fs.clone(), fh: self.fs.open_handle(a.ino, false) };
        let ino = a.ino;
        let stream = futures::stream::try_unfold((opened, offset), move |(opened, at)| async move {
            if at >= end {
                return Ok(None);
            }
            let want = (end - at).min(CHUNK as u64) as u32;
            let got = opened.fs.read(ino, at, want).await?;
            if got.is_empty() {
                // The file shrank under the reader.
                return Err(FsError::new(Errno::EIO, "the file ended before its size"));
            }
            let next = at + got.len() as u64;
            Ok(Some((got, (opened, next))))
        });
        Ok((a, Box::pin(stream)))
    }

    /// Creates or replaces the file at `path` with the bytes of `body`,
    /// atomically: until the stream has ended and every byte is stored,
    /// the path shows the old file (or nothing); then the new one. If the
    /// stream fails, nothing is left. `who` needs write and search
    /// permission on the directory, and, to replace a file in a sticky
    /// directory, to own it or the directory.
    pub async fn put<R: AsyncRead + Unpin + Send>(
        &self,
        who: &Caller,
        path: &VolPath,
        mut body: R,
        opts: &PutOptions,
    ) -> Result<Attr> {
        let target = self.writable_target(who, path).await?;
        let upload = self.hidden_file(who, &target.dir, opts.perm).await?;
        let mut buf = vec![0; CHUNK];
        let mut at = 0u64;
        let written: Result<()> = async {
            loop {
                let n = read_full(&mut body, &mut buf).await?;
                if n == 0 {
                    break;
                }
                self.fs.write(upload.fh, at, &buf[..n]).await?;
                at += n as u64;
            }
            self.fs.flush(upload.fh).await
        }
        .await;
        if let Err(e) = written {
            self.fs.abandon(upload.fh).await;
            return Err(e);
        }
        self.publish(who, &target, upload, &opts.xattrs).await
    }

    /// Copies the file at `from` to `to` (created or replaced atomically,
    /// as by [`PathFs::put`]) without copying its bytes: the copy is made
    /// of the same blobs, which never change. The user's extended
    /// attributes are copied too. `who` needs read permission on the
    /// source and what [`PathFs::put`] needs at the target.
    pub async fn copy(&self, who: &Caller, from: &VolPath, to: &VolPath) -> Result<Attr> {
        let src = self.stat(who, from).await?;
        match src.kind {
            Kind::File => {}
            Kind::Dir => return Err(FsError::new(Errno::EISDIR, "is a directory")),
            _ => return Err(FsError::new(Errno::EINVAL, "not a regular file")),
        }
        check(who, &src, READ, "cannot read the source")?;
        let target = self.writable_target(who, to).await?;
        let mut xattrs = Vec::new();
        for name in self.fs.listxattr(src.ino).await? {
            if name.starts_with(super::names::USER_XATTR) {
                let value = self.fs.getxattr(src.ino, &name).await?;
                xattrs.push((name, value));
            }
        }
        let copy = self.hidden_file(who, &target.dir, src.perm & 0o777).await?;
        let req = MetaRequest::CloneContent { vol: self.fs.vol.id, from: src.ino, to: copy.ino };
        if let Err(e) = self.fs.call(req).await.and_then(expect_attr) {
            self.fs.abandon(copy.fh).await;
            return Err(e);
        }
        self.publish(who, &target, copy, &xattrs).await
    }

    /// Where a new file may go at `path` for `who`: a directory it may
    /// create in, and a name that is free or holds a file it may replace.
    async fn writable_target(&self, who: &Caller, path: &VolPath) -> Result<Resolved> {
        let target = self.resolve(who, path).await?;
        check_create(who, &target.dir)?;
        if let Some(old) = &target.attr {
            if old.kind == Kind::Dir {
                return Err(FsError::new(Errno::EISDIR, "a directory is in the way"));
            }
            check_delete(who, &target.dir, old)?;
        }
        Ok(target)
    }

    /// A new, empty file in `dir` with no name, open: made under a hidden
    /// name and unlinked at once.
    async fn hidden_file(&self, who: &Caller, dir: &Attr, perm: u32) -> Result<Upload> {
        let (uid, gid, perm) = new_owner(who, dir, perm & 0o7777, false);
        let name = upload_name(self.fs.meta.session());
        let node = NewNode { kind: Kind::File, perm, uid, gid, rdev: 0, target: Vec::new() };
        let a = self.fs.mknod(dir.ino, &name, node).await?;
        let fh = self.fs.open_handle(a.ino, false);
        if let Err(e) = self.fs.unlink(dir.ino, &name).await {
            self.fs.abandon(fh).await;
            let _ = self.fs.unlink(dir.ino, &name).await;
            return Err(e);
        }
        Ok(Upload { ino: a.ino, fh })
    }

    /// Gives a finished upload its name: its extended attributes first,
    /// then a link under a hidden name and a rename over the target, one
    /// meta transaction each. The target is checked again here, as the
    /// kernel's rename would: it may have changed during the upload.
    async fn publish(
        &self,
        who: &Caller,
        target: &Resolved,
        upload: Upload,
        xattrs: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Attr> {
        let dir = target.dir.ino;
        let hidden = upload_name(self.fs.meta.session());
        let published: Result<()> = async {
            for (name, value) in xattrs {
                self.fs.setxattr(upload.ino, name, value, false, false).await?;
            }
            let now = match self.fs.lookup(dir, &target.name).await {
                Ok(a) => Some(a),
                Err(e) if e.errno == Errno::ENOENT => None,
                Err(e) => return Err(e),
            };
            if let Some(old) = &now {
                if old.kind == Kind::Dir {
                    return Err(FsError::new(Errno::EISDIR, "a directory is in the way"));
                }
                check_delete(who, &target.dir, old)?;
            }
            self.fs.link(upload.ino, dir, &hidden).await?;
            if let Err(e) = self.fs.rename(dir, &hidden, dir, &target.name, RenameMode::Replace).await {
                let _ = self.fs.unlink(dir, &hidden).await;
                return Err(e);
            }
            Ok(())
        }
        .await;
        if let Err(e) = published {
            self.fs.abandon(upload.fh).await;
            return Err(e);
        }
        self.fs.release(upload.fh).await?;
        self.fs.fresh_attr(upload.ino).await
    }
}

/// An upload in progress: its file and the handle that keeps it.
struct Upload {
    ino: u64,
    fh: u64,
}

/// A hidden name, unique to this client (`session`) and upload.
fn upload_name(session: u64) -> Vec<u8> {
    let n = NEXT_UPLOAD.fetch_add(1, Ordering::Relaxed);
    let mut name = UPLOAD_PREFIX.to_vec();
    name.extend_from_slice(format!("{session:016x}-{n}").as_bytes());
    name
}

/// Fills `buf` from `body` unless it ends first; the bytes read. A body
/// that fails is an upload cut off (ECANCELED, with why).
async fn read_full<R: AsyncRead + Unpin>(body: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match body.read(&mut buf[n..]).await {
            Ok(0) => break,
            Ok(got) => n += got,
            Err(e) => return Err(FsError::new(Errno::ECANCELED, format!("the upload's stream failed: {e}"))),
        }
    }
    Ok(n)
}
