//! `cairn volume`: volumes of the meta service.

use anyhow::{Context, Result};
use cairn_client::MetaClient;
use cairn_proto::meta::{MetaRequest, MetaResponse, Volume, VolumeClient, VolumeStats};
use clap::{Args, Subcommand};

use crate::units::{human_bytes, parse_size, rfc3339};
use crate::{secret, ClusterArgs};

/// Default port of the meta service.
pub use cairn_meta::DEFAULT_META_PORT;

/// Where commands find the meta service.
#[derive(Args, Debug, Clone)]
pub struct MetaArgs {
    /// Meta service address [default: $CAIRN_META, then 127.0.0.1:22500]
    #[arg(long, env = "CAIRN_META", global = true)]
    pub meta: Option<String>,
}

impl MetaArgs {
    /// The meta service's address.
    pub fn addr(&self) -> String {
        self.meta.clone().unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_META_PORT}"))
    }
}

/// `cairn volume`
#[derive(Args, Debug)]
pub struct VolumeArgs {
    #[command(subcommand)]
    cmd: VolumeCmd,
    #[command(flatten)]
    meta: MetaArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Subcommand, Debug)]
enum VolumeCmd {
    /// Create a volume whose data is spread over GROUPS (default: every group)
    Create {
        /// Name: letters, digits, '-' and '_'
        name: String,
        /// Groups to spread the data over, comma-separated
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Largest blob a write makes, e.g. 64M
        #[arg(long, default_value = "64M")]
        chunk_size: String,
    },
    /// List the volumes
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// One volume's settings and counts
    Info {
        /// Name
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete a volume and everything in it (refused while mounted, unless --force)
    Delete {
        /// Name
        name: String,
        /// Delete even while mounts or gateways use it (they then fail every call)
        #[arg(long)]
        force: bool,
    },
    /// Check a volume's namespace for consistency (entries, inodes, link
    /// counts); exits 1 when it finds a problem
    Check {
        /// Name
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

fn json(v: &Volume, stats: Option<VolumeStats>, missing: &[String], clients: &[VolumeClient]) -> serde_json::Value {
    serde_json::json!({
        "name": v.name,
        "id": v.id,
        "groups": v.groups,
        "missing_groups": missing,
        "chunk_size": v.chunk_size,
        "created": v.created,
        "inodes": stats.map(|s| s.inodes),
        "bytes_used": stats.map(|s| s.bytes),
        "clients": clients.iter().map(|c| serde_json::json!({ "what": c.what, "last_seen": c.last_seen })).collect::<Vec<_>>(),
    })
}

fn groups_text(v: &Volume) -> String {
    if v.groups.is_empty() {
        "(all)".into()
    } else {
        v.groups.join(",")
    }
}

/// The cluster map, from a tracker.
async fn cluster_map(cluster: &ClusterArgs) -> Result<cairn_proto::ClusterMap> {
    super::client(cluster)?.status().await.context("cannot ask the tracker which groups exist")
}

/// Refuses groups the cluster does not have: a volume over them would take
/// files whose content cannot be stored anywhere.
fn check_groups(asked: &[String], have: &[String]) -> Result<()> {
    if have.is_empty() {
        anyhow::bail!("the cluster has no storage group yet: start a storage node first");
    }
    let missing: Vec<&String> = asked.iter().filter(|g| !have.contains(g)).collect();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|g| g.as_str()).collect();
        anyhow::bail!(
            "no group {} in the cluster (it has {}); a volume's data must go to groups that exist",
            names.join(", "),
            have.join(", ")
        );
    }
    Ok(())
}

/// `cairn volume ...`
pub async fn run(a: VolumeArgs) -> Result<()> {
    let secret = secret::for_client(a.cluster.secret_file.as_deref())?;
    let addr = a.meta.addr();
    let m = MetaClient::new(addr.clone(), secret);
    match a.cmd {
        VolumeCmd::Create { name, groups, chunk_size } => {
            let chunk = parse_size(&chunk_size).map_err(anyhow::Error::msg)?;
            let have: Vec<String> = cluster_map(&a.cluster).await?.groups.into_iter().map(|g| g.name).collect();
            check_groups(&groups, &have)?;
            let v = m.create_volume(&name, groups, chunk).await?;
            println!(
                "volume {} created (groups {}, chunk size {})",
                v.name,
                groups_text(&v),
                human_bytes(v.chunk_size)
            );
        }
        VolumeCmd::List { json: as_json } => {
            let vols = m.volumes().await?;
            if as_json {
                let all: Vec<_> = vols.iter().map(|v| json(v, None, &[], &[])).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if vols.is_empty() {
                println!("no volumes (make one with: cairn volume create NAME)");
            } else {
                println!("{:<24} {:<20} {:>8}  CREATED", "NAME", "GROUPS", "CHUNK");
                for v in vols {
                    println!(
                        "{:<24} {:<20} {:>8}  {}",
                        v.name,
                        groups_text(&v),
                        human_bytes(v.chunk_size),
                        rfc3339(v.created)
                    );
                }
            }
        }
        VolumeCmd::Info { name, json: as_json } => {
            let v = m.volume(&name).await?;
            let stats = match m.call(MetaRequest::Stats { vol: v.id }).await? {
                MetaResponse::Stats(s) => Some(s),
                _ => None,
            };
            let clients = match m.call(MetaRequest::Clients { vol: v.id }).await? {
                MetaResponse::Clients(c) => c,
                _ => Vec::new(),
            };
            // The trackers may be unreachable: the rest is still worth showing.
            let (missing, unknown) = match cluster_map(&a.cluster).await {
                Ok(map) => (v.groups_missing_from(&map), None),
                Err(e) => (Vec::new(), Some(format!("{e:#}"))),
            };
            if as_json {
                println!("{}", serde_json::to_string_pretty(&json(&v, stats, &missing, &clients))?);
            } else {
                println!("volume      {}", v.name);
                println!("groups      {}", groups_text(&v));
                if !missing.is_empty() {
                    println!(
                        "            MISSING from the cluster: {} (writes to them fail until they are back)",
                        missing.join(", ")
                    );
                }
                if let Some(e) = unknown {
                    println!("            (could not check them: {e})");
                }
                println!("chunk size  {}", human_bytes(v.chunk_size));
                println!("created     {}", rfc3339(v.created));
                if let Some(s) = stats {
                    println!("used        {} in files", human_bytes(s.bytes));
                    println!("inodes      {} allocated", s.inodes);
                }
                match clients.len() {
                    0 => println!("attached    nothing (not mounted)"),
                    _ => {
                        for (i, c) in clients.iter().enumerate() {
                            println!("{}{}", if i == 0 { "attached    " } else { "            " }, c.what);
                        }
                    }
                }
            }
        }
        VolumeCmd::Delete { name, force } => {
            m.delete_volume(&name, force).await?;
            println!("volume {name} deleted; its blobs are collected after the grace period");
        }
        VolumeCmd::Check { name, json: as_json } => {
            let v = m.volume(&name).await?;
            let (examined, problems) = match m.call(MetaRequest::Check { vol: v.id }).await? {
                MetaResponse::Checked { examined, problems } => (examined, problems),
                other => anyhow::bail!("meta service {addr}: unexpected answer {other:?}"),
            };
            if as_json {
                let j = serde_json::json!({ "volume": v.name, "examined": examined, "problems": problems });
                println!("{}", serde_json::to_string_pretty(&j)?);
            } else {
                for p in &problems {
                    println!("{p}");
                }
                println!("volume {}: {examined} inodes and entries checked, {} problems", v.name, problems.len());
            }
            if !problems.is_empty() {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
