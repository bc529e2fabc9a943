//! The mount's cache of blob blocks on its local disk (JuiceFS's
//! `--cache-dir`, SeaweedFS's chunk cache): a random reader whose reads come
//! back to the same regions of a file reads them from here instead of from
//! the group.
//!
//! Blobs never change once written (a write makes new blobs), so a block
//! cached under a blob's ID is never stale: there is nothing to invalidate,
//! only space to reclaim. Appender blobs, which do change, are not cached.
//!
//! A block is fetched whole only the second time it is asked for within a
//! while (a ghost list, as in ARC): a reader with no locality over a file
//! larger than the cache costs what it did without one, not one block
//! fetched per 4 KiB read.
//!
//! Every 4 KiB of a cached block has its CRC-32 kept in memory and checked
//! on each read, so a cache file that rotted or was changed behind the
//! mount's back is dropped and read from the group again, never served.
//! The index lives in memory: a mount starts with an empty cache (its
//! directory is wiped), which is what makes the in-memory checksums enough.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Bytes of a blob cached as one unit (aligned in the blob).
pub const BLOCK: u64 = 1 << 20;
/// Bytes covered by one checksum.
const CHUNK: usize = 4096;

/// The part of a blob stretch that lies in one block.
pub struct Span {
    /// The block's number in the blob.
    pub block: u64,
    /// Where the block starts in the blob.
    pub block_start: u64,
    /// Where the part starts and ends in the block.
    pub from: usize,
    /// (exclusive)
    pub to: usize,
}

/// Bytes `[start, end)` of a blob, cut at block boundaries.
pub fn spans(start: u64, end: u64) -> impl Iterator<Item = Span> {
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let block = at / BLOCK;
        let block_start = block * BLOCK;
        let upto = end.min(block_start + BLOCK);
        let span = Span { block, block_start, from: (at - block_start) as usize, to: (upto - block_start) as usize };
        at = upto;
        Some(span)
    })
}

/// A block: a blob's ID and the block's number in it.
type Key = (String, u64);

/// A mount's block cache in a directory of its own.
pub struct BlockCache {
    dir: PathBuf,
    capacity: u64,
    state: Mutex<State>,
    /// Locked while the cache lives (the file `<dir>.lock`): a cache whose
    /// lock nobody holds was left by a mount that was killed, and the next
    /// mount to start beside it removes it.
    _lock: std::fs::File,
}

#[derive(Default)]
struct State {
    blocks: HashMap<Key, Cached>,
    /// Blocks by when they were last read, oldest first.
    by_use: BTreeMap<u64, Key>,
    clock: u64,
    /// Bytes the cached blocks take.
    used: u64,
    /// The next cache file's number (never reused, so a file that was
    /// evicted while a reader had its number cannot be another block).
    next_file: u64,
    /// Blocks asked for once and not cached (the ghost list).
    seen: HashSet<Key>,
    seen_order: VecDeque<Key>,
}

struct Cached {
    file: u64,
    len: u32,
    crcs: Box<[u32]>,
    used_at: u64,
}

impl BlockCache {
    /// A cache of at most `capacity` bytes in `dir`, which is emptied (the
    /// index of what it held is gone with the last mount).
    /// Caches beside it that no running mount holds are removed.
    pub fn create(dir: &Path, capacity: u64) -> io::Result<Self> {
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        remove_abandoned(parent);
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(lock_path(dir))?;
        if let Err(e) = lock.try_lock() {
            return Err(io::Error::other(format!("{} is in use by another mount ({e})", dir.display())));
        }
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::create_dir_all(dir)?;
        Ok(BlockCache { dir: dir.to_path_buf(), capacity, state: Mutex::new(State::default()), _lock: lock })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, file: u64) -> PathBuf {
        self.dir.join(file.to_string())
    }

    /// Bytes `[from, to)` of block `block` of `blob`, if cached and intact.
    /// A pread of the local disk (its page cache, mostly): done in the
    /// caller's thread, as handing it to another costs more than it does.
    pub fn read(&self, blob: &str, block: u64, from: usize, to: usize) -> Option<Vec<u8>> {
        let key = (blob.to_string(), block);
        let (file, first, len, crcs) = {
            let mut st = self.state();
            let st = &mut *st;
            let c = st.blocks.get_mut(&key)?;
            if to > c.len as usize || from >= to {
                return None;
            }
            st.clock += 1;
            st.by_use.remove(&c.used_at);
            c.used_at = st.clock;
            st.by_use.insert(c.used_at, key.clone());
            let (first, last) = (from / CHUNK, to.div_ceil(CHUNK));
            (c.file, first, c.len as usize, c.crcs[first..last].to_vec())
        };
        let start = first * CHUNK;
        let mut buf = vec![0; (to.div_ceil(CHUNK) * CHUNK).min(len) - start];
        let ok = std::fs::File::open(self.path(file)).and_then(|f| f.read_exact_at(&mut buf, start as u64)).is_ok()
            && buf.chunks(CHUNK).zip(&crcs).all(|(c, crc)| crc32fast::hash(c) == *crc);
        if !ok {
            tracing::warn!(blob, block, "a cached block failed its checksum or could not be read: dropped");
            self.forget(&key, file);
            return None;
        }
        buf.truncate(to - start);
        buf.drain(..from - start);
        Some(buf)
    }

