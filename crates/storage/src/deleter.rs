//! The node's delete thread: applies deletes in batches, with one binlog
//! sync per batch (group commit).
//!
//! A delete is made durable by an fsync of the binlog (`cairn_store`'s
//! `deletes.rs`). Handed to the blocking pool one by one, each delete took
//! a blocking thread that then queued for the sync lock behind the others:
//! two thread wake-ups per delete and per node. Here one thread takes
//! every delete that is waiting and applies them (binlog lines, pack
//! tombstones, renames: page-cache writes), and hands the batch to a second
//! thread, which syncs the binlog once for every batch handed to it and
//! then answers each delete; while it syncs, the first applies the next
//! batch (with both in one thread, `perf trace` showed it spend 0.81 s of
//! every 2 s in `fdatasync` and 0.33 s in the batches' writes, one after
//! the other). The content of a large blob, set aside by the delete
//! (renamed into `tmp/`), is unlinked by a third thread afterwards: the
//! unlink of a 1 MiB file took 2.6 ms here, which no one need wait for. See docs/decisions/0013-batched-deletes.md.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use cairn_proto::{ErrorCode, FileId, ProtoError};
use cairn_store::{Origin, Store, Unsynced};
use tokio::sync::oneshot;

use crate::error::{refuse, remote};

/// At most this many deletes share one sync (bounds a batch's latency).
const MAX_BATCH: usize = 512;

struct Job {
    id: FileId,
    origin: Origin,
    discard: bool,
    done: oneshot::Sender<cairn_store::Result<()>>,
}

/// Hands deletes to the node's delete thread.
pub(crate) struct Deleter {
    jobs: Mutex<Sender<Job>>,
}

impl Deleter {
    /// Starts the thread; it ends when the `Deleter` is dropped.
    pub(crate) fn start(store: Arc<Store>) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (applied_tx, applied_rx) = std::sync::mpsc::channel();
        let (reclaim_tx, reclaim_rx) = std::sync::mpsc::channel();
        let syncing = store.clone();
        std::thread::Builder::new().name("cairn-reclaim".into()).spawn(move || reclaim(reclaim_rx))?;
        std::thread::Builder::new()
            .name("cairn-del-sync".into())
            .spawn(move || sync(&syncing, applied_rx, reclaim_tx))?;
        std::thread::Builder::new().name("cairn-deletes".into()).spawn(move || apply(&store, rx, applied_tx))?;
        Ok(Self { jobs: Mutex::new(tx) })
    }

    /// Deletes `id` (a discard: succeeding where it is absent), durably:
    /// returns once the binlog line that records it is on disk.
    pub(crate) async fn delete(&self, id: FileId, origin: Origin, discard: bool) -> Result<(), ProtoError> {
        let (done, answer) = oneshot::channel();
        let job = Job { id, origin, discard, done };
        let sent = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).send(job);
        if sent.is_err() {
            return Err(refuse(ErrorCode::Internal, "the delete thread stopped"));
        }
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(remote(e)),
            Err(_) => Err(refuse(ErrorCode::Internal, "the delete thread stopped")),
        }
    }
}

/// Deletes applied, waiting for the sync that makes them durable.
struct Applied {
    upto: u64,
    jobs: Vec<(Job, cairn_store::Result<Unsynced>)>,
}

/// Applies every delete that is waiting, and hands the batch on to be
/// synced; meanwhile it applies the next.
fn apply(store: &Store, jobs: Receiver<Job>, applied: Sender<Applied>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let done: Vec<_> = batch
            .into_iter()
            .map(|j| {
                let r = store.delete_unsynced(&j.id, j.origin, j.discard);
                (j, r)
            })
            .collect();
        let upto = done.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|u| u.line).max().unwrap_or(0);
        if applied.send(Applied { upto, jobs: done }).is_err() {
            return;
        }
    }
}

/// Syncs the binlog once for every applied batch that is waiting, then
/// answers their deletes.
fn sync(store: &Store, applied: Receiver<Applied>, reclaim: Sender<Unsynced>) {
    while let Ok(first) = applied.recv() {
        let mut batches = vec![first];
        while let Ok(more) = applied.try_recv() {
            batches.push(more);
        }
        let upto = batches.iter().map(|b| b.upto).max().unwrap_or(0);
        let synced = store.binlog().sync_through(upto).map_err(|e| e.to_string());
        for (job, r) in batches.into_iter().flat_map(|b| b.jobs) {
            let r = match (r, &synced) {
                (Ok(done), Ok(())) => {
                    // Freed off this thread: the next batch need not wait
                    // for a large file's pages to be dropped.
                    let _ = reclaim.send(done);
                    Ok(())
                }
                (Ok(done), Err(why)) => {
                    let _ = reclaim.send(done);
                    Err(cairn_store::Error::Io {
                        path: store.binlog().path().to_path_buf(),
                        error: std::io::Error::other(why.clone()),
                    })
                }
                (Err(e), _) => Err(e),
            };
            // The asker may have gone (its connection closed): nothing to tell.
            let _ = job.done.send(r);
        }
    }
}

/// Frees the space of deleted blobs that had files of their own.
fn reclaim(set_aside: Receiver<Unsynced>) {
    while let Ok(done) = set_aside.recv() {
        done.reclaim();
    }
}
