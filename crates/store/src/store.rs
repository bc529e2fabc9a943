//! The store: a node's blobs over all its store paths.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use cairn_proto::file_id::generate_name;
use cairn_proto::{BlobInfo, FileId, Metadata};
use rand::Rng;

use crate::binlog::{Binlog, BinlogOp, Origin};
use crate::checksum::{self, BLOCK_SIZE};
use crate::error::{Error, Result};
use crate::layout::{fsync_dir, is_record_name, PathPolicy, StorePath};
use crate::pack::{Compacted, Packs, DEFAULT_ROLL_AT};
use crate::reader::BlobReader;
use crate::record::BlobRecord;
use crate::spool::{Spool, Spooled};

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
    /// Opens the store under `data_dir`, creating what is missing.
    pub fn open(data_dir: &Path, cfg: StoreConfig) -> Result<Self> {
        cairn_proto::file_id::validate_group(&cfg.group)
            .map_err(|r| Error::Setup { path: data_dir.to_path_buf(), reason: r.to_string() })?;
        std::fs::create_dir_all(data_dir).map_err(Error::io(data_dir))?;
        let mut locks = vec![crate::DirLock::acquire(data_dir, "storage node")?];
        let node_id = crate::node::load_or_create(data_dir)?;
        let roots = if cfg.store_paths.is_empty() { vec![data_dir.join("store0")] } else { cfg.store_paths.clone() };
        if roots.len() > 256 {
            return Err(Error::Setup { path: data_dir.to_path_buf(), reason: "at most 256 store paths".into() });
        }
        // A store path shared with another node (a path given twice, two
        // nodes on one disk directory) would mix their blobs.
        let same_as_data = |r: &Path| match (std::fs::canonicalize(r), std::fs::canonicalize(data_dir)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        for r in roots.iter().filter(|r| !same_as_data(r)) {
            locks.push(crate::DirLock::acquire(r, "storage node (store path)")?);
        }
        let paths =
            roots.iter().enumerate().map(|(i, r)| StorePath::open(r, i as u8, node_id)).collect::<Result<Vec<_>>>()?;
        let binlog = Binlog::open(&data_dir.join("binlog"))?;
        let deleted = binlog.all_deletes()?;
        let (mut packs, mut packed_files, mut packed_bytes, mut unfinished_packed) = (Vec::new(), 0, 0, Vec::new());
        for sp in &paths {
            let (p, opened) = Packs::open(&sp.root().join("packs"), DEFAULT_ROLL_AT)?;
            packs.push(Arc::new(p));
            packed_files += opened.files;
            packed_bytes += opened.bytes;
            // A reservation a discard already settled is no longer unfinished.
            unfinished_packed.extend(
                opened
                    .unfinished
                    .into_iter()
                    .filter(|id| !deleted.contains(id))
                    .filter_map(|id| FileId::parse(&id).ok()),
            );
        }
        let deleted = std::sync::Mutex::new(deleted);
        let store = Self {
            group: cfg.group,
            node_id,
            paths,
            packs,
            pack_max: cfg.pack_max,
            policy: cfg.policy,
            next_path: AtomicUsize::new(0),
            binlog,
            locks: Arc::new((0..LOCK_STRIPES).map(|_| RwLock::new(())).collect()),
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            deleted,
            unfinished: std::sync::Mutex::new(Vec::new()),
            data_dir: data_dir.to_path_buf(),
            _locks: locks,
            removed: AtomicBool::new(data_dir.join(REMOVED_MARK).exists()),
        };
        // Deletes whose binlog line is durable but whose pack tombstone or
        // unlink a crash undid are done again (see `deletes.rs`).
        let (purged_files, purged_bytes) = {
            let deleted = store.deleted.lock().unwrap_or_else(|p| p.into_inner());
            store.purge_packed(&deleted)?
        };
        let (files, bytes, reserved, deleted_loose) = store.count()?;
        store.purge_loose(&deleted_loose)?;
        store.files.store(files + packed_files - purged_files.min(packed_files), Ordering::Relaxed);
        store.bytes.store(bytes + packed_bytes - purged_bytes.min(packed_bytes), Ordering::Relaxed);
        // A blob of this node's naming without a record is a reservation
        // whose commit never happened. One the binlog knows was named to
        // the peers (or committed, its record lost since): the node's
        // reconcile settles it with the group from that line. One it does
        // not know (a binlog from before reservations were logged) is
        // discarded.
        let known = store.binlog.mentioned(&reserved.iter().map(|id| id.to_string()).collect())?;
        *store.unfinished.lock().unwrap_or_else(|p| p.into_inner()) =
            reserved.into_iter().filter(|id| !known.contains(&id.to_string())).chain(unfinished_packed).collect();
        Ok(store)
    }

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

    /// The record of a blob.
    pub fn record(&self, id: &FileId) -> Result<BlobRecord> {
        let sp = self.place(id)?;
        let _g = self.lock(id).read().unwrap_or_else(|p| p.into_inner());
        self.load_record(sp, id)
    }

    fn load_record(&self, sp: &StorePath, id: &FileId) -> Result<BlobRecord> {
        if let Some(packs) = self.packs_of(id) {
            if let Some((_, _, record)) = packs.open_blob(&id.to_string())? {
                return Ok(record);
            }
        }
        let rec =
            BlobRecord::load(&sp.record_path(id), &id.to_string())?.ok_or_else(|| Error::NotFound(id.to_string()))?;
        Ok(rec)
    }

    /// True when the blob's content or its record is here (even one
    /// without the other: a damaged blob).
    pub fn contains_any(&self, id: &FileId) -> bool {
        self.is_packed(id)
            || self.place(id).map(|sp| sp.record_path(id).exists() || sp.blob_path(id).exists()).unwrap_or(false)
    }

    /// Whether the blob is in a pack here (from memory: no disk access).
    pub fn is_packed(&self, id: &FileId) -> bool {
        id.group() == self.group && self.packs_of(id).is_some_and(|p| p.locate(&id.to_string()).is_some())
    }

    /// True when the blob is here.
    pub fn contains(&self, id: &FileId) -> bool {
        self.is_packed(id)
            || self.place(id).map(|sp| sp.record_path(id).exists() && sp.blob_path(id).exists()).unwrap_or(false)
    }

    /// Opens a verified reader over `[offset, offset + length)`, the length
    /// clamped to the end of the blob.
    pub fn read(&self, id: &FileId, offset: u64, length: Option<u64>) -> Result<BlobReader> {
        let sp = self.place(id)?;
        let packed = match self.packs_of(id) {
            Some(packs) => packs.open_blob(&id.to_string())?,
            None => None,
        };
        let (file, base, record) = match packed {
            Some((file, loc, record)) => (file, loc.content_at(), record),
            None => {
                let _g = self.lock(id).read().unwrap_or_else(|p| p.into_inner());
                let record = self.load_record(sp, id)?;
                let path = sp.blob_path(id);
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NotFound(id.to_string())),
                    Err(e) => return Err(Error::io(&path)(e)),
                };
                (Arc::new(file), 0, record)
            }
        };
        if offset > record.size {
            return Err(Error::InvalidArgument(format!(
                "offset {offset} is past the end of {id} ({} bytes)",
                record.size
            )));
        }
        let end = match length {
            Some(l) => offset.saturating_add(l).min(record.size),
            None => record.size,
        };
        let lock = record.appender.then(|| (self.locks.clone(), stripe(id)));
        Ok(BlobReader {
            file,
            base,
            file_id: id.to_string(),
            record_path: sp.record_path(id),
            record,
            pos: offset,
            end,
            lock,
        })
    }

    fn appender_record(&self, sp: &StorePath, id: &FileId) -> Result<BlobRecord> {
        let rec = self.load_record(sp, id)?;
        if !rec.appender {
            return Err(Error::NotAppender(id.to_string()));
        }
        Ok(rec)
    }

    /// Appends a spool's content. `expect_at` is the size the primary saw
    /// before its own append; a replica at another size is out of sync
    /// (unless it already applied this very append). Returns the offset the
    /// data landed at.
    pub fn append(&self, id: &FileId, spooled: Spooled, expect_at: Option<u64>, origin: Origin) -> Result<u64> {
        let sp = self.place(id)?;
        let at = {
            let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
            let mut rec = self.appender_record(sp, id)?;
            if let Some(at) = expect_at {
                if rec.size == at + spooled.size && spooled.size > 0 {
                    return Ok(at);
                }
                if rec.size != at {
                    return Err(Error::OutOfSync(format!("{id}: size is {}, primary appended at {at}", rec.size)));
                }
            }
            let at = rec.size;
            self.log_before(BinlogOp::Append, origin, id, Some(at))?;
            self.write_into(sp, id, &mut rec, &spooled, at)?;
            at
        };
        self.bytes.fetch_add(spooled.size, Ordering::Relaxed);
        self.log_after(BinlogOp::Append, origin, id, Some(at))?;
        Ok(at)
    }

    /// Overwrites part of an appender blob with a spool's content, growing it
    /// if the data runs past the end. `offset` may not exceed the size.
    pub fn modify(&self, id: &FileId, offset: u64, spooled: Spooled, origin: Origin) -> Result<()> {
        let sp = self.place(id)?;
        {
            let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
            let mut rec = self.appender_record(sp, id)?;
            if offset > rec.size {
                return Err(Error::InvalidArgument(format!(
                    "offset {offset} is past the end of {id} ({} bytes)",
                    rec.size
                )));
            }
            self.log_before(BinlogOp::Modify, origin, id, Some(offset))?;
            self.write_into(sp, id, &mut rec, &spooled, offset)?;
        }
        self.log_after(BinlogOp::Modify, origin, id, Some(offset))
    }

    /// Writes spool content into a blob at `offset`, fsyncs, and re-derives
    /// the checksums of the blocks it touched. Caller holds the write lock.
    fn write_into(
        &self,
        sp: &StorePath,
        id: &FileId,
        rec: &mut BlobRecord,
        spooled: &Spooled,
        offset: u64,
    ) -> Result<()> {
        let path = sp.blob_path(id);
        let mut blob = OpenOptions::new().read(true).write(true).open(&path).map_err(Error::io(&path))?;
        blob.seek(SeekFrom::Start(offset)).map_err(Error::io(&path))?;
        if let Some(bytes) = spooled.bytes() {
            blob.write_all(bytes).map_err(Error::io(&path))?;
        } else {
            let src_path = spooled.path()?;
            let mut src = File::open(src_path).map_err(Error::io(src_path))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = src.read(&mut buf).map_err(Error::io(src_path))?;
                if n == 0 {
                    break;
                }
                blob.write_all(&buf[..n]).map_err(Error::io(&path))?;
            }
        }
        blob.sync_data().map_err(Error::io(&path))?;
        let new_size = rec.size.max(offset + spooled.size);
        let first = offset / BLOCK_SIZE;
        // Blocks from the one holding `offset` up to the end of the new data
        // changed; when the blob grew, the old last (partial) block is in
        // that span because offset <= old size.
        let last = (offset + spooled.size).div_ceil(BLOCK_SIZE);
        rec.size = new_size;
        resum_blocks(&blob, &path, rec, first, last)?;
        rec.save(&sp.record_path(id))
    }

    /// Cuts or extends (with zeros) an appender blob.
    pub fn truncate(&self, id: &FileId, size: u64, origin: Origin) -> Result<()> {
        let sp = self.place(id)?;
        {
            let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
            let mut rec = self.appender_record(sp, id)?;
            self.log_before(BinlogOp::Truncate, origin, id, Some(size))?;
            if rec.size != size {
                let path = sp.blob_path(id);
                let blob = OpenOptions::new().read(true).write(true).open(&path).map_err(Error::io(&path))?;
                blob.set_len(size).map_err(Error::io(&path))?;
                blob.sync_all().map_err(Error::io(&path))?;
                let first = rec.size.min(size) / BLOCK_SIZE;
                rec.size = size;
                let last = checksum::block_count(size) as u64;
                resum_blocks(&blob, &path, &mut rec, first, last)?;
                rec.save(&sp.record_path(id))?;
            }
        }
        self.log_after(BinlogOp::Truncate, origin, id, Some(size))
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

    /// A page of blob summaries, by ID, after `after`. Walks the disks (and
    /// the pack indexes) on each call; fine for catch-ups of up to millions
    /// of files.
    pub fn summaries(&self, after: Option<&str>, limit: usize) -> Result<(Vec<cairn_proto::BlobSummary>, bool)> {
        let mut ids: Vec<String> = self.list()?.into_iter().map(|id| id.to_string()).collect();
        ids.sort();
        let start = match after {
            Some(a) => ids.partition_point(|x| x.as_str() <= a),
            None => 0,
        };
        let mut out = Vec::new();
        let mut more = false;
        for s in &ids[start..] {
            if out.len() == limit {
                more = true;
                break;
            }
            let Ok(id) = FileId::parse(s) else { continue };
            // A blob whose record is unreadable is listed without one, so a
            // comparing peer does not take it for a deleted file.
            match self.record(&id) {
                Ok(r) => out.push(cairn_proto::BlobSummary {
                    file_id: s.clone(),
                    size: r.size,
                    crc32: r.crc32,
                    appender: r.appender,
                }),
                Err(Error::NotFound(_)) => {}
                Err(_) => out.push(cairn_proto::BlobSummary { file_id: s.clone(), size: 0, crc32: 0, appender: false }),
            }
        }
        Ok((out, more))
    }

    /// Every blob ID on this node (walks the disks; for scrubs and tests).
    pub fn list(&self) -> Result<Vec<FileId>> {
        let mut out = Vec::new();
        for sp in &self.paths {
            walk(sp, |id, _| out.push(FileId::new(&self.group, sp.index(), id.0, id.1, &id.2).ok()))?;
        }
        for packs in &self.packs {
            out.extend(packs.ids().iter().map(|id| FileId::parse(id).ok()));
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Blobs and bytes stored, this node's own blobs that have content but
    /// no record, and blobs whose files are there although the binlog names
    /// them deleted (left out of the counts).
    fn count(&self) -> Result<(u64, u64, Vec<FileId>, Vec<FileId>)> {
        let (mut files, mut bytes, mut reserved, mut deleted_here) = (0, 0, Vec::new(), Vec::new());
        let deleted = self.deleted.lock().unwrap_or_else(|p| p.into_inner());
        for sp in &self.paths {
            walk(sp, |(d1, d2, name), listed| {
                let id = FileId::new(&self.group, sp.index(), d1, d2, &name);
                if let Ok(id) = &id {
                    if !deleted.is_empty() && deleted.contains(&id.to_string()) {
                        deleted_here.push(id.clone());
                        return;
                    }
                }
                files += 1;
                bytes += listed.size;
                if !listed.record {
                    match id {
                        Ok(id) if id.info().source_node == self.node_id => reserved.push(id),
                        _ => {}
                    }
                }
            })?;
        }
        Ok((files, bytes, reserved, deleted_here))
    }

    /// Takes the uploads found named but uncommitted at open (see
    /// `unfinished`); the caller puts back those it could not discard.
    pub fn take_unfinished(&self) -> Vec<FileId> {
        std::mem::take(&mut *self.unfinished.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Returns uploads to the unfinished list (a discard that failed).
    pub fn keep_unfinished(&self, ids: Vec<FileId>) {
        self.unfinished.lock().unwrap_or_else(|p| p.into_inner()).extend(ids);
    }
}

/// What a store directory holds of one blob.
#[derive(Default)]
struct Listed {
    /// Size of the content file (0 when there is none).
    size: u64,
    /// Whether the record is there.
    record: bool,
}

/// Calls `f((dir1, dir2, name), listed)` for each blob on a store path.
fn walk(sp: &StorePath, mut f: impl FnMut((u8, u8, String), Listed)) -> Result<()> {
    let hex_dirs = |p: &Path| -> Result<Vec<(u8, PathBuf)>> {
        let mut v = Vec::new();
        let rd = match std::fs::read_dir(p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
            Err(e) => return Err(Error::io(p)(e)),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let (2, Ok(n)) = (name.len(), u8::from_str_radix(&name, 16)) {
                v.push((n, e.path()));
            }
        }
        Ok(v)
    };
    for (d1, p1) in hex_dirs(&sp.data_dir())? {
        for (d2, p2) in hex_dirs(&p1)? {
            // A blob is listed if its content or its record is there: one
            // without the other is damage that a scrub must see.
            let mut names: std::collections::BTreeMap<String, Listed> = std::collections::BTreeMap::new();
            for e in std::fs::read_dir(&p2).map_err(Error::io(&p2))?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                if is_record_name(&name) {
                    names.entry(name.trim_end_matches(".rec").to_string()).or_default().record = true;
                } else {
                    names.entry(name).or_default().size = e.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
            for (name, listed) in names {
                f((d1, d2, name), listed);
            }
        }
    }
    Ok(())
}

/// Recomputes block CRCs `[first, last)` from the blob file, drops blocks
/// beyond the size, and refreshes the whole CRC.
fn resum_blocks(blob: &File, path: &Path, rec: &mut BlobRecord, first: u64, last: u64) -> Result<()> {
    let count = checksum::block_count(rec.size);
    rec.blocks.resize(count, 0);
    let last = last.min(count as u64);
    let mut buf = vec![0u8; BLOCK_SIZE as usize];
    for b in first..last {
        let start = b * BLOCK_SIZE;
        let len = BLOCK_SIZE.min(rec.size - start) as usize;
        blob.read_exact_at(&mut buf[..len], start).map_err(Error::io(path))?;
        rec.blocks[b as usize] = checksum::crc32(&buf[..len]);
    }
    rec.refresh_crc();
    Ok(())
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;

#[path = "deletes.rs"]
mod deletes;
pub use deletes::Unsynced;

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
