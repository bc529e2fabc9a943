//! HTTP downloads, as FastDFS's nginx module serves them from a storage
//! node: `GET /<group>/M00/XX/YY/<name>` with ranges, HEAD, ETag and
//! Last-Modified, a Content-Type from the extension, `?filename=` for a
//! download name, and the anti-steal token when a secret is set.
//!
//! Bytes are read through the store's verified reader (every block is
//! checked against its CRC before it leaves), so they pass through user
//! space once; sendfile would skip that check, and a node must never
//! serve bad bytes. A blob this node does not hold yet (it is still
//! catching up) is redirected to an active member that serves HTTP, and
//! so is one whose first chunk is found damaged (nothing was sent yet).
//!
//! A whole-file GET opens the blob and reads its first chunk (up to 1 MiB)
//! in one trip to a blocking thread; a file that fits is answered from
//! that buffer. Only larger files, ranges and HEAD take more trips.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::Router;
use cairn_proto::FileId;
use futures::StreamExt;
use md5::{Digest, Md5};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, warn};

use crate::local::verified_chunks;
use crate::node::{blocking, Node};

/// The anti-steal token settings.
#[derive(Debug, Clone)]
pub struct HttpToken {
    /// The shared secret (FastDFS's `http.anti_steal.secret_key`).
    pub secret: String,
    /// How long a token stays valid after its timestamp.
    pub ttl: Duration,
}

/// The FastDFS anti-steal token: MD5, in hex, of the file ID (with its
/// group), the secret and the timestamp in decimal.
pub fn token_for(file_id: &str, secret: &str, ts: i64) -> String {
    let mut h = Md5::new();
    h.update(file_id.as_bytes());
    h.update(secret.as_bytes());
    h.update(ts.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Deserialize)]
struct Params {
    token: Option<String>,
    ts: Option<String>,
    filename: Option<String>,
    /// Set on a redirect, so two members that both lack a blob do not
    /// send a client back and forth.
    redirected: Option<String>,
}

/// Serves downloads until `shutdown` turns true.
pub(crate) async fn serve(listener: TcpListener, node: Arc<Node>, mut shutdown: watch::Receiver<bool>) {
    let app = Router::new().route("/{group}/{*path}", axum::routing::get(download)).with_state(node);
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    // Without TCP_NODELAY a body that leaves in a write of its own after
    // the headers waits for the client's delayed ACK: 40 ms per small
    // file on a keep-alive connection (315 requests/s on 8 connections).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
        error!(error = %e, "HTTP download server stopped");
    }
}

fn plain(status: StatusCode, msg: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{msg}\n")).into_response()
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Checks the token when the node requires one; the error says why not.
fn check_token(tok: Option<&HttpToken>, file_id: &str, p: &Params) -> Result<(), &'static str> {
    let Some(tok) = tok else { return Ok(()) };
    let (Some(token), Some(ts)) = (p.token.as_deref(), p.ts.as_deref()) else {
        return Err("this download needs ?token=…&ts=…");
    };
    let ts: i64 = ts.parse().map_err(|_| "bad ts")?;
    if now_secs() - ts > tok.ttl.as_secs() as i64 {
        return Err("token expired");
    }
    if token.len() != 32 || !token.eq_ignore_ascii_case(&token_for(file_id, &tok.secret, ts)) {
        return Err("bad token");
    }
    Ok(())
}

