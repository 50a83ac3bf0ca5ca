//! Reconciler throughput benchmark: does the reconciler poll a rate-limited
//! provider at its limit, not below it?
//!
//! ```text
//! cargo bench --bench reconcile                          # 6000/min (100/s) for 30 s
//! cargo bench --bench reconcile -- --rate 60000          # 1000/s: where does it stop keeping up?
//! cargo test --bench reconcile                           # smoke mode (debug, ≈ 5 s), what CI runs
//! ```
//! Options: `--rate PER_MINUTE` (6000), `--seconds S` (30), `--smoke` (or
//! `PAYHOOK_BENCH_SMOKE=1`: 3 s). Run without any argument (as `cargo test --benches`
//! does), it runs in smoke mode.
//!
//! # What runs
//! - **Fake provider**: a hyper 1 HTTP/1.1 server on 127.0.0.1 (`fake-rt`, 1 thread)
//!   answering ZengaPay's `GET /v1/collections/{ref}` with SUCCEEDED at once, and counting
//!   the requests it receives, with their arrival times.
//! - **payhook**: the real reconciler (`payhook::reconcile::run`, the daemon's own loop) on
//!   `payhook-rt` (2 threads, as `main` uses on a 2-core machine), ZengaPay's `base_url`
//!   pointed at the fake and `poll_rate_per_minute` set to `--rate`, on a fresh SQLite file
//!   with production settings. The store starts with enough due ZengaPay transactions
//!   (inserted with plain SQL, as an application may) that the run never runs out of work.
//!
//! # Measures
//! Status queries per second arriving at the fake over the measured window, which starts
//! two seconds after the first query so that the limiter's initial burst (one second's
//! worth) is not counted, and the ratio to the configured limit: 1.00 is "at the limit".
//! Every counted query must also be recorded in the store (`polls`), and the queries in any
//! window must stay within the limiter's promise: the window's quota plus one burst. So a
//! ratio slightly above 1.00 over a short window is the burst, not a broken limiter.
//!
//! This is a separate bench target from `benches/ingest.rs` because it shares nothing with
//! it (no load generator, no bare server) and answers a different question; both follow
//! the same conventions (`--smoke`, README rows printed at the end).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The measured window starts this long after the first query: the limiter's burst (one
/// second's quota) and the first claims are left out.
const WARM_UP: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
struct Opts {
    smoke: bool,
    rate_per_minute: u32,
    seconds: f64,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        smoke: std::env::var("PAYHOOK_BENCH_SMOKE").is_ok_and(|v| v != "0"),
        rate_per_minute: 6000,
        seconds: 30.0,
    };
    // `cargo test --benches` runs this binary with no argument: smoke mode.
    if std::env::args().len() == 1 {
        o.smoke = true;
    }
    let mut seconds = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match a.as_str() {
            "--smoke" => o.smoke = true,
            "--rate" => o.rate_per_minute = value("--rate").parse().unwrap(),
            "--seconds" => seconds = Some(value("--seconds").parse().unwrap()),
            // Passed by cargo bench / cargo test.
            "--bench" | "--nocapture" => {}
            other => panic!("unknown option {other}"),
        }
    }
    o.seconds = seconds.unwrap_or(if o.smoke { 3.0 } else { o.seconds });
    o
}

fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// Arrival instants of the status queries.
type Seen = Arc<Mutex<Vec<Instant>>>;

