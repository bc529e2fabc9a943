//! The node's persistent numeric ID.

use std::path::Path;

use rand::Rng;

use crate::error::{Error, Result};

const NODE_ID_FILE: &str = "node_id";

/// Reads the node ID from `<data>/node_id`, or makes and saves one.
///
/// IDs are below 2^24 because FastDFS readers take larger values in a file
/// name's source field for IPv4 addresses; they start at 100000 so that
/// they look like FastDFS storage IDs.
pub fn load_or_create(data_dir: &Path) -> Result<u32> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u32>().ok().filter(|id| *id > 0 && *id < (1 << 24)).ok_or_else(|| {
            Error::Setup { path: path.clone(), reason: format!("not a valid node ID: {:?}", text.trim()) }
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = rand::thread_rng().gen_range(100_000..(1u32 << 24));
            crate::layout::write_durably(&path, format!("{id}\n").as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(Error::io(&path)(e)),
    }
}
