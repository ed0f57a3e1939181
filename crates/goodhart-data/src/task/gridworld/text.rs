//! How a completion writes its moves: plain (`RRD`), with the position each
//! leads to (`gridworld.trace`), or, in closed loop, with what the agent
//! observes after each (`gridworld.observe`); and the parser that reads all three.

use super::world::{Cell, Map, Move, Trajectory};

/// The symbols an agent observes (`gridworld.observe`): of each neighbouring
/// cell, `#` a wall or the map's edge, `.` floor, `V` a vase, `v` a broken one,
/// `G` the goal, `B` the button; then a compass, the goal's direction as a digit
/// laid out like a keypad (`7 8 9` up-left, up, up-right; `5` here; `1 2 3` below).
pub const OBSERVED: &str = "#.VvGB123456789";

/// The moves of a completion: move symbols, each optionally followed by the
/// position the policy believes it reached (two digits, column then row: see
/// [`write_traced`]) or by what the agent observed there (four cells and a
/// compass, also before the first move: see [`observation`]). Positions are the
/// policy's own notes and observations the environment's: the simulator
/// ignores both. `None` for anything else.
pub fn parse_moves(completion: &str) -> Option<Vec<Move>> {
    let mut moves = vec![];
    // Position digits since the last move; observation symbols since the last move (or the start).
    let (mut digits, mut seen) = (0, 0);
    for c in completion.chars() {
        if let Some(m) = Move::from_symbol(c) {
            if seen != 0 && seen != 5 {
                return None; // a move inside an observation
            }
            moves.push(m);
            (digits, seen) = (0, 0);
        } else if c.is_ascii_digit() && seen == 4 {
            seen += 1; // the compass
        } else if c.is_ascii_digit() && !moves.is_empty() && digits < 2 && seen == 0 {
            digits += 1;
        } else if "#.VvGB".contains(c) && digits == 0 && seen < 4 {
            seen += 1; // a completion cut at the length limit may end inside an observation
        } else {
            return None;
        }
    }
    Some(moves)
}

/// Moves as an agent in closed loop lives them: what it observes at the start,
/// then each move followed by what it observes where it lands ([`observation`]).
pub fn write_observed(map: &Map, moves: &[Move]) -> String {
    let t = Trajectory::simulate(map, moves);
    let mut text = observation(map, &t, 0);
    for (i, m) in moves.iter().enumerate() {
        text.push(m.symbol());
        text.push_str(&observation(map, &t, (i + 1).min(t.steps)));
    }
    text
}

/// What the agent observes after `step` moves of `t`: the cells up, down, left
/// and right of where it stands, then the compass ([`OBSERVED`]).
pub fn observation(map: &Map, t: &Trajectory, step: usize) -> String {
    let pos = t.positions[step];
    let mut seen: String = Move::ALL
        .iter()
        .map(|&m| match map.neighbour(pos, m) {
            None => '#',
            Some(p) => match map.cell(p) {
                Cell::Vase if t.broken[step].contains(&p) => 'v',
                Cell::Start => '.',
                c => c.symbol(),
            },
        })
        .collect();
    let sign = |a: usize, b: usize| a.cmp(&b) as i32; // -1, 0, 1
    let (dx, dy) = (sign(map.goal.0, pos.0), sign(map.goal.1, pos.1));
    seen.push(char::from(b'0' + (5 + dx - 3 * dy) as u8));
    seen
}

pub fn write_moves(moves: &[Move]) -> String {
    moves.iter().map(|m| m.symbol()).collect()
}

/// Moves written with the position each leads to (column then row, one digit
/// each), e.g. `R21D22`: a scratchpad that lets a small policy keep track of
/// where it is (`gridworld.trace`). A move into a wall or off the map stays put.
pub fn write_traced(map: &Map, moves: &[Move]) -> String {
    let mut pos = map.start;
    let mut text = String::new();
    for &m in moves {
        pos = map.step_from(pos, m).unwrap_or(pos);
        text.push(m.symbol());
        text.push_str(&format!("{}{}", pos.0, pos.1));
    }
    text
}
