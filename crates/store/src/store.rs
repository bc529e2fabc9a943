//! The store: a node's blobs over all its store paths.
//!
//! This file holds the [`Store`] type and what its operations share
//! (placement, locks, the binlog lines of a change), new blobs (reserve,
//! commit, copies from peers), metadata changes and repairs. The rest of
//! `impl Store` is in `store/`, by what it does:
//!
//! - `open.rs`: opening a store, and recovering what a crash left behind;
//! - `read.rs`: records, presence checks and verified readers;
//! - `appender.rs`: appends, modifies and truncates of appender blobs;
//! - `deletes.rs`: deletes, made durable by their binlog line;
//! - `listing.rs`: every blob ID, and the summaries peers compare.
//!
//! Its unit tests are in `store_tests.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_proto::file_id::generate_name;
use cairn_proto::{BlobInfo, FileId, Metadata};
use rand::Rng;

use crate::binlog::{Binlog, BinlogOp, Origin};
use crate::checksum;
use crate::error::{Error, Result};
use crate::layout::{fsync_dir, PathPolicy, StorePath};
use crate::pack::{Compacted, Packs};
use crate::record::BlobRecord;
use crate::spool::{Spool, Spooled};

mod appender;
mod deletes;
mod listing;
mod open;
mod read;

pub use deletes::Unsynced;

/// Number of lock stripes: mutations of one blob are serialised against
/// each other and against readers of appender blobs, without a lock per file.
const LOCK_STRIPES: usize = 256;
/// Tries at finding an unused name before giving up (names carry ~50 random
/// bits, so a second try is already rare).
const NAME_TRIES: usize = 10;

/// A new blob whose name is taken but which is not yet visible; see
/// [`Store::reserve`].
#[derive(Debug)]
pub struct Reserved {
    id: FileId,
    record: BlobRecord,
    spooled: Spooled,
    /// The linked name, until the record makes it a blob. Dropped before
    /// that, the reservation unlinks it so no invisible orphan stays.
    link: Option<PathBuf>,
    /// For a blob going into a pack: the packs holding its reservation,
    /// until the commit.
    packed: Option<Arc<Packs>>,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            let _ = std::fs::remove_file(link);
        }
        if let Some(packs) = self.packed.take() {
            packs.unreserve(&self.id.to_string());
        }
    }
}

impl Reserved {
    /// The blob's ID.
    pub fn id(&self) -> &FileId {
        &self.id
    }

    /// Its record, as it will be written.
    pub fn record(&self) -> &BlobRecord {
        &self.record
    }
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Group this node serves; IDs of other groups are refused.
    pub group: String,
    /// Store paths, in index order. Empty means one under the data dir.
    pub store_paths: Vec<PathBuf>,
    /// How new blobs pick a store path.
    pub policy: PathPolicy,
    /// Blobs up to this size (bytes) that take no appends are packed into
    /// shared append-only files (see `pack.rs`); 0 keeps every blob in a
    /// file of its own.
    pub pack_max: u64,
}

/// The default of [`StoreConfig::pack_max`]: photos and thumbnails are
/// packed, while larger files keep their own file (and can be sent without
/// a copy into a pack).
pub const DEFAULT_PACK_MAX: u64 = 256 * 1024;

/// Counters for heartbeats.
#[derive(Debug, Clone)]
pub struct StoreStats {
    /// Blobs stored.
    pub files: u64,
    /// Bytes of content stored.
    pub bytes: u64,
    /// (total, free) bytes per store path.
    pub paths: Vec<(u64, u64)>,
    /// Pack files, their bytes on disk, and the bytes of those still live.
    pub packs: (u64, u64, u64),
}

/// A node's blobs.
#[derive(Debug)]
pub struct Store {
    group: String,
    node_id: u32,
    paths: Vec<StorePath>,
    /// One set of packs per store path, in the same order.
    packs: Vec<Arc<Packs>>,
    pack_max: u64,
    policy: PathPolicy,
    next_path: AtomicUsize,
    binlog: Binlog,
    locks: Arc<Vec<RwLock<()>>>,
    files: AtomicU64,
    bytes: AtomicU64,
    /// IDs deleted here, ever: a copy from a peer never brings one back.
    deleted: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Uploads this node had named but not committed when it last stopped
    /// (found at open): never acknowledged, but peers may have committed
    /// them, so the storage node discards them group-wide.
    unfinished: std::sync::Mutex<Vec<FileId>>,
    data_dir: std::path::PathBuf,
    /// An operator removed this node from its group: the mark file, read
    /// once at open and set by [`Store::mark_removed`], kept here because
    /// every request asks (a `stat` per request on the hot path, twice per
    /// upload, otherwise).
    removed: AtomicBool,
    /// This process's locks on the data directory and every store path.
    _locks: Vec<crate::DirLock>,
}

