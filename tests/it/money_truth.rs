//! The merchant is told only what the provider itself confirmed: each case here made
//! payhook announce an amount, an order or a status no authenticated source stated, and
//! now must not. Every test drives the real daemon over sockets against fake provider
//! APIs on 127.0.0.1, and reads the store and the outbox the merchant would be sent.

use crate::support::fake_provider::{FakeProvider, FakeReply};
use crate::support::http::post;
use crate::support::TestDaemon;
use hmac::{Hmac, Mac};
use payhook::reconcile;
use serde_json::Value;
use sha2::Sha256;

const ZP_SECRET: &str = "zp-secret";
const REF: &str = "566a4a89-4024-584c-b1f5-8c59aff0d334";
const ADMIN_TOKEN: &str = "admin-token-0123456789";
const DARAJA_TOKEN: &str = "daraja-path-token-0123456789";
const DARAJA_PASSKEY: &str = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919";

fn zp_config(fake: &FakeProvider) -> String {
    format!(
        "[providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\napi_token = \"zp-token\"\n\
         base_url = \"{}\"\npoll_rate_per_minute = 6000\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         [reconciler]\nenabled = false\nrequest_timeout = \"500ms\"\n",
        fake.url()
    )
}

/// Hex HMAC-SHA256 under the test secret, written out here rather than taken from payhook.
fn hmac_hex(input: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(ZP_SECRET.as_bytes()).unwrap();
    mac.update(input);
    hex::encode(mac.finalize().into_bytes())
}

/// A ZengaPay webhook body with the given fields.
fn zp_body(event: &str, status: &str, msisdn: &str, amount: &str, order: &str) -> Vec<u8> {
    serde_json::json!({"event": event, "data": {
        "transactionStatus": status, "transactionReference": REF,
        "transactionExternalReference": order, "currencyCode": "UGX-MTNMM",
        "amount": amount, "msisdn": msisdn, "MNOTransactionReferenceId": "42026012031"}})
    .to_string()
    .into_bytes()
}

async fn post_zp(d: &TestDaemon, body: &[u8], signature: &str) -> u16 {
    post(
        d.addr,
        "/callbacks/zengapay",
        &[("X-ZENGAPAY-SIGNATURE", signature)],
        body,
    )
    .await
    .status
}

/// ZengaPay's status answer for [`REF`].
fn zp_status(status: &str, amount: &str, order: &str) -> FakeReply {
    FakeReply::new(
        200,
        format!(
            r#"{{"code":200,"status":"OK","data":{{"transactionReference":"{REF}","transactionStatus":"{status}","amount":{amount},"currencyCode":"UGX-MTNMM","transactionExternalReference":"{order}"}}}}"#
        ),
    )
}

#[derive(Debug, PartialEq, Eq)]
struct Txn {
    status: String,
    reason: Option<String>,
    held: Option<String>,
    amount_minor: Option<i64>,
    merchant_ref: Option<String>,
}

fn txn(d: &TestDaemon, reference: &str) -> Txn {
    d.db()
        .query_row(
            "SELECT status, reason, unconfirmed_status, amount_minor, merchant_ref
               FROM transactions WHERE provider_ref = ?1",
            [reference],
            |r| {
                Ok(Txn {
                    status: r.get(0)?,
                    reason: r.get(1)?,
                    held: r.get(2)?,
                    amount_minor: r.get(3)?,
                    merchant_ref: r.get(4)?,
                })
            },
        )
        .unwrap()
}

/// Every event payload in the outbox, oldest first: what the merchant is sent.
fn events(d: &TestDaemon) -> Vec<Value> {
    let db = d.db();
    let mut st = db
        .prepare("SELECT payload FROM events ORDER BY created_at_ms, id")
        .unwrap();
    let rows = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
        .collect();
    rows
}

/// Makes every transaction due and runs one reconciler pass.
async fn poll_now(d: &TestDaemon) {
    d.db()
        .execute(
            "UPDATE transactions SET next_poll_at_ms = 0 WHERE next_poll_at_ms IS NOT NULL",
            [],
        )
        .unwrap();
    reconcile::step(&d.ctx).await.unwrap();
}

async fn register(d: &TestDaemon, body: &str) -> (u16, String) {
    let r = post(
        d.admin_addr.unwrap(),
        "/v1/transactions",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        body.as_bytes(),
    )
    .await;
    (r.status, r.body)
}

