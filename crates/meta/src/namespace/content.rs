//! A regular file's content: its slices, kept under their own key
//! (`s` vol ino) as a record that is appended to without decoding and read
//! a page at a time (decision 0012), and the operations on it — setattr's
//! truncation, a write's commit, a read, the slice merger's swap.

use cairn_proto::meta as wire;

use super::*;
use crate::slices::{self, Piece};

/// A file's slices, oldest first, and their generation: taken from an
/// older inode that holds them inline (the caller saves the inode without
/// them), else read from their own key. The record is postcard's
/// `(generation, slices)`; the generation grows whenever slices other than
/// the newest change (a compaction, a truncation), so a reader that takes
/// the list a page at a time can tell it read one list (appends only add
/// at the end, and leave the pages read before them true).
pub(super) fn load_slice_record(r: &dyn KvRead, vol: u32, inode: &mut Inode) -> Result<(u64, Vec<Slice>)> {
    if !inode.slices.is_empty() {
        return Ok((0, std::mem::take(&mut inode.slices)));
    }
    Ok(get(r, &key::slices(vol, inode.attr.ino))?.unwrap_or_default())
}

pub(super) fn load_slices(r: &dyn KvRead, vol: u32, inode: &mut Inode) -> Result<Vec<Slice>> {
    Ok(load_slice_record(r, vol, inode)?.1)
}

/// Saves a file's slices under `generation`. An emptied list is kept too
/// (a few bytes): its generation must not start again from zero, or a
/// slice merger that read the list before it was emptied could swap its merge
/// into the file's new content.
pub(super) fn save_slices(w: &mut dyn KvWrite, vol: u32, ino: u64, generation: u64, slices: &[Slice]) -> Result<()> {
    put(w, &key::slices(vol, ino), &(generation, slices))
}

