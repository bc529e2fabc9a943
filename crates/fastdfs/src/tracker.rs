//! The tracker side: FastDFS clients ask where to upload, download or
//! change a file, and list groups and storage servers. Answers come from
//! the Cairn trackers' placement and cluster map, with each storage
//! node's FastDFS address.

use std::sync::Arc;

use cairn_client::Client;
use cairn_proto::{FileId, GroupStatus, MemberState, StoreTarget};
use tokio::net::TcpStream;

use crate::cluster::MapCache;
use crate::conn::{read_head, refuse, status_of, Refusal, Service};
use crate::reply::{self, Endpoint, GroupStat, StorageStat};
use crate::request::{decode_tracker, TrackerRequest};
use crate::wire::{status, write_reply, Header, IpSize};

/// The store path index sent to clients: the storage node picks its disk
/// itself (FastDFS's -1, "storage decides"), whatever comes back.
const ANY_STORE_PATH: u8 = 0;

/// The placement of the Cairn tracker in the front end's own process,
/// asked without the network: the `cairn` binary plugs in the tracker's
/// (`cairn_tracker::LocalTracker`); this crate does not depend on it.
pub trait LocalPlacement: Send + Sync + 'static {
    /// Where to upload, as a `QueryStore` to the tracker answers; `None`
    /// to ask the trackers over the network.
    fn place(&self, group: Option<&str>, exclude: &[String]) -> Option<Result<StoreTarget, cairn_client::Error>>;
}

/// The tracker-side FastDFS service.
pub struct TrackerService {
    client: Arc<Client>,
    map: MapCache,
    ip: IpSize,
    /// The tracker's placement, when it runs in this process.
    local: Option<Arc<dyn LocalPlacement>>,
}

impl TrackerService {
    /// A service answering from the cluster `client` reaches, with IP
    /// fields of `ip` size.
    pub fn new(client: Arc<Client>, ip: IpSize) -> Self {
        Self { map: MapCache::new(client.clone()), client, ip, local: None }
    }

    /// Answers where to upload from the tracker in this process, as
    /// FastDFS's tracker does, instead of asking it over loopback.
    pub fn with_local(mut self, local: Arc<dyn LocalPlacement>) -> Self {
        self.local = Some(local);
        self
    }

    /// Where to upload: from the tracker in this process if there is one.
    async fn place(&self, group: Option<&str>, exclude: &[String]) -> Result<StoreTarget, cairn_client::Error> {
        match self.local.as_ref().and_then(|l| l.place(group, exclude)) {
            Some(placed) => placed,
            None => self.client.query_store(group, exclude).await,
        }
    }

    async fn answer(&self, req: TrackerRequest) -> Result<Vec<u8>, Refusal> {
        let fail = |e: cairn_client::Error| Refusal::new(status_of(&e));
        match req {
            TrackerRequest::QueryStore { group, all: false } => {
                let mut exclude = Vec::new();
                // Members without a FastDFS listener cannot take this upload.
                for _ in 0..8 {
                    let t = self.place(group.as_deref(), &exclude).await.map_err(fail)?;
                    if let Some(ep) = self.map.endpoint_of(&t.addr).await {
                        return Ok(reply::store_one(&t.group, &ep, ANY_STORE_PATH, self.ip));
                    }
                    exclude.push(t.addr);
                }
                Err(Refusal::new(status::ENOENT))
            }
            TrackerRequest::QueryStore { group, all: true } => {
                let name = match group {
                    Some(g) => g,
                    None => self.place(None, &[]).await.map_err(fail)?.group,
                };
                let map = self.map.get(false).await.map_err(fail)?;
                let g = map.groups.iter().find(|g| g.name == name).ok_or(Refusal::new(status::ENOENT))?;
                let eps: Vec<Endpoint> = g
                    .members
                    .iter()
                    .filter(|m| m.ready)
                    .filter_map(|m| m.fastdfs_addr.as_deref().and_then(Endpoint::parse))
                    .collect();
                if eps.is_empty() || !g.writable {
                    return Err(Refusal::new(if g.writable { status::ENOENT } else { status::ENOSPC }));
                }
                Ok(reply::store_all(&name, &eps, ANY_STORE_PATH, self.ip))
            }
            TrackerRequest::QueryFetch { id, all } => {
                // From the client's cached map (a second old at most), as
                // the native client reads: asking the tracker here would
                // add a round trip to every FastDFS download.
                let eps = self.endpoints(self.client.readers(&id).await.map_err(fail)?).await;
                let group = id.group().to_string();
                match (all, eps.first()) {
                    (_, None) => Err(Refusal::new(status::ENOENT)),
                    (false, Some(first)) => Ok(reply::fetch_one(&group, first, self.ip)),
                    (true, Some(_)) => Ok(reply::fetch_all(&group, &eps, self.ip)),
                }
            }
            TrackerRequest::QueryUpdate { id } => self.update(&id).await,
            TrackerRequest::ListGroups { group } => {
                let map = self.map.get(true).await.map_err(fail)?;
                let mut out = Vec::new();
                let mut found = false;
                for g in map.groups.iter().filter(|g| group.as_ref().is_none_or(|n| *n == g.name)) {
                    reply::group_stat(&mut out, &group_stat(g));
                    found = true;
                }
                if group.is_some() && !found {
                    return Err(Refusal::new(status::ENOENT));
                }
                Ok(out)
            }
            TrackerRequest::ListStorage { group, storage } => {
                let map = self.map.get(true).await.map_err(fail)?;
                let g = map.groups.iter().find(|g| g.name == group).ok_or(Refusal::new(status::ENOENT))?;
                let mut out = Vec::new();
                for m in &g.members {
                    let s = storage_stat(m);
                    if storage.as_ref().is_none_or(|want| *want == s.id || *want == s.ip) {
                        reply::storage_stat(&mut out, &s, self.ip);
                    }
                }
                if out.is_empty() && storage.is_some() {
                    return Err(Refusal::new(status::ENOENT));
                }
                Ok(out)
            }
            TrackerRequest::ActiveTest | TrackerRequest::Quit => Ok(Vec::new()),
        }
    }

