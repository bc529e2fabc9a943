//! Resolving a path: one lookup per name from the root, with search
//! permission checked on every directory passed through and symbolic
//! links followed (absolute targets from the volume's root), as the
//! kernel walks a path.

use std::collections::VecDeque;

use cairn_proto::meta::{Attr, Kind, ROOT};
use cairn_proto::Errno;

use super::{PathFs, VolPath};
use crate::permissions::{check, Caller, EXEC};
use crate::{FsError, Result};

/// Most symbolic links followed in one walk (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// A path's last entry: the directory that holds it, its name, and its
/// attributes if it exists (a symlink is not followed).
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The directory's attributes.
    pub dir: Attr,
    /// The entry's name in it.
    pub name: Vec<u8>,
    /// The entry, or `None` when the name is free.
    pub attr: Option<Attr>,
}

impl PathFs {
    /// Where `path` leads for `who`: its directory (searchable by `who`)
    /// and its entry, if any. The last name is not followed if it is a
    /// symlink (delete, rename and replace act on the link). EINVAL for
    /// the root, which has no directory.
    pub async fn resolve(&self, who: &Caller, path: &VolPath) -> Result<Resolved> {
        let Some((parent, name)) = path.split_last() else {
            return Err(FsError::new(Errno::EINVAL, "the root has no directory"));
        };
        let dir = self.walk(who, parent.iter().cloned().collect()).await?;
        if dir.kind != Kind::Dir {
            return Err(FsError::new(Errno::ENOTDIR, "not a directory"));
        }
        check(who, &dir, EXEC, "cannot search the directory")?;
        let attr = match self.fs.lookup(dir.ino, name).await {
            Ok(a) => Some(a),
            Err(e) if e.errno == Errno::ENOENT => None,
            Err(e) => return Err(e),
        };
        Ok(Resolved { dir, name: name.to_vec(), attr })
    }

    /// The attributes of what `path` leads to, symlinks followed (`stat`).
    pub async fn stat(&self, who: &Caller, path: &VolPath) -> Result<Attr> {
        self.walk(who, path.names().iter().cloned().collect()).await
    }

    /// The attributes of `path`'s last entry itself (`lstat`).
    pub async fn lstat(&self, who: &Caller, path: &VolPath) -> Result<Attr> {
        if path.is_root() {
            return self.fs.getattr(ROOT).await;
        }
        let r = self.resolve(who, path).await?;
        r.attr.ok_or_else(|| FsError::new(Errno::ENOENT, "no such file or directory"))
    }

    /// Walks `names` from the root, following every symlink met.
    pub(super) async fn walk(&self, who: &Caller, mut names: VecDeque<Vec<u8>>) -> Result<Attr> {
        let root = self.fs.getattr(ROOT).await?;
        let mut at = root.clone();
        let mut links = 0;
        while let Some(name) = names.pop_front() {
            if at.kind != Kind::Dir {
                return Err(FsError::new(Errno::ENOTDIR, "not a directory"));
            }
            check(who, &at, EXEC, "cannot search a directory on the path")?;
            let next = match name.as_slice() {
                b"." => continue,
                // Only from a symlink's target; the root is its own parent.
                b".." if at.ino == ROOT => continue,
                _ => self.fs.lookup(at.ino, &name).await?,
            };
            if next.kind != Kind::Symlink {
                at = next;
                continue;
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(FsError::new(Errno::ELOOP, "too many symbolic links"));
            }
            let target = self.fs.readlink(next.ino).await?;
            if target.first() == Some(&b'/') {
                at = root.clone();
            }
            for part in target.split(|b| *b == b'/').filter(|p| !p.is_empty()).rev() {
                names.push_front(part.to_vec());
            }
        }
        Ok(at)
    }
}
