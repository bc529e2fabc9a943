//! Decoding requests. Every decoder works on bytes already read and
//! bounded by the caller (see [`body_limit`]), checks every length against
//! what is there before using it, and never panics on any input: the fuzz
//! tests in `tests/decoders.rs` feed them arbitrary bytes.

use cairn_proto::FileId;

use crate::wire::{self, cmd, fixed_str, get_u64, EXT_LEN, GROUP_LEN, MAX_FILENAME, MAX_META, PREFIX_LEN};

/// Why a request could not be decoded. Answered with EINVAL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than its fixed part.
    #[error("command {cmd}: body of {len} bytes is shorter than its fixed part")]
    Short {
        /// Command.
        cmd: u8,
        /// Bytes there.
        len: usize,
    },
    /// The lengths inside the body do not add up to the header's.
    #[error("command {cmd}: lengths in the body do not add up to {pkg_len}")]
    Length {
        /// Command.
        cmd: u8,
        /// Header length.
        pkg_len: u64,
    },
    /// A field holds something invalid.
    #[error("{0}")]
    Field(String),
    /// Not a command this listener knows.
    #[error("unknown command {0}")]
    Unknown(u8),
}

/// A tracker request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerRequest {
    /// Where to upload (101/104 with one answer, 106/107 with all).
    QueryStore {
        /// Named group (104, 107).
        group: Option<String>,
        /// Every member rather than one.
        all: bool,
    },
    /// Where to download (102) or every member that can (105).
    QueryFetch {
        /// The file.
        id: FileId,
        /// Every member.
        all: bool,
    },
    /// Where to change a file (103).
    QueryUpdate {
        /// The file.
        id: FileId,
    },
    /// One group's statistics (90) or all (91).
    ListGroups {
        /// The group, for 90.
        group: Option<String>,
    },
    /// Storage servers of a group (92), optionally just one by ID.
    ListStorage {
        /// The group.
        group: String,
        /// A storage ID or IP to narrow to.
        storage: Option<String>,
    },
    /// Forget a storage server of a group (93), by ID or IP.
    DeleteStorage {
        /// The group.
        group: String,
        /// Its storage ID or IP.
        storage: String,
    },
    /// The parameters FastDFS's tracker hands out (75).
    Parameters,
    /// Where the leader tracker is (95).
    GetLeader,
    /// Every tracker (96), narrowed by `filter`.
    TrackerStat {
        /// `FDFS_TRACKER_STAT_FILTER_BY_*` bits (1 active, 2 leader).
        filter_by: u8,
        /// Wanted is-active value.
        is_active: bool,
        /// Wanted is-leader value.
        is_leader: bool,
    },
    /// Every storage server (97), narrowed by `filter`.
    StorageStat {
        /// `FDFS_STORAGE_STAT_FILTER_BY_*` bits (1 trunk server, 2 status).
        filter_by: u8,
        /// `=` or `!` against `status`.
        op: u8,
        /// A FastDFS status code.
        status: u8,
        /// Wanted is-trunk-server value.
        is_trunk_server: bool,
    },
    /// Space of every group (98), narrowed by `filter`.
    VolumnStat {
        /// `FDFS_VOLUMN_STAT_FILTER_BY_*` bits (1 disk, 2 trunk, 4 space).
        filter_by: u8,
        /// Wanted is-disk-available value.
        disk: bool,
        /// Wanted is-trunk-available value.
        trunk: bool,
        /// Wanted is-space-available value.
        space: bool,
    },
    /// Liveness check.
    ActiveTest,
    /// Close.
    Quit,
}

