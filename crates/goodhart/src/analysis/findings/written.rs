//! The findings written down: the summary's text, `findings.json` (what the
//! docs' generated pages are rendered from) and the Markdown of those pages.

use std::fmt::Write as _;
use std::path::Path;

use super::{by, show, Finding, Shape, TaskFindings};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// "This run detects a change in gold of 0.030-0.121 ...": the range, per
/// family, of the smallest change each strategy's end contrast detects.
fn detectable_words(t: &TaskFindings) -> Option<String> {
    let range = |family: &str, name: &str| -> Option<String> {
        let d: Vec<f64> = t
            .strategies
            .iter()
            .filter(|f| f.family == family)
            .map(|f| f.gold.detectable)
            .collect();
        let lo = d.iter().copied().reduce(f64::min)?;
        let hi = d.iter().copied().reduce(f64::max)?;
        Some(format!("{lo:.3}–{hi:.3} for {name}"))
    };
    let parts: Vec<String> = [
        range("pool", "the pool strategies"),
        range("policy", "trained policies"),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "At each strategy's largest KL this run detects a change in gold of {} (80% power, two-sided 5%).",
            parts.join(" and ")
        )
    })
}

/// "Against answers (the same base policy and prompts), gold at each strategy's largest KL: ..."
fn against_words(t: &TaskFindings) -> Option<String> {
    let c = t.against.as_ref()?;
    let rows: Vec<String> = c
        .rows
        .iter()
        .map(|r| {
            format!(
                "{} {} (KL {:.2} here, {:.2} there)",
                r.strategy,
                show(&r.gold),
                r.kl,
                r.other_kl
            )
        })
        .collect();
    Some(format!(
        "Against {} (the same prompts), each strategy's gain in gold (largest KL minus base) here minus there, paired: {}.",
        c.other,
        rows.join("; ")
    ))
}

/// The findings as text: each task's prediction and verdict, its headline, then one line per strategy.
pub fn text(findings: &[TaskFindings]) -> String {
    let mut out = String::new();
    if findings.iter().any(|t| t.quick) {
        out.push_str("(a --quick run: a smoke test on a few prompts; its verdicts mean nothing)\n");
    }
    for t in findings {
        if let Some(g) = t.goodhart {
            let _ = writeln!(
                out,
                "{} is set up to show {} Goodhart: {}.",
                t.task,
                g.name(),
                g.expectation()
            );
        }
        if let Some(v) = &t.verdict {
            let _ = writeln!(out, "{v}");
        }
        let _ = writeln!(out, "{}", t.headline);
        for f in &t.strategies {
            let _ = writeln!(out, "  - {}", f.sentence);
        }
        if let Some(a) = against_words(t) {
            let _ = writeln!(out, "{a}");
        }
        if let Some(s) = &t.seeking {
            out.push_str(&super::seeking::text(s));
        }
        if let Some(r) = &t.red_team {
            let _ = writeln!(out, "{}", r.verdict);
        }
        if let Some(d) = &t.debate {
            let _ = writeln!(out, "{}", d.verdict);
        }
        if let Some(r) = &t.rrm {
            let _ = writeln!(out, "{}", r.verdict);
        }
    }
    out
}

/// Where a run (or a run over seeds) writes its findings, beside `summary.txt`:
/// what the docs' generated pages are rendered from.
pub const FINDINGS_FILE: &str = "findings.json";

pub fn write(dir: &Path, found: &[TaskFindings]) -> Result<()> {
    let mut json = serde_json::to_string_pretty(found).expect("findings serialise");
    json.push('\n');
    write_atomic(&dir.join(FINDINGS_FILE), json.as_bytes())
}

pub fn read(dir: &Path) -> Result<Vec<TaskFindings>> {
    let path = dir.join(FINDINGS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::invalid(
            path.display().to_string(),
            format!("line {}, column {}: {e}", e.line(), e.column()),
        )
    })
}

