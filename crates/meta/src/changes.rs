//! The change feed: what each namespace change made stale, kept in memory
//! for the mounts that follow it (they drop the kernel's cached entries and
//! attributes of what another mount changed, so they can cache for long).
//!
//! The feed is not durable: a restarted service starts a new epoch, and a
//! mount that finds its position in an old epoch (or fallen out of the
//! window kept) is told it lost changes; its cache is then bounded by the
//! kernel's timeouts alone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_proto::meta::Changed;
use tokio::sync::Notify;

/// Changes kept for mounts that fall behind (about 100 bytes each).
const KEEP: usize = 100_000;
/// Most changes in one answer.
const MAX_ANSWER: usize = 5_000;
/// Every waiter is woken at least once per this many changes, whoever made
/// them, so its position moves past its own changes before they leave the
/// window kept (it would otherwise be told it lost changes).
const WAKE_ALL_EVERY: u64 = (KEEP / 4) as u64;

/// One recorded change.
struct Entry {
    seq: u64,
    session: u64,
    vol: u32,
    what: Changed,
}

/// The feed of one meta service.
pub struct ChangeFeed {
    epoch: u64,
    log: Mutex<Log>,
    waiters: Mutex<Waiters>,
}

/// Mounts waiting for changes, each woken only by a change it would be
/// told of: a mount's own changes (nearly all of them, when it works
/// alone) wake nothing, where waking its wait each time cost the service
/// a thread wake-up per change for an answer of nothing.
#[derive(Default)]
struct Waiters {
    next_id: u64,
    by_id: HashMap<u64, Waiter>,
}

struct Waiter {
    vol: u32,
    session: u64,
    wake: Arc<Notify>,
}

struct Log {
    /// Position of the next change.
    next: u64,
    entries: VecDeque<Entry>,
}

/// An answer to [`MetaRequest::Changes`].
#[derive(Debug, PartialEq, Eq)]
pub struct Since {
    /// The feed's epoch.
    pub epoch: u64,
    /// Where to ask from next.
    pub next: u64,
    /// Changes were missed.
    pub lost: bool,
    /// What changed (others' changes only).
    pub changes: Vec<Changed>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl ChangeFeed {
    /// An empty feed with a fresh epoch.
    pub fn new() -> Self {
        Self {
            epoch: rand::random::<u64>() | 1,
            log: Mutex::new(Log { next: 1, entries: VecDeque::new() }),
            waiters: Mutex::default(),
        }
    }

    /// Records what a change by `session` to volume `vol` made stale
    /// (see `MetaRequest::touched`), once it succeeded.
    pub fn record(&self, session: u64, vol: u32, touched: Vec<Changed>) {
        if touched.is_empty() {
            return;
        }
        let wake_all = {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            let first = log.next;
            for what in touched {
                let seq = log.next;
                log.next += 1;
                log.entries.push_back(Entry { seq, session, vol, what });
            }
            while log.entries.len() > KEEP {
                log.entries.pop_front();
            }
            first / WAKE_ALL_EVERY != log.next / WAKE_ALL_EVERY
        };
        let waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        for w in waiters.by_id.values() {
            if wake_all || (w.vol == vol && w.session != session) {
                // A wake-up before the waiter sleeps is kept for it.
                w.wake.notify_one();
            }
        }
    }

    /// Registers a wait for changes `vol`/`session` would be told of; the
    /// guard ends it.
    fn register(&self, vol: u32, session: u64) -> (Arc<Notify>, WaitGuard<'_>) {
        let wake = Arc::new(Notify::new());
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        let id = waiters.next_id;
        waiters.next_id += 1;
        waiters.by_id.insert(id, Waiter { vol, session, wake: wake.clone() });
        (wake, WaitGuard { feed: self, id })
    }

    /// Changes to `vol` by sessions other than `session` after `after`, in
    /// `epoch`; waits up to `wait` for one when there are none.
    pub async fn since(&self, vol: u32, session: u64, epoch: u64, mut after: Option<u64>, wait: Duration) -> Since {
        let deadline = tokio::time::Instant::now() + wait;
        // Registered before looking, so a change recorded in between still
        // wakes this wait.
        let (wake, _registered) = self.register(vol, session);
        loop {
            let found = self.look(vol, session, epoch, after);
            if after.is_none() || found.lost || !found.changes.is_empty() {
                return found;
            }
            // Only the asker's own changes (or other volumes') arrived: the
            // next look starts past them. Looking from the asked position
            // again scanned every change since it, once per change, while a
            // mount alone wrote (a cost growing with each file created).
            after = Some(found.next);
            if tokio::time::timeout_at(deadline, wake.notified()).await.is_err() {
                return self.look(vol, session, epoch, after);
            }
        }
    }

    fn look(&self, vol: u32, session: u64, epoch: u64, after: Option<u64>) -> Since {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let Some(after) = after else {
            return Since { epoch: self.epoch, next: log.next - 1, lost: false, changes: Vec::new() };
        };
        let oldest = log.entries.front().map_or(log.next, |e| e.seq);
        if epoch != self.epoch || after + 1 < oldest || after >= log.next {
            return Since { epoch: self.epoch, next: log.next - 1, lost: true, changes: Vec::new() };
        }
        let start = (after + 1 - oldest) as usize;
        let mut next = after;
        let mut changes = Vec::new();
        for e in log.entries.range(start..) {
            if changes.len() == MAX_ANSWER {
                break;
            }
            next = e.seq;
            if e.vol == vol && e.session != session {
                changes.push(e.what.clone());
            }
        }
        Since { epoch: self.epoch, next, lost: false, changes }
    }
}

/// Ends a registered wait when dropped.
struct WaitGuard<'a> {
    feed: &'a ChangeFeed,
    id: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.feed.waiters.lock().unwrap_or_else(|p| p.into_inner()).by_id.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::meta::MetaRequest;

