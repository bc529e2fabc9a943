//! Names and attributes by path: `mkdir -p`, delete, rename, chmod,
//! chown, and user metadata as `user.*` extended attributes.

use cairn_proto::meta::{Attr, Kind, RenameMode, SetAttr};
use cairn_proto::Errno;

use super::{PathFs, Resolved, VolPath};
use crate::permissions::{self, check, check_create, check_delete, new_owner, Caller, EXEC, READ, WRITE};
use crate::{FsError, Result};

/// The namespace of extended attributes the path API reads and writes
/// (user metadata); the others belong to the system.
pub(crate) const USER_XATTR: &[u8] = b"user.";

fn no_entry() -> FsError {
    FsError::new(Errno::ENOENT, "no such file or directory")
}

impl PathFs {
    /// Makes the directory `path` and every missing one above it (`mkdir
    /// -p`), with permission bits `perm`; the directory's attributes.
    /// Existing directories are fine; anything else in the way is
    /// ENOTDIR (EEXIST for the last name).
    pub async fn mkdir_all(&self, who: &Caller, path: &VolPath, perm: u32) -> Result<Attr> {
        let mut at = self.stat(who, &VolPath::root()).await?;
        let names = path.names();
        for (i, name) in names.iter().enumerate() {
            check(who, &at, EXEC, "cannot search a directory on the path")?;
            let existing = match self.fs.lookup(at.ino, name).await {
                Ok(a) => Some(a),
                Err(e) if e.errno == Errno::ENOENT => None,
                Err(e) => return Err(e),
            };
            let existing = match existing {
                // A symlink is followed: it may lead to a directory.
                Some(a) if a.kind == Kind::Symlink => {
                    let so_far = VolPath::parse(names[..=i].join(&b'/')).map_err(|_| no_entry())?;
                    Some(self.stat(who, &so_far).await?)
                }
                other => other,
            };
            at = match existing {
                Some(a) if a.kind == Kind::Dir => a,
                Some(_) if i + 1 == names.len() => return Err(FsError::new(Errno::EEXIST, "not a directory")),
                Some(_) => return Err(FsError::new(Errno::ENOTDIR, "not a directory")),
                None => {
                    check_create(who, &at)?;
                    let (uid, gid, perm) = new_owner(who, &at, perm, true);
                    match self.fs.mkdir(at.ino, name, perm, uid, gid).await {
                        Ok(a) => a,
                        // Made meanwhile by another caller: use it.
                        Err(e) if e.errno == Errno::EEXIST => {
                            let a = self.fs.lookup(at.ino, name).await?;
                            if a.kind != Kind::Dir {
                                return Err(FsError::new(Errno::ENOTDIR, "not a directory"));
                            }
                            a
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
        }
        Ok(at)
    }

    /// Removes `path`: a file, a symlink (not what it leads to) or an
    /// empty directory. `who` needs write and search permission on the
    /// directory, and in a sticky one, to own the entry or the directory.
    pub async fn delete(&self, who: &Caller, path: &VolPath) -> Result<()> {
        let Resolved { dir, name, attr } = self.resolve(who, path).await?;
        let victim = attr.ok_or_else(no_entry)?;
        check_delete(who, &dir, &victim)?;
        if victim.kind == Kind::Dir {
            self.fs.rmdir(dir.ino, &name).await
        } else {
            self.fs.unlink(dir.ino, &name).await
        }
    }

    /// Renames `from` to `to`, replacing what `to` holds if `replace`
    /// (else EEXIST), as `rename(2)` checks it: write and search on both
    /// directories, the sticky rule for the entry moved and the one
    /// replaced, and write permission on a directory moved to another
    /// parent (its `..` changes).
    pub async fn rename(&self, who: &Caller, from: &VolPath, to: &VolPath, replace: bool) -> Result<()> {
        let src = self.resolve(who, from).await?;
        let moved = src.attr.as_ref().ok_or_else(no_entry)?;
        let dst = self.resolve(who, to).await?;
        check_delete(who, &src.dir, moved)?;
        check_create(who, &dst.dir)?;
        if let Some(old) = &dst.attr {
            if !replace {
                return Err(FsError::new(Errno::EEXIST, "the target exists"));
            }
            check_delete(who, &dst.dir, old)?;
        }
        if moved.kind == Kind::Dir && src.dir.ino != dst.dir.ino {
            check(who, moved, WRITE, "cannot move the directory to another parent")?;
        }
        let mode = if replace { RenameMode::Replace } else { RenameMode::NoReplace };
        self.fs.rename(src.dir.ino, &src.name, dst.dir.ino, &dst.name, mode).await
    }

    /// Sets the permission bits of what `path` leads to: only its owner or
    /// root may (EPERM).
    pub async fn chmod(&self, who: &Caller, path: &VolPath, perm: u32) -> Result<Attr> {
        let a = self.stat(who, path).await?;
        let perm = permissions::chmod(who, &a, perm)?;
        self.fs.setattr(a.ino, SetAttr { perm: Some(perm), ..Default::default() }).await
    }

    /// Sets the owner and group (`None`: unchanged) of what `path` leads
    /// to: only root changes the owner; the owner may change the group to
    /// one of its own.
    pub async fn chown(&self, who: &Caller, path: &VolPath, uid: Option<u32>, gid: Option<u32>) -> Result<Attr> {
        let a = self.stat(who, path).await?;
        let perm = permissions::chown(who, &a, uid, gid)?;
        self.fs.setattr(a.ino, SetAttr { perm, uid, gid, ..Default::default() }).await
    }

    /// The user metadata (`user.*` extended attributes) of what `path`
    /// leads to, by name; `who` needs read permission.
    pub async fn metadata(&self, who: &Caller, path: &VolPath) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let a = self.stat(who, path).await?;
        check(who, &a, READ, "cannot read the metadata")?;
        let mut out = Vec::new();
        for name in self.fs.listxattr(a.ino).await? {
            if name.starts_with(USER_XATTR) {
                match self.fs.getxattr(a.ino, &name).await {
                    Ok(v) => out.push((name, v)),
                    // Removed since it was listed.
                    Err(e) if e.errno == Errno::ENODATA => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// Sets (`Some`) or removes (`None`) the user metadata `name` (which
    /// must start with `user.`) of what `path` leads to. As for the
    /// kernel, only files and directories carry it, and `who` needs write
    /// permission.
    pub async fn set_metadata(&self, who: &Caller, path: &VolPath, name: &[u8], value: Option<&[u8]>) -> Result<()> {
        if !name.starts_with(USER_XATTR) || name.len() == USER_XATTR.len() {
            return Err(FsError::new(Errno::EOPNOTSUPP, "user metadata is named user.*"));
        }
        let a = self.stat(who, path).await?;
        if !matches!(a.kind, Kind::File | Kind::Dir) {
            return Err(FsError::new(Errno::EPERM, "only files and directories carry user metadata"));
        }
        check(who, &a, WRITE, "cannot change the metadata")?;
        match value {
            Some(v) => self.fs.setxattr(a.ino, name, v, false, false).await,
            None => self.fs.removexattr(a.ino, name).await,
        }
    }
}
