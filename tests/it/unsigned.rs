//! Daraja (path token), Jenga (HTTP Basic) and Tujenge (path token) callbacks,
//! the per-provider source-address allowlist behind a trusted proxy, and unsigned
//! successes held for confirmation.

use crate::support::http::{post, Reply};
use crate::support::TestDaemon;
use serde_json::Value;
use std::collections::BTreeSet;

const DARAJA_TOKEN: &str = "t0k3n-daraja-aaaaaaaa";
const DARAJA_OLD_TOKEN: &str = "t0k3n-daraja-rotated1";
const TUJENGE_TOKEN: &str = "t0k3n-tujenge-bbbbbbb";
/// base64("ipnuser:ipnpass"), Jenga's IPN credential example.
const JENGA_AUTH: &str = "Basic aXBudXNlcjppcG5wYXNz";
/// A published Daraja sender address.
const SAFARICOM_IP: &str = "196.201.214.200";

fn daraja_section(extra: &str) -> String {
    format!(
        "[providers.daraja]\ncallback_tokens = [\"{DARAJA_TOKEN}\", \"{DARAJA_OLD_TOKEN}\"]\n{extra}\n"
    )
}

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

async fn daraja_post(d: &TestDaemon, rest: &str, xff: Option<&str>, body: &[u8]) -> Reply {
    let path = format!("/callbacks/daraja/{rest}");
    let headers: Vec<(&str, &str)> = xff.map(|ip| ("X-Forwarded-For", ip)).into_iter().collect();
    post(d.addr, &path, &headers, body).await
}

/// (status, unconfirmed_status, reason, amount_minor) of one transaction.
type TxnRow = (String, Option<String>, Option<String>, Option<i64>);

