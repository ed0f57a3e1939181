//! Whether adversarial training of the reward model paid: best-of-n under
//! each round's reward model, at the largest n (where optimisation pushes
//! hardest), against round 0's and against the model retrained on as many
//! random labels, each paired per prompt on the same held-out samples. The
//! claim is shown when, after the last round, the red-team model's best-of-n
//! gold is above both (an intersection-union test: p is the larger one-sided
//! p-value).

use serde::{Deserialize, Serialize};

use super::curves::Curve;
use super::{show, Contrast};
use crate::analysis::curves::StrategyAnalysis;
use crate::measure::paired::{Paired, ALPHA};

/// One round's contrasts at the largest n.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoundContrast {
    pub round: usize,
    /// The red-team model's gold minus round 0's.
    pub red_team: Contrast,
    /// The random-label model's gold minus round 0's.
    pub random: Contrast,
    /// The red-team model's minus the random-label model's.
    pub red_minus_random: Contrast,
    /// p of "the red-team model beats both" (the larger one-sided p).
    pub p: f64,
}

/// One trained curve's highest gold: where (KL, mean over seeds) and how high.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Peak {
    pub strategy: String,
    pub kl: f64,
    pub gold: f64,
    /// The KL of its last checkpoint.
    pub end_kl: f64,
}

/// The task's first RL strategy against round 0's, the last red-team and
/// the last random-label reward model, at each run's last checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PpoContrast {
    /// Round 0's run, then the red team's, then the random labels'.
    pub peaks: Vec<Peak>,
    pub red_team: Contrast,
    pub random: Contrast,
    pub red_minus_random: Contrast,
    /// p of "the red-team model's run ends above both" (the larger one-sided p).
    pub p: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RedTeamFinding {
    /// The largest n of best-of-n, and its KL (mean over seeds) under round 0's model.
    pub n: f64,
    pub kl: f64,
    pub rounds: Vec<RoundContrast>,
    pub shown: bool,
    /// With `red_team.ppo`: the RL runs against the last round's models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppo: Option<PpoContrast>,
    pub verdict: String,
}

impl Peak {
    /// Where: "at KL k", or "at the base policy" when no checkpoint beats it.
    fn at(&self) -> String {
        if self.kl <= 0.0 {
            "at the base policy".into()
        } else {
            format!("at KL {:.2}", self.kl)
        }
    }
}

/// A trained curve's highest mean gold, by KL.
fn peak(c: &Curve) -> Peak {
    let gold = |p: &super::curves::Aligned| {
        p.per_seed.iter().map(|x| x.gold.mean).sum::<f64>() / p.per_seed.len() as f64
    };
    let best = c
        .points
        .iter()
        .max_by(|a, b| gold(a).total_cmp(&gold(b)))
        .expect("a curve has points");
    Peak {
        strategy: c.strategy.clone(),
        kl: best.kl,
        gold: gold(best),
        end_kl: c.end().kl,
    }
}

/// The RL runs' contrasts at their last checkpoints (None when a run is missing).
fn ppo<'a>(
    find: &dyn Fn(&str) -> Option<Curve<'a>>,
    rl: &str,
    rounds: usize,
) -> Option<PpoContrast> {
    let base = find(rl)?;
    let red = find(&format!("{rl}-red-team-{rounds}"))?;
    let random = find(&format!("{rl}-random-{rounds}"))?;
    let cells = vec![
        red.end().cell("gold")?,
        random.end().cell("gold")?,
        base.end().cell("gold")?,
    ];
    let paired = Paired::new(&cells, &mut base.rng("red-team/ppo"))?;
    let (r, q, rq) = (
        paired.difference(0, 2),
        paired.difference(1, 2),
        paired.difference(0, 1),
    );
    Some(PpoContrast {
        peaks: vec![peak(&base), peak(&red), peak(&random)],
        p: r.p_above().max(rq.p_above()),
        red_team: (&r).into(),
        random: (&q).into(),
        red_minus_random: (&rq).into(),
    })
}

/// The finding of a task with `rounds` red-team rounds (None when a curve is missing).
pub fn red_team(
    per_seed: &[&[StrategyAnalysis]],
    task: &str,
    rounds: usize,
    rl: Option<&str>,
) -> Option<RedTeamFinding> {
    let find = |name: &str| -> Option<Curve> {
        let a = per_seed
            .first()?
            .iter()
            .find(|a| a.task == task && a.strategy == name && a.split == "heldout")?;
        Curve::across_seeds(per_seed, a)
    };
    let base = find("bon-round-0")?;
    let end = base.end();
    let (n, kl) = (end.value, end.kl);
    let mut out = vec![];
    for round in 1..=rounds {
        let red = find(&format!("bon-red-team-{round}"))?;
        let random = find(&format!("bon-random-{round}"))?;
        let cells = vec![
            red.end().cell("gold")?,
            random.end().cell("gold")?,
            end.cell("gold")?,
        ];
        let paired = Paired::new(&cells, &mut base.rng(&format!("red-team/{round}")))?;
        let (r, q, rq) = (
            paired.difference(0, 2),
            paired.difference(1, 2),
            paired.difference(0, 1),
        );
        out.push(RoundContrast {
            round,
            p: r.p_above().max(rq.p_above()),
            red_team: (&r).into(),
            random: (&q).into(),
            red_minus_random: (&rq).into(),
        });
    }
    let last = out.last()?;
    let shown = last.p <= ALPHA;
    let evidence = format!(
        "after {rounds} rounds, best-of-{n} (KL {kl:.2}) under the red-team reward model changed gold by {} against round 0's model and by {} against the model given as many random labels (p = {:.3}; the random labels alone: {})",
        show(&last.red_team),
        show(&last.red_minus_random),
        last.p,
        show(&last.random),
    );
    let mut verdict = if shown {
        format!("Adversarial training paid, as measured: {evidence}.")
    } else {
        format!("Adversarial training is not shown to pay beyond noise: {evidence}.")
    };
    let ppo = rl.and_then(|rl| ppo(&find, rl, rounds));
    if let Some(c) = &ppo {
        let [base, red, random] = [&c.peaks[0], &c.peaks[1], &c.peaks[2]];
        verdict.push_str(&format!(
            " Under {} at its last checkpoint, adversarial training {}: the red-team reward model changed gold by {} against round 0's and by {} against the random labels' (p = {:.3}; KL {:.2}, {:.2} and {:.2}); gold peaks {} under round 0's model, {} under the red team's and {} under the random labels'.",
            base.strategy,
            if c.p <= ALPHA { "paid" } else { "is not shown to pay beyond noise" },
            show(&c.red_team),
            show(&c.red_minus_random),
            c.p,
            base.end_kl,
            red.end_kl,
            random.end_kl,
            base.at(),
            red.at(),
            random.at(),
        ));
    }
    Some(RedTeamFinding {
        n,
        kl,
        rounds: out,
        shown,
        ppo,
        verdict,
    })
}
