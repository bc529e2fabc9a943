//! The tracker's options as one declaration: the `[tracker]` section of
//! the configuration file and the tuning flags of `cairn tracker` and
//! `cairn server` are this one struct (docs/configuration.md).
//!
//! Every field is optional, so that a file and flags can be laid over each
//! other (built-in defaults, then the file, then `CAIRN_*` variables and
//! flags); [`TrackerSettings::defaults`] holds the built-in values, and
//! [`TrackerSettings::config`] turns the result into a [`TrackerConfig`].
//! Options whose flag differs between commands (`listen`, `data`, the
//! FastDFS listener) are read from the file here and take their flags
//! from the command.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{GroupPolicy, MemberPolicy, Reserved, TrackerConfig};

/// The tracker's port unless told otherwise.
pub const DEFAULT_TRACKER_PORT: u16 = 22300;

/// `[tracker]`: a tracker's options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerSettings {
    /// Address to listen on.
    #[arg(skip)]
    pub listen: Option<String>,
    /// Data directory.
    #[arg(skip)]
    pub data: Option<PathBuf>,
    /// Milliseconds without a heartbeat before a member is marked offline [default: 6000]
    #[arg(long, env = "CAIRN_OFFLINE_AFTER_MS")]
    pub offline_after_ms: Option<u64>,
    /// Group choice for uploads: most-free or round-robin [default: most-free]
    #[arg(long, env = "CAIRN_GROUP_POLICY")]
    pub group_policy: Option<GroupPolicy>,
    /// Member choice for uploads: round-robin or least-load [default: round-robin]
    #[arg(long, env = "CAIRN_MEMBER_POLICY")]
    pub member_policy: Option<MemberPolicy>,
    /// Space kept free on every member, e.g. 5% or 20G [default: 5%]
    #[arg(long, env = "CAIRN_RESERVED_SPACE")]
    pub reserved_space: Option<String>,
    /// FastDFS protocol listener, IP:PORT, or `none`.
    #[arg(skip)]
    pub fastdfs_listen: Option<String>,
    /// IP field size in FastDFS replies: 16 or 46.
    #[arg(skip)]
    pub fastdfs_ip_size: Option<String>,
}

impl TrackerSettings {
    /// The built-in values; `None` where the default depends on other
    /// options (the listener's address, the data directory).
    pub fn defaults() -> Self {
        let c = TrackerConfig::default();
        Self {
            listen: Some(format!("127.0.0.1:{DEFAULT_TRACKER_PORT}")),
            data: None,
            offline_after_ms: Some(c.offline_after.as_millis() as u64),
            group_policy: Some(c.group_policy),
            member_policy: Some(c.member_policy),
            reserved_space: Some("5%".into()),
            fastdfs_listen: None,
            fastdfs_ip_size: Some("16".into()),
        }
    }

    /// The tracker's configuration from these options (unset ones take
    /// their built-in values).
    pub fn config(&self) -> Result<TrackerConfig, String> {
        let mut c = TrackerConfig::default();
        if let Some(ms) = self.offline_after_ms {
            c.offline_after = Duration::from_millis(ms);
        }
        if let Some(p) = self.group_policy {
            c.group_policy = p;
        }
        if let Some(p) = self.member_policy {
            c.member_policy = p;
        }
        if let Some(r) = &self.reserved_space {
            c.reserved = r.parse::<Reserved>().map_err(|e| format!("reserved space: {e}"))?;
        }
        Ok(c)
    }

    /// The address to listen on.
    pub fn listen_or_default(&self) -> String {
        self.listen.clone().unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_TRACKER_PORT}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_values_are_the_configs_defaults() {
        let d = TrackerSettings::defaults().config().expect("defaults parse");
        let c = TrackerConfig::default();
        assert_eq!(d.offline_after, c.offline_after);
        assert_eq!(d.reserved, c.reserved);
        assert_eq!((d.group_policy, d.member_policy), (c.group_policy, c.member_policy));
    }

    #[test]
    fn a_bad_reserved_space_is_named() {
        let s = TrackerSettings { reserved_space: Some("lots".into()), ..Default::default() };
        assert!(s.config().unwrap_err().contains("reserved space"));
    }
}
