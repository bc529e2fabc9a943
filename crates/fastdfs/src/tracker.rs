//! The tracker side: FastDFS clients ask where to upload, download or
//! change a file, and list groups and storage servers. Answers come from
//! the Cairn trackers' placement and cluster map, with each storage
//! node's FastDFS address.

use std::sync::Arc;

use cairn_client::Client;
use cairn_proto::{ErrorCode, FileId, MemberState, Request, Response, StoreTarget};
use tokio::net::TcpStream;

use crate::cluster::MapCache;
use crate::conn::{read_head, refuse, status_of, ConnCounters, Refusal, Service};
use crate::reply::{self, Endpoint, TrackerEntry};
use crate::request::{decode_tracker, TrackerRequest};
use crate::stats::{self, now_secs, TrackerFacts};
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

    /// The primary of `id`'s group (where a delete or other change goes),
    /// as a `QueryUpdate` to the tracker answers; `None` to ask the
    /// trackers over the network.
    fn primary(&self, _id: &FileId) -> Option<Result<String, cairn_client::Error>> {
        None
    }

    /// What the tracker knows beyond the cluster map (reserve, members'
    /// join and start times); `None` when it does not run here.
    fn facts(&self) -> Option<TrackerFacts> {
        None
    }
}

/// The tracker-side FastDFS service.
pub struct TrackerService {
    client: Arc<Client>,
    map: MapCache,
    ip: IpSize,
    /// The tracker's placement, when it runs in this process.
    local: Option<Arc<dyn LocalPlacement>>,
    /// This listener's connections.
    conns: Arc<ConnCounters>,
    /// When this listener started, Unix seconds.
    started: u64,
}

impl TrackerService {
    /// A service answering from the cluster `client` reaches, with IP
    /// fields of `ip` size.
    pub fn new(client: Arc<Client>, ip: IpSize) -> Self {
        Self { map: MapCache::new(client.clone()), client, ip, local: None, conns: Arc::default(), started: now_secs() }
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

    fn facts(&self) -> Option<TrackerFacts> {
        self.local.as_ref().and_then(|l| l.facts())
    }

    /// `me`: this listener's address as the client reached it.
    async fn answer(&self, req: TrackerRequest, me: Option<Endpoint>) -> Result<Vec<u8>, Refusal> {
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
                let facts = self.facts();
                let mut out = Vec::new();
                let mut found = false;
                for g in map.groups.iter().filter(|g| group.as_ref().is_none_or(|n| *n == g.name)) {
                    reply::group_stat(&mut out, &stats::group_stat(g, facts.as_ref()));
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
                let facts = self.facts();
                let mut out = Vec::new();
                for m in &g.members {
                    let s = stats::storage_stat(m, facts.as_ref());
                    if storage.as_ref().is_none_or(|want| *want == s.id || *want == s.ip) {
                        reply::storage_stat(&mut out, &s, self.ip);
                    }
                }
                if out.is_empty() && storage.is_some() {
                    return Err(Refusal::new(status::ENOENT));
                }
                Ok(out)
            }
            TrackerRequest::DeleteStorage { group, storage } => self.delete_storage(&group, &storage).await,
            TrackerRequest::Parameters => Ok(stats::parameters(self.ip, self.facts().as_ref())),
            // One FastDFS tracker per Cairn tracker, each answering from the
            // same replicated decisions: the one asked leads for its client.
            TrackerRequest::GetLeader => {
                me.map(|ep| reply::ip_port(&ep).into_bytes()).ok_or(Refusal::new(status::ENOENT))
            }
            TrackerRequest::TrackerStat { filter_by, is_active, is_leader } => {
                const BY_ACTIVE: u8 = 1;
                const BY_LEADER: u8 = 2;
                let me = me.ok_or(Refusal::new(status::ENOENT))?;
                let this = TrackerEntry {
                    host: reply::ip_port(&me),
                    leader: true,
                    active: true,
                    connections: self.conns.snapshot(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    up_time: self.started,
                    last_heartbeat: now_secs(),
                };
                let keep = (filter_by & BY_ACTIVE == 0 || is_active == this.active)
                    && (filter_by & BY_LEADER == 0 || is_leader == this.leader);
                Ok(reply::tracker_cluster_stat(if keep { std::slice::from_ref(&this) } else { &[] }))
            }
            TrackerRequest::StorageStat { filter_by, op, status: wanted, .. } => {
                let map = self.map.get(true).await.map_err(fail)?;
                let entries = stats::storage_entries(&map.groups, self.facts().as_ref(), filter_by, op, wanted);
                Ok(reply::storage_cluster_stat(false, &entries))
            }
            TrackerRequest::VolumnStat { filter_by, disk, space, .. } => {
                let map = self.map.get(true).await.map_err(fail)?;
                let entries = stats::volume_entries(&map.groups, self.facts().as_ref(), filter_by, disk, space);
                Ok(reply::volumn_stat(&entries))
            }
            TrackerRequest::ActiveTest | TrackerRequest::Quit => Ok(Vec::new()),
        }
    }

    /// FastDFS forgets a storage server that is gone (offline) and refuses
    /// one that serves (EBUSY), as its `tracker_mem_delete_storage` does.
    /// Here that is Cairn's removal of an offline member from its group
    /// (`cairn group remove-node`), sent to this listener's tracker; Cairn
    /// refuses it when no other active member would hold the group's files
    /// (EBUSY too). A member removed before answers EALREADY.
    async fn delete_storage(&self, group: &str, storage: &str) -> Result<Vec<u8>, Refusal> {
        let map = self.map.get(true).await.map_err(|e| Refusal::new(status_of(&e)))?;
        let g = map.groups.iter().find(|g| g.name == group).ok_or(Refusal::new(status::ENOENT))?;
        // By storage ID; by IP only when one member alone has it (members
        // may share a host).
        let by_ip: Vec<_> = g.members.iter().filter(|m| stats::endpoint(m).ip == storage).collect();
        let m = g
            .members
            .iter()
            .find(|m| m.id.to_string() == storage)
            .or(match by_ip.as_slice() {
                [one] => Some(*one),
                _ => None,
            })
            .ok_or(Refusal::new(status::ENOENT))?;
        match m.state {
            MemberState::Removed => return Err(Refusal::new(status::EALREADY)),
            MemberState::Offline => {}
            _ => return Err(Refusal::new(status::EBUSY)),
        }
        let req = Request::RemoveMember { group: group.to_string(), node_id: m.id };
        match self.client.node_call(&map.tracker, &req).await {
            Ok(Response::Ok) => Ok(Vec::new()),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Err(Refusal::new(status::ENOENT)),
            Ok(_) | Err(_) => Err(Refusal::new(status::EBUSY)),
        }
    }

    async fn update(&self, id: &FileId) -> Result<Vec<u8>, Refusal> {
        // From the tracker in this process when there is one: a FastDFS
        // delete asks this before every call, and the hop over loopback
        // to the native tracker cost as much as the rest of the query.
        let local = self.local.as_ref().and_then(|l| l.primary(id));
        let primary = match local {
            Some(answer) => answer,
            None => self.client.query_update(id).await,
        }
        .map_err(|e| Refusal::new(status_of(&e)))?;
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

impl Service for TrackerService {
    fn counters(&self) -> Option<&ConnCounters> {
        Some(&self.conns)
    }

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
        let me = conn.local_addr().ok().map(|a| Endpoint { ip: a.ip().to_string(), port: a.port() });
        match self.answer(req, me).await {
            Ok(body) => write_reply(conn, status::OK, &body).await.map(|()| true),
            Err(r) => refuse(conn, r).await,
        }
    }
}
