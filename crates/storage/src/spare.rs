//! A spare: a storage node started without a group (`cairn storage
//! --spare`). It reports to the trackers as such (state `init`) until an
//! operator puts it into a group (`cairn group add-node GROUP ADDR`); it
//! then joins that group as a new member, fills up from its peers and turns
//! active like any returning member.

use std::time::Duration;

use cairn_proto::{ClusterSecret, Pool, Request, Response};
use tokio::sync::watch;
use tracing::{info, warn};

/// Reports to every tracker until one of them assigns a group; returns it,
/// or `None` on shutdown.
pub async fn wait_for_group(
    trackers: &[String],
    secret: ClusterSecret,
    addr: &str,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> Option<String> {
    let pool = Pool::new(secret, Duration::from_secs(3), 1);
    let req = Request::SpareHeartbeat { addr: addr.to_string(), version: env!("CARGO_PKG_VERSION").to_string() };
    info!(%addr, "spare storage node waiting for `cairn group add-node GROUP {addr}`");
    loop {
        for t in trackers {
            match tokio::time::timeout(every.max(Duration::from_secs(2)), pool.call(t, &req)).await {
                Ok(Ok(Response::Assigned(Some(group)))) => {
                    info!(%group, tracker = %t, "assigned to a group");
                    return Some(group);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => warn!(tracker = %t, error = %e, "spare heartbeat failed"),
                Err(_) => warn!(tracker = %t, "spare heartbeat timed out"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return None,
        }
    }
}