async fn fake_provider(listener: TcpListener, seen: Seen) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(Instant::now());
                    let reference = req
                        .uri()
                        .path()
                        .strip_prefix("/v1/collections/")
                        .unwrap_or_default()
                        .to_string();
                    let body = format!(
                        r#"{{"code":200,"status":"OK","data":{{"transactionReference":"{reference}","transactionStatus":"SUCCEEDED","amount":5000,"currencyCode":"UGX-MTNMM","transactionExternalReference":"order-{reference}","transactionCompletionDate":"2026-01-01 00:00:00"}}}}"#
                    );
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap(),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn main() {
    let o = parse_opts();
    // Log as the daemon does (info), into a sink: formatting is counted, terminals are not.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .with_ansi(false)
        .with_target(false)
        .try_init();
    let limit = f64::from(o.rate_per_minute) / 60.0;
    println!(
        "payhook reconcile bench: limit {} /min ({limit:.1}/s), {} s measured, {} cores{}",
        o.rate_per_minute,
        o.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if o.smoke { " [smoke]" } else { "" }
    );

    let fake_rt = runtime("fake-rt", 1);
    let seen: Seen = Arc::default();
    let fake = fake_rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let fake_url = format!("http://{}", fake.local_addr().unwrap());
    fake_rt.spawn(fake_provider(fake, seen.clone()));

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("payhook.db");
    let cfg = payhook::config::Config::from_toml(
        &format!(
            "[providers.zengapay]\nsecret_hash = \"bench-secret\"\napi_token = \"bench-token\"\n\
             base_url = \"{fake_url}\"\npoll_rate_per_minute = {}\n\
             [reconciler]\nrequest_timeout = \"5s\"\n[store]\npath = \"payhook.db\"\n",
            o.rate_per_minute
        ),
        dir.path(),
    )
    .unwrap();
    let ctx = payhook::Ctx::new(cfg).unwrap();
    // Enough due rows for the whole run at twice the limit, so work never runs out.
    let rows = ((limit * (o.seconds + WARM_UP.as_secs_f64() + 2.0) * 2.0) as u64).max(100);
    {
        let mut c = rusqlite::Connection::open(&db).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        let tx = c.transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO transactions (provider, provider_ref, kind)
                     VALUES ('zengapay', ?1, 'collection')",
                )
                .unwrap();
            for i in 0..rows {
                insert.execute([format!("bench-{i:08}")]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    println!("  {rows} due transactions");

    let rt = runtime("payhook-rt", 2);
    let (stop, stopping) = payhook::shutdown::channel();
    let reconciler = rt.spawn(payhook::reconcile::run(ctx.clone(), stopping));
    // Wait for the first query, then measure a window after the warm-up.
    let started = Instant::now();
    let first = loop {
        if let Some(t) = seen.lock().unwrap().first().copied() {
            break t;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the reconciler never polled the fake provider"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let from = first + WARM_UP;
    let to = from + Duration::from_secs_f64(o.seconds);
    std::thread::sleep(to.saturating_duration_since(Instant::now()) + Duration::from_millis(200));
    stop.fire();
    rt.block_on(reconciler).unwrap();
    drop(ctx);
    rt.shutdown_timeout(Duration::from_secs(5));

    let seen = seen.lock().unwrap().clone();
    let in_window = seen.iter().filter(|t| **t >= from && **t < to).count();
    let achieved = in_window as f64 / o.seconds;
    let ratio = achieved / limit;
    // The limiter's promise: in any one second, at most one second's quota plus the burst.
    let burst = (limit.ceil() as usize).max(1);
    let mut worst = 0;
    let mut lo = 0;
    for hi in 0..seen.len() {
        while seen[hi].duration_since(seen[lo]) >= Duration::from_secs(1) {
            lo += 1;
        }
        worst = worst.max(hi - lo + 1);
    }
    let polls = count(&db, "SELECT count(*) FROM polls WHERE outcome = 'status'");
    let settled = count(
        &db,
        "SELECT count(*) FROM transactions WHERE status = 'SUCCEEDED'",
    );
    println!(
        "  queries  {} in total, {in_window} in the measured window",
        seen.len()
    );
    println!("  achieved {achieved:.1}/s against a limit of {limit:.1}/s: ratio {ratio:.3}");
    println!(
        "  busiest second {worst} queries (limit + burst = {})",
        burst * 2
    );
    println!("  recorded {polls} polls, {settled} transactions settled");
    println!(
        "\nREADME row ({}):",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    println!(
        "| reconciler, ZengaPay at {}/min ({} s) | {achieved:.1} | {limit:.1} | {ratio:.3} | {worst} |",
        o.rate_per_minute, o.seconds
    );

    assert!(in_window > 0, "no query in the measured window");
    // "At the limit, not below it": with work always due and a provider that answers at
    // once, the reconciler must use (nearly) all of the quota. 10 % slack covers a
    // window edge and scheduling on shared cores; a loop that sleeps too long between
    // batches or claims too few rows falls below it.
    assert!(
        ratio >= 0.9,
        "below the limit: {achieved:.1}/s against {limit:.1}/s (ratio {ratio:.3})"
    );
    // Queries still in flight at shutdown may be unrecorded; everything else must be.
    assert!(
        polls as usize + payhook::reconcile::MAX_IN_FLIGHT >= seen.len(),
        "{} queries reached the provider but only {polls} polls were recorded",
        seen.len()
    );
    assert_eq!(
        polls, settled,
        "every recorded SUCCEEDED answer settled its transaction"
    );
    // Arrival times carry the network's jitter: 5 % slack over the limiter's exact bound.
    assert!(
        worst <= burst * 2 + burst / 20 + 1,
        "the limiter let {worst} queries through in one second (limit {limit:.1}/s + burst {burst})"
    );
    // Over a window of T seconds GCRA allows T seconds' quota plus the burst (a burst
    // rebuilt while the loop was between batches), so the ratio may exceed 1 by burst/T.
    assert!(
        in_window as f64 <= limit * o.seconds + burst as f64 + 1.0,
        "faster than the limit over the window: {in_window} queries in {} s",
        o.seconds
    );
}
