//! The claim experiments (`experiments/*.toml`) and their sweeps, each run
//! shrunk (`goodhart sweep ... --quick`, one seed): every strategy they name
//! runs and writes what their findings are read from.

use std::path::{Path, PathBuf};

mod common;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Run `experiments/<file>` shrunk (`--quick`, one thread) into a fresh
/// directory: the directory (kept alive), the run's folder, what it printed.
fn run_quick(file: &str) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let exp = repo(&format!("experiments/{file}"));
    let printed = common::ok(
        1,
        &[
            "run",
            exp.to_str().unwrap(),
            "--quick",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    (dir, out, printed)
}

/// The header and rows of a CSV file (no quoted commas in these).
fn table(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = read(path);
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect::<Vec<_>>());
    (lines.next().unwrap(), lines.collect())
}

#[test]
fn every_claim_experiment_runs_quick_with_its_strategies_and_measures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("claims");
    let sweep = repo("experiments/sweeps/claims.toml");
    let printed = common::ok(
        1,
        &[
            "sweep",
            sweep.to_str().unwrap(),
            "--quick",
            "--seeds",
            "0",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(printed.contains("5 points x 1 seeds = 5 runs"), "{printed}");
    let strategies = |point: &str| -> Vec<String> {
        let (h, rows) = table(&out.join(point).join("seed-0/curves.csv"));
        let s = h.iter().position(|c| c == "strategy").unwrap();
        let mut names: Vec<String> = rows.iter().map(|r| r[s].clone()).collect();
        names.dedup();
        names
    };
    for (point, want) in [
        (
            "p00-filtering-vs-rl",
            &[
                "bon",
                "conditioning",
                "quantiliser",
                "ppo-kl",
                "ppo-nokl",
                "rloo",
                "expert-iteration",
                "dpo",
            ][..],
        ),
        (
            "p01-kl-coefficient",
            &[
                "bon",
                "ppo-kl-0",
                "ppo-kl-001",
                "ppo-kl-003",
                "ppo-kl-01",
                "ppo-kl-03",
            ],
        ),
        (
            "p02-binarised",
            &[
                "quantiliser",
                "ppo-binarised",
                "ppo-binarised-nokl",
                "ppo-kl",
            ],
        ),
        (
            "p03-uncertainty",
            &[
                "bon",
                "ppo-penalty-0",
                "ppo-penalty-05",
                "ppo-penalty-1",
                "ppo-penalty-2",
            ],
        ),
        (
            "p04-optimise-labeler",
            &["bon", "bon-labeler", "bon-gold", "ppo-proxy", "ppo-labeler"],
        ),
    ] {
        let got = strategies(point);
        for w in want {
            assert!(got.iter().any(|g| g == w), "{point}: no {w} in {got:?}");
        }
    }
    // What the findings are read from: the correlations on every point, the
    // variety of the binarised runs' samples, matched budgets over seeds.
    let (h, _) = table(&out.join("p00-filtering-vs-rl/seed-0/curves.csv"));
    assert!(h.iter().any(|c| c.starts_with("p_correct_given_")), "{h:?}");
    let (h, rows) = table(&out.join("p02-binarised/seed-0/curves.csv"));
    let (s, distinct) = (
        h.iter().position(|c| c == "strategy").unwrap(),
        h.iter().position(|c| c == "distinct").unwrap(),
    );
    assert!(rows
        .iter()
        .any(|r| r[s] == "ppo-binarised" && !r[distinct].is_empty()));
    let (h, rows) = table(&out.join("p00-filtering-vs-rl/matched.csv"));
    assert_eq!(&h[..4], ["task", "strategy", "by", "budget"]);
    assert!(rows
        .iter()
        .any(|r| r[1] == "expert-iteration" && r[2] == "proxy_gain"));
    let uncertainty = read(&out.join("p03-uncertainty/seed-0/experiment.toml"));
    assert!(
        uncertainty.contains("ensemble = 2"),
        "quick keeps two members for the penalty"
    );
}

#[test]
fn the_label_budget_sweep_plots_reward_model_accuracy_against_labels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("budget");
    let sweep = repo("experiments/sweeps/label-budget.toml");
    common::ok(
        1,
        &[
            "sweep",
            sweep.to_str().unwrap(),
            "--quick",
            "--seeds",
            "0",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let (h, rows) = table(&out.join("sweep.csv"));
    let col = |n: &str| {
        h.iter()
            .position(|c| c == n)
            .unwrap_or_else(|| panic!("no {n} in {h:?}"))
    };
    let mut pairs: Vec<&str> = rows
        .iter()
        .map(|r| r[col("task.answers-careful.labels.pairs")].as_str())
        .collect();
    pairs.dedup();
    assert_eq!(pairs, ["100", "300", "1000", "3000", "10000"]);
    assert!(rows
        .iter()
        .all(|r| !r[col("rm_accuracy_labeler")].is_empty()));
    let html = read(&out.join("report.html"));
    assert!(html.contains("Against log10 pairs") && html.contains("accuracy vs gold"));
}

#[test]
fn the_oversight_experiment_measures_every_judge_against_gold_by_difficulty() {
    let (dir, out, _) = run_quick("oversight.toml");
    let record: serde_json::Value =
        serde_json::from_str(&read(&out.join("unassisted/stages/base_eval.json"))).unwrap();
    let judges: Vec<&str> = record["heldout"]["fidelity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f[0].as_str().unwrap())
        .collect();
    assert_eq!(
        judges,
        [
            "unassisted",
            "critic-05",
            "critic-09",
            "critic-10",
            "easy-to-hard",
            "learned-1",
            "learned-2",
            "debate-3"
        ]
    );
    // The learned critic: one checkpoint and one measured round per round.
    let critic: serde_json::Value =
        serde_json::from_str(&read(&out.join("unassisted/stages/critic.json"))).unwrap();
    let rounds = critic["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{critic}");
    for (i, r) in rounds.iter().enumerate() {
        assert_eq!(r["round"], i + 1);
        assert!(out.join(format!("unassisted/critic-{}", i + 1)).is_dir());
    }
    for task in ["critic-05", "critic-10", "learned-2", "easy-to-hard"] {
        let rm: serde_json::Value =
            serde_json::from_str(&read(&out.join(task).join("stages/reward_model.json"))).unwrap();
        assert!(
            rm["report"]["by_difficulty"]
                .as_array()
                .is_some_and(|d| !d.is_empty()),
            "{task}: {rm}"
        );
    }

    // Outside the run, the learned critics are found beside the checkpoint:
    // `eval` measures the learned judges, and a queue for people shows a debate.
    let (base, ran) = (out.join("unassisted/base"), out.join("experiment.toml"));
    let (base, ran) = (base.to_str().unwrap(), ran.to_str().unwrap());
    let on_base = ["--checkpoint", base, ran, "--task", "unassisted"];
    let eval = [&["eval"][..], &on_base, &["--n-prompts", "8", "-n", "2"]].concat();
    let measured = common::ok(1, &eval);
    assert!(measured.contains("labeler debate-3"), "{measured}");
    let store = dir.path().join("people.sqlite");
    let queue = |assistant| {
        let store = store.to_str().unwrap();
        let args = [
            &["label", "queue", "--store", store, "--pairs", "3"][..],
            &on_base,
        ];
        common::goodhart(
            1,
            &[&args.concat()[..], &["--assistant", assistant]].concat(),
        )
    };
    let queued = queue("debate-3");
    assert!(queued.status.success(), "{queued:?}");
    let s = goodhart::feedback::LabelStore::open_existing(&store).unwrap();
    let shown = s.assist(1).unwrap().unwrap();
    assert_eq!(
        (shown.assistant.as_str(), shown.turns),
        ("debate-3", Some(3))
    );
    let refused = String::from_utf8(queue("unassisted").stderr).unwrap();
    assert!(
        refused.contains("--assistant \"unassisted\": it has no assistant"),
        "{refused}"
    );
}

#[test]
fn the_reward_not_target_experiment_measures_seeking_against_controls_and_maximisers() {
    let (_dir, out, printed) = run_quick("reward-not-target.toml");
    assert!(
        printed.contains("off the training distribution, ppo-labeler:"),
        "{printed}"
    );
    let found: serde_json::Value = serde_json::from_str(&read(&out.join("findings.json"))).unwrap();
    let grid = &found[0]["seeking"];
    assert_eq!(grid["route"], "button_pressed");
    let pairs = grid["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 6, "{grid}");
    for p in pairs {
        // Rates are shares of episodes, every contrast an interval.
        for k in ["base", "at_policy", "at_control", "at_maximiser"] {
            let r = p[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&r), "{k} = {r}");
        }
        assert!(p["gap"]["lo"].as_f64().unwrap() <= p["gap"]["hi"].as_f64().unwrap());
    }
    assert!(grid["verdict"].as_str().is_some() && grid["supports"].as_str().is_some());
    // Every strategy (the controls, best-of-n and best-of-n on the formal goal included) with each named feature on both splits.
    let carried: Vec<&str> = grid["carried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(carried.len(), 16, "{carried:?}");
    assert!(carried.contains(&"bon-labeler") && carried.contains(&"rloo-proxy-button"));
    let answers = &found[1]["seeking"];
    assert!(answers["pairs"].as_array().unwrap().is_empty());
    assert_eq!(
        answers["carried"][0]["features"].as_array().unwrap().len(),
        6
    );

    // The reward model learnt from maps with a button (`labels.split`); the
    // shifted split is the training distribution plus the button.
    let store = goodhart::feedback::LabelStore::open_existing(&out.join("gridworld/labels.sqlite"))
        .unwrap();
    let labelled = store.comparisons(&Default::default()).unwrap();
    assert!(!labelled.is_empty());
    for c in &labelled {
        assert!(
            c.prompt.contains('B'),
            "a labelled map without a button:\n{}",
            c.prompt
        );
    }
}

#[test]
fn the_extremal_experiment_labels_only_inside_its_range_and_measures_past_it() {
    let (_dir, out, printed) = run_quick("extremal.toml");
    // The construction check, on both splits.
    assert!(
        printed.contains("reward model against gold on pairs of base answers (heldout): inside the labelled range (at most 40 characters)"),
        "{printed}"
    );
    let found: serde_json::Value = serde_json::from_str(&read(&out.join("findings.json"))).unwrap();
    let task = &found[0];
    assert_eq!(task["goodhart"], "extremal");
    assert!(
        task["verdict"].as_str().unwrap().contains("labelled range"),
        "{task}"
    );
    // Every tested strategy's share past the range is a paired contrast.
    for f in task["strategies"].as_array().unwrap() {
        assert!(
            f["beyond"]["lo"].as_f64().unwrap() <= f["beyond"]["hi"].as_f64().unwrap(),
            "{f}"
        );
    }
    let store =
        goodhart::feedback::LabelStore::open_existing(&out.join("answers-extremal/labels.sqlite"))
            .unwrap();
    let labelled = store.comparisons(&Default::default()).unwrap();
    assert!(!labelled.is_empty());
    for c in &labelled {
        for text in [&c.a, &c.b] {
            assert!(
                text.chars().count() <= 40,
                "a labelled answer past the range: {text:?}"
            );
        }
    }
}

#[test]
fn the_red_team_experiment_labels_its_finds_and_random_pairs_and_retrains_each_round() {
    let (_dir, out, printed) = run_quick("red-team.toml");
    assert!(
        printed.contains(
            "answers: red team against the reward model, and random pairs for the same labels"
        ),
        "{printed}"
    );
    for task in ["answers", "answers-careful"] {
        let record: serde_json::Value =
            serde_json::from_str(&read(&out.join(task).join("stages/red_team.json"))).unwrap();
        let rounds = record["rounds"].as_array().unwrap();
        // Three rounds in each arm, each with its pairs labelled and a retrained model.
        assert_eq!(rounds.len(), 6, "{record}");
        for (i, r) in rounds.iter().enumerate() {
            assert_eq!(r["arm"], if i < 3 { "red_team" } else { "random" });
            assert!(r["pairs"].as_u64().unwrap() > 0);
            let share = r["failures"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&share));
        }
        // Each round's labels grow what the next model learns from.
        let learnt: Vec<u64> = rounds[..3]
            .iter()
            .map(|r| r["comparisons"].as_u64().unwrap())
            .collect();
        assert!(learnt.windows(2).all(|w| w[0] < w[1]), "{learnt:?}");
        // Best-of-n under round 0's model and each round's, on the held-out pool.
        let names: Vec<&str> = record["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["strategy"].as_str().unwrap())
            .collect();
        for name in ["bon-round-0", "bon-red-team-3", "bon-random-3"] {
            assert!(names.contains(&name), "{name} missing");
        }
        // PPO against every round's models, checkpoint by checkpoint (the task's own `ppo` is round 0's).
        for name in [
            "ppo-red-team-1",
            "ppo-red-team-3",
            "ppo-random-1",
            "ppo-random-3",
        ] {
            let knobs: Vec<&str> = record["points"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["strategy"] == name)
                .map(|p| p["knob"].as_str().unwrap())
                .collect();
            assert!(
                knobs.len() > 1 && knobs.iter().all(|&k| k == "iteration"),
                "{name}: {knobs:?}"
            );
        }
        let store =
            goodhart::feedback::LabelStore::open_existing(&out.join(task).join("labels.sqlite"))
                .unwrap();
        let batch = |b: &str| {
            store
                .comparisons(&goodhart::feedback::Filter {
                    batches: vec![b.into()],
                    ..Default::default()
                })
                .unwrap()
                .len()
        };
        assert!(batch("red_team/red_team/1") > 0 && batch("red_team/random/3") > 0);
    }
}

#[test]
fn the_rrm_experiment_trains_each_rounds_critic_on_that_rounds_policy() {
    let (_dir, out, printed) = run_quick("rrm.toml");
    assert!(
        printed.contains("answers: recursive reward modelling, each round's policy best-of-16"),
        "{printed}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&read(&out.join("answers/stages/rrm.json"))).unwrap();
    let rounds = record["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 3, "{record}");
    let base = record["base_answers"].as_str().unwrap();
    for (k, r) in rounds.iter().enumerate() {
        assert_eq!(r["round"], k + 1);
        // The critic of round k learnt from checks of round k's policy's answers ...
        assert_eq!(
            r["critic_trained_on"],
            r["policy_answers"],
            "round {}",
            k + 1
        );
        // ... which are the policy's, not the base policy's.
        assert_ne!(
            r["policy_answers"].as_str().unwrap(),
            base,
            "round {}",
            k + 1
        );
        for share in ["right", "judge_accepts", "unassisted_accepts", "agreement"] {
            let x = r[share].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{share} = {x}");
        }
        assert!(r["labels"].as_u64().unwrap() > 0);
    }
    // Round 2's policy answers to round 1's judge's reward model: another policy.
    assert_ne!(rounds[0]["policy_answers"], rounds[1]["policy_answers"]);
    // The round's judge labelled its policy's answers, under the policy's name.
    let store =
        goodhart::feedback::LabelStore::open_existing(&out.join("answers/labels.sqlite")).unwrap();
    let labelled = store
        .comparisons(&goodhart::feedback::Filter {
            batches: vec!["rrm/2".into()],
            ..Default::default()
        })
        .unwrap();
    assert!(!labelled.is_empty());
    assert!(labelled
        .iter()
        .all(|c| c.policy_a == "rrm-policy-2" && c.labeler == "quick-rrm-2"));
}

#[test]
fn the_debate_experiment_judges_the_same_answers_in_every_arm() {
    let (_dir, out, printed) = run_quick("debate.toml");
    assert!(
        printed.contains(
            "answers: debate, the round-2 critic attacking, checks misread with probability 0.1"
        ),
        "{printed}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&read(&out.join("answers/stages/debate.json"))).unwrap();
    let answers = record["answers"].as_array().unwrap();
    // The quick form judges 32 held-out answers and 8 shifted ones.
    assert_eq!(answers.len(), 40, "{record}");
    let arms = record["arms"].as_array().unwrap();
    let names: Vec<&str> = arms
        .iter()
        .map(|a| a["arm"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[..3], ["alone", "critic", "debate-1 c1 +defender"]);
    assert_eq!(names.len(), 11, "{names:?}");
    for a in arms {
        let p = a["p_correct"].as_array().unwrap();
        assert_eq!(p.len(), answers.len());
        assert!(p.iter().all(|x| (0.0..=1.0).contains(&x.as_f64().unwrap())));
        // Only the defended arms say what their defender conceded.
        let defended = a["arm"].get("defender").is_some();
        assert_eq!(a.get("conceded_wrong").is_some(), defended, "{a}");
    }
    // The defender's training is reported (the quick base policy may show no
    // working to check: its learning is tested in goodhart-score's critic tests).
    assert!(record["defender"]["checks"].is_u64(), "{record}");
    for d in answers.iter().map(|a| a["difficulty"].as_u64().unwrap()) {
        assert!((1..=4).contains(&d));
    }
}
