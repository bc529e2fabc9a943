//! The storage side: uploads, downloads and changes from FastDFS clients,
//! carried out through this node (uploads) or the group's primary
//! (changes), so they replicate and heal like any other write. Downloads
//! are read from this node's own store when it holds the file.

use std::sync::Arc;

use bytes::Bytes;
use cairn_client::{Body, Client, UploadOptions};
use cairn_proto::FileId;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::cluster::MapCache;
use crate::conn::{read_head, refuse, skip_rest, status_of, with_content, with_content_chunks, Refusal, Service};
use crate::reply::{self, Endpoint};
use crate::request::{decode_storage, encode_meta, file_id, has_content, StorageRequest};
use crate::wire::{cmd, put_fixed, status, write_reply, Header, IpSize, GROUP_LEN};

/// The blobs of the storage node in the front end's own process, read and
/// stored without the network: the `cairn` binary plugs in the node's
/// (`cairn_storage::LocalNode`); this crate does not depend on the node.
pub trait LocalBlobs: Send + Sync + 'static {
    /// The length of `[offset, offset + length)` of `id` (to its end
    /// without a length) and its bytes, which end early with an error if a
    /// block turns out damaged; `None` to go through the cluster.
    #[allow(clippy::type_complexity)]
    fn open<'a>(
        &'a self,
        id: &'a FileId,
        offset: u64,
        length: Option<u64>,
    ) -> BoxFuture<'a, Option<(u64, BoxStream<'static, std::io::Result<Bytes>>)>>;

    /// Whether [`LocalBlobs::upload`] takes an upload now; asked before
    /// the content is read, so that a no still leaves the cluster's way.
    fn takes_uploads(&self) -> bool;

    /// Stores `content` as a new blob of the node's group, on every active
    /// member's disk before the ID comes back. Content that ends in an
    /// error is not stored.
    fn upload(
        &self,
        appender: bool,
        ext: String,
        content: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> BoxFuture<'_, Result<FileId, cairn_client::Error>>;

    /// Stores `content` as the slave file of `master` (a file of the
    /// node's group) named with `prefix` and `ext`, on every active
    /// member's disk before the ID comes back; asked only when
    /// [`LocalBlobs::takes_uploads`] said yes.
    fn upload_slave<'a>(
        &'a self,
        master: &'a FileId,
        prefix: &'a str,
        ext: &'a str,
        content: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> BoxFuture<'a, Result<FileId, cairn_client::Error>>;

    /// Deletes `id` from its group, durable on every member before the
    /// answer, if the node in this process can (it is the group's
    /// primary); `None` to go through the cluster.
    fn delete<'a>(&'a self, id: &'a FileId) -> BoxFuture<'a, Option<Result<(), cairn_client::Error>>>;
}

/// A first chunk up to this size leaves in the same write as the reply
/// header: one segment for a small file instead of two.
const WITH_HEADER: usize = 64 * 1024;

/// The storage-side FastDFS service of one storage node.
pub struct StorageService {
    client: Arc<Client>,
    map: MapCache,
    /// The node's native address: uploads go through it.
    node_addr: String,
    /// The node's group, when configured (else learnt from the map).
    group: Option<String>,
    /// The FastDFS endpoint of this node (its IP is the fallback source IP).
    me: Endpoint,
    ip: IpSize,
    /// The node's own blobs, when it runs in this process.
    local: Option<Arc<dyn LocalBlobs>>,
}

impl StorageService {
    /// A service for the node at native address `node_addr`, reached by
    /// FastDFS clients at `me`.
    pub fn new(client: Arc<Client>, node_addr: String, group: Option<String>, me: Endpoint, ip: IpSize) -> Self {
        Self { map: MapCache::new(client.clone()), client, node_addr, group, me, ip, local: None }
    }

    /// Serves downloads of what the node holds from its store, as FastDFS
    /// storage servers do, instead of over the native protocol.
    pub fn with_local(mut self, local: Arc<dyn LocalBlobs>) -> Self {
        self.local = Some(local);
        self
    }

    async fn group(&self) -> Result<String, Refusal> {
        if let Some(g) = &self.group {
            return Ok(g.clone());
        }
        self.map.member_at(&self.node_addr).await.map(|(g, _)| g).ok_or(Refusal::new(status::EBUSY))
    }

    /// A name within this node's group.
    async fn own(&self, filename: &str) -> Result<FileId, Refusal> {
        file_id(&self.group().await?, filename.as_bytes()).map_err(|_| Refusal::new(status::EINVAL))
    }

