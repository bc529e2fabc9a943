//! The FastDFS-protocol and HTTP-download front ends that run inside the
//! daemons: `--fastdfs-listen` on `tracker` and `storage`,
//! `--http-listen` on `storage`; all on in `server`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use cairn_client::{Client, ClientConfig};
use cairn_fastdfs::reply::Endpoint;
use cairn_fastdfs::{
    IpSize, LocalBlobs, LocalPlacement, MemberTimes, ReservedSpace, StorageService, TrackerFacts, TrackerService,
};
use cairn_proto::{ClusterSecret, FileId, ProtoError, StoreTarget};
use cairn_storage::{HttpToken, LocalNode};
use cairn_tracker::LocalTracker;
use clap::Args;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::daemon::bind;
use crate::config::FileConfig;

/// FastDFS's tracker port.
pub const FASTDFS_TRACKER_PORT: u16 = 22122;
/// FastDFS's storage port.
pub const FASTDFS_STORAGE_PORT: u16 = 23000;
/// The HTTP download port of FastDFS's storage nginx.
pub const HTTP_PORT: u16 = 8888;
/// How long an anti-steal token stays valid by default (FastDFS's 900 s).
const TOKEN_TTL_SECS: u64 = 900;

/// `--fastdfs-listen` and `--fastdfs-ip-size` of `cairn tracker`.
#[derive(Args, Debug, Clone)]
pub struct TrackerFrontOpts {
    /// FastDFS protocol listener, IP:PORT, or `none` [default: 127.0.0.1:22122]
    #[arg(long, env = "CAIRN_FASTDFS_LISTEN")]
    fastdfs_listen: Option<String>,
    /// IP field size in FastDFS replies: 16 (FastDFS ≤ 6.10, 6.15+) or 46 (clients of 6.11–6.14) [default: 16]
    #[arg(long, env = "CAIRN_FASTDFS_IP_SIZE")]
    fastdfs_ip_size: Option<String>,
}

/// Front-end options of `cairn storage`.
#[derive(Args, Debug, Clone)]
pub struct StorageFrontOpts {
    /// FastDFS protocol listener, IP:PORT, or `none` [default: 127.0.0.1:23000]
    #[arg(long, env = "CAIRN_FASTDFS_LISTEN")]
    fastdfs_listen: Option<String>,
    /// IP field size in FastDFS replies: 16 or 46 [default: 16]
    #[arg(long, env = "CAIRN_FASTDFS_IP_SIZE")]
    fastdfs_ip_size: Option<String>,
    #[command(flatten)]
    http: HttpOpts,
}

/// HTTP download options.
#[derive(Args, Debug, Clone)]
pub struct HttpOpts {
    /// HTTP download listener, IP:PORT, or `none` [default: none; 127.0.0.1:8888 in `cairn server`]
    #[arg(long, env = "CAIRN_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// Require FastDFS anti-steal tokens made with this secret
    #[arg(long, env = "CAIRN_HTTP_TOKEN_SECRET", hide_env_values = true)]
    http_token_secret: Option<String>,
    /// Seconds a token stays valid after its timestamp [default: 900]
    #[arg(long, env = "CAIRN_HTTP_TOKEN_TTL_SECS")]
    http_token_ttl_secs: Option<u64>,
}

/// Front-end options of `cairn server`.
#[derive(Args, Debug, Clone)]
pub struct ServerFrontOpts {
    /// FastDFS tracker protocol listener, or `none` [default: 127.0.0.1:22122]
    #[arg(long)]
    fastdfs_listen: Option<String>,
    /// FastDFS storage protocol listener, or `none` [default: 127.0.0.1:23000]
    #[arg(long)]
    fastdfs_storage_listen: Option<String>,
    /// IP field size in FastDFS replies: 16 or 46 [default: 16]
    #[arg(long)]
    fastdfs_ip_size: Option<String>,
    #[command(flatten)]
    http: HttpOpts,
}

fn enabled(v: Option<&String>, default: Option<String>) -> Option<String> {
    match v {
        Some(s) if s.eq_ignore_ascii_case("none") || s.is_empty() => None,
        Some(s) => Some(s.clone()),
        None => default,
    }
}

fn ip_size(v: Option<&String>) -> Result<IpSize> {
    match v {
        None => Ok(IpSize::V4),
        Some(s) => IpSize::parse(s).ok_or_else(|| anyhow!("FastDFS IP size {s:?}: use 16 or 46")),
    }
}

/// The tracker-side FastDFS listener, resolved from flags and file.
pub struct TrackerFront {
    listen: Option<String>,
    ip: IpSize,
    /// The flag that sets `listen`, for an error.
    flag: &'static str,
}

impl TrackerFront {
    /// For `cairn tracker` listening on `listen`: the FastDFS listener
    /// is on the same host unless told otherwise.
    pub fn from_tracker(o: &TrackerFrontOpts, file: &FileConfig, listen: &str) -> Result<Self> {
        Ok(Self {
            listen: enabled(
                o.fastdfs_listen.as_ref().or(file.tracker.fastdfs_listen.as_ref()),
                Some(on_host_of(listen, FASTDFS_TRACKER_PORT)?),
            ),
            ip: ip_size(o.fastdfs_ip_size.as_ref().or(file.tracker.fastdfs_ip_size.as_ref()))?,
            flag: "--fastdfs-listen",
        })
    }

