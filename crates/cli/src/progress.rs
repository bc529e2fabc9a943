//! Progress bars for long transfers, drawn on standard error only when it
//! is a terminal (a script or a log file gets none).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncWrite;

/// Transfers smaller than this finish before a bar would be seen.
const SMALLEST_WITH_BAR: u64 = 4 << 20;

/// A bar for `total` bytes, or `None` when nobody would see it.
pub fn bar(total: u64, what: &str) -> Option<ProgressBar> {
    if total < SMALLEST_WITH_BAR || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    Some(bar)
}

/// Moves `bar` to what `counter` says every tenth of a second, until the
/// returned guard is dropped.
pub fn follow(bar: ProgressBar, counter: Arc<AtomicU64>) -> Follow {
    let shown = bar.clone();
    let task = tokio::spawn(async move {
        loop {
            shown.set_position(counter.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Follow { bar, task }
}

/// Stops a [`follow`] and clears its bar.
pub struct Follow {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

/// A writer that moves a bar by what goes through it; the bar is cleared
/// when it is dropped.
pub struct Tracked<'a, W> {
    inner: &'a mut W,
    bar: Option<ProgressBar>,
}

impl<'a, W> Tracked<'a, W> {
    /// `inner`, tracked by `bar` if any.
    pub fn new(inner: &'a mut W, bar: Option<ProgressBar>) -> Self {
        Self { inner, bar }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Tracked<'_, W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let r = std::pin::Pin::new(&mut *this.inner).poll_write(cx, buf);
        if let (std::task::Poll::Ready(Ok(n)), Some(bar)) = (&r, &this.bar) {
            bar.inc(*n as u64);
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

impl<W> Drop for Tracked<'_, W> {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
