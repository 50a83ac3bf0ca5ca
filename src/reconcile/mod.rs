//! The reconciler: settles PENDING and INDETERMINATE transactions through the providers'
//! status endpoints, so that a lost callback costs time, never money.
//!
//! One loop per provider ([`run`]) repeats [`step_provider`]: claim a batch of due rows in
//! the store (escalating those past their deadline to NEEDS_REVIEW, never FAILED), wait on
//! the provider's rate limiter (`governor`, `until_ready`), send the status query the
//! provider built, and record the poll and what it reported in one writer job. A poll that
//! fails (transport error, timeout, 404, 429, 5xx, an unreadable body) changes nothing but
//! the schedule, which backs off and honours `Retry-After`. Loops never die of an error:
//! they log it, wait, and go on.
//!
//! A NEEDS_REVIEW row that an unsigned callback then reported SUCCEEDED (a held success
//! after the deadline escalation) is polled the same way for a confirming query, for at
//! most [`CONFIRM_MAX_POLLS`] queries; `store::polls` says how each answer ends it.
//!
//! The schedule lives in the database (`next_poll_at_ms`, `poll_attempts`,
//! `deadline_at_ms`), so a restart resumes it. Tests call [`step`] / [`step_at`] directly
//! instead of sleeping.
//!
//! This module owns the network side (the HTTP client, limiters, access tokens); providers
//! stay pure and `store::polls` owns the SQL.

use crate::clock::{self, ms};
use crate::config::Config;
use crate::domain::{PendingTxn, ProviderId};
use crate::outbound::HttpClient;
use crate::providers::{PollError, PollInputs, Provider};
use crate::schedule;
use crate::secret::Secret;
use crate::section::PollConfig;
use crate::shutdown::Shutdown;
use crate::store::polls::{self, ClaimPlan, PollRecord};
use crate::store::transactions::{Applied, Outcome};
use crate::store::StoreError;
use crate::worker::{self, Backoff, Worker};
use crate::Ctx;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

/// Largest status answer read; the documented ones are under 2 KiB.
pub const STATUS_BODY_LIMIT_BYTES: usize = 256 * 1024;
/// A claimed row is not handed out again for this long, unless its poll is recorded
/// first; it bounds how late a poll interrupted by a crash or shutdown is retried. Longer
/// with a long `request_timeout` ([`lease`]).
pub const LEASE: Duration = Duration::from_secs(300);
/// Most rows one step claims per provider.
pub const BATCH_MAX: usize = 64;
/// Most status queries in flight per provider (the limiter still spaces their starts).
pub const MAX_IN_FLIGHT: usize = 8;
/// Longest idle wait: rows an application INSERTs directly are due at once but nobody
/// pokes the loop, so it looks again at least this often.
pub const IDLE_MAX: Duration = Duration::from_secs(5);
/// A cached access token is dropped this long before the provider says it expires.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Longest a cached access token is kept, whatever lifetime the provider states (Daraja's
/// and Jenga's tokens last an hour).
pub const TOKEN_MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Most statement pages one sweep reads (100 entries each): a bound on one pass, so a
/// provider answering "next page" forever cannot hold the loop.
pub const SWEEP_MAX_PAGES: u32 = 200;
/// Most status queries (failed ones included) made to confirm a success that an unsigned
/// callback reported on a NEEDS_REVIEW row, before it is left to the reviewer. With the
/// usual backoff this is an hour or more of asking (longer for slower providers), while
/// the provider normally answers the first query: the bound is for a provider that keeps
/// failing or saying "still processing", so such rows are not polled forever.
pub const CONFIRM_MAX_POLLS: u32 = 20;
/// Pause after a step failed (the store is unavailable, say), so a failing store is not
/// hammered.
pub const ON_ERROR: Duration = Duration::from_secs(5);

/// Why a step could not complete.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store refused a read or write; the rows stay leased and come back later.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A poll task panicked or was cancelled.
    #[error("poll task failed: {0}")]
    Task(String),
    /// A statement page could not be fetched or read; the next sweep reads it again.
    #[error("statement sweep: {0}")]
    Sweep(String),
}

