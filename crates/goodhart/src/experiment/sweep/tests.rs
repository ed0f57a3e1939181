use super::*;
use crate::model::ModelConfig;

fn config(text: &str) -> Result<SweepConfig> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.toml");
    std::fs::write(&path, text).unwrap();
    SweepConfig::from_file(&path)
}

fn default_table() -> toml::Table {
    toml::from_str(&Experiment::embedded_default().to_toml()).unwrap()
}

#[test]
fn dotted_keys_reach_tables_and_array_elements_by_name_kind_index_or_star() {
    let mut t = default_table();
    set_key(
        &mut t,
        "task.answers.strategies.rl.ppo-kl.kl.coef",
        0.5.into(),
    )
    .unwrap();
    set_key(&mut t, "task.2.labels.pairs", 700.into()).unwrap();
    set_key(&mut t, "task.*.sft.steps", 10.into()).unwrap();
    let exp = Experiment::parse(&toml::to_string(&t).unwrap(), "test").unwrap();
    let answers = exp.task(Some("answers")).unwrap();
    let kl = answers
        .strategies
        .rl
        .iter()
        .find(|r| r.name == "ppo-kl")
        .unwrap();
    assert_eq!(kl.kl.coef, 0.5);
    assert_eq!(exp.tasks[2].labels.pairs, 700);
    assert_eq!(
        exp.tasks[0].labels.pairs, 1500,
        "only the indexed task changed"
    );
    assert!(exp.tasks.iter().all(|t| t.sft.steps == 10));
}

#[test]
fn a_bad_dotted_key_says_which_part_and_what_is_there() {
    let mut t = default_table();
    // A section left out is added; one the experiment cannot have is named by its parser.
    let exp = Experiment::embedded_default();
    let err = grid::apply(
        &exp,
        &["task.answers.nope.x".into()],
        &[1.into()],
        "the sweep's grid",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("nope") && err.contains("labels") && err.contains("sweep's grid"),
        "{err}"
    );
    let err = set_key(&mut t, "task.nosuch.labels.pairs", 1.into())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no element `nosuch`") && err.contains("gridworld"),
        "{err}"
    );
    let err = set_key(&mut t, "task.answers.labels", 1.into())
        .unwrap_err()
        .to_string();
    assert!(err.contains("a section, not a value"), "{err}");
    let err = set_key(&mut t, "seed.x", 1.into()).unwrap_err().to_string();
    assert!(err.contains("a value, not a section"), "{err}");
    // A key the experiment does not have is caught by the experiment's own parser.
    let exp = Experiment::embedded_default();
    let err = grid::apply(
        &exp,
        &["task.answers.labels.paris".into()],
        &[1.into()],
        "the sweep's grid",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("paris") && err.contains("sweep's grid"),
        "{err}"
    );
    let err = grid::apply(
        &exp,
        &["task.answers.labels.pairs".into()],
        &["many".into()],
        "the sweep's grid",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("pairs"), "{err}");
}

#[test]
fn a_section_the_experiment_leaves_out_is_added_with_its_defaults() {
    let exp = Experiment::embedded_default();
    assert!(exp.tasks[0].reward_model.model.is_none());
    let set = grid::apply(
        &exp,
        &[
            "task.answers.reward_model.init".into(),
            "task.answers.reward_model.model.d_model".into(),
        ],
        &["scratch".into(), 32.into()],
        "the sweep's [set]",
    )
    .unwrap();
    let shape = set.tasks[0].reward_model.model.as_ref().unwrap();
    assert_eq!(shape.d_model, 32);
    assert_eq!(shape.n_layer, ModelConfig::default().n_layer);
}

