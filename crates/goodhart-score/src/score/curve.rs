//! One point of a strategy's curve: everything measured about one policy (a
//! checkpoint, or best-of-n at one n, ...) on one split of prompts.

use serde::{Deserialize, Serialize};

use super::Scored;
use crate::model::sample::StopReason;
use crate::stats::Stat;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub task: String,
    /// The strategy's name in the experiment (e.g. "ppo-kl", "bon").
    pub strategy: String,
    /// "heldout" or "shift".
    pub split: String,
    /// What was swept: "n", "beta", "q", "iteration", "epoch".
    pub knob: String,
    pub value: f64,
    /// KL(policy || base) in nats, estimated from samples.
    pub kl: Stat,
    /// The closed form, where there is one (best-of-n, quantiliser).
    pub kl_analytic: Option<f64>,
    pub proxy: Stat,
    pub gold: Stat,
    /// (labeler name, its score).
    pub labelers: Vec<(String, Stat)>,
    /// Formal-goal satisfaction (gridworld).
    pub spec: Option<Stat>,
    /// (feature name, mean).
    pub features: Vec<(String, f64)>,
    /// Effective sample size per prompt (importance-weighted estimates).
    pub ess: Option<f64>,
    /// Share of completions cut at the length limit (no EOS).
    #[serde(default)]
    pub truncated: Option<f64>,
    /// Of those, the share the model's context cut short (before
    /// `max_new_tokens`); absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_stopped: Option<f64>,
    /// Probability that this policy's completion beats the base policy's on
    /// gold (ties half), per prompt, averaged over prompts.
    #[serde(default)]
    pub gold_win_rate: Option<Stat>,
    /// Entropy of the policy's completions in nats per generated token
    /// (sequence entropy over mean length): mode collapse shows as a fall.
    #[serde(default)]
    pub entropy: Option<f64>,
    /// Share of a prompt's sampled completions that are distinct, averaged over
    /// prompts (policies that are networks; a reweighted pool has none).
    #[serde(default)]
    pub distinct: Option<f64>,
    /// Why this point is not trusted (e.g. too small an effective sample size):
    /// shown, but left out of fits, peaks and matched-KL comparisons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    /// The saved policy behind this point, when there is one.
    pub checkpoint: Option<String>,
    /// A few completions this point's policy gives (for reports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Shown>,
    /// The per-prompt values behind `kl` and `gold` (the split's prompts in
    /// order, the same for every point of a curve): what bootstrap intervals resample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_prompt: Option<PerPrompt>,
}

/// The feature a point carries when the labels cover a declared range
/// (`labels.max_chars`): the share of completions longer than any labelled one.
pub const BEYOND_LABELS: &str = "beyond_labels";

/// Per-prompt means of one curve point: what paired contrasts between points
/// (and strategies) resample. Runs written before the proxy, labeler, goal and
/// feature series existed read them as empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PerPrompt {
    pub kl: Vec<f64>,
    pub gold: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proxy: Vec<f64>,
    /// The first labeler's score.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labeler: Vec<f64>,
    /// Formal-goal satisfaction, where the task has a goal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spec: Vec<f64>,
    /// The task's named features.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<FeatureSeries>,
}

/// One named feature's per-prompt means.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureSeries {
    pub name: String,
    pub values: Vec<f64>,
}

impl PerPrompt {
    /// The per-prompt values of `what`: "gold", "proxy", "labeler", "spec", "kl" or a feature's name (empty when not recorded).
    pub fn series(&self, what: &str) -> &[f64] {
        match what {
            "gold" => &self.gold,
            "kl" => &self.kl,
            "proxy" => &self.proxy,
            "labeler" => &self.labeler,
            "spec" => &self.spec,
            name => self
                .features
                .iter()
                .find(|f| f.name == name)
                .map_or(&[], |f| &f.values),
        }
    }
}

