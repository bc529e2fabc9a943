//! Opening a store: its locks, store paths, packs and binlog, and the
//! recovery of what a crash left behind (blob counts, deletes done again,
//! uploads named but never committed).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use cairn_proto::FileId;

use super::listing::walk;
use super::{Store, StoreConfig, LOCK_STRIPES, REMOVED_MARK};
use crate::binlog::Binlog;
use crate::error::{Error, Result};
use crate::layout::StorePath;
use crate::pack::{Packs, DEFAULT_ROLL_AT};

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