/// A storage request: its fixed part and names; the file content, if
/// any, follows on the connection (`content` bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageRequest {
    /// Upload (11) or upload appender (23).
    Upload {
        /// An appender file.
        appender: bool,
        /// Store path index the tracker suggested (0xFF: the storage picks).
        store_path: u8,
        /// Extension, without dot.
        ext: String,
        /// Content bytes that follow.
        content: u64,
    },
    /// Upload a slave file of `master` (21).
    UploadSlave {
        /// Master file (group taken from the storage's own).
        master: String,
        /// Prefix inserted before the extension.
        prefix: String,
        /// Extension.
        ext: String,
        /// Content bytes that follow.
        content: u64,
    },
    /// Download a range (14).
    Download {
        /// The file.
        id: FileId,
        /// Start.
        offset: u64,
        /// Bytes, 0 for to the end.
        length: u64,
    },
    /// Delete (12).
    Delete {
        /// The file.
        id: FileId,
    },
    /// Get metadata (15).
    GetMeta {
        /// The file.
        id: FileId,
    },
    /// Query file info (22).
    FileInfo {
        /// The file.
        id: FileId,
    },
    /// Append (24): the file name comes without its group.
    Append {
        /// File name within the group.
        filename: String,
        /// Content bytes that follow.
        content: u64,
    },
    /// Modify (34).
    Modify {
        /// File name within the group.
        filename: String,
        /// Where to start writing.
        offset: u64,
        /// Content bytes that follow.
        content: u64,
    },
    /// Truncate (36).
    Truncate {
        /// File name within the group.
        filename: String,
        /// New size.
        size: u64,
    },
    /// Set metadata (13), overwriting (`O`) or merging (`M`).
    SetMeta {
        /// The file.
        id: FileId,
        /// Merge key by key.
        merge: bool,
        /// Pairs.
        meta: Vec<(String, String)>,
    },
    /// Give an appender file a regular file's name (38).
    Regenerate {
        /// The appender file's name within the group.
        filename: String,
    },
    /// Liveness check.
    ActiveTest,
    /// Close.
    Quit,
}

/// The most of a body a listener reads into memory before decoding:
/// the fixed part and names of commands with file content, the whole body
/// of the others. `None`: the command is unknown.
pub fn body_limit(cmd: u8) -> Option<usize> {
    match cmd {
        cmd::UPLOAD_FILE | cmd::UPLOAD_APPENDER_FILE => Some(1 + 8 + EXT_LEN),
        cmd::UPLOAD_SLAVE_FILE => Some(8 + 8 + PREFIX_LEN + EXT_LEN),
        cmd::APPEND_FILE => Some(16),
        cmd::MODIFY_FILE => Some(24),
        cmd::SET_METADATA => Some(8 + 8 + 1 + GROUP_LEN + MAX_FILENAME + MAX_META),
        cmd::DOWNLOAD_FILE
        | cmd::DELETE_FILE
        | cmd::GET_METADATA
        | cmd::QUERY_FILE_INFO
        | cmd::TRUNCATE_FILE
        | cmd::QUERY_FETCH_ONE
        | cmd::QUERY_FETCH_ALL
        | cmd::QUERY_UPDATE
        | cmd::QUERY_STORE_WITH_GROUP_ONE
        | cmd::QUERY_STORE_WITH_GROUP_ALL
        | cmd::QUERY_STORE_WITHOUT_GROUP_ONE
        | cmd::QUERY_STORE_WITHOUT_GROUP_ALL
        | cmd::LIST_ONE_GROUP
        | cmd::LIST_ALL_GROUPS
        | cmd::LIST_STORAGE
        | cmd::DELETE_STORAGE
        | cmd::PARAMETER_REQ
        | cmd::GET_LEADER
        | cmd::TRACKER_CLUSTER_STAT
        | cmd::STORAGE_CLUSTER_STAT
        | cmd::VOLUMN_STAT
        | cmd::REGENERATE_APPENDER_FILENAME
        | cmd::ACTIVE_TEST
        | cmd::QUIT => Some(8 + 16 + GROUP_LEN + MAX_FILENAME),
        _ => None,
    }
}

/// Whether the command carries file content after its fixed part and
/// names (the listener then reads only the head into memory).
pub fn has_content(cmd: u8) -> bool {
    matches!(
        cmd,
        cmd::UPLOAD_FILE | cmd::UPLOAD_APPENDER_FILE | cmd::UPLOAD_SLAVE_FILE | cmd::APPEND_FILE | cmd::MODIFY_FILE
    )
}

/// For a command with content, the length of the name that follows its
/// fixed part (`fixed` holds that part), bounded by [`MAX_FILENAME`].
pub fn name_len(cmd: u8, fixed: &[u8]) -> Result<usize, DecodeError> {
    let n = match cmd {
        cmd::UPLOAD_SLAVE_FILE | cmd::APPEND_FILE | cmd::MODIFY_FILE => {
            if fixed.len() < 8 {
                return Err(DecodeError::Short { cmd, len: fixed.len() });
            }
            get_u64(fixed)
        }
        _ => 0,
    };
    if n > MAX_FILENAME as u64 {
        return Err(DecodeError::Field(format!("file name of {n} bytes is too long")));
    }
    Ok(n as usize)
}

