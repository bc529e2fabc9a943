//! How a failed command reports: one line on stderr, `cairn: error: …`.

use crate::secret;

/// clap's several-line usage error as one line: its message and tips
/// joined, and the command whose help says more.
pub fn usage_line(command: clap::Command, rendered: &str) -> String {
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
    format!("{text} (see {} --help)", command_path(command, std::env::args().skip(1)))
}

/// The subcommands named on the command line: `cairn volume create` for
/// `cairn --log-level info volume create --bogus`.
fn command_path(mut cmd: clap::Command, args: impl Iterator<Item = String>) -> String {
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

/// The error and its causes on one line, each cause once: a context that
/// already quotes its cause's text (`format!("…: {e}")` with `e` also the
/// source) does not print it again. A refused secret says where this
/// command's secret came from.
pub fn error_line(e: &anyhow::Error) -> String {
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
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<cairn_client::Error>().is_some_and(cairn_client::Error::is_broken_pipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_quoted_by_its_context_is_printed_once() {
        let denied = || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied (os error 13)");
        let e = anyhow::Error::new(denied()).context(format!("I/O error on /d: {}", denied()));
        assert_eq!(error_line(&e), "I/O error on /d: Permission denied (os error 13)");
        let e = anyhow::Error::new(denied()).context("cannot open /d");
        assert_eq!(error_line(&e), "cannot open /d: Permission denied (os error 13)");
    }

    #[test]
    fn a_usage_error_is_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  <FILE>\n\n\
                        Usage: cairn upload <FILE>\n\nFor more information, try '--help'.\n";
        let line = usage_line(clap::Command::new("cairn"), rendered);
        assert!(line.starts_with("the following required arguments were not provided: <FILE> (see cairn"), "{line}");
    }
}
