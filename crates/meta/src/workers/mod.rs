//! The meta service's background workers, beside the namespace whose data
//! they own (decision 0007; docs/volumes.md):
//!
//! - `collector.rs`: deletes blobs no file refers to any more, once their
//!   grace period has passed;
//! - `slice_merger.rs`: rewrites a file split into many slices as a few
//!   large blobs. Called the slice merger, not a compactor: "compaction"
//!   in `cairn-storage` is the rewriting of a storage node's pack files,
//!   another job on another layer, and logs and docs must not mix them up;
//! - `blobs.rs`: the blob layer as the workers need it ([`Blobs`]), a
//!   trait so that their tests need no cluster.
//!
//! The meta server starts them once, with [`spawn`], when it knows the
//! cluster's trackers; they call the namespace in-process (never over the
//! meta protocol) and stop when the server does.

mod blobs;
mod collector;
#[cfg(test)]
mod fake_blobs;
mod slice_merger;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::engine::Engine;
use crate::error::MetaError;
use crate::namespace::Namespace;

pub use blobs::{BlobError, Blobs};
pub use collector::{Collector, COLLECT_AFTER_SECS};
pub use slice_merger::SliceMerger;

/// Settings of the workers (the meta server's `workers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Trackers of the cluster that holds the volumes' blobs.
    pub trackers: Vec<String>,
    /// How long a blob no file refers to is kept before it is deleted, so
    /// that readers still holding old slices can finish.
    pub collect_after: Duration,
}

/// What stopped one round of a worker; it tries again at the next.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The namespace failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The blob layer failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// Starts the collector and the slice merger over `ns`, reaching blobs
/// through `blobs`, until `shutdown` turns true.
pub fn spawn<E: Engine, B: Blobs>(
    ns: Arc<Namespace<E>>,
    blobs: Arc<B>,
    opts: &WorkerOptions,
    shutdown: watch::Receiver<bool>,
) {
    let collector = Collector::new(ns.clone(), blobs.clone(), opts.collect_after);
    tokio::spawn(collector.run(shutdown.clone()));
    tokio::spawn(SliceMerger::new(ns, blobs).run(shutdown));
}

/// Runs `f` on the namespace on a blocking thread: its transactions may
/// wait on a disk or a network, which a runtime thread must not.
async fn blocking<E: Engine, T: Send + 'static>(
    ns: &Arc<Namespace<E>>,
    f: impl FnOnce(&Namespace<E>) -> crate::Result<T> + Send + 'static,
) -> crate::Result<T> {
    let ns = ns.clone();
    tokio::task::spawn_blocking(move || f(&ns))
        .await
        .unwrap_or_else(|e| Err(MetaError::Engine(format!("meta worker task failed: {e}"))))
}

/// Sleeps `every`, or returns `false` at once when `shutdown` turns true.
async fn sleep_unless_stopped(every: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(every) => true,
        _ = shutdown.changed() => false,
    }
}
