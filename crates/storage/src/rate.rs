//! A pace for background traffic (catch-up, repair, scrub), so that
//! recovery does not starve clients.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes per second, changeable while running; 0 means unlimited.
#[derive(Debug)]
pub struct Rate {
    mib_per_s: AtomicU64,
    window: Mutex<(Instant, u64)>,
}

impl Rate {
    /// A pace of `mib_per_s` MiB/s.
    pub fn new(mib_per_s: u64) -> Self {
        Self { mib_per_s: AtomicU64::new(mib_per_s), window: Mutex::new((Instant::now(), 0)) }
    }

    /// Changes the pace.
    pub fn set(&self, mib_per_s: u64) {
        self.mib_per_s.store(mib_per_s, Ordering::Relaxed);
    }

    /// Accounts for `bytes` and sleeps as long as needed to keep the pace.
    pub async fn take(&self, bytes: u64) {
        let limit = self.mib_per_s.load(Ordering::Relaxed) << 20;
        if limit == 0 {
            return;
        }
        let wait = {
            let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
            // A fresh window every few seconds, so idle time is not banked.
            if w.0.elapsed() > Duration::from_secs(2) {
                *w = (Instant::now(), 0);
            }
            w.1 += bytes;
            let due = Duration::from_secs_f64(w.1 as f64 / limit as f64);
            due.saturating_sub(w.0.elapsed())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}
