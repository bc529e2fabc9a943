//! Cairn's native wire protocol: everything two Cairn processes must agree on.
//!
//! - [`frame`]: length-prefixed control frames and chunked bodies, with every
//!   length bounded before anything is allocated.
//! - [`message`]: the typed requests and responses of trackers and storage nodes.
//! - [`meta`]: the meta service's types, and its requests and responses
//!   (`meta/message.rs`).
//! - [`auth`]: the mutual challenge–response handshake on the cluster secret
//!   that opens every connection.
//! - [`file_id`]: FastDFS-shaped file IDs (`group/M00/XX/YY/name.ext`), their
//!   validation and the encoding of the name.
//! - [`cluster`]: the cluster map as trackers report it.
//! - [`Errno`]: the errno a namespace operation fails with, one type from
//!   the meta service to every front end.
//! - [`buffers`]: chunk buffers reused across bodies (no fresh 1 MiB pages per chunk).
//! - [`units`]: sizes as people write them (`4K`, `256KiB`, `2G`).
//!
//! Read [`message::Request`] first: it lists every operation the cluster knows.

pub mod auth;
pub mod buffers;
pub mod cluster;
mod errno;
mod error;
pub mod extents;
pub mod file_id;
pub mod frame;
pub mod message;
pub mod meta;
pub mod net;
pub mod units;

pub use auth::{ClusterSecret, Handshake};
pub use buffers::ChunkBuf;
pub use cluster::{
    ClusterMap, GroupStatus, GroupView, MemberState, MemberStatus, MemberView, Miss, NodeReport, SpareStatus,
    StorePathUsage,
};
pub use errno::Errno;
pub use error::{ErrorCode, ProtoError, Result, WireError};
pub use file_id::{FileId, NameInfo};
pub use frame::{BodyReader, MAX_CHUNK, MAX_CONTROL_FRAME};
pub use message::{
    BinlogEntry, BlobInfo, BlobSummary, HealStatus, Metadata, ReplicaCommit, ReplicaOp, Request, Response, ScrubStatus,
    StoreTarget, SyncPoint,
};

/// Protocol version sent in the handshake; peers with another version are refused.
pub const PROTOCOL_VERSION: u16 = 1;
pub use net::{Conn, Pool, Pooled, ServeLimits, Service};
