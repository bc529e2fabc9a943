//! The FUSE front end: the kernel's requests, answered by the shared
//! file-system layer (`cairn-fs`). Each request runs as a task on the
//! tokio runtime, so one slow request (a large upload on flush) does not
//! stall the mount. The kernel caches attributes and entries for long, and
//! forgets what other mounts change as the meta service reports it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_fs::{Fs, FsError};
use cairn_proto::meta::{Attr, Changed, Kind, NewNode, RenameMode, SetAttr, Time};
use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request,
    TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;

/// How long the kernel may cache attributes and entries. Long, because
/// what other mounts change is dropped from the cache as it happens (see
/// [`follow_changes`]); this bounds staleness only when that feed was lost.
const TTL: Duration = Duration::from_secs(30);
/// Block size reported to `stat` (a hint for I/O sizes).
const BLKSIZE: u32 = 128 * 1024;

/// An open directory, read a page at a time: a listing of a million
/// entries never sits in memory whole. Pages are asked of the meta service
/// by name (after the last name served), so entries added or removed while
/// a program lists the directory (`rm -rf` does) do not shift the others.
struct DirCursor {
    ino: u64,
    parent: u64,
    /// Entries served so far before `page` (`.` and `..` count).
    start: u64,
    /// The current page (attributes are none for `.` and `..`, whose
    /// attributes the kernel does not take from a listing).
    page: Vec<Listed>,
    /// The directory has no entries after this page.
    done: bool,
}

impl DirCursor {
    /// Positions the cursor so that entry number `offset` is in `page`
    /// (or past the end); rewinds when a program seeks backwards.
    async fn seek(&mut self, fs: &Fs, offset: u64) -> Result<(), FsError> {
        if offset < self.start {
            self.start = 0;
            self.page.clear();
            self.done = false;
        }
        if self.start == 0 && self.page.is_empty() && !self.done {
            self.page = vec![
                (b".".to_vec(), self.ino, FileType::Directory, None),
                (b"..".to_vec(), self.parent, FileType::Directory, None),
            ];
        }
        while offset >= self.start + self.page.len() as u64 && !self.done {
            let after = self.page.iter().rev().find(|e| e.0 != b"." && e.0 != b"..").map(|e| e.0.clone());
            // Attributes come with every page: one meta round trip gives
            // `ls -l` and `find | xargs stat` what they would otherwise ask
            // name by name.
            let next = fs.readdir_plus(self.ino, after).await?;
            self.start += self.page.len() as u64;
            self.done = next.is_empty();
            self.page = next.into_iter().map(|(n, a)| (n, a.ino, file_type(a.kind), Some(file_attr(&a)))).collect();
        }
        Ok(())
    }
}

/// One entry of a directory page: name, inode, kind, attributes.
type Listed = (Vec<u8>, u64, FileType, Option<FileAttr>);

impl DirCursor {
    /// Hands entries from number `offset` on to `add` (with the offset of
    /// the entry after each) until it says the kernel's buffer is full or
    /// the directory ends; the buffer may take more than one page.
    async fn serve(&mut self, fs: &Fs, offset: u64, mut add: impl FnMut(&Listed, u64) -> bool) -> Result<(), FsError> {
        let mut at = offset;
        loop {
            self.seek(fs, at).await?;
            let skip = at.saturating_sub(self.start) as usize;
            if skip >= self.page.len() {
                return Ok(()); // the end
            }
            for (i, entry) in self.page.iter().enumerate().skip(skip) {
                let next = self.start + i as u64 + 1;
                if add(entry, next) {
                    return Ok(());
                }
                at = next;
            }
        }
    }
}

/// A mounted volume.
pub struct CairnFuse {
    fs: Arc<Fs>,
    rt: Handle,
    /// Open directories.
    dirs: Arc<Mutex<HashMap<u64, Arc<tokio::sync::Mutex<DirCursor>>>>>,
    next_dir: AtomicU64,
}

