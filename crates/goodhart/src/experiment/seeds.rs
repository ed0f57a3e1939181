//! One experiment over several seeds: each seed is a run directory of its own
//! (`<root>/seed-<N>`, resumable like any run), and the root holds the
//! aggregate: curves with across-seed intervals (`curves.csv`), each seed's
//! fit and the fit of the across-seed mean curve (`fits.json`), and a summary
//! that says in how many seeds each finding holds (`summary.txt`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::analysis::{analyse, StrategyAnalysis};
use super::config::Experiment;
use super::findings::{self, TaskFindings};
use super::matched;
use super::record::RunDir;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::measure::fit::{fit, Fit, Form};

/// Marks a directory as the root of a several-seed run, and lists its seeds.
pub const SEEDS_FILE: &str = "seeds.json";

/// The experiment of a several-seed run, kept at its root (each seed's copy differs only in `seed`).
pub const SEEDS_EXPERIMENT: &str = "experiment-all-seeds.toml";

/// Seeds from `0..4` (inclusive: 0, 1, 2, 3, 4) or a list `0,3,7`.
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>> {
    let bad =
        |why: &str| Error::invalid("--seeds", format!("{spec:?}: {why} (write 0..4 or 0,3,7)"));
    let seeds: Vec<u64> = if let Some((a, b)) = spec.split_once("..") {
        let b = b.strip_prefix('=').unwrap_or(b);
        let (a, b): (u64, u64) = (
            a.trim().parse().map_err(|_| bad("not a number"))?,
            b.trim().parse().map_err(|_| bad("not a number"))?,
        );
        if a > b {
            return Err(bad("the range is empty"));
        }
        (a..=b).collect()
    } else {
        spec.split(',')
            .map(|s| s.trim().parse().map_err(|_| bad("not a number")))
            .collect::<Result<_>>()?
    };
    let mut sorted = seeds.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != seeds.len() {
        return Err(bad("a seed is repeated"));
    }
    if seeds.len() > 1000 {
        return Err(bad("more than 1000 seeds"));
    }
    Ok(seeds)
}

pub fn seed_dir(root: &Path, seed: u64) -> PathBuf {
    root.join(format!("seed-{seed}"))
}

