//! The namespace: every operation is one transaction of the engine, so a
//! create, link, rename or unlink is atomic, and a crash at any moment
//! leaves the namespace as it was before or after each operation.

use std::cell::Cell;
use std::collections::HashMap;

use serde::Serialize;

pub use cairn_proto::meta::{NewNode, RenameMode, SetAttr, VolumeStats};

use crate::engine::{Engine, KvRead, KvWrite};
use crate::error::{MetaError, Result};
use crate::model::{decode, encode, key, Attr, Dirent, Holders, Inode, Kind, Slice, Time, Volume, ROOT};
use crate::slices::{self, Piece};
use crate::usage;

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
/// A file with more slices than this is queued for the compactor.
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

/// A file's slices, oldest first, and their generation: taken from an
/// older inode that holds them inline (the caller saves the inode without
/// them), else read from their own key. The record is postcard's
/// `(generation, slices)`; the generation grows whenever slices other than
/// the newest change (a compaction, a truncation), so a reader that takes
/// the list a page at a time can tell it read one list (appends only add
/// at the end, and leave the pages read before them true).
fn load_slice_record(r: &dyn KvRead, vol: u32, inode: &mut Inode) -> Result<(u64, Vec<Slice>)> {
    if !inode.slices.is_empty() {
        return Ok((0, std::mem::take(&mut inode.slices)));
    }
    Ok(get(r, &key::slices(vol, inode.attr.ino))?.unwrap_or_default())
}

fn load_slices(r: &dyn KvRead, vol: u32, inode: &mut Inode) -> Result<Vec<Slice>> {
    Ok(load_slice_record(r, vol, inode)?.1)
}

/// Saves a file's slices under `generation`. An emptied list is kept too
/// (a few bytes): its generation must not start again from zero, or a
/// compactor that read the list before it was emptied could swap its merge
/// into the file's new content.
fn save_slices(w: &mut dyn KvWrite, vol: u32, ino: u64, generation: u64, slices: &[Slice]) -> Result<()> {
    put(w, &key::slices(vol, ino), &(generation, slices))
}

/// Puts `new` on top of a file's slices and returns how many it has. A
/// file written at random holds thousands, so they are not decoded: the
/// record is two varints (generation, count) and then the items back to
/// back, and only the count changes.
fn append_slices(w: &mut dyn KvWrite, vol: u32, inode: &mut Inode, new: &[Slice]) -> Result<usize> {
    let ino = inode.attr.ino;
    if !inode.slices.is_empty() {
        let (generation, mut all) = load_slice_record(w, vol, inode)?;
        all.extend_from_slice(new);
        save_slices(w, vol, ino, generation, &all)?;
        return Ok(all.len());
    }
    let k = key::slices(vol, ino);
    let old = w.get(&k)?.unwrap_or_default();
    let (generation, count, items) = if old.is_empty() { (0, 0, &old[..]) } else { slice_record_head(&old, ino)? };
    let total = count + new.len() as u64;
    let mut out = encode(&(generation, total))?;
    out.extend_from_slice(items);
    for s in new {
        out.extend_from_slice(&encode(s)?);
    }
    w.put(&k, &out)?;
    Ok(total as usize)
}

/// A stored slice record's generation and slice count, and the encoded
/// slices that follow them.
fn slice_record_head(raw: &[u8], ino: u64) -> Result<(u64, u64, &[u8])> {
    let (generation, rest) = postcard::take_from_bytes::<u64>(raw).map_err(corrupt_slices(ino))?;
    let (count, items) = postcard::take_from_bytes::<u64>(rest).map_err(corrupt_slices(ino))?;
    Ok((generation, count, items))
}

fn corrupt_slices(ino: u64) -> impl Fn(postcard::Error) -> MetaError {
    move |e| MetaError::Engine(format!("corrupt slice list of inode {ino}: {e}"))
}

/// The compactor's swap: the oldest `count` of `all` become `merged`, the
/// blobs no slice refers to any more go to the collector, and the
/// generation moves on.
fn replace_oldest(
    w: &mut dyn KvWrite,
    vol: u32,
    inode: &Inode,
    generation: u64,
    mut all: Vec<Slice>,
    count: usize,
    merged: Vec<Slice>,
) -> Result<()> {
    let ino = inode.attr.ino;
    let newer = all.split_off(count.min(all.len()));
    if newer.len() <= COMPACT_AFTER {
        w.delete(&key::compact(vol, ino))?;
    }
    let old: Vec<String> = all.iter().map(|s| s.blob.clone()).collect();
    all = merged;
    all.extend(newer);
    let kept: std::collections::HashSet<&String> = all.iter().map(|s| &s.blob).collect();
    collect(w, old.into_iter().filter(|b| !kept.contains(b)))?;
    save_slices(w, vol, ino, generation + 1, &all)?;
    // An older inode's inline slices were taken: it is saved without.
    save(w, vol, inode)
}

