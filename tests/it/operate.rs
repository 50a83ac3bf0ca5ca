//! Operating the built binary in production: no secret in any log line or anywhere in the
//! database after a run that touches every provider, the admin listener and the
//! forwarder.

use crate::support::binary::wait_ready;
use crate::support::fake_merchant::FakeMerchant;
use crate::support::http::post;
use crate::support::sign::{bp_sign, zp_sign};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_payhook");

/// The built binary serving a config in a temporary directory, stderr to a log file.
pub struct Proc {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub child: Child,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Proc {
    /// Writes `config` (which must use `listen = "127.0.0.1:{port}"` with the port given
    /// to `config`) and starts `payhook serve`, with `env` added; waits until ready.
    pub fn start(config: impl FnOnce(u16, &Path) -> String, env: &[(&str, &str)]) -> Proc {
        let mut p = Proc::spawn(config, env);
        let cfg = p.dir.path().join("payhook.toml");
        wait_ready(Path::new(BIN), &cfg, &mut p.child, Duration::from_secs(30));
        p
    }

    /// [`Proc::start`] without waiting for readiness.
    pub fn spawn(config: impl FnOnce(u16, &Path) -> String, env: &[(&str, &str)]) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let cfg = dir.path().join("payhook.toml");
        std::fs::write(&cfg, config(port, dir.path())).unwrap();
        let log = std::fs::File::create(dir.path().join("payhook.log")).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&cfg)
            .current_dir(dir.path())
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Proc { dir, port, child }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    /// SIGTERM, then a bounded wait for a clean exit.
    pub fn stop(&mut self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "payhook exited with {status}");
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("payhook did not exit within 30s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("payhook.log")).unwrap()
    }

    /// Every file of the database (main file, WAL, shared memory), as bytes.
    pub fn db_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("p.db") {
                all.extend(std::fs::read(&path).unwrap());
            }
        }
        all
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

const ZP_SECRET: &str = "zp-HASH-SECRET-a1b2c3";
const ZP_API_TOKEN: &str = "zp-API-TOKEN-d4e5f6";
const BP_KEY: &str = "bp-API-KEY-g7h8i9";
const BP_SECRET: &str = "bp-API-SECRET-j0k1l2";
const DARAJA_TOKEN: &str = "daraja-PATH-TOKEN-m3n4o5";
const TUJENGE_TOKEN: &str = "tujenge-PATH-TOKEN-p6q7r8";
const JENGA_USER: &str = "jenga-USER-s9t0u1";
const JENGA_PASS: &str = "jenga-PASS-v2w3x4";
const ADMIN_TOKEN: &str = "admin-TOKEN-y5z6a7b8c9";
const FORWARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const FORWARD_QUERY_TOKEN: &str = "fwd-QUERY-TOKEN-d0e1f2";

/// Every secret and token of the run below, including the forward secret's key bytes.
fn secrets() -> Vec<&'static str> {
    vec![
        ZP_SECRET,
        ZP_API_TOKEN,
        BP_KEY,
        BP_SECRET,
        DARAJA_TOKEN,
        TUJENGE_TOKEN,
        JENGA_USER,
        JENGA_PASS,
        ADMIN_TOKEN,
        FORWARD_SECRET,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        FORWARD_QUERY_TOKEN,
    ]
}

