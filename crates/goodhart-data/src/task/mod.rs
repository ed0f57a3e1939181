//! Tasks: where prompts come from, what a careful judge says of a completion
//! (gold), and what a quick labeler is able to see of it.
//!
//! A prompt's text carries everything a task needs to judge completions of it
//! (the question, the map), so prompts can travel through the label store and
//! the web app as plain strings.

pub mod answers;
pub mod gridworld;
pub mod jsonl;
pub mod spec;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::train::Example;
use spec::Formula;

pub use answers::{Answers, AnswersConfig, Reader};
pub use gridworld::{Gridworld, GridworldConfig};
pub use jsonl::{GoldJudge, Jsonl, JsonlConfig};

/// Which prompts: training, held-out (same distribution, unseen), or a shifted
/// distribution (harder questions, other maps) to see what a policy pursues off
/// its training data; and prompts of the shifted distribution to train on, drawn
/// apart from the shifted split (a control that did see that distribution).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    #[default]
    Train,
    Heldout,
    Shift,
    ShiftTrain,
}

impl Split {
    pub const ALL: [Split; 4] = [
        Split::Train,
        Split::Heldout,
        Split::Shift,
        Split::ShiftTrain,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Heldout => "heldout",
            Split::Shift => "shift",
            Split::ShiftTrain => "shift_train",
        }
    }
}

/// How much a labeler can check, and the help it gets.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LabelerView {
    /// Task-specific reach: for `answers`, the largest difficulty whose final answer
    /// the labeler checks; `gridworld` labelers see only the camera whatever this is.
    pub competence: f64,
    /// An assistant's pointer to one step of the completion, which the labeler then checks.
    pub pointer: Option<usize>,
    /// What the labeler takes the pointed step to be when not by its own
    /// true check: `Some(true)` wrong (a debate's defender conceded it, or a
    /// noisy check misread a right step), `Some(false)` right (a noisy check
    /// missed its flaw); `None`: as it is.
    pub taken_wrong: Option<bool>,
}

/// What a labeler perceives of one completion.
#[derive(Clone, Debug, PartialEq)]
pub struct Perception {
    /// The value the labeler can establish, on the gold scale; `None` when it cannot check.
    pub verified: Option<f64>,
    /// Observable features, aligned with [`Task::look_names`]; a labeler's biases weigh these.
    pub looks: Vec<f64>,
}

pub trait Task: Send + Sync {
    fn name(&self) -> &'static str;

    /// The prompts of a split, deterministic from the task's seed.
    fn prompts(&self, split: Split) -> Vec<String>;

    /// Demonstrations for SFT of a base policy (train: to learn from; held-out: to measure).
    fn demonstrations(&self, split: Split) -> Vec<Example>;

    /// What a careful, fully informed judge says of `completion`.
    fn gold(&self, prompt: &str, completion: &str) -> Result<f64>;

    /// What a labeler with `view` perceives of `completion`.
    fn perceive(&self, prompt: &str, completion: &str, view: &LabelerView) -> Result<Perception>;

    /// Names of the observable features in [`Perception::looks`].
    fn look_names(&self) -> &'static [&'static str];

    /// Named features for measurement, aligned with [`Task::feature_names`].
    fn features(&self, prompt: &str, completion: &str) -> Result<Vec<f64>>;

    fn feature_names(&self) -> &'static [&'static str];

    /// A coarse difficulty bucket of a prompt, for per-bucket reports.
    fn difficulty(&self, prompt: &str) -> Result<u32>;

    /// Checkable steps of a completion (what an assistant can point at); 0 if none.
    fn n_steps(&self, prompt: &str, completion: &str) -> usize;

    /// Index of the first step that is wrong, if any: what a perfect critic points at.
    fn first_wrong_step(&self, prompt: &str, completion: &str) -> Option<usize> {
        (0..self.n_steps(prompt, completion)).find(|&i| self.step_is_wrong(prompt, completion, i))
    }

    /// What a judge finds when it checks step `i` alone (cheap, unlike checking
    /// the whole answer): is it wrong?
    fn step_is_wrong(&self, _prompt: &str, _completion: &str, _i: usize) -> bool {
        false
    }

    /// Where each step is in the completion (byte ranges, one per step, in
    /// order): what a person is shown when an assistant points at it.
    fn step_spans(&self, _prompt: &str, _completion: &str) -> Vec<std::ops::Range<usize>> {
        vec![]
    }

    /// Where each step ends in the completion (byte offsets, one per step):
    /// where a learned critic reads its verdict on the step.
    fn step_ends(&self, prompt: &str, completion: &str) -> Vec<usize> {
        self.step_spans(prompt, completion)
            .into_iter()
            .map(|s| s.end)
            .collect()
    }

    /// Satisfaction of the task's formal goal (1 or 0), where it has one.
    fn spec_satisfied(&self, _prompt: &str, _completion: &str) -> Option<f64> {
        None
    }

    /// Predicates a formal goal over this task may use (empty: it has none).
    fn goal_predicates(&self) -> &'static [&'static str] {
        &[]
    }

    /// Satisfaction (1 or 0) of `goal`, a formula over [`Task::goal_predicates`]
    /// (a candidate goal under review rather than the task's own), where the task has formal goals.
    fn goal_satisfied(&self, _goal: &Formula, _prompt: &str, _completion: &str) -> Option<f64> {
        None
    }

    /// The formal goal's robustness margin, in [-1, 1]: positive when it is
    /// satisfied, and for a violation, how near it came (a dense reward).
    fn spec_margin(&self, _prompt: &str, _completion: &str) -> Option<f64> {
        None
    }

    /// The margin as it is earned: `(chars, margin)` before the first move
    /// (`chars` 0) and after each move, `chars` counting the completion's
    /// characters up to and including the move, `margin` the robustness of the
    /// trajectory so far, in [-1, 1]; the last is [`Task::spec_margin`]'s.
    /// None where the task has no formal goal or the completion has no moves.
    fn spec_margin_by_move(&self, _prompt: &str, _completion: &str) -> Option<Vec<(usize, f64)>> {
        None
    }

    /// The environment a policy for this task acts in, where it writes into
    /// completions as they are sampled (see `model::Environment`); the task's
    /// demonstrations then carry what it writes.
    fn environment(
        &self,
        _tokenizer: std::sync::Arc<dyn crate::tokenize::Tokenizer>,
    ) -> Result<Option<std::sync::Arc<dyn crate::model::Environment>>> {
        Ok(None)
    }

    /// Render a completion for people (SVG), where the task has a picture.
    fn render_svg(&self, _prompt: &str, _completion: &str) -> Option<String> {
        None
    }

    /// What a labeler sees of a completion (SVG), where it is not the text itself;
    /// step-by-step frames are `<g class="frame">` groups a page can step through.
    fn render_for_labeler(&self, _prompt: &str, _completion: &str) -> Option<String> {
        None
    }
}

