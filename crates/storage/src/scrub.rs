//! Scrub: re-read every blob at a set pace, check it against its
//! checksums, and repair what is corrupt, truncated or missing from a
//! healthy member. A comparison with a peer then finds blobs that are
//! missing here altogether. Reads that hit a bad checksum queue the same
//! repair.

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::{ErrorCode, FileId, ProtoError};
use tracing::{info, warn};

use crate::error::refuse;
use crate::node::Node;
use crate::sync::{compare_listing, fetch_into};

/// How long a repair that knows no active peer waits for the trackers'
/// fresh word on the group.
const FRESH_VIEW_WAIT: Duration = Duration::from_secs(3);

/// Starts a scrub unless one runs; returns whether it started.
pub fn start(node: &Arc<Node>) -> bool {
    {
        let mut s = node.scrub_state();
        if s.running {
            return false;
        }
        s.running = true;
    }
    let node = node.clone();
    tokio::spawn(async move { run(node).await });
    true
}

/// Runs scrubs every `interval`.
pub async fn periodic(node: Arc<Node>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        start(&node);
    }
}

async fn run(node: Arc<Node>) {
    let store = node.store.clone();
    let ids = tokio::task::spawn_blocking(move || store.list()).await.ok().and_then(|r| r.ok()).unwrap_or_default();
    {
        let mut s = node.scrub_state();
        s.total = ids.len() as u64;
        s.checked = 0;
        s.bytes = 0;
        s.bad = 0;
        s.repaired = 0;
        s.copied = 0;
        s.last_error = None;
    }
    for id in ids {
        let store = node.store.clone();
        let vid = id.clone();
        let verdict = tokio::task::spawn_blocking(move || verify(&store, &vid)).await.unwrap_or(Ok(0));
        match verdict {
            Ok(bytes) => {
                node.scrub_rate.take(bytes).await;
                let mut s = node.scrub_state();
                s.checked += 1;
                s.bytes += bytes;
            }
            Err(why) => {
                node.scrub_state().bad += 1;
                warn!(file_id = %id, %why, "scrub found a bad blob");
                let fixed = repair(&node, &id).await;
                let mut s = node.scrub_state();
                s.checked += 1;
                match fixed {
                    Ok(()) => s.repaired += 1,
                    Err(e) => s.last_error = Some(format!("{id}: {e}")),
                }
            }
        }
    }
    let sources = node.view.snapshot().map(|s| s.sources(node.id())).unwrap_or_default();
    if let Some((_, source)) = sources.first() {
        match compare_listing(&node, source, std::time::Instant::now()).await {
            Ok(n) => node.scrub_state().copied += n,
            Err(e) => node.scrub_state().last_error = Some(format!("comparing with {source}: {e}")),
        }
    }
    let mut s = node.scrub_state();
    s.running = false;
    s.completed += 1;
    info!(checked = s.checked, bad = s.bad, repaired = s.repaired, copied = s.copied, "scrub finished");
}

/// Reads a blob whole; `Ok(bytes)` when every block checks out. A blob
/// deleted meanwhile counts as fine.
fn verify(store: &cairn_store::Store, id: &FileId) -> Result<u64, String> {
    let mut reader = match store.read(id, 0, None) {
        Ok(r) => r,
        Err(cairn_store::Error::NotFound(_)) if store.was_deleted(id) || !store.contains_any(id) => return Ok(0),
        Err(e) => return Err(e.to_string()),
    };
    let mut bytes = 0;
    loop {
        match reader.next_chunk() {
            Ok(Some(c)) => bytes += c.len() as u64,
            Ok(None) => return Ok(bytes),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Replaces a bad blob with a good copy from an active peer.
pub async fn repair(node: &Node, id: &FileId) -> Result<(), ProtoError> {
    let mut sources = node.view.snapshot().map(|s| s.sources(node.id())).unwrap_or_default();
    if sources.is_empty() {
        // This node's view is its last heartbeat's answer: a peer the
        // trackers turned active since is not in it yet. Ask again before
        // giving up on the repair.
        let asked = std::time::Instant::now();
        node.beat_now();
        while !node.view.all_answered_since(asked) && asked.elapsed() < FRESH_VIEW_WAIT {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sources = node.view.snapshot().map(|s| s.sources(node.id())).unwrap_or_default();
    }
    let mut last = refuse(ErrorCode::Unavailable, "no active member to repair from");
    for (_, source) in sources {
        match fetch_into(node, &source, id, cairn_store::Expect::Any).await {
            Ok(_) => {
                info!(file_id = %id, peer = %source, "repaired from peer");
                return Ok(());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Queues the repair of a blob a read found bad (once at a time per blob).
pub fn queue_repair(node: &Arc<Node>, id: FileId) {
    if !node.repairing.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string()) {
        return;
    }
    let node = node.clone();
    tokio::spawn(async move {
        if let Err(e) = repair(&node, &id).await {
            warn!(file_id = %id, error = %e, "read repair failed");
        }
        node.repairing.lock().unwrap_or_else(|p| p.into_inner()).remove(&id.to_string());
    });
}
