//! The run's outputs, rebuilt from its stage records: `metrics.jsonl`,
//! `curves.csv`, `fits.json` and `report.html` (one self-contained file, inline
//! SVG, no network). The HTML comes from the templates in `templates/`
//! (escaped by minijinja), filled from the view built here; plots are SVG
//! drawn by [`svg`].

mod formal;
mod page;
mod plots;
pub mod seeds;
pub mod svg;

use minijinja::Environment;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::experiment::analysis::{self, StrategyAnalysis};
use crate::experiment::findings;
use crate::experiment::outputs;
use crate::experiment::record::RunDir;
use crate::experiment::Experiment;
use crate::fsutil::write_atomic;
use svg::PALETTE;

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
    let mut found = findings::findings(&[analyses.clone()]);
    findings::name_kinds(&mut found, &exp);
    let html = render(
        "run.html",
        &page::run_page(&exp, &tasks, &analyses, found.clone())?,
    )?;
    write_atomic(&dir.root.join("report.html"), html.as_bytes())?;
    let summary = format!(
        "{}\nfindings\n{}",
        analysis::summary(&tasks, &analyses),
        findings::text(&found)
    );
    Ok(Outputs { summary, analyses })
}

/// Fill the template `name` with `view`.
fn render(name: &str, view: &impl Serialize) -> Result<String> {
    let mut env = Environment::new();
    for (file, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("run.html", include_str!("templates/run.html")),
        ("seeds.html", include_str!("templates/seeds.html")),
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

/// Colour of each strategy, fixed by its place in the experiment.
fn colours(exp: &Experiment) -> Vec<(String, String)> {
    let mut names: Vec<String> = vec![];
    for t in &exp.tasks {
        for n in t.strategy_names() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, PALETTE[i % PALETTE.len()].to_string()))
        .collect()
}

fn colour_of<'a>(colours: &'a [(String, String)], name: &str) -> &'a str {
    colours
        .iter()
        .find(|(n, _)| n == name)
        .map_or("#777", |(_, c)| c.as_str())
}
