//! The FUSE front end: the kernel's requests, answered by the shared
//! file-system layer (`cairn-fs`). Each request runs as a task on the
//! tokio runtime, so one slow request (a large upload on flush) does not
//! stall the mount. The kernel caches attributes and entries for long, and
//! forgets what other mounts change as the meta service reports it.
//!
//! # Layout
//! - `mount.rs`: [`CairnFuse`], the kernel's requests and their answers.
//! - `dir_cursor.rs`: an open directory, read a page at a time.
//! - `convert.rs`: errno, times, kinds and attributes in the kernel's terms.
//! - `page_stamps.rs`: which files' pages the kernel may keep at an open
//!   (close-to-open), fed by `cairn-fs` through its `ContentCache`.
//! - `session.rs`: mount options, the kernel's read-ahead, the change feed.
//! - `settings.rs`: its options, as the configuration file's `[mount]`
//!   section and as flags.

mod convert;
mod dir_cursor;
mod mount;
mod page_stamps;
mod session;
mod settings;

pub use fuser::{spawn_mount, BackgroundSession};
pub use mount::CairnFuse;
pub use session::{config, follow_changes, set_read_ahead};
pub use settings::MountSettings;