impl CairnFuse {
    /// A mount of `fs`, running requests on `rt`.
    pub fn new(fs: Arc<Fs>, rt: Handle) -> Self {
        Self { fs, rt, dirs: Arc::default(), next_dir: AtomicU64::new(1) }
    }

    /// The cursor of an open directory.
    fn cursor(&self, fh: FileHandle) -> Option<Arc<tokio::sync::Mutex<DirCursor>>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner()).get(&fh.0).cloned()
    }
}

/// The kernel's errno for a failed operation.
fn errno(e: &FsError) -> Errno {
    kernel_errno(e.errno)
}

/// The one place a Cairn errno becomes fuser's.
fn kernel_errno(e: cairn_proto::Errno) -> Errno {
    Errno::from_i32(e.raw())
}

fn system_time(t: Time) -> SystemTime {
    if t.secs >= 0 {
        UNIX_EPOCH + Duration::new(t.secs as u64, t.nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs()) + Duration::from_nanos(u64::from(t.nanos))
    }
}

fn time_of(t: SystemTime) -> Time {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Time { secs: d.as_secs() as i64, nanos: d.subsec_nanos() },
        Err(e) => {
            let d = e.duration();
            let (secs, nanos) = if d.subsec_nanos() == 0 {
                (-(d.as_secs() as i64), 0)
            } else {
                (-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
            };
            Time { secs, nanos }
        }
    }
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
        Kind::CharDev => FileType::CharDevice,
        Kind::BlockDev => FileType::BlockDevice,
    }
}

fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: system_time(a.atime),
        mtime: system_time(a.mtime),
        ctime: system_time(a.ctime),
        crtime: system_time(a.crtime),
        kind: file_type(a.kind),
        perm: (a.perm & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: BLKSIZE,
        flags: 0,
    }
}

/// Placeholder attributes for `.` and `..` in a readdirplus listing.
fn dot_attr(ino: u64, kind: FileType) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind,
        perm: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: BLKSIZE,
        flags: 0,
    }
}

fn kind_of_mode(mode: u32) -> Option<Kind> {
    Some(match mode & libc::S_IFMT {
        libc::S_IFREG | 0 => Kind::File,
        libc::S_IFIFO => Kind::Fifo,
        libc::S_IFCHR => Kind::CharDev,
        libc::S_IFBLK => Kind::BlockDev,
        libc::S_IFSOCK => Kind::Socket,
        _ => return None,
    })
}

fn name(n: &OsStr) -> Vec<u8> {
    n.as_bytes().to_vec()
}

/// A new inode's group: the parent's if it is setgid, else the caller's.
async fn group_for(fs: &Fs, parent: u64, gid: u32) -> (u32, bool) {
    match fs.getattr(parent).await {
        Ok(p) if p.perm & 0o2000 != 0 => (p.gid, true),
        _ => (gid, false),
    }
}

