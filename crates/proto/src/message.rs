//! Typed requests and responses.
//!
//! A connection carries one request at a time: the client writes a
//! [`Request`] frame (and a body where noted), the server answers with a
//! [`Response`] frame (and a body where noted). Either side may then send the
//! next request on the same connection, which is what the client's pool reuses.

use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterMap, GroupView, Miss, NodeReport};
use crate::error::WireError;

/// Metadata of one blob: ordered key/value pairs.
pub type Metadata = Vec<(String, String)>;

/// Every operation of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    // ---- tracker ----
    /// A storage node's heartbeat; answered with [`Response::Group`].
    Heartbeat(NodeReport),
    /// Where to upload: answered with [`Response::StoreTarget`].
    QueryStore {
        /// Upload into this group, or let the tracker choose.
        group: Option<String>,
        /// Members the client failed to reach and wants skipped.
        exclude: Vec<String>,
    },
    /// Where to read a file: answered with [`Response::Members`], best first.
    QueryFetch {
        /// The file.
        file_id: String,
    },
    /// Where to mutate a file (the group's primary): [`Response::Members`].
    QueryUpdate {
        /// The file.
        file_id: String,
    },
    /// The whole map: [`Response::Cluster`].
    ClusterStatus,
    /// A storage node left members out of a write: [`Response::Group`].
    /// Sent before the write is acknowledged, so that no read goes to a
    /// member that lacks it.
    ReportMissed {
        /// The reporter's group.
        group: String,
        /// The members, with their rounds at this tracker.
        missed: Vec<Miss>,
    },
    /// Take a member out of its group (operator): [`Response::Ok`].
    RemoveMember {
        /// Its group.
        group: String,
        /// Its node ID.
        node_id: u32,
    },
    /// A spare storage node (no group yet) announces itself:
    /// [`Response::Assigned`].
    SpareHeartbeat {
        /// Address it serves on.
        addr: String,
        /// Software version.
        version: String,
    },
    /// Put the spare at `addr` into `group` (operator): [`Response::Ok`].
    AddMember {
        /// The group to join (a new name starts a new group).
        group: String,
        /// Address of a spare that heartbeats to this tracker.
        addr: String,
    },

    // ---- storage, client-facing ----
    /// Upload a new blob; a body follows. Answered with [`Response::FileId`].
    Upload {
        /// Appender blobs take append, modify and truncate later.
        appender: bool,
        /// Extension without the dot (may be empty).
        ext: String,
        /// Store path to use, or let the node choose.
        store_path: Option<u8>,
    },
    /// Upload a slave of an existing master; a body follows.
    UploadSlave {
        /// The master's file ID.
        master: String,
        /// Inserted into the master's name.
        prefix: String,
        /// Extension (empty: the master's).
        ext: String,
    },
    /// Read a blob or a range of it: [`Response::Data`] and a body.
    Download {
        /// The file.
        file_id: String,
        /// First byte.
        offset: u64,
        /// Bytes to read; `None` reads to the end.
        length: Option<u64>,
    },
    /// Delete a blob everywhere in its group.
    Delete {
        /// The file.
        file_id: String,
    },
    /// Drop an upload that was never acknowledged, everywhere in its group,
    /// leaving a tombstone even where the blob is absent, so no member can
    /// copy it back. Sent to the primary by an originator that finds, on its
    /// return, an upload of its own that not every active member holds.
    Discard {
        /// The file.
        file_id: String,
    },
    /// Append to an appender blob; a body follows.
    Append {
        /// The file.
        file_id: String,
    },
    /// Overwrite part of an appender blob; a body follows.
    Modify {
        /// The file.
        file_id: String,
        /// Where the new bytes go (at most the current size).
        offset: u64,
    },
    /// Cut or extend an appender blob.
    Truncate {
        /// The file.
        file_id: String,
        /// New size.
        size: u64,
    },
    /// Set metadata, replacing all of it or merging key by key.
    SetMeta {
        /// The file.
        file_id: String,
        /// Pairs to set.
        meta: Metadata,
        /// Merge with what is there instead of replacing it.
        merge: bool,
    },
    /// Read metadata: [`Response::Meta`].
    GetMeta {
        /// The file.
        file_id: String,
    },
    /// Size, checksum, creation: [`Response::Info`].
    FileInfo {
        /// The file.
        file_id: String,
    },

    // ---- storage to storage ----
    /// A replica's copy of a body (new blob, append or modify). The body
    /// follows, then a [`ReplicaCommit`] frame that says what to do with it.
    ReplicaBody {
        /// Epoch of the sender's group view.
        epoch: u64,
        /// Store path the data belongs to.
        store_path: u8,
    },
    /// A replica's copy of a mutation without a body.
    ReplicaOp {
        /// Epoch of the sender's group view.
        epoch: u64,
        /// The mutation.
        op: ReplicaOp,
    },
    /// Liveness check; answered with [`Response::Ok`].
    Ping,

    // ---- storage to storage: catch-up and repair ----
    /// A page of the blobs this node holds, by ID after `after`:
    /// [`Response::Blobs`].
    ListBlobs {
        /// Start after this ID (`None`: from the first).
        after: Option<String>,
        /// Most entries wanted.
        limit: u32,
    },
    /// A page of the IDs this node has deleted, from its binlog:
    /// [`Response::Tombstones`].
    Tombstones {
        /// Start after this binlog sequence number.
        after_seq: u64,
        /// Most entries wanted.
        limit: u32,
    },
    /// A whole blob with its record, for a peer that lacks or lost it:
    /// [`Response::Blob`] and a body.
    FetchBlob {
        /// The blob.
        file_id: String,
    },
    /// Start a scrub now (`start`) or just report: [`Response::Scrub`].
    Scrub {
        /// Start one if none is running.
        start: bool,
    },
    /// Catch-up progress of this node: [`Response::Heal`].
    HealStatus,
    /// Change the pace of background traffic at run time: [`Response::Ok`].
    SetRates {
        /// Catch-up and repair copying, MiB/s (0: unlimited).
        heal_mib: Option<u64>,
        /// Scrub reading, MiB/s (0: unlimited).
        scrub_mib: Option<u64>,
    },
    /// Where this node's binlog stands: [`Response::SyncPoint`].
    SyncPoint,
    /// A page of this node's binlog after a point: [`Response::BinlogTail`],
    /// or an error with [`crate::ErrorCode::Gone`] when the binlog changed
    /// generation (the node crashed and may have lost its last lines).
    BinlogTail {
        /// The binlog generation the point belongs to.
        generation: u64,
        /// Entries after this sequence number.
        after_seq: u64,
        /// Byte offset where that entry's successor is expected (a hint).
        offset: u64,
        /// Most entries wanted.
        limit: u32,
    },
    /// Size and checksum of the named blobs that this node holds:
    /// [`Response::Blobs`] (absent ones left out).
    BlobSummaries {
        /// IDs.
        ids: Vec<String>,
    },

    // ---- client to meta service ----
    /// A namespace operation.
    Namespace(crate::meta::MetaRequest),

    /// Members left out of a write, as [`Request::ReportMissed`], naming
    /// the reporter: a tracker takes the report only from an active member.
    ReportMissedBy {
        /// The reporter's group.
        group: String,
        /// The reporter's node ID.
        reporter: u32,
        /// The members, with their rounds at this tracker.
        missed: Vec<Miss>,
    },
    /// A namespace change applied at most once however often it is sent:
    /// a client whose connection broke before the answer came sends the
    /// same `(session, seq)` again, and a change already made is answered
    /// from the namespace as it is, not made twice.
    NamespaceOnce {
        /// The sending client's session (random, one per mount).
        session: u64,
        /// The request's number within the session.
        seq: u64,
        /// The change.
        req: crate::meta::MetaRequest,
    },
    /// Read a range as the whole checksum blocks that cover it, sent as they
    /// are on disk with their CRCs, for a client that checks every block
    /// before it uses a byte ([`Response::Blocks`] and a body). The node can
    /// then send from the page cache without copying (`sendfile`); the
    /// client's check is the one every byte gets. A blob that changes under
    /// readers (an appender) is answered as [`Request::Download`] is.
    DownloadBlocks {
        /// The file.
        file_id: String,
        /// First byte wanted.
        offset: u64,
        /// Bytes wanted; `None` reads to the end.
        length: Option<u64>,
    },
}

