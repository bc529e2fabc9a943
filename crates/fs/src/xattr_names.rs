//! Which extended attributes each inode has, as far as this mount knows.
//!
//! The kernel asks `getxattr("security.capability")` before every `write`
//! (to drop a capability a write must not keep), and GNU `ls -l` asks for
//! labels of every file. Nearly every file has no extended attributes, so
//! a known name set answers those without a round trip. It stays true by
//! the rules of the attribute cache: this mount's own set/remove forget the
//! inode, the change feed forgets what other mounts changed (and all of it
//! when changes were lost), and an answer is kept only if nothing was
//! forgotten while it was in flight. What is known is trusted for as long
//! as the kernel trusts cached attributes, the bound on staleness when the
//! feed itself was lost.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a learnt name set is trusted (the kernel's attribute timeout).
pub const FRESH: Duration = Duration::from_secs(30);
/// Most inodes remembered: a set is a few bytes, usually none.
const MAX: usize = 200_000;

#[derive(Default)]
struct Inner {
    /// Inode → (when learnt, names of its extended attributes).
    known: HashMap<u64, (Instant, Vec<Vec<u8>>)>,
    /// Counts forgets, so an answer that raced one is not kept.
    epoch: u64,
}

/// The name sets, shared by the FUSE threads and the mount's tasks.
#[derive(Default)]
pub struct XattrNames {
    inner: Mutex<Inner>,
}

impl XattrNames {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `ino` is known to have an attribute `name` (`None`: unknown).
    pub fn has(&self, ino: u64, name: &[u8]) -> Option<bool> {
        let g = self.lock();
        let (seen, names) = g.known.get(&ino)?;
        (seen.elapsed() < FRESH).then(|| names.iter().any(|n| n == name))
    }

    /// The names of `ino`'s attributes, if known.
    pub fn names(&self, ino: u64) -> Option<Vec<Vec<u8>>> {
        let g = self.lock();
        let (seen, names) = g.known.get(&ino)?;
        (seen.elapsed() < FRESH).then(|| names.clone())
    }

    /// The count of forgets so far: take it before asking the meta service,
    /// hand it to [`XattrNames::learn`] with the answer.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// `ino` has the attributes `names`, as an answer asked at `epoch` said:
    /// kept unless something was forgotten since.
    pub fn learn(&self, ino: u64, names: Vec<Vec<u8>>, epoch: u64) {
        let mut g = self.lock();
        if g.epoch != epoch {
            return;
        }
        let now = Instant::now();
        if g.known.len() >= MAX && !g.known.contains_key(&ino) {
            g.known.retain(|_, (seen, _)| now.duration_since(*seen) < FRESH);
            if g.known.len() >= MAX {
                return;
            }
        }
        g.known.insert(ino, (now, names));
    }

    /// What a directory listing asked at `epoch` said of its entries'
    /// attributes (`(ino, has_any)`), under one lock for the page: an
    /// entry without any is learnt as such (unless something was forgotten
    /// since the listing was asked), and a set known empty that the listing
    /// shows is not any more is forgotten (always: forgetting is never wrong).
    pub fn learn_listing(&self, entries: impl IntoIterator<Item = (u64, bool)>, epoch: u64) {
        let mut g = self.lock();
        let current = g.epoch == epoch;
        let now = Instant::now();
        let mut pruned = false;
        for (ino, has_any) in entries {
            if has_any {
                if g.known.get(&ino).is_some_and(|(_, names)| names.is_empty()) {
                    // A forget: an answer still in flight may predate the
                    // change the listing shows. The page itself is one
                    // transaction, so its other entries are still learnt.
                    g.known.remove(&ino);
                    g.epoch += 1;
                }
                continue;
            }
            if !current {
                continue;
            }
            if g.known.len() >= MAX && !g.known.contains_key(&ino) {
                // Full: drop what is stale, once per page, as `learn` does.
                if pruned {
                    continue;
                }
                pruned = true;
                g.known.retain(|_, (seen, _)| now.duration_since(*seen) < FRESH);
                if g.known.len() >= MAX {
                    continue;
                }
            }
            g.known.insert(ino, (now, Vec::new()));
        }
    }

    /// `ino` may have changed attributes.
    pub fn forget(&self, ino: u64) {
        let mut g = self.lock();
        g.epoch += 1;
        g.known.remove(&ino);
    }

    /// Changes were lost: nothing known is trusted any more.
    pub fn forget_all(&self) {
        let mut g = self.lock();
        g.epoch += 1;
        g.known.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learnt_set_answers_until_forgotten() {
        let x = XattrNames::default();
        assert_eq!(x.has(7, b"user.a"), None);
        x.learn(7, vec![b"user.a".to_vec()], x.epoch());
        assert_eq!(x.has(7, b"user.a"), Some(true));
        assert_eq!(x.has(7, b"security.capability"), Some(false));
        assert_eq!(x.names(7), Some(vec![b"user.a".to_vec()]));
        x.forget(7);
        assert_eq!(x.has(7, b"user.a"), None);
        x.learn(8, Vec::new(), x.epoch());
        x.forget_all();
        assert_eq!(x.names(8), None);
    }

    #[test]
    fn a_listing_learns_empty_sets_and_drops_those_it_shows_are_not() {
        let x = XattrNames::default();
        x.learn(1, Vec::new(), x.epoch());
        x.learn(2, vec![b"user.a".to_vec()], x.epoch());
        let asked = x.epoch();
        x.learn_listing([(1, true), (2, true), (3, false)], asked);
        assert_eq!(x.names(1), None, "known empty, listed with attributes: dropped");
        assert_eq!(x.names(2), Some(vec![b"user.a".to_vec()]), "a known non-empty set stays");
        assert_eq!(x.names(3), Some(vec![]), "listed without attributes: learnt");
        // A listing that raced a forget learns nothing, but still drops.
        let asked = x.epoch();
        x.learn(4, Vec::new(), asked);
        x.forget(99);
        x.learn_listing([(4, true), (5, false)], asked);
        assert_eq!((x.names(4), x.names(5)), (None, None));
    }

    #[test]
    fn an_answer_that_raced_a_forget_is_not_kept() {
        let x = XattrNames::default();
        let asked = x.epoch();
        // Another mount set an attribute while the answer was in flight.
        x.forget(9);
        x.learn(9, Vec::new(), asked);
        assert_eq!(x.has(9, b"user.a"), None);
    }
}
