//! The file-system layer: POSIX semantics over the meta service (names,
//! attributes, slices) and the blob layer (content). Front ends (FUSE now;
//! S3, WebDAV, NFS later) call this and nothing below it.
//!
//! Writes are buffered per open file and uploaded as new blobs on flush,
//! fsync, close or when the buffer fills; the meta service then commits
//! them as slices on top of the file's content. Reads take the file's
//! slice map from the meta service once per open (kept a few seconds) and
//! fetch the blob ranges it resolves to.

mod attr_cache;
mod block_cache;
mod complete_dirs;
mod error;
mod handle;
mod page_stamps;
mod xattr_names;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cairn_client::{Body, Client, MetaClient, UploadOptions};
use cairn_proto::meta::{
    Attr, Changed, Kind, MetaRequest, MetaResponse, NewNode, Piece, RenameMode, SetAttr, Slice, Volume,
};
use cairn_proto::{Errno, FileId};

use attr_cache::AttrCache;
pub use block_cache::BlockCache;
use cairn_proto::extents::Extents;
use complete_dirs::CompleteDirs;
pub use error::{FsError, Result};
use handle::Handle;
use page_stamps::PageStamps;
use xattr_names::XattrNames;

/// An open handle, shared by the requests that use it.
type SharedHandle = Arc<tokio::sync::Mutex<Handle>>;

/// Entries per readdir page asked of the meta service.
const READDIR_PAGE: u32 = 1000;
/// Longest wait of one request for other mounts' changes.
const CHANGES_WAIT_MS: u32 = 10_000;
/// Extended attributes of this prefix are never stored (POSIX ACLs).
const POSIX_ACL: &[u8] = b"system.posix_acl_";
/// SELinux labels are not kept either (as NFS without `security_label`):
/// the volume has one label policy for every client, which Cairn does not
/// model.
const SELINUX_LABEL: &[u8] = b"security.selinux";
/// How often a mount tells the meta service which files it has open until
/// the service has told it its lease on open-unlinked files; then four
/// times per lease.
const KEEP_OPEN_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
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
/// How long an upload waits for the cluster to have a member ready (a
/// cluster starting, a group failing over) before the write fails.
const UPLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Whole blocks fetched into the block cache at once, beside the reads
/// that asked for them.
const CACHE_FILLS: usize = 2;

/// A volume's space, for `statfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    /// Bytes in the volume's files.
    pub used: u64,
    /// Free bytes in its groups.
    pub free: u64,
    /// Inodes allocated.
    pub inodes: u64,
}

/// One mounted volume.
pub struct Fs {
    meta: MetaClient,
    blobs: Arc<Client>,
    vol: Volume,
    /// Open handles by number, each with its file's inode beside it, so
    /// finding a file's handles locks none of the others (one of which may
    /// be busy uploading).
    handles: Mutex<HashMap<u64, (u64, SharedHandle)>>,
    next_fh: AtomicU64,
    next_group: AtomicUsize,
    /// Where buffered (not yet committed) writes end, by inode: `stat`
    /// must see a file's size grow as soon as a write returns.
    pending_end: Mutex<HashMap<u64, u64>>,
    /// Which extended attributes inodes have (see `xattr_names`).
    xattrs: XattrNames,
    /// Attributes known to be current.
    attrs: AttrCache,
    /// Directories whose every name this mount knows.
    complete: CompleteDirs,
    /// What the kernel's cached pages of each file hold (see `page_stamps`).
    pages: PageStamps,
    /// Read-ahead: bytes fetched past a sequential read, by inode. Dropped
    /// when this mount writes or truncates the file, and at every open
    /// (close-to-open: another mount's changes show at the next open).
    ahead: Mutex<ReadAhead>,
    /// Blocks of blobs kept on the local disk for random readers.
    blocks: Option<Arc<BlockCache>>,
    /// Fills of the block cache in flight (at most [`CACHE_FILLS`]).
    fills: Arc<tokio::sync::Semaphore>,
}

/// The read-ahead windows, and a count of invalidations: a read that
/// fetched before one keeps nothing (what it fetched may be older than a
/// write this mount just committed).
#[derive(Default)]
struct ReadAhead {
    windows: HashMap<u64, Window>,
    /// Files' slice maps, fetched at a first read: a random reader then
    /// costs one blob request per read, not a meta round trip too.
    maps: HashMap<u64, Arc<FileMap>>,
    epoch: u64,
}

