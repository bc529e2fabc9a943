//! The namespace: every operation is one transaction of the engine, so a
//! create, link, rename or unlink is atomic, and a crash at any moment
//! leaves the namespace as it was before or after each operation.
//!
//! Here: the transaction helpers every operation shares, volumes, lookups,
//! creating, removing and renaming. Beside it: `content.rs` (a file's
//! slices and the operations on them), `orphans.rs` (files unlinked while
//! open, and housekeeping), `xattrs.rs` (extended attributes and the
//! collector's queue), `check.rs` (`volume check`); `../usage.rs` and
//! `../clients.rs` add theirs the same way.

mod check;
mod content;
mod orphans;
mod xattrs;

use std::cell::Cell;

use serde::Serialize;

pub use cairn_proto::meta::{NewNode, RenameMode, SetAttr, VolumeStats};

use crate::engine::{Engine, KvRead, KvWrite};
use crate::error::{MetaError, Result};
use crate::key;
use crate::records::{self, decode, encode, Attr, Dirent, Holders, Inode, Kind, Slice, SliceRef, Time, Volume};
use crate::usage;
use cairn_proto::meta::{self as wire, ROOT};

pub use cairn_proto::meta::NAME_MAX;
/// Most hard links to one inode.
pub const LINK_MAX: u32 = 65_000;
/// Default largest blob one write makes.
pub const DEFAULT_CHUNK: u64 = 64 << 20;
/// A file unlinked while open is kept this long (by default) after the last
/// time a mount said it has it open (mounts say so several times per
/// lease; one that stops has gone away, and its open-unlinked files are
/// freed).
pub const ORPHAN_LEASE_SECS: u64 = 60;
/// A file with more slices than this is queued for the slice merger.
pub const COMPACT_AFTER: usize = 16;
/// How long the service remembers that a change was applied: longer than
/// any client retries it.
pub const APPLIED_MEMORY_SECS: i64 = 600;

thread_local! {
    /// The `(session, seq)` of the change this thread is applying, if it
    /// came tagged: its write transaction records it (see [`Namespace::tagged`]).
    static REQUEST_TAG: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
    /// The change this thread is applying may be answered before it is on
    /// disk (see [`Namespace::lazily`]).
    static LAZY: Cell<bool> = const { Cell::new(false) };
}

/// The namespace over an engine.
pub struct Namespace<E: Engine> {
    engine: E,
}

fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > NAME_MAX {
        return Err(MetaError::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        return Err(MetaError::Invalid(format!("bad name {:?}", String::from_utf8_lossy(name))));
    }
    Ok(())
}

fn check_volume_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(MetaError::Invalid(format!("volume name {name:?}: 1-64 letters, digits, '-' or '_'")))
    }
}

fn get<T: serde::de::DeserializeOwned>(r: &dyn KvRead, k: &[u8]) -> Result<Option<T>> {
    r.get(k)?.map(|b| decode(&b)).transpose()
}

fn put<T: Serialize>(w: &mut dyn KvWrite, k: &[u8], v: &T) -> Result<()> {
    w.put(k, &encode(v)?)
}

fn load(r: &dyn KvRead, vol: u32, ino: u64) -> Result<Inode> {
    get(r, &key::inode(vol, ino))?.ok_or_else(|| MetaError::NotFound(format!("inode {ino}")))
}

fn save(w: &mut dyn KvWrite, vol: u32, inode: &Inode) -> Result<()> {
    if inode.attr.kind == Kind::File {
        let old = usage::saved_size(w, vol, inode.attr.ino)?.unwrap_or(0);
        usage::track(w, vol, old, inode.attr.size)?;
    }
    put(w, &key::inode(vol, inode.attr.ino), inode)
}

fn load_dir(r: &dyn KvRead, vol: u32, ino: u64) -> Result<Inode> {
    let d = load(r, vol, ino)?;
    if d.attr.kind != Kind::Dir {
        return Err(MetaError::NotDir);
    }
    Ok(d)
}

