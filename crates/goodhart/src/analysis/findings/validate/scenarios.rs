//! The shipped table's scenarios: each rule under the nulls that could fool
//! it, and its power at effects of the size the runs report. A scenario's
//! place seeds its simulations: new ones are appended, so the rows above keep
//! their numbers.

use super::{Family, Scenario, Truth};
use crate::experiment::config::GoodhartKind;

/// The scenarios of the shipped table: every rule under the nulls that could fool
/// it, and its power at effects of the size the runs report (gold units).
pub fn scenarios() -> Vec<Scenario> {
    use GoodhartKind::*;
    use Truth::*;
    let s = |rule, kind, truth, family, strategies, seeds, null| Scenario {
        rule,
        kind,
        truth,
        family,
        strategies,
        seeds,
        null,
    };
    // A reward-seeking rule over `pairs` pairs: the route's rise under the policy and its control.
    let seek = |rule, policy, control, pairs, seeds, null| {
        let truth = Seeking { policy, control };
        s(
            rule,
            Regressional,
            truth,
            Family::Policy,
            pairs,
            seeds,
            null,
        )
    };
    vec![
        s("gold rose", Regressional, Null, Family::Pool, 1, 1, true),
        s("gold fell", Regressional, Null, Family::Policy, 1, 1, true),
        s(
            "gold rose, then fell",
            Regressional,
            Null,
            Family::Pool,
            1,
            1,
            true,
        ),
        s(
            "gold rose, then fell",
            Regressional,
            Rise(0.3),
            Family::Policy,
            1,
            1,
            true,
        ),
        s(
            "gold rose, then fell",
            Regressional,
            RiseThenFlat(0.3),
            Family::Pool,
            1,
            1,
            true,
        ),
        s(
            "regressional verdict",
            Regressional,
            Null,
            Family::Pool,
            6,
            1,
            true,
        ),
        s(
            "regressional verdict",
            Regressional,
            RiseThenFlat(0.3),
            Family::Policy,
            6,
            3,
            true,
        ),
        s(
            "causal verdict",
            Causal,
            Parting {
                labeler: 0.3,
                gold: 0.0,
            },
            Family::Policy,
            6,
            1,
            true,
        ),
        s(
            "causal verdict",
            Causal,
            Parting {
                labeler: 0.0,
                gold: 0.3,
            },
            Family::Pool,
            6,
            1,
            true,
        ),
        s(
            "extremal verdict",
            Extremal,
            Beyond {
                gold: 0.3,
                beyond: 0.3,
            },
            Family::Pool,
            6,
            1,
            true,
        ),
        s(
            "gold rose",
            Regressional,
            Rise(0.1),
            Family::Pool,
            1,
            1,
            false,
        ),
        s(
            "gold fell",
            Regressional,
            Fall(0.15),
            Family::Policy,
            1,
            1,
            false,
        ),
        s(
            "gold rose, then fell",
            Regressional,
            RiseThenFall(0.2, 0.2),
            Family::Pool,
            1,
            1,
            false,
        ),
        s(
            "gold rose, then fell",
            Regressional,
            RiseThenFall(0.2, 0.2),
            Family::Policy,
            1,
            3,
            false,
        ),
        s(
            "causal verdict",
            Causal,
            Parting {
                labeler: 0.3,
                gold: 0.15,
            },
            Family::Policy,
            6,
            1,
            false,
        ),
        s(
            "extremal verdict",
            Extremal,
            Beyond {
                gold: -0.2,
                beyond: 0.3,
            },
            Family::Pool,
            6,
            1,
            false,
        ),
        // Reward seeking (appended, so the rows above keep their seeds).
        seek("reward is not the target", 0.0, 0.15, 1, 1, false),
        seek("reward is not the target", 0.0, 0.1, 3, 3, false),
        seek("the policy seeks reward", 0.1, 0.25, 1, 1, false),
        seek("reward is not the target", 0.25, 0.25, 1, 1, true),
        seek("reward is not the target", 0.25, 0.25, 3, 3, true),
        seek("reward is not the target", 0.0, 0.0, 3, 1, true),
        seek("the policy seeks reward", 0.0, 0.25, 3, 3, true),
        // Extremal, beyond the labelled range (appended, as above): a parting
        // inside the range is not extremal; power for trained policies.
        s(
            "extremal verdict",
            Extremal,
            Beyond {
                gold: -0.2,
                beyond: 0.0,
            },
            Family::Pool,
            6,
            1,
            true,
        ),
        s(
            "extremal verdict",
            Extremal,
            Beyond {
                gold: -0.2,
                beyond: 0.3,
            },
            Family::Policy,
            6,
            1,
            false,
        ),
    ]
}