impl Request {
    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Heartbeat(_) => "heartbeat",
            Request::QueryStore { .. } => "query-store",
            Request::QueryFetch { .. } => "query-fetch",
            Request::QueryUpdate { .. } => "query-update",
            Request::ClusterStatus => "cluster-status",
            Request::Upload { .. } => "upload",
            Request::UploadSlave { .. } => "upload-slave",
            Request::Download { .. } => "download",
            Request::Delete { .. } => "delete",
            Request::Discard { .. } => "discard",
            Request::Append { .. } => "append",
            Request::Modify { .. } => "modify",
            Request::Truncate { .. } => "truncate",
            Request::SetMeta { .. } => "set-meta",
            Request::GetMeta { .. } => "get-meta",
            Request::FileInfo { .. } => "file-info",
            Request::ReplicaBody { .. } => "replica-body",
            Request::ReplicaOp { .. } => "replica-op",
            Request::Ping => "ping",
            Request::ListBlobs { .. } => "list-blobs",
            Request::Tombstones { .. } => "tombstones",
            Request::FetchBlob { .. } => "fetch-blob",
            Request::Scrub { .. } => "scrub",
            Request::HealStatus => "heal-status",
            Request::SetRates { .. } => "set-rates",
            Request::ReportMissed { .. } => "report-missed",
            Request::RemoveMember { .. } => "remove-member",
            Request::SpareHeartbeat { .. } => "spare-heartbeat",
            Request::AddMember { .. } => "add-member",
            Request::SyncPoint => "sync-point",
            Request::BinlogTail { .. } => "binlog-tail",
            Request::BlobSummaries { .. } => "blob-summaries",
            Request::Namespace(_) => "namespace",
            Request::ReportMissedBy { .. } => "report-missed",
            Request::NamespaceOnce { .. } => "namespace",
            Request::DownloadBlocks { .. } => "download-blocks",
        }
    }
}

