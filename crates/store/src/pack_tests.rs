//! Unit tests of the packs (`pack.rs`): entries surviving a reopening,
//! torn tails and damaged headers, the zeros ahead, and compaction.

use super::*;
use crate::checksum;

fn record(content: &[u8]) -> BlobRecord {
    let mut s = checksum::Summer::default();
    s.update(content);
    let (size, crc32, blocks) = s.finish();
    BlobRecord { size, crc32, created: 1, source_node: 7, appender: false, blocks, meta: vec![] }
}

fn content_of(p: &Packs, id: &str) -> Vec<u8> {
    let (f, loc, _) = p.open_blob(id).unwrap().unwrap();
    p.read_content(&f, &loc).unwrap()
}

#[test]
fn puts_deletes_and_reserves_survive_reopening_and_a_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let good = {
        let (p, o) = Packs::open(dir.path(), DEFAULT_ROLL_AT).unwrap();
        assert_eq!(o.files, 0);
        for i in 0..10u8 {
            let c = vec![i; 1000 + i as usize];
            p.put(&format!("id{i}"), &record(&c), &c, false).unwrap();
        }
        assert!(matches!(p.put("id3", &record(b"x"), b"x", false), Err(Error::Exists(_))));
        assert_eq!(p.delete("id4").unwrap().map(|l| l.content_len), Some(1004));
        assert_eq!(p.delete("id4").unwrap(), None);
        p.reserve("r1").unwrap();
        p.reserve("r2").unwrap();
        assert!(matches!(p.reserve("r2"), Err(Error::Exists(_))));
        p.put("r2", &record(b"late"), b"late", false).unwrap();
        p.usage().1
    };
    let pack = dir.path().join(pack_name(0));
    // The file goes on past the entries with zeros, which a reopening keeps.
    let zeroed = std::fs::metadata(&pack).unwrap().len();
    assert!(zeroed > good);
    let (p, o) = Packs::open(dir.path(), DEFAULT_ROLL_AT).unwrap();
    assert_eq!((o.files, p.usage().1), (10, good));
    assert_eq!(std::fs::metadata(&pack).unwrap().len(), zeroed, "zeros ahead kept");
    drop(p);
    // a write torn by a crash: half an entry at the end of the entries
    let torn =
        encode(Kind::Put, &Header { file_id: "t".into(), record: Some(record(b"abc")), dead_pack: None }, b"abc").0;
    let f = OpenOptions::new().write(true).open(&pack).unwrap();
    f.write_all_at(&torn[..torn.len() - 2], good).unwrap();
    drop(f);
    let (p, o) = Packs::open(dir.path(), DEFAULT_ROLL_AT).unwrap();
    assert_eq!(std::fs::metadata(&pack).unwrap().len(), good, "torn tail cut");
    assert_eq!(o.files, 10, "9 puts and r2");
    assert_eq!(o.unfinished, vec!["r1".to_string()]);
    assert_eq!(content_of(&p, "id7"), vec![7u8; 1007]);
    assert!(p.locate("id4").is_none());
    assert_eq!(content_of(&p, "r2"), b"late");
    // writes after the cut land where the torn entry was
    p.put("after", &record(b"zz"), b"zz", false).unwrap();
    drop(p);
    let (p, _) = Packs::open(dir.path(), DEFAULT_ROLL_AT).unwrap();
    assert_eq!(content_of(&p, "after"), b"zz");
}

#[test]
fn entries_go_over_the_zeros_ahead_across_reopenings_and_a_sealed_pack_ends_at_its_entries() {
    let dir = tempfile::tempdir().unwrap();
    let roll_at = 64 * 1024;
    let pack0 = dir.path().join(pack_name(0));
    {
        let (p, _) = Packs::open(dir.path(), roll_at).unwrap();
        p.put("a", &record(&[1; 1000]), &[1; 1000], false).unwrap();
        // Zeros ahead, but not past where the pack rolls.
        assert_eq!(std::fs::metadata(&pack0).unwrap().len(), roll_at);
    }
    {
        let (p, o) = Packs::open(dir.path(), roll_at).unwrap();
        assert_eq!(o.files, 1);
        p.put("b", &record(&[2; 1000]), &[2; 1000], false).unwrap();
    }
    let (p, o) = Packs::open(dir.path(), roll_at).unwrap();
    assert_eq!(o.files, 2);
    assert_eq!((content_of(&p, "a"), content_of(&p, "b")), (vec![1; 1000], vec![2; 1000]));
    // Fill pack 0 until the next put starts pack 1: pack 0 is cut to
    // its last entry, whose content ends in a non-zero byte.
    let mut i = 0;
    while !dir.path().join(pack_name(1)).exists() {
        p.put(&format!("c{i}"), &record(&[3; 5000]), &[3; 5000], false).unwrap();
        i += 1;
    }
    let sealed = std::fs::read(&pack0).unwrap();
    assert!(sealed.len() as u64 <= roll_at && sealed.last() == Some(&3), "{} bytes", sealed.len());
    drop(p);
    let (p, o) = Packs::open(dir.path(), roll_at).unwrap();
    assert_eq!(o.files, 2 + i);
    assert_eq!(content_of(&p, &format!("c{}", i - 1)), vec![3; 5000]);
}

