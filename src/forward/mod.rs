//! The forwarder: delivers each outbox event to the merchant's application, signed
//! (Standard Webhooks, [`sign`]), retried on a persisted schedule, dead-lettered after
//! `retry_horizon`, replayable.
//!
//! [`step`] is one unit of work that tests drive with a `now` of their choosing: claim the
//! due events ([`crate::store::events::claim`]), POST them concurrently (at most
//! `max_in_flight`), record each attempt and its verdict in one writer job. [`run`] loops
//! until shutdown, keeping up to `max_in_flight` deliveries going at once, so one slow
//! merchant answer holds only its own slot; when idle it waits for `ctx.wake_forwarder`
//! (ingest wrote an event) or the next due time.
//!
//! What this module owns: the HTTP exchange and how its outcome is judged. It writes no
//! SQL (`store::events` does) and never touches the ingest path: ingest only pokes a
//! `Notify`, so a slow or dead merchant cannot slow callbacks down.
//!
//! Verdicts: any 2xx delivers. 410 Gone disables the destination (persisted; logged at
//! error; `payhook_destination_disabled`) and parks the event, still pending. 429 and 503
//! honour `Retry-After` up to [`crate::retry::RETRY_AFTER_MAX`]. Everything else (other
//! statuses, timeouts, refused or reset connections, oversized answers) is retried with
//! exponential backoff and jitter until the horizon, then dead-lettered.

pub mod sign;

use crate::config::ForwardConfig;
use crate::outbound::{ClientError, Reply};
use crate::retry::{parse_retry_after, RetryPolicy};
use crate::store::events::{self, AttemptRecord, DueEvent, Verdict};
use crate::store::StoreError;
use crate::Ctx;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use sign::Signer;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
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
    /// The configured secrets are unusable (the configuration check prevents this).
    #[error("forward.secrets[{0}]: {1}")]
    Secret(usize, sign::SignError),
    /// The store failed; nothing was claimed, or an outcome could not be recorded (its
    /// event is delivered again once its lease expires).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one [`step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This many deliveries were attempted and recorded.
    Worked(usize),
    /// Nothing was due; the next event is due then (`None`: the outbox is empty).
    Idle {
        /// `events.next_attempt_at_ms` of the next deliverable event.
        next_due_at_ms: Option<i64>,
    },
    /// The destination answered 410 Gone earlier and is disabled: nothing is sent.
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
    fn label(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Retry(_) => "retry",
            Delivery::Dead => "dead",
            Delivery::Gone => "gone",
        }
    }
}

/// Everything a delivery needs, built once per step or per [`run`].
struct Forwarder {
    ctx: Ctx,
    cfg: ForwardConfig,
    signer: Signer,
    policy: RetryPolicy,
    /// True after a failed delivery until the next success: the destination's trouble is
    /// logged once at warn when it starts and once when it ends, not per attempt.
    failing: AtomicBool,
}

impl Forwarder {
    fn new(ctx: &Ctx) -> Result<Arc<Forwarder>, ForwardError> {
        let cfg = ctx
            .config
            .forward
            .clone()
            .ok_or(ForwardError::NotConfigured)?;
        let signer = Signer::new(cfg.secrets.iter().map(|s| s.expose()))
            .map_err(|(i, e)| ForwardError::Secret(i, e))?;
        Ok(Arc::new(Forwarder {
            ctx: ctx.clone(),
            policy: cfg.retry_policy(),
            cfg,
            signer,
            failing: AtomicBool::new(false),
        }))
    }

    fn lease_until(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(millis(self.cfg.timeout + LEASE_MARGIN))
    }

    async fn disabled(&self) -> Result<Option<(i64, String)>, StoreError> {
        let url = self.cfg.url.redacted();
        self.ctx
            .store
            .read(move |c| events::destination_disabled(c, &url))
            .await
    }

    async fn claim(&self, now_ms: i64, limit: usize) -> Result<Vec<DueEvent>, StoreError> {
        // A read first, so that an idle pass does not queue a job for the writer.
        if self
            .ctx
            .store
            .read(move |c| events::due(c, now_ms, 1))
            .await?
            .is_empty()
        {
            return Ok(Vec::new());
        }
        let lease = self.lease_until(now_ms);
        self.ctx
            .store
            .write(move |c| events::claim(c, now_ms, limit, lease))
            .await
    }

