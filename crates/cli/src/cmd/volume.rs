//! `cairn volume`: volumes of the meta service.

use anyhow::Result;
use cairn_client::MetaClient;
use cairn_proto::meta::Volume;
use clap::{Args, Subcommand};

use crate::units::{human_bytes, parse_size, rfc3339};
use crate::{secret, ClusterArgs};

/// Default port of the meta service.
pub const DEFAULT_META_PORT: u16 = 22500;

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
    /// Delete a volume and everything in it
    Delete {
        /// Name
        name: String,
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

fn json(v: &Volume, inodes: Option<u64>) -> serde_json::Value {
    serde_json::json!({
        "name": v.name,
        "id": v.id,
        "groups": v.groups,
        "chunk_size": v.chunk_size,
        "created": v.created,
        "inodes": inodes,
    })
}

fn groups_text(v: &Volume) -> String {
    if v.groups.is_empty() {
        "(all)".into()
    } else {
        v.groups.join(",")
    }
}

/// `cairn volume ...`
pub async fn run(a: VolumeArgs) -> Result<()> {
    let secret = secret::for_client(a.cluster.secret_file.as_deref())?;
    let addr = a.meta.addr();
    let m = MetaClient::new(addr.clone(), secret);
    match a.cmd {
        VolumeCmd::Create { name, groups, chunk_size } => {
            let chunk = parse_size(&chunk_size).map_err(anyhow::Error::msg)?;
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
                let all: Vec<_> = vols.iter().map(|v| json(v, None)).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for v in vols {
                    println!(
                        "{:<24} groups {:<20} chunk {:>8}  created {}",
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
            let stats = match m.call(cairn_proto::meta::MetaRequest::Stats { vol: v.id }).await? {
                cairn_proto::meta::MetaResponse::Stats(s) => Some(s.inodes),
                _ => None,
            };
            if as_json {
                println!("{}", serde_json::to_string_pretty(&json(&v, stats))?);
            } else {
                println!("volume      {}", v.name);
                println!("groups      {}", groups_text(&v));
                println!("chunk size  {}", human_bytes(v.chunk_size));
                println!("created     {}", rfc3339(v.created));
                if let Some(n) = stats {
                    println!("inodes      {n} allocated");
                }
            }
        }
        VolumeCmd::Delete { name } => {
            m.delete_volume(&name).await?;
            println!("volume {name} deleted; its blobs are collected after the grace period");
        }
        VolumeCmd::Check { name, json: as_json } => {
            let v = m.volume(&name).await?;
            let (examined, problems) = match m.call(cairn_proto::meta::MetaRequest::Check { vol: v.id }).await? {
                cairn_proto::meta::MetaResponse::Checked { examined, problems } => (examined, problems),
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
