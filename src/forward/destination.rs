//! One destination's delivery machinery: its signer, retry policy, in-flight slots, and
//! how an answer from it is judged and recorded.
//!
//! Each destination has its own [`Semaphore`] of `max_in_flight` slots, so a receiver
//! that hangs fills only its own slots, and its own `failing` flag, so its trouble is
//! logged for it alone. Delivery state lives in the store per (event, destination).

use super::config::DestinationConfig;
use super::{head, sign, Delivery, ForwardError, LEASE_MARGIN, MAX_ANSWER_BYTES, USER_AGENT};
use crate::clock;
use crate::outbound::{ClientError, Reply};
use crate::retry::{retry_after, RetryPolicy};
use crate::store::destinations::{self, Subscription};
use crate::store::outbox::{self, AttemptRecord, DueEvent, Verdict};
use crate::store::StoreError;
use crate::Ctx;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use sign::Signer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// What the store needs to know of a configured destination.
pub fn subscription(cfg: &DestinationConfig) -> Subscription {
    Subscription {
        name: cfg.name.clone(),
        // Stored as shown: a token in the query stays out of the database.
        url: cfg.url.redacted(),
        backfill: cfg.backfill,
        types: cfg.types.clone(),
        providers: cfg.providers.clone(),
    }
}

/// Everything a delivery to one destination needs, built once per step or per run.
pub(crate) struct Destination {
    ctx: Ctx,
    /// Its configuration.
    pub(crate) cfg: DestinationConfig,
    sub: Subscription,
    signer: Signer,
    policy: RetryPolicy,
    /// Its in-flight deliveries; a hanging receiver holds only these.
    pub(crate) slots: Arc<Semaphore>,
    /// True after a failed delivery until the next success: the destination's trouble is
    /// logged once at warn when it starts and once when it ends, not per attempt.
    failing: AtomicBool,
    /// True while its URL is disabled (410), to log the change once.
    was_disabled: AtomicBool,
}

impl Destination {
    pub(crate) fn new(ctx: &Ctx, cfg: DestinationConfig) -> Result<Destination, ForwardError> {
        let signer = Signer::new(cfg.secrets.iter().map(|s| s.expose()))
            .map_err(|(i, e)| ForwardError::Secret(cfg.name.clone(), i, e))?;
        Ok(Destination {
            ctx: ctx.clone(),
            policy: cfg.timing.retry_policy(),
            sub: subscription(&cfg),
            slots: Arc::new(Semaphore::new(cfg.timing.max_in_flight)),
            cfg,
            signer,
            failing: AtomicBool::new(false),
            was_disabled: AtomicBool::new(false),
        })
    }

    fn lease_until(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(clock::ms(self.cfg.timing.timeout + LEASE_MARGIN))
    }

    /// `Some((since, reason))` while its URL is disabled by a 410.
    pub(crate) async fn disabled(&self) -> Result<Option<(i64, String)>, StoreError> {
        let url = self.cfg.url.redacted();
        self.ctx
            .store
            .read(move |c| outbox::destination_disabled(c, &url))
            .await
    }

