//! The run's outputs, rebuilt from its stage records: `metrics.jsonl`,
//! `curves.csv`, `fits.json` and `report.html` (one self-contained file, inline
//! SVG, no network). The HTML comes from the templates in `templates/`
//! (escaped by minijinja), filled from the view built here; plots are SVG
//! drawn by [`svg`].

pub mod end_to_end;
mod formal;
mod page;
mod plots;
pub mod seeds;
pub mod svg;
pub mod sweep;

use minijinja::Environment;
use serde::Serialize;

use crate::analysis::curves::{self as analysis, StrategyAnalysis};
use crate::analysis::findings;
use crate::analysis::outputs;
use crate::error::{Error, Result};
use crate::experiment::record::RunDir;
use crate::experiment::Experiment;
use crate::fsutil::write_atomic;
use svg::PALETTE;

/// The small multiples of gold against KL, one panel per task, as one file.
pub const GOLD_BY_TASK: &str = "gold-by-task.svg";

/// What `write_outputs` produced.
pub struct Outputs {
    /// The one-screen summary.
    pub summary: String,
    pub analyses: Vec<StrategyAnalysis>,
}

/// Rebuild every output file of the run in `dir` from its records.
pub fn write_outputs(dir: &RunDir) -> Result<Outputs> {
    let exp = dir.experiment()?;
    let tasks = dir.records(&exp)?;
    let analyses: Vec<StrategyAnalysis> = tasks.iter().flat_map(analysis::analyse).collect();
    write_atomic(
        &dir.root.join("metrics.jsonl"),
        outputs::metrics_jsonl(&tasks).as_bytes(),
    )?;
    write_atomic(
        &dir.root.join("curves.csv"),
        outputs::curves_csv(&analyses).as_bytes(),
    )?;
    write_atomic(
        &dir.root.join("fits.json"),
        outputs::fits_json(&analyses).as_bytes(),
    )?;
    let mut found = findings::findings(&[analyses.as_slice()], &exp);
    findings::attach_records(&mut found, std::slice::from_ref(&tasks));
    findings::write(&dir.root, &found)?;
    let view = page::run_page(&exp, &tasks, &analyses, found.clone())?;
    write_atomic(
        &dir.root.join(GOLD_BY_TASK),
        svg::row(&view.overview).as_bytes(),
    )?;
    let html = render("run.html", &view)?;
    write_atomic(&dir.root.join("report.html"), html.as_bytes())?;
    let summary = format!(
        "{}{}{}{}\nfindings\n{}",
        analysis::summary(&tasks, &analyses),
        crate::analysis::red_team::red_team_text(std::slice::from_ref(&tasks)),
        crate::analysis::rrm::rrm_text(std::slice::from_ref(&tasks)),
        crate::analysis::debate::debate_text(std::slice::from_ref(&tasks)),
        findings::text(&found)
    );
    write_atomic(&dir.root.join("summary.txt"), summary.as_bytes())?;
    Ok(Outputs { summary, analyses })
}

/// Fill the template `name` with `view`.
fn render(name: &str, view: &impl Serialize) -> Result<String> {
    let mut env = Environment::new();
    for (file, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("run.html", include_str!("templates/run.html")),
        ("seeds.html", include_str!("templates/seeds.html")),
        ("sweep.html", include_str!("templates/sweep.html")),
        ("findings.html", include_str!("templates/findings.html")),
    ] {
        env.add_template(file, source)
            .map_err(|e| Error::invalid("report template", e.to_string()))?;
    }
    env.get_template(name)
        .and_then(|t| t.render(minijinja::value::Serde(view)))
        .map(|html| html + "\n")
        .map_err(|e| Error::invalid("report template", e.to_string()))
}

/// The colour of each bundled strategy name, the same in every panel, task,
/// run and report (Okabe-Ito and Tol's muted colours: distinguishable with
/// the common colour-vision deficiencies).
const KNOWN_COLOURS: [(&str, &str); 16] = [
    ("bon", "#0072B2"),
    ("bon-labeler", "#56B4E9"),
    ("bon-gold", "#000000"),
    ("bon-spec", "#009E73"),
    ("conditioning", "#D55E00"),
    ("conditioning-spec", "#44AA99"),
    ("quantiliser", "#E69F00"),
    ("review", "#999933"),
    ("ppo-kl", "#CC79A7"),
    ("ppo-adaptive", "#882255"),
    ("ppo-nokl", "#AA4499"),
    ("rloo", "#661100"),
    ("ppo-online", "#332288"),
    ("ppo-spec", "#117733"),
    ("dpo", "#888888"),
    ("ppo-spec-margin", "#88CCEE"),
];

/// Colour of each strategy: a bundled name's own colour; any other name the
/// first palette colour not yet taken, in the order the names come.
fn colours_for<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![];
    let mut others = vec![];
    for n in names {
        if out.iter().any(|(m, _)| m == n) || others.contains(&n) {
            continue;
        }
        match KNOWN_COLOURS.iter().find(|(k, _)| *k == n) {
            Some((_, c)) => out.push((n.to_string(), c.to_string())),
            None => others.push(n),
        }
    }
    let mut free: Vec<&str> = vec![];
    for &c in PALETTE.iter().chain(KNOWN_COLOURS.iter().map(|(_, c)| c)) {
        if !free.contains(&c) && !out.iter().any(|(_, d)| d == c) {
            free.push(c);
        }
    }
    for (n, c) in others.into_iter().zip(free.into_iter().cycle()) {
        out.push((n.to_string(), c.to_string()));
    }
    out
}

/// Colour of each strategy of an experiment.
fn colours(exp: &Experiment) -> Vec<(String, String)> {
    let names: Vec<String> = exp.tasks.iter().flat_map(|t| t.strategy_names()).collect();
    colours_for(names.iter().map(String::as_str))
}

fn colour_of<'a>(colours: &'a [(String, String)], name: &str) -> &'a str {
    colours
        .iter()
        .find(|(n, _)| n == name)
        .map_or("#777", |(_, c)| c.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strategy_keeps_its_colour_whatever_else_runs_and_no_two_share_one() {
        let a = colours_for(["ppo-kl", "bon", "mine"]);
        let b = colours_for(["dpo", "bon", "ppo-kl", "theirs", "mine"]);
        for name in ["ppo-kl", "bon"] {
            assert_eq!(colour_of(&a, name), colour_of(&b, name), "{name}");
        }
        let mut used: Vec<&str> = b.iter().map(|(_, c)| c.as_str()).collect();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used.len(), b.len(), "{b:?}");
    }
}
