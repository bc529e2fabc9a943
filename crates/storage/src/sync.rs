//! Catch-up: a member that is syncing (new, back from offline, restarted,
//! or with a wiped disk) compares itself with an active peer and copies
//! what it lacks, while it already receives new writes. Deletes the peer
//! made meanwhile are applied, and a deleted file is never copied back.
//! When a pass finds nothing left to copy, the node reports itself caught
//! up and the tracker turns it active.
//!
//! This is the full-comparison path (FastDFS's disk recovery). Replaying
//! only the binlog tail since the node left is a later optimisation.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_proto::frame::{expect_frame, write_frame, BodyReader};
use cairn_proto::net::check;
use cairn_proto::{FileId, MemberState, ProtoError, Request, Response};
use cairn_store::Origin;
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use crate::node::{blocking, Node};

/// Entries per listing page (about 100 bytes each, well under a frame).
const PAGE: u32 = 2000;
/// Passes before giving up on converging (writes racing the copy).
const MAX_PASSES: usize = 5;

/// Starts a catch-up if this node is syncing and has not caught up yet.
pub fn maybe_start(node: &Arc<Node>) {
    match node.view.my_state(node.id()) {
        Some(MemberState::Active) => {
            node.was_active.store(true, Ordering::Relaxed);
        }
        Some(MemberState::Syncing) => {
            // Back to syncing after being active: the tracker saw us leave.
            if node.was_active.swap(false, Ordering::Relaxed) {
                node.heal_state().caught_up = false;
            }
            let mut h = node.heal_state();
            if h.caught_up || h.running {
                return;
            }
            h.running = true;
            drop(h);
            let node = node.clone();
            tokio::spawn(async move { run(node).await });
        }
        _ => {}
    }
}

async fn run(node: Arc<Node>) {
    let started = Instant::now();
    {
        let mut h = node.heal_state();
        h.to_copy = 0;
        h.copied = 0;
        h.bytes = 0;
        h.deleted = 0;
        h.last_error = None;
    }
    let mut done = false;
    for _ in 0..MAX_PASSES {
        let sources = node.view.snapshot().map(|s| s.sources(node.id())).unwrap_or_default();
        let Some(source) = sources.first().cloned() else {
            // No active peer to learn from: what this node holds is the best
            // the group has.
            done = true;
            break;
        };
        node.heal_state().source = Some(source.clone());
        match pass(&node, &source).await {
            Ok(0) => {
                done = true;
                break;
            }
            Ok(_) => continue,
            Err(e) => {
                warn!(peer = %source, error = %e, "catch-up pass failed");
                node.heal_state().last_error = Some(format!("{source}: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let mut h = node.heal_state();
    h.running = false;
    h.caught_up = done;
    h.elapsed_ms = started.elapsed().as_millis() as u64;
    if done {
        info!(copied = h.copied, deleted = h.deleted, bytes = h.bytes, ms = h.elapsed_ms, "caught up with the group");
    }
}

/// One comparison with `source`: applies its deletes, copies what differs.
/// Returns how many blobs were copied.
pub async fn pass(node: &Node, source: &str) -> Result<u64, ProtoError> {
    let mut after_seq = 0;
    loop {
        let resp = node.pool.call(source, &Request::Tombstones { after_seq, limit: PAGE }).await?;
        let Response::Tombstones { ids, next_seq, more } = resp else {
            return Err(ProtoError::Unexpected { expected: "tombstones", got: resp.name() });
        };
        for s in ids {
            let Ok(id) = FileId::parse(&s) else { continue };
            if node.store.contains(&id) {
                let store = node.store.clone();
                blocking(move || store.delete(&id, Origin::Replica)).await?;
                node.heal_state().deleted += 1;
            }
        }
        after_seq = next_seq;
        if !more {
            break;
        }
    }
    let mut copied = 0;
    let mut after: Option<String> = None;
    loop {
        let resp = node.pool.call(source, &Request::ListBlobs { after: after.clone(), limit: PAGE }).await?;
        let Response::Blobs { blobs, more } = resp else {
            return Err(ProtoError::Unexpected { expected: "blobs", got: resp.name() });
        };
        for b in &blobs {
            let Ok(id) = FileId::parse(&b.file_id) else { continue };
            if node.store.was_deleted(&id) {
                continue;
            }
            let store = node.store.clone();
            let lid = id.clone();
            // Both halves must be here: a record whose content is gone is a loss.
            let local =
                tokio::task::spawn_blocking(move || store.contains(&lid).then(|| store.record(&lid).ok()).flatten())
                    .await
                    .ok()
                    .flatten();
            if local.is_some_and(|r| r.size == b.size && r.crc32 == b.crc32) {
                continue;
            }
            node.heal_state().to_copy += 1;
            match fetch_into(node, source, &id).await {
                Ok(bytes) => {
                    copied += 1;
                    let mut h = node.heal_state();
                    h.copied += 1;
                    h.bytes += bytes;
                }
                // Deleted at the source meanwhile, or here: nothing to copy.
                Err(ProtoError::Remote(e)) if e.code == cairn_proto::ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        after = blobs.last().map(|b| b.file_id.clone());
        if !more || after.is_none() {
            break;
        }
    }
    Ok(copied)
}

/// Copies one blob from `source`, replacing what is here. Returns its size.
pub async fn fetch_into(node: &Node, source: &str, id: &FileId) -> Result<u64, ProtoError> {
    let mut c = node.pool.get(source).await?;
    write_frame(&mut c.conn, &Request::FetchBlob { file_id: id.to_string() }).await?;
    c.conn.flush().await?;
    let resp: Response = expect_frame(&mut c.conn).await?;
    let (info, meta) = match check(resp)? {
        Response::Blob { info, meta } => (info, meta),
        other => return Err(ProtoError::Unexpected { expected: "blob", got: other.name() }),
    };
    let store = node.store.clone();
    let sp = id.store_path();
    let mut spool = Some(blocking(move || store.spool(sp)).await?);
    let mut body = BodyReader::new();
    loop {
        let chunk = match body.next(&mut c.conn).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(ProtoError::BodyAborted) => {
                let why: Response = expect_frame(&mut c.conn).await?;
                node.pool.put(c);
                check(why)?;
                return Err(ProtoError::BodyAborted);
            }
            Err(e) => return Err(e),
        };
        node.heal_rate.take(chunk.len() as u64).await;
        let Some(mut s) = spool.take() else { break };
        spool = Some(blocking(move || s.write(&chunk).map(|()| s)).await?);
    }
    node.pool.put(c);
    let Some(spool) = spool else { return Err(ProtoError::BodyAborted) };
    let spooled = blocking(move || spool.finish()).await?;
    let store = node.store.clone();
    let id = id.clone();
    let size = info.size;
    blocking(move || store.replace(spooled, &id, &info, meta)).await?;
    Ok(size)
}