/// What a replica does with a body it received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaCommit {
    /// Store it as a new blob with this ID and record.
    Create {
        /// Final ID.
        file_id: String,
        /// The originator's record, so every replica reports the same.
        info: BlobInfo,
        /// Metadata to store with it.
        meta: Metadata,
    },
    /// Append it to a blob whose size is now `at`.
    Append {
        /// The blob.
        file_id: String,
        /// Size before the append, as the primary saw it.
        at: u64,
    },
    /// Write it into a blob at `offset`.
    Modify {
        /// The blob.
        file_id: String,
        /// Where.
        offset: u64,
    },
    /// Throw it away.
    Abort,
}

/// A replicated mutation without a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaOp {
    /// Delete a blob.
    Delete {
        /// The blob.
        file_id: String,
    },
    /// Resize an appender blob.
    Truncate {
        /// The blob.
        file_id: String,
        /// New size.
        size: u64,
    },
    /// Set metadata.
    SetMeta {
        /// The blob.
        file_id: String,
        /// Pairs.
        meta: Metadata,
        /// Merge instead of replace.
        merge: bool,
    },
}

/// Facts about a stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// Current size in bytes.
    pub size: u64,
    /// CRC32 (IEEE) of the current content.
    pub crc32: u32,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Node that created it.
    pub source_node: u32,
    /// Whether it takes appends.
    pub appender: bool,
}

/// Where to upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreTarget {
    /// Group chosen.
    pub group: String,
    /// Member chosen.
    pub node_id: u32,
    /// Its address.
    pub addr: String,
}

