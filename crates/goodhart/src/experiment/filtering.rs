//! The pool stage: best-of-n (and its oracle baselines), conditioning and the
//! quantiliser, all reweightings of one pool of base-policy samples per split.

use super::record::{BaseStats, MeanSd, NamedMeanSd, Record};
use super::run::{Products, TaskRun};
use crate::error::{Error, Result};
use crate::optimize::pool::{build_pool, Pool};
use crate::optimize::review::{self, ReviewRow};
use crate::optimize::{bon, condition, quantilize};
use crate::rng::Rng;
use crate::score::CurvePoint;
use crate::score::Proxy;
use crate::task::spec::Formula;
use crate::task::Split;

impl TaskRun<'_> {
    /// The pool stage: one pool of base samples per evaluation split, and every
    /// reweighting strategy on it (best-of-n and its oracles, conditioning, the quantiliser).
    pub(super) fn pool(&self, p: &Products) -> Result<Record> {
        let (base, rm, labelers) = (
            self.base_policy(&p.base)?,
            self.proxy(&p.reward_model)?,
            self.labelers(p)?,
        );
        let s = &self.setup.strategies;
        let mut rng = self.rng("pool");
        let mut points = vec![];
        let mut notes = vec![];
        let mut review = vec![];
        let mut range = vec![];
        let mut stats = BaseStats::default();
        let splits: Vec<Split> = self.splits().into_iter().map(|(s, _)| s).collect();
        self.progress.start("best-of-n pool", splits.len() as u64);
        for split in splits {
            let prompts: Vec<String> = self
                .task
                .prompts(split)
                .into_iter()
                .take(s.pool.prompts)
                .collect();
            let mut pool: Pool = build_pool(
                base,
                self.task,
                labelers,
                Some(rm),
                &Proxy(rm),
                split,
                prompts,
                s.pool.samples,
                self.setup.sampling.max_new_tokens,
                &mut rng,
            )?;
            pool.examples = self.setup.evaluation.examples;
            pool.labelled_chars = self.setup.labels.max_chars;
            if let Some(check) = pool.labelled_chars.and_then(|m| pool.range_check(m)) {
                range.push(check);
            }
            let uniform =
                vec![vec![1.0 / pool.per_prompt as f64; pool.per_prompt]; pool.n_prompts()];
            points.push(pool.point("base", "n", 1.0, &uniform, vec![0.0; pool.n_prompts()]));
            if split == Split::Heldout {
                stats = self.base_stats(&pool);
            }
            if !s.bon.n.is_empty() {
                points.extend(bon::run(&pool, &s.bon, "bon")?);
                if s.bon.oracles && !pool.labeler_names.is_empty() {
                    // The labeler the reward model learned from, and gold itself, as the selection reward.
                    let li = self.reward_labeler_index(&pool);
                    let by_labeler = pool.scored.iter().map(|x| x.labeler[li]).collect();
                    let by_gold = pool.scored.iter().map(|x| x.gold).collect();
                    let labeler = pool.selecting_on(&pool.labeler_names[li], by_labeler);
                    points.extend(bon::run(&labeler, &s.bon, "bon-labeler")?);
                    let gold = pool.selecting_on("gold", by_gold);
                    points.extend(bon::run(&gold, &s.bon, "bon-gold")?);
                }
            }
            if !s.conditioning.beta.is_empty() {
                points.extend(condition::run(&pool, &s.conditioning, "conditioning")?);
            }
            // A formal goal selects too: best-of-n on it, and conditioning on
            // it (on a 0/1 goal, as beta shrinks, rejection sampling: the base
            // policy conditioned on satisfying the goal).
            let spec: Option<Vec<f64>> = pool.scored.iter().map(|x| x.spec).collect();
            if let Some(spec) = spec.filter(|v| !v.is_empty()) {
                let on_spec = pool.selecting_on("spec", spec);
                if !s.bon.n.is_empty() {
                    points.extend(bon::run(&on_spec, &s.bon, "bon-spec")?);
                }
                if !s.conditioning.beta.is_empty() {
                    points.extend(condition::run(
                        &on_spec,
                        &s.conditioning,
                        "conditioning-spec",
                    )?);
                }
            }
            if s.review.enabled() {
                let (review_points, rows) = self.review(&pool, &mut rng)?;
                points.extend(review_points);
                review.extend(rows);
            }
            if !s.quantiliser.q.is_empty() {
                let (q_points, dropped) = quantilize::run(&pool, &s.quantiliser, "quantiliser")?;
                points.extend(q_points);
                notes.extend(
                    dropped
                        .into_iter()
                        .map(|n| format!("{}: {n}", split.name())),
                );
            }
            self.progress.advance(1);
        }
        self.progress.finish();
        Ok(Record::Pool {
            base: stats,
            points,
            notes,
            review,
            range,
        })
    }

    /// Review and revise on one pool: each candidate goal's conditioned policy,
    /// then the simulated reviews with each K.
    fn review(&self, pool: &Pool, rng: &mut Rng) -> Result<(Vec<CurvePoint>, Vec<ReviewRow>)> {
        let cfg = &self.setup.strategies.review;
        let candidates = cfg
            .candidates
            .iter()
            .map(|text| {
                let goal = Formula::parse(text, self.task.goal_predicates())?;
                let satisfied = pool
                    .scored
                    .iter()
                    .map(|s| {
                        self.task
                            .goal_satisfied(&goal, &pool.prompts[s.prompt_index], &s.completion)
                            .ok_or_else(|| {
                                Error::invalid("review", "this task has no formal goals to review")
                            })
                    })
                    .collect::<Result<Vec<f64>>>()?;
                Ok(review::condition_on(pool, &satisfied))
            })
            .collect::<Result<Vec<_>>>()?;
        review::run(pool, &candidates, cfg, "review", rng)
    }

    /// Where the labeler the reward model learned from sits among the pool's labelers.
    fn reward_labeler_index(&self, pool: &Pool) -> usize {
        let first = &self.setup.reward_labelers()[0];
        pool.labeler_names
            .iter()
            .position(|n| n == first)
            .unwrap_or(0)
    }

    fn base_stats(&self, pool: &Pool) -> BaseStats {
        let first = &self.setup.reward_labelers()[0];
        let li = self.reward_labeler_index(pool);
        let named = |name: &str, xs: &mut dyn Iterator<Item = f64>| {
            let MeanSd { mean, sd } = mean_std(xs);
            NamedMeanSd {
                name: name.to_string(),
                mean,
                sd,
            }
        };
        BaseStats {
            proxy: mean_std(&mut pool.scored.iter().map(|s| s.proxy.unwrap_or(0.0))),
            labeler: named(first, &mut pool.scored.iter().map(|s| s.labeler[li])),
            gold: mean_std(&mut pool.scored.iter().map(|s| s.gold)),
            features: pool
                .feature_names
                .iter()
                .enumerate()
                .map(|(i, n)| named(n, &mut pool.scored.iter().map(|s| s.features[i])))
                .collect(),
        }
    }
}

fn mean_std(xs: &mut dyn Iterator<Item = f64>) -> MeanSd {
    let v: Vec<f64> = xs.collect();
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    MeanSd {
        mean,
        sd: (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt(),
    }
}
