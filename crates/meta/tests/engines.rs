//! The namespace over an engine other than redb: nothing in the namespace
//! knows which engine runs, and every operation is safe for an engine that
//! runs a write transaction's closure again after a conflict.

use cairn_meta::{
    Kind, MemEngine, MetaError, Namespace, NewNode, RenameMode, SetAttr, Slice, COMPACT_AFTER, DEFAULT_CHUNK, ROOT,
};

fn file() -> NewNode {
    NewNode { kind: Kind::File, perm: 0o644, uid: 1, gid: 1, rdev: 0, target: vec![] }
}

fn slice(offset: u64, blob: &str) -> Slice {
    Slice { offset, len: 10, blob: blob.into(), blob_offset: 0 }
}

#[test]
fn every_operation_is_applied_once_when_the_engine_reruns_each_write() {
    let n = Namespace::open(MemEngine::rerunning_writes()).unwrap();
    let v = n.create_volume("v", vec!["g1".into()], DEFAULT_CHUNK).unwrap();
    assert_eq!((v.id, v.groups.as_slice()), (1, &["g1".to_string()][..]));
    assert_eq!(n.create_volume("w", vec![], DEFAULT_CHUNK).unwrap().id, 2, "the volume counter moved once");
    let v = v.id;
    let d = n.mkdir(v, ROOT, b"d", 0o755, 0, 0).unwrap();
    let f = n.mknod(v, d.ino, b"f", file()).unwrap();
    let s = n.mknod(v, ROOT, b"s", NewNode { kind: Kind::Symlink, target: b"d/f".to_vec(), ..file() }).unwrap();
    assert_eq!((d.ino, f.ino, s.ino), (2, 3, 4), "inode numbers are allocated once each");
    assert_eq!(n.readlink(v, s.ino).unwrap(), b"d/f");
    assert_eq!(n.getattr(v, ROOT).unwrap().nlink, 3);

    // Content: slices appended once, the compactor's queue, truncation.
    let many: Vec<Slice> = (0..=COMPACT_AFTER as u64).map(|i| slice(i * 10, &format!("g1/M00/00/00/{i}"))).collect();
    assert_eq!(n.write(v, f.ino, many.clone()).unwrap().size, 10 * many.len() as u64);
    assert_eq!(n.slices(v, f.ino).unwrap().1, many);
    assert_eq!(n.compact_candidates(10).unwrap(), vec![(v, f.ino)]);
    assert_eq!(n.usage(v).unwrap(), 10 * many.len() as u64);
    n.setattr(v, f.ino, SetAttr { size: Some(15), ..Default::default() }).unwrap();
    assert_eq!(n.slices(v, f.ino).unwrap().1.len(), 2);
    assert_eq!(n.garbage(i64::MAX, None, 100).unwrap().len(), many.len() - 2);
    let merged = vec![Slice { offset: 0, len: 15, blob: "g1/M00/00/00/m".into(), blob_offset: 0 }];
    let (_, _, total, generation) = n.slices_page(v, f.ino, 0, 10).unwrap();
    assert!(n.compact_prefix(v, f.ino, generation, total, merged.clone()).unwrap());
    assert_eq!(n.slices(v, f.ino).unwrap().1, merged);

    // Names: links, renames, a tagged change applied once.
    n.link(v, f.ino, ROOT, b"hard").unwrap();
    assert_eq!(n.getattr(v, f.ino).unwrap().nlink, 2);
    n.rename(v, ROOT, b"hard", d.ino, b"moved", RenameMode::NoReplace).unwrap();
    n.tagged(7, 1, || n.mkdir(v, ROOT, b"t", 0o755, 0, 0)).unwrap();
    assert_eq!(n.tagged(7, 1, || n.mkdir(v, ROOT, b"t", 0o755, 0, 0)), Err(MetaError::AlreadyApplied));
    n.setxattr(v, f.ino, b"user.a", b"1", true, false).unwrap();
    assert_eq!(n.listxattr(v, f.ino).unwrap(), vec![b"user.a".to_vec()]);

    // An unlinked open file, held and then freed.
    n.unlink(v, d.ino, b"f").unwrap();
    n.unlink(v, d.ino, b"moved").unwrap();
    n.keep_open(v, 9, &[f.ino]).unwrap();
    assert_eq!(n.orphans(v).unwrap(), vec![f.ino]);
    n.release(v, f.ino, 9, 60).unwrap();
    assert!(n.orphans(v).unwrap().is_empty());
    assert!(n.garbage(i64::MAX, None, 100).unwrap().contains(&"g1/M00/00/00/m".to_string()));
    assert_eq!(n.usage(v).unwrap(), 0);

    assert_eq!(n.check(v).unwrap().1, Vec::<String>::new());
    assert_eq!(n.stats(v).unwrap().inodes, 5);
}

/// The meta service over the in-memory engine, through the protocol: the
/// server takes any engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meta_service_serves_a_namespace_over_any_engine() {
    use cairn_client::MetaClient;
    use cairn_meta::server::{serve, MetaOptions};
    use cairn_proto::meta::{MetaRequest, MetaResponse};
    use cairn_proto::ClusterSecret;

    let secret = ClusterSecret::from_text("test-secret-please-ignore").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve(listener, secret.clone(), MemEngine::new(), MetaOptions::default(), shutdown));
    let m = MetaClient::new(addr, secret);
    let v = m.create_volume("photos", vec![], DEFAULT_CHUNK).await.unwrap();
    let made = m
        .call(MetaRequest::Mkdir { vol: v.id, parent: ROOT, name: b"d".to_vec(), perm: 0o755, uid: 0, gid: 0 })
        .await
        .unwrap();
    let MetaResponse::Made { attr, parent } = made else { panic!("{made:?}") };
    assert_eq!((attr.kind, parent.nlink), (Kind::Dir, 3));
    let found = m.call(MetaRequest::Lookup { vol: v.id, parent: ROOT, name: b"d".to_vec() }).await.unwrap();
    assert_eq!(found, MetaResponse::Attr(attr));
    assert_eq!(m.volumes().await.unwrap(), vec![v]);
    stop.send(true).unwrap();
    server.await.unwrap().unwrap();
}
