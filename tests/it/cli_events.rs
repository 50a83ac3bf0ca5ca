//! `payhook events list | show | replay | enable-destination`, run as the binary
//! against a database the daemon wrote.

use crate::support::fake_merchant::{Answer, FakeMerchant};
use crate::support::http::post;
use crate::support::sign::event_id;
use crate::support::TestDaemon;
use payhook::config::Config;
use payhook::forward::{self, Step};
use payhook::store::outbox;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_payhook");
const ZP_SECRET: &str = "zp-test-secret";
const K1: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn settle(d: &TestDaemon, reference: &str) -> String {
    let body = serde_json::json!({"event": "collection.success", "data": {
        "transactionStatus": "SUCCEEDED", "transactionReference": reference,
        "transactionExternalReference": format!("order-{reference}"), "currencyCode": "UGX-MTNMM",
        "amount": "5000", "msisdn": "256772000001"}})
    .to_string();
    let sig = crate::support::sign::zp_sign(ZP_SECRET, body.as_bytes());
    let reply = post(
        d.addr,
        "/callbacks/zengapay",
        &[("X-ZENGAPAY-SIGNATURE", &sig)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200);
    event_id(d.zp_txn_id(reference), "zengapay", reference, 1)
}

fn payhook(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn status(d: &TestDaemon, id: &str) -> String {
    d.db()
        .query_row("SELECT status FROM events WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_shows_and_replays_events_with_the_binary() {
    let zp = format!("[providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\n");
    let mut m = FakeMerchant::start().await;
    let d = TestDaemon::start(&zp).await;
    let forward = format!(
        "[forward]\nurl = \"{}\"\nsecrets = [\"{K1}\"]\nretry_horizon = \"1m\"\n",
        m.url()
    );
    let ctx = {
        let mut cfg = (*d.ctx.config).clone();
        cfg.forward = Config::from_toml(&forward, d.dir.path()).unwrap().forward;
        let mut ctx = d.ctx.clone();
        ctx.config = Arc::new(cfg);
        ctx
    };
    // One event delivered, one dead after its (one-minute) horizon.
    let ok = settle(&d, "ref-ok").await;
    let now = payhook::clock::now_ms();
    assert_eq!(forward::step(&ctx, now).await.unwrap(), Step::Worked(1));
    m.answer(Answer::Status(500));
    let dead = settle(&d, "ref-dead").await;
    let mut t = payhook::clock::now_ms();
    while status(&d, &dead) == "pending" {
        assert_eq!(forward::step(&ctx, t).await.unwrap(), Step::Worked(1));
        t += 120_000;
    }
    assert_eq!(status(&d, &dead), "dead");
    let dir = d.stop().await;
    let config = dir.path().join("payhook.toml");
    std::fs::write(
        &config,
        format!(
            "{forward}[store]\npath = \"{}\"\n",
            dir.path().join("payhook.db").display()
        ),
    )
    .unwrap();

    // check-config shows the [forward] section, its secret redacted.
    let shown = stdout(&payhook(&config, &["check-config"]));
    assert!(
        shown.contains("[forward]") && shown.contains("retry_horizon = \"1m\""),
        "{shown}"
    );
    assert!(
        shown.contains("[redacted]") && !shown.contains(&K1[6..]),
        "{shown}"
    );

    let all = stdout(&payhook(&config, &["events", "list"]));
    assert_eq!(all.lines().count(), 3, "{all}");
    assert!(all.contains(&ok) && all.contains(&dead), "{all}");
    let dead_only = stdout(&payhook(&config, &["events", "list", "--status", "dead"]));
    let rows: Vec<&str> = dead_only.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{dead_only}");
    assert!(
        rows[0].starts_with(&dead)
            && rows[0].contains("zengapay/ref-dead")
            && rows[0].contains("HTTP 500"),
        "{dead_only}"
    );
    let future = stdout(&payhook(
        &config,
        &["events", "list", "--since", "2999-01-01"],
    ));
    assert_eq!(future.lines().count(), 1, "{future}");
    let recent = stdout(&payhook(&config, &["events", "list", "--since", "1h"]));
    assert_eq!(recent.lines().count(), 3, "{recent}");
    let bad = payhook(&config, &["events", "list", "--since", "last tuesday"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));

    let story: serde_json::Value =
        serde_json::from_str(&stdout(&payhook(&config, &["events", "show", &dead]))).unwrap();
    assert_eq!(story["event"]["id"], dead.as_str());
    assert_eq!(story["event"]["status"], "dead");
    assert_eq!(story["payload"]["id"], dead.as_str());
    assert_eq!(story["transaction"]["provider_ref"], "ref-dead");
    assert_eq!(story["callbacks"].as_array().unwrap().len(), 1);
    assert_eq!(story["transitions"][0]["to_status"], "SUCCEEDED");
    assert!(story["polls"].as_array().unwrap().is_empty());
    let attempts = story["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2 && attempts.iter().all(|a| a["http_status"] == 500));
    let missing = payhook(&config, &["events", "show", "evt_nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));

    // Replay one delivered event by id, then every dead one since an hour ago.
    assert_eq!(
        stdout(&payhook(&config, &["events", "replay", &ok])).trim(),
        ok
    );
    let again = payhook(&config, &["events", "replay", &ok]);
    assert!(
        !again.status.success(),
        "a pending event is not replayed twice"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("pending"));
    assert!(!payhook(&config, &["events", "replay"]).status.success());
    let replayed = stdout(&payhook(
        &config,
        &["events", "replay", "--dead", "--since", "1h"],
    ));
    assert_eq!(replayed.trim(), dead);

    // The daemon delivers both again, with the same ids.
    m.take();
    m.answer(Answer::Status(200));
    let d = TestDaemon::start_in(dir, &zp).await;
    let ctx = {
        let mut cfg = (*d.ctx.config).clone();
        cfg.forward = ctx.config.forward.clone();
        let mut c = d.ctx.clone();
        c.config = Arc::new(cfg);
        c
    };
    assert_eq!(
        forward::step(&ctx, payhook::clock::now_ms()).await.unwrap(),
        Step::Worked(2)
    );
    let mut ids: Vec<String> = m.take().iter().map(|r| r.id().to_string()).collect();
    ids.sort();
    let mut want = vec![ok.clone(), dead.clone()];
    want.sort();
    assert_eq!(ids, want);

    // A destination disabled by 410 is re-enabled from the command line.
    let url = m.url();
    d.ctx
        .store
        .write(move |c| outbox::disable_destination(c, &url, 1, "410 Gone"))
        .await
        .unwrap();
    assert_eq!(
        forward::step(&ctx, payhook::clock::now_ms()).await.unwrap(),
        Step::Disabled
    );
    let enabled = stdout(&payhook(&config, &["events", "enable-destination"]));
    assert!(enabled.contains("enabled"), "{enabled}");
    assert!(matches!(
        forward::step(&ctx, payhook::clock::now_ms()).await.unwrap(),
        Step::Idle { .. }
    ));
    d.stop().await;
}
