//! Tests of `answers`.

use super::*;

fn task() -> Answers {
    Answers::new(
        AnswersConfig {
            n_train: 200,
            ..Default::default()
        },
        1,
    )
    .unwrap()
}

#[test]
fn replies_round_trip_and_parse_strictly() {
    let q = Question { a: 347, b: 85 };
    let r = Reply::Answer {
        working: q.columns(),
        hedged: true,
        answer: "432".into(),
    };
    let s = r.write();
    assert_eq!(s, "7+5=12,4+8+1=13,3+0+1=4 so maybe 432.");
    assert_eq!(Reply::parse(&s), r);
    assert_eq!(
        Reply::parse("432."),
        Reply::Answer {
            working: vec![],
            hedged: false,
            answer: "432".into()
        }
    );
    assert_eq!(Reply::parse(ABSTAIN), Reply::Abstain);
    for bad in [
        "",
        "432",
        "maybe .",
        "7+5=123 so 432.",
        "x so 1.",
        "43 2.",
        "7+5+2=14 so 1.",
    ] {
        assert_eq!(Reply::parse(bad), Reply::Malformed, "{bad:?}");
    }
}

#[test]
fn gold_scores_the_final_answer() {
    let t = task();
    let p = Question { a: 347, b: 85 }.prompt();
    assert_eq!(t.gold(&p, "432.").unwrap(), 1.0);
    assert_eq!(t.gold(&p, "maybe 432.").unwrap(), 1.0);
    assert_eq!(t.gold(&p, "433.").unwrap(), -1.0);
    assert_eq!(t.gold(&p, ABSTAIN).unwrap(), 0.0);
    assert_eq!(t.gold(&p, "four hundred").unwrap(), -1.0);
    assert!(t.gold("What is 2+2?", "4.").is_err());
}

#[test]
fn labeler_checks_only_within_competence_unless_pointed_at_a_wrong_step() {
    let t = task();
    let p = Question { a: 347, b: 85 }.prompt(); // difficulty 3
    let wrong = "7+5=12,4+8+1=14,3+0+1=4 so 442.";
    let able = LabelerView {
        competence: 3.0,
        pointer: None,
        ..Default::default()
    };
    let unable = LabelerView {
        competence: 2.0,
        pointer: None,
        ..Default::default()
    };
    assert_eq!(t.perceive(&p, wrong, &able).unwrap().verified, Some(-1.0));
    assert_eq!(t.perceive(&p, wrong, &unable).unwrap().verified, None);
    assert_eq!(t.first_wrong_step(&p, wrong), Some(1));
    let pointed = LabelerView {
        competence: 2.0,
        pointer: Some(1),
        ..Default::default()
    };
    assert_eq!(
        t.perceive(&p, wrong, &pointed).unwrap().verified,
        Some(-1.0)
    );
    let misdirected = LabelerView {
        competence: 2.0,
        pointer: Some(0),
        ..Default::default()
    };
    assert_eq!(t.perceive(&p, wrong, &misdirected).unwrap().verified, None);
    let right = "7+5=12,4+8+1=13,3+0+1=4 so 432.";
    assert_eq!(t.first_wrong_step(&p, right), None);
    assert_eq!(t.perceive(&p, right, &pointed).unwrap().verified, None);
    // Told otherwise (a defender's concession, a misread check), it takes the step as told.
    let conceded = LabelerView {
        competence: 2.0,
        pointer: Some(0),
        taken_wrong: Some(true),
    };
    assert_eq!(
        t.perceive(&p, right, &conceded).unwrap().verified,
        Some(-1.0)
    );
    let missed = LabelerView {
        taken_wrong: Some(false),
        ..pointed
    };
    assert_eq!(t.perceive(&p, wrong, &missed).unwrap().verified, None);
}

