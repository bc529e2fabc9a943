//! The mount's attribute and entry cache: `getattr`, and `lookup` of a
//! name whose inode's attributes are known, answered without a meta round
//! trip. The kernel asks again after every write (FUSE drops its size and
//! times then) and once its own entry timeout passes, so a program that
//! writes files and stats them, the commonest small-file pattern, would
//! otherwise pay a round trip per file.
//!
//! Kept true by three rules: this mount's own changes forget what they
//! touched (an unlink, rmdir or rename forgets everything, since it does
//! not name the inode it unlinks or replaces); the change feed forgets what
//! other mounts touch (everything on an entry change, for the same
//! reason); and an answer is stored only if nothing was forgotten while it
//! was in flight (an epoch counts forgets), so an old answer cannot land
//! after a newer change. When the feed reports changes lost, everything
//! goes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cairn_proto::meta::{Attr, Changed};

/// How long an attribute stays usable. Longer than the kernel's timeout:
/// the change feed keeps it true, and when the feed reports changes lost
/// the whole cache goes; this only bounds how long an inode nobody asks
/// about stays in memory.
const FRESH: Duration = Duration::from_secs(600);
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
    /// Names known to lead to an inode: (directory, name) → inode.
    entries: HashMap<(u64, Vec<u8>), u64>,
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

    /// The fresh attributes of what `name` in `parent` leads to.
    pub(crate) fn lookup(&self, parent: u64, name: &[u8]) -> Option<Attr> {
        let inner = self.lock();
        let ino = inner.entries.get(&(parent, name.to_vec()))?;
        inner.attrs.get(ino).filter(|(_, at)| at.elapsed() < FRESH).map(|(a, _)| a.clone())
    }

    /// Stores an answer if the epoch is still `epoch` (nothing was
    /// forgotten since the question was asked), with the entry that led to
    /// it when there was one.
    pub(crate) fn put(&self, attr: &Attr, entry: Option<(u64, &[u8])>, epoch: u64) {
        let mut inner = self.lock();
        if inner.epoch != epoch {
            return;
        }
        if inner.attrs.len() >= MAX || inner.entries.len() >= MAX {
            inner.attrs.clear();
            inner.entries.clear();
        }
        inner.attrs.insert(attr.ino, (attr.clone(), Instant::now()));
        // `..` changes when a directory moves, which no entry change names.
        if let Some((parent, name)) = entry.filter(|(_, n)| *n != b"." && *n != b"..") {
            inner.entries.insert((parent, name.to_vec()), attr.ino);
        }
    }

    /// Forgets what `changes` made stale (everything, if `all` or an entry
    /// changed) and returns the new epoch.
    pub(crate) fn forget(&self, changes: &[Changed], all: bool) -> u64 {
        let mut inner = self.lock();
        inner.epoch += 1;
        if all {
            inner.attrs.clear();
            inner.entries.clear();
            return inner.epoch;
        }
        // A removed or replaced entry unlinked an inode it does not name:
        // the one this cache knew it led to, or, if unknown, any (every
        // inode's attributes go; names elsewhere stay).
        let mut clear_attrs = false;
        for c in changes {
            match c {
                Changed::Inode { ino } => {
                    inner.attrs.remove(ino);
                }
                Changed::Entry { parent, name } => {
                    inner.entries.remove(&(*parent, name.clone()));
                }
                Changed::Unlinked { parent, name } => match inner.entries.remove(&(*parent, name.clone())) {
                    Some(ino) => {
                        inner.attrs.remove(&ino);
                    }
                    None => clear_attrs = true,
                },
            }
        }
        if clear_attrs {
            inner.attrs.clear();
        }
        inner.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ino: u64, size: u64) -> Attr {
        crate::fs::test_file_attr(ino, size, 0)
    }

    #[test]
    fn an_answer_from_before_a_forget_is_not_stored() {
        let c = AttrCache::default();
        let e = c.epoch();
        c.put(&attr(5, 1), Some((1, b"f")), e);
        assert_eq!(c.get(5).map(|a| a.size), Some(1));
        assert_eq!(c.lookup(1, b"f").map(|a| a.ino), Some(5));
        let asked = c.epoch();
        c.forget(&[Changed::Inode { ino: 5 }], false);
        c.put(&attr(5, 2), None, asked); // in flight across the forget
        assert!(c.get(5).is_none());
        c.put(&attr(5, 3), None, c.epoch());
        c.put(&attr(6, 3), None, c.epoch());
        c.forget(&[Changed::Inode { ino: 6 }], false);
        assert_eq!(c.get(5).map(|a| a.size), Some(3), "other inodes stay");
        assert_eq!(c.lookup(1, b"f").map(|a| a.size), Some(3), "the name still leads to 5");
        c.forget(&[Changed::Entry { parent: 1, name: b"new".to_vec() }], false);
        assert!(c.get(5).is_some(), "a new name unlinks nothing");
        c.forget(&[Changed::Unlinked { parent: 1, name: b"x".to_vec() }], false);
        assert!(c.get(5).is_none(), "an unknown name's removal forgets every inode's attributes");
        c.put(&attr(5, 4), None, c.epoch());
        assert_eq!(c.lookup(1, b"f").map(|a| a.size), Some(4), "other names stay");
        c.put(&attr(6, 1), None, c.epoch());
        c.forget(&[Changed::Unlinked { parent: 1, name: b"f".to_vec() }], false);
        assert!(c.get(5).is_none() && c.get(6).is_some(), "a known name's removal forgets its inode only");
        c.put(&attr(5, 4), None, c.epoch());
        assert!(c.lookup(1, b"f").is_none(), "the removed name goes");
    }
}