/// Case 1: a field-signed success names one order; ZengaPay's status endpoint names
/// another. The merchant must never hear of the first.
#[tokio::test(flavor = "multi_thread")]
async fn a_confirming_answer_that_names_another_order_goes_to_review() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake)).await;
    let body = zp_body(
        "collection.success",
        "SUCCEEDED",
        "256755329361",
        "126600",
        "order-VICTIM",
    );
    let sig = hmac_hex(format!("{REF}256755329361126600.00").as_bytes());
    assert_eq!(post_zp(&d, &body, &sig).await, 200);
    let t = txn(&d, REF);
    assert_eq!(
        (t.status.as_str(), t.held.as_deref()),
        ("PENDING", Some("SUCCEEDED"))
    );
    assert_eq!(t.merchant_ref, None, "a hint sets no merchant reference");
    assert!(events(&d).is_empty());

    fake.set_default(zp_status("SUCCEEDED", "126600", "order-REAL"));
    poll_now(&d).await;
    let t = txn(&d, REF);
    assert_eq!(t.status, "NEEDS_REVIEW");
    assert!(
        t.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("UNCONFIRMED_MISMATCH: merchant_ref")),
        "{t:?}"
    );
    assert_eq!(t.merchant_ref.as_deref(), Some("order-REAL"));
    assert_eq!(t.held, None);
    let sent = events(&d);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["type"], "transaction.needs_review");
    assert!(!sent[0].to_string().contains("order-VICTIM"), "{}", sent[0]);
}

/// Case 2: digits moved from the MSISDN to the amount keep the concatenation, and so the
/// field signature; such a body is refused. A captured signature replayed under other
/// event names after the payment settled changes nothing and raises no event.
#[tokio::test(flavor = "multi_thread")]
async fn a_field_signature_pins_the_amount_and_its_replays_change_nothing() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake)).await;
    let sig = hmac_hex(format!("{REF}256755329361126600.00").as_bytes());
    let shifted = zp_body(
        "collection.success",
        "SUCCEEDED",
        "25675532936",
        "1126600",
        "order-1",
    );
    assert_eq!(post_zp(&d, &shifted, &sig).await, 401);
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 0);
    assert_eq!(d.count("SELECT count(*) FROM transactions"), 0);

    let genuine = zp_body(
        "collection.success",
        "SUCCEEDED",
        "256755329361",
        "126600",
        "order-1",
    );
    assert_eq!(post_zp(&d, &genuine, &sig).await, 200);
    fake.set_default(zp_status("SUCCEEDED", "126600", "order-1"));
    poll_now(&d).await;
    let t = txn(&d, REF);
    assert_eq!(
        (t.status.as_str(), t.amount_minor),
        ("SUCCEEDED", Some(126600))
    );
    assert_eq!(events(&d).len(), 1);

    for event in [
        "collection.failed",
        "collection.reversed",
        "transfer.failed",
    ] {
        let replay = zp_body(event, "FAILED", "256755329361", "126600", "order-1");
        assert_eq!(post_zp(&d, &replay, &sig).await, 200, "{event}");
    }
    assert_eq!(txn(&d, REF).status, "SUCCEEDED");
    assert_eq!(events(&d).len(), 1, "no conflict event per replay");
    assert_eq!(
        d.count("SELECT count(*) FROM transitions WHERE outcome = 'conflict'"),
        0,
        "nothing for a reviewer to chase either"
    );
}

