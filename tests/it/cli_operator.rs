//! The operator's first hour, as the binary: `send-test` against a running daemon for
//! every provider, the operator commands on a configuration whose secret files do not
//! exist, a missing store, and a review queue worked down to empty.

use crate::support::TestDaemon;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_payhook");

/// Every provider enabled, with inline secrets; Daraja accepts loopback senders.
const ALL_PROVIDERS: &str = r#"public_base_url = "https://hooks.example.com"
[providers.zengapay]
secret_hash = "zp-test-secret"
[providers.bitpesa]
api_key = "bp-key"
api_secret = "bp-secret"
[providers.daraja]
callback_tokens = ["d4r4j4-t0k3n-000001"]
allowed_ips = ["127.0.0.1/32"]
[providers.jenga]
ipn_username = "ipnuser"
ipn_password = "ipnpass"
[providers.tujenge]
callback_tokens = ["tujenge-token-00000001"]
"#;

/// The same file in production form: every secret in a file that is not there (as under
/// systemd credentials, readable by the service alone).
const SECRETS_ELSEWHERE: &str = r#"public_base_url = "https://hooks.example.com"
[store]
path = "payhook.db"
[providers.zengapay]
secret_hash_file = "/run/credentials/payhook.service/zengapay"
[providers.bitpesa]
api_key_file = "/run/credentials/payhook.service/bitpesa_key"
api_secret_file = "/run/credentials/payhook.service/bitpesa_secret"
[providers.daraja]
callback_tokens_file = "/run/credentials/payhook.service/daraja"
[forward]
url = "https://merchant.example/hooks"
secrets_file = "/run/credentials/payhook.service/forward"
"#;

