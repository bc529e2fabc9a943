//! Bytes used by each volume (`volume info`, `df` on a mount), kept as a
//! counter (`u` vol) that every save of a regular file's inode moves by the
//! change of its size, so reading it costs one key, not a walk of the
//! volume. A hard-linked file counts once; a file unlinked while open
//! counts until it is freed, as on a local file system.

use crate::engine::{Engine, KvRead, KvWrite};
use crate::error::Result;
use crate::key;
use crate::namespace::Namespace;
use crate::records::{decode, encode, Attr, Inode, Kind};

/// The size a regular file's saved inode has, if it is saved. Only the
/// attributes, the record's first field, are decoded.
pub(crate) fn saved_size(r: &dyn KvRead, vol: u32, ino: u64) -> Result<Option<u64>> {
    let Some(bytes) = r.get(&key::inode(vol, ino))? else { return Ok(None) };
    let attr: Attr = match postcard::take_from_bytes::<Attr>(&bytes) {
        Ok((attr, _)) => attr,
        Err(_) => decode::<Inode>(&bytes)?.attr,
    };
    Ok((attr.kind == Kind::File).then_some(attr.size))
}

/// Moves volume `vol`'s counter from a file's old size to its new one.
pub(crate) fn track(w: &mut dyn KvWrite, vol: u32, old: u64, new: u64) -> Result<()> {
    if old == new {
        return Ok(());
    }
    let k = key::usage(vol);
    let now: u64 = match w.get(&k)? {
        Some(b) => decode(&b)?,
        None => 0,
    };
    w.put(&k, &encode(&now.saturating_add(new).saturating_sub(old))?)
}

impl<E: Engine> Namespace<E> {
    /// Bytes in volume `vol`'s files.
    pub fn usage(&self, vol: u32) -> Result<u64> {
        self.engine().read(|r| Ok(r.get(&key::usage(vol))?.map(|b| decode(&b)).transpose()?.unwrap_or(0)))
    }

    /// Counts the bytes of every volume that has no counter yet (one made
    /// before the counter was kept): once, when the service starts.
    pub fn count_usage_where_missing(&self) -> Result<()> {
        for v in self.volumes()? {
            if self.engine().read(|r| r.get(&key::usage(v.id)))?.is_some() {
                continue;
            }
            let (start, end) = (key::prefix(b'i', v.id), key::prefix(b'i', v.id + 1));
            let mut total = 0u64;
            let mut from = start;
            loop {
                let page = self.engine().read(|r| r.scan(&from, &end, 10_000))?;
                let Some((last, _)) = page.last() else { break };
                for (_, bytes) in &page {
                    if let Ok((attr, _)) = postcard::take_from_bytes::<Attr>(bytes) {
                        if attr.kind == Kind::File {
                            total = total.saturating_add(attr.size);
                        }
                    }
                }
                from = last.clone();
                from.push(0);
            }
            let k = key::usage(v.id);
            // Files written meanwhile moved no counter (there was none):
            // the walk's total is the count.
            self.engine().write(|w| {
                if w.get(&k)?.is_none() {
                    w.put(&k, &encode(&total)?)?;
                }
                Ok(())
            })?;
            tracing::info!(volume = %v.name, bytes = total, "counted the bytes of a volume made before usage was kept");
        }
        Ok(())
    }
}
