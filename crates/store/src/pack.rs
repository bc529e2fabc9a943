//! Packs: small blobs appended to large files, many uploads to one fsync.
//!
//! A blob file costs an inode, a directory entry and three fsyncs (content,
//! record, directory). A small blob instead becomes one *entry* appended to
//! the store path's active pack file (`<store path>/packs/NNNNNNNN.pack`),
//! its record and content side by side, and concurrent writers share one
//! `fdatasync` (group commit: whoever syncs covers every entry written
//! before the sync began). FastDFS's trunk files and Facebook's Haystack do
//! the same; file IDs keep their shape.
//!
//! Entry on disk:
//!
//! ```text
//! "CRNP" kind:u8 header_len:u32 content_len:u64 header_crc:u32   (21 bytes)
//! header (postcard `Header`)  content
//! ```
//!
//! `header_crc` covers kind, both lengths and the header, so a torn or
//! scribbled header is found; content is checked against the record's block
//! CRCs on every read, like a blob file. Kinds: a *put* (the blob, with its
//! record), a *delete* (a tombstone naming the pack of the put it kills)
//! and a *reserve* (a name handed to peers before the commit: one found
//! without its put after a crash is an upload that was never acknowledged).
//!
//! The index (file ID → where its put is) lives in memory and is rebuilt
//! at open by reading every entry's header; later entries win. Deleted and
//! replaced entries are dead space, reclaimed by [`Packs::compact`], which
//! copies what is live out of a sealed pack into the active one and then
//! removes the old file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::checksum::{self, BLOCK_SIZE};
use crate::error::{Error, Result};
use crate::layout::fsync_dir;
use crate::record::BlobRecord;

const MAGIC: &[u8; 4] = b"CRNP";
/// Bytes before an entry's header.
const PREFIX: u64 = 21;
/// Headers hold a record (4 bytes per 64 KiB block) and metadata.
const MAX_HEADER: u32 = 8 << 20;
/// Where the active pack is sealed and a new one started.
pub(crate) const DEFAULT_ROLL_AT: u64 = 256 << 20;
/// Zeros written ahead of the active pack's end at a time (see
/// [`Packs::append`]).
const ZEROED_AHEAD: u64 = 4 << 20;
/// A buffer of zeros to write them from.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put = 1,
    Delete = 2,
    Reserve = 3,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Put),
            2 => Some(Self::Delete),
            3 => Some(Self::Reserve),
            _ => None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    file_id: String,
    /// Puts only.
    record: Option<BlobRecord>,
    /// Deletes only: the pack the killed put sits in. A tombstone is kept
    /// by compaction only while that pack exists.
    dead_pack: Option<u32>,
}

/// Where a put entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pack: u32,
    entry: u64,
    header_len: u32,
    content_len: u64,
}

impl Loc {
    /// Offset of the content in the pack file.
    pub(crate) fn content_at(&self) -> u64 {
        self.entry + PREFIX + u64::from(self.header_len)
    }

    /// Bytes of content.
    pub(crate) fn size(&self) -> u64 {
        self.content_len
    }

    fn len(&self) -> u64 {
        PREFIX + u64::from(self.header_len) + self.content_len
    }
}

#[derive(Debug)]
struct PackFile {
    file: Arc<File>,
    /// Where the entries end.
    len: u64,
    /// Where the zeros written ahead of `len` end (the file's length).
    zeroed: u64,
    /// Bytes of entries still in the index.
    live: u64,
}

#[derive(Debug, Default)]
struct State {
    index: HashMap<String, Loc>,
    /// Names reserved and not yet committed or dropped.
    pending: HashSet<String>,
    packs: BTreeMap<u32, PackFile>,
    active: u32,
    /// Count of writes to the active pack, for group commit.
    written: u64,
}

/// The packs of one store path.
#[derive(Debug)]
pub(crate) struct Packs {
    dir: PathBuf,
    roll_at: u64,
    state: Mutex<State>,
    /// Writes known durable (see [`Packs::sync_through`]); its lock is held
    /// by whoever is syncing, so the others queue behind one fsync.
    synced: Mutex<u64>,
}

/// What opening found.
#[derive(Debug, Default)]
pub(crate) struct Opened {
    /// Reserved names with neither a put nor a delete after them.
    pub(crate) unfinished: Vec<String>,
    /// Blobs and their content bytes.
    pub(crate) files: u64,
    pub(crate) bytes: u64,
}

