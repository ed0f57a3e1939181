//! A run end to end, as `goodhart run` and `goodhart report` do it: the
//! runner over a prepared run directory (or over every seed of a several-seed
//! run at once), then the outputs rebuilt from the records (each seed's, then
//! the aggregate across seeds at the root). Nothing here prints: progress goes
//! through [`Progress`], and the caller shows what comes back.

use std::path::Path;

use super::seeds::write_seed_report;
use super::{write_outputs, Outputs};
use crate::analysis::seeds::{aggregate, Aggregate};
use crate::error::Result;
use crate::experiment::launch::{run_prepared, SeedsRun};
use crate::experiment::record::RunDir;
use crate::experiment::seeds::seed_dir;
use crate::experiment::{Experiment, RunOptions};
use crate::progress::Progress;

/// Run (or continue) every task of the prepared run in `root`, then write its outputs.
pub fn run(
    root: &Path,
    exp: &Experiment,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<Outputs> {
    run_prepared(root, exp, opts, progress)?;
    write_outputs(&RunDir::new(root))
}

/// Run (or continue) every seed of `seeds`, side by side, then write each
/// seed's outputs and the aggregate at the root. `starting` hears of each
/// seed and its directory before the seeds run.
pub fn run_seeds(
    seeds: &SeedsRun,
    opts: &RunOptions,
    progress: &dyn Progress,
    starting: &dyn Fn(u64, &Path),
) -> Result<Aggregate> {
    seeds.run(opts, progress, starting)?;
    rewrite_seeds(seeds)
}

/// Rebuild the outputs of a several-seed run from its records: each seed's, then the aggregate.
pub fn rewrite_seeds(seeds: &SeedsRun) -> Result<Aggregate> {
    for &seed in &seeds.seeds {
        write_outputs(&RunDir::new(&seed_dir(&seeds.root, seed)))?;
    }
    write_aggregate(seeds)
}

/// The aggregate across seeds, written at the root.
fn write_aggregate(seeds: &SeedsRun) -> Result<Aggregate> {
    let agg = aggregate(&seeds.root, &seeds.seeds)?;
    write_seed_report(&seeds.root, &seeds.experiment.name, &agg)?;
    Ok(agg)
}