/// Runs the binary in `dir` with `args`: (exit code, stdout, stderr).
fn payhook(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts a daemon with every provider and writes the configuration it runs with to
/// `payhook.toml` in its directory, so the CLI there reads the same credentials.
async fn daemon() -> TestDaemon {
    let d = TestDaemon::start(ALL_PROVIDERS).await;
    std::fs::write(
        d.dir.path().join("payhook.toml"),
        format!(
            "listen = \"{}\"\n{ALL_PROVIDERS}[reconciler]\nenabled = false\n[store]\npath = \"payhook.db\"\n",
            d.addr
        ),
    )
    .unwrap();
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn send_test_is_accepted_and_stored_for_every_provider() {
    let d = daemon().await;
    let dir = d.dir.path().to_path_buf();
    let to = format!("http://{}", d.addr);
    for provider in ["zengapay", "bitpesa", "daraja", "jenga", "tujenge"] {
        let reference = format!("st-{provider}-1");
        let args = [
            "send-test",
            provider,
            "--ref",
            &reference,
            "--to",
            &to,
            "-c",
            "payhook.toml",
        ];
        let (code, out, err) = tokio::task::block_in_place(|| payhook(&dir, &args));
        assert_eq!(code, 0, "{provider}: {out}{err}");
        assert!(out.contains("200 OK"), "{provider}: {out}");
        // Tokens never reach the output.
        assert!(
            !out.contains("d4r4j4-t0k3n") && !out.contains("tujenge-token"),
            "{out}"
        );
        let stored = d.count(&format!(
            "SELECT count(*) FROM callbacks WHERE provider = '{provider}' AND parse_error IS NULL"
        ));
        assert_eq!(stored, 1, "{provider}: {out}");
    }
    // The provider's reference is what payhook files them under (Tujenge's is its
    // token's id); every one is a success.
    for provider in ["zengapay", "bitpesa", "jenga"] {
        let status: String = d
            .db()
            .query_row(
                "SELECT status FROM transactions WHERE provider = ?1 AND provider_ref = ?2",
                [provider, &format!("st-{provider}-1")],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(status, "SUCCEEDED", "{provider}");
    }
    // Daraja's token came from an allowlisted address: authenticated. Tujenge's is a
    // token alone with no status query to confirm it: applied, announced as unconfirmed.
    for (provider, confirmed) in [("daraja", true), ("tujenge", false)] {
        let (status, got): (String, bool) = d
            .db()
            .query_row(
                "SELECT status, status_confirmed FROM transactions WHERE provider = ?1",
                [provider],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (status.as_str(), got),
            ("SUCCEEDED", confirmed),
            "{provider}"
        );
    }
    // A status the provider never sends is refused before anything is posted.
    let (code, _, err) = tokio::task::block_in_place(|| {
        payhook(
            &dir,
            &[
                "send-test",
                "jenga",
                "--status",
                "pending",
                "--to",
                &to,
                "-c",
                "payhook.toml",
            ],
        )
    });
    assert!(code != 0 && err.contains("no pending callback"), "{err}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_review_queue_is_worked_down_to_empty() {
    let d = daemon().await;
    let dir = d.dir.path().to_path_buf();
    let to = format!("http://{}", d.addr);
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-c", "payhook.toml"]);
        tokio::task::block_in_place(|| payhook(&dir, &all))
    };
    // A registered amount the provider contradicts: NEEDS_REVIEW.
    let (code, out, err) = run(&[
        "track",
        "zengapay",
        "rv-1",
        "--kind",
        "collection",
        "--amount",
        "1500",
        "--currency",
        "UGX",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&[
        "send-test",
        "zengapay",
        "--ref",
        "rv-1",
        "--amount",
        "2000",
        "--to",
        &to,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // A success, then a failure for it: a conflict.
    for status in ["succeeded", "failed"] {
        let (code, out, err) = run(&[
            "send-test",
            "bitpesa",
            "--ref",
            "rv-2",
            "--status",
            status,
            "--to",
            &to,
        ]);
        assert_eq!(code, 0, "{out}{err}");
    }
    // An authenticated body payhook cannot read: an unparsed callback.
    let body = br#"{"event":"collection.success","data":{"note":"no reference here"}}"#;
    let sig = crate::support::sign::zp_sign("zp-test-secret", body);
    let reply = crate::support::http::post(
        d.addr,
        "/callbacks/zengapay",
        &[("X-ZENGAPAY-SIGNATURE", &sig)],
        body,
    )
    .await;
    assert_eq!(reply.status, 200);

    let (code, out, _) = run(&["review", "--exit-code"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("ID\tSINCE\tITEM"), "{out}");
    let (code, out, _) = run(&["review", "--json"]);
    assert_eq!(code, 0);
    let items: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["item"].as_str().unwrap()).collect();
    assert_eq!(items.len(), 3, "{out}");
    for kind in ["transaction", "conflict", "callback"] {
        assert!(kinds.contains(&kind), "{out}");
    }
    let id_of = |kind: &str| {
        items
            .iter()
            .find(|i| i["item"] == kind)
            .map(|i| i["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    // A transaction leaves review by a decision only.
    let (code, _, err) = run(&["review", "dismiss", &id_of("transaction"), "--note", "x"]);
    assert!(code != 0 && err.contains("payhook resolve"), "{err}");
    let (code, out, err) = run(&[
        "review",
        "dismiss",
        &id_of("callback"),
        "--note",
        "sandbox noise",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&[
        "resolve",
        "rv-1",
        "--status",
        "SUCCEEDED",
        "--note",
        "2000 seen in the statement",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // The conflict closes with its transaction's decision, even one that changes nothing.
    let (code, out, err) = run(&[
        "resolve",
        "rv-2",
        "--status",
        "SUCCEEDED",
        "--note",
        "paid out; the cancel came late",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 conflict(s) closed"), "{out}");
    let (code, out, _) = run(&["review", "--exit-code"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to review"), "{out}");
    assert_eq!(d.count("SELECT count(*) FROM review_queue"), 0);
    assert_eq!(d.count("SELECT count(*) FROM review_dismissals"), 2);

    // show tells the whole story of one transaction, by either reference.
    let (code, out, err) = run(&["show", "order-rv-2"]);
    assert_eq!(code, 0, "{out}{err}");
    let story: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(story["transaction"]["provider_ref"], "rv-2");
    assert_eq!(story["callbacks"].as_array().unwrap().len(), 2);
    assert!(story["transitions"].as_array().unwrap().len() >= 2);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_commands_need_only_the_store() {
    // A running daemon for healthcheck to ask; the store the commands use is their own.
    let d = TestDaemon::start("").await;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("payhook.toml"),
        format!("listen = \"{}\"\n{SECRETS_ELSEWHERE}", d.addr),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-c", "payhook.toml"]);
        tokio::task::block_in_place(|| payhook(p, &all))
    };
    // The daemon and check-config need the secrets, and say which one is missing, once.
    let (code, _, err) = run(&["check-config"]);
    assert!(code != 0 && err.contains("zengapay"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    // A missing store: an error, and nothing created.
    for args in [
        &["review"][..],
        &["events", "list"],
        &["track", "zengapay", "x"],
        &["resolve", "x", "--status", "FAILED", "--note", "n"],
        &["show", "x"],
    ] {
        let (code, _, err) = run(args);
        assert!(code != 0 && err.contains("no store at"), "{args:?}: {err}");
        assert!(!p.join("payhook.db").exists(), "{args:?} created the store");
    }
    let (code, out, err) = run(&["migrate"]);
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = run(&["track", "zengapay", "op-1", "--merchant-ref", "order-1"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(&["track", "zengapay", "op-2", "--kind", "stk"]);
    assert!(
        code != 0 && err.contains("zengapay has no stk payments"),
        "{err}"
    );
    let (code, out, err) = run(&["review"]);
    assert_eq!((code, out.trim()), (0, "nothing to review"), "{err}");
    let (code, out, err) = run(&["events", "list"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&[
        "resolve",
        "order-1",
        "--status",
        "FAILED",
        "--note",
        "cancelled at the till",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["show", "op-1"]);
    assert!(code == 0 && out.contains("\"FAILED\""), "{out}{err}");
    let (code, out, err) = run(&["events", "enable-destination"]);
    assert!(code == 0 && out.contains("merchant.example"), "{out}{err}");

    // --store overrides the configuration's database.
    let (code, _, err) = run(&["review", "--store", "elsewhere.db"]);
    assert!(code != 0 && err.contains("elsewhere.db"), "{err}");
    assert!(!p.join("elsewhere.db").exists());
    let (code, out, err) = run(&["show", "op-1", "--store", "payhook.db"]);
    assert_eq!(code, 0, "{out}{err}");

    // healthcheck asks the configured listener, without secrets.
    let (code, out, err) = run(&["healthcheck"]);
    assert!(code == 0 && out.contains("200"), "{out}{err}");
    d.stop().await;
}

#[test]
fn completions_man_page_and_a_fresh_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = payhook(dir.path(), &["completions", "bash"]);
    assert!(code == 0 && out.contains("send-test"), "{out}");
    let (code, out, _) = payhook(dir.path(), &["man"]);
    assert!(code == 0 && out.contains(".TH payhook"), "{out}");
    let (code, a, _) = payhook(dir.path(), &["gen-secret"]);
    let (_, b, _) = payhook(dir.path(), &["gen-secret"]);
    assert!(code == 0 && a.starts_with("whsec_") && a != b, "{a}");
    payhook::forward::sign::SigningKey::parse(a.trim()).unwrap();
}

#[test]
fn the_demo_runs_and_its_summary_matches_the_store_it_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let (code, out, err) = payhook(dir.path(), &["demo", "--dir", demo_dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let db = rusqlite::Connection::open(demo_dir.join("payhook.db")).unwrap();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };

    // Every provider's callback arrived; the forgery was refused and never stored.
    assert_eq!(out.matches("\n  accepted ").count(), 6, "{out}");
    assert_eq!(out.matches("refused 401").count(), 1, "{out}");
    for provider in ["zengapay", "bitpesa", "daraja", "jenga", "tujenge"] {
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM callbacks WHERE provider = '{provider}'"
            )),
            1,
            "{provider}"
        );
    }
    let (callbacks, deliveries) = (
        count("SELECT count(*) FROM callbacks"),
        count("SELECT sum(deliveries) FROM callbacks"),
    );
    assert!(
        out.contains(&format!(
            "{callbacks} distinct callbacks from {deliveries} deliveries"
        )),
        "{out}"
    );
    assert_eq!((callbacks, deliveries), (5, 6));
    assert_eq!(
        count("SELECT count(*) FROM transactions WHERE amount_minor = 9900000"),
        0
    );

    // Each "settled" line is a transaction of the store, with its status.
    let mut stmt = db
        .prepare("SELECT provider, provider_ref, status FROM transactions")
        .unwrap();
    let rows: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 6);
    for (provider, reference, status) in &rows {
        let line = out
            .lines()
            .find(|l| {
                l.trim_start().starts_with(provider.as_str())
                    && l.contains(reference.as_str())
                    && l.contains(" by ")
            })
            .unwrap_or_else(|| panic!("{provider} {reference} missing from:\n{out}"));
        assert!(line.contains(status.as_str()), "{line}");
    }
    // One payment was settled by a status query, no callback.
    let (status, polls): (String, i64) = db
        .query_row(
            "SELECT status, (SELECT count(*) FROM polls WHERE transaction_id = t.id)
               FROM transactions t WHERE provider_ref = 'demo-zp-polled'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(status == "SUCCEEDED" && polls >= 1, "{status} {polls}");
    assert!(
        out.contains("demo-zp-polled") && out.contains("by status query"),
        "{out}"
    );

    // The merchant received, signed, every event the store holds as delivered.
    let events = count("SELECT count(*) FROM events");
    assert_eq!(
        events,
        count("SELECT count(*) FROM events WHERE status = 'delivered'")
    );
    assert!(
        out.contains(&format!(
            "received: {events} event(s), {events} with a valid"
        )),
        "{out}"
    );
    let mut ids = db.prepare("SELECT id FROM events").unwrap();
    for id in ids.query_map([], |r| r.get::<_, String>(0)).unwrap() {
        assert!(out.contains(&id.unwrap()), "{out}");
    }
    // It ends with the queries, and its configuration works from anywhere.
    assert!(out.contains("sqlite3 "), "{out}");
    let config = demo_dir.join("payhook.toml");
    let (code, show, err) = payhook(
        Path::new("/"),
        &["-c", config.to_str().unwrap(), "show", "demo-zp-1"],
    );
    assert!(code == 0 && show.contains("\"callbacks\""), "{show}{err}");
    // A second run refuses to mix its story with the first one's store.
    let (code, _, err) = payhook(dir.path(), &["demo", "--dir", demo_dir.to_str().unwrap()]);
    assert!(code != 0 && err.contains("already holds"), "{err}");
}