/// A run's `summary.txt` as a Markdown code block: how docs/ pages quote a
/// committed run's tables (the review, the world model, the judges) whole.
pub fn summary_markdown(dir: &Path) -> Result<String> {
    let path = dir.join("summary.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    Ok(format!("```text\n{text}```\n"))
}

/// Each task's verdict on its kind of Goodhart and on reward seeking, one
/// bullet each (the README's summary).
pub fn verdicts_markdown(found: &[TaskFindings]) -> String {
    let mut out = String::new();
    for t in found {
        if let (Some(g), Some(v)) = (t.goodhart, &t.verdict) {
            let _ = writeln!(out, "- **{}** ({}): {v}", t.task, g.name());
        }
        if let Some(v) = t.seeking.as_ref().and_then(|s| s.verdict.as_ref()) {
            let _ = writeln!(out, "- **{}** (reward seeking): {v}", t.task);
        }
        if let Some(r) = &t.red_team {
            let _ = writeln!(
                out,
                "- **{}** (adversarial training): {}",
                t.task, r.verdict
            );
        }
        if let Some(d) = &t.debate {
            let _ = writeln!(out, "- **{}** (debate): {}", t.task, d.verdict);
        }
        if let Some(r) = &t.rrm {
            let _ = writeln!(
                out,
                "- **{}** (recursive reward modelling): {}",
                t.task, r.verdict
            );
        }
    }
    out
}

/// The findings as Markdown: per task, its prediction and verdict, then a table
/// of every strategy's paired changes from the base policy to its largest KL.
pub fn markdown(found: &[TaskFindings]) -> String {
    let mut out = String::new();
    for t in found {
        let _ = writeln!(out, "#### {}", t.task);
        out.push('\n');
        if let Some(g) = t.goodhart {
            let _ = writeln!(
                out,
                "Set up to show **{}** Goodhart: {}.\n",
                g.name(),
                g.expectation()
            );
        }
        if let Some(v) = &t.verdict {
            let _ = writeln!(out, "**Verdict.** {v}\n");
        }
        let seeds = t.strategies.first().map_or(1, |f| f.seeds);
        // Columns: a quantity no strategy of this task measured is left out.
        type Column = (&'static str, fn(&Finding) -> Option<String>);
        let columns: [Column; 10] = [
            ("strategy", |f| Some(f.strategy.clone())),
            ("optimises", |f| Some(format!("{:?}", f.target))),
            ("KL", |f| Some(format!("{:.2}", f.kl))),
            ("proxy", |f| f.proxy.as_ref().map(show)),
            ("labeler", |f| f.labeler.as_ref().map(show)),
            ("button presses", |f| f.exploit.as_ref().map(show)),
            ("formal goal", |f| f.spec.as_ref().map(show)),
            ("past the labelled range", |f| f.beyond.as_ref().map(show)),
            ("gold", |f| Some(show(&f.gold))),
            ("shape", |f| {
                Some(match (f.shape, &f.turn) {
                    (Shape::RoseThenFell, Some(turn)) => format!(
                        "rose by {} to KL {:.2}, then fell by {} (p = {:.3})",
                        by(&turn.rise),
                        turn.peak_kl,
                        by(&turn.fall),
                        turn.p
                    ),
                    (Shape::Flat, _) => format!("cannot tell (detects {:.3})", f.gold.detectable),
                    (s, _) => s.words().to_string(),
                })
            }),
        ];
        let mut shown: Vec<Column> = columns
            .into_iter()
            .filter(|(_, value)| t.strategies.iter().any(|f| value(f).is_some()))
            .collect();
        if seeds > 1 {
            shown.push(("each seed alone", |f| {
                Some(
                    f.shapes
                        .iter()
                        .map(|s| s.words())
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            }));
        }
        let row = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
        let _ = writeln!(
            out,
            "{}",
            row(shown.iter().map(|(h, _)| h.to_string()).collect())
        );
        let _ = writeln!(
            out,
            "{}",
            row(shown.iter().map(|_| "---".to_string()).collect())
        );
        for f in &t.strategies {
            let cells = shown
                .iter()
                .map(|(_, value)| value(f).unwrap_or_else(|| "–".into()))
                .collect();
            let _ = writeln!(out, "{}", row(cells));
        }
        out.push('\n');
        if let Some(d) = detectable_words(t) {
            let _ = writeln!(out, "{d}\n");
        }
        if let Some(a) = against_words(t) {
            let _ = writeln!(out, "{a}\n");
        }
        if let Some(s) = &t.seeking {
            out.push_str(&super::seeking::markdown(s));
        }
    }
    out
}
