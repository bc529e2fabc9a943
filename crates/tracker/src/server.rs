//! Serving the map.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use cairn_proto::frame::write_frame;
use cairn_proto::{
    ClusterSecret, Conn, ErrorCode, FileId, ProtoError, Request, Response, ServeLimits, Service, StoreTarget, WireError,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::config::{Reserved, TrackerConfig};
use crate::map::{ClusterState, MemberTimes};

/// How often members are checked for missed heartbeats.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

struct Tracker {
    state: Mutex<ClusterState>,
    addr: String,
}

impl Tracker {
    fn state(&self) -> std::sync::MutexGuard<'_, ClusterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn answer(&self, req: Request) -> Result<Response, WireError> {
        let parse = |s: &str| FileId::parse(s).map_err(|e| WireError::new(ErrorCode::BadFileId, e.to_string()));
        Ok(match req {
            Request::Heartbeat(report) => Response::Group(self.state().heartbeat(report, Instant::now())?),
            Request::QueryStore { group, exclude } => {
                Response::StoreTarget(self.state().place(group.as_deref(), &exclude)?)
            }
            Request::QueryFetch { file_id } => Response::Members(self.state().fetch(&parse(&file_id)?)?),
            Request::QueryUpdate { file_id } => Response::Members(self.state().update(&parse(&file_id)?)?),
            Request::ClusterStatus => Response::Cluster(self.state().status(&self.addr, Instant::now())),
            Request::Ping => Response::Ok,
            Request::ReportMissed { group, missed } => Response::Group(self.state().report_missed(&group, 0, &missed)?),
            Request::ReportMissedBy { group, reporter, missed } => {
                Response::Group(self.state().report_missed(&group, reporter, &missed)?)
            }
            Request::RemoveMember { group, node_id } => {
                self.state().remove_member(&group, node_id)?;
                Response::Ok
            }
            Request::SpareHeartbeat { addr, version } => {
                Response::Assigned(self.state().spare_heartbeat(&addr, version, Instant::now()))
            }
            Request::AddMember { group, addr } => {
                self.state().add_member(&group, &addr, Instant::now())?;
                Response::Ok
            }
            other => {
                return Err(WireError::new(
                    ErrorCode::InvalidArgument,
                    format!("{} is a storage request; this is a tracker", other.name()),
                ))
            }
        })
    }
}

impl Service for Tracker {
    async fn handle(&self, req: Request, conn: &mut Conn) -> Result<(), ProtoError> {
        let resp = self.answer(req).map_err(ProtoError::Remote)?;
        write_frame(conn, &resp).await
    }
}

/// A handle on the tracker for front ends in its process (the FastDFS
/// tracker listener): its placement without a round trip over loopback.
/// It answers once the tracker runs (`run` binds it).
#[derive(Clone, Default)]
pub struct LocalTracker {
    tracker: Arc<OnceLock<Weak<Tracker>>>,
}

impl LocalTracker {
    /// Where to upload (a group, `group` if given, and a member not in
    /// `exclude`), as a `QueryStore` to this tracker answers; `None` while
    /// the tracker does not run here.
    pub fn place(&self, group: Option<&str>, exclude: &[String]) -> Option<Result<StoreTarget, WireError>> {
        let tracker = self.tracker.get()?.upgrade()?;
        let placed = tracker.state().place(group, exclude);
        Some(placed)
    }

    /// The group's primary for a change of `id`, as a `QueryUpdate` to
    /// this tracker answers; `None` while the tracker does not run here.
    pub fn primary(&self, id: &cairn_proto::FileId) -> Option<Result<String, WireError>> {
        let tracker = self.tracker.get()?.upgrade()?;
        let answer = tracker.state().update(id);
        Some(answer.and_then(|members| {
            members.into_iter().next().ok_or_else(|| WireError::new(cairn_proto::ErrorCode::Unavailable, "no primary"))
        }))
    }

    /// The reserve kept on members and, per member, when this tracker
    /// first heard from it and from its current process; `None` while the
    /// tracker does not run here.
    pub fn facts(&self) -> Option<(Reserved, Vec<MemberTimes>)> {
        let tracker = self.tracker.get()?.upgrade()?;
        let state = tracker.state();
        Some((state.reserved(), state.member_times()))
    }
}

/// Runs a tracker on `listener` until `shutdown` turns true; `local` then
/// reaches it from front ends in this process.
pub async fn run(
    listener: TcpListener,
    secret: ClusterSecret,
    cfg: TrackerConfig,
    local: LocalTracker,
    shutdown: watch::Receiver<bool>,
) {
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    info!(%addr, "tracker listening");
    let tracker = Arc::new(Tracker { state: Mutex::new(ClusterState::new(cfg)), addr });
    let _ = local.tracker.set(Arc::downgrade(&tracker));
    let sweeper = {
        let tracker = tracker.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => tracker.state().sweep(Instant::now()),
                    _ = shutdown.changed() => return,
                }
            }
        })
    };
    cairn_proto::net::serve(listener, secret, tracker, ServeLimits::default(), shutdown).await;
    sweeper.abort();
}
