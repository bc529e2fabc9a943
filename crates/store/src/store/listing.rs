//! Listing a node's blobs: the walk over a store path's directories,
//! every blob ID, and the pages of summaries a peer compares with its own.

use std::path::{Path, PathBuf};

use cairn_proto::FileId;

use super::Store;
use crate::error::{Error, Result};
use crate::layout::{is_record_name, StorePath};

impl Store {
    /// A page of blob summaries, by ID, after `after`. Walks the disks (and
    /// the pack indexes) on each call; fine for catch-ups of up to millions
    /// of files.
    pub fn summaries(&self, after: Option<&str>, limit: usize) -> Result<(Vec<cairn_proto::BlobSummary>, bool)> {
        let mut ids: Vec<String> = self.list()?.into_iter().map(|id| id.to_string()).collect();
        ids.sort();
        let start = match after {
            Some(a) => ids.partition_point(|x| x.as_str() <= a),
            None => 0,
        };
        let mut out = Vec::new();
        let mut more = false;
        for s in &ids[start..] {
            if out.len() == limit {
                more = true;
                break;
            }
            let Ok(id) = FileId::parse(s) else { continue };
            // A blob whose record is unreadable is listed without one, so a
            // comparing peer does not take it for a deleted file.
            match self.record(&id) {
                Ok(r) => out.push(cairn_proto::BlobSummary {
                    file_id: s.clone(),
                    size: r.size,
                    crc32: r.crc32,
                    appender: r.appender,
                }),
                Err(Error::NotFound(_)) => {}
                Err(_) => out.push(cairn_proto::BlobSummary { file_id: s.clone(), size: 0, crc32: 0, appender: false }),
            }
        }
        Ok((out, more))
    }

    /// Every blob ID on this node (walks the disks; for scrubs and tests).
    pub fn list(&self) -> Result<Vec<FileId>> {
        let mut out = Vec::new();
        for sp in &self.paths {
            walk(sp, |id, _| out.push(FileId::new(&self.group, sp.index(), id.0, id.1, &id.2).ok()))?;
        }
        for packs in &self.packs {
            out.extend(packs.ids().iter().map(|id| FileId::parse(id).ok()));
        }
        Ok(out.into_iter().flatten().collect())
    }
}

/// What a store directory holds of one blob.
#[derive(Default)]
pub(super) struct Listed {
    /// Size of the content file (0 when there is none).
    pub(super) size: u64,
    /// Whether the record is there.
    pub(super) record: bool,
}

/// Calls `f((dir1, dir2, name), listed)` for each blob on a store path.
pub(super) fn walk(sp: &StorePath, mut f: impl FnMut((u8, u8, String), Listed)) -> Result<()> {
    let hex_dirs = |p: &Path| -> Result<Vec<(u8, PathBuf)>> {
        let mut v = Vec::new();
        let rd = match std::fs::read_dir(p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
            Err(e) => return Err(Error::io(p)(e)),
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let (2, Ok(n)) = (name.len(), u8::from_str_radix(&name, 16)) {
                v.push((n, e.path()));
            }
        }
        Ok(v)
    };
    for (d1, p1) in hex_dirs(&sp.data_dir())? {
        for (d2, p2) in hex_dirs(&p1)? {
            // A blob is listed if its content or its record is there: one
            // without the other is damage that a scrub must see.
            let mut names: std::collections::BTreeMap<String, Listed> = std::collections::BTreeMap::new();
            for e in std::fs::read_dir(&p2).map_err(Error::io(&p2))?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                if is_record_name(&name) {
                    names.entry(name.trim_end_matches(".rec").to_string()).or_default().record = true;
                } else {
                    names.entry(name).or_default().size = e.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
            for (name, listed) in names {
                f((d1, d2, name), listed);
            }
        }
    }
    Ok(())
}
