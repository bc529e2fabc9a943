//! One storage node's blobs on its local disks.
//!
//! - [`Store`] is the entry point: it owns the store paths (disks), the
//!   node's persistent ID and its [`Binlog`], and offers blocking operations
//!   to create, read, change and delete blobs. Callers on an async runtime
//!   run them on blocking threads.
//! - Each blob lives at `<store path>/data/XX/YY/<name>` with a *record*
//!   beside it (`<name>.rec`: size, CRC32, a CRC32 per 64 KiB block, creation
//!   facts and metadata). Reads verify every block they return; see
//!   `docs/formats/store.md`.
//! - New content is first written to a [`Spool`] (a temp file on the same
//!   disk that checksums as it goes), made durable with `fsync`, then linked
//!   into place, so a crash never leaves a half-written blob under a real name.
//!
//! # Layout
//!
//! - `store.rs`: [`Store`], with its operations grouped under `store/`
//!   (opening and recovery, reads, appender changes, deletes, listing).
//! - `pack.rs`: small blobs packed into shared append-only files.
//! - `record.rs`, `checksum.rs`: a blob's record and its block CRCs;
//!   `reader.rs`: verified reads; `spool.rs`: content on its way in.
//! - `binlog.rs`: the log of changes peers catch up from.
//! - `layout.rs`: where files go on a store path; `dir_lock.rs`, `node.rs`:
//!   one process per directory, and the node's persistent ID.

mod binlog;
mod checksum;
mod dir_lock;
mod error;
mod layout;
mod node;
mod pack;
mod reader;
mod record;
mod spool;
mod store;

pub use binlog::{Binlog, BinlogOp, Origin};
pub use checksum::BLOCK_SIZE;
pub use dir_lock::{DirLock, LockError, LOCK_FILE};
pub use error::{Error, Result};
pub use layout::{PathPolicy, StorePath};
pub use pack::Compacted;
pub use reader::{BlobReader, RawBlocks};
pub use record::BlobRecord;
pub use spool::{Spool, Spooled};
pub use store::{Expect, Reserved, Store, StoreConfig, StoreStats, Unsynced, DEFAULT_PACK_MAX};
