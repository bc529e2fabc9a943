//! Deletes, made durable by their binlog line (docs/decisions/0013-batched-deletes.md).
//!
//! A delete's durable record is its binlog line: the line is written under
//! the blob's lock, the blob is taken out of the pack index (a pack
//! tombstone written, not synced) or its record and content
//! renamed into `tmp/` (no directory synced), and the caller is answered
//! once the binlog is synced through the line. Concurrent deletes share
//! that sync (group commit), so a batch of deletes costs one `fdatasync`
//! per node instead of one pack sync, or one directory sync per blob file,
//! each. A crash can leave the pack tombstone or the renames undone while
//! the line stands; the store opens by deleting again every blob its binlog
//! names as deleted ([`Store::purge_packed`], [`Store::purge_loose`]), so a
//! deleted blob is never read, listed or handed to a peer again.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use cairn_proto::FileId;

use super::Store;
use crate::binlog::{BinlogOp, Origin};
use crate::error::{Error, Result};
use crate::layout::StorePath;

impl Store {
    /// Deletes a blob. A replica deleting what it does not have succeeds:
    /// the goal, absence, is reached.
    pub fn delete(&self, id: &FileId, origin: Origin) -> Result<()> {
        self.remove(id, origin, origin == Origin::Local)
    }

    /// Deletes a blob whose upload was never acknowledged, succeeding (and
    /// leaving the tombstone) where it is absent, whatever the origin.
    pub fn discard(&self, id: &FileId, origin: Origin) -> Result<()> {
        self.remove(id, origin, false)
    }

    /// Applies a delete (or, with `discard`, a discard) without waiting for
    /// it to be durable, for callers that batch many: it is durable once
    /// `self.binlog().sync_through(line)` returned for the returned
    /// [`Unsynced::line`], and nobody may be told it is done before that.
    /// Readers and copies from peers see it at once. A blob in files of its
    /// own leaves its files in the store path's `tmp/`, for the caller to
    /// remove when it likes ([`Unsynced::set_aside`]).
    pub fn delete_unsynced(&self, id: &FileId, origin: Origin, discard: bool) -> Result<Unsynced> {
        self.remove_unsynced(id, origin, !discard && origin == Origin::Local)
    }

    fn remove(&self, id: &FileId, origin: Origin, must_exist: bool) -> Result<()> {
        // The line is the delete's durable tombstone: on disk before the
        // caller answers anyone, shared with the deletes beside this one.
        let done = self.remove_unsynced(id, origin, must_exist)?;
        self.binlog.sync_through(done.line)?;
        done.reclaim();
        Ok(())
    }