    /// POSTs one event, judges the answer, records the attempt. `now_ms` is the
    /// scheduling clock (tests move it); the signature carries the wall clock, because
    /// receivers check it against theirs (Standard Webhooks allows five minutes).
    async fn deliver(&self, event: DueEvent, now_ms: i64) -> Result<Delivery, StoreError> {
        let timestamp = crate::clock::now_ms() / 1000;
        let signature = self
            .signer
            .signature(&event.id, timestamp, event.payload.as_bytes());
        let request = Request::post(self.cfg.url.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, USER_AGENT)
            .header(sign::HEADER_WEBHOOK_ID, event.id.as_str())
            .header(sign::HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string())
            .header(sign::HEADER_WEBHOOK_SIGNATURE, signature)
            .body(Full::new(Bytes::from(event.payload.clone())));
        let started = Instant::now();
        let answer = match request {
            Ok(req) => {
                self.ctx
                    .client
                    .send(req, self.cfg.timeout, MAX_ANSWER_BYTES)
                    .await
            }
            Err(e) => Err(ClientError::Request(format!(
                "cannot build the request: {e}"
            ))),
        };
        let latency_ms = millis(started.elapsed());
        let mut attempt = AttemptRecord {
            event_id: event.id.clone(),
            // Stored as shown: a token in the query stays out of the database.
            destination: self.cfg.url.redacted(),
            at_ms: now_ms,
            latency_ms,
            http_status: None,
            error: None,
            response_head: None,
        };
        let delivery = match &answer {
            Ok(reply) => {
                attempt.http_status = Some(reply.status.as_u16());
                attempt.response_head = Some(head(&reply.body));
                self.judge(&event, reply, now_ms)
            }
            Err(e) => {
                attempt.error = Some(e.to_string());
                self.retry_or_dead(&event, None, now_ms)
            }
        };
        let verdict = match delivery {
            Delivery::Delivered => Verdict::Delivered,
            Delivery::Retry(at) => Verdict::Retry {
                next_attempt_at_ms: at,
            },
            Delivery::Dead => Verdict::Dead,
            Delivery::Gone => Verdict::Parked,
        };
        let url = self.cfg.url.redacted();
        let record = attempt.clone();
        self.ctx
            .store
            .write(move |c| {
                if delivery == Delivery::Gone {
                    events::disable_destination(c, &url, record.at_ms, "410 Gone")?;
                }
                events::record_attempt(c, &record, verdict)
            })
            .await?;
        self.report(&event, &attempt, delivery);
        Ok(delivery)
    }

    fn judge(&self, event: &DueEvent, reply: &Reply, now_ms: i64) -> Delivery {
        let status = reply.status;
        if status.is_success() {
            return Delivery::Delivered;
        }
        if status == StatusCode::GONE {
            return Delivery::Gone;
        }
        // Retry-After is honoured only where HTTP gives it that meaning for us: 429 (rate
        // limited) and 503 (unavailable). The policy caps it.
        let retry_after = matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        )
        .then(|| reply.headers.get(http::header::RETRY_AFTER))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now_ms));
        self.retry_or_dead(event, retry_after, now_ms)
    }

    fn retry_or_dead(
        &self,
        event: &DueEvent,
        retry_after: Option<Duration>,
        now_ms: i64,
    ) -> Delivery {
        let failures = u32::try_from(event.attempts.saturating_add(1)).unwrap_or(u32::MAX);
        let delay = self
            .policy
            .next_delay(failures, retry_after, fastrand::f64());
        if self
            .policy
            .exhausted(event.schedule_started_at_ms, now_ms, delay)
        {
            Delivery::Dead
        } else {
            Delivery::Retry(now_ms.saturating_add(millis(delay)))
        }
    }

    fn report(&self, event: &DueEvent, attempt: &AttemptRecord, delivery: Delivery) {
        let m = &self.ctx.metrics;
        m.inc("payhook_deliveries_total", &[("outcome", delivery.label())]);
        let status = attempt.http_status.unwrap_or(0);
        let error = attempt.error.as_deref().unwrap_or("");
        match delivery {
            Delivery::Delivered => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the destination accepts deliveries again");
                }
                tracing::info!(
                    event_id = %event.id, attempt = event.attempts + 1, http_status = status,
                    latency_ms = attempt.latency_ms, "event delivered"
                );
            }
            Delivery::Retry(at) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        event_id = %event.id, http_status = status, error,
                        "delivery failed; retrying on the schedule (further failures are logged at debug until one succeeds)"
                    );
                }
                tracing::debug!(
                    event_id = %event.id, attempt = event.attempts + 1, http_status = status, error,
                    next_attempt_in_ms = at - attempt.at_ms, "delivery failed; will retry"
                );
            }
            Delivery::Dead => {
                m.inc("payhook_events_dead_total", &[]);
                tracing::error!(
                    event_id = %event.id, attempt = event.attempts + 1, http_status = status, error,
                    "delivery failed past the retry horizon; event dead-lettered (payhook events replay)"
                );
            }
            Delivery::Gone => {
                m.inc("payhook_destination_disabled_total", &[]);
                m.set("payhook_destination_disabled", &[], 1);
                tracing::error!(
                    event_id = %event.id,
                    "the destination answered 410 Gone: forwarding is disabled until an operator \
                     re-enables it (payhook events enable-destination); events stay pending"
                );
            }
        }
    }

    /// Claims up to `limit` events and spawns their deliveries into `tasks`, each holding
    /// a permit of `slots` until recorded. Returns how many were started.
    async fn start(
        self: &Arc<Self>,
        now_ms: i64,
        slots: &Arc<Semaphore>,
        tasks: &mut JoinSet<()>,
    ) -> Result<usize, StoreError> {
        let free = slots.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let claimed = self.claim(now_ms, free).await?;
        let n = claimed.len();
        for event in claimed {
            // `free` permits were available and only this loop takes them.
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                break;
            };
            let me = self.clone();
            tasks.spawn(async move {
                let id = event.id.clone();
                if let Err(e) = me.deliver(event, now_ms).await {
                    // The lease brings the event back; nothing is lost.
                    tracing::warn!(event_id = %id, error = %e, "could not record a delivery attempt; the event will be delivered again");
                }
                drop(permit);
            });
        }
        Ok(n)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The first [`RESPONSE_HEAD_BYTES`] of an answer, as text (cut on a character boundary).
