use super::*;
use crate::rng;
use crate::task::answers::Question;
use crate::task::{Answers, AnswersConfig};

fn task() -> Answers {
    Answers::new(
        AnswersConfig {
            n_train: 10,
            ..Default::default()
        },
        0,
    )
    .unwrap()
}

fn share_a(l: &Labeler, p: &str, a: &str, b: &str) -> f64 {
    let mut rng = rng::stream(1, "t");
    let n = 4000;
    let wins = (0..n)
        .filter(|_| l.compare(p, a, b, &mut rng).unwrap() == Answer::A)
        .count();
    wins as f64 / n as f64
}

#[test]
fn checks_easy_answers_and_judges_hard_ones_by_their_look() {
    let t = task();
    let cfg = LabelerConfig {
        biases: [("confident".to_string(), 0.5)].into_iter().collect(),
        p_random: 0.0,
        ..Default::default()
    };
    let l = Labeler::new(cfg, &t).unwrap();
    let easy = Question { a: 12, b: 30 }.prompt();
    assert!(
        share_a(&l, &easy, "42.", "maybe 43.") > 0.95,
        "easy: checks correctness"
    );
    assert!(
        share_a(&l, &easy, "maybe 42.", "43.") > 0.95,
        "easy: correct beats confident"
    );
    let hard = Question { a: 1234, b: 4321 }.prompt();
    // Cannot check 4-digit sums: the confident wrong answer wins.
    assert!(share_a(&l, &hard, "5556.", "maybe 5555.") > 0.8);
    // The labeler's own score says the same.
    assert!(l.score(&hard, "5556.").unwrap() > l.score(&hard, "maybe 5555.").unwrap());
}

#[test]
fn noise_ties_and_cant_tell_follow_their_settings() {
    let t = task();
    let hard = Question { a: 1234, b: 4321 }.prompt();
    let random = Labeler::new(
        LabelerConfig {
            p_random: 1.0,
            ..Default::default()
        },
        &t,
    )
    .unwrap();
    let s = share_a(&random, &hard, "5555.", "5556.");
    assert!((s - 0.5).abs() < 0.05, "{s}");
    let unsure = Labeler::new(
        LabelerConfig {
            p_random: 0.0,
            p_cant_tell: 1.0,
            ..Default::default()
        },
        &t,
    )
    .unwrap();
    let mut rng = rng::stream(2, "t");
    assert_eq!(
        unsure.compare(&hard, "5555.", "5556.", &mut rng).unwrap(),
        Answer::CantTell
    );
    let tied = Labeler::new(
        LabelerConfig {
            p_random: 0.0,
            tie_margin: 0.1,
            ..Default::default()
        },
        &t,
    )
    .unwrap();
    assert_eq!(
        tied.compare(&hard, "5555.", "5556.", &mut rng).unwrap(),
        Answer::Tie
    );
}

#[test]
fn the_probability_of_answering_a_matches_the_answers_it_gives() {
    let t = task();
    let hard = Question { a: 1234, b: 4321 }.prompt();
    let easy = Question { a: 12, b: 30 }.prompt();
    let cfg = LabelerConfig {
        biases: [("confident".to_string(), 0.2)].into_iter().collect(),
        p_random: 0.1,
        p_cant_tell: 0.5,
        ..Default::default()
    };
    let l = Labeler::new(cfg, &t).unwrap();
    for (p, a, b) in [
        (&hard, "5556.", "maybe 5555."),
        (&easy, "42.", "maybe 43."),
        (&easy, "maybe 42.", "42."),
    ] {
        let mut rng = rng::stream(3, "t");
        let answers: Vec<Answer> = (0..6000)
            .map(|_| l.compare(p, a, b, &mut rng).unwrap())
            .collect();
        let count = |x: Answer| answers.iter().filter(|&&y| y == x).count() as f64;
        let empirical = count(Answer::A) / (count(Answer::A) + count(Answer::B));
        let predicted = l.p_answers_a(p, a, b).unwrap();
        assert!(
            (empirical - predicted).abs() < 0.025,
            "{a} vs {b}: {empirical} answered A, {predicted} predicted"
        );
    }
    // Equal completions: a coin flip, so the ceiling there is 0.5.
    assert_eq!(l.p_answers_a(&easy, "42.", "42.").unwrap(), 0.5);
}

