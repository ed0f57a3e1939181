//! Sweeps: a grid of independent runs (over experiment files, any
//! experiment key by its dotted path, and seeds) planned once into a
//! directory, run by whoever has the cores (a local process pool or a Slurm
//! job array, both in the CLI), and aggregated into one report.
//!
//! A sweep directory holds `sweep.json` (the plan: points, seeds, threads per
//! run, the Slurm settings) and one several-seed run root per point
//! (`<point>/experiment-all-seeds.toml`, `seeds.json`, `seed-N/`), so each
//! point is also an ordinary run that `goodhart report` and `goodhart run
//! --resume` understand. Run `i` is point `i / seeds` with seed `i % seeds`;
//! it is finished when every stage of every task has its record, and a
//! finished run is never started again.

mod grid;
mod slurm;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use grid::set_key;
use slurm::no_control;
pub use slurm::SlurmConfig;

use super::record::{RunDir, EXPERIMENT_FILE};
use super::seeds::{parse_seeds, seed_dir, write_seeds, SEEDS_EXPERIMENT};
use super::table::stage_names;
use super::Experiment;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// The plan of a sweep directory.
pub const PLAN_FILE: &str = "sweep.json";

/// Experiment keys the sweep sets itself (its `seeds`, `threads`, `name`).
const SWEEP_OWN_KEYS: [&str; 3] = ["seed", "threads", "name"];

/// The most points a grid may have (planning writes a directory per point).
pub const MAX_POINTS: usize = 1000;
/// The most runs (points times seeds) a sweep may have.
pub const MAX_RUNS: usize = 10_000;

/// A sweep file, as written.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    pub name: String,
    /// Experiment files (relative to the sweep file), or "default" for the
    /// embedded default experiment; each is an axis value of its own.
    #[serde(default = "default_experiments")]
    pub experiments: Vec<String>,
    /// Seeds of every point: "0..2" (inclusive) or a list [0, 3, 7].
    #[serde(default = "default_seeds")]
    pub seeds: Seeds,
    /// Shrink every experiment as `goodhart run --quick` does.
    #[serde(default)]
    pub quick: bool,
    /// Threads of each run (its experiment's `threads`; Slurm's --cpus-per-task).
    #[serde(default = "one")]
    pub threads: usize,
    /// Local backend: runs at once (0: as many as the cores hold at `threads` each).
    #[serde(default)]
    pub parallel: usize,
    /// Keys set alike at every point (dotted, as in the grid), e.g.
    /// `task.answers.reward_model.init = "scratch"` under `[set]`.
    #[serde(default)]
    pub set: toml::Table,
    /// The swept keys; the grid is their product.
    #[serde(default)]
    pub grid: Vec<Axis>,
    #[serde(default)]
    pub slurm: SlurmConfig,
}

/// Seeds as a range string or a list.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Seeds {
    Spec(String),
    List(Vec<u64>),
}

/// One swept key and its values.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    /// A dotted path into the experiment: tables by key, arrays by an
    /// element's `name` (a task's defaults to its kind), index or `*` (all),
    /// e.g. `task.answers.strategies.rl.ppo-kl.kl.coef` or `task.*.labels.pairs`.
    pub key: String,
    pub values: Vec<toml::Value>,
}

fn default_experiments() -> Vec<String> {
    vec!["default".into()]
}

fn default_seeds() -> Seeds {
    Seeds::List(vec![0])
}

fn one() -> usize {
    1
}

