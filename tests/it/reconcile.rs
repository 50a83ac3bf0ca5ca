//! The reconciler settles open transactions through fake provider APIs on
//! 127.0.0.1. Tests drive `reconcile::step` / `step_at` themselves (the background loop is
//! disabled in their configuration), and move time by passing `now` or by setting
//! `next_poll_at_ms`, so nothing sleeps to wait for background work.

use crate::support::fake_provider::{FakeProvider, FakeReply};
use crate::support::TestDaemon;
use hmac::{Hmac, Mac};
use payhook::clock::now_ms;
use payhook::reconcile::{self, Step};
use rusqlite::params;
use sha2::{Digest, Sha512};
use std::time::Duration;

const HOUR_MS: i64 = 3_600_000;

/// ZengaPay pointed at `fake`, polled as fast as tests need, loop disabled.
fn zp_config(fake: &FakeProvider, extra: &str) -> String {
    format!(
        "[providers.zengapay]\nsecret_hash = \"zp-secret\"\napi_token = \"zp-token\"\n\
         base_url = \"{}\"\npoll_rate_per_minute = 6000\n{extra}\n\
         [reconciler]\nenabled = false\nrequest_timeout = \"500ms\"\n",
        fake.url()
    )
}

fn zp_status(reference: &str, status: &str, amount: &str) -> String {
    format!(
        r#"{{"code":200,"status":"OK","data":{{"transactionReference":"{reference}","transactionStatus":"{status}","amount":{amount},"currencyCode":"UGX-MTNMM","transactionExternalReference":"order-{reference}","transactionCompletionDate":"0000-00-00 00:00:00"}}}}"#
    )
}

/// Registers a transaction the way an application may: a plain INSERT into the store,
/// leaving `next_poll_at_ms` NULL ("due now").
fn insert(d: &TestDaemon, reference: &str, kind: &str, expected: Option<(i64, &str)>) {
    d.db()
        .execute(
            "INSERT INTO transactions (provider, provider_ref, kind, expected_amount_minor, expected_currency)
             VALUES ('zengapay', ?1, ?2, ?3, ?4)",
            params![reference, kind, expected.map(|e| e.0), expected.map(|e| e.1)],
        )
        .unwrap();
}

/// Makes a transaction due now, as if its next poll time had come.
fn make_due(d: &TestDaemon, reference: &str) {
    d.db()
        .execute(
            "UPDATE transactions SET next_poll_at_ms = 0 WHERE provider_ref = ?1",
            [reference],
        )
        .unwrap();
}

#[derive(Debug)]
struct Row {
    status: String,
    reason: Option<String>,
    unconfirmed: Option<String>,
    attempts: i64,
    next_poll_at_ms: Option<i64>,
    transitions: i64,
    events: i64,
}

