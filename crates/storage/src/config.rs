use std::time::Duration;

/// Everything a storage daemon can be told besides its store.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Trackers to report to (all of them).
    pub trackers: Vec<String>,
    /// Address given to trackers, peers and clients (the listen address
    /// unless the node is reached through another one).
    pub advertise: String,
    /// Time between heartbeats.
    pub heartbeat_interval: Duration,
    /// Time to connect to a peer or tracker.
    pub connect_timeout: Duration,
    /// Time a peer may take for one step of a replication (a chunk, a
    /// commit) before it is left out of the write.
    pub replica_timeout: Duration,
    /// Time between background scrubs (`None`: only on demand).
    pub scrub_interval: Option<Duration>,
    /// Scrub reading pace, MiB/s (0: unlimited).
    pub scrub_rate_mib: u64,
    /// Catch-up and repair copying pace, MiB/s (0: unlimited).
    pub heal_rate_mib: u64,
    /// Where FastDFS clients reach this node, told to the trackers (the
    /// FastDFS listener itself runs in the `fastdfs` front end).
    pub fastdfs_advertise: Option<String>,
    /// Where this node serves HTTP downloads, told to the trackers and peers.
    pub http_advertise: Option<String>,
    /// The anti-steal token HTTP downloads must carry, if any.
    pub http_token: Option<crate::http::HttpToken>,
}

impl StorageConfig {
    /// Defaults for a node reached at `advertise`, reporting to `trackers`.
    pub fn new(trackers: Vec<String>, advertise: String) -> Self {
        Self {
            trackers,
            advertise,
            heartbeat_interval: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
            replica_timeout: Duration::from_millis(350),
            scrub_interval: Some(Duration::from_secs(24 * 3600)),
            scrub_rate_mib: 64,
            heal_rate_mib: 0,
            fastdfs_advertise: None,
            http_advertise: None,
            http_token: None,
        }
    }
}
