//! The blob collector beside the meta service: blobs no file refers to
//! any more (overwritten, truncated away, deleted files and volumes) are
//! deleted from their groups once a grace period has passed, so that a
//! reader still holding the old slices can finish.

use std::time::Duration;

use cairn_client::{Client, ClientConfig, MetaClient};
use cairn_proto::meta::{MetaRequest, MetaResponse};
use cairn_proto::{ClusterSecret, ErrorCode, FileId};
use tracing::{debug, info, warn};

/// How long an unreferenced blob is kept.
const GRACE: Duration = Duration::from_secs(600);
/// How often the queue is looked at.
const EVERY: Duration = Duration::from_secs(30);

/// Runs forever (the daemon's runtime ends it).
pub async fn run(meta: String, trackers: Vec<String>, secret: ClusterSecret) {
    let m = MetaClient::new(meta, secret.clone());
    let c = Client::new(ClientConfig::new(trackers, secret));
    loop {
        tokio::time::sleep(EVERY).await;
        if let Err(e) = round(&m, &c).await {
            debug!(error = %e, "collector round failed; trying later");
        }
    }
}

async fn round(m: &MetaClient, c: &Client) -> Result<(), cairn_client::Error> {
    let before = std::time::SystemTime::now()
        .checked_sub(GRACE)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let MetaResponse::Names(names) = m.call(MetaRequest::Garbage { before, limit: 1000 }).await? else {
        return Ok(());
    };
    let mut done = Vec::new();
    for name in names {
        let blob = String::from_utf8_lossy(&name).into_owned();
        let Ok(id) = FileId::parse(&blob) else {
            done.push(blob);
            continue;
        };
        match c.delete(&id).await {
            Ok(()) => done.push(blob),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => done.push(blob),
            Err(e) => warn!(blob = %blob, error = %e, "cannot delete an unreferenced blob yet"),
        }
    }
    if !done.is_empty() {
        info!(count = done.len(), "unreferenced blobs deleted");
        m.call(MetaRequest::Collected { blobs: done }).await?;
    }
    Ok(())
}
