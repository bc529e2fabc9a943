//! Where things live on a store path (one disk).
//!
//! ```text
//! <store path>/.cairn-store      which node and index owns this path
//! <store path>/tmp/              spools: uploads not yet committed
//! <store path>/data/XX/YY/<name>       blob content
//! <store path>/data/XX/YY/<name>.rec   its record (checksums, metadata)
//! ```
//!
//! The 256×256 directories are made lazily, when the first blob lands in one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_proto::FileId;

use crate::error::{Error, Result};

/// How a node picks the store path for a new blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathPolicy {
    /// Each path in turn.
    RoundRobin,
    /// The path with the most free space.
    #[default]
    MostFree,
}

/// One store path of this node.
#[derive(Debug, Clone)]
pub struct StorePath {
    root: PathBuf,
    index: u8,
}

const MARKER: &str = ".cairn-store";
const RECORD_SUFFIX: &str = ".rec";

impl StorePath {
    /// Prepares a store path: creates it and its `tmp/` and checks (or
    /// writes) the marker that binds it to this node and index, so disks
    /// swapped between slots are noticed instead of serving wrong files.
    pub fn open(root: &Path, index: u8, node_id: u32) -> Result<Self> {
        std::fs::create_dir_all(root.join("data")).map_err(Error::io(root))?;
        let tmp = root.join("tmp");
        // Leftover spools are uploads that never committed: nobody was told
        // they succeeded, so they go.
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(Error::io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(Error::io(&tmp))?;
        let marker = root.join(MARKER);
        let expected = format!("node={node_id} index={index}\n");
        match std::fs::read_to_string(&marker) {
            Ok(found) if found == expected => {}
            Ok(found) => {
                return Err(Error::Setup {
                    path: root.to_path_buf(),
                    reason: format!(
                        "this store path belongs to another node or slot ({}); expected {}",
                        found.trim(),
                        expected.trim()
                    ),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_durably(&marker, expected.as_bytes())?,
            Err(e) => return Err(Error::io(&marker)(e)),
        }
        Ok(Self { root: root.to_path_buf(), index })
    }

    /// The path's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Its index (the `Mxx` of file IDs).
    pub fn index(&self) -> u8 {
        self.index
    }

    /// Directory for spools.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Top of the blob tree.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Directory that holds a blob.
    pub fn dir_of(&self, id: &FileId) -> PathBuf {
        self.root.join("data").join(format!("{:02X}", id.dir1())).join(format!("{:02X}", id.dir2()))
    }

    /// Path of a blob's content.
    pub fn blob_path(&self, id: &FileId) -> PathBuf {
        self.dir_of(id).join(id.name())
    }

    /// Path of a blob's record.
    pub fn record_path(&self, id: &FileId) -> PathBuf {
        self.dir_of(id).join(format!("{}{RECORD_SUFFIX}", id.name()))
    }

    /// (total, free) bytes of the file system under this path.
    pub fn usage(&self) -> (u64, u64) {
        match rustix::fs::statvfs(&self.root) {
            Ok(s) => (s.f_blocks * s.f_frsize, s.f_bavail * s.f_frsize),
            Err(_) => (0, 0),
        }
    }
}

/// True for file names that are records rather than blobs.
pub fn is_record_name(name: &str) -> bool {
    name.ends_with(RECORD_SUFFIX)
}

/// Flushes a directory so that renames and links in it survive a crash.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io(dir))
}

/// Replaces a small file atomically and durably: temp file, fsync, rename,
/// fsync of the directory.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp =
        dir.join(format!(".{}.tmp", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
    {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(Error::io(&tmp))?;
        f.write_all(bytes).map_err(Error::io(&tmp))?;
        f.sync_data().map_err(Error::io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(Error::io(path))?;
    fsync_dir(dir)
}