    fn remove_unsynced(&self, id: &FileId, origin: Origin, must_exist: bool) -> Result<Unsynced> {
        let sp = self.place(id)?;
        let name = id.to_string();
        let (size, line, set_aside) = {
            let _g = self.lock(id).write().unwrap_or_else(|p| p.into_inner());
            if must_exist && !self.contains_any(id) {
                return Err(Error::NotFound(name));
            }
            // A delete asked of this node is logged before it is applied
            // (its reconcile reads its own binlog; see `log_before`), one
            // a peer forwarded once applied.
            let logged_before = match origin {
                Origin::Local => Some(self.binlog.append(BinlogOp::Delete, origin, &name, None)?),
                Origin::Replica => None,
            };
            let unpacked = match self.packs_of(id) {
                Some(packs) => packs.delete_unsynced(&name)?,
                None => None,
            };
            let (size, set_aside) = match unpacked {
                // A packed blob has no files of its own to remove.
                Some(loc) => (Some(loc.size()), Vec::new()),
                None => self.set_files_aside(sp, id, must_exist)?,
            };
            // The tombstone goes in before the lock is let go: a copy from
            // a peer (`create_as`) checks it under the same lock, so it
            // either lands before this delete (and is removed by it) or
            // sees the tombstone. Set after, a copy fetched before the
            // delete could land after it and bring the blob back.
            self.deleted.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone());
            let line = match logged_before {
                Some(line) => line,
                None => self.binlog.append(BinlogOp::Delete, origin, &name, None)?,
            };
            (size, line, set_aside)
        };
        if let Some(size) = size {
            self.files.fetch_sub(1, Ordering::Relaxed);
            self.bytes.fetch_sub(size.min(self.bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
        }
        Ok(Unsynced { line, set_aside })
    }

    /// Takes a blob's files out of its directory (caller holds its write
    /// lock): the record and the content are renamed into `tmp/`. An
    /// unlink of a large file drops its page cache and frees its blocks
    /// first: 2.6 ms for a 1 MiB file on this machine (shared, under load),
    /// where a rename took 13–36 µs; and beside the unlinks of earlier
    /// deletes' content even the unlink of a record took 0.5 ms on average,
    /// a rename 0.08 ms. Returns the size it had (`None` when neither file
    /// was there) and where the files went. Nothing is synced: the
    /// binlog line makes the delete durable, a rename a crash undid is
    /// done again at open, and `tmp/` is emptied at open.
    fn set_files_aside(&self, sp: &StorePath, id: &FileId, must_exist: bool) -> Result<(Option<u64>, Vec<PathBuf>)> {
        let rec = match self.load_record(sp, id) {
            Ok(r) => Some(r),
            Err(Error::NotFound(_)) | Err(Error::CorruptRecord { .. }) => None,
            Err(e) => return Err(e),
        };
        let mut set_aside = Vec::new();
        // The record first: a blob without one reads as absent.
        for (from, suffix) in [(sp.record_path(id), ".rec"), (sp.blob_path(id), "")] {
            let aside = sp.tmp_dir().join(format!("deleted-{}{suffix}", id.name()));
            match std::fs::rename(&from, &aside) {
                Ok(()) => set_aside.push(aside),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&from)(e)),
            }
        }
        if set_aside.is_empty() {
            if must_exist {
                return Err(Error::NotFound(id.to_string()));
            }
            return Ok((None, set_aside));
        }
        Ok((Some(rec.map(|r| r.size).unwrap_or(0)), set_aside))
    }

    /// At open: takes out of the pack indexes every blob the binlog names
    /// as deleted (a tombstone a crash left unsynced), syncing each pack
    /// that changed. Returns the blobs and bytes taken out.
    pub(super) fn purge_packed(&self, deleted: &HashSet<String>) -> Result<(u64, u64)> {
        let (mut files, mut bytes) = (0, 0);
        for packs in &self.packs {
            let stale: Vec<String> = packs.ids().into_iter().filter(|id| deleted.contains(id)).collect();
            for id in &stale {
                if let Some(loc) = packs.delete_unsynced(id)? {
                    files += 1;
                    bytes += loc.size();
                }
            }
            if !stale.is_empty() {
                packs.sync()?;
            }
        }
        Ok((files, bytes))
    }

    /// At open: removes the files of blobs the binlog names as deleted (a
    /// rename or unlink a crash undid). Not synced: if a crash undoes it
    /// again, the next open does it again.
    pub(super) fn purge_loose(&self, ids: &[FileId]) -> Result<()> {
        for id in ids {
            let sp = self.place(id)?;
            let (_, set_aside) = self.set_files_aside(sp, id, false)?;
            Unsynced { line: 0, set_aside }.reclaim();
        }
        Ok(())
    }
}

/// A delete applied but not yet durable (see [`Store::delete_unsynced`]).
#[derive(Debug)]
#[must_use = "a delete is durable only once the binlog is synced through its line"]
pub struct Unsynced {
    /// The binlog line to sync through before anyone is told.
    pub line: u64,
    /// The files of a blob in files of its own, moved into `tmp/`: no
    /// longer reachable by its ID, their space still taken.
    pub set_aside: Vec<PathBuf>,
}

impl Unsynced {
    /// Frees the space of a blob set aside (a failure leaves the file in
    /// `tmp/`, emptied at the next open).
    pub fn reclaim(self) {
        for path in self.set_aside {
            let _ = std::fs::remove_file(path);
        }
    }
}
