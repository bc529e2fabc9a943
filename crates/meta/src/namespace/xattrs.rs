//! Extended attributes, kept in the inode record, and the collector's queue
//! of blobs no file refers to (`g` blob).

use super::*;

impl<E: Engine> Namespace<E> {
    // ---- extended attributes ----

    /// Sets an extended attribute (`create`: fail if present; `replace`:
    /// fail if absent).
    pub fn setxattr(&self, vol: u32, ino: u64, name: &[u8], value: &[u8], create: bool, replace: bool) -> Result<()> {
        if name.is_empty() || name.len() > 255 || value.len() > 64 * 1024 {
            return Err(MetaError::Invalid("extended attribute name or value too long".into()));
        }
        self.change(|w| {
            let mut i = load(w, vol, ino)?;
            let present = i.xattrs.contains_key(name);
            if create && present {
                return Err(MetaError::Exists("extended attribute".into()));
            }
            if replace && !present {
                return Err(MetaError::NoAttr);
            }
            i.xattrs.insert(name.to_vec(), value.to_vec());
            i.attr.ctime = Time::now();
            save(w, vol, &i)
        })
    }

    /// An extended attribute's value.
    pub fn getxattr(&self, vol: u32, ino: u64, name: &[u8]) -> Result<Vec<u8>> {
        self.engine.read(|r| load(r, vol, ino)?.xattrs.get(name).cloned().ok_or(MetaError::NoAttr))
    }

    /// Names of an inode's extended attributes.
    pub fn listxattr(&self, vol: u32, ino: u64) -> Result<Vec<Vec<u8>>> {
        self.engine.read(|r| Ok(load(r, vol, ino)?.xattrs.into_keys().collect()))
    }

    /// Removes an extended attribute.
    pub fn removexattr(&self, vol: u32, ino: u64, name: &[u8]) -> Result<()> {
        self.change(|w| {
            let mut i = load(w, vol, ino)?;
            if i.xattrs.remove(name).is_none() {
                return Err(MetaError::NoAttr);
            }
            i.attr.ctime = Time::now();
            save(w, vol, &i)
        })
    }
    // ---- the collector's queue ----

    /// Up to `limit` blobs no file refers to, dropped before `before`
    /// (Unix seconds): the grace period lets readers that still hold old
    /// slices finish.
    pub fn garbage(&self, before: i64, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let from = match after {
            Some(b) => {
                let mut k = key::garbage(b);
                k.push(0); // the first key after it
                k
            }
            None => b"g".to_vec(),
        };
        self.engine.read(|r| {
            let mut out = Vec::new();
            for_each_until(r, &from, b"h", |k, v| {
                let at: i64 = decode(v)?;
                if at < before {
                    out.push(String::from_utf8_lossy(&k[1..]).into_owned());
                }
                Ok(out.len() < limit)
            })?;
            Ok(out)
        })
    }

    /// Takes collected blobs off the queue.
    pub fn collected(&self, blobs: &[String]) -> Result<()> {
        self.change(|w| {
            for b in blobs {
                w.delete(&key::garbage(b))?;
            }
            Ok(())
        })
    }
}
