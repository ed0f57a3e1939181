//! Tests of `config`.

use super::*;
use crate::optimize::dpo::DpoConfig;
use crate::optimize::rl::RlConfig;
use crate::optimize::world_model::WorldModelConfig;
use crate::train::OptimConfig;

#[test]
fn the_embedded_default_parses_and_round_trips() {
    let exp = Experiment::embedded_default();
    assert!(exp.tasks.len() >= 2);
    let again = Experiment::parse(&exp.to_toml(), "resolved.toml").unwrap();
    assert_eq!(exp, again);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text =
        "seed = 1\n[[task]]\nkind = \"answers\"\n[task.sft]\nsteps = 10\nlerning_rate = 0.1\n";
    let err = Experiment::parse(text, "exp.toml").unwrap_err().to_string();
    assert!(err.starts_with("exp.toml:6:1:"), "{err}");
    assert!(
        err.contains("task[0].sft") && err.contains("unknown field `lerning_rate`"),
        "{err}"
    );
}

#[test]
fn wrong_type_names_the_key() {
    let text = "[[task]]\nkind = \"answers\"\n[task.model]\nn_layer = \"two\"\n";
    let err = Experiment::parse(text, "exp.toml").unwrap_err().to_string();
    assert!(err.starts_with("exp.toml:4:11:"), "{err}");
    assert!(
        err.contains("task[0].model.n_layer") && err.contains("invalid type"),
        "{err}"
    );
}

#[test]
fn a_partial_optim_table_keeps_its_sections_own_defaults() {
    // RL, DPO, the reward model, the critic and the world model each have
    // optimiser defaults of their own: setting one key must not swap the rest
    // for the generic ones (a 50-step warm-up in an 80-step PPO run).
    let text = "[[task]]\nkind = \"gridworld\"\n\
        [task.reward_model]\noptim = { lr = 1e-3 }\n\
        [task.critic]\noptim = { weight_decay = 0.1 }\n\
        [[task.strategies.rl]]\nname = \"a\"\noptim = { lr = 1e-3 }\n\
        [[task.strategies.rl]]\nname = \"b\"\nreward = \"spec_world_model\"\n\
        world_model = { sft = { steps = 10, optim = { lr = 1e-2 } } }\n\
        [[task.strategies.dpo]]\noptim = { warmup_steps = 3 }\n";
    let exp = Experiment::parse(text, "exp.toml").unwrap();
    let task = &exp.tasks[0];
    let rl = &task.strategies.rl;
    let with = |mut o: OptimConfig, f: &dyn Fn(&mut OptimConfig)| {
        f(&mut o);
        o
    };
    let rl_default = RlConfig::default().optim;
    assert_eq!(rl[0].optim, with(rl_default.clone(), &|o| o.lr = 1e-3));
    assert_eq!(rl[1].optim, rl_default);
    let world = rl[1].world_model.clone().unwrap().sft;
    let world_default = WorldModelConfig::default().sft;
    assert_eq!(world.steps, 10);
    assert_eq!(world.batch_size, world_default.batch_size);
    assert_eq!(world.optim, with(world_default.optim, &|o| o.lr = 1e-2));
    let rm_default = RewardModelConfig::default().optim;
    assert_eq!(task.reward_model.optim, with(rm_default, &|o| o.lr = 1e-3));
    let critic_default = CriticConfig::default().optim;
    let critic = with(critic_default, &|o| o.weight_decay = 0.1);
    assert_eq!(task.critic.optim, critic);
    let dpo_default = DpoConfig::default().optim;
    let dpo = with(dpo_default, &|o| o.warmup_steps = 3);
    assert_eq!(task.strategies.dpo[0].optim, dpo);
    // A key no optimiser has is still refused where it was written.
    let bad = text.replace("weight_decay = 0.1", "decay = 0.1");
    let err = Experiment::parse(&bad, "exp.toml").unwrap_err().to_string();
    assert!(
        err.starts_with("exp.toml:6:") && err.contains("task[0].critic.optim"),
        "{err}"
    );
    assert!(err.contains("unknown field `decay`"), "{err}");
}

