//! A file's slices flattened into the extents that show: what each byte
//! reads from. Built once (n log n), a range is then looked up instead of
//! scanning every slice for every piece. A file written at random holds a
//! slice per write until the compactor merges them (150,000 after ten
//! seconds of fio): the scan was quadratic in that, and planning one merge
//! of such a file kept a core busy for seconds (`bench/profile.sh
//! randread4`: 28% of the machine in it while fio read).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::meta::{Piece, Slice};

/// One stretch of a file read from one blob.
#[derive(Debug, Clone)]
struct Extent {
    end: u64,
    blob: Arc<str>,
    blob_offset: u64,
}

/// The visible extents of a file, by where they start; holes are the gaps.
#[derive(Debug, Default)]
pub struct Extents {
    by_start: BTreeMap<u64, Extent>,
}

impl Extents {
    /// Lays `slices` (oldest first) over each other: later ones win.
    pub fn build(slices: &[Slice]) -> Self {
        let mut x = Extents::default();
        let mut last: Option<Arc<str>> = None;
        for s in slices {
            // Slices of one write-out share their blob: share its name.
            let blob = match &last {
                Some(b) if **b == *s.blob => b.clone(),
                _ => Arc::from(s.blob.as_str()),
            };
            last = Some(blob.clone());
            x.lay(s.offset, s.offset.saturating_add(s.len), blob, s.blob_offset);
        }
        x
    }

    fn lay(&mut self, start: u64, end: u64, blob: Arc<str>, blob_offset: u64) {
        if start >= end {
            return;
        }
        // An extent starting before `start` and reaching into it keeps its
        // head, and its tail if it reaches past `end`.
        if let Some((&k, e)) = self.by_start.range_mut(..start).next_back() {
            if e.end > start {
                let old = e.clone();
                e.end = start;
                if old.end > end {
                    let tail = Extent { end: old.end, blob: old.blob, blob_offset: old.blob_offset + (end - k) };
                    self.by_start.insert(end, tail);
                }
            }
        }
        // Extents starting inside go, but for a tail past `end`.
        let inside: Vec<u64> = self.by_start.range(start..end).map(|(&k, _)| k).collect();
        for k in inside {
            if let Some(old) = self.by_start.remove(&k) {
                if old.end > end {
                    let tail = Extent { end: old.end, blob: old.blob, blob_offset: old.blob_offset + (end - k) };
                    self.by_start.insert(end, tail);
                }
            }
        }
        self.by_start.insert(start, Extent { end, blob, blob_offset });
    }

    /// The pieces that make `[offset, offset + len)` of a file of `size`
    /// bytes (see [`crate::meta::resolve`]), in log time.
    pub fn resolve(&self, size: u64, offset: u64, len: u64) -> Vec<Piece> {
        let end = offset.saturating_add(len).min(size);
        let mut out = Vec::new();
        let mut pos = offset;
        if pos >= end {
            return out;
        }
        let first = match self.by_start.range(..=pos).next_back() {
            Some((&k, e)) if e.end > pos => k,
            _ => pos,
        };
        for (&k, e) in self.by_start.range(first..) {
            if k >= end {
                break;
            }
            if k > pos {
                out.push(Piece::Hole { len: k - pos });
                pos = k;
            }
            let stop = e.end.min(end);
            if stop > pos {
                out.push(Piece::Data {
                    blob: e.blob.to_string(),
                    blob_offset: e.blob_offset + (pos - k),
                    len: stop - pos,
                });
                pos = stop;
            }
        }
        if pos < end {
            out.push(Piece::Hole { len: end - pos });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule itself, slice by slice (the reference the extents are
    /// checked against): the newest slice covering a byte wins.
    fn resolve(slices: &[Slice], size: u64, offset: u64, len: u64) -> Vec<Piece> {
        let end = offset.saturating_add(len).min(size);
        let mut out = Vec::new();
        let mut pos = offset;
        while pos < end {
            let newest = slices.iter().rposition(|s| s.offset <= pos && pos < s.offset.saturating_add(s.len));
            // A newer slice starting inside the run cuts it.
            let newer = newest.map_or(slices, |i| &slices[i + 1..]);
            let mut stop = newer.iter().map(|s| s.offset).filter(|&o| o > pos && o < end).min().unwrap_or(end);
            match newest.map(|i| &slices[i]) {
                Some(s) => {
                    stop = stop.min(s.offset + s.len);
                    out.push(Piece::Data {
                        blob: s.blob.clone(),
                        blob_offset: s.blob_offset + (pos - s.offset),
                        len: stop - pos,
                    });
                }
                None => out.push(Piece::Hole { len: stop - pos }),
            }
            pos = stop;
        }
        out
    }

    /// What each byte of `[0, size)` reads from, by the pieces.
    fn bytes(pieces: &[Piece]) -> Vec<Option<(String, u64)>> {
        let mut out = Vec::new();
        for p in pieces {
            match p {
                Piece::Hole { len } => out.extend((0..*len).map(|_| None)),
                Piece::Data { blob, blob_offset, len } => {
                    out.extend((0..*len).map(|i| Some((blob.clone(), blob_offset + i))))
                }
            }
        }
        out
    }

    #[test]
    fn extents_read_as_the_slices_do() {
        // A small generator: the same runs every time.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..200 {
            let count = 1 + next(40);
            let slices: Vec<Slice> = (0..count)
                .map(|i| Slice {
                    offset: next(300),
                    len: next(80),
                    blob: format!("g1/M00/00/00/b{}", (round + i) % 5),
                    blob_offset: next(1000),
                })
                .collect();
            let size = next(400);
            let extents = Extents::build(&slices);
            for _ in 0..20 {
                let (offset, len) = (next(420), next(200));
                let want = resolve(&slices, size, offset, len);
                let got = extents.resolve(size, offset, len);
                assert_eq!(bytes(&got), bytes(&want), "round {round}: {slices:?} at {offset}+{len} of {size}");
            }
        }
    }
}