#[test]
fn a_step_is_checked_alone_and_the_answer_against_the_written_columns() {
    let t = task();
    // 347 + 85 = 432. A wrong column faithfully assembled: only the column is caught.
    let p = Question { a: 347, b: 85 }.prompt();
    let consistent = "7+5=12,4+8+1=14,3+0+1=4 so 442.";
    assert!(t.step_is_wrong(&p, consistent, 1));
    assert!(!t.step_is_wrong(&p, consistent, 3));
    // Right columns, wrong assembly: the answer step is caught.
    let misassembled = "7+5=12,4+8+1=13,3+0+1=4 so 433.";
    assert_eq!(t.first_wrong_step(&p, misassembled), Some(3));
    // A column left out is caught at the answer, whatever it says.
    let short = "7+5=12,4+8+1=13 so 32.";
    assert_eq!(t.first_wrong_step(&p, short), Some(2));
    // A carry out of the top column is part of the assembly.
    let q = Question { a: 57, b: 68 }.prompt(); // 125
    assert_eq!(t.first_wrong_step(&q, "7+8=15,5+6+1=12 so 125."), None);
    assert_eq!(
        t.first_wrong_step(&q, "7+8=15,5+6+1=12 so maybe 25."),
        Some(2)
    );
    // Where each step ends: the columns, then the answer.
    let ends = t.step_ends(&p, consistent);
    assert_eq!(ends.len(), t.n_steps(&p, consistent));
    assert_eq!(&consistent[..ends[0]], "7+5=12");
    assert_eq!(&consistent[..ends[2]], "7+5=12,4+8+1=14,3+0+1=4");
    assert_eq!(ends[3], consistent.len());
    assert!(t.step_ends(&p, "432.").is_empty());
    // What a person is shown of each step.
    let shown: Vec<&str> = t
        .step_spans(&p, consistent)
        .into_iter()
        .map(|s| &consistent[s])
        .collect();
    assert_eq!(shown, ["7+5=12", "4+8+1=14", "3+0+1=4", "442."]);
}

#[test]
fn demonstrations_are_correct_and_mix_forms_by_difficulty() {
    let t = Answers::new(
        AnswersConfig {
            n_train: 4000,
            ..Default::default()
        },
        5,
    )
    .unwrap();
    let demos = t.demonstrations(Split::Train);
    let mut hedged_easy = (0, 0);
    let mut hedged_hard = (0, 0);
    let mut abstain_hard = 0;
    for d in &demos {
        let gold = t.gold(&d.prompt, &d.completion).unwrap();
        assert!(gold >= 0.0, "demonstrations never answer wrongly: {d:?}");
        let diff = t.difficulty(&d.prompt).unwrap();
        let reply = Reply::parse(&d.completion);
        let bucket = if diff == 1 {
            &mut hedged_easy
        } else if diff == 4 {
            &mut hedged_hard
        } else {
            continue;
        };
        bucket.1 += 1;
        if let Reply::Answer { hedged: true, .. } = reply {
            bucket.0 += 1;
        }
        if diff == 4 && reply == Reply::Abstain {
            abstain_hard += 1;
        }
    }
    let rate = |(a, b): (usize, usize)| a as f64 / b as f64;
    assert!(rate(hedged_hard) > rate(hedged_easy) + 0.2);
    assert!(abstain_hard > 100);
    // Deterministic from the seed.
    assert_eq!(demos, t.demonstrations(Split::Train));
    assert!(t
        .prompts(Split::Shift)
        .iter()
        .all(|p| t.difficulty(p).unwrap() == 5));
}

#[test]
fn shifted_training_questions_are_of_the_shifted_kind_and_none_is_measured() {
    let t = task();
    let c = AnswersConfig::default();
    let shift_train = t.prompts(Split::ShiftTrain);
    assert_eq!(shift_train.len(), 200);
    let shift = t.prompts(Split::Shift);
    for p in &shift_train {
        let d = Question::parse(p).unwrap().difficulty();
        assert!(d > c.max_digits && d <= c.shift_digits, "{p}: {d} digits");
        assert!(!shift.contains(p), "{p} is measured on the shifted split");
    }
    // Demonstrations exist for them (a control can be fine-tuned there).
    assert_eq!(t.demonstrations(Split::ShiftTrain).len(), 200);
}