/// Up to `limit` entries of directory `ino` after the name `after`.
fn dir_page(r: &dyn KvRead, vol: u32, ino: u64, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Dirent)>> {
    load_dir(r, vol, ino)?;
    let start = match after {
        Some(a) => {
            let mut k = key::dirent(vol, ino, a);
            k.push(0);
            k
        }
        None => key::dirent(vol, ino, &[]),
    };
    let prefix = key::dirent(vol, ino, &[]).len();
    r.scan(&start, &key::dirent_end(vol, ino), limit)?
        .into_iter()
        .map(|(k, v)| Ok((k[prefix..].to_vec(), decode(&v)?)))
        .collect()
}

fn entry(r: &dyn KvRead, vol: u32, parent: u64, name: &[u8]) -> Result<Option<Dirent>> {
    get(r, &key::dirent(vol, parent, name))
}

fn alloc_ino(w: &mut dyn KvWrite, vol: u32) -> Result<u64> {
    let k = key::next_ino(vol);
    let next: u64 = get(w, &k)?.unwrap_or(ROOT + 1);
    put(w, &k, &(next + 1))?;
    Ok(next)
}

fn is_empty_dir(r: &dyn KvRead, vol: u32, ino: u64) -> Result<bool> {
    Ok(r.scan(&key::dirent(vol, ino, &[]), &key::dirent_end(vol, ino), 1)?.is_empty())
}

fn touch_dir(dir: &mut Inode, now: Time) {
    dir.attr.mtime = now;
    dir.attr.ctime = now;
}

/// One file let go of `blobs` (each once, however many of its slices
/// held it): a blob that other files share (server-side copies) loses a
/// holder; any other is queued for the collector, stamped with when it was
/// dropped.
fn collect(w: &mut dyn KvWrite, blobs: impl IntoIterator<Item = String>) -> Result<()> {
    let now = Time::now().secs;
    let blobs: std::collections::BTreeSet<String> = blobs.into_iter().collect();
    for b in blobs {
        let shared = key::shared(&b);
        match get::<u64>(w, &shared)? {
            Some(more) if more > 1 => put(w, &shared, &(more - 1))?,
            Some(_) => w.delete(&shared)?,
            None => put(w, &key::garbage(&b), &now)?,
        }
    }
    Ok(())
}

/// Removes one link of `inode` (its entry is already gone). A file left
/// with no link becomes an orphan, kept until [`Namespace::release`] (it
/// may be open); anything else goes at once.
fn drop_link(w: &mut dyn KvWrite, vol: u32, mut inode: Inode, now: Time) -> Result<()> {
    if inode.attr.kind == Kind::Dir {
        w.delete(&key::inode(vol, inode.attr.ino))?;
        return Ok(());
    }
    inode.attr.nlink = inode.attr.nlink.saturating_sub(1);
    inode.attr.ctime = now;
    if inode.attr.nlink > 0 {
        return save(w, vol, &inode);
    }
    if inode.attr.kind == Kind::File {
        save(w, vol, &inode)?;
        return put(w, &key::orphan(vol, inode.attr.ino), &Holders { since: now.secs, sessions: Default::default() });
    }
    w.delete(&key::inode(vol, inode.attr.ino))
}

fn be_u32(k: &[u8], at: usize) -> Option<u32> {
    k.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes)
}

fn be_u64(k: &[u8], at: usize) -> Option<u64> {
    k.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
}

/// Calls `f` on every pair in `[start, end)`, a page at a time.
fn for_each(r: &dyn KvRead, start: &[u8], end: &[u8], mut f: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
    for_each_until(r, start, end, |k, v| f(k, v).map(|()| true))
}

/// Calls `f` on the pairs in `[start, end)`, a page at a time, until it
/// answers `false`: a range of millions is never in memory at once.
fn for_each_until(
    r: &dyn KvRead,
    start: &[u8],
    end: &[u8],
    mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
) -> Result<()> {
    let mut from = start.to_vec();
    loop {
        let page = r.scan(&from, end, 1000)?;
        let Some((last, _)) = page.last() else { return Ok(()) };
        from = last.clone();
        from.push(0);
        for (k, v) in &page {
            if !f(k, v)? {
                return Ok(());
            }
        }
    }
}

