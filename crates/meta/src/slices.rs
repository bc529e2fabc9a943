//! Which blob ranges make up a range of a file: later slices win where
//! they overlap, and what no slice covers reads as zeros (a hole).

use cairn_proto::meta::Slice;

pub use cairn_proto::meta::{resolve, Piece};

/// A stretch of a file's content that the slice merger rewrites as one blob:
/// contiguous data (no hole inside), from `pieces` in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Where in the file it starts.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
    /// Where its bytes are now (data pieces only).
    pub pieces: Vec<Piece>,
}

/// How the slice merger would rewrite a file whose content is `slices` and
/// whose size is `size`: its data as runs of at most `max_run` bytes,
/// holes left out (they read as zeros without a slice).
pub fn plan_merge(slices: &[Slice], size: u64, max_run: u64) -> Vec<Run> {
    let max_run = max_run.max(1);
    let mut runs: Vec<Run> = Vec::new();
    let mut open: Option<Run> = None;
    let mut pos = 0;
    for piece in resolve(slices, size, 0, size) {
        match piece {
            Piece::Hole { len } => {
                runs.extend(open.take());
                pos += len;
            }
            Piece::Data { blob, mut blob_offset, mut len } => {
                while len > 0 {
                    let run = open.get_or_insert_with(|| Run { offset: pos, len: 0, pieces: Vec::new() });
                    let take = len.min(max_run - run.len);
                    run.pieces.push(Piece::Data { blob: blob.clone(), blob_offset, len: take });
                    run.len += take;
                    (pos, blob_offset, len) = (pos + take, blob_offset + take, len - take);
                    if run.len == max_run {
                        runs.extend(open.take());
                    }
                }
            }
        }
    }
    runs.extend(open);
    runs
}

/// Drops what lies at or beyond `size` (a truncate), trimming the slice
/// that crosses it.
pub fn truncate(slices: &mut Vec<Slice>, size: u64) {
    slices.retain(|s| s.offset < size);
    for s in slices.iter_mut() {
        if s.offset + s.len > size {
            s.len = size - s.offset;
        }
    }
}

/// Blobs that `slices` no longer show any byte of (fully covered by newer
/// slices or cut off): they can be collected.
pub fn unreferenced(slices: &[Slice], size: u64) -> Vec<String> {
    let used: std::collections::HashSet<String> = resolve(slices, size, 0, size)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Data { blob, .. } => Some(blob),
            Piece::Hole { .. } => None,
        })
        .collect();
    let mut out: Vec<String> = slices.iter().map(|s| s.blob.clone()).filter(|b| !used.contains(b)).collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(offset: u64, len: u64, blob: &str) -> Slice {
        Slice { offset, len, blob: blob.into(), blob_offset: 0 }
    }

    #[test]
    fn newer_slices_win_and_holes_read_as_zeros() {
        let slices = vec![s(0, 100, "a"), s(50, 10, "b"), s(200, 10, "c")];
        let p = resolve(&slices, 210, 0, 1000);
        assert_eq!(
            p,
            vec![
                Piece::Data { blob: "a".into(), blob_offset: 0, len: 50 },
                Piece::Data { blob: "b".into(), blob_offset: 0, len: 10 },
                Piece::Data { blob: "a".into(), blob_offset: 60, len: 40 },
                Piece::Hole { len: 100 },
                Piece::Data { blob: "c".into(), blob_offset: 0, len: 10 },
            ]
        );
        assert_eq!(p.iter().map(Piece::len).sum::<u64>(), 210);
    }

    #[test]
    fn truncate_trims_and_collects() {
        let mut slices = vec![s(0, 100, "a"), s(100, 100, "b"), s(0, 100, "c")];
        assert_eq!(unreferenced(&slices, 200), vec!["a".to_string()]);
        truncate(&mut slices, 50);
        assert_eq!(slices, vec![s(0, 50, "a"), s(0, 50, "c")]);
        assert_eq!(
            resolve(&slices, 80, 0, 80),
            vec![Piece::Data { blob: "c".into(), blob_offset: 0, len: 50 }, Piece::Hole { len: 30 }]
        );
    }

    #[test]
    fn a_merge_plan_covers_the_data_in_bounded_runs_and_skips_holes() {
        let sl = |offset, len, blob: &str| Slice { offset, len, blob: blob.into(), blob_offset: 0 };
        // 0..10 from a, 5..8 overwritten by b, hole 10..20, 20..30 from c.
        let slices = vec![sl(0, 10, "a"), sl(5, 3, "b"), sl(20, 10, "c")];
        let runs = plan_merge(&slices, 30, 6);
        let spans: Vec<(u64, u64)> = runs.iter().map(|r| (r.offset, r.len)).collect();
        assert_eq!(spans, vec![(0, 6), (6, 4), (20, 6), (26, 4)]);
        let d = |blob: &str, blob_offset, len| Piece::Data { blob: blob.into(), blob_offset, len };
        assert_eq!(runs[0].pieces, vec![d("a", 0, 5), d("b", 0, 1)]);
        assert_eq!(runs[1].pieces, vec![d("b", 1, 2), d("a", 8, 2)]);
        assert_eq!(runs[3].pieces, vec![d("c", 6, 4)]);
        // Every byte of data lands in exactly one run.
        assert_eq!(runs.iter().map(|r| r.len).sum::<u64>(), 20);
    }
}
