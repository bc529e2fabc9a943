//! The blob collector beside the meta service: blobs no file refers to
//! any more (overwritten, truncated away, deleted files and volumes) are
//! deleted from their groups once a grace period has passed, so that a
//! reader still holding the old slices can finish.

use std::time::Duration;

use cairn_client::{Client, ClientConfig, MetaClient};
use cairn_proto::meta::{MetaRequest, MetaResponse};
use cairn_proto::{ClusterSecret, ErrorCode, FileId};
use futures::StreamExt;
use tracing::{debug, info, warn};

/// How long an unreferenced blob is kept, unless told otherwise.
pub const GRACE_SECS: u64 = 600;
/// How often the queue is looked at (more often when the grace is short).
const EVERY: Duration = Duration::from_secs(30);
/// Blobs asked for at once; a full batch means more are waiting, and the
/// next batch is asked for at once.
const BATCH: u32 = 1000;
/// Deletions on their way at once: each is a round trip to a group, and a
/// removed tree of a million small files must not take hours to free.
const DELETING_AT_ONCE: usize = 16;

/// Runs forever (the daemon's runtime ends it), deleting blobs `grace`
/// after the last file let go of them.
pub async fn run(meta: String, trackers: Vec<String>, secret: ClusterSecret, grace: Duration) {
    let m = MetaClient::new(meta, secret.clone());
    let c = Client::new(ClientConfig::new(trackers, secret));
    let every = EVERY.min(grace.max(Duration::from_secs(1)));
    loop {
        tokio::time::sleep(every).await;
        // One pass over the queue, batch after batch; blobs that cannot be
        // deleted yet (their group is down) are passed over until the next.
        let mut after = None;
        loop {
            match round(&m, &c, grace, after.take()).await {
                Ok(Some(last)) => after = Some(last),
                Ok(None) => break,
                Err(e) => {
                    debug!(error = %e, "collector round failed; trying later");
                    break;
                }
            }
        }
    }
}

/// Deletes one batch of the blobs past their grace whose IDs come after
/// `after`; the last ID of the batch when it was full (more may follow).
async fn round(
    m: &MetaClient,
    c: &Client,
    grace: Duration,
    after: Option<String>,
) -> Result<Option<String>, cairn_client::Error> {
    let before = std::time::SystemTime::now()
        .checked_sub(grace)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let MetaResponse::Names(names) = m.call(MetaRequest::Garbage { before, after, limit: BATCH }).await? else {
        return Ok(None);
    };
    let last = (names.len() >= BATCH as usize).then(|| names.last().map(|n| String::from_utf8_lossy(n).into_owned()));
    let done: Vec<String> = futures::stream::iter(names)
        .map(|name| async move {
            let blob = String::from_utf8_lossy(&name).into_owned();
            let Ok(id) = FileId::parse(&blob) else {
                return Some(blob);
            };
            match c.delete(&id).await {
                Ok(()) => Some(blob),
                Err(e) if e.code() == Some(ErrorCode::NotFound) => Some(blob),
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
    if !done.is_empty() {
        info!(count = done.len(), "unreferenced blobs deleted");
        m.call(MetaRequest::Collected { blobs: done }).await?;
    }
    Ok(last.flatten())
}