fn text(b: &[u8], what: &str) -> Result<String, DecodeError> {
    std::str::from_utf8(b).map(str::to_string).map_err(|_| DecodeError::Field(format!("{what} is not UTF-8")))
}

fn group_field(b: &[u8]) -> Result<String, DecodeError> {
    let g = text(fixed_str(b), "group name")?;
    cairn_proto::file_id::validate_group(&g).map_err(|e| DecodeError::Field(format!("group name: {e}")))?;
    Ok(g)
}

/// A file ID from a group field and a name within the group.
pub fn file_id(group: &str, filename: &[u8]) -> Result<FileId, DecodeError> {
    if filename.len() > MAX_FILENAME {
        return Err(DecodeError::Field("file name too long".into()));
    }
    let name = text(filename, "file name")?;
    FileId::parse(&format!("{group}/{name}")).map_err(|e| DecodeError::Field(e.to_string()))
}

/// `group[16] filename`
fn group_and_name(cmd: u8, b: &[u8]) -> Result<FileId, DecodeError> {
    if b.len() <= GROUP_LEN {
        return Err(DecodeError::Short { cmd, len: b.len() });
    }
    file_id(&group_field(&b[..GROUP_LEN])?, &b[GROUP_LEN..])
}

/// Decodes a tracker request from its whole body.
pub fn decode_tracker(cmd: u8, body: &[u8]) -> Result<TrackerRequest, DecodeError> {
    let group_only = |b: &[u8]| -> Result<String, DecodeError> {
        if b.len() != GROUP_LEN {
            return Err(DecodeError::Length { cmd, pkg_len: b.len() as u64 });
        }
        group_field(b)
    };
    let empty =
        |b: &[u8]| if b.is_empty() { Ok(()) } else { Err(DecodeError::Length { cmd, pkg_len: b.len() as u64 }) };
    Ok(match cmd {
        cmd::QUERY_STORE_WITHOUT_GROUP_ONE | cmd::QUERY_STORE_WITHOUT_GROUP_ALL => {
            empty(body)?;
            TrackerRequest::QueryStore { group: None, all: cmd == cmd::QUERY_STORE_WITHOUT_GROUP_ALL }
        }
        cmd::QUERY_STORE_WITH_GROUP_ONE | cmd::QUERY_STORE_WITH_GROUP_ALL => {
            TrackerRequest::QueryStore { group: Some(group_only(body)?), all: cmd == cmd::QUERY_STORE_WITH_GROUP_ALL }
        }
        cmd::QUERY_FETCH_ONE | cmd::QUERY_FETCH_ALL => {
            TrackerRequest::QueryFetch { id: group_and_name(cmd, body)?, all: cmd == cmd::QUERY_FETCH_ALL }
        }
        cmd::QUERY_UPDATE => TrackerRequest::QueryUpdate { id: group_and_name(cmd, body)? },
        cmd::LIST_ALL_GROUPS => {
            empty(body)?;
            TrackerRequest::ListGroups { group: None }
        }
        cmd::LIST_ONE_GROUP => TrackerRequest::ListGroups { group: Some(group_only(body)?) },
        cmd::LIST_STORAGE => {
            // The C client sends the ID unpadded (`group[16]` and its
            // length); older clients padded it to 16.
            let (group, storage) = group_and_storage(cmd, body)?;
            TrackerRequest::ListStorage { group, storage }
        }
        cmd::DELETE_STORAGE => match group_and_storage(cmd, body)? {
            (group, Some(storage)) => TrackerRequest::DeleteStorage { group, storage },
            (_, None) => return Err(DecodeError::Short { cmd, len: body.len() }),
        },
        cmd::PARAMETER_REQ => {
            empty(body)?;
            TrackerRequest::Parameters
        }
        cmd::GET_LEADER => {
            empty(body)?;
            TrackerRequest::GetLeader
        }
        // The filters are packed structs of one-byte fields.
        cmd::TRACKER_CLUSTER_STAT => match body {
            [filter_by, is_active, is_leader] => TrackerRequest::TrackerStat {
                filter_by: *filter_by,
                is_active: *is_active != 0,
                is_leader: *is_leader != 0,
            },
            _ => return Err(DecodeError::Length { cmd, pkg_len: body.len() as u64 }),
        },
        cmd::STORAGE_CLUSTER_STAT => match body {
            [filter_by, op, status, is_trunk_server] => TrackerRequest::StorageStat {
                filter_by: *filter_by,
                op: *op,
                status: *status,
                is_trunk_server: *is_trunk_server != 0,
            },
            _ => return Err(DecodeError::Length { cmd, pkg_len: body.len() as u64 }),
        },
        cmd::VOLUMN_STAT => match body {
            [filter_by, disk, trunk, space] => TrackerRequest::VolumnStat {
                filter_by: *filter_by,
                disk: *disk != 0,
                trunk: *trunk != 0,
                space: *space != 0,
            },
            _ => return Err(DecodeError::Length { cmd, pkg_len: body.len() as u64 }),
        },
        cmd::ACTIVE_TEST => {
            empty(body)?;
            TrackerRequest::ActiveTest
        }
        cmd::QUIT => TrackerRequest::Quit,
        other => return Err(DecodeError::Unknown(other)),
    })
}

