//! Strategies compared at equal optimisation power, over seeds: gold at
//! matched KL (the best trusted point within each KL budget, as each run's
//! report has it), and every measure where the curve first reaches each KL
//! budget and each proxy gain (the base policy's proxy plus g, interpolated
//! between points; the proxy is normalised on base-policy samples, so g is in
//! the base policy's standard deviations) -- gold, KL, proxy and every named
//! feature, e.g. P(correct | shows working). Each seed is read on its own
//! curve, then averaged with a t-interval across the seeds that reach the
//! budget. Written as `matched.csv` and two tables of the several-seed summary.

use std::fmt::Write as _;

use super::across::AcrossSeeds;
use super::curves::{StrategyAnalysis, KL_BUDGETS};

/// Proxy gains (base-policy standard deviations) at which strategies are compared.
pub const PROXY_GAINS: [f64; 4] = [0.25, 0.5, 1.0, 1.5];

/// One strategy at one budget, across seeds.
#[derive(Clone, Debug)]
pub struct MatchedRow {
    pub task: String,
    pub strategy: String,
    /// "kl" (best gold within the budget in nats), "kl_at" (where the curve
    /// first reaches the KL budget) or "proxy_gain" (where it first reaches
    /// the proxy gain, in base-policy sd).
    pub by: &'static str,
    pub budget: f64,
    /// Seeds whose curve reaches the budget, of all.
    pub reached: usize,
    pub seeds: usize,
    pub gold: AcrossSeeds,
    pub kl: AcrossSeeds,
    pub proxy: AcrossSeeds,
    /// Every named feature there (interpolated rows only), e.g. `p_correct_given_shows_working`.
    pub features: Vec<(String, AcrossSeeds)>,
}

/// A curve read between two of its points: every measure interpolated.
struct Reading {
    gold: f64,
    kl: f64,
    proxy: f64,
    features: Vec<(String, f64)>,
}

/// Where `a`'s trusted points (in KL order) first reach `target` of
/// `measure`, linearly interpolated between the two points around it.
fn first_reaching(
    a: &StrategyAnalysis,
    measure: &dyn Fn(&crate::score::CurvePoint) -> f64,
    target: f64,
) -> Option<Reading> {
    let pts: Vec<_> = a.points.iter().filter(|p| p.flag.is_none()).collect();
    for w in pts.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let (m0, m1) = (measure(lo), measure(hi));
        if m1 >= target && m0 < target {
            let t = (target - m0) / (m1 - m0);
            let lerp = |x: f64, y: f64| x + t * (y - x);
            let features = lo
                .features
                .iter()
                .filter_map(|(n, x)| {
                    let (_, y) = hi.features.iter().find(|(m, _)| m == n)?;
                    Some((n.clone(), lerp(*x, *y)))
                })
                .collect();
            return Some(Reading {
                gold: lerp(lo.gold.mean, hi.gold.mean),
                kl: lerp(lo.kl.mean, hi.kl.mean),
                proxy: lerp(lo.proxy.mean, hi.proxy.mean),
                features,
            });
        }
    }
    None
}

/// Gold and KL where `a`'s trusted points (in KL order) first reach proxy
/// gain `g` over its first point, linearly interpolated in the proxy.
pub fn at_proxy_gain(a: &StrategyAnalysis, g: f64) -> Option<(f64, f64)> {
    let base = a.points.iter().find(|p| p.flag.is_none())?.proxy.mean;
    first_reaching(a, &|p| p.proxy.mean, base + g).map(|r| (r.gold, r.kl))
}

