//! Where a download goes (`cairn download ID -o PATH`), chosen as `cp`
//! chooses: a regular file (or a new name) is replaced whole and only once
//! the download is complete; a device, a FIFO or a socket is written into
//! and never replaced; a symbolic link is followed to what it names; a
//! directory is refused before anything is fetched.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// An opened download destination.
pub enum Output {
    /// A temporary file beside `target`, renamed over it by [`Output::finish`];
    /// removed if dropped before (a failed or interrupted download leaves
    /// nothing behind).
    Replace {
        /// The temporary file.
        part: tempfile::NamedTempFile,
        /// What it becomes.
        target: PathBuf,
    },
    /// A device node, FIFO or socket written in place.
    InPlace(PathBuf),
}

/// Links followed at most (as the kernel's own limit on a path lookup).
const MAX_LINKS: usize = 40;

/// The path a write to `path` lands on: `path` itself, or for a symbolic
/// link, what it names (through a chain of links, even to a name that does
/// not exist yet, as `cp` and the shell's `>` do).
fn follow_links(path: &Path) -> Result<PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&at).with_context(|| format!("cannot read the link {}", at.display()))?;
                at = match at.parent() {
                    Some(dir) if to.is_relative() => dir.join(to),
                    _ => to,
                };
            }
            _ => return Ok(at),
        }
    }
    bail!("{}: too many levels of symbolic links", path.display())
}

impl Output {
    /// Checks `path` and prepares the write; nothing is created for a
    /// destination that cannot take the download.
    pub fn open(path: &str) -> Result<Self> {
        if path.is_empty() {
            bail!("-o needs a path (or - for standard output)");
        }
        let target = follow_links(Path::new(path))?;
        match std::fs::metadata(&target) {
            Ok(m) if m.is_dir() => bail!("{path} is a directory; give a file name (-o {path}/NAME)"),
            Ok(m) => {
                let t = m.file_type();
                if t.is_char_device() || t.is_block_device() || t.is_fifo() || t.is_socket() {
                    return Ok(Output::InPlace(target));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot write {path}")),
        }
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // A regular file's usual mode (0666 less the umask), not the 0600 of
        // a temporary file.
        let part = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".part")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        Ok(Output::Replace { part, target })
    }

    /// The file to write the content into.
    pub async fn writer(&self) -> Result<tokio::fs::File> {
        match self {
            Output::Replace { part, .. } => {
                let f = part.as_file().try_clone().context("cannot reopen the temporary file")?;
                Ok(tokio::fs::File::from_std(f))
            }
            Output::InPlace(p) => tokio::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .await
                .with_context(|| format!("cannot open {}", p.display())),
        }
    }

    /// Where the content ends up.
    pub fn target(&self) -> &Path {
        match self {
            Output::Replace { target, .. } => target,
            Output::InPlace(p) => p,
        }
    }

    /// Makes a complete download durable and puts it under its name.
    pub async fn finish(self, mut written: tokio::fs::File) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        written.flush().await.with_context(|| format!("cannot write {}", self.target().display()))?;
        match self {
            Output::Replace { part, target } => {
                written.sync_all().await.with_context(|| format!("cannot write {}", target.display()))?;
                drop(written);
                tokio::task::spawn_blocking(move || {
                    part.persist(&target)
                        .map_err(|e| e.error)
                        .with_context(|| format!("cannot write {}", target.display()))
                })
                .await??;
            }
            Output::InPlace(_) => drop(written),
        }
        Ok(())
    }
}
