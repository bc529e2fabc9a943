//! Catch-up: a member that is syncing (new, back from offline, restarted,
//! left out of a write, or with a wiped disk) copies from an active peer
//! what it lacks, while it already receives new writes. Deletes the peer
//! made meanwhile are applied, and a deleted file is never copied back.
//!
//! Order matters. The node starts only once its tracker says every active
//! peer forwards writes to it (`forwarded`): from then on it misses
//! nothing, so what it copies afterwards plus what it receives is
//! everything. It then reports itself caught up for that round, and the
//! tracker turns it active.
//!
//! Two ways to copy:
//! - **binlog tail**: when the node knows where it left the peer's binlog
//!   (a sync point saved at its last catch-up, same binlog generation), it
//!   reads only the entries after it and compares just those blobs;
//! - **full comparison** (FastDFS's disk recovery): otherwise, every
//!   tombstone in the peer's binlog and every blob in its listing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_proto::frame::{expect_frame, write_frame, BodyReader};
use cairn_proto::net::check;
use cairn_proto::{BlobSummary, ErrorCode, FileId, MemberState, ProtoError, Request, Response, SyncPoint};
use cairn_store::{Expect, Origin};
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

use crate::error::refuse;
use crate::node::{blocking, Node};
use crate::view::Standing;

/// Entries per page (about 100 bytes each, well under a frame).
const PAGE: u32 = 2000;
/// Tries to copy one blob that keeps changing under the copy.
const COPY_TRIES: usize = 3;
/// Longest wait for every tracker to answer after a catch-up.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// Rounds this node still has to catch up for: trackers that count it
/// syncing, with every active peer forwarding to it, in a round it has not
/// caught up in yet.
fn due(node: &Node) -> Vec<(String, u64)> {
    if node.store.is_removed() {
        return Vec::new();
    }
    node.view
        .standing(node.id())
        .into_iter()
        .filter(|s| s.state == MemberState::Syncing && s.forwarded && node.caught_up_round(&s.tracker) != s.round)
        .map(|s| (s.tracker, s.round))
        .collect()
}

/// Starts a catch-up if one is due and none runs.
pub fn maybe_start(node: &Arc<Node>) {
    if due(node).is_empty() {
        return;
    }
    let mut h = node.heal_state();
    h.caught_up = false;
    if h.running {
        return;
    }
    h.running = true;
    drop(h);
    let node = node.clone();
    tokio::spawn(async move { run(node).await });
}

async fn run(node: Arc<Node>) {
    loop {
        let rounds = due(&node);
        if rounds.is_empty() {
            break;
        }
        let started = Instant::now();
        {
            let mut h = node.heal_state();
            let (running, caught_up) = (h.running, h.caught_up);
            *h = cairn_proto::HealStatus { running, caught_up, ..Default::default() };
        }
        let result = catch_up(&node, started).await;
        let failed = {
            let mut h = node.heal_state();
            h.elapsed_ms = started.elapsed().as_millis() as u64;
            match result {
                Ok(()) => {
                    let mut c = node.caught_up.lock().unwrap_or_else(|p| p.into_inner());
                    for (t, r) in &rounds {
                        c.insert(t.clone(), *r);
                    }
                    h.caught_up = true;
                    h.bytes_left = 0;
                    info!(
                        copied = h.copied,
                        deleted = h.deleted,
                        bytes = h.bytes,
                        ms = h.elapsed_ms,
                        binlog = h.from_binlog,
                        "caught up with the group"
                    );
                    false
                }
                Err(e) => {
                    warn!(error = %e, "catch-up failed; trying again");
                    h.last_error = Some(e.to_string());
                    true
                }
            }
        };
        if failed {
            tokio::time::sleep(Duration::from_secs(1)).await;
        } else {
            node.beat_now();
        }
    }
    node.heal_state().running = false;
}