/// Every answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Done, nothing to report.
    Ok,
    /// Failed.
    Error(WireError),
    /// The heartbeat's answer: the node's group as the tracker sees it.
    Group(GroupView),
    /// Where to upload.
    StoreTarget(StoreTarget),
    /// Addresses of members to try, best first.
    Members(Vec<String>),
    /// The cluster map.
    Cluster(ClusterMap),
    /// The ID of a stored blob.
    FileId(String),
    /// A body of exactly `length` bytes follows.
    Data {
        /// Bytes that follow.
        length: u64,
    },
    /// Metadata.
    Meta(Metadata),
    /// Blob facts.
    Info(BlobInfo),
    /// A page of blobs.
    Blobs {
        /// The blobs, by ID.
        blobs: Vec<BlobSummary>,
        /// Whether more follow after the last one.
        more: bool,
    },
    /// A page of deleted IDs.
    Tombstones {
        /// Deleted IDs.
        ids: Vec<String>,
        /// Sequence number to ask after next.
        next_seq: u64,
        /// Whether more follow.
        more: bool,
    },
    /// A blob's record; its content follows as a body.
    Blob {
        /// Facts.
        info: BlobInfo,
        /// Metadata.
        meta: Metadata,
    },
    /// Scrub progress.
    Scrub(ScrubStatus),
    /// Catch-up progress.
    Heal(HealStatus),
    /// A spare's answer: the group it was put in, if any.
    Assigned(Option<String>),
    /// Where a node's binlog ends now, and what it holds.
    SyncPoint {
        /// The end of its binlog.
        point: SyncPoint,
        /// Blobs it holds.
        files: u64,
        /// Bytes of content it holds.
        bytes: u64,
    },
    /// A page of binlog entries.
    BinlogTail {
        /// Entries, in order.
        entries: Vec<BinlogEntry>,
        /// Where the page ended.
        end: SyncPoint,
        /// Whether more follow.
        more: bool,
    },
    /// The meta service's answer.
    Namespace(crate::meta::MetaResponse),
    /// Whole checksum blocks of a blob follow as a body, unchecked by the
    /// sender: `length` bytes from `start`, each body chunk a run of whole
    /// blocks (the last block of the blob may be short). The reply may stop
    /// short of the range asked (a bounded number of blocks per reply); the
    /// client asks again from where it stopped.
    Blocks {
        /// Offset in the blob of the first byte sent: a multiple of `block_size`.
        start: u64,
        /// Bytes that follow.
        length: u64,
        /// The blob's size.
        size: u64,
        /// Bytes per checksum block.
        block_size: u32,
        /// CRC-32 of each block sent, in order.
        crcs: Vec<u32>,
    },
}

/// A position in a node's binlog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPoint {
    /// Changes when the binlog may have lost lines (a crash).
    pub generation: u64,
    /// Sequence number.
    pub seq: u64,
    /// Byte offset just past that entry.
    pub offset: u64,
}

/// One binlog line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogEntry {
    /// Sequence number.
    pub seq: u64,
    /// Whether the entry is a delete (the rest change content or metadata).
    pub delete: bool,
    /// Whether the mutation started on this node (a client asked it), as
    /// opposed to a copy from a peer.
    pub here: bool,
    /// Whether the entry made a new blob.
    pub create: bool,
    /// The blob.
    pub file_id: String,
}

/// One blob in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobSummary {
    /// Its ID.
    pub file_id: String,
    /// Size.
    pub size: u64,
    /// CRC32 of the content.
    pub crc32: u32,
    /// Whether it is an appender.
    pub appender: bool,
}

/// Where a node's scrub stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrubStatus {
    /// A scrub is running.
    pub running: bool,
    /// Scrubs finished since the node started.
    pub completed: u64,
    /// Blobs checked in the current (or last) scrub.
    pub checked: u64,
    /// Blobs on the node when the current (or last) scrub started.
    pub total: u64,
    /// Bytes read in the current (or last) scrub.
    pub bytes: u64,
    /// Bad blobs found (checksum, truncated, missing) in the current (or last) scrub.
    pub bad: u64,
    /// Of those, repaired from a peer.
    pub repaired: u64,
    /// Blobs found missing here by comparison with a peer, and copied.
    pub copied: u64,
    /// The last problem that could not be fixed.
    pub last_error: Option<String>,
}

