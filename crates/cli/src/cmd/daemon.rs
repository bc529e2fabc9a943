//! The daemons: `server`, `tracker`, `storage`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use cairn_meta::MetaSettings;
use cairn_proto::ClusterSecret;
use cairn_storage::{StorageConfig, StorageSettings};
use cairn_store::{DirLock, Store, StoreConfig};
use cairn_tracker::{TrackerConfig, TrackerSettings};
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::front::{ServerFrontOpts, StorageFront, StorageFrontOpts, TrackerFront, TrackerFrontOpts};
use crate::config::{self, FileConfig};
use crate::secret;

/// `cairn tracker`
#[derive(Args, Debug)]
pub struct TrackerArgs {
    /// Address to listen on [default: 127.0.0.1:22300]
    #[arg(long, env = "CAIRN_LISTEN")]
    listen: Option<String>,
    /// Data directory
    #[arg(long)]
    data: Option<PathBuf>,
    /// TOML configuration file
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// File holding the cluster secret [without it: the secret itself from $CAIRN_SECRET, else DATA/secret]
    #[arg(long)]
    secret_file: Option<PathBuf>,
    #[command(flatten)]
    opts: TrackerSettings,
    #[command(flatten)]
    front: TrackerFrontOpts,
}

/// `cairn storage`
#[derive(Args, Debug)]
pub struct StorageArgs {
    /// Trackers to report to, comma-separated
    #[arg(long, value_delimiter = ',', env = "CAIRN_TRACKER")]
    tracker: Vec<String>,
    /// Group this node serves [default: group1]
    #[arg(long, env = "CAIRN_GROUP", conflicts_with = "spare")]
    group: Option<String>,
    /// Start without a group and wait for `cairn group add-node GROUP ADDR`
    #[arg(long)]
    spare: bool,
    /// Address to listen on [default: 127.0.0.1:23300]
    #[arg(long, env = "CAIRN_LISTEN")]
    listen: Option<String>,
    /// Address trackers, peers and clients reach this node at [default: the listen address]
    #[arg(long, env = "CAIRN_ADVERTISE")]
    advertise: Option<String>,
    /// Data directory (node ID, binlog, default store path)
    #[arg(long)]
    data: Option<PathBuf>,
    /// TOML configuration file
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// File holding the cluster secret [without it: the secret itself from $CAIRN_SECRET, else DATA/secret]
    #[arg(long)]
    secret_file: Option<PathBuf>,
    #[command(flatten)]
    opts: StorageSettings,
    #[command(flatten)]
    front: StorageFrontOpts,
}

/// `cairn meta`
#[derive(Args, Debug)]
pub struct MetaDaemonArgs {
    /// Address to listen on [default: 127.0.0.1:22500]
    #[arg(long, env = "CAIRN_META_LISTEN")]
    listen: Option<String>,
    /// Data directory (the namespace database)
    #[arg(long)]
    data: Option<PathBuf>,
    /// TOML configuration file (its [meta] section)
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// Trackers of the cluster whose blobs hold the volumes' data, comma-separated
    #[arg(long, value_delimiter = ',', env = "CAIRN_TRACKER")]
    tracker: Vec<String>,
    /// File holding the cluster secret [without it: the secret itself from $CAIRN_SECRET, else DATA/secret]
    #[arg(long)]
    secret_file: Option<PathBuf>,
    #[command(flatten)]
    opts: MetaSettings,
}

/// `cairn server`
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Data directory [default: $CAIRN_DATA, then ~/.local/share/cairn]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Tracker address to listen on [default: 127.0.0.1:22300]
    #[arg(long)]
    listen: Option<String>,
    /// Storage node address to listen on [default: 127.0.0.1:23300]
    #[arg(long)]
    storage_listen: Option<String>,
    /// Meta service address to listen on, or `none` [default: 127.0.0.1:22500]
    #[arg(long)]
    meta_listen: Option<String>,
    /// Group of the storage node [default: group1]
    #[arg(long)]
    group: Option<String>,
    /// TOML configuration file
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    /// File holding the cluster secret [without it: the secret itself from $CAIRN_SECRET, else DATA/secret, created if missing]
    #[arg(long)]
    secret_file: Option<PathBuf>,
    #[command(flatten)]
    tracker: TrackerSettings,
    #[command(flatten)]
    storage: StorageSettings,
    #[command(flatten)]
    meta: MetaSettings,
    #[command(flatten)]
    front: ServerFrontOpts,
}

