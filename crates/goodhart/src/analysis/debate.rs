//! The debate records across seeds, for the summary: per arm, the judge's
//! accuracy against gold on the answers it cannot check alone (overall, on
//! right answers, on wrong ones, and on wrong ones with a step to point at),
//! what an honest defender conceded, and accuracy by difficulty on every
//! answer; then the finding's paired contrasts (the defender against none,
//! and whether honesty wins each debate without a defender).

use std::fmt::Write as _;

use super::across::AcrossSeeds;
use super::findings::debate::{debate, records, values, Class};
use super::findings::show;
use crate::experiment::record::TaskRecords;
use crate::optimize::debate::DebateRecord;

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        f64::NAN
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Per arm `a` of `d`, the mean over the answers `keep` selects of the
/// probability the judge sides with gold.
fn share(
    d: &DebateRecord,
    a: usize,
    keep: &dyn Fn(&crate::optimize::debate::Judged) -> bool,
) -> f64 {
    let xs: Vec<f64> = d
        .answers
        .iter()
        .zip(&d.arms[a].p_correct)
        .filter(|(x, _)| keep(x))
        .map(|(_, &p)| p)
        .collect();
    mean(&xs)
}

/// Per task with a debate stage, its lines (empty when none has one).
pub fn debate_text<T: AsRef<[TaskRecords]>>(per_seed: &[T]) -> String {
    let mut out = String::new();
    let Some(first) = per_seed.first() else {
        return out;
    };
    for task in first.as_ref() {
        let seeds = records(per_seed, &task.task);
        let Some(d0) = seeds.first() else { continue };
        let n = seeds.len();
        let across = |f: &dyn Fn(&DebateRecord) -> f64| {
            AcrossSeeds::of(&seeds.iter().map(|d| f(d)).collect::<Vec<_>>()).show()
        };
        let beyond = |x: &crate::optimize::debate::Judged| !x.checked_alone;
        let _ = writeln!(
            out,
            "{}: debate, the round-{} critic attacking, checks misread with probability {} ({n} seed{}{})",
            task.task,
            d0.attacker_round,
            d0.check_noise,
            if n == 1 { "" } else { "s" },
            if n > 1 { "; ± is a 95% t-interval across seeds" } else { "" },
        );
        // Counts: whole numbers, with their spread across seeds.
        let count = |f: &dyn Fn(&crate::optimize::debate::Judged) -> bool| {
            let xs: Vec<f64> = seeds
                .iter()
                .map(|d| d.answers.iter().filter(|x| f(x)).count() as f64)
                .collect();
            let c = AcrossSeeds::of(&xs);
            if c.half_width.is_finite() {
                format!("{:.0} ±{:.0}", c.mean, c.half_width)
            } else {
                format!("{:.0}", c.mean)
            }
        };
        let _ = writeln!(
            out,
            "  answers per seed the judge cannot check alone: {} ({} right, {} of them with a wrong step in their working; {} wrong, {} of them with no step to point at)",
            count(&|x| beyond(x)),
            count(&|x| beyond(x) && x.right),
            count(&|x| beyond(x) && x.right && x.flawed),
            count(&|x| beyond(x) && !x.right),
            count(&|x| beyond(x) && !x.right && x.steps == 0),
        );
        let _ = writeln!(
            out,
            "  {:<22} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15}",
            "arm",
            "accuracy",
            "right accepted",
            "wrong rejected",
            "(with steps)",
            "conceded wrong",
            "conceded right"
        );
        for (a, arm) in d0.arms.iter().enumerate() {
            let conceded = |f: &dyn Fn(&crate::optimize::debate::ArmResult) -> Option<f64>| {
                let xs: Vec<f64> = seeds.iter().filter_map(|d| f(&d.arms[a])).collect();
                AcrossSeeds::of(&xs).show()
            };
            let _ = writeln!(
                out,
                "  {:<22} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15}",
                arm.arm.name,
                across(&|d| share(d, a, &beyond)),
                across(&|d| mean(&values(d, a, Class::Right))),
                across(&|d| mean(&values(d, a, Class::Wrong))),
                across(&|d| share(d, a, &|x| beyond(x) && !x.right && x.steps > 0)),
                conceded(&|r| r.conceded_wrong.as_ref().map(|s| s.mean)),
                conceded(&|r| r.conceded_right.as_ref().map(|s| s.mean)),
            );
        }
        let mut levels: Vec<u32> = d0.answers.iter().map(|x| x.difficulty).collect();
        levels.sort_unstable();
        levels.dedup();
        let _ = write!(
            out,
            "  accuracy by difficulty (every answer):\n  {:<22}",
            "arm"
        );
        for l in &levels {
            let _ = write!(out, " {:>15}", format!("difficulty {l}"));
        }
        out.push('\n');
        for (a, arm) in d0.arms.iter().enumerate() {
            let _ = write!(out, "  {:<22}", arm.arm.name);
            for &l in &levels {
                let _ = write!(
                    out,
                    " {:>15}",
                    across(&|d| share(d, a, &|x| x.difficulty == l))
                );
            }
            out.push('\n');
        }
        if let Some(f) = debate(per_seed, &task.task) {
            let _ = writeln!(
                out,
                "  paired over answers: honest defender minus none (p: two-sided, Holm)"
            );
            for c in &f.defender {
                let _ = writeln!(
                    out,
                    "    {:<20} right accepted {} (p {:.3}), wrong rejected {} (p {:.3})",
                    c.debate,
                    show(&c.right),
                    c.p_right,
                    show(&c.wrong),
                    c.p_wrong
                );
            }
            let _ = writeln!(
                out,
                "  honesty without a defender: the judge's rate of siding with the honest debater minus 1/2, on right answers, wrong ones, and wrong ones with a step (p: honesty wins on right and wrong, then on right and wrong with a step, IUT, Holm; the dishonest side wins on right answers, then on wrong ones, Holm)"
            );
            for c in &f.honesty {
                let _ = writeln!(
                    out,
                    "    {:<20} right {} wrong {} with a step {} (p {:.3}; {}; {:.3}; {:.3})",
                    c.debate,
                    show(&c.right),
                    show(&c.wrong),
                    c.arguable.as_ref().map_or("-".into(), show),
                    c.p_wins,
                    c.p_wins_arguable.map_or("-".into(), |p| format!("{p:.3}")),
                    c.p_loses_right,
                    c.p_loses_wrong
                );
            }
            let _ = writeln!(out, "  {}", f.verdict);
        }
    }
    out
}
