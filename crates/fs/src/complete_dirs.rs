//! Directories whose every name this mount knows, so a lookup of a name
//! not among them is answered "no such file" without asking the meta
//! service. The kernel looks a name up before it creates it (`open` with
//! `O_CREAT`, `mkdir`, `symlink`, the target of `rename`), so filling a
//! new directory (unpacking an archive, a build's output, a copy) paid one
//! meta round trip per new name for an answer that was always "absent".
//!
//! A directory becomes complete when this mount creates it (it is empty).
//! It stays complete while every change to its names is this mount's own
//! and acknowledged: each adds or removes its name here. It stops being
//! complete when a change of this mount's fails (the outcome may be
//! unknown, or another mount got there first), when the change feed
//! reports another mount changing it, and, all at once, when the feed
//! reports changes lost. Another mount's change that the feed has not
//! delivered yet can be missed, for the milliseconds it takes: the same
//! window the kernel's own negative entries have, and the feed's message
//! invalidates both.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use cairn_proto::meta::NAME_MAX;

/// Most names kept over all complete directories; past it, the directory
/// that would grow is dropped instead (a huge directory costs round trips,
/// not memory).
const MAX_NAMES: usize = 200_000;
/// Most directories kept (a removed one is not noticed by inode, so a
/// mount that makes and removes many would otherwise keep them all); past
/// it, all are dropped and the count starts over.
const MAX_DIRS: usize = 100_000;

#[derive(Default)]
pub(crate) struct CompleteDirs {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    dirs: HashMap<u64, HashSet<Vec<u8>>>,
    names: usize,
}

impl CompleteDirs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This mount made `dir`: it has no names yet.
    pub(crate) fn created(&self, dir: u64) {
        let mut inner = self.lock();
        if inner.dirs.len() >= MAX_DIRS {
            inner.dirs.clear();
            inner.names = 0;
        }
        if let Some(old) = inner.dirs.insert(dir, HashSet::new()) {
            inner.names -= old.len();
        }
    }

    /// Whether `name` is known not to be in `dir`. `.` and `..` are in
    /// every directory, though no change names them; a name too long to
    /// exist is the meta service's to refuse (ENAMETOOLONG, not ENOENT).
    pub(crate) fn absent(&self, dir: u64, name: &[u8]) -> bool {
        if name == b"." || name == b".." || name.len() > NAME_MAX {
            return false;
        }
        self.lock().dirs.get(&dir).is_some_and(|names| !names.contains(name))
    }

    /// This mount's acknowledged change put `name` in `dir`.
    pub(crate) fn added(&self, dir: u64, name: &[u8]) {
        let mut inner = self.lock();
        let Inner { dirs, names } = &mut *inner;
        if *names >= MAX_NAMES {
            if let Some(gone) = dirs.remove(&dir) {
                *names -= gone.len();
            }
            return;
        }
        if let Some(set) = dirs.get_mut(&dir) {
            if set.insert(name.to_vec()) {
                *names += 1;
            }
        }
    }

    /// This mount's acknowledged change took `name` out of `dir`.
    pub(crate) fn removed(&self, dir: u64, name: &[u8]) {
        let mut inner = self.lock();
        let Inner { dirs, names } = &mut *inner;
        if let Some(set) = dirs.get_mut(&dir) {
            if set.remove(name) {
                *names -= 1;
            }
        }
    }

    /// `dir`'s names may have changed in a way this mount does not know.
    pub(crate) fn unsure(&self, dir: u64) {
        let mut inner = self.lock();
        if let Some(gone) = inner.dirs.remove(&dir) {
            inner.names -= gone.len();
        }
    }

    /// Changes were lost: no directory is known complete.
    pub(crate) fn forget_all(&self) {
        let mut inner = self.lock();
        inner.dirs.clear();
        inner.names = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_directory_made_here_and_changed_only_here_answers_absent() {
        let c = CompleteDirs::default();
        assert!(!c.absent(7, b"a"), "an unknown directory answers nothing");
        c.created(7);
        assert!(c.absent(7, b"a"));
        assert!(!c.absent(7, b".") && !c.absent(7, b".."));
        assert!(!c.absent(7, &[b'x'; 256]));
        c.added(7, b"a");
        assert!(!c.absent(7, b"a"));
        assert!(c.absent(7, b"b"));
        c.removed(7, b"a");
        assert!(c.absent(7, b"a"));
        c.unsure(7);
        assert!(!c.absent(7, b"a"));
        c.created(8);
        c.forget_all();
        assert!(!c.absent(8, b"a"));
    }

    #[test]
    fn a_directory_past_the_bound_is_dropped_not_grown() {
        let c = CompleteDirs::default();
        c.created(1);
        c.created(2);
        for i in 0..MAX_NAMES {
            c.added(1, format!("n{i}").as_bytes());
        }
        assert!(c.absent(1, b"x"));
        c.added(2, b"y");
        assert!(!c.absent(2, b"z"), "dropped rather than grown past the bound");
        assert!(c.absent(1, b"x"));
        c.unsure(1);
        c.created(3);
        c.added(3, b"y");
        assert!(c.absent(3, b"z"));
        assert!(!c.absent(3, b"y"));
    }
}
