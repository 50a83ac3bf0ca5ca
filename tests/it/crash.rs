//! Crash safety: the binary is loaded with signed callbacks from several
//! keep-alive connections, killed with SIGKILL mid-load, restarted on the same database,
//! and the store is checked against what was acknowledged:
//!
//! - every callback that got a 2xx is stored, with at least as many deliveries as acks
//!   (design invariant 1);
//! - no transaction's settled status changed again, except SUCCEEDED → REVERSED
//!   (invariants 2 and 3), and each transaction's status is its last applied transition;
//! - every settled transition and every conflict has exactly one event (invariant 4);
//! - `PRAGMA integrity_check` and `foreign_key_check` pass, and the restarted daemon
//!   accepts new callbacks;
//! - when the providers then retry everything they sent (acknowledged or not), each retry
//!   gets a 200, each distinct callback ends stored exactly once, and the checks above
//!   still hold.
//!
//! Trials kill at different moments (after a different number of acknowledgements each).
//! `PAYHOOK_CRASH_TRIALS` sets how many (default 5, the CI run; the full mode is
//! `PAYHOOK_CRASH_TRIALS=20`), and `PAYHOOK_BIN` the binary (default: the debug build
//! Cargo made for this test; the full mode uses `target/release/payhook`).
//!
//! A SIGKILL loses nothing the kernel already has, so it cannot tell "fsync, then
//! acknowledge" from "acknowledge, then fsync". The power-cut trials (cargo feature
//! `failpoints`, run by `.ci/run`) can: the daemon reports how much of the WAL each of its
//! fsyncs covered (`src/store/failpoint.rs`), and after the SIGKILL the test cuts the WAL
//! back to the last size reported (what a power loss would have left) and drops the
//! shared-memory index before restarting. Built with `ack-before-fsync` (which answers at
//! COMMIT), they fail: docs/testing.md shows that run.

use crate::support::sign::{zp_body, zp_sign, ZP_SECRET};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Concurrent keep-alive connections loading the daemon.
const CONNECTIONS: usize = 6;
/// Upper bound on callbacks per connection per trial (the kill comes long before).
const MAX_PER_CONNECTION: usize = 5_000;

fn bin() -> PathBuf {
    std::env::var_os("PAYHOOK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_payhook")))
}