impl Filesystem for CairnFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Every listing carries attributes (readdirplus, not the kernel's
        // "auto" mode, which guesses per directory and often guesses
        // plain): `ls -l` and `find | xargs stat` then cost a round trip per
        // page of names rather than one per name. The attributes cost the
        // meta service one more read per entry, far less than a lookup.
        let plus = InitFlags::FUSE_DO_READDIRPLUS;
        if let Err(missing) = config.add_capabilities(plus) {
            tracing::info!(?missing, "the kernel offers no readdirplus; listings go without attributes");
        }
        Ok(())
    }

    fn forget(&self, _req: &Request, ino: INodeNo, _nlookup: u64) {
        // The kernel dropped the inode, and its pages with it.
        self.fs.kernel_forgot(ino.0);
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEntry) {
        let n = name(n);
        // Answered from the mount's cache right here: a task and its
        // wake-up cost as much as the rest of the answer.
        if let Some(a) = self.fs.cached_lookup(parent.0, &n) {
            return reply.entry(&TTL, &file_attr(&a), Generation(0));
        }
        // A name this mount knows is not there (it made the directory and
        // every change to it since): the negative entry without a round
        // trip. The kernel asks this before every create.
        if self.fs.known_absent(parent.0, &n) {
            return reply.entry(&TTL, &dot_attr(0, FileType::RegularFile), Generation(0));
        }
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.lookup(parent.0, &n).await {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
                // A negative entry (inode 0) the kernel keeps like any other:
                // a name looked for again and again (include paths, lock
                // files, `$PATH` searches) costs one round trip per TTL.
                // Another mount creating the name invalidates it through
                // the change feed, as it does positive entries.
                Err(e) if e.errno == cairn_proto::Errno::ENOENT => {
                    reply.entry(&TTL, &dot_attr(0, FileType::RegularFile), Generation(0))
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if let Some(a) = self.fs.cached_attr(ino.0) {
            return reply.attr(&TTL, &file_attr(&a));
        }
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.getattr(ino.0).await {
                Ok(a) => reply.attr(&TTL, &file_attr(&a)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let fs = self.fs.clone();
        let when = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(s) => time_of(s),
            TimeOrNow::Now => Time::now(),
        };
        let set =
            SetAttr { perm: mode.map(|m| m & 0o7777), uid, gid, size, atime: atime.map(when), mtime: mtime.map(when) };
        self.rt.spawn(async move {
            match fs.setattr(ino.0, set).await {
                Ok(a) => reply.attr(&TTL, &file_attr(&a)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.readlink(ino.0).await {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn mknod(&self, req: &Request, parent: INodeNo, n: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let Some(kind) = kind_of_mode(mode) else {
            reply.error(kernel_errno(cairn_proto::Errno::EINVAL));
            return;
        };
        let (fs, n, uid, gid) = (self.fs.clone(), name(n), req.uid(), req.gid());
        self.rt.spawn(async move {
            let (gid, _) = group_for(&fs, parent.0, gid).await;
            let node = NewNode { kind, perm: mode & !umask & 0o7777, uid, gid, rdev, target: vec![] };
            match fs.mknod(parent.0, &n, node).await {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, n: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let (fs, n, uid, gid) = (self.fs.clone(), name(n), req.uid(), req.gid());
        self.rt.spawn(async move {
            let (gid, setgid) = group_for(&fs, parent.0, gid).await;
            let perm = (mode & !umask & 0o7777) | if setgid { 0o2000 } else { 0 };
            match fs.mkdir(parent.0, &n, perm, uid, gid).await {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let (fs, n) = (self.fs.clone(), name(n));
        self.rt.spawn(async move {
            match fs.unlink(parent.0, &n).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let (fs, n) = (self.fs.clone(), name(n));
        self.rt.spawn(async move {
            match fs.rmdir(parent.0, &n).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link: &OsStr, target: &Path, reply: ReplyEntry) {
        let (fs, n, uid, gid) = (self.fs.clone(), name(link), req.uid(), req.gid());
        let target = target.as_os_str().as_bytes().to_vec();
        self.rt.spawn(async move {
            let (gid, _) = group_for(&fs, parent.0, gid).await;
            let node = NewNode { kind: Kind::Symlink, perm: 0o777, uid, gid, rdev: 0, target };
            match fs.mknod(parent.0, &n, node).await {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        n: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mode = if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            RenameMode::Exchange
        } else if flags.contains(RenameFlags::RENAME_NOREPLACE) {
            RenameMode::NoReplace
        } else if flags.is_empty() {
            RenameMode::Replace
        } else {
            reply.error(kernel_errno(cairn_proto::Errno::EINVAL));
            return;
        };
        let (fs, n, nn) = (self.fs.clone(), name(n), name(newname));
        self.rt.spawn(async move {
            match fs.rename(parent.0, &n, newparent.0, &nn, mode).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let (fs, nn) = (self.fs.clone(), name(newname));
        self.rt.spawn(async move {
            match fs.link(ino.0, newparent.0, &nn).await {
                Ok(a) => reply.entry(&TTL, &file_attr(&a), Generation(0)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let append = flags.0 & libc::O_APPEND != 0;
        if !self.fs.pages_known(ino.0) {
            let fh = self.fs.open_dropping_pages(ino.0, append);
            return reply.opened(FileHandle(fh), FopenFlags::empty());
        }
        // The kernel keeps what it cached of an unchanged file: a file
        // read again is not fetched again.
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            let (fh, keep) = fs.open_keeping_pages(ino.0, append).await;
            let flags = if keep { FopenFlags::FOPEN_KEEP_CACHE } else { FopenFlags::empty() };
            reply.opened(FileHandle(fh), flags);
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if let Some(d) = self.fs.read_now(ino.0, offset, size) {
            return reply.data(&d);
        }
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.read(ino.0, offset, size).await {
                Ok(d) => reply.data(&d),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.fs.write_now(fh.0, offset, data) {
            Some(Ok(n)) => return reply.written(n),
            Some(Err(e)) => return reply.error(errno(&e)),
            None => {}
        }
        let (fs, data) = (self.fs.clone(), data.to_vec());
        self.rt.spawn(async move {
            match fs.write(fh.0, offset, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        match self.fs.flush_now(fh.0) {
            Some(Ok(())) => return reply.ok(),
            Some(Err(e)) => return reply.error(errno(&e)),
            None => {}
        }
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.flush(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        match self.fs.release_now(fh.0) {
            Some(Ok(())) => return reply.ok(),
            Some(Err(e)) => return reply.error(errno(&e)),
            None => {}
        }
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.release(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            // The content's commit is durable when answered; the file's
            // name and attributes may not be yet (and with nothing buffered
            // there is no commit at all).
            match fs.flush(fh.0).await {
                Ok(()) => match fs.sync_namespace().await {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(errno(&e)),
                },
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.sync_namespace().await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let (fs, dirs) = (self.fs.clone(), self.dirs.clone());
        let dh = self.next_dir.fetch_add(1, Ordering::Relaxed);
        self.rt.spawn(async move {
            let parent = match fs.lookup(ino.0, b"..").await {
                Ok(p) => p.ino,
                Err(e) => return reply.error(errno(&e)),
            };
            let cursor = DirCursor { ino: ino.0, parent, start: 0, page: Vec::new(), done: false };
            dirs.lock().unwrap_or_else(|p| p.into_inner()).insert(dh, Arc::new(tokio::sync::Mutex::new(cursor)));
            reply.opened(FileHandle(dh), FopenFlags::empty());
        });
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let Some(cursor) = self.cursor(fh) else {
            return reply.error(kernel_errno(cairn_proto::Errno::EBADF));
        };
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            let mut c = cursor.lock().await;
            let listed = c
                .serve(&fs, offset, |(n, ino, kind, _), next| {
                    reply.add(INodeNo(*ino), next, *kind, OsStr::from_bytes(n))
                })
                .await;
            match listed {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readdirplus(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let Some(cursor) = self.cursor(fh) else {
            return reply.error(kernel_errno(cairn_proto::Errno::EBADF));
        };
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            let mut c = cursor.lock().await;
            let listed = c
                .serve(&fs, offset, |(n, ino, kind, attr), next| match attr {
                    Some(a) => reply.add(INodeNo(*ino), next, OsStr::from_bytes(n), &TTL, a, Generation(0)),
                    // `.` and `..`: the kernel skips their attributes.
                    None => {
                        let a = dot_attr(*ino, *kind);
                        reply.add(INodeNo(*ino), next, OsStr::from_bytes(n), &Duration::ZERO, &a, Generation(0))
                    }
                })
                .await;
            match listed {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner()).remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.statfs().await {
                Ok(cairn_fs::FsStats { used, free, inodes }) => {
                    let bs = 4096u64;
                    reply.statfs(
                        used.div_ceil(bs) + free / bs,
                        free / bs,
                        free / bs,
                        inodes + 1_000_000,
                        1_000_000,
                        bs as u32,
                        255,
                        bs as u32,
                    )
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        n: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let (fs, n, value) = (self.fs.clone(), name(n), value.to_vec());
        let (create, replace) = (flags & libc::XATTR_CREATE != 0, flags & libc::XATTR_REPLACE != 0);
        self.rt.spawn(async move {
            match fs.setxattr(ino.0, &n, &value, create, replace).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, n: &OsStr, size: u32, reply: ReplyXattr) {
        // Answered on the spot when never kept or known absent: `ls -l`
        // asks twice for its first file (then no more: it remembers
        // EOPNOTSUPP per file system).
        if Fs::xattr_unsupported(n.as_bytes()) {
            return reply.error(kernel_errno(cairn_proto::Errno::EOPNOTSUPP));
        }
        if self.fs.xattr_known_absent(ino.0, n.as_bytes()) {
            return reply.error(kernel_errno(cairn_proto::Errno::ENODATA));
        }
        let (fs, n) = (self.fs.clone(), name(n));
        self.rt.spawn(async move {
            match fs.getxattr(ino.0, &n).await {
                Ok(v) if size == 0 => reply.size(v.len() as u32),
                Ok(v) if v.len() > size as usize => reply.error(kernel_errno(cairn_proto::Errno::ERANGE)),
                Ok(v) => reply.data(&v),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    /// No file of a volume is a terminal or takes device commands. Answered
    /// here, at once and quietly: Python's `open` asks `TCGETS` of every
    /// file it opens, and fuser's default logs a warning for each.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(kernel_errno(cairn_proto::Errno::ENOTTY));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            match fs.listxattr(ino.0).await {
                Ok(names) => {
                    let mut buf = Vec::new();
                    for n in names {
                        buf.extend_from_slice(&n);
                        buf.push(0);
                    }
                    if size == 0 {
                        reply.size(buf.len() as u32)
                    } else if buf.len() > size as usize {
                        reply.error(kernel_errno(cairn_proto::Errno::ERANGE))
                    } else {
                        reply.data(&buf)
                    }
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let (fs, n) = (self.fs.clone(), name(n));
        self.rt.spawn(async move {
            match fs.removexattr(ino.0, &n).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Space is not reserved ahead (blobs are written whole when data
        // comes); what fallocate promises that a reader can see is the size.
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            reply.error(kernel_errno(cairn_proto::Errno::EOPNOTSUPP));
            return;
        }
        let fs = self.fs.clone();
        self.rt.spawn(async move {
            let r = async {
                let a = fs.getattr(ino.0).await?;
                let end = offset.saturating_add(length);
                let size = (mode & libc::FALLOC_FL_KEEP_SIZE == 0 && end > a.size).then_some(end);
                fs.setattr(ino.0, SetAttr { size, ..Default::default() }).await
            };
            match r.await {
                Ok(_) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // The mount uses `default_permissions`: the kernel checks modes.
        reply.ok();
    }

    fn create(&self, req: &Request, parent: INodeNo, n: &OsStr, mode: u32, umask: u32, flags: i32, reply: ReplyCreate) {
        let (fs, n, uid, gid) = (self.fs.clone(), name(n), req.uid(), req.gid());
        self.rt.spawn(async move {
            let (gid, _) = group_for(&fs, parent.0, gid).await;
            let node = NewNode { kind: Kind::File, perm: mode & !umask & 0o7777, uid, gid, rdev: 0, target: vec![] };
            let made = match fs.mknod(parent.0, &n, node).await {
                // The kernel thought the name absent (its negative entry, or
                // this mount's, from before another mount's create reached
                // it through the feed): without O_EXCL, open what is there.
                Err(e) if e.errno == cairn_proto::Errno::EEXIST && flags & libc::O_EXCL == 0 => {
                    open_existing(&fs, parent.0, &n, flags, uid, gid).await
                }
                other => other,
            };
            match made {
                Ok(a) => {
                    let fh = fs.open_handle(a.ino, flags & libc::O_APPEND != 0);
                    reply.created(&TTL, &file_attr(&a), Generation(0), FileHandle(fh), FopenFlags::empty())
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }
}

/// What `create` answers for a name another mount made first, as `open`
/// would have: the kernel takes the answer for a file it made, so it checks
/// no permission on it and truncates nothing; both are done here. Only the
/// owner, the group (the caller's primary one) and the others' bits are
/// checked: a caller allowed only through a supplementary group gets
/// EACCES, the safe side.
async fn open_existing(fs: &Fs, parent: u64, name: &[u8], flags: i32, uid: u32, gid: u32) -> cairn_fs::Result<Attr> {
    tracing::debug!(parent, name = %String::from_utf8_lossy(name), "create of a name another mount made meanwhile: opening it");
    let a = fs.lookup(parent, name).await?;
    match a.kind {
        Kind::File => {}
        Kind::Dir => return Err(FsError::errno(cairn_proto::Errno::EISDIR)),
        // A symlink would have been followed, a device opened as such:
        // not this path's to do.
        _ => return Err(FsError::errno(cairn_proto::Errno::EEXIST)),
    }
    let want = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => 0o4,
        libc::O_WRONLY => 0o2,
        _ => 0o6,
    };
    let granted = if uid == a.uid {
        a.perm >> 6
    } else if gid == a.gid {
        a.perm >> 3
    } else {
        a.perm
    } & 0o7;
    if uid != 0 && granted & want != want {
        return Err(FsError::errno(cairn_proto::Errno::EACCES));
    }
    if flags & libc::O_TRUNC != 0 && a.size > 0 {
        return fs.setattr(a.ino, SetAttr { size: Some(0), ..Default::default() }).await;
    }
    Ok(a)
}

/// Mount options: the kernel checks permissions from the attributes.
pub fn config(volume: &str, allow_other: bool) -> fuser::Config {
    let mut c = fuser::Config::default();
    c.mount_options = vec![
        fuser::MountOption::FSName(format!("cairn:{volume}")),
        fuser::MountOption::Subtype("cairn".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    if allow_other {
        c.acl = fuser::SessionACL::All;
    }
    c.n_threads = Some(4);
    c
}

pub use fuser::{spawn_mount, BackgroundSession};

/// Sets how far ahead the kernel reads a file read sequentially through
/// the mount at `mountpoint` (its `read_ahead_kb`; the kernel starts FUSE
/// mounts at 128 KiB). Far enough ahead, the kernel keeps several read
/// requests in flight (up to its 16 background requests of 1 MiB) while
/// the program consumes earlier pages, instead of one 128 KiB request at a
/// time: a cold 1 GiB read went from 320–505 MB/s to 605–706 MB/s. Random
/// reads are not read ahead, so they do not pay for it. Needs root (it is
/// a sysfs file); the caller logs a failure and the mount works without.
pub fn set_read_ahead(mountpoint: &Path, kib: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(mountpoint)?.dev();
    let bdi = format!("/sys/class/bdi/{}:{}/read_ahead_kb", libc::major(dev), libc::minor(dev));
    std::fs::write(bdi, kib.to_string())
}

/// Makes the kernel forget its cached entries and attributes of what other
/// mounts change, as the meta service reports it (see
/// [`Fs::follow_changes`]).
pub fn follow_changes(fs: &Arc<Fs>, notifier: fuser::Notifier) {
    Fs::follow_changes(
        fs,
        Arc::new(move |changes| {
            for c in changes {
                // ENOENT: the kernel did not have it cached, nothing to drop.
                let _ = match c {
                    Changed::Entry { parent, name } | Changed::Unlinked { parent, name } => {
                        notifier.inval_entry(INodeNo(parent), OsStr::from_bytes(&name))
                    }
                    Changed::Inode { ino } => notifier.inval_inode(INodeNo(ino), 0, 0),
                };
            }
        }),
    );
}