#[test]
fn sweep_files_are_checked_field_by_field() {
    let ok = config("name = \"s\"\nseeds = \"0..2\"\n[[grid]]\nkey = \"task.*.labels.pairs\"\nvalues = [100, 200]\n").unwrap();
    assert_eq!(ok.seed_list().unwrap(), vec![0, 1, 2]);
    assert_eq!(ok.threads, 1);
    for (text, want) in [
        ("name = \"s\"\nseeds = \"2..1\"\n", "empty"),
        ("name = \"s\"\n[[grid]]\nkey = \"seed\"\nvalues = [1]\n", "set by the sweep itself"),
        ("name = \"s\"\n[[grid]]\nkey = \"task.*.sft.steps\"\nvalues = []\n", "grid[0].values"),
        ("name = \"s\"\nthreads = 0\n", "threads"),
        ("name = \"s\"\nexperiments = []\n", "experiments"),
        ("name = \"s\"\ncolour = 1\n", "colour"),
        ("name = \"s\"\n[slurm]\npartion = \"x\"\n", "partion"),
        ("name = \"s\"\n[set]\nseed = 3\n", "set.seed"),
        (
            "name = \"s\"\n[set]\ntask.answers.sft.steps = 3\n[[grid]]\nkey = \"task.answers.sft.steps\"\nvalues = [1]\n",
            "also swept",
        ),
        (
            "name = \"s\"\n[[grid]]\nkey = \"a.b\"\nvalues = [1]\n[[grid]]\nkey = \"a.b\"\nvalues = [2]\n",
            "swept twice",
        ),
    ] {
        let err = config(text).unwrap_err().to_string();
        assert!(err.contains("sweep.toml") && err.contains(want), "{text:?}: {err}");
    }
}

