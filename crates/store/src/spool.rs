//! Spools: content on its way into the store.
//!
//! Content up to the store's pack threshold stays in memory (it will be
//! appended to a pack, see `pack.rs`); past it, the spool spills to a temp
//! file on the store path, which later becomes the blob file by a link.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;

use crate::checksum::Summer;
use crate::error::{Error, Result};

/// Content that checksums itself as it is written. Dropped before
/// [`Spool::finish`], it removes its file, if it made one.
#[derive(Debug)]
pub struct Spool {
    sink: Sink,
    /// The temp file's path (made only when the content spills).
    path: PathBuf,
    summer: Summer,
    store_path: u8,
    memory_limit: usize,
}

#[derive(Debug)]
enum Sink {
    Memory(Vec<u8>),
    File(File),
    Finished,
}

/// A finished, durable spool, ready to become a blob or part of one.
/// Dropped without being used, it removes its file.
#[derive(Debug)]
pub struct Spooled {
    pub(crate) content: Content,
    /// Bytes in it.
    pub size: u64,
    /// CRC32 of its content.
    pub crc32: u32,
    pub(crate) blocks: Vec<u32>,
    /// Store path it sits on.
    pub store_path: u8,
}

/// Where a finished spool's bytes are.
#[derive(Debug)]
pub(crate) enum Content {
    /// Small content, never written to disk yet.
    Memory(Vec<u8>),
    /// A synced temp file (empty path once consumed).
    File(PathBuf),
}

impl Spool {
    pub(crate) fn create(tmp_dir: &Path, store_path: u8, memory_limit: usize) -> Self {
        let name = format!("spool-{:016x}", rand::thread_rng().gen::<u64>());
        Self {
            sink: Sink::Memory(Vec::new()),
            path: tmp_dir.join(name),
            summer: Summer::default(),
            store_path,
            memory_limit,
        }
    }

    /// Appends bytes.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        if let Sink::Memory(buf) = &mut self.sink {
            if buf.len() + data.len() <= self.memory_limit {
                buf.extend_from_slice(data);
                self.summer.update(data);
                return Ok(());
            }
            let mut file =
                OpenOptions::new().write(true).create_new(true).open(&self.path).map_err(Error::io(&self.path))?;
            file.write_all(buf).map_err(Error::io(&self.path))?;
            self.sink = Sink::File(file);
        }
        match &mut self.sink {
            Sink::File(file) => file.write_all(data).map_err(Error::io(&self.path))?,
            _ => return Err(Error::InvalidArgument("spool already finished".into())),
        }
        self.summer.update(data);
        Ok(())
    }

    /// Whether writing `more` bytes keeps the content in memory: then
    /// [`Spool::write`] and [`Spool::finish`] do no I/O and need no
    /// blocking thread.
    pub fn stays_in_memory(&self, more: usize) -> bool {
        matches!(&self.sink, Sink::Memory(buf) if buf.len() + more <= self.memory_limit)
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.summer.size()
    }

    /// Makes the content durable (`fdatasync`, for a spilled spool) and
    /// seals the spool.
    pub fn finish(mut self) -> Result<Spooled> {
        let content = match std::mem::replace(&mut self.sink, Sink::Finished) {
            Sink::Memory(buf) => Content::Memory(buf),
            Sink::File(file) => {
                file.sync_data().map_err(Error::io(&self.path))?;
                Content::File(std::mem::take(&mut self.path))
            }
            Sink::Finished => return Err(Error::InvalidArgument("spool already finished".into())),
        };
        let (size, crc32, blocks) = std::mem::take(&mut self.summer).finish();
        Ok(Spooled { content, size, crc32, blocks, store_path: self.store_path })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if matches!(self.sink, Sink::File(_)) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Spooled {
    /// Whether the content is still in memory (small enough to pack).
    pub(crate) fn in_memory(&self) -> bool {
        matches!(self.content, Content::Memory(_))
    }

    /// Writes in-memory content to a synced temp file in `tmp_dir`, so it
    /// can become a blob file. A no-op for a spilled spool.
    pub(crate) fn write_to_disk(&mut self, tmp_dir: &Path) -> Result<&Path> {
        if let Content::Memory(buf) = &self.content {
            let path = tmp_dir.join(format!("spool-{:016x}", rand::thread_rng().gen::<u64>()));
            let write = || -> std::io::Result<()> {
                let mut f = OpenOptions::new().write(true).create_new(true).open(&path)?;
                f.write_all(buf)?;
                f.sync_data()
            };
            if let Err(e) = write() {
                let _ = std::fs::remove_file(&path);
                return Err(Error::io(&path)(e));
            }
            self.content = Content::File(path);
        }
        self.path()
    }

    /// Takes the temp file's path: the caller now owns the file.
    pub(crate) fn consume(mut self) -> PathBuf {
        match &mut self.content {
            Content::File(p) => std::mem::take(p),
            Content::Memory(_) => PathBuf::new(),
        }
    }

    /// The temp file, for a spool on disk.
    pub(crate) fn path(&self) -> Result<&Path> {
        match &self.content {
            Content::File(p) => Ok(p),
            Content::Memory(_) => Err(Error::InvalidArgument("spool not on disk".into())),
        }
    }

    /// The content, for a spool still in memory.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match &self.content {
            Content::Memory(b) => Some(b),
            Content::File(_) => None,
        }
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        if let Content::File(p) = &self.content {
            if !p.as_os_str().is_empty() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}
