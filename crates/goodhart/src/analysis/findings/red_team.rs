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

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RedTeamFinding {
    /// The largest n of best-of-n, and its KL (mean over seeds) under round 0's model.
    pub n: f64,
    pub kl: f64,
    pub rounds: Vec<RoundContrast>,
    pub shown: bool,
    pub verdict: String,
}

/// The finding of a task with `rounds` red-team rounds (None when a curve is missing).
pub fn red_team(
    per_seed: &[&[StrategyAnalysis]],
    task: &str,
    rounds: usize,
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
    let verdict = if shown {
        format!("Adversarial training paid, as measured: {evidence}.")
    } else {
        format!("Adversarial training is not shown to pay beyond noise: {evidence}.")
    };
    Some(RedTeamFinding {
        n,
        kl,
        rounds: out,
        shown,
        verdict,
    })
}