#[test]
fn columns_written_past_the_sum_are_right_and_assemble_without_leading_zeros() {
    let t = task();
    let q = Question { a: 57, b: 68 }; // 125
    let padded = Reply::Answer {
        working: q.columns_to(4),
        hedged: false,
        answer: "125".into(),
    }
    .write();
    assert_eq!(padded, "7+8=15,5+6+1=12,0+0+1=1,0+0=0 so 125.");
    assert_eq!(t.first_wrong_step(&q.prompt(), &padded), None);
    assert_eq!(t.gold(&q.prompt(), &padded).unwrap(), 1.0);
    // A padding column that is not 0+0 (or the carry) is a wrong step.
    let bad = "7+8=15,5+6+1=12,0+0=1 so 125.";
    assert_eq!(t.first_wrong_step(&q.prompt(), bad), Some(2));
}

#[test]
fn the_reader_credits_working_and_charges_past_its_patience() {
    let reading = |reader: Reader| {
        Answers::new(
            AnswersConfig {
                n_train: 10,
                reader,
                ..Default::default()
            },
            1,
        )
        .unwrap()
    };
    let q = Question { a: 57, b: 68 }.prompt();
    let terse = "125.";
    let worked = "7+8=15,5+6+1=12 so 125."; // 2 steps, 23 characters
    let padded = "7+8=15,5+6+1=12,0+0+1=1,0+0=0 so 125."; // 4 steps, 37 characters
    let t = reading(Reader {
        detail: 0.25,
        patience: Some(30),
        cost: 0.1,
    });
    assert_eq!(t.gold(&q, terse).unwrap(), 1.0);
    assert_eq!(t.gold(&q, worked).unwrap(), 1.5);
    // Four steps (+1), seven characters past the patience (-0.7): less than two steps in 23.
    assert!((t.gold(&q, padded).unwrap() - 1.3).abs() < 1e-12);
    assert_eq!(t.gold(&q, "126.").unwrap(), -1.0);
    // Wrong working is credited too (the reader sees where it went wrong), and
    // the answer is still wrong: the `correct` feature says so.
    assert_eq!(t.gold(&q, "7+8=15,5+6+1=13 so 135.").unwrap(), -0.5);
    let correct = FEATURE_NAMES.iter().position(|n| *n == "correct").unwrap();
    assert_eq!(t.features(&q, worked).unwrap()[correct], 1.0);
    assert_eq!(
        t.features(&q, "7+8=15,5+6+1=13 so 135.").unwrap()[correct],
        0.0
    );
    // Without patience, more working is always better.
    let t = reading(Reader {
        detail: 0.25,
        patience: None,
        cost: 0.1,
    });
    assert_eq!(t.gold(&q, padded).unwrap(), 2.0);
    for (bad, key) in [
        (
            Reader {
                patience: Some(0),
                ..Reader::default()
            },
            "answers.reader.patience",
        ),
        (
            Reader {
                detail: -1.0,
                ..Reader::default()
            },
            "answers.reader.detail",
        ),
    ] {
        let err = Answers::new(
            AnswersConfig {
                reader: bad,
                ..Default::default()
            },
            1,
        )
        .err()
        .expect("rejected");
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[test]
fn padded_demonstrations_are_right_and_longer_and_none_without_padding() {
    let demos = |p_pad: f64| {
        Answers::new(
            AnswersConfig {
                n_train: 2000,
                max_digits: 3,
                p_pad,
                max_pad: 3,
                ..Default::default()
            },
            4,
        )
        .unwrap()
        .demonstrations(Split::Train)
    };
    let extra = |e: &Example| {
        let q = Question::parse(&e.prompt).unwrap();
        match Reply::parse(&e.completion) {
            Reply::Answer { working, .. } if !working.is_empty() => {
                working.len() - q.difficulty() as usize
            }
            _ => 0,
        }
    };
    let t = task();
    let padded = demos(0.5);
    let counts: Vec<usize> = padded.iter().map(extra).collect();
    assert!(counts.iter().all(|&k| k <= 3));
    let share = counts.iter().filter(|&&k| k > 0).count() as f64 / counts.len() as f64;
    // Half the demonstrations show working, half of those pad.
    assert!((0.18..0.32).contains(&share), "{share}");
    for e in &padded {
        assert!(t.gold(&e.prompt, &e.completion).unwrap() >= 0.0);
        assert_eq!(t.first_wrong_step(&e.prompt, &e.completion), None);
    }
    // Padding off: no draw for it, so the demonstrations are those of older runs.
    assert!(demos(0.0).iter().all(|e| extra(e) == 0));
}
