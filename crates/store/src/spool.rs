//! Spools: content on its way into the store.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;

use crate::checksum::Summer;
use crate::error::{Error, Result};

/// A temp file on a store path that checksums what is written to it.
/// Dropped before [`Spool::finish`], it removes itself.
#[derive(Debug)]
pub struct Spool {
    file: Option<File>,
    path: PathBuf,
    summer: Summer,
    store_path: u8,
}

/// A finished, durable spool, ready to become a blob or part of one.
/// Dropped without being used, it removes its file.
#[derive(Debug)]
pub struct Spooled {
    pub(crate) path: PathBuf,
    /// Bytes in it.
    pub size: u64,
    /// CRC32 of its content.
    pub crc32: u32,
    pub(crate) blocks: Vec<u32>,
    /// Store path it sits on.
    pub store_path: u8,
}

impl Spool {
    pub(crate) fn create(tmp_dir: &Path, store_path: u8) -> Result<Self> {
        let name = format!("spool-{:016x}", rand::thread_rng().gen::<u64>());
        let path = tmp_dir.join(name);
        let file = OpenOptions::new().write(true).create_new(true).open(&path).map_err(Error::io(&path))?;
        Ok(Self { file: Some(file), path, summer: Summer::default(), store_path })
    }

    /// Appends bytes.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let file = self.file.as_mut().ok_or_else(|| Error::InvalidArgument("spool already finished".into()))?;
        file.write_all(data).map_err(Error::io(&self.path))?;
        self.summer.update(data);
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.summer.size()
    }

    /// Makes the content durable (`fdatasync`) and seals the spool.
    pub fn finish(mut self) -> Result<Spooled> {
        let file = self.file.take().ok_or_else(|| Error::InvalidArgument("spool already finished".into()))?;
        file.sync_data().map_err(Error::io(&self.path))?;
        drop(file);
        let (size, crc32, blocks) = std::mem::take(&mut self.summer).finish();
        let path = std::mem::take(&mut self.path);
        Ok(Spooled { path, size, crc32, blocks, store_path: self.store_path })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Spooled {
    pub(crate) fn consume(mut self) -> PathBuf {
        std::mem::take(&mut self.path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
