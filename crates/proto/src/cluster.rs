//! The cluster map: what storage nodes report and what trackers answer.

use serde::{Deserialize, Serialize};

/// Where a member of a group stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Known but not yet reporting as ready.
    Init,
    /// Catching up with its peers; takes writes, serves no reads.
    Syncing,
    /// Holds everything its group holds; takes writes and reads.
    Active,
    /// Missed its heartbeats.
    Offline,
    /// Taken out of the group by an operator.
    Removed,
}

impl MemberState {
    /// Lower-case name, as the CLI prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            MemberState::Init => "init",
            MemberState::Syncing => "syncing",
            MemberState::Active => "active",
            MemberState::Offline => "offline",
            MemberState::Removed => "removed",
        }
    }
}

/// Capacity of one store path (disk) of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorePathUsage {
    /// Size of the file system, bytes.
    pub total: u64,
    /// Space available to Cairn, bytes.
    pub free: u64,
}

/// A storage node's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Persistent numeric node ID.
    pub node_id: u32,
    /// The group the node serves.
    pub group: String,
    /// Address clients and peers reach it at.
    pub addr: String,
    /// Capacity of each store path, in index order.
    pub store_paths: Vec<StorePathUsage>,
    /// Number of blobs stored.
    pub files: u64,
    /// Bytes of blob content stored.
    pub bytes: u64,
    /// Requests in progress right now.
    pub load: u32,
    /// Highest group epoch the node has seen.
    pub epoch: u64,
    /// Primary of that epoch, as the node knows it.
    pub primary: Option<u32>,
    /// Members the node forwards writes to (its write set, from the views of
    /// every tracker). A tracker lets a new member serve reads only once
    /// every active peer lists it here.
    pub write_set: Vec<u32>,
    /// Whether the node knows itself active (and so takes uploads). The
    /// tracker places uploads only on members that do.
    pub ready: bool,
    /// Changes every time the node process starts: a member that restarted
    /// may have missed writes, even if no heartbeat was missed.
    pub incarnation: u64,
    /// The round (see [`MemberView::round`]) for which this node finished
    /// catching up with its peers; 0 if none. A syncing member turns active
    /// only once this equals its current round at this tracker.
    pub caught_up_round: u64,
    /// Peers this node left out of a write (they failed or stalled), each
    /// with the round this tracker gave it: they missed data and must catch
    /// up. Repeated until the tracker's view shows the member moved on.
    pub missed: Vec<Miss>,
    /// The node was taken out of its group by an operator (it remembers
    /// this across restarts and serves nothing).
    pub removed: bool,
    /// Software version.
    pub version: String,
    /// Where FastDFS clients reach this node (`ip:port`), when it serves
    /// the FastDFS protocol.
    pub fastdfs_addr: Option<String>,
    /// Where HTTP downloads of its blobs are served (`ip:port`), if anywhere.
    pub http_addr: Option<String>,
}

/// A member left out of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Miss {
    /// The member.
    pub node_id: u32,
    /// Its round at the tracker told, when it missed the write.
    pub round: u64,
}

/// One member as peers need to know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Node ID.
    pub id: u32,
    /// Address.
    pub addr: String,
    /// State in the group.
    pub state: MemberState,
    /// Changes every time the member must catch up again (it joined, came
    /// back, restarted, or missed a write): the tracker's heartbeat count
    /// when that happened.
    pub round: u64,
    /// Every active peer forwards writes to it (reported after the round
    /// began): from here on it misses nothing, so a catch-up that starts now
    /// leaves it holding everything.
    pub forwarded: bool,
    /// Its HTTP download address, if it serves one (for redirects of
    /// downloads it cannot serve yet).
    pub http_addr: Option<String>,
}

/// A group as a tracker tells its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    /// Group name.
    pub name: String,
    /// Epoch of the current primary; only ever grows.
    pub epoch: u64,
    /// Node ID of the primary, which orders appender mutations.
    pub primary: Option<u32>,
    /// Every known member.
    pub members: Vec<MemberView>,
}

/// One member in a status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Node ID.
    pub id: u32,
    /// Address.
    pub addr: String,
    /// State in the group.
    pub state: MemberState,
    /// Whether this member is its group's primary.
    pub primary: bool,
    /// Whether it knows itself active and so takes uploads.
    pub ready: bool,
    /// Changes whenever the node process restarts.
    pub incarnation: u64,
    /// Total bytes over its store paths.
    pub total: u64,
    /// Free bytes over its store paths.
    pub free: u64,
    /// Blobs stored.
    pub files: u64,
    /// Bytes of blob content stored.
    pub bytes: u64,
    /// Requests in progress at the last heartbeat.
    pub load: u32,
    /// Milliseconds since the last heartbeat.
    pub last_heartbeat_ms: u64,
    /// Software version.
    pub version: String,
    /// Where FastDFS clients reach it, if it serves that protocol.
    pub fastdfs_addr: Option<String>,
    /// Its HTTP download address, if any.
    pub http_addr: Option<String>,
}

/// One group in a status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// Group name.
    pub name: String,
    /// Current epoch.
    pub epoch: u64,
    /// Node ID of the primary.
    pub primary: Option<u32>,
    /// Capacity of the group: its smallest active member's free space.
    pub free: u64,
    /// Total size of the smallest active member.
    pub total: u64,
    /// Whether uploads may be placed here (free space above the reserve).
    pub writable: bool,
    /// Members, by node ID.
    pub members: Vec<MemberStatus>,
}

/// The whole cluster as one tracker sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMap {
    /// Address of the tracker that answered.
    pub tracker: String,
    /// Groups, by name.
    pub groups: Vec<GroupStatus>,
    /// Storage nodes waiting to be put into a group.
    pub spares: Vec<SpareStatus>,
}

/// A storage node without a group yet (state `init`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpareStatus {
    /// Address.
    pub addr: String,
    /// Group it was told to join, if an operator did so.
    pub assigned: Option<String>,
    /// Milliseconds since it last reported.
    pub last_heartbeat_ms: u64,
    /// Software version.
    pub version: String,
}