#[test]
fn a_plan_crosses_experiments_and_axes_and_a_sweep_continues_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.toml"),
        Experiment::embedded_default()
            .to_toml()
            .replace("name = \"default\"", "name = \"mine\""),
    )
    .unwrap();
    let cfg = config(
        "name = \"s\"\nexperiments = [\"default\", \"mine.toml\"]\nseeds = [4, 9]\nthreads = 2\nquick = true\n\
         [set]\ntask.answers.sft.steps = 7\n\
         [[grid]]\nkey = \"task.answers.strategies.rl.ppo-kl.kl.coef\"\nvalues = [0.0, 0.1, 1]\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let plan = create(&out, &cfg, dir.path()).unwrap();
    assert_eq!(plan.points.len(), 6);
    assert_eq!(plan.runs(), 12);
    assert_eq!(plan.points[4].id, "p04-mine-coef-0.1");
    let run = plan.run(9).unwrap();
    assert_eq!((run.point.id.as_str(), run.seed), ("p04-mine-coef-0.1", 9));
    assert!(plan.run(12).unwrap_err().to_string().contains("0..=11"));
    let exp = run_experiment(&out, &run).unwrap();
    assert_eq!(exp.seed, 9);
    assert_eq!(exp.threads, 2);
    let kl = exp.tasks[0]
        .strategies
        .rl
        .iter()
        .find(|r| r.name == "ppo-kl")
        .unwrap();
    assert_eq!(kl.kl.coef, 0.1);
    assert_eq!(
        exp.tasks[0].model.n_layer, 1,
        "quick applies to every point"
    );
    assert_eq!(exp.tasks[0].sft.steps, 7, "[set] applies to every point");
    assert_eq!(run_state(&out, &run).unwrap(), RunState::NotStarted);
    // The same sweep again continues; another is refused; so is a directory that is not a sweep.
    assert_eq!(create(&out, &cfg, dir.path()).unwrap(), plan);
    let mut other = cfg.clone();
    other.grid[0].values.pop();
    let err = create(&out, &other, dir.path()).unwrap_err().to_string();
    assert!(err.contains("holds a different sweep"), "{err}");
    let err = create(dir.path(), &cfg, dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a sweep directory"), "{err}");
    assert!(clear(dir.path())
        .unwrap_err()
        .to_string()
        .contains("refusing"));
    clear(&out).unwrap();
    assert!(!out.exists());
}

#[test]
fn nothing_that_would_inject_a_line_into_the_job_script_is_accepted() {
    let ok = config(
        "name = \"s\"\n[slurm]\npartition = \"gpu,debug\"\naccount = \"lab_1\"\ntime = \"2-12:00:00\"\nmem = \"16G\"\nextra = [\"--qos=short\", \"--gres=gpu:1\"]\n",
    );
    assert!(ok.is_ok(), "{ok:?}");
    for time in ["30", "30:00", "1:00:00", "1-0", "1-2:30", "UNLIMITED"] {
        let text = format!("name = \"s\"\n[slurm]\ntime = \"{time}\"\n");
        assert!(config(&text).is_ok(), "{time}");
    }
    for (text, want) in [
        ("name = \"s\\nrm -rf /x\"\n", "name"),
        (
            "name = \"s\"\n[slurm]\nextra = [\"--qos=normal\\nrm -rf /x\"]\n",
            "slurm.extra[0]",
        ),
        (
            "name = \"s\"\n[slurm]\nextra = [\"rm -rf /x\"]\n",
            "slurm.extra[0]",
        ),
        (
            "name = \"s\"\n[slurm]\npartition = \"debug\\nrm -rf /x\"\n",
            "slurm.partition",
        ),
        (
            "name = \"s\"\n[slurm]\npartition = \"debug --wrap=x\"\n",
            "slurm.partition",
        ),
        (
            "name = \"s\"\n[slurm]\naccount = \"a\\u001b[2J\"\n",
            "slurm.account",
        ),
        (
            "name = \"s\"\n[slurm]\nmem = \"8G\\nrm -rf /x\"\n",
            "slurm.mem",
        ),
        ("name = \"s\"\n[slurm]\nmem = \"lots\"\n", "slurm.mem"),
        ("name = \"s\"\n[slurm]\ntime = \"forever\"\n", "slurm.time"),
        ("name = \"s\"\n[slurm]\ntime = \"1:2:3:4\"\n", "slurm.time"),
        (
            "name = \"s\"\n[slurm]\nbinary = \"/bin/x\\ny\"\n",
            "slurm.binary",
        ),
    ] {
        let err = config(text).unwrap_err().to_string();
        assert!(err.contains(want), "{text:?}: {err}");
    }
}

#[test]
fn grids_and_seeds_are_counted_before_they_are_expanded() {
    // 64 two-valued axes: 2^64 points, refused at once.
    let mut text = String::from("name = \"s\"\n");
    for i in 0..64 {
        text.push_str(&format!("[[grid]]\nkey = \"a{i}.b\"\nvalues = [1, 2]\n"));
    }
    let start = std::time::Instant::now();
    let err = config(&text).unwrap_err().to_string();
    assert!(err.contains("grid") && err.contains("at most"), "{err}");
    // 1,000,000 points.
    let mut text = String::from("name = \"s\"\n");
    for i in 0..6 {
        let values: Vec<String> = (0..10).map(|v| v.to_string()).collect();
        text.push_str(&format!(
            "[[grid]]\nkey = \"a{i}.b\"\nvalues = [{}]\n",
            values.join(", ")
        ));
    }
    assert!(config(&text).unwrap_err().to_string().contains("grid"));
    for seeds in [
        "0..18446744073709551615",
        "0..1099511627776",
        "0..1000000000",
    ] {
        let err = config(&format!("name = \"s\"\nseeds = \"{seeds}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("1000 seeds"), "{seeds}: {err}");
    }
    // 500 points x 100 seeds.
    let text = format!(
        "name = \"s\"\nseeds = \"0..99\"\n[[grid]]\nkey = \"a.b\"\nvalues = [{}]\n",
        (0..500)
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(config(&text).unwrap_err().to_string().contains("runs"));
    assert!(start.elapsed().as_secs() < 2, "{:?}", start.elapsed());
}
