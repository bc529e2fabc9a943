//! The slice merger: a file written in many small pieces (appends with
//! fsync, random writes) has many slices, and every read of it resolves
//! them all. The namespace queues such files (`k` vol ino); this rewrites
//! each one's content as few large blobs and swaps them in for the slices
//! it read, if those are still the file's oldest (slices written meanwhile
//! stay on top). The old blobs go to the collector; new blobs that lost
//! the race are deleted at once.

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::meta::Slice;
use cairn_proto::FileId;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{blocking, sleep_unless_stopped, Blobs, WorkerError};
use crate::engine::Engine;
use crate::error::MetaError;
use crate::namespace::Namespace;
use crate::slices::{plan_merge, Piece, Run};

/// How often the queue is looked at.
const EVERY: Duration = Duration::from_secs(1);
/// Largest blob a merge makes (it is assembled in memory).
const MAX_RUN: u64 = 8 << 20;
/// Files taken from the queue at once.
const CANDIDATES: usize = 100;

/// Merges the slices of the files the namespace queues.
pub struct SliceMerger<E: Engine, B: Blobs> {
    ns: Arc<Namespace<E>>,
    blobs: Arc<B>,
}

impl<E: Engine, B: Blobs> SliceMerger<E, B> {
    /// A merger of `ns`'s queued files, through `blobs`.
    pub fn new(ns: Arc<Namespace<E>>, blobs: Arc<B>) -> Self {
        Self { ns, blobs }
    }