    /// For `cairn server`, whose tracker listens on `listen`.
    pub fn from_server(o: &ServerFrontOpts, file: &FileConfig, listen: &str) -> Result<Self> {
        let t =
            TrackerFrontOpts { fastdfs_listen: o.fastdfs_listen.clone(), fastdfs_ip_size: o.fastdfs_ip_size.clone() };
        Self::from_tracker(&t, file, listen)
    }

    /// Binds and starts the listener (if on), answering from the tracker
    /// at `tracker_addr`, which runs in this process (`local`).
    pub async fn start(
        &self,
        tracker_addr: &str,
        secret: ClusterSecret,
        local: LocalTracker,
        stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let Some(listen) = &self.listen else { return Ok(()) };
        let l = bind(listen, "FastDFS tracker listener", self.flag).await?;
        println!("FastDFS tracker protocol on {}", l.local_addr()?);
        let client = Arc::new(Client::new(ClientConfig::new(vec![tracker_addr.to_string()], secret)));
        let service = TrackerService::new(client, self.ip).with_local(Arc::new(TrackerPlacement(local)));
        tokio::spawn(cairn_fastdfs::serve_tracker(l, service, stop));
        Ok(())
    }
}

/// The FastDFS tracker listener's placement by the tracker in this process.
struct TrackerPlacement(LocalTracker);

impl LocalPlacement for TrackerPlacement {
    fn place(&self, group: Option<&str>, exclude: &[String]) -> Option<Result<StoreTarget, cairn_client::Error>> {
        self.0.place(group, exclude).map(|placed| placed.map_err(cairn_client::Error::Remote))
    }

    fn primary(&self, id: &FileId) -> Option<Result<String, cairn_client::Error>> {
        self.0.primary(id).map(|answer| answer.map_err(cairn_client::Error::Remote))
    }

    fn facts(&self) -> Option<TrackerFacts> {
        let (reserved, times) = self.0.facts()?;
        let secs = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Some(TrackerFacts {
            reserved: match reserved {
                cairn_tracker::Reserved::Bytes(b) => ReservedSpace::Bytes(b),
                cairn_tracker::Reserved::Percent(p) => ReservedSpace::Percent(p),
            },
            members: times
                .into_iter()
                .map(|t| (t.node_id, MemberTimes { joined: secs(t.joined), up_since: secs(t.up_since) }))
                .collect(),
        })
    }
}

/// The storage-side front ends, bound before the node starts so that it
/// can tell the trackers where they are.
pub struct StorageFront {
    fastdfs: Option<(TcpListener, String)>,
    ip: IpSize,
    /// The HTTP download listener, for the node to serve on.
    pub http: Option<TcpListener>,
    http_addr: Option<String>,
    token: Option<HttpToken>,
}

impl StorageFront {
    /// For `cairn storage`: binds what is on. `listen` is the node's
    /// native listening address, whose host the front ends listen on unless
    /// told otherwise; `advertise` is its address as others reach it, and
    /// the front ends are advertised on its host.
    pub async fn bind_storage(o: &StorageFrontOpts, file: &FileConfig, listen: &str, advertise: &str) -> Result<Self> {
        let s = &file.storage;
        let fastdfs = enabled(
            o.fastdfs_listen.as_ref().or(s.fastdfs_listen.as_ref()),
            Some(on_host_of(listen, FASTDFS_STORAGE_PORT)?),
        );
        let ip = o.fastdfs_ip_size.as_ref().or(s.fastdfs_ip_size.as_ref());
        let flags = ("--fastdfs-listen", "--http-listen");
        Self::bind(fastdfs, ip, &o.http, file, None, advertise, flags).await
    }

    /// For `cairn server`: HTTP on by default.
    pub async fn bind_server(o: &ServerFrontOpts, file: &FileConfig, listen: &str, advertise: &str) -> Result<Self> {
        let fastdfs = enabled(
            o.fastdfs_storage_listen.as_ref().or(file.storage.fastdfs_listen.as_ref()),
            Some(on_host_of(listen, FASTDFS_STORAGE_PORT)?),
        );
        let ip = o.fastdfs_ip_size.as_ref().or(file.storage.fastdfs_ip_size.as_ref());
        let http_default = Some(on_host_of(listen, HTTP_PORT)?);
        let flags = ("--fastdfs-storage-listen", "--http-listen");
        Self::bind(fastdfs, ip, &o.http, file, http_default, advertise, flags).await
    }