/// Whether `ino` is `ancestor` or lies below it.
fn is_within(r: &dyn KvRead, vol: u32, mut ino: u64, ancestor: u64) -> Result<bool> {
    for _ in 0..4096 {
        if ino == ancestor {
            return Ok(true);
        }
        if ino == ROOT {
            return Ok(false);
        }
        ino = load(r, vol, ino)?.parent;
    }
    Err(MetaError::Engine("directory parents form a loop".into()))
}

/// Runs `f` with this thread's `key` set to `value`, and `cleared` after,
/// even if `f` panics.
fn with_set<V: Copy + 'static, T>(
    key: &'static std::thread::LocalKey<Cell<V>>,
    value: V,
    cleared: V,
    f: impl FnOnce() -> T,
) -> T {
    struct Clear<V: Copy + 'static>(&'static std::thread::LocalKey<Cell<V>>, V);
    impl<V: Copy + 'static> Drop for Clear<V> {
        fn drop(&mut self) {
            self.0.with(|t| t.set(self.1));
        }
    }
    key.with(|t| t.set(value));
    let _clear = Clear(key, cleared);
    f()
}

fn new_attr(ino: u64, kind: Kind, perm: u32, uid: u32, gid: u32, now: Time) -> Attr {
    Attr {
        ino,
        kind,
        perm: perm & 0o7777,
        uid,
        gid,
        size: 0,
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        nlink: if kind == Kind::Dir { 2 } else { 1 },
        rdev: 0,
    }
}

impl<E: Engine> Namespace<E> {
    /// The namespace kept in `engine`, whose database is made one of
    /// this code's format version first: stamped if new, migrated if
    /// older, refused ([`MetaError::FormatTooNew`]) if newer.
    pub fn open(engine: E) -> Result<Self> {
        crate::format::open(&engine)?;
        Ok(Self { engine })
    }

    /// The engine (for the operations kept in files of their own).
    pub(crate) fn engine(&self) -> &E {
        &self.engine
    }

    /// Every change goes through here: one engine transaction, which also
    /// records the change's tag when it has one. A tagged change whose tag
    /// is already recorded fails with [`MetaError::AlreadyApplied`] and
    /// changes nothing; checking inside the transaction makes a retry
    /// that races its original safe.
    pub(crate) fn change<T>(&self, mut f: impl FnMut(&mut dyn KvWrite) -> Result<T>) -> Result<T> {
        let tag = REQUEST_TAG.with(Cell::get);
        let txn = |w: &mut dyn KvWrite| match tag {
            None => f(w),
            Some((session, seq)) => {
                let k = key::applied(session, seq);
                if w.get(&k)?.is_some() {
                    return Err(MetaError::AlreadyApplied);
                }
                let out = f(w)?;
                put(w, &k, &Time::now().secs)?;
                Ok(out)
            }
        };
        if LAZY.with(Cell::get) {
            self.engine.write_lazily(txn)
        } else {
            self.engine.write(txn)
        }
    }

