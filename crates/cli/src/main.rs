//! `cairn`: one binary for every role (server, tracker, storage) and for the
//! commands of users and operators.
//!
//! Exit codes: 0 success, 1 failure, 2 bad usage; either way one line on
//! stderr, `cairn: error: …` (a usage error adds where to read more).

mod cmd;
mod config;
mod secret;
mod units;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Default native-protocol port of a tracker.
pub const DEFAULT_TRACKER_PORT: u16 = 22300;
/// Default native-protocol port of a storage node.
pub const DEFAULT_STORAGE_PORT: u16 = 23300;

#[derive(Parser, Debug)]
#[command(name = "cairn", version, about = "Cairn: a distributed file system", propagate_version = true)]
struct Cli {
    /// Log level: error, warn, info, debug or trace, or a filter such as
    /// `info,cairn_storage=debug` [default: $RUST_LOG, else info for daemons and warn for other commands]
    #[arg(long, global = true, value_name = "LEVEL", value_parser = log_filter)]
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

/// A `--log-level`: a level, or directives of which each names a level
/// (`target=level`). `EnvFilter` alone takes a bare word as a target name,
/// so a mistyped level would silence every log instead of failing.
fn log_filter(text: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let names_a_level = |d: &str| {
        let level = d.rsplit('=').next().unwrap_or(d).trim();
        LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level))
    };
    if !text.split(',').all(names_a_level) {
        return Err("not a level (error, warn, info, debug, trace) or a filter such as info,cairn_storage=debug".into());
    }
    tracing_subscriber::EnvFilter::builder().parse(text).map(|_| text.to_string()).map_err(|e| e.to_string())
}

/// Logs go to stderr, filtered by `--log-level`, else `RUST_LOG`, else
/// `default`. Colours only on a terminal, and not when `NO_COLOR` is set
/// (no-color.org): a log file or the journal gets plain text.
fn init_logging(level: Option<&str>, default: &str) -> Result<(), String> {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::builder().parse(l).map_err(|e| format!("--log-level {l:?}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .init();
    Ok(())
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
            eprintln!("cairn: error: {}", usage_line(&e.render().to_string()));
            Err(ExitCode::from(USAGE_EXIT))
        }
    }
}

/// clap's several-line usage error as one line: its message and tips
/// joined, and the command whose help says more.
fn usage_line(rendered: &str) -> String {
    let mut text = String::new();
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            continue;
        }
        if !text.is_empty() {
            text.push_str(if text.ends_with(':') { " " } else { "; " });
        }
        text.push_str(line.strip_prefix("error: ").unwrap_or(line));
    }
    format!("{text} (see {} --help)", command_path(std::env::args().skip(1)))
}

/// The subcommands named on the command line: `cairn volume create` for
/// `cairn --log-level info volume create --bogus`.
fn command_path(args: impl Iterator<Item = String>) -> String {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build(); // copies global flags into the subcommands
    let mut path = vec!["cairn".to_string()];
    let mut value_follows = false;
    for arg in args {
        if std::mem::take(&mut value_follows) {
            continue;
        }
        if let Some(flag) = arg.strip_prefix('-') {
            let takes_value = |a: &clap::Arg| a.get_action().takes_values();
            value_follows = match flag.strip_prefix('-') {
                Some(long) => cmd.get_arguments().any(|a| a.get_long() == Some(long) && takes_value(a)),
                None => {
                    let mut chars = flag.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => cmd.get_arguments().any(|a| a.get_short() == Some(c) && takes_value(a)),
                        _ => false,
                    }
                }
            };
            continue;
        }
        // Other words are arguments.
        if let Some(sub) = cmd.find_subcommand(&arg).cloned() {
            path.push(sub.get_name().to_string());
            cmd = sub;
        }
    }
    path.join(" ")
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
    let daemon = matches!(
        cli.command,
        Command::Server(_) | Command::Tracker(_) | Command::Storage(_) | Command::Meta(_) | Command::Mount(_)
    );
    if let Err(e) = init_logging(cli.log_level.as_deref(), if daemon { "info" } else { "warn" }) {
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
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairn: error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: a context that
/// already quotes its cause's text (`format!("…: {e}")` with `e` also the
/// source) does not print it again. A refused secret says where this
/// command's secret came from.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    let refused = e.chain().any(|c| c.downcast_ref::<cairn_client::Error>().is_some_and(|ce| ce.is_auth()));
    if let (true, Some(source)) = (refused, secret::client_source()) {
        line.push_str(&format!(" (this command's secret is from {source})"));
    }
    line.replace('\n', " ")
}

/// A reader that closed our stdout (`cairn download ID | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<cairn_client::Error>().is_some_and(cairn_client::Error::is_broken_pipe)
    })
}
