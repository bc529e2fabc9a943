//! [`Fs`]: one volume as one client (a mount, a gateway) sees it: the
//! meta service and the blob layer it reaches, the caches it keeps, and
//! the one way it asks the meta service ([`Fs::call`]), which keeps those
//! caches true.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, OnceLock};

use cairn_client::{Client, MetaClient};
use cairn_proto::meta::{Attr, Kind, MetaRequest, MetaResponse, RenameMode, Volume};

use crate::attr_cache::AttrCache;
use crate::block_cache::BlockCache;
use crate::complete_dirs::CompleteDirs;
use crate::content_cache::ContentCache;
use crate::handles::SharedHandle;
use crate::read::ReadAhead;
use crate::xattr_names::XattrNames;
use crate::{FsError, Result};

/// How often a mount tells the meta service which files it has open until
/// the service has told it its lease on open-unlinked files; then four
/// times per lease.
const KEEP_OPEN_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
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
    pub(crate) meta: MetaClient,
    pub(crate) blobs: Arc<Client>,
    pub(crate) vol: Volume,
    /// Open handles by number, each with its file's inode beside it, so
    /// finding a file's handles locks none of the others (one of which may
    /// be busy uploading).
    pub(crate) handles: Mutex<HashMap<u64, (u64, SharedHandle)>>,
    pub(crate) next_fh: AtomicU64,
    pub(crate) next_group: AtomicUsize,
    /// Where buffered (not yet committed) writes end, by inode: `stat`
    /// must see a file's size grow as soon as a write returns.
    pub(crate) pending_end: Mutex<HashMap<u64, u64>>,
    /// Which extended attributes inodes have (see `xattr_names`).
    pub(crate) xattrs: XattrNames,
    /// Attributes known to be current.
    pub(crate) attrs: AttrCache,
    /// Directories whose every name this mount knows.
    pub(crate) complete: CompleteDirs,
    /// What a front end that caches content itself (the kernel's page
    /// cache, under FUSE) is told of the changes this client makes and
    /// learns of (see [`ContentCache`]); none for a gateway.
    pub(crate) content: OnceLock<Arc<dyn ContentCache>>,
    /// Read-ahead: bytes fetched past a sequential read, by inode. Dropped
    /// when this mount writes or truncates the file, and at every open
    /// (close-to-open: another mount's changes show at the next open).
    pub(crate) ahead: Mutex<ReadAhead>,
    /// Blocks of blobs kept on the local disk for random readers.
    pub(crate) blocks: Option<Arc<BlockCache>>,
    /// Fills of the block cache in flight (at most [`CACHE_FILLS`]).
    pub(crate) fills: Arc<tokio::sync::Semaphore>,
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

pub(crate) fn expect_attr(r: MetaResponse) -> Result<Attr> {
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
            content: OnceLock::new(),
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

    /// Reports this client's changes, and those it hears of, to `cache`
    /// (the FUSE mount's record of the kernel's pages). One per client: a
    /// second is ignored.
    pub fn report_content_changes_to(&self, cache: Arc<dyn ContentCache>) {
        let _ = self.content.set(cache);
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
    pub(crate) async fn call(&self, req: MetaRequest) -> Result<MetaResponse> {
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
        // A write or truncation went through the content a front end
        // caches (the kernel's pages): it follows the answer (or goes, if
        // there is none).
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
        // A link answers `Made` too, for an inode that may have anything.
        let makes_inode = matches!(req, Q::Mknod { .. } | Q::Mkdir { .. });
        let content = self.content.get();
        let content_epoch = content.map_or(0, |c| c.epoch());
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
        if let Some(content) = content {
            match (changes_content, &answer) {
                (Some(_), Ok(MetaResponse::Attr(a))) => content.changed_here(a, content_epoch),
                (Some(ino), _) => content.unsure(ino),
                (None, Ok(MetaResponse::Made { attr, .. })) if attr.kind == Kind::File => content.created(attr),
                _ => {}
            }
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
                if makes_inode {
                    self.xattrs.learn(attr.ino, Vec::new(), xattrs_epoch);
                }
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

    /// Puts every namespace change answered so far on the meta service's
    /// disk (`fsync`, `fsyncdir`): names and attributes are answered
    /// before they are (see `MetaRequest::durable_when_answered`).
    pub async fn sync_namespace(&self) -> Result<()> {
        self.call(MetaRequest::Sync).await.map(drop)
    }

    /// Attributes as the meta service has them now, not as cached (an
    /// open that must see changes closed elsewhere before it: close-to-open).
    pub async fn fresh_attr(&self, ino: u64) -> Result<Attr> {
        expect_attr(self.call(MetaRequest::GetAttr { vol: self.vol.id, ino }).await?)
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
