//! `cairn group`: membership of groups, on every tracker.

use anyhow::{bail, Result};
use cairn_proto::{Request, Response};
use clap::{Args, Subcommand};

use super::{client, trackers};
use crate::ClusterArgs;

/// `cairn group`
#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(subcommand)]
    cmd: GroupCmd,
}

#[derive(Subcommand, Debug)]
enum GroupCmd {
    /// Put a spare storage node (`cairn storage --spare`) into GROUP; it fills from its peers, then turns active
    AddNode {
        /// The group (a new name starts a new group)
        group: String,
        /// Address the spare reports from
        addr: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Take a member out of GROUP for good (it then serves nothing; wipe it before reuse)
    RemoveNode {
        /// The group
        group: String,
        /// The member's node ID (see `cairn status`)
        node_id: u32,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// `cairn group ...`: the request goes to every tracker, since each keeps
/// its own map; it is done when at least one took it (the node carries the
/// news to the others).
pub async fn run(a: GroupArgs) -> Result<()> {
    let (req, cluster, done) = match a.cmd {
        GroupCmd::AddNode { group, addr, cluster } => {
            let done = format!(
                "{addr} joins {group}: it copies the group's files, then turns active (see `cairn heal status`)"
            );
            (Request::AddMember { group, addr }, cluster, done)
        }
        GroupCmd::RemoveNode { group, node_id, cluster } => {
            let done =
                format!("member {node_id} removed from {group}; stop it and wipe its data dir before reusing it");
            (Request::RemoveMember { group, node_id }, cluster, done)
        }
    };
    let c = client(&cluster)?;
    let mut taken = 0;
    let mut errors = Vec::new();
    for t in trackers(&cluster) {
        match c.node_call(&t, &req).await {
            Ok(Response::Ok) => taken += 1,
            Ok(other) => errors.push(format!("{t}: unexpected answer {}", other.name())),
            Err(e) => errors.push(format!("{t}: {e}")),
        }
    }
    if taken == 0 {
        bail!("{}", errors.join("; "));
    }
    for e in errors {
        eprintln!("warning: {e}");
    }
    println!("{done}");
    Ok(())
}