    /// Works through the queue every so often until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while sleep_unless_stopped(EVERY, &mut shutdown).await {
            if let Err(e) = self.round().await {
                debug!(error = %e, "slice merger round failed; trying later");
            }
        }
    }

    /// Merges the files queued now; returns how many were swapped in.
    pub async fn round(&self) -> Result<usize, WorkerError> {
        let files = blocking(&self.ns, |ns| ns.compact_candidates(CANDIDATES)).await?;
        if files.is_empty() {
            return Ok(0);
        }
        let volumes = blocking(&self.ns, |ns| ns.volumes()).await?;
        let mut merged = 0;
        for (vol, ino) in files {
            let groups = volumes.iter().find(|v| v.id == vol).map(|v| v.groups.clone()).unwrap_or_default();
            match self.merge(vol, ino, &groups).await {
                Ok(Some((before, after))) => {
                    merged += 1;
                    info!(vol, ino, before, after, "file's slices merged");
                }
                Ok(None) => debug!(vol, ino, "file changed during its merge; it stays queued"),
                Err(e) => warn!(vol, ino, error = %e, "cannot merge a file's slices yet"),
            }
        }
        Ok(merged)
    }

    /// Merges one file's slices; `Some((before, after))` when swapped in.
    async fn merge(&self, vol: u32, ino: u64, groups: &[String]) -> Result<Option<(usize, usize)>, WorkerError> {
        let (size, slices, generation) =
            match blocking(&self.ns, move |ns| ns.slices_page(vol, ino, 0, usize::MAX)).await {
                Ok((attr, slices, _, generation)) => (attr.size, slices, generation),
                // Gone: the swap below takes it off the queue.
                Err(MetaError::NotFound(_)) => (0, Vec::new(), 0),
                Err(e) => return Err(e.into()),
            };
        let runs = plan_merge(&slices, size, MAX_RUN);
        let mut merged = Vec::with_capacity(runs.len());
        // Blobs this merge uploaded: the only ones to delete if it loses.
        let mut made = Vec::new();
        let gain = runs.len() < slices.len();
        if gain {
            for (i, run) in runs.iter().enumerate() {
                // A run that is one blob's bytes already (a region nothing
                // was written to since the last merge) keeps that blob: a
                // file that grows by small appends then costs a rewrite of
                // its tail, not of all of it, and leaves no garbage for the
                // collector. Not when the run is a small part of a large
                // blob (one run of a buffer of scattered writes, which
                // share a blob): kept, it would keep the whole blob from
                // the collector.
                if let [Piece::Data { blob, blob_offset, len }] = run.pieces.as_slice() {
                    if most_of_its_blob(blob, *len) {
                        merged.push(Slice {
                            offset: run.offset,
                            len: *len,
                            blob: blob.clone(),
                            blob_offset: *blob_offset,
                        });
                        continue;
                    }
                }
                // A file deleted (or unlinked while open) since the merge
                // began is not worth the rest of it: rewriting a large file
                // takes seconds of both cores and the disk, which a `rm`
                // right after random writes would otherwise pay for in
                // full. Off the queue; an orphan written to again is queued
                // again.
                if self.unlinked(vol, ino).await {
                    self.discard(&made).await;
                    let off_the_queue = move |ns: &Namespace<E>| ns.compact_prefix(vol, ino, generation, 0, Vec::new());
                    let _ = blocking(&self.ns, off_the_queue).await;
                    return Ok(None);
                }
                let group = (!groups.is_empty()).then(|| groups[(ino as usize + i) % groups.len()].clone());
                match self.rewrite(run, group).await {
                    Ok(Some(slice)) => {
                        made.push(slice.clone());
                        merged.push(slice);
                    }
                    // A piece shorter than planned: the file changed under the merge.
                    Ok(None) => {
                        self.discard(&made).await;
                        return Ok(None);
                    }
                    Err(e) => {
                        self.discard(&made).await;
                        return Err(e);
                    }
                }
            }
        }
        // Nothing to gain (or the file is gone): replacing none by nothing
        // just takes it off the queue.
        let (count, after) = if gain { (slices.len() as u64, merged.len()) } else { (0, slices.len()) };
        let swap = move |ns: &Namespace<E>| ns.compact_prefix(vol, ino, generation, count, merged);
        if blocking(&self.ns, swap).await? {
            Ok(Some((slices.len(), after)))
        } else {
            self.discard(&made).await;
            Ok(None)
        }
    }

    /// Whether the file has no links left (or is gone). Asked before each
    /// run of a merge: one attribute read per 8 MiB rewritten.
    async fn unlinked(&self, vol: u32, ino: u64) -> bool {
        match blocking(&self.ns, move |ns| ns.getattr(vol, ino)).await {
            Ok(a) => a.nlink == 0,
            Err(MetaError::NotFound(_)) => true,
            // Unsure: carry on; the swap at the end checks again.
            Err(_) => false,
        }
    }

    /// Reads a run's pieces and uploads them as one new blob, into `group`;
    /// `None` if the pieces no longer add up to the run.
    async fn rewrite(&self, run: &Run, group: Option<String>) -> Result<Option<Slice>, WorkerError> {
        let mut data = Vec::with_capacity(run.len as usize);
        for p in &run.pieces {
            if let Piece::Data { blob, blob_offset, len } = p {
                self.blobs.read(blob, *blob_offset, *len, &mut data).await?;
            }
        }
        if data.len() as u64 != run.len {
            return Ok(None);
        }
        let blob = self.blobs.upload(data, group).await?;
        Ok(Some(Slice { offset: run.offset, len: run.len, blob, blob_offset: 0 }))
    }

    /// Deletes blobs a lost merge made (no file refers to them).
    async fn discard(&self, slices: &[Slice]) {
        for s in slices {
            if let Err(e) = self.blobs.delete(&s.blob).await {
                warn!(blob = %s.blob, error = %e, "cannot delete a merge's unused blob");
            }
        }
    }
}

