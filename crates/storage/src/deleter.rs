//! The node's delete thread: applies deletes in batches, with one binlog
//! sync per batch (group commit).
//!
//! A delete is made durable by an fsync of the binlog (`cairn_store`'s
//! `deletes.rs`). Handed to the blocking pool one by one, each delete took
//! a blocking thread that then queued for the sync lock behind the others:
//! two thread wake-ups per delete and per node, and on this 2-core machine
//! the context switches were the largest single cost in the profile
//! (docs/decisions/0013-batched-deletes.md). Here one thread takes every
//! delete that is waiting, applies them, syncs the binlog once, and then
//! answers each; deletes that arrive meanwhile form the next batch. The
//! content of a large blob, set aside by the delete (renamed into `tmp/`),
//! is unlinked by a second thread afterwards: dropping a MiB of page cache
//! costs about a millisecond, which the batch need not wait for.

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
        let (reclaim_tx, reclaim_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("cairn-reclaim".into()).spawn(move || reclaim(reclaim_rx))?;
        std::thread::Builder::new().name("cairn-deletes".into()).spawn(move || run(&store, rx, reclaim_tx))?;
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

fn run(store: &Store, jobs: Receiver<Job>, reclaim: Sender<Unsynced>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let applied: Vec<cairn_store::Result<Unsynced>> =
            batch.iter().map(|j| store.delete_unsynced(&j.id, j.origin, j.discard)).collect();
        let upto = applied.iter().flatten().map(|u| u.line).max().unwrap_or(0);
        let synced = store.binlog().sync_through(upto).map_err(|e| e.to_string());
        for (job, r) in batch.into_iter().zip(applied) {
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
                        source: std::io::Error::other(why.clone()),
                    })
                }
                (Err(e), _) => Err(e),
            };
            // The asker may have gone (its connection closed): nothing to tell.
            let _ = job.done.send(r.map(drop));
        }
    }
}

/// Frees the space of deleted blobs that had files of their own.
fn reclaim(set_aside: Receiver<Unsynced>) {
    while let Ok(done) = set_aside.recv() {
        done.reclaim();
    }
}