#[test]
fn the_measured_score_is_the_mean_judgement_under_the_noisy_pointer() {
    let t = task();
    let hard = Question { a: 1234, b: 4321 }.prompt();
    let wrong = "4+1=5,3+2=6,2+3=5,1+4=5 so 5565.";
    let assisted = Labeler::new(
        LabelerConfig {
            p_random: 0.0,
            assistant: Some(AssistantConfig::scripted(0.5)),
            ..Default::default()
        },
        &t,
    )
    .unwrap();
    let mut rng = rng::stream(2, "t");
    let n = 20_000;
    let mean = (0..n)
        .map(|_| assisted.judge(&hard, wrong, &mut rng).unwrap().score)
        .sum::<f64>()
        / n as f64;
    let score = assisted.score(&hard, wrong).unwrap();
    assert!(
        (score - mean).abs() < 0.02,
        "score {score} vs mean judgement {mean}"
    );
}

#[test]
fn an_assistant_exposes_wrong_working_on_hard_items() {
    let t = task();
    let q = Question { a: 1234, b: 4321 };
    let hard = q.prompt();
    let right = "4+1=5,3+2=5,2+3=5,1+4=5 so 5555.";
    let wrong = "4+1=5,3+2=6,2+3=5,1+4=5 so 5565.";
    let base = LabelerConfig {
        p_random: 0.0,
        ..Default::default()
    };
    let plain = Labeler::new(base.clone(), &t).unwrap();
    let assisted = Labeler::new(
        LabelerConfig {
            name: "assisted".into(),
            assistant: Some(AssistantConfig::scripted(1.0)),
            ..base
        },
        &t,
    )
    .unwrap();
    let p_plain = share_a(&plain, &hard, right, wrong);
    let p_assisted = share_a(&assisted, &hard, right, wrong);
    assert!(
        (p_plain - 0.5).abs() < 0.05,
        "unassisted cannot tell: {p_plain}"
    );
    assert!(
        p_assisted > 0.95,
        "assisted finds the wrong step: {p_assisted}"
    );
}

#[test]
fn unknown_bias_names_the_feature_and_the_options() {
    let t = task();
    let cfg = LabelerConfig {
        biases: [("politeness".to_string(), 1.0)].into_iter().collect(),
        ..Default::default()
    };
    let err = Labeler::new(cfg, &t).err().unwrap().to_string();
    assert!(
        err.contains("biases.politeness") && err.contains("confident"),
        "{err}"
    );
}

/// A stand-in for a learned critic: points at a fixed step.
struct PointsAt(usize);

impl Critic for PointsAt {
    fn beliefs(&self, _prompt: &str, _completion: &str, ends: &[usize]) -> Result<Vec<f64>> {
        Ok((0..ends.len())
            .map(|k| if k == self.0 { 0.9 } else { 0.1 })
            .collect())
    }
}

