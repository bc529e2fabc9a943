//! Files unlinked while open (`o` vol ino): kept while a mount holds them,
//! freed at the last close or when the holding mount's lease runs out
//! (decision 0007); and the housekeeping that frees them and forgets old
//! change tags.

use super::content::drop_slices;
use super::*;

/// Forgets an orphan: its inode goes (unless it got a link back) and its
/// blobs go to the collector.
fn free_orphan(w: &mut dyn KvWrite, vol: u32, ino: u64) -> Result<()> {
    if let Some(mut inode) = get::<Inode>(w, &key::inode(vol, ino))? {
        if inode.attr.nlink > 0 {
            return w.delete(&key::orphan(vol, ino));
        }
        drop_slices(w, vol, &mut inode)?;
        usage::track(w, vol, inode.attr.size, 0)?;
        w.delete(&key::inode(vol, ino))?;
    }
    w.delete(&key::orphan(vol, ino))
}

impl<E: Engine> Namespace<E> {
    /// Mount `session` closed its last handle of `ino`. An orphan (a file
    /// unlinked while open) is freed unless another mount said it has it
    /// open within `lease_secs`: its inode goes and its blobs go to the
    /// collector. A no-op for an inode that still has links.
    pub fn release(&self, vol: u32, ino: u64, session: u64, lease_secs: u64) -> Result<()> {
        // Nearly every close is of a file with links: no write transaction.
        if !self.is_orphan(vol, ino)? {
            return Ok(());
        }
        self.change(|w| {
            let Some(record) = w.get(&key::orphan(vol, ino))? else { return Ok(()) };
            let mut holders: Holders = decode(&record).unwrap_or_default();
            holders.sessions.remove(&session);
            let now = Time::now().secs;
            holders.sessions.retain(|_, at| *at + lease_secs as i64 >= now);
            if holders.sessions.is_empty() {
                free_orphan(w, vol, ino)
            } else {
                put(w, &key::orphan(vol, ino), &holders)
            }
        })
    }

    /// Whether `ino` is unlinked but kept for the mounts that have it open.
    pub fn is_orphan(&self, vol: u32, ino: u64) -> Result<bool> {
        Ok(self.engine.read(|r| r.get(&key::orphan(vol, ino)))?.is_some())
    }

    /// Orphans of a volume (files unlinked while open), e.g. to release
    /// those of a client that went away.
    pub fn orphans(&self, vol: u32) -> Result<Vec<u64>> {
        self.engine.read(|r| {
            let start = key::prefix(b'o', vol);
            Ok(r.scan(&start, &key::prefix(b'o', vol + 1), usize::MAX)?
                .into_iter()
                .filter_map(|(k, _)| be_u64(&k, 5))
                .collect())
        })
    }

    /// Mount `session` has `inodes` open: those unlinked meanwhile are
    /// kept for it for another lease.
    pub fn keep_open(&self, vol: u32, session: u64, inodes: &[u64]) -> Result<()> {
        let orphans: Vec<u64> = self.engine.read(|r| {
            let mut found = Vec::new();
            for &ino in inodes {
                if r.get(&key::orphan(vol, ino))?.is_some() {
                    found.push(ino);
                }
            }
            Ok(found)
        })?;
        if orphans.is_empty() {
            return Ok(());
        }
        self.change(|w| {
            let now = Time::now().secs;
            for &ino in &orphans {
                if let Some(record) = w.get(&key::orphan(vol, ino))? {
                    let mut holders: Holders = decode(&record).unwrap_or_default();
                    holders.sessions.insert(session, now);
                    put(w, &key::orphan(vol, ino), &holders)?;
                }
            }
            Ok(())
        })
    }

    /// Housekeeping, at `now` (Unix seconds): frees files unlinked while
    /// open whose lease ran out (no mount holds them any more), and
    /// forgets applied-change tags old enough that no client retries them.
    /// Returns (files freed, tags forgotten); at most `limit` of each.
    pub fn sweep(&self, now: i64, lease_secs: u64, limit: usize) -> Result<(usize, usize)> {
        let lease = lease_secs as i64;
        let (expired, old_tags) = self.engine.read(|r| {
            let mut expired = Vec::new();
            for_each_until(r, b"o", b"p", |k, v| {
                // A record that does not decode is from before leases: expired.
                let holders: Holders = decode(v).unwrap_or_default();
                if holders.last_seen() + lease < now {
                    if let (Some(vol), Some(ino)) = (be_u32(k, 1), be_u64(k, 5)) {
                        expired.push((vol, ino));
                    }
                }
                Ok(expired.len() < limit)
            })?;
            // Tags of every change of the last ten minutes: many.
            let mut old = Vec::new();
            for_each_until(r, b"r", b"s", |k, v| {
                let at: i64 = decode(v).unwrap_or(0);
                if at + APPLIED_MEMORY_SECS < now {
                    old.push(k.to_vec());
                }
                Ok(old.len() < limit)
            })?;
            Ok((expired, old))
        })?;
        let freed = expired.len();
        for (vol, ino) in expired {
            self.change(|w| {
                let Some(record) = w.get(&key::orphan(vol, ino))? else {
                    return Ok(()); // released since the scan
                };
                if decode::<Holders>(&record).unwrap_or_default().last_seen() + lease >= now {
                    return Ok(()); // kept again since the scan
                }
                free_orphan(w, vol, ino)
            })?;
        }
        let forgotten = old_tags.len();
        if forgotten > 0 {
            self.change(|w| {
                for k in &old_tags {
                    w.delete(k)?;
                }
                Ok(())
            })?;
        }
        Ok((freed, forgotten))
    }
}