/// What one statement sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    /// Pages read.
    pub pages: u32,
    /// Transactions the statement listed.
    pub listed: usize,
    /// Of those, the ones payhook did not know and recorded.
    pub recorded: usize,
    /// Entries that could not be read.
    pub skipped: usize,
}

/// What one step did, for callers that drive [`step_at`] by hand (tests, the
/// simulation); the daemon's loops report it to their [`Worker`] as a [`worker::Step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Claimed rows (polled, escalated or parked): there may be more.
    Worked,
    /// Nothing was due.
    Idle,
}

/// The reconciler's long-lived parts, one per daemon (in [`Ctx`]).
pub struct Reconciler {
    /// The one outbound client (a clone of `Ctx::client`, sharing its pool).
    client: HttpClient,
    /// One limiter per provider: never more than `poll_rate_per_minute` queries a minute,
    /// however many rows are due.
    limiters: BTreeMap<ProviderId, DefaultDirectRateLimiter>,
    /// Per-provider wake-ups, fanned out from `Ctx::wake_reconciler`.
    wake: BTreeMap<ProviderId, Notify>,
    /// Access tokens (Daraja OAuth, Jenga) and when to stop using them. A std Mutex: it
    /// is held for a map lookup, never across a request.
    tokens: Mutex<BTreeMap<ProviderId, (Secret, Instant)>>,
}

impl std::fmt::Debug for Reconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").finish_non_exhaustive()
    }
}

/// The limiter quota for `rate_per_minute`: evenly spaced, with a burst of one second's
/// worth (at least 1), so that a backlog is never sent as a minute's worth at once.
pub fn quota(rate_per_minute: u32) -> Quota {
    let rate = rate_per_minute.max(1);
    // Round the period up, so the rate is never exceeded by rounding.
    let period = Duration::from_micros(60_000_000u64.div_ceil(u64::from(rate)));
    let burst = NonZeroU32::new((rate / 60).max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl Reconciler {
    /// One limiter per provider from `config`; queries go through `client` (the daemon's
    /// one outbound client, `Ctx::client`).
    pub fn new(config: &Config, client: HttpClient) -> Reconciler {
        let limiters = ProviderId::ALL
            .into_iter()
            .map(|p| {
                (
                    p,
                    RateLimiter::direct(quota(config.poll(p).rate_per_minute)),
                )
            })
            .collect();
        let wake = ProviderId::ALL
            .into_iter()
            .map(|p| (p, Notify::new()))
            .collect();
        Reconciler {
            client,
            limiters,
            wake,
            tokens: Mutex::new(BTreeMap::new()),
        }
    }

    fn cached_token(&self, p: ProviderId) -> Option<Secret> {
        let tokens = self.tokens.lock().ok()?;
        tokens
            .get(&p)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    fn keep_token(&self, p: ProviderId, token: Secret, valid_for: Duration) {
        // The lifetime is the provider's `expires_in`: capped, so that an absurd value
        // cannot overflow the clock arithmetic and panic the provider's polling loop.
        let valid_for = valid_for.min(TOKEN_MAX_LIFETIME);
        // Stop using it a little early, so that a query never leaves with a token that
        // expires on the way.
        let margin = TOKEN_MARGIN.min(valid_for / 2);
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(p, (token, Instant::now() + (valid_for - margin)));
        }
    }

    fn forget_token(&self, p: ProviderId) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.remove(&p);
        }
    }

    fn limiter(&self, p: ProviderId) -> &DefaultDirectRateLimiter {
        // Built for every ProviderId in `new`.
        &self.limiters[&p]
    }

    fn wake(&self, p: ProviderId) -> &Notify {
        &self.wake[&p]
    }
}

/// Rows claimed per step: about ten seconds of the provider's quota, so a slow provider's
/// step stays short and shutdown or a config change is never far away.
fn batch_size(plan: &PollConfig) -> usize {
    usize::try_from(plan.rate_per_minute / 6)
        .unwrap_or(BATCH_MAX)
        .clamp(1, BATCH_MAX)
}