fn head(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(RESPONSE_HEAD_BYTES)]);
    text.trim_end_matches('\u{fffd}').to_string()
}

/// One unit of work at `now_ms`: claims the due events (at most `max_in_flight`),
/// delivers them concurrently, records every attempt, and returns when all are recorded.
pub async fn step(ctx: &Ctx, now_ms: i64) -> Result<Step, ForwardError> {
    let fwd = Forwarder::new(ctx)?;
    if fwd.disabled().await?.is_some() {
        return Ok(Step::Disabled);
    }
    let slots = Arc::new(Semaphore::new(fwd.cfg.max_in_flight));
    let mut tasks = JoinSet::new();
    let n = fwd.start(now_ms, &slots, &mut tasks).await?;
    while tasks.join_next().await.is_some() {}
    if n > 0 {
        return Ok(Step::Worked(n));
    }
    let next_due_at_ms = ctx.store.read(events::next_due_at).await?;
    Ok(Step::Idle { next_due_at_ms })
}

/// Delivers events until `shutdown` completes, then lets in-flight deliveries finish
/// (each bounded by `forward.timeout`) and returns. Never returns early on an error:
/// store failures are logged once and retried with a growing pause.
pub async fn run(ctx: Ctx, shutdown: impl Future<Output = ()>) {
    let fwd = match Forwarder::new(&ctx) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "forwarder not started");
            return;
        }
    };
    tracing::info!(
        max_in_flight = fwd.cfg.max_in_flight,
        timeout = ?fwd.cfg.timeout,
        horizon = ?fwd.cfg.retry_horizon,
        "forwarder started"
    );
    // Present from the start, so an alert on it has a series to watch.
    ctx.metrics.set("payhook_destination_disabled", &[], 0);
    let slots = Arc::new(Semaphore::new(fwd.cfg.max_in_flight));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut failing: Option<Duration> = None;
    let mut was_disabled = false;
    tokio::pin!(shutdown);
    loop {
        let pause = match pass(&fwd, &slots, &mut tasks, &mut was_disabled).await {
            Ok(pause) => {
                if failing.take().is_some() {
                    tracing::info!("forwarder: store available again");
                }
                pause
            }
            Err(e) => {
                let next = failing.map_or(ON_ERROR, |d| (d * 2).min(ON_ERROR_MAX));
                if failing.is_none() {
                    tracing::warn!(error = %e, "forwarder: store failed; retrying with backoff");
                }
                failing = Some(next);
                next
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = ctx.wake_forwarder.notified() => {}
            () = tokio::time::sleep(pause) => {}
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

/// One pass of [`run`]: start what is due, and say how long to wait at most before the
/// next pass (a completion or a wake-up may end the wait sooner).
async fn pass(
    fwd: &Arc<Forwarder>,
    slots: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    was_disabled: &mut bool,
) -> Result<Duration, StoreError> {
    if let Some((since, reason)) = fwd.disabled().await? {
        if !*was_disabled {
            fwd.ctx.metrics.set("payhook_destination_disabled", &[], 1);
            tracing::error!(
                disabled_at = %crate::clock::rfc3339(since), reason,
                "the destination is disabled: nothing is delivered until an operator re-enables it \
                 (payhook events enable-destination)"
            );
            *was_disabled = true;
        }
        return Ok(IDLE_MAX);
    }
    if *was_disabled {
        fwd.ctx.metrics.set("payhook_destination_disabled", &[], 0);
        tracing::info!("the destination is enabled again; delivering");
        *was_disabled = false;
    }
    let now = crate::clock::now_ms();
    fwd.start(now, slots, tasks).await?;
    if slots.available_permits() == 0 {
        // Full: the next completion wakes the loop.
        return Ok(IDLE_MAX);
    }
    // Every due event was claimed (leased into the future), so the next due time is
    // strictly later unless the clock jumped; never spin.
    let next = fwd.ctx.store.read(events::next_due_at).await?;
    let wait = next.map_or(IDLE_MAX, |at| {
        Duration::from_millis(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
    });
    Ok(wait.clamp(Duration::from_millis(10), IDLE_MAX))
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
