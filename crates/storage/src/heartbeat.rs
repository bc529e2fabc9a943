//! Heartbeats: one loop per tracker.

use std::sync::Arc;
use std::time::Duration;

use cairn_proto::{MemberState, NodeReport, Request, Response, StorePathUsage};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::node::Node;

/// Reports to one tracker every interval, for as long as the node runs, and
/// takes the group view it answers with.
pub async fn heartbeat_loop(node: Arc<Node>, tracker: String, mut shutdown: watch::Receiver<bool>) {
    let mut failing = false;
    let mut tick = tokio::time::interval(node.cfg.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut again = false;
    let mut asked = node.beat_requests();
    loop {
        if !again {
            tokio::select! {
                _ = tick.tick() => {}
                _ = asked.changed() => {}
                _ = shutdown.changed() => return,
            }
        }
        let report = report(&node, &tracker).await;
        let reported = (report.ready, report.write_set.clone(), report.caught_up_round);
        let res = tokio::time::timeout(
            node.cfg.heartbeat_interval.max(Duration::from_secs(2)),
            node.pool.call(&tracker, &Request::Heartbeat(report)),
        )
        .await;
        match res {
            Ok(Ok(Response::Group(view))) => {
                if failing {
                    info!(%tracker, "tracker reachable again");
                    failing = false;
                }
                let removed = view.members.iter().any(|m| m.id == node.id() && m.state == MemberState::Removed);
                node.view.update(&tracker, view);
                node.prune_missed();
                if removed && !node.store.is_removed() {
                    warn!("removed from the group by an operator; this node now serves nothing");
                    let store = node.store.clone();
                    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.mark_removed()).await {
                        warn!(error = %e, "could not record the removal on disk");
                    }
                }
                crate::sync::maybe_start(&node);
                // When the answer changed what this node would report (it
                // became ready, its write set grew), report again at once:
                // the tracker waits for exactly that to promote members.
                let now = (node.ready().is_ok(), node.reported_write_set(), node.caught_up_round(&tracker));
                again = !again && now != reported;
                continue;
            }
            Ok(Ok(other)) => warn!(%tracker, got = %other.name(), "unexpected heartbeat answer"),
            Ok(Err(e)) => {
                node.pool.forget(&tracker);
                if !failing {
                    warn!(%tracker, error = %e, "heartbeat failed");
                    failing = true;
                }
            }
            Err(_) => {
                node.pool.forget(&tracker);
                if !failing {
                    warn!(%tracker, "heartbeat timed out");
                    failing = true;
                }
            }
        }
    }
}

async fn report(node: &Arc<Node>, tracker: &str) -> NodeReport {
    let store = node.store.clone();
    let stats = tokio::task::spawn_blocking(move || store.stats()).await.ok();
    let (epoch, primary, _) = node.view.report();
    let write_set = node.reported_write_set();
    let (files, bytes, paths) = stats.map(|s| (s.files, s.bytes, s.paths)).unwrap_or_default();
    NodeReport {
        node_id: node.store.node_id(),
        group: node.store.group().to_string(),
        addr: node.cfg.advertise.clone(),
        store_paths: paths.into_iter().map(|(total, free)| StorePathUsage { total, free }).collect(),
        files,
        bytes,
        load: node.load(),
        epoch,
        primary,
        write_set,
        ready: node.ready().is_ok(),
        incarnation: node.incarnation,
        caught_up_round: node.caught_up_round(tracker),
        missed: node.missed_for(tracker),
        removed: node.store.is_removed(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        fastdfs_addr: node.cfg.fastdfs_advertise.clone(),
        http_addr: node.cfg.http_advertise.clone(),
    }
}