    /// Replies with a file ID: `group[16] filename`.
    async fn file_id_reply(conn: &mut TcpStream, id: &FileId) -> std::io::Result<bool> {
        let mut b = Vec::new();
        put_fixed(&mut b, id.group(), GROUP_LEN);
        b.extend_from_slice(id.path_in_group().as_bytes());
        write_reply(conn, status::OK, &b).await.map(|()| true)
    }

    /// Requests that carry content: the content is streamed into the
    /// cluster as it arrives.
    async fn with_body(&self, conn: &mut TcpStream, req: StorageRequest) -> std::io::Result<bool> {
        let fail = |e: &cairn_client::Error| Refusal::new(status_of(e));
        match req {
            StorageRequest::Upload { appender, ext, content, .. } => {
                let (r, whole) = match self.local.as_ref().filter(|l| l.takes_uploads()) {
                    // Stored by the node in this process: the content goes
                    // from the client's connection to the node's spool and
                    // its peers, without a hop over loopback.
                    Some(local) => {
                        with_content_chunks(conn, content, |chunks| local.upload(appender, ext, chunks)).await
                    }
                    None => {
                        let group = self.group().await.ok();
                        let opts = UploadOptions { group, appender, ext };
                        with_content(conn, content, |body| self.client.upload_at(&self.node_addr, &opts, body)).await
                    }
                };
                match (r, whole) {
                    (Ok(id), true) => Self::file_id_reply(conn, &id).await,
                    (Err(e), true) => refuse(conn, fail(&e)).await,
                    (_, false) => Ok(false),
                }
            }
            StorageRequest::UploadSlave { master, prefix, ext, content } => {
                let master = match self.own(&master).await {
                    Ok(m) => m,
                    Err(r) => return self.refuse_content(conn, content, r).await,
                };
                let (r, whole) = match self.local.as_ref().filter(|l| l.takes_uploads()) {
                    // As a plain upload: stored by the node in this process.
                    Some(local) => {
                        with_content_chunks(conn, content, |chunks| local.upload_slave(&master, &prefix, &ext, chunks))
                            .await
                    }
                    None => {
                        with_content(conn, content, |body| self.client.upload_slave(&master, &prefix, &ext, body)).await
                    }
                };
                match (r, whole) {
                    (Ok(id), true) => Self::file_id_reply(conn, &id).await,
                    (Err(e), true) => refuse(conn, fail(&e)).await,
                    (_, false) => Ok(false),
                }
            }
            // FastDFS refuses an append of nothing.
            StorageRequest::Append { content: 0, .. } => refuse(conn, Refusal::new(status::EINVAL)).await,
            StorageRequest::Append { filename, content } => {
                let id = match self.own(&filename).await {
                    Ok(id) => id,
                    Err(r) => return self.refuse_content(conn, content, r).await,
                };
                let (r, whole) = with_content(conn, content, |body| self.client.append(&id, body)).await;
                self.done(conn, r, whole).await
            }
            StorageRequest::Modify { filename, offset, content } => {
                let id = match self.own(&filename).await {
                    Ok(id) => id,
                    Err(r) => return self.refuse_content(conn, content, r).await,
                };
                let (r, whole) = with_content(conn, content, |body| self.client.modify(&id, offset, body)).await;
                self.done(conn, r, whole).await
            }
            _ => refuse(conn, Refusal::new(status::EINVAL)).await,
        }
    }

    async fn refuse_content(&self, conn: &mut TcpStream, content: u64, r: Refusal) -> std::io::Result<bool> {
        let mut r2 = skip_rest(conn, content).await?;
        r2.status = r.status;
        refuse(conn, r2).await
    }

    async fn done(
        &self,
        conn: &mut TcpStream,
        r: Result<(), cairn_client::Error>,
        whole: bool,
    ) -> std::io::Result<bool> {
        match (r, whole) {
            (Ok(()), true) => write_reply(conn, status::OK, &[]).await.map(|()| true),
            (Err(e), true) => refuse(conn, Refusal::new(status_of(&e))).await,
            (_, false) => Ok(false),
        }
    }

