//! The forwarder: delivers each outbox event to every destination that takes it, signed
//! (Standard Webhooks, [`sign`]) with that destination's secrets, retried on a persisted
//! schedule per (event, destination), dead-lettered after `retry_horizon`, replayable.
//!
//! [`step`] is one unit of work that tests drive with a `now` of their choosing: for each
//! destination, hand it the events it has not seen ([`crate::store::destinations::subscribe`]),
//! claim its due deliveries ([`crate::store::outbox::claim`]), POST them concurrently (at
//! most its `max_in_flight`), record each attempt and its verdict in one writer job.
//! [`run`] loops until shutdown, keeping up to `max_in_flight` deliveries going at once
//! *per destination* ([`destination`]), so one slow or dead receiver holds only its own
//! slots and never another destination's; when idle it waits for `ctx.wake_forwarder`
//! (ingest wrote an event) or the next due time. A paused destination is skipped whole:
//! nothing is claimed, so no attempt is spent and its schedule does not run.
//!
//! What this module owns: the HTTP exchange and how its outcome is judged. It writes no
//! SQL (`store::outbox` does) and never touches the ingest path: ingest only pokes a
//! `Notify`, so a slow or dead merchant cannot slow callbacks down.
//!
//! Verdicts: any 2xx delivers. 410 Gone disables the destination's URL (persisted; logged
//! at error; `payhook_destination_disabled`) and parks the delivery, still pending. 429 and 503
//! honour `Retry-After` up to [`crate::retry::RETRY_AFTER_MAX`]. Everything else (other
//! statuses, timeouts, refused or reset connections, oversized answers) is retried with
//! exponential backoff and jitter until the horizon, then dead-lettered.

pub mod config;
pub mod destination;
pub mod sign;

use crate::shutdown::Shutdown;
use crate::store::destinations;
use crate::store::StoreError;
use crate::worker::{self, Backoff, Worker};
use crate::Ctx;
use destination::Destination;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Bytes of the merchant's answer kept in `attempts.response_head`.
pub const RESPONSE_HEAD_BYTES: usize = 256;
/// Largest answer body read. Beyond it the attempt fails (the status is not trusted
/// without the whole answer); 1 MiB is far above any acknowledgement.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// How long past the request timeout a claimed event stays leased to one delivery: the
/// time to record the outcome. After it the event is due again (at least once).
pub const LEASE_MARGIN: Duration = Duration::from_secs(60);
/// Longest idle wait: the CLI (another process) may replay events or re-enable the
/// destination without poking this process's `Notify`.
pub const IDLE_MAX: Duration = Duration::from_secs(5);
/// First pause after the store fails; doubles up to [`ON_ERROR_MAX`].
pub const ON_ERROR: Duration = Duration::from_millis(200);
/// Longest pause between two tries of a failing store.
pub const ON_ERROR_MAX: Duration = Duration::from_secs(30);
/// How long in-flight deliveries may take to finish after shutdown starts. Those still
/// running then are dropped unrecorded; their lease brings them back after a restart (at
/// least once, same id). With the listener's 10 s drain this stays under the unit's
/// `TimeoutStopSec=30s`.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(15);
/// `User-Agent` of every delivery.
pub const USER_AGENT: &str = concat!("payhook/", env!("CARGO_PKG_VERSION"));

/// Why a forwarding step could not run. Loops log it and try again; deliveries that fail
/// are not errors (they are recorded and rescheduled).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// There is no `[forward]` section.
    #[error("forwarding is not configured ([forward] section missing)")]
    NotConfigured,
    /// A destination's configured secrets are unusable (the configuration check prevents
    /// this).
    #[error("forward destination {0}: secrets[{1}]: {2}")]
    Secret(String, usize, sign::SignError),
    /// The store failed; nothing was claimed, or an outcome could not be recorded (its
    /// event is delivered again once its lease expires).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one [`step`] did, for callers that drive it by hand (tests, the simulation); the
/// daemon's [`run`] reports each pass to its [`Worker`] as a [`crate::worker::Step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This many deliveries were attempted and recorded.
    Worked(usize),
    /// Nothing was due; the next delivery is due then (`None`: nothing is pending).
    Idle {
        /// The earliest `deliveries.next_attempt_at_ms` of a deliverable event.
        next_due_at_ms: Option<i64>,
    },
    /// Every destination answered 410 Gone earlier and is disabled: nothing is sent.
    Disabled,
}