    fn forget(&self, key: &Key, file: u64) {
        let mut st = self.state();
        if st.blocks.get(key).is_some_and(|c| c.file == file) {
            if let Some(c) = st.blocks.remove(key) {
                st.by_use.remove(&c.used_at);
                st.used -= u64::from(c.len);
            }
        }
        drop(st);
        let _ = std::fs::remove_file(self.path(file));
    }

    /// Whether block `block` of `blob` is worth fetching whole: it was
    /// asked for before (and is remembered as such now).
    pub fn wanted(&self, blob: &str, block: u64) -> bool {
        let key = (blob.to_string(), block);
        let mut st = self.state();
        if st.seen.remove(&key) {
            return true;
        }
        // Remember about four times as many blocks as fit.
        let most = (self.capacity / BLOCK * 4).max(1024) as usize;
        while st.seen_order.len() >= most {
            if let Some(old) = st.seen_order.pop_front() {
                st.seen.remove(&old);
            }
        }
        st.seen.insert(key.clone());
        st.seen_order.push_back(key);
        false
    }

    /// Keeps `data`, block `block` of `blob` (at most [`BLOCK`] bytes),
    /// evicting the blocks read longest ago to make room. Failing to write
    /// (a full disk) only means it is not kept.
    pub fn insert(&self, blob: &str, block: u64, data: &[u8]) {
        let len = data.len() as u64;
        if len == 0 || len > BLOCK || len > self.capacity {
            return;
        }
        let key = (blob.to_string(), block);
        let file = {
            let mut st = self.state();
            if st.blocks.contains_key(&key) {
                return;
            }
            st.next_file += 1;
            st.next_file
        };
        let path = self.path(file);
        if let Err(e) = std::fs::write(&path, data) {
            tracing::debug!(error = %e, "cannot keep a block in the cache");
            let _ = std::fs::remove_file(&path);
            return;
        }
        let crcs = data.chunks(CHUNK).map(crc32fast::hash).collect();
        let mut evicted = Vec::new();
        {
            let mut st = self.state();
            let st = &mut *st;
            if st.blocks.contains_key(&key) {
                evicted.push(file); // cached meanwhile by another reader
            } else {
                while st.used + len > self.capacity {
                    let Some((_, old)) = st.by_use.pop_first() else { break };
                    if let Some(c) = st.blocks.remove(&old) {
                        st.used -= u64::from(c.len);
                        evicted.push(c.file);
                    }
                }
                st.clock += 1;
                st.by_use.insert(st.clock, key.clone());
                st.used += len;
                st.blocks.insert(key, Cached { file, len: len as u32, crcs, used_at: st.clock });
            }
        }
        for f in evicted {
            let _ = std::fs::remove_file(self.path(f));
        }
    }

    /// Bytes cached.
    pub fn used(&self) -> u64 {
        self.state().used
    }
}

impl Drop for BlockCache {
    /// The cache is the mount's own: it goes with it.
    fn drop(&mut self) {
        Self::remove(&self.dir);
    }
}

impl BlockCache {
    /// Removes the cache made in `dir` (a mount ending removes its own
    /// without waiting for every user of it to let go).
    pub fn remove(dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_file(lock_path(dir));
    }
}

