//! `cairn heal` and `cairn scrub`: recovery and verification, per node.

use anyhow::Result;
use cairn_proto::{MemberState, Request, Response};
use clap::{Args, Subcommand};

use super::client;
use crate::units::human_bytes;
use crate::ClusterArgs;

/// `cairn heal`
#[derive(Args, Debug)]
pub struct HealArgs {
    #[command(subcommand)]
    cmd: HealCmd,
}

#[derive(Subcommand, Debug)]
enum HealCmd {
    /// Per group: members in sync, blobs copied and left, bytes/s, ETA
    Status(StatusOpts),
    /// Set the pace of catch-up and repair copying on every node (MiB/s, 0 = unlimited)
    Rate(RateOpts),
}

/// `cairn scrub`
#[derive(Args, Debug)]
pub struct ScrubArgs {
    #[command(subcommand)]
    cmd: ScrubCmd,
}

#[derive(Subcommand, Debug)]
enum ScrubCmd {
    /// Start a scrub on every storage node (or one, with --node)
    Start(NodeOpts),
    /// Scrub progress on every storage node
    Status(StatusOpts),
    /// Set the scrub pace on every node (MiB/s, 0 = unlimited)
    Rate(RateOpts),
}

#[derive(Args, Debug)]
struct StatusOpts {
    /// Print JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Args, Debug)]
struct NodeOpts {
    /// Only this storage node
    #[arg(long)]
    node: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Args, Debug)]