/// What one compaction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Pack files removed.
    pub packs: u64,
    /// Bytes of live entries copied out of them.
    pub copied: u64,
    /// Bytes given back to the file system.
    pub freed: u64,
}

fn pack_name(n: u32) -> String {
    format!("{n:08}.pack")
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An entry read back while scanning.
struct Scanned {
    kind: Kind,
    header: Header,
    loc: Loc,
}

impl Packs {
    /// Opens (creating) the packs under `dir`, rebuilding the index. A torn
    /// tail of the newest pack (writes never acknowledged) is cut off.
    pub(crate) fn open(dir: &Path, roll_at: u64) -> Result<(Self, Opened)> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let mut numbers: Vec<u32> = std::fs::read_dir(dir)
            .map_err(Error::io(dir))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".pack")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        let mut state = State::default();
        let mut reserved: HashSet<String> = HashSet::new();
        let last = numbers.last().copied();
        for &n in &numbers {
            let path = dir.join(pack_name(n));
            let file = OpenOptions::new().read(true).write(true).open(&path).map_err(Error::io(&path))?;
            // The newest pack is the only one that can hold entries never synced
            // (a pack is synced when it is sealed): their content is read
            // and checked too, since a torn one may sit on the zeros written
            // ahead of it and look whole.
            let (entries, good_len) = scan_file(&file, n, &path, Some(n) == last)?;
            let mut len = file.metadata().map_err(Error::io(&path))?.len();
            // Past the last good entry of the newest pack: the zeros written
            // ahead of it, kept for the appends to come, or a write torn by
            // a crash (never acknowledged), cut off so appends go on from
            // there. A sealed pack is left as it is.
            if good_len < len && Some(n) == last && !zeros_from(&file, good_len, len) {
                tracing::warn!(pack = %path.display(), at = good_len, "cutting a torn tail off the newest pack");
                file.set_len(good_len).map_err(Error::io(&path))?;
                file.sync_all().map_err(Error::io(&path))?;
                len = good_len;
            }
            state.packs.insert(n, PackFile { file: Arc::new(file), len: good_len, zeroed: len, live: 0 });
            for e in entries {
                match e.kind {
                    Kind::Put => {
                        reserved.remove(&e.header.file_id);
                        if let Some(old) = state.index.insert(e.header.file_id, e.loc) {
                            state.kill(old);
                        }
                        state.add_live(e.loc);
                    }
                    Kind::Delete => {
                        reserved.remove(&e.header.file_id);
                        if let Some(old) = state.index.remove(&e.header.file_id) {
                            state.kill(old);
                        }
                    }
                    Kind::Reserve => {
                        if !state.index.contains_key(&e.header.file_id) {
                            reserved.insert(e.header.file_id);
                        }
                    }
                }
            }
        }
        let packs = Self { dir: dir.to_path_buf(), roll_at, state: Mutex::new(state), synced: Mutex::new(0) };
        {
            let mut s = lock(&packs.state);
            match last {
                Some(n) => s.active = n,
                None => packs.start_pack(&mut s, 0)?,
            }
        }
        let opened = {
            let s = lock(&packs.state);
            Opened {
                unfinished: reserved.into_iter().collect(),
                files: s.index.len() as u64,
                bytes: s.index.values().map(|l| l.content_len).sum(),
            }
        };
        Ok((packs, opened))
    }

    fn start_pack(&self, s: &mut State, n: u32) -> Result<()> {
        let path = self.dir.join(pack_name(n));
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path).map_err(Error::io(&path))?;
        fsync_dir(&self.dir)?;
        s.packs.insert(n, PackFile { file: Arc::new(file), len: 0, zeroed: 0, live: 0 });
        s.active = n;
        Ok(())
    }

    /// Appends an entry to the active pack (not yet durable). Returns its
    /// place and the write's sequence number for [`Packs::sync_through`].
    ///
    /// Entries are written over zeros written ahead of them
    /// ([`ZEROED_AHEAD`] at a time): an `fdatasync` after an append that
    /// grows the file must also commit the file system's journal (the new
    /// size and blocks), one after an overwrite of blocks already written
    /// flushes the data only. On this machine's disk a 4 KiB write and
    /// `fdatasync` went from 2,750 to 4,100 a second, one at a time. Open
    /// tells the zeros from a torn entry (see [`Packs::open`]).
    fn append(&self, s: &mut State, bytes: &[u8], header_len: u32) -> Result<(Loc, u64)> {
        let active_len = s.packs.get(&s.active).map(|p| p.len).unwrap_or(0);
        if active_len > 0 && active_len + bytes.len() as u64 > self.roll_at {
            // Seal: the zeros ahead go, and what was written to the old pack
            // is made durable now, so group commit only ever has the active
            // file to sync.
            if let Some(p) = s.packs.get_mut(&s.active) {
                p.file.set_len(p.len).map_err(Error::io(&self.dir))?;
                p.zeroed = p.len;
                p.file.sync_data().map_err(Error::io(&self.dir))?;
            }
            let next = s.active + 1;
            self.start_pack(s, next)?;
        }
        let active = s.active;
        let pack = s.packs.get_mut(&active).ok_or_else(|| Error::io(&self.dir)(std::io::ErrorKind::NotFound.into()))?;
        let entry = pack.len;
        let end = entry + bytes.len() as u64;
        if end > pack.zeroed {
            // Zeros up to a whole step past the entry (never past where the
            // pack rolls, unless the entry itself goes further).
            let upto = (end + ZEROED_AHEAD).min(self.roll_at.max(end)).next_multiple_of(4096);
            let mut at = pack.zeroed.max(end);
            while at < upto {
                let n = (upto - at).min(ZEROS.len() as u64) as usize;
                if let Err(e) = pack.file.write_all_at(&ZEROS[..n], at) {
                    return Err(Error::io(self.dir.join(pack_name(active)))(e));
                }
                at += n as u64;
            }
            pack.zeroed = upto.max(pack.zeroed);
        }
        if let Err(e) = pack.file.write_all_at(bytes, entry) {
            // Whatever part landed is garbage past `len`, overwritten by
            // the next entry or cut off at open.
            return Err(Error::io(self.dir.join(pack_name(active)))(e));
        }
        pack.len += bytes.len() as u64;
        s.written += 1;
        let content_len = bytes.len() as u64 - PREFIX - u64::from(header_len);
        Ok((Loc { pack: active, entry, header_len, content_len }, s.written))
    }

    /// Returns once every write up to `seq` is on disk. One caller syncs
    /// for all who wrote before its sync began; the rest find their write
    /// covered when they get the lock.
    fn sync_through(&self, seq: u64) -> Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(|p| p.into_inner());
        if *synced >= seq {
            return Ok(());
        }
        let (file, upto) = {
            let s = lock(&self.state);
            (s.packs.get(&s.active).map(|p| p.file.clone()), s.written)
        };
        if let Some(f) = file {
            f.sync_data().map_err(Error::io(&self.dir))?;
        }
        *synced = upto;
        Ok(())
    }

    /// Where a blob's put is, if it is packed here.
    pub(crate) fn locate(&self, file_id: &str) -> Option<Loc> {
        lock(&self.state).index.get(file_id).copied()
    }

    /// Every packed blob's ID.
    pub(crate) fn ids(&self) -> Vec<String> {
        lock(&self.state).index.keys().cloned().collect()
    }

    /// Reserves a name: fails with `Exists` if it is taken, else writes a
    /// reserve entry (no fsync: it guards against a process crash, and a
    /// peer is told the name only after this write).
    pub(crate) fn reserve(&self, file_id: &str) -> Result<()> {
        let (bytes, header_len) =
            encode(Kind::Reserve, &Header { file_id: file_id.into(), record: None, dead_pack: None }, &[]);
        let mut s = lock(&self.state);
        if s.index.contains_key(file_id) || s.pending.contains(file_id) {
            return Err(Error::Exists(file_id.into()));
        }
        self.append(&mut s, &bytes, header_len)?;
        s.pending.insert(file_id.into());
        Ok(())
    }

    /// Forgets a reservation that will not be committed.
    pub(crate) fn unreserve(&self, file_id: &str) {
        lock(&self.state).pending.remove(file_id);
    }

    /// Writes a blob durably. `replace` allows an existing put of the same
    /// ID to be superseded (a repair); otherwise that is `Exists`.
    pub(crate) fn put(&self, file_id: &str, record: &BlobRecord, content: &[u8], replace: bool) -> Result<()> {
        let header = Header { file_id: file_id.into(), record: Some(record.clone()), dead_pack: None };
        let (bytes, header_len) = encode(Kind::Put, &header, content);
        let seq = {
            let mut s = lock(&self.state);
            if !replace && s.index.contains_key(file_id) {
                return Err(Error::Exists(file_id.into()));
            }
            let (loc, seq) = self.append(&mut s, &bytes, header_len)?;
            s.pending.remove(file_id);
            if let Some(old) = s.index.insert(file_id.into(), loc) {
                s.kill(old);
            }
            s.add_live(loc);
            seq
        };
        self.sync_through(seq)
    }

    /// Deletes a packed blob durably (a tombstone). `None` if it was not here.
    pub(crate) fn delete(&self, file_id: &str) -> Result<Option<Loc>> {
        let Some((old, seq)) = self.write_tombstone(file_id)? else {
            return Ok(None);
        };
        self.sync_through(seq)?;
        Ok(Some(old))
    }

    /// Deletes a packed blob at once (gone from the index, a tombstone
    /// written) without waiting for the tombstone to be durable: for a
    /// delete whose durable record is its binlog line, which the store
    /// applies again at open (see `store/deletes.rs`). The next sync of
    /// this pack covers the tombstone.
    pub(crate) fn delete_unsynced(&self, file_id: &str) -> Result<Option<Loc>> {
        Ok(self.write_tombstone(file_id)?.map(|(old, _)| old))
    }

    /// Makes every entry written so far durable.
    pub(crate) fn sync(&self) -> Result<()> {
        let written = lock(&self.state).written;
        self.sync_through(written)
    }

    fn write_tombstone(&self, file_id: &str) -> Result<Option<(Loc, u64)>> {
        let mut s = lock(&self.state);
        let Some(old) = s.index.get(file_id).copied() else {
            return Ok(None);
        };
        let header = Header { file_id: file_id.into(), record: None, dead_pack: Some(old.pack) };
        let (bytes, header_len) = encode(Kind::Delete, &header, &[]);
        let (_, seq) = self.append(&mut s, &bytes, header_len)?;
        s.index.remove(file_id);
        s.kill(old);
        Ok(Some((old, seq)))
    }

    /// The open pack file and record of a packed blob.
    pub(crate) fn open_blob(&self, file_id: &str) -> Result<Option<(Arc<File>, Loc, BlobRecord)>> {
        let (file, loc) = {
            let s = lock(&self.state);
            let Some(loc) = s.index.get(file_id).copied() else { return Ok(None) };
            match s.packs.get(&loc.pack) {
                Some(p) => (p.file.clone(), loc),
                None => return Ok(None),
            }
        };
        let record = self.read_record(&file, &loc, file_id)?;
        Ok(Some((file, loc, record)))
    }

    fn read_record(&self, file: &File, loc: &Loc, file_id: &str) -> Result<BlobRecord> {
        let mut buf = vec![0u8; loc.header_len as usize];
        file.read_exact_at(&mut buf, loc.entry + PREFIX).map_err(Error::io(self.dir.join(pack_name(loc.pack))))?;
        let corrupt = |reason: String| Error::CorruptRecord { file_id: file_id.into(), reason };
        let header: Header = postcard::from_bytes(&buf).map_err(|e| corrupt(e.to_string()))?;
        let record = header.record.ok_or_else(|| corrupt("pack entry without a record".into()))?;
        if header.file_id != file_id || record.size != loc.content_len {
            return Err(corrupt("pack entry does not match the index".into()));
        }
        Ok(record)
    }

    /// The file a packed blob sits in.
    #[cfg(test)]
    pub(crate) fn path_of(&self, loc: &Loc) -> PathBuf {
        self.dir.join(pack_name(loc.pack))
    }

    /// The content of a packed blob (for rewriting it, e.g. new metadata).
    pub(crate) fn read_content(&self, file: &File, loc: &Loc) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; loc.content_len as usize];
        file.read_exact_at(&mut buf, loc.content_at()).map_err(Error::io(self.dir.join(pack_name(loc.pack))))?;
        Ok(buf)
    }

    /// (pack files, bytes on disk, bytes of live entries).
    pub(crate) fn usage(&self) -> (u64, u64, u64) {
        let s = lock(&self.state);
        (s.packs.len() as u64, s.packs.values().map(|p| p.len).sum(), s.packs.values().map(|p| p.live).sum())
    }

    /// Rewrites every sealed pack whose dead share is at least `min_dead`
    /// (0.0–1.0): live puts, tombstones still needed and pending
    /// reservations are appended to the active pack, made durable, and the
    /// old file is removed.
    pub(crate) fn compact(&self, min_dead: f64) -> Result<Compacted> {
        let candidates: Vec<(u32, Arc<File>)> = {
            let s = lock(&self.state);
            s.packs
                .iter()
                .filter(|(n, p)| **n != s.active && p.len > 0 && (p.len - p.live) as f64 >= min_dead * p.len as f64)
                .map(|(n, p)| (*n, p.file.clone()))
                .collect()
        };
        let mut done = Compacted::default();
        for (n, file) in candidates {
            let path = self.dir.join(pack_name(n));
            let (entries, _) = scan_file(&file, n, &path, false)?;
            let mut last_seq = 0;
            for e in entries {
                let mut raw = vec![0u8; e.loc.len() as usize];
                file.read_exact_at(&mut raw, e.loc.entry).map_err(Error::io(&path))?;
                let mut s = lock(&self.state);
                let keep = match e.kind {
                    Kind::Put => s.index.get(&e.header.file_id) == Some(&e.loc),
                    Kind::Delete => e.header.dead_pack.is_some_and(|d| d != n && s.packs.contains_key(&d)),
                    Kind::Reserve => s.pending.contains(&e.header.file_id),
                };
                if !keep {
                    continue;
                }
                let (loc, seq) = self.append(&mut s, &raw, e.loc.header_len)?;
                if e.kind == Kind::Put {
                    s.index.insert(e.header.file_id, loc);
                    s.kill(e.loc);
                    s.add_live(loc);
                }
                done.copied += raw.len() as u64;
                last_seq = seq;
            }
            self.sync_through(last_seq)?;
            let mut s = lock(&self.state);
            if let Some(p) = s.packs.remove(&n) {
                done.freed += p.len;
            }
            std::fs::remove_file(&path).map_err(Error::io(&path))?;
            drop(s);
            fsync_dir(&self.dir)?;
            done.packs += 1;
        }
        Ok(done)
    }
}

