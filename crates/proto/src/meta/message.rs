//! The meta service's messages: [`MetaRequest`], every namespace operation
//! a client asks for (and what each makes stale in mounts' caches), and
//! [`MetaResponse`], the answers. The types they carry are in `meta.rs`.

use serde::{Deserialize, Serialize};

use super::{Attr, Changed, Dirent, NewNode, Piece, RenameMode, SetAttr, Slice, Volume, VolumeClient, VolumeStats};

/// A request to the meta service. Names are bytes (POSIX names need not be
/// UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaRequest {
    /// Create a volume.
    CreateVolume {
        /// Name.
        name: String,
        /// Groups its data goes to (empty: any).
        groups: Vec<String>,
        /// Largest blob a write makes.
        chunk_size: u64,
    },
    /// Every volume.
    ListVolumes,
    /// One volume by name.
    GetVolume {
        /// Name.
        name: String,
    },
    /// Delete a volume and its namespace. Refused while a mount or
    /// gateway is attached to it, unless `force`.
    DeleteVolume {
        /// Name.
        name: String,
        /// Delete even while clients are attached (they then fail every call).
        force: bool,
    },
    /// Inode counts of a volume.
    Stats {
        /// Volume ID.
        vol: u32,
    },
    /// An entry of a directory.
    Lookup {
        /// Volume ID.
        vol: u32,
        /// Directory.
        parent: u64,
        /// Name.
        name: Vec<u8>,
    },
    /// Attributes.
    GetAttr {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
    },
    /// Change attributes.
    SetAttr {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
        /// Changes.
        set: SetAttr,
    },
    /// Create a non-directory.
    Mknod {
        /// Volume ID.
        vol: u32,
        /// Directory.
        parent: u64,
        /// Name.
        name: Vec<u8>,
        /// What to create.
        node: NewNode,
    },
    /// Create a directory.
    Mkdir {
        /// Volume ID.
        vol: u32,
        /// Directory.
        parent: u64,
        /// Name.
        name: Vec<u8>,
        /// Permission bits.
        perm: u32,
        /// Owner.
        uid: u32,
        /// Group.
        gid: u32,
    },
    /// A new hard link.
    Link {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
        /// Directory of the new name.
        newparent: u64,
        /// New name.
        newname: Vec<u8>,
    },
    /// Remove a non-directory.
    Unlink {
        /// Volume ID.
        vol: u32,
        /// Directory.
        parent: u64,
        /// Name.
        name: Vec<u8>,
    },
    /// Remove an empty directory.
    Rmdir {
        /// Volume ID.
        vol: u32,
        /// Directory.
        parent: u64,
        /// Name.
        name: Vec<u8>,
    },
    /// Rename.
    Rename {
        /// Volume ID.
        vol: u32,
        /// From directory.
        parent: u64,
        /// From name.
        name: Vec<u8>,
        /// To directory.
        newparent: u64,
        /// To name.
        newname: Vec<u8>,
        /// Replace, no-replace or exchange.
        mode: RenameMode,
    },
    /// A symlink's target.
    Readlink {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
    },
    /// A page of a directory.
    Readdir {
        /// Volume ID.
        vol: u32,
        /// Directory.
        ino: u64,
        /// Entries after this name.
        after: Option<Vec<u8>>,
        /// Most entries.
        limit: u32,
    },
    /// Commit written slices.
    Write {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
        /// New slices, on top of the old.
        slices: Vec<Slice>,
    },
    /// Where the bytes of a range are.
    Read {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
        /// Start.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// Forget an orphan nobody has open any more.
    Release {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
    },
    /// Set an extended attribute.
    SetXattr {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
        /// Name.
        name: Vec<u8>,
        /// Value.
        value: Vec<u8>,
        /// Fail if present.
        create: bool,
        /// Fail if absent.
        replace: bool,
    },
    /// An extended attribute.
    GetXattr {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
        /// Name.
        name: Vec<u8>,
    },
    /// Names of the extended attributes.
    ListXattr {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
    },
    /// Remove an extended attribute.
    RemoveXattr {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
        /// Name.
        name: Vec<u8>,
    },
    /// Blobs no file refers to since before `before` (Unix seconds).
    Garbage {
        /// Dropped before this time.
        before: i64,
        /// Only IDs after this one (the last of the previous batch): a
        /// collector goes on past blobs it cannot delete yet.
        after: Option<String>,
        /// Most IDs.
        limit: u32,
    },
    /// These blobs were deleted: take them off the collector's queue.
    Collected {
        /// Blob file IDs.
        blobs: Vec<String>,
    },
    /// A consistency check of a volume's namespace (the meta service's fsck).
    Check {
        /// Volume ID.
        vol: u32,
    },
    /// A mount has these inodes open: files among them unlinked meanwhile
    /// are kept (a mount that stops saying so has gone, and they are freed).
    KeepOpen {
        /// Volume ID.
        vol: u32,
        /// The mount's session (as in `Request::NamespaceOnce`).
        session: u64,
        /// Open inodes.
        inodes: Vec<u64>,
    },
    /// Files whose content has grown into many slices (the compactor's
    /// queue): [`MetaResponse::Inodes`].
    CompactCandidates {
        /// Most files.
        limit: u32,
    },
    /// A file's attributes and slices: [`MetaResponse::Slices`].
    Slices {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
    },
    /// Replace a file's slices by `merged` (same content, fewer slices) if
    /// they are still `expected`: [`MetaResponse::Compacted`].
    Compact {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
        /// The slices the merge was made from.
        expected: Vec<Slice>,
        /// The new slices.
        merged: Vec<Slice>,
    },
    /// Changes other mounts made to volume `vol` since position `after`,
    /// waiting up to `wait_ms` for one: [`MetaResponse::Changes`]. `after:
    /// None` asks only for the current position. Mounts follow this feed
    /// to drop what the kernel caches of what changed.
    Changes {
        /// Volume ID.
        vol: u32,
        /// The asking mount's session: its own changes are left out.
        session: u64,
        /// The feed's epoch the position belongs to (0 at first).
        epoch: u64,
        /// Position after which to report.
        after: Option<u64>,
        /// Longest wait for a change, in milliseconds.
        wait_ms: u32,
    },
    /// A page of a directory with each entry's attributes (FUSE's
    /// readdirplus: `ls -l` and `find | stat` need no lookup per name):
    /// [`MetaResponse::EntriesPlus`].
    ReaddirPlus {
        /// Volume ID.
        vol: u32,
        /// Directory.
        ino: u64,
        /// Entries after this name.
        after: Option<Vec<u8>>,
        /// Most entries.
        limit: u32,
    },
    /// A page of a file's slices, from the `from`th (oldest first):
    /// [`MetaResponse::SlicesPage`]. A file written at random holds more
    /// slices than one frame carries; readers and the compactor take them
    /// a page at a time.
    SlicesPage {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
        /// Index of the first slice wanted.
        from: u64,
        /// Most slices (the service sends at most [`SLICES_PAGE`]).
        limit: u32,
    },
    /// Replace a file's oldest `count` slices by `merged` (same content,
    /// fewer slices) if its slices are still of `generation` (only
    /// appended to since they were read): [`MetaResponse::Compacted`].
    CompactPrefix {
        /// Volume ID.
        vol: u32,
        /// Inode.
        ino: u64,
        /// The generation the merged slices were read at.
        generation: u64,
        /// How many of the oldest slices the merge replaces.
        count: u64,
        /// The new slices.
        merged: Vec<Slice>,
    },
    /// Put every change answered so far on disk (a mount's `fsync` and
    /// `fsyncdir`): [`MetaResponse::Ok`]. See [`MetaRequest::durable_when_answered`].
    Sync,
    /// A mount or gateway is using volume `vol` (at its start, and again
    /// with every `KeepOpen`): `DeleteVolume` is refused while it is.
    Attach {
        /// Volume ID.
        vol: u32,
        /// The client's session.
        session: u64,
        /// What it is, for operators (`volume info`, a refused delete).
        what: String,
    },
    /// A mount or gateway stopped using volume `vol` (an unmount).
    Detach {
        /// Volume ID.
        vol: u32,
        /// The client's session.
        session: u64,
    },
    /// The mounts and gateways attached to volume `vol` now:
    /// [`MetaResponse::Clients`].
    Clients {
        /// Volume ID.
        vol: u32,
    },
    /// Make file `to`'s content that of file `from` (size and slices), in
    /// one transaction: a server-side copy. The blobs are shared, not
    /// copied (they never change); `to`'s own are let go. Answers `to`'s
    /// attributes ([`MetaResponse::Attr`]).
    CloneContent {
        /// Volume ID.
        vol: u32,
        /// The file copied.
        from: u64,
        /// The file that becomes its copy.
        to: u64,
    },
}

