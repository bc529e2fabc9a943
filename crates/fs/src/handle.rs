//! An open file's write buffer: runs of bytes by offset, merged when they
//! touch, handed out whole when the file is flushed.

use std::collections::BTreeMap;

/// A write this large announces a streaming writer.
const BIG_WRITE: usize = 64 * 1024;

/// One open file.
pub struct Handle {
    /// The file.
    pub ino: u64,
    /// Opened with O_APPEND: every write goes to the end.
    pub append: bool,
    runs: BTreeMap<u64, Vec<u8>>,
    buffered: usize,
    limit: usize,
    /// The previous full buffer, uploading in the background (its slices
    /// are committed before anything written after it).
    pub uploading: Option<tokio::task::JoinHandle<crate::Result<Vec<cairn_proto::meta::Slice>>>>,
}

impl Handle {
    /// A handle that writes out once `limit` bytes are buffered.
    pub fn new(ino: u64, append: bool, limit: usize) -> Self {
        Self { ino, append, runs: BTreeMap::new(), buffered: 0, limit: limit.max(64 * 1024), uploading: None }
    }

    /// Buffers a write; a later write wins where they overlap.
    pub fn add(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        // Extend the run that ends exactly here (the common sequential case).
        if let Some((&start, run)) = self.runs.range_mut(..=offset).next_back() {
            let end = start + run.len() as u64;
            if offset >= start && offset <= end {
                let at = (offset - start) as usize;
                let overlap = (run.len() - at).min(data.len());
                run[at..at + overlap].copy_from_slice(&data[..overlap]);
                if run.capacity() - run.len() < data.len() - overlap && data.len() >= BIG_WRITE {
                    // A streaming writer: room for the whole buffer at once,
                    // rather than a chain of doublings that copy it again and again.
                    run.reserve(self.limit.saturating_sub(run.len()).max(data.len() - overlap));
                }
                run.extend_from_slice(&data[overlap..]);
                self.buffered += data.len() - overlap;
                self.merge_from(start);
                return;
            }
        }
        let mut run = Vec::with_capacity(if data.len() >= BIG_WRITE { self.limit.max(data.len()) } else { data.len() });
        run.extend_from_slice(data);
        self.runs.insert(offset, run);
        self.buffered += data.len();
        self.merge_from(offset);
    }

    /// Folds runs that the run at `start` now reaches into it.
    fn merge_from(&mut self, start: u64) {
        loop {
            let end = match self.runs.get(&start) {
                Some(r) => start + r.len() as u64,
                None => return,
            };
            let Some((&next, _)) = self.runs.range(start + 1..=end).next() else { return };
            let Some(later) = self.runs.remove(&next) else { return };
            self.buffered -= later.len();
            let Some(run) = self.runs.get_mut(&start) else { return };
            // The run at `start` is newer where they overlap.
            let keep_from = (end - next) as usize;
            if keep_from < later.len() {
                run.extend_from_slice(&later[keep_from..]);
                self.buffered += later.len() - keep_from;
            }
        }
    }

    /// Whether the buffer should be written out now.
    pub fn full(&self) -> bool {
        self.buffered >= self.limit
    }

    /// Whether buffering `len` more bytes would make the buffer full.
    pub fn would_fill(&self, len: usize) -> bool {
        self.buffered + len >= self.limit
    }

    /// End of the buffered data (for O_APPEND before a flush).
    pub fn buffered_end(&self) -> u64 {
        self.runs.iter().next_back().map(|(s, r)| s + r.len() as u64).unwrap_or(0)
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Copies of the buffered bytes that fall in `[start, end)`, by offset.
    pub fn runs_in(&self, start: u64, end: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        // The run that starts before `start` may reach into the range.
        let first = self.runs.range(..=start).next_back().map(|(s, _)| *s).unwrap_or(start);
        for (&s, run) in self.runs.range(first..end) {
            let (from, to) = (s.max(start), (s + run.len() as u64).min(end));
            if from < to {
                out.push((from, run[(from - s) as usize..(to - s) as usize].to_vec()));
            }
        }
        out
    }

    /// Takes every run, in offset order.
    pub fn take(&mut self) -> Vec<(u64, Vec<u8>)> {
        self.buffered = 0;
        std::mem::take(&mut self.runs).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_writes_make_one_run_and_overwrites_win() {
        let mut h = Handle::new(1, false, 1 << 20);
        h.add(0, b"hello");
        h.add(5, b" world");
        h.add(0, b"J");
        h.add(20, b"x");
        assert_eq!(h.take(), vec![(0, b"Jello world".to_vec()), (20, b"x".to_vec())]);
    }

    #[test]
    fn runs_in_a_range_are_clipped_to_it() {
        let mut h = Handle::new(1, false, 1 << 20);
        h.add(0, b"abcdef");
        h.add(10, b"XYZ");
        assert_eq!(h.runs_in(2, 11), vec![(2, b"cdef".to_vec()), (10, b"X".to_vec())]);
        assert_eq!(h.runs_in(6, 10), vec![]);
        assert_eq!(h.runs_in(11, 100), vec![(11, b"YZ".to_vec())]);
    }

    #[test]
    fn a_write_that_bridges_two_runs_joins_them() {
        let mut h = Handle::new(1, false, 1 << 20);
        h.add(0, b"aaaa");
        h.add(8, b"cccc");
        h.add(2, b"BBBBBBB");
        assert_eq!(h.take(), vec![(0, b"aaBBBBBBBccc".to_vec())]);
    }
}