impl State {
    fn kill(&mut self, loc: Loc) {
        if let Some(p) = self.packs.get_mut(&loc.pack) {
            p.live = p.live.saturating_sub(loc.len());
        }
    }

    fn add_live(&mut self, loc: Loc) {
        if let Some(p) = self.packs.get_mut(&loc.pack) {
            p.live += loc.len();
        }
    }
}

/// An entry's bytes, and the length of its header.
fn encode(kind: Kind, header: &Header, content: &[u8]) -> (Vec<u8>, u32) {
    // Encoding a plain struct into a Vec cannot fail.
    let h = postcard::to_allocvec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(PREFIX as usize + h.len() + content.len());
    out.extend_from_slice(MAGIC);
    out.push(kind as u8);
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    out.extend_from_slice(&(content.len() as u64).to_be_bytes());
    let mut sum = crc32fast::Hasher::new();
    sum.update(&out[4..17]);
    sum.update(&h);
    out.extend_from_slice(&sum.finalize().to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(content);
    (out, h.len() as u32)
}

/// Whether bytes `[from, to)` of `file` are all zeros (what a pack holds
/// ahead of its entries); a read error counts as not.
fn zeros_from(file: &File, from: u64, to: u64) -> bool {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let n = (to - at).min(buf.len() as u64) as usize;
        if file.read_exact_at(&mut buf[..n], at).is_err() || buf[..n].iter().any(|&b| b != 0) {
            return false;
        }
        at += n as u64;
    }
    true
}