/// Where a node's catch-up stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealStatus {
    /// A catch-up is running.
    pub running: bool,
    /// The node holds everything its peers held when it last caught up.
    pub caught_up: bool,
    /// Peer it copies from.
    pub source: Option<String>,
    /// Blobs found to copy so far.
    pub to_copy: u64,
    /// Blobs copied.
    pub copied: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Deletes applied that were made while the node was away.
    pub deleted: u64,
    /// Bytes left to copy (exact after a binlog comparison, estimated
    /// from the peer's totals during a full comparison).
    pub bytes_left: u64,
    /// Copy speed over the current catch-up, bytes per second.
    pub bytes_per_sec: u64,
    /// Whether the current (or last) catch-up replays the peer's binlog
    /// (false: a full comparison).
    pub from_binlog: bool,
    /// Milliseconds the current (or last) catch-up has run.
    pub elapsed_ms: u64,
    /// The last problem.
    pub last_error: Option<String>,
}

impl Response {
    /// Short name for error messages.
    pub fn name(&self) -> String {
        match self {
            Response::Ok => "ok".into(),
            Response::Error(e) => format!("error: {e}"),
            Response::Group(_) => "group".into(),
            Response::StoreTarget(_) => "store-target".into(),
            Response::Members(_) => "members".into(),
            Response::Cluster(_) => "cluster".into(),
            Response::FileId(_) => "file-id".into(),
            Response::Data { .. } => "data".into(),
            Response::Namespace(_) => "namespace".into(),
            Response::Info(_) => "info".into(),
            Response::Blobs { .. } => "blobs".into(),
            Response::Tombstones { .. } => "tombstones".into(),
            Response::Blob { .. } => "blob".into(),
            Response::Scrub(_) => "scrub".into(),
            Response::Heal(_) => "heal".into(),
            Response::Assigned(_) => "assigned".into(),
            Response::SyncPoint { .. } => "sync-point".into(),
            Response::BinlogTail { .. } => "binlog-tail".into(),
            Response::Meta(_) => "meta".into(),
            Response::Blocks { .. } => "blocks".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, RngCore};

    use super::*;
    use crate::frame::{read_frame, write_frame, BodyReader};

    /// Random bytes, and mutations of valid frames, through every decoder of
    /// wire input: they may fail, they may not panic or allocate wildly.
    #[tokio::test]
    async fn decoders_survive_random_and_mutated_input() {
        let mut rng = rand::thread_rng();
        let mut valid = Vec::new();
        let req =
            Request::SetMeta { file_id: "g/M00/00/00/x".into(), meta: vec![("k".into(), "v".into())], merge: true };
        write_frame(&mut valid, &req).await.unwrap();
        for i in 0..20_000 {
            let mut buf = if i % 2 == 0 {
                let mut b = vec![0u8; rng.gen_range(0..64)];
                rng.fill_bytes(&mut b);
                b
            } else {
                let mut b = valid.clone();
                let n = rng.gen_range(0..b.len());
                b[n] = rng.gen();
                b.truncate(rng.gen_range(0..=b.len()));
                b
            };
            if i % 7 == 0 {
                // small length prefixes so that the payload is actually decoded
                let len = buf.len().saturating_sub(4).min(60) as u32;
                if buf.len() >= 4 {
                    buf[..4].copy_from_slice(&len.to_be_bytes());
                }
            }
            let _ = read_frame::<_, Request>(&mut &buf[..]).await;
            let _ = read_frame::<_, Response>(&mut &buf[..]).await;
            let _ = BodyReader::new().drain(&mut &buf[..]).await;
            let _ = crate::FileId::parse(&String::from_utf8_lossy(&buf));
        }
    }
}
