//! `cairn bench`: upload, download and delete N files of one size with C
//! concurrent workers against a running cluster, and report each phase.
//! With `--fastdfs`, the same phases go through the FastDFS protocol front
//! end, spoken by a FastDFS client written by others (the `fastdfs`
//! crate): what a FastDFS user's programs see, tracker query included.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use cairn_client::{Body, UploadOptions};
use cairn_proto::FileId;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngCore;
use serde::Serialize;

use super::client;
use crate::units::parse_size;
use crate::ClusterArgs;

/// `cairn bench`
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Group to upload into [default: chosen by the tracker]
    #[arg(long)]
    group: Option<String>,
    /// Size of each file: bytes, or 4K, 1M, ...
    #[arg(long, value_parser = parse_size)]
    size: u64,
    /// Number of files
    #[arg(long)]
    count: usize,
    /// Concurrent workers
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// Leave the files in place (no delete phase), e.g. to measure a catch-up
    #[arg(long)]
    keep: bool,
    /// Go through the FastDFS protocol: the address of a tracker's FastDFS
    /// listener (`--fastdfs-listen`, e.g. 127.0.0.1:22122). Each operation
    /// asks that tracker for a storage node, then the node, as FastDFS
    /// clients do.
    #[arg(long, value_name = "ADDR", conflicts_with = "group")]
    fastdfs: Option<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Figures of one phase.
#[derive(Debug, Serialize)]
pub struct PhaseReport {
    ops: usize,
    errors: usize,
    seconds: f64,
    ops_per_s: f64,
    mib_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    size: u64,
    count: usize,
    concurrency: usize,
    upload: PhaseReport,
    download: PhaseReport,
    delete: PhaseReport,
}

/// A download's sink that compares what arrives with what was uploaded, as
/// it arrives: no copy of the file is kept, so the bench measures the
/// download, not its own allocations.
struct Compare<'a> {
    expected: &'a [u8],
    pos: usize,
    differs: bool,
}

