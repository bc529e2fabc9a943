//! What a front end that caches file content itself is told. The kernel
//! keeps pages of files read through a FUSE mount; whether an open may
//! keep them depends on every change this client makes to a file and
//! every change it hears of from others. The mount's bookkeeping
//! (`cairn-fuse`'s page stamps) lives in the mount; this trait is the
//! window through which [`crate::Fs`] reports those changes to it.
//! Gateways cache no content and register nothing.

use cairn_proto::meta::Attr;

/// Told of changes to files' content, as they happen.
pub trait ContentCache: Send + Sync {
    /// A counter of other clients' changes: read before a change of this
    /// client's is sent, and handed back with its answer.
    fn epoch(&self) -> u64;
    /// This client made the file `a` (empty).
    fn created(&self, a: &Attr);
    /// This client changed the file's content (a write or truncation,
    /// which went through the cached content) and the meta service
    /// answered `a`; `epoch` is [`ContentCache::epoch`] from before it was
    /// sent.
    fn changed_here(&self, a: &Attr, epoch: u64);
    /// This client's change of the file failed or its answer was lost, or
    /// its buffered writes could not be stored: what is cached may hold
    /// bytes the file does not.
    fn unsure(&self, ino: u64);
    /// Other clients changed these files.
    fn changed_elsewhere(&self, inos: &mut dyn Iterator<Item = u64>);
    /// Other clients' changes were lost (the meta service restarted):
    /// nothing cached is known current.
    fn lost_changes(&self);
}
