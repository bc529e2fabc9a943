//! The storage daemon: serves one node's blobs, replicates every mutation
//! to the other active members of its group, and reports to the trackers.
//!
//! - [`run`] starts it: the request server, one heartbeat loop per tracker,
//!   and the binlog flusher.
//! - `node.rs` dispatches requests; `upload.rs`, `mutate.rs` and `read.rs`
//!   handle them on the node that a client asked; `replica.rs` applies what a
//!   peer forwards; `replicate.rs` forwards to peers.
//! - `view.rs` holds the group as the trackers last described it: who is
//!   active, who is primary, under which epoch.
//! - `settings.rs`: its options, as the configuration file's `[storage]`
//!   section and as flags.
//!
//! The rule this crate keeps: a client hears "done" only after every active
//! member that answered has the data on disk (fsync'd).

mod compact;
mod config;
mod delete;
mod deleter;
mod error;
mod heartbeat;
mod http;
mod inflight;
mod local;
mod missed;
mod mutate;
mod node;
mod rate;
mod read;
mod replica;
mod replicate;
mod scrub;
mod sendfile;
mod settings;
mod spare;
mod sync;
mod upload;
mod view;

pub use config::StorageConfig;
pub use http::{token_for, HttpToken};
pub use local::{LocalNode, LocalRead};
pub use node::run;
pub use settings::{StorageSettings, DEFAULT_STORAGE_PORT};
pub use spare::wait_for_group;
