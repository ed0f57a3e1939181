//! Tests of `rl`.

use super::*;

#[test]
fn adaptive_controller_moves_beta_towards_the_target() {
    let cfg = KlConfig {
        coef: 0.1,
        target: Some(2.0),
        horizon: 1000.0,
        ..Default::default()
    };
    let mut c = KlController::new(&cfg);
    c.update(6.0, 100); // far above target: beta grows by at most 20% * 100/1000
    assert!((c.coef - 0.1 * 1.02).abs() < 1e-12);
    c.update(1.0, 100); // below target: beta shrinks
    assert!(c.coef < 0.1 * 1.02);
    let mut fixed = KlController::new(&KlConfig {
        coef: 0.1,
        ..Default::default()
    });
    fixed.update(100.0, 100);
    assert_eq!(fixed.coef, 0.1);
    assert_eq!(
        KlController::new(&KlConfig {
            mode: KlMode::None,
            ..Default::default()
        })
        .coef,
        0.0
    );
}

#[test]
fn with_the_default_horizon_the_controller_reaches_its_target_within_a_run() {
    // A policy whose KL is inversely proportional to beta (0.3 / beta nats),
    // started at half the beta the target needs: within a default run (30
    // iterations of 32 prompts x 2 samples) the KL must settle within 10% of it.
    let run = RlConfig::default();
    let cfg = KlConfig {
        target: Some(3.0),
        ..Default::default()
    };
    let mut c = KlController::new(&cfg);
    let n = run.prompts_per_iteration * run.samples_per_prompt;
    let mut kl = 0.0;
    for _ in 0..run.iterations {
        kl = 0.3 / c.coef;
        c.update(kl, n);
    }
    assert!(
        (kl / 3.0 - 1.0).abs() < 0.1,
        "KL {kl} after {} iterations, beta {}",
        run.iterations,
        c.coef
    );
}

#[test]
fn earned_rewards_land_on_the_token_that_reaches_their_character() {
    let tok = crate::tokenize::CharTokenizer::ascii();
    let tokens = [tok.encode("ab").unwrap(), vec![tok.eos_id()]].concat();
    // Characters 0 and 1: the first token; 2: the second; past the end (or
    // on the stop token, which reads no character): the last token.
    let earned = vec![(0, 0.5), (1, 0.25), (2, -1.0), (9, 2.0)];
    let at = at_token(&tok, &tokens, earned);
    assert_eq!(at, vec![(0, 0.5), (0, 0.25), (1, -1.0), (2, 2.0)]);
    assert!(at_token(&tok, &[], vec![(0, 1.0)]).is_empty());
}