/// One `bytes=` range against a size: `Ok(None)` for the whole file (no
/// Range, or one this server does not narrow, like several ranges).
fn range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let Some(spec) = v.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (size.saturating_sub(n), size)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() { size } else { b.parse::<u64>().map_err(|_| ())?.saturating_add(1).min(size) };
        (start, end)
    };
    if start >= size || start >= end {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn download(
    State(node): State<Arc<Node>>,
    Path((group, path)): Path<(String, String)>,
    Query(p): Query<Params>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = FileId::parse(&format!("{group}/{path}")) else {
        return plain(StatusCode::BAD_REQUEST, "not a file ID");
    };
    let file_id = id.to_string();
    if let Err(why) = check_token(node.cfg.http_token.as_ref(), &file_id, &p) {
        return plain(StatusCode::FORBIDDEN, why);
    }
    if id.group() != node.store.group() {
        return plain(StatusCode::NOT_FOUND, "no such file in this group");
    }
    let store = node.store.clone();
    let rid = id.clone();
    // A whole-file GET (nearly every one) opens the blob and reads its
    // first chunk on one blocking thread, unless the client's copy is
    // current: a small file (most are) is then answered from memory, with
    // no second hand-off and no streaming thread.
    let whole = method == Method::GET && !headers.contains_key(header::RANGE);
    let if_none_match = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let asked = if_none_match.clone();
    let opened = tokio::task::spawn_blocking(move || -> cairn_store::Result<Opened> {
        if !whole {
            return store.record(&rid).map(|rec| Opened { rec, read: None });
        }
        let mut reader = store.read(&rid, 0, None)?;
        if copy_is_current(asked.as_deref(), &etag_of(reader.record())) {
            return Ok(Opened { rec: reader.record().clone(), read: None });
        }
        // The record as of opening: the range read is its size (an
        // appender blob's record may grow while it is read).
        let rec = reader.record().clone();
        let first = reader.next_chunk();
        Ok(Opened { rec, read: Some((reader, first)) })
    })
    .await;
    let (rec, read) = match opened {
        Ok(Ok(Opened { rec, read })) => (rec, read),
        _ if !node.store.was_deleted(&id) && p.redirected.is_none() => return redirect(&node, &uri),
        _ => return plain(StatusCode::NOT_FOUND, "no such file"),
    };
    let etag = etag_of(&rec);
    let modified = UNIX_EPOCH + Duration::from_secs(rec.created);
    let mut h = HeaderMap::new();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(&mut h, header::ETAG, &etag);
    set(&mut h, header::LAST_MODIFIED, &httpdate::fmt_http_date(modified));
    set(&mut h, header::ACCEPT_RANGES, "bytes");
    let mime = mime_guess::from_ext(id.ext()).first_or_octet_stream();
    set(&mut h, header::CONTENT_TYPE, mime.essence_str());
    if let Some(name) = p.filename.as_deref().filter(|n| !n.is_empty()) {
        let safe: String = name.chars().filter(|c| !c.is_control() && *c != '"' && *c != '\\').collect();
        set(&mut h, header::CONTENT_DISPOSITION, &format!("attachment; filename=\"{safe}\""));
    }
    if copy_is_current(if_none_match.as_deref(), &etag) {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    if let Some((reader, first)) = read {
        set(&mut h, header::CONTENT_LENGTH, &rec.size.to_string());
        let first = match first {
            Ok(first) => first,
            Err(e) => {
                // Nothing sent yet: a damaged copy (its repair queued) sends
                // the client to another member, as a missing one does.
                warn!(file_id = %id, error = %e, "HTTP download of a damaged copy");
                crate::read::damaged(&node, &id, &e);
                if p.redirected.is_none() {
                    return redirect(&node, &uri);
                }
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "this copy of the file is damaged");
            }
        };
        let Some(first) = first else {
            return (StatusCode::OK, h).into_response();
        };
        if reader.remaining() == 0 {
            return (StatusCode::OK, h, Body::from(first.into_bytes())).into_response();
        }
        let head = futures::stream::once(async move { Ok(first.into_bytes()) });
        return (StatusCode::OK, h, Body::from_stream(head.chain(verified_chunks(node, id, reader)))).into_response();
    }
    let (status, start, end) = match range(&headers, rec.size) {
        Ok(None) => (StatusCode::OK, 0, rec.size),
        Ok(Some((s, e))) => {
            set(&mut h, header::CONTENT_RANGE, &format!("bytes {s}-{}/{}", e - 1, rec.size));
            (StatusCode::PARTIAL_CONTENT, s, e)
        }
        Err(()) => {
            set(&mut h, header::CONTENT_RANGE, &format!("bytes */{}", rec.size));
            return (StatusCode::RANGE_NOT_SATISFIABLE, h).into_response();
        }
    };
    set(&mut h, header::CONTENT_LENGTH, &(end - start).to_string());
    if method == Method::HEAD {
        return (status, h).into_response();
    }
    let store = node.store.clone();
    let rid = id.clone();
    let reader = match blocking(move || store.read(&rid, start, Some(end - start))).await {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::NOT_FOUND, &format!("cannot read the file: {e}")),
    };
    (status, h, Body::from_stream(verified_chunks(node, id, reader))).into_response()
}

/// What the download's first trip to the store brought back.
struct Opened {
    /// The blob's record (for a whole-file read, as of its opening).
    rec: cairn_store::BlobRecord,
    /// A whole-file read and its first verified chunk; `None` for a range,
    /// a HEAD, or a client whose copy is current.
    read: Option<(cairn_store::BlobReader, cairn_store::Result<Option<cairn_proto::ChunkBuf>>)>,
}

/// Whether the client's `If-None-Match` names the blob as it is (304).
fn copy_is_current(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|v| v == etag || v == "*")
}

/// The entity tag of a blob: its CRC and size.
fn etag_of(rec: &cairn_store::BlobRecord) -> String {
    format!("\"{:08x}-{:x}\"", rec.crc32, rec.size)
}

/// Sends the client to an active member that serves HTTP.
fn redirect(node: &Node, uri: &Uri) -> Response {
    let peers = node.view.http_peers(node.id());
    let Some(peer) = peers.first() else {
        return plain(StatusCode::NOT_FOUND, "no such file here, and no other member serves HTTP");
    };
    let query = match uri.query() {
        Some(q) => format!("?{q}&redirected=1"),
        None => "?redirected=1".to_string(),
    };
    let to = format!("http://{peer}{}{query}", uri.path());
    match HeaderValue::from_str(&to) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => plain(StatusCode::NOT_FOUND, "no such file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_fastdfs() {
        // md5("group1/M00/00/00/x.jpg" + "secret" + "1700000000")
        let t = token_for("group1/M00/00/00/x.jpg", "secret", 1_700_000_000);
        assert_eq!(t.len(), 32);
        assert_eq!(t, token_for("group1/M00/00/00/x.jpg", "secret", 1_700_000_000));
        assert_ne!(t, token_for("group1/M00/00/00/x.jpg", "secret", 1_700_000_001));
    }

    #[test]
    fn ranges() {
        let mut h = HeaderMap::new();
        assert_eq!(range(&h, 10), Ok(None));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=2-4"));
        assert_eq!(range(&h, 10), Ok(Some((2, 5))));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=-3"));
        assert_eq!(range(&h, 10), Ok(Some((7, 10))));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=8-"));
        assert_eq!(range(&h, 10), Ok(Some((8, 10))));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=10-"));
        assert_eq!(range(&h, 10), Err(()));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-1,4-5"));
        assert_eq!(range(&h, 10), Ok(None));
    }
}
