//! The FastDFS protocol and HTTP downloads, against real processes: raw
//! requests written from FastDFS's layouts, the `fastdfs` crate, and the
//! Python clients py3fdfs and fastdfs-client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_client::{Body, UploadOptions};
use cairn_proto::FileId;

use crate::common::{content, listing, rt, Cluster};

mod c_tools;

/// One request on a connection: returns the reply's status and body.
fn call(s: &mut TcpStream, cmd: u8, body: &[u8]) -> (u8, Vec<u8>) {
    let mut req = (body.len() as u64).to_be_bytes().to_vec();
    req.extend([cmd, 0]);
    req.extend_from_slice(body);
    s.write_all(&req).unwrap();
    read_reply(s)
}

fn read_reply(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 10];
    s.read_exact(&mut h).unwrap();
    assert_eq!(h[8], 100, "reply command must be 100");
    let len = u64::from_be_bytes(h[..8].try_into().unwrap());
    let mut b = vec![0u8; len as usize];
    s.read_exact(&mut b).unwrap();
    (h[9], b)
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn field(s: &str, width: usize) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(width, 0);
    v
}

fn u64be(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]).into_owned()
}

fn num(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap())
}

/// `group[16] filename` split into the whole ID.
fn id_of(body: &[u8]) -> String {
    format!("{}/{}", text(&body[..16]), String::from_utf8_lossy(&body[16..]))
}

fn name_of(id: &str) -> &str {
    id.split_once('/').unwrap().1
}

fn upload(storage: &str, cmd: u8, ext: &str, data: &[u8]) -> String {
    let mut s = connect(storage);
    let mut b = vec![0xFF];
    b.extend(u64be(data.len() as u64));
    b.extend(field(ext, 6));
    b.extend_from_slice(data);
    let (st, body) = call(&mut s, cmd, &b);
    assert_eq!(st, 0, "upload refused");
    id_of(&body)
}

/// A slave file of `master` (a full ID): the status and the reply.
fn upload_slave(storage: &str, master: &str, prefix: &str, ext: &str, data: &[u8]) -> (u8, Vec<u8>) {
    let master = name_of(master);
    let mut b = u64be(master.len() as u64);
    b.extend(u64be(data.len() as u64));
    b.extend(field(prefix, 16));
    b.extend(field(ext, 6));
    b.extend_from_slice(master.as_bytes());
    b.extend_from_slice(data);
    call(&mut connect(storage), 21, &b)
}

/// Sends an upload that announces `len` bytes of content and the first
/// of them; the rest is the caller's to send or not (hang up to cut it).
fn start_upload(storage: &str, ext: &str, len: u64, first: &[u8]) -> TcpStream {
    let mut s = connect(storage);
    let mut req = u64be(15 + len);
    req.extend([11, 0, 0xFF]);
    req.extend(u64be(len));
    req.extend(field(ext, 6));
    req.extend_from_slice(first);
    s.write_all(&req).unwrap();
    s
}

fn group_name(id: &str) -> Vec<u8> {
    let (g, name) = id.split_once('/').unwrap();
    let mut b = field(g, 16);
    b.extend_from_slice(name.as_bytes());
    b
}

fn download(storage: &str, id: &str, offset: u64, len: u64) -> (u8, Vec<u8>) {
    let mut b = u64be(offset);
    b.extend(u64be(len));
    b.extend(group_name(id));
    call(&mut connect(storage), 14, &b)
}

fn set_meta(storage: &str, id: &str, flag: u8, meta: &[u8]) -> u8 {
    let name = name_of(id);
    let mut b = u64be(name.len() as u64);
    b.extend(u64be(meta.len() as u64));
    b.push(flag);
    b.extend(field(id.split_once('/').unwrap().0, 16));
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(meta);
    call(&mut connect(storage), 13, &b).0
}