/// One catch-up from one active peer.
async fn catch_up(node: &Node, started: Instant) -> Result<(), ProtoError> {
    let sources = node.view.snapshot().map(|s| s.sources(node.id())).unwrap_or_default();
    // No active peer to learn from: what this node holds is the best the group has.
    let Some(first) = sources.first().cloned() else { return Ok(()) };
    // Prefer a peer whose binlog this node knows where it left.
    let (src, addr, known) = sources
        .iter()
        .find_map(|(id, a)| node.store.sync_point(*id).map(|p| (*id, a.clone(), Some(p))))
        .unwrap_or((first.0, first.1, None));
    let before = node.view.standing(src);
    node.heal_state().source = Some(addr.clone());
    let resp = check(node.pool.call(&addr, &Request::SyncPoint).await?)?;
    let Response::SyncPoint { point: start, files, bytes } = resp else {
        return Err(ProtoError::Unexpected { expected: "sync point", got: resp.name() });
    };
    let mut done = false;
    if let Some(from) = known.filter(|p| p.generation == start.generation && p.seq <= start.seq) {
        match tail(node, &addr, from, start, started).await {
            Ok(()) => done = true,
            Err(ProtoError::Remote(e)) if e.code == ErrorCode::Gone => {}
            Err(e) => return Err(e),
        }
    }
    if !done {
        let have = node.store.stats().bytes;
        node.heal_state().bytes_left = bytes.saturating_sub(have);
        full(node, &addr, files, started).await?;
    }
    recopy_dirty(node, &addr, started).await?;
    // What was copied is complete only if the source held everything all
    // along: had it missed a write meanwhile, a tracker would have moved it
    // out of the active set. Wait for every tracker's word on it.
    node.beat_now();
    let asked = Instant::now();
    while !node.view.all_answered_since(asked) && asked.elapsed() < SETTLE_WAIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !stayed_active(&before, &node.view.standing(src)) {
        return Err(refuse(ErrorCode::Unavailable, format!("{addr} left the active set during the catch-up")));
    }
    let own = reconcile_own_writes(node, &addr, started).await?;
    recopy_dirty(node, &addr, started).await?;
    let store = node.store.clone();
    let me = node.id();
    blocking(move || {
        store.set_sync_point(src, start)?;
        match own {
            Some(p) => store.set_sync_point(me, p),
            None => Ok(()),
        }
    })
    .await
}