/// The tracker's configuration: its flags over the file's `[tracker]`.
fn tracker_config(file: &FileConfig, flags: &TrackerSettings) -> Result<TrackerConfig> {
    config::overlay(&file.tracker, flags)?.config().map_err(|e| anyhow!(e))
}

/// Binds the listener of `what`, whose address `flag` sets: a port that
/// is taken (another role of this host, another program) is named with
/// the flag that moves it.
pub(crate) async fn bind(addr: &str, what: &str, flag: &str) -> Result<TcpListener> {
    let sa: SocketAddr = addr.parse().map_err(|_| anyhow!("{what}: {addr:?} is not an IP:port address ({flag})"))?;
    match TcpListener::bind(sa).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            bail!("{what}: {addr} is already in use on this host (another cairn role or program); choose another port with {flag}")
        }
        Err(e) => Err(anyhow!("{what}: cannot listen on {addr} ({flag}): {e}")),
    }
}

/// Locks a role's data directory for this process (see `DirLock`).
fn lock_dir(dir: &std::path::Path, role: &str) -> Result<DirLock> {
    Ok(DirLock::acquire(dir, role)?)
}

/// Turns SIGINT and SIGTERM into a shutdown signal.
fn shutdown_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return,
        };
        let which = tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        tracing::info!("received {which}, shutting down");
        let _ = tx.send(true);
    });
    rx
}

fn advertise_for(listener: &TcpListener, advertise: Option<&String>) -> Result<String> {
    if let Some(a) = advertise {
        return Ok(a.clone());
    }
    let local = listener.local_addr()?;
    if local.ip().is_unspecified() {
        bail!("listening on {local}: pass --advertise with the address other machines reach this node at");
    }
    Ok(local.to_string())
}

struct StorageParts {
    store: Store,
    cfg: StorageConfig,
}

fn storage_parts(
    file: &FileConfig,
    flags: &StorageSettings,
    group: Option<&String>,
    data: &std::path::Path,
    trackers: Vec<String>,
    advertise: String,
) -> Result<StorageParts> {
    let o = config::overlay(&file.storage, flags)?;
    let group = bound_group(data, group.or(o.group.as_ref()).cloned())?;
    let store_paths = o.store_paths.clone().unwrap_or_default();
    let policy = o.path_policy().map_err(|e| anyhow!(e))?;
    let pack_max = o.pack_max().map_err(|e| anyhow!(e))?;
    let store = Store::open(data, StoreConfig { group, store_paths, policy, pack_max })
        .with_context(|| format!("cannot open the store in {}", data.display()))?;
    Ok(StorageParts { store, cfg: o.config(trackers, advertise) })
}

/// File in a data dir naming the group its blobs belong to.
const GROUP_FILE: &str = "group";