/// The lease for one step: [`LEASE`], or long enough for a token fetch and a status query
/// that both take the whole `request_timeout`, plus a minute for the rate limiter, so that
/// a row is never claimed again while its poll is still in flight.
pub fn lease(request_timeout: Duration) -> Duration {
    LEASE.max(request_timeout.saturating_mul(2) + Duration::from_secs(60))
}

/// One step for every provider at the current time.
pub async fn step(ctx: &Ctx) -> Result<Step, ReconcileError> {
    step_at(ctx, clock::now_ms()).await
}

/// One step for every provider, as if it were `now_ms` (tests move time forward this way
/// to reach a deadline without waiting for it).
pub async fn step_at(ctx: &Ctx, now_ms: i64) -> Result<Step, ReconcileError> {
    let mut set = JoinSet::new();
    for p in ProviderId::ALL {
        let ctx = ctx.clone();
        set.spawn(async move { step_provider(&ctx, p, now_ms).await });
    }
    let mut worked = false;
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(Step::Worked)) => worked = true,
            Ok(Ok(Step::Idle)) => {}
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(e) => first_error = first_error.or(Some(ReconcileError::Task(e.to_string()))),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None if worked => Ok(Step::Worked),
        None => Ok(Step::Idle),
    }
}

/// One batch of one provider: claim due rows, escalate the overdue, poll the rest.
pub async fn step_provider(
    ctx: &Ctx,
    provider: ProviderId,
    now_ms: i64,
) -> Result<Step, ReconcileError> {
    let started = Instant::now();
    let plan = ctx.config.poll(provider);
    let enabled = ctx.registry.get(provider).cloned();
    let claim = ClaimPlan {
        provider,
        now_ms,
        limit: batch_size(&plan),
        lease_ms: ms(lease(ctx.config.reconciler.request_timeout)),
        default_deadline_ms: ms(plan.deadline),
        pollable: enabled.is_some(),
        park_ms: ms(plan.max_interval),
        confirm_max_polls: i64::from(CONFIRM_MAX_POLLS),
    };
    let claimed = ctx.store.write(move |c| polls::claim(c, &claim)).await?;
    for a in &claimed.escalated {
        ctx.metrics.inc(
            crate::metrics::ESCALATIONS_TOTAL,
            &[("provider", provider.as_str())],
        );
        tracing::warn!(provider = %provider, transaction_id = a.transaction_id, "still open past its deadline; escalated to NEEDS_REVIEW");
        announce(ctx, provider, a);
    }
    for t in &claimed.left_for_review {
        count_left_for_review(ctx, provider);
        tracing::warn!(provider = %provider, transaction_id = t.id, txn_ref = %t.provider_ref, "held success under review not confirmed within its polls, not a deadline's review, or its provider cannot be polled; left for the reviewer");
    }
    let worked = !claimed.escalated.is_empty()
        || claimed.parked > 0
        || !claimed.due.is_empty()
        || !claimed.left_for_review.is_empty();
    let Some(p) = enabled else {
        return Ok(if worked { Step::Worked } else { Step::Idle });
    };
    // One token for the whole batch: fetched (or taken from the cache) once, so a batch
    // never sends a burst of token requests. A failure to get one is every poll's failure.
    let wants_query = claimed.due.iter().any(|t| {
        // A probe without a token: `Some` means this row has a query to make.
        let probe = PollInputs {
            now_ms,
            nonce: "",
            access_token: None,
        };
        p.status_request(t, probe).is_some()
    });
    let token = if wants_query {
        access_token(ctx, provider, p.as_ref()).await
    } else {
        Ok(None)
    };
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut set = JoinSet::new();
    for txn in claimed.due {
        let (ctx, p, plan, permits) = (ctx.clone(), p.clone(), plan.clone(), permits.clone());
        let token = token.clone();
        set.spawn(async move {
            // The semaphore is never closed, so acquiring only fails if it were.
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|e| ReconcileError::Task(e.to_string()))?;
            let at = move || now_ms.saturating_add(ms(started.elapsed()));
            poll_one(&ctx, p.as_ref(), &plan, txn, token, at).await
        });
    }
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        let r = joined
            .map_err(|e| ReconcileError::Task(e.to_string()))
            .and_then(|r| r);
        if let Err(e) = r {
            first_error = first_error.or(Some(e));
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(if worked { Step::Worked } else { Step::Idle }),
    }
}

