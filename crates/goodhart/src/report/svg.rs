//! Line plots as inline SVG: labelled axes with round ticks, error bars,
//! solid or dashed lines, a legend. Enough for the report, nothing more.

use std::fmt::Write as _;

/// Colours for series, chosen to stay distinct for colour-blind readers (Okabe-Ito, then Tol).
pub const PALETTE: [&str; 12] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#882255",
    "#44AA99", "#999933", "#AA4499", "#661100",
];

/// Plots side by side in one SVG (small multiples as one file).
pub fn row(plots: &[String]) -> String {
    let n = plots.len().max(1) as f64;
    let mut o = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {H}" width="{w}" height="{H}">"#,
        w = n * W
    );
    for (i, p) in plots.iter().enumerate() {
        // Each plot is a whole <svg> of width W: placed at its column.
        o.push_str(&p.replacen("<svg ", &format!(r#"<svg x="{}" "#, i as f64 * W), 1));
    }
    o.push_str("</svg>\n");
    o
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    Solid,
    Dashed,
}

pub struct Series {
    pub name: String,
    pub color: String,
    /// (x, y, error bar half-height; 0 for none).
    pub points: Vec<(f64, f64, f64)>,
    pub line: Line,
    pub markers: bool,
    /// Listed in the legend.
    pub legend: bool,
}

pub struct Plot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// A horizontal reference line (e.g. the base policy's value).
    pub y_ref: Option<f64>,
}

const W: f64 = 560.0;
const H: f64 = 300.0;
const LEFT: f64 = 58.0;
/// Room for the legend, right of the plot.
const RIGHT: f64 = 124.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;

/// Round tick positions covering [lo, hi], about `target` of them.
pub fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    (0..)
        .map(|i| first + i as f64 * step)
        .take_while(|t| *t <= hi + step * 1e-9)
        .map(|t| if t.abs() < step * 1e-9 { 0.0 } else { t })
        .collect()
}

fn fmt_tick(t: f64) -> String {
    let s = format!("{t:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Plot {
    pub fn svg(&self) -> String {
        let finite = |v: f64| v.is_finite();
        let pts = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y, _)| finite(*x) && finite(*y));
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y, e) in pts {
            let e = if e.is_finite() { e } else { 0.0 };
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y - e);
            y1 = y1.max(y + e);
        }
        if let Some(r) = self.y_ref {
            y0 = y0.min(r);
            y1 = y1.max(r);
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        x0 = x0.min(0.0);
        if x1 - x0 < 1e-9 {
            x1 = x0 + 1.0;
        }
        if y1 - y0 < 1e-9 {
            y0 -= 0.5;
            y1 += 0.5;
        }
        let pad = (y1 - y0) * 0.06;
        let (y0, y1) = (y0 - pad, y1 + pad);
        let x1 = x1 + (x1 - x0) * 0.03;
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
        let sy = |y: f64| TOP + (1.0 - (y - y0) / (y1 - y0)) * ph;
        let mut o = String::new();
        write!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}" font-family="sans-serif" font-size="11">"#,
            esc(&self.title)
        )
        .unwrap();
        write!(o, r#"<text x="{}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#, W / 2.0, esc(&self.title)).unwrap();
        // Grid and ticks.
        for t in ticks(x0, x1, 6) {
            let x = sx(t);
            write!(
                o,
                r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#e5e5e5"/>"##,
                TOP + ph
            )
            .unwrap();
            write!(
                o,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                TOP + ph + 14.0,
                fmt_tick(t)
            )
            .unwrap();
        }
        for t in ticks(y0, y1, 5) {
            let y = sy(t);
            write!(
                o,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/>"##,
                LEFT + pw
            )
            .unwrap();
            write!(
                o,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 5.0,
                y + 4.0,
                fmt_tick(t)
            )
            .unwrap();
        }
        write!(
            o,
            r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
        )
        .unwrap();
        write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            H - 8.0,
            esc(&self.x_label)
        )
        .unwrap();
        write!(
            o,
            r#"<text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + ph / 2.0,
            esc(&self.y_label)
        )
        .unwrap();
        if let Some(r) = self.y_ref {
            let y = sy(r);
            write!(o, r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#555" stroke-dasharray="2 3"/>"##, LEFT + pw).unwrap();
        }
        for s in &self.series {
            let pts: Vec<&(f64, f64, f64)> = s
                .points
                .iter()
                .filter(|(x, y, _)| finite(*x) && finite(*y))
                .collect();
            let dash = if s.line == Line::Dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            if pts.len() > 1 {
                let path: Vec<String> = pts
                    .iter()
                    .map(|(x, y, _)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                    .collect();
                write!(
                    o,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.6"{dash}/>"#,
                    path.join(" "),
                    s.color
                )
                .unwrap();
            }
            if s.markers {
                for (x, y, e) in &pts {
                    let (cx, cy) = (sx(*x), sy(*y));
                    if *e > 0.0 && e.is_finite() {
                        write!(o, r#"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="{}"/>"#, sy(y + e), sy(y - e), s.color).unwrap();
                    }
                    write!(o, r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="2.6" fill="{}"><title>{}: ({:.3}, {:.3} ± {:.3})</title></circle>"#, s.color, esc(&s.name), x, y, e)
                        .unwrap();
                }
            }
        }
        // Legend, right of the plot.
        let legend: Vec<&Series> = self.series.iter().filter(|s| s.legend).collect();
        if !legend.is_empty() {
            let lx = LEFT + pw + 4.0;
            for (i, s) in legend.iter().enumerate() {
                let y = TOP + 14.0 + i as f64 * 14.0;
                let dash = if s.line == Line::Dashed {
                    r#" stroke-dasharray="6 4""#
                } else {
                    ""
                };
                write!(o, r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{dash}/>"#, lx + 5.0, y - 4.0, lx + 25.0, y - 4.0, s.color).unwrap();
                write!(
                    o,
                    r#"<text x="{:.1}" y="{y:.1}">{}</text>"#,
                    lx + 30.0,
                    esc(&s.name)
                )
                .unwrap();
            }
        }
        o.push_str("</svg>");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        let shown = |lo, hi, n| {
            ticks(lo, hi, n)
                .into_iter()
                .map(fmt_tick)
                .collect::<Vec<_>>()
        };
        assert_eq!(shown(0.0, 1.0, 5), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        assert_eq!(shown(-0.37, 2.9, 6), ["0", "1", "2"]);
        assert_eq!(
            shown(-1.0, -0.8, 4),
            ["-1", "-0.95", "-0.9", "-0.85", "-0.8"]
        );
    }

    #[test]
    fn a_plot_is_well_formed_svg_with_its_labels_and_legend() {
        let plot = Plot {
            title: "gold vs KL".into(),
            x_label: "sqrt(KL) (nats^1/2)".into(),
            y_label: "gold <reward>".into(),
            series: vec![Series {
                name: "bon".into(),
                color: PALETTE[0].into(),
                points: vec![(0.0, 0.1, 0.02), (1.0, 0.3, 0.02), (f64::NAN, 1.0, 0.0)],
                line: Line::Solid,
                markers: true,
                legend: true,
            }],
            y_ref: Some(0.1),
        };
        let svg = plot.svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(
            svg.contains("gold &lt;reward&gt;")
                && svg.contains(">bon</text>")
                && svg.contains("<polyline")
        );
        assert_eq!(
            svg.matches("<circle").count(),
            2,
            "the NaN point is left out"
        );
    }
}
