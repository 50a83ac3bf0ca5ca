//! Per-provider polling plans: when to ask a status endpoint first, how
//! the interval grows, how many requests a minute a provider tolerates, and when an open
//! transaction is escalated to review. [`defaults`] gives each provider's documented limits;
//! `[providers.*]` keys override them (`poll_first_after`, `poll_max_interval`,
//! `poll_deadline`, `poll_rate_per_minute`, `base_url`).
//!
//! Pure: the reconciler and ingest pass `now` in; the schedule itself is persisted per
//! transaction (`next_poll_at_ms`, `poll_attempts`, `deadline_at_ms`).

use crate::clock::ms;
use crate::domain::ProviderId;
use crate::retry::RetryPolicy;
use crate::section::PollConfig;
use crate::store::transactions::Schedule;
use std::time::Duration;

/// Fraction of each interval that is randomised, so that a backlog registered at once does
/// not stay in lock-step.
const JITTER: f64 = 0.1;

/// The built-in plan of each provider (its registry entry's), which its table's keys
/// override.
pub fn defaults(provider: ProviderId) -> PollConfig {
    (crate::providers::registry::entry(provider).poll_defaults)()
}

/// The schedule of a transaction first seen at `now_ms`.
pub fn first_poll(plan: &PollConfig, now_ms: i64) -> Schedule {
    Schedule {
        next_poll_at_ms: Some(now_ms.saturating_add(ms(plan.first_after))),
        deadline_at_ms: Some(now_ms.saturating_add(ms(plan.deadline))),
    }
}

/// The interval policy of a plan: `first_after`, doubling, capped at `max_interval`.
pub fn policy(plan: &PollConfig) -> RetryPolicy {
    RetryPolicy {
        first: plan.first_after,
        max_interval: plan.max_interval,
        factor: 2,
        jitter: JITTER,
        horizon: plan.deadline,
    }
}

/// When to poll again after poll number `attempt` (1 for the first), given what the
/// provider asked for with `Retry-After` and a uniform `draw` in 0.0..1.0 for jitter.
///
/// ```
/// use payhook::{domain::ProviderId, schedule};
/// use std::time::Duration;
/// let plan = schedule::defaults(ProviderId::BitPesa);
/// // TransferZero: 10, 20, 40 minutes, then hourly.
/// assert_eq!(schedule::next_poll_at(&plan, 0, 1, None, 0.0), 20 * 60_000);
/// assert_eq!(schedule::next_poll_at(&plan, 0, 9, None, 0.0), 3_600_000);
/// assert_eq!(schedule::next_poll_at(&plan, 0, 1, Some(Duration::from_secs(7200)), 0.0), 3_600_000);
/// ```
pub fn next_poll_at(
    plan: &PollConfig,
    now_ms: i64,
    attempt: u32,
    retry_after: Option<Duration>,
    draw: f64,
) -> i64 {
    // The first poll happened `first_after` in; the next interval is the following step.
    let delay = policy(plan).next_delay(attempt.saturating_add(1), retry_after, draw);
    now_ms.saturating_add(ms(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn transferzero_polls_at_most_six_times_in_the_first_hour_then_hourly() {
        let plan = defaults(ProviderId::BitPesa);
        let mut at = ms(plan.first_after);
        let mut polls_in_first_hour = 0;
        for attempt in 1..=30u32 {
            if at <= ms(HOUR) {
                polls_in_first_hour += 1;
            }
            let next = next_poll_at(&plan, at, attempt, None, 0.5);
            if at > ms(HOUR) {
                assert!(next - at >= ms(HOUR) * 9 / 10, "hourly after hour one");
            }
            at = next;
        }
        assert!(polls_in_first_hour <= 6, "{polls_in_first_hour}");
    }

    #[test]
    fn retry_after_postpones_but_is_capped() {
        let plan = defaults(ProviderId::ZengaPay);
        let asked = Some(Duration::from_secs(600));
        assert_eq!(next_poll_at(&plan, 0, 1, asked, 0.0), 600_000);
        let huge = Some(Duration::from_secs(10 * 24 * 3600));
        assert_eq!(
            next_poll_at(&plan, 0, 1, huge, 0.0),
            ms(crate::retry::RETRY_AFTER_MAX)
        );
    }
}
