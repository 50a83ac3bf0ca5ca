//! Several forward destinations, pausing one, and the pull feed, against the real daemon:
//! two or three fake merchants, each with its own secret, and `GET /v1/events` on the
//! admin listener. The daemon's own forwarder loop runs; tests wait on the merchants'
//! channels (bounded), never on a sleep, except where they prove that nothing happens.

use crate::support::fake_merchant::{Answer, FakeMerchant, Received};
use crate::support::http::{post, request, Reply};
use crate::support::TestDaemon;
use payhook::providers::ProviderId;
use payhook::store::transactions::event_id;
use standardwebhooks::Webhook;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_payhook");
const ZP_SECRET: &str = "zp-test-secret";
const K1: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const K2: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const ADMIN_TOKEN: &str = "admin-token-0123456789";

fn zp_config() -> String {
    format!("[providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\n")
}

fn destination(name: &str, url: &str, secret: &str, extra: &str) -> String {
    format!("[[forward.destinations]]\nname = \"{name}\"\nurl = \"{url}\"\nsecrets = [\"{secret}\"]\n{extra}\n")
}

async fn zp_post(d: &TestDaemon, event: &str, reference: &str, status: &str) {
    let body = serde_json::json!({"event": event, "data": {
        "transactionStatus": status, "transactionReference": reference,
        "transactionExternalReference": format!("order-{reference}"), "currencyCode": "UGX-MTNMM",
        "amount": "126600", "msisdn": "256772000001"}})
    .to_string();
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

/// Posts a ZengaPay success for `reference` and returns its event id.
async fn succeed(d: &TestDaemon, reference: &str) -> String {
    zp_post(d, "collection.success", reference, "SUCCEEDED").await;
    event_id(d.zp_txn_id(reference), ProviderId::ZengaPay, reference, 1)
}

/// Posts a ZengaPay failure for `reference` (a conflict after a success) and returns the
/// event id of the transaction's `seq`th transition.
async fn fail(d: &TestDaemon, reference: &str, seq: i64) -> String {
    zp_post(d, "collection.failed", reference, "FAILED").await;
    event_id(d.zp_txn_id(reference), ProviderId::ZengaPay, reference, seq)
}

fn verify(secret: &str, got: &Received) -> Result<(), standardwebhooks::WebhookError> {
    Webhook::new(secret)
        .unwrap()
        .verify(&got.body, &got.headers)
}

/// Waits (bounded) until `sql` counts `want`.
async fn until_count(d: &TestDaemon, sql: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.count(sql) != want {
        assert!(Instant::now() < deadline, "{sql}: never {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ids(got: &[Received]) -> Vec<String> {
    got.iter().map(|r| r.id().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_settlement_reaches_every_destination_signed_with_its_own_secret_and_filters_hold() {
    let mut orders = FakeMerchant::start().await;
    let mut ledger = FakeMerchant::start().await;
    let d = TestDaemon::start(&format!(
        "{}{}{}",
        zp_config(),
        destination("orders", &orders.url(), K1, ""),
        destination(
            "ledger",
            &ledger.url(),
            K2,
            "types = [\"transaction.succeeded\"]\nproviders = [\"zengapay\"]"
        )
    ))
    .await;
    let id = succeed(&d, "ref-1").await;
    let (a, b) = (orders.next().await, ledger.next().await);
    assert_eq!((a.id(), b.id()), (id.as_str(), id.as_str()));
    assert_eq!(a.body, b.body, "the same event, byte for byte");
    verify(K1, &a).unwrap();
    verify(K2, &b).unwrap();
    assert!(verify(K2, &a).is_err() && verify(K1, &b).is_err());
    until_count(
        &d,
        "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
        2,
    )
    .await;
    assert_eq!(
        d.count("SELECT count(*) FROM events WHERE status = 'delivered'"),
        1
    );

    // A failure is not a type the ledger takes: only the orders service hears of it.
    let failed = {
        zp_post(&d, "collection.failed", "ref-2", "FAILED").await;
        event_id(d.zp_txn_id("ref-2"), ProviderId::ZengaPay, "ref-2", 1)
    };
    let got = orders.next().await;
    assert_eq!(got.id(), failed);
    assert_eq!(got.json()["type"], "transaction.failed");
    // Once the ledger's subscription has passed the event, it has no delivery for it.
    let seq: i64 = d
        .db()
        .query_row("SELECT seq FROM events WHERE id = ?1", [&failed], |r| {
            r.get(0)
        })
        .unwrap();
    until_count(
        &d,
        &format!(
            "SELECT count(*) FROM destination_state WHERE name = 'ledger' AND subscribed_seq >= {seq}"
        ),
        1,
    )
    .await;
    assert_eq!(
        d.count(&format!(
            "SELECT count(*) FROM deliveries WHERE event_id = '{failed}'"
        )),
        1
    );
    let story = d
        .ctx
        .store
        .read({
            let id = id.clone();
            move |c| payhook::store::queries::story(c, &id)
        })
        .await
        .unwrap();
    let per: Vec<(&str, &str, usize)> = story
        .deliveries
        .iter()
        .map(|x| (x.destination.as_str(), x.status.as_str(), x.history.len()))
        .collect();
    assert_eq!(
        per,
        [("ledger", "delivered", 1), ("orders", "delivered", 1)]
    );
    d.stop().await;
    assert!(ledger.take().is_empty(), "the ledger never saw the failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_hanging_destination_does_not_delay_another() {
    let mut hanging = FakeMerchant::start().await;
    hanging.answer(Answer::Hang);
    let mut broken = FakeMerchant::start().await;
    broken.answer(Answer::Status(500));
    let mut fast = FakeMerchant::start().await;
    let d = TestDaemon::start(&format!(
        "{}{}{}{}",
        zp_config(),
        destination(
            "hanging",
            &hanging.url(),
            K1,
            "timeout = \"5s\"\nmax_in_flight = 1"
        ),
        destination("broken", &broken.url(), K1, "retry_first_after = \"1h\""),
        destination("fast", &fast.url(), K2, "")
    ))
    .await;
    let started = Instant::now();
    let a1 = succeed(&d, "ref-A").await;
    let b1 = succeed(&d, "ref-B").await;
    let c1 = succeed(&d, "ref-C").await;
    let a2 = fail(&d, "ref-A", 2).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(fast.next().await);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "the fast destination got everything in {took:?}, well inside the hanging one's 5 s timeout"
    );
    let got = ids(&got);
    let pos = |id: &str| got.iter().position(|g| g == id).unwrap();
    assert!(
        pos(&a1) < pos(&a2),
        "one transaction's events in order: {got:?}"
    );
    for id in [&b1, &c1] {
        assert!(got.contains(id));
    }
    // The broken one got each transaction's first event once; A's conflict waits behind
    // A's failed success there, and only there.
    until_count(
        &d,
        "SELECT count(*) FROM attempts WHERE destination_name = 'broken'",
        3,
    )
    .await;
    let mut first = ids(&broken.take());
    first.sort();
    let mut want = vec![a1.clone(), b1.clone(), c1.clone()];
    want.sort();
    assert_eq!(first, want);
    assert_eq!(
        d.count(&format!(
            "SELECT attempts FROM deliveries WHERE event_id = '{a2}' AND destination = 'broken'"
        )),
        0
    );
    // One slot, hung: the hanging destination has had one request.
    assert_eq!(hanging.take().len(), 1);
    // Counted once each attempt is recorded, which follows the answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.ctx.metrics.counter(
        "payhook_destination_deliveries_total",
        &[("destination", "fast"), ("outcome", "delivered")],
    ) != 4
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            d.ctx.metrics.render(None, payhook::clock::now_ms())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.stop().await;
}

fn payhook(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SUDO_USER")
        .env("USER", "ops-alice")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> (String, String) {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The daemon's configuration as a file the CLI can read, beside its database.
fn cli_config(d: &TestDaemon, text: &str) -> PathBuf {
    let path = d.dir.path().join("payhook.toml");
    std::fs::write(
        &path,
        format!("{text}[store]\npath = \"{}\"\n", d.db_path().display()),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_destination_is_sent_nothing_and_resumes_in_order() {
    let mut held = FakeMerchant::start().await;
    let mut live = FakeMerchant::start().await;
    let text = format!(
        "{}{}{}",
        zp_config(),
        destination("held", &held.url(), K1, "max_in_flight = 1"),
        destination("live", &live.url(), K2, "")
    );
    let d = TestDaemon::start(&text).await;
    let config = cli_config(&d, &text);
    let (out, _) = ok(&payhook(
        &config,
        &["events", "pause", "held", "--note", "receiver upgrade"],
    ));
    assert_eq!(out.trim(), "held: paused");
    assert!(!payhook(&config, &["events", "pause", "nobody"])
        .status
        .success());

    let a1 = succeed(&d, "ref-A").await;
    let b1 = succeed(&d, "ref-B").await;
    let a2 = fail(&d, "ref-A", 2).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(live.next().await);
    }
    let mut got = ids(&got);
    got.sort();
    let mut want = vec![a1.clone(), b1.clone(), a2.clone()];
    want.sort();
    assert_eq!(got, want, "the other destination is not held");
    // Proving an absence: the forwarder has had a second and several passes to send.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d
        .ctx
        .metrics
        .render(None, payhook::clock::now_ms())
        .contains("payhook_destination_paused{destination=\"held\"} 1")
    {
        assert!(Instant::now() < deadline, "the paused gauge never showed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(held.take().is_empty(), "nothing is sent while paused");
    assert_eq!(
        d.count("SELECT count(*) FROM attempts WHERE destination_name = 'held'"),
        0,
        "no attempt is spent"
    );
    assert_eq!(
        d.count(
            "SELECT count(*) FROM deliveries WHERE destination = 'held' AND status = 'pending' AND attempts = 0"
        ),
        3
    );
    let (rows, summary) = ok(&payhook(
        &config,
        &["events", "list", "--destination", "held"],
    ));
    assert_eq!(rows.lines().count(), 4, "{rows}");
    assert!(
        rows.lines().skip(1).all(|l| l.contains("\tpending\t")),
        "{rows}"
    );
    assert!(
        summary.contains("destination held: 3 pending, PAUSED since")
            && summary.contains("(receiver upgrade)"),
        "{summary}"
    );
    let (_, summary) = ok(&payhook(&config, &["events", "list"]));
    assert!(
        summary.contains("destination live: 0 pending\n"),
        "{summary}"
    );

    let (out, _) = ok(&payhook(&config, &["events", "resume", "held"]));
    assert!(out.contains("held: resumed"), "{out}");
    let mut order = Vec::new();
    for _ in 0..3 {
        let r = held.next().await;
        verify(K1, &r).unwrap();
        order.push(r.id().to_string());
    }
    assert_eq!(order, [a1.clone(), b1.clone(), a2.clone()], "outbox order");
    until_count(
        &d,
        "SELECT count(*) FROM deliveries WHERE destination = 'held' AND status = 'delivered'",
        3,
    )
    .await;

    // A replay to one destination records who asked and why.
    let (out, _) = ok(&payhook(
        &config,
        &[
            "events",
            "replay",
            &b1,
            "--destination",
            "held",
            "--note",
            "lost in their queue",
        ],
    ));
    assert_eq!(out.trim(), b1);
    assert_eq!(held.next().await.id(), b1);
    until_count(
        &d,
        "SELECT count(*) FROM deliveries WHERE destination = 'held' AND status = 'delivered'",
        3,
    )
    .await;
    let (shown, _) = ok(&payhook(
        &config,
        &["events", "show", &b1, "--destination", "held"],
    ));
    let story: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let deliveries = story["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{shown}");
    let history: Vec<(&str, Option<&str>)> = deliveries[0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["kind"].as_str().unwrap(), h["requested_by"].as_str()))
        .collect();
    assert_eq!(
        history,
        [
            ("attempt", None),
            ("replay", Some("ops-alice")),
            ("attempt", None)
        ],
        "{shown}"
    );
    assert_eq!(deliveries[0]["history"][1]["note"], "lost in their queue");
    assert!(live.take().is_empty(), "the replay went to one destination");
    d.stop().await;
}

fn feed_config() -> String {
    format!(
        "{}[admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"{ADMIN_TOKEN}\"\n",
        zp_config()
    )
}

async fn feed(d: &TestDaemon, query: &str) -> Reply {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    request(
        d.admin_addr.unwrap(),
        "GET",
        &format!("/v1/events{query}"),
        &[("Authorization", &auth)],
        b"",
    )
    .await
}

/// One page: (event ids, next cursor, done).
async fn page(d: &TestDaemon, query: &str) -> (Vec<String>, String, bool) {
    let reply = feed(d, query).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    let ids = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    (
        ids,
        v["next"].as_str().unwrap().to_string(),
        v["done"].as_bool().unwrap(),
    )
}

/// Follows the feed from `cursor` with `limit=1` to its end; returns the ids and the
/// last cursor.
async fn drain(d: &TestDaemon, mut cursor: Option<String>) -> (Vec<String>, String) {
    let mut all = Vec::new();
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=1&after={c}"),
            None => "?limit=1".to_string(),
        };
        let (ids, next, done) = page(d, &q).await;
        assert!(ids.len() <= 1);
        all.extend(ids);
        cursor = Some(next);
        if done {
            return (all, cursor.unwrap_or_default());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pull_feed_gives_every_event_once_in_order_across_a_restart() {
    let mut m = FakeMerchant::start().await;
    let text = format!(
        "{}[forward]\nurl = \"{}\"\nsecrets = [\"{K1}\"]\n",
        feed_config(),
        m.url()
    );
    let d = TestDaemon::start(&text).await;
    assert_eq!(feed(&d, "").await.status, 200);
    let no_token = request(d.admin_addr.unwrap(), "GET", "/v1/events", &[], b"").await;
    assert_eq!(no_token.status, 401);
    let bad = feed(&d, "?after=not-a-cursor").await;
    assert!(bad.status == 400 && bad.body.contains("after"), "{bad:?}");
    let (empty, start, done) = page(&d, "").await;
    assert!(empty.is_empty() && done);

    let a1 = succeed(&d, "ref-A").await;
    let b1 = succeed(&d, "ref-B").await;
    let a2 = fail(&d, "ref-A", 2).await;
    let (seen, cursor) = drain(&d, None).await;
    assert_eq!(seen, [a1.clone(), b1.clone(), a2.clone()]);
    let (from_start, _, _) = page(&d, &format!("?after={start}")).await;
    assert_eq!(
        from_start, seen,
        "the empty feed's cursor starts at the oldest"
    );
    // Exactly the body a destination receives.
    let delivered = m.next().await;
    let raw = feed(&d, "?limit=1").await;
    assert_eq!(delivered.id(), a1);
    assert!(raw.body.contains(delivered.body_str()), "{}", raw.body);
    let (failed_only, _, _) = page(&d, "?type=transaction.conflict").await;
    assert_eq!(failed_only, std::slice::from_ref(&a2));
    let (none, _, _) = page(&d, "?provider=jenga").await;
    assert!(none.is_empty());

    let dir = d.stop().await;
    let d = TestDaemon::start_in(dir, &text).await;
    let (after_restart, same, done) = page(&d, &format!("?after={cursor}")).await;
    assert!(after_restart.is_empty() && done);
    assert_eq!(same, cursor, "an empty page keeps the cursor");
    let c1 = succeed(&d, "ref-C").await;
    let (more, cursor) = drain(&d, Some(cursor)).await;
    assert_eq!(more, std::slice::from_ref(&c1));
    let (everything, _) = drain(&d, None).await;
    assert_eq!(everything, [a1, b1, a2, c1]);

    // A waiting consumer hears of a new event at once.
    let (addr, c) = (d.admin_addr.unwrap(), cursor.clone());
    let waiting = tokio::spawn(async move {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let reply = request(
            addr,
            "GET",
            &format!("/v1/events?after={c}&wait=30s"),
            &[("Authorization", &auth)],
            b"",
        )
        .await;
        (reply, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "an empty page waits");
    let d1 = succeed(&d, "ref-D").await;
    let written = Instant::now();
    let (reply, answered) = waiting.await.unwrap();
    assert!(
        answered.duration_since(written) < Duration::from_secs(1),
        "answered {:?} after the event",
        answered.duration_since(written)
    );
    let v: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(v["data"][0]["id"], d1.as_str());
    let before = Instant::now();
    let (nothing, _, done) = page(
        &d,
        &format!("?after={}&wait=1s", v["next"].as_str().unwrap()),
    )
    .await;
    assert!(nothing.is_empty() && done);
    assert!(before.elapsed() >= Duration::from_millis(900));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_added_later_gets_history_only_with_backfill() {
    let mut first = FakeMerchant::start().await;
    let one = format!(
        "{}{}",
        zp_config(),
        destination("first", &first.url(), K1, "")
    );
    let d = TestDaemon::start(&one).await;
    let old = succeed(&d, "ref-old").await;
    assert_eq!(first.next().await.id(), old);
    let dir = d.stop().await;

    let mut late = FakeMerchant::start().await;
    let mut full = FakeMerchant::start().await;
    let three = format!(
        "{one}{}{}",
        destination("late", &late.url(), K1, ""),
        destination("full", &full.url(), K2, "backfill = true")
    );
    let d = TestDaemon::start_in(dir, &three).await;
    assert_eq!(full.next().await.id(), old, "backfill takes the history");
    let new = succeed(&d, "ref-new").await;
    assert_eq!(late.next().await.id(), new, "without backfill: from now on");
    assert_eq!(full.next().await.id(), new);
    assert_eq!(first.next().await.id(), new);
    until_count(
        &d,
        "SELECT count(*) FROM deliveries WHERE status = 'delivered'",
        5,
    )
    .await;
    assert_eq!(
        d.count(&format!(
            "SELECT count(*) FROM deliveries WHERE event_id = '{old}'"
        )),
        2,
        "first and full, not late"
    );
    assert!(first.take().is_empty(), "first got the old event once");
    d.stop().await;
    assert!(late.take().is_empty());
}
