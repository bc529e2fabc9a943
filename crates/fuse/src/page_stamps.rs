//! Which files the kernel may keep its page cache of when they are opened
//! again (FUSE's `FOPEN_KEEP_CACHE`). Without it every open drops the
//! pages, so a file read twice (a photo served again, a header a build
//! includes from every unit, the random reads after a sequential pass) is
//! fetched from the storage nodes twice.
//!
//! The rule is NFS's close-to-open, checked the way NFS checks it: for
//! each file the mount remembers the attributes (size, mtime, ctime) of
//! the content its kernel pages hold, its *stamp*; an open asks the meta
//! service for the file's attributes and keeps the pages only if they
//! still match. Any write by another client sets mtime and ctime, so a
//! file changed elsewhere and closed before this open is always read anew.
//!
//! The stamp follows this mount's own changes (its writes went through
//! the kernel's pages, its truncations truncated them) and is dropped when
//! the change feed reports another mount's change to the file, or lost
//! changes, and when the kernel forgets the inode (its pages went too). What is not checked: another mount's write that lands between
//! this mount's last check and its own write to the same file, whose feed
//! message has not arrived yet; the window is the feed's latency, for
//! writers that share a file without locks, where POSIX promises nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use cairn_fs::ContentCache;
use cairn_proto::meta::{Attr, Time};

/// Most files with a stamp; past it every stamp goes (the next open of
/// each drops its pages, which is always safe).
const MAX: usize = 200_000;

/// The attributes a file's cached pages were filled under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime: Time,
    ctime: Time,
}

impl Stamp {
    fn of(a: &Attr) -> Self {
        Self { size: a.size, mtime: a.mtime, ctime: a.ctime }
    }
}

#[derive(Default)]
pub(crate) struct PageStamps {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    stamps: HashMap<u64, Stamp>,
    /// Bumped whenever a stamp is dropped for another mount's change: a
    /// change of this mount whose answer crossed it leaves no stamp.
    epoch: u64,
}

impl PageStamps {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(inner: &mut Inner, ino: u64, stamp: Stamp) {
        if inner.stamps.len() >= MAX && !inner.stamps.contains_key(&ino) {
            inner.stamps.clear();
        }
        inner.stamps.insert(ino, stamp);
    }

    /// The current epoch: take it before sending a change.
    pub(crate) fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Whether the file has a stamp, so an open can keep its pages if the
    /// file is unchanged (and is worth a fresh look at its attributes).
    pub(crate) fn known(&self, ino: u64) -> bool {
        self.lock().stamps.contains_key(&ino)
    }

    /// An open, with the file's attributes as the meta service has them
    /// now (`None` when they are not known): whether the kernel may keep
    /// its pages. When not, the kernel drops them, and what it caches from
    /// now on is read after this open: the stamp becomes `now`.
    pub(crate) fn at_open(&self, ino: u64, now: Option<&Attr>) -> bool {
        let mut inner = self.lock();
        let Some(now) = now.map(Stamp::of) else {
            inner.stamps.remove(&ino);
            return false;
        };
        if inner.stamps.get(&ino) == Some(&now) {
            return true;
        }
        Self::insert(&mut inner, ino, now);
        false
    }

    /// A file this mount created: no pages, no content.
    pub(crate) fn created(&self, a: &Attr) {
        Self::insert(&mut self.lock(), a.ino, Stamp::of(a));
    }

    /// This mount changed the file (a write or truncation, which went
    /// through the kernel's pages) and the meta service answered `a`: the
    /// pages follow the file if they did before and no other mount's
    /// change was reported since `epoch`.
    pub(crate) fn changed_here(&self, a: &Attr, epoch: u64) {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            inner.stamps.remove(&a.ino);
        } else if let Some(s) = inner.stamps.get_mut(&a.ino) {
            *s = Stamp::of(a);
        }
    }

    /// This mount's change of the file failed or its answer was lost, or
    /// its buffered writes could not be written out: the pages may hold
    /// bytes the file does not.
    pub(crate) fn drop_stamp(&self, ino: u64) {
        self.lock().stamps.remove(&ino);
    }

    /// Another mount changed these files.
    pub(crate) fn forget(&self, inos: impl IntoIterator<Item = u64>) {
        let mut inner = self.lock();
        inner.epoch += 1;
        for ino in inos {
            inner.stamps.remove(&ino);
        }
    }

    /// Changes of other mounts were lost: no page is known current.
    pub(crate) fn forget_all(&self) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.stamps.clear();
    }
}

/// How the file-system layer reports changes to the stamps.
impl ContentCache for PageStamps {
    fn epoch(&self) -> u64 {
        PageStamps::epoch(self)
    }

    fn created(&self, a: &Attr) {
        PageStamps::created(self, a)
    }

    fn changed_here(&self, a: &Attr, epoch: u64) {
        PageStamps::changed_here(self, a, epoch)
    }

    fn unsure(&self, ino: u64) {
        self.drop_stamp(ino)
    }

    fn changed_elsewhere(&self, inos: &mut dyn Iterator<Item = u64>) {
        self.forget(inos)
    }

    fn lost_changes(&self) {
        self.forget_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A regular file's attributes, every time `secs`.
    fn attr(ino: u64, size: u64, secs: i64) -> Attr {
        let t = Time { secs, nanos: 0 };
        Attr {
            ino,
            kind: cairn_proto::meta::Kind::File,
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
    fn pages_are_kept_only_while_the_file_is_unchanged() {
        let p = PageStamps::default();
        assert!(!p.known(7));
        assert!(!p.at_open(7, Some(&attr(7, 10, 1))), "first open: nothing cached to keep");
        assert!(p.at_open(7, Some(&attr(7, 10, 1))), "unchanged: kept");
        assert!(!p.at_open(7, Some(&attr(7, 10, 2))), "written elsewhere, same size: dropped");
        assert!(p.at_open(7, Some(&attr(7, 10, 2))), "then kept under the new attributes");
        assert!(!p.at_open(7, None), "attributes unknown: dropped");
        assert!(!p.known(7));

        // This mount's own writes carry the stamp along.
        p.created(&attr(8, 0, 1));
        let e = p.epoch();
        p.changed_here(&attr(8, 4096, 2), e);
        assert!(p.at_open(8, Some(&attr(8, 4096, 2))), "what this mount wrote is in the pages");
        // A change of this mount that crossed a reported change of
        // another's leaves no stamp.
        let e = p.epoch();
        p.forget([99]);
        p.changed_here(&attr(8, 5000, 3), e);
        assert!(!p.known(8));
        p.created(&attr(12, 0, 1));
        p.drop_stamp(12);
        assert!(!p.known(12), "a failed write of this mount");
        // A change to a file without a stamp does not make one.
        p.changed_here(&attr(9, 1, 1), p.epoch());
        assert!(!p.known(9));

        p.created(&attr(10, 0, 1));
        p.forget([10]);
        assert!(!p.known(10), "another mount changed it");
        p.created(&attr(11, 0, 1));
        p.forget_all();
        assert!(!p.known(11), "changes lost");
    }
}