    /// Requests without content.
    async fn plain(&self, conn: &mut TcpStream, req: StorageRequest) -> std::io::Result<bool> {
        let fail = |e: cairn_client::Error| Refusal::new(status_of(&e));
        let answer: Result<Vec<u8>, Refusal> = match req {
            StorageRequest::Download { id, offset, length } => return self.download(conn, id, offset, length).await,
            StorageRequest::Delete { id } => {
                let local = match &self.local {
                    Some(l) => l.delete(&id).await,
                    None => None,
                };
                match local {
                    Some(done) => done,
                    None => self.client.delete(&id).await,
                }
                .map(|()| Vec::new())
                .map_err(fail)
            }
            // FastDFS keeps metadata in a file beside the blob, made by the
            // first set: a file without any has none, and says ENOENT.
            StorageRequest::GetMeta { id } => match self.client.get_meta(&id).await {
                Ok(m) if m.is_empty() => Err(Refusal::new(status::ENOENT)),
                Ok(m) => Ok(encode_meta(&m)),
                Err(e) => Err(fail(e)),
            },
            StorageRequest::FileInfo { id } => match self.client.info(&id).await {
                Ok(i) => {
                    let source = self.map.member_by_id(i.source_node).await;
                    let ip = source
                        .and_then(|m| m.fastdfs_addr.or(Some(m.addr)))
                        .and_then(|a| Endpoint::parse(&a))
                        .map(|e| e.ip)
                        .unwrap_or_else(|| self.me.ip.clone());
                    Ok(reply::file_info(i.size, i.created, i.crc32, &ip, self.ip))
                }
                Err(e) => Err(fail(e)),
            },
            StorageRequest::Truncate { filename, size } => match self.own(&filename).await {
                Ok(id) => self.client.truncate(&id, size).await.map(|()| Vec::new()).map_err(fail),
                Err(r) => Err(r),
            },
            StorageRequest::SetMeta { id, merge, meta } => {
                self.client.set_meta(&id, meta, merge).await.map(|()| Vec::new()).map_err(fail)
            }
            StorageRequest::Regenerate { filename } => match self.own(&filename).await {
                Ok(id) => return self.regenerate(conn, id).await,
                Err(r) => Err(r),
            },
            StorageRequest::ActiveTest => Ok(Vec::new()),
            StorageRequest::Quit => return Ok(false),
            _ => Err(Refusal::new(status::EINVAL)),
        };
        match answer {
            Ok(body) => write_reply(conn, status::OK, &body).await.map(|()| true),
            Err(r) => refuse(conn, r).await,
        }
    }

    /// Regenerate appender file name (38): the appender file becomes a
    /// regular file under a new name, as FastDFS renames it in place. Cairn
    /// names encode whether a blob is an appender, and the store has no
    /// rename, so the content is copied into a new regular blob of the same
    /// group and extension (streamed, never held whole), its metadata with
    /// it, and the appender is deleted. The copy is checked against the
    /// appender's size and CRC32 before and after: a copy cut short, or an
    /// appender changed meanwhile (an append racing the rename), drops the
    /// copy and fails (EIO, EBUSY), leaving the appender as it was. Between
    /// that last check and the delete an append could still land and be
    /// lost; FastDFS's rename has no such window.
    async fn regenerate(&self, conn: &mut TcpStream, old: FileId) -> std::io::Result<bool> {
        let answer = match self.copy_to_regular(&old).await {
            Ok(new) => return Self::file_id_reply(conn, &new).await,
            Err(r) => r,
        };
        refuse(conn, answer).await
    }

    async fn copy_to_regular(&self, old: &FileId) -> Result<FileId, Refusal> {
        let fail = |e: cairn_client::Error| Refusal::new(status_of(&e));
        if !old.info().is_appender() {
            return Err(Refusal::new(status::EINVAL));
        }
        let before = self.client.info(old).await.map_err(fail)?;
        let meta = self.client.get_meta(old).await.map_err(fail)?;
        let (mut sink, source) = tokio::io::duplex(256 * 1024);
        let client = self.client.clone();
        let from = old.clone();
        let copy = async move {
            let copied = client.download_to(&from, 0, None, &mut sink).await;
            // The end of the pipe ends the new blob's content: checked below.
            drop(sink);
            copied
        };
        let ext = old.ext().to_string();
        let store = async {
            match self.local.as_ref().filter(|l| l.takes_uploads()) {
                Some(local) => {
                    let chunks = tokio_util::io::ReaderStream::new(source).boxed();
                    local.upload(false, ext, chunks).await
                }
                None => {
                    let opts = UploadOptions { group: Some(old.group().to_string()), appender: false, ext };
                    self.client.upload_at(&self.node_addr, &opts, Body::Reader(Box::new(source))).await
                }
            }
        };
        let (copied, stored) = tokio::join!(copy, store);
        let new = stored.map_err(fail)?;
        let whole = matches!(copied, Ok(n) if n == before.size)
            && new.info().size() == Some(before.size)
            && new.info().crc32 == before.crc32;
        let unchanged = || async {
            let now = self.client.info(old).await.map_err(fail)?;
            Ok::<bool, Refusal>(now.size == before.size && now.crc32 == before.crc32)
        };
        let checked = if !whole {
            Err(Refusal::new(status::EIO))
        } else if !meta.is_empty() {
            self.client.set_meta(&new, meta, false).await.map_err(fail)
        } else {
            Ok(())
        };
        let checked = match checked {
            Ok(()) if unchanged().await? => Ok(()),
            Ok(()) => Err(Refusal::new(status::EBUSY)),
            Err(r) => Err(r),
        };
        if let Err(r) = checked {
            if let Err(e) = self.client.delete(&new).await {
                tracing::warn!(file_id = %new, error = %e, "could not drop the copy of a regenerated appender");
            }
            return Err(r);
        }
        // A delete that fails leaves both names: the client is told it
        // failed and keeps the old one; dropping the copy here could lose
        // the content if the delete did happen and only its answer was lost.
        self.client.delete(old).await.map_err(fail)?;
        Ok(new)
    }