/// The outcome of one delivery, as counted in metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// 2xx.
    Delivered,
    /// Failed; due again at this time.
    Retry(i64),
    /// Failed past the horizon: dead letter.
    Dead,
    /// 410 Gone: destination disabled, event parked.
    Gone,
}

impl Delivery {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Retry(_) => "retry",
            Delivery::Dead => "dead",
            Delivery::Gone => "gone",
        }
    }
}

/// Every configured destination, ready to deliver.
fn destinations(ctx: &Ctx) -> Result<Vec<Arc<Destination>>, ForwardError> {
    let cfg = ctx
        .config
        .forward
        .as_ref()
        .ok_or(ForwardError::NotConfigured)?;
    cfg.destinations
        .iter()
        .map(|d| Destination::new(ctx, d.clone()).map(Arc::new))
        .collect()
}

/// Records every configured destination in the store, so that one added to the
/// configuration takes the events written from now on (or, with `backfill`, all of them).
/// The daemon calls it before it accepts callbacks; [`step`] and [`run`] call it too.
pub async fn register(ctx: &Ctx) -> Result<(), ForwardError> {
    let Some(cfg) = ctx.config.forward.as_ref() else {
        return Ok(());
    };
    let subs: Vec<destinations::Subscription> = cfg
        .destinations
        .iter()
        .map(destination::subscription)
        .collect();
    let now = crate::clock::now_ms();
    ctx.store
        .write(move |c| {
            for s in &subs {
                destinations::register(c, s, now)?;
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// One unit of work at `now_ms`: for every destination not disabled, claims its due
/// deliveries (at most its `max_in_flight`), delivers them concurrently, records every
/// attempt, and returns when all are recorded.
pub async fn step(ctx: &Ctx, now_ms: i64) -> Result<Step, ForwardError> {
    let all = destinations(ctx)?;
    register(ctx).await?;
    let mut tasks = JoinSet::new();
    let (mut started, mut enabled) = (0, 0);
    for d in &all {
        if d.disabled().await?.is_some() {
            continue;
        }
        enabled += 1;
        started += d.start(now_ms, &mut tasks).await?;
    }
    while tasks.join_next().await.is_some() {}
    if enabled == 0 && !all.is_empty() {
        return Ok(Step::Disabled);
    }
    if started > 0 {
        return Ok(Step::Worked(started));
    }
    let mut next_due_at_ms: Option<i64> = None;
    for d in &all {
        if let Some(at) = d.next_due_at().await? {
            next_due_at_ms = Some(next_due_at_ms.map_or(at, |n| n.min(at)));
        }
    }
    Ok(Step::Idle { next_due_at_ms })
}

/// Delivers events until `shutdown` starts, then lets in-flight deliveries finish
/// (each bounded by its destination's `timeout`) and returns. Never returns early on an
/// error: store failures are logged once and retried with a growing pause.
pub async fn run(ctx: Ctx, shutdown: Shutdown) {
    let all = match destinations(&ctx) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "forwarder not started");
            return;
        }
    };
    for d in &all {
        tracing::info!(
            destination = %d.cfg.name,
            url = %d.cfg.url.redacted(),
            max_in_flight = d.cfg.timing.max_in_flight,
            timeout = ?d.cfg.timing.timeout,
            horizon = ?d.cfg.timing.retry_horizon,
            "forwarder started"
        );
    }
    // Present from the start, so an alert on it has a series to watch.
    ctx.metrics
        .set(crate::metrics::DESTINATION_DISABLED, &[], 0);
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut runner = Worker::new("forwarder", Backoff::new(ON_ERROR, ON_ERROR_MAX), shutdown);
    let mut registered = false;
    let mut gauges_at: Option<Instant> = None;
    loop {
        let result = async {
            if !registered {
                register(&ctx).await.map_err(|e| match e {
                    ForwardError::Store(s) => s,
                    other => StoreError::Unavailable(other.to_string()),
                })?;
                registered = true;
            }
            if gauges_at.is_none_or(|at| at.elapsed() >= GAUGES_EVERY) {
                gauges(&ctx, &all).await?;
                gauges_at = Some(Instant::now());
            }
            pass(&ctx, &all, &mut tasks).await
        }
        .await;
        let step = match result {
            Ok(pause) => worker::Step::Idle(pause),
            Err(e) => worker::Step::Failed(format!("store failed: {e}")),
        };
        // A finished delivery frees a slot; a wake-up means ingest wrote an event.
        let wake = async {
            tokio::select! {
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = ctx.wake_forwarder.notified() => {}
            }
        };
        if !runner.wait(step, wake).await {
            break;
        }
    }
    tracing::info!(
        in_flight = tasks.len(),
        "forwarder stopping; finishing in-flight deliveries"
    );
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_DEADLINE, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            deadline = ?SHUTDOWN_DEADLINE,
            "in-flight deliveries did not finish in time; they will be retried after the restart"
        );
    }
    tracing::info!("forwarder stopped");
}

