//! The storage node's options as one declaration: the `[storage]` section
//! of the configuration file and the tuning flags of `cairn storage` and
//! `cairn server` are this one struct (docs/configuration.md).
//!
//! Every field is optional, so that a file and flags can be laid over each
//! other (built-in defaults, then the file, then `CAIRN_*` variables and
//! flags); [`StorageSettings::defaults`] holds the built-in values.
//! Options whose flag differs between commands (addresses, data, group,
//! trackers, the FastDFS and HTTP listeners) are read from the file here
//! and take their flags from the command.

use std::path::PathBuf;
use std::time::Duration;

use cairn_proto::units::parse_size;
use cairn_store::{PathPolicy, DEFAULT_PACK_MAX};
use serde::{Deserialize, Serialize};

use crate::config::StorageConfig;

/// The storage node's port unless told otherwise.
pub const DEFAULT_STORAGE_PORT: u16 = 23300;
/// Packing files larger than this gains nothing (one write each anyway)
/// and holds a pack's sync for longer.
const PACK_MAX_LIMIT: u64 = 64 << 20;

/// `[storage]`: a storage node's options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Address to listen on.
    #[arg(skip)]
    pub listen: Option<String>,
    /// Address trackers, peers and clients reach this node at.
    #[arg(skip)]
    pub advertise: Option<String>,
    /// Data directory (node ID, binlog, default store path).
    #[arg(skip)]
    pub data: Option<PathBuf>,
    /// Group served.
    #[arg(skip)]
    pub group: Option<String>,
    /// Trackers to report to.
    #[arg(skip)]
    pub trackers: Option<Vec<String>>,
    /// Store path (disk); repeat for several, in index order [default: DATA/store0]
    #[arg(long = "store-path", value_name = "DIR")]
    pub store_paths: Option<Vec<PathBuf>>,
    /// Store path choice for new files: most-free or round-robin [default: most-free]
    #[arg(long, env = "CAIRN_STORE_PATH_POLICY")]
    pub store_path_policy: Option<String>,
    /// Milliseconds between heartbeats to each tracker [default: 2000]
    #[arg(long = "heartbeat-ms", value_name = "MS", env = "CAIRN_HEARTBEAT_MS")]
    pub heartbeat_interval_ms: Option<u64>,
    /// Milliseconds a peer may stay silent in one replication step before it is left out of the write [default: 350]
    #[arg(long, env = "CAIRN_REPLICA_TIMEOUT_MS")]
    pub replica_timeout_ms: Option<u64>,
    /// Seconds between background scrubs, 0 for on demand only [default: 86400]
    #[arg(long, env = "CAIRN_SCRUB_INTERVAL_SECS")]
    pub scrub_interval_secs: Option<u64>,
    /// Scrub reading pace in MiB/s, 0 for unlimited [default: 64]
    #[arg(long, env = "CAIRN_SCRUB_RATE_MIB")]
    pub scrub_rate_mib: Option<u64>,
    /// Catch-up and repair copying pace in MiB/s, 0 for unlimited [default: 0]
    #[arg(long, env = "CAIRN_HEAL_RATE_MIB")]
    pub heal_rate_mib: Option<u64>,
    /// Largest file packed into shared append-only pack files (one fsync per batch of uploads), e.g. 256K; 0 gives every file its own [default: 256K]
    #[arg(long = "pack-max-size", env = "CAIRN_PACK_MAX_SIZE")]
    pub pack_max_size: Option<String>,
    /// FastDFS protocol listener, IP:PORT, or `none`.
    #[arg(skip)]
    pub fastdfs_listen: Option<String>,
    /// IP field size in FastDFS replies: 16 or 46.
    #[arg(skip)]
    pub fastdfs_ip_size: Option<String>,
    /// HTTP download listener, IP:PORT, or `none`.
    #[arg(skip)]
    pub http_listen: Option<String>,
    /// Secret of the FastDFS anti-steal token HTTP downloads must carry.
    #[arg(skip)]
    pub http_token_secret: Option<String>,
    /// Seconds a token stays valid after its timestamp.
    #[arg(skip)]
    pub http_token_ttl_secs: Option<u64>,
}

