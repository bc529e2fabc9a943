//! File IDs in the FastDFS shape: `<group>/M<store path>/<XX>/<YY>/<name>`.
//!
//! The name is 27 characters of URL-safe base64 over 20 bytes (source node,
//! creation time, size, CRC32), then `6 - len(ext)` random digits (7 without
//! an extension), an optional slave prefix, and `.ext`. The layout is
//! FastDFS's own, so IDs made by either system parse in both; see
//! `docs/formats/file-id.md`.
//!
//! Everything from outside passes through [`FileId::parse`] before it comes
//! near a disk path: it admits only the characters and lengths that the
//! layout allows, so no `..`, `/` or absolute path can get through.

use std::fmt;
use std::str::FromStr;

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use rand::Rng;

/// Bit set in the size field of an appender blob's name (FastDFS's
/// `INFINITE_FILE_SIZE`): the size is not fixed, ask a server.
pub const APPENDER_FLAG: u64 = 1 << 58;
/// Longest group name (FastDFS: 16 bytes on the wire).
pub const MAX_GROUP_LEN: usize = 16;
/// Longest extension, without the dot.
pub const MAX_EXT_LEN: usize = 6;
/// Longest slave prefix.
pub const MAX_PREFIX_LEN: usize = 16;
const ENCODED_LEN: usize = 27;

const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Why a file ID was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid file ID {id:?}: {reason}")]
pub struct BadFileId {
    /// The text that was refused (cut to 128 characters).
    pub id: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A validated file ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    group: String,
    store_path: u8,
    dir1: u8,
    dir2: u8,
    name: String,
}

/// What a name encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameInfo {
    /// Numeric ID of the node that created the blob.
    pub source_node: u32,
    /// Creation time, Unix seconds.
    pub created: u32,
    /// The raw 64-bit size field (flags and random bits included).
    pub size_field: u64,
    /// CRC32 of the content at creation.
    pub crc32: u32,
}

impl NameInfo {
    /// True for appender blobs.
    pub fn is_appender(&self) -> bool {
        self.size_field & APPENDER_FLAG != 0
    }

    /// The size at creation, where the name fixes it (not for appenders).
    pub fn size(&self) -> Option<u64> {
        if self.is_appender() {
            None
        } else if self.size_field & 0x8000_0000_0000_0000 != 0 {
            Some(self.size_field & 0xFFFF_FFFF)
        } else {
            Some(self.size_field)
        }
    }
}

fn bad(id: &str, reason: &'static str) -> BadFileId {
    BadFileId { id: id.chars().take(128).collect(), reason }
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// The characters FastDFS takes in an extension and a slave prefix (its
/// `IS_FILENAME_CHAR`): letters, digits, `-`, `_` and `.`.
fn is_suffix_char(c: u8) -> bool {
    is_name_char(c) || c == b'.'
}

/// The store keeps each blob's record beside it as `<name>.rec`, so no
/// blob name may end like one: a blob `X.rec` would be taken for the
/// record of `X`.
const RECORD_SUFFIX: &str = ".rec";

/// Checks a group name: 1–16 of `[A-Za-z0-9_-]`.
pub fn validate_group(group: &str) -> Result<(), &'static str> {
    if group.is_empty() || group.len() > MAX_GROUP_LEN {
        return Err("group name must be 1 to 16 characters");
    }
    if !group.bytes().all(is_name_char) {
        return Err("group name may hold only letters, digits, '_' and '-'");
    }
    Ok(())
}

/// Checks the dots of an extension or prefix: none at either end of an
/// extension, never two in a row, so that a name never holds `..` and an
/// extension is never only dots.
fn dots_ok(s: &str, ends_too: bool) -> bool {
    !s.contains("..") && (!ends_too || !(s.starts_with('.') || s.ends_with('.')))
}