/// What a copy from a peer expects to replace (see [`Store::replace`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Whatever is there (a repair of a damaged blob).
    Any,
    /// Nothing.
    Absent,
    /// A blob of this size and CRC32.
    Is {
        /// Size.
        size: u64,
        /// CRC32.
        crc32: u32,
    },
}

/// Where this node's copy of each peer's binlog was last complete, by peer
/// node ID (file `sync-points` in the data dir).
const SYNC_POINTS_FILE: &str = "sync-points";
/// Present once an operator removed the node from its group.
const REMOVED_MARK: &str = "removed";

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn stripe(id: &FileId) -> usize {
    let h = checksum::crc32(id.name().as_bytes());
    h as usize % LOCK_STRIPES
}

impl Store {
    /// This node's persistent ID.
    pub fn node_id(&self) -> u32 {
        self.node_id
    }

    /// The group served.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The binlog.
    pub fn binlog(&self) -> &Binlog {
        &self.binlog
    }

    /// Where this node last held everything of `peer`'s binlog.
    pub fn sync_point(&self, peer: u32) -> Option<cairn_proto::SyncPoint> {
        self.sync_points().remove(&peer)
    }

    /// Records (durably) that this node holds everything up to `point` of
    /// `peer`'s binlog.
    pub fn set_sync_point(&self, peer: u32, point: cairn_proto::SyncPoint) -> Result<()> {
        let mut all = self.sync_points();
        all.insert(peer, point);
        let text: String = all.iter().map(|(p, s)| format!("{p} {} {} {}\n", s.generation, s.seq, s.offset)).collect();
        crate::layout::write_durably(&self.data_dir.join(SYNC_POINTS_FILE), text.as_bytes())
    }