/// Most slices in one [`MetaResponse::SlicesPage`]: a slice is at most
/// about 140 bytes encoded (its blob's ID is the bulk), so a page stays
/// well inside a control frame.
pub const SLICES_PAGE: u32 = 4096;

impl MetaRequest {
    /// What this change makes stale in mounts' caches, and in which
    /// volume: the entries it adds, removes or replaces, and the inodes
    /// whose attributes or content it changes (an unlinked or replaced
    /// inode is not named: the request does not say which it is). Empty
    /// for requests that change nothing a mount caches.
    pub fn touched(&self) -> (u32, Vec<Changed>) {
        use MetaRequest as Q;
        let entry = |parent: u64, name: &[u8]| Changed::Entry { parent, name: name.to_vec() };
        let unlinked = |parent: u64, name: &[u8]| Changed::Unlinked { parent, name: name.to_vec() };
        let inode = |ino: u64| Changed::Inode { ino };
        match self {
            Q::SetAttr { vol, ino, .. }
            | Q::Write { vol, ino, .. }
            | Q::SetXattr { vol, ino, .. }
            | Q::RemoveXattr { vol, ino, .. }
            | Q::CloneContent { vol, to: ino, .. } => (*vol, vec![inode(*ino)]),
            Q::Mknod { vol, parent, name, .. } | Q::Mkdir { vol, parent, name, .. } => {
                (*vol, vec![entry(*parent, name), inode(*parent)])
            }
            Q::Unlink { vol, parent, name, .. } | Q::Rmdir { vol, parent, name, .. } => {
                (*vol, vec![unlinked(*parent, name), inode(*parent)])
            }
            Q::Link { vol, ino, newparent, newname, .. } => {
                (*vol, vec![entry(*newparent, newname), inode(*newparent), inode(*ino)])
            }
            // The moved inode's ctime changes, and a replaced one loses a link.
            Q::Rename { vol, parent, name, newparent, newname, .. } => {
                (*vol, vec![unlinked(*parent, name), unlinked(*newparent, newname), inode(*parent), inode(*newparent)])
            }
            _ => (0, Vec::new()),
        }
    }