impl SweepConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse and check a sweep file's text; `source` (its path) names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let source = source.to_string();
        let de = toml::de::Deserializer::parse(text).map_err(|e| Error::Config {
            source_name: source.clone(),
            message: e.to_string(),
        })?;
        let cfg: SweepConfig = serde_path_to_error::deserialize(de).map_err(|e| Error::Config {
            source_name: source.clone(),
            message: format!("{}: {}", e.path(), e.inner().message()),
        })?;
        cfg.validate().map_err(|e| Error::Config {
            source_name: source,
            message: e.to_string(),
        })?;
        Ok(cfg)
    }

    pub fn seed_list(&self) -> Result<Vec<u64>> {
        let list = match &self.seeds {
            Seeds::Spec(s) => parse_seeds(s),
            Seeds::List(l) => parse_seeds(
                &l.iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        };
        list.map_err(|e| Error::invalid("seeds", e.to_string()))
    }

    fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "a sweep needs a name"));
        }
        no_control("name", &self.name)?;
        self.slurm.validate()?;
        if self.experiments.is_empty() {
            return Err(Error::invalid(
                "experiments",
                "list at least one experiment",
            ));
        }
        self.seed_list()?;
        if self.threads == 0 || self.threads > crate::runtime::MAX_THREADS {
            return Err(Error::invalid(
                "threads",
                format!(
                    "{} is not in 1..={}",
                    self.threads,
                    crate::runtime::MAX_THREADS
                ),
            ));
        }
        let set = grid::flatten(&self.set);
        let grid_keys: std::collections::HashSet<&str> =
            self.grid.iter().map(|a| a.key.as_str()).collect();
        for (key, _) in &set {
            if SWEEP_OWN_KEYS.contains(&key.as_str()) {
                return Err(Error::invalid(
                    format!("set.{key}"),
                    "is set by the sweep itself (its `seeds`, `threads`, `name`)",
                ));
            }
            if grid_keys.contains(key.as_str()) {
                return Err(Error::invalid(
                    format!("set.{key}"),
                    "is also swept in the grid: keep one",
                ));
            }
        }
        let mut swept = std::collections::HashSet::new();
        for (i, a) in self.grid.iter().enumerate() {
            let at = format!("grid[{i}]");
            let first = a.key.split('.').next().unwrap_or_default();
            if SWEEP_OWN_KEYS.contains(&a.key.as_str()) {
                return Err(Error::invalid(
                    format!("{at}.key"),
                    format!(
                        "{:?} is set by the sweep itself (its `seeds`, `threads`, `name`)",
                        a.key
                    ),
                ));
            }
            if a.key.is_empty() || first.is_empty() {
                return Err(Error::invalid(format!("{at}.key"), "an empty key"));
            }
            if a.values.is_empty() {
                return Err(Error::invalid(
                    format!("{at}.values"),
                    "list at least one value",
                ));
            }
            if !swept.insert(a.key.as_str()) {
                return Err(Error::invalid(
                    format!("{at}.key"),
                    format!("{:?} is swept twice", a.key),
                ));
            }
        }
        // Counted, never expanded, before it is known to be small enough.
        let points = self.grid.iter().fold(self.experiments.len(), |n, a| {
            n.saturating_mul(a.values.len())
        });
        if points > MAX_POINTS {
            return Err(Error::invalid(
                "grid",
                format!("{} points; a sweep has at most {MAX_POINTS}", count(points)),
            ));
        }
        let runs = points.saturating_mul(self.seed_list()?.len());
        if runs > MAX_RUNS {
            return Err(Error::invalid(
                "seeds",
                format!(
                    "{} runs ({points} points x seeds); a sweep has at most {MAX_RUNS}",
                    count(runs)
                ),
            ));
        }
        Ok(())
    }
}

/// A count that may have saturated.
fn count(n: usize) -> String {
    if n == usize::MAX {
        "more than 2^64".into()
    } else {
        n.to_string()
    }
}

/// One point of the grid: an experiment with its swept values set.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Point {
    /// Its directory under the sweep's (`p00-...`).
    pub id: String,
    /// The experiment it came from (as written in the sweep file).
    pub experiment: String,
    /// Each axis's value, in the order of [`Plan::keys`].
    pub values: Vec<toml::Value>,
}

impl Point {
    /// "key = value, ..." (and the experiment when the sweep has several).
    pub fn label(&self, plan: &Plan) -> String {
        let mut parts: Vec<String> = plan
            .keys
            .iter()
            .zip(&self.values)
            .map(|(k, v)| format!("{} = {v}", short_key(k)))
            .collect();
        if plan.experiments > 1 {
            parts.insert(0, self.experiment.clone());
        }
        if parts.is_empty() {
            parts.push(self.experiment.clone());
        }
        parts.join(", ")
    }
}

