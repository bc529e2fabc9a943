//! The meta service daemon: namespace operations over the native protocol
//! (authenticated with the cluster secret), each run on a blocking thread
//! as one engine transaction.

use std::path::Path;
use std::sync::Arc;

use cairn_proto::frame::write_frame;
use cairn_proto::meta::{MetaRequest, MetaResponse};
use cairn_proto::{ClusterSecret, Conn, ErrorCode, ProtoError, Request, Response, ServeLimits, Service, WireError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::{MetaError, Namespace, RedbEngine};

/// File of the embedded engine inside the data directory.
pub const DB_FILE: &str = "meta.redb";

struct MetaService {
    ns: Arc<Namespace<RedbEngine>>,
}

/// Carries out one request.
fn dispatch(ns: &Namespace<RedbEngine>, req: MetaRequest) -> Result<MetaResponse, MetaError> {
    use MetaRequest as Q;
    use MetaResponse as A;
    Ok(match req {
        Q::CreateVolume { name, groups, chunk_size } => A::Volume(ns.create_volume(&name, groups, chunk_size)?),
        Q::ListVolumes => A::Volumes(ns.volumes()?),
        Q::GetVolume { name } => A::Volume(ns.volume(&name)?),
        Q::DeleteVolume { name } => {
            ns.delete_volume(&name)?;
            A::Ok
        }
        Q::Stats { vol } => A::Stats(ns.stats(vol)?),
        Q::Lookup { vol, parent, name } => A::Attr(ns.lookup(vol, parent, &name)?),
        Q::GetAttr { vol, ino } => A::Attr(ns.getattr(vol, ino)?),
        Q::SetAttr { vol, ino, set } => A::Attr(ns.setattr(vol, ino, set)?),
        Q::Mknod { vol, parent, name, node } => A::Attr(ns.mknod(vol, parent, &name, node)?),
        Q::Mkdir { vol, parent, name, perm, uid, gid } => A::Attr(ns.mkdir(vol, parent, &name, perm, uid, gid)?),
        Q::Link { vol, ino, newparent, newname } => A::Attr(ns.link(vol, ino, newparent, &newname)?),
        Q::Unlink { vol, parent, name } => {
            ns.unlink(vol, parent, &name)?;
            A::Ok
        }
        Q::Rmdir { vol, parent, name } => {
            ns.rmdir(vol, parent, &name)?;
            A::Ok
        }
        Q::Rename { vol, parent, name, newparent, newname, mode } => {
            ns.rename(vol, parent, &name, newparent, &newname, mode)?;
            A::Ok
        }
        Q::Readlink { vol, ino } => A::Bytes(ns.readlink(vol, ino)?),
        Q::Readdir { vol, ino, after, limit } => {
            A::Entries(ns.readdir(vol, ino, after.as_deref(), limit.clamp(1, 10_000) as usize)?)
        }
        Q::Write { vol, ino, slices } => A::Attr(ns.write(vol, ino, slices)?),
        Q::Read { vol, ino, offset, len } => {
            let (attr, pieces) = ns.read(vol, ino, offset, len)?;
            A::Pieces(attr, pieces)
        }
        Q::Release { vol, ino } => {
            ns.release(vol, ino)?;
            A::Ok
        }
        Q::SetXattr { vol, ino, name, value, create, replace } => {
            ns.setxattr(vol, ino, &name, &value, create, replace)?;
            A::Ok
        }
        Q::GetXattr { vol, ino, name } => A::Bytes(ns.getxattr(vol, ino, &name)?),
        Q::ListXattr { vol, ino } => A::Names(ns.listxattr(vol, ino)?),
        Q::RemoveXattr { vol, ino, name } => {
            ns.removexattr(vol, ino, &name)?;
            A::Ok
        }
        Q::Garbage { before, limit } => {
            A::Names(ns.garbage(before, limit.clamp(1, 10_000) as usize)?.into_iter().map(String::into_bytes).collect())
        }
        Q::Collected { blobs } => {
            ns.collected(&blobs)?;
            A::Ok
        }
    })
}

impl Service for MetaService {
    async fn handle<'a>(&'a self, req: Request, conn: &'a mut Conn) -> Result<(), ProtoError> {
        match req {
            Request::Namespace(q) => {
                let ns = self.ns.clone();
                let answer = tokio::task::spawn_blocking(move || dispatch(&ns, q))
                    .await
                    .unwrap_or_else(|e| Err(MetaError::Engine(format!("meta worker failed: {e}"))))
                    .unwrap_or_else(|e| MetaResponse::Err { errno: e.errno(), message: e.to_string() });
                write_frame(conn, &Response::Namespace(answer)).await
            }
            Request::Ping => write_frame(conn, &Response::Ok).await,
            other => Err(ProtoError::Remote(WireError::new(
                ErrorCode::InvalidArgument,
                format!("the meta service does not take {} requests", other.name()),
            ))),
        }
    }
}

/// Runs the meta service on `listener` with its engine in `data`, until
/// `shutdown` turns true.
pub async fn run(
    listener: TcpListener,
    secret: ClusterSecret,
    data: &Path,
    shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    std::fs::create_dir_all(data).map_err(|e| MetaError::Engine(format!("cannot create {}: {e}", data.display())))?;
    let ns = Namespace::new(RedbEngine::open(&data.join(DB_FILE))?);
    info!(addr = ?listener.local_addr().ok(), data = %data.display(), "meta service listening");
    cairn_proto::net::serve(
        listener,
        secret,
        Arc::new(MetaService { ns: Arc::new(ns) }),
        ServeLimits::default(),
        shutdown,
    )
    .await;
    Ok(())
}
