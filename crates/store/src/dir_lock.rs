//! One process per directory: every role takes an exclusive lock on its
//! data directory (and a storage node on each store path) when it starts,
//! and keeps it until it exits. Two processes on one directory would both
//! write blobs, binlogs and node IDs there; the second one refuses to
//! start instead, naming the process that holds the directory.
//!
//! The lock is `flock` on `DIR/.lock`, which the kernel drops when the
//! process dies however it dies (SIGKILL included): no stale lock to
//! remove by hand. The file holds the holder's PID and role, for the
//! message.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

/// The lock file in a locked directory.
pub const LOCK_FILE: &str = ".lock";

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("{dir} is in use by another cairn process ({holder}); stop it first, or give this one another directory")]
    Held {
        /// The directory.
        dir: PathBuf,
        /// Who holds it, as it wrote itself down (`pid 123, cairn server`).
        holder: String,
    },
    /// The lock file could not be made or locked.
    #[error("cannot lock {dir}: {error}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// What failed (in the message, so not also a source).
        error: std::io::Error,
    },
}

/// An exclusive lock on a directory, held until dropped (or the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    dir: PathBuf,
}

impl DirLock {
    /// Locks `dir` (created if missing) for this process, as `role`
    /// (`storage node`, `tracker`, …).
    pub fn acquire(dir: &Path, role: &str) -> Result<Self, LockError> {
        let io = |error| LockError::Io { dir: dir.to_path_buf(), error };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e == rustix::io::Errno::WOULDBLOCK {
                let mut said = String::new();
                let _ = file.read_to_string(&mut said);
                let holder = match said.trim() {
                    "" => "its PID is not written down yet".to_string(),
                    s => s.to_string(),
                };
                return Err(LockError::Held { dir: dir.to_path_buf(), holder });
            }
            return Err(io(e.into()));
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "pid {}, cairn {role}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file, dir: dir.to_path_buf() })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_named_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "storage node").unwrap();
        let err = DirLock::acquire(dir.path(), "tracker").unwrap_err().to_string();
        assert!(err.contains(&format!("pid {}, cairn storage node", std::process::id())), "{err}");
        assert!(err.contains("in use by another cairn process"), "{err}");
        drop(first);
        let again = DirLock::acquire(dir.path(), "tracker").unwrap();
        assert_eq!(again.dir(), dir.path());
    }
}
