//! The path API: a volume addressed by paths, on behalf of a [`Caller`],
//! for the gateways (S3, WebDAV, HTTP; NFS uses the inode API). One
//! implementation of what they all need: resolve, stat, list a directory
//! in pages by name, stream a range, create or replace a file atomically
//! from a stream, `mkdir -p`, delete, rename, server-side copy, and user
//! metadata as `user.*` extended attributes. Every call is checked against
//! modes, owners and the sticky bit as the kernel checks a FUSE mount with
//! `default_permissions` (see `permissions`); decision 0014.
//!
//! - `path.rs`: [`VolPath`], a checked path.
//! - `walk.rs`: resolving a path, with search permission on every
//!   directory passed through and symlinks followed.
//! - `list.rs`: a directory's names in pages.
//! - `content.rs`: reading a range as a stream; atomic create-or-replace
//!   from a stream; server-side copy.
//! - `names.rs`: `mkdir -p`, delete, rename, chmod, chown, user metadata.

mod content;
mod list;
mod names;
mod path;
mod walk;

use std::sync::Arc;

pub use content::{ByteStream, PutOptions};
pub use list::{ListPage, Listed, LIST_PAGE_MAX};
pub use path::{VolPath, PATH_MAX};
pub use walk::Resolved;

#[cfg(doc)]
use crate::permissions::Caller;
use crate::Fs;

/// A volume's path API. Cheap to clone; every call takes the caller.
///
/// The [`Fs`] under it should be attached ([`Fs::attach`]): uploads are
/// written to files unlinked while open, which the meta service keeps only
/// while this client says (every few seconds, while attached) it has them
/// open.
#[derive(Clone)]
pub struct PathFs {
    fs: Arc<Fs>,
}

impl PathFs {
    /// The path API over `fs`.
    pub fn new(fs: Arc<Fs>) -> Self {
        Self { fs }
    }

    /// The file system under it (its inode API).
    pub fn fs(&self) -> &Arc<Fs> {
        &self.fs
    }
}