/// A run that touches every provider (good and bad credentials, the tokens also in proxy
/// headers that carry the original path), the admin listener and a delivery to a
/// destination whose query holds a token, at debug level in text and in JSON: then no
/// secret is in the logs, and none is anywhere in the database files.
#[test]
fn no_secret_reaches_the_logs_or_the_database() {
    for format in ["text", "json"] {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let mut merchant = rt.block_on(FakeMerchant::start());
        let admin_port = free_port();
        let forward_url = format!("{}?token={FORWARD_QUERY_TOKEN}", merchant.url());
        let mut p = Proc::start(
            |port, _| {
                format!(
                    "listen = \"127.0.0.1:{port}\"\npublic_base_url = \"https://hooks.example.com\"\n\
                     [log]\nlevel = \"debug\"\nformat = \"{format}\"\n[store]\npath = \"p.db\"\n\
                     [reconciler]\nenabled = false\n\
                     [providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\napi_token = \"{ZP_API_TOKEN}\"\nallowed_ips = [\"127.0.0.1\"]\n\
                     [providers.bitpesa]\napi_key = \"{BP_KEY}\"\napi_secret = \"{BP_SECRET}\"\nallowed_ips = [\"127.0.0.1\"]\n\
                     [providers.daraja]\ncallback_tokens = [\"{DARAJA_TOKEN}\"]\nallowed_ips = [\"127.0.0.1\"]\n\
                     [providers.tujenge]\ncallback_tokens = [\"{TUJENGE_TOKEN}\"]\nallowed_ips = [\"127.0.0.1\"]\n\
                     [providers.jenga]\nipn_username = \"{JENGA_USER}\"\nipn_password = \"{JENGA_PASS}\"\nallowed_ips = [\"127.0.0.1\"]\n\
                     [admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\n\
                     [forward]\nurl = \"{forward_url}\"\nsecrets = [\"{FORWARD_SECRET}\"]\n"
                )
            },
            &[],
        );
        let addr = p.addr();
        rt.block_on(async {
            // ZengaPay: a good callback (it settles and is forwarded) and a bad signature.
            let body = crate::support::sign::zp_body("zp-secrets-1", "SUCCEEDED", "1500");
            let sig = zp_sign(ZP_SECRET, body.as_bytes());
            let r = post(addr, "/callbacks/zengapay", &[("X-ZENGAPAY-SIGNATURE", &sig), ("Cookie", ZP_SECRET)], body.as_bytes()).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let r = post(addr, "/callbacks/zengapay", &[("X-ZENGAPAY-SIGNATURE", ZP_SECRET)], body.as_bytes()).await;
            assert_eq!(r.status, 401);
            // BitPesa: good, then a signature over the wrong URL.
            let body = serde_json::json!({"webhook": "w-1", "event": "transaction.paid_out",
                "object": {"id": "bp-secrets-1", "state": "paid", "input_amount": "1500.00", "input_currency": "KES"}})
                .to_string();
            let url = "https://hooks.example.com/callbacks/bitpesa";
            for (signed_url, want) in [(url, 200), ("http://127.0.0.1/callbacks/bitpesa", 401)] {
                let sig = bp_sign(BP_SECRET, "nonce-1", signed_url, body.as_bytes());
                let r = post(addr, "/callbacks/bitpesa", &[("Authorization-Key", BP_KEY), ("Authorization-Nonce", "nonce-1"), ("Authorization-Signature", &sig)], body.as_bytes()).await;
                assert_eq!(r.status, want, "{}", r.body);
            }
            // Daraja and Tujenge: the token in the path and in the proxy headers that copy
            // it; a wrong token too.
            let daraja = fixture("daraja/stk_success.json");
            let path = format!("/callbacks/daraja/{DARAJA_TOKEN}");
            let r = post(addr, &path, &[("X-Replaced-Path", &path), ("X-Original-URI", &path), ("Referer", &path)], &daraja).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let wrong = format!("/callbacks/daraja/{DARAJA_TOKEN}x");
            assert_eq!(post(addr, &wrong, &[], &daraja).await.status, 401);
            let path = format!("/callbacks/tujenge/{TUJENGE_TOKEN}");
            let r = post(addr, &path, &[("X-Forwarded-Uri", &path)], &fixture("tujenge/forwarded_stk_success.json")).await;
            assert_eq!(r.status, 200, "{}", r.body);
            // Jenga: good and bad Basic credentials.
            use base64::Engine;
            let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
            let good = format!("Basic {}", b64(format!("{JENGA_USER}:{JENGA_PASS}")));
            let jenga = fixture("jenga/ipn_success.json");
            assert_eq!(post(addr, "/callbacks/jenga", &[("Authorization", &good)], &jenga).await.status, 200);
            let bad = format!("Basic {}", b64(format!("{JENGA_USER}:{JENGA_PASS}x")));
            assert_eq!(post(addr, "/callbacks/jenga", &[("Authorization", &bad)], &jenga).await.status, 401);
            // Admin: good and bad bearer tokens.
            let admin = format!("127.0.0.1:{admin_port}").parse().unwrap();
            let reg = br#"{"provider":"zengapay","provider_ref":"zp-secrets-2","kind":"collection"}"#;
            let bearer = format!("Bearer {ADMIN_TOKEN}");
            assert_eq!(post(admin, "/v1/transactions", &[("Authorization", &bearer)], reg).await.status, 201);
            let bearer = format!("Bearer {ADMIN_TOKEN}x");
            assert_eq!(post(admin, "/v1/transactions", &[("Authorization", &bearer)], reg).await.status, 401);
            // The settled ZengaPay payment reaches the merchant, at the URL with its token.
            // Other providers' settlements are delivered too, in no set order across
            // transactions: wait for this one.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                let got = tokio::time::timeout_at(deadline, merchant.next()).await.expect("a delivery");
                if got.json()["data"]["provider_ref"] == "zp-secrets-1" {
                    break;
                }
            }
        });
        p.stop();
        let logs = p.logs();
        assert!(logs.contains("callback stored"), "{logs}");
        let db = p.db_bytes();
        assert!(
            contains(&db, "[redacted]"),
            "the redacted destination is stored"
        );
        for secret in secrets() {
            assert!(!logs.contains(secret), "{format}: {secret} logged:\n{logs}");
            assert!(
                !contains(&db, secret),
                "{format}: {secret} is in the database"
            );
        }
        // The headers a person needs are kept.
        let headers: String = rusqlite::Connection::open(p.dir.path().join("p.db"))
            .unwrap()
            .query_row(
                "SELECT group_concat(headers, ' ') FROM callbacks",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            headers.contains("authorization-nonce") && headers.contains("content-length"),
            "{headers}"
        );
        assert!(!headers.contains("x-replaced-path"), "{headers}");
    }
}