/// One row from each seed's reading (None: the seed does not reach it).
fn row_of(
    (task, strategy): (&str, &str),
    by: &'static str,
    budget: f64,
    readings: &[Option<Reading>],
) -> MatchedRow {
    let got: Vec<&Reading> = readings.iter().flatten().collect();
    let over = |f: &dyn Fn(&Reading) -> f64| {
        AcrossSeeds::of(&got.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let mut names: Vec<String> = vec![];
    for r in &got {
        for (n, _) in &r.features {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let features = names
        .into_iter()
        .map(|n| {
            let vals: Vec<f64> = got
                .iter()
                .filter_map(|r| r.features.iter().find(|(m, _)| *m == n).map(|(_, v)| *v))
                .collect();
            (n, AcrossSeeds::of(&vals))
        })
        .collect();
    MatchedRow {
        task: task.into(),
        strategy: strategy.into(),
        by,
        budget,
        reached: got.len(),
        seeds: readings.len(),
        gold: over(&|r| r.gold),
        kl: over(&|r| r.kl),
        proxy: over(&|r| r.proxy),
        features,
    }
}

/// The matched rows of one held-out curve, given each seed's analysis of it.
pub fn rows(task: &str, strategy: &str, per_seed: &[&StrategyAnalysis]) -> Vec<MatchedRow> {
    let n = per_seed.len();
    let mut out = vec![];
    for (b, &budget) in KL_BUDGETS.iter().enumerate() {
        let got: Vec<f64> = per_seed
            .iter()
            .filter_map(|a| a.gold_within.get(b).and_then(|(_, g)| *g))
            .collect();
        out.push(MatchedRow {
            task: task.into(),
            strategy: strategy.into(),
            by: "kl",
            budget,
            reached: got.len(),
            seeds: n,
            gold: AcrossSeeds::of(&got),
            kl: AcrossSeeds::of(&[]),
            proxy: AcrossSeeds::of(&[]),
            features: vec![],
        });
    }
    let id = (task, strategy);
    for &budget in &KL_BUDGETS {
        let readings: Vec<Option<Reading>> = per_seed
            .iter()
            .map(|a| first_reaching(a, &|p| p.kl.mean, budget))
            .collect();
        out.push(row_of(id, "kl_at", budget, &readings));
    }
    for &g in &PROXY_GAINS {
        let readings: Vec<Option<Reading>> = per_seed
            .iter()
            .map(|a| {
                let base = a.points.iter().find(|p| p.flag.is_none())?.proxy.mean;
                first_reaching(a, &|p| p.proxy.mean, base + g)
            })
            .collect();
        out.push(row_of(id, "proxy_gain", g, &readings));
    }
    out
}

/// `matched.csv`: one row per strategy and budget; the features as columns.
pub fn csv(rows: &[MatchedRow]) -> String {
    let f = |x: f64| {
        if x.is_finite() {
            x.to_string()
        } else {
            String::new()
        }
    };
    let mut names: Vec<&str> = vec![];
    for r in rows {
        for (n, _) in &r.features {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let mut out =
        String::from("task,strategy,by,budget,reached,seeds,gold,gold_ci,kl,kl_ci,proxy,proxy_ci");
    for n in &names {
        write!(out, ",{n},{n}_ci").unwrap();
    }
    out.push('\n');
    for r in rows {
        write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            r.task,
            r.strategy,
            r.by,
            r.budget,
            r.reached,
            r.seeds,
            f(r.gold.mean),
            f(r.gold.half_width),
            f(r.kl.mean),
            f(r.kl.half_width),
            f(r.proxy.mean),
            f(r.proxy.half_width),
        )
        .unwrap();
        for n in &names {
            match r.features.iter().find(|(m, _)| m == n) {
                Some((_, a)) => write!(out, ",{},{}", f(a.mean), f(a.half_width)).unwrap(),
                None => out.push_str(",,"),
            }
        }
        out.push('\n');
    }
    out
}

fn cell(r: &MatchedRow) -> String {
    if r.reached == 0 {
        "-".into()
    } else if r.gold.half_width.is_finite() {
        format!(
            "{:.3} ±{:.3} ({}/{})",
            r.gold.mean, r.gold.half_width, r.reached, r.seeds
        )
    } else {
        format!("{:.3} ({}/{})", r.gold.mean, r.reached, r.seeds)
    }
}

/// The summary's tables: per task, gold at each KL budget and each proxy gain.
pub fn text(rows: &[MatchedRow]) -> String {
    let mut s = String::new();
    let mut tasks: Vec<&str> = vec![];
    for r in rows {
        if !tasks.contains(&r.task.as_str()) {
            tasks.push(&r.task);
        }
    }
    for task in tasks {
        for (by, title, budgets) in [
            ("kl", "best gold within KL (nats)", &KL_BUDGETS[..]),
            (
                "proxy_gain",
                "gold where the proxy first gains (base sd)",
                &PROXY_GAINS[..],
            ),
        ] {
            writeln!(
                s,
                "{task}: {title}; ± 95% t-interval over the seeds that reach it (reached/seeds)"
            )
            .unwrap();
            write!(s, "  {:<18}", "strategy").unwrap();
            for b in budgets {
                write!(s, " {:>24}", format!("{b}")).unwrap();
            }
            s.push('\n');
            let mut strategies: Vec<&str> = vec![];
            for r in rows.iter().filter(|r| r.task == task) {
                if !strategies.contains(&r.strategy.as_str()) {
                    strategies.push(&r.strategy);
                }
            }
            for strategy in strategies {
                write!(s, "  {strategy:<18}").unwrap();
                for r in rows
                    .iter()
                    .filter(|r| r.task == task && r.strategy == strategy && r.by == by)
                {
                    write!(s, " {:>24}", cell(r)).unwrap();
                }
                s.push('\n');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::CurvePoint;
    use crate::stats::Stat;

    fn point(kl: f64, proxy: f64, gold: f64) -> CurvePoint {
        let mut p = CurvePoint::new("t", "s", "heldout", "n", 0.0, vec![kl]);
        p.features = vec![("p_correct_given_confident".into(), gold + 1.0)];
        p.proxy = Stat::of(&[proxy]);
        p.gold = Stat::of(&[gold]);
        p
    }

    #[test]
    fn gold_at_a_proxy_gain_is_read_where_the_curve_first_reaches_it() {
        let a = StrategyAnalysis {
            points: vec![
                point(0.0, 0.0, -0.5),
                point(1.0, 0.4, -0.3),
                point(2.0, 1.2, -0.7),
                point(3.0, 0.2, 0.0),
            ],
            ..Default::default()
        };
        let (gold, kl) = at_proxy_gain(&a, 0.8).unwrap();
        // Halfway from proxy 0.4 to 1.2: gold -0.5, KL 1.5.
        assert!(
            (gold + 0.5).abs() < 1e-12 && (kl - 1.5).abs() < 1e-12,
            "{gold} {kl}"
        );
        assert_eq!(at_proxy_gain(&a, 2.0), None, "never reached");
        let rows = rows("t", "s", &[&a, &a]);
        let r = rows
            .iter()
            .find(|r| r.by == "proxy_gain" && r.budget == 0.25)
            .unwrap();
        assert_eq!((r.reached, r.seeds), (2, 2));
        assert!(text(&rows).contains("gold where the proxy first gains"));
    }
}