/// The last part of a dotted key (`coef` of `task.answers.strategies.rl.ppo-kl.kl.coef`).
pub fn short_key(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// What a sweep directory will run: stored as `sweep.json`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Plan {
    pub name: String,
    pub seeds: Vec<u64>,
    pub threads: usize,
    pub parallel: usize,
    /// The swept keys.
    pub keys: Vec<String>,
    /// How many experiment files the grid crosses.
    pub experiments: usize,
    pub points: Vec<Point>,
    pub slurm: SlurmConfig,
}

/// One run of the sweep: a point and a seed.
#[derive(Clone, Copy, Debug)]
pub struct RunRef<'a> {
    pub index: usize,
    pub point: &'a Point,
    pub seed: u64,
}

/// How far a run has got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    NotStarted,
    /// Stages with a record, of all.
    Partial(usize, usize),
    Finished,
}

impl Plan {
    pub fn runs(&self) -> usize {
        self.points.len() * self.seeds.len()
    }

    pub fn run(&self, index: usize) -> Result<RunRef<'_>> {
        if index >= self.runs() {
            return Err(Error::invalid(
                "run",
                format!(
                    "index {index} is out of range: the sweep has {} runs (0..={})",
                    self.runs(),
                    self.runs().saturating_sub(1)
                ),
            ));
        }
        let n = self.seeds.len();
        Ok(RunRef {
            index,
            point: &self.points[index / n],
            seed: self.seeds[index % n],
        })
    }

    pub fn load(dir: &Path) -> Result<Plan> {
        let path = dir.join(PLAN_FILE);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::invalid(
                "sweep directory",
                format!(
                    "{} is not a sweep directory (no {PLAN_FILE})",
                    dir.display()
                ),
            ),
            _ => Error::io(&path, e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Data {
            path,
            line: e.line(),
            message: format!("not a sweep plan: {e}"),
        })
    }
}

/// The several-seed run root of a point.
pub fn point_dir(dir: &Path, point: &Point) -> PathBuf {
    dir.join(&point.id)
}

/// The run directory of one run.
pub fn run_dir(dir: &Path, run: &RunRef) -> PathBuf {
    seed_dir(&point_dir(dir, run.point), run.seed)
}

/// Where a run stands, from its stage records.
pub fn run_state(dir: &Path, run: &RunRef) -> Result<RunState> {
    let root = run_dir(dir, run);
    if !root.join(EXPERIMENT_FILE).is_file() {
        return Ok(RunState::NotStarted);
    }
    let rd = RunDir::new(&root);
    let exp = rd.experiment()?;
    let total: usize = exp.tasks.iter().map(|t| stage_names(t).len()).sum();
    let done: usize = rd.records(&exp)?.iter().map(|t| t.records.len()).sum();
    Ok(if done == total {
        RunState::Finished
    } else {
        RunState::Partial(done, total)
    })
}

/// The experiment of one run: its point's, with the run's seed.
pub fn run_experiment(dir: &Path, run: &RunRef) -> Result<Experiment> {
    let mut exp = Experiment::from_file(&point_dir(dir, run.point).join(SEEDS_EXPERIMENT))?;
    exp.seed = run.seed;
    Ok(exp)
}