    /// Runs `f` (one change) answerable before it is on disk: a power cut
    /// in the next few milliseconds may lose it, unless [`Namespace::sync`]
    /// or a durable change came after it (see [`Engine::write_lazily`]).
    /// For changes of names and attributes only; a file's content is
    /// committed durably.
    pub fn lazily<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        with_set(&LAZY, true, false, f)
    }

    /// Puts every change answered so far on disk (`fsync`, `fsyncdir`).
    pub fn sync(&self) -> Result<()> {
        self.engine.sync()
    }

    /// Whether a change made lazily now would finish without waiting for
    /// a sync or another batch (see [`Engine::writes_lazily_without_waiting`]).
    pub fn changes_lazily_without_waiting(&self) -> bool {
        self.engine.writes_lazily_without_waiting()
    }

    /// Whether a read answers without waiting on a disk or a network (see
    /// [`Engine::reads_without_waiting`]).
    pub fn reads_without_waiting(&self) -> bool {
        self.engine.reads_without_waiting()
    }

    /// Runs `f` (one change) tagged with `(session, seq)`: applied at most
    /// once, however often a client sends it.
    pub fn tagged<T>(&self, session: u64, seq: u64, f: impl FnOnce() -> Result<T>) -> Result<T> {
        with_set(&REQUEST_TAG, Some((session, seq)), None, f)
    }

    // ---- volumes ----

    /// Creates a volume with an empty root directory.
    pub fn create_volume(&self, name: &str, groups: Vec<String>, chunk_size: u64) -> Result<wire::Volume> {
        check_volume_name(name)?;
        if !(1 << 16..=1 << 30).contains(&chunk_size) {
            return Err(MetaError::Invalid("chunk size must be between 64 KiB and 1 GiB".into()));
        }
        self.change(|w| {
            if w.get(&key::volume(name))?.is_some() {
                return Err(MetaError::Exists(format!("volume {name}")));
            }
            let id: u32 = get(w, key::NEXT_VOLUME)?.unwrap_or(1);
            put(w, key::NEXT_VOLUME, &(id + 1))?;
            let now = Time::now();
            let v = Volume { id, name: name.to_string(), groups: groups.clone(), chunk_size, created: now.secs as u64 };
            put(w, &key::volume(name), &v)?;
            let root = Inode {
                attr: new_attr(ROOT, Kind::Dir, 0o755, 0, 0, now),
                parent: ROOT,
                target: Vec::new(),
                slices: Vec::new(),
                xattrs: Default::default(),
            };
            save(w, id, &root)?;
            Ok(v.into())
        })
    }

    /// Every volume, by name.
    pub fn volumes(&self) -> Result<Vec<wire::Volume>> {
        self.engine
            .read(|r| r.scan(b"v", b"w", usize::MAX)?.iter().map(|(_, v)| Ok(decode::<Volume>(v)?.into())).collect())
    }

    /// The format version of the database (docs/formats/meta.md).
    pub fn format_version(&self) -> Result<u32> {
        self.engine.read(|r| Ok(crate::format::stored_version(r)?.unwrap_or(crate::FORMAT_VERSION)))
    }

    /// One volume.
    pub fn volume(&self, name: &str) -> Result<wire::Volume> {
        self.engine
            .read(|r| get::<Volume>(r, &key::volume(name)))?
            .map(Into::into)
            .ok_or_else(|| MetaError::NotFound(format!("volume {name}")))
    }

    /// Deletes a volume and its whole namespace; its blobs go to the
    /// collector.
    /// Refused while clients heard from within `lease_secs` are attached,
    /// unless `force`.
    pub fn delete_volume(&self, name: &str, force: bool, lease_secs: u64) -> Result<()> {
        if !force {
            let v = self.volume(name)?;
            let clients = self.clients(v.id, lease_secs)?;
            if let Some(first) = clients.first() {
                let more = match clients.len() {
                    1 => String::new(),
                    n => format!(" and {} more", n - 1),
                };
                return Err(MetaError::Busy(format!(
                    "volume {name} is in use by {}{more}; unmount it first, or delete with --force",
                    first.what
                )));
            }
        }
        self.change(|w| {
            let v: Volume = get(w, &key::volume(name))?.ok_or_else(|| MetaError::NotFound(format!("volume {name}")))?;
            w.delete(&key::volume(name))?;
            for tag in [b'i', b's', b'c', b'd', b'o', b'u', b'm'] {
                let (start, end) = (key::prefix(tag, v.id), key::prefix(tag, v.id + 1));
                loop {
                    let batch = w.scan(&start, &end, 1000)?;
                    if batch.is_empty() {
                        break;
                    }
                    for (k, val) in &batch {
                        if tag == b'i' {
                            let inode: Inode = decode(val)?;
                            collect(w, inode.slices.into_iter().map(|s| s.blob))?;
                        } else if tag == b's' {
                            let (_, slices): (u64, Vec<Slice>) = decode(val)?;
                            collect(w, slices.into_iter().map(|s| s.blob))?;
                        }
                        w.delete(k)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Inode counts of a volume.
    pub fn stats(&self, vol: u32) -> Result<VolumeStats> {
        self.engine.read(|r| {
            let next: u64 = get(r, &key::next_ino(vol))?.unwrap_or(ROOT + 1);
            let bytes: u64 = get(r, &key::usage(vol))?.unwrap_or(0);
            Ok(VolumeStats { inodes: next - 1, bytes })
        })
    }

    // ---- lookups ----

    /// The entry `name` in directory `parent`.
    pub fn lookup(&self, vol: u32, parent: u64, name: &[u8]) -> Result<wire::Attr> {
        if name.len() > NAME_MAX {
            return Err(MetaError::NameTooLong);
        }
        self.engine.read(|r| {
            let dir = load_dir(r, vol, parent)?;
            let ino = match name {
                b"." => parent,
                b".." => dir.parent,
                _ => {
                    entry(r, vol, parent, name)?
                        .ok_or_else(|| MetaError::NotFound(String::from_utf8_lossy(name).into_owned()))?
                        .ino
                }
            };
            Ok(load(r, vol, ino)?.attr.into())
        })
    }

    /// Attributes of an inode.
    pub fn getattr(&self, vol: u32, ino: u64) -> Result<wire::Attr> {
        self.engine.read(|r| Ok(load(r, vol, ino)?.attr.into()))
    }

    /// A symlink's target.
    pub fn readlink(&self, vol: u32, ino: u64) -> Result<Vec<u8>> {
        self.engine.read(|r| {
            let i = load(r, vol, ino)?;
            if i.attr.kind != Kind::Symlink {
                return Err(MetaError::Invalid("not a symlink".into()));
            }
            Ok(i.target)
        })
    }

    /// Up to `limit` entries of a directory after the name `after`, in
    /// name order (paging through any size of directory).
    pub fn readdir(
        &self,
        vol: u32,
        ino: u64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, wire::Dirent)>> {
        let page = self.engine.read(|r| dir_page(r, vol, ino, after, limit))?;
        Ok(page.into_iter().map(|(name, d)| (name, d.into())).collect())
    }

    /// Like [`Namespace::readdir`], with each entry's attributes, read in
    /// the same transaction (the page is one consistent picture).
    /// Each entry also says whether its inode has extended attributes.
    pub fn readdir_plus(
        &self,
        vol: u32,
        ino: u64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, wire::Attr, bool)>> {
        self.engine.read(|r| {
            dir_page(r, vol, ino, after, limit)?
                .into_iter()
                .map(|(name, d)| {
                    let i = load(r, vol, d.ino)?;
                    Ok((name, i.attr.into(), !i.xattrs.is_empty()))
                })
                .collect()
        })
    }

    // ---- creating ----

    fn create_in(&self, vol: u32, parent: u64, name: &[u8], make: impl Fn(u64, Time) -> Inode) -> Result<Attr> {
        check_name(name)?;
        self.change(|w| {
            let mut dir = load_dir(w, vol, parent)?;
            if entry(w, vol, parent, name)?.is_some() {
                return Err(MetaError::Exists(String::from_utf8_lossy(name).into_owned()));
            }
            let now = Time::now();
            let ino = alloc_ino(w, vol)?;
            let inode = make(ino, now);
            if inode.attr.kind == Kind::Dir {
                dir.attr.nlink += 1;
            }
            touch_dir(&mut dir, now);
            put(w, &key::dirent(vol, parent, name), &Dirent { ino, kind: inode.attr.kind })?;
            save(w, vol, &inode)?;
            save(w, vol, &dir)?;
            Ok(inode.attr)
        })
    }

    /// Creates a file, device, fifo, socket or symlink.
    pub fn mknod(&self, vol: u32, parent: u64, name: &[u8], n: NewNode) -> Result<wire::Attr> {
        let kind = Kind::from(n.kind);
        if kind == Kind::Dir {
            return Err(MetaError::Invalid("use mkdir for directories".into()));
        }
        self.create_in(vol, parent, name, |ino, now| {
            let mut attr = new_attr(ino, kind, n.perm, n.uid, n.gid, now);
            attr.rdev = n.rdev;
            if kind == Kind::Symlink {
                attr.size = n.target.len() as u64;
                attr.perm = 0o777;
            }
            Inode { attr, parent, target: n.target.clone(), slices: Vec::new(), xattrs: Default::default() }
        })
        .map(Into::into)
    }

    /// Creates a directory.
    pub fn mkdir(&self, vol: u32, parent: u64, name: &[u8], perm: u32, uid: u32, gid: u32) -> Result<wire::Attr> {
        self.create_in(vol, parent, name, |ino, now| Inode {
            attr: new_attr(ino, Kind::Dir, perm, uid, gid, now),
            parent,
            target: Vec::new(),
            slices: Vec::new(),
            xattrs: Default::default(),
        })
        .map(Into::into)
    }

    /// A new hard link `newname` in `newparent` to `ino`.
    pub fn link(&self, vol: u32, ino: u64, newparent: u64, newname: &[u8]) -> Result<wire::Attr> {
        check_name(newname)?;
        self.change(|w| {
            let mut inode = load(w, vol, ino)?;
            if inode.attr.kind == Kind::Dir {
                return Err(MetaError::Invalid("hard links to directories are not allowed".into()));
            }
            if inode.attr.nlink == 0 {
                // A file unlinked while open gets a name again (as Linux
                // links an O_TMPFILE): the path API writes uploads that way,
                // so one cut off leaves nothing behind. It is no orphan now.
                if get::<Holders>(w, &key::orphan(vol, ino))?.is_none() {
                    return Err(MetaError::NotFound(format!("inode {ino} has no links left")));
                }
                w.delete(&key::orphan(vol, ino))?;
            }
            if inode.attr.nlink >= LINK_MAX {
                return Err(MetaError::TooManyLinks);
            }
            let mut dir = load_dir(w, vol, newparent)?;
            if entry(w, vol, newparent, newname)?.is_some() {
                return Err(MetaError::Exists(String::from_utf8_lossy(newname).into_owned()));
            }
            let now = Time::now();
            inode.attr.nlink += 1;
            inode.attr.ctime = now;
            touch_dir(&mut dir, now);
            put(w, &key::dirent(vol, newparent, newname), &Dirent { ino, kind: inode.attr.kind })?;
            save(w, vol, &inode)?;
            save(w, vol, &dir)?;
            Ok(inode.attr.into())
        })
    }

    // ---- removing ----

    /// Removes a non-directory entry.
    pub fn unlink(&self, vol: u32, parent: u64, name: &[u8]) -> Result<()> {
        self.remove(vol, parent, name, false)
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, vol: u32, parent: u64, name: &[u8]) -> Result<()> {
        if name == b"." {
            return Err(MetaError::Invalid("cannot remove '.'".into()));
        }
        if name == b".." {
            return Err(MetaError::NotEmpty);
        }
        self.remove(vol, parent, name, true)
    }

    fn remove(&self, vol: u32, parent: u64, name: &[u8], dir_wanted: bool) -> Result<()> {
        check_name(name)?;
        self.change(|w| {
            let mut dir = load_dir(w, vol, parent)?;
            let e = entry(w, vol, parent, name)?
                .ok_or_else(|| MetaError::NotFound(String::from_utf8_lossy(name).into_owned()))?;
            let inode = load(w, vol, e.ino)?;
            let is_dir = inode.attr.kind == Kind::Dir;
            match (dir_wanted, is_dir) {
                (true, false) => return Err(MetaError::NotDir),
                (false, true) => return Err(MetaError::IsDir),
                (true, true) if !is_empty_dir(w, vol, e.ino)? => return Err(MetaError::NotEmpty),
                _ => {}
            }
            let now = Time::now();
            w.delete(&key::dirent(vol, parent, name))?;
            if is_dir {
                dir.attr.nlink -= 1;
            }
            touch_dir(&mut dir, now);
            save(w, vol, &dir)?;
            drop_link(w, vol, inode, now)
        })
    }

    // ---- rename ----

    /// Renames `parent/name` to `newparent/newname`, atomically.
    pub fn rename(
        &self,
        vol: u32,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        mode: RenameMode,
    ) -> Result<()> {
        check_name(name)?;
        check_name(newname)?;
        self.change(|w| {
            let src = entry(w, vol, parent, name)?
                .ok_or_else(|| MetaError::NotFound(String::from_utf8_lossy(name).into_owned()))?;
            load_dir(w, vol, parent)?;
            load_dir(w, vol, newparent)?;
            let dst = entry(w, vol, newparent, newname)?;
            if parent == newparent && name == newname {
                return if mode == RenameMode::Exchange || dst.is_some() {
                    Ok(())
                } else {
                    Err(MetaError::NotFound("".into()))
                };
            }
            if src.kind == Kind::Dir && is_within(w, vol, newparent, src.ino)? {
                return Err(MetaError::Invalid("cannot move a directory into itself".into()));
            }
            let now = Time::now();
            match (mode, dst) {
                (RenameMode::Exchange, None) => Err(MetaError::NotFound(String::from_utf8_lossy(newname).into_owned())),
                (RenameMode::Exchange, Some(d)) => {
                    if d.kind == Kind::Dir && is_within(w, vol, parent, d.ino)? {
                        return Err(MetaError::Invalid("cannot move a directory into itself".into()));
                    }
                    put(w, &key::dirent(vol, parent, name), &d)?;
                    put(w, &key::dirent(vol, newparent, newname), &src)?;
                    self.moved(w, vol, src.ino, parent, newparent, now)?;
                    self.moved(w, vol, d.ino, newparent, parent, now)?;
                    self.touch_parents(w, vol, parent, newparent, now)
                }
                (RenameMode::NoReplace, Some(_)) => {
                    Err(MetaError::Exists(String::from_utf8_lossy(newname).into_owned()))
                }
                (_, existing) => {
                    if let Some(d) = existing {
                        let target = load(w, vol, d.ino)?;
                        match (src.kind == Kind::Dir, d.kind == Kind::Dir) {
                            (true, false) => return Err(MetaError::NotDir),
                            (false, true) => return Err(MetaError::IsDir),
                            (true, true) if !is_empty_dir(w, vol, d.ino)? => return Err(MetaError::NotEmpty),
                            _ => {}
                        }
                        if d.ino == src.ino {
                            // Two links to one file: POSIX says do nothing.
                            return Ok(());
                        }
                        if d.kind == Kind::Dir {
                            let mut np = load(w, vol, newparent)?;
                            np.attr.nlink -= 1;
                            save(w, vol, &np)?;
                        }
                        drop_link(w, vol, target, now)?;
                    }
                    w.delete(&key::dirent(vol, parent, name))?;
                    put(w, &key::dirent(vol, newparent, newname), &src)?;
                    self.moved(w, vol, src.ino, parent, newparent, now)?;
                    self.touch_parents(w, vol, parent, newparent, now)
                }
            }
        })
    }

    /// An inode moved from `from` to `to`: a directory's parent and the
    /// link counts of both parents follow; its ctime changes.
    fn moved(&self, w: &mut dyn KvWrite, vol: u32, ino: u64, from: u64, to: u64, now: Time) -> Result<()> {
        let mut i = load(w, vol, ino)?;
        i.attr.ctime = now;
        if i.attr.kind == Kind::Dir && from != to {
            i.parent = to;
            let mut f = load(w, vol, from)?;
            f.attr.nlink -= 1;
            save(w, vol, &f)?;
            let mut t = load(w, vol, to)?;
            t.attr.nlink += 1;
            save(w, vol, &t)?;
        }
        save(w, vol, &i)
    }

    fn touch_parents(&self, w: &mut dyn KvWrite, vol: u32, a: u64, b: u64, now: Time) -> Result<()> {
        for p in if a == b { vec![a] } else { vec![a, b] } {
            let mut d = load(w, vol, p)?;
            touch_dir(&mut d, now);
            save(w, vol, &d)?;
        }
        Ok(())
    }
}
