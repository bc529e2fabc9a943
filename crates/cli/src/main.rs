//! `cairn`: one binary for every role (server, tracker, storage) and for the
//! commands of users and operators.
//!
//! Exit codes: 0 success, 1 failure, 2 bad usage; either way one line on
//! stderr, `cairn: error: …` (a usage error adds where to read more).

mod cmd;
mod config;
mod logging;
mod output;
mod progress;
mod report;
mod secret;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub use cairn_storage::DEFAULT_STORAGE_PORT;
pub use cairn_tracker::DEFAULT_TRACKER_PORT;

#[derive(Parser, Debug)]
#[command(name = "cairn", version, about = "Cairn: a distributed file system", propagate_version = true)]
struct Cli {
    /// Log level: error, warn, info, debug or trace, or a filter such as
    /// `info,cairn_storage=debug` [default: $RUST_LOG, else info for daemons and warn for other commands]
    #[arg(long, global = true, value_name = "LEVEL", value_parser = logging::log_filter)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Where client commands find the cluster.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Tracker addresses, comma-separated [default: $CAIRN_TRACKER, then 127.0.0.1:22300]
    #[arg(long, value_delimiter = ',', global = true)]
    pub tracker: Vec<String>,
    /// File holding the cluster secret [without it: the secret itself from $CAIRN_SECRET, else the secret of the local `cairn server`]
    #[arg(long, global = true)]
    pub secret_file: Option<PathBuf>,
}

// Parsed once at start and then taken apart: the size of the biggest
// command's flags costs nothing, and boxing them would cost clarity.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run a tracker, a storage node and the meta service in one process: a working cluster on one machine
    Server(cmd::daemon::ServerArgs),
    /// Run a tracker
    Tracker(cmd::daemon::TrackerArgs),
    /// Run a storage node
    Storage(cmd::daemon::StorageArgs),
    /// Upload a file (or standard input with -); prints the file ID
    Upload(cmd::blob::UploadArgs),
    /// Download a file, whole or a range
    Download(cmd::blob::DownloadArgs),
    /// Delete a file from every member of its group
    Delete(cmd::blob::IdArgs),
    /// Append a file (or standard input) to an appender file
    Append(cmd::blob::AppendArgs),
    /// Overwrite part of an appender file, starting at OFFSET
    Modify(cmd::blob::ModifyArgs),
    /// Cut (or extend with zeros) an appender file to SIZE bytes
    Truncate(cmd::blob::TruncateArgs),
    /// Size, CRC32, creation time and creating node of a file
    Info(cmd::blob::InfoArgs),
    /// Set metadata: KEY=VALUE pairs, replacing all (or merged with --merge)
    MetaSet(cmd::blob::MetaSetArgs),
    /// Print a file's metadata
    MetaGet(cmd::blob::MetaGetArgs),
    /// Groups, members, states, free space and primaries
    Status(cmd::status::StatusArgs),
    /// Measure upload, download and delete speed against a running cluster
    Bench(cmd::bench::BenchArgs),
    /// Catch-up of members that were away: `heal status`, `heal rate`
    Heal(cmd::heal::HealArgs),
    /// Re-read and verify every blob, repairing from peers: `scrub start|status|rate`
    Scrub(cmd::heal::ScrubArgs),
    /// Group membership: `group add-node GROUP ADDR`, `group remove-node GROUP NODE_ID`
    Group(cmd::group::GroupArgs),
    /// Run the meta service (volumes' namespaces)
    Meta(cmd::daemon::MetaDaemonArgs),
    /// Volumes: `volume create|list|info|check|delete`
    Volume(cmd::volume::VolumeArgs),
    /// Mount a volume on a directory (FUSE); runs until unmounted
    Mount(cmd::mount::MountArgs),
}

/// Exit code of a usage error (the Unix convention, and clap's).
const USAGE_EXIT: u8 = 2;

/// Parses the command line. Help and version go to stdout as clap writes
/// them; a usage error is one line, like every other error, plus where
/// to read more: `cairn: error: … (see cairn upload --help)`.
fn parse_args() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            Err(ExitCode::from(USAGE_EXIT))
        }
        Err(e) => {
            eprintln!("cairn: error: {}", report::usage_line(Cli::command(), &e.render().to_string()));
            Err(ExitCode::from(USAGE_EXIT))
        }
    }
}

/// See Cargo.toml: freed memory goes back to the system.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Pack files, pooled connections and open files each hold a descriptor: a
/// daemon raises its soft limit on them to the hard one (as service
/// managers and Go's runtime do), so a node with terabytes of packs does not
/// run into the common default of 1024.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit still stops at the kernel's nr_open (2^20 by default).
    let target = limit.maximum.unwrap_or(1 << 20);
    if let Some(soft) = limit.current.filter(|&soft| soft < target) {
        if let Err(e) = setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: limit.maximum }) {
            tracing::warn!(error = %e, soft, target, "cannot raise the open-file limit");
        }
    }
}

fn main() -> ExitCode {
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let daemon = match &cli.command {
        Command::Server(_) | Command::Tracker(_) | Command::Storage(_) | Command::Meta(_) => true,
        // `mount --daemon` starts the mount and returns: a client.
        Command::Mount(m) => m.runs_here(),
        _ => false,
    };
    if let Err(e) = logging::init_logging(cli.log_level.as_deref(), if daemon { "info" } else { "warn" }) {
        eprintln!("cairn: error: {e}");
        return ExitCode::from(USAGE_EXIT);
    }
    if daemon {
        raise_open_file_limit();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Server(a) => cmd::daemon::server(a).await,
            Command::Tracker(a) => cmd::daemon::tracker(a).await,
            Command::Storage(a) => cmd::daemon::storage(a).await,
            Command::Upload(a) => cmd::blob::upload(a).await,
            Command::Download(a) => cmd::blob::download(a).await,
            Command::Delete(a) => cmd::blob::delete(a).await,
            Command::Append(a) => cmd::blob::append(a).await,
            Command::Modify(a) => cmd::blob::modify(a).await,
            Command::Truncate(a) => cmd::blob::truncate(a).await,
            Command::Info(a) => cmd::blob::info(a).await,
            Command::MetaSet(a) => cmd::blob::meta_set(a).await,
            Command::MetaGet(a) => cmd::blob::meta_get(a).await,
            Command::Status(a) => cmd::status::run(a).await,
            Command::Bench(a) => cmd::bench::run(a).await,
            Command::Heal(a) => cmd::heal::heal(a).await,
            Command::Scrub(a) => cmd::heal::scrub(a).await,
            Command::Group(a) => cmd::group::run(a).await,
            Command::Meta(a) => cmd::daemon::meta(a).await,
            Command::Volume(a) => cmd::volume::run(a).await,
            Command::Mount(a) => cmd::mount::run(a).await,
        }
    });
    // Don't wait for blocking tasks (a stdin reader) to notice the end.
    rt.shutdown_background();
    if daemon && result.is_ok() {
        tracing::info!("stopped");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if report::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn: error: {}", report::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