/// Checks a Prometheus text exposition as promtool's linter would, without promtool:
/// every sample's family was introduced by HELP and TYPE, each family is one block, names
/// are conventional (`payhook_` prefix, snake case, counters end in `_total`, nothing
/// else does), and every sample value is a number. Returns the samples.
pub fn lint_exposition(text: &str) -> Vec<(String, f64)> {
    use std::collections::{HashMap, HashSet};
    let mut help: HashSet<String> = HashSet::new();
    let mut kind: HashMap<String, String> = HashMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current = String::new();
    let mut samples = Vec::new();
    let good_name = |n: &str| {
        n.starts_with("payhook_")
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').expect("HELP has text");
            assert!(!text.trim().is_empty(), "{name}: empty HELP");
            assert!(help.insert(name.to_string()), "{name}: HELP twice");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, k) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(help.contains(name), "{name}: TYPE before HELP");
            assert!(
                ["counter", "gauge", "histogram"].contains(&k),
                "{name}: type {k}"
            );
            assert!(good_name(name), "{name}: not a conventional name");
            assert_eq!(
                name.ends_with("_total"),
                k == "counter",
                "{name}: counters, and only counters, end in _total"
            );
            assert!(
                kind.insert(name.to_string(), k.to_string()).is_none(),
                "{name}: TYPE twice"
            );
            if !current.is_empty() {
                finished.insert(std::mem::take(&mut current));
            }
            current = name.to_string();
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line:?}");
        if line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| kind.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(
            kind.contains_key(family),
            "{family}: sample without TYPE/HELP"
        );
        assert_eq!(family, current, "{family}: samples outside its block");
        assert!(
            !finished.contains(family),
            "{family}: split into two blocks"
        );
        if let Some(labels) = series.strip_prefix(name).and_then(|l| l.strip_prefix('{')) {
            assert!(labels.ends_with('}'), "{line}");
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("{line}: not a number"));
        samples.push((series.to_string(), v));
    }
    samples
}