/// Case 3a: an amount registered after the payment settled is compared with it: 409, and
/// the conflict is recorded and announced.
#[tokio::test(flavor = "multi_thread")]
async fn a_registration_after_settlement_is_compared_with_the_settled_amount() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake)).await;
    let body = zp_body(
        "collection.success",
        "SUCCEEDED",
        "256755329361",
        "126600",
        "order-1",
    );
    assert_eq!(post_zp(&d, &body, &hmac_hex(&body)).await, 200);
    assert_eq!(txn(&d, REF).status, "SUCCEEDED");

    let other = format!(
        r#"{{"provider":"zengapay","provider_ref":"{REF}","amount":"200000","currency":"UGX"}}"#
    );
    let (status, answer) = register(&d, &other).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("AMOUNT_MISMATCH"), "{answer}");
    let t = txn(&d, REF);
    assert_eq!(
        (t.status.as_str(), t.amount_minor),
        ("SUCCEEDED", Some(126600))
    );
    assert_eq!(
        d.count(
            "SELECT count(*) FROM transitions WHERE outcome = 'conflict' AND source = 'merchant'"
        ),
        1
    );
    let sent = events(&d);
    assert_eq!(sent.last().unwrap()["type"], "transaction.conflict");

    // `payhook track` says the same with a non-zero exit and the reason, on a second
    // payment settled by a signed callback.
    let second = "7e0c2b7a-0000-4000-8000-000000000002";
    let body = serde_json::to_vec(&serde_json::json!({"event": "collection.success", "data": {
        "transactionStatus": "SUCCEEDED", "transactionReference": second,
        "currencyCode": "UGX-MTNMM", "amount": "5000", "msisdn": "256755329361"}}))
    .unwrap();
    assert_eq!(post_zp(&d, &body, &hmac_hex(&body)).await, 200);
    assert_eq!(txn(&d, second).status, "SUCCEEDED");
    let cfg = d.dir.path().join("track.toml");
    std::fs::write(
        &cfg,
        format!(
            "[providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\n[store]\npath = \"{}\"\n",
            d.db_path().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payhook"))
        .args([
            "track",
            "zengapay",
            second,
            "--amount",
            "6000",
            "--currency",
            "UGX",
            "--config",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("AMOUNT_MISMATCH"), "{stderr}");
    assert_eq!(
        d.count(&format!(
            "SELECT count(*) FROM transitions r JOIN transactions t ON t.id = r.transaction_id
              WHERE t.provider_ref = '{second}' AND r.outcome = 'conflict'"
        )),
        1
    );
}

fn daraja_config(fake: &FakeProvider) -> String {
    format!(
        "[providers.daraja]\ncallback_tokens = [\"{DARAJA_TOKEN}\"]\nip_policy = \"log-only\"\n\
         consumer_key = \"ck\"\nconsumer_secret = \"cs\"\nshortcode = \"174379\"\n\
         passkey = \"{DARAJA_PASSKEY}\"\nbase_url = \"{}\"\npoll_rate_per_minute = 6000\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         [reconciler]\nenabled = false\nrequest_timeout = \"500ms\"\n",
        fake.url()
    )
}

const CHECKOUT: &str = "ws_CO_191220191020363925";

fn stk_success(amount: &str, receipt: &str) -> Vec<u8> {
    format!(
        r#"{{"Body":{{"stkCallback":{{"MerchantRequestID":"29115-34620561-1","CheckoutRequestID":"{CHECKOUT}","ResultCode":0,"ResultDesc":"The service request is processed successfully.","CallbackMetadata":{{"Item":[{{"Name":"Amount","Value":{amount}}},{{"Name":"MpesaReceiptNumber","Value":"{receipt}"}},{{"Name":"TransactionDate","Value":20191219102115}},{{"Name":"PhoneNumber","Value":254708374149}}]}}}}}}}}"#
    )
    .into_bytes()
}

fn stk_query_answers(fake: &FakeProvider) {
    fake.push(
        "/oauth/v1/generate?grant_type=client_credentials",
        FakeReply::new(200, r#"{"access_token":"bearer","expires_in":"3599"}"#),
    );
    fake.set_default(FakeReply::new(
        200,
        format!(r#"{{"ResponseCode":"0","ResponseDescription":"ok","MerchantRequestID":"m","CheckoutRequestID":"{CHECKOUT}","ResultCode":"0","ResultDesc":"The service request is processed successfully."}}"#),
    ));
}

/// Case 3b: Daraja's STK query states no amount. It confirms the status of a token-only
/// success, not the amount the callback claimed, which must match the registered one.
#[tokio::test(flavor = "multi_thread")]
async fn a_status_answer_without_an_amount_does_not_confirm_the_callbacks_amount() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&daraja_config(&fake)).await;
    let reg = format!(
        r#"{{"provider":"daraja","provider_ref":"{CHECKOUT}","kind":"stk","amount":"1.00","currency":"KES"}}"#
    );
    assert_eq!(register(&d, &reg).await.0, 201);
    let path = format!("/callbacks/daraja/{DARAJA_TOKEN}");
    assert_eq!(
        post(d.addr, &path, &[], &stk_success("1000.00", "NLJ7RT61SV"))
            .await
            .status,
        200
    );
    assert_eq!(txn(&d, CHECKOUT).held.as_deref(), Some("SUCCEEDED"));
    stk_query_answers(&fake);
    poll_now(&d).await;
    let t = txn(&d, CHECKOUT);
    assert_eq!(t.status, "NEEDS_REVIEW", "{t:?}");
    assert!(
        t.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("UNCONFIRMED_MISMATCH: amount")),
        "{t:?}"
    );
    assert_eq!(t.amount_minor, None, "the unconfirmed amount is not kept");
    let sent = events(&d);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["type"], "transaction.needs_review");
    assert_eq!(sent[0]["data"]["amount"], Value::Null);
}

