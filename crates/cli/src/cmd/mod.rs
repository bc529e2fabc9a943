//! One module per group of subcommands.

pub mod bench;
pub mod blob;
pub mod daemon;
pub mod front;
pub mod group;
pub mod heal;
pub mod mount;
pub mod status;
pub mod volume;

use anyhow::Result;
use cairn_client::{Client, ClientConfig};

use crate::{secret, ClusterArgs, DEFAULT_TRACKER_PORT};

/// The trackers a client command uses: `--tracker`, else `$CAIRN_TRACKER`,
/// else the local default.
pub fn trackers(args: &ClusterArgs) -> Vec<String> {
    if !args.tracker.is_empty() {
        return args.tracker.clone();
    }
    if let Ok(v) = std::env::var("CAIRN_TRACKER") {
        let list: Vec<String> = v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if !list.is_empty() {
            return list;
        }
    }
    vec![format!("127.0.0.1:{DEFAULT_TRACKER_PORT}")]
}

/// A client for a command.
pub fn client(args: &ClusterArgs) -> Result<Client> {
    let secret = secret::for_client(args.secret_file.as_deref())?;
    Ok(Client::new(ClientConfig::new(trackers(args), secret)))
}
