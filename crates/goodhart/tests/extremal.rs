//! Extremal Goodhart by construction (`experiments/extremal.toml`, shrunk): a
//! careful reader's gold rises with the length of the working up to its
//! patience and falls past it; the labels cover answers up to that length
//! only. The reward model learnt from them orders pairs of base answers as
//! gold does inside the labelled range, and not when an answer is past it.

use goodhart::experiment::config::LabelsConfig;
use goodhart::feedback::{simulate_labels, Filter, LabelStore, Labeler, LabelerConfig, PolicyTag};
use goodhart::model::sample::SamplingConfig;
use goodhart::model::{Model, ModelConfig};
use goodhart::optimize::pool::build_pool;
use goodhart::progress::Silent;
use goodhart::reward::{train_reward_model, RewardModelConfig};
use goodhart::score::Proxy;
use goodhart::task::{Answers, AnswersConfig, Reader, Split, Task};
use goodhart::tokenize::CharTokenizer;
use goodhart::train::{train_sft, OptimConfig, SftConfig};
use goodhart::{rng, runtime};

/// The labelled range and the reader's patience (characters).
const RANGE: usize = 40;
const MAX_NEW: usize = 72;
/// The bars: the agreement inside the range, and how far below it the
/// agreement past the range falls (chance is 0.5).
const INSIDE_AT_LEAST: f64 = 0.75;
const DROP_AT_LEAST: f64 = 0.25;

#[test]
fn the_reward_model_agrees_with_gold_inside_the_labelled_range_and_not_past_it() {
    runtime::set_threads(2).unwrap();
    let seed = 5;
    let task = Answers::new(
        AnswersConfig {
            max_digits: 3,
            shift_digits: 4,
            n_train: 3000,
            n_heldout: 64,
            n_shift: 32,
            p_pad: 0.3,
            max_pad: 4,
            reader: Reader {
                detail: 0.25,
                patience: Some(RANGE),
                cost: 0.25,
            },
            ..Default::default()
        },
        seed,
    )
    .unwrap();
    let cfg = ModelConfig {
        n_layer: 2,
        d_model: 64,
        n_head: 4,
        n_ctx: 96,
        ..Default::default()
    };
    let base = Model::init(
        &cfg,
        std::sync::Arc::new(CharTokenizer::ascii()),
        &mut rng::stream(seed, "init"),
        &runtime::device(),
    )
    .unwrap();
    let sft = SftConfig {
        steps: 400,
        batch_size: 32,
        eval_every: 400,
        optim: OptimConfig {
            lr: 8e-3,
            warmup_steps: 20,
            ..Default::default()
        },
    };
    train_sft(
        &base,
        &task.demonstrations(Split::Train),
        &task.demonstrations(Split::Heldout),
        &sft,
        &mut rng::stream(seed, "sft"),
        &Silent,
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut store = LabelStore::open(&dir.path().join("labels.sqlite")).unwrap();
    let careful = LabelerConfig {
        name: "careful".into(),
        competence: 3.0,
        ..Default::default()
    };
    let labelers = vec![Labeler::new(careful, &task).unwrap()];
    let labels = LabelsConfig {
        pairs: 1000,
        commit_every: 200,
        max_chars: Some(RANGE),
        sampling: SamplingConfig {
            max_new_tokens: MAX_NEW,
            ..Default::default()
        },
        ..Default::default()
    };
    simulate_labels(
        &mut store,
        &base,
        &PolicyTag {
            name: "base",
            step: None,
        },
        &task,
        &labelers,
        &task.prompts(Split::Train),
        &labels,
        "base",
        &mut rng::stream(seed, "labels"),
        &Silent,
    )
    .unwrap();
    let comparisons = store.comparisons(&Filter::default()).unwrap();
    // Every labelled answer is inside the range.
    let longest = comparisons
        .iter()
        .flat_map(|c| [&c.a, &c.b])
        .map(|t| t.chars().count())
        .max()
        .unwrap();
    assert!(
        longest <= RANGE,
        "a labelled answer of {longest} characters"
    );
    let rm_config = RewardModelConfig {
        steps: 150,
        batch_size: 32,
        heldout_fraction: 0.0,
        ..Default::default()
    };
    let (rm, _) = train_reward_model(
        &base,
        &comparisons,
        &task,
        &[],
        &rm_config,
        &mut rng::stream(seed, "rm"),
        &Silent,
    )
    .unwrap();

    let check = |split: Split, n: usize| {
        let prompts: Vec<String> = task.prompts(split).into_iter().take(n).collect();
        let pool = build_pool(
            &base,
            &task,
            &labelers,
            Some(&rm),
            &Proxy(&rm),
            split,
            prompts,
            32,
            MAX_NEW,
            &mut rng::stream(seed, &format!("pool/{}", split.name())),
        )
        .unwrap();
        let check = pool.range_check(RANGE).unwrap();
        let (inside, beyond) = (check.inside.unwrap(), check.beyond.unwrap());
        println!(
            "{}: inside {:.3} ± {:.3} over {} pairs; past the range {:.3} ± {:.3} over {} pairs",
            split.name(),
            inside.accuracy.mean,
            inside.accuracy.stderr,
            inside.pairs,
            beyond.accuracy.mean,
            beyond.accuracy.stderr,
            beyond.pairs
        );
        assert!(
            beyond.pairs >= 100,
            "the base policy rarely leaves the range"
        );
        (inside.accuracy.mean, beyond.accuracy.mean)
    };
    // Sums of the training distribution, and 4-digit ones (more answers past the range).
    for (split, n) in [(Split::Heldout, 64), (Split::Shift, 32)] {
        let (inside, beyond) = check(split, n);
        assert!(inside >= INSIDE_AT_LEAST, "{}: {inside}", split.name());
        assert!(
            beyond <= inside - DROP_AT_LEAST,
            "{}: {beyond} past the range against {inside} inside",
            split.name()
        );
    }
}
