//! What the namespace stores, and the keys it stores it under. Every key
//! starts with one tag byte; numbers are big-endian so keys sort by them.
//!
//! | key | value |
//! |---|---|
//! | `v` name | [`Volume`] |
//! | `n` | next volume ID (u32) |
//! | `i` vol ino | [`Inode`] |
//! | `c` vol | next inode number (u64) |
//! | `d` vol parent name | [`Dirent`] |
//! | `o` vol ino | (empty): an inode with no links left, kept while open |
//! | `g` blob ID | (empty): a blob no file refers to any more, for the collector |

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{MetaError, Result};

/// Inode number of every volume's root directory.
pub const ROOT: u64 = 1;

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

/// Everything about one inode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inode {
    /// Attributes.
    pub attr: Attr,
    /// Parent directory (directories only: for `..` and rename checks).
    pub parent: u64,
    /// Target of a symlink.
    pub target: Vec<u8>,
    /// Content of a regular file, oldest first.
    pub slices: Vec<Slice>,
    /// Extended attributes.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dirent {
    /// The inode it names.
    pub ino: u64,
    /// Its kind (for readdir without loading the inode).
    pub kind: Kind,
}

/// Encodes a value.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(v).map_err(|e| MetaError::Engine(format!("encoding: {e}")))
}

/// Decodes a value.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    postcard::from_bytes(b).map_err(|e| MetaError::Engine(format!("corrupt record: {e}")))
}

/// Keys.
pub mod key {
    /// A volume by name.
    pub fn volume(name: &str) -> Vec<u8> {
        let mut k = vec![b'v'];
        k.extend_from_slice(name.as_bytes());
        k
    }
    /// The volume ID counter.
    pub const NEXT_VOLUME: &[u8] = b"n";
    /// An inode.
    pub fn inode(vol: u32, ino: u64) -> Vec<u8> {
        let mut k = vec![b'i'];
        k.extend_from_slice(&vol.to_be_bytes());
        k.extend_from_slice(&ino.to_be_bytes());
        k
    }
    /// The inode counter of a volume.
    pub fn next_ino(vol: u32) -> Vec<u8> {
        let mut k = vec![b'c'];
        k.extend_from_slice(&vol.to_be_bytes());
        k
    }
    /// A directory's entries start here (`name` empty) …
    pub fn dirent(vol: u32, parent: u64, name: &[u8]) -> Vec<u8> {
        let mut k = vec![b'd'];
        k.extend_from_slice(&vol.to_be_bytes());
        k.extend_from_slice(&parent.to_be_bytes());
        k.extend_from_slice(name);
        k
    }
    /// … and end before this.
    pub fn dirent_end(vol: u32, parent: u64) -> Vec<u8> {
        let mut k = dirent(vol, parent, &[]);
        k.push(0xFF);
        k.push(0xFF);
        // Names are at most 255 bytes: any name sorts below 0xFF 0xFF + more.
        k.extend_from_slice(&[0xFF; 255]);
        k
    }
    /// An orphan (unlinked while open).
    pub fn orphan(vol: u32, ino: u64) -> Vec<u8> {
        let mut k = vec![b'o'];
        k.extend_from_slice(&vol.to_be_bytes());
        k.extend_from_slice(&ino.to_be_bytes());
        k
    }
    /// A blob waiting for the collector.
    pub fn garbage(blob: &str) -> Vec<u8> {
        let mut k = vec![b'g'];
        k.extend_from_slice(blob.as_bytes());
        k
    }
    /// Every key of a volume with this tag lies in `[prefix(tag, vol), prefix(tag, vol + 1))`.
    pub fn prefix(tag: u8, vol: u32) -> Vec<u8> {
        let mut k = vec![tag];
        k.extend_from_slice(&vol.to_be_bytes());
        k
    }
}
