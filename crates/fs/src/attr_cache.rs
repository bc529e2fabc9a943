//! The mount's attribute cache: `getattr` answered without a meta round
//! trip. The kernel asks again after every write (FUSE drops its size and
//! times then), so a program that writes files and stats them, the
//! commonest small-file pattern, would otherwise pay a round trip per file.
//!
//! Kept true by three rules: this mount's own changes forget what they
//! touched (an unlink, rmdir or rename forgets everything, since it does
//! not name the inode it unlinks or replaces); the change feed forgets what
//! other mounts touch (everything on an entry change, for the same
//! reason); and an answer is stored only if nothing was forgotten while it
//! was in flight (an epoch counts forgets), so an old answer cannot land
//! after a newer change. Entries also expire, as the kernel's do.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_proto::meta::{Attr, Changed};

/// How long an attribute stays usable: the kernel's own timeout.
const FRESH: Duration = Duration::from_secs(30);
/// Most inodes kept; past it the cache starts over.
const MAX: usize = 200_000;

#[derive(Default)]
pub(crate) struct AttrCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by every forget.
    epoch: u64,
    attrs: HashMap<u64, (Attr, Instant)>,
}

impl AttrCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current epoch: take it before asking the meta service.
    pub(crate) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// A fresh cached attribute.
    pub(crate) fn get(&self, ino: u64) -> Option<Attr> {
        let inner = self.lock();
        inner.attrs.get(&ino).filter(|(_, at)| at.elapsed() < FRESH).map(|(a, _)| a.clone())
    }

    /// Stores an answer if the epoch is still `epoch` (nothing was
    /// forgotten since the question was asked).
    pub(crate) fn put(&self, attr: &Attr, epoch: u64) {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        if inner.attrs.len() >= MAX {
            inner.attrs.clear();
        }
        inner.attrs.insert(attr.ino, (attr.clone(), Instant::now()));
    }

    /// Forgets what `changes` made stale (everything, if `all` or an entry
    /// changed) and returns the new epoch.
    pub(crate) fn forget(&self, changes: &[Changed], all: bool) -> u64 {
        let mut inner = self.lock();
        inner.epoch += 1;
        if all || changes.iter().any(|c| matches!(c, Changed::Entry { .. })) {
            inner.attrs.clear();
        } else {
            for c in changes {
                if let Changed::Inode { ino } = c {
                    inner.attrs.remove(ino);
                }
            }
        }
        inner.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::meta::{Kind, Time};

    fn attr(ino: u64, size: u64) -> Attr {
        let t = Time { secs: 0, nanos: 0 };
        Attr {
            ino,
            kind: Kind::File,
            perm: 0o644,
            uid: 0,
            gid: 0,
            size,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            nlink: 1,
            rdev: 0,
        }
    }

    #[test]
    fn an_answer_from_before_a_forget_is_not_stored() {
        let c = AttrCache::default();
        let e = c.epoch();
        c.put(&attr(5, 1), e);
        assert_eq!(c.get(5).map(|a| a.size), Some(1));
        let asked = c.epoch();
        c.forget(&[Changed::Inode { ino: 5 }], false);
        c.put(&attr(5, 2), asked); // in flight across the forget
        assert!(c.get(5).is_none());
        c.put(&attr(5, 3), c.epoch());
        c.put(&attr(6, 3), c.epoch());
        c.forget(&[Changed::Inode { ino: 6 }], false);
        assert_eq!(c.get(5).map(|a| a.size), Some(3), "other inodes stay");
        c.forget(&[Changed::Entry { parent: 1, name: b"x".to_vec() }], false);
        assert!(c.get(5).is_none(), "an entry change forgets everything");
    }
}
