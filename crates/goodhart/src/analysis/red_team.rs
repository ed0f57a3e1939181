//! The red-team records across seeds, for the summary: per arm and round, the
//! failures found among the pairs labelled and the share the labeler caught,
//! the retrained reward model's agreement with gold on held-out pairs, and
//! best-of-n on the same held-out samples against round 0 (paired per prompt
//! and sample pool), with where gold peaks.

use std::fmt::Write as _;

use super::across::AcrossSeeds;
use crate::experiment::record::{Record, TaskRecords};
use crate::measure::paired::Paired;
use crate::optimize::red_team::{Arm, RedTeamRound};
use crate::rng;
use crate::score::CurvePoint;

type Seeds<'a> = Vec<(&'a [RedTeamRound], &'a [CurvePoint])>;

fn of(t: &TaskRecords) -> Option<(&[RedTeamRound], &[CurvePoint])> {
    t.records.iter().find_map(|(_, r)| match r {
        Record::RedTeam { rounds, points } => Some((rounds.as_slice(), points.as_slice())),
        _ => None,
    })
}

/// The held-out best-of-n curve `name` in one seed, in order of n.
fn curve<'a>(points: &'a [CurvePoint], name: &str) -> Vec<&'a CurvePoint> {
    let mut c: Vec<&CurvePoint> = points
        .iter()
        .filter(|p| p.strategy == name && p.split == "heldout")
        .collect();
    c.sort_by(|a, b| a.value.total_cmp(&b.value));
    c
}

/// Per task with a red team, its lines (empty when none has one).
pub fn red_team_text(per_seed: &[Vec<TaskRecords>]) -> String {
    let mut out = String::new();
    let Some(first) = per_seed.first() else {
        return out;
    };
    for (t, task) in first.iter().enumerate() {
        let seeds: Seeds = per_seed
            .iter()
            .filter_map(|s| s.get(t))
            .filter_map(of)
            .collect();
        if let Some((rounds, _)) = seeds.first() {
            lines(&mut out, &task.task, rounds, &seeds);
        }
    }
    out
}

fn lines(out: &mut String, task: &str, first: &[RedTeamRound], seeds: &Seeds) {
    let n = seeds.len();
    let _ = writeln!(
        out,
        "{task}: red team against the reward model, and random pairs for the same labels ({n} seed{}; rates: mean{}; gold: paired over prompts{})",
        if n == 1 { "" } else { "s" },
        if n > 1 { " ±95% t-interval across seeds" } else { "" },
        if n > 1 { " in each seed" } else { "" },
    );
    let _ = writeln!(
        out,
        "  {:<9} {:>5} {:>6} {:>15} {:>15} {:>15} {:>26} {:>12}",
        "arm",
        "round",
        "pairs",
        "failures found",
        "caught",
        "rm vs gold",
        "bon gold at max n vs round 0",
        "gold peak n"
    );
    let base_curves: Vec<Vec<&CurvePoint>> = seeds
        .iter()
        .map(|(_, pts)| curve(pts, "bon-round-0"))
        .collect();
    let peak = |curves: &[Vec<&CurvePoint>]| -> String {
        let Some(len) = curves.iter().map(Vec::len).min().filter(|&l| l > 0) else {
            return "-".into();
        };
        let mean =
            |k: usize| curves.iter().map(|c| c[k].gold.mean).sum::<f64>() / curves.len() as f64;
        let best = (0..len)
            .max_by(|&a, &b| mean(a).total_cmp(&mean(b)))
            .expect("points");
        format!("{}", curves[0][best].value)
    };
    let _ = writeln!(
        out,
        "  {:<9} {:>5} {:>6} {:>15} {:>15} {:>15} {:>26} {:>12}",
        "-",
        0,
        "-",
        "-",
        "-",
        "-",
        "-",
        peak(&base_curves)
    );
    for row in first {
        let same: Vec<&RedTeamRound> = seeds
            .iter()
            .filter_map(|(r, _)| r.iter().find(|x| x.arm == row.arm && x.round == row.round))
            .collect();
        let across = |f: &dyn Fn(&RedTeamRound) -> Option<f64>| {
            AcrossSeeds::of(&same.iter().filter_map(|x| f(x)).collect::<Vec<_>>()).show()
        };
        let name = format!("bon-{}-{}", row.arm.name().replace('_', "-"), row.round);
        let curves: Vec<Vec<&CurvePoint>> =
            seeds.iter().map(|(_, pts)| curve(pts, &name)).collect();
        let vs_base = against(&curves, &base_curves, task, &name);
        let _ = writeln!(
            out,
            "  {:<9} {:>5} {:>6} {:>15} {:>15} {:>15} {:>26} {:>12}",
            match row.arm {
                Arm::RedTeam => "red team",
                Arm::Random => "random",
            },
            row.round,
            row.pairs,
            across(&|x| Some(x.failures)),
            across(&|x| x.caught),
            across(&|x| x.agreement.as_ref().map(|a| a.accuracy.mean)),
            vs_base,
            peak(&curves)
        );
    }
}

/// Gold at the largest n of `curves` minus that of `base`, paired per prompt in each seed.
fn against(
    curves: &[Vec<&CurvePoint>],
    base: &[Vec<&CurvePoint>],
    task: &str,
    name: &str,
) -> String {
    fn last<'a>(c: &[&'a CurvePoint]) -> Option<&'a [f64]> {
        c.last()
            .and_then(|p| p.per_prompt.as_ref())
            .map(|pp| pp.gold.as_slice())
    }
    let a: Option<Vec<&[f64]>> = curves.iter().map(|c| last(c)).collect();
    let b: Option<Vec<&[f64]>> = base.iter().map(|c| last(c)).collect();
    let (Some(a), Some(b)) = (a, b) else {
        return "-".into();
    };
    let mut r = rng::stream(0, &format!("red_team/{task}/{name}"));
    Paired::new(&[a, b], &mut r).map_or("-".into(), |p| p.difference(0, 1).shown())
}
