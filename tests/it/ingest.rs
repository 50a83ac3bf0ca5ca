//! Verified, deduplicated, durable callbacks for ZengaPay and BitPesa.

use crate::support::http::{get, post, request};
use crate::support::sign::{bp_sign, zp_sign};
use crate::support::TestDaemon;
use serde_json::Value;

const ZP_SECRET: &str = "zp-test-secret";
const BP_BASE: &str = "https://hooks.example.com";

fn zp_config() -> String {
    format!("[providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\n")
}

fn bp_config() -> String {
    format!("public_base_url = \"{BP_BASE}\"\n[providers.bitpesa]\napi_key = \"bp-key\"\napi_secret = \"bp-secret\"\n")
}

fn zp_body(event: &str, reference: &str, status: &str, amount: &str) -> String {
    serde_json::json!({"event": event, "data": {
        "transactionStatus": status, "transactionReference": reference,
        "transactionExternalReference": format!("order-{reference}"), "currencyCode": "UGX-MTNMM",
        "amount": amount, "msisdn": "256772000001"}})
    .to_string()
}

async fn zp_post(d: &TestDaemon, body: &str) -> crate::support::http::Reply {
    let sig = zp_sign(ZP_SECRET, body.as_bytes());
    post(
        d.addr,
        "/callbacks/zengapay",
        &[("X-ZENGAPAY-SIGNATURE", &sig)],
        body.as_bytes(),
    )
    .await
}

async fn bp_post(
    d: &TestDaemon,
    nonce: &str,
    url: &str,
    body: &str,
) -> crate::support::http::Reply {
    let sig = bp_sign("bp-secret", nonce, url, body.as_bytes());
    post(
        d.addr,
        "/callbacks/bitpesa",
        &[
            ("Authorization-Key", "bp-key"),
            ("Authorization-Nonce", nonce),
            ("Authorization-Signature", &sig),
        ],
        body.as_bytes(),
    )
    .await
}

fn bp_body(id: &str, event: &str, state: &str) -> String {
    serde_json::json!({"webhook": "w-1", "event": event,
        "object": {"id": id, "state": state, "external_id": format!("ext-{id}"),
                   "input_amount": "1500.00", "input_currency": "KES"}})
    .to_string()
}

