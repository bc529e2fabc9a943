//! FastDFS framing: the 10-byte header, command codes, status codes and
//! fixed-width fields. Layouts follow FastDFS 6.x (`tracker_proto.h`,
//! `tracker_types.h`); `docs/fastdfs.md` says how they were checked.

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Header size: `pkg_len` u64 BE, `cmd` u8, `status` u8.
pub const HEADER_LEN: usize = 10;
/// Group name field.
pub const GROUP_LEN: usize = 16;
/// Extension field (no dot).
pub const EXT_LEN: usize = 6;
/// Slave prefix field.
pub const PREFIX_LEN: usize = 16;
/// An `ip:port` text field of the cluster-stat replies
/// (`FDFS_MAX_IP_PORT_SIZE`: an IPv6 address's size and 6).
pub const IP_PORT_LEN: usize = 46 + 6;
/// Storage ID field.
pub const STORAGE_ID_LEN: usize = 16;
/// Version field of a storage status record (8 since FastDFS 6.12).
pub const VERSION_LEN: usize = 8;
/// Longest file name accepted (a normal name is 44 characters, a slave or
/// trunk name a little more).
pub const MAX_FILENAME: usize = 128;
/// Longest metadata blob accepted.
pub const MAX_META: usize = 64 * 1024;
/// Longest body of a command that carries no file content.
pub const MAX_SMALL_BODY: u64 = 64 * 1024;

/// Command codes.
pub mod cmd {
    /// Answer to any command.
    pub const RESP: u8 = 100;
    /// Close the connection.
    pub const QUIT: u8 = 82;
    /// Liveness check.
    pub const ACTIVE_TEST: u8 = 111;

    /// Tracker: statistics of one group.
    pub const LIST_ONE_GROUP: u8 = 90;
    /// Tracker: statistics of every group.
    pub const LIST_ALL_GROUPS: u8 = 91;
    /// Tracker: storage servers of a group.
    pub const LIST_STORAGE: u8 = 92;
    /// Tracker: forget a storage server (`fdfs_monitor … delete`).
    pub const DELETE_STORAGE: u8 = 93;
    /// Tracker: address of the leader tracker (6.15+).
    pub const GET_LEADER: u8 = 95;
    /// Tracker: every tracker and its state (`fdfs_tracker_stat`, 6.15.5+).
    pub const TRACKER_CLUSTER_STAT: u8 = 96;
    /// Tracker: every storage server (`fdfs_storage_stat`, 6.15.5+).
    pub const STORAGE_CLUSTER_STAT: u8 = 97;
    /// Tracker: space of every group (`fdfs_volumn_stat`, 6.16.0+).
    pub const VOLUMN_STAT: u8 = 98;
    /// Tracker: the parameters a storage server or client loads from it
    /// (`load_fdfs_parameters_from_tracker`).
    pub const PARAMETER_REQ: u8 = 75;
    /// Tracker: where to upload, any group.
    pub const QUERY_STORE_WITHOUT_GROUP_ONE: u8 = 101;
    /// Tracker: where to download.
    pub const QUERY_FETCH_ONE: u8 = 102;
    /// Tracker: where to change a file.
    pub const QUERY_UPDATE: u8 = 103;
    /// Tracker: where to upload, named group.
    pub const QUERY_STORE_WITH_GROUP_ONE: u8 = 104;
    /// Tracker: every member that can serve a download.
    pub const QUERY_FETCH_ALL: u8 = 105;
    /// Tracker: every member that takes uploads, any group.
    pub const QUERY_STORE_WITHOUT_GROUP_ALL: u8 = 106;
    /// Tracker: every member that takes uploads, named group.
    pub const QUERY_STORE_WITH_GROUP_ALL: u8 = 107;

    /// Storage: upload a file.
    pub const UPLOAD_FILE: u8 = 11;
    /// Storage: delete a file.
    pub const DELETE_FILE: u8 = 12;
    /// Storage: set metadata.
    pub const SET_METADATA: u8 = 13;
    /// Storage: download.
    pub const DOWNLOAD_FILE: u8 = 14;
    /// Storage: get metadata.
    pub const GET_METADATA: u8 = 15;
    /// Storage: upload a slave file.
    pub const UPLOAD_SLAVE_FILE: u8 = 21;
    /// Storage: size, time, CRC32, source of a file.
    pub const QUERY_FILE_INFO: u8 = 22;
    /// Storage: upload an appender file.
    pub const UPLOAD_APPENDER_FILE: u8 = 23;
    /// Storage: append to an appender file.
    pub const APPEND_FILE: u8 = 24;
    /// Storage: overwrite part of an appender file.
    pub const MODIFY_FILE: u8 = 34;
    /// Storage: resize an appender file.
    pub const TRUNCATE_FILE: u8 = 36;
    /// Storage: turn an appender file into a regular one under a new name
    /// (`fdfs_regenerate_filename`, 6.02+).
    pub const REGENERATE_APPENDER_FILENAME: u8 = 38;
}