#[test]
fn a_learned_critic_points_where_it_believes_and_must_be_attached() {
    let t = task();
    let hard = Question { a: 1234, b: 4321 }.prompt();
    let wrong = "4+1=5,3+2=6,2+3=5,1+4=5 so 5565.";
    let cfg = LabelerConfig {
        p_random: 0.0,
        assistant: Some(AssistantConfig::learned(1)),
        ..Default::default()
    };
    let bare = Labeler::new(cfg.clone(), &t).unwrap();
    let err = bare.score(&hard, wrong).unwrap_err().to_string();
    assert!(
        err.contains("learned critic of round 1") && err.contains("critic"),
        "{err}"
    );
    let unaided = Labeler::new(LabelerConfig::default(), &t).unwrap();
    let right_pointer = Labeler::new(cfg.clone(), &t)
        .unwrap()
        .with_critic(Arc::new(PointsAt(1)));
    let wrong_pointer = Labeler::new(cfg, &t)
        .unwrap()
        .with_critic(Arc::new(PointsAt(0)));
    assert_eq!(right_pointer.score(&hard, wrong).unwrap(), -1.0);
    assert_eq!(
        wrong_pointer.score(&hard, wrong).unwrap(),
        unaided.score(&hard, wrong).unwrap(),
        "pointed at a right step, the labeler knows no more than without help"
    );
    // Debate: a second turn points at the next step, and the flaw is found.
    let debate = Labeler::new(
        LabelerConfig {
            p_random: 0.0,
            assistant: Some(AssistantConfig {
                turns: Some(2),
                ..AssistantConfig::learned(1)
            }),
            ..Default::default()
        },
        &t,
    )
    .unwrap()
    .with_critic(Arc::new(PointsAt(0)));
    assert_eq!(debate.score(&hard, wrong).unwrap(), -1.0);
    // How often each shows the labeler the flaw it could not find alone.
    assert_eq!(right_pointer.finds_flaw(&hard, wrong).unwrap(), Some(1.0));
    assert_eq!(wrong_pointer.finds_flaw(&hard, wrong).unwrap(), Some(0.0));
    assert_eq!(debate.finds_flaw(&hard, wrong).unwrap(), Some(1.0));
    assert_eq!(unaided.finds_flaw(&hard, wrong).unwrap(), None);
    let right = "4+1=5,3+2=5,2+3=5,1+4=5 so 5555.";
    assert_eq!(right_pointer.finds_flaw(&hard, right).unwrap(), None);
    let scripted = Labeler::new(
        LabelerConfig {
            assistant: Some(AssistantConfig::scripted(0.5)),
            ..Default::default()
        },
        &t,
    )
    .unwrap();
    // One wrong step of five: right half the time, else a 1-in-5 random pointer.
    let p = scripted.finds_flaw(&hard, wrong).unwrap().unwrap();
    assert!((p - 0.6).abs() < 1e-12, "{p}");
    let easy = Question { a: 12, b: 30 }.prompt();
    assert_eq!(
        scripted.finds_flaw(&easy, "2+0=2,1+3=5 so 52.").unwrap(),
        None,
        "what the labeler checks alone needs no assistant"
    );
}

#[test]
fn an_assistant_is_scripted_or_learned_not_both() {
    let t = task();
    for (assistant, want) in [
        (
            AssistantConfig {
                accuracy: Some(0.5),
                learned_round: Some(1),
                ..AssistantConfig::default()
            },
            "set one of",
        ),
        (AssistantConfig::default(), "set one of"),
        (AssistantConfig::learned(0), "from 1"),
        (AssistantConfig::scripted(1.5), "probability"),
        (
            AssistantConfig {
                turns: Some(2),
                ..AssistantConfig::scripted(0.9)
            },
            "learned critic to argue",
        ),
        (
            AssistantConfig {
                turns: Some(0),
                ..AssistantConfig::learned(1)
            },
            "at least 1 turn",
        ),
    ] {
        let cfg = LabelerConfig {
            assistant: Some(assistant),
            ..Default::default()
        };
        let err = Labeler::new(cfg, &t).err().unwrap().to_string();
        assert!(err.contains("assistant") && err.contains(want), "{err}");
    }
}

/// A debate judge (competence 2) of `turns` pointers, `checks` budget and `noise`.
fn debate(
    turns: usize,
    checks: Option<usize>,
    noise: Option<f64>,
    defender: Option<Defender>,
) -> LabelerConfig {
    LabelerConfig {
        p_random: 0.0,
        assistant: Some(AssistantConfig {
            turns: Some(turns),
            checks,
            check_noise: noise,
            defender,
            ..AssistantConfig::learned(1)
        }),
        ..Default::default()
    }
}