fn txn(d: &TestDaemon, provider: &str, provider_ref: &str) -> Option<TxnRow> {
    d.db()
        .query_row(
            "SELECT status, unconfirmed_status, reason, amount_minor FROM transactions
              WHERE provider = ?1 AND provider_ref = ?2",
            [provider, provider_ref],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .ok()
}

/// The raw database files, to prove a secret was never written anywhere in them.
fn db_bytes(d: &TestDaemon) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal"] {
        let p = format!("{}{suffix}", d.db_path().display());
        all.extend(std::fs::read(p).unwrap_or_default());
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_daraja_fixture_is_stored_and_parses_to_its_expected_state() {
    // The daemon is reached through a trusted proxy on 127.0.0.1 that names a published
    // Safaricom sender, so the address check passes too: token plus an enforced allowlist
    // authenticates a Daraja callback (`allowlist_authenticates`, on by default), so its
    // successes settle at once.
    let d = TestDaemon::start(&format!(
        "trusted_proxies = [\"127.0.0.1/32\"]\n{}",
        daraja_section("")
    ))
    .await;
    let cases: Vec<Value> =
        serde_json::from_slice(&fixture("daraja/cases.json")).expect("cases.json");
    // Every fixture file is exercised by some case.
    let listed: BTreeSet<String> = cases
        .iter()
        .map(|c| c["file"].as_str().unwrap().to_string())
        .collect();
    let dir = format!("{}/fixtures/daraja", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name != "cases.json" {
            assert!(listed.contains(&name), "{name} has no case in cases.json");
        }
    }
    for c in &cases {
        let file = c["file"].as_str().unwrap();
        let sub = c["sub_route"].as_str().unwrap();
        let kind = c["kind"].as_str().unwrap();
        let reply = daraja_post(
            &d,
            &format!("{DARAJA_TOKEN}{sub}"),
            Some(SAFARICOM_IP),
            &fixture(&format!("daraja/{file}")),
        )
        .await;
        assert_eq!(reply.status, 200, "{file}{sub}: {}", reply.body);
        let ack: Value = serde_json::from_str(&reply.body).unwrap();
        if kind == "c2b_validation" {
            // C2B validation accepts with the string "0".
            assert_eq!(
                ack,
                serde_json::json!({"ResultCode": "0", "ResultDesc": "Accepted"})
            );
        } else {
            assert_eq!(ack["ResultCode"], 0, "{file}{sub}");
        }
        let (stored_kind, auth, signed, parse_error): (String, String, bool, Option<String>) = d
            .db()
            .query_row(
                "SELECT kind, auth, signed, parse_error FROM callbacks
                  WHERE kind = ?1 ORDER BY id DESC LIMIT 1",
                [kind],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap_or_else(|e| panic!("{file}{sub}: no {kind} callback: {e}"));
        assert_eq!(
            (stored_kind.as_str(), auth.as_str(), signed, parse_error),
            (kind, "token+ip", false, None),
            "{file}{sub}"
        );
        let Some(provider_ref) = c["provider_ref"].as_str() else {
            continue;
        };
        let row = txn(&d, "daraja", provider_ref)
            .unwrap_or_else(|| panic!("{file}{sub}: no transaction {provider_ref}"));
        let expected: TxnRow = (
            c["status"].as_str().unwrap().to_string(),
            c["unconfirmed_status"].as_str().map(str::to_string),
            c["reason"].as_str().map(str::to_string),
            c["amount_minor"].as_i64(),
        );
        assert_eq!(row, expected, "{file}{sub}");
    }
    // C2B validation is not a payment: nothing but the confirmation made a c2b row.
    assert_eq!(
        d.count("SELECT count(*) FROM transactions WHERE kind = 'c2b'"),
        1
    );
    // Transaction Status results are stored for the reconciler and change nothing.
    assert_eq!(
        d.count("SELECT count(*) FROM callbacks WHERE kind = 'transaction_status' AND transaction_id IS NULL"),
        1
    );
    // Authenticated (token and a Safaricom sender): nothing is held, every success is
    // announced, confirmed.
    assert_eq!(
        d.count("SELECT count(*) FROM transactions WHERE unconfirmed_status IS NOT NULL"),
        0
    );
    assert_eq!(
        d.count("SELECT count(*) FROM events WHERE type = 'transaction.succeeded' AND json_extract(payload, '$.data.confirmed') = 1"),
        4
    );
    // Failures are terminal and produce their event.
    assert_eq!(
        d.count("SELECT count(*) FROM events WHERE type = 'transaction.failed'"),
        3
    );
    // The token was never written to the store, nor its path.
    let bytes = db_bytes(&d);
    assert!(!contains(&bytes, DARAJA_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_daraja_token_is_401_and_nothing_is_stored() {
    let d = TestDaemon::start(&daraja_section("allowed_ips = [\"127.0.0.1\"]")).await;
    let body = fixture("daraja/stk_success.json");
    let wrong = [
        "/callbacks/daraja".to_string(),
        "/callbacks/daraja/".to_string(),
        "/callbacks/daraja/t0k3n-daraja-zzzzzzzz".to_string(),
        format!("/callbacks/daraja/{DARAJA_TOKEN}x"),
        format!("/callbacks/daraja/x{DARAJA_TOKEN}/c2b/confirmation"),
        format!("/callbacks/daraja//{DARAJA_TOKEN}"),
    ];
    for path in &wrong {
        let reply = post(d.addr, path, &[], &body).await;
        assert_eq!(reply.status, 401, "{path}: {}", reply.body);
    }
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 0);
    assert_eq!(d.count("SELECT count(*) FROM transactions"), 0);
    assert_eq!(
        d.ctx.metrics.counter(
            "payhook_auth_failures_total",
            &[("provider", "daraja"), ("reason", "unknown_token")]
        ),
        wrong.len() as u64
    );
    // The token being rotated in is as good as the current one.
    let reply = daraja_post(&d, DARAJA_OLD_TOKEN, None, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daraja_duplicates_store_once_and_apply_once() {
    let d = TestDaemon::start(&daraja_section("allowed_ips = [\"127.0.0.1\"]")).await;
    for (sub, file) in [
        ("", "daraja/stk_success.json"),
        ("/c2b/confirmation", "daraja/c2b.json"),
        ("/timeout", "daraja/b2c_queue_timeout.json"),
    ] {
        let body = fixture(file);
        for _ in 0..3 {
            let reply = daraja_post(&d, &format!("{DARAJA_TOKEN}{sub}"), None, &body).await;
            assert_eq!(reply.status, 200, "{file}: {}", reply.body);
        }
    }
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 3);
    assert_eq!(
        d.count("SELECT count(*) FROM callbacks WHERE deliveries = 3"),
        3
    );
    assert_eq!(d.count("SELECT count(*) FROM transactions"), 3);
    assert_eq!(d.count("SELECT count(*) FROM transitions"), 3);
}

/// An authenticated body payhook cannot read is kept raw, and where it came in is part of
/// what makes it a retry: the same unreadable body on the C2B validation and on the
/// confirmation route (money moved) is two callbacks, not one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_daraja_bodies_on_two_routes_are_two_callbacks() {
    let d = TestDaemon::start(&daraja_section("allowed_ips = [\"127.0.0.1\"]")).await;
    let body = b"{\"TransID\": \"RKTQDM7W6S\", \"TransAmount\": ";
    for sub in ["/c2b/validation", "/c2b/confirmation", "/c2b/confirmation"] {
        let reply = daraja_post(&d, &format!("{DARAJA_TOKEN}{sub}"), None, body).await;
        assert_eq!(reply.status, 200, "{sub}: {}", reply.body);
    }
    assert_eq!(
        d.count(
            "SELECT count(*) FROM callbacks WHERE kind = 'unparsed' AND parse_error IS NOT NULL"
        ),
        2
    );
    assert_eq!(
        d.count("SELECT count(*) FROM callbacks WHERE dedup_key LIKE '%:c2b/confirmation:sha256:%' AND deliveries = 2"),
        1
    );
    assert!(!contains(&db_bytes(&d), DARAJA_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_confirm_unsigned_off_a_daraja_success_settles_at_once() {
    let d = TestDaemon::start(&daraja_section(
        "allowed_ips = [\"127.0.0.1\"]\nconfirm_unsigned = false",
    ))
    .await;
    let reply = daraja_post(&d, DARAJA_TOKEN, None, &fixture("daraja/stk_success.json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        txn(&d, "daraja", "ws_CO_191220191020363925"),
        Some(("SUCCEEDED".into(), None, None, Some(100)))
    );
    assert_eq!(
        d.count("SELECT count(*) FROM events WHERE type = 'transaction.succeeded'"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_outside_the_allowlist_is_403_in_enforce_mode_before_the_token_is_checked() {
    let d = TestDaemon::start(&format!(
        "trusted_proxies = [\"127.0.0.1/32\"]\n{}",
        daraja_section("")
    ))
    .await;
    let body = fixture("daraja/stk_success.json");
    // Through the trusted proxy, from an address that is not a Safaricom sender.
    let reply = daraja_post(&d, DARAJA_TOKEN, Some("203.0.113.9"), &body).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    // A wrong token from a refused address is refused for its address first.
    let reply = daraja_post(&d, "wrong-token-00000000", Some("203.0.113.9"), &body).await;
    assert_eq!(reply.status, 403);
    // A client-written hop left of the sender does not help or hurt: the right-most
    // untrusted hop is the client.
    let reply = daraja_post(
        &d,
        DARAJA_TOKEN,
        Some("196.201.214.200, 203.0.113.9"),
        &body,
    )
    .await;
    assert_eq!(reply.status, 403);
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 0);
    assert_eq!(
        d.ctx.metrics.counter(
            "payhook_ip_refusals_total",
            &[("provider", "daraja"), ("policy", "enforce")]
        ),
        3
    );
    assert_eq!(
        d.ctx.metrics.counter(
            "payhook_auth_failures_total",
            &[("provider", "daraja"), ("reason", "unknown_token")]
        ),
        0
    );
    // The same callback from a published sender is accepted.
    let reply = daraja_post(&d, DARAJA_TOKEN, Some("203.0.113.9, 196.201.213.44"), &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let client_ip: String = d
        .db()
        .query_row("SELECT client_ip FROM callbacks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(client_ip, "196.201.213.44");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_does_not_pass_the_allowlist() {
    // No trusted proxy: the TCP peer (127.0.0.1) is the client, whatever it claims.
    let d = TestDaemon::start(&daraja_section("ip_policy = \"enforce\"")).await;
    let reply = daraja_post(
        &d,
        DARAJA_TOKEN,
        Some(SAFARICOM_IP),
        &fixture("daraja/stk_success.json"),
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_only_accepts_an_address_outside_the_allowlist_and_counts_it() {
    let d = TestDaemon::start(&daraja_section("ip_policy = \"log-only\"")).await;
    let reply = daraja_post(
        &d,
        DARAJA_TOKEN,
        Some(SAFARICOM_IP),
        &fixture("daraja/stk_success.json"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let (auth, client_ip): (String, String) = d
        .db()
        .query_row("SELECT auth, client_ip FROM callbacks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    // Only the token passed: the address check is not claimed.
    assert_eq!((auth.as_str(), client_ip.as_str()), ("token", "127.0.0.1"));
    assert_eq!(
        d.ctx.metrics.counter(
            "payhook_ip_refusals_total",
            &[("provider", "daraja"), ("policy", "log-only")]
        ),
        1
    );
    // Token only, and no STK query configured to confirm it: applied, but marked as
    // unconfirmed, which its event says too.
    assert_eq!(
        txn(&d, "daraja", "ws_CO_191220191020363925"),
        Some(("SUCCEEDED".into(), None, None, None))
    );
    assert_eq!(
        d.count("SELECT count(*) FROM transactions WHERE status_confirmed = 0"),
        1
    );
    let payload: String = d
        .db()
        .query_row("SELECT payload FROM events", [], |r| r.get(0))
        .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["data"]["confirmed"], false, "{payload}");
}

fn jenga_section(extra: &str) -> String {
    format!("[providers.jenga]\nipn_username = \"ipnuser\"\nipn_password = \"ipnpass\"\n{extra}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenga_basic_credentials_store_and_settle_and_duplicates_store_once() {
    let d = TestDaemon::start(&jenga_section("")).await;
    let body = fixture("jenga/ipn_success.json");
    for _ in 0..2 {
        let reply = post(
            d.addr,
            "/callbacks/jenga",
            &[("Authorization", JENGA_AUTH)],
            &body,
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let reply = post(
        d.addr,
        "/callbacks/jenga",
        &[("Authorization", JENGA_AUTH)],
        &fixture("jenga/ipn_older_variant.json"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 2);
    assert_eq!(
        d.count("SELECT deliveries FROM callbacks WHERE dedup_key = 'IPN:328411183176:SUCCESS'"),
        2
    );
    // Basic credentials prove the sender: the success is not held.
    assert_eq!(
        txn(&d, "jenga", "328411183176"),
        Some(("SUCCEEDED".into(), None, None, Some(15000)))
    );
    // The older variant's reference is trimmed and its string amount read exactly.
    assert_eq!(
        txn(&d, "jenga", "S2596405"),
        Some((
            "FAILED".into(),
            None,
            Some("PROVIDER_FAILED".into()),
            Some(1000)
        ))
    );
    let (auth, signed, headers): (String, bool, String) = d
        .db()
        .query_row(
            "SELECT auth, signed, headers FROM callbacks ORDER BY id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((auth.as_str(), signed), ("basic", true));
    assert!(!headers.contains("aXBudXNlcjppcG5wYXNz"), "{headers}");
    assert_eq!(d.count("SELECT count(*) FROM events"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenga_bad_or_missing_credentials_are_401_and_nothing_is_stored() {
    let d = TestDaemon::start(&jenga_section("")).await;
    let body = fixture("jenga/ipn_success.json");
    for headers in [
        vec![],
        vec![("Authorization", "Basic aXBudXNlcjp3cm9uZw==")], // ipnuser:wrong
        vec![("Authorization", "Basic 67ew8n31me")],
        vec![("Authorization", "Bearer aXBudXNlcjppcG5wYXNz")],
    ] {
        let reply = post(d.addr, "/callbacks/jenga", &headers, &body).await;
        assert_eq!(reply.status, 401, "{headers:?}");
    }
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 0);
    assert_eq!(d.count("SELECT count(*) FROM transactions"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jenga_and_tujenge_allowlists_refuse_or_log() {
    // 127.0.0.1 is outside 192.0.2.0/24.
    let d = TestDaemon::start(&format!(
        "{}[providers.tujenge]\ncallback_tokens = [\"{TUJENGE_TOKEN}\"]\nallowed_ips = [\"192.0.2.0/24\"]\n",
        jenga_section("allowed_ips = [\"192.0.2.0/24\"]")
    ))
    .await;
    let reply = post(
        d.addr,
        "/callbacks/jenga",
        &[("Authorization", JENGA_AUTH)],
        &fixture("jenga/ipn_success.json"),
    )
    .await;
    assert_eq!(reply.status, 403);
    let path = format!("/callbacks/tujenge/{TUJENGE_TOKEN}");
    let reply = post(d.addr, &path, &[], &fixture("tujenge/unknown_shape.json")).await;
    assert_eq!(reply.status, 403);
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 0);
    d.stop().await;

    let d = TestDaemon::start(&jenga_section(
        "allowed_ips = [\"192.0.2.0/24\"]\nip_policy = \"log-only\"",
    ))
    .await;
    let reply = post(
        d.addr,
        "/callbacks/jenga",
        &[("Authorization", JENGA_AUTH)],
        &fixture("jenga/ipn_success.json"),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        d.count("SELECT count(*) FROM callbacks WHERE auth = 'basic'"),
        1
    );
}

fn tujenge_ref() -> String {
    use sha2::{Digest, Sha256};
    // providers/tujenge.rs: `tok_` + the first 16 hex digits of sha256(token).
    format!(
        "tok_{}",
        &hex::encode(Sha256::digest(TUJENGE_TOKEN.as_bytes()))[..16]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tujenge_is_correlated_by_its_token_and_a_forwarded_stk_result_is_read() {
    let d = TestDaemon::start(&format!(
        "[providers.tujenge]\ncallback_tokens = [\"{TUJENGE_TOKEN}\"]\n"
    ))
    .await;
    let path = format!("/callbacks/tujenge/{TUJENGE_TOKEN}");
    let unknown = fixture("tujenge/unknown_shape.json");
    for _ in 0..2 {
        assert_eq!(post(d.addr, &path, &[], &unknown).await.status, 200);
    }
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 1);
    assert_eq!(d.count("SELECT deliveries FROM callbacks"), 2);
    assert_eq!(
        txn(&d, "tujenge", &tujenge_ref()),
        Some(("PENDING".into(), None, None, None))
    );
    let stk = fixture("tujenge/forwarded_stk_success.json");
    let reply = post(d.addr, &path, &[], &stk).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Unsigned, and Tujenge has no status query: applied on the same, token-correlated
    // row, marked as unconfirmed; its amount is kept apart, as unconfirmed too.
    assert_eq!(
        txn(&d, "tujenge", &tujenge_ref()),
        Some(("SUCCEEDED".into(), None, None, None))
    );
    assert_eq!(
        d.count("SELECT count(*) FROM transactions WHERE status_confirmed = 0"),
        1
    );
    let (kind, auth, body): (String, String, Vec<u8>) = d
        .db()
        .query_row(
            "SELECT kind, auth, body FROM callbacks ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((kind.as_str(), auth.as_str()), ("daraja_stk", "token"));
    assert_eq!(body, stk, "stored raw");
    assert!(!contains(&db_bytes(&d), TUJENGE_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_tujenge_token_is_401_and_nothing_is_stored() {
    let d = TestDaemon::start(&format!(
        "[providers.tujenge]\ncallback_tokens = [\"{TUJENGE_TOKEN}\"]\n"
    ))
    .await;
    let body = fixture("tujenge/unknown_shape.json");
    for path in [
        "/callbacks/tujenge".to_string(),
        "/callbacks/tujenge/t0k3n-tujenge-bbbbbbc".to_string(),
        format!("/callbacks/tujenge/{}", &TUJENGE_TOKEN[..10]),
    ] {
        assert_eq!(post(d.addr, &path, &[], &body).await.status, 401, "{path}");
    }
    assert_eq!(d.count("SELECT count(*) FROM callbacks"), 0);
}

/// The binary as an operator runs it: a log-only miss is logged with the address, and
/// neither that line nor any other carries the path token (it is in the path).
#[test]
fn log_only_misses_are_logged_with_the_address_and_never_the_token() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    const BIN: &str = env!("CARGO_BIN_EXE_payhook");
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.path().join("payhook.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[log]\nlevel = \"debug\"\n[store]\npath = \"{}\"\n{}",
            dir.path().join("p.db").display(),
            daraja_section("ip_policy = \"log-only\"")
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("payhook.log")).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    crate::support::binary::wait_ready(
        std::path::Path::new(BIN),
        &cfg,
        &mut child,
        Duration::from_secs(20),
    );
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let body = fixture("daraja/stk_success.json");
        let ok = post(
            addr,
            &format!("/callbacks/daraja/{DARAJA_TOKEN}"),
            &[],
            &body,
        )
        .await;
        assert_eq!(ok.status, 200, "{}", ok.body);
        let bad = post(addr, "/callbacks/daraja/wrong-token-secret-1", &[], &body).await;
        assert_eq!(bad.status, 401);
    });
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("payhook did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let logs = std::fs::read_to_string(dir.path().join("payhook.log")).unwrap();
    let warning = logs
        .lines()
        .find(|l| l.contains("log-only"))
        .unwrap_or_else(|| panic!("no log-only warning in:\n{logs}"));
    assert!(
        warning.contains("127.0.0.1") && warning.contains("WARN"),
        "{warning}"
    );
    for secret in [DARAJA_TOKEN, "wrong-token-secret-1"] {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
    }
}