/// The same STK query confirms a token-only success whose amount is the registered one;
/// what nothing confirmed (the receipt) reaches the merchant only as unconfirmed.
#[tokio::test(flavor = "multi_thread")]
async fn a_status_answer_confirms_a_hint_that_agrees_with_the_registration() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&daraja_config(&fake)).await;
    let reg = format!(
        r#"{{"provider":"daraja","provider_ref":"{CHECKOUT}","kind":"stk","amount":"1.00","currency":"KES","merchant_ref":"order-7"}}"#
    );
    assert_eq!(register(&d, &reg).await.0, 201);
    let path = format!("/callbacks/daraja/{DARAJA_TOKEN}");
    assert_eq!(
        post(d.addr, &path, &[], &stk_success("1.00", "NLJ7RT61SV"))
            .await
            .status,
        200
    );
    stk_query_answers(&fake);
    poll_now(&d).await;
    let t = txn(&d, CHECKOUT);
    assert_eq!((t.status.as_str(), t.held), ("SUCCEEDED", None));
    let sent = events(&d);
    assert_eq!(sent.len(), 1);
    let data = &sent[0]["data"];
    assert_eq!(data["confirmed"], true);
    assert_eq!(data["receipt"], Value::Null, "{data}");
    assert_eq!(data["unconfirmed"]["receipt"], "NLJ7RT61SV", "{data}");
    assert_eq!(data["merchant_ref"], "order-7");
}

/// Case 4: a field signature does not cover the status, so a `collection.failed` body
/// under it is a hint: the payment stays open and is asked about; when ZengaPay says it
/// succeeded, the contradiction goes to review and the merchant is never told FAILED.
#[tokio::test(flavor = "multi_thread")]
async fn an_unauthenticated_failure_waits_for_the_status_query() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake)).await;
    let body = zp_body(
        "collection.failed",
        "FAILED",
        "256755329361",
        "126600",
        "order-1",
    );
    let sig = hmac_hex(format!("{REF}256755329361126600.00").as_bytes());
    assert_eq!(post_zp(&d, &body, &sig).await, 200);
    let t = txn(&d, REF);
    assert_eq!(
        (t.status.as_str(), t.held.as_deref()),
        ("PENDING", Some("FAILED"))
    );
    assert!(events(&d).is_empty());
    fake.set_default(zp_status("SUCCEEDED", "126600", "order-1"));
    poll_now(&d).await;
    let t = txn(&d, REF);
    assert_eq!(t.status, "NEEDS_REVIEW");
    assert!(t
        .reason
        .as_deref()
        .unwrap()
        .starts_with("UNCONFIRMED_MISMATCH: status"));
    assert!(events(&d).iter().all(|e| e["type"] != "transaction.failed"));
}

/// Case 5: two different STK results under one CheckoutRequestID are both kept, linked,
/// and the payment goes to review; a retry of either body is still just a retry.
#[tokio::test(flavor = "multi_thread")]
async fn two_bodies_under_one_key_are_both_kept_and_reviewed() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&daraja_config(&fake)).await;
    let path = format!("/callbacks/daraja/{DARAJA_TOKEN}");
    let first = stk_success("1.00", "NLJ7RT61SV");
    let second = stk_success("1000.00", "NLJ7RT61SX");
    for body in [&first, &second, &second, &first] {
        assert_eq!(post(d.addr, &path, &[], body).await.status, 200);
    }
    let rows: Vec<(i64, Option<i64>, i64)> = d
        .db()
        .prepare("SELECT id, duplicate_of, deliveries FROM callbacks ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1].1, Some(rows[0].0));
    assert_eq!((rows[0].2, rows[1].2), (2, 2));
    let t = txn(&d, CHECKOUT);
    assert_eq!((t.status.as_str(), t.held), ("NEEDS_REVIEW", None));
    assert!(t
        .reason
        .as_deref()
        .unwrap()
        .starts_with("CALLBACK_MISMATCH"));
    assert_eq!(t.amount_minor, None);
}