/// `group[16]` and an optional storage ID or IP of up to 16 bytes,
/// NUL-padded or not.
fn group_and_storage(cmd: u8, body: &[u8]) -> Result<(String, Option<String>), DecodeError> {
    if body.len() < GROUP_LEN || body.len() > GROUP_LEN + wire::STORAGE_ID_LEN {
        return Err(DecodeError::Length { cmd, pkg_len: body.len() as u64 });
    }
    let group = group_field(&body[..GROUP_LEN])?;
    let storage = match fixed_str(&body[GROUP_LEN..]) {
        [] => None,
        id => Some(text(id, "storage id")?),
    };
    Ok((group, storage))
}

fn ext_field(b: &[u8]) -> Result<String, DecodeError> {
    let e = text(fixed_str(b), "extension")?;
    cairn_proto::file_id::validate_ext(&e).map_err(|r| DecodeError::Field(format!("extension: {r}")))?;
    Ok(e)
}

/// The non-empty file name after a `fixed`-byte part that starts with
/// its length.
fn named(cmd: u8, head: &[u8], fixed: usize) -> Result<&[u8], DecodeError> {
    if head.len() < fixed {
        return Err(DecodeError::Short { cmd, len: head.len() });
    }
    let n = name_len(cmd, head)?;
    if head.len() != fixed + n || n == 0 {
        return Err(DecodeError::Short { cmd, len: head.len() });
    }
    Ok(&head[fixed..])
}