fn trials() -> u64 {
    std::env::var("PAYHOOK_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The daemon as a child process; SIGKILLed on drop if still running.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(cfg: &Path, log: &Path) -> Daemon {
        Daemon::start_with(cfg, log, None)
    }

    /// With `synced_wal`, the daemon reports its WAL fsyncs there (feature `failpoints`).
    fn start_with(cfg: &Path, log: &Path, synced_wal: Option<&Path>) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = Command::new(bin());
        if let Some(path) = synced_wal {
            cmd.env("PAYHOOK_FAILPOINT_SYNCED_WAL", path);
        }
        let child = cmd
            .args(["serve", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("while starting {}: {e}", bin().display()));
        let mut d = Daemon { child };
        // Ready when the binary's own healthcheck says so; bounded.
        crate::support::binary::wait_ready(&bin(), cfg, &mut d.child, Duration::from_secs(30));
        d
    }

    /// SIGKILL: no drain, no checkpoint, no destructor.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the load generator saw acknowledged.
#[derive(Default)]
struct Acked {
    /// sha256(body) → how many deliveries of it were answered 2xx.
    bodies: HashMap<String, u64>,
    /// reference → the statuses whose callbacks were answered 2xx, in order.
    statuses: HashMap<String, Vec<&'static str>>,
    /// Every callback sent (acknowledged or not), in the order each connection sent it.
    sent: Vec<(String, &'static str, String)>,
}

impl Acked {
    fn ack(&mut self, reference: String, status: &'static str, body: &str) {
        *self
            .bodies
            .entry(crate::support::sign::sha256_hex(body.as_bytes()))
            .or_default() += 1;
        self.statuses.entry(reference).or_default().push(status);
    }
}

/// One connection's callbacks, for transaction `k{trial}-c{conn}-{i}`: mostly a success,
/// sometimes PENDING first, sometimes delivered twice, sometimes contradicted by FAILED.
fn script(trial: u64, conn: usize, i: usize) -> Vec<(String, &'static str, String)> {
    let reference = format!("k{trial}-c{conn}-{i}");
    let amount = format!("{}", 1000 + i);
    let mut out = Vec::new();
    let mut push = |status: &'static str| {
        out.push((
            reference.clone(),
            status,
            zp_body(&reference, status, &amount),
        ));
    };
    if i % 5 == 0 {
        push("PENDING");
    }
    push("SUCCEEDED");
    if i % 4 == 1 {
        push("SUCCEEDED"); // the same body again: a duplicate delivery
    }
    if i % 6 == 2 {
        push("FAILED"); // contradicts a terminal status: a conflict, not applied
    }
    out
}

async fn load_connection(
    port: u16,
    trial: u64,
    conn: usize,
    acked: Arc<Mutex<Acked>>,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, connection)) = http1::handshake(TokioIo::new(stream)).await else {
        return;
    };
    tokio::spawn(connection);
    for i in 0..MAX_PER_CONNECTION {
        for (reference, status, body) in script(trial, conn, i) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            acked
                .lock()
                .unwrap()
                .sent
                .push((reference.clone(), status, body.clone()));
            let req = http::Request::post("/callbacks/zengapay")
                .header("host", "127.0.0.1")
                .header("content-type", "application/json")
                .header("x-zengapay-signature", zp_sign(ZP_SECRET, body.as_bytes()))
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap();
            // The kill breaks the connection: the request in flight has no known outcome.
            // HTTP/1 keep-alive: wait until the previous exchange has fully finished.
            if sender.ready().await.is_err() {
                return;
            }
            let Ok(resp) = sender.send_request(req).await else {
                return;
            };
            let ok = resp.status().is_success();
            if resp.into_body().collect().await.is_err() {
                return;
            }
            assert!(ok, "a well-formed signed callback was refused");
            acked.lock().unwrap().ack(reference, status, &body);
            count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How a trial ends the daemon.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// SIGKILL: everything written survives.
    Kill,
    /// SIGKILL, then the WAL is cut back to what the daemon had fsynced: a power loss.
    Power,
}

/// After a SIGKILL, makes the files look as a power loss at that moment would have left
/// them: the WAL cut back to the last size an fsync covered, and no shared-memory index
/// (it lives in memory). Returns how many bytes were cut.
fn cut_power(n: u64, db: &Path, synced_log: &Path) -> u64 {
    let reported = std::fs::read_to_string(synced_log)
        .unwrap_or_else(|e| panic!("trial {n}: the daemon reported no WAL fsync: {e}"));
    let synced = reported
        .lines()
        .filter_map(|l| l.parse::<u64>().ok())
        .max()
        .unwrap_or_else(|| panic!("trial {n}: the daemon reported no WAL fsync"));
    let wal = db.with_file_name(format!("{}-wal", db.file_name().unwrap().to_string_lossy()));
    let file = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    let written = file.metadata().unwrap().len();
    assert!(
        synced <= written,
        "trial {n}: fsync reported at {synced} bytes, WAL only {written}"
    );
    file.set_len(synced).unwrap();
    let shm = wal.with_file_name(format!("{}-shm", db.file_name().unwrap().to_string_lossy()));
    let _ = std::fs::remove_file(shm);
    written - synced
}

/// Runs one trial: load, SIGKILL after `kill_after` acks, restart, check.
fn trial(n: u64, kill_after: u64) {
    run_trial(n, kill_after, Cut::Kill);
}

