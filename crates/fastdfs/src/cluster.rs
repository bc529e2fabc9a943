//! The cluster map as the front end needs it: members' FastDFS addresses,
//! refreshed from the trackers at most once a second.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_client::Client;
use cairn_proto::{ClusterMap, MemberStatus};

use crate::reply::Endpoint;

/// How old a cached map may be.
const MAX_AGE: Duration = Duration::from_secs(1);

/// A cached cluster map.
pub(crate) struct MapCache {
    client: Arc<Client>,
    cached: Mutex<Option<(Instant, Arc<ClusterMap>)>>,
}

impl MapCache {
    pub fn new(client: Arc<Client>) -> Self {
        Self { client, cached: Mutex::new(None) }
    }

    /// The map, fetched again when older than a second (or `fresh`).
    pub async fn get(&self, fresh: bool) -> Result<Arc<ClusterMap>, cairn_client::Error> {
        if !fresh {
            if let Some((at, m)) = self.cached.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                if at.elapsed() < MAX_AGE {
                    return Ok(m.clone());
                }
            }
        }
        let m = Arc::new(self.client.status().await?);
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), m.clone()));
        Ok(m)
    }

    /// A member by its native address.
    pub async fn member_at(&self, addr: &str) -> Option<(String, MemberStatus)> {
        for fresh in [false, true] {
            let Ok(map) = self.get(fresh).await else { return None };
            for g in &map.groups {
                if let Some(m) = g.members.iter().find(|m| m.addr == addr) {
                    return Some((g.name.clone(), m.clone()));
                }
            }
        }
        None
    }

    /// A member by its node ID.
    pub async fn member_by_id(&self, id: u32) -> Option<MemberStatus> {
        let map = self.get(false).await.ok()?;
        map.groups.iter().flat_map(|g| g.members.iter()).find(|m| m.id == id).cloned()
    }

    /// Where FastDFS clients reach the member at native address `addr`.
    pub async fn endpoint_of(&self, addr: &str) -> Option<Endpoint> {
        let (_, m) = self.member_at(addr).await?;
        m.fastdfs_addr.as_deref().and_then(Endpoint::parse)
    }
}