/// Reads every entry's header of a pack. Returns the entries and where the
/// last good one ends (less than the file's length when its tail is torn).
/// A damaged entry in the middle does not end the scan: the entries after
/// it are found again by their magic and header CRC, so one bad header
/// costs one blob, not the rest of the pack.
/// With `check_content`, a put whose content does not match its record's
/// CRCs counts as damaged too.
fn scan_file(file: &File, pack: u32, path: &Path, check_content: bool) -> Result<(Vec<Scanned>, u64)> {
    let len = file.metadata().map_err(Error::io(path))?.len();
    let mut rd = BufReader::with_capacity(1 << 20, file);
    rd.seek(SeekFrom::Start(0)).map_err(Error::io(path))?;
    let mut out = Vec::new();
    let (mut at, mut good_end) = (0u64, 0u64);
    while at + PREFIX <= len {
        match read_entry(&mut rd, at, len, pack, check_content) {
            Some(e) => {
                at = e.loc.entry + e.loc.len();
                good_end = at;
                out.push(e);
            }
            None => match find_entry(file, at + 1, len, pack, check_content) {
                Some(next) => {
                    tracing::error!(pack = %path.display(), from = at, to = next, "skipped damaged bytes in a pack; what they held comes back from peers");
                    at = next;
                    rd.seek(SeekFrom::Start(at)).map_err(Error::io(path))?;
                }
                None => break,
            },
        }
    }
    Ok((out, good_end))
}

