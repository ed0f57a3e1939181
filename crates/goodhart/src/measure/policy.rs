//! Measuring a policy that is a network (an RL or DPO checkpoint): sample it on
//! an evaluation split, score every completion, and estimate its KL from the
//! base policy as the mean of `log pi(x) - log pi_base(x)` over its own samples.

use crate::error::Result;
use crate::feedback::Labeler;
use crate::model::Model;
use crate::reward::RewardModel;
use crate::rng::Rng;
use crate::score::{
    completion_logprobs, evaluate, sequence_log_ratios, win_rate, CurvePoint, Evaluated, Judges,
    Scored, Weighted,
};
use crate::task::{Split, Task};

/// Where and how much to sample when measuring a policy.
pub struct Evaluation<'a> {
    pub task: &'a dyn Task,
    pub labelers: &'a [Labeler<'a>],
    pub rm: Option<&'a RewardModel>,
    pub split: Split,
    pub prompts: &'a [String],
    pub per_prompt: usize,
    pub max_new_tokens: usize,
    /// Completions kept on the point for reports.
    pub examples: usize,
    /// Gold of base-policy samples of each prompt: the point's gold win rate is measured against them.
    pub base_gold: Option<&'a [Vec<f64>]>,
    /// The labelled range (`labels.max_chars`): the point then records the share beyond it.
    pub labelled_chars: Option<usize>,
}

/// Measure `policy` against `base`; the point's strategy/knob/value are left for the caller.
pub fn measure_policy(
    policy: &Model,
    base: &Model,
    ev: &Evaluation,
    rng: &mut Rng,
) -> Result<(CurvePoint, Vec<Scored>)> {
    let judges = Judges {
        task: ev.task,
        labelers: ev.labelers,
        proxy: ev.rm,
    };
    let Evaluated {
        prompt_tokens: ids,
        samples,
        scored,
    } = evaluate(
        policy,
        &judges,
        ev.prompts,
        ev.per_prompt,
        ev.max_new_tokens,
        rng,
    )?;
    let policy_lp = completion_logprobs(policy, &ids, &samples)?;
    let base_lp = completion_logprobs(base, &ids, &samples)?;
    // Samples of one prompt are not independent draws of the KL: average them per
    // prompt, so the standard error (and the bootstrap) is clustered by prompt.
    let ratios = sequence_log_ratios(&policy_lp, &base_lp);
    let kl: Vec<f64> = ratios
        .chunks(ev.per_prompt)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect();
    let uniform = vec![vec![1.0 / ev.per_prompt as f64; ev.per_prompt]; ev.prompts.len()];
    let mut point = CurvePoint::new(ev.task.name(), "", ev.split.name(), "", 0.0, kl);
    let names: Vec<String> = ev.labelers.iter().map(|l| l.name().to_string()).collect();
    let w = Weighted {
        scored: &scored,
        per_prompt: ev.per_prompt,
    };
    w.summarise(
        &uniform,
        ev.task.feature_names(),
        &names,
        (ev.prompts, ev.examples),
        &mut point,
    );
    if let Some(max) = ev.labelled_chars {
        w.mark_labelled_range(&uniform, max, &mut point);
    }
    // The policy's own samples: H(pi) = E_pi[-log pi].
    let (surprisal, length) = w.surprisal_and_length(&uniform);
    point.entropy = Some(surprisal / length.max(1.0));
    let distinct: Vec<f64> = scored
        .chunks(ev.per_prompt)
        .map(|g| {
            let mut texts: Vec<&str> = g.iter().map(|s| s.completion.as_str()).collect();
            texts.sort_unstable();
            texts.dedup();
            texts.len() as f64 / g.len() as f64
        })
        .collect();
    point.distinct = Some(super::Stat::of(&distinct).mean);
    if let Some(base_gold) = ev.base_gold {
        let wins: Vec<f64> = scored
            .chunks(ev.per_prompt)
            .zip(base_gold)
            .map(|(group, base)| {
                group.iter().map(|s| win_rate(s.gold, base)).sum::<f64>() / group.len() as f64
            })
            .collect();
        point.gold_win_rate = Some(super::Stat::of(&wins));
    }
    Ok((point, scored))
}