/// A second body under the same key that says the same thing (only its bytes differ, as a
/// provider's re-serialised retry may) is kept beside the first and disputes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_with_other_bytes_but_the_same_meaning_is_not_a_dispute() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&daraja_config(&fake)).await;
    let path = format!("/callbacks/daraja/{DARAJA_TOKEN}");
    let first = stk_success("1.00", "NLJ7RT61SV");
    let spaced = String::from_utf8(first.clone())
        .unwrap()
        .replace("\"ResultCode\":0", "\"ResultCode\": 0");
    assert_ne!(spaced.as_bytes(), &first[..]);
    for body in [&first[..], spaced.as_bytes()] {
        assert_eq!(post(d.addr, &path, &[], body).await.status, 200);
    }
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 2);
    let t = txn(&d, CHECKOUT);
    assert_eq!(
        (t.status.as_str(), t.held.as_deref()),
        ("PENDING", Some("SUCCEEDED"))
    );
    assert_eq!(t.reason, None);
}

/// Case 6: a path token from an address inside an enforced allowlist authenticates a
/// Daraja callback, so a C2B confirmation (which has no status query) settles at once,
/// confirmed; with `allowlist_authenticates = false` it is announced as unconfirmed.
#[tokio::test(flavor = "multi_thread")]
async fn token_and_an_enforced_allowlist_authenticate_daraja() {
    let body = std::fs::read(format!(
        "{}/fixtures/daraja/c2b.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    for (extra, confirmed) in [("", true), ("allowlist_authenticates = false\n", false)] {
        let d = TestDaemon::start(&format!(
            "[providers.daraja]\ncallback_tokens = [\"{DARAJA_TOKEN}\"]\nallowed_ips = [\"127.0.0.1\"]\n{extra}"
        ))
        .await;
        let path = format!("/callbacks/daraja/{DARAJA_TOKEN}/c2b/confirmation");
        assert_eq!(post(d.addr, &path, &[], &body).await.status, 200);
        let t = txn(&d, "RKTQDM7W6S");
        let sent = events(&d);
        assert_eq!(sent.len(), 1);
        let data = &sent[0]["data"];
        assert_eq!(data["confirmed"], confirmed, "{extra}");
        if confirmed {
            assert_eq!(
                (t.status.as_str(), t.amount_minor),
                ("SUCCEEDED", Some(1000))
            );
            assert_eq!(data["amount"], "10.00");
        } else {
            // What only the hint said is kept apart, and told as unconfirmed.
            assert_eq!((t.status.as_str(), t.amount_minor), ("SUCCEEDED", None));
            assert_eq!(data["amount"], Value::Null);
            assert_eq!(data["unconfirmed"]["amount"], "10.00");
        }
    }
}

/// Case 7: a signed amount is refused: the callback is kept raw for review and settles
/// nothing; a registration with one is a 400.
#[tokio::test(flavor = "multi_thread")]
async fn a_negative_amount_is_a_parse_error_not_a_payment() {
    let d = TestDaemon::start(&format!(
        "[providers.jenga]\nipn_username = \"ipnuser\"\nipn_password = \"ipnpass\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n"
    ))
    .await;
    let mut ipn: Value = serde_json::from_slice(
        &std::fs::read(format!(
            "{}/fixtures/jenga/ipn_success.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    ipn["transaction"]["amount"] = Value::String("-150".into());
    let body = ipn.to_string();
    let basic = format!("Basic {}", {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode("ipnuser:ipnpass")
    });
    let reply = post(
        d.addr,
        "/callbacks/jenga",
        &[("Authorization", &basic)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        d.count("SELECT count(*) FROM callbacks WHERE parse_error IS NOT NULL"),
        1
    );
    assert_eq!(d.count("SELECT count(*) FROM transactions"), 0);
    assert_eq!(d.count("SELECT count(*) FROM events"), 0);
    for amount in ["-5", "+5"] {
        let reg = format!(
            r#"{{"provider":"jenga","provider_ref":"r-1","amount":"{amount}","currency":"KES"}}"#
        );
        let (status, answer) = register(&d, &reg).await;
        assert_eq!(status, 400, "{amount}: {answer}");
    }
    assert_eq!(d.count("SELECT count(*) FROM transactions"), 0);
}

/// The `fields-amount-integer` variant: a body saying `126600.00` signed over the amount
/// as an integer (`…126600`) verifies as that variant, is stored as a field signature
/// (unsigned), and stays a hint until the status query confirms it.
#[tokio::test(flavor = "multi_thread")]
async fn the_integer_amount_field_variant_verifies_and_waits_for_confirmation() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake)).await;
    let body = zp_body(
        "collection.success",
        "SUCCEEDED",
        "256755329361",
        "126600.00",
        "order-1",
    );
    let sig = hmac_hex(format!("{REF}256755329361126600").as_bytes());
    assert_eq!(post_zp(&d, &body, &sig).await, 200);
    let (auth, signed): (String, i64) = d
        .db()
        .query_row("SELECT auth, signed FROM callbacks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(
        (auth.as_str(), signed),
        ("hmac-sha256:fields-amount-integer", 0)
    );
    let t = txn(&d, REF);
    assert_eq!(
        (t.status.as_str(), t.held.as_deref(), t.amount_minor),
        ("PENDING", Some("SUCCEEDED"), None)
    );
    assert!(events(&d).is_empty());
    // The same signature does not fit another amount.
    let other = zp_body(
        "collection.success",
        "SUCCEEDED",
        "256755329361",
        "126601.00",
        "order-1",
    );
    assert_eq!(post_zp(&d, &other, &sig).await, 401);

    fake.set_default(zp_status("SUCCEEDED", "126600", "order-1"));
    poll_now(&d).await;
    let t = txn(&d, REF);
    assert_eq!(
        (t.status.as_str(), t.amount_minor, t.merchant_ref.as_deref()),
        ("SUCCEEDED", Some(126_600), Some("order-1"))
    );
    let sent = events(&d);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["type"], "transaction.succeeded");
    assert_eq!(sent[0]["data"]["amount_minor"], 126_600);
    assert_eq!(sent[0]["data"]["confirmed"], true);
}

/// A currency mismatch alone (the same minor units, 1266.00 KES registered, 126600 UGX
/// reported by a signed callback) goes to review, naming both currencies.
#[tokio::test(flavor = "multi_thread")]
async fn a_success_in_another_currency_than_registered_goes_to_review() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake)).await;
    let (status, body) = register(
        &d,
        &format!(
            r#"{{"provider":"zengapay","provider_ref":"{REF}","kind":"collection","amount":"1266.00","currency":"KES"}}"#
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let success = zp_body(
        "collection.success",
        "SUCCEEDED",
        "256755329361",
        "126600",
        "order-1",
    );
    assert_eq!(post_zp(&d, &success, &hmac_hex(&success)).await, 200);
    let t = txn(&d, REF);
    assert_eq!(t.status, "NEEDS_REVIEW", "{t:?}");
    let reason = t.reason.unwrap_or_default();
    assert!(
        reason.starts_with("AMOUNT_MISMATCH") && reason.contains("KES") && reason.contains("UGX"),
        "{reason}"
    );
    let sent = events(&d);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["type"], "transaction.needs_review");
    assert_eq!(sent[0]["data"]["status"], "NEEDS_REVIEW");
}