/// Puts `new` on top of a file's slices and returns how many it has. A
/// file written at random holds thousands, so they are not decoded: the
/// record is two varints (generation, count) and then the items back to
/// back, and only the count changes.
pub(super) fn append_slices(w: &mut dyn KvWrite, vol: u32, inode: &mut Inode, new: &[Slice]) -> Result<usize> {
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
pub(super) fn slice_record_head(raw: &[u8], ino: u64) -> Result<(u64, u64, &[u8])> {
    let (generation, rest) = postcard::take_from_bytes::<u64>(raw).map_err(corrupt_slices(ino))?;
    let (count, items) = postcard::take_from_bytes::<u64>(rest).map_err(corrupt_slices(ino))?;
    Ok((generation, count, items))
}

pub(super) fn corrupt_slices(ino: u64) -> impl Fn(postcard::Error) -> MetaError {
    move |e| MetaError::Engine(format!("corrupt slice list of inode {ino}: {e}"))
}

/// The slice merger's swap: the oldest `count` of `all` become `merged`, the
/// blobs no slice refers to any more go to the collector, and the
/// generation moves on.
pub(super) fn replace_oldest(
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

/// Up to `limit` slices from the `from`th of a stored record, with its
/// generation and length: the slices before the page are stepped over
/// without allocating, those after it are not read (a page of a list of
/// 150,000 costs a fraction of decoding it).
pub(super) fn page_of(raw: &[u8], ino: u64, from: u64, limit: usize) -> Result<(u64, u64, Vec<wire::Slice>)> {
    let (generation, total, mut rest) = slice_record_head(raw, ino)?;
    let mut page = Vec::with_capacity(limit.min(total.saturating_sub(from) as usize));
    for at in 0..total {
        if page.len() >= limit {
            break;
        }
        let (s, after) = postcard::take_from_bytes::<SliceRef>(rest).map_err(corrupt_slices(ino))?;
        rest = after;
        if at >= from {
            page.push(s.into());
        }
    }
    Ok((generation, total, page))
}

/// Forgets a file's slices (its inode goes) and hands their blobs to the
/// collector.
pub(super) fn drop_slices(w: &mut dyn KvWrite, vol: u32, inode: &mut Inode) -> Result<()> {
    let slices = load_slices(w, vol, inode)?;
    w.delete(&key::slices(vol, inode.attr.ino))?;
    collect(w, slices.into_iter().map(|s| s.blob))
}

impl<E: Engine> Namespace<E> {
    // ---- attributes and content ----

    /// Changes attributes; a size change truncates or extends (with a
    /// hole), and blobs no longer shown go to the collector.
    pub fn setattr(&self, vol: u32, ino: u64, s: SetAttr) -> Result<wire::Attr> {
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
                i.attr.atime = t.into();
            }
            if let Some(t) = s.mtime {
                i.attr.mtime = t.into();
            }
            if let Some(size) = s.size {
                match i.attr.kind {
                    Kind::File => {}
                    Kind::Dir => return Err(MetaError::IsDir),
                    _ => return Err(MetaError::Invalid("size of a special file".into())),
                }
                if size < i.attr.size {
                    let (generation, before) = load_slice_record(w, vol, &mut i)?;
                    let mut after = records::to_wire(before.clone());
                    slices::truncate(&mut after, size);
                    let after = records::from_wire(after);
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
            Ok(i.attr.into())
        })
    }

    /// Commits written data: `new` slices (already uploaded as blobs) go
    /// on top of the file's content; the size grows to cover them.
    pub fn write(&self, vol: u32, ino: u64, new: Vec<wire::Slice>) -> Result<wire::Attr> {
        let new = records::from_wire(new);
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
            Ok(i.attr.into())
        })
    }

    /// Makes file `to`'s content that of file `from` (a server-side copy):
    /// the same slices and size. Their blobs gain a holder each (see
    /// `collect`); `to`'s own go.
    pub fn clone_content(&self, vol: u32, from: u64, to: u64) -> Result<wire::Attr> {
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
                return Ok(dst.attr.into());
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
            Ok(dst.attr.into())
        })
    }

    /// The pieces that make `[offset, offset + len)` of a file.
    pub fn read(&self, vol: u32, ino: u64, offset: u64, len: u64) -> Result<(wire::Attr, Vec<Piece>)> {
        self.engine.read(|r| {
            let mut i = load(r, vol, ino)?;
            if i.attr.kind == Kind::Dir {
                return Err(MetaError::IsDir);
            }
            let content = records::to_wire(load_slices(r, vol, &mut i)?);
            let pieces = slices::resolve(&content, i.attr.size, offset, len);
            Ok((i.attr.into(), pieces))
        })
    }

    /// Replaces a file's oldest slices, `expected`, by fewer ones covering
    /// the same content (the slice merger), provided they are still the
    /// file's oldest: slices written since the merge began stay on top of
    /// it (later slices win), so a file being written to all the time can
    /// still be compacted; a truncate changes the slices and voids it.
    pub fn compact(&self, vol: u32, ino: u64, expected: &[wire::Slice], merged: Vec<wire::Slice>) -> Result<bool> {
        let expected = records::from_wire(expected.to_vec());
        let merged = records::from_wire(merged);
        self.change(|w| {
            let Some(mut i) = get::<Inode>(w, &key::inode(vol, ino))? else {
                w.delete(&key::compact(vol, ino))?;
                return Ok(false);
            };
            let (generation, all) = load_slice_record(w, vol, &mut i)?;
            if !all.starts_with(&expected) {
                return Ok(false);
            }
            replace_oldest(w, vol, &i, generation, all, expected.len(), merged.clone())?;
            Ok(true)
        })
    }

    /// Replaces a file's oldest `count` slices by `merged` (the slice merger,
    /// which read them a page at a time) if the slices are still those of
    /// `generation`: only appended to since. Replacing none by nothing
    /// takes the file off the slice merger's queue.
    pub fn compact_prefix(
        &self,
        vol: u32,
        ino: u64,
        generation: u64,
        count: u64,
        merged: Vec<wire::Slice>,
    ) -> Result<bool> {
        let merged = records::from_wire(merged);
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
                // The slice merger found nothing to merge: off the queue
                // (writes that add many slices put it back).
                w.delete(&key::compact(vol, ino))?;
                return Ok(true);
            }
            replace_oldest(w, vol, &i, generation, all, count as usize, merged.clone())?;
            Ok(true)
        })
    }

    /// A page of a file's slices: up to `limit` from the `from`th, with the
    /// file's attributes, how many it has and their generation (see
    /// `load_slice_record`).
    pub fn slices_page(
        &self,
        vol: u32,
        ino: u64,
        from: u64,
        limit: usize,
    ) -> Result<(wire::Attr, Vec<wire::Slice>, u64, u64)> {
        self.engine.read(|r| {
            let mut i = load(r, vol, ino)?;
            if !i.slices.is_empty() {
                // An older inode, its slices inline: few enough to decode.
                let (generation, all) = load_slice_record(r, vol, &mut i)?;
                let total = all.len() as u64;
                let page = all.into_iter().skip(from.min(total) as usize).take(limit).map(Into::into).collect();
                return Ok((i.attr.into(), page, total, generation));
            }
            let Some(raw) = r.get(&key::slices(vol, ino))? else { return Ok((i.attr.into(), Vec::new(), 0, 0)) };
            let (generation, total, page) = page_of(&raw, ino, from, limit)?;
            Ok((i.attr.into(), page, total, generation))
        })
    }

    /// Files queued for the slice merger, as (volume, inode).
    pub fn compact_candidates(&self, limit: usize) -> Result<Vec<(u32, u64)>> {
        self.engine.read(|r| {
            Ok(r.scan(b"k", b"l", limit)?.iter().filter_map(|(k, _)| Some((be_u32(k, 1)?, be_u64(k, 5)?))).collect())
        })
    }

    /// A file's attributes and slices (oldest first).
    pub fn slices(&self, vol: u32, ino: u64) -> Result<(wire::Attr, Vec<wire::Slice>)> {
        self.engine.read(|r| {
            let mut i = load(r, vol, ino)?;
            let slices = load_slices(r, vol, &mut i)?;
            Ok((i.attr.into(), records::to_wire(slices)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedbEngine;

    fn slice(offset: u64, blob: &str) -> wire::Slice {
        wire::Slice { offset, len: 4096, blob: blob.into(), blob_offset: offset }
    }

    /// A namespace in `dir` with one volume holding one empty file.
    fn one_file(dir: &tempfile::TempDir) -> (Namespace<RedbEngine>, u32, u64) {
        let n = Namespace::open(RedbEngine::open(&dir.path().join("m.redb")).unwrap()).unwrap();
        let v = n.create_volume("v", vec![], crate::DEFAULT_CHUNK).unwrap().id;
        let node = NewNode { kind: wire::Kind::File, perm: 0o644, uid: 0, gid: 0, rdev: 0, target: vec![] };
        let f = n.mknod(v, ROOT, b"f", node).unwrap().ino;
        (n, v, f)
    }

    #[test]
    fn slices_are_appended_undecoded_read_by_page_and_swapped_by_generation() {
        let dir = tempfile::tempdir().unwrap();
        let (n, v, f) = one_file(&dir);
        // Past 127 items the length takes two varint bytes, past 16,383 three.
        let all: Vec<wire::Slice> =
            (0..20_000u64).map(|i| slice(i * 4096, &format!("g1/M00/00/00/b{}", i % 7))).collect();
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
        let merged = vec![wire::Slice { offset: 0, len: 4096 * 19_000, blob: "g1/M00/00/00/m".into(), blob_offset: 0 }];
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
                i.slices = vec![slice(0, "g1/M00/00/00/a").into(), slice(4096, "g1/M00/00/00/b").into()];
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
        let node = NewNode { kind: wire::Kind::File, perm: 0o644, uid: 0, gid: 0, rdev: 0, target: vec![] };
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