fn lock_path(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Removes the caches in `parent` whose lock no mount holds (`parent` is
/// Cairn's own: `<cache dir>/mounts`).
fn remove_abandoned(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let lock = e.path();
        let Some(dir) = lock.to_str().and_then(|p| p.strip_suffix(".lock")).map(PathBuf::from) else { continue };
        let Ok(f) = std::fs::OpenOptions::new().write(true).open(&lock) else { continue };
        if f.try_lock().is_ok() {
            tracing::info!(cache = %dir.display(), "removing the block cache of a mount that is gone");
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(&lock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory for one test's cache, removed with the returned guard.
    /// A parent of the test's own: a cache removes abandoned ones beside it.
    fn temp_dir(name: &str) -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::Builder::new().prefix("cairn-block-cache-").tempdir().unwrap();
        let dir = root.path().join(name).join("cache");
        (root, dir)
    }

    #[test]
    fn a_block_is_cached_at_its_second_request_and_served_in_any_range() {
        let (_root, dir) = temp_dir("serve");
        let c = BlockCache::create(&dir, 4 * BLOCK).unwrap();
        let data: Vec<u8> = (0..BLOCK as usize).map(|i| (i * 7 % 251) as u8).collect();
        assert!(!c.wanted("g1/M00/00/00/a", 0), "first request: only remembered");
        assert!(c.wanted("g1/M00/00/00/a", 0), "second request: fetch it whole");
        c.insert("g1/M00/00/00/a", 0, &data);
        assert_eq!(c.read("g1/M00/00/00/a", 0, 0, 4096).unwrap(), &data[..4096]);
        assert_eq!(c.read("g1/M00/00/00/a", 0, 5000, 9000).unwrap(), &data[5000..9000]);
        assert_eq!(c.read("g1/M00/00/00/a", 0, 100, BLOCK as usize).unwrap(), &data[100..]);
        assert!(c.read("g1/M00/00/00/a", 1, 0, 10).is_none(), "another block");
        assert!(c.read("g1/M00/00/00/b", 0, 0, 10).is_none(), "another blob");
        assert!(c.read("g1/M00/00/00/a", 0, 0, BLOCK as usize + 1).is_none(), "past its end");
    }

    #[test]
    fn a_stretch_is_cut_at_block_boundaries() {
        let cut: Vec<_> = spans(BLOCK - 10, 2 * BLOCK + 5).map(|s| (s.block, s.block_start, s.from, s.to)).collect();
        let b = BLOCK as usize;
        assert_eq!(cut, vec![(0, 0, b - 10, b), (1, BLOCK, 0, b), (2, 2 * BLOCK, 0, 5)]);
        assert_eq!(spans(7, 7).count(), 0);
    }

    #[test]
    fn the_blocks_read_longest_ago_make_room() {
        let (_root, dir) = temp_dir("evict");
        let c = BlockCache::create(&dir, 3 * BLOCK).unwrap();
        let block = vec![1u8; BLOCK as usize];
        for b in 0..3 {
            c.insert("x", b, &block);
        }
        assert!(c.read("x", 0, 0, 1).is_some()); // block 1 is now the oldest
        c.insert("x", 3, &block);
        assert_eq!(c.used(), 3 * BLOCK);
        assert!(c.read("x", 1, 0, 1).is_none(), "evicted");
        for b in [0, 2, 3] {
            assert!(c.read("x", b, 0, 1).is_some(), "block {b} kept");
        }
        assert_eq!(std::fs::read_dir(&c.dir).unwrap().count(), 3, "the evicted block's file is gone");
    }

    #[test]
    fn a_cached_block_changed_on_disk_is_dropped_not_served() {
        let (_root, dir) = temp_dir("rot");
        let c = BlockCache::create(&dir, 2 * BLOCK).unwrap();
        let data = vec![9u8; 3 * CHUNK + 10];
        c.insert("x", 0, &data);
        let file = c.path(c.state().blocks[&("x".to_string(), 0)].file);
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&[8], CHUNK as u64 + 1).unwrap();
        assert_eq!(c.read("x", 0, 0, 100).unwrap(), &data[..100], "an intact chunk is served");
        assert!(c.read("x", 0, CHUNK, CHUNK + 10).is_none(), "the changed chunk is not");
        assert_eq!(c.used(), 0);
        assert!(!file.exists());
    }

    #[test]
    fn a_cache_left_by_a_killed_mount_is_removed_by_the_next_one_and_a_live_one_is_not() {
        let (_root, dir) = temp_dir("abandoned");
        let base = dir.join("mounts");
        let live = BlockCache::create(&base.join("live"), BLOCK).unwrap();
        let dead = base.join("dead");
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::write(dead.join("1"), b"block").unwrap();
        std::fs::write(lock_path(&dead), b"").unwrap(); // its mount was killed: nobody holds it
        let err = BlockCache::create(&base.join("live"), BLOCK).err().expect("a second mount of the same cache");
        assert!(err.to_string().contains("in use"), "{err}");
        let _other = BlockCache::create(&base.join("other"), BLOCK).unwrap();
        assert!(!dead.exists() && !lock_path(&dead).exists());
        assert!(live.dir.exists() && lock_path(&live.dir).exists());
        drop(live);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_cache_starts_empty_and_goes_with_its_mount() {
        let (_root, dir) = temp_dir("wipe");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("1"), b"left by an earlier mount").unwrap();
        let c = BlockCache::create(&dir, BLOCK).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert!(c.read("x", 0, 0, 1).is_none());
        drop(c);
        assert!(!dir.exists());
    }
}