/// Mutations that started on this node since its last catch-up (its own
/// binlog, from the sync point it keeps under its own ID) are checked
/// against the active members. A blob it created that one of them lacks,
/// and that it did not delete, was never acknowledged (an acknowledged
/// upload is on every active member): this node crashed or was cut off in
/// the middle of the upload, and the blob is discarded group-wide (see
/// `discard`) so every member holds the same files. So are uploads it had
/// named but not committed when it stopped (peers may have committed them).
/// A blob it changed as primary that differs from the source's copy (the
/// change reached no peer) is copied back. Returns the own binlog point
/// this covered, or `None` when it could not run.
async fn reconcile_own_writes(node: &Node, addr: &str, started: Instant) -> Result<Option<SyncPoint>, ProtoError> {
    // Writes this node started must have settled first (it is syncing, so
    // no new ones start).
    let wait = Instant::now();
    while !node.no_writes_running() {
        if wait.elapsed() > SETTLE_WAIT {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let unfinished = node.store.take_unfinished();
    for (i, id) in unfinished.iter().enumerate() {
        warn!(file_id = %id, "discarding an upload named here but never committed here");
        if let Err(e) = discard(node, id.clone()).await {
            node.store.keep_unfinished(unfinished[i..].to_vec());
            return Err(e);
        }
    }
    let end = node.store.binlog().point();
    let mut at = node.store.sync_point(node.id()).unwrap_or_default();
    loop {
        let store = node.store.clone();
        let (entries, next, more) = blocking(move || store.binlog().tail(at.seq, at.offset, PAGE as usize)).await?;
        let deleted_here: HashSet<String> =
            entries.iter().filter(|e| e.here && e.delete && e.seq <= end.seq).map(|e| e.file_id.clone()).collect();
        let mut created = HashSet::new();
        let mut mine: Vec<String> = Vec::new();
        let mut listed: HashSet<String> = HashSet::new();
        for e in entries.into_iter().filter(|e| e.here && !e.delete && e.seq <= end.seq) {
            // A change is logged before it is applied, and a name before the
            // peers learn it: an upload this node does not hold may be held
            // by a peer that committed it while this node died, so every
            // create not deleted since is checked. A change of a blob no
            // longer here was deleted since.
            let check = |id: FileId| {
                if e.create {
                    !node.store.was_deleted(&id)
                } else {
                    node.store.contains_any(&id)
                }
            };
            if !listed.contains(&e.file_id) && FileId::parse(&e.file_id).is_ok_and(check) {
                listed.insert(e.file_id.clone());
                if e.create {
                    created.insert(e.file_id.clone());
                }
                mine.push(e.file_id);
            }
        }
        reconcile_page(node, addr, &mine, &created, &deleted_here, started).await?;
        at = next;
        if !more || at.seq >= end.seq {
            return Ok(Some(end));
        }
    }
}

/// One page of this node's binlog against the group: `mine` are the blobs
/// it wrote here and still holds (`created` those it named), `deleted_here`
/// the deletes it applied as the primary.
async fn reconcile_page(
    node: &Node,
    addr: &str,
    mine: &[String],
    created: &HashSet<String>,
    deleted_here: &HashSet<String>,
    started: Instant,
) -> Result<(), ProtoError> {
    if mine.is_empty() && deleted_here.is_empty() {
        return Ok(());
    }
    // One question to each member per page: which of this node's
    // blobs it holds (summaries from the member synced with, to copy
    // what differs) and which of the blobs deleted here it still holds.
    let mut ask = mine.to_vec();
    ask.extend(deleted_here.iter().cloned());
    let (still_held, blobs): (Vec<BlobSummary>, Vec<BlobSummary>) =
        summaries(node, addr, &ask).await?.into_iter().partition(|b| deleted_here.contains(&b.file_id));
    let mut undeleted: HashSet<String> = still_held.into_iter().map(|b| b.file_id).collect();
    let mut everywhere: HashSet<String> = blobs.iter().map(|b| b.file_id.clone()).collect();
    let named: Vec<String> = mine.iter().filter(|s| created.contains(*s)).cloned().collect();
    let mut ask_others = named.clone();
    ask_others.extend(deleted_here.iter().cloned());
    let others = node.view.snapshot().map(|v| v.sources(node.id())).unwrap_or_default();
    for (_, other) in others.iter().filter(|(_, a)| a != addr) {
        let held = held_by(node, other, &ask_others).await?;
        everywhere.retain(|s| !named.contains(s) || held.contains(s));
        undeleted.extend(held.into_iter().filter(|s| deleted_here.contains(s)));
    }
    // Deletes this node applied as the primary whose blob an active
    // member still holds: the node stopped while it forwarded them, so
    // the members it had not reached kept the blob (the client may even
    // have been told the delete was done: its repeat found the blob gone
    // at the next primary). Finished through the primary, tombstones
    // everywhere, so the members agree again.
    for s in undeleted {
        let Ok(id) = FileId::parse(&s) else { continue };
        warn!(file_id = %id, "finishing a delete applied here that a member still holds");
        discard(node, id).await?;
    }
    for s in named.iter().filter(|s| !everywhere.contains(*s)) {
        let Ok(id) = FileId::parse(s) else { continue };
        warn!(file_id = %id, "discarding an upload that was never acknowledged (not every active member has it)");
        discard(node, id).await?;
    }
    copy_differing(node, addr, &blobs, started).await?;
    Ok(())
}

/// Which of `ids` the member at `addr` holds.
async fn held_by(node: &Node, addr: &str, ids: &[String]) -> Result<HashSet<String>, ProtoError> {
    Ok(summaries(node, addr, ids).await?.into_iter().map(|b| b.file_id).collect())
}

/// The summaries of those of `ids` the member at `addr` holds.
async fn summaries(node: &Node, addr: &str, ids: &[String]) -> Result<Vec<BlobSummary>, ProtoError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let resp = check(node.pool.call(addr, &Request::BlobSummaries { ids: ids.to_vec() }).await?)?;
    let Response::Blobs { blobs, .. } = resp else {
        return Err(ProtoError::Unexpected { expected: "blobs", got: resp.name() });
    };
    Ok(blobs)
}

/// Drops an upload of this node's own that some active member lacks. An
/// acknowledged upload is on every active member (and a member that turned
/// active since holds all its peers hold), so this one never was: the
/// originator died before every peer committed it. The discard goes through
/// the primary, which leaves a tombstone on every member of the write set,
/// holders or not, so a member that has it drops it and one that is
/// catching up can never copy it back.
async fn discard(node: &Node, id: FileId) -> Result<(), ProtoError> {
    let primary = node
        .view
        .snapshot()
        .and_then(|v| v.primary_addr)
        .ok_or_else(|| refuse(ErrorCode::Unavailable, "no primary to order a discard through"))?;
    check(node.pool.call(&primary, &Request::Discard { file_id: id.to_string() }).await?)?;
    // The primary's write set names this node while it syncs; in case it
    // did not, the local copy goes here too.
    apply_delete(node, id).await
}

/// Copies again every blob a change was forwarded for that this node could
/// not apply (see `replica.rs`), from the primary, which applied the change
/// before forwarding it (from `source` when the primary is unknown).
async fn recopy_dirty(node: &Node, source: &str, started: Instant) -> Result<(), ProtoError> {
    loop {
        let dirty: Vec<String> =
            std::mem::take(&mut *node.dirty.lock().unwrap_or_else(|p| p.into_inner())).into_iter().collect();
        if dirty.is_empty() {
            return Ok(());
        }
        let from = node.view.snapshot().and_then(|s| s.primary_addr).unwrap_or_else(|| source.to_string());
        for s in dirty {
            let Ok(id) = FileId::parse(&s) else { continue };
            copy_one(node, &from, &id, None, started).await?;
        }
    }
}

/// Whether the source held every write all through a catch-up, as the
/// trackers tell: one that counted it active before still does, in the same
/// round, and none that counted it active has since moved it (a write it
/// missed would have). A tracker that did not count it active when the
/// catch-up began is not asked: a tracker just restarted lists every member
/// as syncing until each catches up, and if its word counted, two members
/// that each wait for the other to be active there would never finish. Such
/// a tracker cannot have taken a report of a missed write about the source
/// either (only active reporters are heard), so its silence proves nothing;
/// it is only believed when it says the source is offline.
fn stayed_active(before: &[Standing], now: &[Standing]) -> bool {
    let was_active = |n: &Standing| {
        before.iter().any(|b| b.tracker == n.tracker && b.state == MemberState::Active && b.round == n.round)
    };
    let vouched = now.iter().any(|n| n.state == MemberState::Active && was_active(n));
    let moved = now.iter().any(|n| {
        let had = before.iter().find(|b| b.tracker == n.tracker);
        let left = had.is_some_and(|b| b.state == MemberState::Active && (n.state != b.state || n.round != b.round));
        left || matches!(n.state, MemberState::Offline | MemberState::Removed)
    });
    vouched && !moved
}

/// Replays the peer's binlog after `from`: applies its deletes, copies the
/// blobs its other entries touched where this node's copy differs.
async fn tail(node: &Node, addr: &str, from: SyncPoint, to: SyncPoint, started: Instant) -> Result<(), ProtoError> {
    node.heal_state().from_binlog = true;
    let mut at = from;
    loop {
        let req =
            Request::BinlogTail { generation: from.generation, after_seq: at.seq, offset: at.offset, limit: PAGE };
        let resp = check(node.pool.call(addr, &req).await?)?;
        let Response::BinlogTail { entries, end, more } = resp else {
            return Err(ProtoError::Unexpected { expected: "binlog tail", got: resp.name() });
        };
        let mut touched: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for e in entries {
            let Ok(id) = FileId::parse(&e.file_id) else { continue };
            if e.delete {
                apply_delete(node, id).await?;
            } else if seen.insert(e.file_id.clone()) {
                touched.push(e.file_id);
            }
        }
        let blobs = summaries(node, addr, &touched).await?;
        copy_differing(node, addr, &blobs, started).await?;
        at = end;
        // Bytes left, estimated from what the entries so far cost.
        let left = to.seq.saturating_sub(at.seq);
        let done = at.seq.saturating_sub(from.seq).max(1);
        let mut h = node.heal_state();
        h.bytes_left = h.bytes.saturating_mul(left) / done;
        if !more {
            return Ok(());
        }
    }
}

/// Compares with every tombstone and every blob of the peer.
async fn full(node: &Node, addr: &str, peer_files: u64, started: Instant) -> Result<(), ProtoError> {
    let mut after_seq = 0;
    loop {
        let resp = check(node.pool.call(addr, &Request::Tombstones { after_seq, limit: PAGE }).await?)?;
        let Response::Tombstones { ids, next_seq, more } = resp else {
            return Err(ProtoError::Unexpected { expected: "tombstones", got: resp.name() });
        };
        for s in ids {
            let Ok(id) = FileId::parse(&s) else { continue };
            if node.store.contains_any(&id) {
                apply_delete(node, id).await?;
            }
        }
        after_seq = next_seq;
        if !more {
            break;
        }
    }
    node.heal_state().to_copy = peer_files.saturating_sub(node.store.stats().files);
    compare_listing(node, addr, started).await.map(|_| ())
}

/// Compares this node with the peer's whole listing and copies what
/// differs. Returns how many blobs were copied. Also the last step of a
/// scrub, to find blobs missing here altogether.
pub async fn compare_listing(node: &Node, addr: &str, started: Instant) -> Result<u64, ProtoError> {
    let mut copied = 0;
    let mut after: Option<String> = None;
    loop {
        let resp = check(node.pool.call(addr, &Request::ListBlobs { after: after.clone(), limit: PAGE }).await?)?;
        let Response::Blobs { blobs, more } = resp else {
            return Err(ProtoError::Unexpected { expected: "blobs", got: resp.name() });
        };
        copied += copy_differing(node, addr, &blobs, started).await?;
        after = blobs.last().map(|b| b.file_id.clone());
        if !more || after.is_none() {
            return Ok(copied);
        }
    }
}

async fn apply_delete(node: &Node, id: FileId) -> Result<(), ProtoError> {
    let store = node.store.clone();
    let had = blocking(move || {
        let had = store.contains_any(&id);
        store.delete(&id, Origin::Replica).map(|()| had)
    })
    .await?;
    if had {
        node.heal_state().deleted += 1;
    }
    Ok(())
}

/// Copies each listed blob that this node lacks or holds otherwise.
async fn copy_differing(node: &Node, addr: &str, blobs: &[BlobSummary], started: Instant) -> Result<u64, ProtoError> {
    let mut copied = 0;
    for b in blobs {
        let Ok(id) = FileId::parse(&b.file_id) else { continue };
        let here = local_state(node, &id).await;
        if here == (Expect::Is { size: b.size, crc32: b.crc32 }) || node.store.was_deleted(&id) {
            continue;
        }
        if copy_one(node, addr, &id, Some(here), started).await?.is_some() {
            copied += 1;
        }
    }
    Ok(copied)
}

/// What this node holds of a blob: both halves, or nothing usable.
async fn local_state(node: &Node, id: &FileId) -> Expect {
    let store = node.store.clone();
    let id = id.clone();
    tokio::task::spawn_blocking(move || {
        store
            .contains(&id)
            .then(|| store.record(&id).ok())
            .flatten()
            .map(|r| Expect::Is { size: r.size, crc32: r.crc32 })
    })
    .await
    .ok()
    .flatten()
    .unwrap_or(Expect::Absent)
}

/// Copies one blob from `addr`, unless a write here changes it meanwhile
/// (then it looks again), and counts it in the heal status. `here` is what
/// the caller just found here, if it looked. Returns the bytes copied, or
/// `None` when there was nothing to copy (deleted at the source or here).
async fn copy_one(
    node: &Node,
    addr: &str,
    id: &FileId,
    mut here: Option<Expect>,
    started: Instant,
) -> Result<Option<u64>, ProtoError> {
    for _ in 0..COPY_TRIES {
        if node.store.was_deleted(id) {
            return Ok(None);
        }
        let expect = match here.take() {
            Some(e) => e,
            None => local_state(node, id).await,
        };
        match fetch_into(node, addr, id, expect).await {
            Ok(n) => {
                let mut h = node.heal_state();
                h.copied += 1;
                h.bytes += n;
                h.bytes_left = h.bytes_left.saturating_sub(n);
                h.to_copy = h.to_copy.max(h.copied);
                let secs = started.elapsed().as_secs_f64();
                if secs > 0.0 {
                    h.bytes_per_sec = (h.bytes as f64 / secs) as u64;
                }
                return Ok(Some(n));
            }
            Err(ProtoError::Remote(e)) if e.code == ErrorCode::NotFound => return Ok(None),
            Err(ProtoError::Remote(e)) if e.code == ErrorCode::Exists => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Copies one blob from `source` over what is here, provided what is here
/// is still `expect`. Returns its size.
pub async fn fetch_into(node: &Node, source: &str, id: &FileId, expect: Expect) -> Result<u64, ProtoError> {
    let mut c = node.pool.get(source).await?;
    write_frame(&mut c.conn, &Request::FetchBlob { file_id: id.to_string() }).await?;
    c.conn.flush().await?;
    let resp: Response = expect_frame(&mut c.conn).await?;
    let (info, meta) = match check(resp)? {
        Response::Blob { info, meta } => (info, meta),
        other => return Err(ProtoError::Unexpected { expected: "blob", got: other.name() }),
    };
    let store = node.store.clone();
    let sp = id.store_path();
    let mut spool = Some(blocking(move || store.spool(sp)).await?);
    let mut body = BodyReader::new();
    loop {
        let chunk = match body.next(&mut c.conn).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(ProtoError::BodyAborted) => {
                let why: Response = expect_frame(&mut c.conn).await?;
                node.pool.put(c);
                check(why)?;
                return Err(ProtoError::BodyAborted);
            }
            Err(e) => return Err(e),
        };
        node.heal_rate.take(chunk.len() as u64).await;
        let Some(mut s) = spool.take() else { break };
        spool = Some(blocking(move || s.write(&chunk).map(|()| s)).await?);
    }
    node.pool.put(c);
    let Some(spool) = spool else { return Err(ProtoError::BodyAborted) };
    let spooled = blocking(move || spool.finish()).await?;
    let store = node.store.clone();
    let id = id.clone();
    let size = info.size;
    blocking(move || store.replace(spooled, &id, &info, meta, expect)).await?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(tracker: &str, state: MemberState, round: u64) -> Standing {
        Standing { tracker: tracker.into(), state, round, forwarded: true }
    }

    #[test]
    fn a_source_active_throughout_is_believed() {
        let s = [at("t0", MemberState::Active, 3), at("t1", MemberState::Active, 7)];
        assert!(stayed_active(&s, &s));
    }

    #[test]
    fn a_restarted_tracker_that_lists_the_source_as_syncing_does_not_block() {
        let before = [at("t0", MemberState::Syncing, 2), at("t1", MemberState::Active, 7)];
        assert!(stayed_active(&before, &before));
        // nor when it first heard of the source during the catch-up
        let before = [at("t1", MemberState::Active, 7)];
        let now = [at("t0", MemberState::Syncing, 2), at("t1", MemberState::Active, 7)];
        assert!(stayed_active(&before, &now));
    }

    #[test]
    fn a_source_no_tracker_vouches_for_is_refused() {
        let before = [at("t0", MemberState::Syncing, 2), at("t1", MemberState::Active, 7)];
        // t1 went away: only the tracker that never counted it active is left
        assert!(!stayed_active(&before, &[at("t0", MemberState::Syncing, 2)]));
        assert!(!stayed_active(&[], &[at("t0", MemberState::Active, 2)]));
        assert!(!stayed_active(&before, &[]));
    }

    #[test]
    fn a_source_moved_by_any_tracker_is_refused() {
        let before = [at("t0", MemberState::Active, 3), at("t1", MemberState::Active, 7)];
        // one tracker took it out (a missed write) and back in: a new round
        assert!(!stayed_active(&before, &[at("t0", MemberState::Active, 3), at("t1", MemberState::Active, 8)]));
        assert!(!stayed_active(&before, &[at("t0", MemberState::Active, 3), at("t1", MemberState::Offline, 7)]));
        assert!(!stayed_active(&before, &[at("t0", MemberState::Active, 3), at("t1", MemberState::Syncing, 8)]));
        // a tracker that had it syncing now says offline
        let before = [at("t0", MemberState::Syncing, 2), at("t1", MemberState::Active, 7)];
        assert!(!stayed_active(&before, &[at("t0", MemberState::Offline, 2), at("t1", MemberState::Active, 7)]));
    }
}