impl StorageSettings {
    /// The built-in values; `None` where the default depends on other
    /// options or on the command (addresses, directories, trackers).
    pub fn defaults() -> Self {
        let c = StorageConfig::new(Vec::new(), String::new());
        Self {
            listen: Some(format!("127.0.0.1:{DEFAULT_STORAGE_PORT}")),
            advertise: None,
            data: None,
            group: Some("group1".into()),
            trackers: None,
            store_paths: None,
            store_path_policy: Some("most-free".into()),
            heartbeat_interval_ms: Some(c.heartbeat_interval.as_millis() as u64),
            replica_timeout_ms: Some(c.replica_timeout.as_millis() as u64),
            scrub_interval_secs: Some(c.scrub_interval.map(|d| d.as_secs()).unwrap_or(0)),
            scrub_rate_mib: Some(c.scrub_rate_mib),
            heal_rate_mib: Some(c.heal_rate_mib),
            pack_max_size: Some(format!("{}K", DEFAULT_PACK_MAX >> 10)),
            fastdfs_listen: None,
            fastdfs_ip_size: Some("16".into()),
            http_listen: None,
            http_token_secret: None,
            http_token_ttl_secs: Some(900),
        }
    }

    /// The daemon's configuration from these options, for a node reached
    /// at `advertise` reporting to `trackers` (unset options take their
    /// built-in values).
    pub fn config(&self, trackers: Vec<String>, advertise: String) -> StorageConfig {
        let mut c = StorageConfig::new(trackers, advertise);
        if let Some(ms) = self.heartbeat_interval_ms {
            c.heartbeat_interval = Duration::from_millis(ms.max(10));
        }
        if let Some(ms) = self.replica_timeout_ms {
            c.replica_timeout = Duration::from_millis(ms.max(10));
        }
        if let Some(secs) = self.scrub_interval_secs {
            c.scrub_interval = (secs > 0).then(|| Duration::from_secs(secs));
        }
        if let Some(r) = self.scrub_rate_mib {
            c.scrub_rate_mib = r;
        }
        if let Some(r) = self.heal_rate_mib {
            c.heal_rate_mib = r;
        }
        c
    }

    /// How new blobs pick a store path.
    pub fn path_policy(&self) -> Result<PathPolicy, String> {
        match self.store_path_policy.as_deref() {
            None | Some("most-free") => Ok(PathPolicy::MostFree),
            Some("round-robin") => Ok(PathPolicy::RoundRobin),
            Some(other) => Err(format!("unknown store path policy {other:?} (most-free or round-robin)")),
        }
    }

    /// The largest blob packed into shared pack files.
    pub fn pack_max(&self) -> Result<u64, String> {
        let max = match &self.pack_max_size {
            Some(s) => parse_size(s).map_err(|e| format!("pack max size {s:?}: {e}"))?,
            None => DEFAULT_PACK_MAX,
        };
        if max > PACK_MAX_LIMIT {
            return Err("pack max size is at most 64M (larger files are better in files of their own)".into());
        }
        Ok(max)
    }

    /// Time between heartbeats.
    pub fn heartbeat_interval(&self) -> Duration {
        self.config(Vec::new(), String::new()).heartbeat_interval
    }

    /// The address to listen on.
    pub fn listen_or_default(&self) -> String {
        self.listen.clone().unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_STORAGE_PORT}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_values_are_the_configs_defaults() {
        let d = StorageSettings::defaults();
        let (from_defaults, plain) =
            (d.config(Vec::new(), String::new()), StorageConfig::new(Vec::new(), String::new()));
        assert_eq!(from_defaults.heartbeat_interval, plain.heartbeat_interval);
        assert_eq!(from_defaults.replica_timeout, plain.replica_timeout);
        assert_eq!(from_defaults.scrub_interval, plain.scrub_interval);
        assert_eq!(
            (from_defaults.scrub_rate_mib, from_defaults.heal_rate_mib),
            (plain.scrub_rate_mib, plain.heal_rate_mib)
        );
        assert_eq!(d.pack_max(), Ok(DEFAULT_PACK_MAX));
        assert_eq!(d.path_policy(), Ok(PathPolicy::MostFree));
    }

    #[test]
    fn wrong_values_are_named() {
        let s = StorageSettings { pack_max_size: Some("1G".into()), ..Default::default() };
        assert!(s.pack_max().unwrap_err().contains("at most 64M"));
        let s = StorageSettings { store_path_policy: Some("random".into()), ..Default::default() };
        assert!(s.path_policy().unwrap_err().contains("unknown store path policy"));
    }
}