/// Decodes a storage request from its head (the fixed part and names of
/// a command with content, else the whole body); `pkg_len` is the
/// header's, against which the content length is checked.
pub fn decode_storage(cmd: u8, pkg_len: u64, head: &[u8]) -> Result<StorageRequest, DecodeError> {
    let short = || DecodeError::Short { cmd, len: head.len() };
    let mismatch = || DecodeError::Length { cmd, pkg_len };
    // Content announced in the body must be exactly what the header says.
    let content_after = |fixed: usize, announced: u64| -> Result<u64, DecodeError> {
        let rest = pkg_len.checked_sub(fixed as u64).ok_or_else(mismatch)?;
        if rest != announced {
            return Err(mismatch());
        }
        Ok(announced)
    };
    Ok(match cmd {
        cmd::UPLOAD_FILE | cmd::UPLOAD_APPENDER_FILE => {
            if head.len() != 15 {
                return Err(short());
            }
            StorageRequest::Upload {
                appender: cmd == cmd::UPLOAD_APPENDER_FILE,
                store_path: head[0],
                ext: ext_field(&head[9..15])?,
                content: content_after(15, get_u64(&head[1..9]))?,
            }
        }
        cmd::UPLOAD_SLAVE_FILE => {
            let fixed = 8 + 8 + PREFIX_LEN + EXT_LEN;
            if head.len() < fixed {
                return Err(short());
            }
            let master_len = name_len(cmd, head)?;
            if head.len() != fixed + master_len {
                return Err(short());
            }
            let prefix = text(fixed_str(&head[16..16 + PREFIX_LEN]), "prefix")?;
            cairn_proto::file_id::validate_prefix(&prefix).map_err(|r| DecodeError::Field(format!("prefix: {r}")))?;
            StorageRequest::UploadSlave {
                master: text(&head[fixed..], "master file name")?,
                prefix,
                ext: ext_field(&head[16 + PREFIX_LEN..fixed])?,
                content: content_after(head.len(), get_u64(&head[8..16]))?,
            }
        }
        cmd::APPEND_FILE => {
            let name = named(cmd, head, 16)?;
            StorageRequest::Append {
                filename: text(name, "file name")?,
                content: content_after(head.len(), get_u64(&head[8..16]))?,
            }
        }
        cmd::MODIFY_FILE => {
            let name = named(cmd, head, 24)?;
            StorageRequest::Modify {
                filename: text(name, "file name")?,
                offset: get_u64(&head[8..16]),
                content: content_after(head.len(), get_u64(&head[16..24]))?,
            }
        }
        cmd::DOWNLOAD_FILE => {
            if head.len() <= 16 {
                return Err(short());
            }
            StorageRequest::Download {
                offset: get_u64(head),
                length: get_u64(&head[8..16]),
                id: group_and_name(cmd, &head[16..])?,
            }
        }
        cmd::DELETE_FILE => StorageRequest::Delete { id: group_and_name(cmd, head)? },
        cmd::GET_METADATA => StorageRequest::GetMeta { id: group_and_name(cmd, head)? },
        cmd::QUERY_FILE_INFO => StorageRequest::FileInfo { id: group_and_name(cmd, head)? },
        cmd::TRUNCATE_FILE => {
            if head.len() < 16 {
                return Err(short());
            }
            let n = get_u64(head);
            if n == 0 || n > MAX_FILENAME as u64 || head.len() as u64 != 16 + n {
                return Err(mismatch());
            }
            StorageRequest::Truncate { filename: text(&head[16..], "file name")?, size: get_u64(&head[8..16]) }
        }
        cmd::SET_METADATA => {
            let fixed = 8 + 8 + 1 + GROUP_LEN;
            if head.len() < fixed {
                return Err(short());
            }
            let (name_len, meta_len) = (get_u64(head), get_u64(&head[8..16]));
            if name_len == 0 || name_len > MAX_FILENAME as u64 || meta_len > MAX_META as u64 {
                return Err(mismatch());
            }
            let (name_len, meta_len) = (name_len as usize, meta_len as usize);
            if head.len() != fixed + name_len + meta_len {
                return Err(mismatch());
            }
            let merge = match head[16] {
                b'O' => false,
                b'M' => true,
                f => return Err(DecodeError::Field(format!("metadata flag {f:#04x} is neither 'O' nor 'M'"))),
            };
            let group = group_field(&head[17..fixed])?;
            let id = file_id(&group, &head[fixed..fixed + name_len])?;
            StorageRequest::SetMeta { id, merge, meta: decode_meta(&head[fixed + name_len..])? }
        }
        cmd::REGENERATE_APPENDER_FILENAME => {
            if head.is_empty() || head.len() > MAX_FILENAME {
                return Err(short());
            }
            StorageRequest::Regenerate { filename: text(head, "file name")? }
        }
        cmd::ACTIVE_TEST => StorageRequest::ActiveTest,
        cmd::QUIT => StorageRequest::Quit,
        other => return Err(DecodeError::Unknown(other)),
    })
}

