//! Finding the cluster secret: `--secret-file`, then `CAIRN_SECRET`, then a
//! `secret` file in the data directory (the one `cairn server` writes).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use cairn_proto::ClusterSecret;

/// Name of the secret file in a data directory.
pub const SECRET_FILE: &str = "secret";

fn from_file(path: &Path) -> Result<ClusterSecret> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the secret file {}", path.display()))?;
    ClusterSecret::from_text(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn from_env() -> Result<Option<ClusterSecret>> {
    match std::env::var("CAIRN_SECRET") {
        Ok(v) => Ok(Some(ClusterSecret::from_text(&v).map_err(|e| anyhow!("CAIRN_SECRET: {e}"))?)),
        Err(_) => Ok(None),
    }
}

/// The secret for a role or client; `data_dir` is where a `secret` file may be.
pub fn resolve(flag: Option<&Path>, data_dir: Option<&Path>) -> Result<Option<ClusterSecret>> {
    if let Some(f) = flag {
        return from_file(f).map(Some);
    }
    if let Some(s) = from_env()? {
        return Ok(Some(s));
    }
    if let Some(d) = data_dir {
        let p = d.join(SECRET_FILE);
        if p.exists() {
            return from_file(&p).map(Some);
        }
    }
    Ok(None)
}

/// Like [`resolve`], failing with advice when there is none.
pub fn require(flag: Option<&Path>, data_dir: Option<&Path>) -> Result<ClusterSecret> {
    resolve(flag, data_dir)?.ok_or_else(|| {
        anyhow!("no cluster secret: set CAIRN_SECRET or pass --secret-file FILE (every node and client of a cluster needs the same one)")
    })
}

/// The secret of `cairn server`: given, or kept in (and if need be created
/// in) its data directory. Returns it and the file it is in, if any.
pub fn for_server(flag: Option<&Path>, data_dir: &Path) -> Result<(ClusterSecret, Option<PathBuf>, bool)> {
    if let Some(f) = flag {
        return Ok((from_file(f)?, Some(f.to_path_buf()), false));
    }
    if let Some(s) = from_env()? {
        return Ok((s, None, false));
    }
    let path = data_dir.join(SECRET_FILE);
    if path.exists() {
        return Ok((from_file(&path)?, Some(path), false));
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let text = ClusterSecret::generate_text();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(f, "{text}")?;
    f.sync_all()?;
    let secret = ClusterSecret::from_text(&text).map_err(|e| anyhow!(e))?;
    Ok((secret, Some(path), true))
}
