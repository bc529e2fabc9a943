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
    /// Mount even on a directory that has entries (they are hidden while
    /// mounted, as with any mount)
    #[arg(long)]
    nonempty: bool,
    /// Let other users than the one mounting use the mount (needs `user_allow_other` in /etc/fuse.conf unless root)
    #[arg(long)]
    allow_other: bool,
    /// Run in the background once mounted (its log goes to FILE with --log)
    #[arg(long)]
    daemon: bool,
    /// Log file of a --daemon mount [default: none]
    #[arg(long, requires = "daemon")]
    log: Option<PathBuf>,
    /// TOML configuration file (its [mount] section)
    #[arg(long, env = "CAIRN_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    opts: cairn_fuse::MountSettings,
    #[command(flatten)]
    meta: MetaArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

impl MountArgs {
    /// Whether this process serves the mount (without `--daemon`), rather
    /// than starting one in the background and returning.
    pub fn runs_here(&self) -> bool {
        !self.daemon
    }
}

/// Mounts and serves until the mount goes away (`umount`, `fusermount3
/// -u`) or the process is told to stop (then it unmounts).
pub async fn run(a: MountArgs) -> Result<()> {
    check_mountpoint(&a.mountpoint, a.nonempty)?;
    if a.daemon {
        return daemonize(&a).await;
    }
    let file = crate::config::load(a.config.as_deref())?.mount;
    let opts = crate::config::overlay(&file, &a.opts)?;
    let secret = secret::for_client(a.cluster.secret_file.as_deref())?;
    let meta = MetaClient::new(a.meta.addr(), secret.clone()).retrying_for(opts.meta_retry());
    let blobs = Arc::new(Client::new(ClientConfig::new(super::trackers(&a.cluster), secret)));
    let mut fs =
        cairn_fs::Fs::open(meta, blobs, &a.volume).await.map_err(|e| anyhow!("volume {}: {}", a.volume, e.message))?;
    let cache_dir = (opts.cache_mib() > 0).then(|| block_cache_dir(&a, &opts));
    if let Some(dir) = &cache_dir {
        let cache = cairn_fs::BlockCache::create(dir, opts.cache_mib() << 20).with_context(|| {
            format!("cannot make the block cache {} (--cache-dir, or --cache-mib 0)", dir.display())
        })?;
        fs = fs.with_block_cache(cache);
    }
    let fs = Arc::new(fs);
    let at = std::fs::canonicalize(&a.mountpoint).unwrap_or_else(|_| a.mountpoint.clone());
    let what = format!("mount {}:{} (pid {})", hostname(), at.display(), std::process::id());
    cairn_fs::Fs::attach(&fs, what).await.map_err(|e| anyhow!("volume {}: {}", a.volume, e.message))?;
    match fs.missing_groups().await {
        Ok(missing) if !missing.is_empty() => tracing::error!(
            volume = %a.volume,
            groups = %missing.join(","),
            "the volume's groups are not in the cluster: writes to them fail until they are back"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e.message, "cannot ask the trackers which groups exist"),
    }
    let fuse = cairn_fuse::CairnFuse::new(fs.clone(), tokio::runtime::Handle::current());
    let cfg = cairn_fuse::config(&a.volume, a.allow_other);
    let mountpoint = a.mountpoint.clone();
    let session = tokio::task::spawn_blocking(move || cairn_fuse::spawn_mount(fuse, &mountpoint, &cfg))
        .await?
        .with_context(|| format!("cannot mount on {}", a.mountpoint.display()))?;
    cairn_fuse::follow_changes(&fs, session.notifier());
    if opts.read_ahead_kib() > 0 {
        let (path, kib) = (a.mountpoint.clone(), opts.read_ahead_kib());
        match tokio::task::spawn_blocking(move || cairn_fuse::set_read_ahead(&path, kib)).await? {
            Ok(()) => tracing::debug!(kib, "kernel read-ahead set"),
            Err(e) => {
                tracing::info!(error = %e, "cannot set the kernel's read-ahead (not root?); sequential reads will be slower")
            }
        }
    }
    println!("volume {} mounted on {}", a.volume, a.mountpoint.display());
    if let Some(ready) = std::env::var_os(READY_FILE_ENV) {
        // The `--daemon` parent returns once this exists: the mount is
        // set up (read-ahead included), so a `umount` right after it
        // finds nothing of this process in the way.
        if let Err(e) = std::fs::write(&ready, b"mounted\n") {
            tracing::warn!(error = %e, "cannot tell the starting command the mount is ready");
        }
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ended = tokio::task::spawn_blocking(move || session.join());
    tokio::select! {
        r = ended => r?.context("the mount ended with an error")?,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("received SIGINT, unmounting");
            unmount(&a.mountpoint)
        }
        _ = term.recv() => {
            tracing::info!("received SIGTERM, unmounting");
            unmount(&a.mountpoint)
        }
    }
    if let Err(e) = fs.detach().await {
        tracing::warn!(error = %e.message, "cannot tell the meta service this mount has gone (it forgets it within a minute)");
    }
    if let Some(dir) = &cache_dir {
        cairn_fs::BlockCache::remove(dir);
    }
    Ok(())
}

