//! Tests of `spec`.

use super::*;

const PREDS: &[&str] = &["at_goal", "vase_broken", "button_pressed"];

fn state(at_goal: bool, vase: bool, button: bool, steps: u32) -> WorldState {
    WorldState {
        facts: vec![
            ("at_goal", at_goal),
            ("vase_broken", vase),
            ("button_pressed", button),
        ],
        shortfalls: vec![],
        steps,
    }
}

/// 0: start, 1: moved, 2: vase broken, 3: at goal (vase still broken).
fn trace() -> Vec<WorldState> {
    vec![
        state(false, false, false, 0),
        state(false, false, false, 1),
        state(false, true, false, 2),
        state(true, true, false, 3),
    ]
}

fn holds(text: &str, tr: &[WorldState]) -> bool {
    Formula::parse(text, PREDS).unwrap().evaluate(tr).satisfied
}

#[test]
fn every_operator_on_hand_made_trajectories() {
    let t = trace();
    assert!(holds("true", &t) && !holds("false", &t));
    assert!(
        !holds("at_goal", &t),
        "a predicate is read at the first state"
    );
    assert!(holds("!at_goal", &t));
    assert!(holds("F at_goal", &t));
    assert!(!holds("G !vase_broken", &t));
    assert!(holds("G !button_pressed", &t));
    assert!(holds("F at_goal & G !button_pressed", &t));
    assert!(!holds("F at_goal & G !vase_broken", &t));
    assert!(holds("at_goal | !vase_broken", &t));
    assert!(holds("at_goal -> false", &t), "false premise");
    assert!(!holds("F (at_goal -> !vase_broken)", &t[3..]));
    assert!(holds("X !vase_broken", &t) && holds("X X vase_broken", &t));
    assert!(
        !holds("X at_goal", &t[3..]),
        "strong next fails at the last state"
    );
    assert!(holds(
        "!vase_broken U at_goal",
        &t[..2].iter().chain(&t[3..]).cloned().collect::<Vec<_>>()
    ));
    assert!(
        !holds("!vase_broken U at_goal", &t),
        "the vase broke before the goal"
    );
    assert!(holds("!at_goal U vase_broken", &t));
    assert!(holds("F (at_goal & steps <= 3)", &t) && !holds("F (at_goal & steps < 3)", &t));
    assert!(holds("G steps <= 3", &t) && holds("F steps == 2", &t) && holds("F steps >= 3", &t));
    assert!(holds("F steps > 2", &t) && !holds("F steps > 3", &t));
}

#[test]
fn robustness_counts_the_margin() {
    let t = trace();
    let v = Formula::parse("F (at_goal & steps <= 10)", PREDS)
        .unwrap()
        .evaluate(&t);
    assert!(v.satisfied);
    assert_eq!(v.robustness, 1.0); // the predicate (+1) is the binding minimum
    let v = Formula::parse("G steps <= 1", PREDS).unwrap().evaluate(&t);
    assert!(!v.satisfied);
    assert_eq!(v.robustness, -1.5);
}

#[test]
fn precedence_and_associativity() {
    let f = Formula::parse("a & b | c -> d", &["a", "b", "c", "d"]).unwrap();
    assert_eq!(f.to_string(), "(((a & b) | c) -> d)");
    let f = Formula::parse("!a U b U c", &["a", "b", "c"]).unwrap();
    assert_eq!(f.to_string(), "(!a U (b U c))");
    let f = Formula::parse("G F a", &["a"]).unwrap();
    assert_eq!(f.to_string(), "G F a");
}

#[test]
fn errors_point_at_the_column() {
    let err = |s: &str| Formula::parse(s, PREDS).unwrap_err().to_string();
    let e = err("F at_gaol");
    assert!(
        e.contains("column 3") && e.contains("unknown predicate `at_gaol`"),
        "{e}"
    );
    let e = err("F (at_goal & G !vase_broken");
    assert!(e.contains("column 28") && e.contains("expected `)`"), "{e}");
    let e = err("at_goal && vase_broken");
    assert!(e.contains("column 10"), "{e}");
    let e = err("steps <= x");
    assert!(e.contains("column 10") && e.contains("whole number"), "{e}");
    let e = err("at_goal $");
    assert!(
        e.contains("column 9") && e.contains("unexpected character"),
        "{e}"
    );
    let e = err("");
    assert!(e.contains("column 1") && e.contains("found the end"), "{e}");
    let e = err("at_goal at_goal");
    assert!(
        e.contains("column 9") && e.contains("after the formula"),
        "{e}"
    );
}

#[test]
fn deep_or_long_formulas_are_refused_in_one_line_and_deep_f_is_fast() {
    let err = |s: &str| Formula::parse(s, PREDS).unwrap_err().to_string();
    let parens = format!("{}at_goal{}", "(".repeat(10_000), ")".repeat(10_000));
    let e = err(&parens);
    assert!(e.contains("longer than"), "{e}");
    let e = err(&format!("{}at_goal", "!".repeat(100_000)));
    assert!(e.contains("longer than") && !e.contains('\n'), "{e}");
    let e = err(&format!("{}at_goal{}", "(".repeat(100), ")".repeat(100)));
    assert!(e.contains("nested deeper than 64"), "{e}");
    let e = err(&format!("{}at_goal", "F ".repeat(65)));
    assert!(e.contains("nested deeper than 64"), "{e}");
    // 60 nested F over a 200-step trajectory: linear, not exponential.
    let f = Formula::parse(&format!("{}at_goal", "F ".repeat(60)), PREDS).unwrap();
    let long: Vec<WorldState> = (0..200).map(|i| state(i == 199, false, false, i)).collect();
    let start = std::time::Instant::now();
    assert!(f.evaluate(&long).satisfied);
    assert!(start.elapsed().as_secs_f64() < 1.0, "{:?}", start.elapsed());
}

#[test]
fn until_and_next_by_recurrence_agree_with_their_definitions() {
    // a U b: b at some j >= i with a before it; checked against the definition on every
    // pair of predicates and every start of a trajectory with all combinations.
    let tr: Vec<WorldState> = (0..8)
        .map(|i| state(i & 1 == 1, i & 2 == 2, i & 4 == 4, i))
        .collect();
    let names = ["at_goal", "vase_broken", "button_pressed"];
    let fact = |s: &WorldState, n: &str| s.fact(n).unwrap();
    for a in names {
        for b in names {
            let f = Formula::parse(&format!("{a} U {b}"), PREDS).unwrap();
            let r = f.robustness(&tr);
            for (i, ri) in r.iter().enumerate() {
                let holds =
                    (i..tr.len()).any(|j| fact(&tr[j], b) && (i..j).all(|k| fact(&tr[k], a)));
                assert_eq!(*ri > 0.0, holds, "{a} U {b} at {i}");
            }
            let x = Formula::parse(&format!("X {a}"), PREDS)
                .unwrap()
                .robustness(&tr);
            for (i, xi) in x.iter().enumerate() {
                assert_eq!(*xi > 0.0, i + 1 < tr.len() && fact(&tr[i + 1], a));
            }
        }
    }
}