fn fdfs(c: &Cluster, node: usize) -> String {
    c.nodes[node].1.fastdfs.clone().expect("storage FastDFS listener")
}

fn fdfs_tracker(c: &Cluster) -> String {
    c.trackers[0].fastdfs.clone().expect("tracker FastDFS listener")
}

fn crc32(data: &[u8]) -> u32 {
    // Bitwise CRC-32 (IEEE), to check the server's without its code.
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

#[test]
fn fastdfs_commands_answer_with_fastdfs_layouts() {
    let c = Cluster::start(1, &[("g1", 2)]);
    let tracker = fdfs_tracker(&c);
    let ports: Vec<String> = (0..2).map(|i| fdfs(&c, i)).collect();

    // Query store: group[16] ip[15] port u64 store_path u8 = 40 bytes.
    let mut t = connect(&tracker);
    let (st, b) = call(&mut t, 101, &[]);
    assert_eq!((st, b.len()), (0, 40));
    assert_eq!(text(&b[..16]), "g1");
    let storage = format!("{}:{}", text(&b[16..31]), num(&b[31..39]));
    assert!(ports.contains(&storage), "{storage} is not a storage FastDFS address ({ports:?})");
    let (st, b) = call(&mut t, 104, &field("g1", 16));
    assert_eq!((st, b.len()), (0, 40));
    let (st, _) = call(&mut t, 104, &field("nosuch", 16));
    assert_eq!(st, 2, "unknown group is ENOENT");
    let (st, b) = call(&mut t, 106, &[]);
    assert_eq!((st, b.len()), (0, 16 + 2 * 23 + 1));

    // Upload, then every way of reading it.
    let data = content(300_000, 7);
    let id = upload(&storage, 11, "jpg", &data);
    assert!(id.starts_with("g1/M00/") && id.ends_with(".jpg"), "{id}");
    let (st, b) = call(&mut t, 102, &group_name(&id));
    assert_eq!((st, b.len()), (0, 39));
    let (st, b) = call(&mut t, 103, &group_name(&id));
    assert_eq!((st, b.len()), (0, 39));
    let (st, b) = call(&mut t, 105, &group_name(&id));
    assert_eq!((st, b.len()), (0, 39 + 23), "fetch-all lists both members with their ports");
    for p in &ports {
        assert_eq!(download(p, &id, 0, 0), (0, data.clone()), "whole download from {p}");
    }
    assert_eq!(download(&storage, &id, 1000, 5000), (0, data[1000..6000].to_vec()));
    assert_eq!(download(&storage, &id, 299_990, 0), (0, data[299_990..].to_vec()));
    assert_eq!(download(&storage, &id, 400_000, 0).0, 22, "offset past the end is EINVAL");

    // File info: size, create time, CRC32 sign-extended, source IP[16].
    let (st, b) = call(&mut connect(&storage), 22, &group_name(&id));
    assert_eq!((st, b.len()), (0, 40));
    assert_eq!(num(&b[..8]), data.len() as u64);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(num(&b[8..16]).abs_diff(now) < 120, "create time");
    assert_eq!(num(&b[16..24]), crc32(&data) as i32 as i64 as u64);
    assert_eq!(text(&b[24..40]), "127.0.0.1");

    // Metadata: overwrite, get, merge.
    assert_eq!(set_meta(&storage, &id, b'O', b"width\x02160\x01height\x0280"), 0);
    let (st, m) = call(&mut connect(&storage), 15, &group_name(&id));
    assert_eq!((st, m.as_slice()), (0, &b"height\x0280\x01width\x02160"[..]));
    assert_eq!(set_meta(&storage, &id, b'M', b"width\x02320\x01author\x02me"), 0);
    let (_, m) = call(&mut connect(&storage), 15, &group_name(&id));
    assert_eq!(m.as_slice(), &b"author\x02me\x01height\x0280\x01width\x02320"[..]);
    assert_eq!(set_meta(&storage, &id, b'X', b"a\x02b"), 22, "unknown flag is EINVAL");

    // Slave file: master name minus its extension, the prefix, the new extension.
    let thumb = content(5000, 8);
    let (st, body) = upload_slave(&storage, &id, "_150x150", "png", &thumb);
    assert_eq!(st, 0);
    let slave = id_of(&body);
    assert_eq!(slave, format!("{}_150x150.png", id.rsplit_once('.').unwrap().0));
    assert_eq!(download(&ports[1], &slave, 0, 0), (0, thumb));

    // Appender: upload, append, modify, truncate.
    let aid = upload(&storage, 23, "log", b"hello");
    let mut b = u64be(name_of(&aid).len() as u64);
    b.extend(u64be(6));
    b.extend_from_slice(name_of(&aid).as_bytes());
    b.extend_from_slice(b" world");
    assert_eq!(call(&mut connect(&storage), 24, &b).0, 0, "append");
    let mut b = u64be(name_of(&aid).len() as u64);
    b.extend(u64be(0));
    b.extend(u64be(5));
    b.extend_from_slice(name_of(&aid).as_bytes());
    b.extend_from_slice(b"HELLO");
    assert_eq!(call(&mut connect(&storage), 34, &b).0, 0, "modify");
    assert_eq!(download(&ports[0], &aid, 0, 0), (0, b"HELLO world".to_vec()));
    let mut b = u64be(name_of(&aid).len() as u64);
    b.extend(u64be(5));
    b.extend_from_slice(name_of(&aid).as_bytes());
    assert_eq!(call(&mut connect(&storage), 36, &b).0, 0, "truncate");
    assert_eq!(download(&ports[1], &aid, 0, 0), (0, b"HELLO".to_vec()));
    // Appending to a normal file is refused.
    let master = name_of(&id);
    let mut b = u64be(master.len() as u64);
    b.extend(u64be(1));
    b.extend_from_slice(master.as_bytes());
    b.push(b'x');
    assert_ne!(call(&mut connect(&storage), 24, &b).0, 0);

    // Listing groups and storage servers (FastDFS 6.13.1+ records).
    let (st, g) = call(&mut t, 91, &[]);
    assert_eq!((st, g.len()), (0, 113));
    assert_eq!(text(&g[..17]), "g1");
    assert_eq!(num(&g[17 + 4 * 8..]), 2, "storage count");
    let (st, g1) = call(&mut t, 90, &field("g1", 16));
    assert_eq!((st, g1), (0, g));
    let (st, s) = call(&mut t, 92, &field("g1", 16));
    assert_eq!((st, s.len()), (0, 2 * 487));
    for rec in s.chunks(487) {
        assert_eq!(rec[0], 7, "status ACTIVE");
        assert_eq!(rec[1], 6, "read write mode R_OK|W_OK");
        assert_eq!(text(&rec[18..34]), "127.0.0.1");
        let port = num(&rec[2 + 16 + 16 + 16 + 8 + 9 * 8..]);
        assert!(ports.iter().any(|p| p.ends_with(&format!(":{port}"))), "storage port {port}");
    }

    // Delete; the file is gone for both protocols.
    assert_eq!(call(&mut connect(&storage), 12, &group_name(&id)).0, 0);
    assert_eq!(download(&ports[1], &id, 0, 0).0, 2);
    assert_eq!(call(&mut connect(&storage), 12, &group_name(&id)).0, 2, "second delete is ENOENT");

    // Active test and quit on both sides.
    assert_eq!(call(&mut t, 111, &[]), (0, vec![]));
    let mut s = connect(&storage);
    assert_eq!(call(&mut s, 111, &[]), (0, vec![]));
    s.write_all(&[0, 0, 0, 0, 0, 0, 0, 0, 82, 0]).unwrap();
    let mut one = [0u8; 1];
    assert_eq!(s.read(&mut one).unwrap(), 0, "QUIT closes the connection");
}

#[test]
fn both_protocols_reach_the_same_files() {
    let c = Cluster::start(1, &[("g1", 2)]);
    let client = c.client();
    let rt = rt();
    // Native upload, FastDFS download.
    let data = content(1 << 20, 3);
    let opts = UploadOptions { ext: "dat".into(), ..Default::default() };
    let id = rt.block_on(client.upload(&opts, Body::from(data.clone()))).unwrap().to_string();
    assert_eq!(download(&fdfs(&c, 1), &id, 0, 0), (0, data));
    // FastDFS upload, native download.
    let data = content(70_000, 4);
    let id = upload(&fdfs(&c, 0), 11, "txt", &data);
    let fid = FileId::parse(&id).unwrap();
    assert_eq!(rt.block_on(client.download_bytes(&fid, 0, None)).unwrap(), data);
}

#[test]
fn bad_fastdfs_requests_get_errors_and_the_daemons_keep_serving() {
    let c = Cluster::start(1, &[("g1", 1)]);
    let (tracker, storage) = (fdfs_tracker(&c), fdfs(&c, 0));
    for addr in [&tracker, &storage] {
        // Unknown command with a small body: EINVAL, connection still usable.
        let mut s = connect(addr);
        assert_eq!(call(&mut s, 200, b"12345").0, 22);
        assert_eq!(call(&mut s, 111, &[]), (0, vec![]));
        // A body longer than the command allows: EINVAL and closed.
        let mut s = connect(addr);
        let mut req = u64be(1 << 40);
        req.extend([102, 0]);
        s.write_all(&req).unwrap();
        let (st, _) = read_reply(&mut s);
        assert_eq!(st, 22);
        // Garbage, then a hang-up.
        let mut s = connect(addr);
        let _ = s.write_all(&content(4096, 9));
        drop(s);
    }
    // Upload whose lengths do not add up: EINVAL, nothing stored.
    let mut s = connect(&storage);
    let mut b = vec![0xFF];
    b.extend(u64be(10));
    b.extend(field("txt", 6));
    b.extend_from_slice(b"12345");
    assert_eq!(call(&mut s, 11, &b).0, 22);
    // A path that leaves the store.
    let mut b = field("g1", 16);
    b.extend_from_slice(b"M00/../../../etc/passwd");
    assert_eq!(call(&mut s, 12, &b).0, 22);
    // An upload cut short by the client stores nothing.
    drop(start_upload(&storage, "bin", 1_000_000, &content(300_000, 1)));
    std::thread::sleep(Duration::from_millis(300));
    let stored = listing(&c, &c.client(), 0);
    assert!(stored.keys().all(|k| !k.ends_with(".bin")), "a cut upload was stored: {stored:?}");
    // Still serving.
    let id = upload(&storage, 11, "txt", b"still here");
    assert_eq!(download(&storage, &id, 0, 0), (0, b"still here".to_vec()));
}

#[test]
fn ip_fields_of_46_bytes_by_configuration() {
    let c = Cluster::start_full(1, &[("g1", 1)], &["--fastdfs-ip-size", "46"], &["--fastdfs-ip-size", "46"]);
    let mut t = connect(&fdfs_tracker(&c));
    let (st, b) = call(&mut t, 101, &[]);
    assert_eq!((st, b.len()), (0, 70));
    let storage = format!("{}:{}", text(&b[16..61]), num(&b[61..69]));
    let id = upload(&storage, 11, "txt", b"six");
    let (st, b) = call(&mut t, 102, &group_name(&id));
    assert_eq!((st, b.len()), (0, 69));
    let (st, b) = call(&mut t, 105, &group_name(&id));
    assert_eq!((st, b.len()), (0, 69), "fetch-all of one member: group, ip[45], port");
    let (st, b) = call(&mut connect(&storage), 22, &group_name(&id));
    assert_eq!((st, b.len()), (0, 70));
    let (st, s) = call(&mut t, 92, &field("g1", 16));
    assert_eq!((st, s.len()), (0, 517));
}

#[test]
fn the_fastdfs_rust_crate_works_unchanged() {
    use fastdfs::types::Metadata;
    let c = Cluster::start(1, &[("g1", 2)]);
    let tracker = fdfs_tracker(&c);
    rt().block_on(async {
        let client = fastdfs::ClientOptions::new(vec![tracker.as_str()]).build().unwrap();
        let data = content(123_456, 11);
        let mut meta = Metadata::new();
        meta.insert("filename".to_string(), "photo.jpg".to_string());
        let id = client.upload_file_buf(&data, "jpg", Some(&meta), false).await.unwrap();
        assert!(client.file_exists(&id).await.unwrap());
        assert_eq!(client.download_file_buf(&id, 0, 0).await.unwrap().as_ref(), &data[..]);
        assert_eq!(client.download_file_buf(&id, 100, 1000).await.unwrap().as_ref(), &data[100..1100]);
        assert_eq!(client.get_metadata(&id).await.unwrap().get("filename").map(String::as_str), Some("photo.jpg"));
        let info = client.get_file_info(&id).await.unwrap();
        assert_eq!(info.file_size, data.len() as u64);
        assert_eq!(info.crc32, crc32(&data));
        let groups = client.list_groups().await.unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].group_name, "g1");
        assert_eq!(groups[0].storage_count, 2);
        let storages = client.list_storages::<&str, &str>("g1", None).await.unwrap();
        assert_eq!(storages.len(), 2);
        // Appender file.
        let aid = client.upload_file_buf(b"abc", "log", None, true).await.unwrap();
        client.append_file_buf(&aid, b"def").await.unwrap();
        client.modify_file_buf(&aid, 0, b"ABC").await.unwrap();
        assert_eq!(client.download_file_buf(&aid, 0, 0).await.unwrap().as_ref(), b"ABCdef");
        client.truncate_file(&aid, 2).await.unwrap();
        assert_eq!(client.download_file_buf(&aid, 0, 0).await.unwrap().as_ref(), b"AB");
        client.delete_file(&id).await.unwrap();
        assert!(!client.file_exists(&id).await.unwrap());
        client.close().await;
    });
}