    async fn bind(
        fastdfs: Option<String>,
        ip: Option<&String>,
        http: &HttpOpts,
        file: &FileConfig,
        http_default: Option<String>,
        advertise: &str,
        (fastdfs_flag, http_flag): (&str, &str),
    ) -> Result<Self> {
        let host = Endpoint::parse(advertise).map(|e| e.ip).ok_or_else(|| anyhow!("bad address {advertise:?}"))?;
        let reachable = |l: &TcpListener| -> Result<String> { Ok(join_host(&host, l.local_addr()?.port())) };
        let fastdfs = match fastdfs {
            Some(a) => {
                let l = bind(&a, "FastDFS storage listener", fastdfs_flag).await?;
                let adv = reachable(&l)?;
                Some((l, adv))
            }
            None => None,
        };
        let s = &file.storage;
        let (http_listener, http_addr) =
            match enabled(http.http_listen.as_ref().or(s.http_listen.as_ref()), http_default) {
                Some(a) => {
                    let l = bind(&a, "HTTP download listener", http_flag).await?;
                    let adv = reachable(&l)?;
                    (Some(l), Some(adv))
                }
                None => (None, None),
            };
        let secret = http.http_token_secret.clone().or(s.http_token_secret.clone()).filter(|s| !s.is_empty());
        let ttl = Duration::from_secs(http.http_token_ttl_secs.or(s.http_token_ttl_secs).unwrap_or(TOKEN_TTL_SECS));
        if secret.is_some() && http_listener.is_none() {
            bail!("an HTTP token secret was given but HTTP downloads are off (--http-listen)");
        }
        Ok(Self {
            fastdfs,
            ip: ip_size(ip)?,
            http: http_listener,
            http_addr,
            token: secret.map(|secret| HttpToken { secret, ttl }),
        })
    }

    /// Fills in what the node tells trackers and enforces.
    pub fn configure(&self, cfg: &mut cairn_storage::StorageConfig) {
        cfg.fastdfs_advertise = self.fastdfs.as_ref().map(|(_, a)| a.clone());
        cfg.http_advertise = self.http_addr.clone();
        cfg.http_token = self.token.clone();
    }

    /// Starts the FastDFS listener (the HTTP one runs inside the node).
    pub fn start(
        &mut self,
        node_addr: &str,
        group: &str,
        trackers: Vec<String>,
        secret: ClusterSecret,
        local: LocalNode,
        stop: watch::Receiver<bool>,
    ) -> Result<()> {
        if let Some(a) = &self.http_addr {
            println!("HTTP downloads on {a}");
        }
        let Some((l, adv)) = self.fastdfs.take() else { return Ok(()) };
        println!("FastDFS storage protocol on {adv}");
        let me = Endpoint::parse(&adv).ok_or_else(|| anyhow!("bad address {adv:?}"))?;
        let client = Arc::new(Client::new(ClientConfig::new(trackers, secret)));
        let service = StorageService::new(client, node_addr.to_string(), Some(group.to_string()), me, self.ip)
            .with_local(Arc::new(NodeBlobs(local)));
        tokio::spawn(cairn_fastdfs::serve_storage(l, service, stop));
        Ok(())
    }
}

/// The FastDFS listener's reads and uploads through the storage node in
/// this process.
struct NodeBlobs(LocalNode);

impl LocalBlobs for NodeBlobs {
    fn open<'a>(
        &'a self,
        id: &'a FileId,
        offset: u64,
        length: Option<u64>,
    ) -> BoxFuture<'a, Option<(u64, BoxStream<'static, std::io::Result<bytes::Bytes>>)>> {
        Box::pin(async move { self.0.open(id, offset, length).await.map(|r| (r.len, r.chunks)) })
    }

    fn takes_uploads(&self) -> bool {
        self.0.takes_uploads()
    }

    fn upload(
        &self,
        appender: bool,
        ext: String,
        content: BoxStream<'static, std::io::Result<bytes::Bytes>>,
    ) -> BoxFuture<'_, Result<FileId, cairn_client::Error>> {
        Box::pin(async move { self.0.upload(appender, ext, content).await.map_err(node_error) })
    }

    fn upload_slave<'a>(
        &'a self,
        master: &'a FileId,
        prefix: &'a str,
        ext: &'a str,
        content: BoxStream<'static, std::io::Result<bytes::Bytes>>,
    ) -> BoxFuture<'a, Result<FileId, cairn_client::Error>> {
        Box::pin(async move { self.0.upload_slave(master, prefix, ext, content).await.map_err(node_error) })
    }

    fn delete<'a>(&'a self, id: &'a FileId) -> BoxFuture<'a, Option<Result<(), cairn_client::Error>>> {
        Box::pin(async move { self.0.delete(id).await.map(|r| r.map_err(node_error)) })
    }
}

/// The node's refusal as the client would have reported it over the wire,
/// so the listener answers a FastDFS client with the same status.
fn node_error(e: ProtoError) -> cairn_client::Error {
    match e {
        ProtoError::Remote(refused) => cairn_client::Error::Remote(refused),
        other => cairn_client::Error::node("this node", other),
    }
}

/// `port` on the host of `listen` (an `IP:PORT`): a listener whose address
/// is not given goes where the role's own listener is, so that what is
/// advertised for it on that host is where it is.
fn on_host_of(listen: &str, port: u16) -> Result<String> {
    let host = Endpoint::parse(listen).map(|e| e.ip).ok_or_else(|| anyhow!("{listen:?} is not an IP:port address"))?;
    Ok(join_host(&host, port))
}

fn join_host(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
