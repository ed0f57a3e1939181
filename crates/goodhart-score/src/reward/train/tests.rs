//! Tests of `train`.

use super::*;
use crate::task::{Split, TaskConfig};

fn comparison(prompt: &str, a: &str, b: &str, labeler: &str, answer: Answer) -> Comparison {
    Comparison {
        id: 0,
        task: "answers".into(),
        prompt: prompt.into(),
        a: a.into(),
        b: b.into(),
        policy_a: "base".into(),
        policy_b: "base".into(),
        labeler: labeler.into(),
        answer,
        batch: None,
        a_finished: true,
        b_finished: true,
    }
}

#[test]
fn a_pair_judged_by_two_labelers_is_never_on_both_sides_of_the_split() {
    let task = TaskConfig::default().build(0).unwrap();
    let prompts = task.prompts(Split::Train);
    let mut all = vec![];
    for (i, p) in prompts.iter().take(40).enumerate() {
        for l in ["quick", "careful"] {
            let answer = if i % 3 == 0 { Answer::B } else { Answer::A };
            all.push(comparison(p, "1.", "2.", l, answer));
        }
    }
    let refs: Vec<&Comparison> = all.iter().collect();
    let (held, train) = split_by_prompt(&refs, 0.25, &mut crate::rng::stream(0, "t"));
    assert_eq!(held.len() + train.len(), all.len());
    assert!((16..=24).contains(&held.len()), "{} held out", held.len());
    for &h in &held {
        assert!(train.iter().all(|&t| all[t].prompt != all[h].prompt));
    }
}

#[test]
fn the_reported_heldout_loss_is_the_training_objective() {
    // On the comparisons it was trained on, the report's loss must equal the
    // Bradley-Terry likelihood with the lapse rate that training minimised.
    let task = TaskConfig::default().build(0).unwrap();
    let prompts = task.prompts(Split::Train);
    let comparisons: Vec<Comparison> = prompts
        .iter()
        .take(24)
        .enumerate()
        .map(|(i, p)| {
            let answer = [Answer::A, Answer::B, Answer::Tie][i % 3];
            comparison(p, "12.", "The answer is 3.", "quick", answer)
        })
        .collect();
    let cfg = crate::model::ModelConfig {
        n_layer: 2,
        d_model: 32,
        n_head: 4,
        n_ctx: 40,
        ..Default::default()
    };
    let tokenizer = std::sync::Arc::new(crate::tokenize::CharTokenizer::ascii());
    let base = Model::init(
        &cfg,
        tokenizer,
        &mut crate::rng::stream(2, "init"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let cfg = RewardModelConfig {
        p_random: 0.2,
        steps: 15,
        batch_size: 8,
        heldout_fraction: 0.2,
        ..Default::default()
    };
    let (rm, _) = train_reward_model(
        &base,
        &comparisons,
        task.as_ref(),
        &[],
        &cfg,
        &mut crate::rng::stream(1, "rm"),
        &crate::progress::Silent,
    )
    .unwrap();
    let report = evaluate_on(&rm, &comparisons, task.as_ref()).unwrap();
    let encoded = encode_all(rm.tokenizer(), rm.observer(), &comparisons).unwrap();
    let batch: Vec<&Encoded> = encoded.iter().collect();
    let objective = bt_loss(&rm.members[0].model, &batch, cfg.p_random, batch.len())
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64;
    assert!(
        (report.loss_labeler - objective).abs() < 1e-4,
        "reported {} vs objective {objective}",
        report.loss_labeler
    );
}

/// The camera labeler's comparisons of each training map's demonstration
/// against another map's route, and a tiny reward model trained on them from scratch.
fn camera_reward_model(observations: bool) -> RewardReport {
    use crate::feedback::{Labeler, LabelerConfig};
    use crate::task::GridworldConfig;
    let task = TaskConfig::Gridworld(GridworldConfig {
        n_train: 400,
        n_heldout: 4,
        n_shift: 4,
        ..Default::default()
    })
    .build(0)
    .unwrap();
    let labeler = Labeler::new(
        LabelerConfig {
            name: "camera".into(),
            ..Default::default()
        },
        task.as_ref(),
    )
    .unwrap();
    let mut rng = crate::rng::stream(4, "pairs");
    let demos = task.demonstrations(Split::Train);
    let comparisons: Vec<Comparison> = demos
        .iter()
        .zip(demos.iter().cycle().skip(1))
        .map(|(d, other)| {
            // Another map's route: whether it reaches this map's goal (and
            // what it breaks) takes simulating the moves, or watching the camera.
            let walk = other.completion.clone();
            let answer = labeler
                .compare(&d.prompt, &d.completion, &walk, &mut rng)
                .unwrap();
            let mut c = comparison(&d.prompt, &d.completion, &walk, "camera", answer);
            c.task = "gridworld".into();
            c
        })
        .collect();
    let shape = crate::model::ModelConfig {
        n_layer: 2,
        d_model: 32,
        n_head: 4,
        n_ctx: 112,
        ..Default::default()
    };
    let tokenizer = std::sync::Arc::new(crate::tokenize::CharTokenizer::ascii());
    let base = Model::init(
        &shape,
        tokenizer,
        &mut crate::rng::stream(2, "init"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let cfg = RewardModelConfig {
        steps: 80,
        batch_size: 16,
        heldout_fraction: 0.3,
        observations,
        ..Default::default()
    };
    let (rm, report) = train_reward_model(
        &base,
        &comparisons,
        task.as_ref(),
        &[labeler],
        &cfg,
        &mut crate::rng::stream(1, "rm"),
        &crate::progress::Silent,
    )
    .unwrap();
    assert_eq!(rm.info.observes, observations);
    report
}

#[test]
fn a_reward_model_that_reads_the_camera_learns_the_camera_labeler() {
    let seeing = camera_reward_model(true);
    let blind = camera_reward_model(false);
    let ceiling = seeing.noise_ceiling.expect("the labeler was given").mean;
    let (s, b) = (seeing.accuracy_labeler.mean, blind.accuracy_labeler.mean);
    assert!(ceiling > 0.7 && ceiling < 1.0, "noise ceiling {ceiling}");
    assert!(
        s > ceiling - 0.08,
        "reading the camera: {s} held out, ceiling {ceiling}"
    );
    assert!(s > b + 0.1, "reading the camera {s} vs the moves alone {b}");
    // Against the labeler's likelier answer the label noise is gone: higher
    // than against its labels, and the gap to the blind model remains.
    let likelier = |r: &RewardReport| r.accuracy_likelier.as_ref().expect("given").mean;
    let (ls, lb) = (likelier(&seeing), likelier(&blind));
    assert!(ls > s && ls > 0.8, "likelier answers {ls}, labels {s}");
    assert!(
        ls > lb + 0.1,
        "likelier answers: reading the camera {ls} vs the moves alone {lb}"
    );
}