fn headers_of(v: &Value) -> Vec<(String, String)> {
    v["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// A refused vector: 401, nothing stored, and the refusal counted under its reason.
fn assert_refused(d: &TestDaemon, provider: &str, v: &Value, reply: &crate::support::http::Reply) {
    let name = v["name"].as_str().unwrap();
    assert_eq!(reply.status, 401, "{name}");
    assert_eq!(
        d.count("SELECT count(*) FROM callbacks"),
        0,
        "{name}: nothing stored"
    );
    let reason = v["refusal"].as_str().unwrap();
    let refused = d.ctx.metrics.counter(
        "payhook_auth_failures_total",
        &[("provider", provider), ("reason", reason)],
    );
    assert_eq!(refused, 1, "{name}: counted as {reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zengapay_vectors_verify_or_are_refused_by_the_daemon() {
    let vectors: Vec<Value> = serde_json::from_str(include_str!(
        "../../fixtures/zengapay/signature_vectors.json"
    ))
    .unwrap();
    assert!(vectors.len() >= 8);
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let d = TestDaemon::start(&format!(
            "[providers.zengapay]\nsecret_hash = \"{}\"\n",
            v["secret"].as_str().unwrap()
        ))
        .await;
        let headers = headers_of(&v);
        let hdrs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let reply = post(
            d.addr,
            "/callbacks/zengapay",
            &hdrs,
            v["body"].as_str().unwrap().as_bytes(),
        )
        .await;
        if v["verdict"] == "accept" {
            assert_eq!(reply.status, 200, "{name}: {}", reply.body);
            let auth: String = d
                .db()
                .query_row("SELECT auth FROM callbacks", [], |r| r.get(0))
                .unwrap();
            assert_eq!(
                auth,
                v["auth"].as_str().unwrap(),
                "{name}: recorded variant"
            );
        } else {
            assert_refused(&d, "zengapay", &v, &reply);
        }
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitpesa_vectors_including_the_published_one_verify_or_are_refused() {
    let vectors: Vec<Value> = serde_json::from_str(include_str!(
        "../../fixtures/bitpesa/signature_vectors.json"
    ))
    .unwrap();
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let cfg = format!(
            "[providers.bitpesa]\napi_key = \"{}\"\napi_secret = \"{}\"\nwebhook_url = \"{}\"\n",
            v["api_key"].as_str().unwrap(),
            v["secret"].as_str().unwrap(),
            v["url"].as_str().unwrap()
        );
        let d = TestDaemon::start(&cfg).await;
        let headers = headers_of(&v);
        let hdrs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let reply = post(
            d.addr,
            "/callbacks/bitpesa",
            &hdrs,
            v["body"].as_str().unwrap().as_bytes(),
        )
        .await;
        if v["verdict"] == "accept" {
            assert_eq!(reply.status, 200, "{name}: {}", reply.body);
            let (parse_error, body): (Option<String>, Vec<u8>) = d
                .db()
                .query_row("SELECT parse_error, body FROM callbacks", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .unwrap();
            assert_eq!(
                body,
                v["body"].as_str().unwrap().as_bytes(),
                "{name}: raw body kept verbatim"
            );
            assert_eq!(
                parse_error.is_none(),
                v["parsed"].as_bool().unwrap(),
                "{name}: {parse_error:?}"
            );
        } else {
            assert_refused(&d, "bitpesa", &v, &reply);
        }
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_sets_the_transaction_and_writes_one_event() {
    let d = TestDaemon::start(&zp_config()).await;
    let body = zp_body("collection.success", "ref-1", "SUCCEEDED", "126600");
    assert_eq!(zp_post(&d, &body).await.status, 200);
    let (status, amount, currency, merchant_ref): (String, i64, String, String) = d
        .db()
        .query_row(
            "SELECT status, amount_minor, currency, merchant_ref FROM transactions WHERE provider = 'zengapay' AND provider_ref = 'ref-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (
            status.as_str(),
            amount,
            currency.as_str(),
            merchant_ref.as_str()
        ),
        ("SUCCEEDED", 126600, "UGX", "order-ref-1")
    );
    assert_eq!(
        d.count("SELECT count(*) FROM events WHERE type = 'transaction.succeeded'"),
        1
    );
    assert_eq!(d.count("SELECT count(*) FROM transitions WHERE source = 'callback' AND callback_id IS NOT NULL"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_is_stored_once_with_its_delivery_count() {
    let d = TestDaemon::start(&zp_config()).await;
    let body = zp_body("collection.success", "ref-dup", "SUCCEEDED", "5000");
    for _ in 0..3 {
        assert_eq!(zp_post(&d, &body).await.status, 200);
    }
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 1);
    assert_eq!(d.count("SELECT deliveries FROM callbacks"), 3);
    assert_eq!(d.count("SELECT count(*) FROM transitions"), 1);
    assert_eq!(d.count("SELECT count(*) FROM events"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_duplicates_store_one_and_change_state_once() {
    let d = TestDaemon::start(&zp_config()).await;
    let body = zp_body("collection.success", "ref-storm", "SUCCEEDED", "7000");
    let sig = zp_sign(ZP_SECRET, body.as_bytes());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (addr, body, sig) = (d.addr, body.clone(), sig.clone());
        tasks.spawn(async move {
            post(
                addr,
                "/callbacks/zengapay",
                &[("X-ZENGAPAY-SIGNATURE", &sig)],
                body.as_bytes(),
            )
            .await
            .status
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 1);
    assert_eq!(d.count("SELECT deliveries FROM callbacks"), 20);
    assert_eq!(d.count("SELECT count(*) FROM transactions"), 1);
    assert_eq!(d.count("SELECT count(*) FROM transitions"), 1);
    assert_eq!(d.count("SELECT count(*) FROM events"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitpesa_signs_the_public_url_and_a_replayed_nonce_with_another_body_is_refused() {
    let d = TestDaemon::start(&bp_config()).await;
    let url = format!("{BP_BASE}/callbacks/bitpesa");
    let paid = bp_body("txn-1", "transaction.paid_out", "paid");
    // Signed over the Host the daemon saw (not the public URL): refused.
    let local_url = format!("http://{}/callbacks/bitpesa", d.addr);
    assert_eq!(bp_post(&d, "nonce-0", &local_url, &paid).await.status, 401);

    assert_eq!(bp_post(&d, "nonce-1", &url, &paid).await.status, 200);
    // The same nonce with the same body is the provider retrying.
    assert_eq!(bp_post(&d, "nonce-1", &url, &paid).await.status, 200);
    assert_eq!(d.count("SELECT deliveries FROM callbacks"), 2);
    // The same nonce with another (correctly signed) body is a replay.
    let other = bp_body("txn-2", "transaction.paid_out", "paid");
    let replay = bp_post(&d, "nonce-1", &url, &other).await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 1);
    assert_eq!(
        d.count("SELECT count(*) FROM transactions WHERE provider_ref = 'txn-2'"),
        0
    );
    // With a fresh nonce it is simply a new callback.
    assert_eq!(bp_post(&d, "nonce-2", &url, &other).await.status, 200);
    let (status, amount): (String, i64) = d
        .db()
        .query_row(
            "SELECT status, amount_minor FROM transactions WHERE provider_ref = 'txn-2'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), amount), ("SUCCEEDED", 150_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_after_succeeded_is_kept_as_a_conflict_and_the_state_stays() {
    let d = TestDaemon::start(&zp_config()).await;
    let ok = zp_body("collection.success", "ref-c", "SUCCEEDED", "1000");
    let failed = zp_body("collection.failed", "ref-c", "FAILED", "1000");
    let late_pending = zp_body("collection.pending", "ref-c", "PENDING", "1000");
    for body in [&ok, &failed, &late_pending] {
        assert_eq!(zp_post(&d, body).await.status, 200);
    }
    assert_eq!(
        d.count("SELECT count(*) FROM transactions WHERE status = 'SUCCEEDED'"),
        1
    );
    let outcomes: Vec<(String, String)> = {
        let db = d.db();
        let mut st = db
            .prepare("SELECT outcome, to_status FROM transitions ORDER BY seq")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let expected = [
        ("applied", "SUCCEEDED"),
        ("conflict", "FAILED"),
        ("stale", "PENDING"),
    ];
    assert_eq!(
        outcomes
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect::<Vec<_>>(),
        expected
    );
    let events: Vec<String> = {
        let db = d.db();
        let mut st = db
            .prepare("SELECT type FROM events ORDER BY created_at_ms, type DESC")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(events, ["transaction.succeeded", "transaction.conflict"]);
    assert_eq!(
        d.count("SELECT count(*) FROM review_queue WHERE item = 'conflict'"),
        1
    );
    assert_eq!(
        d.ctx
            .metrics
            .counter("payhook_conflicts_total", &[("provider", "zengapay")]),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_body_that_cannot_be_parsed_is_kept_raw_and_acknowledged() {
    let d = TestDaemon::start(&zp_config()).await;
    let garbage = "{\"event\": \"collection.success\", \"data\": [not json";
    assert_eq!(zp_post(&d, garbage).await.status, 200);
    // UGX has no minor unit: 10.50 UGX cannot be stored exactly, so it goes to review.
    let imprecise = zp_body("collection.success", "ref-x", "SUCCEEDED", "10.50");
    assert_eq!(zp_post(&d, &imprecise).await.status, 200);
    assert_eq!(
        d.count("SELECT count(*) FROM callbacks WHERE parse_error IS NOT NULL"),
        2
    );
    assert_eq!(d.count("SELECT count(*) FROM transactions"), 0);
    assert_eq!(
        d.count("SELECT count(*) FROM review_queue WHERE item = 'callback'"),
        2
    );
    let body: Vec<u8> = d
        .db()
        .query_row("SELECT body FROM callbacks ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(body, garbage.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_whether_announced_or_chunked() {
    let d = TestDaemon::start(&format!("max_body_bytes = 2048\n{}", zp_config())).await;
    let big = zp_body("collection.success", &"r".repeat(3000), "SUCCEEDED", "1");
    let reply = zp_post(&d, &big).await;
    assert_eq!(reply.status, 413);
    // Chunked, no Content-Length: the limit applies while reading.
    let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    let sig = zp_sign(ZP_SECRET, big.as_bytes());
    let head = format!("POST /callbacks/zengapay HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-ZENGAPAY-SIGNATURE: {sig}\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    for chunk in big.as_bytes().chunks(500) {
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
        {
            break;
        }
        let _ = s.write_all(chunk).await;
        let _ = s.write_all(b"\r\n").await;
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let reply = crate::support::http::read_reply(&mut s).await;
    assert_eq!(reply.status, 413);
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 0);
    assert_eq!(
        d.ctx.metrics.counter(
            "payhook_callbacks_total",
            &[("provider", "zengapay"), ("outcome", "too_large")]
        ),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_wrong_methods_and_disabled_providers() {
    let d = TestDaemon::start(&zp_config()).await;
    assert_eq!(get(d.addr, "/nope").await.status, 404);
    let wrong = get(d.addr, "/callbacks/zengapay").await;
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("POST")));
    // Jenga is not configured: its route does not exist.
    assert_eq!(
        post(d.addr, "/callbacks/jenga", &[], b"{}").await.status,
        404
    );
    assert_eq!(
        post(d.addr, "/callbacks/zengapay/extra", &[], b"{}")
            .await
            .status,
        404
    );
    assert_eq!(get(d.addr, "/healthz").await.status, 200);
    assert_eq!(get(d.addr, "/readyz").await.status, 200);
    let m = get(d.addr, "/metrics").await;
    assert!(
        m.body.contains("payhook_callback_ack_seconds_count"),
        "{}",
        m.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_database_answers_503_and_keeps_only_what_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "max_body_bytes = 65536\n{}\n[store]\npath = \"payhook.db\"\nmax_size_mb = 1\n",
        zp_config()
    );
    let cfg = payhook::config::Config::from_toml(&text, dir.path()).unwrap();
    let d = TestDaemon::start_with(dir, cfg).await;
    let (mut acked, mut unavailable) = (0, 0);
    for i in 0..100 {
        let mut body: Value = serde_json::from_str(&zp_body(
            "collection.success",
            &format!("ref-full-{i}"),
            "SUCCEEDED",
            "1",
        ))
        .unwrap();
        body["data"]["padding"] = Value::String("p".repeat(60_000));
        let reply = zp_post(&d, &body.to_string()).await;
        match reply.status {
            200 => acked += 1,
            503 => {
                assert_eq!(reply.header("retry-after"), Some("5"));
                unavailable += 1;
                if unavailable == 3 {
                    break;
                }
            }
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert!(
        acked > 0 && unavailable == 3,
        "acked {acked}, unavailable {unavailable}"
    );
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), acked);
    assert_eq!(d.count("SELECT count(*) FROM transactions"), acked);
    let check: String = d
        .db()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

// A read-only database is tested on the binary in process.rs: it needs an unprivileged user.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_callbacks_survive_a_restart() {
    let d = TestDaemon::start(&zp_config()).await;
    for i in 0..10 {
        let body = zp_body(
            "collection.success",
            &format!("ref-r-{i}"),
            "SUCCEEDED",
            "100",
        );
        assert_eq!(zp_post(&d, &body).await.status, 200);
    }
    let dir = d.stop().await;
    let d = TestDaemon::start_in(dir, &zp_config()).await;
    assert_eq!(
        d.count("SELECT count(*) FROM transactions WHERE status = 'SUCCEEDED'"),
        10
    );
    // And a retry after the restart is still recognised.
    let body = zp_body("collection.success", "ref-r-3", "SUCCEEDED", "100");
    assert_eq!(zp_post(&d, &body).await.status, 200);
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 10);
    assert_eq!(d.count("SELECT count(*) FROM events"), 10);
    let health = request(d.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(health.status, 200, "{}", health.body);
}

/// ZengaPay and BitPesa take `allowed_ips` too, on top of their signatures: a signed
/// callback from an address outside the list gets 403 and stores nothing under
/// `enforce`, and is stored (with `+ip` missing from `auth`) under `log-only`.
#[tokio::test(flavor = "multi_thread")]
async fn signed_providers_honour_allowed_ips() {
    let outside = "allowed_ips = [\"192.0.2.0/24\"]\n";
    // Top-level keys (bp_config's public_base_url) come first in TOML.
    let both = format!("{}{outside}{}{outside}", bp_config(), zp_config());
    let d = TestDaemon::start(&both).await;
    let body = zp_body("collection.success", "ip-1", "SUCCEEDED", "1000");
    assert_eq!(zp_post(&d, &body).await.status, 403);
    let url = format!("{BP_BASE}/callbacks/bitpesa");
    let paid = bp_body("ip-2", "transaction.paid_out", "paid_out");
    assert_eq!(bp_post(&d, "n-ip", &url, &paid).await.status, 403);
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 0);
    d.stop().await;

    let inside = "allowed_ips = [\"127.0.0.1\"]\n";
    let d = TestDaemon::start(&format!("{}{inside}", zp_config())).await;
    assert_eq!(zp_post(&d, &body).await.status, 200);
    let auth: String = d
        .db()
        .query_row("SELECT auth FROM callbacks", [], |r| r.get(0))
        .unwrap();
    assert!(auth.ends_with("+ip"), "{auth}");
    d.stop().await;

    let tolerated = "allowed_ips = [\"192.0.2.0/24\"]\nip_policy = \"log-only\"\n";
    let d = TestDaemon::start(&format!("{}{tolerated}", zp_config())).await;
    assert_eq!(zp_post(&d, &body).await.status, 200);
    assert_eq!(
        d.count("SELECT count(*) FROM callbacks WHERE auth NOT LIKE '%+ip'"),
        1
    );
}
