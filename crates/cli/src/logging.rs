//! Logging: `tracing` events to stderr, at the level `--log-level` or
//! `RUST_LOG` asks for.

/// A `--log-level`: a level, or directives of which each names a level
/// (`target=level`). `EnvFilter` alone takes a bare word as a target name,
/// so a mistyped level would silence every log instead of failing.
pub fn log_filter(text: &str) -> Result<String, String> {
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
pub fn init_logging(level: Option<&str>, default: &str) -> Result<(), String> {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let asked = level.map(str::to_string).or_else(|| std::env::var("RUST_LOG").ok());
    let mut filter = match level {
        Some(l) => EnvFilter::builder().parse(l).map_err(|e| format!("--log-level {l:?}: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    // fuser unmounts again when a session ends, and warns that it cannot
    // after a `umount` by the user (every time): not a failure. Shown only
    // to whoever asks for fuser's messages by name.
    if !asked.is_some_and(|a| a.contains("fuser")) {
        if let Ok(quiet) = "fuser::mnt=error".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        // A daemon whose stderr went away (a `mount --daemon` whose parent
        // has exited, a closed terminal) must go on, not panic on the
        // report of a failed log write.
        .log_internal_errors(false)
        .init();
    Ok(())
}