/// How often [`run`] refreshes the per-destination gauges (paused, pending depth, oldest
/// pending age): a read of every destination's backlog, not worth doing every pass.
pub const GAUGES_EVERY: Duration = Duration::from_secs(1);

/// Sets `payhook_destination_paused`, `payhook_destination_pending` and
/// `payhook_destination_oldest_pending_seconds` for every configured destination.
async fn gauges(ctx: &Ctx, all: &[Arc<Destination>]) -> Result<(), StoreError> {
    let states = ctx.store.read(destinations::states).await?;
    let now = crate::clock::now_ms();
    for d in all {
        let name = d.cfg.name.as_str();
        let state = states.iter().find(|s| s.name == name);
        let labels = [("destination", name)];
        // Every outcome's counter exists from the first pass, at zero, so that alert
        // rules see the series before the first delivery.
        for outcome in ["delivered", "retry", "dead", "gone"] {
            ctx.metrics.add(
                crate::metrics::DESTINATION_DELIVERIES_TOTAL,
                &[("destination", name), ("outcome", outcome)],
                0,
            );
        }
        let paused = state.is_some_and(|s| s.paused_at_ms.is_some());
        ctx.metrics.set(
            crate::metrics::DESTINATION_PAUSED,
            &labels,
            i64::from(paused),
        );
        ctx.metrics.set(
            crate::metrics::DESTINATION_PENDING,
            &labels,
            state.map_or(0, |s| s.pending),
        );
        let oldest = state
            .and_then(|s| s.oldest_pending_created_at_ms)
            .map_or(0, |at| now.saturating_sub(at).max(0) / 1000);
        ctx.metrics.set(
            crate::metrics::DESTINATION_OLDEST_PENDING_SECONDS,
            &labels,
            oldest,
        );
    }
    Ok(())
}

/// One pass of [`run`]: start what is due at every destination, and say how long to wait
/// at most before the next pass (a completion or a wake-up may end the wait sooner).
async fn pass(
    ctx: &Ctx,
    all: &[Arc<Destination>],
    tasks: &mut JoinSet<()>,
) -> Result<Duration, StoreError> {
    let now = crate::clock::now_ms();
    let mut wait = IDLE_MAX;
    let mut disabled = 0;
    for d in all {
        if !d.check_disabled().await? {
            disabled += 1;
            continue;
        }
        d.start(now, tasks).await?;
        if d.slots.available_permits() == 0 {
            // Full: the next completion wakes the loop.
            continue;
        }
        // Every due delivery was claimed (leased into the future), so the next due time
        // is strictly later unless the clock jumped; never spin.
        if let Some(at) = d.next_due_at().await? {
            wait = wait.min(crate::clock::until(at, now));
        }
    }
    ctx.metrics.set(
        crate::metrics::DESTINATION_DISABLED,
        &[],
        i64::from(disabled > 0),
    );
    Ok(wait.clamp(Duration::from_millis(10), IDLE_MAX))
}

/// The first [`RESPONSE_HEAD_BYTES`] of an answer, as text (cut on a character boundary).
pub(crate) fn head(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(RESPONSE_HEAD_BYTES)]);
    text.trim_end_matches('\u{fffd}').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_head_is_short_and_valid_text() {
        assert_eq!(head(b"ok"), "ok");
        let long = "é".repeat(200);
        let h = head(long.as_bytes());
        assert!(
            h.len() <= RESPONSE_HEAD_BYTES && h.chars().all(|c| c == 'é'),
            "{h}"
        );
    }
}
