//! The meta service's options as one declaration: the `[meta]` section of
//! the configuration file and the tuning flags of `cairn meta` and
//! `cairn server` are this one struct (docs/configuration.md).
//!
//! Every field is optional, so that a file and flags can be laid over each
//! other; [`MetaSettings::defaults`] holds the built-in values and
//! [`MetaSettings::options`] turns the result into the service's
//! [`MetaOptions`]. The listener, data directory and trackers are read
//! from the file here and take their flags from the command.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::server::MetaOptions;
use crate::workers::{WorkerOptions, COLLECT_AFTER_SECS};
use crate::ORPHAN_LEASE_SECS;

/// The meta service's port unless told otherwise.
pub const DEFAULT_META_PORT: u16 = 22500;

/// `[meta]`: the meta service's options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct MetaSettings {
    /// Address to listen on.
    #[arg(skip)]
    pub listen: Option<String>,
    /// Data directory (the namespace database).
    #[arg(skip)]
    pub data: Option<PathBuf>,
    /// Trackers of the cluster whose blobs hold the volumes' data.
    #[arg(skip)]
    pub trackers: Option<Vec<String>>,
    /// Seconds a file unlinked while open is kept after its mount last said it has it open (a mount that died stops saying so) [default: 60]
    #[arg(long, env = "CAIRN_ORPHAN_LEASE_SECS")]
    pub orphan_lease_secs: Option<u64>,
    /// Seconds a blob no file refers to any more (deleted, overwritten, merged away) is kept before it is deleted: readers that still hold the old slices finish reading it meanwhile [default: 600]
    #[arg(long, env = "CAIRN_COLLECT_AFTER_SECS")]
    pub collect_after_secs: Option<u64>,
}

impl MetaSettings {
    /// The built-in values; `None` where the default depends on the command.
    pub fn defaults() -> Self {
        Self {
            listen: Some(format!("127.0.0.1:{DEFAULT_META_PORT}")),
            data: None,
            trackers: None,
            orphan_lease_secs: Some(ORPHAN_LEASE_SECS),
            collect_after_secs: Some(COLLECT_AFTER_SECS),
        }
    }

    /// The service's options; its workers (collector, slice merger) run
    /// when `trackers` names the cluster holding the blobs.
    pub fn options(&self, trackers: Vec<String>) -> MetaOptions {
        let grace = self.collect_after_secs.unwrap_or(COLLECT_AFTER_SECS);
        let workers =
            (!trackers.is_empty()).then(|| WorkerOptions { trackers, collect_after: Duration::from_secs(grace) });
        MetaOptions { orphan_lease_secs: self.orphan_lease_secs.unwrap_or(ORPHAN_LEASE_SECS).max(1), workers }
    }

    /// The address to listen on.
    pub fn listen_or_default(&self) -> String {
        self.listen.clone().unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_META_PORT}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_run_only_with_trackers_and_take_the_grace() {
        let s = MetaSettings { collect_after_secs: Some(5), orphan_lease_secs: Some(0), ..Default::default() };
        assert!(s.options(Vec::new()).workers.is_none());
        let o = s.options(vec!["127.0.0.1:1".into()]);
        assert_eq!(o.workers.map(|w| w.collect_after), Some(Duration::from_secs(5)));
        assert_eq!(o.orphan_lease_secs, 1, "a lease of 0 would drop open files at once");
        let d = MetaSettings::defaults().options(Vec::new());
        assert_eq!(d.orphan_lease_secs, ORPHAN_LEASE_SECS);
    }
}