impl CurvePoint {
    /// A point with its identity and per-prompt KL; [`Weighted::summarise`] fills in the measurements.
    pub fn new(
        task: &str,
        strategy: &str,
        split: &str,
        knob: &str,
        value: f64,
        kl_per_prompt: Vec<f64>,
    ) -> Self {
        Self {
            task: task.to_string(),
            strategy: strategy.to_string(),
            split: split.to_string(),
            knob: knob.to_string(),
            value,
            kl: Stat::of(&kl_per_prompt),
            kl_analytic: None,
            proxy: Stat::default(),
            gold: Stat::default(),
            labelers: vec![],
            spec: None,
            features: vec![],
            ess: None,
            truncated: None,
            context_stopped: None,
            gold_win_rate: None,
            entropy: None,
            distinct: None,
            flag: None,
            checkpoint: None,
            examples: vec![],
            per_prompt: Some(PerPrompt {
                kl: kl_per_prompt,
                ..PerPrompt::default()
            }),
        }
    }
}

/// One completion as a report shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shown {
    pub prompt: String,
    pub completion: String,
    pub gold: f64,
    pub proxy: Option<f64>,
    /// The first labeler's score.
    pub labeler: Option<f64>,
}

/// Summaries of weighted samples: `weights[p]` weighs the samples of prompt `p`
/// (summing to 1); every summary is a mean over prompts, with the standard error across prompts.
pub struct Weighted<'a> {
    pub scored: &'a [Scored],
    pub per_prompt: usize,
}