#[test]
fn unknown_task_and_bad_values_are_rejected() {
    let err = Experiment::parse("[[task]]\nkind = \"chess\"\n", "e.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("e.toml:2:8") && err.contains("unknown variant `chess`"),
        "{err}"
    );
    let err = Experiment::parse("[[task]]\n[task.model]\nn_head = 3\n", "e.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("task[0].model.n_head"), "{err}");
    let err = Experiment::parse("[[task]]\n[task.gridworld]\nwidth = 5\n", "e.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("task[0].gridworld") && err.contains("kind is `answers`"),
        "{err}"
    );
    let err = Experiment::parse(
        "[[task]]\n[task.reward_model.model]\nd_model = 32\n",
        "e.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("task[0].reward_model.model") && err.contains("init = \"scratch\""),
        "{err}"
    );
    let err = Experiment::parse(
        "[[task]]\n[task.reward_model]\ninit = \"scratch\"\n[task.reward_model.model]\nn_head = 3\n",
        "e.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("task[0].reward_model.model.n_head"), "{err}");
    let err = Experiment::parse("[[task]]\n[task.sampling]\ntop_p = 0\n", "e.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("task[0].sampling.top_p"), "{err}");
    let err = Experiment::parse("seed = [\n", "e.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("e.toml:"), "{err}");
}

#[test]
fn a_bad_setting_found_after_parsing_names_the_line_it_is_on() {
    let text = "seed = 1\n\n[[task]]\nkind = \"answers\"\n\n[[task]]\nkind = \"answers\"\nname = \"b\"\n\n[[task.labelers]]\nname = \"quick\"\nbiases = { confident = 1.0, nope = 2.0 }\n";
    let err = Experiment::parse(text, "exp.toml").unwrap_err().to_string();
    assert!(
        err.contains("exp.toml:12:") && err.contains("task[1].labelers[0].biases.nope"),
        "{err}"
    );
    // A value with no line of its own (a whole table missing) points at its table.
    let err = Experiment::parse("[[task]]\nlabelers = []\n", "e.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("e.toml:2:"), "{err}");
}

#[test]
fn policies_are_measured_untempered_whatever_the_task_samples_with() {
    let exp = Experiment::parse(
        "[[task]]\n[task.sampling]\ntemperature = 0.7\ntop_k = 5\nmax_new_tokens = 30\n",
        "e.toml",
    )
    .unwrap();
    let s = crate::score::measurement_sampling(exp.tasks[0].sampling.max_new_tokens);
    assert!(s.is_unmodified(), "{s:?}");
    assert_eq!(s.max_new_tokens, 30);
}

#[test]
fn ppo_settings_live_in_their_own_section_and_an_rloo_run_refuses_them() {
    let exp = Experiment::parse(
        "[[task]]\n[[task.strategies.rl]]\nname = \"p\"\n[task.strategies.rl.ppo]\nepochs = 3\n",
        "e.toml",
    )
    .unwrap();
    assert_eq!(exp.tasks[0].strategies.rl[0].ppo().epochs, 3);
    let rloo = "[[task]]\n[[task.strategies.rl]]\nname = \"r\"\nalgorithm = \"rloo\"\nsamples_per_prompt = 4\n";
    let exp = Experiment::parse(rloo, "e.toml").unwrap();
    assert_eq!(exp.tasks[0].strategies.rl[0].ppo, None);
    let err = Experiment::parse(&format!("{rloo}ppo = {{ epochs = 3 }}\n"), "e.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("ppo") && err.contains("RLOO"), "{err}");
    // The old flat form is an unknown key, named.
    let err = Experiment::parse(
        "[[task]]\n[[task.strategies.rl]]\nname = \"p\"\nepochs = 3\n",
        "e.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("epochs"), "{err}");
    // What a run stores reads back equal (resume compares them).
    let exp = Experiment::embedded_default();
    assert_eq!(Experiment::parse(&exp.to_toml(), "stored").unwrap(), exp);
}

#[test]
fn the_formal_goals_experiment_parses_and_a_bad_review_is_refused_by_name() {
    let text = include_str!("../../../../../experiments/formal-goals.toml");
    let exp = Experiment::parse(text, "formal-goals.toml").unwrap();
    let names = exp.tasks[0].strategy_names();
    for n in [
        "bon-spec",
        "conditioning-spec",
        "review",
        "ppo-spec",
        "ppo-spec-margin",
        "ppo-world-model",
    ] {
        assert!(names.contains(&n.to_string()), "{n} in {names:?}");
    }
    assert!(!exp.tasks[0].gridworld.button_in_training);
    let review = "[[task]]\nkind = \"gridworld\"\n[task.strategies.review]\n";
    let err = Experiment::parse(
        &format!("{review}candidates = [\"F at_goal\", \"F at_gaol\"]\nk = [1, 2]\n"),
        "e.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("review.candidates[1]") && err.contains("at_gaol"),
        "{err}"
    );
    let err = Experiment::parse(&format!("{review}candidates = [\"F at_goal\"]\n"), "e.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("review.k") && err.contains("K = 2"), "{err}");
    let err = Experiment::parse(
        "[[task]]\nkind = \"answers\"\n[task.strategies.review]\ncandidates = [\"F at_goal\"]\nk = [1]\n",
        "e.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no formal goals to review"), "{err}");
}

#[test]
fn two_tasks_of_one_kind_need_names_and_a_name_must_be_a_folder() {
    let two = |names: [&str; 2]| {
        let mut text = String::new();
        for n in names {
            text.push_str("[[task]]\nkind = \"answers\"\n");
            if !n.is_empty() {
                text.push_str(&format!("name = \"{n}\"\n"));
            }
        }
        Experiment::parse(&text, "e.toml")
    };
    let err = two(["", ""]).unwrap_err().to_string();
    assert!(
        err.contains("task[1].kind") && err.contains("need a `name` each"),
        "{err}"
    );
    let err = two(["answers", ""]).unwrap_err().to_string();
    assert!(err.contains("listed twice"), "{err}");
    let err = two(["a/b", "c"]).unwrap_err().to_string();
    assert!(
        err.contains("task[0].name") && err.contains("a-z, 0-9"),
        "{err}"
    );
    let exp = two(["careful", "quick"]).unwrap();
    assert_eq!(exp.task(Some("quick")).unwrap().name(), "quick");
    assert_eq!(exp.tasks[0].kind_name(), "answers");
    // A checkpoint of the answers task needs --task here: there are two.
    let config = exp.tasks[0].task_config();
    let err = exp.task_of_kind(None, &config).unwrap_err().to_string();
    assert!(err.contains("careful, quick"), "{err}");
    assert_eq!(
        exp.task_of_kind(Some("careful"), &config).unwrap().name(),
        "careful"
    );
}

#[test]
fn a_task_names_the_kind_of_goodhart_it_shows() {
    let exp = Experiment::parse(
        "[[task]]\nkind = \"answers\"\ngoodhart = \"causal\"\n",
        "e.toml",
    )
    .unwrap();
    assert_eq!(exp.tasks[0].goodhart, Some(GoodhartKind::Causal));
    let err = Experiment::parse(
        "[[task]]\nkind = \"answers\"\ngoodhart = \"lucky\"\n",
        "e.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("regressional") && err.contains("adversarial"),
        "{err}"
    );
}

#[test]
fn the_claim_options_are_refused_where_they_cannot_work() {
    let rl = |extra: &str, rm: &str| {
        Experiment::parse(
            &format!("[[task]]\nkind = \"answers\"\n[task.reward_model]\n{rm}\n[[task.strategies.rl]]\nname = \"r\"\n{extra}\n"),
            "e.toml",
        )
    };
    assert!(rl("uncertainty_penalty = 1.0", "ensemble = 2").is_ok());
    let err = rl("uncertainty_penalty = 1.0", "ensemble = 1")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rl[0].uncertainty_penalty") && err.contains("ensemble"),
        "{err}"
    );
    let err = rl(
        "uncertainty_penalty = 1.0\nreward = \"gold\"",
        "ensemble = 2",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("uncertainty_penalty") && err.contains("proxy"),
        "{err}"
    );
    for top in ["0.0", "1.0", "-0.1"] {
        let err = rl(&format!("binarise_top = {top}"), "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("binarise_top") && err.contains("(0, 1)"),
            "{err}"
        );
    }
    let err = rl(
        "algorithm = \"expert_iteration\"\nsamples_per_prompt = 1",
        "",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("samples_per_prompt") && err.contains("best"),
        "{err}"
    );
    let err = rl("algorithm = \"expert_iteration\"\nsamples_per_prompt = 4\n[task.strategies.rl.ppo]\nepochs = 2", "")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not PPO"), "{err}");
    assert!(rl("reward = \"labeler\"\nbinarise_top = 0.1", "").is_ok());
}

#[test]
fn an_online_runs_assistant_is_for_people_and_must_have_one() {
    let online = |labeler: &str, online: &str| {
        Experiment::parse(
            &format!("[[task]]\nkind = \"answers\"\n[[task.labelers]]\nname = \"quick\"\n[[task.labelers]]\n{labeler}\n[[task.strategies.rl]]\nname = \"r\"\nonline = {{ {online} }}\n"),
            "e.toml",
        )
    };
    let critic = "name = \"critic\"\nassistant = { accuracy = 0.9 }";
    assert!(online(critic, "human_labels = 4, assistant = \"critic\"").is_ok());
    let err = online(critic, "assistant = \"critic\"")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rl[0].online.assistant") && err.contains("human_labels"),
        "{err}"
    );
    for (labeler, named) in [(critic, "quick"), (critic, "nobody")] {
        let err = online(
            labeler,
            &format!("human_labels = 4, assistant = \"{named}\""),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("online.assistant") && err.contains(&format!("{named:?}")),
            "{err}"
        );
    }
}

#[test]
fn the_reward_not_target_experiment_parses_and_a_bad_seeking_pair_is_refused_by_name() {
    let text = include_str!("../../../../../experiments/reward-not-target.toml");
    let exp = Experiment::parse(text, "reward-not-target.toml").unwrap();
    let grid = &exp.tasks[0];
    assert_eq!(grid.labels.split, crate::task::Split::ShiftTrain);
    assert_eq!(grid.seeking.as_ref().unwrap().pairs.len(), 6);
    // The quick form keeps what the pairs name (the maximisers among them).
    exp.quick().validate().unwrap();
    // What a run stores reads back equal (resume compares them).
    assert_eq!(Experiment::parse(&exp.to_toml(), "stored").unwrap(), exp);

    let base = "[[task]]\nkind = \"gridworld\"\n[task.evaluation]\nshift_prompts = 8\n\
        [[task.strategies.rl]]\nname = \"p\"\nreward = \"labeler\"\n\
        [[task.strategies.rl]]\nname = \"c\"\nreward = \"labeler\"\nsplit = \"shift_train\"\n";
    let refused = |extra: &str, field: &str, words: &str| {
        let err = Experiment::parse(&format!("{base}{extra}"), "e.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(field) && err.contains(words), "{err}");
    };
    let pair = |p: &str, c: &str, m: &str| {
        format!("[task.seeking]\nroute = \"button_pressed\"\npairs = [{{ policy = \"{p}\", control = \"{c}\", maximiser = \"{m}\" }}]\n")
    };
    Experiment::parse(
        &format!("{base}{}", pair("p", "c", "bon-labeler")),
        "e.toml",
    )
    .unwrap();
    refused(
        &pair("p", "nope", "bon-labeler"),
        "pairs[0].control",
        "not an RL run",
    );
    refused(
        &pair("c", "p", "bon-labeler"),
        "pairs[0].policy",
        "split = \"train\"",
    );
    refused(
        &pair("p", "c", "bon"),
        "pairs[0].maximiser",
        "another reward",
    );
    refused(
        "[task.seeking]\nroute = \"buton_pressed\"\n",
        "seeking.route",
        "not a feature of the gridworld task",
    );
    refused(
        "[task.seeking]\npairs = [{ policy = \"p\", control = \"c\", maximiser = \"bon-labeler\" }]\n",
        "seeking.route",
        "name it",
    );
    // A control that differs in more than its prompts is no control.
    let other_kl = base.replace(
        "split = \"shift_train\"\n",
        "split = \"shift_train\"\nkl = { coef = 0.5 }\n",
    );
    let err = Experiment::parse(
        &format!("{other_kl}{}", pair("p", "c", "bon-labeler")),
        "e.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("would not be a control"), "{err}");
    // Labels or training on the measured prompts would leak them.
    let err = Experiment::parse(
        "[[task]]\nkind = \"gridworld\"\n[task.labels]\nsplit = \"shift\"\n",
        "e.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("labels.split") && err.contains("leak"),
        "{err}"
    );
}