fn run_trial(n: u64, kill_after: u64, cut: Cut) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = dir.path().join("payhook.db");
    let cfg = dir.path().join("payhook.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n[store]\npath = \"{}\"\n[providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\n",
            db.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("payhook.log");
    let synced_log = dir.path().join("synced-wal");
    let daemon = Daemon::start_with(&cfg, &log, (cut == Cut::Power).then_some(&*synced_log));

    let acked = Arc::new(Mutex::new(Acked::default()));
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..CONNECTIONS {
            tasks.spawn(load_connection(
                port,
                n,
                c,
                acked.clone(),
                count.clone(),
                stop.clone(),
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while count.load(Ordering::Relaxed) < kill_after {
            assert!(
                Instant::now() < deadline,
                "trial {n}: only {} acks in 60 s",
                count.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Mid-load: every connection has a request in flight or about to be.
        daemon.kill();
        stop.store(true, Ordering::Relaxed);
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    });
    let mut acked = Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap();
    let total: u64 = acked.bodies.values().sum();
    assert!(total >= kill_after, "trial {n}");
    let lost_bytes = match cut {
        Cut::Kill => 0,
        Cut::Power => cut_power(n, &db, &synced_log),
    };

    // Restart on the same database: recovery must succeed and the daemon must serve.
    let daemon = Daemon::start(&cfg, &log);
    let after = zp_body(&format!("k{n}-after-restart"), "SUCCEEDED", "1");
    let status = rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        let req = http::Request::post("/callbacks/zengapay")
            .header("host", "127.0.0.1")
            .header("x-zengapay-signature", zp_sign(ZP_SECRET, after.as_bytes()))
            .body(Full::new(Bytes::from(after.clone())))
            .unwrap();
        sender.send_request(req).await.unwrap().status()
    });
    assert_eq!(
        status, 200,
        "trial {n}: the restarted daemon refused a callback"
    );

    let c = Connection::open(&db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    check_store(n, &c, &acked);

    // The providers retry whatever they sent, acknowledged or not (a lost ack looks like
    // no ack): every retry is answered 200, and afterwards each distinct callback is
    // stored exactly once and the invariants still hold.
    let sent = std::mem::take(&mut acked.sent);
    rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        for (reference, status, body) in &sent {
            let req = http::Request::post("/callbacks/zengapay")
                .header("host", "127.0.0.1")
                .header("x-zengapay-signature", zp_sign(ZP_SECRET, body.as_bytes()))
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap();
            sender.ready().await.unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200, "trial {n}: a retry after the crash");
            resp.into_body().collect().await.unwrap();
            acked.ack(reference.clone(), status, body);
        }
    });
    check_store(n, &c, &acked);
    let distinct: std::collections::HashSet<&str> =
        sent.iter().map(|(_, _, b)| b.as_str()).collect();
    let rows: i64 = c
        .query_row("SELECT count(*) FROM callbacks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        rows as usize,
        distinct.len() + 1,
        "trial {n}: each callback sent is stored once (plus the one after the restart)"
    );
    daemon.kill();
    // And once more with the daemon gone: the file itself is sound.
    let c = Connection::open(&db).unwrap();
    let integrity: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "trial {n}");
    let how = match cut {
        Cut::Kill => "killed".to_string(),
        Cut::Power => format!("power cut ({lost_bytes} unsynced WAL bytes dropped)"),
    };
    eprintln!(
        "crash trial {n}: {how} after {kill_after} acks ({total} acknowledged deliveries); {} callbacks sent, retried after restart; store consistent",
        sent.len()
    );
}