/// Status codes: Unix errno values, as FastDFS sends them.
pub mod status {
    /// Success.
    pub const OK: u8 = 0;
    /// No such file, group or storage.
    pub const ENOENT: u8 = 2;
    /// Disk error.
    pub const EIO: u8 = 5;
    /// Permission (not an appender file, wrong state).
    pub const EPERM: u8 = 1;
    /// Busy: no member can take it right now.
    pub const EBUSY: u8 = 16;
    /// Already exists.
    pub const EEXIST: u8 = 17;
    /// Bad request.
    pub const EINVAL: u8 = 22;
    /// No space left.
    pub const ENOSPC: u8 = 28;
    /// Not supported.
    pub const ENOSYS: u8 = 38;
    /// Already done (a storage server deleted before).
    pub const EALREADY: u8 = 114;
}

/// Width of the IP fields in replies. Clients built against FastDFS
/// 6.11–6.14 expect 46 bytes; older clients and 6.15+ in its default mode
/// 16. A listener answers one way, by configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpSize {
    /// 16-byte IP fields (15 in query replies).
    #[default]
    V4,
    /// 46-byte IP fields (45 in query replies).
    V6,
}

impl IpSize {
    /// The full field size (16 or 46).
    pub fn size(self) -> usize {
        match self {
            IpSize::V4 => 16,
            IpSize::V6 => 46,
        }
    }

    /// Parses `16`, `46`, `ipv4` or `ipv6`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "16" | "ipv4" | "v4" | "auto" => Some(IpSize::V4),
            "46" | "ipv6" | "v6" => Some(IpSize::V6),
            _ => None,
        }
    }
}

/// A request or reply header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Body length, not counting the header.
    pub len: u64,
    /// Command code.
    pub cmd: u8,
    /// Status (0 in requests, except QUERY_FILE_INFO's flags).
    pub status: u8,
}

impl Header {
    /// Decodes the 10 header bytes.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Self {
        let mut len = [0u8; 8];
        len.copy_from_slice(&b[..8]);
        Header { len: u64::from_be_bytes(len), cmd: b[8], status: b[9] }
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(&self.len.to_be_bytes());
        b[8] = self.cmd;
        b[9] = self.status;
        b
    }
}

/// Writes a reply: header and body in one write.
pub async fn write_reply<W: AsyncWrite + Unpin>(w: &mut W, status: u8, body: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&Header { len: body.len() as u64, cmd: cmd::RESP, status }.encode());
    out.extend_from_slice(body);
    w.write_all(&out).await?;
    w.flush().await
}

/// Appends `s` in a NUL-padded field of `width` bytes (cut if longer).
pub fn put_fixed(out: &mut Vec<u8>, s: &str, width: usize) {
    let b = s.as_bytes();
    let n = b.len().min(width);
    out.extend_from_slice(&b[..n]);
    out.resize(out.len() + (width - n), 0);
}

/// Appends a big-endian u64.
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a big-endian u32 (FastDFS's `int2buff`).
pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// The text of a NUL-padded field.
pub fn fixed_str(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// A big-endian u64 at the start of `b` (which must hold 8 bytes).
pub fn get_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = Header { len: 0x0102_0304_0506_0708, cmd: 11, status: 0 };
        assert_eq!(Header::decode(&h.encode()), h);
        assert_eq!(&h.encode()[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn fixed_fields_pad_and_cut() {
        let mut v = Vec::new();
        put_fixed(&mut v, "group1", GROUP_LEN);
        assert_eq!(v.len(), 16);
        assert_eq!(fixed_str(&v), b"group1");
        let mut w = Vec::new();
        put_fixed(&mut w, "a-very-long-group-name", 4);
        assert_eq!(w, b"a-ve");
    }
}
