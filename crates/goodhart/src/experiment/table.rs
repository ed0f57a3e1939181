//! The stage table: a task's stages in the order they are listed, each with
//! what it needs and makes. The one list the runner's graph, `--resume` and
//! the records read.

use super::config::TaskSetup;
use crate::optimize::dpo::DpoConfig;
use crate::optimize::rl::RlConfig;

/// One stage of a task's pipeline: the name its record is kept under, and its work.
pub struct Stage<'a> {
    pub name: String,
    pub(super) work: Work<'a>,
}

/// What a stage does. Its inputs are the products of earlier stages
/// ([`Stage::needs`]), which `Products` (the runner's) holds once made (or
/// reloads, on resume, when first asked for).
pub(super) enum Work<'a> {
    /// Train (or load and optionally fine-tune) the base policy. Makes: the base policy.
    Base,
    /// Train the learned critics, one per round. Needs: the base policy. Makes: the critics.
    Critic,
    /// Label pairs of base completions (or import the task's own). Needs: the base policy.
    Labels,
    /// Learn the proxy from the labels. Needs: the base policy, the labels. Makes: the reward model.
    RewardModel,
    /// Measure the base policy on every evaluation split. Needs: the base policy.
    BaseEval,
    /// Best-of-n, conditioning and the quantiliser on one pool of base samples.
    /// Needs: the base policy, the reward model.
    Pool,
    /// Rounds of red-team search, labels and retraining of the reward model.
    /// Needs: the base policy, the reward model (and the labels it learnt from).
    RedTeam,
    /// Rounds of recursive reward modelling: policy, critic, judge, labels, reward model.
    /// Needs: the base policy, the reward model (and the labels it learnt from).
    Rrm,
    /// A judge alone, with a critic, and in debates with and without a
    /// defender, on base answers. Needs: the base policy, the critics.
    Debate,
    /// One RL run. Needs: the base policy, the reward model, the label store (online).
    Rl(&'a RlConfig),
    /// One DPO run. Needs: the base policy, the labels, the reward model (to report the proxy).
    Dpo(&'a DpoConfig),
}

impl Stage<'_> {
    /// The stages whose products this one reads, by name (a name the task's
    /// table lacks, such as `critic` without critic rounds, is no input). The
    /// scheduler runs a stage once these are done; labelling and measuring
    /// need the critics their labelers are assisted by.
    pub fn needs(&self) -> &'static [&'static str] {
        match self.work {
            Work::Base => &[],
            Work::Critic => &["base"],
            Work::Labels | Work::BaseEval | Work::Debate => &["base", "critic"],
            Work::RewardModel => &["base", "critic", "labels"],
            Work::Pool | Work::RedTeam | Work::Rrm | Work::Rl(_) | Work::Dpo(_) => {
                &["base", "critic", "reward_model"]
            }
        }
    }

    /// The strategy this stage runs, for `--strategy`; `None` for the shared stages.
    pub(super) fn strategy(&self) -> Option<&str> {
        match &self.work {
            Work::Rl(c) => Some(&c.name),
            Work::Dpo(c) => Some(&c.name),
            _ => None,
        }
    }
}

/// The stages of a task, each listed after what it needs: the one list the
/// runner, `--resume` and the report read.
pub fn stages(setup: &TaskSetup) -> Vec<Stage<'_>> {
    let stage = |name: &str, work| Stage {
        name: name.to_string(),
        work,
    };
    let mut stages = vec![stage("base", Work::Base)];
    if setup.critic.rounds > 0 {
        stages.push(stage("critic", Work::Critic));
    }
    stages.extend([
        stage("labels", Work::Labels),
        stage("reward_model", Work::RewardModel),
        stage("base_eval", Work::BaseEval),
        stage("pool", Work::Pool),
    ]);
    if setup.red_team.rounds > 0 {
        stages.push(stage("red_team", Work::RedTeam));
    }
    if setup.rrm.rounds > 0 {
        stages.push(stage("rrm", Work::Rrm));
    }
    if !setup.debate.turns.is_empty() {
        stages.push(stage("debate", Work::Debate));
    }
    stages.extend(
        setup
            .strategies
            .rl
            .iter()
            .map(|c| stage(&format!("rl/{}", c.name), Work::Rl(c))),
    );
    stages.extend(
        setup
            .strategies
            .dpo
            .iter()
            .map(|c| stage(&format!("dpo/{}", c.name), Work::Dpo(c))),
    );
    stages
}

/// The names of [`stages`], in order.
pub fn stage_names(setup: &TaskSetup) -> Vec<String> {
    stages(setup).into_iter().map(|s| s.name).collect()
}
