//! The tracker: keeps the cluster map from storage heartbeats and answers
//! where to upload, read and mutate.
//!
//! - [`ClusterState`] (in `map.rs`) is the map and every decision on it:
//!   membership, offline detection, primaries and epochs, placement. It is
//!   plain data with no I/O, so its rules are unit-tested directly (in
//!   `map_tests.rs`).
//! - [`run`] serves the map over the native protocol; [`LocalTracker`]
//!   reaches it from front ends in the same process.
//! - [`TrackerSettings`] (in `settings.rs`): its options, as the
//!   configuration file's `[tracker]` section and as flags.
//!
//! A tracker keeps nothing on disk that matters: a restarted tracker learns
//! groups, members and epochs again from the next round of heartbeats.

mod config;
mod map;
mod server;
mod settings;

pub use config::{GroupPolicy, MemberPolicy, Reserved, TrackerConfig};
pub use map::{ClusterState, MemberTimes};
pub use server::{run, LocalTracker};
pub use settings::{TrackerSettings, DEFAULT_TRACKER_PORT};
