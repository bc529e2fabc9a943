//! `cairn status`: the cluster at a glance (what `fdfs_monitor` is to FastDFS).

use anyhow::Result;
use clap::Args;

use super::client;
use crate::units::human_bytes;
use crate::ClusterArgs;

/// `cairn status`
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print JSON: {"tracker": ..., "groups": [{"name", "members": [{"id", "addr", "state", ...}]}]}
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `cairn status`
pub async fn run(a: StatusArgs) -> Result<()> {
    let c = client(&a.cluster)?;
    let map = c.status().await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&map)?);
        return Ok(());
    }
    println!("tracker {}: {} group(s)", map.tracker, map.groups.len());
    for g in &map.groups {
        let active = g.members.iter().filter(|m| m.state == cairn_proto::MemberState::Active).count();
        println!();
        println!(
            "group {}  epoch {}  primary {}  members {}/{} active  free {} of {}{}",
            g.name,
            g.epoch,
            g.primary.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            active,
            g.members.len(),
            human_bytes(g.free),
            human_bytes(g.total),
            if g.writable { "" } else { "  (full: no uploads)" },
        );
        println!(
            "  {:<9} {:<22} {:<8} {:>9} {:>11} {:>11} {:>5} {:>10}",
            "NODE", "ADDR", "STATE", "FILES", "STORED", "FREE", "LOAD", "HEARTBEAT"
        );
        for m in &g.members {
            println!(
                "  {:<9} {:<22} {:<8} {:>9} {:>11} {:>11} {:>5} {:>8}ms{}",
                m.id,
                m.addr,
                m.state.as_str(),
                m.files,
                human_bytes(m.bytes),
                human_bytes(m.free),
                m.load,
                m.last_heartbeat_ms,
                if m.primary { "  primary" } else { "" },
            );
        }
    }
    if !map.spares.is_empty() {
        println!();
        println!("spare storage nodes (state init; `cairn group add-node GROUP ADDR` puts one into a group)");
        for s in &map.spares {
            println!(
                "  {:<22} {:<8} {:>8}ms{}",
                s.addr,
                "init",
                s.last_heartbeat_ms,
                s.assigned.as_ref().map(|g| format!("  joining {g}")).unwrap_or_default()
            );
        }
    }
    Ok(())
}