    /// Sends the range's length in the header, then the bytes: from this
    /// node's store when it holds the file, else from any member in one
    /// round trip to it, the header written when the member's answer tells
    /// the length. A failure before that is
    /// answered with its status; a failure midway closes the connection, so
    /// the client sees a short body, never wrong bytes.
    async fn download(&self, conn: &mut TcpStream, id: FileId, offset: u64, length: u64) -> std::io::Result<bool> {
        let length = (length > 0).then_some(length);
        if let Some(local) = &self.local {
            if let Some((len, chunks)) = local.open(&id, offset, length).await {
                if len == 0 && offset > 0 {
                    return refuse(conn, Refusal::new(status::EINVAL)).await;
                }
                return self.download_local(conn, &id, offset, len, chunks).await;
            }
        }
        let mut announced = false;
        // Nothing left from a non-zero offset is FastDFS's EINVAL (an
        // offset at the end is past the last byte), sent as the reply's
        // header: the body is empty either way.
        let head = |len: u64| {
            announced = true;
            let st = if len == 0 && offset > 0 { status::EINVAL } else { status::OK };
            Header { len, cmd: cmd::RESP, status: st }.encode().to_vec()
        };
        match self.client.download_with_head(&id, offset, length, conn, head).await {
            Ok(_) => {
                conn.flush().await?;
                Ok(true)
            }
            Err(e) if !announced => refuse(conn, Refusal::new(status_of(&e))).await,
            Err(e) => {
                tracing::warn!(file_id = %id, error = %e, "FastDFS download failed midway; closing the connection");
                Ok(false)
            }
        }
    }

    /// Sends `len` bytes read from the node's own store. If its copy turns
    /// out damaged midway (its repair is then queued), the rest comes from
    /// another member, so the client still gets the whole range.
    async fn download_local(
        &self,
        conn: &mut TcpStream,
        id: &FileId,
        offset: u64,
        len: u64,
        mut chunks: BoxStream<'static, std::io::Result<Bytes>>,
    ) -> std::io::Result<bool> {
        let mut out = Header { len, cmd: cmd::RESP, status: status::OK }.encode().to_vec();
        let mut sent = 0u64;
        let mut broken = false;
        while sent < len {
            let chunk = match chunks.next().await {
                Some(Ok(c)) => c,
                _ => {
                    broken = true;
                    break;
                }
            };
            let take = chunk.len().min((len - sent) as usize);
            sent += take as u64;
            if !out.is_empty() && take <= WITH_HEADER {
                out.extend_from_slice(&chunk[..take]);
                conn.write_all(&out).await?;
            } else {
                if !out.is_empty() {
                    conn.write_all(&out).await?;
                }
                conn.write_all(&chunk[..take]).await?;
            }
            out.clear();
        }
        if !out.is_empty() {
            conn.write_all(&out).await?;
        }
        if broken {
            let rest = len - sent;
            let got = self.client.download_to(id, offset + sent, Some(rest), conn).await;
            if !matches!(got, Ok(n) if n == rest) {
                tracing::warn!(file_id = %id, "FastDFS download failed midway; closing the connection");
                return Ok(false);
            }
        }
        conn.flush().await?;
        Ok(true)
    }
}

impl Service for StorageService {
    async fn handle(&self, conn: &mut TcpStream, h: Header) -> std::io::Result<bool> {
        let head = match read_head(conn, &h).await? {
            Ok(b) => b,
            Err(r) => return refuse(conn, r).await,
        };
        let req = match decode_storage(h.cmd, h.len, &head) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "bad FastDFS storage request");
                let rest = h.len.saturating_sub(head.len() as u64);
                let r = if has_content(h.cmd) { skip_rest(conn, rest).await? } else { Refusal::new(status::EINVAL) };
                return refuse(conn, r).await;
            }
        };
        if has_content(h.cmd) {
            self.with_body(conn, req).await
        } else {
            self.plain(conn, req).await
        }
    }
}
