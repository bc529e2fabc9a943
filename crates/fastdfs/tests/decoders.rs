//! Fuzzing every FastDFS decoder with arbitrary bytes (bounded runs, in the
//! test command): none may panic, and what they accept must be sound.

use cairn_fastdfs::request::{body_limit, decode_meta, decode_storage, decode_tracker, has_content, name_len};
use cairn_fastdfs::wire::Header;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("CAIRN_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Commands worth hitting often (known ones), plus any byte.
fn command() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(vec![
            11u8, 12, 13, 14, 15, 21, 22, 23, 24, 34, 36, 38, 75, 82, 90, 91, 92, 93, 95, 96, 97, 98, 101, 102, 103,
            104, 105, 106, 107, 111
        ]),
        any::<u8>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn storage_decoder_never_panics(cmd in command(), extra in any::<u64>(), body in prop::collection::vec(any::<u8>(), 0..400)) {
        let pkg_len = if extra % 2 == 0 { body.len() as u64 } else { extra };
        if let Ok(req) = decode_storage(cmd, pkg_len, &body) {
            // Whatever it accepts fits the bounds the listener reads with.
            prop_assert!(body_limit(cmd).is_some());
            let _ = format!("{req:?}");
        }
        if has_content(cmd) {
            if let Ok(n) = name_len(cmd, &body) {
                prop_assert!(n <= cairn_fastdfs::wire::MAX_FILENAME);
            }
        }
    }

    #[test]
    fn tracker_decoder_never_panics(cmd in command(), body in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_tracker(cmd, &body);
    }

    #[test]
    fn metadata_decoder_never_panics(body in prop::collection::vec(prop_oneof![Just(1u8), Just(2u8), any::<u8>()], 0..300)) {
        if let Ok(pairs) = decode_meta(&body) {
            prop_assert!(pairs.iter().all(|(k, _)| !k.is_empty()));
        }
    }

    #[test]
    fn header_decoder_round_trips(b in prop::array::uniform10(any::<u8>())) {
        prop_assert_eq!(Header::decode(&b).encode(), b);
    }

    /// A real upload head with a valid extension decodes whatever its size.
    #[test]
    fn upload_heads_decode(size in 0u64..(1 << 40), ext in "[a-z0-9_-]{0,6}|[a-z]{1,3}\\.[a-z0-9]{1,2}", path in any::<u8>()) {
        // `rec` is kept for the store's records.
        prop_assume!(ext != "rec" && !ext.ends_with(".rec"));
        let mut head = vec![path];
        head.extend(size.to_be_bytes());
        let mut e = ext.as_bytes().to_vec();
        e.resize(6, 0);
        head.extend(e);
        let decoded = decode_storage(11, 15 + size, &head);
        prop_assert!(decoded.is_ok(), "{:?}", decoded);
    }
}