/// The Python interpreter of the test venv, made by `scripts/test`.
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("CAIRN_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/cairn/venv"));
    let py = venv.join("bin/python");
    assert!(py.exists(), "{} is missing: run scripts/test, which installs py3fdfs and fastdfs-client", py.display());
    py
}

fn run_python(kind: &str, tracker: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fastdfs_clients.py");
    let out = Command::new(venv_python()).arg(&script).args([kind, tracker]).output().unwrap();
    assert!(
        out.status.success(),
        "{kind} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn py3fdfs_works_with_16_byte_ip_replies() {
    let c = Cluster::start(1, &[("g1", 2)]);
    run_python("py3fdfs", &fdfs_tracker(&c));
}

#[test]
fn fastdfs_client_works_with_46_byte_ip_replies() {
    let c = Cluster::start_full(1, &[("g1", 2)], &["--fastdfs-ip-size", "46"], &["--fastdfs-ip-size", "46"]);
    run_python("fastdfs-client", &fdfs_tracker(&c));
}

/// `curl -s -o BODY -D HEADERS …`: status line code, headers, body.
fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (h, b) = (dir.path().join("h"), dir.path().join("b"));
    let out = Command::new("curl")
        .args(["-s", "--path-as-is", "-o", b.to_str().unwrap(), "-D", h.to_str().unwrap(), "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("curl is missing: scripts/test installs it");
    let code: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    (code, std::fs::read_to_string(&h).unwrap_or_default().to_ascii_lowercase(), std::fs::read(&b).unwrap_or_default())
}

#[test]
fn http_downloads_with_ranges_head_etag_and_names() {
    let c = Cluster::start(1, &[("g1", 2)]);
    let data = content(100_000, 5);
    let id = upload(&fdfs(&c, 0), 11, "jpg", &data);
    for i in 0..2 {
        let base = format!("http://{}/{id}", c.nodes[i].1.http.as_ref().unwrap());
        let (code, h, b) = curl(&[&base]);
        assert_eq!((code, b.len()), (200, data.len()));
        assert_eq!(b, data);
        assert!(h.contains("content-type: image/jpeg"), "{h}");
        assert!(h.contains("etag: \""), "{h}");
        assert!(h.contains("last-modified: "), "{h}");
        let (code, h, b) = curl(&["-r", "10-19", &base]);
        assert_eq!((code, b.as_slice()), (206, &data[10..20]));
        assert!(h.contains("content-range: bytes 10-19/100000"), "{h}");
        let (code, _, b) = curl(&["-H", "Range: bytes=-5", &base]);
        assert_eq!((code, b.as_slice()), (206, &data[99_995..]));
        let (code, h, _) = curl(&["-r", "200000-", &base]);
        assert_eq!(code, 416);
        assert!(h.contains("content-range: bytes */100000"), "{h}");
        let (code, h, b) = curl(&["-I", &base]);
        assert_eq!(code, 200);
        // curl writes a HEAD's headers where the body would go: no bytes of the file.
        assert!(b.len() < 1000 && h.contains("content-length: 100000"), "{h}");
        let etag = h.lines().find_map(|l| l.strip_prefix("etag: ")).unwrap().trim().to_string();
        let (code, _, _) = curl(&["-H", &format!("If-None-Match: {etag}"), &base]);
        assert_eq!(code, 304);
        let (_, h, _) = curl(&[&format!("{base}?filename=holiday.jpg")]);
        assert!(h.contains("content-disposition: attachment; filename=\"holiday.jpg\""), "{h}");
    }
    // A file of several read chunks: its first comes with the opening, the
    // rest stream after it.
    let big = content((3 << 20) + 12_345, 8);
    let big_id = upload(&fdfs(&c, 0), 11, "mp4", &big);
    let (code, h, b) = curl(&[&format!("http://{}/{big_id}", c.nodes[1].1.http.as_ref().unwrap())]);
    assert_eq!((code, b.len()), (200, big.len()));
    assert!(b == big, "a multi-chunk download came back different");
    assert!(h.contains(&format!("content-length: {}", big.len())), "{h}");
    let http = c.nodes[0].1.http.clone().unwrap();
    let (code, _, _) = curl(&[&format!("http://{http}/g1/M00/../../../../etc/passwd")]);
    assert!(code == 400 || code == 404, "traversal answered {code}");
    let (code, _, _) = curl(&[&format!("http://{http}/g1/M00/00/00/%2e%2e%2fsecret.txt")]);
    assert!(code == 400 || code == 404, "encoded traversal answered {code}");
    // A well-formed name (a slave's: 27 characters, a prefix, an
    // extension) that no member holds: sent on once, then 404.
    let (code, _, _) = curl(&["-L", &format!("http://{http}/g1/M00/00/00/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.txt")]);
    assert!(code == 400 || code == 404, "missing file answered {code}");
}

#[test]
fn http_redirects_to_a_member_that_holds_the_file() {
    // Files of their own, so one can be lost behind the node's back.
    let c = Cluster::start_with(1, &[("g1", 2)], &["--pack-max-size", "0"]);
    let data = content(50_000, 6);
    let id = upload(&fdfs(&c, 0), 11, "bin", &data);
    // Lost behind node 0's back (not deleted): it sends the client on.
    let fid = FileId::parse(&id).unwrap();
    let dir = c.dir.path().join(format!("node0/store0/data/{:02X}/{:02X}", fid.dir1(), fid.dir2()));
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with(fid.name()) {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    // Redirects go only to members node 0 knows active; right after the
    // cluster starts, its view may lag the trackers' by a heartbeat.
    let (http0, http1) = (c.nodes[0].1.http.clone().unwrap(), c.nodes[1].1.http.clone().unwrap());
    let mut tries = 0;
    let (code, h, b) = loop {
        let r = curl(&[&format!("http://{http0}/{id}")]);
        tries += 1;
        if r.0 == 302 || tries == 50 {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 302, "{}", String::from_utf8_lossy(&b));
    assert!(h.contains(&format!("location: http://{http1}/{}", id.to_ascii_lowercase())), "{h}");
    let (code, _, b) = curl(&["-L", &format!("http://{http0}/{id}")]);
    assert_eq!((code, b), (200, data));
    // A file no member holds is not bounced around.
    let (code, _, _) = curl(&["-L", "--max-redirs", "3", &format!("http://{http0}/{}", id.replace(".bin", ".png"))]);
    assert_eq!(code, 404);
    // A copy damaged behind node 0's back is not served: node 0 finds the
    // bad block before it answers and sends the client to node 1.
    let data = content(70_000, 7);
    let id = upload(&fdfs(&c, 0), 11, "bin", &data);
    let fid = FileId::parse(&id).unwrap();
    let blob = c.dir.path().join(format!("node0/store0/data/{:02X}/{:02X}/{}", fid.dir1(), fid.dir2(), fid.name()));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[40_000] ^= 0x10;
    std::fs::write(&blob, bytes).unwrap();
    let (code, h, _) = curl(&[&format!("http://{http0}/{id}")]);
    assert_eq!(code, 302, "{h}");
    assert!(h.contains(&format!("location: http://{http1}/")), "{h}");
    let (code, _, b) = curl(&["-L", &format!("http://{http0}/{id}")]);
    assert_eq!(code, 200);
    assert!(b == data, "the damaged copy's bytes were served");
}

/// A FastDFS download is read from the node's own store when it holds the
/// file (else in one round trip to a member, the reply header written once
/// that member announces the length). A damaged copy found midway must not
/// change the header nor add or lose bytes: the front end goes on from
/// the other member.
#[test]
fn fastdfs_downloads_go_around_a_damaged_copy() {
    let c = Cluster::start(1, &[("g1", 2)]);
    let data = content(3 << 20, 5);
    let id = upload(&fdfs(&c, 0), 11, "bin", &data);
    let fid = FileId::parse(&id).unwrap();
    let blob = c.dir.path().join(format!("node0/store0/data/{:02X}/{:02X}/{}", fid.dir1(), fid.dir2(), fid.name()));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[(3 << 20) / 2] ^= 0x10;
    std::fs::write(&blob, bytes).unwrap();
    // The front ends take members in turn: several tries reach the
    // damaged copy first, whichever front end asks.
    for i in 0..4 {
        let front = fdfs(&c, i % 2);
        let (st, b) = download(&front, &id, 0, 0);
        assert_eq!(st, 0);
        assert!(b == data, "whole download {i}: {} bytes, or wrong ones", b.len());
        let (st, b) = download(&front, &id, 1 << 20, 1 << 20);
        assert_eq!(st, 0);
        assert!(b[..] == data[1 << 20..2 << 20], "ranged download {i}");
        let (st, b) = download(&front, &id, (3 << 20) - 10, 0);
        assert_eq!((st, &b[..]), (0, &data[(3 << 20) - 10..]), "the last bytes");
    }
}

/// The storage listener stores an upload through the node in its own
/// process: answered only once both members hold it, and a cut upload is
/// kept by neither.
#[test]
fn fastdfs_uploads_are_on_every_member_when_answered() {
    let c = Cluster::start(1, &[("g1", 2)]);
    let client = c.client();
    // Small (spooled in memory) and large (spooled to a file), plain and
    // appender, through each node's listener.
    for (i, (size, cmd)) in [(4096, 11), (3 << 20, 11), (70_000, 23), (5 << 20, 23)].into_iter().enumerate() {
        let data = content(size, i as u64 + 20);
        let id = upload(&fdfs(&c, i % 2), cmd, "bin", &data);
        let name = FileId::parse(&id).unwrap().to_string();
        for node in 0..2 {
            let held = listing(&c, &client, node).get(&name).copied();
            assert_eq!(held, Some((size as u64, crc32(&data))), "upload {i} ({size} bytes) on node {node}");
        }
        assert!(download(&fdfs(&c, 1 - i % 2), &id, 0, 0) == (0, data), "upload {i} read through the other node");
        // Its slave (a thumbnail, or a large derived file), through the
        // other node's listener: on both members too, and named once.
        let thumb = content(size / 3, i as u64 + 40);
        let (st, body) = upload_slave(&fdfs(&c, 1 - i % 2), &id, "_t", "png", &thumb);
        assert_eq!(st, 0, "slave of upload {i}");
        let slave = id_of(&body);
        assert_eq!(slave, format!("{}_t.png", id.rsplit_once('.').unwrap().0));
        let name = FileId::parse(&slave).unwrap().to_string();
        for node in 0..2 {
            let held = listing(&c, &client, node).get(&name).copied();
            assert_eq!(held, Some((thumb.len() as u64, crc32(&thumb))), "slave of upload {i} on node {node}");
        }
        assert_eq!(upload_slave(&fdfs(&c, i % 2), &id, "_t", "png", b"again").0, 17, "a slave name taken (EEXIST)");
    }
    let gone = upload(&fdfs(&c, 0), 11, "bin", b"deleted next");
    assert_eq!(call(&mut connect(&fdfs(&c, 1)), 12, &group_name(&gone)).0, 0);
    assert_eq!(upload_slave(&fdfs(&c, 0), &gone, "_t", "png", b"orphan").0, 2, "a slave of no master (ENOENT)");
    // An upload cut short by the client is kept by no member.
    let before: Vec<_> = (0..2).map(|n| listing(&c, &client, n)).collect();
    let s = start_upload(&fdfs(&c, 1), "cut", 2_000_000, &content(1_200_000, 7));
    std::thread::sleep(Duration::from_millis(200));
    drop(s);
    std::thread::sleep(Duration::from_millis(300));
    for (n, was) in before.iter().enumerate() {
        assert_eq!(&listing(&c, &client, n), was, "node {n} after a cut upload");
    }
    let id = upload(&fdfs(&c, 1), 11, "txt", b"still here");
    assert_eq!(download(&fdfs(&c, 0), &id, 0, 0), (0, b"still here".to_vec()));
}

#[test]
fn http_anti_steal_tokens() {
    let c = Cluster::start_with(1, &[("g1", 1)], &["--http-token-secret", "s3cret", "--http-token-ttl-secs", "60"]);
    let id = upload(&fdfs(&c, 0), 11, "txt", b"guarded");
    let base = format!("http://{}/{id}", c.nodes[0].1.http.as_ref().unwrap());
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let good = cairn_storage::token_for(&id, "s3cret", now);
    let (code, _, b) = curl(&[&format!("{base}?token={good}&ts={now}")]);
    assert_eq!((code, b.as_slice()), (200, &b"guarded"[..]));
    let old = now - 3600;
    let expired = cairn_storage::token_for(&id, "s3cret", old);
    assert_eq!(curl(&[&format!("{base}?token={expired}&ts={old}")]).0, 403, "expired token");
    let forged = cairn_storage::token_for(&id, "guess", now);
    assert_eq!(curl(&[&format!("{base}?token={forged}&ts={now}")]).0, 403, "forged token");
    assert_eq!(curl(&[&base]).0, 403, "no token");
}
