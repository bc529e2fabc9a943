//! The errno a namespace operation fails with, as every front end answers
//! it: FUSE and NFS pass it on, S3, WebDAV and HTTP map it to their own
//! codes. One type from the meta service's answer to the mount's reply,
//! so no layer spells an errno as a bare number.

use serde::{Deserialize, Serialize};

/// An errno value (Linux numbering: the meta service and every client run
/// on Linux, and the value travels on the wire as it is).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Errno(i32);

/// The errno values Cairn answers, with their names (for `Display`).
macro_rules! errnos {
    ($($name:ident: $why:literal,)*) => {
        impl Errno {
            $(
                #[doc = $why]
                pub const $name: Errno = Errno(libc::$name);
            )*

            /// The symbolic name (`ENOENT`), if it is one Cairn knows.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $(libc::$name => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM: "Not the owner (chmod, chown, a sticky directory).",
    ENOENT: "No such file or directory.",
    EIO: "Input/output error: the storage below failed.",
    EBADF: "No such open handle.",
    EAGAIN: "Try again (the state changed under the operation).",
    EACCES: "The caller's permissions do not allow it.",
    EBUSY: "In use.",
    EEXIST: "The name is taken.",
    EXDEV: "Across volumes.",
    ENOTDIR: "A directory was needed.",
    EISDIR: "Not allowed on a directory.",
    EINVAL: "Bad argument.",
    EFBIG: "Too large.",
    ENOSPC: "No space left in the volume's groups.",
    EROFS: "Read-only.",
    EMLINK: "Too many links.",
    ERANGE: "The caller's buffer is too small.",
    ENAMETOOLONG: "A name is longer than 255 bytes.",
    ENOTEMPTY: "The directory has entries.",
    ELOOP: "Too many symbolic links.",
    ENODATA: "No such extended attribute.",
    ENOTTY: "Not a terminal (no ioctl).",
    EOPNOTSUPP: "Not supported by this file system.",
    ECANCELED: "Cancelled (an upload cut off).",
}

impl Errno {
    /// The errno `raw` (from the wire, from a system call).
    pub const fn from_raw(raw: i32) -> Errno {
        Errno(raw)
    }

    /// The value, for a system call's answer or the wire.
    pub const fn raw(self) -> i32 {
        self.0
    }
}

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "errno {}", self.0),
        }
    }
}

impl std::fmt::Debug for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_linux_ones() {
        assert_eq!(Errno::ENOENT.raw(), 2);
        assert_eq!(Errno::EIO.raw(), 5);
        assert_eq!(Errno::EOPNOTSUPP.raw(), 95);
        assert_eq!(Errno::ENOENT.to_string(), "ENOENT");
        assert_eq!(Errno::from_raw(4095).to_string(), "errno 4095");
        assert_eq!(format!("{:?}", Errno::EACCES), "EACCES(13)");
    }

    #[test]
    fn the_wire_carries_the_bare_value() {
        let e = postcard::to_allocvec(&Errno::ENOTEMPTY).unwrap();
        assert_eq!(e, postcard::to_allocvec(&libc::ENOTEMPTY).unwrap());
        assert_eq!(postcard::from_bytes::<Errno>(&e).unwrap(), Errno::ENOTEMPTY);
    }
}