/// The bundled tasks, selected in an experiment's `[task]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TaskConfig {
    Answers(AnswersConfig),
    Gridworld(GridworldConfig),
    Jsonl(JsonlConfig),
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig::Answers(AnswersConfig::default())
    }
}

impl TaskConfig {
    pub fn name(&self) -> &'static str {
        match self {
            TaskConfig::Answers(_) => "answers",
            TaskConfig::Gridworld(_) => "gridworld",
            TaskConfig::Jsonl(_) => "jsonl",
        }
    }

    /// The names of the task's features (`Task::feature_names`), without building it.
    pub fn feature_names(&self) -> &'static [&'static str] {
        match self {
            TaskConfig::Answers(_) => answers::FEATURE_NAMES,
            TaskConfig::Gridworld(_) => gridworld::FEATURE_NAMES,
            TaskConfig::Jsonl(_) => jsonl::FEATURES,
        }
    }

    /// Build the task; `seed` is the experiment's seed. A `jsonl` task whose gold
    /// is a reward model needs that model loaded, which only the scoring layer
    /// can do: build it with `goodhart::reward::build_task`.
    pub fn build(&self, seed: u64) -> Result<Box<dyn Task>> {
        self.build_with(seed, None)
    }

    /// Build the task with `gold_judge` as the `jsonl` task's `gold_model`.
    pub fn build_with(
        &self,
        seed: u64,
        gold_judge: Option<Box<dyn GoldJudge>>,
    ) -> Result<Box<dyn Task>> {
        Ok(match self {
            TaskConfig::Answers(c) => Box::new(Answers::new(c.clone(), seed)?),
            TaskConfig::Gridworld(c) => Box::new(Gridworld::new(c.clone(), seed)?),
            TaskConfig::Jsonl(c) => {
                let task = Jsonl::new(c.clone(), seed)?;
                match (gold_judge, &c.gold_model) {
                    (Some(judge), Some(_)) => Box::new(task.with_gold_judge(judge)),
                    (None, None) => Box::new(task),
                    (None, Some(_)) => {
                        return Err(Error::invalid(
                            "jsonl.gold_model",
                            "the gold reward model is not loaded (build the task with goodhart::reward::build_task)",
                        ))
                    }
                    (Some(_), None) => {
                        return Err(Error::invalid(
                            "jsonl.gold_model",
                            "a gold judge was given to a task that has no gold_model",
                        ))
                    }
                }
            }
        })
    }
}

/// What a task's labelers see of a completion beyond its text, written as
/// text a reward model reads after the completion (see [`observer`]).
pub type Observer = fn(prompt: &str, completion: &str) -> String;

/// The observer of a task whose labelers judge something other than the
/// completion's text: `gridworld`'s labelers watch a camera, so a reward model
/// that reads only the moves would have to simulate the world to learn their
/// judgements; with the camera's frames after the moves it reads what they saw.
pub fn observer(task: &str) -> Option<Observer> {
    match task {
        "gridworld" => Some(gridworld::camera_text),
        _ => None,
    }
}

/// The bundled tasks that are generated from a seed: a prompt's text carries
/// all a judge needs, so gold is a function of the prompt and the completion.
pub const GENERATED: [&str; 2] = ["answers", "gridworld"];

/// Every [`GENERATED`] task with its default settings, by name: gold for the
/// completions of any of them, whatever seed generated the prompts.
pub fn generated() -> Result<Vec<(&'static str, Box<dyn Task>)>> {
    GENERATED
        .into_iter()
        .map(|name| Ok((name, by_name(name)?.build(0)?)))
        .collect()
}

/// A bundled task by name with its default settings.
pub fn by_name(name: &str) -> Result<TaskConfig> {
    match name {
        "answers" => Ok(TaskConfig::Answers(AnswersConfig::default())),
        "gridworld" => Ok(TaskConfig::Gridworld(GridworldConfig::default())),
        // Its files come from an experiment; by name it only labels imported data.
        "jsonl" => Ok(TaskConfig::Jsonl(JsonlConfig::default())),
        other => Err(Error::invalid(
            "task",
            format!("unknown task {other:?} (expected \"answers\", \"gridworld\" or \"jsonl\")"),
        )),
    }
}
