//! Who may do what: the checks the Linux kernel makes for a FUSE mount
//! with `default_permissions` (`generic_permission`, `may_delete`,
//! `may_create`, `chmod`/`chown` in `notify_change`), made here for front
//! ends that have no kernel in front of them (S3, WebDAV, NFS, HTTP).
//! Pure functions of a [`Caller`] and attributes, so they are tested
//! without a cluster.
//!
//! What is not modelled: POSIX ACLs (a volume never stores them),
//! capabilities other than root's, and the `protected_*` sysctls.

use cairn_proto::meta::{Attr, Kind};
use cairn_proto::Errno;

use crate::{FsError, Result};

/// Read permission (`r`).
pub const READ: u32 = 0o4;
/// Write permission (`w`).
pub const WRITE: u32 = 0o2;
/// Execute (files) or search (directories) permission (`x`).
pub const EXEC: u32 = 0o1;

/// Set-user-ID bit.
const SETUID: u32 = 0o4000;
/// Set-group-ID bit.
const SETGID: u32 = 0o2000;
/// Sticky bit: in a directory, only a file's owner, the directory's owner
/// or root may remove or rename the file.
const STICKY: u32 = 0o1000;

/// Who makes a call: the identity a front end authenticated (an S3 key
/// mapped to a user, an NFS AUTH_SYS credential, a WebDAV login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// User ID; 0 is root.
    pub uid: u32,
    /// Primary group: new files get it (unless their directory is setgid).
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Caller {
    /// A caller with user `uid`, primary group `gid` and the
    /// supplementary `groups`.
    pub fn new(uid: u32, gid: u32, groups: Vec<u32>) -> Self {
        Self { uid, gid, groups }
    }

    /// Root: passes every check except executing a file no one may
    /// execute.
    pub fn root() -> Self {
        Self::new(0, 0, Vec::new())
    }

    /// Whether this is root.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether the caller is in group `gid`.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

fn denied(what: &str) -> FsError {
    FsError::new(Errno::EACCES, format!("permission denied: {what}"))
}

fn not_owner(what: &str) -> FsError {
    FsError::new(Errno::EPERM, format!("operation not permitted: {what}"))
}

/// Whether `who` has every permission in `want` (a mask of [`READ`],
/// [`WRITE`], [`EXEC`]) on `a`: the owner's bits if the caller owns it,
/// else the group's if the caller is in its group, else the others' (only
/// one class applies, as in the kernel). Root may read and write anything
/// and search any directory, but executes a file only if some `x` bit is
/// set.
pub fn may(who: &Caller, a: &Attr, want: u32) -> bool {
    if who.is_root() {
        return want & EXEC == 0 || a.kind == Kind::Dir || a.perm & 0o111 != 0;
    }
    let bits = if who.uid == a.uid {
        a.perm >> 6
    } else if who.in_group(a.gid) {
        a.perm >> 3
    } else {
        a.perm
    } & 0o7;
    bits & want == want
}

/// [`may`], as an error (EACCES) when not.
pub fn check(who: &Caller, a: &Attr, want: u32, what: &str) -> Result<()> {
    if may(who, a, want) {
        Ok(())
    } else {
        Err(denied(what))
    }
}

/// Whether `who` may create a name in directory `dir` (write and search).
pub fn check_create(who: &Caller, dir: &Attr) -> Result<()> {
    check(who, dir, WRITE | EXEC, "cannot create in the directory")
}

/// Whether `who` may remove (or rename away, or replace) the entry that
/// leads to `victim` in directory `dir`: write and search on the
/// directory, and, in a sticky directory, ownership of the entry or the
/// directory (or root; EPERM otherwise, as the kernel answers).
pub fn check_delete(who: &Caller, dir: &Attr, victim: &Attr) -> Result<()> {
    check(who, dir, WRITE | EXEC, "cannot remove from the directory")?;
    if dir.perm & STICKY != 0 && !who.is_root() && who.uid != victim.uid && who.uid != dir.uid {
        return Err(not_owner("the directory is sticky and the caller owns neither it nor the entry"));
    }
    Ok(())
}

/// The mode a `chmod` to `perm` by `who` leaves on `a`: only the owner or
/// root may change it (EPERM); a non-root caller outside the file's group
/// cannot set the setgid bit on a file (it is cleared, as the kernel
/// does).
pub fn chmod(who: &Caller, a: &Attr, perm: u32) -> Result<u32> {
    if !who.is_root() && who.uid != a.uid {
        return Err(not_owner("only the owner may change the mode"));
    }
    let mut perm = perm & 0o7777;
    if !who.is_root() && a.kind != Kind::Dir && !who.in_group(a.gid) {
        perm &= !SETGID;
    }
    Ok(perm)
}

/// Whether `who` may change `a`'s owner to `uid` and group to `gid`
/// (`None`: unchanged), and the mode that leaves: only root changes the
/// owner; the owner may change the group to one of its own groups; a
/// change by anyone but root clears a file's setuid and setgid bits.
pub fn chown(who: &Caller, a: &Attr, uid: Option<u32>, gid: Option<u32>) -> Result<Option<u32>> {
    let new_owner = uid.is_some_and(|u| u != a.uid);
    let new_group = gid.is_some_and(|g| g != a.gid);
    if !who.is_root() {
        if new_owner {
            return Err(not_owner("only root may change the owner"));
        }
        if new_group && (who.uid != a.uid || !gid.is_some_and(|g| who.in_group(g))) {
            return Err(not_owner("only the owner may change the group, to one of its own"));
        }
    }
    let clears = (new_owner || new_group) && !who.is_root() && a.kind != Kind::Dir && a.perm & (SETUID | SETGID) != 0;
    Ok(clears.then_some(a.perm & !(SETUID | SETGID)))
}

/// The group and mode of a new inode made by `who` in `dir`: the
/// directory's group if it is setgid (and a new directory stays setgid),
/// else the caller's.
pub fn new_owner(who: &Caller, dir: &Attr, perm: u32, is_dir: bool) -> (u32, u32, u32) {
    if dir.perm & SETGID != 0 {
        let perm = if is_dir { perm | SETGID } else { perm };
        (who.uid, dir.gid, perm & 0o7777)
    } else {
        (who.uid, who.gid, perm & 0o7777)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::meta::Time;

    fn attr(kind: Kind, perm: u32, uid: u32, gid: u32) -> Attr {
        let t = Time::default();
        Attr { ino: 2, kind, perm, uid, gid, size: 0, atime: t, mtime: t, ctime: t, crtime: t, nlink: 1, rdev: 0 }
    }

    const ALICE: u32 = 1000;
    const BOB: u32 = 1001;
    const STAFF: u32 = 50;

    #[test]
    fn one_class_of_bits_applies() {
        let alice = Caller::new(ALICE, ALICE, vec![]);
        let bob = Caller::new(BOB, BOB, vec![STAFF]);
        let carol = Caller::new(1002, 1002, vec![]);
        // The owner is held to the owner's bits even when others get more.
        let f = attr(Kind::File, 0o077, ALICE, STAFF);
        assert!(!may(&alice, &f, READ));
        assert!(may(&bob, &f, READ | WRITE | EXEC), "through a supplementary group");
        assert!(may(&carol, &f, READ));
        let g = attr(Kind::File, 0o604, ALICE, STAFF);
        assert!(!may(&bob, &g, READ), "the group's bits, not the others'");
        assert!(may(&carol, &g, READ));
        assert!(!may(&carol, &g, WRITE));
    }

    #[test]
    fn root_reads_and_writes_anything_but_executes_only_what_someone_may() {
        let root = Caller::root();
        let f = attr(Kind::File, 0o000, ALICE, ALICE);
        assert!(may(&root, &f, READ | WRITE));
        assert!(!may(&root, &f, EXEC));
        assert!(may(&root, &attr(Kind::File, 0o001, ALICE, ALICE), EXEC));
        assert!(may(&root, &attr(Kind::Dir, 0o000, ALICE, ALICE), EXEC), "any directory is searchable");
    }

    #[test]
    fn creating_and_deleting_need_write_and_search_on_the_directory() {
        let bob = Caller::new(BOB, BOB, vec![]);
        let ro = attr(Kind::Dir, 0o755, ALICE, ALICE);
        assert_eq!(check_create(&bob, &ro).unwrap_err().errno, Errno::EACCES);
        let no_search = attr(Kind::Dir, 0o776, ALICE, ALICE);
        assert_eq!(check_create(&bob, &no_search).unwrap_err().errno, Errno::EACCES);
        let open = attr(Kind::Dir, 0o777, ALICE, ALICE);
        assert!(check_create(&bob, &open).is_ok());
        let alices_file = attr(Kind::File, 0o644, ALICE, ALICE);
        assert!(check_delete(&bob, &open, &alices_file).is_ok(), "not sticky: anyone with write on the directory");
        assert_eq!(check_delete(&bob, &ro, &alices_file).unwrap_err().errno, Errno::EACCES);
    }

    #[test]
    fn in_a_sticky_directory_only_owners_and_root_delete() {
        let tmp = attr(Kind::Dir, 0o1777, 0, 0);
        let alices_file = attr(Kind::File, 0o666, ALICE, ALICE);
        let alice = Caller::new(ALICE, ALICE, vec![]);
        let bob = Caller::new(BOB, BOB, vec![]);
        assert!(check_delete(&alice, &tmp, &alices_file).is_ok());
        assert_eq!(check_delete(&bob, &tmp, &alices_file).unwrap_err().errno, Errno::EPERM);
        assert!(check_delete(&Caller::root(), &tmp, &alices_file).is_ok());
        let bobs_sticky = attr(Kind::Dir, 0o1777, BOB, BOB);
        assert!(check_delete(&bob, &bobs_sticky, &alices_file).is_ok(), "the directory's owner");
    }

    #[test]
    fn only_the_owner_or_root_changes_modes_and_groups() {
        let alice = Caller::new(ALICE, ALICE, vec![STAFF]);
        let bob = Caller::new(BOB, BOB, vec![]);
        let f = attr(Kind::File, 0o644, ALICE, ALICE);
        assert_eq!(chmod(&bob, &f, 0o777).unwrap_err().errno, Errno::EPERM);
        assert_eq!(chmod(&alice, &f, 0o600).unwrap(), 0o600);
        assert_eq!(chmod(&Caller::root(), &f, 0o2755).unwrap(), 0o2755);
        let staff_file = attr(Kind::File, 0o644, ALICE, 77);
        assert_eq!(chmod(&alice, &staff_file, 0o2755).unwrap(), 0o755, "setgid outside the group is dropped");

        assert_eq!(chown(&alice, &f, Some(BOB), None).unwrap_err().errno, Errno::EPERM);
        assert!(chown(&alice, &f, None, Some(STAFF)).is_ok(), "to one of her groups");
        assert_eq!(chown(&alice, &f, None, Some(77)).unwrap_err().errno, Errno::EPERM);
        assert_eq!(chown(&bob, &f, None, Some(BOB)).unwrap_err().errno, Errno::EPERM);
        let suid = attr(Kind::File, 0o4755, ALICE, ALICE);
        assert_eq!(chown(&alice, &suid, None, Some(STAFF)).unwrap(), Some(0o755), "setuid cleared");
        assert_eq!(chown(&Caller::root(), &suid, Some(BOB), None).unwrap(), None);
    }

    #[test]
    fn a_setgid_directory_passes_its_group_on() {
        let alice = Caller::new(ALICE, ALICE, vec![]);
        let shared = attr(Kind::Dir, 0o2775, 0, STAFF);
        assert_eq!(new_owner(&alice, &shared, 0o755, true), (ALICE, STAFF, 0o2755));
        assert_eq!(new_owner(&alice, &shared, 0o644, false), (ALICE, STAFF, 0o644));
        let plain = attr(Kind::Dir, 0o775, 0, STAFF);
        assert_eq!(new_owner(&alice, &plain, 0o644, false), (ALICE, ALICE, 0o644));
    }
}