/// Plan the sweep of `cfg` (its experiment files relative to `base`) into
/// `dir`: a new directory, or one holding this same sweep (which is then
/// continued). Returns the plan.
pub fn create(dir: &Path, cfg: &SweepConfig, base: &Path) -> Result<Plan> {
    // Again: the CLI may have changed the seeds since the file was read.
    cfg.validate()?;
    let seeds = cfg.seed_list()?;
    let mut experiments = vec![];
    for name in &cfg.experiments {
        let exp = if name == "default" {
            Experiment::embedded_default()
        } else {
            Experiment::from_file(&base.join(name))?
        };
        experiments.push((name.clone(), if cfg.quick { exp.quick() } else { exp }));
    }
    // Every combination of the axes' values, the first axis slowest.
    let mut combos: Vec<Vec<toml::Value>> = vec![vec![]];
    for axis in &cfg.grid {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                axis.values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push(v.clone());
                    c
                })
            })
            .collect();
    }
    let keys: Vec<String> = cfg.grid.iter().map(|a| a.key.clone()).collect();
    let (set_keys, set_values): (Vec<String>, Vec<toml::Value>) =
        grid::flatten(&cfg.set).into_iter().unzip();
    let mut points = vec![];
    let mut point_experiments = vec![];
    for (name, base_exp) in &experiments {
        let base_exp = grid::apply(base_exp, &set_keys, &set_values, "the sweep's [set]")?;
        for values in &combos {
            let i = points.len();
            let mut exp = grid::apply(&base_exp, &keys, values, "the sweep's grid")?;
            let point = Point {
                id: point_id(i, name, cfg.experiments.len(), &keys, values),
                experiment: name.clone(),
                values: values.clone(),
            };
            exp.threads = cfg.threads;
            points.push(point);
            point_experiments.push(exp);
        }
    }
    let plan = Plan {
        name: cfg.name.clone(),
        seeds,
        threads: cfg.threads,
        parallel: cfg.parallel,
        keys,
        experiments: cfg.experiments.len(),
        points,
        slurm: cfg.slurm.clone(),
    };
    for (exp, point) in point_experiments.iter_mut().zip(&plan.points) {
        exp.name = format!("{}: {}", plan.name, point.label(&plan));
    }
    let differs = || {
        Error::invalid(
            "sweep directory",
            format!(
                "{} holds a different sweep; continue it with the sweep file it was made from, or choose another --out (--force replaces it)",
                dir.display()
            ),
        )
    };
    if dir.join(PLAN_FILE).is_file() {
        if Plan::load(dir)? != plan {
            return Err(differs());
        }
    } else if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .next()
            .is_some()
    {
        return Err(Error::invalid(
            "sweep directory",
            format!("{} exists and is not a sweep directory", dir.display()),
        ));
    } else {
        // The plan first: a directory interrupted while planning is still a sweep, continued below.
        let mut json = serde_json::to_string_pretty(&plan).expect("plans serialise");
        json.push('\n');
        write_atomic(&dir.join(PLAN_FILE), json.as_bytes())?;
    }
    // Each point's experiment: written where missing, the same where present.
    for (point, exp) in plan.points.iter().zip(&point_experiments) {
        let root = point_dir(dir, point);
        let file = root.join(SEEDS_EXPERIMENT);
        if file.is_file() {
            if &Experiment::from_file(&file)? != exp {
                return Err(differs());
            }
        } else {
            write_seeds(&root, &plan.seeds)?;
            write_atomic(&file, exp.to_toml().as_bytes())?;
        }
    }
    Ok(plan)
}

/// Remove a sweep directory so a new one can be planned there; refuses anything else.
pub fn clear(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.join(PLAN_FILE).is_file() {
        return Err(Error::invalid(
            "sweep directory",
            format!(
                "{} is not a sweep directory (no {PLAN_FILE}); refusing to delete it",
                dir.display()
            ),
        ));
    }
    std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// `p03-coef-0.1`: the point's number, then its values in a form safe for a file name.
fn point_id(
    i: usize,
    experiment: &str,
    experiments: usize,
    keys: &[String],
    values: &[toml::Value],
) -> String {
    let mut id = format!("p{i:02}");
    if experiments > 1 {
        let stem = Path::new(experiment)
            .file_stem()
            .map_or(experiment.to_string(), |s| s.to_string_lossy().into_owned());
        id.push('-');
        id.push_str(&stem);
    }
    for (k, v) in keys.iter().zip(values) {
        id.push('-');
        id.push_str(short_key(k));
        id.push('-');
        id.push_str(&v.to_string());
    }
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    safe
}

#[cfg(test)]
mod tests;
