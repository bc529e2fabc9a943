//! The meta service as a real process: volumes from the CLI, and a
//! namespace that stays consistent when the service is SIGKILLed in the
//! middle of a stream of operations.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_client::MetaClient;
use cairn_proto::meta::{Kind, MetaRequest, MetaResponse, NewNode, RenameMode, ROOT};

use crate::common::{rt, Cluster};

#[test]
fn volumes_are_managed_from_the_cli() {
    let mut c = Cluster::start(1, &[("g1", 1)]);
    c.add_meta();
    let out = c.ok(&["volume", "create", "photos", "--groups", "g1", "--chunk-size", "8M"]);
    assert!(out.contains("volume photos created"), "{out}");
    c.ok(&["volume", "create", "builds"]);
    let again = c.cli(&["volume", "create", "photos"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"), "{again:?}");
    let bad = c.cli(&["volume", "create", "no/slash"]);
    assert!(!bad.status.success());
    let list: serde_json::Value = serde_json::from_str(&c.ok(&["volume", "list", "--json"])).unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["builds", "photos"]);
    let info: serde_json::Value = serde_json::from_str(&c.ok(&["volume", "info", "photos", "--json"])).unwrap();
    assert_eq!(info["groups"], serde_json::json!(["g1"]));
    assert_eq!(info["chunk_size"], 8 << 20);
    assert!(c.ok(&["volume", "info", "photos"]).contains("chunk size  8.0 MiB"));
    c.ok(&["volume", "delete", "photos"]);
    let gone = c.cli(&["volume", "info", "photos"]);
    assert!(!gone.status.success());
    assert!(c.ok(&["volume", "list"]).contains("builds"));
}

/// Paths with what acknowledged operations say of them.
type Ledger = Vec<(String, Option<bool>)>;

async fn attr_of(m: &MetaClient, req: MetaRequest) -> Option<u64> {
    match m.call(req).await {
        Ok(MetaResponse::Attr(a) | MetaResponse::Made { attr: a, .. }) => Some(a.ino),
        _ => None,
    }
}

/// Walks the namespace and checks that every entry names an inode that
/// exists, that link counts match the entries, and that directories count
/// their subdirectories. Returns every path with its inode.
async fn check_consistent(m: &MetaClient, vol: u32) -> BTreeMap<String, u64> {
    let mut paths = BTreeMap::new();
    let mut links: HashMap<u64, u32> = HashMap::new();
    let mut stack = vec![(ROOT, String::new())];
    while let Some((dir, path)) = stack.pop() {
        let mut after = None;
        let mut subdirs = 0;
        loop {
            let MetaResponse::Entries(page) =
                m.call(MetaRequest::Readdir { vol, ino: dir, after: after.clone(), limit: 500 }).await.unwrap()
            else {
                panic!("readdir")
            };
            if page.is_empty() {
                break;
            }
            after = Some(page.last().unwrap().0.clone());
            for (name, e) in page {
                let p = format!("{path}/{}", String::from_utf8_lossy(&name));
                let MetaResponse::Attr(a) = m
                    .call(MetaRequest::GetAttr { vol, ino: e.ino })
                    .await
                    .unwrap_or_else(|e2| panic!("{p} names inode {} which is missing: {e2}", e.ino))
                else {
                    panic!("getattr")
                };
                assert_eq!(a.kind, e.kind, "{p}: entry kind differs from the inode's");
                if e.kind == Kind::Dir {
                    subdirs += 1;
                    stack.push((e.ino, p.clone()));
                } else {
                    *links.entry(e.ino).or_default() += 1;
                }
                paths.insert(p, e.ino);
            }
        }
        let MetaResponse::Attr(d) = m.call(MetaRequest::GetAttr { vol, ino: dir }).await.unwrap() else { panic!() };
        assert_eq!(d.nlink, 2 + subdirs, "directory {path:?} link count");
    }
    for (ino, n) in links {
        let MetaResponse::Attr(a) = m.call(MetaRequest::GetAttr { vol, ino }).await.unwrap() else { panic!() };
        assert_eq!(a.nlink, n, "inode {ino} link count");
    }
    paths
}

#[test]
fn a_killed_meta_service_leaves_a_consistent_namespace() {
    let mut c = Cluster::start(1, &[("g1", 1)]);
    c.add_meta();
    let m = Arc::new(c.meta_client(0));
    let vol = rt().block_on(m.create_volume("v", vec![], 1 << 20)).unwrap().id;
    // Paths as acknowledged operations left them: Some(exists), or None
    // when an operation on them failed midway (it may or may not have
    // been applied before the kill: either is consistent).
    let acked: Arc<Mutex<Ledger>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (m, acked, stop) = (m.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            rt().block_on(async {
                let file = |uid| NewNode { kind: Kind::File, perm: 0o644, uid, gid: uid, rdev: 0, target: vec![] };
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let d = format!("d{}", i % 7);
                    let dir = match attr_of(
                        &m,
                        MetaRequest::Mkdir { vol, parent: ROOT, name: d.clone().into(), perm: 0o755, uid: 0, gid: 0 },
                    )
                    .await
                    {
                        Some(ino) => ino,
                        None => {
                            match attr_of(&m, MetaRequest::Lookup { vol, parent: ROOT, name: d.clone().into() }).await {
                                Some(ino) => ino,
                                None => continue, // the service is down: keep trying
                            }
                        }
                    };
                    let name = format!("f{i}");
                    if attr_of(&m, MetaRequest::Mknod { vol, parent: dir, name: name.clone().into(), node: file(i) })
                        .await
                        .is_none()
                    {
                        acked.lock().unwrap().push((format!("/{d}/{name}"), None));
                        continue;
                    }
                    acked.lock().unwrap().push((format!("/{d}/{name}"), Some(true)));
                    if i.is_multiple_of(3) {
                        let to = format!("g{i}");
                        let req = MetaRequest::Rename {
                            vol,
                            parent: dir,
                            name: name.clone().into(),
                            newparent: ROOT,
                            newname: to.clone().into(),
                            mode: RenameMode::Replace,
                        };
                        let done = m.call(req).await.is_ok();
                        let mut a = acked.lock().unwrap();
                        a.push((format!("/{d}/{name}"), done.then_some(false)));
                        a.push((format!("/{to}"), done.then_some(true)));
                    } else if i.is_multiple_of(5) {
                        let MetaResponse::Attr(f) = m
                            .call(MetaRequest::Lookup { vol, parent: dir, name: name.clone().into() })
                            .await
                            .unwrap_or(MetaResponse::Ok)
                        else {
                            continue;
                        };
                        let req =
                            MetaRequest::Link { vol, ino: f.ino, newparent: ROOT, newname: format!("l{i}").into() };
                        let done = m.call(req).await.is_ok();
                        acked.lock().unwrap().push((format!("/l{i}"), done.then_some(true)));
                    }
                }
            })
        })
    };
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        c.metas[0].kill();
        std::thread::sleep(Duration::from_millis(200));
        c.metas[0].start();
    }
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    let paths = rt().block_on(async {
        loop {
            if m.volumes().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        check_consistent(&m, vol).await
    });
    let acked = acked.lock().unwrap();
    assert!(acked.len() > 50, "too few operations went through ({})", acked.len());
    let mut expect: BTreeMap<&str, Option<bool>> = BTreeMap::new();
    for (p, exists) in acked.iter() {
        expect.insert(p, *exists);
    }
    for (p, exists) in expect {
        if let Some(exists) = exists {
            let what = if exists { "created" } else { "moved away" };
            assert_eq!(paths.contains_key(p), exists, "{p}: acknowledged {what}");
        }
    }
    // The service's own check (`cairn volume check`) agrees.
    let out = c.ok(&["volume", "check", "v"]);
    assert!(out.contains(" 0 problems"), "{out}");
}