/// The entry at `at`, read through `rd` (which stands at `at`), if it is
/// whole and its header checks out; `rd` is then left at the entry's end.
fn read_entry(rd: &mut BufReader<&File>, at: u64, len: u64, pack: u32, check_content: bool) -> Option<Scanned> {
    let mut prefix = [0u8; PREFIX as usize];
    rd.read_exact(&mut prefix).ok()?;
    if &prefix[..4] != MAGIC {
        return None;
    }
    let kind = Kind::from_byte(prefix[4])?;
    let header_len = u32::from_be_bytes([prefix[5], prefix[6], prefix[7], prefix[8]]);
    let mut cl = [0u8; 8];
    cl.copy_from_slice(&prefix[9..17]);
    let content_len = u64::from_be_bytes(cl);
    let crc = u32::from_be_bytes([prefix[17], prefix[18], prefix[19], prefix[20]]);
    let entry_end = at.saturating_add(PREFIX).saturating_add(u64::from(header_len)).saturating_add(content_len);
    // Bound both lengths by what the file holds before allocating.
    if header_len > MAX_HEADER || entry_end > len {
        return None;
    }
    let mut h = vec![0u8; header_len as usize];
    rd.read_exact(&mut h).ok()?;
    let mut sum = crc32fast::Hasher::new();
    sum.update(&prefix[4..17]);
    sum.update(&h);
    if sum.finalize() != crc {
        return None;
    }
    let header = postcard::from_bytes::<Header>(&h).ok()?;
    if kind == Kind::Put && header.record.as_ref().map(|r| r.size) != Some(content_len) {
        return None;
    }
    match (&header.record, check_content) {
        (Some(record), true) => {
            let mut block = vec![0u8; content_len.min(BLOCK_SIZE) as usize];
            let mut left = content_len;
            for &crc in &record.blocks {
                let n = left.min(BLOCK_SIZE) as usize;
                rd.read_exact(&mut block[..n]).ok()?;
                if checksum::crc32(&block[..n]) != crc {
                    return None;
                }
                left -= n as u64;
            }
            if left > 0 {
                return None;
            }
        }
        _ => rd.seek_relative(i64::try_from(content_len).ok()?).ok()?,
    }
    Some(Scanned { kind, header, loc: Loc { pack, entry: at, header_len, content_len } })
}

/// The offset of the next whole entry at or after `from`: the next magic
/// whose entry checks out.
fn find_entry(file: &File, from: u64, len: u64, pack: u32, check_content: bool) -> Option<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = from;
    while pos + PREFIX <= len {
        let n = (len - pos).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], pos).ok()?;
        let mut i = 0;
        while let Some(k) = buf[i..n].windows(4).position(|w| w == MAGIC) {
            let cand = pos + (i + k) as u64;
            let mut rd = BufReader::with_capacity(4096, file);
            if rd.seek(SeekFrom::Start(cand)).is_ok() && read_entry(&mut rd, cand, len, pack, check_content).is_some() {
                return Some(cand);
            }
            i += k + 1;
        }
        // Overlap by three bytes so a magic across the boundary is seen.
        pos += (n as u64).saturating_sub(3).max(1);
    }
    None
}

#[cfg(test)]
#[path = "pack_tests.rs"]
mod tests;
