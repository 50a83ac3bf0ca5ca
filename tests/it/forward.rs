//! Each settlement is delivered to the merchant as one signed event, retried on a
//! schedule, dead-lettered, replayable, and nothing is lost across a restart.
//!
//! Schedules are tested by driving `forward::step(ctx, now)` with a `now` the test moves:
//! those daemons run without a `[forward]` section (so no loop competes with the test)
//! and the test steps a `Ctx` that has one. The end-to-end tests run the daemon's own
//! loop and wait on the fake merchant's channel, never on a sleep.

use crate::support::fake_merchant::{Answer, FakeMerchant, Received};
use crate::support::http::post;
use crate::support::sign::event_id;
use crate::support::TestDaemon;
use payhook::config::Config;
use payhook::forward::{self, Step};
use payhook::store::outbox;
use payhook::Ctx;
use standardwebhooks::Webhook;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ZP_SECRET: &str = "zp-test-secret";
/// The specification's example secret, and the standardwebhooks crate's.
const K1: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const K2: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const HOUR_MS: i64 = 3_600_000;

fn zp_config() -> String {
    format!("[providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\n")
}

fn forward_section(url: &str, secrets: &[&str], extra: &str) -> String {
    let secrets: Vec<String> = secrets.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[forward]\nurl = \"{url}\"\nsecrets = [{}]\n{extra}\n",
        secrets.join(", ")
    )
}

fn zp_body(event: &str, reference: &str, status: &str) -> String {
    serde_json::json!({"event": event, "data": {
        "transactionStatus": status, "transactionReference": reference,
        "transactionExternalReference": format!("order-{reference}"), "currencyCode": "UGX-MTNMM",
        "amount": "126600", "msisdn": "256772000001"}})
    .to_string()
}

