//! The meta service's namespace (docs/architecture.md, "Namespace
//! layer"): volumes, inodes, directory entries, symlinks, hard links,
//! extended attributes, and each file's content as slices of immutable
//! blobs. Every operation is one transaction behind the [`Engine`] trait;
//! [`RedbEngine`] is the embedded default.
//!
//! - `engine.rs`: the trait; `redb_engine.rs`: the embedded engine, with
//!   `redo_log.rs`, what makes its batches durable between checkpoints.
//! - `model.rs`: what is stored, under which keys.
//! - `namespace.rs`: the operations.
//! - `slices.rs`: which blob ranges make up a range of a file.
//! - `usage.rs`: bytes used per volume; `clients.rs`: mounts and gateways
//!   attached to a volume.
//! - `server.rs`: the daemon (`cairn meta`).

pub mod changes;
mod clients;
mod engine;
mod error;
mod format;
pub mod key;
mod lazy_sync;
mod mem_engine;
mod namespace;
pub mod records;
mod redb_engine;
mod redo_log;
pub mod server;
pub mod slices;
mod usage;
pub mod workers;

pub use cairn_proto::meta::{Attr, Dirent, Kind, Slice, Time, Volume, ROOT};
pub use engine::{Engine, KvRead, KvWrite};
pub use error::{MetaError, Result};
pub use format::{stored_version, FORMAT_VERSION};
pub use mem_engine::MemEngine;
pub use namespace::{
    Namespace, NewNode, RenameMode, SetAttr, VolumeStats, COMPACT_AFTER, DEFAULT_CHUNK, LINK_MAX, NAME_MAX,
    ORPHAN_LEASE_SECS,
};
pub use redb_engine::RedbEngine;