#[test]
fn an_honest_defenders_concession_reaches_a_flaw_beyond_the_judges_budget() {
    let t = task();
    let hard = Question { a: 347, b: 85 }.prompt(); // beyond the judge's competence (2)
                                                    // Only the second column is wrong; the attacker points at step 0, then step 1.
    let wrong = "7+5=12,4+8+1=14,3+0+1=4 so 442.";
    let judge = |checks, defender| {
        Labeler::new(debate(2, checks, None, defender), &t)
            .unwrap()
            .with_critic(Arc::new(PointsAt(0)))
            .with_defender(Arc::new(PointsAt(1)))
    };
    // One check, spent on the attacker's first (right) pointer: the flaw goes unseen.
    assert_eq!(judge(Some(1), None).p_accepts(&hard, wrong).unwrap(), 1.0);
    // A defender trained to win contests both: judged as with no defender.
    assert_eq!(
        judge(Some(1), Some(Defender::Dishonest))
            .p_accepts(&hard, wrong)
            .unwrap(),
        1.0
    );
    // The honest defender believes step 1 wrong and concedes it: the answer sinks.
    let honest = judge(Some(1), Some(Defender::Honest));
    assert_eq!(honest.p_accepts(&hard, wrong).unwrap(), 0.0);
    assert_eq!(honest.score(&hard, wrong).unwrap(), -1.0);
    assert_eq!(honest.finds_flaw(&hard, wrong).unwrap(), Some(1.0));
    // With a budget for both pointers, the judge finds it without the defender.
    assert_eq!(judge(None, None).p_accepts(&hard, wrong).unwrap(), 0.0);
    // An honest defender with no critic of its own is a clear error.
    let bare = Labeler::new(debate(2, Some(1), None, Some(Defender::Honest)), &t)
        .unwrap()
        .with_critic(Arc::new(PointsAt(0)));
    let err = bare.score(&hard, wrong).unwrap_err().to_string();
    assert!(
        err.contains("honest defender") && err.contains("debate"),
        "{err}"
    );
}

#[test]
fn noisy_checks_sink_right_answers_as_often_as_their_noise_says() {
    let t = task();
    let hard = Question { a: 347, b: 85 }.prompt();
    let right = "7+5=12,4+8+1=13,3+0+1=4 so 432.";
    let judge = Labeler::new(debate(2, None, Some(0.1), None), &t)
        .unwrap()
        .with_critic(Arc::new(PointsAt(0)));
    // Two right steps checked, each misread with probability 0.1.
    let p = judge.p_accepts(&hard, right).unwrap();
    assert!((p - 0.81).abs() < 1e-12, "{p}");
    let alone = Labeler::new(
        LabelerConfig {
            p_random: 0.0,
            ..Default::default()
        },
        &t,
    )
    .unwrap();
    let expected = 0.81 * alone.score(&hard, right).unwrap() - 0.19; // a sunk answer scores -1
    assert!((judge.score(&hard, right).unwrap() - expected).abs() < 1e-12);
    // Drawn judgements accept about as often.
    let mut rng = rng::stream(3, "noisy checks");
    let n = 4000;
    let accepted = (0..n)
        .filter(|_| judge.judge(&hard, right, &mut rng).unwrap().score > 0.0)
        .count() as f64
        / n as f64;
    assert!((accepted - 0.81).abs() < 0.03, "{accepted}");
    // A check within the judge's own competence is not debated.
    let easy = Question { a: 12, b: 30 }.prompt();
    assert_eq!(judge.p_accepts(&easy, "1+0=1,2+3=5 so 42.").unwrap(), 1.0);
}

#[test]
fn debate_settings_need_a_learned_critic_and_sane_values() {
    let t = task();
    let scripted = LabelerConfig {
        assistant: Some(AssistantConfig {
            checks: Some(1),
            ..AssistantConfig::scripted(0.9)
        }),
        ..Default::default()
    };
    let err = Labeler::new(scripted, &t).err().unwrap().to_string();
    assert!(err.contains("learned critic"), "{err}");
    let err = Labeler::new(debate(2, Some(0), None, None), &t)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("assistant.checks"), "{err}");
    let err = Labeler::new(debate(2, None, Some(0.7), None), &t)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("assistant.check_noise"), "{err}");
}