impl tokio::io::AsyncWrite for Compare<'_> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let end = self.pos + buf.len();
        if self.expected.get(self.pos..end) != Some(buf) {
            self.differs = true;
        }
        self.pos = end;
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Runs `op(0..count)` on `workers` tasks and measures it.
async fn phase<F, Fut>(name: &str, count: usize, workers: usize, bytes_per_op: u64, quiet: bool, op: F) -> PhaseReport
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(count as u64) };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(name.to_string());
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let errors = Arc::new(Mutex::new((0usize, None::<String>)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (op, next, latencies, errors, bar) =
            (op.clone(), next.clone(), latencies.clone(), errors.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let t = Instant::now();
                let r = op(i).await;
                let took = t.elapsed();
                match r {
                    Ok(()) => latencies.lock().unwrap_or_else(|p| p.into_inner()).push(took),
                    Err(e) => {
                        let mut g = errors.lock().unwrap_or_else(|p| p.into_inner());
                        g.0 += 1;
                        g.1.get_or_insert(e);
                    }
                }
                bar.inc(1);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
    lat.sort();
    let (errors, first_error) = std::mem::take(&mut *errors.lock().unwrap_or_else(|p| p.into_inner()));
    let ok = lat.len();
    PhaseReport {
        ops: count,
        errors,
        seconds,
        ops_per_s: ok as f64 / seconds.max(1e-9),
        mib_per_s: (ok as u64 * bytes_per_op) as f64 / (1 << 20) as f64 / seconds.max(1e-9),
        p50_ms: percentile(&lat, 0.50),
        p99_ms: percentile(&lat, 0.99),
        first_error,
    }
}

/// What the phases talk to: the cluster's native protocol, or its FastDFS
/// front end.
enum Target {
    Native { client: Box<cairn_client::Client>, opts: UploadOptions },
    FastDfs(fastdfs::FdfsClient),
}

impl Target {
    fn new(a: &BenchArgs) -> Result<Self> {
        Ok(match &a.fastdfs {
            Some(addr) => Target::FastDfs(
                fastdfs::ClientOptions::new(vec![addr.as_str()])
                    // One pooled connection per worker to the tracker and to
                    // each storage node: no connect per operation.
                    .max_connections(a.concurrency.max(1))
                    .build()
                    .map_err(|e| anyhow::anyhow!("FastDFS client for {addr}: {e}"))?,
            ),
            None => Target::Native {
                client: Box::new(client(&a.cluster)?),
                opts: UploadOptions { group: a.group.clone(), appender: false, ext: "bin".into() },
            },
        })
    }

    /// Uploads `data`; the file ID as the protocol spells it.
    async fn upload(&self, data: Bytes) -> Result<String, String> {
        match self {
            Target::Native { client, opts } => {
                client.upload(opts, Body::Bytes(data)).await.map(|id| id.to_string()).map_err(|e| e.to_string())
            }
            Target::FastDfs(c) => {
                c.upload_file_buf(&data, "bin", None, false).await.map(|id| id.to_string()).map_err(|e| e.to_string())
            }
        }
    }

    /// Downloads the whole file into `sink`.
    async fn download(&self, id: &str, sink: &mut Compare<'_>) -> Result<(), String> {
        match self {
            Target::Native { client, .. } => {
                let id = FileId::parse(id).map_err(|e| e.to_string())?;
                client.download_to(&id, 0, None, sink).await.map(drop).map_err(|e| e.to_string())
            }
            Target::FastDfs(c) => {
                let id: fastdfs::FileId = id.parse().map_err(|e: fastdfs::FastDFSError| e.to_string())?;
                c.download_file(&id, sink, 0, 0).await.map(drop).map_err(|e| e.to_string())
            }
        }
    }

    async fn delete(&self, id: &str) -> Result<(), String> {
        match self {
            Target::Native { client, .. } => {
                let id = FileId::parse(id).map_err(|e| e.to_string())?;
                client.delete(&id).await.map_err(|e| e.to_string())
            }
            Target::FastDfs(c) => {
                let id: fastdfs::FileId = id.parse().map_err(|e: fastdfs::FastDFSError| e.to_string())?;
                c.delete_file(&id).await.map_err(|e| e.to_string())
            }
        }
    }
}

/// `cairn bench`
pub async fn run(a: BenchArgs) -> Result<()> {
    if a.count == 0 {
        bail!("--count must be at least 1");
    }
    let t = Arc::new(Target::new(&a)?);
    let mut data = vec![0u8; a.size as usize];
    rand::thread_rng().fill_bytes(&mut data);
    let data = Bytes::from(data);
    let ids: Arc<Vec<Mutex<Option<String>>>> = Arc::new((0..a.count).map(|_| Mutex::new(None)).collect());
    let quiet = a.json;

    let upload = {
        let (t, ids, data) = (t.clone(), ids.clone(), data.clone());
        phase("upload", a.count, a.concurrency, a.size, quiet, move |i| {
            let (t, ids, data) = (t.clone(), ids.clone(), data.clone());
            async move {
                let id = t.upload(data).await?;
                *ids[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
                Ok(())
            }
        })
        .await
    };
    let id_of =
        |ids: &Arc<Vec<Mutex<Option<String>>>>, i: usize| ids[i].lock().unwrap_or_else(|p| p.into_inner()).clone();
    let download = {
        let (t, ids, data) = (t.clone(), ids.clone(), data.clone());
        phase("download", a.count, a.concurrency, a.size, quiet, move |i| {
            let (t, id, data) = (t.clone(), id_of(&ids, i), data.clone());
            async move {
                let id = id.ok_or("upload failed")?;
                let mut check = Compare { expected: &data, pos: 0, differs: false };
                t.download(&id, &mut check).await?;
                if check.differs || check.pos != data.len() {
                    return Err(format!("{id}: content differs from what was uploaded"));
                }
                Ok(())
            }
        })
        .await
    };
    let delete = {
        let (t, ids) = (t.clone(), ids.clone());
        let count = if a.keep { 0 } else { a.count };
        phase("delete", count, a.concurrency, 0, quiet, move |i| {
            let (t, id) = (t.clone(), id_of(&ids, i));
            async move {
                let id = id.ok_or("upload failed")?;
                t.delete(&id).await
            }
        })
        .await
    };
    let report = Report { size: a.size, count: a.count, concurrency: a.concurrency, upload, download, delete };
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{} files of {} bytes, concurrency {}", a.count, a.size, a.concurrency);
        println!("{:<9} {:>10} {:>10} {:>9} {:>9} {:>7}", "phase", "ops/s", "MiB/s", "p50 ms", "p99 ms", "errors");
        for (name, p) in [("upload", &report.upload), ("download", &report.download), ("delete", &report.delete)] {
            println!(
                "{name:<9} {:>10.0} {:>10.1} {:>9.2} {:>9.2} {:>7}",
                p.ops_per_s, p.mib_per_s, p.p50_ms, p.p99_ms, p.errors
            );
            if let Some(e) = &p.first_error {
                println!("          first error: {e}");
            }
        }
    }
    let errors = report.upload.errors + report.download.errors + report.delete.errors;
    if errors > 0 {
        bail!("{errors} operations failed");
    }
    Ok(())
}
