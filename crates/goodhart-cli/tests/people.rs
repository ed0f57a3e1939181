//! People in the loop: an online run that pauses until a person has labelled
//! its current policy's pairs (the person here is this test, writing through
//! the same store calls the web app makes), then `goodhart label stats`; and
//! reviews of candidate goals queued from the run's base policy, chosen, tallied.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use goodhart::feedback::{Answer, Filter, HumanLabel, LabelStore};

mod common;

/// The default experiment with gridworld's online PPO asking people for 4 labels
/// per refresh, shown with the assistant of a second labeler, "camera-critic".
fn human_experiment(dir: &Path) -> std::path::PathBuf {
    let default = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/default.toml"),
    )
    .unwrap();
    let from = "online = { every = 5, pairs = 150, rm_steps = 60 }";
    assert_eq!(default.matches(from).count(), 1, "gridworld's online run");
    let camera = "name = \"camera\"\n";
    assert_eq!(default.matches(camera).count(), 1, "gridworld's labeler");
    let text = default
        .replace(
            from,
            "online = { every = 5, pairs = 150, rm_steps = 60, human_labels = 4, assistant = \"camera-critic\" }",
        )
        .replace(
            camera,
            &format!("{camera}\n[[task.labelers]]\nname = \"camera-critic\"\nassistant = {{ accuracy = 1.0 }}\n"),
        );
    let path = dir.join("human.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_online_run_waits_for_people_and_learns_from_their_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = human_experiment(tmp.path());
    let out = tmp.path().join("run");
    let log = tmp.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_goodhart"))
        .args(["--quiet", "--threads", "2", "optimize", "ppo-online"])
        .arg(&exp)
        .args(["--quick", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let store_path = out.join("gridworld/labels.sqlite");
    let started = Instant::now();
    let mut store: Option<LabelStore> = None;
    let mut given = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(300) {
            child.kill().unwrap();
            panic!(
                "the run did not finish; its log:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        // Once the base labels are in, a person signs up and labels whatever is queued.
        if store.is_none() && out.join("gridworld/stages/labels.json").exists() {
            let mut s = LabelStore::open_existing(&store_path).unwrap();
            s.add_user("alice").unwrap();
            store = Some(s);
        }
        if let Some(s) = store.as_mut() {
            while let Some(pair) = s.next_pair("alice").unwrap() {
                let answer = if given % 3 == 0 { Answer::B } else { Answer::A };
                s.submit(
                    "alice",
                    &HumanLabel {
                        pair: pair.id,
                        answer,
                        reason: None,
                        seconds: Some(3.0),
                    },
                )
                .unwrap()
                .unwrap();
                given += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("paused for human labels"), "{stderr}");

    let s = LabelStore::open_existing(&store_path).unwrap();
    let mine = s
        .comparisons(&Filter {
            labelers: vec!["alice".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(mine.len(), given);
    let mut batches: Vec<&str> = mine.iter().filter_map(|c| c.batch.as_deref()).collect();
    batches.dedup();
    assert!(!batches.is_empty());
    for b in &batches {
        assert!(b.starts_with("online/ppo-online/"), "{b}");
        assert!(s.human_labels_in_batch(b).unwrap() >= 4, "{b}");
    }
    // Each label records the assistant it was shown with.
    for c in &mine {
        let (_, assistant) = s.shown_with(c.id).unwrap().unwrap();
        assert_eq!(assistant.as_deref(), Some("camera-critic"));
    }
    assert!(
        out.join("gridworld/stages/rl.ppo-online.json").exists(),
        "the run finished its online stage"
    );

    let stats = common::ok(
        2,
        &["label", "stats", "--store", store_path.to_str().unwrap()],
    );
    let alice = stats
        .lines()
        .find(|l| l.starts_with("alice"))
        .expect(&stats);
    assert!(
        alice.contains("person")
            && alice.contains("camera-critic")
            && alice.contains(&given.to_string()),
        "{alice}"
    );

    // Reviews of candidate goals from the base policy, one chosen, then tallied.
    let review_exp = tmp.path().join("review.toml");
    // The review table goes into gridworld's [[task]], the one before answers-careful.
    let text = std::fs::read_to_string(&exp).unwrap();
    let next = text
        .find("[[task]]\nkind = \"answers\"\nname = \"answers-careful\"")
        .expect("the default experiment's task after gridworld");
    let review = "[task.strategies.review]\ncandidates = [\"F at_goal\", \"G !vase_broken\", \"G !button_pressed\"]\nk = [1, 2]\n\n";
    std::fs::write(
        &review_exp,
        format!("{}{review}{}", &text[..next], &text[next..]),
    )
    .unwrap();
    let base = out.join("gridworld/base");
    let (base, store_arg) = (base.to_str().unwrap(), store_path.to_str().unwrap());
    let queued = common::ok(
        2,
        &[
            "label",
            "queue-review",
            "--checkpoint",
            base,
            "--store",
            store_arg,
            review_exp.to_str().unwrap(),
            "--items",
            "2",
            "--k",
            "2",
            "--prompts",
            "4",
            "--per-prompt",
            "4",
        ],
    );
    assert!(
        queued.contains("2 reviews of 2 candidate goals"),
        "{queued}"
    );
    let mut s = LabelStore::open_existing(&store_path).unwrap();
    let review = s.next_review("alice").unwrap().unwrap();
    assert_eq!(review.candidates.len(), 2);
    assert_eq!(review.candidates[0].goal, "F at_goal");
    assert!(review.candidates.iter().all(|c| c.rollouts.len() == 3));
    let answer = goodhart::feedback::ReviewAnswer {
        item: review.id,
        chosen: 1,
        reason: None,
        seconds: Some(9.0),
    };
    s.submit_review("alice", &answer).unwrap().unwrap();
    let stats = common::ok(2, &["label", "stats", "--store", store_arg]);
    let chosen = &review.candidates[1].goal;
    let row = stats
        .lines()
        .find(|l| l.starts_with(chosen.as_str()))
        .expect(&stats);
    let counts: Vec<&str> = row[chosen.len()..].split_whitespace().collect();
    assert_eq!(counts, ["1", "1", "0"], "{row}");
}
