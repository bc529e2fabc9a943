//! Mounts and gateways attached to a volume (`m` vol session): each says
//! so when it starts and every few seconds after, and that it is leaving
//! when it stops. A volume that has a client heard from within the lease
//! is not deleted without `--force`, so `volume delete` cannot pull a
//! namespace from under a mount that is still in use.

use crate::engine::{Engine, KvWrite};
use crate::error::{MetaError, Result};
use crate::key;
use crate::namespace::Namespace;
use crate::records::{decode, encode, Client, Time};
use cairn_proto::meta::{VolumeClient, ROOT};

/// A description is cut to this many bytes (it comes from the client).
const WHAT_MAX: usize = 256;

impl<E: Engine> Namespace<E> {
    /// Records that client `session` uses volume `vol`. The record is
    /// rewritten only when it is new, says something else, or is older than
    /// a third of `lease_secs`: the clients say it every few seconds.
    pub fn attach(&self, vol: u32, session: u64, what: &str, lease_secs: u64) -> Result<()> {
        let mut what = what.to_string();
        if what.len() > WHAT_MAX {
            let mut cut = WHAT_MAX;
            while !what.is_char_boundary(cut) {
                cut -= 1;
            }
            what.truncate(cut);
        }
        let now = Time::now().secs;
        let k = key::client(vol, session);
        let fresh = self.engine().read(|r| {
            Ok(match r.get(&k)? {
                Some(b) => {
                    let c: Client = decode(&b)?;
                    c.what == what && now - c.last_seen < (lease_secs / 3) as i64
                }
                None => false,
            })
        })?;
        if fresh {
            return Ok(());
        }
        self.change(|w| {
            if !volume_exists(w, vol)? {
                return Err(MetaError::NotFound(format!("volume {vol}")));
            }
            w.put(&k, &encode(&Client { session, what: what.clone(), last_seen: now })?)
        })
    }

    /// Forgets client `session` of volume `vol` (it stopped).
    pub fn detach(&self, vol: u32, session: u64) -> Result<()> {
        self.change(|w| w.delete(&key::client(vol, session)))
    }

    /// The clients of volume `vol` heard from within `lease_secs`.
    pub fn clients(&self, vol: u32, lease_secs: u64) -> Result<Vec<VolumeClient>> {
        let now = Time::now().secs;
        let (start, end) = (key::prefix(b'm', vol), key::prefix(b'm', vol + 1));
        self.engine().read(|r| {
            let mut live = Vec::new();
            for (_, v) in r.scan(&start, &end, 100_000)? {
                let c: Client = decode(&v)?;
                if now - c.last_seen <= lease_secs as i64 {
                    live.push(c.into());
                }
            }
            Ok(live)
        })
    }
}

/// Whether a volume with ID `vol` exists (its root directory does).
fn volume_exists(w: &mut dyn KvWrite, vol: u32) -> Result<bool> {
    Ok(w.get(&key::inode(vol, ROOT))?.is_some())
}
