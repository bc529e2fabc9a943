//! Blobs in memory, for the workers' tests: names that look like file IDs
//! (they contain a `/`) are blobs; a blob can be made to fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::{BlobError, Blobs};

#[derive(Default)]
pub(crate) struct FakeBlobs {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    blobs: BTreeMap<String, Vec<u8>>,
    failing: BTreeSet<String>,
    uploads: usize,
}

impl FakeBlobs {
    /// Holding `names`, each one byte long.
    pub(crate) fn holding(names: &[String]) -> Self {
        let f = Self::default();
        for n in names {
            f.put(n, vec![0]);
        }
        f
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn put(&self, name: &str, data: Vec<u8>) {
        self.state().blobs.insert(name.to_string(), data);
    }

    pub(crate) fn get(&self, name: &str) -> Option<Vec<u8>> {
        self.state().blobs.get(name).cloned()
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.state().blobs.contains_key(name)
    }

    pub(crate) fn len(&self) -> usize {
        self.state().blobs.len()
    }

    pub(crate) fn uploads(&self) -> usize {
        self.state().uploads
    }

    /// Every operation on `name` fails until [`FakeBlobs::heal`].
    pub(crate) fn fail(&self, name: &str) {
        self.state().failing.insert(name.to_string());
    }

    pub(crate) fn heal(&self, name: &str) {
        self.state().failing.remove(name);
    }

    fn check(&self, name: &str) -> Result<(), BlobError> {
        if !name.contains('/') {
            return Err(BlobError::NotAFileId(name.to_string()));
        }
        if self.state().failing.contains(name) {
            return Err(BlobError::Unavailable(format!("{name} is down")));
        }
        Ok(())
    }
}

impl Blobs for FakeBlobs {
    async fn delete(&self, blob: &str) -> Result<(), BlobError> {
        self.check(blob)?;
        self.state().blobs.remove(blob);
        Ok(())
    }

    async fn read(&self, blob: &str, offset: u64, len: u64, into: &mut Vec<u8>) -> Result<(), BlobError> {
        self.check(blob)?;
        let data = self.get(blob).ok_or_else(|| BlobError::Unavailable(format!("{blob} not found")))?;
        let end = (offset + len).min(data.len() as u64) as usize;
        into.extend_from_slice(data.get(offset as usize..end).unwrap_or_default());
        Ok(())
    }

    async fn upload(&self, data: Vec<u8>, group: Option<String>) -> Result<String, BlobError> {
        let mut s = self.state();
        s.uploads += 1;
        let name = format!("{}/M00/00/00/merged{}", group.unwrap_or_else(|| "any".into()), s.uploads);
        s.blobs.insert(name.clone(), data);
        Ok(name)
    }
}