impl Weighted<'_> {
    /// The most heavily weighted completion of each of the first `k` prompts.
    fn examples(&self, weights: &[Vec<f64>], prompts: &[String], k: usize) -> Vec<Shown> {
        weights
            .iter()
            .take(k)
            .enumerate()
            .map(|(p, w)| {
                let best = (0..w.len()).fold(0, |b, i| if w[i] > w[b] { i } else { b });
                let s = &self.scored[p * self.per_prompt + best];
                Shown {
                    prompt: prompts[p].clone(),
                    completion: s.completion.clone(),
                    gold: s.gold,
                    proxy: s.proxy,
                    labeler: s.labeler.first().copied(),
                }
            })
            .collect()
    }

    fn per_prompt(&self, weights: &[Vec<f64>], f: impl Fn(&Scored) -> f64) -> Stat {
        Stat::of(&self.per_prompt_means(weights, f))
    }

    fn per_prompt_means(&self, weights: &[Vec<f64>], f: impl Fn(&Scored) -> f64) -> Vec<f64> {
        weights
            .iter()
            .enumerate()
            .map(|(p, w)| {
                let group = &self.scored[p * self.per_prompt..(p + 1) * self.per_prompt];
                group.iter().zip(w).map(|(s, w)| w * f(s)).sum()
            })
            .collect()
    }

    /// Per prompt, the weighted mean of `-log p(completion)` under the policy
    /// that sampled the pool, and of the completion's length in tokens.
    pub fn surprisal_and_length(&self, weights: &[Vec<f64>]) -> (f64, f64) {
        (
            self.per_prompt(weights, |s| -s.logprob).mean,
            self.per_prompt(weights, |s| s.n_tokens as f64).mean,
        )
    }

    /// Fill the reward and feature summaries of `point` from weighted samples,
    /// and keep the most weighted completions of the first `examples` of `prompts`.
    pub fn summarise(
        &self,
        weights: &[Vec<f64>],
        feature_names: &[&str],
        labeler_names: &[String],
        (prompts, examples): (&[String], usize),
        point: &mut CurvePoint,
    ) {
        point.examples = self.examples(weights, prompts, examples);
        let series = |f: &dyn Fn(&Scored) -> f64| self.per_prompt_means(weights, f);
        let gold = series(&|s| s.gold);
        let proxy = series(&|s| s.proxy.unwrap_or(f64::NAN));
        let labelers: Vec<Vec<f64>> = (0..labeler_names.len())
            .map(|i| series(&|s| s.labeler[i]))
            .collect();
        let spec = self
            .scored
            .first()
            .and_then(|s| s.spec)
            .map(|_| series(&|s| s.spec.unwrap_or(0.0)));
        let features: Vec<FeatureSeries> = feature_names
            .iter()
            .enumerate()
            .map(|(i, n)| FeatureSeries {
                name: n.to_string(),
                values: series(&|s| s.features[i]),
            })
            .collect();
        point.gold = Stat::of(&gold);
        point.proxy = Stat::of(&proxy);
        point.truncated = Some(self.per_prompt(weights, |s| f64::from(s.truncated)).mean);
        let context_stopped = self
            .per_prompt(weights, |s| f64::from(s.stop == Some(StopReason::Context)))
            .mean;
        point.context_stopped = (context_stopped > 0.0).then_some(context_stopped);
        point.labelers = labeler_names
            .iter()
            .zip(&labelers)
            .map(|(n, v)| (n.clone(), Stat::of(v)))
            .collect();
        point.spec = spec.as_deref().map(Stat::of);
        point.features = features
            .iter()
            .map(|f| (f.name.clone(), Stat::of(&f.values).mean))
            .collect();
        let per_prompt = point.per_prompt.get_or_insert_with(PerPrompt::default);
        per_prompt.gold = gold;
        // (A pool scored without a reward model has no proxy to pair.)
        per_prompt.proxy = if proxy.iter().all(|x| x.is_finite()) {
            proxy
        } else {
            vec![]
        };
        per_prompt.labeler = labelers.into_iter().next().unwrap_or_default();
        per_prompt.spec = spec.unwrap_or_default();
        per_prompt.features = features;
        point
            .features
            .extend(self.correlations(weights, feature_names));
    }

    /// Add to `point` the share of completions longer than the labelled range
    /// (`max_chars` characters), per prompt: [`BEYOND_LABELS`], a feature.
    pub fn mark_labelled_range(
        &self,
        weights: &[Vec<f64>],
        max_chars: usize,
        point: &mut CurvePoint,
    ) {
        let values = self.per_prompt_means(weights, |s| {
            f64::from(s.completion.chars().count() > max_chars)
        });
        point
            .features
            .push((BEYOND_LABELS.to_string(), Stat::of(&values).mean));
        point
            .per_prompt
            .get_or_insert_with(PerPrompt::default)
            .features
            .push(FeatureSeries {
                name: BEYOND_LABELS.to_string(),
                values,
            });
    }

    /// The correlations filtering is said to keep and RL to break: for a task
    /// with a `correct` feature, P(correct | f) for every other 0/1 feature f
    /// (`p_correct_given_<f>`), and the correlation of the first labeler's
    /// score with gold on these samples (`labeler_gold_corr`), and how often
    /// its assistant shows it a wrong answer's flaw (`assistant_finds_flaw`),
    /// all weighted;
    /// each left out where it is undefined (no sample shows f, a constant score).
    fn correlations(&self, weights: &[Vec<f64>], names: &[&str]) -> Vec<(String, f64)> {
        let pairs: Vec<(&Scored, f64)> = weights
            .iter()
            .enumerate()
            .flat_map(|(p, w)| {
                self.scored[p * self.per_prompt..(p + 1) * self.per_prompt]
                    .iter()
                    .zip(w.iter().copied())
            })
            .collect();
        let mut out = vec![];
        if let Some(c) = names.iter().position(|n| *n == "correct") {
            for (i, name) in names.iter().enumerate() {
                let binary = pairs
                    .iter()
                    .all(|(s, _)| s.features[i] == 0.0 || s.features[i] == 1.0);
                if i == c || !binary {
                    continue;
                }
                let (with, correct) = pairs.iter().fold((0.0, 0.0), |(a, b), (s, w)| {
                    (a + w * s.features[i], b + w * s.features[i] * s.features[c])
                });
                // Left out where no sample shows the feature (a record holds no NaN).
                if with > 0.0 {
                    out.push((format!("p_correct_given_{name}"), correct / with));
                }
            }
        }
        // Offense and defense: how often the first labeler's assistant shows
        // it the flaw of a wrong answer it cannot check alone.
        let (found, weight) = pairs.iter().fold((0.0, 0.0), |(f, t), (s, w)| {
            s.flaw_found.map_or((f, t), |x| (f + w * x, t + w))
        });
        if weight > 0.0 {
            out.push(("assistant_finds_flaw".into(), found / weight));
        }
        if pairs.iter().all(|(s, _)| !s.labeler.is_empty()) && pairs.len() > 1 {
            let xy: Vec<(f64, f64, f64)> = pairs
                .iter()
                .map(|(s, w)| (s.labeler[0], s.gold, *w))
                .collect();
            let r = weighted_correlation(&xy);
            if r.is_finite() {
                out.push(("labeler_gold_corr".into(), r));
            }
        }
        out
    }
}