impl ReadAhead {
    /// `[offset, offset + size)` of file `ino` if its window holds it all.
    fn in_window(&mut self, ino: u64, offset: u64, size: u32) -> Option<bytes::Bytes> {
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
    fn fresh_map(&self, ino: u64) -> Option<Arc<FileMap>> {
        self.maps.get(&ino).filter(|m| m.fetched.elapsed() < MAP_FRESH).cloned()
    }
}

/// What a file is made of, as the meta service last said.
struct FileMap {
    size: u64,
    /// The slices laid over each other, for lookups by range.
    extents: Extents,
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

/// A regular file's attributes, every time `secs` (for unit tests).
#[cfg(test)]
pub(crate) fn test_file_attr(ino: u64, size: u64, secs: i64) -> Attr {
    let t = cairn_proto::meta::Time { secs, nanos: 0 };
    Attr {
        ino,
        kind: Kind::File,
        perm: 0o644,
        uid: 0,
        gid: 0,
        size,
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        nlink: 1,
        rdev: 0,
    }
}

/// What a change does to a directory's names.
enum NameChange {
    Added,
    Removed,
    /// Still there, maybe leading elsewhere (a rename's exchange).
    Kept,
}

/// The names a request adds to or removes from directories.
fn names_changed(req: &MetaRequest) -> Vec<(u64, Vec<u8>, NameChange)> {
    use MetaRequest as Q;
    match req {
        Q::Mknod { parent, name, .. } | Q::Mkdir { parent, name, .. } => {
            vec![(*parent, name.clone(), NameChange::Added)]
        }
        Q::Link { newparent, newname, .. } => vec![(*newparent, newname.clone(), NameChange::Added)],
        Q::Unlink { parent, name, .. } | Q::Rmdir { parent, name, .. } => {
            vec![(*parent, name.clone(), NameChange::Removed)]
        }
        Q::Rename { parent, name, newparent, newname, mode, .. } => {
            let from = if *mode == RenameMode::Exchange { NameChange::Kept } else { NameChange::Removed };
            let to = if *mode == RenameMode::Exchange { NameChange::Kept } else { NameChange::Added };
            vec![(*parent, name.clone(), from), (*newparent, newname.clone(), to)]
        }
        _ => Vec::new(),
    }
}

fn expect_attr(r: MetaResponse) -> Result<Attr> {
    match r {
        MetaResponse::Attr(a) | MetaResponse::Made { attr: a, .. } => Ok(a),
        other => Err(FsError::protocol(other)),
    }
}

impl Fs {
    /// The volume `name` of the meta service `meta`, with its data in the
    /// cluster `blobs` reaches.
    pub async fn open(meta: MetaClient, blobs: Arc<Client>, name: &str) -> Result<Self> {
        let vol = meta.volume(name).await?;
        Ok(Self {
            meta,
            blobs,
            vol,
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            next_group: AtomicUsize::new(0),
            pending_end: Mutex::new(HashMap::new()),
            xattrs: XattrNames::default(),
            attrs: AttrCache::default(),
            complete: CompleteDirs::default(),
            pages: PageStamps::default(),
            ahead: Mutex::new(ReadAhead::default()),
            blocks: None,
            fills: Arc::new(tokio::sync::Semaphore::new(CACHE_FILLS)),
        })
    }

    /// Serves random reads of blocks read more than once from `cache`.
    pub fn with_block_cache(mut self, cache: BlockCache) -> Self {
        self.blocks = Some(Arc::new(cache));
        self
    }