#[test]
fn compaction_keeps_live_blobs_and_tombstones_and_frees_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _) = Packs::open(dir.path(), 64 * 1024).unwrap();
    for i in 0..100u32 {
        let c = vec![i as u8; 3000];
        p.put(&format!("id{i}"), &record(&c), &c, false).unwrap();
    }
    for i in (0..100u32).filter(|i| i % 4 != 0) {
        p.delete(&format!("id{i}")).unwrap();
    }
    let (packs_before, disk_before, live_before) = p.usage();
    assert!(packs_before > 3, "{packs_before} packs");
    let done = p.compact(0.5).unwrap();
    assert!(done.packs >= 3, "{done:?}");
    let (_, disk_after, live_after) = p.usage();
    assert!(disk_after < disk_before / 2, "{disk_before} -> {disk_after}");
    assert!(live_after <= live_before + 1, "{live_before} -> {live_after}");
    for i in 0..100u32 {
        let id = format!("id{i}");
        if i % 4 == 0 {
            assert_eq!(content_of(&p, &id), vec![i as u8; 3000]);
        } else {
            assert!(p.locate(&id).is_none());
        }
    }
    drop(p);
    // Reopened, the same blobs are there and none of the deleted ones
    // came back (their tombstones were kept while their puts existed).
    let (p, o) = Packs::open(dir.path(), 64 * 1024).unwrap();
    assert_eq!(o.files, 25);
    for i in 0..100u32 {
        assert_eq!(p.locate(&format!("id{i}")).is_some(), i % 4 == 0, "id{i}");
    }
}

#[test]
fn a_damaged_header_costs_its_own_entry_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut entry_at = Vec::new();
    {
        let (p, _) = Packs::open(dir.path(), DEFAULT_ROLL_AT).unwrap();
        for i in 0..5u8 {
            p.put(&format!("id{i}"), &record(&[i; 5000]), &[i; 5000], false).unwrap();
            entry_at.push(p.locate(&format!("id{i}")).unwrap().entry);
        }
    }
    let pack = dir.path().join(pack_name(0));
    let f = OpenOptions::new().read(true).write(true).open(&pack).unwrap();
    // A flipped bit in the third entry's header.
    let mut b = [0u8];
    f.read_exact_at(&mut b, entry_at[2] + PREFIX + 2).unwrap();
    f.write_all_at(&[b[0] ^ 4], entry_at[2] + PREFIX + 2).unwrap();
    drop(f);
    let len = std::fs::metadata(&pack).unwrap().len();
    let (p, o) = Packs::open(dir.path(), DEFAULT_ROLL_AT).unwrap();
    assert_eq!(o.files, 4);
    for i in [0u8, 1, 3, 4] {
        assert_eq!(content_of(&p, &format!("id{i}")), vec![i; 5000], "id{i} after the damage");
    }
    assert!(p.locate("id2").is_none());
    assert_eq!(std::fs::metadata(&pack).unwrap().len(), len, "nothing cut: the damage is not a torn tail");
}

#[test]
fn damaged_headers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (p, _) = Packs::open(dir.path(), DEFAULT_ROLL_AT).unwrap();
        for i in 0..5u8 {
            p.put(&format!("id{i}"), &record(&[i; 100]), &[i; 100], false).unwrap();
        }
    }
    let pack = dir.path().join(pack_name(0));
    let clean = std::fs::read(&pack).unwrap();
    let mut rng = rand::thread_rng();
    for _ in 0..300 {
        let mut bytes = clean.clone();
        let at = rand::Rng::gen_range(&mut rng, 0..bytes.len());
        bytes[at] ^= 1 << rand::Rng::gen_range(&mut rng, 0..8);
        let f = File::create(&pack).unwrap();
        f.write_all_at(&bytes, 0).unwrap();
        drop(f);
        let (p, o) = Packs::open(dir.path(), DEFAULT_ROLL_AT).unwrap();
        assert!(o.files <= 5);
        drop(p);
    }
}
