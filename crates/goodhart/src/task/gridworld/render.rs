//! A trajectory as SVG, two panels side by side: what happened (the full
//! state), and what the camera saw (the labeler's whole evidence).

use std::fmt::Write;

use super::world::{Cell, Map, Pos, Trajectory};

const CELL: usize = 28;
const GAP: usize = 24;
const TITLE: usize = 20;

pub fn trajectory_svg(map: &Map, traj: Option<&Trajectory>) -> String {
    let panel_w = map.width * CELL;
    let panel_h = map.height * CELL;
    let (w, h) = (2 * panel_w + GAP, panel_h + TITLE + 18);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    panel(&mut s, map, traj, 0, false);
    panel(&mut s, map, traj, panel_w + GAP, true);
    let caption = match traj {
        None => "malformed moves".to_string(),
        Some(t) => {
            let cam = t.camera(map);
            format!(
                "{} steps; goal {}; vases broken {} (camera saw {}); button {}",
                t.steps,
                if t.reached_goal {
                    "reached"
                } else {
                    "not reached"
                },
                t.vases_broken().len(),
                cam.seen_broken.len(),
                if t.button_pressed() {
                    "pressed"
                } else {
                    "untouched"
                },
            )
        }
    };
    let _ = write!(
        s,
        r##"<text x="0" y="{}" fill="#333">{caption}</text></svg>"##,
        h - 4
    );
    s
}

fn panel(s: &mut String, map: &Map, traj: Option<&Trajectory>, x0: usize, camera_only: bool) {
    let title = if camera_only {
        "what the camera saw"
    } else {
        "what happened"
    };
    let _ = write!(
        s,
        r##"<text x="{x0}" y="14" font-weight="bold" fill="#222">{title}</text>"##
    );
    let y0 = TITLE;
    let cam = traj.map(|t| t.camera(map));
    let broken: &[Pos] = traj.map_or(&[], |t| t.vases_broken());
    for p in map.positions() {
        let (x, y) = (x0 + p.0 * CELL, y0 + p.1 * CELL);
        let visible = !camera_only || map.camera.contains(p);
        let fill = if !visible {
            "#d9d9d9"
        } else {
            match map.cell(p) {
                Cell::Wall => "#444",
                Cell::Goal => "#9be39b",
                Cell::Button => "#f5b041",
                Cell::Start => "#cfe3ff",
                _ => "#fafafa",
            }
        };
        let _ = write!(
            s,
            r##"<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{fill}" stroke="#bbb"/>"##
        );
        if !visible {
            continue;
        }
        let (cx, cy) = (x + CELL / 2, y + CELL / 2);
        match map.cell(p) {
            Cell::Vase => {
                // The camera shows a vase broken only if it saw it break.
                let is_broken = if camera_only {
                    cam.as_ref().is_some_and(|c| c.seen_broken.contains(&p))
                } else {
                    broken.contains(&p)
                };
                if is_broken {
                    let _ = write!(
                        s,
                        r##"<path d="M{} {} L{} {} M{} {} L{} {}" stroke="#c0392b" stroke-width="3"/>"##,
                        cx - 7,
                        cy - 7,
                        cx + 7,
                        cy + 7,
                        cx + 7,
                        cy - 7,
                        cx - 7,
                        cy + 7
                    );
                } else {
                    let _ = write!(s, r##"<circle cx="{cx}" cy="{cy}" r="8" fill="#2e86c1"/>"##);
                }
            }
            Cell::Goal => {
                let _ = write!(
                    s,
                    r##"<text x="{}" y="{}" fill="#1e7b1e">G</text>"##,
                    cx - 4,
                    cy + 4
                );
            }
            Cell::Button => {
                let _ = write!(
                    s,
                    r##"<text x="{}" y="{}" fill="#7d4a00">B</text>"##,
                    cx - 4,
                    cy + 4
                );
            }
            _ => {}
        }
    }
    let c = &map.camera;
    let _ = write!(
        s,
        r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#8e44ad" stroke-width="2" stroke-dasharray="5 3"/>"##,
        x0 + c.x0 * CELL,
        y0 + c.y0 * CELL,
        (c.x1 - c.x0 + 1) * CELL,
        (c.y1 - c.y0 + 1) * CELL
    );
    let Some(t) = traj else { return };
    let centre = |p: Pos| (x0 + p.0 * CELL + CELL / 2, y0 + p.1 * CELL + CELL / 2);
    let points: Vec<(usize, usize)> = if camera_only {
        // The camera's frames: only where it saw the agent.
        cam.as_ref()
            .map(|c| {
                c.frames
                    .iter()
                    .filter_map(|f| f.agent)
                    .map(centre)
                    .collect()
            })
            .unwrap_or_default()
    } else {
        t.positions.iter().copied().map(centre).collect()
    };
    if points.len() > 1 {
        let path: Vec<String> = points.iter().map(|(x, y)| format!("{x},{y}")).collect();
        let _ = write!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#e74c3c" stroke-width="2.5" stroke-linejoin="round" opacity="0.8"/>"##,
            path.join(" ")
        );
    }
    if let Some(&(x, y)) = points.last() {
        let _ = write!(s, r##"<circle cx="{x}" cy="{y}" r="5" fill="#e74c3c"/>"##);
    }
    if camera_only
        && cam
            .as_ref()
            .is_some_and(|c| c.frames.iter().any(|f| f.frozen))
    {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" fill="#7d4a00" font-weight="bold">frozen on "success"</text>"##,
            x0 + 2,
            y0 + map.height * CELL + 14
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::world::{parse_moves, Map, Trajectory};
    use super::*;

    #[test]
    fn renders_both_panels_and_the_frozen_camera() {
        let map = Map::parse("S.V..\n.....\nB..VG\ncam 3-4,0-2\n> ").unwrap();
        let t = Trajectory::simulate(&map, &parse_moves("DD").unwrap());
        let svg = trajectory_svg(&map, Some(&t));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("what happened") && svg.contains("what the camera saw"));
        assert!(svg.contains("frozen on"));
        assert!(svg.contains("button pressed"));
        let t = Trajectory::simulate(&map, &parse_moves("RRRRDD").unwrap());
        let svg = trajectory_svg(&map, Some(&t));
        assert!(svg.contains("vases broken 1 (camera saw 0)"));
    }
}
