//! The normalised transaction state machine, and ([`plan`]) the decision function built
//! on it.
//!
//! Every state change, whether from a callback, a poll, a registration or an operator,
//! is decided by [`plan::plan`] (which consults [`decide`] for the status table) and only
//! executed by `store::transactions`, so the invariants hold in one place: terminal
//! states never regress, contradictions are recorded, repeats are no-ops, and nothing an
//! unauthenticated report claims is announced as confirmed.

pub mod plan;

use std::fmt;
use std::str::FromStr;

/// A transaction's normalised status, stored in `transactions.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Initiated or accepted; no outcome yet.
    Pending,
    /// The provider itself does not know yet (or the outcome was lost); keep polling.
    Indeterminate,
    /// Money moved. Terminal, except for an explicit reversal.
    Succeeded,
    /// No money moved. Terminal.
    Failed,
    /// Money returned after a success. Terminal.
    Reversed,
    /// Not settled by its deadline, or settled inconsistently: a human decides.
    NeedsReview,
}

impl Status {
    /// Every status, in the order used by metrics and listings.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Indeterminate,
        Status::Succeeded,
        Status::Failed,
        Status::Reversed,
        Status::NeedsReview,
    ];

    /// The spelling used in SQL, logs, the CLI and event payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Indeterminate => "INDETERMINATE",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
            Status::Reversed => "REVERSED",
            Status::NeedsReview => "NEEDS_REVIEW",
        }
    }

    /// SUCCEEDED, FAILED and REVERSED: the provider has answered for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Reversed)
    }

    /// Statuses the merchant hears about: terminal ones and NEEDS_REVIEW.
    pub fn is_settled(self) -> bool {
        self.is_terminal() || self == Status::NeedsReview
    }

    /// PENDING and INDETERMINATE: the reconciler keeps asking the provider.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Pending | Status::Indeterminate)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status word that is not one of [`Status::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status {0:?} (expected PENDING, INDETERMINATE, SUCCEEDED, FAILED, REVERSED or NEEDS_REVIEW)")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// What to do with a reported status, given the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An allowed transition: write it.
    Apply,
    /// Same status again: nothing to do.
    NoOp,
    /// An older, non-terminal report arriving after the outcome (e.g. PENDING after
    /// SUCCEEDED): recorded in history, not applied, not alarming.
    Stale,
    /// A report that contradicts a terminal status (e.g. FAILED after SUCCEEDED):
    /// recorded, surfaced as its own event, not applied.
    Conflict,
}

/// Decides a transition. The table is the state machine:
/// PENDING → {INDETERMINATE, SUCCEEDED, FAILED, NEEDS_REVIEW};
/// INDETERMINATE → {PENDING, SUCCEEDED, FAILED, NEEDS_REVIEW};
/// NEEDS_REVIEW → {SUCCEEDED, FAILED}; SUCCEEDED → REVERSED.
///
/// ```
/// use payhook::state::{decide, Decision, Status::*};
/// assert_eq!(decide(Pending, Succeeded), Decision::Apply);
/// assert_eq!(decide(Succeeded, Failed), Decision::Conflict);
/// assert_eq!(decide(Succeeded, Reversed), Decision::Apply);
/// ```
pub fn decide(from: Status, to: Status) -> Decision {
    use Status::*;
    if from == to {
        return Decision::NoOp;
    }
    match (from, to) {
        (Pending, Indeterminate | Succeeded | Failed | NeedsReview) => Decision::Apply,
        (Indeterminate, Pending | Succeeded | Failed | NeedsReview) => Decision::Apply,
        (NeedsReview, Succeeded | Failed) => Decision::Apply,
        // A provider still saying "pending" about something a human must look at changes
        // nothing; the review stands.
        (NeedsReview, Pending | Indeterminate) => Decision::Stale,
        (Succeeded, Reversed) => Decision::Apply,
        (from, to) if from.is_terminal() && !to.is_terminal() => Decision::Stale,
        // Terminal → another terminal (other than the one reversal), or a reversal of
        // something that never succeeded.
        _ => Decision::Conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    #[test]
    fn terminal_states_never_regress() {
        for from in [Succeeded, Failed, Reversed] {
            for to in Status::ALL {
                let d = decide(from, to);
                if from == Succeeded && to == Reversed {
                    assert_eq!(d, Decision::Apply);
                } else {
                    assert_ne!(d, Decision::Apply, "{from} -> {to} must not apply");
                }
            }
        }
    }

    #[test]
    fn contradictions_are_conflicts_and_late_pendings_are_stale() {
        assert_eq!(decide(Succeeded, Failed), Decision::Conflict);
        assert_eq!(decide(Failed, Succeeded), Decision::Conflict);
        assert_eq!(decide(Pending, Reversed), Decision::Conflict);
        assert_eq!(decide(Succeeded, Pending), Decision::Stale);
        assert_eq!(decide(Failed, Indeterminate), Decision::Stale);
    }

    #[test]
    fn open_states_move_freely_and_repeats_are_noops() {
        assert_eq!(decide(Indeterminate, Pending), Decision::Apply);
        assert_eq!(decide(Pending, NeedsReview), Decision::Apply);
        assert_eq!(decide(NeedsReview, Failed), Decision::Apply);
        for s in Status::ALL {
            assert_eq!(decide(s, s), Decision::NoOp);
        }
    }

    #[test]
    fn status_words_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>().unwrap(), s);
        }
        assert!("paid".parse::<Status>().is_err());
    }
}