/// The sweep settings of `provider` (interval, lookback), when it has a statement to
/// sweep and sweeping is on.
pub fn sweep_plan(config: &Config, provider: ProviderId) -> Option<(Duration, Duration)> {
    config.providers.table(provider).and_then(|t| t.sweep())
}

/// One statement sweep of `provider` over `[now - lookback, now]`: reads every page
/// (within the provider's rate limit) and records the transactions payhook does not know,
/// due for polling at once. `Ok(None)` when the provider has nothing to sweep.
pub async fn sweep(
    ctx: &Ctx,
    provider: ProviderId,
    now_ms: i64,
) -> Result<Option<Swept>, ReconcileError> {
    let Some((_, lookback)) = sweep_plan(&ctx.config, provider) else {
        return Ok(None);
    };
    let Some(p) = ctx.registry.get(provider).cloned() else {
        return Ok(None);
    };
    let deadline_ms = ms(ctx.config.poll(provider).deadline);
    let from = now_ms.saturating_sub(ms(lookback));
    let mut out = Swept::default();
    let mut page = 1;
    loop {
        let Some(request) = p.sweep_request(from, now_ms, page) else {
            return Ok(None);
        };
        let request = request.map_err(|e| ReconcileError::Sweep(e.to_string()))?;
        ctx.reconciler.limiter(provider).until_ready().await;
        let reply = query(ctx, request)
            .await
            .map_err(|e| ReconcileError::Sweep(format!("page {page}: {e}")))?;
        let found = p
            .parse_sweep_reply(reply.status, &reply.body)
            .map_err(|e| ReconcileError::Sweep(format!("page {page}: {e}")))?;
        out.pages += 1;
        out.listed += found.reports.len();
        out.skipped += found.skipped;
        let reports = found.reports;
        let recorded = ctx
            .store
            .write(move |c| polls::record_discovered(c, provider, &reports, deadline_ms, now_ms))
            .await?;
        for reference in &recorded {
            tracing::warn!(provider = %provider, txn_ref = %reference, "found in the statement but unknown to payhook; recorded and queued for a status query");
        }
        out.recorded += recorded.len();
        match found.next_page {
            Some(next) if next > page && out.pages < SWEEP_MAX_PAGES => page = next,
            _ => break,
        }
    }
    if out.recorded > 0 {
        ctx.metrics.add(
            crate::metrics::SWEEP_FOUND_TOTAL,
            &[("provider", provider.as_str())],
            out.recorded as u64,
        );
        ctx.reconciler.wake(provider).notify_one();
    }
    Ok(Some(out))
}