fn check_store(n: u64, c: &Connection, acked: &Acked) {
    let integrity: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "trial {n}");
    let fk_violations: i64 = c
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk_violations, 0, "trial {n}");

    // Invariant 1: every acknowledged body is stored, counted at least as often as acked.
    let mut stored: HashMap<String, i64> = HashMap::new();
    let mut q = c
        .prepare("SELECT body_sha256, deliveries FROM callbacks")
        .unwrap();
    for row in q
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
    {
        let (sha, deliveries) = row.unwrap();
        assert!(
            stored.insert(sha, deliveries).is_none(),
            "trial {n}: a body stored twice"
        );
    }
    for (sha, acks) in &acked.bodies {
        let deliveries = stored.get(sha).copied().unwrap_or(0);
        assert!(
            deliveries >= *acks as i64,
            "trial {n}: body {sha} acknowledged {acks} times, stored with {deliveries} deliveries"
        );
    }

    // Each transaction agrees with what was acknowledged: a success that was acked stays
    // (a later FAILED is a conflict); a PENDING alone may have been overtaken by a
    // SUCCEEDED that was committed but not yet acknowledged when the kill came.
    let mut q = c
        .prepare(
            "SELECT status FROM transactions WHERE provider = 'zengapay' AND provider_ref = ?1",
        )
        .unwrap();
    for (reference, statuses) in &acked.statuses {
        let status: String = q
            .query_row([reference], |r| r.get(0))
            .unwrap_or_else(|e| panic!("trial {n}: {reference} acknowledged but missing: {e}"));
        if statuses.contains(&"SUCCEEDED") {
            assert_eq!(status, "SUCCEEDED", "trial {n}: {reference} {statuses:?}");
        } else {
            assert!(
                status == "PENDING" || status == "SUCCEEDED",
                "trial {n}: {reference} {statuses:?} -> {status}"
            );
        }
    }

    // Invariants 2 and 3: once settled, no applied transition except SUCCEEDED → REVERSED.
    let changed_after_settled: i64 = c
        .query_row(
            "SELECT count(*) FROM transitions
              WHERE outcome = 'applied'
                AND from_status IN ('SUCCEEDED', 'FAILED', 'REVERSED')
                AND NOT (from_status = 'SUCCEEDED' AND to_status = 'REVERSED')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(changed_after_settled, 0, "trial {n}");
    // In this workload (PENDING?, SUCCEEDED, duplicates, FAILED) at most two transitions
    // apply per transaction: creation, then PENDING → SUCCEEDED.
    let too_many: i64 = c
        .query_row(
            "SELECT count(*) FROM (SELECT transaction_id FROM transitions WHERE outcome = 'applied'
              GROUP BY transaction_id HAVING count(*) > 2)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(too_many, 0, "trial {n}");
    // The status is the last applied transition's.
    let disagree: i64 = c
        .query_row(
            "SELECT count(*) FROM transactions t
              WHERE t.status IS NOT (SELECT to_status FROM transitions r
                                      WHERE r.transaction_id = t.id AND r.outcome = 'applied'
                                      ORDER BY r.seq DESC LIMIT 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(disagree, 0, "trial {n}");
    // seq is 1, 2, 3, ... per transaction: no transition lost in the middle.
    let gaps: i64 = c
        .query_row(
            "SELECT count(*) FROM (SELECT transaction_id FROM transitions GROUP BY transaction_id
              HAVING max(seq) != count(*) OR min(seq) != 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(gaps, 0, "trial {n}");

    // Invariant 4: one event per settled transition and per conflict, none for others.
    let wrong_events: i64 = c
        .query_row(
            "SELECT count(*) FROM transitions r
              WHERE (SELECT count(*) FROM events e
                                  WHERE e.transaction_id = r.transaction_id AND e.transition_id = r.id)
                 != CASE WHEN r.outcome = 'conflict' THEN 1
                         WHEN r.outcome = 'applied'
                          AND r.to_status IN ('SUCCEEDED','FAILED','REVERSED','NEEDS_REVIEW') THEN 1
                         ELSE 0 END",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(wrong_events, 0, "trial {n}");
    // Every applied transition of a callback points at a stored callback.
    let orphans: i64 = c
        .query_row(
            "SELECT count(*) FROM transitions r WHERE r.source = 'callback'
              AND NOT EXISTS (SELECT 1 FROM callbacks k WHERE k.id = r.callback_id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0, "trial {n}");
}

#[test]
fn acknowledged_callbacks_survive_sigkill_at_any_moment() {
    let trials = trials();
    assert!(trials >= 1);
    for n in 0..trials {
        // Kill moments spread over the run: early (the first group commits), mid-way, late.
        let kill_after = 5 + (n * 137) % 600;
        trial(n, kill_after);
    }
}

/// Power loss, not only SIGKILL: after the kill the WAL is cut back to what the daemon
/// had fsynced (module docs), and every acknowledged callback must still be there.
#[cfg(feature = "failpoints")]
#[test]
fn acknowledged_callbacks_survive_a_power_cut_at_any_moment() {
    let trials = trials();
    assert!(trials >= 1);
    for n in 0..trials {
        // Other kill moments than the SIGKILL trials', spread the same way.
        let kill_after = 11 + (n * 173) % 700;
        run_trial(100 + n, kill_after, Cut::Power);
    }
}

/// Payments registered by plain SQL (as an application may) for the reconciler to poll.
const REGISTERED: usize = 150;

fn registered_ref(n: u64, i: usize) -> String {
    format!("p{n}-{i:04}")
}

/// A trial where everything is busy at the kill: callbacks arrive on 6 connections, the
/// reconciler is polling a slow fake provider for registered payments, and the forwarder
/// is waiting on a slow merchant. After the restart (leases expired by moving their due
/// times, as time passing would) the daemon must finish all of it:
///
/// - every acknowledged callback is stored and the store's invariants hold;
/// - every event the merchant received before the kill is in the store with that body
///   (nothing escaped before it was durable), and every stored event is received at least
///   once, always with the same body for the same id;
/// - every registered payment ends SUCCEEDED at the provider's amount, with one event.
fn busy_trial(n: u64, kill_after: u64, cut: Cut) {
    use crate::support::fake_merchant::{Answer, FakeMerchant};
    use crate::support::fake_provider::{FakeProvider, FakeReply};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (fake, mut merchant) =
        rt.block_on(async { (FakeProvider::start().await, FakeMerchant::start().await) });
    merchant.answer(Answer::After(Duration::from_millis(40), 200));
    for i in 0..REGISTERED {
        let reference = registered_ref(n, i);
        let amount = 2000 + i;
        for _ in 0..4 {
            fake.push(
                &format!("/v1/collections/{reference}"),
                FakeReply::new(
                    200,
                    format!(
                        r#"{{"code":200,"status":"OK","data":{{"transactionReference":"{reference}","transactionStatus":"SUCCEEDED","amount":{amount},"currencyCode":"UGX-MTNMM","transactionExternalReference":"order-{reference}"}}}}"#
                    ),
                )
                .delayed(Duration::from_millis(25)),
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = dir.path().join("payhook.db");
    let cfg = dir.path().join("payhook.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n[store]\npath = \"{}\"\n\
             [providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\napi_token = \"zp-token\"\n\
             base_url = \"{}\"\npoll_rate_per_minute = 60000\n\
             [forward]\nurl = \"{}\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n",
            db.display(),
            fake.url(),
            merchant.url()
        ),
    )
    .unwrap();
    let log = dir.path().join("payhook.log");
    let synced_log = dir.path().join("synced-wal");
    let daemon = Daemon::start_with(&cfg, &log, (cut == Cut::Power).then_some(&*synced_log));
    {
        let c = Connection::open(&db).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        for i in 0..REGISTERED {
            c.execute(
                "INSERT INTO transactions (provider, provider_ref, kind, status, next_poll_at_ms)
                 VALUES ('zengapay', ?1, 'collection', 'PENDING', 0)",
                [registered_ref(n, i)],
            )
            .unwrap();
        }
    }

    let acked = Arc::new(Mutex::new(Acked::default()));
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut received = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..CONNECTIONS {
            tasks.spawn(load_connection(
                port,
                n,
                c,
                acked.clone(),
                count.clone(),
                stop.clone(),
            ));
        }
        // Kill once callbacks were acknowledged and both loops have work in flight.
        let mut received = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while count.load(Ordering::Relaxed) < kill_after
            || received.len() < 5
            || fake.requests().len() < 5
        {
            assert!(
                Instant::now() < deadline,
                "busy trial {n}: {} acks, {} deliveries, {} polls in 60 s",
                count.load(Ordering::Relaxed),
                received.len(),
                fake.requests().len()
            );
            received.extend(merchant.take());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        daemon.kill();
        stop.store(true, Ordering::Relaxed);
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        received.extend(merchant.take());
        received
    });
    let before_kill: Vec<(String, String)> = received
        .iter()
        .map(|r| (r.id().to_string(), r.body_str().to_string()))
        .collect();
    let polls_before = fake.requests().len();
    if cut == Cut::Power {
        cut_power(n, &db, &synced_log);
    }
    let acked = Arc::try_unwrap(acked).ok().unwrap().into_inner().unwrap();
    {
        // Time passes: the leases of the deliveries and polls cut short run out.
        let c = Connection::open(&db).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        c.execute(
            "UPDATE events SET next_attempt_at_ms = 0 WHERE status = 'pending'",
            [],
        )
        .unwrap();
        c.execute(
            "UPDATE transactions SET next_poll_at_ms = 0
              WHERE status = 'PENDING' AND next_poll_at_ms IS NOT NULL",
            [],
        )
        .unwrap();
    }
    let daemon = Daemon::start(&cfg, &log);
    let c = Connection::open(&db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let count_of = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let open = count_of(
            "SELECT count(*) FROM transactions WHERE provider_ref LIKE 'p%' AND status != 'SUCCEEDED'",
        );
        let pending = count_of("SELECT count(*) FROM events WHERE status != 'delivered'");
        if open == 0 && pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "busy trial {n}: after the restart, {open} registered payments open and {pending} events undelivered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.kill();
    received.extend(merchant.take());
    check_store(n, &c, &acked);

    let mut stored: HashMap<String, String> = HashMap::new();
    let mut q = c.prepare("SELECT id, payload FROM events").unwrap();
    for row in q
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        let (id, payload) = row.unwrap();
        stored.insert(id, payload);
    }
    for (id, body) in &before_kill {
        let payload = stored.get(id).unwrap_or_else(|| {
            panic!("busy trial {n}: {id} reached the merchant before the kill but is not stored")
        });
        assert_eq!(
            payload, body,
            "busy trial {n}: {id} was sent with another body"
        );
    }
    let mut seen: HashMap<String, String> = HashMap::new();
    for r in &received {
        let id = r.id().to_string();
        if let Some(earlier) = seen.insert(id.clone(), r.body_str().to_string()) {
            assert_eq!(
                earlier,
                r.body_str(),
                "busy trial {n}: {id} redelivered changed"
            );
        }
        assert!(
            stored.contains_key(&id),
            "busy trial {n}: {id} delivered, not stored"
        );
    }
    for id in stored.keys() {
        assert!(
            seen.contains_key(id),
            "busy trial {n}: {id} never delivered"
        );
    }
    // The registered payments: settled at the provider's amount, one event each.
    for i in 0..REGISTERED {
        let reference = registered_ref(n, i);
        let (status, amount, events): (String, i64, i64) = c
            .query_row(
                "SELECT status, amount_minor,
                        (SELECT count(*) FROM events e WHERE e.transaction_id = t.id)
                   FROM transactions t WHERE provider = 'zengapay' AND provider_ref = ?1",
                [&reference],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (status.as_str(), amount, events),
            ("SUCCEEDED", 2000 + i as i64, 1),
            "busy trial {n}: {reference}"
        );
    }
    eprintln!(
        "busy trial {n}: {} after {} acks, {} deliveries and {polls_before} polls; {} events delivered, {} deliveries in all",
        if cut == Cut::Power { "power cut" } else { "killed" },
        acked.bodies.values().sum::<u64>(),
        before_kill.len(),
        stored.len(),
        received.len()
    );
}

#[test]
fn sigkill_while_the_forwarder_and_the_reconciler_are_busy_loses_and_leaks_nothing() {
    busy_trial(200, 40, Cut::Kill);
}

#[cfg(feature = "failpoints")]
#[test]
fn a_power_cut_while_the_forwarder_and_the_reconciler_are_busy_loses_and_leaks_nothing() {
    busy_trial(300, 60, Cut::Power);
}