    /// Attaches this mount (or gateway), described by `what`, to its
    /// volume: the meta service then refuses to delete the volume under
    /// it. Then, every few seconds while `fs` lives, says again that it is
    /// attached and which files it has open: files unlinked while open are
    /// kept for as long as it says so, and freed once it stops (it went
    /// away).
    pub async fn attach(fs: &Arc<Self>, what: String) -> Result<()> {
        let attach =
            move |fs: &Self| MetaRequest::Attach { vol: fs.vol.id, session: fs.meta.session(), what: what.clone() };
        fs.call(attach(fs)).await?;
        let weak = Arc::downgrade(fs);
        tokio::spawn(async move {
            let mut every = KEEP_OPEN_FIRST;
            loop {
                tokio::time::sleep(every).await;
                let Some(fs) = weak.upgrade() else { return };
                let mut inodes: Vec<u64> =
                    fs.handles.lock().unwrap_or_else(|p| p.into_inner()).values().map(|(ino, _)| *ino).collect();
                inodes.sort_unstable();
                inodes.dedup();
                match fs.call(MetaRequest::KeepOpen { vol: fs.vol.id, session: fs.meta.session(), inodes }).await {
                    Ok(MetaResponse::KeptOpen { lease_secs }) => {
                        every = std::time::Duration::from_millis(lease_secs.max(1) * 1000 / 4);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not tell the meta service which files are open"),
                }
                if let Err(e) = fs.call(attach(&fs)).await {
                    tracing::warn!(error = %e, "could not tell the meta service this mount is still attached");
                }
            }
        });
        Ok(())
    }

    /// Detaches from the volume (an unmount): it may be deleted now.
    pub async fn detach(&self) -> Result<()> {
        self.call(MetaRequest::Detach { vol: self.vol.id, session: self.meta.session() }).await.map(drop)
    }

    /// The volume's groups that the cluster does not have (a group removed
    /// since the volume was made): writes to them fail.
    pub async fn missing_groups(&self) -> Result<Vec<String>> {
        Ok(self.vol.groups_missing_from(&self.blobs.status().await?))
    }

    /// The volume.
    pub fn volume(&self) -> &Volume {
        &self.vol
    }

    /// Asks the meta service, keeping the attribute cache true: a change
    /// forgets what it touched, and an answer that carries attributes is
    /// stored unless something was forgotten meanwhile (see `attr_cache`).
    async fn call(&self, req: MetaRequest) -> Result<MetaResponse> {
        use MetaRequest as Q;
        let change = req.is_change();
        let (_, stale) = req.touched();
        let answers_attr = matches!(
            req,
            Q::Lookup { .. }
                | Q::GetAttr { .. }
                | Q::SetAttr { .. }
                | Q::Mknod { .. }
                | Q::Mkdir { .. }
                | Q::Link { .. }
                | Q::Write { .. }
        );
        // The entry an answer's attributes were reached by.
        let entry = match &req {
            Q::Lookup { parent, name, .. } | Q::Mknod { parent, name, .. } | Q::Mkdir { parent, name, .. } => {
                Some((*parent, name.clone()))
            }
            Q::Link { newparent, newname, .. } => Some((*newparent, newname.clone())),
            _ => None,
        };
        // A write or truncation went through the kernel's pages: their
        // stamp follows the answer (or goes, if there is none).
        let changes_content = match &req {
            Q::Write { ino, .. } | Q::SetAttr { ino, .. } => Some(*ino),
            _ => None,
        };
        // Whatever an attribute change's outcome, answers about the inode's
        // attribute names that were in flight meanwhile are not kept.
        let xattrs_change = match &req {
            Q::SetXattr { ino, .. } | Q::RemoveXattr { ino, .. } => Some(*ino),
            _ => None,
        };
        let names = names_changed(&req);
        let makes_dir = matches!(req, Q::Mkdir { .. });
        let pages_epoch = self.pages.epoch();
        let xattrs_epoch = self.xattrs.epoch();
        let asked = self.attrs.epoch();
        let answer = self.meta.call(req).await;
        for (dir, name, change) in &names {
            match (&answer, change) {
                (Ok(_), NameChange::Added) => self.complete.added(*dir, name),
                (Ok(_), NameChange::Removed) => self.complete.removed(*dir, name),
                (Ok(_), NameChange::Kept) => {}
                // Refused, or not known whether it was made.
                (Err(_), _) => self.complete.unsure(*dir),
            }
        }
        if makes_dir {
            if let Ok(MetaResponse::Made { attr, .. } | MetaResponse::Attr(attr)) = &answer {
                self.complete.created(attr.ino);
            }
        }
        if let Some(ino) = xattrs_change {
            self.xattrs.forget(ino);
        }
        match (changes_content, &answer) {
            (Some(_), Ok(MetaResponse::Attr(a))) => self.pages.changed_here(a, pages_epoch),
            (Some(ino), _) => self.pages.drop(ino),
            (None, Ok(MetaResponse::Made { attr, .. })) if attr.kind == Kind::File => self.pages.created(attr),
            _ => {}
        }
        // A change whose answer was lost may still have been made: forget
        // what it touched whatever the outcome. One that touches nothing a
        // mount caches (the close of a file) forgets nothing, so the
        // answers in flight beside it stay storable: a writer's next create
        // runs beside the close of its last file.
        let forgets = change && !stale.is_empty();
        let now = if forgets { self.attrs.forget(&stale, false) } else { asked };
        // A change's own forget is the one expected in between.
        let unchanged_since = now == if forgets { asked + 1 } else { asked };
        match &answer {
            Ok(MetaResponse::Attr(a)) if answers_attr && unchanged_since => {
                self.attrs.put(a, entry.as_ref().map(|(p, n)| (*p, n.as_slice())), now);
            }
            Ok(MetaResponse::Made { attr, parent }) => {
                // A new inode has no extended attributes: the kernel's
                // security.capability check on its first write is answered
                // here.
                self.xattrs.learn(attr.ino, Vec::new(), xattrs_epoch);
                if unchanged_since {
                    self.attrs.put(attr, entry.as_ref().map(|(p, n)| (*p, n.as_slice())), now);
                    self.attrs.put(parent, None, now);
                }
            }
            Ok(MetaResponse::Dirs(dirs)) if unchanged_since => {
                for d in dirs {
                    self.attrs.put(d, None, now);
                }
            }
            _ => {}
        }
        Ok(answer?)
    }

    /// Attributes as this mount sees them: with its buffered writes.
    fn with_pending(&self, mut a: Attr) -> Attr {
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
    async fn attr_after_changes(&self, ask: impl Fn() -> MetaRequest) -> Result<Attr> {
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

    /// Follows the meta service's feed of what other mounts change in this
    /// volume, for as long as the file system lives, handing each batch to
    /// `drop_cached` on a blocking thread (the FUSE layer tells the kernel
    /// to forget those entries and attributes). Lost changes (a restarted
    /// service) are logged: until the kernel's timeouts pass, what it
    /// cached of them may be stale.
    pub fn follow_changes(fs: &Arc<Self>, drop_cached: Arc<dyn Fn(Vec<Changed>) + Send + Sync>) {
        let weak = Arc::downgrade(fs);
        tokio::spawn(async move {
            let (mut epoch, mut after) = (0, None);
            loop {
                let Some(fs) = weak.upgrade() else { return };
                let req = MetaRequest::Changes {
                    vol: fs.vol.id,
                    session: fs.meta.session(),
                    epoch,
                    after,
                    wait_ms: CHANGES_WAIT_MS,
                };
                let answer = fs.meta.call(req).await;
                drop(fs);
                match answer {
                    Ok(MetaResponse::Changes { epoch: e, next, lost, changes }) => {
                        if lost && after.is_some() {
                            tracing::info!("missed changes of other mounts (meta service restarted?): cached entries expire by timeout");
                            if let Some(fs) = weak.upgrade() {
                                fs.complete.forget_all();
                                fs.attrs.forget(&[], true);
                                fs.pages.forget_all();
                                fs.xattrs.forget_all();
                            }
                        }
                        (epoch, after) = (e, Some(next));
                        if changes.is_empty() {
                            continue;
                        }
                        if let Some(fs) = weak.upgrade() {
                            for c in &changes {
                                if let Changed::Entry { parent, .. } | Changed::Unlinked { parent, .. } = c {
                                    fs.complete.unsure(*parent);
                                }
                            }
                            fs.attrs.forget(&changes, false);
                            fs.pages.forget(changes.iter().filter_map(|c| match c {
                                Changed::Inode { ino } => Some(*ino),
                                _ => None,
                            }));
                            for c in &changes {
                                if let Changed::Inode { ino } = c {
                                    fs.xattrs.forget(*ino);
                                }
                            }
                        }
                        let drop_cached = drop_cached.clone();
                        let _ = tokio::task::spawn_blocking(move || drop_cached(changes)).await;
                    }
                    Ok(other) => {
                        tracing::warn!(answer = ?other, "the meta service does not serve the change feed");
                        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
                }
            }
        });
    }

    /// A page of a directory after `after`, with each entry's attributes.
    /// Entries without extended attributes are remembered as such.
    pub async fn readdir_plus(&self, ino: u64, after: Option<Vec<u8>>) -> Result<Vec<(Vec<u8>, Attr)>> {
        let asked = self.xattrs.epoch();
        match self.call(MetaRequest::ReaddirPlus { vol: self.vol.id, ino, after, limit: READDIR_PAGE }).await? {
            MetaResponse::EntriesPlus(e) => {
                self.xattrs.learn_listing(e.iter().map(|(_, a, has_xattrs)| (a.ino, *has_xattrs)), asked);
                Ok(e.into_iter().map(|(n, a, _)| (n, self.with_pending(a))).collect())
            }
            other => Err(FsError::protocol(other)),
        }
    }

    /// Whether the attribute `name` is one a volume never keeps (POSIX ACLs,
    /// SELinux labels). Asking for one fails with `EOPNOTSUPP`, not
    /// `ENODATA`: that is what tells `ls -l` (and libacl, libselinux) that
    /// the whole file system has none, so they stop asking for every file.
    pub fn xattr_unsupported(name: &[u8]) -> bool {
        name.starts_with(POSIX_ACL) || name == SELINUX_LABEL
    }

    /// Whether the attribute `name` of `ino` is known not to exist, without
    /// asking the meta service (see [`Fs::getxattr`]).
    pub fn xattr_known_absent(&self, ino: u64, name: &[u8]) -> bool {
        self.xattrs.has(ino, name) == Some(false)
    }

    /// Whether the mount knows what the kernel's cached pages of `ino`
    /// hold, so that an open may let the kernel keep them: then the open
    /// is worth a fresh look at the file's attributes
    /// ([`Fs::open_keeping_pages`]); otherwise [`Fs::open_dropping_pages`]
    /// opens at once.
    pub fn pages_known(&self, ino: u64) -> bool {
        self.pages.known(ino)
    }

    /// The kernel dropped its inode `ino` (FUSE's `forget`), and the pages
    /// it had cached of it: nothing of the file is left to keep.
    pub fn kernel_forgot(&self, ino: u64) {
        self.pages.drop(ino);
    }

    /// Opens a file for a kernel that caches pages (FUSE): a handle, and
    /// whether the kernel may keep the pages it cached of the file, which
    /// it may when the file's attributes, asked of the meta service now,
    /// are those its pages were filled under (close-to-open, as NFS checks
    /// it: a change made and closed elsewhere before this open is always
    /// seen). When it may not, the kernel drops them.
    pub async fn open_keeping_pages(&self, ino: u64, append: bool) -> (u64, bool) {
        let now = match self.call(MetaRequest::GetAttr { vol: self.vol.id, ino }).await {
            Ok(MetaResponse::Attr(a)) => Some(a),
            _ => None,
        };
        let keep = self.pages.at_open(ino, now.as_ref());
        (self.open_handle(ino, append), keep)
    }

    /// Opens a file whose cached pages the kernel drops (see
    /// [`Fs::pages_known`]); what it caches from now on is recorded as of
    /// the attributes this mount knows.
    pub fn open_dropping_pages(&self, ino: u64, append: bool) -> u64 {
        self.pages.at_open(ino, self.attrs.get(ino).as_ref());
        self.open_handle(ino, append)
    }

    /// Opens a file: a handle that buffers writes.
    pub fn open_handle(&self, ino: u64, append: bool) -> u64 {
        self.forget_ahead(ino);
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let h = Handle::new(ino, append, self.vol.chunk_size.min(8 << 20) as usize);
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).insert(fh, (ino, Arc::new(tokio::sync::Mutex::new(h))));
        fh
    }

    fn handle(&self, fh: u64) -> Result<SharedHandle> {
        let hs = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        hs.get(&fh).map(|(_, h)| h.clone()).ok_or(FsError::errno(Errno::EBADF))
    }

    /// The open handles of one file.
    fn handles_of(&self, ino: u64) -> Vec<SharedHandle> {
        let hs = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        hs.values().filter(|(i, _)| *i == ino).map(|(_, h)| h.clone()).collect()
    }

    /// Buffers a write at once when that needs no waiting: the handle is
    /// free, not in append mode, and the write does not fill its buffer.
    /// `None` means the caller must go through [`Fs::write`]. FUSE lends the
    /// bytes only for the length of its call: taking them here saves the
    /// copy that queueing them for an async task would cost.
    pub fn write_now(&self, fh: u64, offset: u64, data: &[u8]) -> Option<Result<u32>> {
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

    /// Records that buffered writes reach `end` (sizes shown include them).
    fn note_pending(&self, ino: u64, end: u64) {
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
    async fn write_out(&self, h: &mut Handle) -> Result<()> {
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
    fn forget_unstored(&self, ino: u64) {
        self.pages.drop(ino);
        self.pending_end.lock().unwrap_or_else(|p| p.into_inner()).remove(&ino);
    }

    /// Waits for a background upload and commits its slices.
    async fn commit_upload(&self, ino: u64, task: tokio::task::JoinHandle<Result<Vec<Slice>>>) -> Result<()> {
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
    async fn upload_runs(&self, mut runs: Vec<(u64, Vec<u8>)>) -> Result<Vec<Slice>> {
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
    async fn commit(&self, ino: u64, slices: Vec<Slice>) -> Result<()> {
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
    async fn upload(&self, opts: &UploadOptions, data: Vec<u8>) -> Result<FileId> {
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
    fn not_stored(&self, opts: &UploadOptions, len: usize, e: cairn_client::Error) -> FsError {
        let group = opts.group.as_deref().unwrap_or("(any)");
        let errno = if e.code() == Some(cairn_proto::ErrorCode::NoSpace) { Errno::ENOSPC } else { Errno::EIO };
        tracing::error!(volume = %self.vol.name, group, bytes = len, error = %e, "a write could not be stored; the application is answered an error");
        FsError { errno, message: format!("cannot store {len} bytes in group {group}: {e}") }
    }

    fn pick_group(&self) -> Option<String> {
        if self.vol.groups.is_empty() {
            return None;
        }
        let i = self.next_group.fetch_add(1, Ordering::Relaxed) % self.vol.groups.len();
        Some(self.vol.groups[i].clone())
    }

    /// Writes out a handle's buffer (flush, fsync).
    pub async fn flush(&self, fh: u64) -> Result<()> {
        let h = self.handle(fh)?;
        let mut h = h.lock().await;
        self.write_out(&mut h).await
    }

    /// [`Fs::flush`] when it needs no waiting: the handle is free and holds
    /// nothing, buffered or on its way (a file opened to be read). `None`
    /// means the caller must go through [`Fs::flush`]. Every `close` is a
    /// flush the kernel waits for; answered in the FUSE thread, a reader's
    /// `close` skips two thread hand-offs.
    pub fn flush_now(&self, fh: u64) -> Option<Result<()>> {
        let h = match self.handle(fh) {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        let h = h.try_lock().ok()?;
        (h.uploading.is_none() && h.is_empty()).then_some(Ok(()))
    }

    /// Puts every namespace change answered so far on the meta service's
    /// disk (`fsync`, `fsyncdir`): names and attributes are answered
    /// before they are (see `MetaRequest::durable_when_answered`).
    pub async fn sync_namespace(&self) -> Result<()> {
        self.call(MetaRequest::Sync).await.map(drop)
    }

    /// Writes out every open handle of `ino` (before a read or truncate
    /// sees the file).
    async fn flush_ino(&self, ino: u64) -> Result<()> {
        for h in self.handles_of(ino) {
            self.write_out(&mut *h.lock().await).await?;
        }
        Ok(())
    }

    /// [`Fs::release`] when it needs no waiting: the handle is free and
    /// holds nothing, and the file is known to keep a link, so there is no
    /// orphan to release. `None` means the caller must go through
    /// [`Fs::release`].
    pub fn release_now(&self, fh: u64) -> Option<Result<()>> {
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

    fn forget_ahead(&self, ino: u64) {
        let mut ra = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        ra.windows.remove(&ino);
        ra.maps.remove(&ino);
        ra.epoch += 1;
    }

    /// The slice map of `ino`: kept, or asked of the meta service.
    async fn file_map(&self, ino: u64) -> Result<Arc<FileMap>> {
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

    /// [`Fs::read`] when it needs no waiting: nothing of the file is
    /// buffered here and its bytes are in its read-ahead window or in the
    /// block cache. `None` means the caller must go through [`Fs::read`].
    /// A FUSE request served in its own thread skips two thread hand-offs,
    /// which cost more than a read of the page cache on a small machine.
    pub fn read_now(&self, ino: u64, offset: u64, size: u32) -> Option<bytes::Bytes> {
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

    /// What is committed of `[offset, offset + size)`. A read that
    /// continues where the last one ended fetches [`READ_AHEAD`] bytes and
    /// keeps what it did not return for the next reads.
    async fn read_committed(self: &Arc<Self>, ino: u64, offset: u64, size: u32) -> Result<bytes::Bytes> {
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
    async fn fetch(&self, ino: u64, offset: u64, len: u64) -> Result<Vec<u8>> {
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
    async fn fetch_through_cache(self: &Arc<Self>, ino: u64, offset: u64, len: u64) -> Result<Vec<u8>> {
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
    async fn download_exactly(&self, id: &FileId, offset: u64, len: u64, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        self.blobs.download_to(id, offset, Some(len), out).await?;
        if (out.len() - start) as u64 != len {
            return Err(FsError::errno(Errno::EIO));
        }
        Ok(())
    }

    /// Sets an extended attribute. POSIX ACLs are not kept (they would
    /// have to change the mode bits too): refusing them makes tools such
    /// as `cp -a` fall back to chmod. Neither are SELinux labels.
    pub async fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], create: bool, replace: bool) -> Result<()> {
        if Self::xattr_unsupported(name) {
            return Err(FsError::errno(Errno::EOPNOTSUPP));
        }
        self.xattrs.forget(ino);
        let req = MetaRequest::SetXattr {
            vol: self.vol.id,
            ino,
            name: name.to_vec(),
            value: value.to_vec(),
            create,
            replace,
        };
        self.call(req).await.map(|_| ())
    }

    /// An extended attribute's value.
    /// POSIX ACLs are never stored (setting one is refused), and `ls -l`
    /// asks for an ACL and an SELinux label on every file: both are
    /// answered here when the answer is known to be "none".
    pub async fn getxattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>> {
        if Self::xattr_unsupported(name) {
            return Err(FsError::errno(Errno::EOPNOTSUPP));
        }
        // Unknown: learn the inode's whole name set first, so the next ask
        // (the kernel's before every write) is answered here. Nearly every
        // file has none, and then this is the only round trip.
        let known = match self.xattrs.has(ino, name) {
            Some(k) => k,
            None => {
                let names = self.listxattr(ino).await?;
                names.iter().any(|n| n == name)
            }
        };
        if !known {
            return Err(FsError::errno(Errno::ENODATA));
        }
        match self.call(MetaRequest::GetXattr { vol: self.vol.id, ino, name: name.to_vec() }).await? {
            MetaResponse::Bytes(b) => Ok(b),
            other => Err(FsError::protocol(other)),
        }
    }

    /// Names of the extended attributes.
    pub async fn listxattr(&self, ino: u64) -> Result<Vec<Vec<u8>>> {
        if let Some(names) = self.xattrs.names(ino) {
            return Ok(names);
        }
        let asked = self.xattrs.epoch();
        match self.call(MetaRequest::ListXattr { vol: self.vol.id, ino }).await? {
            MetaResponse::Names(n) => {
                self.xattrs.learn(ino, n.clone(), asked);
                Ok(n)
            }
            other => Err(FsError::protocol(other)),
        }
    }

    /// Removes an extended attribute.
    pub async fn removexattr(&self, ino: u64, name: &[u8]) -> Result<()> {
        self.xattrs.forget(ino);
        self.call(MetaRequest::RemoveXattr { vol: self.vol.id, ino, name: name.to_vec() }).await.map(|_| ())
    }

    /// What `df` shows of the volume: the bytes in its files, the free
    /// space of its groups (those of the volume, or all), inodes
    /// allocated. The size is the two together (as JuiceFS shows it): the
    /// groups' disks hold other volumes' and FastDFS files too.
    pub async fn statfs(&self) -> Result<FsStats> {
        let map = self.blobs.status().await?;
        let groups = map.groups.iter().filter(|g| self.vol.groups.is_empty() || self.vol.groups.contains(&g.name));
        let free = groups.map(|g| g.free).sum();
        let (inodes, used) = match self.call(MetaRequest::Stats { vol: self.vol.id }).await? {
            MetaResponse::Stats(s) => (s.inodes, s.bytes),
            _ => (0, 0),
        };
        Ok(FsStats { used, free, inodes })
    }
}
