//! The `payhook` binary as an operator runs it: CLI answers, start-up, SIGTERM drain, and
//! logs that never contain a secret.

use crate::support::binary::wait_ready;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_payhook");

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("payhook.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "public_base_url = \"https://hooks.example.com\"\n[providers.zengapay]\nsecret_hash = \"zp-SECRET-1\"\n[providers.bitpesa]\napi_key = \"bp-KEY-2\"\napi_secret = \"bp-SECRET-3\"\n",
    );
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[redacted]") && text.contains("max_body_bytes = 65536"),
        "{text}"
    );
    for secret in ["zp-SECRET-1", "bp-KEY-2", "bp-SECRET-3"] {
        assert!(!text.contains(secret), "{secret} printed");
    }
}

#[test]
fn check_config_without_a_file_shows_the_built_in_defaults() {
    let out = Command::new(BIN).arg("check-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listen = \"127.0.0.1:8080\""), "{text}");
    assert!(text.contains("payhook.db"), "{text}");
}

#[test]
fn a_bad_config_names_the_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("max_body_bytes = \"big\"\n", "max_body_bytes"),
        (
            "[providers.bitpesa]\napi_key = \"k\"\napi_secret = \"s\"\n",
            "public_base_url",
        ),
        (
            "[providers.zengapay]\nsecret_hash_file = \"missing\"\n",
            "providers.zengapay.secret_hash_file",
        ),
    ] {
        let cfg = write_config(dir.path(), text);
        let out = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{text:?}: {err}");
    }
}