async fn zp_post(d: &TestDaemon, event: &str, reference: &str, status: &str) {
    let body = zp_body(event, reference, status);
    let sig = crate::support::sign::zp_sign(ZP_SECRET, body.as_bytes());
    let reply = post(
        d.addr,
        "/callbacks/zengapay",
        &[("X-ZENGAPAY-SIGNATURE", &sig)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

async fn succeed(d: &TestDaemon, reference: &str) -> String {
    zp_post(d, "collection.success", reference, "SUCCEEDED").await;
    event_id(d.zp_txn_id(reference), "zengapay", reference, 1)
}

/// `d.ctx` with a `[forward]` section, for driving `forward::step` by hand.
fn stepping(d: &TestDaemon, section: &str) -> Ctx {
    let with = Config::from_toml(section, d.dir.path()).unwrap();
    let mut cfg = (*d.ctx.config).clone();
    cfg.forward = with.forward;
    let mut ctx = d.ctx.clone();
    ctx.config = Arc::new(cfg);
    ctx
}

#[derive(Debug, PartialEq, Eq)]
struct Ev {
    status: String,
    attempts: i64,
    next_attempt_at_ms: Option<i64>,
    created_at_ms: i64,
}

fn ev(d: &TestDaemon, id: &str) -> Ev {
    d.db()
        .query_row(
            "SELECT status, attempts, next_attempt_at_ms, created_at_ms FROM events WHERE id = ?1",
            [id],
            |r| {
                Ok(Ev {
                    status: r.get(0)?,
                    attempts: r.get(1)?,
                    next_attempt_at_ms: r.get(2)?,
                    created_at_ms: r.get(3)?,
                })
            },
        )
        .unwrap()
}

fn verify(secret: &str, got: &Received, body: &[u8]) -> Result<(), standardwebhooks::WebhookError> {
    Webhook::new(secret).unwrap().verify(body, &got.headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_settlement_is_one_signed_event_with_a_stable_id_delivered_once() {
    let mut m = FakeMerchant::start().await;
    let d = TestDaemon::start(&format!(
        "{}{}",
        zp_config(),
        forward_section(&m.url(), &[K1], "")
    ))
    .await;
    let id = succeed(&d, "ref-1").await;
    // The provider retries the same callback: still one settlement, one event.
    zp_post(&d, "collection.success", "ref-1", "SUCCEEDED").await;
    let got = m.next().await;
    assert_eq!(
        got.id(),
        id,
        "the webhook-id is the event id derived from the settlement"
    );
    assert_eq!(got.header("content-type"), "application/json");
    let payload = got.json();
    assert_eq!(payload["id"], id.as_str());
    assert_eq!(payload["type"], "transaction.succeeded");
    assert_eq!(payload["data"]["provider_ref"], "ref-1");
    assert_eq!(payload["data"]["amount_minor"], 126600);
    assert_eq!(payload["data"]["currency"], "UGX");
    // The independent verifier accepts it, and refuses any tampering.
    verify(K1, &got, &got.body).unwrap();
    let tampered = got.body_str().replace("126600", "926600");
    assert!(verify(K1, &got, tampered.as_bytes()).is_err());
    assert!(
        verify(K2, &got, &got.body).is_err(),
        "another secret does not verify"
    );
    let mut other_id = got.clone();
    other_id
        .headers
        .insert("webhook-id", "evt_other".parse().unwrap());
    assert!(verify(K1, &other_id, &got.body).is_err());

    let metrics = d.ctx.metrics.clone();
    let dir = d.stop().await;
    assert_eq!(
        metrics.counter("payhook_deliveries_total", &[("outcome", "delivered")]),
        1
    );
    let d = TestDaemon::start_in(dir, &zp_config()).await;
    zp_post(&d, "collection.success", "ref-1", "SUCCEEDED").await;
    assert_eq!(d.count("SELECT count(*) FROM events"), 1);
    assert_eq!(ev(&d, &id).status, "delivered");
    assert_eq!(
        d.count("SELECT count(*) FROM attempts WHERE http_status = 200 AND response_head = 'ok'"),
        1
    );
    assert!(m.take().is_empty(), "delivered exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rotation_two_secrets_sign_and_either_verifies() {
    let mut m = FakeMerchant::start().await;
    let d = TestDaemon::start(&zp_config()).await;
    let ctx = stepping(&d, &forward_section(&m.url(), &[K2, K1], ""));
    let id = succeed(&d, "ref-rot").await;
    let now = ev(&d, &id).created_at_ms;
    assert_eq!(forward::step(&ctx, now).await.unwrap(), Step::Worked(1));
    let got = m.next().await;
    assert_eq!(got.header("webhook-signature").split(' ').count(), 2);
    assert!(got
        .header("webhook-signature")
        .split(' ')
        .all(|s| s.starts_with("v1,")));
    verify(K1, &got, &got.body).unwrap();
    verify(K2, &got, &got.body).unwrap();
    assert!(verify(K1, &got, b"{}").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_follow_the_schedule_for_three_days_then_the_event_is_dead_not_deleted() {
    let mut m = FakeMerchant::start().await;
    m.answer(Answer::Status(500));
    let d = TestDaemon::start(&zp_config()).await;
    let ctx = stepping(&d, &forward_section(&m.url(), &[K1], ""));
    let id = succeed(&d, "ref-sched").await;
    let start = ev(&d, &id).created_at_ms;
    let mut now = start;
    let mut failures = 0u32;
    loop {
        assert_eq!(forward::step(&ctx, now).await.unwrap(), Step::Worked(1));
        failures += 1;
        let e = ev(&d, &id);
        assert_eq!(e.attempts, i64::from(failures));
        if e.status == "dead" {
            assert_eq!(e.next_attempt_at_ms, None);
            break;
        }
        assert_eq!(e.status, "pending");
        let next = e.next_attempt_at_ms.unwrap();
        // The documented default schedule, written out rather than computed by the code
        // under test: 30 s doubling per failure, capped at one hour.
        const SCHEDULE_S: [i64; 8] = [30, 60, 120, 240, 480, 960, 1920, 3600];
        let base = SCHEDULE_S[(failures as usize - 1).min(SCHEDULE_S.len() - 1)] * 1000;
        let delta = next - now;
        assert!(
            delta <= base && delta >= base * 8 / 10,
            "failure {failures}: waited {delta} ms, schedule says {base} ms less up to 20% jitter"
        );
        // Not due a moment before its time.
        assert_eq!(
            forward::step(&ctx, next - 1).await.unwrap(),
            Step::Idle {
                next_due_at_ms: Some(next)
            }
        );
        now = next;
        assert!(failures < 200, "the schedule ends");
    }
    // The schedule lasted the horizon (three days by default), give or take one interval.
    let horizon = 3 * 24 * HOUR_MS;
    assert!(
        now - start <= horizon && now - start > horizon - HOUR_MS,
        "lasted {} ms",
        now - start
    );
    assert_eq!(
        m.take().len(),
        failures as usize,
        "every attempt reached the merchant"
    );
    assert_eq!(
        d.count("SELECT count(*) FROM attempts"),
        i64::from(failures)
    );
    assert_eq!(d.count("SELECT count(*) FROM attempts WHERE http_status = 500 AND response_head = 'no, not now' AND latency_ms >= 0"), i64::from(failures));
    assert_eq!(d.count("SELECT count(*) FROM dead_letters"), 1);
    assert_eq!(
        forward::step(&ctx, now + horizon).await.unwrap(),
        Step::Idle {
            next_due_at_ms: None
        }
    );
    assert_eq!(ctx.metrics.counter("payhook_events_dead_total", &[]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_on_429_and_503_within_the_cap_and_nowhere_else() {
    let m = FakeMerchant::start().await;
    let d = TestDaemon::start(&zp_config()).await;
    let ctx = stepping(&d, &forward_section(&m.url(), &[K1], ""));
    let cases = [
        (Answer::RetryAfter(429, "600".into()), 600_000, 600_000),
        (Answer::RetryAfter(503, "120".into()), 120_000, 120_000),
        // Capped: a peer cannot park an event for a day.
        (
            Answer::RetryAfter(503, "86400".into()),
            3_600_000,
            3_600_000,
        ),
        // Shorter than the schedule: the schedule wins.
        (Answer::RetryAfter(429, "1".into()), 24_000, 30_000),
        // Only 429 and 503 give Retry-After that meaning.
        (Answer::RetryAfter(500, "600".into()), 24_000, 30_000),
        (Answer::RetryAfter(429, "whenever".into()), 24_000, 30_000),
    ];
    for (i, (answer, min, max)) in cases.into_iter().enumerate() {
        m.answer(answer.clone());
        let id = succeed(&d, &format!("ref-ra-{i}")).await;
        let now = ev(&d, &id).created_at_ms;
        assert_eq!(forward::step(&ctx, now).await.unwrap(), Step::Worked(1));
        let delta = ev(&d, &id).next_attempt_at_ms.unwrap() - now;
        assert!((min..=max).contains(&delta), "{answer:?}: waits {delta} ms");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_destination_across_a_restart_until_an_operator_enables_it() {
    let mut m = FakeMerchant::start().await;
    m.answer(Answer::Status(410));
    let d = TestDaemon::start(&zp_config()).await;
    let section = forward_section(&m.url(), &[K1], "");
    let ctx = stepping(&d, &section);
    let a = succeed(&d, "ref-gone-a").await;
    let b = succeed(&d, "ref-gone-b").await;
    let now = ev(&d, &b).created_at_ms;
    // One slot, so exactly one request meets the 410.
    let ctx1 = stepping(&d, &forward_section(&m.url(), &[K1], "max_in_flight = 1"));
    assert_eq!(forward::step(&ctx1, now).await.unwrap(), Step::Worked(1));
    assert_eq!(m.take().len(), 1);
    assert_eq!(
        forward::step(&ctx, now + HOUR_MS).await.unwrap(),
        Step::Disabled
    );
    assert!(
        m.take().is_empty(),
        "nothing is posted to a disabled destination"
    );
    assert_eq!(
        ctx.metrics
            .counter("payhook_destination_disabled_total", &[]),
        1
    );
    assert!(ctx
        .metrics
        .render(None, 0)
        .contains("payhook_destination_disabled 1"));
    for id in [&a, &b] {
        assert_eq!(
            ev(&d, id).status,
            "pending",
            "events wait, they are not dead"
        );
    }
    let dir = d.stop().await;
    let d = TestDaemon::start_in(dir, &zp_config()).await;
    let ctx = stepping(&d, &section);
    assert_eq!(
        forward::step(&ctx, now + 2 * HOUR_MS).await.unwrap(),
        Step::Disabled
    );
    // The operator re-enables it four days later, past the 3-day retry horizon, and the
    // merchant stumbles once: the backlog is retried, not dead-lettered, because the days
    // it waited for the operator do not count against its schedule.
    let later = now + 96 * HOUR_MS;
    let url = m.url();
    assert!(d
        .ctx
        .store
        .write(move |c| outbox::enable_destination(c, &url, later))
        .await
        .unwrap());
    m.answer(Answer::Status(503));
    assert_eq!(forward::step(&ctx, later).await.unwrap(), Step::Worked(2));
    for id in [&a, &b] {
        assert_eq!(ev(&d, id).status, "pending", "retried, not dead");
    }
    assert_eq!(m.take().len(), 2);
    m.answer(Answer::Status(200));
    assert_eq!(
        forward::step(&ctx, later + HOUR_MS).await.unwrap(),
        Step::Worked(2)
    );
    let mut ids: Vec<String> = m.take().iter().map(|r| r.id().to_string()).collect();
    ids.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(ids, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactions_later_event_waits_for_its_earlier_one_and_others_are_not_held_up() {
    let mut m = FakeMerchant::start().await;
    let d = TestDaemon::start(&zp_config()).await;
    let ctx = stepping(&d, &forward_section(&m.url(), &[K1], ""));
    let a1 = succeed(&d, "ref-A").await;
    // FAILED after SUCCEEDED: a conflict, the same transaction's second event.
    zp_post(&d, "collection.failed", "ref-A", "FAILED").await;
    let a2 = event_id(d.zp_txn_id("ref-A"), "zengapay", "ref-A", 2);
    assert_eq!(ev(&d, &a2).status, "pending");
    let b1 = succeed(&d, "ref-B").await;
    let now = ev(&d, &b1).created_at_ms;
    // A's merchant-side handler is broken for a while; B's works.
    m.answer_with(|r| {
        if r.body_str().contains("\"ref-A\"") {
            Answer::Status(500)
        } else {
            Answer::Status(200)
        }
    });
    assert_eq!(forward::step(&ctx, now).await.unwrap(), Step::Worked(2));
    let mut first: Vec<String> = m.take().iter().map(|r| r.id().to_string()).collect();
    first.sort();
    let mut want = vec![a1.clone(), b1.clone()];
    want.sort();
    assert_eq!(first, want, "A's conflict event is held back; B is not");
    assert_eq!(ev(&d, &b1).status, "delivered");
    let retry_at = ev(&d, &a1).next_attempt_at_ms.unwrap();
    assert_eq!(
        forward::step(&ctx, now).await.unwrap(),
        Step::Idle {
            next_due_at_ms: Some(retry_at)
        }
    );
    m.answer(Answer::Status(200));
    assert_eq!(
        forward::step(&ctx, retry_at).await.unwrap(),
        Step::Worked(1)
    );
    assert_eq!(
        forward::step(&ctx, retry_at).await.unwrap(),
        Step::Worked(1)
    );
    let order: Vec<(String, String)> = m
        .take()
        .iter()
        .map(|r| {
            (
                r.id().to_string(),
                r.json()["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            (a1.clone(), "transaction.succeeded".to_string()),
            (a2.clone(), "transaction.conflict".to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_delivers_a_delivered_or_dead_event_again_with_the_same_id() {
    let mut m = FakeMerchant::start().await;
    let d = TestDaemon::start(&zp_config()).await;
    let ctx = stepping(
        &d,
        &forward_section(&m.url(), &[K1], "retry_horizon = \"1m\""),
    );
    let id = succeed(&d, "ref-replay").await;
    let now = ev(&d, &id).created_at_ms;
    assert_eq!(forward::step(&ctx, now).await.unwrap(), Step::Worked(1));
    let first = m.next().await;
    assert_eq!(ev(&d, &id).status, "delivered");
    let (rid, later) = (id.clone(), now + 1000);
    d.ctx
        .store
        .write(move |c| outbox::replay(c, &rid, later))
        .await
        .unwrap();
    assert_eq!(forward::step(&ctx, later).await.unwrap(), Step::Worked(1));
    let again = m.next().await;
    assert_eq!(again.id(), id);
    assert_eq!(again.body, first.body, "the payload is fixed at creation");
    verify(K1, &again, &again.body).unwrap();
    // Dead after the (short) horizon, then replayed with a fresh schedule.
    m.answer(Answer::Status(500));
    let (rid, later) = (id.clone(), now + 2000);
    d.ctx
        .store
        .write(move |c| outbox::replay(c, &rid, later))
        .await
        .unwrap();
    let mut t = later;
    while ev(&d, &id).status == "pending" {
        assert_eq!(forward::step(&ctx, t).await.unwrap(), Step::Worked(1));
        t = ev(&d, &id).next_attempt_at_ms.unwrap_or(t);
    }
    assert_eq!(ev(&d, &id).status, "dead");
    m.take();
    m.answer(Answer::Status(200));
    let (later, rid) = (t + HOUR_MS, id.clone());
    d.ctx
        .store
        .write(move |c| outbox::replay(c, &rid, later))
        .await
        .unwrap();
    assert_eq!(forward::step(&ctx, later).await.unwrap(), Step::Worked(1));
    assert_eq!(m.next().await.id(), id);
    assert_eq!(ev(&d, &id).status, "delivered");
    assert_eq!(d.count("SELECT count(*) FROM events"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_retry_loses_nothing() {
    let mut m = FakeMerchant::start().await;
    m.answer(Answer::Status(503));
    // The daemon's own loop, with a short first delay so that the retry comes quickly.
    let config = format!(
        "{}{}",
        zp_config(),
        forward_section(&m.url(), &[K1], "retry_first_after = \"1s\"")
    );
    let d = TestDaemon::start(&config).await;
    let id = succeed(&d, "ref-restart").await;
    assert_eq!(m.next().await.id(), id);
    // Stopping lets the in-flight attempt finish and be recorded.
    let dir = d.stop().await;
    let before = {
        let db = rusqlite::Connection::open(dir.path().join("payhook.db")).unwrap();
        let (status, attempts): (String, i64) = db
            .query_row(
                "SELECT status, attempts FROM events WHERE id = ?1",
                [&id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(status, "pending");
        assert!(attempts >= 1);
        attempts
    };
    // (A retry may have gone out before the stop; nothing is answered 200 until now.)
    m.take();
    m.answer(Answer::Status(200));
    let d = TestDaemon::start_in(dir, &config).await;
    let again = m.next().await;
    assert_eq!(
        again.id(),
        id,
        "the same event, by the same id, after the restart"
    );
    verify(K1, &again, &again.body).unwrap();
    let dir = d.stop().await;
    let d = TestDaemon::start_in(dir, &zp_config()).await;
    assert_eq!(ev(&d, &id).status, "delivered");
    assert_eq!(d.count("SELECT count(*) FROM attempts"), before + 1);
    assert_eq!(
        d.count("SELECT count(*) FROM attempts WHERE http_status = 200"),
        1
    );
    assert_eq!(d.count("SELECT count(*) FROM events"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_merchant_is_cut_off_by_the_timeout_and_ingest_does_not_wait_for_it() {
    let mut m = FakeMerchant::start().await;
    m.answer(Answer::Hang);
    let config = format!(
        "{}{}",
        zp_config(),
        forward_section(&m.url(), &[K1], "timeout = \"5s\"")
    );
    let d = TestDaemon::start(&config).await;
    let id = succeed(&d, "ref-hang").await;
    assert_eq!(m.next().await.id(), id);
    // The merchant is hanging on the first delivery; callbacks are still acknowledged
    // without waiting for it (well within the 5 s delivery timeout).
    let started = Instant::now();
    succeed(&d, "ref-hang-2").await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let dir = d.stop().await;
    let d = TestDaemon::start_in(dir, &zp_config()).await;
    let (latency, error): (i64, String) = d
        .db()
        .query_row(
            "SELECT latency_ms, error FROM attempts WHERE event_id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        (5000..15_000).contains(&latency),
        "cut off after {latency} ms"
    );
    assert!(error.contains("timed out"), "{error}");
    assert_eq!(ev(&d, &id).status, "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_is_a_failed_attempt_and_retried() {
    let mut m = FakeMerchant::start().await;
    m.answer(Answer::Close);
    let d = TestDaemon::start(&zp_config()).await;
    let ctx = stepping(&d, &forward_section(&m.url(), &[K1], ""));
    let id = succeed(&d, "ref-close").await;
    let now = ev(&d, &id).created_at_ms;
    assert_eq!(forward::step(&ctx, now).await.unwrap(), Step::Worked(1));
    assert_eq!(m.next().await.id(), id);
    let (status, error): (Option<i64>, String) = d
        .db()
        .query_row("SELECT http_status, error FROM attempts", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(status, None);
    assert!(!error.is_empty());
    let e = ev(&d, &id);
    assert_eq!((e.status.as_str(), e.attempts), ("pending", 1));
    assert!((24_000..=30_000).contains(&(e.next_attempt_at_ms.unwrap() - now)));
    // Nothing listening at all: the same.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let ctx = stepping(
        &d,
        &forward_section(&format!("http://{closed}/h"), &[K1], ""),
    );
    let t = e.next_attempt_at_ms.unwrap();
    assert_eq!(forward::step(&ctx, t).await.unwrap(), Step::Worked(1));
    assert_eq!(ev(&d, &id).attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_run_concurrently_up_to_max_in_flight() {
    let mut m = FakeMerchant::start().await;
    m.answer(Answer::Hang);
    let d = TestDaemon::start(&zp_config()).await;
    let ctx = stepping(
        &d,
        &forward_section(&m.url(), &[K1], "timeout = \"3s\"\nmax_in_flight = 2"),
    );
    for r in ["ref-c1", "ref-c2", "ref-c3"] {
        succeed(&d, r).await;
    }
    let now = payhook::clock::now_ms();
    let started = Instant::now();
    let step = tokio::spawn(async move { forward::step(&ctx, now).await.unwrap() });
    // Both requests are at the merchant before the first one's timeout: in parallel.
    let (a, b) = (m.next().await, m.next().await);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(a.id(), b.id());
    assert_eq!(
        step.await.unwrap(),
        Step::Worked(2),
        "the limit is two at once"
    );
    assert!(m.take().is_empty(), "the third waits for a free slot");
    assert_eq!(
        d.count("SELECT count(*) FROM attempts WHERE error LIKE '%timed out%'"),
        2
    );
}
