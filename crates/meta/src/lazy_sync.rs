//! Syncing the redo log's records that were appended without a sync (see
//! [`crate::engine::Engine::write_lazily`]): a thread puts them on disk
//! within [`LAZY_SYNC_WITHIN`] of the first of them, unless a synced
//! record, an explicit [`LazySync::sync_now`] or a durable commit did
//! first.
//!
//! Why a delay rather than a sync per record: a namespace change (mkdir,
//! create, rename, unlink) acknowledged after its own `fdatasync` waits a
//! device flush (110–200 µs on the project's test machine) that a local
//! file system does not make it wait either; ext4 puts such changes on
//! disk at its next journal commit (5 s) or at `fsync`. One sync every few
//! milliseconds covers every change made in them.

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{MetaError, Result};

/// Longest a record appended without a sync waits for one.
pub const LAZY_SYNC_WITHIN: Duration = Duration::from_millis(5);

/// The log's unsynced records and the thread that syncs them.
pub(crate) struct LazySync {
    file: File,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Records appended so far (a count; only its growth matters).
    written: u64,
    /// Of those, the ones known on disk.
    synced: u64,
    /// When the oldest record not known on disk was appended.
    oldest_unsynced: Option<Instant>,
    /// A sync failed: records since the last good one may never reach the
    /// disk, and only a durable commit of the database covers them again.
    failed: bool,
    stop: bool,
    /// The thread waits with no deadline: the next unsynced record must
    /// wake it. While it waits for a deadline it needs no wake-up (it
    /// looks again when the deadline passes), and a wake-up per record
    /// cost a cross-core futex wake per create on a small machine.
    idle: bool,
    /// Syncs the thread made after the delay (for tests).
    delayed_syncs: u64,
}

impl LazySync {
    /// Starts the syncing thread for the log open as `file`.
    pub(crate) fn start(file: File) -> Result<Arc<Self>> {
        let me = Arc::new(Self { file, state: Mutex::default(), wake: Condvar::new() });
        let thread = me.clone();
        std::thread::Builder::new()
            .name("meta-log-sync".into())
            .spawn(move || thread.run())
            .map_err(|e| MetaError::Engine(format!("redo log: cannot start its sync thread: {e}")))?;
        Ok(me)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A record was appended without a sync.
    pub(crate) fn appended_unsynced(&self) {
        let mut st = self.lock();
        st.written += 1;
        if st.oldest_unsynced.is_none() {
            st.oldest_unsynced = Some(Instant::now());
            if st.idle {
                st.idle = false;
                self.wake.notify_one();
            }
        }
    }

    /// A record was appended and synced, or the database committed
    /// durably: everything appended so far is on disk.
    pub(crate) fn all_synced(&self) {
        let mut st = self.lock();
        st.written += 1;
        st.synced = st.written;
        st.oldest_unsynced = None;
        st.failed = false;
    }

    /// Whether a sync failed since the last durable commit (the caller
    /// then commits the database durably, which covers what it lost).
    pub(crate) fn failed(&self) -> bool {
        self.lock().failed
    }

    /// Syncs now, if anything appended is not known on disk.
    pub(crate) fn sync_now(&self) -> Result<()> {
        let target = {
            let st = self.lock();
            if st.failed {
                return Err(MetaError::Engine(
                    "redo log: an earlier sync failed; changes since are on disk only after the next commit".into(),
                ));
            }
            if st.synced >= st.written {
                return Ok(());
            }
            st.written
        };
        let result = self.file.sync_data();
        self.synced_up_to(target, &result);
        result.map_err(|e| MetaError::Engine(format!("redo log: sync: {e}")))
    }

    fn synced_up_to(&self, target: u64, result: &std::io::Result<()>) {
        let mut st = self.lock();
        match result {
            Ok(()) => {
                st.synced = st.synced.max(target);
                // Records appended during the sync wait their own turn,
                // counted from now (at most twice the delay).
                st.oldest_unsynced = (st.synced < st.written).then(Instant::now);
            }
            Err(e) => {
                tracing::error!(error = %e, "meta engine: syncing the redo log failed; the next commit is durable");
                st.failed = true;
                st.oldest_unsynced = None;
            }
        }
    }

    fn run(&self) {
        let mut st = self.lock();
        loop {
            if st.stop {
                return;
            }
            let Some(oldest) = st.oldest_unsynced else {
                st.idle = true;
                st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            let due = oldest + LAZY_SYNC_WITHIN;
            let now = Instant::now();
            if now < due {
                st = self.wake.wait_timeout(st, due - now).unwrap_or_else(|p| p.into_inner()).0;
                continue;
            }
            let target = st.written;
            drop(st);
            let result = self.file.sync_data();
            self.synced_up_to(target, &result);
            st = self.lock();
            st.delayed_syncs += 1;
        }
    }

    /// Whether records appended are not known on disk yet.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> bool {
        let st = self.lock();
        st.synced < st.written
    }

    /// Syncs the thread made on its own.
    #[cfg(test)]
    pub(crate) fn delayed_syncs(&self) -> u64 {
        self.lock().delayed_syncs
    }

    /// Syncs what is left and ends the thread.
    pub(crate) fn stop(&self) {
        if let Err(e) = self.sync_now() {
            tracing::warn!(error = %e, "meta engine: last sync of the redo log failed");
        }
        let mut st = self.lock();
        st.stop = true;
        st.idle = false;
        self.wake.notify_one();
    }
}
