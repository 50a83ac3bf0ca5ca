//! Per-payment callback URLs: every Tujenge payment is its own transaction, every minted
//! Daraja URL proves one payment. The real daemon, its admin API and its CLI mint URLs;
//! callbacks are posted to their paths on 127.0.0.1.

use crate::support::http::post;
use crate::support::TestDaemon;
use serde_json::Value;

const ADMIN_TOKEN: &str = "admin-token-0123456789";
const KEY_OLD: &str = "old-callback-url-key-0123456789-abcdef";
const KEY_NEW: &str = "new-callback-url-key-0123456789-abcdef";
const PUBLIC: &str = "https://hooks.example.com";

fn config(keys: &[&str]) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        "public_base_url = \"{PUBLIC}\"\ncallback_url_keys = [{}]\n\
         [providers.tujenge]\n\
         [providers.daraja]\nip_policy = \"log-only\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n",
        keys.join(", ")
    )
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Mints a URL through the admin API; returns its answer.
async fn mint(d: &TestDaemon, body: &str) -> Value {
    let r = post(
        d.admin_addr.unwrap(),
        "/v1/callback-urls",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// The path of a minted URL (what the provider will POST to, behind the proxy).
fn path_of(url: &Value) -> String {
    url["url"]
        .as_str()
        .unwrap()
        .strip_prefix(PUBLIC)
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tujenge_payments_on_their_own_urls_are_two_transactions() {
    let d = TestDaemon::start(&config(&[KEY_NEW])).await;
    let a = mint(
        &d,
        r#"{"provider":"tujenge","merchant_ref":"order-A","amount":"100.00","currency":"KES"}"#,
    )
    .await;
    let b = mint(&d, r#"{"provider":"tujenge","merchant_ref":"order-B"}"#).await;
    assert_eq!(a["provider"], "tujenge");
    assert_eq!(a["provider_ref"], a["payment_id"]);
    assert_ne!(a["payment_id"], b["payment_id"]);
    // Both are registered at once, so they are known even if no callback ever comes.
    assert_eq!(
        d.count("SELECT count(*) FROM transactions WHERE provider = 'tujenge'"),
        2
    );

    let paid = fixture("tujenge/forwarded_stk_success.json");
    let unknown = fixture("tujenge/unknown_shape.json");
    assert_eq!(post(d.addr, &path_of(&a), &[], &paid).await.status, 200);
    assert_eq!(post(d.addr, &path_of(&b), &[], &unknown).await.status, 200);
    let row = |reference: &Value| -> (String, Option<String>, Option<i64>) {
        d.db()
            .query_row(
                "SELECT status, merchant_ref, expected_amount_minor FROM transactions
                  WHERE provider = 'tujenge' AND provider_ref = ?1",
                [reference.as_str().unwrap()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
    };
    assert_eq!(
        row(&a["payment_id"]),
        ("SUCCEEDED".into(), Some("order-A".into()), Some(10000))
    );
    assert_eq!(
        row(&b["payment_id"]),
        ("PENDING".into(), Some("order-B".into()), None)
    );
    // The stored callback names the payment, never the URL's tag.
    let auth: String = d
        .db()
        .query_row(
            "SELECT auth FROM callbacks WHERE kind = 'daraja_stk'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        auth,
        format!("minted-url:{}", a["payment_id"].as_str().unwrap())
    );
    let tag = path_of(&a).rsplit('.').next().unwrap().to_string();
    let db = std::fs::read(d.db_path()).unwrap();
    assert!(!db.windows(tag.len()).any(|w| w == tag.as_bytes()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_foreign_or_misrouted_url_is_refused_and_nothing_is_stored() {
    let d = TestDaemon::start(&config(&[KEY_NEW])).await;
    let tujenge = path_of(&mint(&d, r#"{"provider":"tujenge","merchant_ref":"o-1"}"#).await);
    let daraja = path_of(&mint(&d, r#"{"provider":"daraja","merchant_ref":"o-2"}"#).await);
    let body = fixture("tujenge/forwarded_stk_success.json");
    let mut tampered = tujenge.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let foreign = payhook::minted::Minter::new(vec![payhook::config::Secret::new(KEY_OLD)])
        .mint(payhook::providers::ProviderId::Tujenge)
        .unwrap()
        .path;
    let misrouted = daraja.replace("/callbacks/daraja/", "/callbacks/tujenge/");
    for path in [&tampered, &foreign, &misrouted] {
        assert_eq!(post(d.addr, path, &[], &body).await.status, 401, "{path}");
    }
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 0);
    assert_eq!(
        d.ctx.metrics.counter(
            "payhook_auth_failures_total",
            &[("provider", "tujenge"), ("reason", "unknown_token")]
        ),
        3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_the_old_key_verifies_and_the_new_key_signs() {
    let d = TestDaemon::start(&config(&[KEY_NEW, KEY_OLD])).await;
    let old = payhook::minted::Minter::new(vec![payhook::config::Secret::new(KEY_OLD)])
        .mint(payhook::providers::ProviderId::Tujenge)
        .unwrap();
    let body = fixture("tujenge/unknown_shape.json");
    assert_eq!(post(d.addr, &old.path, &[], &body).await.status, 200);
    let new = path_of(&mint(&d, r#"{"provider":"tujenge","merchant_ref":"o-3"}"#).await);
    let only_new = payhook::minted::Minter::new(vec![payhook::config::Secret::new(KEY_NEW)]);
    let id_tag = new.strip_prefix("/callbacks/tujenge/p/").unwrap();
    assert!(only_new
        .verify(payhook::providers::ProviderId::Tujenge, id_tag)
        .is_some());
    let only_old = payhook::minted::Minter::new(vec![payhook::config::Secret::new(KEY_OLD)]);
    assert!(only_old
        .verify(payhook::providers::ProviderId::Tujenge, id_tag)
        .is_none());
}

fn stk(checkout: &str, amount: &str) -> Vec<u8> {
    format!(
        r#"{{"Body":{{"stkCallback":{{"MerchantRequestID":"m-1","CheckoutRequestID":"{checkout}","ResultCode":0,"ResultDesc":"ok","CallbackMetadata":{{"Item":[{{"Name":"Amount","Value":{amount}}},{{"Name":"MpesaReceiptNumber","Value":"R{checkout}"}},{{"Name":"PhoneNumber","Value":254708374149}}]}}}}}}}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minted_daraja_url_binds_its_checkout_request_and_refuses_to_rebind() {
    let d = TestDaemon::start(&config(&[KEY_NEW])).await;
    let p1 = mint(
        &d,
        r#"{"provider":"daraja","merchant_ref":"order-1","amount":"1.00","currency":"KES"}"#,
    )
    .await;
    assert_eq!(
        p1["provider_ref"],
        Value::Null,
        "bound on the first callback"
    );
    let p2 = mint(&d, r#"{"provider":"daraja","merchant_ref":"order-2"}"#).await;
    assert_eq!(
        post(d.addr, &path_of(&p1), &[], &stk("ws_CO_A", "1.00"))
            .await
            .status,
        200
    );
    let (merchant_ref, expected): (Option<String>, Option<i64>) = d
        .db()
        .query_row(
            "SELECT merchant_ref, expected_amount_minor FROM transactions WHERE provider_ref = 'ws_CO_A'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (merchant_ref.as_deref(), expected),
        (Some("order-1"), Some(100))
    );
    let bound: String = d
        .db()
        .query_row(
            "SELECT provider_ref FROM minted_payments WHERE payment_id = ?1",
            [p1["payment_id"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bound, "ws_CO_A");

    // Another CheckoutRequestID on the same URL does not rebind it: the payment it names
    // is recorded, in review, so that no money goes unnoticed, and settles nothing.
    assert_eq!(
        post(d.addr, &path_of(&p1), &[], &stk("ws_CO_B", "5.00"))
            .await
            .status,
        200
    );
    let (status, reason): (String, String) = d
        .db()
        .query_row(
            "SELECT status, reason FROM transactions WHERE provider_ref = 'ws_CO_B'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "NEEDS_REVIEW");
    assert!(reason.starts_with("MINTED_URL_REBIND"), "{reason}");
    // The same CheckoutRequestID on another payment's URL is a conflict for review: the
    // settled status stays, the conflict is recorded and listed.
    assert_eq!(
        post(d.addr, &path_of(&p2), &[], &stk("ws_CO_A", "1.00"))
            .await
            .status,
        200
    );
    assert_eq!(
        d.count(
            "SELECT count(*) FROM transitions r JOIN transactions t ON t.id = r.transaction_id
              WHERE t.provider_ref = 'ws_CO_A' AND r.outcome = 'conflict'
                AND r.reason LIKE 'MINTED_URL_REBIND%'"
        ),
        1
    );
    assert_eq!(
        d.count("SELECT count(*) FROM review_queue WHERE item = 'conflict' AND provider_ref = 'ws_CO_A'"),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_mints_urls_that_verify_and_check_config_redacts_the_keys() {
    let d = TestDaemon::start(&config(&[KEY_NEW])).await;
    let cfg = d.dir.path().join("cli.toml");
    std::fs::write(
        &cfg,
        format!(
            "public_base_url = \"{PUBLIC}\"\ncallback_url_keys = [\"{KEY_NEW}\"]\n\
             [providers.tujenge]\n[store]\npath = \"{}\"\n",
            d.db_path().display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_payhook"))
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let out = run(&[
        "callback-url",
        "tujenge",
        "--merchant-ref",
        "order-cli",
        "--amount",
        "100",
        "--currency",
        "KES",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap();
    let url = url.trim();
    assert_eq!(url.lines().count(), 1, "the URL alone: {url}");
    let path = url.strip_prefix(PUBLIC).unwrap();
    let body = fixture("tujenge/forwarded_stk_success.json");
    assert_eq!(post(d.addr, path, &[], &body).await.status, 200);
    assert_eq!(
        d.count("SELECT count(*) FROM transactions WHERE merchant_ref = 'order-cli' AND status = 'SUCCEEDED'"),
        1
    );
    // A provider that signs its callbacks has no minted URLs.
    let out = run(&["callback-url", "zengapay", "--merchant-ref", "x"]);
    assert!(!out.status.success());
    let out = run(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !text.contains(KEY_NEW), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_binds_a_minted_payment_and_disagreements_are_reviewed_not_errors() {
    let d = TestDaemon::start(&config(&[KEY_NEW])).await;
    let addr = d.admin_addr.unwrap();
    let admin = |body: String| async move {
        post(
            addr,
            "/v1/transactions",
            &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
            body.as_bytes(),
        )
        .await
    };
    // The application binds the CheckoutRequestID it got back to the minted payment: the
    // payment is reconciled from now on, with the minted amount and reference.
    let p = mint(
        &d,
        r#"{"provider":"daraja","merchant_ref":"order-9","amount":"1.00","currency":"KES"}"#,
    )
    .await;
    let pid = p["payment_id"].as_str().unwrap();
    let r = admin(format!(
        r#"{{"provider":"daraja","provider_ref":"ws_CO_C","payment_id":"{pid}"}}"#
    ))
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (merchant_ref, expected, kind): (String, i64, String) = d
        .db()
        .query_row(
            "SELECT merchant_ref, expected_amount_minor, kind FROM transactions WHERE provider_ref = 'ws_CO_C'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (merchant_ref.as_str(), expected, kind.as_str()),
        ("order-9", 100, "stk")
    );
    let again = admin(format!(
        r#"{{"provider":"daraja","provider_ref":"ws_CO_X","payment_id":"{pid}"}}"#
    ))
    .await;
    assert_eq!(again.status, 409, "{}", again.body);

    // A URL minted for an STK push that receives a C2B confirmation is reviewed.
    let stk_url = path_of(&mint(&d, r#"{"provider":"daraja","merchant_ref":"order-10"}"#).await);
    let c2b = fixture("daraja/c2b.json");
    let r = post(d.addr, &format!("{stk_url}/c2b/confirmation"), &[], &c2b).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reason: String = d
        .db()
        .query_row(
            "SELECT reason FROM transactions WHERE provider_ref = 'RKTQDM7W6S'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(reason.starts_with("MINTED_URL_KIND"), "{reason}");

    // A reference registered with another amount than the minted one: the callback is
    // stored and the payment reviewed; nothing else in its batch is undone.
    let reg = r#"{"provider":"daraja","provider_ref":"ws_CO_D","kind":"stk","amount":"1000.00","currency":"KES"}"#;
    assert_eq!(admin(reg.to_string()).await.status, 201);
    let small = path_of(
        &mint(
            &d,
            r#"{"provider":"daraja","merchant_ref":"order-11","amount":"1.00","currency":"KES"}"#,
        )
        .await,
    );
    assert_eq!(
        post(d.addr, &small, &[], &stk("ws_CO_D", "1.00"))
            .await
            .status,
        200
    );
    let (status, reason): (String, String) = d
        .db()
        .query_row(
            "SELECT status, reason FROM transactions WHERE provider_ref = 'ws_CO_D'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "NEEDS_REVIEW");
    assert!(reason.starts_with("MINTED_URL_REGISTRATION"), "{reason}");
}