fn row(d: &TestDaemon, reference: &str) -> Row {
    d.db()
        .query_row(
            "SELECT status, reason, unconfirmed_status, poll_attempts, next_poll_at_ms,
                    (SELECT count(*) FROM transitions r WHERE r.transaction_id = t.id),
                    (SELECT count(*) FROM events e WHERE e.transaction_id = t.id)
               FROM transactions t WHERE provider_ref = ?1",
            [reference],
            |r| {
                Ok(Row {
                    status: r.get(0)?,
                    reason: r.get(1)?,
                    unconfirmed: r.get(2)?,
                    attempts: r.get(3)?,
                    next_poll_at_ms: r.get(4)?,
                    transitions: r.get(5)?,
                    events: r.get(6)?,
                })
            },
        )
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_transactions_settle_with_no_callback_at_all() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake, "")).await;
    insert(&d, "zp-1", "collection", None);
    let path = "/v1/collections/zp-1";
    fake.push(
        path,
        FakeReply::new(200, zp_status("zp-1", "PENDING", "5000")),
    );
    fake.push(
        path,
        FakeReply::new(200, zp_status("zp-1", "SUCCEEDED", "5000")),
    );

    let before = now_ms();
    assert_eq!(reconcile::step(&d.ctx).await.unwrap(), Step::Worked);
    let r = row(&d, "zp-1");
    assert_eq!((r.status.as_str(), r.attempts, r.events), ("PENDING", 1, 0));
    assert!(r.next_poll_at_ms.unwrap() > before, "rescheduled: {r:?}");
    // Not due yet: a step does nothing.
    assert_eq!(reconcile::step(&d.ctx).await.unwrap(), Step::Idle);
    assert_eq!(fake.requests().len(), 1);

    make_due(&d, "zp-1");
    assert_eq!(reconcile::step(&d.ctx).await.unwrap(), Step::Worked);
    let r = row(&d, "zp-1");
    assert_eq!(
        (r.status.as_str(), r.attempts, r.events),
        ("SUCCEEDED", 2, 1)
    );
    assert_eq!(
        r.next_poll_at_ms, None,
        "a settled transaction is not polled again"
    );
    let (source, poll_outcome): (String, String) = d
        .db()
        .query_row(
            "SELECT r.source, p.outcome FROM transitions r JOIN polls p ON p.id = r.poll_id
              WHERE r.to_status = 'SUCCEEDED'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((source.as_str(), poll_outcome.as_str()), ("poll", "status"));
    let event_type: String = d
        .db()
        .query_row("SELECT type FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(event_type, "transaction.succeeded");
    for seen in fake.requests() {
        assert_eq!(seen.method, "GET");
        assert_eq!(seen.target, path);
        assert_eq!(seen.headers["authorization"], "Bearer zp-token");
    }
    // Settled: nothing more to ask.
    assert_eq!(reconcile::step(&d.ctx).await.unwrap(), Step::Idle);
    assert_eq!(fake.requests().len(), 2);
    let metrics = crate::support::http::get(d.addr, "/metrics").await.body;
    assert!(
        metrics.contains(r#"payhook_polls_total{provider="zengapay",outcome="status"} 2"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bitpesa_status_queries_are_signed_and_settle() {
    let fake = FakeProvider::start().await;
    let cfg = format!(
        "public_base_url = \"https://hooks.example.com\"\n[providers.bitpesa]\napi_key = \"bp-key\"\n\
         api_secret = \"bp-secret\"\nbase_url = \"{}\"\npoll_rate_per_minute = 600\n\
         [reconciler]\nenabled = false\n",
        fake.url()
    );
    let d = TestDaemon::start(&cfg).await;
    d.db()
        .execute(
            "INSERT INTO transactions (provider, provider_ref, kind) VALUES ('bitpesa', 'tz-1', 'transfer')",
            [],
        )
        .unwrap();
    fake.push(
        "/v1/transactions/tz-1",
        FakeReply::new(
            200,
            r#"{"object":{"id":"tz-1","state":"paid","input_amount":"1500.00","input_currency":"KES"}}"#,
        ),
    );
    assert_eq!(reconcile::step(&d.ctx).await.unwrap(), Step::Worked);
    let seen = fake.requests().remove(0);
    // TransferZero's scheme written out independently: a GET signs
    // the hash of the empty body.
    let url = format!("{}/v1/transactions/tz-1", fake.url());
    let nonce = seen.headers["authorization-nonce"].to_str().unwrap();
    let to_sign = format!("{nonce}&GET&{url}&{}", hex::encode(Sha512::digest(b"")));
    let mut mac = Hmac::<Sha512>::new_from_slice(b"bp-secret").unwrap();
    mac.update(to_sign.as_bytes());
    assert_eq!(seen.headers["authorization-key"], "bp-key");
    assert!(seen.body.is_empty(), "a GET carries no body");
    assert_eq!(
        seen.headers["authorization-signature"].to_str().unwrap(),
        hex::encode(mac.finalize().into_bytes())
    );
    let r: (String, i64, String) = d
        .db()
        .query_row(
            "SELECT status, amount_minor, currency FROM transactions WHERE provider_ref = 'tz-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(r, ("SUCCEEDED".to_string(), 150_000, "KES".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_polls_change_no_state_and_back_off_honouring_retry_after() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake, "")).await;
    insert(&d, "zp-f", "collection", None);
    let path = "/v1/collections/zp-f";
    let failures = [
        ("500", FakeReply::new(500, "oops")),
        (
            "429",
            FakeReply::new(429, "{}").header("retry-after", "600"),
        ),
        ("malformed", FakeReply::new(200, "<html>not json</html>")),
        (
            "no status",
            FakeReply::new(200, r#"{"code":200,"data":{}}"#),
        ),
        ("404", FakeReply::new(404, r#"{"message":"not found"}"#)),
        ("401", FakeReply::new(401, r#"{"message":"bad token"}"#)),
        (
            "slow",
            FakeReply::new(200, zp_status("zp-f", "SUCCEEDED", "1"))
                .delayed(Duration::from_secs(3)),
        ),
        (
            "unknown status",
            FakeReply::new(200, zp_status("zp-f", "PAID?", "1")),
        ),
    ];
    let mut delays = Vec::new();
    for (i, (what, reply)) in failures.into_iter().enumerate() {
        fake.push(path, reply);
        make_due(&d, "zp-f");
        let before = now_ms();
        assert_eq!(
            reconcile::step(&d.ctx).await.unwrap(),
            Step::Worked,
            "{what}"
        );
        let r = row(&d, "zp-f");
        assert_eq!(r.status, "PENDING", "{what} changed the state");
        assert_eq!((r.transitions, r.events), (0, 0), "{what}");
        assert_eq!(r.attempts, i as i64 + 1, "{what}");
        let next = r.next_poll_at_ms.unwrap();
        assert!(next > before, "{what}: rescheduled in the future");
        if what == "429" {
            assert!(
                next >= before + 600_000,
                "Retry-After honoured: {}",
                next - before
            );
        }
        delays.push(next - before);
        let (outcome, error): (String, Option<String>) = d
            .db()
            .query_row(
                "SELECT outcome, error FROM polls ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(outcome, "failed", "{what}");
        assert!(error.is_some(), "{what}");
    }
    // Backoff: 1 min doubling to the 15 min cap (jitter shortens by at most 10%).
    assert!(delays[0] < delays[3], "{delays:?}");
    assert!(delays[7] >= 15 * 60_000 * 9 / 10, "{delays:?}");
    assert!(
        delays.iter().all(|d| *d <= 15 * 60_000 + 1000),
        "{delays:?}"
    );
    // The slow answer timed out: no HTTP status recorded for it.
    let timed_out: Option<i64> = d
        .db()
        .query_row("SELECT http_status FROM polls WHERE attempt = 7", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(timed_out, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_resumes_the_schedule() {
    let fake = FakeProvider::start().await;
    let cfg = zp_config(&fake, "");
    let d = TestDaemon::start(&cfg).await;
    insert(&d, "zp-r", "transfer", None);
    let path = "/v1/transfers/zp-r";
    fake.push(
        path,
        FakeReply::new(200, zp_status("zp-r", "PENDING", "10")),
    );
    fake.push(
        path,
        FakeReply::new(200, zp_status("zp-r", "SUCCEEDED", "10")),
    );
    reconcile::step(&d.ctx).await.unwrap();
    let r = row(&d, "zp-r");
    let next = r.next_poll_at_ms.unwrap();
    assert_eq!((r.status.as_str(), r.attempts), ("PENDING", 1));

    let dir = d.stop().await;
    let d = TestDaemon::start_in(dir, &cfg).await;
    // The persisted time holds after the restart: before it, nothing is due...
    assert_eq!(
        reconcile::step_at(&d.ctx, next - 1).await.unwrap(),
        Step::Idle
    );
    assert_eq!(fake.requests().len(), 1);
    // ...at it, the second poll happens and counts on from the first.
    assert_eq!(
        reconcile::step_at(&d.ctx, next).await.unwrap(),
        Step::Worked
    );
    let r = row(&d, "zp-r");
    assert_eq!((r.status.as_str(), r.attempts), ("SUCCEEDED", 2));
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn open_transactions_past_their_deadline_go_to_review_never_failed() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake, "poll_deadline = \"1h\"")).await;
    insert(&d, "zp-d", "collection", None);
    fake.set_default(FakeReply::new(
        200,
        zp_status("zp-d", "INDETERMINATE", "10"),
    ));
    let now = now_ms();
    reconcile::step_at(&d.ctx, now).await.unwrap();
    let r = row(&d, "zp-d");
    assert_eq!(r.status, "INDETERMINATE");
    let deadline: i64 = d
        .db()
        .query_row("SELECT deadline_at_ms FROM transactions", [], |r| r.get(0))
        .unwrap();
    assert!(
        (deadline - now).abs() <= HOUR_MS + 60_000,
        "{}",
        deadline - now
    );
    assert!(
        r.next_poll_at_ms.unwrap() <= deadline,
        "never scheduled past the deadline"
    );

    let polls_before = fake.requests().len();
    assert_eq!(
        reconcile::step_at(&d.ctx, deadline).await.unwrap(),
        Step::Worked
    );
    let r = row(&d, "zp-d");
    assert_eq!(r.status, "NEEDS_REVIEW");
    assert_eq!(r.reason.as_deref(), Some("DEADLINE_PASSED"));
    assert_eq!(
        fake.requests().len(),
        polls_before,
        "escalation asks no one"
    );
    let (source, note): (String, String) = d
        .db()
        .query_row(
            "SELECT source, note FROM transitions WHERE to_status = 'NEEDS_REVIEW'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (source.as_str(), note.as_str()),
        ("reconciler", "deadline passed")
    );
    assert_eq!(
        d.count("SELECT count(*) FROM events WHERE type = 'transaction.needs_review'"),
        1
    );
    assert_eq!(
        d.count("SELECT count(*) FROM review_queue WHERE item = 'transaction'"),
        1
    );
    assert_eq!(
        d.count("SELECT count(*) FROM transactions WHERE status = 'FAILED'"),
        0
    );
    // Much later, nothing else happens to it.
    assert_eq!(
        reconcile::step_at(&d.ctx, deadline + 48 * HOUR_MS)
            .await
            .unwrap(),
        Step::Idle
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_amount_mismatch_is_held_for_review_not_settled() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake, "")).await;
    insert(&d, "zp-m", "collection", Some((126_600, "UGX")));
    insert(&d, "zp-ok", "collection", Some((500, "UGX")));
    fake.push(
        "/v1/collections/zp-m",
        FakeReply::new(200, zp_status("zp-m", "SUCCEEDED", "126000")),
    );
    fake.push(
        "/v1/collections/zp-ok",
        FakeReply::new(200, zp_status("zp-ok", "SUCCEEDED", "500")),
    );
    reconcile::step(&d.ctx).await.unwrap();
    let r = row(&d, "zp-m");
    assert_eq!(r.status, "NEEDS_REVIEW");
    assert!(r.reason.unwrap().starts_with("AMOUNT_MISMATCH"));
    assert_eq!(
        d.count("SELECT count(*) FROM events WHERE type = 'transaction.succeeded'"),
        1,
        "only the matching one settled"
    );
    assert_eq!(row(&d, "zp-ok").status, "SUCCEEDED");

    // A later signed callback naming the registered amount contradicts the provider's
    // earlier answer; it does not clear the review. Only a person settles it.
    assert_eq!(post_signed(&d, "zp-m", "SUCCEEDED", "126600").await, 200);
    assert_eq!(
        d.count("SELECT count(*) FROM callbacks WHERE provider_ref = 'zp-m'"),
        1
    );
    let r = row(&d, "zp-m");
    assert_eq!(r.status, "NEEDS_REVIEW");
    assert!(r.reason.unwrap().starts_with("AMOUNT_MISMATCH"));
    assert_eq!(r.events, 1, "only the needs_review event");

    // Nor does a later FAILED: the provider contradicts its own success of another
    // amount, and money may have moved. It is recorded as a conflict for the reviewer.
    assert_eq!(post_signed(&d, "zp-m", "FAILED", "126600").await, 200);
    let r = row(&d, "zp-m");
    assert_eq!(r.status, "NEEDS_REVIEW");
    assert!(r.reason.unwrap().starts_with("AMOUNT_MISMATCH"));
    assert_eq!(
        r.events, 1,
        "the merchant hears nothing until a person decides"
    );
    assert_eq!(
        d.count(
            "SELECT count(*) FROM review_queue
              WHERE item = 'conflict' AND provider_ref = 'zp-m' AND status = 'FAILED'"
        ),
        1
    );
    let id: i64 = d
        .db()
        .query_row(
            "SELECT id FROM transactions WHERE provider_ref = 'zp-m'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    d.ctx
        .store
        .write(move |c| {
            payhook::store::review::resolve(
                c,
                id,
                payhook::state::Status::Succeeded,
                "customer paid the difference in cash",
                now_ms(),
            )
        })
        .await
        .unwrap();
    assert_eq!(row(&d, "zp-m").status, "SUCCEEDED");
}

/// A settled FAILED then reported paid, with another amount than registered: money moved
/// and the merchant believes it failed, so it is a conflict (an event, counted), not a
/// stale report.
#[tokio::test(flavor = "multi_thread")]
async fn a_payment_of_another_amount_after_failed_is_a_conflict() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake, "")).await;
    insert(&d, "zp-fx", "collection", Some((126_600, "UGX")));
    for (status, amount) in [("FAILED", "126600"), ("SUCCEEDED", "1000")] {
        assert_eq!(post_signed(&d, "zp-fx", status, amount).await, 200);
    }
    let r = row(&d, "zp-fx");
    assert_eq!((r.status.as_str(), r.events), ("FAILED", 2));
    assert_eq!(
        d.count(
            "SELECT count(*) FROM events WHERE type = 'transaction.conflict'
                AND json_extract(payload, '$.data.reported_status') = 'SUCCEEDED'"
        ),
        1
    );
    assert_eq!(
        d.ctx
            .metrics
            .counter("payhook_conflicts_total", &[("provider", "zengapay")]),
        1
    );
}

/// A payment already in review because its deadline passed, then reported paid with
/// another amount: the review takes the mismatch as its reason (a no-op would lose it),
/// and a later FAILED is then a conflict beside it, not a settlement.
#[tokio::test(flavor = "multi_thread")]
async fn a_review_for_a_passed_deadline_learns_of_an_amount_mismatch() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake, "")).await;
    insert(&d, "zp-late", "collection", Some((126_600, "UGX")));
    d.db()
        .execute(
            "UPDATE transactions SET status = 'NEEDS_REVIEW', reason = 'DEADLINE_PASSED'
              WHERE provider_ref = 'zp-late'",
            [],
        )
        .unwrap();
    for (status, amount) in [("SUCCEEDED", "1000"), ("FAILED", "1000")] {
        assert_eq!(post_signed(&d, "zp-late", status, amount).await, 200);
        let r = row(&d, "zp-late");
        assert_eq!(r.status, "NEEDS_REVIEW", "after {status}");
        let reason = r.reason.unwrap();
        assert!(
            reason.starts_with("AMOUNT_MISMATCH") && reason.contains("1000"),
            "after {status}: {reason}"
        );
        assert_eq!(r.events, 0, "after {status}");
    }
    assert_eq!(
        d.count(
            "SELECT count(*) FROM review_queue
              WHERE item = 'conflict' AND provider_ref = 'zp-late' AND status = 'FAILED'"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unconfirmed_success_is_confirmed_by_a_poll() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake, "")).await;
    insert(&d, "zp-u", "collection", None);
    d.db()
        .execute(
            "UPDATE transactions SET unconfirmed_status = 'SUCCEEDED' WHERE provider_ref = 'zp-u'",
            [],
        )
        .unwrap();
    fake.push(
        "/v1/collections/zp-u",
        FakeReply::new(200, zp_status("zp-u", "PENDING", "10")),
    );
    fake.push(
        "/v1/collections/zp-u",
        FakeReply::new(200, zp_status("zp-u", "SUCCEEDED", "10")),
    );
    reconcile::step(&d.ctx).await.unwrap();
    let r = row(&d, "zp-u");
    assert_eq!(
        (r.status.as_str(), r.unconfirmed.as_deref(), r.events),
        ("PENDING", Some("SUCCEEDED"), 0),
        "a PENDING answer does not confirm"
    );
    make_due(&d, "zp-u");
    reconcile::step(&d.ctx).await.unwrap();
    let r = row(&d, "zp-u");
    assert_eq!(
        (r.status.as_str(), r.unconfirmed, r.events),
        ("SUCCEEDED", None, 1)
    );
}

/// Posts a ZengaPay callback with `body` signed over `signed` (the body itself, or the
/// fields a field variant signs); returns the HTTP status.
async fn post_zengapay(d: &TestDaemon, body: &str, signed: &str) -> u16 {
    let sig = crate::support::sign::zp_sign("zp-secret", signed.as_bytes());
    crate::support::http::post(
        d.addr,
        "/callbacks/zengapay",
        &[("X-ZENGAPAY-SIGNATURE", sig.as_str())],
        body.as_bytes(),
    )
    .await
    .status
}

/// Posts a ZengaPay callback signed over its raw body; returns the HTTP status.
async fn post_signed(d: &TestDaemon, reference: &str, status: &str, amount: &str) -> u16 {
    let body = crate::support::sign::zp_body(reference, status, amount);
    post_zengapay(d, &body, &body).await
}

/// Posts a ZengaPay callback signed the way ZengaPay's plugin signs: over reference,
/// msisdn and the amount with two decimals, not over the body.
async fn post_field_signed(d: &TestDaemon, reference: &str, status: &str) -> u16 {
    let body = crate::support::sign::zp_body(reference, status, "126600");
    post_zengapay(d, &body, &format!("{reference}256772000001126600.00")).await
}

/// A field signature does not cover the status (the PENDING callback's signature fits
/// the SUCCEEDED body of the same payment), so the success it reports is held until
/// ZengaPay's status endpoint confirms it, unless the section says otherwise.
#[tokio::test(flavor = "multi_thread")]
async fn a_field_signed_zengapay_success_waits_for_the_status_query() {
    // ZengaPay's references are UUIDs: a field signature is only accepted on one.
    const F: &str = "0f0f0f0f-0000-4000-8000-00000000000f";
    const G: &str = "0f0f0f0f-0000-4000-8000-00000000000a";
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake, "")).await;
    assert_eq!(post_field_signed(&d, F, "SUCCEEDED").await, 200);
    assert_eq!(
        d.count("SELECT count(*) FROM callbacks WHERE auth = 'hmac-sha256:fields-amount-2dp' AND NOT signed"),
        1
    );
    let r = row(&d, F);
    assert_eq!(
        (r.status.as_str(), r.unconfirmed.as_deref(), r.events),
        ("PENDING", Some("SUCCEEDED"), 0),
        "held, not settled"
    );
    fake.push(
        &format!("/v1/collections/{F}"),
        FakeReply::new(200, zp_status(F, "SUCCEEDED", "126600")),
    );
    reconcile::step(&d.ctx).await.unwrap();
    let r = row(&d, F);
    assert_eq!(
        (r.status.as_str(), r.unconfirmed, r.events),
        ("SUCCEEDED", None, 1)
    );

    // Trusting such callbacks as they are is the operator's choice.
    let d = TestDaemon::start(&zp_config(&fake, "confirm_unsigned = false")).await;
    assert_eq!(post_field_signed(&d, G, "SUCCEEDED").await, 200);
    let r = row(&d, G);
    assert_eq!((r.status.as_str(), r.events), ("SUCCEEDED", 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_holds_under_a_backlog_of_thousands() {
    const RATE_PER_MINUTE: usize = 1200; // 20 a second, burst 20 (one second's worth)
    const BACKLOG: usize = 3000;
    let fake = FakeProvider::start().await;
    let cfg = format!(
        "[providers.zengapay]\nsecret_hash = \"s\"\napi_token = \"t\"\nbase_url = \"{}\"\n\
         poll_rate_per_minute = {RATE_PER_MINUTE}\n[reconciler]\nenabled = false\n",
        fake.url()
    );
    let d = TestDaemon::start(&cfg).await;
    fake.set_default(FakeReply::new(
        200,
        r#"{"code":200,"data":{"transactionStatus":"PENDING"}}"#,
    ));
    {
        let mut db = d.db();
        let tx = db.transaction().unwrap();
        for i in 0..BACKLOG {
            tx.execute(
                "INSERT INTO transactions (provider, provider_ref, kind) VALUES ('zengapay', ?1, 'collection')",
                [format!("bulk-{i}")],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    // Two steps: every row stays due, so each step takes a full batch.
    reconcile::step(&d.ctx).await.unwrap();
    reconcile::step(&d.ctx).await.unwrap();
    let seen = fake.requests();
    let n = seen.len();
    assert!(n >= 100, "two full batches went out: {n}");
    let per_second = RATE_PER_MINUTE / 60;
    let burst = per_second;
    // In any one-second window: at most the burst plus one second's replenishment (+1
    // for the window's closed ends).
    for (i, first) in seen.iter().enumerate() {
        let in_window = seen[i..]
            .iter()
            .take_while(|s| s.at.duration_since(first.at) < Duration::from_secs(1))
            .count();
        assert!(
            in_window <= burst + per_second + 1,
            "{in_window} requests within 1s of request {i}"
        );
    }
    // Overall: never faster than the burst plus the rate.
    let span = seen[n - 1].at.duration_since(seen[0].at).as_secs_f64();
    assert!(
        (n as f64) <= burst as f64 + span * per_second as f64 + 1.0,
        "{n} requests in {span:.2}s"
    );
    assert_eq!(
        d.count("SELECT count(*) FROM transactions WHERE poll_attempts = 1"),
        n as i64
    );
    assert_eq!(d.count("SELECT count(*) FROM polls"), n as i64);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_background_loop_settles_a_merchant_insert_without_being_driven() {
    let fake = FakeProvider::start().await;
    let cfg = format!(
        "[providers.zengapay]\nsecret_hash = \"s\"\napi_token = \"t\"\nbase_url = \"{}\"\n\
         [reconciler]\nenabled = true\n",
        fake.url()
    );
    let d = TestDaemon::start(&cfg).await;
    fake.push(
        "/v1/collections/zp-bg",
        FakeReply::new(200, zp_status("zp-bg", "SUCCEEDED", "10")),
    );
    insert(&d, "zp-bg", "collection", None);
    d.ctx.wake_reconciler.notify_one();
    fake.wait_for(1, Duration::from_secs(20)).await;
    // The reconciler pokes the forwarder once the settlement is committed.
    tokio::time::timeout(Duration::from_secs(20), d.ctx.wake_forwarder.notified())
        .await
        .expect("the settlement was announced");
    assert_eq!(row(&d, "zp-bg").status, "SUCCEEDED");
    d.stop().await;
}

const ADMIN_TOKEN: &str = "admin-token-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_endpoint_registers_payments_and_never_regresses_them() {
    use crate::support::http::request;
    let fake = FakeProvider::start().await;
    let cfg = zp_config(
        &fake,
        &format!("[admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"{ADMIN_TOKEN}\"\n"),
    );
    let d = TestDaemon::start(&cfg).await;
    let admin = d.admin_addr.unwrap();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let post = |body: String, token: Option<String>| async move {
        let headers: Vec<(&str, String)> = token
            .map(|t| vec![("Authorization", t)])
            .unwrap_or_default();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request(admin, "POST", "/v1/transactions", &headers, body.as_bytes()).await
    };
    let body = r#"{"provider":"zengapay","provider_ref":"zp-a","kind":"collection","amount":"126600","currency":"UGX","merchant_ref":"order-7"}"#;

    assert_eq!(post(body.into(), None).await.status, 401);
    assert_eq!(
        post(body.into(), Some("Bearer wrong-token-0123456789".into()))
            .await
            .status,
        401
    );
    assert_eq!(
        d.count("SELECT count(*) FROM transactions"),
        0,
        "nothing registered without the token"
    );
    // The callback listener does not serve the admin API.
    assert_eq!(
        request(
            d.addr,
            "POST",
            "/v1/transactions",
            &[("Authorization", &auth)],
            body.as_bytes()
        )
        .await
        .status,
        404
    );

    let created = post(body.into(), Some(auth.clone())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        created.body.contains(r#""status":"PENDING""#),
        "{}",
        created.body
    );
    let (expected, currency, merchant_ref, next): (i64, String, String, i64) = d
        .db()
        .query_row(
            "SELECT expected_amount_minor, expected_currency, merchant_ref, next_poll_at_ms FROM transactions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (expected, currency.as_str(), merchant_ref.as_str()),
        (126_600, "UGX", "order-7")
    );
    assert!(next > now_ms(), "first poll after poll_first_after");
    assert_eq!(
        d.count(
            "SELECT count(*) FROM transitions WHERE source = 'merchant' AND to_status = 'PENDING'"
        ),
        1
    );
    // The whole row and its history, to show that what follows changes nothing.
    let snapshot = || -> String {
        d.db()
            .query_row(
                "SELECT json_array(status, expected_amount_minor, expected_currency, merchant_ref,
                        amount_minor, currency, reason, unconfirmed_status, next_poll_at_ms,
                        (SELECT count(*) FROM transitions), (SELECT count(*) FROM events))
                   FROM transactions WHERE provider_ref = 'zp-a'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let registered = snapshot();
    // Again: known, unchanged.
    assert_eq!(post(body.into(), Some(auth.clone())).await.status, 200);
    assert_eq!(
        snapshot(),
        registered,
        "a repeated registration changed the row"
    );
    // Another amount for the same payment is refused, and changes nothing.
    let other = body.replace("126600", "126000");
    assert_eq!(post(other, Some(auth.clone())).await.status, 409);
    assert_eq!(
        snapshot(),
        registered,
        "a refused registration changed the row"
    );
    let bad = post(r#"{"provider":"zengapay"}"#.into(), Some(auth.clone())).await;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // A settled transaction is never regressed by a registration; blanks are filled.
    d.db()
        .execute(
            "INSERT INTO transactions (provider, provider_ref, kind, status) VALUES ('zengapay', 'zp-done', 'collection', 'SUCCEEDED')",
            [],
        )
        .unwrap();
    let late = r#"{"provider":"zengapay","provider_ref":"zp-done","merchant_ref":"order-8"}"#;
    let r = post(late.into(), Some(auth.clone())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(r#""status":"SUCCEEDED""#), "{}", r.body);
    let (status, merchant_ref): (String, String) = d
        .db()
        .query_row(
            "SELECT status, merchant_ref FROM transactions WHERE provider_ref = 'zp-done'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (status.as_str(), merchant_ref.as_str()),
        ("SUCCEEDED", "order-8")
    );

    // The registered amount is what the poll is checked against.
    make_due(&d, "zp-a");
    fake.push(
        "/v1/collections/zp-a",
        FakeReply::new(200, zp_status("zp-a", "SUCCEEDED", "126000")),
    );
    reconcile::step(&d.ctx).await.unwrap();
    assert_eq!(row(&d, "zp-a").status, "NEEDS_REVIEW");
}

const DARAJA_PASSKEY: &str = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";

fn daraja_config(fake: &FakeProvider) -> String {
    format!(
        "[providers.daraja]\ncallback_tokens = [\"daraja-path-token-0123456789\"]\n\
         allowed_ips = [\"127.0.0.1\"]\nallowlist_authenticates = false\n\
         consumer_key = \"ck\"\nconsumer_secret = \"cs\"\n\
         shortcode = \"174379\"\npasskey = \"{DARAJA_PASSKEY}\"\nbase_url = \"{}\"\n\
         poll_rate_per_minute = 600\n",
        fake.url()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daraja_callback_success_is_held_until_the_stk_query_confirms_it() {
    use base64::Engine;
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&daraja_config(&fake)).await;
    let body = std::fs::read(format!(
        "{}/fixtures/daraja/stk_success.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let reply = crate::support::http::post(
        d.addr,
        "/callbacks/daraja/daraja-path-token-0123456789",
        &[],
        &body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reference = "ws_CO_191220191020363925";
    let r = row(&d, reference);
    assert_eq!(
        (r.status.as_str(), r.unconfirmed.as_deref()),
        ("PENDING", Some("SUCCEEDED"))
    );

    fake.push(
        "/oauth/v1/generate?grant_type=client_credentials",
        FakeReply::new(
            200,
            r#"{"access_token":"daraja-bearer","expires_in":"3599"}"#,
        ),
    );
    let query = "/mpesa/stkpushquery/v1/query";
    fake.push(
        query,
        FakeReply::new(
            500,
            format!(r#"{{"requestId":"{reference}","errorCode":"500.001.1001","errorMessage":"The transaction is being processed"}}"#),
        ),
    );
    fake.push(
        query,
        FakeReply::new(
            200,
            format!(r#"{{"ResponseCode":"0","ResponseDescription":"ok","MerchantRequestID":"m","CheckoutRequestID":"{reference}","ResultCode":"0","ResultDesc":"The service request is processed successfully."}}"#),
        ),
    );
    assert_eq!(reconcile::step(&d.ctx).await.unwrap(), Step::Worked);
    let r = row(&d, reference);
    assert_eq!(
        (r.status.as_str(), r.unconfirmed.as_deref(), r.events),
        ("PENDING", Some("SUCCEEDED"), 0),
        "\"being processed\" is PENDING, not a failure and not a confirmation"
    );
    let outcome: String = d
        .db()
        .query_row("SELECT outcome FROM polls", [], |r| r.get(0))
        .unwrap();
    assert_eq!(outcome, "status");

    make_due(&d, reference);
    reconcile::step(&d.ctx).await.unwrap();
    let r = row(&d, reference);
    assert_eq!(
        (r.status.as_str(), r.unconfirmed, r.events),
        ("SUCCEEDED", None, 1)
    );

    let seen = fake.requests();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/oauth/v1/generate?grant_type=client_credentials",
            query,
            query
        ],
        "the token is fetched once and cached"
    );
    assert_eq!(seen[0].headers["authorization"], "Basic Y2s6Y3M=");
    for q in &seen[1..] {
        assert_eq!(q.method, "POST");
        assert_eq!(q.headers["authorization"], "Bearer daraja-bearer");
        let b: serde_json::Value = serde_json::from_slice(&q.body).unwrap();
        let ts = b["Timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), 14);
        let password =
            base64::engine::general_purpose::STANDARD.encode(format!("174379{DARAJA_PASSKEY}{ts}"));
        assert_eq!(b["Password"], password.as_str());
        assert_eq!(b["BusinessShortCode"], "174379");
        assert_eq!(b["CheckoutRequestID"], reference);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_daraja_token_is_a_failed_poll_and_changes_nothing() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&daraja_config(&fake)).await;
    // A C2B payment has no synchronous query: parked until its deadline, with no
    // request at all (not even for a token).
    d.db()
        .execute(
            "INSERT INTO transactions (provider, provider_ref, kind) VALUES ('daraja', 'RKTQDM7W6S', 'c2b')",
            [],
        )
        .unwrap();
    assert_eq!(reconcile::step(&d.ctx).await.unwrap(), Step::Worked);
    assert!(fake.requests().is_empty());
    let (attempts, next, deadline): (i64, i64, i64) = d
        .db()
        .query_row(
            "SELECT poll_attempts, next_poll_at_ms, deadline_at_ms FROM transactions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // Parked for poll_max_interval (5 min for Daraja), never past the deadline.
    assert_eq!(attempts, 0);
    assert!(
        next <= deadline && next >= now_ms() + 4 * 60_000,
        "{next} {deadline}"
    );
    d.db()
        .execute(
            "INSERT INTO transactions (provider, provider_ref, kind) VALUES ('daraja', 'ws_CO_x', 'stk')",
            [],
        )
        .unwrap();
    fake.push(
        "/oauth/v1/generate?grant_type=client_credentials",
        FakeReply::new(
            400,
            r#"{"errorCode":"400.008.01","errorMessage":"Invalid Authentication passed"}"#,
        ),
    );
    assert_eq!(reconcile::step(&d.ctx).await.unwrap(), Step::Worked);
    let r = row(&d, "ws_CO_x");
    assert_eq!(
        (r.status.as_str(), r.attempts, r.transitions),
        ("PENDING", 1, 0)
    );
    let error: String = d
        .db()
        .query_row("SELECT error FROM polls", [], |r| r.get(0))
        .unwrap();
    assert!(error.contains("access token"), "{error}");
    assert_eq!(fake.requests().len(), 1, "no status query without a token");
}

#[tokio::test(flavor = "multi_thread")]
async fn jenga_details_queries_are_rsa_signed_and_settle() {
    let fake = FakeProvider::start().await;
    let dir = tempfile::tempdir().unwrap();
    crate::support::sign::jenga_key_in(dir.path());
    let cfg = format!(
        "[providers.jenga]\nipn_username = \"u\"\nipn_password = \"p\"\nmerchant_code = \"0011547896523\"\n\
         api_key = \"jenga-api-key\"\nconsumer_secret = \"jenga-consumer-secret\"\n\
         private_key_file = \"jenga.pem\"\nbase_url = \"{}\"\npoll_rate_per_minute = 600\n",
        fake.url()
    );
    let d = TestDaemon::start_in(dir, &cfg).await;
    let reference = "328411183176";
    d.db()
        .execute(
            "INSERT INTO transactions (provider, provider_ref, kind) VALUES ('jenga', ?1, 'ipn')",
            [reference],
        )
        .unwrap();
    fake.push(
        "/authentication/api/v3/authenticate/merchant",
        FakeReply::new(200, r#"{"accessToken":"jenga-bearer","expiresIn":3600}"#),
    );
    let details = format!("/v3-apis/transaction-api/v3.0/transactions/details/{reference}");
    let answer = |code: i64| {
        format!(
            r#"{{"status":true,"code":0,"message":"success","data":{{"state":"x","stateCode":{code},"code":0,"transactionReference":"{reference}"}}}}"#
        )
    };
    fake.push(&details, FakeReply::new(200, answer(-1)));
    fake.push(&details, FakeReply::new(200, answer(2)));
    reconcile::step(&d.ctx).await.unwrap();
    assert_eq!(row(&d, reference).status, "PENDING");
    make_due(&d, reference);
    reconcile::step(&d.ctx).await.unwrap();
    let r = row(&d, reference);
    assert_eq!(
        (r.status.as_str(), r.attempts, r.events),
        ("SUCCEEDED", 2, 1)
    );

    let seen = fake.requests();
    assert_eq!(seen.len(), 3, "one token request, two queries");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].headers["api-key"], "jenga-api-key");
    let token_body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(token_body["merchantCode"], "0011547896523");
    // The signature openssl computed for this reference with the same key
    // (fixtures/README.md).
    let expected = std::fs::read_to_string(format!(
        "{}/fixtures/jenga/signature_328411183176.b64",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    for q in &seen[1..] {
        assert_eq!(q.headers["authorization"], "Bearer jenga-bearer");
        assert_eq!(q.headers["signature"], expected.trim());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_statement_sweep_records_unknown_transactions_and_polling_settles_them() {
    use payhook::providers::ProviderId;
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake, "sweep_lookback = \"2h\"")).await;
    insert(&d, "known-1", "collection", None);
    let entry = |reference: &str, status: &str, designation: &str| {
        format!(
            r#"{{"transactionReference":"{reference}","transactionStatus":"{status}","amount":5000,"msisdn":"256772000001","currencyCode":"UGX-MTNMM","transactionExternalReference":"order-{reference}","transactionEntryGeneralType":"CREDIT","transactionEntryDesignation":"{designation}","transactionEntrySpecificType":"INBOUND_MSISDN_CREDIT"}}"#
        )
    };
    let page = |n: u32, entries: Vec<String>| {
        format!(
            r#"{{"code":200,"status":"OK","statement":{{"current_page":{n},"last_page":2,"data":[{}]}}}}"#,
            entries.join(",")
        )
    };
    let statement = "/v1/account/statement";
    fake.push(
        statement,
        FakeReply::new(
            200,
            page(
                1,
                vec![
                    entry("known-1", "SUCCEEDED", "TRANSACTION"),
                    entry("found-1", "SUCCEEDED", "TRANSACTION"),
                    entry("charge-1", "SUCCEEDED", "CHARGES"),
                ],
            ),
        ),
    );
    fake.push(
        statement,
        FakeReply::new(
            200,
            page(2, vec![entry("found-2", "FAILED", "TRANSACTION")]),
        ),
    );
    let now = now_ms();
    let swept = reconcile::sweep(&d.ctx, ProviderId::ZengaPay, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((swept.pages, swept.listed, swept.recorded), (2, 3, 2));
    let seen = fake.requests();
    assert!(seen[1].target.contains("page=2"), "{}", seen[1].target);
    assert!(seen[0].target.contains("designation=TRANSACTION"));
    assert_eq!(seen[0].headers["authorization"], "Bearer zp-token");
    for reference in ["found-1", "found-2"] {
        let r = row(&d, reference);
        assert_eq!(
            (r.status.as_str(), r.transitions, r.events),
            ("PENDING", 1, 0)
        );
        assert!(
            r.next_poll_at_ms.unwrap() <= now,
            "due for a status query now"
        );
    }
    assert_eq!(
        d.count("SELECT count(*) FROM transitions WHERE source = 'reconciler' AND note = 'found in the provider''s statement'"),
        2
    );
    assert_eq!(
        d.count("SELECT count(*) FROM transactions WHERE provider_ref = 'charge-1'"),
        0
    );
    assert_eq!(
        row(&d, "known-1").transitions,
        0,
        "a known transaction is left alone"
    );

    // The status query settles what the sweep found, as for any transaction.
    fake.push(
        "/v1/collections/found-1",
        FakeReply::new(200, zp_status("found-1", "SUCCEEDED", "5000")),
    );
    fake.push(
        "/v1/collections/found-2",
        FakeReply::new(200, zp_status("found-2", "FAILED", "5000")),
    );
    fake.set_default(FakeReply::new(
        200,
        r#"{"code":200,"data":{"transactionStatus":"PENDING"}}"#,
    ));
    reconcile::step(&d.ctx).await.unwrap();
    assert_eq!(row(&d, "found-1").status, "SUCCEEDED");
    assert_eq!(row(&d, "found-2").status, "FAILED");

    // Sweeping the same window again finds nothing new.
    fake.push(
        statement,
        FakeReply::new(
            200,
            page(2, vec![entry("found-2", "FAILED", "TRANSACTION")]),
        ),
    );
    let again = reconcile::sweep(&d.ctx, ProviderId::ZengaPay, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.listed, again.recorded), (1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_sweep_records_nothing() {
    use payhook::providers::ProviderId;
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake, "")).await;
    fake.push("/v1/account/statement", FakeReply::new(500, "oops"));
    let err = reconcile::sweep(&d.ctx, ProviderId::ZengaPay, now_ms())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    fake.push("/v1/account/statement", FakeReply::new(200, "<html>"));
    assert!(reconcile::sweep(&d.ctx, ProviderId::ZengaPay, now_ms())
        .await
        .is_err());
    assert_eq!(d.count("SELECT count(*) FROM transactions"), 0);
    // No statement to sweep for a provider without one.
    assert!(reconcile::sweep(&d.ctx, ProviderId::BitPesa, now_ms())
        .await
        .unwrap()
        .is_none());
}

/// A held success under a review that no status query may settle (here an amount
/// mismatch) leaves the reconciler's queue at once, untouched for the reviewer, and is
/// counted, so that an operator's alert can see it.
#[tokio::test(flavor = "multi_thread")]
async fn a_held_success_no_poll_may_settle_is_left_for_review_and_counted() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake, "")).await;
    d.db()
        .execute(
            "INSERT INTO transactions (provider, provider_ref, kind, status, reason,
                                       unconfirmed_status, next_poll_at_ms)
             VALUES ('zengapay', 'zp-h', 'collection', 'NEEDS_REVIEW',
                     'AMOUNT_MISMATCH: registered 500 UGX, provider reported 400 UGX',
                     'SUCCEEDED', 0)",
            [],
        )
        .unwrap();
    reconcile::step(&d.ctx).await.unwrap();
    assert!(fake.requests().is_empty(), "no status query for it");
    let r = row(&d, "zp-h");
    assert_eq!(r.status, "NEEDS_REVIEW");
    assert_eq!(
        r.unconfirmed.as_deref(),
        Some("SUCCEEDED"),
        "the hold stays visible"
    );
    assert_eq!(r.next_poll_at_ms, None, "out of the queue");
    let metrics = crate::support::http::get(d.addr, "/metrics").await.body;
    assert!(
        metrics.contains(r#"payhook_held_reviews_left_total{provider="zengapay"} 1"#),
        "{metrics}"
    );
    // Counted once: the row is not claimed again.
    reconcile::step(&d.ctx).await.unwrap();
    let metrics = crate::support::http::get(d.addr, "/metrics").await.body;
    assert!(
        metrics.contains(r#"payhook_held_reviews_left_total{provider="zengapay"} 1"#),
        "{metrics}"
    );
}