/// Checks an extension: 0–6 of `[A-Za-z0-9_.-]`, as FastDFS takes them
/// (its clients send two-part extensions such as `tar.gz`), with no dot at
/// either end, no `..`, and not ending like a store record (`rec`).
pub fn validate_ext(ext: &str) -> Result<(), &'static str> {
    if ext.len() > MAX_EXT_LEN || !ext.bytes().all(is_suffix_char) {
        return Err("extension must be at most 6 letters, digits, '-', '_' or '.'");
    }
    if !dots_ok(ext, true) {
        return Err("extension may not start or end with a dot, nor hold '..'");
    }
    if ext == &RECORD_SUFFIX[1..] || ext.ends_with(RECORD_SUFFIX) {
        return Err("extension 'rec' is kept for the store's records");
    }
    Ok(())
}

/// Checks a slave prefix: 1–16 of `[A-Za-z0-9_.-]` (FastDFS refuses an
/// empty one), with no `..`.
pub fn validate_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN || !prefix.bytes().all(is_suffix_char) {
        return Err("slave prefix must be 1 to 16 letters, digits, '-', '_' or '.'");
    }
    if !dots_ok(prefix, false) {
        return Err("slave prefix may not hold '..'");
    }
    Ok(())
}

fn parse_hex_byte(s: &str) -> Option<u8> {
    if s.len() != 2 || !s.bytes().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)) {
        return None;
    }
    u8::from_str_radix(s, 16).ok()
}

/// Where the extension of a name starts, as FastDFS finds it: the first
/// dot among the name's last 7 characters (a dot and up to 6 more), after
/// the 27 encoded ones.
fn ext_dot(name: &str) -> Option<usize> {
    let from = name.len().saturating_sub(MAX_EXT_LEN + 1).max(ENCODED_LEN);
    name.get(from..)?.find('.').map(|d| from + d)
}

/// Whether the part after the 27 encoded characters is what FastDFS makes:
/// a plain name's (`6 - len(ext)` digits, a dot and the extension, or 7
/// digits), or a slave's (the master's name without its extension, so up
/// to 7 digits, then a prefix, then an optional extension). A slave name
/// does not tell the master's extension, so any such split will do.
fn tail_ok(tail: &str) -> bool {
    let b = tail.as_bytes();
    // 7 characters: the digits fill what the extension leaves of 6.
    let plain = tail.len() == 7
        && match tail.find('.') {
            None => b.iter().all(u8::is_ascii_digit),
            Some(dot) => {
                b[..dot].iter().all(u8::is_ascii_digit)
                    && dot + 1 < tail.len()
                    && validate_ext(&tail[dot + 1..]).is_ok()
            }
        };
    if plain {
        return true;
    }
    let digits = b.iter().take(7).take_while(|c| c.is_ascii_digit()).count();
    // The extension starts at one of the dots among the last 7 characters,
    // or there is none.
    let ext_starts = (0..tail.len()).filter(|&i| b[i] == b'.' && tail.len() - i <= MAX_EXT_LEN + 1);
    let mut splits = std::iter::once(tail.len()).chain(ext_starts);
    splits.any(|end| {
        let ext = tail.get(end + 1..).unwrap_or("");
        (end == tail.len() || (validate_ext(ext).is_ok() && !ext.is_empty()))
            && (0..=digits).any(|d| d < end && validate_prefix(&tail[d..end]).is_ok())
    })
}

/// Checks a name: 27 base64 characters, then what [`tail_ok`] takes, with
/// no `..`, no dot at the end and no record's suffix. It is one path
/// component that starts with a letter, digit, `-` or `_`, so it can never
/// be `.`, `..` or leave its directory.
fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.len() <= ENCODED_LEN || name.len() > ENCODED_LEN + 7 + MAX_PREFIX_LEN + 1 + MAX_EXT_LEN {
        return Err("file name has the wrong length");
    }
    let bytes = name.as_bytes();
    if !bytes[..ENCODED_LEN].iter().all(|&c| is_name_char(c)) {
        return Err("file name does not start with 27 base64 characters");
    }
    let tail = &name[ENCODED_LEN..];
    if !tail.bytes().all(is_suffix_char) {
        return Err("file name may hold only letters, digits, '-', '_' and '.'");
    }
    if tail.contains("..") || tail.ends_with('.') {
        return Err("file name may not hold '..' nor end with a dot");
    }
    if name.ends_with(RECORD_SUFFIX) {
        return Err("file name may not end like a store record ('.rec')");
    }
    if !tail_ok(tail) {
        return Err("file name lacks its random digits, or its prefix or extension is malformed");
    }
    Ok(())
}

