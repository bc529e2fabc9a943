//! The FastDFS protocol front end: lets FastDFS clients (C, Java, PHP,
//! Python, Go) use a Cairn cluster unchanged. A tracker-side listener
//! answers placement and listing queries from the Cairn trackers (placement
//! from the tracker in its own process, [`LocalPlacement`], when there is
//! one); a storage-side listener beside each storage node stores uploads
//! through that node and carries out changes through the native client, so
//! every write replicates and heals as native writes do, and serves
//! downloads from the node's own store when the node holds the file
//! ([`LocalBlobs`]), else through the native client. File IDs are the same
//! in both protocols.
//!
//! The codec is written here (no maintained Rust crate serves the FastDFS
//! server side): [`wire`] frames, [`request`] decodes, [`reply`] encodes.

mod cluster;
mod conn;
pub mod reply;
pub mod request;
mod stats;
mod storage;
mod tracker;
pub mod wire;

use std::sync::Arc;

pub use stats::{MemberTimes, ReservedSpace, TrackerFacts};
pub use storage::{LocalBlobs, StorageService};
use tokio::net::TcpListener;
use tokio::sync::watch;
pub use tracker::{LocalPlacement, TrackerService};
pub use wire::IpSize;

/// Serves the tracker side on `listener` until `stop` turns true.
pub async fn serve_tracker(listener: TcpListener, service: TrackerService, stop: watch::Receiver<bool>) {
    conn::serve(listener, Arc::new(service), stop).await
}

/// Serves the storage side on `listener` until `stop` turns true.
pub async fn serve_storage(listener: TcpListener, service: StorageService, stop: watch::Receiver<bool>) {
    conn::serve(listener, Arc::new(service), stop).await
}
