//! Launching what `goodhart run` runs: the tasks of a prepared run directory
//! on the experiment's threads, and a several-seed run's root (laid out new,
//! or opened to continue) with each seed's run directory started or resumed
//! and every seed's stages in one graph.
//! Writing the outputs from the records afterwards is the report layer's.

use std::path::{Path, PathBuf};

use super::config::Experiment;
use super::record::{resume, start, RunDir, EXPERIMENT_FILE};
use super::run::{run_tasks, Prepared, RunOptions};
use super::seeds::{read_seeds, seed_dir, write_seeds, SEEDS_EXPERIMENT};
use crate::error::Result;
use crate::fsutil::write_atomic;
use crate::progress::Progress;

/// Run (or continue) every task of the prepared run in `root` on the
/// experiment's threads (0: every core), its stages side by side as the graph allows.
pub fn run_prepared(
    root: &Path,
    exp: &Experiment,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<()> {
    let threads = crate::runtime::set_threads(exp.threads)?;
    crate::runtime::set_bf16(exp.bf16)?;
    tracing::info!(run = %root.display(), tasks = exp.tasks.len(), threads, seed = exp.seed, "run");
    let dir = RunDir::new(root);
    run_tasks(&[Prepared { dir: &dir, exp }], opts, progress)
}

/// A several-seed run: its root, its seeds in the order they run, and the
/// experiment every seed runs (each at its own seed).
pub struct SeedsRun {
    pub root: PathBuf,
    pub seeds: Vec<u64>,
    pub experiment: Experiment,
}

impl SeedsRun {
    /// Lay out a new several-seed run at `root`, which must not exist or be
    /// empty: the list of seeds and the experiment, no seed started yet.
    pub fn create(root: &Path, exp: &Experiment, seeds: Vec<u64>) -> Result<Self> {
        super::record::refuse_nonempty(root)?;
        write_seeds(root, &seeds)?;
        write_atomic(&root.join(SEEDS_EXPERIMENT), exp.to_toml().as_bytes())?;
        Ok(Self {
            root: root.to_path_buf(),
            seeds,
            experiment: exp.clone(),
        })
    }

    /// The several-seed run at `root`, to continue or report on; None when
    /// `root` is not one (a single run, say).
    pub fn open(root: &Path) -> Result<Option<Self>> {
        let Some(seeds) = read_seeds(root)? else {
            return Ok(None);
        };
        let experiment = Experiment::from_file(&root.join(SEEDS_EXPERIMENT))?;
        Ok(Some(Self {
            root: root.to_path_buf(),
            seeds,
            experiment,
        }))
    }

    /// The run of one seed, ready to run: its directory, started with the
    /// experiment at that seed, or continued if it was started before.
    pub fn prepare_seed(&self, seed: u64) -> Result<(PathBuf, Experiment)> {
        let dir = seed_dir(&self.root, seed);
        let exp = Experiment {
            seed,
            ..self.experiment.clone()
        };
        let exp = if dir.join(EXPERIMENT_FILE).is_file() {
            resume(&dir, Some(&exp))?
        } else {
            start(&dir, &exp)?
        };
        Ok((dir, exp))
    }

    /// Run (or continue) every seed: all seeds' stages in one graph, side by
    /// side as the threads allow (the first seed's preferred when several
    /// stages are ready). `starting` hears of each seed and its directory first.
    pub fn run(
        &self,
        opts: &RunOptions,
        progress: &dyn Progress,
        starting: &dyn Fn(u64, &Path),
    ) -> Result<()> {
        let prepared = self
            .seeds
            .iter()
            .map(|&seed| {
                let (dir, exp) = self.prepare_seed(seed)?;
                starting(seed, &dir);
                Ok((RunDir::new(&dir), exp))
            })
            .collect::<Result<Vec<_>>>()?;
        let threads = crate::runtime::set_threads(self.experiment.threads)?;
        crate::runtime::set_bf16(self.experiment.bf16)?;
        tracing::info!(run = %self.root.display(), seeds = self.seeds.len(), threads, "run");
        let runs: Vec<Prepared> = prepared
            .iter()
            .map(|(dir, exp)| Prepared { dir, exp })
            .collect();
        run_tasks(&runs, opts, progress)
    }
}
