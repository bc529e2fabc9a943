//! The meta database's own record types: what is stored under the keys of
//! `key.rs`, encoded with postcard. They mirror the wire types of
//! `cairn_proto::meta` today but are not them (decision 0015): a change to
//! the protocol changes nothing here, and a change here is a new format
//! version (`format.rs`) with its migration, never an accident.
//!
//! postcard writes a struct's fields in declaration order, with no names
//! and no tags, and an enum as its variant's index: **never reorder,
//! remove or change the type of a field or a variant here**; add a new
//! record type, or a new format version that rewrites the old records.
//! `tests/format.rs` holds each record's bytes as version 1 wrote them.
//!
//! Conversions to and from the wire types are the `From` impls at the end:
//! the namespace's API speaks wire types, its transactions these.

use std::collections::BTreeMap;

use cairn_proto::meta as wire;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{MetaError, Result};

/// A volume (`v` name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Internal ID, part of every key of the volume.
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

/// Kinds of inode. Stored as the variant's index: the order is the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Regular file (0).
    File,
    /// Directory (1).
    Dir,
    /// Symbolic link (2).
    Symlink,
    /// Named pipe (3).
    Fifo,
    /// Unix socket (4).
    Socket,
    /// Character device (5).
    CharDev,
    /// Block device (6).
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
        wire::Time::now().into()
    }
}

/// An inode's attributes, the first field of its [`Inode`] record (read
/// alone where only they are needed: see `usage.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// Kind.
    pub kind: Kind,
    /// Permission bits (and setuid/setgid/sticky).
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

/// A range of a file's content held by a range of a blob.
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

/// A slice as stored, borrowing its blob's name: the same encoding as
/// [`Slice`], read and written without allocating (a file written at
/// random holds hundreds of thousands).
#[derive(Debug, Serialize, Deserialize)]
pub struct SliceRef<'a> {
    /// Where in the file it starts.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
    /// The blob's file ID.
    pub blob: &'a str,
    /// Where in the blob the bytes start.
    pub blob_offset: u64,
}

/// A directory entry (`d` vol parent name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dirent {
    /// The inode it names.
    pub ino: u64,
    /// Its kind (for a listing without loading the inode).
    pub kind: Kind,
}

/// Everything about one inode (`i` vol ino) but a regular file's content.
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

/// The mounts that have open an inode with no links left (`o` vol ino),
/// so it is kept for them and freed when they are gone.
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

/// A mount or gateway attached to a volume (`m` vol session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// Its session.
    pub session: u64,
    /// What it says it is, e.g. `mount host:/mnt/photos (pid 4121)`.
    pub what: String,
    /// When it last said it is there (Unix seconds).
    pub last_seen: i64,
}

/// Encodes a record.
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(v).map_err(|e| MetaError::Engine(format!("encoding: {e}")))
}

/// Decodes a record.
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    postcard::from_bytes(b).map_err(|e| MetaError::Engine(format!("corrupt record: {e}")))
}

// ---- conversions at the edge: the namespace's API speaks wire types ----

impl From<wire::Kind> for Kind {
    fn from(k: wire::Kind) -> Self {
        match k {
            wire::Kind::File => Kind::File,
            wire::Kind::Dir => Kind::Dir,
            wire::Kind::Symlink => Kind::Symlink,
            wire::Kind::Fifo => Kind::Fifo,
            wire::Kind::Socket => Kind::Socket,
            wire::Kind::CharDev => Kind::CharDev,
            wire::Kind::BlockDev => Kind::BlockDev,
        }
    }
}

impl From<Kind> for wire::Kind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::File => wire::Kind::File,
            Kind::Dir => wire::Kind::Dir,
            Kind::Symlink => wire::Kind::Symlink,
            Kind::Fifo => wire::Kind::Fifo,
            Kind::Socket => wire::Kind::Socket,
            Kind::CharDev => wire::Kind::CharDev,
            Kind::BlockDev => wire::Kind::BlockDev,
        }
    }
}

impl From<wire::Time> for Time {
    fn from(t: wire::Time) -> Self {
        Time { secs: t.secs, nanos: t.nanos }
    }
}

impl From<Time> for wire::Time {
    fn from(t: Time) -> Self {
        wire::Time { secs: t.secs, nanos: t.nanos }
    }
}

impl From<Attr> for wire::Attr {
    fn from(a: Attr) -> Self {
        wire::Attr {
            ino: a.ino,
            kind: a.kind.into(),
            perm: a.perm,
            uid: a.uid,
            gid: a.gid,
            size: a.size,
            atime: a.atime.into(),
            mtime: a.mtime.into(),
            ctime: a.ctime.into(),
            crtime: a.crtime.into(),
            nlink: a.nlink,
            rdev: a.rdev,
        }
    }
}

impl From<wire::Slice> for Slice {
    fn from(s: wire::Slice) -> Self {
        Slice { offset: s.offset, len: s.len, blob: s.blob, blob_offset: s.blob_offset }
    }
}

impl From<Slice> for wire::Slice {
    fn from(s: Slice) -> Self {
        wire::Slice { offset: s.offset, len: s.len, blob: s.blob, blob_offset: s.blob_offset }
    }
}

impl From<SliceRef<'_>> for wire::Slice {
    fn from(s: SliceRef<'_>) -> Self {
        wire::Slice { offset: s.offset, len: s.len, blob: s.blob.to_string(), blob_offset: s.blob_offset }
    }
}

impl<'a> From<&'a wire::Slice> for SliceRef<'a> {
    fn from(s: &'a wire::Slice) -> Self {
        SliceRef { offset: s.offset, len: s.len, blob: &s.blob, blob_offset: s.blob_offset }
    }
}

impl From<Dirent> for wire::Dirent {
    fn from(d: Dirent) -> Self {
        wire::Dirent { ino: d.ino, kind: d.kind.into() }
    }
}

impl From<Volume> for wire::Volume {
    fn from(v: Volume) -> Self {
        wire::Volume { id: v.id, name: v.name, groups: v.groups, chunk_size: v.chunk_size, created: v.created }
    }
}

impl From<Client> for wire::VolumeClient {
    fn from(c: Client) -> Self {
        wire::VolumeClient { session: c.session, what: c.what, last_seen: c.last_seen }
    }
}

/// Stored slices as the wire's, oldest first.
pub fn to_wire(slices: Vec<Slice>) -> Vec<wire::Slice> {
    slices.into_iter().map(Into::into).collect()
}

/// Wire slices as stored ones.
pub fn from_wire(slices: Vec<wire::Slice>) -> Vec<Slice> {
    slices.into_iter().map(Into::into).collect()
}
