//! A directory's names in pages, by name: a prefix, a name to start
//! after, and a page size, as S3's `ListObjectsV2` and WebDAV's
//! `PROPFIND` page through a directory. The meta service keeps entries in
//! byte order of their names and answers pages by name, so a listing of
//! any size costs memory for one page, and names added or removed between
//! pages do not shift the others.

use cairn_proto::meta::{Attr, Kind};
use cairn_proto::Errno;

use super::content::UPLOAD_PREFIX;
use super::{PathFs, VolPath};
use crate::permissions::{check, Caller, EXEC, READ};
use crate::{FsError, Result};

/// Most entries asked of the meta service at once, and most in a page.
pub const LIST_PAGE_MAX: usize = 1000;

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its name in the directory.
    pub name: Vec<u8>,
    /// Its attributes (a symlink's own).
    pub attr: Attr,
}

/// A page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Entries, in byte order of their names.
    pub entries: Vec<Listed>,
    /// Where the next page starts (after this name), when more may follow;
    /// `None` when the listing is complete.
    pub next: Option<Vec<u8>>,
}

impl PathFs {
    /// Up to `limit` (at most [`LIST_PAGE_MAX`]) entries of directory
    /// `dir` whose names start with `prefix` and come after `start_after`,
    /// in byte order. `who` needs read and search permission on the
    /// directory. Uploads in progress (hidden names) are not listed.
    pub async fn list(
        &self,
        who: &Caller,
        dir: &VolPath,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<ListPage> {
        if prefix.contains(&b'/') {
            return Err(FsError::new(Errno::EINVAL, "a listing's prefix is one name's beginning"));
        }
        let limit = limit.clamp(1, LIST_PAGE_MAX);
        let d = self.stat(who, dir).await?;
        if d.kind != Kind::Dir {
            return Err(FsError::new(Errno::ENOTDIR, "not a directory"));
        }
        check(who, &d, READ | EXEC, "cannot list the directory")?;
        let mut entries = Vec::new();
        let mut after = start_after.map(<[u8]>::to_vec);
        // Entries come after a name, never at one: start just after the
        // prefix, and take the prefix itself (a name too) by a lookup.
        if !prefix.is_empty() && after.as_deref().is_none_or(|a| a < prefix) {
            match self.fs.lookup(d.ino, prefix).await {
                Ok(attr) => entries.push(Listed { name: prefix.to_vec(), attr }),
                Err(e) if matches!(e.errno, Errno::ENOENT | Errno::ENAMETOOLONG) => {}
                Err(e) => return Err(e),
            }
            after = Some(prefix.to_vec());
        }
        loop {
            if entries.len() == limit {
                let next = entries.last().map(|e| e.name.clone());
                return Ok(ListPage { entries, next });
            }
            let want = (limit - entries.len()) as u32;
            let page = self.fs.readdir_page(d.ino, after.clone(), want).await?;
            let full = page.len() == want as usize;
            for (name, attr) in page {
                if !name.starts_with(prefix) {
                    // Names sort by bytes: past the prefix's names, none follow.
                    return Ok(ListPage { entries, next: None });
                }
                after = Some(name.clone());
                if !name.starts_with(UPLOAD_PREFIX) {
                    entries.push(Listed { name, attr });
                }
            }
            if !full {
                return Ok(ListPage { entries, next: None });
            }
        }
    }
}
