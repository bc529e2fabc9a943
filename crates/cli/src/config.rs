//! The daemons' TOML configuration file. Precedence, lowest first:
//! built-in defaults, this file, `CAIRN_*` environment variables, flags.
//! Unknown keys are errors, so a typo does not silently do nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// The whole file: one section per role.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// `[tracker]`
    pub tracker: TrackerSection,
    /// `[storage]`
    pub storage: StorageSection,
}

/// `[tracker]` settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerSection {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Data directory.
    pub data: Option<PathBuf>,
    /// Milliseconds without a heartbeat before a member is offline.
    pub offline_after_ms: Option<u64>,
    /// `round-robin` or `most-free`.
    pub group_policy: Option<cairn_tracker::GroupPolicy>,
    /// `round-robin` or `least-load`.
    pub member_policy: Option<cairn_tracker::MemberPolicy>,
    /// Space kept free on members: `5%`, `10G`.
    pub reserved_space: Option<String>,
    /// FastDFS protocol listener (`none`: off).
    pub fastdfs_listen: Option<String>,
    /// IP field size in FastDFS replies: `16` or `46`.
    pub fastdfs_ip_size: Option<String>,
}

/// `[storage]` settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Address others reach this node at.
    pub advertise: Option<String>,
    /// Data directory.
    pub data: Option<PathBuf>,
    /// Group served.
    pub group: Option<String>,
    /// Trackers to report to.
    pub trackers: Option<Vec<String>>,
    /// Store paths (disks), in index order.
    pub store_paths: Option<Vec<PathBuf>>,
    /// `round-robin` or `most-free`.
    pub store_path_policy: Option<String>,
    /// Milliseconds between heartbeats.
    pub heartbeat_interval_ms: Option<u64>,
    /// Milliseconds a peer may take per replication step.
    pub replica_timeout_ms: Option<u64>,
    /// Seconds between background scrubs (0: on demand only).
    pub scrub_interval_secs: Option<u64>,
    /// Scrub pace, MiB/s (0: unlimited).
    pub scrub_rate_mib: Option<u64>,
    /// Catch-up and repair pace, MiB/s (0: unlimited).
    pub heal_rate_mib: Option<u64>,
    /// Largest blob packed into shared pack files (`0`: none), e.g. `256K`.
    pub pack_max_size: Option<String>,
    /// FastDFS protocol listener (`none`: off).
    pub fastdfs_listen: Option<String>,
    /// IP field size in FastDFS replies: `16` or `46`.
    pub fastdfs_ip_size: Option<String>,
    /// HTTP download listener (`none`: off).
    pub http_listen: Option<String>,
    /// Secret of the FastDFS anti-steal token for HTTP downloads.
    pub http_token_secret: Option<String>,
    /// Seconds a token stays valid.
    pub http_token_ttl_secs: Option<u64>,
}

/// Reads the file, or the defaults when there is none.
pub fn load(path: Option<&Path>) -> Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("bad config file {}", path.display()))
}

/// Where data lives when no `--data` is given: `$CAIRN_DATA`, else
/// `$XDG_DATA_HOME/cairn`, else `~/.local/share/cairn`, else `./cairn-data`.
pub fn default_data_dir() -> PathBuf {
    user_dir("CAIRN_DATA", "XDG_DATA_HOME", ".local/share").unwrap_or_else(|| PathBuf::from("cairn-data"))
}

/// Where mounts keep their block caches when not told: `$CAIRN_CACHE`,
/// else `$XDG_CACHE_HOME/cairn`, else `~/.cache/cairn`, else the
/// temporary directory's `cairn-cache`.
pub fn default_cache_dir() -> PathBuf {
    user_dir("CAIRN_CACHE", "XDG_CACHE_HOME", ".cache").unwrap_or_else(|| std::env::temp_dir().join("cairn-cache"))
}

/// `$own`, else `$xdg/cairn`, else `~/<in_home>/cairn` (the XDG base
/// directory rules).
fn user_dir(own: &str, xdg: &str, in_home: &str) -> Option<PathBuf> {
    if let Some(d) = std::env::var_os(own) {
        return Some(PathBuf::from(d));
    }
    if let Some(x) = std::env::var_os(xdg) {
        return Some(PathBuf::from(x).join("cairn"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(in_home).join("cairn"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_keys() {
        let c: FileConfig = toml::from_str(
            "[tracker]\nreserved_space = \"10%\"\ngroup_policy = \"round-robin\"\n[storage]\ngroup = \"g\"\ntrackers = [\"a:1\"]\n",
        )
        .unwrap();
        assert_eq!(c.tracker.group_policy, Some(cairn_tracker::GroupPolicy::RoundRobin));
        assert_eq!(c.storage.trackers.unwrap(), vec!["a:1".to_string()]);
        assert!(toml::from_str::<FileConfig>("[storage]\ngrup = \"g\"\n").is_err());
    }
}
