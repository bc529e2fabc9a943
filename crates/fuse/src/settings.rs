//! The mount's options as one declaration: the `[mount]` section of the
//! configuration file and the tuning flags of `cairn mount` are this one
//! struct (docs/configuration.md). Every field is optional, so that a file
//! and flags can be laid over each other; [`MountSettings::defaults`]
//! holds the built-in values.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Built-in values, named once: [`MountSettings::defaults`] and the
/// accessors take them from here.
const META_RETRY_SECS: u64 = 60;
const READ_AHEAD_KIB: u32 = 16 * 1024;
const CACHE_MIB: u64 = 1024;

/// `[mount]`: a mount's options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct MountSettings {
    /// How long to keep retrying a request while the meta service is unreachable (a restart) before answering EIO, in seconds [default: 60]
    #[arg(long, env = "CAIRN_META_RETRY_SECS")]
    pub meta_retry_secs: Option<u64>,
    /// How far ahead the kernel reads files read sequentially, in KiB (the kernel's own default for FUSE is 128); 0 leaves it as it is [default: 16384]
    #[arg(long, env = "CAIRN_READ_AHEAD_KIB")]
    pub read_ahead_kib: Option<u32>,
    /// Most local disk space for the blocks of files read at random (a block read twice is kept), in MiB; 0 keeps none [default: 1024]
    #[arg(long, env = "CAIRN_CACHE_MIB")]
    pub cache_mib: Option<u64>,
    /// Where the block cache goes (a directory of this mount's own is made there and emptied at every mount) [default: $CAIRN_CACHE, else ~/.cache/cairn]
    #[arg(long, env = "CAIRN_CACHE")]
    pub cache_dir: Option<PathBuf>,
}

impl MountSettings {
    /// The built-in values; `None` where the default depends on the
    /// environment (the cache directory).
    pub fn defaults() -> Self {
        Self {
            meta_retry_secs: Some(META_RETRY_SECS),
            read_ahead_kib: Some(READ_AHEAD_KIB),
            cache_mib: Some(CACHE_MIB),
            cache_dir: None,
        }
    }

    /// How long a request is retried while the meta service is away.
    pub fn meta_retry(&self) -> Duration {
        Duration::from_secs(self.meta_retry_secs.unwrap_or(META_RETRY_SECS))
    }

    /// The kernel's read-ahead to set, KiB (0: leave it).
    pub fn read_ahead_kib(&self) -> u32 {
        self.read_ahead_kib.unwrap_or(READ_AHEAD_KIB)
    }

    /// The block cache's size, MiB (0: none).
    pub fn cache_mib(&self) -> u64 {
        self.cache_mib.unwrap_or(CACHE_MIB)
    }
}