struct RateOpts {
    /// MiB/s; 0 means unlimited
    mib_per_s: u64,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// (group, member id, addr, state) of every member that is not offline.
async fn members(c: &cairn_client::Client) -> Result<Vec<(String, u32, String, MemberState)>> {
    let map = c.status().await?;
    Ok(map
        .groups
        .into_iter()
        .flat_map(|g| {
            let name = g.name.clone();
            g.members.into_iter().map(move |m| (name.clone(), m.id, m.addr, m.state))
        })
        .filter(|(_, _, _, s)| !matches!(s, MemberState::Offline | MemberState::Removed))
        .collect())
}

async fn set_rates(o: RateOpts, heal: bool) -> Result<()> {
    let c = client(&o.cluster)?;
    let req = if heal {
        Request::SetRates { heal_mib: Some(o.mib_per_s), scrub_mib: None }
    } else {
        Request::SetRates { heal_mib: None, scrub_mib: Some(o.mib_per_s) }
    };
    let nodes = members(&c).await?;
    for (_, _, addr, _) in &nodes {
        c.node_call(addr, &req).await?;
    }
    let what = if heal { "catch-up and repair copying" } else { "scrub reading" };
    let pace = match o.mib_per_s {
        0 => "unlimited".to_string(),
        n => format!("{n} MiB/s"),
    };
    // Nodes started later, or restarted, take their own flag or default.
    println!("{what} set to {pace} on {} node(s) (until they restart)", nodes.len());
    Ok(())
}

/// `cairn heal ...`
pub async fn heal(a: HealArgs) -> Result<()> {
    let o = match a.cmd {
        HealCmd::Status(o) => o,
        HealCmd::Rate(r) => return set_rates(r, true).await,
    };
    let c = client(&o.cluster)?;
    let map = c.status().await?;
    let mut groups = Vec::new();
    for g in &map.groups {
        let mut rows = Vec::new();
        for m in &g.members {
            let heal = if matches!(m.state, MemberState::Offline | MemberState::Removed) {
                None
            } else {
                match c.node_call(&m.addr, &Request::HealStatus).await {
                    Ok(Response::Heal(h)) => Some(h),
                    _ => None,
                }
            };
            rows.push((m, heal));
        }
        // Removed members are no longer part of the group.
        rows.retain(|(m, _)| m.state != MemberState::Removed);
        let in_sync = rows.iter().filter(|(m, _)| m.state == MemberState::Active).count();
        groups.push((g, in_sync, rows));
    }
    if o.json {
        let v: Vec<serde_json::Value> = groups
            .iter()
            .map(|(g, in_sync, rows)| {
                serde_json::json!({
                    "name": g.name,
                    "healthy": *in_sync == rows.len(),
                    "members_in_sync": in_sync,
                    "members": rows.len(),
                    "nodes": rows.iter().map(|(m, h)| {
                        let rate = h.as_ref().map(|h| h.bytes_per_sec);
                        serde_json::json!({
                            "id": m.id, "addr": m.addr, "state": m.state.as_str(),
                            "syncing": h.as_ref().map(|h| h.running),
                            "to_copy": h.as_ref().map(|h| h.to_copy),
                            "copied": h.as_ref().map(|h| h.copied),
                            "left": h.as_ref().map(|h| h.to_copy.saturating_sub(h.copied)),
                            "bytes": h.as_ref().map(|h| h.bytes),
                            "bytes_per_s": rate,
                            "bytes_left": h.as_ref().map(|h| h.bytes_left),
                            "eta_secs": h.as_ref().and_then(eta),
                            "from_binlog": h.as_ref().map(|h| h.from_binlog),
                            "deleted": h.as_ref().map(|h| h.deleted),
                            "last_error": h.as_ref().and_then(|h| h.last_error.clone()),
                        })
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "groups": v }))?);
        return Ok(());
    }
    for (g, in_sync, rows) in &groups {
        let health = if *in_sync == rows.len() { "healthy" } else { "healing" };
        println!("group {}: {in_sync}/{} members in sync ({health})", g.name, rows.len());
        for (m, h) in rows {
            match h {
                Some(h) if h.running || m.state == MemberState::Syncing => {
                    println!(
                        "  {:<9} {:<22} {:<8} {} copied {} ({}), {} left, {}/s, ETA {}",
                        m.id,
                        m.addr,
                        m.state.as_str(),
                        if h.from_binlog { "binlog" } else { "full  " },
                        h.copied,
                        human_bytes(h.bytes),
                        human_bytes(h.bytes_left),
                        human_bytes(h.bytes_per_sec),
                        eta(h).map(|s| format!("{s} s")).unwrap_or_else(|| "unknown".into())
                    );
                }
                _ => println!("  {:<9} {:<22} {}", m.id, m.addr, m.state.as_str()),
            }
        }
    }
    Ok(())
}

/// Seconds left at the current copy speed, when both are known.
fn eta(h: &cairn_proto::HealStatus) -> Option<u64> {
    (h.bytes_per_sec > 0).then(|| h.bytes_left.div_ceil(h.bytes_per_sec))
}

/// `cairn scrub ...`
pub async fn scrub(a: ScrubArgs) -> Result<()> {
    let (start, o) = match a.cmd {
        ScrubCmd::Start(o) => (true, o),
        ScrubCmd::Status(s) => (false, NodeOpts { node: None, json: s.json, cluster: s.cluster }),
        ScrubCmd::Rate(r) => return set_rates(r, false).await,
    };
    let c = client(&o.cluster)?;
    let targets: Vec<(String, u32, String)> = match &o.node {
        Some(addr) => vec![(String::new(), 0, addr.clone())],
        None => members(&c).await?.into_iter().map(|(g, id, a, _)| (g, id, a)).collect(),
    };
    let mut out = Vec::new();
    for (group, id, addr) in targets {
        match c.node_call(&addr, &Request::Scrub { start }).await? {
            Response::Scrub(s) => out.push((group, id, addr, s)),
            other => anyhow::bail!("{addr}: unexpected answer {}", other.name()),
        }
    }
    if o.json {
        let v: Vec<serde_json::Value> = out
            .iter()
            .map(|(g, id, addr, s)| serde_json::json!({ "group": g, "id": id, "addr": addr, "scrub": s }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "nodes": v }))?);
        return Ok(());
    }
    println!("{:<8} {:<9} {:<22} {:<7}  PROGRESS", "GROUP", "NODE", "ADDR", "STATE");
    for (g, id, addr, s) in out {
        println!(
            "{g:<8} {id:<9} {addr:<22} {}  checked {}/{} ({}), bad {}, repaired {}, copied {}, scrubs done {}{}",
            if s.running { "running" } else { "idle   " },
            s.checked,
            s.total,
            human_bytes(s.bytes),
            s.bad,
            s.repaired,
            s.copied,
            s.completed,
            s.last_error.map(|e| format!("; last error: {e}")).unwrap_or_default()
        );
    }
    Ok(())
}
