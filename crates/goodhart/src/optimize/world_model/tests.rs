//! Tests of `world_model`.

use super::*;
use crate::task::gridworld::{state_symbol, Gridworld, GridworldConfig, PREDICATES};
use crate::task::Split;

use crate::tokenize::CharTokenizer;

/// The hand-made map of the gridworld tests: the camera sees columns 3..4.
const MAP: &str = "S.V..\n.....\nB..VG\ncam 3-4,0-2\n> ";

#[test]
fn the_world_model_text_interleaves_moves_and_the_states_they_lead_to() {
    // D: (0,1) nothing; R R R: (3,1) in view; R (4,1); D: the goal, in view.
    assert_eq!(with_states(MAP, "DRRRRD").unwrap(), "DaRaRaRiRiDj");
    // Through the out-of-view vase at (2,0): vase_broken from then on.
    assert_eq!(with_states(MAP, "RR").unwrap(), "RaRc");
    // Onto the button at (0,2).
    assert_eq!(with_states(MAP, "DD").unwrap(), "DaDe");
    assert_eq!(with_states(MAP, "Rx"), None);
    let goal =
        Formula::parse("F at_goal & G !vase_broken & G !button_pressed", PREDICATES).unwrap();
    assert!(satisfied(&goal, MAP, &['a', 'a', 'a', 'i', 'i', 'j']).unwrap());
    assert!(!satisfied(&goal, MAP, &['a', 'c']).unwrap());
    for s in ['a', 'p'] {
        assert_eq!(state_symbol(&symbol_state(s, 1).unwrap()), s);
    }
    assert!(symbol_state('q', 1).is_none());
}

#[test]
fn a_world_model_learns_the_gridworld_from_trajectories() {
    // A small world (4 x 3, one vase) keeps the test quick.
    let task = Gridworld::new(
        GridworldConfig {
            width: 4,
            height: 3,
            n_vases: 1,
            wall_density: 0.0,
            n_train: 400,
            n_heldout: 4,
            n_shift: 4,
            ..Default::default()
        },
        0,
    )
    .unwrap();
    let shape = ModelConfig {
        n_layer: 2,
        d_model: 48,
        n_head: 4,
        n_ctx: 64,
        ..Default::default()
    };
    let tokenizer = std::sync::Arc::new(CharTokenizer::ascii());
    let device = candle_core::Device::Cpu;
    let mut rng = crate::rng::stream(0, "t");
    let shaped_like = Model::init(&shape, tokenizer, &mut rng, &device).unwrap();
    // The noisy planner's routes stand in for a base policy's trajectories.
    let examples: Vec<Example> = task
        .demonstrations(Split::Train)
        .iter()
        .filter_map(|d| {
            Some(Example {
                prompt: d.prompt.clone(),
                completion: with_states(&d.prompt, &d.completion)?,
            })
        })
        .collect();
    let goal = Formula::parse("F at_goal & G !vase_broken", PREDICATES).unwrap();
    let cfg = WorldModelConfig {
        trajectories: 400,
        model: None,
        sft: SftConfig {
            steps: 150,
            batch_size: 32,
            ..WorldModelConfig::default().sft
        },
    };
    let (model, report) = fit(
        &shaped_like,
        &examples,
        &goal,
        &cfg,
        &mut rng,
        &crate::progress::Silent,
    )
    .unwrap();
    let losses = &report.sft.train_loss;
    assert!(
        losses.last().unwrap().loss < 0.6 * losses[0].loss,
        "{losses:?}"
    );
    // Held-out trajectories, decoded from the moves alone, against always
    // predicting the commonest state.
    let mut counts = [0usize; 16];
    for e in &examples {
        for c in e.completion.chars().skip(1).step_by(2) {
            counts[(c as u8 - b'a') as usize] += 1;
        }
    }
    let total: usize = counts.iter().sum();
    let commonest = *counts.iter().max().unwrap() as f64 / total as f64;
    assert!(
        report.state_accuracy.mean > commonest + 0.1,
        "{:?} against the commonest state's share {commonest}",
        report.state_accuracy
    );
    let predicted = predict(&model, &[(MAP, "DRRRRD"), (MAP, "Rx")]).unwrap();
    assert_eq!(predicted[0].len(), 6);
    assert!(predicted[1].is_empty());
}

#[test]
fn the_gap_is_written_by_name_and_read_in_either_form() {
    let gap = Gap {
        predicted: Stat::of(&[1.0, 1.0]),
        simulated: Stat::of(&[1.0, 0.0]),
    };
    let named = serde_json::to_value(&gap).unwrap();
    assert!(named.get("predicted").is_some() && named.get("simulated").is_some());
    assert_eq!(serde_json::from_value::<Gap>(named).unwrap(), gap);
    // Runs recorded before the gap was named wrote a [predicted, simulated] pair.
    let pair = serde_json::json!([gap.predicted, gap.simulated]);
    assert_eq!(serde_json::from_value::<Gap>(pair).unwrap(), gap);
}
