//! Extended attributes, with the name sets this client knows (see
//! `xattr_names`) answering the kernel's constant questions.

use cairn_proto::meta::{MetaRequest, MetaResponse};
use cairn_proto::Errno;

use crate::{Fs, FsError, Result};

/// Extended attributes of this prefix are never stored (POSIX ACLs).
const POSIX_ACL: &[u8] = b"system.posix_acl_";
/// SELinux labels are not kept either (as NFS without `security_label`):
/// the volume has one label policy for every client, which Cairn does not
/// model.
const SELINUX_LABEL: &[u8] = b"security.selinux";

impl Fs {
    /// Sets an extended attribute. POSIX ACLs are not kept (they would
    /// have to change the mode bits too): refusing them makes tools such
    /// as `cp -a` fall back to chmod. Neither are SELinux labels.
    pub async fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], create: bool, replace: bool) -> Result<()> {
        if Self::xattr_unsupported(name) {
            return Err(FsError::errno(Errno::EOPNOTSUPP));
        }
        self.xattrs.forget(ino);
        let req = MetaRequest::SetXattr {
            vol: self.vol.id,
            ino,
            name: name.to_vec(),
            value: value.to_vec(),
            create,
            replace,
        };
        self.call(req).await.map(|_| ())
    }

    /// An extended attribute's value.
    /// POSIX ACLs are never stored (setting one is refused), and `ls -l`
    /// asks for an ACL and an SELinux label on every file: both are
    /// answered here when the answer is known to be "none".
    pub async fn getxattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>> {
        if Self::xattr_unsupported(name) {
            return Err(FsError::errno(Errno::EOPNOTSUPP));
        }
        // Unknown: learn the inode's whole name set first, so the next ask
        // (the kernel's before every write) is answered here. Nearly every
        // file has none, and then this is the only round trip.
        let known = match self.xattrs.has(ino, name) {
            Some(k) => k,
            None => {
                let names = self.listxattr(ino).await?;
                names.iter().any(|n| n == name)
            }
        };
        if !known {
            return Err(FsError::errno(Errno::ENODATA));
        }
        match self.call(MetaRequest::GetXattr { vol: self.vol.id, ino, name: name.to_vec() }).await? {
            MetaResponse::Bytes(b) => Ok(b),
            other => Err(FsError::protocol(other)),
        }
    }

    /// Names of the extended attributes.
    pub async fn listxattr(&self, ino: u64) -> Result<Vec<Vec<u8>>> {
        if let Some(names) = self.xattrs.names(ino) {
            return Ok(names);
        }
        let asked = self.xattrs.epoch();
        match self.call(MetaRequest::ListXattr { vol: self.vol.id, ino }).await? {
            MetaResponse::Names(n) => {
                self.xattrs.learn(ino, n.clone(), asked);
                Ok(n)
            }
            other => Err(FsError::protocol(other)),
        }
    }

    /// Removes an extended attribute.
    pub async fn removexattr(&self, ino: u64, name: &[u8]) -> Result<()> {
        self.xattrs.forget(ino);
        self.call(MetaRequest::RemoveXattr { vol: self.vol.id, ino, name: name.to_vec() }).await.map(|_| ())
    }

    /// Whether the attribute `name` is one a volume never keeps (POSIX ACLs,
    /// SELinux labels). Asking for one fails with `EOPNOTSUPP`, not
    /// `ENODATA`: that is what tells `ls -l` (and libacl, libselinux) that
    /// the whole file system has none, so they stop asking for every file.
    pub fn xattr_unsupported(name: &[u8]) -> bool {
        name.starts_with(POSIX_ACL) || name == SELINUX_LABEL
    }

    /// Whether the attribute `name` of `ino` is known not to exist, without
    /// asking the meta service (see [`Fs::getxattr`]).
    pub fn xattr_known_absent(&self, ino: u64, name: &[u8]) -> bool {
        self.xattrs.has(ino, name) == Some(false)
    }
}