/// Metadata as FastDFS packs it: `name\x02value` records joined by `\x01`.
pub fn decode_meta(b: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    let mut out = Vec::new();
    if b.is_empty() {
        return Ok(out);
    }
    for rec in b.split(|&c| c == 1) {
        if rec.is_empty() {
            continue;
        }
        let mut parts = rec.splitn(2, |&c| c == 2);
        let name = text(parts.next().unwrap_or_default(), "metadata name")?;
        let value = text(parts.next().unwrap_or_default(), "metadata value")?;
        if name.is_empty() {
            return Err(DecodeError::Field("metadata name is empty".into()));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// Packs metadata the FastDFS way.
pub fn encode_meta(meta: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (k, v)) in meta.iter().enumerate() {
        if i > 0 {
            out.push(1);
        }
        out.extend_from_slice(k.as_bytes());
        out.push(2);
        out.extend_from_slice(v.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{put_fixed, put_u64};

    const NAME: &str = "M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin";

    #[test]
    fn upload_head_must_match_the_header_length() {
        let mut b = vec![0xFF];
        put_u64(&mut b, 5);
        put_fixed(&mut b, "jpg", 6);
        let r = decode_storage(cmd::UPLOAD_FILE, 20, &b).unwrap();
        assert_eq!(r, StorageRequest::Upload { appender: false, store_path: 0xFF, ext: "jpg".into(), content: 5 });
        assert!(matches!(decode_storage(cmd::UPLOAD_FILE, 21, &b), Err(DecodeError::Length { .. })));
    }

    #[test]
    fn set_metadata_decodes_flag_group_name_and_pairs() {
        let meta = encode_meta(&[("w".into(), "100".into()), ("h".into(), "80".into())]);
        let mut b = Vec::new();
        put_u64(&mut b, NAME.len() as u64);
        put_u64(&mut b, meta.len() as u64);
        b.push(b'M');
        put_fixed(&mut b, "group1", 16);
        b.extend_from_slice(NAME.as_bytes());
        b.extend_from_slice(&meta);
        match decode_storage(cmd::SET_METADATA, b.len() as u64, &b).unwrap() {
            StorageRequest::SetMeta { id, merge, meta } => {
                assert_eq!(id.to_string(), format!("group1/{NAME}"));
                assert!(merge);
                assert_eq!(meta, vec![("w".into(), "100".into()), ("h".into(), "80".into())]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn traversal_in_a_file_name_is_refused() {
        let mut b = Vec::new();
        put_fixed(&mut b, "group1", 16);
        b.extend_from_slice(b"M00/../../etc/passwd");
        assert!(decode_storage(cmd::DELETE_FILE, b.len() as u64, &b).is_err());
    }

    #[test]
    fn the_616_tools_requests_decode() {
        // fdfs_monitor: list storage and delete storage with the ID unpadded.
        let mut b = Vec::new();
        put_fixed(&mut b, "g1", 16);
        b.extend_from_slice(b"100001");
        assert_eq!(
            decode_tracker(cmd::LIST_STORAGE, &b).unwrap(),
            TrackerRequest::ListStorage { group: "g1".into(), storage: Some("100001".into()) }
        );
        assert_eq!(
            decode_tracker(cmd::DELETE_STORAGE, &b).unwrap(),
            TrackerRequest::DeleteStorage { group: "g1".into(), storage: "100001".into() }
        );
        assert!(decode_tracker(cmd::DELETE_STORAGE, &b[..16]).is_err(), "delete needs a storage");
        // The stat tools' filters: packed one-byte fields.
        assert_eq!(
            decode_tracker(cmd::TRACKER_CLUSTER_STAT, &[2, 0, 1]).unwrap(),
            TrackerRequest::TrackerStat { filter_by: 2, is_active: false, is_leader: true }
        );
        assert_eq!(
            decode_tracker(cmd::STORAGE_CLUSTER_STAT, &[2, b'!', 7, 0]).unwrap(),
            TrackerRequest::StorageStat { filter_by: 2, op: b'!', status: 7, is_trunk_server: false }
        );
        assert_eq!(
            decode_tracker(cmd::VOLUMN_STAT, &[4, 0, 0, 1]).unwrap(),
            TrackerRequest::VolumnStat { filter_by: 4, disk: false, trunk: false, space: true }
        );
        assert!(decode_tracker(cmd::VOLUMN_STAT, &[4, 0, 0]).is_err());
        assert_eq!(decode_tracker(cmd::PARAMETER_REQ, &[]).unwrap(), TrackerRequest::Parameters);
        assert_eq!(decode_tracker(cmd::GET_LEADER, &[]).unwrap(), TrackerRequest::GetLeader);
        // fdfs_regenerate_filename: the appender's name alone.
        assert_eq!(
            decode_storage(cmd::REGENERATE_APPENDER_FILENAME, NAME.len() as u64, NAME.as_bytes()).unwrap(),
            StorageRequest::Regenerate { filename: NAME.into() }
        );
        assert!(decode_storage(cmd::REGENERATE_APPENDER_FILENAME, 0, b"").is_err());
    }

    #[test]
    fn fastdfs_extensions_decode_and_dots_only_do_not() {
        for (ext, ok) in [("tar.gz", true), ("c_d", true), ("..", false), ("a..b", false), ("rec", false)] {
            let mut b = vec![0xFF];
            put_u64(&mut b, 1);
            put_fixed(&mut b, ext, 6);
            assert_eq!(decode_storage(cmd::UPLOAD_FILE, 16, &b).is_ok(), ok, "{ext}");
        }
    }

    #[test]
    fn tracker_query_store_with_group() {
        let mut b = Vec::new();
        put_fixed(&mut b, "group1", 16);
        assert_eq!(
            decode_tracker(cmd::QUERY_STORE_WITH_GROUP_ONE, &b).unwrap(),
            TrackerRequest::QueryStore { group: Some("group1".into()), all: false }
        );
        assert!(decode_tracker(cmd::QUERY_STORE_WITHOUT_GROUP_ONE, &b).is_err());
        assert_eq!(decode_tracker(200, &[]), Err(DecodeError::Unknown(200)));
    }
}