    fn record(feed: &ChangeFeed, session: u64, req: MetaRequest) {
        let (vol, what) = req.touched();
        feed.record(session, vol, what);
    }

    fn unlink(vol: u32, parent: u64, name: &[u8]) -> MetaRequest {
        MetaRequest::Unlink { vol, parent, name: name.to_vec() }
    }

    /// Session 7 of volume 1 waiting (up to `wait`) for changes after now:
    /// where it started, and its wait.
    async fn waiting_mount(
        feed: &std::sync::Arc<ChangeFeed>,
        wait: Duration,
    ) -> (Since, tokio::task::JoinHandle<Since>) {
        let at = feed.since(1, 7, 0, None, Duration::ZERO).await;
        let (f, (epoch, next)) = (feed.clone(), (at.epoch, at.next));
        (at, tokio::spawn(async move { f.since(1, 7, epoch, Some(next), wait).await }))
    }

    #[tokio::test]
    async fn others_changes_are_reported_in_order_and_own_are_skipped() {
        let feed = ChangeFeed::new();
        let start = feed.since(1, 7, 0, None, Duration::ZERO).await;
        assert!(!start.lost && start.changes.is_empty());
        record(&feed, 8, unlink(1, 1, b"a"));
        record(&feed, 7, unlink(1, 1, b"mine"));
        record(&feed, 8, unlink(2, 1, b"other volume"));
        record(&feed, 8, MetaRequest::SetAttr { vol: 1, ino: 5, set: Default::default() });
        let got = feed.since(1, 7, start.epoch, Some(start.next), Duration::ZERO).await;
        assert!(!got.lost);
        assert_eq!(
            got.changes,
            vec![
                Changed::Unlinked { parent: 1, name: b"a".to_vec() },
                Changed::Inode { ino: 1 },
                Changed::Inode { ino: 5 }
            ]
        );
        let again = feed.since(1, 7, got.epoch, Some(got.next), Duration::from_millis(20)).await;
        assert!(!again.lost && again.changes.is_empty() && again.next == got.next);
    }

    #[tokio::test]
    async fn a_waiting_mount_wakes_on_a_change_and_an_old_epoch_is_lost() {
        let feed = std::sync::Arc::new(ChangeFeed::new());
        let (at, waiter) = waiting_mount(&feed, Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        record(&feed, 9, unlink(1, 3, b"x"));
        let got = tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert_eq!(got.changes[0], Changed::Unlinked { parent: 3, name: b"x".to_vec() });
        let stale = feed.since(1, 7, at.epoch ^ 2, Some(at.next), Duration::ZERO).await;
        assert!(stale.lost);
    }

    #[tokio::test]
    async fn a_waiting_mount_sleeps_through_its_own_changes() {
        let feed = std::sync::Arc::new(ChangeFeed::new());
        let (_, waiter) = waiting_mount(&feed, Duration::from_secs(10)).await;
        for i in 0..100u32 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            record(&feed, 7, unlink(1, 1, format!("mine{i}").as_bytes()));
        }
        assert!(!waiter.is_finished(), "own changes answered a wait");
        record(&feed, 9, unlink(1, 3, b"theirs"));
        let got = tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert_eq!(
            got.changes,
            vec![Changed::Unlinked { parent: 3, name: b"theirs".to_vec() }, Changed::Inode { ino: 3 }]
        );
        let after = feed.since(1, 7, got.epoch, Some(got.next), Duration::ZERO).await;
        assert!(!after.lost && after.changes.is_empty() && after.next == got.next);
    }

    #[tokio::test]
    async fn a_mount_asleep_through_more_of_its_own_changes_than_are_kept_loses_nothing() {
        let feed = std::sync::Arc::new(ChangeFeed::new());
        let (_, waiter) = waiting_mount(&feed, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        for i in 0..KEEP + 1000 {
            record(&feed, 7, unlink(1, 1, format!("mine{i}").as_bytes()));
            if i % 10_000 == 0 {
                // Let the waiter run, as a real service's worker would.
                tokio::task::yield_now().await;
            }
        }
        record(&feed, 9, unlink(1, 3, b"theirs"));
        let got = tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
        assert!(!got.lost, "its own changes left the window while it slept");
        assert_eq!(
            got.changes,
            vec![Changed::Unlinked { parent: 3, name: b"theirs".to_vec() }, Changed::Inode { ino: 3 }]
        );
    }
}