    /// Whether the request changes the namespace (and so must reach the
    /// service at most once: see `Request::NamespaceOnce`).
    pub fn is_change(&self) -> bool {
        use MetaRequest as Q;
        match self {
            Q::CreateVolume { .. }
            | Q::DeleteVolume { .. }
            | Q::SetAttr { .. }
            | Q::Mknod { .. }
            | Q::Mkdir { .. }
            | Q::Link { .. }
            | Q::Unlink { .. }
            | Q::Rmdir { .. }
            | Q::Rename { .. }
            | Q::Write { .. }
            | Q::Release { .. }
            | Q::SetXattr { .. }
            | Q::RemoveXattr { .. }
            | Q::Collected { .. }
            | Q::Compact { .. }
            | Q::CompactPrefix { .. }
            | Q::Attach { .. }
            | Q::Detach { .. }
            | Q::CloneContent { .. } => true,
            Q::ListVolumes
            | Q::GetVolume { .. }
            | Q::Stats { .. }
            | Q::Lookup { .. }
            | Q::GetAttr { .. }
            | Q::Readlink { .. }
            | Q::Readdir { .. }
            | Q::ReaddirPlus { .. }
            | Q::Changes { .. }
            | Q::Read { .. }
            | Q::GetXattr { .. }
            | Q::ListXattr { .. }
            | Q::Garbage { .. }
            | Q::Check { .. }
            | Q::KeepOpen { .. }
            | Q::CompactCandidates { .. }
            | Q::Slices { .. }
            | Q::SlicesPage { .. }
            | Q::Clients { .. }
            | Q::Sync => false,
        }
    }