#[test]
fn serve_answers_drains_on_sigterm_and_never_logs_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:{port}\"\npublic_base_url = \"https://hooks.example.com\"\n[log]\nlevel = \"debug\"\n[store]\npath = \"{}\"\n[providers.zengapay]\nsecret_hash = \"zp-SECRET-1\"\n[providers.bitpesa]\napi_key = \"bp-KEY-2\"\napi_secret = \"bp-SECRET-3\"\n",
            dir.path().join("p.db").display()
        ),
    );
    let log = std::fs::File::create(dir.path().join("payhook.log")).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    // Wait for readiness with the binary's own healthcheck, bounded.
    wait_ready(Path::new(BIN), &cfg, &mut child, Duration::from_secs(20));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    rt.block_on(async {
        use crate::support::http::post;
        // Bad credentials carrying secrets of their own, and a good callback.
        let r = post(
            addr,
            "/callbacks/bitpesa",
            &[
                ("Authorization-Key", "bp-KEY-2"),
                ("Authorization-Nonce", "n"),
                ("Authorization-Signature", "00"),
            ],
            b"{}",
        )
        .await;
        assert_eq!(r.status, 401);
        let r = post(
            addr,
            "/callbacks/zengapay",
            &[("X-ZENGAPAY-SIGNATURE", "zp-SECRET-1")],
            b"{}",
        )
        .await;
        assert_eq!(r.status, 401);
        // A good callback that also carries a credential header of its own: stored, with
        // that header's value redacted.
        let body = crate::support::sign::zp_body("ref-drain-1", "SUCCEEDED", "5000");
        let sig = crate::support::sign::zp_sign("zp-SECRET-1", body.as_bytes());
        let r = post(
            addr,
            "/callbacks/zengapay",
            &[
                ("X-ZENGAPAY-SIGNATURE", &sig),
                ("Authorization-Key", "bp-KEY-2"),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    });
    let exit = stop(&mut child);
    assert!(exit.success(), "exit status {exit:?}");
    let logs = std::fs::read_to_string(dir.path().join("payhook.log")).unwrap();
    assert!(
        logs.contains("payhook started") && logs.contains("payhook stopped"),
        "{logs}"
    );
    assert!(logs.contains("callback refused"), "{logs}");
    for secret in ["zp-SECRET-1", "bp-KEY-2", "bp-SECRET-3"] {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
    }
    let stored: Vec<String> = {
        let c = rusqlite::Connection::open(dir.path().join("p.db")).unwrap();
        let mut q = c.prepare("SELECT headers FROM callbacks").unwrap();
        let rows = q.query_map([], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert_eq!(stored.len(), 1, "the good callback is stored: {stored:?}");
    assert!(stored[0].contains("x-zengapay-signature"), "{}", stored[0]);
    assert!(stored[0].contains("[redacted]"), "{}", stored[0]);
    for secret in ["zp-SECRET-1", "bp-KEY-2", "bp-SECRET-3"] {
        assert!(
            !stored[0].contains(secret),
            "{secret} stored: {}",
            stored[0]
        );
    }
}

/// SIGTERM while callbacks are half-received and a delivery is waiting on the merchant:
/// the daemon finishes all of them before it exits. Each half-sent callback gets its 200
/// once its body arrives (after the signal) and is stored; the delivery in flight is
/// answered and recorded as delivered, once; the exit is clean.
#[test]
fn sigterm_finishes_requests_and_deliveries_in_flight() {
    use crate::support::fake_merchant::{Answer, FakeMerchant};
    use crate::support::sign::{zp_body, zp_sign};
    use tokio::io::AsyncWriteExt;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut merchant = rt.block_on(FakeMerchant::start());
    // Each delivery is held by the merchant for a while: in flight when SIGTERM comes.
    merchant.answer(Answer::After(Duration::from_millis(1500), 200));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:{port}\"\n[store]\npath = \"p.db\"\n\
             [providers.zengapay]\nsecret_hash = \"zp-SECRET-1\"\n\
             [forward]\nurl = \"{}\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n",
            merchant.url()
        ),
    );
    let log = std::fs::File::create(dir.path().join("payhook.log")).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_ready(Path::new(BIN), &cfg, &mut child, Duration::from_secs(20));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let half_sent = rt.block_on(async {
        // A settled payment whose delivery the merchant is now holding.
        let body = zp_body("ref-inflight-0", "SUCCEEDED", "5000");
        let sig = zp_sign("zp-SECRET-1", body.as_bytes());
        let r = crate::support::http::post(
            addr,
            "/callbacks/zengapay",
            &[("X-ZENGAPAY-SIGNATURE", &sig)],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200);
        let first = merchant.next().await;
        assert_eq!(first.json()["data"]["provider_ref"], "ref-inflight-0");
        // Three callbacks whose headers and first half of the body are in.
        let mut half_sent = Vec::new();
        for i in 1..=3 {
            let body = zp_body(&format!("ref-inflight-{i}"), "SUCCEEDED", "5000");
            let sig = zp_sign("zp-SECRET-1", body.as_bytes());
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /callbacks/zengapay HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
                 Content-Length: {}\r\nX-ZENGAPAY-SIGNATURE: {sig}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await.unwrap();
            let (first, rest) = body.as_bytes().split_at(body.len() / 2);
            s.write_all(first).await.unwrap();
            half_sent.push((s, rest.to_vec()));
        }
        // Let the daemon read what was sent before the signal comes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        half_sent
    });
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for (mut s, rest) in half_sent {
            s.write_all(&rest).await.unwrap();
            let r = crate::support::http::read_reply(&mut s).await;
            assert_eq!(r.status, 200, "a callback in flight at SIGTERM: {}", r.body);
        }
    });
    let exit = wait_with_deadline(&mut child, Duration::from_secs(25));
    assert!(exit.success(), "exit status {exit:?}");
    let logs = std::fs::read_to_string(dir.path().join("payhook.log")).unwrap();
    assert!(logs.contains("payhook stopped"), "{logs}");
    let c = rusqlite::Connection::open(dir.path().join("p.db")).unwrap();
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM callbacks WHERE provider_ref LIKE 'ref-inflight-%'"),
        4,
        "every callback answered 200 is stored"
    );
    assert_eq!(count("SELECT count(*) FROM events"), 4);
    // The delivery in flight at SIGTERM finished and was recorded, once.
    let (status, attempts): (String, i64) = c
        .query_row(
            "SELECT e.status, e.attempts FROM events e JOIN transactions t ON t.id = e.transaction_id
              WHERE t.provider_ref = 'ref-inflight-0'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), attempts), ("delivered", 1));
    // Nothing delivered without being recorded: every request the merchant saw is an
    // attempt in the store.
    let seen = 1 + rt.block_on(async { merchant.take().len() }) as i64;
    assert_eq!(count("SELECT count(*) FROM attempts"), seen);
}

/// Settings that would refuse every real callback, and an open-files limit below the
/// connection cap, are named in the log at start-up, where the operator looks first.
#[test]
fn serve_warns_about_settings_that_would_refuse_callbacks() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Loopback listener, no trusted proxy, Daraja's published senders enforced.
    let cfg = write_config(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:{port}\"\n[store]\npath = \"{}\"\n[providers.daraja]\ncallback_tokens = [\"d4r4j4-t0k3n-000001\"]\n",
            dir.path().join("p.db").display()
        ),
    );
    let log = std::fs::File::create(dir.path().join("payhook.log")).unwrap();
    let mut child = Command::new("sh")
        .args([
            "-c",
            // Below the cap's needs whatever the hard limit (a lower one stays lower).
            "ulimit -n 2048 2>/dev/null; exec \"$0\" serve --config \"$1\"",
            BIN,
        ])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_ready(Path::new(BIN), &cfg, &mut child, Duration::from_secs(20));
    let exit = stop(&mut child);
    assert!(exit.success(), "exit status {exit:?}");
    let logs = std::fs::read_to_string(dir.path().join("payhook.log")).unwrap();
    assert!(
        logs.contains("providers.daraja.allowed_ips is enforced")
            && logs.contains("trusted_proxies"),
        "{logs}"
    );
    assert!(logs.contains("the open-files limit is "), "{logs}");
}