/// A slice as stored, borrowing its blob's name: the same encoding as
/// [`Slice`], read without allocating.
#[derive(serde::Deserialize)]
struct StoredSlice<'a> {
    offset: u64,
    len: u64,
    blob: &'a str,
    blob_offset: u64,
}

/// Up to `limit` slices from the `from`th of a stored record, with its
/// generation and length: the slices before the page are stepped over
/// without allocating, those after it are not read (a page of a list of
/// 150,000 costs a fraction of decoding it).
fn page_of(raw: &[u8], ino: u64, from: u64, limit: usize) -> Result<(u64, u64, Vec<Slice>)> {
    let (generation, total, mut rest) = slice_record_head(raw, ino)?;
    let mut page = Vec::with_capacity(limit.min(total.saturating_sub(from) as usize));
    for at in 0..total {
        if page.len() >= limit {
            break;
        }
        let (s, after) = postcard::take_from_bytes::<StoredSlice>(rest).map_err(corrupt_slices(ino))?;
        rest = after;
        if at >= from {
            page.push(Slice { offset: s.offset, len: s.len, blob: s.blob.to_string(), blob_offset: s.blob_offset });
        }
    }
    Ok((generation, total, page))
}

/// Forgets a file's slices (its inode goes) and hands their blobs to the
/// collector.
fn drop_slices(w: &mut dyn KvWrite, vol: u32, inode: &mut Inode) -> Result<()> {
    let slices = load_slices(w, vol, inode)?;
    w.delete(&key::slices(vol, inode.attr.ino))?;
    collect(w, slices.into_iter().map(|s| s.blob))
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

/// Forgets an orphan: its inode goes (unless it got a link back) and its
/// blobs go to the collector.
fn free_orphan(w: &mut dyn KvWrite, vol: u32, ino: u64) -> Result<()> {
    if let Some(mut inode) = get::<Inode>(w, &key::inode(vol, ino))? {
        if inode.attr.nlink > 0 {
            return w.delete(&key::orphan(vol, ino));
        }
        drop_slices(w, vol, &mut inode)?;
        usage::track(w, vol, inode.attr.size, 0)?;
        w.delete(&key::inode(vol, ino))?;
    }
    w.delete(&key::orphan(vol, ino))
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
    /// A namespace kept in `engine`.
    pub fn new(engine: E) -> Self {
        Self { engine }
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
    pub(crate) fn change<T>(&self, f: impl FnOnce(&mut dyn KvWrite) -> Result<T>) -> Result<T> {
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

    /// Runs `f` (one change) tagged with `(session, seq)`: applied at most
    /// once, however often a client sends it.
    pub fn tagged<T>(&self, session: u64, seq: u64, f: impl FnOnce() -> Result<T>) -> Result<T> {
        with_set(&REQUEST_TAG, Some((session, seq)), None, f)
    }

    // ---- volumes ----

    /// Creates a volume with an empty root directory.
    pub fn create_volume(&self, name: &str, groups: Vec<String>, chunk_size: u64) -> Result<Volume> {
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
            let v = Volume { id, name: name.to_string(), groups, chunk_size, created: now.secs as u64 };
            put(w, &key::volume(name), &v)?;
            let root = Inode {
                attr: new_attr(ROOT, Kind::Dir, 0o755, 0, 0, now),
                parent: ROOT,
                target: Vec::new(),
                slices: Vec::new(),
                xattrs: Default::default(),
            };
            save(w, id, &root)?;
            Ok(v)
        })
    }

    /// Every volume, by name.
    pub fn volumes(&self) -> Result<Vec<Volume>> {
        self.engine.read(|r| r.scan(b"v", b"w", usize::MAX)?.iter().map(|(_, v)| decode(v)).collect())
    }

    /// One volume.
    pub fn volume(&self, name: &str) -> Result<Volume> {
        self.engine.read(|r| get(r, &key::volume(name)))?.ok_or_else(|| MetaError::NotFound(format!("volume {name}")))
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
    pub fn lookup(&self, vol: u32, parent: u64, name: &[u8]) -> Result<Attr> {
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
            Ok(load(r, vol, ino)?.attr)
        })
    }

    /// Attributes of an inode.
    pub fn getattr(&self, vol: u32, ino: u64) -> Result<Attr> {
        self.engine.read(|r| Ok(load(r, vol, ino)?.attr))
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
    pub fn readdir(&self, vol: u32, ino: u64, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Dirent)>> {
        self.engine.read(|r| dir_page(r, vol, ino, after, limit))
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
    ) -> Result<Vec<(Vec<u8>, Attr, bool)>> {
        self.engine.read(|r| {
            dir_page(r, vol, ino, after, limit)?
                .into_iter()
                .map(|(name, d)| {
                    let i = load(r, vol, d.ino)?;
                    Ok((name, i.attr, !i.xattrs.is_empty()))
                })
                .collect()
        })
    }

    // ---- creating ----

    fn create_in(&self, vol: u32, parent: u64, name: &[u8], make: impl FnOnce(u64, Time) -> Inode) -> Result<Attr> {
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
    pub fn mknod(&self, vol: u32, parent: u64, name: &[u8], n: NewNode) -> Result<Attr> {
        if n.kind == Kind::Dir {
            return Err(MetaError::Invalid("use mkdir for directories".into()));
        }
        self.create_in(vol, parent, name, |ino, now| {
            let mut attr = new_attr(ino, n.kind, n.perm, n.uid, n.gid, now);
            attr.rdev = n.rdev;
            if n.kind == Kind::Symlink {
                attr.size = n.target.len() as u64;
                attr.perm = 0o777;
            }
            Inode { attr, parent, target: n.target, slices: Vec::new(), xattrs: Default::default() }
        })
    }

    /// Creates a directory.
    pub fn mkdir(&self, vol: u32, parent: u64, name: &[u8], perm: u32, uid: u32, gid: u32) -> Result<Attr> {
        self.create_in(vol, parent, name, |ino, now| Inode {
            attr: new_attr(ino, Kind::Dir, perm, uid, gid, now),
            parent,
            target: Vec::new(),
            slices: Vec::new(),
            xattrs: Default::default(),
        })
    }

    /// A new hard link `newname` in `newparent` to `ino`.
    pub fn link(&self, vol: u32, ino: u64, newparent: u64, newname: &[u8]) -> Result<Attr> {
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
            Ok(inode.attr)
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

    /// Mount `session` closed its last handle of `ino`. An orphan (a file
    /// unlinked while open) is freed unless another mount said it has it
    /// open within `lease_secs`: its inode goes and its blobs go to the
    /// collector. A no-op for an inode that still has links.
    pub fn release(&self, vol: u32, ino: u64, session: u64, lease_secs: u64) -> Result<()> {
        // Nearly every close is of a file with links: no write transaction.
        if !self.is_orphan(vol, ino)? {
            return Ok(());
        }
        self.change(|w| {
            let Some(record) = w.get(&key::orphan(vol, ino))? else { return Ok(()) };
            let mut holders: Holders = decode(&record).unwrap_or_default();
            holders.sessions.remove(&session);
            let now = Time::now().secs;
            holders.sessions.retain(|_, at| *at + lease_secs as i64 >= now);
            if holders.sessions.is_empty() {
                free_orphan(w, vol, ino)
            } else {
                put(w, &key::orphan(vol, ino), &holders)
            }
        })
    }

    /// Whether `ino` is unlinked but kept for the mounts that have it open.
    pub fn is_orphan(&self, vol: u32, ino: u64) -> Result<bool> {
        Ok(self.engine.read(|r| r.get(&key::orphan(vol, ino)))?.is_some())
    }

    /// Orphans of a volume (files unlinked while open), e.g. to release
    /// those of a client that went away.
    pub fn orphans(&self, vol: u32) -> Result<Vec<u64>> {
        self.engine.read(|r| {
            let start = key::prefix(b'o', vol);
            Ok(r.scan(&start, &key::prefix(b'o', vol + 1), usize::MAX)?
                .into_iter()
                .filter_map(|(k, _)| be_u64(&k, 5))
                .collect())
        })
    }

    /// Mount `session` has `inodes` open: those unlinked meanwhile are
    /// kept for it for another lease.
    pub fn keep_open(&self, vol: u32, session: u64, inodes: &[u64]) -> Result<()> {
        let orphans: Vec<u64> = self.engine.read(|r| {
            let mut found = Vec::new();
            for &ino in inodes {
                if r.get(&key::orphan(vol, ino))?.is_some() {
                    found.push(ino);
                }
            }
            Ok(found)
        })?;
        if orphans.is_empty() {
            return Ok(());
        }
        self.change(|w| {
            let now = Time::now().secs;
            for ino in orphans {
                if let Some(record) = w.get(&key::orphan(vol, ino))? {
                    let mut holders: Holders = decode(&record).unwrap_or_default();
                    holders.sessions.insert(session, now);
                    put(w, &key::orphan(vol, ino), &holders)?;
                }
            }
            Ok(())
        })
    }

    /// Housekeeping, at `now` (Unix seconds): frees files unlinked while
    /// open whose lease ran out (no mount holds them any more), and
    /// forgets applied-change tags old enough that no client retries them.
    /// Returns (files freed, tags forgotten); at most `limit` of each.
    pub fn sweep(&self, now: i64, lease_secs: u64, limit: usize) -> Result<(usize, usize)> {
        let lease = lease_secs as i64;
        let (expired, old_tags) = self.engine.read(|r| {
            let mut expired = Vec::new();
            for_each_until(r, b"o", b"p", |k, v| {
                // A record that does not decode is from before leases: expired.
                let holders: Holders = decode(v).unwrap_or_default();
                if holders.last_seen() + lease < now {
                    if let (Some(vol), Some(ino)) = (be_u32(k, 1), be_u64(k, 5)) {
                        expired.push((vol, ino));
                    }
                }
                Ok(expired.len() < limit)
            })?;
            // Tags of every change of the last ten minutes: many.
            let mut old = Vec::new();
            for_each_until(r, b"r", b"s", |k, v| {
                let at: i64 = decode(v).unwrap_or(0);
                if at + APPLIED_MEMORY_SECS < now {
                    old.push(k.to_vec());
                }
                Ok(old.len() < limit)
            })?;
            Ok((expired, old))
        })?;
        let freed = expired.len();
        for (vol, ino) in expired {
            self.change(|w| {
                let Some(record) = w.get(&key::orphan(vol, ino))? else {
                    return Ok(()); // released since the scan
                };
                if decode::<Holders>(&record).unwrap_or_default().last_seen() + lease >= now {
                    return Ok(()); // kept again since the scan
                }
                free_orphan(w, vol, ino)
            })?;
        }
        let forgotten = old_tags.len();
        if forgotten > 0 {
            self.change(|w| {
                for k in &old_tags {
                    w.delete(k)?;
                }
                Ok(())
            })?;
        }
        Ok((freed, forgotten))
    }

    /// Whether a volume's namespace is consistent: every entry names a
    /// live inode of its kind inside a directory, link counts match the
    /// entries, every directory hangs from one entry of its recorded
    /// parent, and no inode is unreachable (except files unlinked while
    /// open). Returns (inodes and entries examined, problems).
    pub fn check(&self, vol: u32) -> Result<(u64, Vec<String>)> {
        self.engine.read(|r| {
            let mut inodes: HashMap<u64, (Kind, u32, u64)> = HashMap::new();
            let mut examined = 0u64;
            let mut problems = Vec::new();
            for_each(r, &key::prefix(b'i', vol), &key::prefix(b'i', vol + 1), |k, v| {
                examined += 1;
                let i: Inode = decode(v)?;
                if be_u64(k, 5) != Some(i.attr.ino) {
                    problems.push(format!("inode record {:?} holds inode {}", be_u64(k, 5), i.attr.ino));
                }
                inodes.insert(i.attr.ino, (i.attr.kind, i.attr.nlink, i.parent));
                Ok(())
            })?;
            if !inodes.contains_key(&ROOT) {
                problems.push("the root directory is missing".into());
            }
            // Entries pointing at each inode, and subdirectories of each directory.
            let mut links: HashMap<u64, u32> = HashMap::new();
            let mut subdirs: HashMap<u64, u32> = HashMap::new();
            for_each(r, &key::prefix(b'd', vol), &key::prefix(b'd', vol + 1), |k, v| {
                examined += 1;
                let d: Dirent = decode(v)?;
                let parent = be_u64(k, 5).unwrap_or(0);
                let name = String::from_utf8_lossy(k.get(13..).unwrap_or_default()).into_owned();
                match inodes.get(&parent) {
                    Some((Kind::Dir, _, _)) => {}
                    Some(_) => problems.push(format!("entry {name:?} is in inode {parent}, not a directory")),
                    None => problems.push(format!("entry {name:?} is in directory {parent}, which does not exist")),
                }
                match inodes.get(&d.ino) {
                    None => {
                        problems.push(format!("entry {name:?} in {parent} names inode {}, which does not exist", d.ino))
                    }
                    Some((kind, _, p)) => {
                        if *kind != d.kind {
                            problems.push(format!(
                                "entry {name:?} in {parent} says {:?}, inode {} is {kind:?}",
                                d.kind, d.ino
                            ));
                        }
                        if *kind == Kind::Dir {
                            *subdirs.entry(parent).or_default() += 1;
                            if *p != parent {
                                problems.push(format!("directory {} is in {parent} but records parent {p}", d.ino));
                            }
                        }
                    }
                }
                *links.entry(d.ino).or_default() += 1;
                Ok(())
            })?;
            for_each(r, &key::prefix(b's', vol), &key::prefix(b's', vol + 1), |k, _| {
                let ino = be_u64(k, 5).unwrap_or(0);
                if !matches!(inodes.get(&ino), Some((Kind::File, _, _))) {
                    problems.push(format!("slices are kept for inode {ino}, which is not a file"));
                }
                Ok(())
            })?;
            let mut orphans = std::collections::HashSet::new();
            for_each(r, &key::prefix(b'o', vol), &key::prefix(b'o', vol + 1), |k, _| {
                let ino = be_u64(k, 5).unwrap_or(0);
                match inodes.get(&ino) {
                    Some((Kind::File, 0, _)) => {}
                    Some((_, n, _)) => problems.push(format!("inode {ino} is kept as unlinked but has {n} links")),
                    None => problems.push(format!("unlinked inode {ino} is kept but does not exist")),
                }
                orphans.insert(ino);
                Ok(())
            })?;
            let mut all: Vec<_> = inodes.iter().collect();
            all.sort_by_key(|(ino, _)| **ino);
            for (&ino, &(kind, nlink, _)) in all {
                let entries = links.get(&ino).copied().unwrap_or(0);
                if kind == Kind::Dir {
                    let want = 2 + subdirs.get(&ino).copied().unwrap_or(0);
                    if nlink != want {
                        problems.push(format!("directory {ino} has link count {nlink}, its entries make {want}"));
                    }
                    if ino != ROOT && entries != 1 {
                        problems.push(format!("directory {ino} has {entries} entries naming it"));
                    }
                } else if entries == 0 && !orphans.contains(&ino) {
                    problems.push(format!("inode {ino} is not reachable from any directory"));
                } else if nlink != entries {
                    problems.push(format!("inode {ino} has link count {nlink} but {entries} entries"));
                }
            }
            Ok((examined, problems))
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

    // ---- attributes and content ----

    /// Changes attributes; a size change truncates or extends (with a
    /// hole), and blobs no longer shown go to the collector.
    pub fn setattr(&self, vol: u32, ino: u64, s: SetAttr) -> Result<Attr> {
        self.change(|w| {
            let mut i = load(w, vol, ino)?;
            let now = Time::now();
            if let Some(p) = s.perm {
                i.attr.perm = p & 0o7777;
            }
            if let Some(u) = s.uid {
                i.attr.uid = u;
            }
            if let Some(g) = s.gid {
                i.attr.gid = g;
            }
            if let Some(t) = s.atime {
                i.attr.atime = t;
            }
            if let Some(t) = s.mtime {
                i.attr.mtime = t;
            }
            if let Some(size) = s.size {
                match i.attr.kind {
                    Kind::File => {}
                    Kind::Dir => return Err(MetaError::IsDir),
                    _ => return Err(MetaError::Invalid("size of a special file".into())),
                }
                if size < i.attr.size {
                    let (generation, before) = load_slice_record(w, vol, &mut i)?;
                    let mut after = before.clone();
                    slices::truncate(&mut after, size);
                    let kept: std::collections::HashSet<&String> = after.iter().map(|s| &s.blob).collect();
                    let gone: Vec<String> =
                        before.iter().map(|s| s.blob.clone()).filter(|b| !kept.contains(b)).collect();
                    collect(w, gone)?;
                    // Slices the truncation left whole do not void a merge
                    // of them that is on its way.
                    let generation = if after == before { generation } else { generation + 1 };
                    save_slices(w, vol, ino, generation, &after)?;
                }
                if size != i.attr.size && s.mtime.is_none() {
                    i.attr.mtime = now;
                }
                i.attr.size = size;
            }
            i.attr.ctime = now;
            save(w, vol, &i)?;
            Ok(i.attr)
        })
    }

    /// Commits written data: `new` slices (already uploaded as blobs) go
    /// on top of the file's content; the size grows to cover them.
    pub fn write(&self, vol: u32, ino: u64, new: Vec<Slice>) -> Result<Attr> {
        self.change(|w| {
            let mut i = load(w, vol, ino)?;
            if i.attr.kind != Kind::File {
                return Err(if i.attr.kind == Kind::Dir {
                    MetaError::IsDir
                } else {
                    MetaError::Invalid("not a file".into())
                });
            }
            let now = Time::now();
            for s in &new {
                i.attr.size = i.attr.size.max(s.offset + s.len);
            }
            if append_slices(w, vol, &mut i, &new)? > COMPACT_AFTER {
                w.put(&key::compact(vol, ino), &[])?;
            }
            i.attr.mtime = now;
            i.attr.ctime = now;
            save(w, vol, &i)?;
            Ok(i.attr)
        })
    }

    /// Makes file `to`'s content that of file `from` (a server-side copy):
    /// the same slices and size. Their blobs gain a holder each (see
    /// [`collect`]); `to`'s own go.
    pub fn clone_content(&self, vol: u32, from: u64, to: u64) -> Result<Attr> {
        self.change(|w| {
            let mut src = load(w, vol, from)?;
            let mut dst = load(w, vol, to)?;
            for i in [&src, &dst] {
                match i.attr.kind {
                    Kind::File => {}
                    Kind::Dir => return Err(MetaError::IsDir),
                    _ => return Err(MetaError::Invalid("not a file".into())),
                }
            }
            if from == to {
                return Ok(dst.attr);
            }
            let slices = load_slices(w, vol, &mut src)?;
            let blobs: std::collections::BTreeSet<&String> = slices.iter().map(|s| &s.blob).collect();
            for b in blobs {
                let k = key::shared(b);
                let more: u64 = get(w, &k)?.unwrap_or(0);
                put(w, &k, &(more + 1))?;
            }
            let (generation, old) = load_slice_record(w, vol, &mut dst)?;
            collect(w, old.into_iter().map(|s| s.blob))?;
            save_slices(w, vol, to, generation + 1, &slices)?;
            let now = Time::now();
            dst.attr.size = src.attr.size;
            dst.attr.mtime = now;
            dst.attr.ctime = now;
            if slices.len() > COMPACT_AFTER {
                w.put(&key::compact(vol, to), &[])?;
            }
            save(w, vol, &dst)?;
            Ok(dst.attr)
        })
    }

    /// The pieces that make `[offset, offset + len)` of a file.
    pub fn read(&self, vol: u32, ino: u64, offset: u64, len: u64) -> Result<(Attr, Vec<Piece>)> {
        self.engine.read(|r| {
            let mut i = load(r, vol, ino)?;
            if i.attr.kind == Kind::Dir {
                return Err(MetaError::IsDir);
            }
            let pieces = slices::resolve(&load_slices(r, vol, &mut i)?, i.attr.size, offset, len);
            Ok((i.attr, pieces))
        })
    }

    /// Replaces a file's oldest slices, `expected`, by fewer ones covering
    /// the same content (the compactor), provided they are still the
    /// file's oldest: slices written since the merge began stay on top of
    /// it (later slices win), so a file being written to all the time can
    /// still be compacted; a truncate changes the slices and voids it.
    pub fn compact(&self, vol: u32, ino: u64, expected: &[Slice], merged: Vec<Slice>) -> Result<bool> {
        self.change(|w| {
            let Some(mut i) = get::<Inode>(w, &key::inode(vol, ino))? else {
                w.delete(&key::compact(vol, ino))?;
                return Ok(false);
            };
            let (generation, all) = load_slice_record(w, vol, &mut i)?;
            if !all.starts_with(expected) {
                return Ok(false);
            }
            replace_oldest(w, vol, &i, generation, all, expected.len(), merged)?;
            Ok(true)
        })
    }

    /// Replaces a file's oldest `count` slices by `merged` (the compactor,
    /// which read them a page at a time) if the slices are still those of
    /// `generation`: only appended to since. Replacing none by nothing
    /// takes the file off the compactor's queue.
    pub fn compact_prefix(&self, vol: u32, ino: u64, generation: u64, count: u64, merged: Vec<Slice>) -> Result<bool> {
        self.change(|w| {
            let Some(mut i) = get::<Inode>(w, &key::inode(vol, ino))? else {
                w.delete(&key::compact(vol, ino))?;
                return Ok(false);
            };
            let (now, all) = load_slice_record(w, vol, &mut i)?;
            if now != generation || (all.len() as u64) < count {
                return Ok(false);
            }
            if count == 0 && merged.is_empty() {
                // The compactor found nothing to merge: off the queue
                // (writes that add many slices put it back).
                w.delete(&key::compact(vol, ino))?;
                return Ok(true);
            }
            replace_oldest(w, vol, &i, generation, all, count as usize, merged)?;
            Ok(true)
        })
    }

    /// A page of a file's slices: up to `limit` from the `from`th, with the
    /// file's attributes, how many it has and their generation (see
    /// `load_slice_record`).
    pub fn slices_page(&self, vol: u32, ino: u64, from: u64, limit: usize) -> Result<(Attr, Vec<Slice>, u64, u64)> {
        self.engine.read(|r| {
            let mut i = load(r, vol, ino)?;
            if !i.slices.is_empty() {
                // An older inode, its slices inline: few enough to decode.
                let (generation, all) = load_slice_record(r, vol, &mut i)?;
                let total = all.len() as u64;
                let page = all.into_iter().skip(from.min(total) as usize).take(limit).collect();
                return Ok((i.attr, page, total, generation));
            }
            let Some(raw) = r.get(&key::slices(vol, ino))? else { return Ok((i.attr, Vec::new(), 0, 0)) };
            let (generation, total, page) = page_of(&raw, ino, from, limit)?;
            Ok((i.attr, page, total, generation))
        })
    }

    /// Files queued for the compactor, as (volume, inode).
    pub fn compact_candidates(&self, limit: usize) -> Result<Vec<(u32, u64)>> {
        self.engine.read(|r| {
            Ok(r.scan(b"k", b"l", limit)?.iter().filter_map(|(k, _)| Some((be_u32(k, 1)?, be_u64(k, 5)?))).collect())
        })
    }

    /// A file's attributes and slices (oldest first).
    pub fn slices(&self, vol: u32, ino: u64) -> Result<(Attr, Vec<Slice>)> {
        self.engine.read(|r| {
            let mut i = load(r, vol, ino)?;
            let slices = load_slices(r, vol, &mut i)?;
            Ok((i.attr, slices))
        })
    }

    // ---- extended attributes ----

    /// Sets an extended attribute (`create`: fail if present; `replace`:
    /// fail if absent).
    pub fn setxattr(&self, vol: u32, ino: u64, name: &[u8], value: &[u8], create: bool, replace: bool) -> Result<()> {
        if name.is_empty() || name.len() > 255 || value.len() > 64 * 1024 {
            return Err(MetaError::Invalid("extended attribute name or value too long".into()));
        }
        self.change(|w| {
            let mut i = load(w, vol, ino)?;
            let present = i.xattrs.contains_key(name);
            if create && present {
                return Err(MetaError::Exists("extended attribute".into()));
            }
            if replace && !present {
                return Err(MetaError::NoAttr);
            }
            i.xattrs.insert(name.to_vec(), value.to_vec());
            i.attr.ctime = Time::now();
            save(w, vol, &i)
        })
    }

    /// An extended attribute's value.
    pub fn getxattr(&self, vol: u32, ino: u64, name: &[u8]) -> Result<Vec<u8>> {
        self.engine.read(|r| load(r, vol, ino)?.xattrs.get(name).cloned().ok_or(MetaError::NoAttr))
    }

    /// Names of an inode's extended attributes.
    pub fn listxattr(&self, vol: u32, ino: u64) -> Result<Vec<Vec<u8>>> {
        self.engine.read(|r| Ok(load(r, vol, ino)?.xattrs.into_keys().collect()))
    }

    /// Removes an extended attribute.
    pub fn removexattr(&self, vol: u32, ino: u64, name: &[u8]) -> Result<()> {
        self.change(|w| {
            let mut i = load(w, vol, ino)?;
            if i.xattrs.remove(name).is_none() {
                return Err(MetaError::NoAttr);
            }
            i.attr.ctime = Time::now();
            save(w, vol, &i)
        })
    }

    // ---- the collector's queue ----

    /// Up to `limit` blobs no file refers to, dropped before `before`
    /// (Unix seconds): the grace period lets readers that still hold old
    /// slices finish.
    pub fn garbage(&self, before: i64, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let from = match after {
            Some(b) => {
                let mut k = key::garbage(b);
                k.push(0); // the first key after it
                k
            }
            None => b"g".to_vec(),
        };
        self.engine.read(|r| {
            let mut out = Vec::new();
            for_each_until(r, &from, b"h", |k, v| {
                let at: i64 = decode(v)?;
                if at < before {
                    out.push(String::from_utf8_lossy(&k[1..]).into_owned());
                }
                Ok(out.len() < limit)
            })?;
            Ok(out)
        })
    }

    /// Takes collected blobs off the queue.
    pub fn collected(&self, blobs: &[String]) -> Result<()> {
        self.change(|w| {
            for b in blobs {
                w.delete(&key::garbage(b))?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedbEngine;

    fn slice(offset: u64, blob: &str) -> Slice {
        Slice { offset, len: 4096, blob: blob.into(), blob_offset: offset }
    }

    /// A namespace in `dir` with one volume holding one empty file.
    fn one_file(dir: &tempfile::TempDir) -> (Namespace<RedbEngine>, u32, u64) {
        let n = Namespace::new(RedbEngine::open(&dir.path().join("m.redb")).unwrap());
        let v = n.create_volume("v", vec![], crate::DEFAULT_CHUNK).unwrap().id;
        let node = NewNode { kind: Kind::File, perm: 0o644, uid: 0, gid: 0, rdev: 0, target: vec![] };
        let f = n.mknod(v, ROOT, b"f", node).unwrap().ino;
        (n, v, f)
    }

    #[test]
    fn slices_are_appended_undecoded_read_by_page_and_swapped_by_generation() {
        let dir = tempfile::tempdir().unwrap();
        let (n, v, f) = one_file(&dir);
        // Past 127 items the length takes two varint bytes, past 16,383 three.
        let all: Vec<Slice> = (0..20_000u64).map(|i| slice(i * 4096, &format!("g1/M00/00/00/b{}", i % 7))).collect();
        for batch in all.chunks(3_000) {
            n.write(v, f, batch.to_vec()).unwrap();
        }
        let raw = n.engine.read(|r| r.get(&key::slices(v, f))).unwrap().unwrap();
        assert_eq!(raw, encode(&(0u64, &all)).unwrap());
        assert_eq!(n.slices(v, f).unwrap().1, all);
        // Read a page at a time, then compacted by count and generation.
        let (_, page, total, generation) = n.slices_page(v, f, 19_990, 100).unwrap();
        assert_eq!((page.as_slice(), total, generation), (&all[19_990..], 20_000, 0));
        let mut paged = Vec::new();
        while paged.len() < all.len() {
            paged.extend(n.slices_page(v, f, paged.len() as u64, 4096).unwrap().1);
        }
        assert_eq!(paged, all);
        assert!(n.slices_page(v, f, 30_000, 10).unwrap().1.is_empty());
        let merged = vec![Slice { offset: 0, len: 4096 * 19_000, blob: "g1/M00/00/00/m".into(), blob_offset: 0 }];
        n.write(v, f, vec![slice(0, "g1/M00/00/00/late")]).unwrap();
        assert!(!n.compact_prefix(v, f, 1, 19_000, merged.clone()).unwrap(), "a stale generation is refused");
        assert!(n.compact_prefix(v, f, 0, 19_000, merged.clone()).unwrap(), "appends since do not void it");
        let (_, now, total, generation) = n.slices_page(v, f, 0, 10).unwrap();
        assert_eq!((total, generation), (1 + 1_000 + 1, 1));
        assert_eq!(now[0], merged[0]);
        assert_eq!(now[1], all[19_000]);
        assert!(!n.compact_prefix(v, f, 0, 1, vec![]).unwrap(), "the generation moved on");
        // Emptied by a truncation and written again, the list does not go
        // back to an old generation.
        n.setattr(v, f, SetAttr { size: Some(0), ..Default::default() }).unwrap();
        n.write(v, f, vec![slice(0, "g1/M00/00/00/new")]).unwrap();
        let (_, _, total, generation) = n.slices_page(v, f, 0, 10).unwrap();
        assert_eq!((total, generation), (1, 2));
        assert!(!n.compact_prefix(v, f, 1, 1, merged).unwrap(), "a merge read before the truncation is refused");
    }

    #[test]
    fn an_inode_with_inline_slices_keeps_them_until_its_content_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (n, v, f) = one_file(&dir);
        // As an inode written before the slices had their own key.
        n.engine
            .write(|w| {
                let mut i = load(w, v, f)?;
                i.slices = vec![slice(0, "g1/M00/00/00/a"), slice(4096, "g1/M00/00/00/b")];
                i.attr.size = 8192;
                save(w, v, &i)
            })
            .unwrap();
        assert_eq!(n.slices(v, f).unwrap().1.len(), 2);
        assert_eq!(n.read(v, f, 0, 8192).unwrap().1.len(), 2);
        n.write(v, f, vec![slice(8192, "g1/M00/00/00/c")]).unwrap();
        let inline = n.engine.read(|r| load(r, v, f)).unwrap().slices;
        assert!(inline.is_empty(), "moved to their own key at the write");
        let blobs: Vec<String> = n.slices(v, f).unwrap().1.into_iter().map(|s| s.blob).collect();
        assert_eq!(blobs, ["g1/M00/00/00/a", "g1/M00/00/00/b", "g1/M00/00/00/c"]);
        assert_eq!(n.check(v).unwrap().1, Vec::<String>::new());
        // Unlinked and released, every blob goes to the collector.
        n.unlink(v, ROOT, b"f").unwrap();
        n.release(v, f, 1, 60).unwrap();
        let mut garbage = n.garbage(i64::MAX, None, 10).unwrap();
        garbage.sort();
        assert_eq!(garbage, blobs);
        assert!(n.engine.read(|r| r.get(&key::slices(v, f))).unwrap().is_none());
    }

    #[test]
    fn a_cloned_file_keeps_shared_blobs_until_the_last_holder_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let (n, v, f) = one_file(&dir);
        n.write(v, f, vec![slice(0, "g1/M00/00/00/a"), slice(4096, "g1/M00/00/00/a"), slice(8192, "g1/M00/00/00/b")])
            .unwrap();
        let node = NewNode { kind: Kind::File, perm: 0o644, uid: 0, gid: 0, rdev: 0, target: vec![] };
        let copy = n.mknod(v, ROOT, b"copy", node).unwrap().ino;
        n.write(v, copy, vec![slice(0, "g1/M00/00/00/old")]).unwrap();
        let a = n.clone_content(v, f, copy).unwrap();
        assert_eq!(a.size, 8192 + 4096);
        assert_eq!(n.slices(v, copy).unwrap().1, n.slices(v, f).unwrap().1);
        assert_eq!(n.garbage(i64::MAX, None, 10).unwrap(), ["g1/M00/00/00/old"], "the copy's own blob goes");
        n.collected(&["g1/M00/00/00/old".to_string()]).unwrap();
        // The source goes: its blobs stay, held by the copy.
        n.unlink(v, ROOT, b"f").unwrap();
        n.release(v, f, 1, 60).unwrap();
        assert!(n.garbage(i64::MAX, None, 10).unwrap().is_empty());
        // Then the copy: now they go.
        n.setattr(v, copy, SetAttr { size: Some(0), ..Default::default() }).unwrap();
        let mut garbage = n.garbage(i64::MAX, None, 10).unwrap();
        garbage.sort();
        assert_eq!(garbage, ["g1/M00/00/00/a", "g1/M00/00/00/b"]);
    }

    #[test]
    fn a_file_unlinked_while_open_can_be_linked_again() {
        let dir = tempfile::tempdir().unwrap();
        let (n, v, f) = one_file(&dir);
        n.unlink(v, ROOT, b"f").unwrap();
        assert!(n.is_orphan(v, f).unwrap());
        n.link(v, f, ROOT, b"g").unwrap();
        assert!(!n.is_orphan(v, f).unwrap());
        n.release(v, f, 1, 60).unwrap();
        assert_eq!(n.lookup(v, ROOT, b"g").unwrap().nlink, 1);
        assert_eq!(n.check(v).unwrap().1, Vec::<String>::new());
        // Once freed, it stays gone.
        n.unlink(v, ROOT, b"g").unwrap();
        n.release(v, f, 1, 60).unwrap();
        assert!(n.link(v, f, ROOT, b"h").is_err());
    }
}