/// Refuses a mount point that is not a directory, is already a mount
/// point (a second mount would hide the first, and one `umount` would
/// then leave the other in place unseen), or has entries, unless
/// `nonempty` (a mount hides them: easy to take for lost files).
fn check_mountpoint(at: &std::path::Path, nonempty: bool) -> Result<()> {
    let meta = std::fs::metadata(at).with_context(|| format!("mount point {}", at.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("mount point {} is not a directory", at.display());
    }
    let canonical = std::fs::canonicalize(at).with_context(|| format!("mount point {}", at.display()))?;
    if is_mounted(&canonical) {
        anyhow::bail!(
            "{} is already a mount point; unmount it first (umount {}) or choose another directory",
            at.display(),
            at.display()
        );
    }
    let mut entries = std::fs::read_dir(at).with_context(|| format!("cannot list the mount point {}", at.display()))?;
    if !nonempty && entries.next().is_some() {
        anyhow::bail!(
            "mount point {} is not empty; its files would be hidden while mounted (use an empty directory, or --nonempty)",
            at.display()
        );
    }
    Ok(())
}

/// This machine's name, for what `volume info` lists as attached.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// This mount's block cache directory: one per volume and mount point,
/// so mounts side by side never share one.
fn block_cache_dir(a: &MountArgs, opts: &cairn_fuse::MountSettings) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let at = std::fs::canonicalize(&a.mountpoint).unwrap_or_else(|_| a.mountpoint.clone());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    at.hash(&mut h);
    let base = opts.cache_dir.clone().unwrap_or_else(crate::config::default_cache_dir);
    base.join("mounts").join(format!("{}-{:016x}", a.volume, h.finish()))
}

/// Where a `--daemon` mount's child writes that it is ready.
const READY_FILE_ENV: &str = "CAIRN_MOUNT_READY_FILE";

/// Starts the same mount in the background (its own process group, so
/// the terminal's Ctrl-C does not reach it) and returns once it is mounted.
async fn daemonize(a: &MountArgs) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let args: Vec<String> = std::env::args().skip(1).filter(|x| x != "--daemon").collect();
    let mut args_iter = args.into_iter();
    let mut kept = Vec::new();
    while let Some(x) = args_iter.next() {
        if x == "--log" {
            args_iter.next();
        } else if !x.starts_with("--log=") {
            kept.push(x);
        }
    }
    // Without --log, the child's messages come here until it is mounted,
    // so a failure can be told (after that, nobody reads them).
    let (stdout, stderr) = match &a.log {
        Some(p) => {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open {}", p.display()))?;
            (std::process::Stdio::from(log.try_clone()?), std::process::Stdio::from(log))
        }
        None => (std::process::Stdio::null(), std::process::Stdio::piped()),
    };
    // The child says it is ready by writing this file; a mount in the
    // kernel's table alone is not enough (the child may still be setting
    // it up, and an unmount then would find it busy).
    let ready_dir = tempfile::Builder::new().prefix("cairn-mount-").tempdir()?;
    let ready = ready_dir.path().join("ready");
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(&kept)
        .env(READY_FILE_ENV, &ready)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .context("cannot start the background mount")?;
    let target = std::fs::canonicalize(&a.mountpoint).unwrap_or_else(|_| a.mountpoint.clone());
    for _ in 0..300 {
        if ready.exists() && is_mounted(&target) {
            println!("volume {} mounted on {} (pid {})", a.volume, a.mountpoint.display(), child.id());
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let said = match (child.stderr.take(), &a.log) {
                (Some(mut pipe), _) => {
                    let mut text = String::new();
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
                    text
                }
                (None, Some(log)) => std::fs::read_to_string(log).unwrap_or_default(),
                (None, None) => String::new(),
            };
            return Err(match last_error(&said) {
                Some(e) => anyhow!("{e}"),
                None => anyhow!("the mount process exited ({status}); run without --daemon to see why"),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    Err(anyhow!("{} was not mounted within 15 s", a.mountpoint.display()))
}

/// The error a failed `cairn mount` printed last (`cairn: error: …`).
fn last_error(said: &str) -> Option<&str> {
    said.lines().rev().find_map(|l| l.strip_prefix("cairn: error: "))
}

/// Whether `path` (canonical) is a mount point, from the kernel's list
/// (whose paths escape spaces and the like as `\ooo`).
fn is_mounted(path: &std::path::Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = path.as_os_str().as_encoded_bytes();
    mounts.lines().any(|l| l.split(' ').nth(4).is_some_and(|m| unescape_octal(m) == want))
}

fn unescape_octal(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let v = u32::from(d[0] - b'0') * 64 + u32::from(d[1] - b'0') * 8 + u32::from(d[2] - b'0');
                out.push(v as u8);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

fn unmount(mountpoint: &std::path::Path) {
    let _ = std::process::Command::new("fusermount3").arg("-u").arg(mountpoint).status();
}
