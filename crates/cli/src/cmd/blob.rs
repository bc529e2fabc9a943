//! Commands on files: upload, download, delete, append, modify, truncate,
//! info, metadata.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use cairn_client::{Body, UploadOptions};
use cairn_proto::FileId;
use clap::Args;
use tokio::io::AsyncWriteExt;

use super::client;
use crate::output::Output;
use crate::progress;
use crate::units::rfc3339;
use crate::ClusterArgs;

fn parse_id(s: &str) -> Result<FileId> {
    FileId::parse(s.trim()).map_err(|e| anyhow!(e))
}

/// What to send for `src` (a file, or - for standard input), with a bar
/// following a large file's upload when standard error is a terminal.
fn body_of(src: &str) -> Result<(Body, Option<progress::Follow>)> {
    if src == "-" {
        return Ok((Body::Reader(Box::new(tokio::io::stdin())), None));
    }
    let p = PathBuf::from(src);
    let meta = std::fs::metadata(&p).with_context(|| format!("cannot read {src}"))?;
    if meta.is_dir() {
        bail!("{src} is a directory");
    }
    Ok(match progress::bar(meta.len(), "upload") {
        Some(bar) => {
            let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            (Body::CountedFile(p, sent.clone()), Some(progress::follow(bar, sent)))
        }
        None => (Body::File(p), None),
    })
}

