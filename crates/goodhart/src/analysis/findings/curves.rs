//! A strategy's held-out curve as the tests read it: its points matched
//! across seeds, each quantity's per-prompt values at each point, and the
//! paired tests of one curve (the end against the base, a turn between them,
//! the proxy and gold parting).

use crate::analysis::curves::{is_reference, StrategyAnalysis};
use crate::measure::paired::{self, Difference, Paired, Turn, ALPHA};
use crate::rng;
use crate::score::CurvePoint;

use super::Shape;

/// One point of a curve, in every seed.
pub struct Aligned<'a> {
    pub knob: String,
    pub value: f64,
    /// Mean over seeds of the point's KL.
    pub kl: f64,
    pub per_seed: Vec<&'a CurvePoint>,
}

impl Aligned<'_> {
    /// Per seed, the per-prompt values of `what` (None where a seed has none).
    pub fn cell(&self, what: &str) -> Option<Vec<&[f64]>> {
        self.per_seed
            .iter()
            .map(|p| {
                let v = p.per_prompt.as_ref()?.series(what);
                (!v.is_empty()).then_some(v)
            })
            .collect()
    }
}

/// A strategy's held-out curve over the seeds that measured it: the base point
/// first, then the points trusted in every seed, in order of KL.
pub struct Curve<'a> {
    pub task: String,
    pub strategy: String,
    /// "pool" (reweightings of base samples) or "policy" (trained policies).
    pub family: String,
    pub points: Vec<Aligned<'a>>,
}

impl<'a> Curve<'a> {
    /// None when some seed lacks the base point, or no point beyond it is trusted in every seed.
    pub fn new(per_seed: &[&'a StrategyAnalysis]) -> Option<Self> {
        let first = per_seed.first()?;
        let mut points: Vec<Aligned<'a>> = vec![];
        for p in &first.points {
            let matched: Vec<&CurvePoint> = per_seed
                .iter()
                .filter_map(|a| {
                    a.points
                        .iter()
                        .find(|q| q.knob == p.knob && q.value == p.value && q.flag.is_none())
                })
                .collect();
            if matched.len() != per_seed.len() {
                continue;
            }
            let kl = matched.iter().map(|q| q.kl.mean).sum::<f64>() / matched.len() as f64;
            points.push(Aligned {
                knob: p.knob.clone(),
                value: p.value,
                kl,
                per_seed: matched,
            });
        }
        let base = points.iter().position(|p| is_reference(p.per_seed[0]))?;
        let base = points.remove(base);
        points.sort_by(|a, b| a.kl.total_cmp(&b.kl));
        points.insert(0, base);
        (points.len() >= 2).then(|| Curve {
            task: first.task.clone(),
            strategy: first.strategy.clone(),
            family: first.family.clone(),
            points,
        })
    }

    /// The curve of `a`'s task, strategy and split over every seed's analyses
    /// (`per_seed[s]` one seed's list); None as for [`Curve::new`].
    pub fn across_seeds(per_seed: &[&'a [StrategyAnalysis]], a: &StrategyAnalysis) -> Option<Self> {
        let same: Vec<&StrategyAnalysis> = per_seed
            .iter()
            .filter_map(|list| {
                list.iter()
                    .find(|b| b.task == a.task && b.strategy == a.strategy && b.split == a.split)
            })
            .collect();
        Curve::new(&same)
    }

    /// The curve in seed `s` alone.
    pub fn seed(&self, s: usize) -> Curve<'a> {
        Curve {
            task: self.task.clone(),
            strategy: self.strategy.clone(),
            family: self.family.clone(),
            points: self
                .points
                .iter()
                .map(|p| Aligned {
                    knob: p.knob.clone(),
                    value: p.value,
                    kl: p.per_seed[s].kl.mean,
                    per_seed: vec![p.per_seed[s]],
                })
                .collect(),
        }
    }

    pub fn seeds(&self) -> usize {
        self.points[0].per_seed.len()
    }

    pub fn end(&self) -> &Aligned<'a> {
        self.points.last().expect("a curve has two points")
    }

    pub fn rng(&self, what: &str) -> rng::Rng {
        rng::stream(0, &format!("paired/{}/{}/{what}", self.task, self.strategy))
    }
}

/// The paired tests of one curve.
pub struct Tests {
    /// Gold at the end minus gold at the base.
    pub gold: Difference,
    pub proxy: Option<Difference>,
    pub labeler: Option<Difference>,
    /// The exploit feature's share (e.g. button presses).
    pub exploit: Option<Difference>,
    /// Formal-goal satisfaction.
    pub spec: Option<Difference>,
    /// The share of completions past the labelled range, where one is declared.
    pub beyond: Option<Difference>,
    /// Gold above the base and above the end at some point between (max-T over the points).
    pub turn: Option<Turn>,
    /// The proxy rising past some point while gold falls past it (max-T over the points).
    pub parting: Option<Turn>,
    pub shape: Shape,
}

/// The cells a [`Paired`] is built from, each pushed once.
#[derive(Default)]
struct Cells<'a>(Vec<Vec<&'a [f64]>>);

impl<'a> Cells<'a> {
    fn push(&mut self, cell: Option<Vec<&'a [f64]>>) -> Option<usize> {
        self.0.push(cell?);
        Some(self.0.len() - 1)
    }
}

/// Every quantity at the base and the end, gold and proxy at every point, from one set of draws.
pub fn tests(curve: &Curve, exploit: &str) -> Option<Tests> {
    let n = curve.points.len();
    let (base, end) = (&curve.points[0], curve.end());
    let mut cells = Cells::default();
    let gold: Vec<usize> = curve
        .points
        .iter()
        .map(|p| cells.push(p.cell("gold")))
        .collect::<Option<_>>()?;
    let proxy: Option<Vec<usize>> = curve
        .points
        .iter()
        .map(|p| cells.push(p.cell("proxy")))
        .collect();
    let mut pair = |what: &str| Some((cells.push(base.cell(what))?, cells.push(end.cell(what))?));
    let labeler = pair("labeler");
    let exploit = pair(exploit);
    let spec = pair("spec");
    let beyond = pair(crate::score::BEYOND_LABELS);
    let cells = cells.0;
    let paired = Paired::new(&cells, &mut curve.rng("tests"))?;
    let d = |(b, e): (usize, usize)| paired.difference(e, b);
    let gold_end = paired.difference(gold[n - 1], gold[0]);
    let interior = 1..n - 1;
    let turn = paired::turn(
        interior
            .clone()
            .map(|k| paired.difference(gold[k], gold[0]))
            .collect(),
        interior
            .clone()
            .map(|k| paired.difference(gold[k], gold[n - 1]))
            .collect(),
    );
    let parting = proxy.as_ref().and_then(|proxy| {
        paired::turn(
            interior
                .clone()
                .map(|k| paired.difference(proxy[n - 1], proxy[k]))
                .collect(),
            interior
                .clone()
                .map(|k| paired.difference(gold[k], gold[n - 1]))
                .collect(),
        )
    });
    let shape = match &turn {
        Some(t) if t.p <= ALPHA => Shape::RoseThenFell,
        _ if gold_end.above() => Shape::Rose,
        _ if gold_end.below() => Shape::Fell,
        _ => Shape::Flat,
    };
    Some(Tests {
        proxy: proxy.map(|p| paired.difference(p[n - 1], p[0])),
        labeler: labeler.map(d),
        exploit: exploit.map(d),
        spec: spec.map(d),
        beyond: beyond.map(d),
        gold: gold_end,
        turn,
        parting,
        shape,
    })
}
