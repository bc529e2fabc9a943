//! The meta service's wire types: what clients (the file-system layer,
//! the CLI) and the meta service exchange. The namespace itself lives in
//! the `meta` crate; these are its words.
//!
//! This file holds the types the messages carry (volumes, inodes and their
//! attributes, slices, directory entries); the messages themselves,
//! [`MetaRequest`] and [`MetaResponse`], are in `meta/message.rs`.

use serde::{Deserialize, Serialize};

mod message;

pub use message::{MetaRequest, MetaResponse, SLICES_PAGE};

/// Inode number of every volume's root directory.
pub const ROOT: u64 = 1;

/// Longest name in a directory, bytes: the meta service refuses longer
/// ones (ENAMETOOLONG), and mounts answer nothing about them themselves.
pub const NAME_MAX: usize = 255;

/// A volume: one namespace whose file data is spread over some groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Internal ID (part of every key of the volume).
    pub id: u32,
    /// Name.
    pub name: String,
    /// Groups its data goes to; empty: any group.
    pub groups: Vec<String>,
    /// Largest blob a write makes, bytes.
    pub chunk_size: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
}

impl Volume {
    /// The groups this volume names that `map` does not have (a group
    /// removed since the volume was made): writes to them fail.
    pub fn groups_missing_from(&self, map: &crate::ClusterMap) -> Vec<String> {
        self.groups.iter().filter(|g| !map.groups.iter().any(|m| &m.name == *g)).cloned().collect()
    }
}

/// Kinds of inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Character device.
    CharDev,
    /// Block device.
    BlockDev,
}

/// A point in time: seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Time {
    /// Seconds.
    pub secs: i64,
    /// Nanoseconds.
    pub nanos: u32,
}

impl Time {
    /// Now.
    pub fn now() -> Time {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Time { secs: d.as_secs() as i64, nanos: d.subsec_nanos() }
    }
}

/// Attributes, as `stat` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// Kind.
    pub kind: Kind,
    /// Permission bits (and setuid/setgid/sticky): `mode & 0o7777`.
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (a symlink: its target's length).
    pub size: u64,
    /// Last access.
    pub atime: Time,
    /// Last content change.
    pub mtime: Time,
    /// Last attribute change.
    pub ctime: Time,
    /// Creation.
    pub crtime: Time,
    /// Hard links (a directory: 2 + subdirectories).
    pub nlink: u32,
    /// Device number of a device inode.
    pub rdev: u32,
}

/// Something a namespace change made stale in mounts' caches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Changed {
    /// The entry `name` in directory `parent` was added.
    Entry {
        /// Directory.
        parent: u64,
        /// Name.
        name: Vec<u8>,
    },
    /// The entry `name` in directory `parent` was removed or replaced: the
    /// inode it led to lost a link (which inode, the change does not say).
    Unlinked {
        /// Directory.
        parent: u64,
        /// Name.
        name: Vec<u8>,
    },
    /// An inode's attributes or content.
    Inode {
        /// Inode.
        ino: u64,
    },
}

/// A range of a file's content held by a range of a blob. Later slices
/// cover earlier ones where they overlap; no slice covers a hole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slice {
    /// Where in the file it starts.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
    /// The blob's file ID.
    pub blob: String,
    /// Where in the blob the bytes start.
    pub blob_offset: u64,
}

/// Attribute changes (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttr {
    /// Permission bits.
    pub perm: Option<u32>,
    /// Owner.
    pub uid: Option<u32>,
    /// Group.
    pub gid: Option<u32>,
    /// Size (truncate or extend with a hole).
    pub size: Option<u64>,
    /// Access time.
    pub atime: Option<Time>,
    /// Modification time.
    pub mtime: Option<Time>,
}

/// A new inode's kind and attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewNode {
    /// Kind (not `Dir`: use [`Namespace::mkdir`]).
    pub kind: Kind,
    /// Permission bits.
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number.
    pub rdev: u32,
    /// Symlink target.
    pub target: Vec<u8>,
}

/// How a rename treats an existing target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RenameMode {
    /// Replace it (POSIX rename).
    Replace,
    /// Fail if it exists (RENAME_NOREPLACE).
    NoReplace,
    /// Swap the two (RENAME_EXCHANGE).
    Exchange,
}

/// Counts for `statfs` and `volume info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeStats {
    /// Inodes ever allocated (an upper bound of those in use).
    pub inodes: u64,
    /// Bytes in the volume's files (their sizes; a hard-linked file once).
    pub bytes: u64,
}

/// A mount or gateway attached to a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeClient {
    /// Its session.
    pub session: u64,
    /// What it says it is, e.g. `mount host:/mnt/photos (pid 4121)`.
    pub what: String,
    /// When it last said it is there (Unix seconds).
    pub last_seen: i64,
}

/// A directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dirent {
    /// The inode it names.
    pub ino: u64,
    /// Its kind (for readdir without loading the inode).
    pub kind: Kind,
}

/// A piece of a read: bytes of a blob, or a hole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Piece {
    /// `len` bytes from `blob` at `blob_offset`.
    Data {
        /// The blob.
        blob: String,
        /// Where in it.
        blob_offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// `len` zero bytes.
    Hole {
        /// How many bytes.
        len: u64,
    },
}

/// The pieces that make `[offset, offset + len)` of a file whose content is
/// `slices` (oldest first) and whose size is `size`, clamped to the size.
pub fn resolve(slices: &[Slice], size: u64, offset: u64, len: u64) -> Vec<Piece> {
    // Flattened first: scanning every slice for every piece was quadratic
    // in a randomly written file's slice count.
    crate::extents::Extents::build(slices).resolve(size, offset, len)
}

impl Piece {
    /// Its length.
    pub fn len(&self) -> u64 {
        match self {
            Piece::Data { len, .. } | Piece::Hole { len } => *len,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
