//! An open directory, served to the kernel a page at a time.

use cairn_fs::{Fs, FsError};
use fuser::{FileAttr, FileType};

use crate::convert::{file_attr, file_type};

/// An open directory, read a page at a time: a listing of a million
/// entries never sits in memory whole. Pages are asked of the meta service
/// by name (after the last name served), so entries added or removed while
/// a program lists the directory (`rm -rf` does) do not shift the others.
pub(crate) struct DirCursor {
    pub(crate) ino: u64,
    pub(crate) parent: u64,
    /// Entries served so far before `page` (`.` and `..` count).
    pub(crate) start: u64,
    /// The current page (attributes are none for `.` and `..`, whose
    /// attributes the kernel does not take from a listing).
    pub(crate) page: Vec<Listed>,
    /// The directory has no entries after this page.
    pub(crate) done: bool,
}

impl DirCursor {
    /// Positions the cursor so that entry number `offset` is in `page`
    /// (or past the end); rewinds when a program seeks backwards.
    async fn seek(&mut self, fs: &Fs, offset: u64) -> Result<(), FsError> {
        if offset < self.start {
            self.start = 0;
            self.page.clear();
            self.done = false;
        }
        if self.start == 0 && self.page.is_empty() && !self.done {
            self.page = vec![
                (b".".to_vec(), self.ino, FileType::Directory, None),
                (b"..".to_vec(), self.parent, FileType::Directory, None),
            ];
        }
        while offset >= self.start + self.page.len() as u64 && !self.done {
            let after = self.page.iter().rev().find(|e| e.0 != b"." && e.0 != b"..").map(|e| e.0.clone());
            // Attributes come with every page: one meta round trip gives
            // `ls -l` and `find | xargs stat` what they would otherwise ask
            // name by name.
            let next = fs.readdir_plus(self.ino, after).await?;
            self.start += self.page.len() as u64;
            self.done = next.is_empty();
            self.page = next.into_iter().map(|(n, a)| (n, a.ino, file_type(a.kind), Some(file_attr(&a)))).collect();
        }
        Ok(())
    }
}

/// One entry of a directory page: name, inode, kind, attributes.
pub(crate) type Listed = (Vec<u8>, u64, FileType, Option<FileAttr>);

impl DirCursor {
    /// Hands entries from number `offset` on to `add` (with the offset of
    /// the entry after each) until it says the kernel's buffer is full or
    /// the directory ends; the buffer may take more than one page.
    pub(crate) async fn serve(
        &mut self,
        fs: &Fs,
        offset: u64,
        mut add: impl FnMut(&Listed, u64) -> bool,
    ) -> Result<(), FsError> {
        let mut at = offset;
        loop {
            self.seek(fs, at).await?;
            let skip = at.saturating_sub(self.start) as usize;
            if skip >= self.page.len() {
                return Ok(()); // the end
            }
            for (i, entry) in self.page.iter().enumerate().skip(skip) {
                let next = self.start + i as u64 + 1;
                if add(entry, next) {
                    return Ok(());
                }
                at = next;
            }
        }
    }
}
