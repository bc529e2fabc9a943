//! The file-system layer: POSIX semantics over the meta service (names,
//! attributes, slices) and the blob layer (content). Every namespace front
//! end (FUSE now; S3, WebDAV, NFS, HTTP next) calls this and nothing below
//! it.
//!
//! Read [`Fs`] first: one volume as one client sees it. Its inode API
//! (what FUSE and NFS speak) is spread over one module per concept below.
//!
//! Writes are buffered per open file and uploaded as new blobs on flush,
//! fsync, close or when the buffer fills; the meta service then commits
//! them as slices on top of the file's content. Reads take the file's
//! slice map from the meta service once per open (kept a few seconds) and
//! fetch the blob ranges it resolves to.
//!
//! # Layout
//! - `fs.rs`: [`Fs`], its construction, attachment to the volume, and the
//!   one cache-keeping way it asks the meta service.
//! - `inodes.rs`: inode operations (lookup, attributes, create, link,
//!   unlink, rename, listings).
//! - `handles.rs`: open handles; `handle.rs`: one handle's write buffer.
//! - `write.rs`: the write path (buffer, upload, commit).
//! - `read.rs`: the read path, with read-ahead and the block cache
//!   (`block_cache.rs`).
//! - `xattrs.rs`: extended attributes; `xattr_names.rs`: which ones each
//!   inode has, as far as this client knows.
//! - `changes.rs`: the change feed of other clients' changes.
//! - `attr_cache.rs`, `complete_dirs.rs`: the attribute and entry caches.
//! - `content_cache.rs`: [`ContentCache`], how a front end that caches
//!   content itself (the kernel's pages, under FUSE) hears of changes.
//! - `answer_now.rs`: [`AnswerNow`], answers without waiting for a front
//!   end whose threads must not block (FUSE's).
//! - `permissions.rs`: who may do what ([`Caller`]), as the kernel checks
//!   it for a FUSE mount, for front ends with no kernel in front of them.
//! - `paths/`: [`PathFs`], the path API the gateways speak (S3, WebDAV,
//!   HTTP): resolve, list in pages, stream a range, atomic
//!   create-or-replace from a stream, server-side copy, user metadata,
//!   every call checked against the caller's identity.
//! - `error.rs`: [`FsError`], an errno and why.

mod answer_now;
mod attr_cache;
mod block_cache;
mod changes;
mod complete_dirs;
mod content_cache;
mod error;
mod fs;
mod handle;
mod handles;
mod inodes;
mod paths;
pub mod permissions;
mod read;
mod write;
mod xattr_names;
mod xattrs;

pub use answer_now::AnswerNow;
pub use block_cache::BlockCache;
pub use content_cache::ContentCache;
pub use error::{FsError, Result};
pub use fs::{Fs, FsStats};
pub use paths::{ByteStream, ListPage, Listed, PathFs, PutOptions, Resolved, VolPath, LIST_PAGE_MAX, PATH_MAX};
pub use permissions::Caller;
