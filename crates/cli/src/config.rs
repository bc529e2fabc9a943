//! The daemons' TOML configuration file. Precedence, lowest first:
//! built-in defaults, this file, `CAIRN_*` environment variables, flags.
//! Unknown keys and sections are errors, so a typo does not silently do
//! nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The whole file: one section per role, each the role's own settings
/// struct (the same struct its flags fill in).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// `[tracker]`
    pub tracker: cairn_tracker::TrackerSettings,
    /// `[storage]`
    pub storage: cairn_storage::StorageSettings,
    /// `[meta]`
    pub meta: cairn_meta::MetaSettings,
    /// `[server]`
    pub server: ServerSection,
    /// `[mount]`
    pub mount: cairn_fuse::MountSettings,
}

/// The sections a file may have, for the message about an unknown one.
const SECTIONS: &str = "[tracker], [storage], [meta], [server] and [mount]";

/// `[server]`: `cairn server`'s own options (its roles take theirs from
/// their sections).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Data directory of every role it runs.
    pub data: Option<PathBuf>,
}

/// `over` laid over `base`: every option `over` sets replaces `base`'s.
/// Settings structs have only optional fields, so "set" is "not null":
/// defaults, then the file, then flags and variables, in one function for
/// every role instead of a merge written out per option.
pub fn overlay<T: Serialize + DeserializeOwned>(base: &T, over: &T) -> Result<T> {
    let mut merged = serde_json::to_value(base).context("settings to merge")?;
    if let (serde_json::Value::Object(into), serde_json::Value::Object(from)) =
        (&mut merged, serde_json::to_value(over).context("settings to merge")?)
    {
        for (key, value) in from {
            if !value.is_null() {
                into.insert(key, value);
            }
        }
    }
    serde_json::from_value(merged).context("merged settings")
}

/// Reads the file, or the defaults when there is none.
pub fn load(path: Option<&Path>) -> Result<FileConfig> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    parse(&text).map_err(|why| anyhow::anyhow!("bad config file {}: {why}", path.display()))
}

/// Parses a file's text; the error is one line (toml's own quotes the
/// offending line over several).
pub fn parse(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| {
        let Some(span) = e.span() else {
            return e.message().to_string();
        };
        let line_no = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
        let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
        let section = line.strip_prefix('[').and_then(|l| l.strip_suffix(']'));
        match section {
            Some(name) if e.message().starts_with("unknown field") => {
                format!("line {line_no}: unknown section [{name}]; this version reads {SECTIONS}")
            }
            _ => format!("line {line_no}: {}", e.message()),
        }
    })
}

/// Where data lives when no `--data` is given: `$CAIRN_DATA`, else
/// `$XDG_DATA_HOME/cairn`, else `~/.local/share/cairn`, else `./cairn-data`.
pub fn default_data_dir() -> PathBuf {
    user_dir(Some("CAIRN_DATA"), "XDG_DATA_HOME", ".local/share").unwrap_or_else(|| PathBuf::from("cairn-data"))
}

/// Where mounts keep their block caches when not told: `$CAIRN_CACHE`,
/// else `$XDG_CACHE_HOME/cairn`, else `~/.cache/cairn`, else the
/// temporary directory's `cairn-cache`.
pub fn default_cache_dir() -> PathBuf {
    user_dir(Some("CAIRN_CACHE"), "XDG_CACHE_HOME", ".cache")
        .unwrap_or_else(|| std::env::temp_dir().join("cairn-cache"))
}

/// Where `cairn server` records its secret's place for client commands:
/// `$XDG_STATE_HOME/cairn`, else `~/.local/state/cairn`.
pub fn state_dir() -> Option<PathBuf> {
    user_dir(None, "XDG_STATE_HOME", ".local/state")
}

