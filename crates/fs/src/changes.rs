//! The change feed: what other clients change in the volume, followed for
//! as long as the file system lives, forgetting what it made stale here.

use std::sync::Arc;

use cairn_proto::meta::{Changed, MetaRequest, MetaResponse};

use crate::Fs;

/// Longest wait of one request for other mounts' changes.
const CHANGES_WAIT_MS: u32 = 10_000;

impl Fs {
    /// Follows the meta service's feed of what other mounts change in this
    /// volume, for as long as the file system lives, handing each batch to
    /// `drop_cached` on a blocking thread (the FUSE layer tells the kernel
    /// to forget those entries and attributes). Lost changes (a restarted
    /// service) are logged: until the kernel's timeouts pass, what it
    /// cached of them may be stale.
    pub fn follow_changes(fs: &Arc<Self>, drop_cached: Arc<dyn Fn(Vec<Changed>) + Send + Sync>) {
        let weak = Arc::downgrade(fs);
        tokio::spawn(async move {
            let (mut epoch, mut after) = (0, None);
            loop {
                let Some(fs) = weak.upgrade() else { return };
                let req = MetaRequest::Changes {
                    vol: fs.vol.id,
                    session: fs.meta.session(),
                    epoch,
                    after,
                    wait_ms: CHANGES_WAIT_MS,
                };
                let answer = fs.meta.call(req).await;
                drop(fs);
                match answer {
                    Ok(MetaResponse::Changes { epoch: e, next, lost, changes }) => {
                        if lost && after.is_some() {
                            tracing::info!("missed changes of other mounts (meta service restarted?): cached entries expire by timeout");
                            if let Some(fs) = weak.upgrade() {
                                fs.complete.forget_all();
                                fs.attrs.forget(&[], true);
                                if let Some(c) = fs.content.get() {
                                    c.lost_changes();
                                }
                                fs.xattrs.forget_all();
                            }
                        }
                        (epoch, after) = (e, Some(next));
                        if changes.is_empty() {
                            continue;
                        }
                        if let Some(fs) = weak.upgrade() {
                            for c in &changes {
                                if let Changed::Entry { parent, .. } | Changed::Unlinked { parent, .. } = c {
                                    fs.complete.unsure(*parent);
                                }
                            }
                            fs.attrs.forget(&changes, false);
                            if let Some(content) = fs.content.get() {
                                content.changed_elsewhere(&mut changes.iter().filter_map(|c| match c {
                                    Changed::Inode { ino } => Some(*ino),
                                    _ => None,
                                }));
                            }
                            for c in &changes {
                                if let Changed::Inode { ino } = c {
                                    fs.xattrs.forget(*ino);
                                }
                            }
                        }
                        let drop_cached = drop_cached.clone();
                        let _ = tokio::task::spawn_blocking(move || drop_cached(changes)).await;
                    }
                    Ok(other) => {
                        tracing::warn!(answer = ?other, "the meta service does not serve the change feed");
                        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
                }
            }
        });
    }
}
