//! The meta service: each volume's namespace (docs/architecture.md,
//! "Namespace layer") — volumes, inodes, directory entries, symlinks, hard
//! links, extended attributes, and each file's content as slices of
//! immutable blobs — kept as transactions over one key-value [`Engine`],
//! served over the native protocol, and looked after by its workers.
//! Read [`Namespace`] first.
//!
//! # Layout
//!
//! - The namespace: `namespace.rs` (the operations, each one transaction),
//!   `usage.rs` (bytes used per volume), `clients.rs` (mounts and gateways
//!   attached to a volume), `slices.rs` (which blob ranges make up a range
//!   of a file, and how a merge rewrites them).
//! - What is stored: `key.rs` (the keys), `records.rs` (the record types,
//!   separate from the wire types of `cairn_proto::meta`, with conversions
//!   at the edge), `format.rs` (the format version, checked and migrated
//!   when a namespace is opened). Byte by byte: docs/formats/meta.md.
//! - Engines: `engine.rs` (the trait, and what it asks of an engine),
//!   `redb_engine.rs` (the embedded default, with `redo_log.rs` and
//!   `lazy_sync.rs`, what makes its batches durable between checkpoints),
//!   `mem_engine.rs` (in memory, for tests).
//! - The daemon: `server.rs` (`cairn meta`, and the meta service inside
//!   `cairn server`), `changes.rs` (what mounts are told changed),
//!   `workers/` (the blob collector and the slice merger, which it starts),
//!   `settings.rs` (its options, as the configuration file's `[meta]`
//!   section and as flags).
//!
//! ```
//! use cairn_meta::{Kind, MemEngine, Namespace, NewNode, DEFAULT_CHUNK, ROOT};
//!
//! let ns = Namespace::open(MemEngine::new())?;
//! let vol = ns.create_volume("photos", vec![], DEFAULT_CHUNK)?.id;
//! let node = NewNode { kind: Kind::File, perm: 0o644, uid: 0, gid: 0, rdev: 0, target: vec![] };
//! let file = ns.mknod(vol, ROOT, b"a.jpg", node)?;
//! assert_eq!(ns.lookup(vol, ROOT, b"a.jpg")?.ino, file.ino);
//! # Ok::<(), cairn_meta::MetaError>(())
//! ```

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
mod settings;
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
pub use settings::{MetaSettings, DEFAULT_META_PORT};
