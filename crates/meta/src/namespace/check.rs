//! `volume check`: whether a volume's namespace is consistent.

use std::collections::HashMap;

use super::*;

impl<E: Engine> Namespace<E> {
    /// Whether a volume's namespace is consistent: every entry names a
    /// live inode of its kind inside a directory, link counts match the
    /// entries, every directory hangs from one entry of its recorded
    /// parent, and no inode is unreachable (except files unlinked while
    /// open). Returns (inodes and entries examined, problems).
    pub fn check(&self, vol: u32) -> Result<(u64, Vec<String>)> {
        self.engine.read(|r| {
            let mut inodes: HashMap<u64, (Kind, u32, u64)> = HashMap::new();
            let mut examined = 0u64;
            let mut problems = Vec::new();
            for_each(r, &key::prefix(b'i', vol), &key::prefix(b'i', vol + 1), |k, v| {
                examined += 1;
                let i: Inode = decode(v)?;
                if be_u64(k, 5) != Some(i.attr.ino) {
                    problems.push(format!("inode record {:?} holds inode {}", be_u64(k, 5), i.attr.ino));
                }
                inodes.insert(i.attr.ino, (i.attr.kind, i.attr.nlink, i.parent));
                Ok(())
            })?;
            if !inodes.contains_key(&ROOT) {
                problems.push("the root directory is missing".into());
            }
            // Entries pointing at each inode, and subdirectories of each directory.
            let mut links: HashMap<u64, u32> = HashMap::new();
            let mut subdirs: HashMap<u64, u32> = HashMap::new();
            for_each(r, &key::prefix(b'd', vol), &key::prefix(b'd', vol + 1), |k, v| {
                examined += 1;
                let d: Dirent = decode(v)?;
                let parent = be_u64(k, 5).unwrap_or(0);
                let name = String::from_utf8_lossy(k.get(13..).unwrap_or_default()).into_owned();
                match inodes.get(&parent) {
                    Some((Kind::Dir, _, _)) => {}
                    Some(_) => problems.push(format!("entry {name:?} is in inode {parent}, not a directory")),
                    None => problems.push(format!("entry {name:?} is in directory {parent}, which does not exist")),
                }
                match inodes.get(&d.ino) {
                    None => {
                        problems.push(format!("entry {name:?} in {parent} names inode {}, which does not exist", d.ino))
                    }
                    Some((kind, _, p)) => {
                        if *kind != d.kind {
                            problems.push(format!(
                                "entry {name:?} in {parent} says {:?}, inode {} is {kind:?}",
                                d.kind, d.ino
                            ));
                        }
                        if *kind == Kind::Dir {
                            *subdirs.entry(parent).or_default() += 1;
                            if *p != parent {
                                problems.push(format!("directory {} is in {parent} but records parent {p}", d.ino));
                            }
                        }
                    }
                }
                *links.entry(d.ino).or_default() += 1;
                Ok(())
            })?;
            for_each(r, &key::prefix(b's', vol), &key::prefix(b's', vol + 1), |k, _| {
                let ino = be_u64(k, 5).unwrap_or(0);
                if !matches!(inodes.get(&ino), Some((Kind::File, _, _))) {
                    problems.push(format!("slices are kept for inode {ino}, which is not a file"));
                }
                Ok(())
            })?;
            let mut orphans = std::collections::HashSet::new();
            for_each(r, &key::prefix(b'o', vol), &key::prefix(b'o', vol + 1), |k, _| {
                let ino = be_u64(k, 5).unwrap_or(0);
                match inodes.get(&ino) {
                    Some((Kind::File, 0, _)) => {}
                    Some((_, n, _)) => problems.push(format!("inode {ino} is kept as unlinked but has {n} links")),
                    None => problems.push(format!("unlinked inode {ino} is kept but does not exist")),
                }
                orphans.insert(ino);
                Ok(())
            })?;
            let mut all: Vec<_> = inodes.iter().collect();
            all.sort_by_key(|(ino, _)| **ino);
            for (&ino, &(kind, nlink, _)) in all {
                let entries = links.get(&ino).copied().unwrap_or(0);
                if kind == Kind::Dir {
                    let want = 2 + subdirs.get(&ino).copied().unwrap_or(0);
                    if nlink != want {
                        problems.push(format!("directory {ino} has link count {nlink}, its entries make {want}"));
                    }
                    if ino != ROOT && entries != 1 {
                        problems.push(format!("directory {ino} has {entries} entries naming it"));
                    }
                } else if entries == 0 && !orphans.contains(&ino) {
                    problems.push(format!("inode {ino} is not reachable from any directory"));
                } else if nlink != entries {
                    problems.push(format!("inode {ino} has link count {nlink} but {entries} entries"));
                }
            }
            Ok((examined, problems))
        })
    }
}
