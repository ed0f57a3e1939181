//! The sweep's `[slurm]` table: the `sbatch` options of its job script, each
//! checked so that nothing in it can start a line of its own there.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where and how the Slurm backend submits (`sbatch` options).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    pub partition: Option<String>,
    pub account: Option<String>,
    /// Time limit of each run ("HH:MM:SS" or any form sbatch takes).
    pub time: Option<String>,
    /// Memory of each run ("8G").
    pub mem: Option<String>,
    /// At most this many runs at once (the array's `%N`; 0: no limit).
    #[serde(default)]
    pub max_running: usize,
    /// The goodhart binary as the compute nodes see it (default: this one's path).
    pub binary: Option<PathBuf>,
    /// More `#SBATCH` options, each as written after `#SBATCH ` (e.g. "--qos=short").
    #[serde(default)]
    pub extra: Vec<String>,
}

/// Refuse control characters (a newline would start a line of its own in the job script).
pub(super) fn no_control(field: &str, value: &str) -> Result<()> {
    match value.chars().find(|c| c.is_control()) {
        Some(c) => Err(Error::invalid(
            field,
            format!("{value:?} holds the control character {c:?}"),
        )),
        None => Ok(()),
    }
}

impl SlurmConfig {
    /// Every value is written into the job script's `#SBATCH` lines: no
    /// control characters anywhere, names and sizes in the forms sbatch takes.
    pub fn validate(&self) -> Result<()> {
        for (key, value) in [("partition", &self.partition), ("account", &self.account)] {
            let Some(v) = value else { continue };
            let field = format!("slurm.{key}");
            no_control(&field, v)?;
            let ok = !v.is_empty()
                && v.len() <= 128
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.,".contains(c));
            if !ok {
                return Err(Error::invalid(
                    field,
                    format!("{v:?}: 1 to 128 of a-z, A-Z, 0-9, -, _, . and ,"),
                ));
            }
        }
        if let Some(t) = &self.time {
            no_control("slurm.time", t)?;
            if !slurm_time(t) {
                return Err(Error::invalid(
                    "slurm.time",
                    format!(
                        "{t:?}: write MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED"
                    ),
                ));
            }
        }
        if let Some(m) = &self.mem {
            no_control("slurm.mem", m)?;
            let digits = m.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
            let ok = m.len() - digits.len() <= 1
                && (1..=12).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit());
            if !ok {
                return Err(Error::invalid(
                    "slurm.mem",
                    format!("{m:?}: a whole number with an optional unit K, M, G or T (\"8G\")"),
                ));
            }
        }
        if let Some(b) = &self.binary {
            no_control("slurm.binary", &b.to_string_lossy())?;
        }
        for (i, e) in self.extra.iter().enumerate() {
            let field = format!("slurm.extra[{i}]");
            no_control(&field, e)?;
            if !e.starts_with('-') {
                return Err(Error::invalid(
                    field,
                    format!(
                        "{e:?}: an sbatch option, as written after `#SBATCH ` (\"--qos=short\")"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A time limit in one of the forms sbatch takes.
fn slurm_time(t: &str) -> bool {
    if t.eq_ignore_ascii_case("unlimited") || t.eq_ignore_ascii_case("infinite") {
        return true;
    }
    let number = |s: &str| (1..=9).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    let (days, clock) = match t.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, t),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    days.is_none_or(number) && parts.len() <= 3 && parts.iter().all(|p| number(p))
}
