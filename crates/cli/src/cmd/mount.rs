//! `cairn mount VOLUME MOUNTPOINT`: a volume as a local file system (FUSE).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use cairn_client::{Client, ClientConfig, MetaClient};
use clap::Args;

use super::volume::MetaArgs;
use crate::{secret, ClusterArgs};

/// `cairn mount`
#[derive(Args, Debug)]
pub struct MountArgs {
    /// The volume
    volume: String,
    /// An empty directory to mount it on
    mountpoint: PathBuf,
    /// Let other users than the one mounting use the mount (needs `user_allow_other` in /etc/fuse.conf unless root)
    #[arg(long)]
    allow_other: bool,
    #[command(flatten)]
    meta: MetaArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Mounts and serves until the mount goes away (`umount`, `fusermount3
/// -u`) or the process is told to stop (then it unmounts).
pub async fn run(a: MountArgs) -> Result<()> {
    let data = crate::config::default_data_dir();
    let secret = secret::require(a.cluster.secret_file.as_deref(), Some(&data))?;
    let meta = MetaClient::new(a.meta.addr(), secret.clone());
    let blobs = Arc::new(Client::new(ClientConfig::new(super::trackers(&a.cluster), secret)));
    let fs =
        cairn_fs::Fs::open(meta, blobs, &a.volume).await.map_err(|e| anyhow!("volume {}: {}", a.volume, e.message))?;
    let fuse = cairn_fuse::CairnFuse::new(Arc::new(fs), tokio::runtime::Handle::current());
    let cfg = cairn_fuse::config(&a.volume, a.allow_other);
    let mountpoint = a.mountpoint.clone();
    let session = tokio::task::spawn_blocking(move || cairn_fuse::spawn_mount(fuse, &mountpoint, &cfg))
        .await?
        .with_context(|| format!("cannot mount on {}", a.mountpoint.display()))?;
    println!("volume {} mounted on {}", a.volume, a.mountpoint.display());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ended = tokio::task::spawn_blocking(move || session.join());
    tokio::select! {
        r = ended => r?.context("the mount ended with an error")?,
        _ = tokio::signal::ctrl_c() => unmount(&a.mountpoint),
        _ = term.recv() => unmount(&a.mountpoint),
    }
    Ok(())
}

fn unmount(mountpoint: &std::path::Path) {
    let _ = std::process::Command::new("fusermount3").arg("-u").arg(mountpoint).status();
}