    fn sync_points(&self) -> std::collections::BTreeMap<u32, cairn_proto::SyncPoint> {
        let text = std::fs::read_to_string(self.data_dir.join(SYNC_POINTS_FILE)).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let v: Vec<u64> = l.split(' ').filter_map(|x| x.parse().ok()).collect();
                match v[..] {
                    [p, generation, seq, offset] => {
                        Some((p as u32, cairn_proto::SyncPoint { generation, seq, offset }))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// Whether an operator removed this node from its group.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Remembers (durably) that this node was removed from its group. Once
    /// removed, a node stays so: nothing takes the mark away while it runs.
    pub fn mark_removed(&self) -> Result<()> {
        crate::layout::write_durably(&self.data_dir.join(REMOVED_MARK), b"removed by an operator\n")?;
        self.removed.store(true, Ordering::Release);
        Ok(())
    }

    /// Counters and capacity.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            files: self.files.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            paths: self.paths.iter().map(StorePath::usage).collect(),
            packs: self.packs.iter().map(|p| p.usage()).fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2)),
        }
    }

    /// Picks the store path for a new blob.
    pub fn choose_path(&self, requested: Option<u8>) -> Result<u8> {
        if let Some(i) = requested {
            if (i as usize) < self.paths.len() {
                return Ok(i);
            }
            return Err(Error::InvalidArgument(format!("this node has no store path {i}")));
        }
        let i = match self.policy {
            // One path: nothing to choose, and no `statvfs` per upload.
            _ if self.paths.len() == 1 => 0,
            PathPolicy::RoundRobin => self.next_path.fetch_add(1, Ordering::Relaxed) % self.paths.len(),
            PathPolicy::MostFree => {
                let usage: Vec<u64> = self.paths.iter().map(|p| p.usage().1).collect();
                (0..self.paths.len()).max_by_key(|&i| usage[i]).unwrap_or(0)
            }
        };
        Ok(i as u8)
    }

    /// Starts spooling content onto a store path.
    pub fn spool(&self, store_path: u8) -> Result<Spool> {
        let sp = self.store_path(store_path)?;
        Ok(Spool::create(&sp.tmp_dir(), store_path, self.pack_max as usize))
    }

    /// The packs of the store path a blob's ID names.
    fn packs_of(&self, id: &FileId) -> Option<&Arc<Packs>> {
        self.packs.get(id.store_path() as usize)
    }

    /// Whether a new blob with this content goes into a pack.
    fn packs_it(&self, spooled: &Spooled, appender: bool) -> bool {
        !appender && self.pack_max > 0 && spooled.in_memory()
    }

    /// Reclaims the space of deleted and replaced packed blobs: every pack
    /// at least `min_dead` (0.0–1.0) dead is rewritten without them.
    pub fn compact(&self, min_dead: f64) -> Result<Compacted> {
        let mut all = Compacted::default();
        for p in &self.packs {
            let c = p.compact(min_dead)?;
            all.packs += c.packs;
            all.copied += c.copied;
            all.freed += c.freed;
        }
        Ok(all)
    }

    fn store_path(&self, index: u8) -> Result<&StorePath> {
        self.paths
            .get(index as usize)
            .ok_or_else(|| Error::WrongPlace(format!("this node has no store path M{index:02X}")))
    }

    /// The store path of a file ID, after checking it belongs here.
    fn place(&self, id: &FileId) -> Result<&StorePath> {
        if id.group() != self.group {
            return Err(Error::WrongPlace(format!(
                "{id} belongs to group {}, this node serves {}",
                id.group(),
                self.group
            )));
        }
        self.store_path(id.store_path())
    }

    fn lock(&self, id: &FileId) -> &RwLock<()> {
        &self.locks[stripe(id)]
    }

    /// Turns a spool into a new blob with a fresh name. Returns its ID and record.
    pub fn create(&self, spooled: Spooled, ext: &str, appender: bool, meta: Metadata) -> Result<(FileId, BlobRecord)> {
        let reserved = self.reserve(spooled, ext, appender, meta)?;
        self.commit(reserved)
    }

    /// First half of [`Store::create`]: picks a fresh name and links the
    /// spool under it, which is what makes the name ours. The blob stays
    /// invisible (no record) until [`Store::commit`], so the caller can
    /// tell its peers the name and let them commit at the same time.
    pub fn reserve(&self, mut spooled: Spooled, ext: &str, appender: bool, meta: Metadata) -> Result<Reserved> {
        cairn_proto::file_id::validate_ext(ext).map_err(|r| Error::InvalidArgument(r.to_string()))?;
        let created = now_secs();
        let record = BlobRecord {
            size: spooled.size,
            crc32: spooled.crc32,
            created,
            source_node: self.node_id,
            appender,
            blocks: spooled.blocks.clone(),
            meta: sorted(meta),
        };
        let sp = self.store_path(spooled.store_path)?;
        let packs = if self.packs_it(&spooled, appender) { self.packs.get(sp.index() as usize) } else { None };
        if packs.is_none() {
            spooled.write_to_disk(&sp.tmp_dir())?;
        }
        let mut rng = rand::thread_rng();
        for _ in 0..NAME_TRIES {
            let name = generate_name(self.node_id, created as u32, spooled.size, spooled.crc32, appender, ext);
            let id = FileId::new(&self.group, sp.index(), rng.gen(), rng.gen(), &name)
                .map_err(|e| Error::InvalidArgument(e.to_string()))?;
            if let Some(packs) = packs {
                if sp.blob_path(&id).exists() {
                    continue;
                }
                match packs.reserve(&id.to_string()) {
                    Ok(()) => {
                        let r = Reserved { id, record, spooled, link: None, packed: Some(packs.clone()) };
                        return self.log_reserved(r);
                    }
                    Err(Error::Exists(_)) => continue,
                    Err(e) => return Err(e),
                }
            }
            match self.link_spool(sp, &id, spooled.path()?) {
                Ok(()) => {
                    let link = Some(sp.blob_path(&id));
                    return self.log_reserved(Reserved { id, record, spooled, link, packed: None });
                }
                Err(Error::Exists(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Exists("could not find an unused file name".into()))
    }

    /// Second half of [`Store::create`]: writes the record (the blob becomes
    /// visible), syncs the directory, drops the spool.
    pub fn commit(&self, mut r: Reserved) -> Result<(FileId, BlobRecord)> {
        let sp = self.store_path(r.spooled.store_path)?;
        if let Some(packs) = &r.packed {
            // On failure the reservation's drop releases the name.
            let content = r.spooled.bytes().unwrap_or_default();
            let _g = self.lock(&r.id).write().unwrap_or_else(|p| p.into_inner());
            packs.put(&r.id.to_string(), &r.record, content, false)?;
            r.packed = None;
        } else {
            // On failure the reservation's drop unlinks the name.
            self.write_record(sp, &r.id, &r.record)?;
            r.link = None;
        }
        let (id, record) = (r.id.clone(), std::mem::replace(&mut r.record, empty_record()));
        self.after_create(&id, record.size, Origin::Local)?;
        Ok((id, record))
    }

    /// Turns a spool into a blob with a given ID: a replica's copy, or a
    /// slave file whose name derives from its master. Idempotent for a
    /// replica that already holds the same content.
    pub fn create_as(
        &self,
        mut spooled: Spooled,
        id: &FileId,
        info: &BlobInfo,
        meta: Metadata,
        origin: Origin,
    ) -> Result<()> {
        let sp = self.place(id)?;
        if self.was_deleted(id) {
            return Err(Error::NotFound(format!("{id} was deleted")));
        }
        let record = copy_record(&spooled, id, info, meta)?;
        self.log_before(BinlogOp::Create, origin, id, None)?;
        if let (true, Some(packs)) = (self.packs_it(&spooled, info.appender), self.packs_of(id)) {
            let content = spooled.bytes().unwrap_or_default();
            let put = if sp.blob_path(id).exists() || sp.record_path(id).exists() {
                Err(Error::Exists(id.to_string()))
            } else {
                let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
                // Checked again under the lock a delete takes: a delete that
                // ran since the check above has left its tombstone by now.
                if self.was_deleted(id) {
                    return Err(Error::NotFound(format!("{id} was deleted")));
                }
                packs.put(&id.to_string(), &record, content, false)
            };
            return match put {
                Ok(()) => self.after_create(id, record.size, origin),
                Err(Error::Exists(_)) => match self.load_record(sp, id) {
                    Ok(r) if origin == Origin::Replica && r.size == record.size && r.crc32 == record.crc32 => Ok(()),
                    _ => Err(Error::Exists(id.to_string())),
                },
                Err(e) => Err(e),
            };
        }
        spooled.write_to_disk(&sp.tmp_dir())?;
        let linked = {
            let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
            if self.was_deleted(id) {
                return Err(Error::NotFound(format!("{id} was deleted")));
            }
            self.link_new(sp, id, spooled.path()?, &record)
        };
        match linked {
            Ok(()) => {
                let _ = std::fs::remove_file(spooled.consume());
                self.after_create(id, record.size, origin)
            }
            Err(Error::Exists(_)) => match BlobRecord::load(&sp.record_path(id), &id.to_string())? {
                Some(r) if origin == Origin::Replica && r.size == record.size && r.crc32 == record.crc32 => Ok(()),
                _ => Err(Error::Exists(id.to_string())),
            },
            Err(e) => Err(e),
        }
    }

    /// Links a spool under its final name (failing if the name is taken),
    /// then writes the record, both under the blob's lock, which the caller
    /// holds (a delete between the two would leave a record without
    /// content). Order matters: a blob without a record reads as absent, so
    /// a crash between the two steps exposes nothing.
    fn link_new(&self, sp: &StorePath, id: &FileId, spool: &Path, record: &BlobRecord) -> Result<()> {
        self.link_spool_locked(sp, id, spool)?;
        if let Err(e) = record.save(&sp.record_path(id)) {
            let _ = std::fs::remove_file(sp.blob_path(id));
            return Err(e);
        }
        Ok(())
    }

    /// Links a spool under a blob's name; `Exists` if the name is taken.
    fn link_spool(&self, sp: &StorePath, id: &FileId, spool: &Path) -> Result<()> {
        let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
        self.link_spool_locked(sp, id, spool)
    }

    /// [`Store::link_spool`] for a caller that holds the blob's lock.
    fn link_spool_locked(&self, sp: &StorePath, id: &FileId, spool: &Path) -> Result<()> {
        blob_dir(sp, id)?;
        let blob = sp.blob_path(id);
        match std::fs::hard_link(spool, &blob) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::Exists(id.to_string())),
            Err(e) => Err(Error::io(&blob)(e)),
        }
    }

    /// Writes a new blob's record durably (this also syncs the directory,
    /// which makes the blob's link durable too).
    fn write_record(&self, sp: &StorePath, id: &FileId, record: &BlobRecord) -> Result<()> {
        let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
        record.save(&sp.record_path(id))
    }

    fn after_create(&self, id: &FileId, size: u64, origin: Origin) -> Result<()> {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.log_after(BinlogOp::Create, origin, id, None)
    }

    /// Logs a reserved name as created here before anyone learns it: the
    /// caller hands the name to the peers, which may commit it before this
    /// node does (see [`Store::log_before`]).
    fn log_reserved(&self, r: Reserved) -> Result<Reserved> {
        // On failure the reservation's drop gives the name back.
        self.log_before(BinlogOp::Create, Origin::Local, &r.id, None)?;
        Ok(r)
    }

    /// The binlog line of a change this node originates, written *before*
    /// the change is applied. The line is how the node, back from a crash,
    /// finds the writes it may have left half done (applied here and on no
    /// peer, or named to its peers and never kept here) and settles them
    /// with the group (`reconcile_own_writes` in the storage crate). Written
    /// after, a SIGKILL during the fsync between applying and logging left
    /// a change that no check found, and the members differed for good. A
    /// line for a change that then failed costs one needless comparison.
    fn log_before(&self, op: BinlogOp, origin: Origin, id: &FileId, at: Option<u64>) -> Result<()> {
        if origin == Origin::Local {
            self.binlog.append(op, origin, &id.to_string(), at)?;
        }
        Ok(())
    }

    /// The binlog line of a change a peer forwarded, written once applied:
    /// there the line tells members that catch up from this node what it
    /// holds.
    fn log_after(&self, op: BinlogOp, origin: Origin, id: &FileId, at: Option<u64>) -> Result<()> {
        if origin != Origin::Local {
            self.binlog.append(op, origin, &id.to_string(), at)?;
        }
        Ok(())
    }

    /// Replaces a blob's metadata, or merges into it key by key.
    pub fn set_meta(&self, id: &FileId, meta: Metadata, merge: bool, origin: Origin) -> Result<()> {
        let sp = self.place(id)?;
        {
            let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
            let packed = match self.packs_of(id) {
                Some(packs) => packs.open_blob(&id.to_string())?.map(|b| (packs, b)),
                None => None,
            };
            let mut rec = match &packed {
                Some((_, (_, _, record))) => record.clone(),
                None => self.load_record(sp, id)?,
            };
            self.log_before(BinlogOp::SetMeta, origin, id, None)?;
            rec.meta = if merge {
                let mut all: std::collections::BTreeMap<String, String> = rec.meta.into_iter().collect();
                all.extend(meta);
                all.into_iter().collect()
            } else {
                sorted(meta)
            };
            match packed {
                // A packed blob's record sits beside its content: the new
                // record goes into a new entry with a copy of the content.
                Some((packs, (file, loc, _))) => {
                    let content = packs.read_content(&file, &loc)?;
                    packs.put(&id.to_string(), &rec, &content, true)?;
                }
                None => rec.save(&sp.record_path(id))?,
            }
        }
        self.log_after(BinlogOp::SetMeta, origin, id, None)
    }

    /// Whether this ID was ever deleted here.
    pub fn was_deleted(&self, id: &FileId) -> bool {
        self.deleted.lock().unwrap_or_else(|p| p.into_inner()).contains(&id.to_string())
    }

    /// Replaces a damaged or outdated blob with a good copy from a peer,
    /// provided the blob here is still what the caller saw before fetching
    /// (`expect`): a write that landed meanwhile is newer than the copy.
    pub fn replace(
        &self,
        mut spooled: Spooled,
        id: &FileId,
        info: &BlobInfo,
        meta: Metadata,
        expect: Expect,
    ) -> Result<()> {
        let sp = self.place(id)?;
        if self.was_deleted(id) {
            return Err(Error::NotFound(format!("{id} was deleted")));
        }
        let record = copy_record(&spooled, id, info, meta)?;
        let packs = if self.packs_it(&spooled, info.appender) { self.packs_of(id) } else { None };
        if packs.is_none() {
            // The content's write and fsync, outside the lock.
            spooled.write_to_disk(&sp.tmp_dir())?;
        }
        let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
        // Checked again under the lock a delete takes (see `create_as`).
        if self.was_deleted(id) {
            return Err(Error::NotFound(format!("{id} was deleted")));
        }
        let now = match self.load_record(sp, id) {
            Ok(r) => Some((r.size, r.crc32)),
            Err(Error::NotFound(_)) | Err(Error::CorruptRecord { .. }) => None,
            Err(e) => return Err(e),
        };
        let same = match expect {
            Expect::Any => true,
            Expect::Absent => now.is_none() || !sp.blob_path(id).exists(),
            Expect::Is { size, crc32 } => now == Some((size, crc32)),
        };
        if !same {
            return Err(Error::Exists(format!("{id} changed while a copy was fetched")));
        }
        let was_packed = self.is_packed(id);
        let was_loose = sp.record_path(id).exists() || sp.blob_path(id).exists();
        // The good copy takes the bad one's place in one step each reader
        // sees whole: a reader finds the old copy or the new, never
        // neither (a read or a scrub beside a repair used to find the blob
        // missing for the moment between a delete and a create).
        match packs {
            Some(packs) => {
                // The index swaps to the new entry at once; a loose copy
                // left from before packing was shadowed from that moment.
                packs.put(&id.to_string(), &record, spooled.bytes().unwrap_or_default(), true)?;
                if was_loose {
                    self.remove_loose(sp, id)?;
                }
            }
            None => {
                // Readers of a loose blob take the lock held here, so the
                // record's and the content's renames are seen together. A
                // crash between them leaves the new record over the old
                // content: damaged again if the content was, and mended
                // again by the next scrub.
                let dir = blob_dir(sp, id)?;
                record.save(&sp.record_path(id))?;
                let blob = sp.blob_path(id);
                std::fs::rename(spooled.path()?, &blob).map_err(Error::io(&blob))?;
                let _ = spooled.consume();
                fsync_dir(&dir)?;
                if was_packed {
                    if let Some(packs) = self.packs_of(id) {
                        packs.delete(&id.to_string())?;
                    }
                }
            }
        }
        match now {
            Some((old, _)) => {
                self.bytes.fetch_add(record.size, Ordering::Relaxed);
                self.bytes.fetch_sub(old.min(self.bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
            }
            None => {
                self.files.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(record.size, Ordering::Relaxed);
            }
        }
        self.log_after(BinlogOp::Create, Origin::Replica, id, None)
    }

    /// Removes a blob's loose content and record files, when present.
    fn remove_loose(&self, sp: &StorePath, id: &FileId) -> Result<()> {
        for path in [sp.record_path(id), sp.blob_path(id)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path)(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

fn empty_record() -> BlobRecord {
    BlobRecord { size: 0, crc32: 0, created: 0, source_node: 0, appender: false, blocks: vec![], meta: vec![] }
}

fn sorted(meta: Metadata) -> Metadata {
    let all: std::collections::BTreeMap<String, String> = meta.into_iter().collect();
    all.into_iter().collect()
}

/// The record of a copy received from a peer, once the copy is checked
/// against what the peer said it sent.
fn copy_record(spooled: &Spooled, id: &FileId, info: &BlobInfo, meta: Metadata) -> Result<BlobRecord> {
    if spooled.store_path != id.store_path() {
        return Err(Error::InvalidArgument("spool is on another store path".into()));
    }
    if spooled.size != info.size || spooled.crc32 != info.crc32 {
        return Err(Error::OutOfSync(format!(
            "{id}: received {} bytes with CRC32 {:08x}, sender has {} bytes with CRC32 {:08x}",
            spooled.size, spooled.crc32, info.size, info.crc32
        )));
    }
    Ok(BlobRecord {
        size: info.size,
        crc32: info.crc32,
        created: info.created,
        source_node: info.source_node,
        appender: info.appender,
        blocks: spooled.blocks.clone(),
        meta: sorted(meta),
    })
}

/// The directory a blob's files go in, made (and its entry made durable)
/// when it is not there yet.
fn blob_dir(sp: &StorePath, id: &FileId) -> Result<PathBuf> {
    let dir = sp.dir_of(id);
    if !dir.exists() {
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        if let Some(parent) = dir.parent() {
            fsync_dir(parent)?;
        }
    }
    Ok(dir)
}
