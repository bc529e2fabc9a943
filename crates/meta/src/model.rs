//! What the namespace stores, and the keys it stores it under. Every key
//! starts with one tag byte; numbers are big-endian so keys sort by them.
//!
//! | key | value |
//! |---|---|
//! | `v` name | [`Volume`] |
//! | `n` | next volume ID (u32) |
//! | `i` vol ino | [`Inode`] |
//! | `s` vol ino | `Vec<Slice>`: a regular file's content, oldest first |
//! | `c` vol | next inode number (u64) |
//! | `d` vol parent name | [`Dirent`] |
//! | `o` vol ino | [`Holders`] of an inode with no links left, kept while open |
//! | `r` session seq | when the tagged change was applied (i64 Unix seconds) |
//! | `g` blob ID | (empty): a blob no file refers to any more, for the collector |
//! | `b` blob ID | how many files beyond one hold the blob (u64; absent: one), after server-side copies |
//! | `k` vol ino | (empty): a file with many slices, for the compactor |
//! | `u` vol | bytes in the volume's files (u64) |
//! | `m` vol session | [`VolumeClient`]: a mount or gateway attached to the volume |

use std::collections::BTreeMap;

pub use cairn_proto::meta::{Attr, Dirent, Kind, Slice, Time, Volume, VolumeClient, ROOT};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{MetaError, Result};

/// Everything about one inode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inode {
    /// Attributes.
    pub attr: Attr,
    /// Parent directory (directories only: for `..` and rename checks).
    pub parent: u64,
    /// Target of a symlink.
    pub target: Vec<u8>,
    /// Content of a regular file, oldest first, as inodes written before
    /// 2026-11-22 kept it. Now always empty when saved: the slices live
    /// under their own key (`s`), so that operations that do not need them
    /// (attributes, extended attributes, listings) do not decode them; an
    /// older inode's are moved there at its next content change.
    pub slices: Vec<Slice>,
    /// Extended attributes.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The mounts that have open an inode with no links left (unlinked while
/// open), so it is kept for them and freed when they are gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holders {
    /// When it lost its last link (Unix seconds).
    pub since: i64,
    /// Mount sessions that said they have it open, with when they last did.
    pub sessions: BTreeMap<u64, i64>,
}

impl Holders {
    /// The last sign that anyone may hold it open.
    pub fn last_seen(&self) -> i64 {
        self.sessions.values().copied().fold(self.since, i64::max)
    }
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
    /// A file's slices.
    pub fn slices(vol: u32, ino: u64) -> Vec<u8> {
        let mut k = vec![b's'];
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
    /// A change applied for a client's `(session, seq)`.
    pub fn applied(session: u64, seq: u64) -> Vec<u8> {
        let mut k = vec![b'r'];
        k.extend_from_slice(&session.to_be_bytes());
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }
    /// A file waiting for the compactor.
    pub fn compact(vol: u32, ino: u64) -> Vec<u8> {
        let mut k = vec![b'k'];
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
    /// How many more files than one hold a blob (server-side copies
    /// share blobs).
    pub fn shared(blob: &str) -> Vec<u8> {
        let mut k = vec![b'b'];
        k.extend_from_slice(blob.as_bytes());
        k
    }
    /// The bytes counter of a volume.
    pub fn usage(vol: u32) -> Vec<u8> {
        prefix(b'u', vol)
    }
    /// A client attached to a volume.
    pub fn client(vol: u32, session: u64) -> Vec<u8> {
        let mut k = prefix(b'm', vol);
        k.extend_from_slice(&session.to_be_bytes());
        k
    }
    /// Every key of a volume with this tag lies in `[prefix(tag, vol), prefix(tag, vol + 1))`.
    pub fn prefix(tag: u8, vol: u32) -> Vec<u8> {
        let mut k = vec![tag];
        k.extend_from_slice(&vol.to_be_bytes());
        k
    }
}