/// The group a data dir serves: the one it was first opened with (kept in
/// `DATA/group`), which a flag may not contradict; else `asked`, else group1.
fn bound_group(data: &std::path::Path, asked: Option<String>) -> Result<String> {
    let path = data.join(GROUP_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bound = text.trim().to_string();
            if let Some(a) = asked.filter(|a| *a != bound) {
                bail!(
                    "{} holds blobs of group {bound}, not {a} (remove --group or use another data dir)",
                    data.display()
                );
            }
            Ok(bound)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
            let group = asked.unwrap_or_else(|| "group1".to_string());
            cairn_proto::file_id::validate_group(&group).map_err(|r| anyhow!("bad group name {group:?}: {r}"))?;
            std::fs::write(&path, format!("{group}\n")).with_context(|| format!("cannot write {}", path.display()))?;
            Ok(group)
        }
        Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// `cairn tracker`
pub async fn tracker(a: TrackerArgs) -> Result<()> {
    let file = config::load(a.config.as_deref())?;
    let data = a.data.or(file.tracker.data.clone()).ok_or_else(|| anyhow!("cairn tracker needs --data DIR"))?;
    // The secret first: a role that cannot run leaves no directory behind.
    let secret = secret::require(a.secret_file.as_deref(), &data)?;
    let _lock = lock_dir(&data, "tracker")?;
    let cfg = tracker_config(&file, &a.opts)?;
    let listen = a.listen.unwrap_or_else(|| file.tracker.listen_or_default());
    let front = TrackerFront::from_tracker(&a.front, &file, &listen)?;
    let listener = bind(&listen, "tracker", "--listen").await?;
    let local = listener.local_addr()?;
    println!("tracker listening on {local}");
    let shutdown = shutdown_on_signal();
    let local_tracker = cairn_tracker::LocalTracker::default();
    front.start(&local.to_string(), secret.clone(), local_tracker.clone(), shutdown.clone()).await?;
    cairn_tracker::run(listener, secret, cfg, local_tracker, shutdown).await;
    Ok(())
}

/// `cairn storage`
pub async fn storage(a: StorageArgs) -> Result<()> {
    let file = config::load(a.config.as_deref())?;
    let data = a.data.or(file.storage.data.clone()).ok_or_else(|| anyhow!("cairn storage needs --data DIR"))?;
    let trackers =
        if a.tracker.is_empty() { file.storage.trackers.clone().unwrap_or_default() } else { a.tracker.clone() };
    if trackers.is_empty() {
        bail!("cairn storage needs --tracker ADDR[,ADDR...]");
    }
    let secret = secret::require(a.secret_file.as_deref(), &data)?;
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let listen = a.listen.unwrap_or_else(|| file.storage.listen_or_default());
    let listener = bind(&listen, "storage", "--listen").await?;
    let advertise = advertise_for(&listener, a.advertise.as_ref().or(file.storage.advertise.as_ref()))?;
    let shutdown = shutdown_on_signal();
    let mut group = a.group.clone();
    if a.spare && !data.join(GROUP_FILE).exists() {
        println!(
            "spare storage node listening on {} (advertised as {advertise}); waiting for a group",
            listener.local_addr()?
        );
        let every = config::overlay(&file.storage, &a.opts)?.heartbeat_interval();
        match cairn_storage::wait_for_group(&trackers, secret.clone(), &advertise, every, shutdown.clone()).await {
            Some(g) => group = Some(g),
            None => return Ok(()),
        }
    }
    let mut parts = storage_parts(&file, &a.opts, group.as_ref(), &data, trackers.clone(), advertise.clone())?;
    let mut front = StorageFront::bind_storage(&a.front, &file, &listen, &advertise).await?;
    front.configure(&mut parts.cfg);
    println!(
        "storage node {} of group {} listening on {} (advertised as {advertise})",
        parts.store.node_id(),
        parts.store.group(),
        listener.local_addr()?
    );
    let local = cairn_storage::LocalNode::default();
    front.start(&advertise, parts.store.group(), trackers, secret.clone(), local.clone(), shutdown.clone())?;
    cairn_storage::run(listener, front.http.take(), secret, parts.cfg, parts.store, local, shutdown).await;
    Ok(())
}

/// `cairn meta`
pub async fn meta(a: MetaDaemonArgs) -> Result<()> {
    let file = config::load(a.config.as_deref())?.meta;
    let data = a.data.or(file.data.clone()).ok_or_else(|| anyhow!("cairn meta needs --data DIR"))?;
    let secret = secret::require(a.secret_file.as_deref(), &data)?;
    let _lock = lock_dir(&data, "meta service")?;
    let listen = a.listen.unwrap_or_else(|| file.listen_or_default());
    let trackers = if a.tracker.is_empty() { file.trackers.clone().unwrap_or_default() } else { a.tracker };
    let listener = bind(&listen, "meta service", "--listen").await?;
    println!("meta service listening on {} (data {})", listener.local_addr()?, data.display());
    if trackers.is_empty() {
        println!("no --tracker given: blobs of deleted files are not collected");
    }
    let opts = config::overlay(&file, &a.opts)?.options(trackers);
    cairn_meta::server::run(listener, secret, &data, opts, shutdown_on_signal()).await?;
    Ok(())
}

/// `cairn server`: a tracker and a storage node in one process.
pub async fn server(a: ServerArgs) -> Result<()> {
    let file = config::load(a.config.as_deref())?;
    let data = a.data.clone().or(file.server.data.clone()).unwrap_or_else(config::default_data_dir);
    // Before anything is written there (the secret, the node ID).
    let _lock = lock_dir(&data, "server")?;
    let (secret, secret_path, created): (ClusterSecret, Option<PathBuf>, bool) =
        secret::for_server(a.secret_file.as_deref(), &data)?;
    let tcfg = tracker_config(&file, &a.tracker)?;
    let tlisten = a.listen.unwrap_or_else(|| file.tracker.listen_or_default());
    let slisten = a.storage_listen.unwrap_or_else(|| file.storage.listen_or_default());
    let tl = bind(&tlisten, "tracker", "--listen").await?;
    let sl = bind(&slisten, "storage", "--storage-listen").await?;
    let tracker_addr = advertise_for(&tl, None)?;
    let storage_addr = advertise_for(&sl, file.storage.advertise.as_ref())?;
    let mut parts = storage_parts(
        &file,
        &a.storage,
        a.group.as_ref(),
        &data.join("storage"),
        vec![tracker_addr.clone()],
        storage_addr.clone(),
    )?;
    let (meta_listener, _meta_lock) = match a.meta_listen.as_deref().or(file.meta.listen.as_deref()) {
        Some("none") => (None, None),
        other => {
            let addr = other.map(String::from).unwrap_or_else(|| file.meta.listen_or_default());
            let lock = lock_dir(&data.join("meta"), "server (meta service)")?;
            (Some(bind(&addr, "meta service", "--meta-listen").await?), Some(lock))
        }
    };
    let tfront = TrackerFront::from_server(&a.front, &file, &tlisten)?;
    let mut sfront = StorageFront::bind_server(&a.front, &file, &slisten, &storage_addr).await?;
    sfront.configure(&mut parts.cfg);
    println!("cairn server is running");
    println!("  tracker  {tracker_addr}");
    println!("  storage  {storage_addr}  (group {}, node {})", parts.store.group(), parts.store.node_id());
    println!("  data     {}", data.display());
    match (&secret_path, created) {
        (Some(p), true) => {
            println!(
                "  secret   {} (new; this user's client commands find it, others need --secret-file FILE)",
                p.display()
            )
        }
        (Some(p), false) => println!("  secret   {}", p.display()),
        (None, _) => println!("  secret   from CAIRN_SECRET"),
    }
    let shutdown = shutdown_on_signal();
    let local_tracker = cairn_tracker::LocalTracker::default();
    tfront.start(&tracker_addr, secret.clone(), local_tracker.clone(), shutdown.clone()).await?;
    let group = parts.store.group().to_string();
    let local = cairn_storage::LocalNode::default();
    sfront.start(&storage_addr, &group, vec![tracker_addr.clone()], secret.clone(), local.clone(), shutdown.clone())?;
    println!("try: cairn upload FILE --tracker {tracker_addr}");
    // Every part runs until shutdown; one that stops with an error stops
    // the server (exit 1): a server running half is worse than none.
    let meta = match meta_listener {
        Some(ml) => {
            println!("meta service on {}", ml.local_addr()?);
            let opts = config::overlay(&file.meta, &a.meta)?.options(vec![tracker_addr.clone()]);
            let (secret, data, stop) = (secret.clone(), data.join("meta"), shutdown.clone());
            Some(tokio::spawn(async move { cairn_meta::server::run(ml, secret, &data, opts, stop).await }))
        }
        None => None,
    };
    let meta_ended = async move {
        match meta {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };
    let t = tokio::spawn(cairn_tracker::run(tl, secret.clone(), tcfg, local_tracker, shutdown.clone()));
    let s = tokio::spawn(cairn_storage::run(sl, sfront.http.take(), secret, parts.cfg, parts.store, local, shutdown));
    tokio::select! {
        _ = async { tokio::join!(t, s) } => {}
        ended = meta_ended => match ended {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("the meta service stopped: {e}"),
            Err(e) => bail!("the meta service failed: {e}"),
        },
    }
    Ok(())
}