/// Sends one request to a provider's API (status, statement or token) within the
/// reconciler's timeout and body limit. The caller has waited for the provider's quota.
async fn query(
    ctx: &Ctx,
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<crate::outbound::Reply, crate::outbound::ClientError> {
    ctx.reconciler
        .client
        .send(
            request,
            ctx.config.reconciler.request_timeout,
            STATUS_BODY_LIMIT_BYTES,
        )
        .await
}

/// The provider's access token, from the cache or fetched now (within the provider's rate
/// limit). `Ok(None)`: the provider needs none.
async fn access_token(
    ctx: &Ctx,
    provider: ProviderId,
    p: &dyn Provider,
) -> Result<Option<Secret>, String> {
    if let Some(t) = ctx.reconciler.cached_token(provider) {
        return Ok(Some(t));
    }
    let Some(request) = p.token_request() else {
        return Ok(None);
    };
    let request = request.map_err(|e| e.to_string())?;
    ctx.reconciler.limiter(provider).until_ready().await;
    let reply = query(ctx, request).await.map_err(|e| e.to_string())?;
    let token = p
        .parse_token_reply(reply.status, &reply.body)
        .map_err(|e| e.to_string())?;
    ctx.reconciler
        .keep_token(provider, token.token.clone(), token.valid_for);
    tracing::info!(provider = %provider, valid_for = ?token.valid_for, "access token fetched");
    Ok(Some(token.token))
}

/// A fresh nonce for request signing (TransferZero recommends a GUID; uniqueness is what
/// matters, not secrecy).
fn nonce() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Polls one transaction and records the outcome.
async fn poll_one(
    ctx: &Ctx,
    p: &dyn Provider,
    plan: &PollConfig,
    txn: PendingTxn,
    token: Result<Option<Secret>, String>,
    at: impl Fn() -> i64,
) -> Result<(), ReconcileError> {
    let provider = txn.provider;
    let (token, token_error) = match token {
        Ok(t) => (t, None),
        Err(e) => (None, Some(format!("access token: {e}"))),
    };
    let nonce = nonce();
    let inputs = |now_ms| PollInputs {
        now_ms,
        nonce: &nonce,
        access_token: token.as_ref(),
    };
    // A row with nothing to ask (no API token configured, a Daraja C2B payment, Tujenge)
    // waits for a callback or its deadline, without counting a poll or using the quota. It
    // is looked at again after `poll_max_interval` at most, so that credentials added
    // later still get it polled before its deadline.
    if p.status_request(&txn, inputs(at())).is_none() {
        return wait_without_query(ctx, plan, &txn, at()).await;
    }
    let request = match token_error {
        // No token, no query: recorded as a failed poll (credentials errors are poll
        // failures, never states).
        Some(e) => Err(PollError::Request(e)),
        None => {
            // Wait for the provider's quota, then build the request, so that
            // time-stamped credentials are fresh when they leave.
            ctx.reconciler.limiter(provider).until_ready().await;
            match p.status_request(&txn, inputs(at())) {
                Some(r) => r,
                None => Err(PollError::Unsupported),
            }
        }
    };
    let sent_at = at();
    let started = Instant::now();
    let (http_status, answer, retry_after) = match request {
        Err(e) => (None, Err(e.to_string()), None),
        Ok(req) => {
            match query(ctx, req).await {
                Err(e) => (None, Err(e.to_string()), None),
                Ok(reply) => {
                    let code = reply.status.as_u16();
                    let retry_after = crate::retry::retry_after(&reply, sent_at);
                    let answer = p
                        .parse_status_reply(&txn, reply.status, &reply.body)
                        .map_err(|e| {
                            if matches!(e, PollError::Unauthorized(_)) && token.is_some() {
                                // Revoked or expired early: fetch a new one next time.
                                ctx.reconciler.forget_token(provider);
                            }
                            e.to_string()
                        });
                    (Some(code), answer, retry_after)
                }
            }
        }
    };
    let attempt = u32::try_from(txn.poll_attempts.saturating_add(1)).unwrap_or(u32::MAX);
    let mut next = schedule::next_poll_at(plan, at(), attempt, retry_after, fastrand::f64());
    if let (true, Some(deadline)) = (txn.status.is_open(), txn.deadline_at_ms) {
        // Never wait past the deadline: escalation happens on time. A held NEEDS_REVIEW
        // row is past its deadline already; clamping to it would make it due at once.
        next = next.min(deadline);
    }
    let failed = answer.as_ref().err().cloned();
    let rec = PollRecord {
        txn,
        at_ms: sent_at,
        latency_ms: Some(ms(started.elapsed())),
        http_status,
        answer,
        next_poll_at_ms: next,
    };
    let txn_ref = rec.txn.provider_ref.clone();
    let recorded = ctx
        .store
        .write(move |c| polls::record_poll(c, &rec))
        .await?;
    log_poll(
        ctx,
        provider,
        &txn_ref,
        http_status,
        next,
        failed.as_ref(),
        &recorded,
    );
    Ok(())
}

/// Counts a poll and logs what it did.
fn log_poll(
    ctx: &Ctx,
    provider: ProviderId,
    txn_ref: &str,
    http_status: Option<u16>,
    next: i64,
    failed: Option<&String>,
    recorded: &polls::Recorded,
) {
    let outcome = if failed.is_some() { "failed" } else { "status" };
    ctx.metrics.inc(
        crate::metrics::POLLS_TOTAL,
        &[("provider", provider.as_str()), ("outcome", outcome)],
    );
    match (&failed, &recorded.applied) {
        (Some(error), _) => tracing::info!(
            provider = %provider, txn_ref = %txn_ref, attempt = recorded.attempt,
            http_status = ?http_status, error = %error, next_poll_at_ms = next,
            "status poll failed; state unchanged, rescheduled"
        ),
        (None, Some(a)) => {
            if matches!(a.outcome, Outcome::Applied(_)) {
                tracing::info!(provider = %provider, txn_ref = %txn_ref, status = %a.status, "status poll settled a change");
            }
            if recorded.left_for_review {
                count_left_for_review(ctx, provider);
                tracing::warn!(provider = %provider, txn_ref = %txn_ref, "status poll neither confirmed nor failed the held success under review; no longer polled, left for the reviewer");
            }
            announce(ctx, provider, a);
        }
        (None, None) => {}
    }
}

/// What [`poll_one`] does with a row it has no status query for: an open row is looked at
/// again after `poll_max_interval` at most (or at its deadline, if sooner); a held success
/// under review is left for the reviewer.
async fn wait_without_query(
    ctx: &Ctx,
    plan: &PollConfig,
    txn: &PendingTxn,
    now_ms: i64,
) -> Result<(), ReconcileError> {
    let provider = txn.provider;
    if !txn.status.is_open() {
        // A held success under review: it has no deadline to wait for, and nothing
        // can confirm it, so the reviewer decides.
        let id = txn.id;
        ctx.store
            .write(move |c| polls::leave_for_review(c, id))
            .await?;
        count_left_for_review(ctx, provider);
        tracing::warn!(provider = %provider, txn_ref = %txn.provider_ref, "held success under review has no status query to confirm it; left for the reviewer");
        return Ok(());
    }
    let later = now_ms.saturating_add(ms(plan.max_interval));
    let until = txn.deadline_at_ms.map_or(later, |d| d.min(later));
    let id = txn.id;
    ctx.store
        .write(move |c| polls::postpone(c, id, until))
        .await?;
    Ok(())
}

/// Counts a held success under review that is no longer polled: a person decides.
fn count_left_for_review(ctx: &Ctx, provider: ProviderId) {
    ctx.metrics.inc(
        crate::metrics::HELD_REVIEWS_LEFT_TOTAL,
        &[("provider", provider.as_str())],
    );
}

/// Tells the forwarder about a new outbox event, and counts conflicts.
fn announce(ctx: &Ctx, provider: ProviderId, a: &Applied) {
    if a.outcome == Outcome::Conflict {
        ctx.metrics.inc(
            crate::metrics::CONFLICTS_TOTAL,
            &[("provider", provider.as_str())],
        );
    }
    if a.event_id.is_some() {
        ctx.wake_forwarder.notify_one();
    }
}

/// Runs one polling loop per provider until `shutdown` starts. Turned off by
/// `[reconciler] enabled = false`.
pub async fn run(ctx: Ctx, mut shutdown: Shutdown) {
    if !ctx.config.reconciler.enabled {
        tracing::info!("reconciler disabled by configuration");
        shutdown.recv().await;
        return;
    }
    let mut loops = JoinSet::new();
    for p in ProviderId::ALL {
        loops.spawn(provider_loop(ctx.clone(), p, shutdown.clone()));
    }
    // Fan `wake_reconciler` out to every provider's loop.
    let fan_out = {
        let ctx = ctx.clone();
        let mut stop = shutdown.clone();
        async move {
            loop {
                tokio::select! {
                    () = ctx.wake_reconciler.notified() => {
                        for p in ProviderId::ALL {
                            ctx.reconciler.wake(p).notify_one();
                        }
                    }
                    () = stop.recv() => break,
                }
            }
        }
    };
    loops.spawn(fan_out);
    for p in ProviderId::ALL {
        if let Some((interval, _)) = sweep_plan(&ctx.config, p) {
            loops.spawn(sweep_loop(ctx.clone(), p, interval, shutdown.clone()));
        }
    }
    shutdown.recv().await;
    while loops.join_next().await.is_some() {}
    tracing::info!("reconciler stopped");
}

/// Sweeps `provider`'s statement every `interval`, starting at once (a restart catches
/// up through the lookback). A failed sweep is tried again at the next interval.
async fn sweep_loop(ctx: Ctx, provider: ProviderId, interval: Duration, shutdown: Shutdown) {
    let mut runner = Worker::new(
        format!("statement sweep {provider}"),
        Backoff::constant(interval),
        shutdown,
    );
    loop {
        let Some(result) = runner
            .interruptible(sweep(&ctx, provider, clock::now_ms()))
            .await
        else {
            return;
        };
        let (outcome, step) = match result {
            Ok(Some(s)) => {
                tracing::info!(provider = %provider, pages = s.pages, listed = s.listed, recorded = s.recorded, skipped = s.skipped, "statement swept");
                ("ok", worker::Step::Idle(interval))
            }
            Ok(None) => return,
            Err(e) => ("failed", worker::Step::Failed(e.to_string())),
        };
        ctx.metrics.inc(
            crate::metrics::SWEEPS_TOTAL,
            &[("provider", provider.as_str()), ("outcome", outcome)],
        );
        if !runner.wait(step, std::future::pending()).await {
            return;
        }
    }
}

/// One provider's loop: step while there is work, otherwise wait for the next due row, a
/// wake-up, or [`IDLE_MAX`]; after a failure, [`ON_ERROR`].
async fn provider_loop(ctx: Ctx, provider: ProviderId, shutdown: Shutdown) {
    let mut runner = Worker::new(
        format!("reconciler {provider}"),
        Backoff::constant(ON_ERROR),
        shutdown,
    );
    loop {
        // A step interrupted by shutdown is safe: its rows are leased and their polls are
        // read-only at the provider; what was recorded is committed.
        let Some(result) = runner
            .interruptible(step_provider(&ctx, provider, clock::now_ms()))
            .await
        else {
            return;
        };
        let step = match result {
            Ok(Step::Worked) => worker::Step::Busy,
            Ok(Step::Idle) => match ctx.store.read(move |c| polls::next_due(c, provider)).await {
                Ok(Some(at)) => worker::Step::Idle(
                    clock::until(at, clock::now_ms()).clamp(Duration::from_millis(50), IDLE_MAX),
                ),
                Ok(None) => worker::Step::Idle(IDLE_MAX),
                Err(e) => worker::Step::Failed(format!("cannot read the store: {e}")),
            },
            Err(e) => worker::Step::Failed(e.to_string()),
        };
        if !runner
            .wait(step, ctx.reconciler.wake(provider).notified())
            .await
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_never_exceed_the_configured_rate() {
        let q = quota(600);
        assert_eq!(q.replenish_interval(), Duration::from_millis(100));
        assert_eq!(q.burst_size().get(), 10);
        let q = quota(7);
        assert!(q.replenish_interval() >= Duration::from_millis(60_000 / 7));
        assert_eq!(q.burst_size().get(), 1);
        assert_eq!(quota(0).burst_size().get(), 1);
    }

    #[test]
    fn a_lease_outlasts_the_slowest_poll() {
        assert_eq!(lease(Duration::from_secs(15)), LEASE);
        assert_eq!(lease(Duration::from_secs(300)), Duration::from_secs(660));
    }

    /// A provider's `expires_in` is input: an absurd one must not panic the loop.
    #[tokio::test]
    async fn an_absurd_token_lifetime_is_capped() {
        let cfg = Config::from_toml("", std::path::Path::new(".")).unwrap();
        let r = Reconciler::new(&cfg, HttpClient::new());
        r.keep_token(ProviderId::Daraja, Secret::new("t"), Duration::MAX);
        assert!(r.cached_token(ProviderId::Daraja).is_some());
        let until = r.tokens.lock().unwrap()[&ProviderId::Daraja].1;
        assert!(until <= Instant::now() + TOKEN_MAX_LIFETIME);
    }
}