/// Sends SIGTERM to `child` and waits (bounded) for it to exit.
fn stop(child: &mut std::process::Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM failed");
    wait_with_deadline(child, Duration::from_secs(20))
}

fn wait_with_deadline(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("payhook did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the binary as an unprivileged user when the tests run as root, so that file
/// permissions apply to it as they would to the `payhook` service account.
fn unprivileged(cmd: &mut Command) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if !root {
        return std::mem::replace(cmd, Command::new(BIN));
    }
    let mut wrapped = Command::new("setpriv");
    wrapped.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
    wrapped.args(cmd.get_args());
    wrapped
}

#[test]
fn a_read_only_database_answers_503_and_readyz_fails() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // The service user may create files beside the database (WAL, shared memory), but the
    // database file itself is read-only, as after a restore by root.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let port = free_port();
    let db = dir.path().join("ro.db");
    let cfg = write_config(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:{port}\"\n[store]\npath = \"{}\"\n[providers.zengapay]\nsecret_hash = \"s\"\n",
            db.display()
        ),
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let migrated = Command::new(BIN)
        .args(["migrate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let log = std::fs::File::create(dir.path().join("ro.log")).unwrap();
    let mut serve = Command::new(BIN);
    serve.args(["serve", "--config"]).arg(&cfg);
    let mut child = unprivileged(&mut serve)
        .stderr(log)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "payhook did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    rt.block_on(async {
        use crate::support::http::{get, post};
        let body = br#"{"event":"collection.success","data":{"transactionStatus":"SUCCEEDED","transactionReference":"r1","amount":"1","currencyCode":"UGX","msisdn":"1"}}"#;
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s").unwrap();
        mac.update(body);
        let sig = hex::encode(mac.finalize().into_bytes());
        let reply = post(addr, "/callbacks/zengapay", &[("X-ZENGAPAY-SIGNATURE", &sig)], body).await;
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert_eq!(get(addr, "/readyz").await.status, 503);
        assert_eq!(get(addr, "/healthz").await.status, 200);
    });
    let exit = stop(&mut child);
    assert!(exit.success());
    let logs = std::fs::read_to_string(dir.path().join("ro.log")).unwrap();
    assert!(logs.contains("the store is read-only"), "{logs}");
    let n: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM callbacks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

/// Runs the binary with `args` and the config in `dir`; returns (success, stdout, stderr).
fn payhook(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(dir.join("payhook.toml"))
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn track_review_and_resolve_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        "[store]\npath = \"payhook.db\"\n[providers.zengapay]\nsecret_hash = \"s\"\n",
    );
    // Only migrate creates a store; track refuses a missing one.
    let (ok, _, err) = payhook(dir.path(), &["track", "zengapay", "zp-cli"]);
    assert!(!ok && err.contains("no store at"), "{err}");
    assert!(!dir.path().join("payhook.db").exists());
    let (ok, out, err) = payhook(dir.path(), &["migrate"]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = payhook(
        dir.path(),
        &[
            "track",
            "zengapay",
            "zp-cli",
            "--kind",
            "collection",
            "--amount",
            "1500",
            "--currency",
            "UGX",
            "--merchant-ref",
            "order-1",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("PENDING") && out.contains("now tracked"),
        "{out}"
    );
    let (ok, out, _) = payhook(dir.path(), &["track", "zengapay", "zp-cli"]);
    assert!(ok && out.contains("already known"), "{out}");
    let (ok, _, err) = payhook(
        dir.path(),
        &["track", "zengapay", "zp-cli", "--amount", "1"],
    );
    assert!(!ok && err.contains("--currency"), "{err}");
    let (ok, _, err) = payhook(dir.path(), &["track", "paypal", "x"]);
    assert!(!ok && err.contains("unknown provider"), "{err}");

    // Escalate it as the reconciler would at its deadline, then review and resolve it.
    let db = rusqlite::Connection::open(dir.path().join("payhook.db")).unwrap();
    db.execute(
        "UPDATE transactions SET status = 'NEEDS_REVIEW', reason = 'DEADLINE_PASSED'",
        [],
    )
    .unwrap();
    // A second transaction sharing the merchant reference makes "order-1" ambiguous.
    db.execute(
        "INSERT INTO transactions (provider, provider_ref, merchant_ref) VALUES ('bitpesa', 'tz-9', 'order-1')",
        [],
    )
    .unwrap();
    let (ok, out, _) = payhook(dir.path(), &["review"]);
    assert!(
        ok && out.contains("zp-cli") && out.contains("DEADLINE_PASSED"),
        "{out}"
    );

    let (ok, _, err) = payhook(
        dir.path(),
        &[
            "resolve",
            "order-1",
            "--status",
            "SUCCEEDED",
            "--note",
            "seen in the statement",
        ],
    );
    assert!(!ok && err.contains("ambiguous"), "{err}");
    let (ok, _, err) = payhook(
        dir.path(),
        &["resolve", "zp-cli", "--status", "SUCCEEDED", "--note", " "],
    );
    assert!(!ok && err.contains("note"), "{err}");
    let (ok, out, err) = payhook(
        dir.path(),
        &[
            "resolve",
            "order-1",
            "--provider",
            "zengapay",
            "--status",
            "SUCCEEDED",
            "--note",
            "seen in the statement",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("SUCCEEDED"), "{out}");
    let (status, source, note): (String, String, String) = db
        .query_row(
            "SELECT t.status, r.source, r.note FROM transactions t JOIN transitions r ON r.transaction_id = t.id
              WHERE t.provider_ref = 'zp-cli' ORDER BY r.seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (status.as_str(), source.as_str(), note.as_str()),
        ("SUCCEEDED", "operator", "seen in the statement")
    );
    let events: i64 = db
        .query_row(
            "SELECT count(*) FROM events WHERE type = 'transaction.succeeded'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(events, 1);
    // A settled transaction cannot be decided the other way.
    let (ok, _, err) = payhook(
        dir.path(),
        &[
            "resolve",
            "zp-cli",
            "--status",
            "FAILED",
            "--note",
            "changed my mind",
        ],
    );
    assert!(!ok && err.contains("not a transition"), "{err}");
    let (ok, out, _) = payhook(dir.path(), &["review"]);
    assert!(ok && !out.contains("zp-cli"), "{out}");
}

/// The whole pipeline in the built binary, with no callback at all: the application
/// registers a payment on the admin listener, the background reconciler polls the (fake)
/// provider, and the forwarder delivers the settlement to the (fake) merchant.
#[test]
fn a_registered_payment_is_settled_by_polling_and_forwarded_without_any_callback() {
    use crate::support::fake_merchant::FakeMerchant;
    use crate::support::fake_provider::{FakeProvider, FakeReply};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (fake, mut merchant) =
        rt.block_on(async { (FakeProvider::start().await, FakeMerchant::start().await) });
    let reference = "566a4a89-4024-584c-b1f5-8c59aff0d334";
    fake.push(
        &format!("/v1/collections/{reference}"),
        FakeReply::new(
            200,
            format!(r#"{{"code":200,"status":"OK","data":{{"transactionReference":"{reference}","transactionStatus":"SUCCEEDED","amount":126600,"currencyCode":"UGX-MTNMM"}}}}"#),
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let cfg = write_config(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:{port}\"\n[store]\npath = \"p.db\"\n\
             [providers.zengapay]\nsecret_hash = \"zp-SECRET-1\"\napi_token = \"zp-API-TOKEN-4\"\n\
             base_url = \"{}\"\npoll_first_after = \"1s\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"admin-TOKEN-0123456789\"\n\
             [forward]\nurl = \"{}\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n",
            fake.url(),
            merchant.url()
        ),
    );
    let log = std::fs::File::create(dir.path().join("payhook.log")).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_ready(Path::new(BIN), &cfg, &mut child, Duration::from_secs(20));
    let event = rt.block_on(async {
        let body = format!(
            r#"{{"provider":"zengapay","provider_ref":"{reference}","kind":"collection","amount":"126600","currency":"UGX","merchant_ref":"order-1001"}}"#
        );
        let admin = format!("127.0.0.1:{admin_port}").parse().unwrap();
        let r = crate::support::http::post(
            admin,
            "/v1/transactions",
            &[("Authorization", "Bearer admin-TOKEN-0123456789")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        merchant.next().await
    });
    let payload = event.json();
    assert_eq!(payload["type"], "transaction.succeeded");
    assert_eq!(payload["data"]["provider_ref"], reference);
    assert_eq!(payload["data"]["merchant_ref"], "order-1001");
    assert_eq!(
        fake.requests()[0].headers["authorization"],
        "Bearer zp-API-TOKEN-4"
    );

    let exit = stop(&mut child);
    assert!(exit.success(), "exit status {exit:?}");
    let logs = std::fs::read_to_string(dir.path().join("payhook.log")).unwrap();
    assert!(logs.contains("admin listener started"), "{logs}");
    for secret in ["zp-API-TOKEN-4", "admin-TOKEN-0123456789", "zp-SECRET-1"] {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
    }
}
