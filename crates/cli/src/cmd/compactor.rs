//! The slice compactor beside the meta service: a file written in many
//! small pieces (appends with fsync, random writes) has many slices, and
//! every read of it resolves them all. The meta service queues such files;
//! this rewrites each one's content as few large blobs and swaps them in
//! for the slices it read, if those are still the file's oldest (slices
//! written meanwhile stay on top). The old blobs go to the
//! collector; new blobs that lost the race are deleted at once.

use std::time::Duration;

use cairn_client::{Body, Client, ClientConfig, MetaClient, UploadOptions};
use cairn_meta::slices::{plan_merge, Piece, Run};
use cairn_proto::meta::{MetaRequest, MetaResponse, Slice};
use cairn_proto::{ClusterSecret, FileId};
use tracing::{debug, info, warn};

/// How often the queue is looked at.
const EVERY: Duration = Duration::from_secs(1);
/// Largest blob a merge makes (it is assembled in memory).
const MAX_RUN: u64 = 8 << 20;

/// Runs forever (the daemon's runtime ends it).
pub async fn run(meta: String, trackers: Vec<String>, secret: ClusterSecret) {
    let m = MetaClient::new(meta, secret.clone());
    let c = Client::new(ClientConfig::new(trackers, secret));
    loop {
        tokio::time::sleep(EVERY).await;
        if let Err(e) = round(&m, &c).await {
            debug!(error = %e, "compactor round failed; trying later");
        }
    }
}

async fn round(m: &MetaClient, c: &Client) -> Result<(), cairn_client::Error> {
    let MetaResponse::Inodes(files) = m.call(MetaRequest::CompactCandidates { limit: 100 }).await? else {
        return Ok(());
    };
    if files.is_empty() {
        return Ok(());
    }
    let volumes = m.volumes().await?;
    for (vol, ino) in files {
        let groups = volumes.iter().find(|v| v.id == vol).map(|v| v.groups.clone()).unwrap_or_default();
        match compact(m, c, vol, ino, &groups).await {
            Ok(Some((before, after))) => info!(vol, ino, before, after, "file's slices merged"),
            Ok(None) => debug!(vol, ino, "file changed during its merge; it stays queued"),
            Err(e) => warn!(vol, ino, error = %e, "cannot merge a file's slices yet"),
        }
    }
    Ok(())
}

/// Merges one file's slices; `Some((before, after))` when swapped in.
async fn compact(
    m: &MetaClient,
    c: &Client,
    vol: u32,
    ino: u64,
    groups: &[String],
) -> Result<Option<(usize, usize)>, cairn_client::Error> {
    let (size, slices, generation) = match m.slices(vol, ino).await {
        Ok((a, s, generation)) => (a.size, s, generation),
        // Gone: the compaction request takes it off the queue.
        Err(cairn_client::Error::Namespace { errno: cairn_proto::Errno::ENOENT, .. }) => (0, Vec::new(), 0),
        Err(e) => return Err(e),
    };
    let runs = plan_merge(&slices, size, MAX_RUN);
    let mut merged = Vec::with_capacity(runs.len());
    // Blobs this merge uploaded: the only ones to delete if it loses.
    let mut made = Vec::new();
    let gain = runs.len() < slices.len();
    if gain {
        for (i, run) in runs.iter().enumerate() {
            // A run that is one blob's bytes already (a region nothing was
            // written to since the last merge) keeps that blob: a file that
            // grows by small appends then costs a rewrite of its tail, not
            // of all of it, and leaves no garbage for the collector. Not
            // when the run is a small part of a large blob (one run of a
            // buffer of scattered writes, which share a blob): kept, it
            // would keep the whole blob from the collector.
            if let [Piece::Data { blob, blob_offset, len }] = run.pieces.as_slice() {
                if most_of_its_blob(blob, *len) {
                    merged.push(Slice { offset: run.offset, len: *len, blob: blob.clone(), blob_offset: *blob_offset });
                    continue;
                }
            }
            // A file deleted (or unlinked while open) since the merge began
            // is not worth the rest of it: rewriting a large file takes
            // seconds of both cores and the disk, which a `rm` right after
            // random writes would otherwise pay for in full. Off the queue;
            // an orphan written to again is queued again.
            if unlinked(m, vol, ino).await {
                discard(c, &made).await;
                let _ = m.call(MetaRequest::CompactPrefix { vol, ino, generation, count: 0, merged: Vec::new() }).await;
                return Ok(None);
            }
            let group = (!groups.is_empty()).then(|| groups[(ino as usize + i) % groups.len()].clone());
            match rewrite(c, run, group).await {
                Ok(Some(slice)) => {
                    made.push(slice.clone());
                    merged.push(slice);
                }
                // A piece shorter than planned: the file changed under the merge.
                Ok(None) => {
                    discard(c, &made).await;
                    return Ok(None);
                }
                Err(e) => {
                    discard(c, &made).await;
                    return Err(e);
                }
            }
        }
    }
    // Nothing to gain (or the file is gone): replacing none by nothing just
    // takes it off the queue.
    let (count, after) = if gain { (slices.len() as u64, merged.len()) } else { (0, slices.len()) };
    match m.call(MetaRequest::CompactPrefix { vol, ino, generation, count, merged }).await? {
        MetaResponse::Compacted(true) => Ok(Some((slices.len(), after))),
        _ => {
            discard(c, &made).await;
            Ok(None)
        }
    }
}

/// Whether the file has no links left (or is gone). Asked before each run
/// of a merge: one attribute read per 8 MiB rewritten.
async fn unlinked(m: &MetaClient, vol: u32, ino: u64) -> bool {
    match m.call(MetaRequest::GetAttr { vol, ino }).await {
        Ok(MetaResponse::Attr(a)) => a.nlink == 0,
        Err(cairn_client::Error::Namespace { errno: cairn_proto::Errno::ENOENT, .. }) => true,
        // Unsure: carry on; the swap at the end checks again.
        _ => false,
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

/// Reads a run's pieces and uploads them as one new blob, into `group`;
/// `None` if the pieces no longer add up to the run.
async fn rewrite(c: &Client, run: &Run, group: Option<String>) -> Result<Option<Slice>, cairn_client::Error> {
    let mut data = Vec::with_capacity(run.len as usize);
    for p in &run.pieces {
        if let Piece::Data { blob, blob_offset, len } = p {
            let id = FileId::parse(blob)?;
            c.download_to(&id, *blob_offset, Some(*len), &mut data).await?;
        }
    }
    if data.len() as u64 != run.len {
        return Ok(None);
    }
    let opts = UploadOptions { group, appender: false, ext: String::new() };
    let id = c.upload(&opts, Body::Bytes(data.into())).await?;
    Ok(Some(Slice { offset: run.offset, len: run.len, blob: id.to_string(), blob_offset: 0 }))
}

/// Deletes blobs a lost merge made (no file refers to them).
async fn discard(c: &Client, slices: &[Slice]) {
    for s in slices {
        if let Ok(id) = FileId::parse(&s.blob) {
            if let Err(e) = c.delete(&id).await {
                warn!(blob = %s.blob, error = %e, "cannot delete a merge's unused blob");
            }
        }
    }
}
