use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the tracker picks a group for an upload that names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum GroupPolicy {
    /// Each writable group in turn.
    RoundRobin,
    /// The writable group with the most free space (FastDFS's default).
    #[default]
    MostFree,
}

/// How the tracker picks the member of a group that takes an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MemberPolicy {
    /// Each active member in turn.
    #[default]
    RoundRobin,
    /// The active member with the fewest requests in progress.
    LeastLoad,
}

/// Space kept free on every member; a group below it takes no uploads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reserved {
    /// An absolute amount.
    Bytes(u64),
    /// A share of each member's disk, in percent.
    Percent(f64),
}

impl Default for Reserved {
    fn default() -> Self {
        Reserved::Percent(5.0)
    }
}

impl std::str::FromStr for Reserved {
    type Err = String;
    /// Parses `10%`, `500M`, `20G`, `1T` or a plain number of bytes.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| format!("bad percentage {s:?}"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("percentage out of range: {s:?}"));
            }
            return Ok(Reserved::Percent(v));
        }
        let (num, mult) = match s.chars().last() {
            Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
            Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
            Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
            Some('T' | 't') => (&s[..s.len() - 1], 1 << 40),
            _ => (s, 1),
        };
        let v: u64 = num.trim().parse().map_err(|_| format!("bad size {s:?}"))?;
        Ok(Reserved::Bytes(v.saturating_mul(mult)))
    }
}

/// Everything a tracker can be told.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// A member that has not sent a heartbeat for this long is offline.
    pub offline_after: Duration,
    /// Group choice for uploads.
    pub group_policy: GroupPolicy,
    /// Member choice for uploads.
    pub member_policy: MemberPolicy,
    /// Space kept free on members.
    pub reserved: Reserved,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            offline_after: Duration::from_secs(6),
            group_policy: GroupPolicy::default(),
            member_policy: MemberPolicy::default(),
            reserved: Reserved::default(),
        }
    }
}