    /// Whether the change is on disk when answered. Changes of names and
    /// attributes are not, as on a local file system: a power cut (not a
    /// crash of the service) within a few milliseconds of the answer may
    /// lose them, unless an `fsync`/`fsyncdir` ([`MetaRequest::Sync`]) or
    /// a durable change came after. Everything that commits or moves a
    /// file's content (its slices, a truncation), frees blobs or changes
    /// volumes is durable when answered; so is everything before it.
    pub fn durable_when_answered(&self) -> bool {
        use MetaRequest as Q;
        match self {
            Q::SetAttr { set, .. } => set.size.is_some(),
            Q::Mknod { .. }
            | Q::Mkdir { .. }
            | Q::Link { .. }
            | Q::Unlink { .. }
            | Q::Rmdir { .. }
            | Q::Rename { .. }
            | Q::SetXattr { .. }
            | Q::RemoveXattr { .. }
            // Said again every few seconds while the client lives.
            | Q::Attach { .. }
            | Q::Detach { .. } => false,
            _ => true,
        }
    }
}

/// The meta service's answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaResponse {
    /// Done.
    Ok,
    /// Failed, with the errno a file system answers and a message.
    Err {
        /// errno (ENOENT, EEXIST, ENOTEMPTY, …).
        errno: crate::Errno,
        /// What happened.
        message: String,
    },
    /// A volume.
    Volume(Volume),
    /// Volumes.
    Volumes(Vec<Volume>),
    /// Counts.
    Stats(VolumeStats),
    /// Attributes.
    Attr(Attr),
    /// Bytes (a symlink target, an attribute value).
    Bytes(Vec<u8>),
    /// Names.
    Names(Vec<Vec<u8>>),
    /// Directory entries.
    Entries(Vec<(Vec<u8>, Dirent)>),
    /// Attributes and the pieces of a range.
    Pieces(Attr, Vec<Piece>),
    /// How long the service keeps an open-unlinked file after a mount last
    /// said it has it open: mounts say so well within it.
    KeptOpen {
        /// The lease, seconds.
        lease_secs: u64,
    },
    /// Files, as (volume ID, inode).
    Inodes(Vec<(u32, u64)>),
    /// A file's attributes and slices, oldest first.
    Slices(Attr, Vec<Slice>),
    /// Whether a compaction was applied (false: the file changed meanwhile).
    Compacted(bool),
    /// What a check found wrong (empty: consistent), and what it looked at.
    Checked {
        /// Inodes and entries examined.
        examined: u64,
        /// One line per problem.
        problems: Vec<String>,
    },
    /// Changes since a position of the feed.
    Changes {
        /// The feed's epoch (it starts anew when the service restarts).
        epoch: u64,
        /// Position to ask after next time.
        next: u64,
        /// Changes were missed: the position is from another epoch or so
        /// old that the feed no longer holds what followed it.
        lost: bool,
        /// What changed.
        changes: Vec<Changed>,
    },
    /// Directory entries with their attributes, and whether each inode has
    /// extended attributes (so a mount can answer `ls -l`'s two getxattr
    /// calls per file without asking).
    EntriesPlus(Vec<(Vec<u8>, Attr, bool)>),
    /// A new inode or link, with its directory's attributes as the change
    /// left them (a mount keeps them, so the kernel's next look at the
    /// directory costs no round trip).
    Made {
        /// The inode.
        attr: Attr,
        /// Its directory.
        parent: Attr,
    },
    /// Done: the directories an unlink, rmdir or rename changed, as it left
    /// them.
    Dirs(Vec<Attr>),
    /// A page of a file's slices.
    SlicesPage {
        /// The file's attributes.
        attr: Attr,
        /// The slices asked for (fewer at the end of the list).
        slices: Vec<Slice>,
        /// How many slices the file has.
        total: u64,
        /// Their generation: it changes when slices other than the newest
        /// do, so pages read under one generation make one list.
        generation: u64,
    },
    /// Mounts and gateways attached to a volume.
    Clients(Vec<VolumeClient>),
}