impl FileId {
    /// Parses and validates a full file ID.
    pub fn parse(s: &str) -> Result<Self, BadFileId> {
        if s.len() > 128 {
            return Err(bad(s, "too long"));
        }
        if s.starts_with('/') {
            return Err(bad(s, "absolute paths are not file IDs"));
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() != 5 {
            return Err(bad(s, "expected group/Mxx/XX/YY/name"));
        }
        if parts.iter().any(|p| *p == ".." || *p == ".") {
            return Err(bad(s, "'.' and '..' are not allowed"));
        }
        validate_group(parts[0]).map_err(|r| bad(s, r))?;
        let store_path = parts[1]
            .strip_prefix('M')
            .and_then(parse_hex_byte)
            .ok_or_else(|| bad(s, "store path must be 'M' and two upper-case hex digits"))?;
        let dir1 = parse_hex_byte(parts[2]).ok_or_else(|| bad(s, "directory must be two upper-case hex digits"))?;
        let dir2 = parse_hex_byte(parts[3]).ok_or_else(|| bad(s, "directory must be two upper-case hex digits"))?;
        validate_name(parts[4]).map_err(|r| bad(s, r))?;
        Ok(Self { group: parts[0].to_string(), store_path, dir1, dir2, name: parts[4].to_string() })
    }

    /// Builds an ID from parts that must already be valid.
    pub fn new(group: &str, store_path: u8, dir1: u8, dir2: u8, name: &str) -> Result<Self, BadFileId> {
        Self::parse(&format!("{group}/M{store_path:02X}/{dir1:02X}/{dir2:02X}/{name}"))
    }

    /// The group the blob lives in.
    pub fn group(&self) -> &str {
        &self.group
    }
    /// Index of the store path (disk) on every member of the group.
    pub fn store_path(&self) -> u8 {
        self.store_path
    }
    /// First-level directory.
    pub fn dir1(&self) -> u8 {
        self.dir1
    }
    /// Second-level directory.
    pub fn dir2(&self) -> u8 {
        self.dir2
    }
    /// The file name inside its directory.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The ID without its group (`M00/XX/YY/name`), as FastDFS sends it.
    pub fn path_in_group(&self) -> String {
        format!("M{:02X}/{:02X}/{:02X}/{}", self.store_path, self.dir1, self.dir2, self.name)
    }

    /// Decodes what the name encodes.
    pub fn info(&self) -> NameInfo {
        let mut raw = [0u8; 20];
        // validate_name checked the alphabet and length, so this decodes; a
        // failure would leave zeros, which reads as "unknown source".
        let _ = ENGINE.decode_slice(&self.name.as_bytes()[..ENCODED_LEN], &mut raw);
        NameInfo {
            source_node: u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]),
            created: u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]),
            size_field: u64::from_be_bytes([raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]]),
            crc32: u32::from_be_bytes([raw[16], raw[17], raw[18], raw[19]]),
        }
    }

    /// The extension, if the name has one.
    pub fn ext(&self) -> &str {
        ext_dot(&self.name).map(|d| &self.name[d + 1..]).unwrap_or("")
    }

    /// The ID of a slave file of this master, named as FastDFS names it
    /// (`fdfs_gen_slave_filename`): the master's name without its
    /// extension, then the prefix, then `.ext` if `ext` is not empty (an
    /// empty one gives no extension, not the master's). FastDFS refuses the
    /// prefix `-m` without an extension (the name of a metadata file).
    pub fn slave(&self, prefix: &str, ext: &str) -> Result<FileId, BadFileId> {
        validate_prefix(prefix).map_err(|r| bad(prefix, r))?;
        validate_ext(ext).map_err(|r| bad(ext, r))?;
        if ext.is_empty() && prefix == "-m" {
            return Err(bad(prefix, "the prefix '-m' needs an extension (FastDFS's metadata files end in '-m')"));
        }
        let stem = &self.name[..ext_dot(&self.name).unwrap_or(self.name.len())];
        let name = if ext.is_empty() { format!("{stem}{prefix}") } else { format!("{stem}{prefix}.{ext}") };
        FileId::new(&self.group, self.store_path, self.dir1, self.dir2, &name)
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.path_in_group())
    }
}