    async fn update(&self, id: &FileId) -> Result<Vec<u8>, Refusal> {
        let primary = self.client.query_update(id).await.map_err(|e| Refusal::new(status_of(&e)))?;
        let ep = self.map.endpoint_of(&primary).await.ok_or(Refusal::new(status::ENOENT))?;
        Ok(reply::fetch_one(id.group(), &ep, self.ip))
    }

    async fn endpoints(&self, addrs: Vec<String>) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for a in addrs {
            if let Some(ep) = self.map.endpoint_of(&a).await {
                out.push(ep);
            }
        }
        out
    }
}

fn mb(bytes: u64) -> u64 {
    bytes >> 20
}

fn port_of(addr: Option<&str>) -> u64 {
    addr.and_then(Endpoint::parse).map(|e| u64::from(e.port)).unwrap_or(0)
}

fn group_stat(g: &GroupStatus) -> GroupStat {
    GroupStat {
        name: g.name.clone(),
        total_mb: mb(g.total),
        free_mb: mb(g.free),
        reserved_mb: 0,
        count: g.members.len() as u64,
        storage_port: port_of(g.members.iter().find_map(|m| m.fastdfs_addr.as_deref())),
        readable: g.members.iter().filter(|m| m.state == MemberState::Active).count() as u64,
        writable: g.members.iter().filter(|m| m.ready).count() as u64,
        store_path_count: 1,
    }
}

fn storage_stat(m: &cairn_proto::MemberStatus) -> StorageStat {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let ip =
        m.fastdfs_addr.as_deref().or(Some(m.addr.as_str())).and_then(Endpoint::parse).map(|e| e.ip).unwrap_or_default();
    let readable = m.state == MemberState::Active;
    StorageStat {
        status: reply::status_code(m.state),
        rw_mode: u8::from(readable) | (u8::from(m.ready) << 1),
        id: m.id.to_string(),
        ip,
        version: m.version.clone(),
        up_time: 0,
        total_mb: mb(m.total),
        free_mb: mb(m.free),
        store_path_count: 1,
        storage_port: port_of(m.fastdfs_addr.as_deref()),
        last_heartbeat: now.saturating_sub(m.last_heartbeat_ms / 1000),
    }
}

impl Service for TrackerService {
    async fn handle(&self, conn: &mut TcpStream, h: Header) -> std::io::Result<bool> {
        let body = match read_head(conn, &h).await? {
            Ok(b) => b,
            Err(r) => return refuse(conn, r).await,
        };
        let req = match decode_tracker(h.cmd, &body) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "bad FastDFS tracker request");
                return refuse(conn, Refusal::new(status::EINVAL)).await;
            }
        };
        if req == TrackerRequest::Quit {
            return Ok(false);
        }
        match self.answer(req).await {
            Ok(body) => write_reply(conn, status::OK, &body).await.map(|()| true),
            Err(r) => refuse(conn, r).await,
        }
    }
}
