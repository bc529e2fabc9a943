//! Inode operations: names, attributes, links, listings, by inode number
//! (what FUSE and NFS speak). Attributes come from the mount's cache when
//! it knows them, and always show this client's buffered writes.

use cairn_proto::meta::{Attr, MetaRequest, MetaResponse, NewNode, RenameMode, SetAttr};
use cairn_proto::Errno;

use crate::fs::expect_attr;
use crate::{Fs, FsError, Result};

/// Entries per readdir page asked of the meta service.
pub(crate) const READDIR_PAGE: u32 = 1000;

impl Fs {
    /// Attributes as this mount sees them: with its buffered writes.
    pub(crate) fn with_pending(&self, mut a: Attr) -> Attr {
        if let Some(end) = self.pending_end.lock().unwrap_or_else(|p| p.into_inner()).get(&a.ino) {
            a.size = a.size.max(*end);
        }
        a
    }

    /// `name` in directory `parent`, when this mount's cache knows it:
    /// the FUSE layer answers such a lookup in its own thread, without a
    /// task (the common case for `stat` loops).
    pub fn cached_lookup(&self, parent: u64, name: &[u8]) -> Option<Attr> {
        self.attrs.lookup(parent, name).map(|a| self.with_pending(a))
    }

    /// Whether `name` is known not to be in `parent` without asking: the
    /// directory is one whose every name this mount knows (see
    /// `complete_dirs`).
    pub fn known_absent(&self, parent: u64, name: &[u8]) -> bool {
        self.complete.absent(parent, name)
    }

    /// Attributes, when this mount's cache knows them (see
    /// [`Fs::cached_lookup`]).
    pub fn cached_attr(&self, ino: u64) -> Option<Attr> {
        self.attrs.get(ino).map(|a| self.with_pending(a))
    }

    /// `name` in directory `parent`.
    pub async fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        if let Some(a) = self.cached_lookup(parent, name) {
            return Ok(a);
        }
        if self.known_absent(parent, name) {
            return Err(FsError::new(Errno::ENOENT, "not found"));
        }
        self.attr_after_changes(|| MetaRequest::Lookup { vol: self.vol.id, parent, name: name.to_vec() }).await
    }

    /// Attributes.
    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        if let Some(a) = self.cached_attr(ino) {
            return Ok(a);
        }
        self.attr_after_changes(|| MetaRequest::GetAttr { vol: self.vol.id, ino }).await
    }

    /// Asks for attributes, again if a change was made meanwhile. A commit
    /// of this mount's buffered writes that lands while the question is in
    /// flight ends the buffered size that `with_pending` adds, so the
    /// answer, read before the commit, would show the file shorter than
    /// the kernel's own writes made it, and the kernel would take that
    /// size (fsx: "Size error ... by seek"). Every change forgets before
    /// its pending size ends, so: buffered size first, then the check.
    pub(crate) async fn attr_after_changes(&self, ask: impl Fn() -> MetaRequest) -> Result<Attr> {
        let mut tries = 0;
        loop {
            let asked = self.attrs.epoch();
            let a = self.with_pending(expect_attr(self.call(ask()).await?)?);
            tries += 1;
            if self.attrs.epoch() == asked || tries == 5 {
                return Ok(a);
            }
        }
    }

    /// Changes attributes. A size or time change first writes out what
    /// open handles of the file still buffer, so that it comes after the
    /// writes (`cp -a` sets the times before it closes the file).
    pub async fn setattr(&self, ino: u64, set: SetAttr) -> Result<Attr> {
        if set.size.is_some() || set.mtime.is_some() {
            self.flush_ino(ino).await?;
        }
        self.forget_ahead(ino);
        let answer = self.call(MetaRequest::SetAttr { vol: self.vol.id, ino, set }).await;
        // Again after the change, as after a commit: a read may have fetched
        // the slice map meanwhile, with the old size, and kept it; served
        // after a truncation, it would hand the kernel bytes past the new
        // end (fsx: "mapped non-zero data past EOF").
        self.forget_ahead(ino);
        expect_attr(answer?)
    }

    /// Creates a file, device, fifo, socket or symlink.
    pub async fn mknod(&self, parent: u64, name: &[u8], node: NewNode) -> Result<Attr> {
        expect_attr(self.call(MetaRequest::Mknod { vol: self.vol.id, parent, name: name.to_vec(), node }).await?)
    }

    /// Creates a directory.
    pub async fn mkdir(&self, parent: u64, name: &[u8], perm: u32, uid: u32, gid: u32) -> Result<Attr> {
        let req = MetaRequest::Mkdir { vol: self.vol.id, parent, name: name.to_vec(), perm, uid, gid };
        expect_attr(self.call(req).await?)
    }

    /// A new hard link.
    pub async fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> Result<Attr> {
        let req = MetaRequest::Link { vol: self.vol.id, ino, newparent, newname: newname.to_vec() };
        expect_attr(self.call(req).await?)
    }

    /// Removes a non-directory.
    pub async fn unlink(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.call(MetaRequest::Unlink { vol: self.vol.id, parent, name: name.to_vec() }).await.map(|_| ())
    }

    /// Removes an empty directory.
    pub async fn rmdir(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.call(MetaRequest::Rmdir { vol: self.vol.id, parent, name: name.to_vec() }).await.map(|_| ())
    }

    /// Renames.
    pub async fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        mode: RenameMode,
    ) -> Result<()> {
        let req = MetaRequest::Rename {
            vol: self.vol.id,
            parent,
            name: name.to_vec(),
            newparent,
            newname: newname.to_vec(),
            mode,
        };
        self.call(req).await.map(|_| ())
    }

    /// A symlink's target.
    pub async fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        match self.call(MetaRequest::Readlink { vol: self.vol.id, ino }).await? {
            MetaResponse::Bytes(b) => Ok(b),
            other => Err(FsError::protocol(other)),
        }
    }

    /// A page of a directory after `after`, with each entry's attributes.
    /// Entries without extended attributes are remembered as such.
    pub async fn readdir_plus(&self, ino: u64, after: Option<Vec<u8>>) -> Result<Vec<(Vec<u8>, Attr)>> {
        self.readdir_page(ino, after, READDIR_PAGE).await
    }

    /// [`Fs::readdir_plus`] with at most `limit` entries.
    pub(crate) async fn readdir_page(
        &self,
        ino: u64,
        after: Option<Vec<u8>>,
        limit: u32,
    ) -> Result<Vec<(Vec<u8>, Attr)>> {
        let asked = self.xattrs.epoch();
        match self.call(MetaRequest::ReaddirPlus { vol: self.vol.id, ino, after, limit }).await? {
            MetaResponse::EntriesPlus(e) => {
                self.xattrs.learn_listing(e.iter().map(|(_, a, has_xattrs)| (a.ino, *has_xattrs)), asked);
                Ok(e.into_iter().map(|(n, a, _)| (n, self.with_pending(a))).collect())
            }
            other => Err(FsError::protocol(other)),
        }
    }
}
