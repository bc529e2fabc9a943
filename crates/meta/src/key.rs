//! The keys of the meta database, and what is stored under each (the
//! record types are in `records.rs`; the whole format, byte by byte, in
//! docs/formats/meta.md). Every key starts with one tag byte; numbers are
//! big-endian so keys sort by them. Values are postcard-encoded.
//!
//! | key | value |
//! |---|---|
//! | `f` | format version (u32): see `format.rs`; absent in version 1 |
//! | `v` name | [`Volume`](crate::records::Volume) |
//! | `n` | next volume ID (u32) |
//! | `i` vol ino | [`Inode`](crate::records::Inode) |
//! | `s` vol ino | `(u64, Vec<Slice>)`: a regular file's content, oldest first, and its generation |
//! | `c` vol | next inode number (u64) |
//! | `d` vol parent name | [`Dirent`](crate::records::Dirent) |
//! | `o` vol ino | [`Holders`](crate::records::Holders) of an inode with no links left, kept while open |
//! | `r` session seq | when the tagged change was applied (i64 Unix seconds) |
//! | `g` blob ID | when the blob lost its last reference (i64 Unix seconds), for the collector |
//! | `b` blob ID | how many files beyond one hold the blob (u64; absent: one), after server-side copies (version 2) |
//! | `k` vol ino | (empty): a file with many slices, for the slice merger |
//! | `u` vol | bytes in the volume's files (u64) |
//! | `m` vol session | [`Client`](crate::records::Client): a mount or gateway attached to the volume |

/// The format version of the database.
pub const FORMAT: &[u8] = b"f";
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
/// A file waiting for the slice merger.
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
/// How many more files than one hold a blob (server-side copies share
/// blobs).
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
