//! The Slurm backend: the sweep's unfinished runs as one job array
//! (`sbatch --array`), each task running `goodhart sweep run-one DIR
//! $SLURM_ARRAY_TASK_ID` with the sweep's threads as its CPUs. The sweep
//! directory must be on a file system the compute nodes share.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use goodhart::experiment::sweep::Plan;
use goodhart::fsutil::write_atomic;

/// Jobs submitted for a sweep, a line each: job id, then the array's indices.
const JOBS_FILE: &str = "slurm/jobs.txt";

/// Write the batch script, submit it for `todo`, and return the job id.
pub fn submit(dir: &Path, plan: &Plan, todo: &[usize]) -> Result<String> {
    let dir = std::path::absolute(dir).with_context(|| dir.display().to_string())?;
    let binary = match &plan.slurm.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("finding this program for the batch script")?,
    };
    std::fs::create_dir_all(dir.join("logs")).with_context(|| dir.display().to_string())?;
    std::fs::create_dir_all(dir.join("slurm")).with_context(|| dir.display().to_string())?;
    let script = dir.join("slurm").join("sweep.sbatch");
    write_atomic(&script, batch_script(&dir, plan, &binary)?.as_bytes())?;
    let mut array = array_spec(todo);
    if plan.slurm.max_running > 0 {
        write!(array, "%{}", plan.slurm.max_running).unwrap();
    }
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(format!("--array={array}"))
        .arg(&script)
        .output()
        .context("running sbatch (is Slurm installed here, and on PATH?)")?;
    if !out.status.success() {
        bail!(
            "sbatch refused the sweep's job array: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    // `--parsable` prints "jobid" or "jobid;cluster".
    let job = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if job.is_empty() || !job.chars().all(|c| c.is_ascii_digit()) {
        bail!(
            "sbatch answered {:?}, not a job id",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let jobs = dir.join(JOBS_FILE);
    let mut text = std::fs::read_to_string(&jobs).unwrap_or_default();
    writeln!(text, "{job} {array}").unwrap();
    write_atomic(&jobs, text.as_bytes())?;
    Ok(job)
}

/// The batch script: resources from the sweep's `[slurm]` table, one run per
/// array task. Every value is checked again here (the plan is a file that can
/// be edited): a control character would start a line of its own.
fn batch_script(dir: &Path, plan: &Plan, binary: &Path) -> Result<String> {
    let s = &plan.slurm;
    s.validate()?;
    for (what, text) in [
        ("the sweep directory", dir.display().to_string()),
        ("the goodhart binary's path", binary.display().to_string()),
    ] {
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            bail!(
                "{what} {text:?} holds the control character {c:?}: it cannot go in a job script"
            );
        }
    }
    let mut o = String::from("#!/bin/bash\n");
    let name = super::super::slug(&plan.name);
    writeln!(o, "#SBATCH --job-name=goodhart-{name}").unwrap();
    writeln!(o, "#SBATCH --ntasks=1").unwrap();
    writeln!(o, "#SBATCH --cpus-per-task={}", plan.threads).unwrap();
    writeln!(o, "#SBATCH --output={}/logs/run-%a.log", dir.display()).unwrap();
    for (flag, value) in [
        ("partition", &s.partition),
        ("account", &s.account),
        ("time", &s.time),
        ("mem", &s.mem),
    ] {
        if let Some(v) = value {
            writeln!(o, "#SBATCH --{flag}={v}").unwrap();
        }
    }
    for e in &s.extra {
        writeln!(o, "#SBATCH {e}").unwrap();
    }
    writeln!(o, "set -euo pipefail").unwrap();
    writeln!(
        o,
        "exec {} --quiet sweep run-one {} \"$SLURM_ARRAY_TASK_ID\"",
        shell_quote(&binary.display().to_string()),
        shell_quote(&dir.display().to_string())
    )
    .unwrap();
    Ok(o)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Indices as sbatch's array list: runs of consecutive ones as ranges ("0-3,5,7-9").
pub fn array_spec(indices: &[usize]) -> String {
    let mut parts = vec![];
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            indices[i].to_string()
        } else {
            format!("{}-{}", indices[i], indices[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Wait until no task of `job` is pending or running.
pub fn wait(job: &str) -> Result<()> {
    loop {
        let out = Command::new("squeue")
            .args(["-h", "-r", "-j", job, "-o", "%i"])
            .output()
            .context("running squeue")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && stdout.trim().is_empty() {
            return Ok(());
        }
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            // A job that has left the controller's memory is finished.
            if err.contains("Invalid job id") {
                return Ok(());
            }
            bail!("squeue failed: {}", err.trim());
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The sweep's array tasks Slurm still has (index, state), for `sweep status`;
/// empty when none was submitted or squeue is not here.
pub fn queue_states(dir: &Path) -> Result<Vec<(usize, String)>> {
    let Ok(jobs) = std::fs::read_to_string(dir.join(JOBS_FILE)) else {
        return Ok(vec![]);
    };
    let ids: Vec<&str> = jobs.lines().filter_map(|l| l.split(' ').next()).collect();
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let Ok(out) = Command::new("squeue")
        .args(["-h", "-r", "-j", &ids.join(","), "-o", "%K %T"])
        .output()
    else {
        return Ok(vec![]);
    };
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (index, state) = l.trim().split_once(' ')?;
            Some((index.parse().ok()?, state.to_string()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(slurm: goodhart::experiment::sweep::SlurmConfig) -> Plan {
        Plan {
            name: "s".into(),
            seeds: vec![0],
            threads: 1,
            parallel: 0,
            keys: vec![],
            experiments: 1,
            points: vec![],
            slurm,
        }
    }

    #[test]
    fn a_plan_edited_to_inject_a_line_writes_no_script() {
        use goodhart::experiment::sweep::SlurmConfig;
        let dir = Path::new("/sweeps/s");
        let good = SlurmConfig {
            partition: Some("debug".into()),
            time: Some("1-02:00:00".into()),
            mem: Some("8G".into()),
            extra: vec!["--qos=normal".into()],
            ..SlurmConfig::default()
        };
        let script = batch_script(dir, &plan(good.clone()), Path::new("/bin/goodhart")).unwrap();
        assert!(script.contains("#SBATCH --qos=normal\n"), "{script}");
        let bad = [
            SlurmConfig {
                extra: vec!["--qos=normal\nrm -rf /x".into()],
                ..good.clone()
            },
            SlurmConfig {
                partition: Some("debug\nrm -rf /x".into()),
                ..good.clone()
            },
            SlurmConfig {
                mem: Some("8G\rrm".into()),
                ..good.clone()
            },
            SlurmConfig {
                time: Some("forever".into()),
                ..good.clone()
            },
        ];
        for slurm in bad {
            let err = batch_script(dir, &plan(slurm.clone()), Path::new("/bin/goodhart"));
            assert!(err.is_err(), "{slurm:?}");
        }
        let err = batch_script(
            Path::new("/sweeps/a\nb"),
            &plan(good),
            Path::new("/bin/goodhart"),
        );
        assert!(err.unwrap_err().to_string().contains("control character"));
    }

    #[test]
    fn array_lists_compress_consecutive_runs() {
        assert_eq!(array_spec(&[0, 1, 2, 3, 5, 7, 8, 9]), "0-3,5,7-9");
        assert_eq!(array_spec(&[4]), "4");
        assert_eq!(array_spec(&[]), "");
    }
}
