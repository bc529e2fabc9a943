//! The namespace: every operation is one transaction of the engine, so a
//! create, link, rename or unlink is atomic, and a crash at any moment
//! leaves the namespace as it was before or after each operation.

use serde::Serialize;

pub use cairn_proto::meta::{NewNode, RenameMode, SetAttr, VolumeStats};

use crate::engine::{Engine, KvRead, KvWrite};
use crate::error::{MetaError, Result};
use crate::model::{decode, encode, key, Attr, Dirent, Inode, Kind, Slice, Time, Volume, ROOT};
use crate::slices::{self, Piece};

/// Longest name in a directory, bytes.
pub const NAME_MAX: usize = 255;
/// Most hard links to one inode.
pub const LINK_MAX: u32 = 65_000;
/// Default largest blob one write makes.
pub const DEFAULT_CHUNK: u64 = 64 << 20;

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
    put(w, &key::inode(vol, inode.attr.ino), inode)
}

fn load_dir(r: &dyn KvRead, vol: u32, ino: u64) -> Result<Inode> {
    let d = load(r, vol, ino)?;
    if d.attr.kind != Kind::Dir {
        return Err(MetaError::NotDir);
    }
    Ok(d)
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

/// Queues blobs for the collector, stamped with when they were dropped.
fn collect(w: &mut dyn KvWrite, blobs: impl IntoIterator<Item = String>) -> Result<()> {
    let now = Time::now().secs;
    for b in blobs {
        put(w, &key::garbage(&b), &now)?;
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
        return w.put(&key::orphan(vol, inode.attr.ino), &[]);
    }
    w.delete(&key::inode(vol, inode.attr.ino))
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

    // ---- volumes ----

    /// Creates a volume with an empty root directory.
    pub fn create_volume(&self, name: &str, groups: Vec<String>, chunk_size: u64) -> Result<Volume> {
        check_volume_name(name)?;
        if !(1 << 16..=1 << 30).contains(&chunk_size) {
            return Err(MetaError::Invalid("chunk size must be between 64 KiB and 1 GiB".into()));
        }
        self.engine.write(|w| {
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
    pub fn delete_volume(&self, name: &str) -> Result<()> {
        self.engine.write(|w| {
            let v: Volume = get(w, &key::volume(name))?.ok_or_else(|| MetaError::NotFound(format!("volume {name}")))?;
            w.delete(&key::volume(name))?;
            for tag in [b'i', b'c', b'd', b'o'] {
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
            Ok(VolumeStats { inodes: next - 1 })
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
        self.engine.read(|r| {
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
        })
    }

    // ---- creating ----

    fn create_in(&self, vol: u32, parent: u64, name: &[u8], make: impl FnOnce(u64, Time) -> Inode) -> Result<Attr> {
        check_name(name)?;
        self.engine.write(|w| {
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
        self.engine.write(|w| {
            let mut inode = load(w, vol, ino)?;
            if inode.attr.kind == Kind::Dir {
                return Err(MetaError::Invalid("hard links to directories are not allowed".into()));
            }
            if inode.attr.nlink == 0 {
                return Err(MetaError::NotFound(format!("inode {ino} has no links left")));
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
        self.engine.write(|w| {
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

    /// Forgets an orphan (a file unlinked while open) once nobody has it
    /// open: its inode goes and its blobs go to the collector. A no-op for
    /// an inode that still has links.
    pub fn release(&self, vol: u32, ino: u64) -> Result<()> {
        self.engine.write(|w| {
            if w.get(&key::orphan(vol, ino))?.is_none() {
                return Ok(());
            }
            if let Some(inode) = get::<Inode>(w, &key::inode(vol, ino))? {
                if inode.attr.nlink > 0 {
                    return w.delete(&key::orphan(vol, ino));
                }
                collect(w, inode.slices.into_iter().map(|s| s.blob))?;
                w.delete(&key::inode(vol, ino))?;
            }
            w.delete(&key::orphan(vol, ino))
        })
    }

    /// Orphans of a volume (files unlinked while open), e.g. to release
    /// those of a client that went away.
    pub fn orphans(&self, vol: u32) -> Result<Vec<u64>> {
        self.engine.read(|r| {
            let start = key::prefix(b'o', vol);
            Ok(r.scan(&start, &key::prefix(b'o', vol + 1), usize::MAX)?
                .into_iter()
                .filter_map(|(k, _)| k.get(5..13).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes))
                .collect())
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
        self.engine.write(|w| {
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
        self.engine.write(|w| {
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
                    let before = i.slices.clone();
                    slices::truncate(&mut i.slices, size);
                    let kept: std::collections::HashSet<&String> = i.slices.iter().map(|s| &s.blob).collect();
                    let gone: Vec<String> =
                        before.iter().map(|s| s.blob.clone()).filter(|b| !kept.contains(b)).collect();
                    collect(w, gone)?;
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
        self.engine.write(|w| {
            let mut i = load(w, vol, ino)?;
            if i.attr.kind != Kind::File {
                return Err(if i.attr.kind == Kind::Dir {
                    MetaError::IsDir
                } else {
                    MetaError::Invalid("not a file".into())
                });
            }
            let now = Time::now();
            for s in new {
                i.attr.size = i.attr.size.max(s.offset + s.len);
                i.slices.push(s);
            }
            i.attr.mtime = now;
            i.attr.ctime = now;
            save(w, vol, &i)?;
            Ok(i.attr)
        })
    }

    /// The pieces that make `[offset, offset + len)` of a file.
    pub fn read(&self, vol: u32, ino: u64, offset: u64, len: u64) -> Result<(Attr, Vec<Piece>)> {
        self.engine.read(|r| {
            let i = load(r, vol, ino)?;
            if i.attr.kind == Kind::Dir {
                return Err(MetaError::IsDir);
            }
            let pieces = slices::resolve(&i.slices, i.attr.size, offset, len);
            Ok((i.attr, pieces))
        })
    }

    /// Replaces a file's slices by fewer ones covering the same content
    /// (the compactor), provided the file did not change meanwhile.
    pub fn compact(&self, vol: u32, ino: u64, expected: &[Slice], merged: Vec<Slice>) -> Result<bool> {
        self.engine.write(|w| {
            let mut i = load(w, vol, ino)?;
            if i.slices != expected {
                return Ok(false);
            }
            let old: Vec<String> = i.slices.iter().map(|s| s.blob.clone()).collect();
            i.slices = merged;
            let kept: std::collections::HashSet<&String> = i.slices.iter().map(|s| &s.blob).collect();
            collect(w, old.into_iter().filter(|b| !kept.contains(b)))?;
            save(w, vol, &i)?;
            Ok(true)
        })
    }

    // ---- extended attributes ----

    /// Sets an extended attribute (`create`: fail if present; `replace`:
    /// fail if absent).
    pub fn setxattr(&self, vol: u32, ino: u64, name: &[u8], value: &[u8], create: bool, replace: bool) -> Result<()> {
        if name.is_empty() || name.len() > 255 || value.len() > 64 * 1024 {
            return Err(MetaError::Invalid("extended attribute name or value too long".into()));
        }
        self.engine.write(|w| {
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
        self.engine.write(|w| {
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
    pub fn garbage(&self, before: i64, limit: usize) -> Result<Vec<String>> {
        self.engine.read(|r| {
            let mut out = Vec::new();
            for (k, v) in r.scan(b"g", b"h", usize::MAX)? {
                let at: i64 = decode(&v)?;
                if at < before {
                    out.push(String::from_utf8_lossy(&k[1..]).into_owned());
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
    }

    /// Takes collected blobs off the queue.
    pub fn collected(&self, blobs: &[String]) -> Result<()> {
        self.engine.write(|w| {
            for b in blobs {
                w.delete(&key::garbage(b))?;
            }
            Ok(())
        })
    }
}