/// The seeds a several-seed run directory was started with, if it is one.
pub fn read_seeds(root: &Path) -> Result<Option<Vec<u64>>> {
    let path = root.join(SEEDS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Data {
                path,
                line: e.line(),
                message: format!("not a list of seeds: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

pub fn write_seeds(root: &Path, seeds: &[u64]) -> Result<()> {
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    write_atomic(
        &root.join(SEEDS_FILE),
        serde_json::to_string(seeds)
            .expect("seeds serialise")
            .as_bytes(),
    )
}

/// Two-sided 95% Student t quantile for `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const T: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::NAN,
        1..=10 => T[df - 1],
        11..=20 => 2.2 - (df - 10) as f64 * 0.0114,
        _ => 1.96 + 2.4 / df as f64,
    }
}

/// A mean over seeds with its 95% t-interval half-width (NaN with one seed).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct AcrossSeeds {
    pub mean: f64,
    pub half_width: f64,
    pub seeds: usize,
}

impl AcrossSeeds {
    pub fn of(xs: &[f64]) -> Self {
        let xs: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n.max(1) as f64;
        let half_width = if n > 1 {
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            t95(n - 1) * (var / n as f64).sqrt()
        } else {
            f64::NAN
        };
        AcrossSeeds {
            mean: if n > 0 { mean } else { f64::NAN },
            half_width,
            seeds: n,
        }
    }

    pub fn show(&self) -> String {
        if self.half_width.is_finite() {
            format!("{:.3} ±{:.3}", self.mean, self.half_width)
        } else {
            format!("{:.3}", self.mean)
        }
    }
}

/// One curve (task, strategy, split) across seeds, point by point.
#[derive(Clone, Debug)]
pub struct SeedCurve {
    pub task: String,
    pub strategy: String,
    pub split: String,
    pub points: Vec<SeedPoint>,
}

/// One point of a curve, each measurement as a mean over seeds with its interval.
#[derive(Clone, Debug)]
pub struct SeedPoint {
    pub knob: String,
    pub value: f64,
    pub kl: AcrossSeeds,
    pub proxy: AcrossSeeds,
    pub gold: AcrossSeeds,
    pub gold_win_rate: AcrossSeeds,
    pub entropy: AcrossSeeds,
    /// Present and unflagged in every seed: only such points feed ends, peaks and fits.
    pub trusted: bool,
}

/// What [`aggregate`] computed: the curves and the summary it printed.
pub struct Aggregate {
    pub seeds: Vec<u64>,
    pub curves: Vec<SeedCurve>,
    pub summary: String,
    /// What the seeds found, generated from their numbers.
    pub findings: Vec<TaskFindings>,
    /// Each curve's fits (`fits.json`), in the order of `curves`.
    pub fits: Vec<CurveFit>,
    /// Per task with several judges or a learned critic: how they did against gold.
    pub judges: Vec<super::critics::JudgesAcrossSeeds>,
}

/// The fits of one curve over seeds: a row of `fits.json`.
#[derive(Clone, Debug, Serialize)]
pub struct CurveFit {
    pub task: String,
    pub strategy: String,
    pub split: String,
    pub form: &'static str,
    /// Each seed's fit of its own curve.
    pub per_seed: Vec<(u64, Option<Fit>)>,
    /// The fit of the across-seed mean curve (points trusted in every seed).
    pub pooled: Option<Fit>,
    /// Seeds whose own fit turns over (a gold peak at KL > 0).
    pub seeds_with_peak: usize,
    pub seeds: usize,
}

/// Write the aggregate of the seed runs under `root` (`curves.csv`,
/// `fits.json`, `summary.txt`) and return it.
pub fn aggregate(root: &Path, seeds: &[u64]) -> Result<Aggregate> {
    let mut analyses: Vec<(u64, Vec<StrategyAnalysis>)> = vec![];
    let mut all_records = vec![];
    for &seed in seeds {
        let dir = RunDir::new(&seed_dir(root, seed));
        let exp = dir.experiment()?;
        let records = dir.records(&exp)?;
        analyses.push((seed, records.iter().flat_map(analyse).collect()));
        all_records.push(records);
    }
    // Each curve (task, strategy, split) with every seed's analysis of it, in the first seed's order.
    type Key<'a> = (&'a str, &'a str, &'a str);
    let mut curves: Vec<(Key, Vec<(u64, &StrategyAnalysis)>)> = vec![];
    for (seed, list) in &analyses {
        for a in list {
            let key = (a.task.as_str(), a.strategy.as_str(), a.split.as_str());
            match curves.iter_mut().find(|(k, _)| *k == key) {
                Some((_, per_seed)) => per_seed.push((*seed, a)),
                None => curves.push((key, vec![(*seed, a)])),
            }
        }
    }

    let mut csv = String::from(
        "task,strategy,split,knob,value,seeds,kl,kl_ci,proxy,proxy_ci,gold,gold_ci,labeler,labeler_ci,truncated,gold_win_rate,gold_win_rate_ci,entropy,entropy_ci\n",
    );
    let mut fits = vec![];
    let mut matched_rows = vec![];
    let mut seed_curves = vec![];
    let mut summary = String::new();
    let mut last_task = String::new();
    for ((task, strategy, split), per_seed) in &curves {
        // Points matched across seeds by their sweep value (n, beta, q, iteration, step).
        let first = per_seed[0].1;
        let form = if first.family == "pool" {
            Form::Bon
        } else {
            Form::Rl
        };
        let mut mean_kl = vec![];
        let mut mean_gain = vec![];
        let mut rows = vec![];
        let mut seed_points = vec![];
        for p in &first.points {
            let matched: Vec<&crate::score::CurvePoint> = per_seed
                .iter()
                .filter_map(|(_, a)| {
                    a.points
                        .iter()
                        .find(|q| q.knob == p.knob && q.value == p.value)
                })
                .collect();
            let col = |f: &dyn Fn(&crate::score::CurvePoint) -> f64| {
                AcrossSeeds::of(&matched.iter().map(|q| f(q)).collect::<Vec<_>>())
            };
            let kl = col(&|q| q.kl.mean);
            let gold = col(&|q| q.gold.mean);
            let proxy = col(&|q| q.proxy.mean);
            let labeler = col(&|q| q.labelers.first().map_or(f64::NAN, |(_, s)| s.mean));
            let truncated = col(&|q| q.truncated.unwrap_or(f64::NAN));
            let win = col(&|q| q.gold_win_rate.map_or(f64::NAN, |w| w.mean));
            let entropy = col(&|q| q.entropy.unwrap_or(f64::NAN));
            writeln!(
                csv,
                "{task},{strategy},{split},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                p.knob,
                p.value,
                matched.len(),
                kl.mean,
                kl.half_width,
                proxy.mean,
                proxy.half_width,
                gold.mean,
                gold.half_width,
                labeler.mean,
                labeler.half_width,
                truncated.mean,
                win.mean,
                win.half_width,
                entropy.mean,
                entropy.half_width
            )
            .unwrap();
            let trusted =
                matched.len() == per_seed.len() && matched.iter().all(|q| q.flag.is_none());
            if trusted {
                mean_kl.push(kl.mean);
                mean_gain.push(gold.mean);
            }
            // Per seed: whether its gold here is below its own base policy's.
            let below: usize = per_seed
                .iter()
                .filter(|(_, a)| {
                    a.points
                        .iter()
                        .find(|q| q.knob == p.knob && q.value == p.value)
                        .is_some_and(|q| q.gold.mean < a.reference_gold)
                })
                .count();
            if trusted {
                rows.push((kl, gold, proxy, below));
            }
            seed_points.push(SeedPoint {
                knob: p.knob.clone(),
                value: p.value,
                kl,
                proxy,
                gold,
                gold_win_rate: win,
                entropy,
                trusted,
            });
        }
        seed_curves.push(SeedCurve {
            task: task.to_string(),
            strategy: strategy.to_string(),
            split: split.to_string(),
            points: seed_points,
        });
        let reference_gold =
            per_seed.iter().map(|(_, a)| a.reference_gold).sum::<f64>() / per_seed.len() as f64;
        let ds: Vec<f64> = mean_kl.iter().map(|k| k.max(0.0).sqrt()).collect();
        let gains: Vec<f64> = mean_gain.iter().map(|g| g - reference_gold).collect();
        let seed_fits: Vec<(u64, Option<Fit>)> =
            per_seed.iter().map(|(s, a)| (*s, a.fit.clone())).collect();
        let seeds_with_peak = seed_fits
            .iter()
            .filter(|(_, f)| {
                f.as_ref()
                    .is_some_and(|f| f.peak_d.is_some() && !f.peak_extrapolated)
            })
            .count();
        let n = per_seed.len();
        fits.push(CurveFit {
            task: task.to_string(),
            strategy: strategy.to_string(),
            split: split.to_string(),
            form: form.formula(),
            pooled: fit(form, &ds, &gains),
            per_seed: seed_fits,
            seeds_with_peak,
            seeds: n,
        });
        if *split != "heldout" {
            continue;
        }
        let analyses_of: Vec<&StrategyAnalysis> = per_seed.iter().map(|(_, a)| *a).collect();
        matched_rows.extend(matched::rows(task, strategy, &analyses_of));
        if *task != last_task {
            writeln!(
                summary,
                "{task} ({} seeds; ± is a 95% t-interval across seeds)",
                n
            )
            .unwrap();
            writeln!(
                summary,
                "  {:<18} {:>15} {:>15} {:>15} {:>15}  findings",
                "strategy", "max KL", "proxy", "gold", "base gold"
            )
            .unwrap();
            last_task = task.to_string();
        }
        // The point furthest from the base policy on average over seeds.
        let (kl, gold, proxy, below) = rows
            .iter()
            .max_by(|a, b| a.0.mean.total_cmp(&b.0.mean))
            .expect("a curve has points");
        let base = AcrossSeeds::of(
            &per_seed
                .iter()
                .map(|(_, a)| a.reference_gold)
                .collect::<Vec<_>>(),
        );
        writeln!(
            summary,
            "  {:<18} {:>15} {:>15} {:>15} {:>15}  gold below base at max KL in {below}/{n} seeds; fit turns over within the sweep in {seeds_with_peak}/{n}",
            strategy,
            kl.show(),
            proxy.show(),
            gold.show(),
            base.show(),
        )
        .unwrap();
    }
    let first_exp = match seeds.first() {
        Some(&seed) => RunDir::new(&seed_dir(root, seed)).experiment()?,
        None => Experiment::default(),
    };
    let found = findings::findings(
        &analyses
            .iter()
            .map(|(_, list)| list.as_slice())
            .collect::<Vec<_>>(),
        &first_exp,
    );
    let judges = super::critics::judges_across_seeds(&all_records);
    summary.push_str(&super::critics::judges_text(&judges));
    summary.push('\n');
    summary.push_str(&matched::text(&matched_rows));
    summary.push_str("\nfindings\n");
    summary.push_str(&findings::text(&found));
    let mut fits_json = serde_json::to_string_pretty(&fits).expect("fits serialise");
    fits_json.push('\n');
    write_atomic(&root.join("curves.csv"), csv.as_bytes())?;
    write_atomic(&root.join("fits.json"), fits_json.as_bytes())?;
    write_atomic(
        &root.join("matched.csv"),
        matched::csv(&matched_rows).as_bytes(),
    )?;
    write_atomic(&root.join("summary.txt"), summary.as_bytes())?;
    findings::write(root, &found)?;
    Ok(Aggregate {
        seeds: seeds.to_vec(),
        curves: seed_curves,
        summary,
        findings: found,
        fits,
        judges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_lists_and_ranges_parse_and_bad_ones_say_why() {
        assert_eq!(parse_seeds("0..2").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_seeds("3..=4").unwrap(), vec![3, 4]);
        assert_eq!(parse_seeds("5, 1,9").unwrap(), vec![5, 1, 9]);
        assert!(parse_seeds("2..1")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(parse_seeds("1,1")
            .unwrap_err()
            .to_string()
            .contains("repeated"));
        assert!(parse_seeds("a..3")
            .unwrap_err()
            .to_string()
            .contains("--seeds"));
    }

    #[test]
    fn across_seed_interval_is_a_t_interval() {
        let s = AcrossSeeds::of(&[1.0, 2.0, 3.0]);
        assert_eq!(s.mean, 2.0);
        // sd 1, n 3, t(2) = 4.303.
        assert!((s.half_width - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert!(AcrossSeeds::of(&[1.0]).half_width.is_nan());
    }
}