/// Whether `len` bytes are at least half of `blob` (as its ID says; a blob
/// whose ID does not say is taken to be that piece).
fn most_of_its_blob(blob: &str, len: u64) -> bool {
    match FileId::parse(blob).ok().and_then(|id| id.info().size()) {
        Some(size) => len.saturating_mul(2) >= size,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workers::fake_blobs::FakeBlobs;
    use crate::{MemEngine, NewNode, DEFAULT_CHUNK, ROOT};
    use cairn_proto::meta::Kind;

    /// A namespace holding one file written as `pieces` blobs of 10 bytes,
    /// side by side, in volume `v` of groups `g1` and `g2`.
    fn fragmented(pieces: usize) -> (Arc<Namespace<MemEngine>>, Arc<FakeBlobs>, u32, u64) {
        let ns = Namespace::open(MemEngine::new()).unwrap();
        let v = ns.create_volume("v", vec!["g1".into(), "g2".into()], DEFAULT_CHUNK).unwrap().id;
        let node = NewNode { kind: Kind::File, perm: 0o644, uid: 0, gid: 0, rdev: 0, target: vec![] };
        let f = ns.mknod(v, ROOT, b"f", node).unwrap().ino;
        let blobs = FakeBlobs::default();
        let mut slices = Vec::new();
        for i in 0..pieces {
            let name = format!("g1/M00/00/00/piece{i}");
            blobs.put(&name, vec![i as u8; 10]);
            slices.push(Slice { offset: i as u64 * 10, len: 10, blob: name, blob_offset: 0 });
        }
        ns.write(v, f, slices).unwrap();
        (Arc::new(ns), Arc::new(blobs), v, f)
    }

    #[tokio::test]
    async fn a_fragmented_file_becomes_one_blob_and_its_old_blobs_go_to_the_collector() {
        let (ns, blobs, v, f) = fragmented(crate::COMPACT_AFTER + 4);
        assert_eq!(ns.compact_candidates(10).unwrap(), vec![(v, f)]);
        let merger = SliceMerger::new(ns.clone(), blobs.clone());
        assert_eq!(merger.round().await.unwrap(), 1);
        let (attr, now) = ns.slices(v, f).unwrap();
        assert_eq!(now.len(), 1);
        assert_eq!((now[0].offset, now[0].len, attr.size), (0, 200, 200));
        let want: Vec<u8> = (0..20u8).flat_map(|i| [i; 10]).collect();
        assert_eq!(blobs.get(&now[0].blob).unwrap(), want, "the content, in order");
        assert!(["g1/", "g2/"].iter().any(|g| now[0].blob.starts_with(g)), "into one of the volume's groups");
        assert!(ns.compact_candidates(10).unwrap().is_empty(), "off the queue");
        assert_eq!(ns.garbage(i64::MAX, None, 100).unwrap().len(), 20, "every old blob is queued for the collector");
        assert_eq!(merger.round().await.unwrap(), 0, "nothing left to do");
    }

    #[tokio::test]
    async fn a_merge_that_cannot_read_a_piece_leaves_the_file_queued_and_nothing_behind() {
        let (ns, blobs, v, f) = fragmented(crate::COMPACT_AFTER + 1);
        blobs.fail("g1/M00/00/00/piece3");
        let merger = SliceMerger::new(ns.clone(), blobs.clone());
        assert_eq!(merger.round().await.unwrap(), 0);
        assert_eq!(ns.slices(v, f).unwrap().1.len(), crate::COMPACT_AFTER + 1, "unchanged");
        assert_eq!(ns.compact_candidates(10).unwrap(), vec![(v, f)], "still queued");
        assert_eq!(blobs.uploads(), 0);
        blobs.heal("g1/M00/00/00/piece3");
        assert_eq!(merger.round().await.unwrap(), 1, "merged once the piece reads");
    }

    #[tokio::test]
    async fn an_unlinked_file_is_taken_off_the_queue_without_a_rewrite() {
        let (ns, blobs, v, f) = fragmented(crate::COMPACT_AFTER + 1);
        ns.unlink(v, ROOT, b"f").unwrap();
        let merger = SliceMerger::new(ns.clone(), blobs.clone());
        assert_eq!(merger.round().await.unwrap(), 0);
        assert_eq!(blobs.uploads(), 0, "no rewrite of a file nobody can reach");
        assert_eq!(ns.slices(v, f).unwrap().1.len(), crate::COMPACT_AFTER + 1, "its slices as they were");
        assert!(ns.compact_candidates(10).unwrap().is_empty());
    }
}
