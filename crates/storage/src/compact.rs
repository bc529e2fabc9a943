//! Compaction: gives back the space of deleted packed blobs.
//!
//! A delete of a packed blob only appends a tombstone; its bytes stay in
//! the pack until the pack is rewritten. Every minute the node rewrites the
//! sealed packs that are at least half dead (see `cairn_store::Store::compact`),
//! on a blocking thread so requests are not held up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::node::Node;

/// Time between compaction passes.
const EVERY: Duration = Duration::from_secs(60);
/// Share of a pack that must be dead before it is rewritten: at one half,
/// each live byte is copied at most about once per byte freed.
const MIN_DEAD: f64 = 0.5;

/// Runs compaction passes until shutdown.
pub async fn compactor(node: Arc<Node>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let store = node.store.clone();
        match tokio::task::spawn_blocking(move || store.compact(MIN_DEAD).map(|done| (done, store.stats().packs))).await
        {
            Ok(Ok((done, (packs, on_disk, live)))) if done.packs > 0 => info!(
                rewritten = done.packs,
                copied = done.copied,
                freed = done.freed,
                packs,
                on_disk,
                live,
                "packs compacted"
            ),
            Ok(Ok((_, (packs, on_disk, live)))) => debug!(packs, on_disk, live, "no pack to compact"),
            Ok(Err(e)) => warn!(error = %e, "pack compaction failed"),
            Err(e) => warn!(error = %e, "pack compaction stopped"),
        }
    }
}