impl FromStr for FileId {
    type Err = BadFileId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FileId::parse(s)
    }
}

/// Makes a new blob name. `size` and `crc32` describe the content at
/// creation; the random bits make names unique without coordination.
pub fn generate_name(source_node: u32, created: u32, size: u64, crc32: u32, appender: bool, ext: &str) -> String {
    let mut rng = rand::thread_rng();
    let size_field = if appender {
        APPENDER_FLAG | rng.gen::<u32>() as u64
    } else if size < (1 << 32) {
        ((((rng.gen::<u32>() & 0x7F_FFFF) | 0x8000_0000) as u64) << 32) | size
    } else {
        size
    };
    let mut raw = [0u8; 20];
    raw[0..4].copy_from_slice(&source_node.to_le_bytes());
    raw[4..8].copy_from_slice(&created.to_be_bytes());
    raw[8..16].copy_from_slice(&size_field.to_be_bytes());
    raw[16..20].copy_from_slice(&crc32.to_be_bytes());
    let mut name = ENGINE.encode(raw);
    let digits = if ext.is_empty() { 7 } else { MAX_EXT_LEN - ext.len() };
    for _ in 0..digits {
        name.push(char::from(b'0' + rng.gen_range(0..10u8)));
    }
    if !ext.is_empty() {
        name.push('.');
        name.push_str(ext);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_fastdfs_example() {
        let id = FileId::parse("group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin").unwrap();
        let info = id.info();
        assert_eq!(info.source_node, 100001);
        assert_eq!(info.created, 1795258821);
        assert_eq!(info.size(), Some(100000));
        assert_eq!(info.crc32, 0xce2703a8);
        assert_eq!(id.ext(), "bin");
        assert_eq!(id.path_in_group(), "M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin");
    }

    #[test]
    fn generated_names_round_trip() {
        for (ext, appender, size) in
            [("jpg", false, 4096u64), ("", false, 0), ("tar", true, 0), ("bin", false, 5 << 30)]
        {
            let name = generate_name(0xABCDEF, 1_700_000_000, size, 0xDEADBEEF, appender, ext);
            let id = FileId::new("g1", 3, 0x0A, 0xFF, &name).unwrap();
            assert_eq!(id.to_string(), format!("g1/M03/0A/FF/{name}"));
            let info = id.info();
            assert_eq!(info.source_node, 0xABCDEF);
            assert_eq!(info.created, 1_700_000_000);
            assert_eq!(info.crc32, 0xDEADBEEF);
            assert_eq!(info.is_appender(), appender);
            if !appender {
                assert_eq!(info.size(), Some(size));
            }
            assert_eq!(id.ext(), ext);
        }
    }

    #[test]
    fn slave_names_follow_fastdfs() {
        let m = FileId::parse("group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin").unwrap();
        let s = m.slave("_150x150", "bin").unwrap();
        assert_eq!(s.name(), "oYYBAGsBecWACOG5AAGGoM4nA6g482_150x150.bin");
        let s = m.slave("-t", "jpg").unwrap();
        assert_eq!(s.name(), "oYYBAGsBecWACOG5AAGGoM4nA6g482-t.jpg");
        assert!(m.slave("../x", "").is_err());
    }

    #[test]
    fn a_slave_without_extension_has_none() {
        // FastDFS: `fdfs_gen_slave_filename` with an empty extension gives
        // the master's name minus its extension, then the prefix.
        let m = FileId::parse("group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.txt").unwrap();
        let s = m.slave("_v2", "").unwrap();
        assert_eq!(s.name(), "oYYBAGsBecWACOG5AAGGoM4nA6g482_v2");
        assert_eq!(s.ext(), "");
        assert_eq!(FileId::parse(&s.to_string()).unwrap(), s);
        // `-m` without an extension is a FastDFS metadata file's name.
        assert!(m.slave("-m", "").is_err());
        assert_eq!(m.slave("-m", "jpg").unwrap().name(), "oYYBAGsBecWACOG5AAGGoM4nA6g482-m.jpg");
        // An empty prefix is refused, as FastDFS's storage refuses it.
        assert!(m.slave("", "png").is_err());
    }

    #[test]
    fn fastdfs_extension_and_prefix_characters_are_taken() {
        // Two-part extensions (FastDFS clients send `tar.gz` for
        // `backup.tar.gz`), '_' and '-' in them, dots in prefixes.
        for ext in ["tar.gz", "c_d", "a-b", "a.b.c", "x"] {
            let name = generate_name(7, 1_700_000_000, 10, 1, false, ext);
            let id = FileId::new("g1", 0, 1, 2, &name).unwrap_or_else(|e| panic!("{ext}: {e}"));
            assert_eq!(id.ext(), ext, "{name}");
            assert_eq!(FileId::parse(&id.to_string()).unwrap(), id);
            assert_eq!(id.name().len(), 27 + 7, "{name}");
            // Its slaves, with and without an extension of their own.
            for (prefix, sext) in [("a.b", ""), ("_t", "png"), ("x", "tar.gz"), ("-15x", "c_d")] {
                let s = id.slave(prefix, sext).unwrap_or_else(|e| panic!("{ext} {prefix} {sext}: {e}"));
                assert_eq!(s.ext(), if sext.is_empty() { "b" } else { sext }, "{s}");
                assert_eq!(FileId::parse(&s.to_string()).unwrap(), s);
            }
        }
        let m = FileId::parse("group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g.tar.gz").unwrap();
        assert_eq!(m.ext(), "tar.gz");
        assert_eq!(m.slave("_t", "").unwrap().name(), "oYYBAGsBecWACOG5AAGGoM4nA6g_t");
        // What stays refused: dots only, '..', a dot at either end of an
        // extension, '/', the store's record suffix, over 6 characters.
        for ext in ["..", ".", "...", "a..b", ".gz", "gz.", "a/b", "rec", "x.rec", "tar.gzz", "a b"] {
            assert!(validate_ext(ext).is_err(), "extension {ext:?} was taken");
        }
        for prefix in ["", "..", "a..b", "a/b", "x y", "abcdefghijklmnopq"] {
            assert!(validate_prefix(prefix).is_err(), "prefix {prefix:?} was taken");
        }
        assert!(validate_prefix("a.b").is_ok() && validate_prefix(".x").is_ok() && validate_prefix("c_d-e").is_ok());
    }

    #[test]
    fn hostile_ids_are_refused() {
        let good = "group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin";
        assert!(FileId::parse(good).is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "/group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin",
            "group1/M00/../00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin",
            "group1/M00/00/00/../../../../etc/passwd",
            "group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g",
            "group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482abcdefghijklmnopqrs.bin",
            "group1/M0/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin",
            "group1/M0G/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin",
            "group1/m00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin",
            "group1/M00/0a/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin",
            "group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.b/n",
            "group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.",
            "gr..p/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin",
            "group_name_far_too_long/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin",
            "group1/M00/00/00/oYYB+GsBecWACOG5AAGGoM4nA6g482.bin",
            "group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.b~n",
            "group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g48..bin",
            "group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g4.....",
            "group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.rec",
            "group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g4_t.x.rec",
            "group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482/../x",
            "group1/M00/00/00/oYYBAGsBecWACOG5AAGGoM4nA6g482.bin/x",
        ] {
            assert!(FileId::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
