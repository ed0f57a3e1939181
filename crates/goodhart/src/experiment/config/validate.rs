//! What a task's settings must satisfy together, checked when an experiment
//! is read: each section's own rules, the sizes that must fit in memory, and
//! the references between sections (labelers, critics, assistants).

use super::{TaskKind, TaskSetup};
use crate::error::{Error, Result};
use crate::task::{AnswersConfig, GridworldConfig, JsonlConfig};

impl TaskSetup {
    pub(super) fn validate(&self, at: &str) -> Result<()> {
        let given = [
            ("answers", self.answers != AnswersConfig::default()),
            ("gridworld", self.gridworld != GridworldConfig::default()),
            ("jsonl", self.jsonl != JsonlConfig::default()),
        ];
        let stray = given
            .iter()
            .find(|(name, set)| *set && *name != self.kind_name())
            .map(|(name, _)| *name);
        if let Some(other) = stray {
            return Err(Error::invalid(
                format!("{at}.{other}"),
                format!(
                    "settings for `{other}` are given but this task's kind is `{}`",
                    self.kind_name()
                ),
            ));
        }
        if let Some(name) = &self.name {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !ok {
                return Err(Error::invalid(
                    format!("{at}.name"),
                    format!("{name:?}: a task's name is its folder: 1 to 64 of a-z, 0-9, - and _"),
                ));
            }
        }
        let prefixed = |e: Error| e.within(at);
        match self.kind {
            TaskKind::Answers => self.answers.validate(),
            TaskKind::Gridworld => self.gridworld.validate(),
            TaskKind::Jsonl => self.jsonl.validate(),
        }
        .map_err(prefixed)?;
        if let Some(i) = self
            .strategies
            .rl
            .iter()
            .position(|r| r.uncertainty_penalty > 0.0)
            .filter(|_| self.reward_model.ensemble < 2)
        {
            return Err(Error::invalid(
                format!("{at}.strategies.rl[{i}].uncertainty_penalty"),
                "penalises the spread of the reward model's ensemble: set reward_model.ensemble to 2 or more",
            ));
        }
        if self.kind == TaskKind::Jsonl && self.strategies.rl.iter().any(|r| r.online.is_some()) {
            return Err(Error::invalid(
                format!("{at}.strategies.rl"),
                "online reward modelling needs a labeler to ask; the jsonl task's labels are its file",
            ));
        }
        self.model.validate_shape().map_err(prefixed)?;
        self.sft.validate().map_err(prefixed)?;
        // Batches are bounded by the memory they need, before anything is allocated.
        let mut batches = vec![
            ("sft.batch_size".to_string(), self.sft.batch_size),
            ("sampling.batch_size".to_string(), self.sampling.batch_size),
            (
                "reward_model.batch_size".to_string(),
                self.reward_model.batch_size,
            ),
            ("critic.batch_size".to_string(), self.critic.batch_size),
        ];
        for (i, d) in self.strategies.dpo.iter().enumerate() {
            batches.push((format!("strategies.dpo[{i}].batch_size"), d.batch_size));
        }
        for (i, r) in self.strategies.rl.iter().enumerate() {
            if let Some(ppo) = &r.ppo {
                batches.push((
                    format!("strategies.rl[{i}].ppo.minibatch_size"),
                    ppo.minibatch_size,
                ));
            }
        }
        for (key, batch) in batches {
            self.model.check_batch(&format!("{at}.{key}"), batch)?;
        }
        if let Some(k) = self.train_last_blocks {
            let blocks = self.model.n_layer;
            if k == 0 || (self.base_checkpoint.is_none() && k > blocks) {
                return Err(Error::invalid(
                    format!("{at}.train_last_blocks"),
                    format!("{k}: the model has {blocks} blocks; train 1 to {blocks} of them (unset: all)"),
                ));
            }
        }
        self.sampling.validate().map_err(prefixed)?;
        self.labels.validate().map_err(prefixed)?;
        self.reward_model.validate().map_err(prefixed)?;
        self.critic.validate().map_err(prefixed)?;
        self.red_team.validate().map_err(prefixed)?;
        self.rrm.validate().map_err(prefixed)?;
        self.debate.validate(self.critic.rounds).map_err(prefixed)?;
        if self.rrm.rounds > 0 && self.kind != TaskKind::Answers {
            return Err(Error::invalid(
                format!("{at}.rrm.rounds"),
                format!(
                    "each round trains a critic that points at steps, and only the answers task's completions have them (this task is {})",
                    self.kind_name()
                ),
            ));
        }
        if self.red_team.rounds > 0 && self.red_team.ppo && self.strategies.rl.is_empty() {
            return Err(Error::invalid(
                format!("{at}.red_team.ppo"),
                "trains the task's first RL strategy against each arm's last reward model: list one in [[task.strategies.rl]]",
            ));
        }
        if self.red_team.rounds > 0 && self.strategies.bon.n.is_empty() {
            return Err(Error::invalid(
                format!("{at}.red_team.rounds"),
                "each round's reward model is measured by best-of-n: set strategies.bon.n",
            ));
        }
        if self.critic.rounds > 0 && self.kind != TaskKind::Answers {
            return Err(Error::invalid(
                format!("{at}.critic.rounds"),
                format!(
                    "a critic points at steps, and only the answers task's completions have them (this task is {})",
                    self.kind_name()
                ),
            ));
        }
        for (i, l) in self.labelers.iter().enumerate() {
            let round = l.assistant.as_ref().and_then(|a| a.learned_round);
            if l.assistant.as_ref().and_then(|a| a.defender)
                == Some(crate::feedback::Defender::Honest)
            {
                return Err(Error::invalid(
                    format!("{at}.labelers[{i}].assistant.defender"),
                    "an honest defender is a learned model that only the debate stage trains ([task.debate], which judges with it); a labeler here can debate with `defender = \"dishonest\"` or none",
                ));
            }
            if let Some(r) = round.filter(|&r| r > self.critic.rounds) {
                return Err(Error::invalid(
                    format!("{at}.labelers[{i}].assistant.learned_round"),
                    format!(
                        "the labeler {:?} needs the learned critic of round {r}, but the task trains {} (set critic.rounds)",
                        l.name, self.critic.rounds
                    ),
                ));
            }
        }
        self.evaluation.validate(&format!("{at}.evaluation"))?;
        self.strategies.validate(
            &format!("{at}.strategies"),
            self.kind == TaskKind::Gridworld,
        )?;
        if let Some(seeking) = &self.seeking {
            seeking.validate(self, at)?;
        }
        for (i, r) in self.strategies.rl.iter().enumerate() {
            let Some(name) = r.online.as_ref().and_then(|o| o.assistant.as_ref()) else {
                continue;
            };
            if !self
                .labelers
                .iter()
                .any(|l| &l.name == name && l.assistant.is_some())
            {
                return Err(Error::invalid(
                    format!("{at}.strategies.rl[{i}].online.assistant"),
                    format!("no labeler named {name:?} with an assistant in this task's [[task.labelers]]"),
                ));
            }
        }
        for name in &self.reward_model.labelers {
            if !self.labelers.iter().any(|l| &l.name == name) {
                return Err(Error::invalid(
                    format!("{at}.reward_model.labelers"),
                    format!("no labeler named {name:?} in this task's [[task.labelers]]"),
                ));
            }
        }
        if self.labelers.is_empty() {
            return Err(Error::invalid(
                format!("{at}.labelers"),
                "at least one labeler is needed",
            ));
        }
        let looks = match self.kind {
            TaskKind::Answers => crate::task::answers::LOOK_NAMES,
            TaskKind::Gridworld => crate::task::gridworld::LOOK_NAMES,
            TaskKind::Jsonl => &[],
        };
        let mut labeler_names = std::collections::HashSet::new();
        for (i, l) in self.labelers.iter().enumerate() {
            l.validate(self.kind_name(), looks, &format!("{at}.labelers[{i}]"))?;
            if !labeler_names.insert(l.name.as_str()) {
                return Err(Error::invalid(
                    format!("{at}.labelers[{i}].name"),
                    format!("labeler {:?} is listed twice", l.name),
                ));
            }
        }
        Ok(())
    }
}