/// `$own`, else `$xdg/cairn`, else `~/<in_home>/cairn` (the XDG base
/// directory rules).
fn user_dir(own: Option<&str>, xdg: &str, in_home: &str) -> Option<PathBuf> {
    if let Some(d) = own.and_then(std::env::var_os) {
        return Some(PathBuf::from(d));
    }
    if let Some(x) = std::env::var_os(xdg) {
        return Some(PathBuf::from(x).join("cairn"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(in_home).join("cairn"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_keys() {
        let c: FileConfig = toml::from_str(
            "[tracker]\nreserved_space = \"10%\"\ngroup_policy = \"round-robin\"\n[storage]\ngroup = \"g\"\ntrackers = [\"a:1\"]\n",
        )
        .unwrap();
        assert_eq!(c.tracker.group_policy, Some(cairn_tracker::GroupPolicy::RoundRobin));
        assert_eq!(c.storage.trackers.unwrap(), vec!["a:1".to_string()]);
        assert!(toml::from_str::<FileConfig>("[storage]\ngrup = \"g\"\n").is_err());
    }

    #[test]
    fn errors_are_one_line_and_name_the_sections() {
        let e = parse("[tracker]\nlisten = \"a:1\"\n[gateway]\nx = 1\n").unwrap_err();
        assert_eq!(
            e,
            "line 3: unknown section [gateway]; this version reads [tracker], [storage], [meta], [server] and [mount]"
        );
        let e = parse("[storage]\ngrup = \"g\"\n").unwrap_err();
        assert!(e.starts_with("line 2: unknown field `grup`") && !e.contains('\n'), "{e}");
        let c = parse("[meta]\nlisten = \"127.0.0.1:1\"\norphan_lease_secs = 5\n").unwrap();
        assert_eq!(c.meta.orphan_lease_secs, Some(5));
    }

    #[test]
    fn flags_lay_over_the_file_and_the_file_over_the_defaults() {
        let file = parse("[storage]\nheartbeat_interval_ms = 500\nscrub_rate_mib = 8\n").unwrap().storage;
        let flags = cairn_storage::StorageSettings { scrub_rate_mib: Some(16), ..Default::default() };
        let merged = overlay(&overlay(&cairn_storage::StorageSettings::defaults(), &file).unwrap(), &flags).unwrap();
        assert_eq!(merged.heartbeat_interval_ms, Some(500));
        assert_eq!(merged.scrub_rate_mib, Some(16));
        assert_eq!(merged.replica_timeout_ms, cairn_storage::StorageSettings::defaults().replica_timeout_ms);
    }

    /// `docs/configuration.md`'s table of `section`: key → default cell.
    fn documented(section: &str) -> std::collections::BTreeMap<String, String> {
        let doc = include_str!("../../../docs/configuration.md");
        let heading = format!("## `[{section}]`");
        let start = doc.find(&heading).unwrap_or_else(|| panic!("docs/configuration.md has no {heading}"));
        let body = &doc[start + heading.len()..];
        let body = &body[..body.find("\n## ").unwrap_or(body.len())];
        body.lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`').to_string(), cells[2].to_string())
            })
            .collect()
    }

    /// How the docs write a built-in default: as TOML, or `—` when it
    /// depends on other options.
    fn cell(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::Null => "—".into(),
            serde_json::Value::String(s) => format!("`\"{s}\"`"),
            other => format!("`{other}`"),
        }
    }

    /// Every key of a settings struct is in its section's table with its
    /// built-in default, and every flag's `[default: …]` says the same.
    fn check_section<T: Serialize + Default + clap::Args>(section: &str, defaults: T) {
        let keys = serde_json::to_value(T::default()).unwrap();
        let defaults = serde_json::to_value(defaults).unwrap();
        let documented = documented(section);
        let keys: Vec<&String> = keys.as_object().unwrap().keys().collect();
        let listed: Vec<&String> = documented.keys().collect();
        let (mut k, mut l) = (keys.clone(), listed.clone());
        k.sort();
        l.sort();
        assert_eq!(k, l, "the keys of [{section}] in docs/configuration.md");
        for key in keys {
            let want = cell(&defaults[key.as_str()]);
            assert_eq!(documented[key.as_str()], want, "default of [{section}] {key} in docs/configuration.md");
        }
        let cmd = T::augment_args(clap::Command::new("settings"));
        for arg in cmd.get_arguments() {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let Some(said) = help.split("[default: ").nth(1).and_then(|r| r.split(']').next()) else { continue };
            let value = &defaults[arg.get_id().as_str()];
            let plain = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            assert_eq!(said, plain, "--help of [{section}] {} says [default: {said}]", arg.get_id());
        }
    }

    #[test]
    fn the_configuration_reference_lists_every_key_with_its_default() {
        check_section("tracker", cairn_tracker::TrackerSettings::defaults());
        check_section("storage", cairn_storage::StorageSettings::defaults());
        check_section("meta", cairn_meta::MetaSettings::defaults());
        check_section("mount", cairn_fuse::MountSettings::defaults());
        let server = documented("server");
        assert_eq!(server.keys().collect::<Vec<_>>(), ["data"], "[server] in docs/configuration.md");
    }

    #[test]
    fn the_shipped_example_parses() {
        let text = include_str!("../../../dist/cairn.toml");
        let c = parse(text).unwrap_or_else(|e| panic!("dist/cairn.toml: {e}"));
        assert!(c.tracker.listen.is_some() && c.storage.group.is_some() && c.meta.listen.is_some());
    }
}
