//! The blob collector: blobs no file refers to any more (overwritten,
//! truncated away, deleted files and volumes) wait in the namespace's
//! queue (`g` blob) and are deleted from their groups once a grace period
//! has passed, so that a reader still holding the old slices can finish.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{blocking, sleep_unless_stopped, BlobError, Blobs, WorkerError};
use crate::engine::Engine;
use crate::namespace::Namespace;
use crate::records::Time;

/// How long an unreferenced blob is kept, unless told otherwise: longer
/// than any read of an old slice takes.
pub const COLLECT_AFTER_SECS: u64 = 600;
/// How often the queue is looked at (more often when the grace is short).
const EVERY: Duration = Duration::from_secs(30);
/// Blobs taken from the queue at once; a full batch means more are
/// waiting, and the next is taken at once.
const BATCH: usize = 1000;
/// Deletions on their way at once: each is a round trip to a group, and a
/// removed tree of a million small files must not take hours to free.
const DELETING_AT_ONCE: usize = 16;

/// Deletes the blobs of the collector's queue past their grace period.
pub struct Collector<E: Engine, B: Blobs> {
    ns: Arc<Namespace<E>>,
    blobs: Arc<B>,
    grace: Duration,
}

impl<E: Engine, B: Blobs> Collector<E, B> {
    /// A collector of `ns`'s queue that deletes through `blobs` what has
    /// waited `grace`.
    pub fn new(ns: Arc<Namespace<E>>, blobs: Arc<B>, grace: Duration) -> Self {
        Self { ns, blobs, grace }
    }

    /// Passes over the queue every so often until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let every = EVERY.min(self.grace.max(Duration::from_secs(1)));
        while sleep_unless_stopped(every, &mut shutdown).await {
            if let Err(e) = self.pass(Time::now().secs).await {
                debug!(error = %e, "collector pass failed; trying later");
            }
        }
    }

    /// One pass over the queue at `now` (Unix seconds), batch after batch:
    /// deletes the blobs queued before `now - grace` and takes them off the
    /// queue. Blobs that cannot be deleted yet (their group is down) stay
    /// for the next pass. Returns how many were deleted.
    pub async fn pass(&self, now: i64) -> Result<usize, WorkerError> {
        let before = now.saturating_sub(self.grace.as_secs() as i64);
        let (mut after, mut deleted) = (None, 0);
        loop {
            let (done, last) = self.batch(before, after.take()).await?;
            deleted += done;
            match last {
                Some(last) => after = Some(last),
                None => return Ok(deleted),
            }
        }
    }

    /// Deletes one batch of the blobs queued before `before` whose IDs come
    /// after `after`: how many it deleted, and its last ID when it was full
    /// (more may follow).
    async fn batch(&self, before: i64, after: Option<String>) -> Result<(usize, Option<String>), WorkerError> {
        // Blobs are freed by changes answered before they were on disk (an
        // unlink): on disk before their blobs go, whatever the grace.
        let names = blocking(&self.ns, move |ns| {
            ns.sync()?;
            ns.garbage(before, after.as_deref(), BATCH)
        })
        .await?;
        let last = if names.len() >= BATCH { names.last().cloned() } else { None };
        let blobs = &self.blobs;
        let done: Vec<String> = futures::stream::iter(names)
            .map(|blob| async move {
                match blobs.delete(&blob).await {
                    // A name that is no file ID names no blob: off the queue.
                    Ok(()) | Err(BlobError::NotAFileId(_)) => Some(blob),
                    Err(e) => {
                        warn!(blob = %blob, error = %e, "cannot delete an unreferenced blob yet");
                        None
                    }
                }
            })
            .buffer_unordered(DELETING_AT_ONCE)
            .filter_map(std::future::ready)
            .collect()
            .await;
        let count = done.len();
        if count > 0 {
            info!(count, "unreferenced blobs deleted");
            blocking(&self.ns, move |ns| ns.collected(&done)).await?;
        }
        Ok((count, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::fake_blobs::FakeBlobs;
    use crate::{MemEngine, NewNode, SetAttr, Slice, DEFAULT_CHUNK, ROOT};
    use cairn_proto::meta::Kind;

    /// A namespace whose one file was written as `blobs` and then truncated
    /// to nothing: every blob is on the collector's queue.
    fn dropped(blobs: &[String]) -> Arc<Namespace<MemEngine>> {
        let ns = Namespace::open(MemEngine::new()).unwrap();
        let v = ns.create_volume("v", vec![], DEFAULT_CHUNK).unwrap().id;
        let node = NewNode { kind: Kind::File, perm: 0o644, uid: 0, gid: 0, rdev: 0, target: vec![] };
        let f = ns.mknod(v, ROOT, b"f", node).unwrap().ino;
        let slices = blobs
            .iter()
            .enumerate()
            .map(|(i, b)| Slice { offset: i as u64, len: 1, blob: b.clone(), blob_offset: 0 })
            .collect();
        ns.write(v, f, slices).unwrap();
        ns.setattr(v, f, SetAttr { size: Some(0), ..Default::default() }).unwrap();
        Arc::new(ns)
    }

    #[tokio::test]
    async fn blobs_past_their_grace_are_deleted_and_leave_the_queue_in_batches() {
        let names: Vec<String> = (0..BATCH + 500).map(|i| format!("g1/M00/00/00/{i:05}")).collect();
        let ns = dropped(&names);
        let blobs = Arc::new(FakeBlobs::holding(&names));
        let c = Collector::new(ns.clone(), blobs.clone(), Duration::from_secs(600));
        let now = Time::now().secs;
        assert_eq!(c.pass(now).await.unwrap(), 0, "within the grace period");
        assert_eq!(blobs.len(), names.len());
        assert_eq!(c.pass(now + 601).await.unwrap(), names.len(), "more than one batch in one pass");
        assert_eq!(blobs.len(), 0);
        assert!(ns.garbage(i64::MAX, None, 10).unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_blob_that_cannot_be_deleted_yet_stays_queued_and_a_name_that_is_no_id_goes() {
        let names = ["g1/M00/00/00/a".to_string(), "g1/M00/00/00/down".to_string(), "not an id".to_string()];
        let ns = dropped(&names);
        let blobs = Arc::new(FakeBlobs::holding(&names[..2]));
        blobs.fail("g1/M00/00/00/down");
        let c = Collector::new(ns.clone(), blobs.clone(), Duration::from_secs(1));
        let later = Time::now().secs + 2;
        assert_eq!(c.pass(later).await.unwrap(), 2);
        assert_eq!(ns.garbage(i64::MAX, None, 10).unwrap(), vec!["g1/M00/00/00/down".to_string()]);
        assert!(blobs.has("g1/M00/00/00/down") && !blobs.has("g1/M00/00/00/a"));
        blobs.heal("g1/M00/00/00/down");
        assert_eq!(c.pass(later).await.unwrap(), 1, "deleted at the next pass");
        assert!(ns.garbage(i64::MAX, None, 10).unwrap().is_empty());
        assert_eq!(blobs.len(), 0);
    }

    #[tokio::test]
    async fn the_collector_stops_with_the_server() {
        let ns = dropped(&[]);
        let c = Collector::new(ns, Arc::new(FakeBlobs::default()), Duration::from_secs(600));
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(c.run(shutdown));
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }
}