/// A signed success that states no amount, on a payment registered with one: it settles
/// (the provider vouched for the status), and the merchant is told no amount rather than
/// the registered one presented as the provider's.
#[tokio::test(flavor = "multi_thread")]
async fn a_signed_success_without_an_amount_settles_a_registered_payment_without_inventing_one() {
    let fake = FakeProvider::start().await;
    let d = TestDaemon::start(&zp_config(&fake)).await;
    let (status, body) = register(
        &d,
        &format!(
            r#"{{"provider":"zengapay","provider_ref":"{REF}","kind":"collection","amount":"126600","currency":"UGX","merchant_ref":"order-1"}}"#
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let success = serde_json::json!({"event": "collection.success", "data": {
        "transactionStatus": "SUCCEEDED", "transactionReference": REF,
        "transactionExternalReference": "order-1", "msisdn": "256755329361"}})
    .to_string()
    .into_bytes();
    assert_eq!(post_zp(&d, &success, &hmac_hex(&success)).await, 200);
    let t = txn(&d, REF);
    assert_eq!(
        (t.status.as_str(), t.amount_minor),
        ("SUCCEEDED", None),
        "{t:?}"
    );
    let sent = events(&d);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["type"], "transaction.succeeded");
    assert_eq!(sent[0]["data"]["amount"], Value::Null, "{}", sent[0]);
    assert_eq!(sent[0]["data"]["amount_minor"], Value::Null);
    assert_eq!(sent[0]["data"]["merchant_ref"], "order-1");
    assert_eq!(sent[0]["data"]["confirmed"], true);
}

/// SUCCEEDED → REVERSED end to end: a signed success is delivered to the merchant, an
/// operator reverses it with the binary (`payhook resolve`), the merchant then receives
/// `transaction.reversed` with the same amount and order, a later failure report is only
/// a conflict, and nothing can take the payment back to SUCCEEDED.
#[tokio::test(flavor = "multi_thread")]
async fn a_reversal_reaches_the_merchant_after_the_success_and_is_final() {
    use crate::support::fake_merchant::FakeMerchant;
    use payhook::forward::{self, Step};
    let fake = FakeProvider::start().await;
    let mut merchant = FakeMerchant::start().await;
    let d = TestDaemon::start(&zp_config(&fake)).await;
    let forward_toml = format!(
        "[forward]\nurl = \"{}\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n",
        merchant.url()
    );
    let ctx = {
        let mut cfg = (*d.ctx.config).clone();
        cfg.forward = payhook::config::Config::from_toml(&forward_toml, d.dir.path())
            .unwrap()
            .forward;
        let mut ctx = d.ctx.clone();
        ctx.config = std::sync::Arc::new(cfg);
        ctx
    };
    let success = zp_body(
        "collection.success",
        "SUCCEEDED",
        "256755329361",
        "126600",
        "order-1",
    );
    assert_eq!(post_zp(&d, &success, &hmac_hex(&success)).await, 200);
    let now = payhook::clock::now_ms();
    assert_eq!(forward::step(&ctx, now).await.unwrap(), Step::Worked(1));
    let first = merchant.next().await.json();
    assert_eq!(first["type"], "transaction.succeeded");

    // The operator's reversal, with the binary on the live database.
    let cli_config = d.dir.path().join("cli.toml");
    std::fs::write(
        &cli_config,
        format!(
            "[store]\npath = \"{}\"\n[providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\n",
            d.db_path().display()
        ),
    )
    .unwrap();
    let resolve = |status: &'static str| {
        let cfg = cli_config.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_payhook"))
                .arg("--config")
                .arg(&cfg)
                .args([
                    "resolve",
                    REF,
                    "--status",
                    status,
                    "--note",
                    "refunded by MTN",
                ])
                .output()
                .unwrap()
        })
    };
    let out = resolve("REVERSED").await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(txn(&d, REF).status, "REVERSED");
    assert_eq!(
        forward::step(&ctx, now + 1_000).await.unwrap(),
        Step::Worked(1)
    );
    let second = merchant.next().await.json();
    assert_eq!(second["type"], "transaction.reversed");
    for field in [
        "provider_ref",
        "amount",
        "amount_minor",
        "currency",
        "merchant_ref",
    ] {
        assert_eq!(second["data"][field], first["data"][field], "{field}");
    }
    assert_eq!(second["data"]["amount_minor"], 126_600);
    assert_eq!(second["data"]["currency"], "UGX");
    assert_eq!(second["data"]["merchant_ref"], "order-1");
    assert_eq!(second["data"]["previous_status"], "SUCCEEDED");
    assert_ne!(second["id"], first["id"]);

    // Final: a signed failure is a conflict, and SUCCEEDED cannot come back.
    let failed = zp_body(
        "collection.failed",
        "FAILED",
        "256755329361",
        "126600",
        "order-1",
    );
    assert_eq!(post_zp(&d, &failed, &hmac_hex(&failed)).await, 200);
    assert_eq!(txn(&d, REF).status, "REVERSED");
    let out = resolve("SUCCEEDED").await.unwrap();
    assert!(!out.status.success(), "a reversal was undone");
    assert_eq!(txn(&d, REF).status, "REVERSED");
    let types: Vec<String> = events(&d)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "transaction.succeeded",
            "transaction.reversed",
            "transaction.conflict"
        ]
    );
}
