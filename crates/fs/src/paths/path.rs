//! A path inside a volume, as a gateway hands it over (an S3 key, a
//! WebDAV or HTTP path), checked before anything is looked up.

use cairn_proto::meta::NAME_MAX;
use cairn_proto::Errno;

use crate::{FsError, Result};

/// Longest path accepted, bytes (Linux's `PATH_MAX`).
pub const PATH_MAX: usize = 4096;

/// A checked path: its names from the volume's root, none empty, `.` or
/// `..`, none with a NUL byte or longer than 255 bytes. Leading and
/// trailing slashes are dropped; the root is the path of no names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolPath {
    names: Vec<Vec<u8>>,
}

impl VolPath {
    /// Checks `path` (bytes: POSIX names need not be UTF-8). EINVAL for an
    /// empty, `.` or `..` name or a NUL byte, ENAMETOOLONG for a name or
    /// path too long.
    pub fn parse(path: impl AsRef<[u8]>) -> Result<Self> {
        let path = path.as_ref();
        if path.len() > PATH_MAX {
            return Err(FsError::new(Errno::ENAMETOOLONG, "path longer than 4096 bytes"));
        }
        let trimmed = trim_slashes(path);
        if trimmed.is_empty() {
            return Ok(Self::root());
        }
        let mut names = Vec::new();
        for name in trimmed.split(|b| *b == b'/') {
            match name {
                b"" => return Err(FsError::new(Errno::EINVAL, "empty name in a path (`//`)")),
                b"." | b".." => return Err(FsError::new(Errno::EINVAL, "`.` or `..` in a path")),
                n if n.contains(&0) => return Err(FsError::new(Errno::EINVAL, "NUL byte in a path")),
                n if n.len() > NAME_MAX => return Err(FsError::new(Errno::ENAMETOOLONG, "name longer than 255 bytes")),
                n => names.push(n.to_vec()),
            }
        }
        Ok(Self { names })
    }

    /// The volume's root.
    pub fn root() -> Self {
        Self { names: Vec::new() }
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.names.is_empty()
    }

    /// The names, from the root.
    pub fn names(&self) -> &[Vec<u8>] {
        &self.names
    }

    /// The parent's names and the last name; `None` for the root.
    pub fn split_last(&self) -> Option<(&[Vec<u8>], &[u8])> {
        self.names.split_last().map(|(last, parent)| (parent, last.as_slice()))
    }
}

fn trim_slashes(mut p: &[u8]) -> &[u8] {
    while let [b'/', rest @ ..] = p {
        p = rest;
    }
    while let [rest @ .., b'/'] = p {
        p = rest;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_names_from_the_root() {
        assert_eq!(VolPath::parse("/a/b/").unwrap().names(), [b"a".to_vec(), b"b".to_vec()]);
        assert!(VolPath::parse("/").unwrap().is_root());
        assert!(VolPath::parse("").unwrap().is_root());
        let p = VolPath::parse("x/y/z.txt").unwrap();
        let (parent, last) = p.split_last().unwrap();
        assert_eq!((parent.len(), last), (2, &b"z.txt"[..]));
    }

    #[test]
    fn escapes_and_oddities_are_refused() {
        for bad in ["a/../b", "..", "a/./b", "a//b", "a\0b"] {
            assert_eq!(VolPath::parse(bad).unwrap_err().errno, Errno::EINVAL, "{bad:?}");
        }
        assert_eq!(VolPath::parse("a".repeat(256)).unwrap_err().errno, Errno::ENAMETOOLONG);
        assert_eq!(VolPath::parse("a/".repeat(2100)).unwrap_err().errno, Errno::ENAMETOOLONG);
    }
}