/// Runs `promtool check metrics` on `text` when promtool is installed (Debian's
/// `prometheus` package is too large to install for one check, so CI relies on
/// [`lint_exposition`] where it is absent).
fn promtool_check(text: &str) {
    use std::io::Write;
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool is not installed: the exposition is checked by lint_exposition only");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `/metrics` on both listeners: every family has HELP and TYPE, the counters of every
/// provider and outcome exist at zero before any traffic, and the backlog gauges follow
/// the store (a tracked payment is an open transaction at once).
#[test]
fn metrics_pass_the_linter_start_at_zero_and_read_the_backlog() {
    let admin_port = free_port();
    let p = Proc::start(
        |port, _| {
            format!(
                "listen = \"127.0.0.1:{port}\"\n[store]\npath = \"p.db\"\n[reconciler]\nenabled = false\n\
                 [providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\n\
                 [providers.daraja]\ncallback_tokens = [\"{DARAJA_TOKEN}\"]\n\
                 [admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{ADMIN_TOKEN}\"\nmetrics = true\n"
            )
        },
        &[],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let value = |samples: &[(String, f64)], series: &str| {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{series} missing"))
    };
    let public = rt.block_on(crate::support::http::get(p.addr(), "/metrics"));
    assert_eq!(public.status, 200);
    let samples = lint_exposition(&public.body);
    promtool_check(&public.body);
    for provider in ["zengapay", "daraja"] {
        for outcome in [
            "stored",
            "duplicate",
            "unauthorized",
            "forbidden",
            "too_large",
        ] {
            let s =
                format!("payhook_callbacks_total{{provider=\"{provider}\",outcome=\"{outcome}\"}}");
            assert_eq!(value(&samples, &s), 0.0, "{s}");
        }
        let s = format!("payhook_transactions_open{{provider=\"{provider}\",status=\"PENDING\"}}");
        assert_eq!(value(&samples, &s), 0.0);
    }
    assert_eq!(value(&samples, "payhook_events_pending"), 0.0);
    assert_eq!(value(&samples, "payhook_review_queue_items"), 0.0);
    assert_eq!(
        value(
            &samples,
            &format!(
                "payhook_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    // Traffic: a tracked payment and a refused callback.
    rt.block_on(async {
        let bearer = format!("Bearer {ADMIN_TOKEN}");
        let reg = br#"{"provider":"daraja","provider_ref":"ws_CO_metrics","kind":"stk"}"#;
        let r = post(
            admin,
            "/v1/transactions",
            &[("Authorization", &bearer)],
            reg,
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let r = post(
            p.addr(),
            "/callbacks/zengapay",
            &[("X-ZENGAPAY-SIGNATURE", "00")],
            b"{}",
        )
        .await;
        assert_eq!(r.status, 401);
    });
    let scraped = rt.block_on(crate::support::http::get(admin, "/metrics"));
    assert_eq!(scraped.status, 200, "admin /metrics without the token");
    let samples = lint_exposition(&scraped.body);
    promtool_check(&scraped.body);
    assert_eq!(
        value(
            &samples,
            "payhook_transactions_open{provider=\"daraja\",status=\"PENDING\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "payhook_callbacks_total{provider=\"zengapay\",outcome=\"unauthorized\"}"
        ),
        1.0
    );
    // The admin API itself still needs the token.
    let r = rt.block_on(post(admin, "/v1/transactions", &[], b"{}"));
    assert_eq!(r.status, 401);
    drop(p);
}

/// Under systemd (`Type=notify`, `WatchdogSec=`): the real binary, given a `NOTIFY_SOCKET`
/// the test listens on, sends `READY=1` only when the callback listener already answers
/// and the store is writable, then `WATCHDOG=1` pings, and `STOPPING=1` on SIGTERM.
#[test]
fn systemd_hears_ready_watchdog_pings_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let sockdir = tempfile::tempdir().unwrap();
    let sock_path = sockdir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut p = Proc::spawn(
        |port, _| {
            format!(
                "listen = \"127.0.0.1:{port}\"\n[store]\npath = \"p.db\"\n[reconciler]\nenabled = false\n\
                 [providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\n"
            )
        },
        // A 200 ms watchdog: pings every 100 ms.
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    let recv = |sock: &UnixDatagram| {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).expect("a notification within 30 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv(&sock);
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    // Ready means ready: the listener answers and the store takes a write, first try.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let readyz = rt.block_on(crate::support::http::get(p.addr(), "/readyz"));
    assert_eq!(readyz.status, 200, "{}", readyz.body);
    let mut pings = 0;
    let started = Instant::now();
    while pings < 3 {
        let msg = recv(&sock);
        assert!(msg.lines().any(|l| l == "WATCHDOG=1"), "{msg:?}");
        pings += 1;
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    p.stop();
    // The datagrams wait in the socket: after the pings still queued, STOPPING=1.
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    loop {
        let msg = recv(&sock);
        if msg.lines().any(|l| l == "STOPPING=1") {
            break;
        }
        assert!(msg.lines().any(|l| l == "WATCHDOG=1"), "{msg:?}");
    }
    let logs = p.logs();
    assert!(logs.contains("ready: systemd notified"), "{logs}");
}

/// The log lines an operator reads first, in JSON: the providers as a list at start-up, a
/// POST to a provider that is not configured (debug), the URL payhook expected BitPesa to
/// sign when a signature does not match, a duplicate's reference, a delivery (info).
#[test]
fn json_logs_say_what_an_operator_needs() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut merchant = rt.block_on(FakeMerchant::start());
    let url = merchant.url();
    let mut p = Proc::start(
        |port, _| {
            format!(
                "listen = \"127.0.0.1:{port}\"\npublic_base_url = \"https://hooks.example.com\"\n\
                 [log]\nlevel = \"debug\"\nformat = \"json\"\n[store]\npath = \"p.db\"\n[reconciler]\nenabled = false\n\
                 [providers.bitpesa]\napi_key = \"{BP_KEY}\"\napi_secret = \"{BP_SECRET}\"\nallowed_ips = [\"127.0.0.1\"]\n\
                 [forward]\nurl = \"{url}\"\nsecrets = [\"{FORWARD_SECRET}\"]\n"
            )
        },
        &[],
    );
    let addr = p.addr();
    rt.block_on(async {
        assert_eq!(post(addr, "/callbacks/daraja", &[], b"{}").await.status, 404);
        let body = serde_json::json!({"webhook": "w-1", "event": "transaction.paid_out",
            "object": {"id": "bp-logs-1", "state": "paid", "input_amount": "1500.00", "input_currency": "KES"}})
        .to_string();
        for (signed_url, want) in [
            ("http://127.0.0.1/callbacks/bitpesa", 401),
            ("https://hooks.example.com/callbacks/bitpesa", 200),
            ("https://hooks.example.com/callbacks/bitpesa", 200),
        ] {
            let sig = bp_sign(BP_SECRET, "nonce-logs", signed_url, body.as_bytes());
            let headers = [("Authorization-Key", BP_KEY), ("Authorization-Nonce", "nonce-logs"), ("Authorization-Signature", sig.as_str())];
            assert_eq!(post(addr, "/callbacks/bitpesa", &headers, body.as_bytes()).await.status, want);
        }
        tokio::time::timeout(Duration::from_secs(20), merchant.next()).await.expect("a delivery");
    });
    // The delivery is logged after the merchant answered: wait for the line, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !p.logs().contains("event delivered") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    p.stop();
    let lines: Vec<serde_json::Value> = p
        .logs()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(message)))
            .cloned()
            .collect::<Vec<_>>()
    };
    let started = &find("payhook started")[0];
    assert_eq!(started["providers"], serde_json::json!(["bitpesa"]));
    let unconfigured = &find("not configured")[0];
    assert_eq!(
        (
            unconfigured["level"].as_str(),
            unconfigured["provider"].as_str()
        ),
        (Some("DEBUG"), Some("daraja"))
    );
    let mismatch = &find("BitPesa signature mismatch")[0];
    assert_eq!(
        mismatch["expected_url"],
        "https://hooks.example.com/callbacks/bitpesa"
    );
    let stored = find("callback stored");
    let duplicate = stored
        .iter()
        .find(|l| l["outcome"] == "duplicate")
        .expect("a duplicate line");
    assert_eq!(duplicate["txn_ref"], "bp-logs-1");
    let delivered = &find("event delivered")[0];
    assert_eq!(delivered["level"], "INFO");
    assert_eq!(delivered["http_status"], 200);
}