/// Pearson correlation of weighted `(x, y, weight)` triples (NaN when either is constant).
pub fn weighted_correlation(xyw: &[(f64, f64, f64)]) -> f64 {
    let w: f64 = xyw.iter().map(|t| t.2).sum();
    if w <= 0.0 {
        return f64::NAN;
    }
    let mx = xyw.iter().map(|t| t.2 * t.0).sum::<f64>() / w;
    let my = xyw.iter().map(|t| t.2 * t.1).sum::<f64>() / w;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y, wt) in xyw {
        sxy += wt * (x - mx) * (y - my);
        sxx += wt * (x - mx).powi(2);
        syy += wt * (y - my).powi(2);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        f64::NAN
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(gold: f64, labeler: f64, shows: f64) -> Scored {
        Scored {
            prompt_index: 0,
            completion: String::new(),
            gold,
            labeler: vec![labeler],
            features: vec![shows, f64::from(gold == 1.0), 3.5],
            difficulty: 1,
            spec: None,
            logprob: 0.0,
            proxy: None,
            truncated: false,
            stop: None,
            n_tokens: 1,
            // Wrong answers with working: the assistant shows the flaw.
            flaw_found: (gold < 0.0).then_some(shows),
        }
    }

    #[test]
    fn conditional_correctness_and_labeler_gold_correlation_follow_the_weights() {
        // Two prompts of two samples; the second prompt puts all weight on its first sample.
        let s = [
            scored(1.0, 0.9, 1.0),
            scored(-1.0, 0.1, 0.0),
            scored(-1.0, 0.8, 1.0),
            scored(1.0, 0.2, 0.0),
        ];
        let w = Weighted {
            scored: &s,
            per_prompt: 2,
        };
        let weights = vec![vec![0.5, 0.5], vec![1.0, 0.0]];
        let got = w.correlations(&weights, &["shows_working", "correct", "length"]);
        let get = |n: &str| got.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        // Working shown: 0.5 (correct) + 1.0 (wrong): P(correct | shows) = 1/3.
        assert!((get("p_correct_given_shows_working").unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            get("p_correct_given_length"),
            None,
            "only 0/1 features condition"
        );
        let r = get("labeler_gold_corr").unwrap();
        assert!(r > 0.0 && r < 1.0, "{r}");
        // Wrong answers: 0.5 with no flaw shown, 1.0 with one shown: 2/3.
        assert!((get("assistant_finds_flaw").unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!(
            (weighted_correlation(&[(1.0, 2.0, 1.0), (2.0, 4.0, 1.0), (3.0, 6.0, 2.0)]) - 1.0)
                .abs()
                < 1e-12
        );
        assert!(weighted_correlation(&[(1.0, 2.0, 1.0), (1.0, 4.0, 1.0)]).is_nan());
    }

    #[test]
    fn a_point_records_the_share_the_context_stopped_and_omits_it_when_none() {
        let stopped = |stop| Scored {
            truncated: stop != StopReason::Eos,
            stop: Some(stop),
            ..scored(1.0, 0.5, 0.0)
        };
        let s = [
            stopped(StopReason::Context),
            stopped(StopReason::Eos),
            stopped(StopReason::MaxNewTokens),
            stopped(StopReason::Eos),
        ];
        let w = Weighted {
            scored: &s,
            per_prompt: 2,
        };
        let mut point = CurvePoint::new("t", "s", "heldout", "n", 1.0, vec![0.0, 0.0]);
        let uniform = vec![vec![0.5, 0.5]; 2];
        w.summarise(&uniform, &[], &[], (&[], 0), &mut point);
        assert_eq!(point.context_stopped, Some(0.25));
        assert_eq!(point.truncated, Some(0.5));
        let json = serde_json::to_string(&point).unwrap();
        assert!(json.contains("\"context_stopped\":0.25"), "{json}");

        let none = [stopped(StopReason::Eos), stopped(StopReason::MaxNewTokens)];
        let w = Weighted {
            scored: &none,
            per_prompt: 2,
        };
        let mut point = CurvePoint::new("t", "s", "heldout", "n", 1.0, vec![0.0]);
        w.summarise(&[vec![0.5, 0.5]], &[], &[], (&[], 0), &mut point);
        assert_eq!(point.context_stopped, None);
        assert!(!serde_json::to_string(&point)
            .unwrap()
            .contains("context_stopped"));
    }
}
