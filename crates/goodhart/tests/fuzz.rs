//! Every parser a user's file or argument reaches, fed the committed corpus of nasty inputs
//! (`tests/corpus/<parser>/`) and a few thousand deterministic mutations of
//! valid ones: each must answer with a value or an error, never a panic, a
//! stack overflow (which would abort this test binary) or a hang.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use goodhart::experiment::sweep::SweepConfig;
use goodhart::experiment::Experiment;
use goodhart::formats::{parse_jsonl, PreferenceLine};
use goodhart::task::spec::{Formula, WorldState};

/// Mutations per parser.
const MUTATIONS: usize = 4000;
/// The most one input may take.
const SLOW: Duration = Duration::from_secs(2);

const SPEC_PREDICATES: &[&str] = &["at_goal", "vase_broken", "button_pressed"];

fn parse_experiment(bytes: &[u8]) {
    let _ = Experiment::parse(&String::from_utf8_lossy(bytes), "fuzz.toml");
}

fn parse_spec(bytes: &[u8]) {
    if let Ok(f) = Formula::parse(&String::from_utf8_lossy(bytes), SPEC_PREDICATES) {
        let trace: Vec<WorldState> = (0..50)
            .map(|i| WorldState {
                facts: vec![
                    ("at_goal", i % 7 == 0),
                    ("vase_broken", i % 5 == 0),
                    ("button_pressed", false),
                ],
                shortfalls: vec![("at_goal", f64::from(i % 3) / 2.0)],
                steps: i,
            })
            .collect();
        let _ = f.evaluate(&trace);
        let _ = f.to_string();
    }
}

fn parse_preferences(bytes: &[u8]) {
    let _ = parse_jsonl::<PreferenceLine>(bytes, Path::new("fuzz.jsonl"));
}

fn parse_seeds(bytes: &[u8]) {
    let _ = goodhart::experiment::seeds::parse_seeds(&String::from_utf8_lossy(bytes));
}

fn parse_sweep(bytes: &[u8]) {
    let _ = SweepConfig::parse(&String::from_utf8_lossy(bytes), "fuzz.toml");
}

fn parse_hf_config(bytes: &[u8]) {
    let _ = goodhart::hf::parse_config(&String::from_utf8_lossy(bytes), Path::new("config.json"));
}

/// A parser, its corpus folder and valid inputs to mutate.
struct Target {
    name: &'static str,
    parse: fn(&[u8]),
    seeds: Vec<Vec<u8>>,
}

fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "experiment",
            parse: parse_experiment,
            seeds: vec![
                goodhart::experiment::config::DEFAULT_EXPERIMENT.as_bytes().to_vec(),
                Experiment::default().to_toml().into_bytes(),
            ],
        },
        Target {
            name: "spec",
            parse: parse_spec,
            seeds: vec![
                b"F at_goal & G !vase_broken & G !button_pressed".to_vec(),
                b"(at_goal -> X steps <= 10) U (vase_broken | !F button_pressed)".to_vec(),
            ],
        },
        Target {
            name: "preferences",
            parse: parse_preferences,
            seeds: vec![
                b"{\"prompt\": \"2+2=\", \"chosen\": \"4\", \"rejected\": \"5\", \"tie\": false, \"labeler\": \"a\", \"chosen_gold\": 1.0}\n{\"prompt\": \"q\", \"chosen\": \"x\", \"rejected\": \"y\"}\n".to_vec(),
            ],
        },
        Target {
            name: "seeds",
            parse: parse_seeds,
            seeds: vec![b"0..4".to_vec(), b"0,3,7".to_vec(), b"3..=999".to_vec()],
        },
        Target {
            name: "sweep",
            parse: parse_sweep,
            seeds: vec![
                b"name = \"kl\"\nseeds = \"0..2\"\nquick = true\n[set]\ntask.answers.sft.steps = 3\n[[grid]]\nkey = \"task.*.labels.pairs\"\nvalues = [100, 200]\n[[grid]]\nkey = \"task.answers.strategies.rl.ppo-kl.kl.coef\"\nvalues = [0.01, 0.1, 1.0]\n[slurm]\npartition = \"debug\"\ntime = \"1:00:00\"\nmem = \"8G\"\nextra = [\"--qos=short\"]\n".to_vec(),
            ],
        },
        Target {
            name: "hf_config",
            parse: parse_hf_config,
            seeds: vec![
                br#"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}, "tie_word_embeddings": false, "eos_token_id": 2}"#.to_vec(),
                br#"{"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 300, "n_positions": 64, "layer_norm_epsilon": 1e-5}"#.to_vec(),
            ],
        },
    ]
}

/// xorshift64*: a fixed, dependency-free stream, so every run tries the same inputs.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to these grammars.
const INTERESTING: &[u8] = b"[]{}()\"'=,.:;!&|-+FGXU<>\n\t 0129eE\\\xff\xc3";

fn mutate(input: &[u8], other: &[u8], s: &mut Stream) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + s.below(4) {
        let at = s.below(v.len() + 1);
        match s.below(7) {
            0 if !v.is_empty() => {
                let i = s.below(v.len());
                v[i] ^= 1 << s.below(8);
            }
            1 => v.insert(at, INTERESTING[s.below(INTERESTING.len())]),
            2 if !v.is_empty() => {
                let end = (at + s.below(16)).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 if !v.is_empty() => {
                // Repeat a slice many times: nesting, long chains, huge numbers.
                let start = s.below(v.len());
                let end = (start + 1 + s.below(8)).min(v.len());
                let piece = v[start..end].to_vec();
                let times = [2, 50, 3000][s.below(3)];
                for _ in 0..times {
                    v.splice(start..start, piece.iter().copied());
                }
            }
            4 => v.truncate(at),
            5 if !other.is_empty() => {
                let from = s.below(other.len());
                let end = (from + s.below(64)).min(other.len());
                v.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                let digits = ["99999999999999999999999", "-1", "0", "1e308", "nan", "inf"];
                v.splice(at..at, digits[s.below(digits.len())].bytes());
            }
        }
    }
    v
}

/// Run `parse` on `input`: a panic or an input that takes too long is a failure.
fn check(target: &Target, label: &str, input: &[u8], failures: &mut Vec<String>) {
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| (target.parse)(input)));
    let took = start.elapsed();
    let shown = String::from_utf8_lossy(&input[..input.len().min(120)]).into_owned();
    if result.is_err() {
        failures.push(format!("{} {label}: panicked on {shown:?}", target.name));
    } else if took > SLOW {
        failures.push(format!("{} {label}: {took:?} on {shown:?}", target.name));
    }
}

#[test]
fn the_committed_corpus_is_answered_without_a_panic_or_a_hang() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut failures = vec![];
    let mut seen = 0;
    for target in targets() {
        let dir = corpus.join(target.name);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            check(&target, &path.display().to_string(), &bytes, &mut failures);
            seen += 1;
        }
    }
    assert!(seen >= 15, "only {seen} corpus files");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mutated_inputs_are_answered_without_a_panic_or_a_hang() {
    // Quiet the default hook: a failure is reported below, with its input.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = vec![];
    for (t, target) in targets().iter().enumerate() {
        let mut s = Stream(0x9e37_79b9_7f4a_7c15 ^ t as u64);
        for i in 0..MUTATIONS {
            let seed = &target.seeds[i % target.seeds.len()];
            let other = &target.seeds[(i + 1) % target.seeds.len()];
            let input = mutate(seed, other, &mut s);
            check(target, &format!("mutation {i}"), &input, &mut failures);
        }
    }
    let _ = std::panic::take_hook();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
