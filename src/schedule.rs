//! Per-provider polling defaults for newly seen transactions (providers.md §6.6): when to
//! ask the status endpoint first, and when an open transaction is escalated to review.

use crate::providers::ProviderId;
use crate::store::transactions::Schedule;

const SECOND_MS: i64 = 1000;
const MINUTE_MS: i64 = 60 * SECOND_MS;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// (first poll after, deadline after) in milliseconds, per provider.
pub fn defaults(provider: ProviderId) -> (i64, i64) {
    match provider {
        // INDETERMINATE "usually resolved within 24 h" (§1.4).
        ProviderId::ZengaPay => (MINUTE_MS, 24 * HOUR_MS),
        // ≤ 6 polls in the first hour, then hourly; compliance may take 24 h (§2.4).
        ProviderId::BitPesa => (10 * MINUTE_MS, 72 * HOUR_MS),
        // STK query from 30-60 s after initiation (§3.7).
        ProviderId::Daraja => (45 * SECOND_MS, 24 * HOUR_MS),
        ProviderId::Jenga => (MINUTE_MS, 24 * HOUR_MS),
        // Nothing to poll (§5): wait for the callback, then review.
        ProviderId::Tujenge => (24 * HOUR_MS, 24 * HOUR_MS),
    }
}

/// The schedule of a transaction first seen at `now_ms`.
pub fn first_poll(provider: ProviderId, now_ms: i64) -> Schedule {
    let (first, deadline) = defaults(provider);
    Schedule {
        next_poll_at_ms: Some(now_ms + first),
        deadline_at_ms: Some(now_ms + deadline),
    }
}
