//! Fuzzing the native protocol's decoders with arbitrary bytes (bounded
//! runs, in the test command): frames, bodies, file IDs and the handshake
//! must fail cleanly, never panic or allocate without bound.

use cairn_proto::frame::{read_frame, BodyReader};
use cairn_proto::{ClusterSecret, FileId, Request, Response};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("CAIRN_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Bytes that often start with a plausible length prefix.
fn wire_bytes() -> impl Strategy<Value = Vec<u8>> {
    (any::<u32>(), prop::collection::vec(any::<u8>(), 0..512), any::<bool>()).prop_map(|(len, rest, framed)| {
        if framed {
            let mut v = (len % 600).to_be_bytes().to_vec();
            v.extend(rest);
            v
        } else {
            rest
        }
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frames_never_panic(bytes in wire_bytes()) {
        let rt = runtime();
        rt.block_on(async {
            let _ = read_frame::<_, Request>(&mut bytes.as_slice()).await;
            let _ = read_frame::<_, Response>(&mut bytes.as_slice()).await;
            let mut r = bytes.as_slice();
            let mut body = BodyReader::new();
            for _ in 0..64 {
                match body.next(&mut r).await {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        });
    }

    #[test]
    fn file_ids_never_panic(s in "\\PC{0,80}", t in "[a-zA-Z0-9_/.-]{0,70}") {
        for text in [s, t] {
            if let Ok(id) = FileId::parse(&text) {
                // Accepted IDs never point outside a store path.
                prop_assert!(!id.path_in_group().contains(".."));
                prop_assert!(!id.path_in_group().starts_with('/'));
            }
        }
    }

    /// Names in FastDFS's alphabet (dots, two-part extensions, slave
    /// prefixes): what is accepted stays one safe path component, never
    /// a store record's name, and round-trips.
    #[test]
    fn file_names_with_dots_stay_safe(tail in "[A-Za-z0-9_.-]{0,36}", ext in "[a-z0-9_.-]{0,6}", prefix in "[A-Za-z0-9_.-]{1,16}") {
        let text = format!("g1/M00/0A/FF/oYYBAGsBecWACOG5AAGGoM4nA6g{tail}");
        if let Ok(id) = FileId::parse(&text) {
            let name = id.name();
            prop_assert!(!name.contains("..") && !name.contains('/') && !name.ends_with('.'));
            prop_assert!(!name.ends_with(".rec"));
            prop_assert_eq!(FileId::parse(&id.to_string()).unwrap(), id.clone());
            // Its slaves, whenever the prefix and extension are taken, parse back.
            if let Ok(s) = id.slave(&prefix, &ext) {
                prop_assert_eq!(FileId::parse(&s.to_string()).unwrap(), s);
            }
        }
    }

    #[test]
    fn handshake_survives_garbage(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let rt = runtime();
        rt.block_on(async {
            let secret = ClusterSecret::from_text("fuzz-secret-0123456789").expect("secret");
            let (mut a, mut b) = tokio::io::duplex(4096);
            let feed = async move {
                use tokio::io::AsyncWriteExt;
                let _ = b.write_all(&bytes).await;
                drop(b);
            };
            let check = tokio::time::timeout(std::time::Duration::from_secs(2), cairn_proto::Handshake::server(&mut a, &secret));
            let (r, ()) = tokio::join!(check, feed);
            // Garbage never authenticates.
            prop_assert!(!matches!(r, Ok(Ok(()))));
            Ok(())
        })?;
    }
}
