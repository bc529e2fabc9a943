//! [`CairnFuse`]: the kernel's requests, each answered by the shared
//! file-system layer, at once in the FUSE thread when that needs no
//! waiting ([`AnswerNow`]), else as a task on the tokio runtime.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cairn_fs::{AnswerNow, Fs, FsError};
use cairn_proto::meta::{Attr, Kind, NewNode, RenameMode, SetAttr, Time};
use fuser::{
    AccessFlags, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, IoctlFlags,
    KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request,
    TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;

use crate::convert::{dot_attr, errno, file_attr, kernel_errno, kind_of_mode, name, time_of};
use crate::dir_cursor::DirCursor;
use crate::page_stamps::PageStamps;

/// How long the kernel may cache attributes and entries. Long, because
/// what other mounts change is dropped from the cache as it happens (see
/// [`crate::follow_changes`]); this bounds staleness only when that feed was lost.
const TTL: Duration = Duration::from_secs(30);

/// A mounted volume.
pub struct CairnFuse {
    fs: Arc<Fs>,
    rt: Handle,
    /// What the kernel's cached pages of each file hold (see `page_stamps`).
    pages: Arc<PageStamps>,
    /// Open directories.
    dirs: Arc<Mutex<HashMap<u64, Arc<tokio::sync::Mutex<DirCursor>>>>>,
    next_dir: AtomicU64,
}

impl CairnFuse {
    /// A mount of `fs`, running requests on `rt`.
    pub fn new(fs: Arc<Fs>, rt: Handle) -> Self {
        let pages = Arc::new(PageStamps::default());
        fs.report_content_changes_to(pages.clone());
        Self { fs, rt, pages, dirs: Arc::default(), next_dir: AtomicU64::new(1) }
    }

    /// The cursor of an open directory.
    fn cursor(&self, fh: FileHandle) -> Option<Arc<tokio::sync::Mutex<DirCursor>>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner()).get(&fh.0).cloned()
    }
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
        // The kernel dropped the inode, and its pages with it: nothing of
        // the file is left to keep.
        self.pages.drop_stamp(ino.0);
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
        // Pages of a file without a stamp are dropped: open at once, and
        // record what the kernel caches from now on as of the attributes
        // this mount knows.
        if !self.pages.known(ino.0) {
            self.pages.at_open(ino.0, self.fs.committed_attr(ino.0).as_ref());
            let fh = self.fs.open_handle(ino.0, append);
            return reply.opened(FileHandle(fh), FopenFlags::empty());
        }
        // The kernel keeps what it cached of an unchanged file: a file
        // read again is not fetched again. It may when the file's
        // attributes, asked of the meta service now, are those its pages
        // were filled under (close-to-open, as NFS checks it: a change
        // made and closed elsewhere before this open is always seen).
        let (fs, pages) = (self.fs.clone(), self.pages.clone());
        self.rt.spawn(async move {
            let now = fs.fresh_attr(ino.0).await.ok();
            let keep = pages.at_open(ino.0, now.as_ref());
            let fh = fs.open_handle(ino.0, append);
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
