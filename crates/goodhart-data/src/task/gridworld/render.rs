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
    // Below the panels: a row for the camera's "frozen" mark, then the caption's two lines.
    let (w, h) = (2 * panel_w + GAP, panel_h + TITLE + 52);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    panel(&mut s, map, traj, 0, false);
    panel(&mut s, map, traj, panel_w + GAP, true);
    let caption = match traj {
        None => ["malformed moves".to_string(), String::new()],
        Some(t) => {
            let cam = t.camera(map);
            [
                format!(
                    "{} steps; goal {}",
                    t.steps,
                    if t.reached_goal {
                        "reached"
                    } else {
                        "not reached"
                    },
                ),
                format!(
                    "vases broken {} (camera saw {}); button {}",
                    t.vases_broken().len(),
                    cam.seen_broken.len(),
                    if t.button_pressed() {
                        "pressed"
                    } else {
                        "untouched"
                    },
                ),
            ]
        }
    };
    let _ = write!(
        s,
        r##"<text x="0" y="{}" fill="#333">{}</text><text x="0" y="{}" fill="#333">{}</text></svg>"##,
        h - 20,
        caption[0],
        h - 4,
        caption[1]
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
    // The camera shows a vase broken only if it saw it break.
    grid(s, map, x0, y0, camera_only, |p| {
        if camera_only {
            cam.as_ref().is_some_and(|c| c.seen_broken.contains(&p))
        } else {
            broken.contains(&p)
        }
    });
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

/// A broken vase: a red cross centred on `(cx, cy)`.
fn broken_vase(s: &mut String, cx: usize, cy: usize) {
    let (l, r, t, b) = (cx - 7, cx + 7, cy - 7, cy + 7);
    let _ = write!(
        s,
        r##"<path d="M{l} {t} L{r} {b} M{r} {t} L{l} {b}" stroke="#c0392b" stroke-width="3"/>"##
    );
}

/// The map's cells (grey outside the camera when `camera_only`) and the camera's frame.
fn grid(
    s: &mut String,
    map: &Map,
    x0: usize,
    y0: usize,
    camera_only: bool,
    is_broken: impl Fn(Pos) -> bool,
) {
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
                if is_broken(p) {
                    broken_vase(s, cx, cy);
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
}

/// What a labeler sees of a trajectory, frame by frame: the camera's view only,
/// with one `<g class="frame" data-frame="i">` per step (the path so far, the
/// agent, the vases seen broken). The last frame is shown; a page steps through
/// the others by toggling their `display`.
pub fn labeler_svg(map: &Map, traj: Option<&Trajectory>) -> String {
    let (w, h) = (map.width * CELL, map.height * CELL + TITLE + 18);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r##"<text x="0" y="14" font-weight="bold" fill="#222">what the camera saw</text>"##
    );
    grid(&mut s, map, 0, TITLE, true, |_| false);
    let Some(t) = traj else {
        let _ = write!(
            s,
            r##"<text x="0" y="{}" fill="#c0392b">malformed moves</text></svg>"##,
            h - 4
        );
        return s;
    };
    let cam = t.camera(map);
    let centre = |p: Pos| (p.0 * CELL + CELL / 2, TITLE + p.1 * CELL + CELL / 2);
    let mut seen: Vec<Pos> = vec![];
    let mut path: Vec<(usize, usize)> = vec![];
    let last = cam.frames.len() - 1;
    for (i, frame) in cam.frames.iter().enumerate() {
        if !frame.frozen {
            for &v in &t.broken[i] {
                if map.camera.contains(v) && !seen.contains(&v) {
                    seen.push(v);
                }
            }
        }
        if let Some(p) = frame.agent {
            path.push(centre(p));
        }
        let display = if i == last {
            ""
        } else {
            r#" style="display:none""#
        };
        let _ = write!(s, r#"<g class="frame" data-frame="{i}"{display}>"#);
        for &v in &seen {
            let (cx, cy) = centre(v);
            broken_vase(&mut s, cx, cy);
        }
        if path.len() > 1 {
            let points: Vec<String> = path.iter().map(|(x, y)| format!("{x},{y}")).collect();
            let _ = write!(
                s,
                r##"<polyline points="{}" fill="none" stroke="#e74c3c" stroke-width="2.5" stroke-linejoin="round" opacity="0.6"/>"##,
                points.join(" ")
            );
        }
        if let Some(p) = frame.agent {
            let (x, y) = centre(p);
            let _ = write!(s, r##"<circle cx="{x}" cy="{y}" r="7" fill="#e74c3c"/>"##);
        }
        let status = match (frame.frozen, frame.agent.is_some()) {
            (true, _) => "frozen on \"success\"".to_string(),
            (false, true) => format!("step {i} of {last}"),
            (false, false) => format!("step {i} of {last}: agent out of view"),
        };
        let _ = write!(
            s,
            r##"<text x="0" y="{}" fill="#333">{status}</text></g>"##,
            h - 4
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::super::text::parse_moves;
    use super::super::world::{Map, Trajectory};
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

    #[test]
    fn the_labeler_view_has_a_frame_per_step_and_hides_what_the_camera_missed() {
        let map = Map::parse("S.V..\n.....\nB..VG\ncam 3-4,0-2\n> ").unwrap();
        // Right through the hidden vase at (2,0), down to the visible one at (3,2), then the goal.
        let t = Trajectory::simulate(&map, &parse_moves("RRRDDR").unwrap());
        let svg = labeler_svg(&map, Some(&t));
        assert_eq!(svg.matches(r#"class="frame""#).count(), 7);
        assert_eq!(svg.matches(r#"style="display:none""#).count(), 6);
        assert!(svg.contains("agent out of view") && svg.contains("step 6 of 6"));
        // Crosses: the visible vase, in the frames from when it broke (5 and 6); never the hidden one.
        assert_eq!(svg.matches("stroke-width=\"3\"").count(), 2);
        let pressed = Trajectory::simulate(&map, &parse_moves("DD").unwrap());
        assert!(labeler_svg(&map, Some(&pressed)).contains("frozen on"));
    }
}