/// `cairn upload`
#[derive(Args, Debug)]
pub struct UploadArgs {
    /// File to upload, or - for standard input
    file: String,
    /// Group to upload into [default: chosen by the tracker]
    #[arg(long)]
    group: Option<String>,
    /// Make an appender file (takes append, modify, truncate later)
    #[arg(long)]
    appender: bool,
    /// Extension of the stored name [default: the file's own]
    #[arg(long)]
    ext: Option<String>,
    /// Upload as a slave file of this master (with --prefix)
    #[arg(long, requires = "prefix")]
    slave_of: Option<String>,
    /// Prefix of the slave file's name, e.g. _150x150
    #[arg(long, requires = "slave_of")]
    prefix: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

fn ext_of(a: &UploadArgs) -> Result<String> {
    let ext = match &a.ext {
        Some(e) => e.trim_start_matches('.').to_string(),
        None if a.file == "-" => String::new(),
        None => std::path::Path::new(&a.file)
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .filter(|e| cairn_proto::file_id::validate_ext(e).is_ok())
            .unwrap_or_default(),
    };
    cairn_proto::file_id::validate_ext(&ext).map_err(|r| anyhow!("--ext {ext:?}: {r}"))?;
    Ok(ext)
}

/// `cairn upload`
pub async fn upload(a: UploadArgs) -> Result<()> {
    let c = client(&a.cluster)?;
    let ext = ext_of(&a)?;
    let (body, _bar) = body_of(&a.file)?;
    let id = match (&a.slave_of, &a.prefix) {
        (Some(master), Some(prefix)) => c.upload_slave(&parse_id(master)?, prefix, &ext, body).await?,
        _ => c.upload(&UploadOptions { group: a.group.clone(), appender: a.appender, ext }, body).await?,
    };
    println!("{id}");
    Ok(())
}

/// `cairn download`
#[derive(Args, Debug)]
pub struct DownloadArgs {
    /// File ID
    id: String,
    /// Output file, or - for standard output [default: standard output, or the file's name when that is a terminal]
    #[arg(short = 'o', long = "output")]
    output: Option<String>,
    /// First byte to read
    #[arg(long, default_value_t = 0)]
    offset: u64,
    /// Bytes to read [default: to the end]
    #[arg(long)]
    length: Option<u64>,
    /// Read from this storage node only (to check one replica)
    #[arg(long)]
    from: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `cairn download`
pub async fn download(a: DownloadArgs) -> Result<()> {
    let c = client(&a.cluster)?;
    let id = parse_id(&a.id)?;
    let (out, told) = match a.output.as_deref() {
        Some(o) => (o.to_string(), false),
        // A terminal would show binary bytes: save under the file's name.
        None if std::io::stdout().is_terminal() => (id.name().to_string(), true),
        None => ("-".to_string(), false),
    };
    // The size, for a bar, only when someone watches one.
    let total = match std::io::stderr().is_terminal() {
        true => c.info(&id).await.ok().map(|i| a.length.unwrap_or(i.size.saturating_sub(a.offset))),
        false => None,
    };
    let bar = total.and_then(|t| progress::bar(t, "download"));
    if out == "-" {
        let mut stdout = tokio::io::stdout();
        fetch(&c, &a, &id, &mut progress::Tracked::new(&mut stdout, bar)).await?;
        stdout.flush().await.context("writing standard output")?;
        return Ok(());
    }
    // Checked before anything is fetched: a directory is refused, a device
    // or FIFO written into, anything else replaced only when complete.
    let output = Output::open(&out)?;
    let mut f = output.writer().await?;
    fetch(&c, &a, &id, &mut progress::Tracked::new(&mut f, bar)).await?;
    let target = output.target().display().to_string();
    output.finish(f).await?;
    if told {
        eprintln!("saved as {target}");
    }
    Ok(())
}

/// Fetches the asked range of `id` into `sink`.
async fn fetch<W: tokio::io::AsyncWrite + Unpin>(
    c: &cairn_client::Client,
    a: &DownloadArgs,
    id: &FileId,
    sink: &mut W,
) -> Result<u64> {
    Ok(match &a.from {
        Some(addr) => c.download_from(addr, id, a.offset, a.length, sink).await?,
        None => c.download_to(id, a.offset, a.length, sink).await?,
    })
}

/// A command that takes only a file ID.
#[derive(Args, Debug)]
pub struct IdArgs {
    /// File ID
    id: String,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `cairn delete`
pub async fn delete(a: IdArgs) -> Result<()> {
    let c = client(&a.cluster)?;
    c.delete(&parse_id(&a.id)?).await?;
    Ok(())
}

/// `cairn append`
#[derive(Args, Debug)]
pub struct AppendArgs {
    /// Appender file ID
    id: String,
    /// Data to append: a file, or - for standard input
    file: String,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `cairn append`
pub async fn append(a: AppendArgs) -> Result<()> {
    let c = client(&a.cluster)?;
    let (body, _bar) = body_of(&a.file)?;
    c.append(&parse_id(&a.id)?, body).await?;
    Ok(())
}

/// `cairn modify`
#[derive(Args, Debug)]
pub struct ModifyArgs {
    /// Appender file ID
    id: String,
    /// Where the new bytes go
    offset: u64,
    /// The bytes: a file, or - for standard input
    file: String,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `cairn modify`
pub async fn modify(a: ModifyArgs) -> Result<()> {
    let c = client(&a.cluster)?;
    let (body, _bar) = body_of(&a.file)?;
    c.modify(&parse_id(&a.id)?, a.offset, body).await?;
    Ok(())
}

/// `cairn truncate`
#[derive(Args, Debug)]
pub struct TruncateArgs {
    /// Appender file ID
    id: String,
    /// New size in bytes
    size: u64,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `cairn truncate`
pub async fn truncate(a: TruncateArgs) -> Result<()> {
    let c = client(&a.cluster)?;
    c.truncate(&parse_id(&a.id)?, a.size).await?;
    Ok(())
}

/// `cairn info`
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// File ID
    id: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `cairn info`
pub async fn info(a: InfoArgs) -> Result<()> {
    let c = client(&a.cluster)?;
    let id = parse_id(&a.id)?;
    let i = c.info(&id).await?;
    if a.json {
        let v = serde_json::json!({
            "file_id": id.to_string(),
            "group": id.group(),
            "size": i.size,
            "crc32": format!("{:08x}", i.crc32),
            "created": i.created,
            "created_at": rfc3339(i.created),
            "source_node": i.source_node,
            "appender": i.appender,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("file id:      {id}");
        println!("size:         {}", i.size);
        println!("crc32:        {:08x}", i.crc32);
        println!("created:      {} ({})", rfc3339(i.created), i.created);
        println!("source node:  {}", i.source_node);
        println!("appender:     {}", if i.appender { "yes" } else { "no" });
    }
    Ok(())
}

/// `cairn meta-set`
#[derive(Args, Debug)]
pub struct MetaSetArgs {
    /// File ID
    id: String,
    /// KEY=VALUE pairs
    #[arg(required = true)]
    pairs: Vec<String>,
    /// Merge with the existing metadata instead of replacing it
    #[arg(long)]
    merge: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `cairn meta-set`
pub async fn meta_set(a: MetaSetArgs) -> Result<()> {
    let c = client(&a.cluster)?;
    let mut meta = Vec::new();
    for p in &a.pairs {
        let (k, v) = p.split_once('=').ok_or_else(|| anyhow!("{p:?} is not KEY=VALUE"))?;
        if k.is_empty() {
            bail!("{p:?} has an empty key");
        }
        meta.push((k.to_string(), v.to_string()));
    }
    c.set_meta(&parse_id(&a.id)?, meta, a.merge).await?;
    Ok(())
}

/// `cairn meta-get`
#[derive(Args, Debug)]
pub struct MetaGetArgs {
    /// File ID
    id: String,
    /// Print a JSON object
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// `cairn meta-get`
pub async fn meta_get(a: MetaGetArgs) -> Result<()> {
    let c = client(&a.cluster)?;
    let meta = c.get_meta(&parse_id(&a.id)?).await?;
    if a.json {
        let obj: serde_json::Map<String, serde_json::Value> =
            meta.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        for (k, v) in meta {
            println!("{k}={v}");
        }
    }
    Ok(())
}