    /// True when it may be delivered to; logs when it becomes disabled or enabled again.
    pub(crate) async fn check_disabled(&self) -> Result<bool, StoreError> {
        let name = self.cfg.name.as_str();
        match self.disabled().await? {
            Some((since, reason)) => {
                if !self.was_disabled.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        destination = name,
                        disabled_at = %crate::clock::rfc3339(since), reason,
                        "the destination is disabled: nothing is delivered to it until an operator \
                         re-enables it (payhook events enable-destination)"
                    );
                }
                Ok(false)
            }
            None => {
                if self.was_disabled.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        destination = name,
                        "the destination is enabled again; delivering"
                    );
                }
                Ok(true)
            }
        }
    }

    /// The earliest due time of its deliverable backlog (`None`: nothing, or paused).
    pub(crate) async fn next_due_at(&self) -> Result<Option<i64>, StoreError> {
        let name = self.cfg.name.clone();
        self.ctx
            .store
            .read(move |c| outbox::next_due_at(c, &name))
            .await
    }

    async fn claim(&self, now_ms: i64, limit: usize) -> Result<Vec<DueEvent>, StoreError> {
        let name = self.cfg.name.clone();
        // Reads first, so that an idle pass does not queue a job for the writer.
        let (behind, due) = self
            .ctx
            .store
            .read(move |c| {
                Ok((
                    destinations::behind(c, &name)?,
                    !outbox::due(c, &name, now_ms, 1)?.is_empty(),
                ))
            })
            .await?;
        if !behind && !due {
            return Ok(Vec::new());
        }
        let (name, sub) = (self.cfg.name.clone(), self.sub.clone());
        let lease = self.lease_until(now_ms);
        self.ctx
            .store
            .write(move |c| {
                if behind {
                    destinations::subscribe(c, &sub, now_ms)?;
                }
                outbox::claim(c, &name, now_ms, limit, lease)
            })
            .await
    }

    /// Claims as many due deliveries as it has free slots and spawns them into `tasks`,
    /// each holding a slot until recorded. Returns how many were started.
    pub(crate) async fn start(
        self: &Arc<Self>,
        now_ms: i64,
        tasks: &mut JoinSet<()>,
    ) -> Result<usize, StoreError> {
        let free = self.slots.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let claimed = self.claim(now_ms, free).await?;
        let n = claimed.len();
        for event in claimed {
            // `free` permits were available and only this loop takes them.
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                break;
            };
            let me = self.clone();
            tasks.spawn(async move {
                let id = event.id.clone();
                if let Err(e) = me.deliver(event, now_ms).await {
                    // The lease brings the delivery back; nothing is lost.
                    tracing::warn!(destination = %me.cfg.name, event_id = %id, error = %e, "could not record a delivery attempt; the event will be delivered again");
                }
                drop(permit);
            });
        }
        Ok(n)
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
                    .send(req, self.cfg.timing.timeout, MAX_ANSWER_BYTES)
                    .await
            }
            Err(e) => Err(ClientError::Request(format!(
                "cannot build the request: {e}"
            ))),
        };
        let latency_ms = clock::ms(started.elapsed());
        let mut attempt = AttemptRecord {
            event_id: event.id.clone(),
            destination_name: self.cfg.name.clone(),
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
                    outbox::disable_destination(c, &url, record.at_ms, "410 Gone")?;
                }
                outbox::record_attempt(c, &record, verdict)
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
        // Retry-After counts on 429 and 503 only; the policy caps it.
        let retry_after = retry_after(reply, now_ms);
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
            Delivery::Retry(now_ms.saturating_add(clock::ms(delay)))
        }
    }

    fn report(&self, event: &DueEvent, attempt: &AttemptRecord, delivery: Delivery) {
        let m = &self.ctx.metrics;
        let name = self.cfg.name.as_str();
        m.inc(
            crate::metrics::DELIVERIES_TOTAL,
            &[("outcome", delivery.label())],
        );
        m.inc(
            crate::metrics::DESTINATION_DELIVERIES_TOTAL,
            &[("destination", name), ("outcome", delivery.label())],
        );
        let status = attempt.http_status.unwrap_or(0);
        let error = attempt.error.as_deref().unwrap_or("");
        match delivery {
            Delivery::Delivered => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        destination = name,
                        "the destination accepts deliveries again"
                    );
                }
                tracing::info!(
                    destination = name, event_id = %event.id, attempt = event.attempts + 1, http_status = status,
                    latency_ms = attempt.latency_ms, "event delivered"
                );
            }
            Delivery::Retry(at) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        destination = name, event_id = %event.id, http_status = status, error,
                        "delivery failed; retrying on the schedule (further failures are logged at debug until one succeeds)"
                    );
                }
                tracing::debug!(
                    destination = name, event_id = %event.id, attempt = event.attempts + 1, http_status = status, error,
                    next_attempt_in_ms = at - attempt.at_ms, "delivery failed; will retry"
                );
            }
            Delivery::Dead => {
                m.inc(crate::metrics::EVENTS_DEAD_TOTAL, &[]);
                tracing::error!(
                    destination = name, event_id = %event.id, attempt = event.attempts + 1, http_status = status, error,
                    "delivery failed past the retry horizon; event dead-lettered for this destination (payhook events replay)"
                );
            }
            Delivery::Gone => {
                m.inc(crate::metrics::DESTINATION_DISABLED_TOTAL, &[]);
                m.set(crate::metrics::DESTINATION_DISABLED, &[], 1);
                self.was_disabled.store(true, Ordering::Relaxed);
                tracing::error!(
                    destination = name, event_id = %event.id,
                    "the destination answered 410 Gone: forwarding to it is disabled until an operator \
                     re-enables it (payhook events enable-destination); its events stay pending"
                );
            }
        }
    }
}
