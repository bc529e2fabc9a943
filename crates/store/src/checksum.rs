//! Per-block checksums.
//!
//! Each blob is cut into [`BLOCK_SIZE`] blocks and each block gets a CRC32
//! (IEEE). The whole-file CRC32 that FastDFS reports is derived from the
//! block CRCs with `crc32fast`'s combine, so appends and in-place changes
//! only re-read the blocks they touch.

/// Size of a checksummed block. 64 KiB keeps records small (64 bytes of
/// checksums per MiB) while a ranged read of a few bytes verifies only one
/// block.
pub const BLOCK_SIZE: u64 = 64 * 1024;

/// CRC32 of a byte slice.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Whole-content CRC32 from the block CRCs of content of `size` bytes.
pub fn combine(blocks: &[u32], size: u64) -> u32 {
    let mut whole = crc32fast::Hasher::new();
    for (i, &crc) in blocks.iter().enumerate() {
        let start = i as u64 * BLOCK_SIZE;
        let len = BLOCK_SIZE.min(size.saturating_sub(start));
        whole.combine(&crc32fast::Hasher::new_with_initial_len(crc, len));
    }
    whole.finalize()
}

/// Number of blocks of content of `size` bytes.
pub fn block_count(size: u64) -> usize {
    size.div_ceil(BLOCK_SIZE) as usize
}

/// Checksums content as it streams in. Only block CRCs are computed from
/// the bytes; the whole-content CRC is combined from them at the end, so
/// every byte goes through CRC32 once.
#[derive(Debug, Default)]
pub struct Summer {
    block: crc32fast::Hasher,
    in_block: u64,
    blocks: Vec<u32>,
    size: u64,
}

impl Summer {
    /// Feeds the next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        self.size += data.len() as u64;
        while !data.is_empty() {
            let take = ((BLOCK_SIZE - self.in_block) as usize).min(data.len());
            self.block.update(&data[..take]);
            self.in_block += take as u64;
            data = &data[take..];
            if self.in_block == BLOCK_SIZE {
                let done = std::mem::take(&mut self.block);
                self.blocks.push(done.finalize());
                self.in_block = 0;
            }
        }
    }

    /// Bytes seen.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// (size, whole CRC32, block CRCs).
    pub fn finish(mut self) -> (u64, u32, Vec<u32>) {
        if self.in_block > 0 {
            self.blocks.push(self.block.finalize());
        }
        let whole = combine(&self.blocks, self.size);
        (self.size, whole, self.blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_block_crcs_equal_the_whole_crc() {
        for size in [0usize, 1, 65535, 65536, 65537, 300_000] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            let mut s = Summer::default();
            for piece in data.chunks(10_000) {
                s.update(piece);
            }
            let (n, whole, blocks) = s.finish();
            assert_eq!(n, size as u64);
            assert_eq!(whole, crc32(&data));
            assert_eq!(blocks.len(), block_count(size as u64));
            assert_eq!(combine(&blocks, n), whole);
            for (i, b) in blocks.iter().enumerate() {
                let start = i * BLOCK_SIZE as usize;
                let end = (start + BLOCK_SIZE as usize).min(size);
                assert_eq!(*b, crc32(&data[start..end]));
            }
        }
    }
}
