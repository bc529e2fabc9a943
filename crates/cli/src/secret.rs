//! Finding the cluster secret.
//!
//! Daemons: `--secret-file FILE`, then `CAIRN_SECRET` (the secret itself),
//! then `DATA/secret`. Client commands: `--secret-file`, then
//! `CAIRN_SECRET`, then `$CAIRN_DATA/secret` when `CAIRN_DATA` is set,
//! then the secret file of the last `cairn server` this user started,
//! which that server records in a well-known per-user file
//! ([`server_record`]), then `~/.local/share/cairn/secret`: a server
//! started with `--data DIR` is found without exporting anything.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use cairn_proto::ClusterSecret;

/// Name of the secret file in a data directory.
pub const SECRET_FILE: &str = "secret";

/// Name of the file, in the per-user state directory, in which `cairn
/// server` records the path of its secret file for client commands.
const SERVER_RECORD: &str = "server-secret";

/// Where a secret came from, for messages.
#[derive(Debug, Clone)]
pub enum Source {
    /// `--secret-file FILE`.
    Flag(PathBuf),
    /// The `CAIRN_SECRET` variable.
    Env,
    /// A data directory's `secret` file.
    DataDir(PathBuf),
    /// The secret file a `cairn server` recorded (the record, the file).
    Recorded(PathBuf, PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(p) => write!(f, "--secret-file {}", p.display()),
            Source::Env => f.write_str("CAIRN_SECRET"),
            Source::DataDir(p) => write!(f, "{}", p.display()),
            Source::Recorded(record, p) => write!(f, "{} (named in {})", p.display(), record.display()),
        }
    }
}

/// The source of the secret this client command uses, once it has one:
/// an authentication failure names it.
static CLIENT_SOURCE: OnceLock<Source> = OnceLock::new();

/// Where this client command's secret came from, if it has one yet.
pub fn client_source() -> Option<&'static Source> {
    CLIENT_SOURCE.get()
}

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

/// The advice that ends every "no secret" error.
const ADVICE: &str = "pass --secret-file FILE or set CAIRN_SECRET to the secret itself \
                      (every node and client of a cluster needs the same one)";

/// The secret of a daemon (`tracker`, `storage`, `meta`) whose data
/// directory is `data_dir`; an error lists every place it looked.
pub fn require(flag: Option<&Path>, data_dir: &Path) -> Result<ClusterSecret> {
    if let Some(f) = flag {
        return from_file(f);
    }
    if let Some(s) = from_env()? {
        return Ok(s);
    }
    let p = data_dir.join(SECRET_FILE);
    if p.exists() {
        return from_file(&p);
    }
    Err(anyhow!("no cluster secret: no --secret-file given, CAIRN_SECRET not set, no {}; {ADVICE}", p.display()))
}

/// The secret of a client command; an error lists every place it looked.
pub fn for_client(flag: Option<&Path>) -> Result<ClusterSecret> {
    let (secret, source) = find_for_client(flag)?;
    let _ = CLIENT_SOURCE.set(source);
    Ok(secret)
}

fn find_for_client(flag: Option<&Path>) -> Result<(ClusterSecret, Source)> {
    if let Some(f) = flag {
        return Ok((from_file(f)?, Source::Flag(f.to_path_buf())));
    }
    if let Some(s) = from_env()? {
        return Ok((s, Source::Env));
    }
    // An exported CAIRN_DATA is meant; otherwise the last server started
    // is the likelier one than a default data dir an earlier one left.
    let local = crate::config::default_data_dir().join(SECRET_FILE);
    let data_exported = std::env::var_os("CAIRN_DATA").is_some();
    if data_exported && local.exists() {
        return Ok((from_file(&local)?, Source::DataDir(local)));
    }
    let mut looked = vec!["no --secret-file given".to_string(), "CAIRN_SECRET not set".to_string()];
    match server_record() {
        Some(record) => match std::fs::read_to_string(&record) {
            Ok(text) => {
                let path = PathBuf::from(text.trim_end_matches('\n'));
                if path.exists() {
                    return Ok((from_file(&path)?, Source::Recorded(record, path)));
                }
                looked.push(format!("{} names {}, which is gone", record.display(), path.display()));
            }
            Err(_) => looked.push(format!("no `cairn server` recorded its secret in {}", record.display())),
        },
        None => looked.push("no home directory to find a `cairn server`'s record in".to_string()),
    }
    if !data_exported && local.exists() {
        return Ok((from_file(&local)?, Source::DataDir(local)));
    }
    looked.push(format!("no {}", local.display()));
    Err(anyhow!("no cluster secret: {}; {ADVICE}", looked.join(", ")))
}

/// The file in which `cairn server` records the path of its secret file:
/// `$XDG_STATE_HOME/cairn/server-secret`, else
/// `~/.local/state/cairn/server-secret`.
pub fn server_record() -> Option<PathBuf> {
    crate::config::state_dir().map(|d| d.join(SERVER_RECORD))
}

/// Records (or, for a secret that is in no file, forgets) the secret file
/// of a `cairn server` for client commands. A failure only costs clients
/// the convenience, so it is a warning.
fn record_for_clients(path: Option<&Path>) {
    let Some(record) = server_record() else { return };
    let result = match path {
        Some(p) => std::path::absolute(p).and_then(|abs| {
            if let Some(dir) = record.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&record, format!("{}\n", abs.display()))
        }),
        None => match std::fs::remove_file(&record) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    };
    if let Err(e) = result {
        tracing::warn!(record = %record.display(), error = %e, "cannot record the secret's place for client commands");
    }
}

/// The secret of `cairn server`: given, or kept in (and if need be created
/// in) its data directory. Returns it, the file it is in (if any) and
/// whether it was created now. The file is recorded for client commands.
pub fn for_server(flag: Option<&Path>, data_dir: &Path) -> Result<(ClusterSecret, Option<PathBuf>, bool)> {
    let found = find_for_server(flag, data_dir)?;
    record_for_clients(found.1.as_deref());
    Ok(found)
}

fn find_for_server(flag: Option<&Path>, data_dir: &Path) -> Result<(ClusterSecret, Option<PathBuf>, bool)> {
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
