//! The aggregate of a several-seed run (its root, see `crate::experiment::seeds`):
//! curves with across-seed intervals (`curves.csv`), each seed's fit and the
//! fit of the across-seed mean curve (`fits.json`), the findings over every
//! seed (`findings.json`) and a summary (`summary.txt`).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::across::AcrossSeeds;
use super::curves::{analyse, StrategyAnalysis};
use super::findings::{self, TaskFindings};
use super::matched;
use crate::error::Result;
use crate::experiment::config::Experiment;
use crate::experiment::record::RunDir;
use crate::experiment::seeds::seed_dir;
use crate::fsutil::write_atomic;
use crate::measure::fit::{fit, Fit, Form};

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
    pub judges: Vec<super::judges::JudgesAcrossSeeds>,
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
    let mut found = findings::findings(
        &analyses
            .iter()
            .map(|(_, list)| list.as_slice())
            .collect::<Vec<_>>(),
        &first_exp,
    );
    findings::attach_records(&mut found, &all_records);
    let judges = super::judges::judges_across_seeds(&all_records);
    summary.push_str(&super::judges::judges_text(&judges));
    summary.push_str(&super::formal::formal_text(&all_records));
    summary.push_str(&super::range::range_text(&all_records));
    summary.push_str(&super::red_team::red_team_text(&all_records));
    summary.push_str(&super::rrm::rrm_text(&all_records));
    summary.push_str(&super::debate::debate_text(&all_records));
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
