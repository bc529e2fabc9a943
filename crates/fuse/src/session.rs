//! Mounting: the options, the kernel's read-ahead, and the change feed
//! that makes the kernel forget what other mounts change.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use cairn_fs::Fs;
use cairn_proto::meta::Changed;
use fuser::INodeNo;

/// Mount options: the kernel checks permissions from the attributes.
pub fn config(volume: &str, allow_other: bool) -> fuser::Config {
    let mut c = fuser::Config::default();
    c.mount_options = vec![
        fuser::MountOption::FSName(format!("cairn:{volume}")),
        fuser::MountOption::Subtype("cairn".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    if allow_other {
        c.acl = fuser::SessionACL::All;
    }
    c.n_threads = Some(4);
    c
}

/// Sets how far ahead the kernel reads a file read sequentially through
/// the mount at `mountpoint` (its `read_ahead_kb`; the kernel starts FUSE
/// mounts at 128 KiB). Far enough ahead, the kernel keeps several read
/// requests in flight (up to its 16 background requests of 1 MiB) while
/// the program consumes earlier pages, instead of one 128 KiB request at a
/// time: a cold 1 GiB read went from 320–505 MB/s to 605–706 MB/s. Random
/// reads are not read ahead, so they do not pay for it. Needs root (it is
/// a sysfs file); the caller logs a failure and the mount works without.
pub fn set_read_ahead(mountpoint: &Path, kib: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(mountpoint)?.dev();
    let bdi = format!("/sys/class/bdi/{}:{}/read_ahead_kb", libc::major(dev), libc::minor(dev));
    std::fs::write(bdi, kib.to_string())
}

/// Makes the kernel forget its cached entries and attributes of what other
/// mounts change, as the meta service reports it (see
/// [`Fs::follow_changes`]).
pub fn follow_changes(fs: &Arc<Fs>, notifier: fuser::Notifier) {
    Fs::follow_changes(
        fs,
        Arc::new(move |changes| {
            for c in changes {
                // ENOENT: the kernel did not have it cached, nothing to drop.
                let _ = match c {
                    Changed::Entry { parent, name } | Changed::Unlinked { parent, name } => {
                        notifier.inval_entry(INodeNo(parent), OsStr::from_bytes(&name))
                    }
                    Changed::Inode { ino } => notifier.inval_inode(INodeNo(ino), 0, 0),
                };
            }
        }),
    );
}
