//! Ingest benchmark: payhook against a bare hyper server, same signed bodies, same
//! connections, same run.
//!
//! ```text
//! cargo bench --bench ingest                      # wrk: ordered, random (1M rows); storm; 8 s each
//! cargo bench --bench ingest -- --workload ordered --seconds 8   # the README's row
//! cargo bench --bench ingest -- --smoke           # a few seconds, in-process, checks it works (CI)
//! ```
//! Options: `--connections N` (64), `--seconds S` (8), `--bare-seconds S` (as `--seconds`),
//! `--prefill N` (1,000,000), `--workload ordered|random|storm|all` (all), `--in-process`
//! (the in-process generator instead of wrk), `--smoke` (or `PAYHOOK_BENCH_SMOKE=1`).
//! Run without any argument (as `cargo test --benches` does), it runs in smoke mode.
//!
//! # What runs
//! - **Generator** (ordered and random): Debian's `wrk` in its own process, `-t2 -cN`,
//!   running `benches/ingest.lua`: every request a distinct ZengaPay collection callback
//!   of ≈ 600 bytes signed with HMAC-SHA256 of the raw body (`X-ZENGAPAY-SIGNATURE`). The
//!   sequence depends only on wrk's thread number, so both servers get identical bodies.
//!   Latency is wrk's (p50/p99/max); a request wrk has not finished at its deadline is not
//!   counted, so payhook may store up to N more callbacks than were acknowledged.
//! - **In-process generator** (the storm, `--smoke` and `--in-process`): hyper 1
//!   `client::conn::http1`, N keep-alive connections on its own 2-thread runtime
//!   (`gen-rt`), alternating ZengaPay and BitPesa (HMAC-SHA512 over nonce, method, URL and
//!   body hash). It shares the process and cores with the server, so its rates understate
//!   payhook: use it to check, not to measure.
//! - **Bare**: a hyper 1 HTTP/1.1 server (`bare-rt`, 2 threads) that reads the whole body
//!   and answers 200 without verifying or storing: the ceiling. It runs before payhook and
//!   again after it; the ratio divides payhook's rate by the mean of the two.
//! - **payhook**: the real daemon in-process (`payhook::serve`, `payhook-rt`, 2 threads, as
//!   `main` uses on a 2-core machine) on a fresh SQLite file with its production settings,
//!   logging at `info` into a sink (so formatting costs are counted, not terminal I/O).
//!
//! # Workloads
//! - `ordered`: references increase per connection; the store starts empty.
//! - `random`: random UUID references on a store already holding `--prefill` payments
//!   (transaction, callback with a real body, nonce for BitPesa, applied transition and
//!   delivered event each). The prefill is written with direct SQL through rusqlite, in one
//!   transaction with `synchronous=OFF` (set-up only), into a cached file under
//!   `target/bench-cache/` keyed by row count and a hash of `schema.sql`; each run copies it.
//! - `storm`: one identical ZengaPay callback from 64 connections at once (duplicates).
//!
//! # Measures
//! Accepted callbacks per second (2xx), p50/p99/max time from sending the request to
//! reading the whole answer, server CPU per stored callback, writer CPU per stored
//! callback, peak RSS, and the WAL's largest size. Server CPU is this process's CPU time
//! (`/proc/self/stat`) minus that of the in-process generator's threads and the main
//! thread (`/proc/self/task/*/stat`): the server runtime, the store's writer and
//! checkpointer threads and any blocking-pool threads. Writer CPU is the utime + stime of
//! the thread named `payhook-writer` over the run. Peak RSS is the whole process's, from the
//! run's start (so the second bare run's includes what payhook's run left allocated).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::{Digest, Sha256, Sha512};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

const ZP_SECRET: &str = "bench-zengapay-secret";
const BP_KEY: &str = "bench-bitpesa-key";
const BP_SECRET: &str = "bench-bitpesa-secret";
const PUBLIC_BASE: &str = "https://hooks.example.com";
/// Set in the child process that builds the prefilled store.
const PREFILL_CHILD: &str = "PAYHOOK_BENCH_PREFILL_CHILD";
/// Connections in the duplicate storm (as many as wrk's ordered rounds).
const STORM_CONNECTIONS: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    Ordered,
    Random,
    Storm,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Ordered => "ordered",
            Workload::Random => "random",
            Workload::Storm => "storm",
        }
    }
}

#[derive(Clone, Debug)]
struct Opts {
    smoke: bool,
    connections: usize,
    seconds: f64,
    /// How long the bare server runs (default: `seconds`); a sustained run of payhook does
    /// not need a sustained ceiling.
    bare_seconds: Option<f64>,
    prefill: u64,
    workloads: Vec<Workload>,
    /// Load from `wrk` in its own process (ordered and random; the storm stays in-process).
    external: bool,
}

fn parse_opts() -> Opts {
    let smoke_env = std::env::var("PAYHOOK_BENCH_SMOKE").is_ok_and(|v| v != "0");
    let mut o = Opts {
        smoke: smoke_env,
        connections: 64,
        seconds: 8.0,
        bare_seconds: None,
        prefill: 1_000_000,
        workloads: vec![Workload::Ordered, Workload::Random, Workload::Storm],
        external: true,
    };
    let mut explicit = (None, None, None);
    // `cargo bench` passes `--bench`; `cargo test --benches` (or `--all-targets`) runs this
    // binary with no argument at all, and then it should only check that it works.
    if std::env::args().len() == 1 {
        o.smoke = true;
    }
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match a.as_str() {
            "--smoke" => o.smoke = true,
            "--in-process" => o.external = false,
            "--connections" => explicit.0 = Some(value("--connections").parse().unwrap()),
            "--seconds" => explicit.1 = Some(value("--seconds").parse().unwrap()),
            "--prefill" => explicit.2 = Some(value("--prefill").parse().unwrap()),
            "--bare-seconds" => o.bare_seconds = Some(value("--bare-seconds").parse().unwrap()),
            "--workload" => {
                o.workloads = match value("--workload").as_str() {
                    "ordered" => vec![Workload::Ordered],
                    "random" => vec![Workload::Random],
                    "storm" => vec![Workload::Storm],
                    "all" => vec![Workload::Ordered, Workload::Random, Workload::Storm],
                    w => panic!("unknown workload {w}"),
                }
            }
            // `cargo bench` passes --bench; libtest-style filters are ignored.
            _ => {}
        }
    }
    if o.smoke {
        o.connections = 16;
        o.seconds = 0.25;
        o.prefill = 5_000;
    }
    o.connections = explicit.0.unwrap_or(o.connections);
    o.seconds = explicit.1.unwrap_or(o.seconds);
    o.prefill = explicit.2.unwrap_or(o.prefill);
    if o.smoke {
        // The smoke run checks the bench and the daemon, and must not need wrk.
        o.external = false;
    } else if o.external && !wrk_available() {
        panic!("wrk is not installed (apt-get install wrk); --in-process uses the in-process generator, whose figures understate payhook");
    }
    o
}

// ---------------------------------------------------------------------------------------
// Bodies and signatures

/// A deterministic UUID-like string from a seed.
fn uuid(rng: &mut fastrand::Rng) -> String {
    let a = rng.u64(..);
    let b = rng.u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// The transaction reference for request `i` of connection `c`.
fn reference(w: Workload, c: usize, i: u64) -> String {
    match w {
        Workload::Ordered => format!("ord-{c:04}-{i:012}"),
        Workload::Random | Workload::Storm => {
            let mut rng = fastrand::Rng::with_seed(0x5eed ^ ((c as u64) << 40) ^ i);
            uuid(&mut rng)
        }
    }
}

/// A ZengaPay collection callback shaped like the documented one in its webhook documentation,
/// ≈ 600 bytes.
fn zp_body(reference: &str, amount: u64) -> String {
    format!(
        concat!(
            r#"{{"event":"collection.success","data":{{"transactionStatus":"SUCCEEDED","#,
            r#""transactionReference":"{r}","transactionExternalReference":"INV-{r}","#,
            r#""MNOTransactionReferenceId":"42026012031","currencyCode":"UGX-MTNMM","#,
            r#""amount":"{a}","msisdn":"256772123456","channel":"API","#,
            r#""transactionType":"INBOUND_MSISDN_CREDIT","#,
            r#""transactionInitiationDate":"2024-08-05 13:16:43","#,
            r#""transactionCompletionDate":"2024-08-05 13:16:55","#,
            r#""narration":"Payment for order INV-{r} at Kampala Central branch, till 004512""#,
            r#"}}}}"#
        ),
        r = reference,
        a = amount
    )
}

/// A TransferZero `transaction.paid_out` webhook in its documented shape, ≈ 600 bytes.
fn bp_body(reference: &str, amount: u64) -> String {
    format!(
        concat!(
            r#"{{"webhook":"8d9e5c1a-2b3f-4c5d-9e6f-7a8b9c0d1e2f","event":"transaction.paid_out","#,
            r#""object":{{"id":"{r}","state":"paid_out","external_id":"PAYOUT-{r}","#,
            r#""input_amount":"{a}.00","input_currency":"KES","payin_methods":[],"#,
            r#""created_at":"2024-08-05T13:16:43.000Z","expires_at":"2024-08-06T13:16:43.000Z","#,
            r#""sender_id":"1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7a8b","metadata":{{"order":"A-1042"}},"#,
            r#""state_reason_details":null,"traits":{{"route":"mpesa"}}}}}}"#
        ),
        r = reference,
        a = amount
    )
}

fn zp_sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(ZP_SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn bp_sign(nonce: &str, body: &[u8]) -> String {
    let to_sign = format!(
        "{nonce}&POST&{PUBLIC_BASE}/callbacks/bitpesa&{}",
        hex::encode(Sha512::digest(body))
    );
    let mut mac = Hmac::<Sha512>::new_from_slice(BP_SECRET.as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Request `i` of connection `c`: a distinct, signed callback (or, in the storm, the one
/// shared callback). Pure: the bare server and payhook get identical bytes.
fn request(w: Workload, c: usize, i: u64) -> Request<Full<Bytes>> {
    let b = Request::post("/callbacks/zengapay").header("host", "127.0.0.1");
    if w == Workload::Storm {
        let body = zp_body("storm-0000-4000-8000-000000000000", 5000);
        return b
            .header("content-type", "application/json")
            .header("x-zengapay-signature", zp_sign(body.as_bytes()))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
    }
    let r = reference(w, c, i);
    let amount = 1000 + i % 90_000;
    if (c as u64 + i) % 2 == 0 {
        let body = zp_body(&r, amount);
        b.header("content-type", "application/json")
            .header("x-zengapay-signature", zp_sign(body.as_bytes()))
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    } else {
        let body = bp_body(&r, amount);
        let nonce = match w {
            Workload::Ordered => format!("n-{r}"),
            _ => uuid(&mut fastrand::Rng::with_seed(
                0x0ce ^ ((c as u64) << 40) ^ i,
            )),
        };
        let sig = bp_sign(&nonce, body.as_bytes());
        Request::post("/callbacks/bitpesa")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .header("authorization-key", BP_KEY)
            .header("authorization-nonce", nonce)
            .header("authorization-signature", sig)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// Latency histogram: exact below 1 ms, then 512 sub-buckets per power of two (≤ 0.2 %).

struct Histogram {
    counts: Vec<u64>,
    max_us: u64,
    total: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; 1024 + 40 * 512],
            max_us: 0,
            total: 0,
        }
    }

    fn index(us: u64) -> usize {
        if us < 1024 {
            return us as usize;
        }
        let e = 63 - us.leading_zeros() as usize; // ≥ 10
        let mantissa = (us >> (e - 9)) as usize; // 512..1023
        (1024 + (e - 10) * 512 + (mantissa - 512)).min(1024 + 40 * 512 - 1)
    }

    fn value(idx: usize) -> u64 {
        if idx < 1024 {
            return idx as u64;
        }
        let e = (idx - 1024) / 512 + 10;
        let mantissa = ((idx - 1024) % 512 + 512) as u64;
        mantissa << (e - 9)
    }

    fn record(&mut self, us: u64) {
        self.counts[Self::index(us)] += 1;
        self.max_us = self.max_us.max(us);
        self.total += 1;
    }

    fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.max_us = self.max_us.max(o.max_us);
        self.total += o.total;
    }

    fn quantile(&self, q: f64) -> u64 {
        let target = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= target {
                return Self::value(i);
            }
        }
        self.max_us
    }
}

// ---------------------------------------------------------------------------------------
// Generator

struct Stats {
    accepted: u64,
    refused: u64,
    broken: u64,
    elapsed: Duration,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

async fn drive(addr: SocketAddr, w: Workload, connections: usize, seconds: f64) -> Stats {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        tasks.spawn(async move {
            let mut hist = Histogram::new();
            let (mut accepted, mut refused, mut broken) = (0u64, 0u64, 0u64);
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut i = 0u64;
            while Instant::now() < deadline {
                let req = request(w, c, i);
                i += 1;
                // HTTP/1 keep-alive: the previous exchange must have fully finished.
                if sender.ready().await.is_err() {
                    broken += 1;
                    break;
                }
                let t0 = Instant::now();
                let resp = match sender.send_request(req).await {
                    Ok(r) => r,
                    Err(_) => {
                        broken += 1;
                        break;
                    }
                };
                let ok = resp.status().is_success();
                if resp.into_body().collect().await.is_err() {
                    broken += 1;
                    break;
                }
                hist.record(t0.elapsed().as_micros() as u64);
                if ok {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
            (hist, accepted, refused, broken)
        });
    }
    let mut hist = Histogram::new();
    let (mut accepted, mut refused, mut broken) = (0, 0, 0);
    while let Some(r) = tasks.join_next().await {
        let (h, a, r, b) = r.unwrap();
        hist.merge(&h);
        accepted += a;
        refused += r;
        broken += b;
    }
    Stats {
        accepted,
        refused,
        broken,
        elapsed: start.elapsed(),
        p50_us: hist.quantile(0.50),
        p99_us: hist.quantile(0.99),
        max_us: hist.max_us,
    }
}

/// The external generator: Debian's `wrk` running `benches/ingest.lua` (distinct, signed
/// ZengaPay callbacks) in its own process, so that generating load takes nothing from the
/// server's process. Two wrk threads, `connections` keep-alive connections.
fn drive_wrk(addr: SocketAddr, w: Workload, connections: usize, seconds: f64) -> Stats {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ingest.lua");
    let out = std::process::Command::new("wrk")
        .args(["-t2", &format!("-c{connections}")])
        .arg(format!("-d{}s", seconds.ceil().max(1.0) as u64))
        .args(["--timeout", "10s", "-s"])
        .arg(&script)
        .arg(format!("http://{addr}"))
        .args(["--", w.name(), ZP_SECRET])
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("WRK "))
        .unwrap_or_else(|| panic!("no WRK line from the script: {text}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from {line}"))
    };
    let requests = field("requests");
    let refused = field("non2xx");
    Stats {
        accepted: requests - refused,
        refused,
        broken: field("connect") + field("read") + field("write") + field("timeout"),
        elapsed: Duration::from_micros(field("duration_us")),
        p50_us: field("p50_us"),
        p99_us: field("p99_us"),
        max_us: field("max_us"),
    }
}

/// Whether `wrk` can be run here.
fn wrk_available() -> bool {
    std::process::Command::new("wrk").arg("-v").output().is_ok()
}

// ---------------------------------------------------------------------------------------
// /proc accounting

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (comm, utime + stime in ticks) from a `stat` file.
fn stat_ticks(path: &Path) -> Option<(String, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let f: Vec<&str> = s[close + 2..].split_whitespace().collect();
    // After the comm: state is field 3, utime 14, stime 15 (1-based in proc(5)).
    Some((
        comm,
        f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    ))
}

/// CPU ticks of the whole process, of the generator's threads plus the main thread, and
/// of the store's writer thread (the one part that cannot use a second core).
fn cpu_split() -> (u64, u64, u64) {
    let total = stat_ticks(Path::new("/proc/self/stat")).map_or(0, |s| s.1);
    let main_tid = std::process::id().to_string();
    let (mut gen, mut writer) = (0, 0);
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            if let Some((comm, ticks)) = stat_ticks(&t.path().join("stat")) {
                if comm.starts_with("gen-rt") || t.file_name().to_string_lossy() == main_tid {
                    gen += ticks;
                } else if comm == "payhook-writer" {
                    writer += ticks;
                }
            }
        }
    }
    (total, gen, writer)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples RSS and the WAL's size once a second (or faster in short runs) until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(f64, u64, u64)>>,
}

impl Sampler {
    fn start(wal: Option<PathBuf>, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::Builder::new()
            .name("sampler".into())
            .spawn(move || {
                let t0 = Instant::now();
                let mut out = Vec::new();
                while !s.load(Ordering::Relaxed) {
                    let wal_bytes = wal
                        .as_ref()
                        .and_then(|p| std::fs::metadata(p).ok())
                        .map_or(0, |m| m.len());
                    out.push((t0.elapsed().as_secs_f64(), status_kib("VmRSS:"), wal_bytes));
                    std::thread::sleep(every);
                }
                out
            })
            .unwrap();
        Sampler { stop, handle }
    }

    fn finish(self) -> Vec<(f64, u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// Servers

fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// The ceiling: reads the body, answers 200, nothing else.
async fn bare_serve(listener: TcpListener, stop: tokio::sync::oneshot::Receiver<()>) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).keep_alive(true);
    tokio::pin!(stop);
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => a.unwrap(),
            _ = &mut stop => return,
        };
        stream.set_nodelay(true).unwrap();
        let conn = builder.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(|req: Request<Incoming>| async move {
                let _body = req.into_body().collect().await;
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(StatusCode::OK)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from_static(br#"{"status":"accepted"}"#)))
                        .unwrap(),
                )
            }),
        );
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

struct RunResult {
    stats: Stats,
    server_cpu_s: f64,
    /// CPU of the store's writer thread (zero for the bare server).
    writer_cpu_s: f64,
    peak_rss_kib: u64,
    samples: Vec<(f64, u64, u64)>,
    note: String,
    /// Callbacks the run stored (the acknowledged ones, plus with wrk those answered after
    /// it stopped counting); CPU per callback divides by this. Zero for the bare server.
    stored: u64,
}

fn measure(
    gen: &tokio::runtime::Runtime,
    addr: SocketAddr,
    w: Workload,
    o: &Opts,
    wal: Option<PathBuf>,
) -> (Stats, f64, f64, Vec<(f64, u64, u64)>) {
    let connections = if w == Workload::Storm {
        STORM_CONNECTIONS
    } else {
        o.connections
    };
    let every = if o.seconds >= 30.0 {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(100)
    };
    // Reset VmHWM so that peak RSS is this run's (and not, say, the prefill's page cache).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let sampler = Sampler::start(wal, every);
    let (t0, g0, w0) = cpu_split();
    let stats = if o.external && w != Workload::Storm {
        drive_wrk(addr, w, connections, o.seconds)
    } else {
        gen.block_on(drive(addr, w, connections, o.seconds))
    };
    let (t1, g1, w1) = cpu_split();
    let samples = sampler.finish();
    let server_ticks = (t1 - t0).saturating_sub(g1 - g0);
    let hz = clock_ticks();
    (
        stats,
        server_ticks as f64 / hz,
        w1.saturating_sub(w0) as f64 / hz,
        samples,
    )
}

fn run_bare(gen: &tokio::runtime::Runtime, w: Workload, o: &Opts) -> RunResult {
    let rt = runtime("bare-rt");
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = rt.spawn(bare_serve(listener, rx));
    let (stats, cpu, writer_cpu, samples) = measure(gen, addr, w, o, None);
    let _ = tx.send(());
    let _ = rt.block_on(server);
    rt.shutdown_timeout(Duration::from_secs(1));
    RunResult {
        stats,
        server_cpu_s: cpu,
        writer_cpu_s: writer_cpu,
        peak_rss_kib: status_kib("VmHWM:"),
        samples,
        note: String::new(),
        stored: 0,
    }
}

fn config_text() -> String {
    format!(
        "public_base_url = \"{PUBLIC_BASE}\"\n[providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\n[providers.bitpesa]\napi_key = \"{BP_KEY}\"\napi_secret = \"{BP_SECRET}\"\n[store]\npath = \"payhook.db\"\n"
    )
}

fn run_payhook(gen: &tokio::runtime::Runtime, w: Workload, o: &Opts) -> RunResult {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("payhook.db");
    if w == Workload::Random {
        let cached = prefilled(o.prefill);
        std::fs::copy(&cached, &db).unwrap();
        // On disk before the clock starts: otherwise the kernel writes the 2 GB copy back
        // during the run, and every fsync of the measured daemon queues behind it.
        std::fs::File::open(&db).unwrap().sync_all().unwrap();
    }
    let cfg = payhook::config::Config::from_toml(&config_text(), dir.path()).unwrap();
    let rt = runtime("payhook-rt");
    let ctx = payhook::Ctx::new(cfg).unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(payhook::serve(ctx.clone(), listener, async {
        let _ = rx.await;
    }));
    let rows_before = count(&db, "SELECT count(*) FROM callbacks");
    let (stats, cpu, writer_cpu, samples) =
        measure(gen, addr, w, o, Some(db.with_extension("db-wal")));
    let _ = tx.send(());
    rt.block_on(server).unwrap();
    drop(ctx);
    rt.shutdown_timeout(Duration::from_secs(5));

    // The figures only count if the store holds what was acknowledged.
    let rows = count(&db, "SELECT count(*) FROM callbacks") - rows_before;
    let note = if w == Workload::Storm {
        let deliveries = count(&db, "SELECT coalesce(sum(deliveries), 0) FROM callbacks");
        assert_eq!(rows, 1, "storm: one callback stored");
        assert_eq!(
            deliveries as u64, stats.accepted,
            "storm: every acknowledged delivery counted"
        );
        let transitions = count(&db, "SELECT count(*) FROM transitions");
        assert_eq!(transitions, 1, "storm: applied once");
        format!("stored 1 callback, {deliveries} deliveries, 1 transition")
    } else {
        // wrk stops counting at its deadline with requests still in flight: those may be
        // stored without being counted, never the other way round.
        let in_flight = if o.external { o.connections as u64 } else { 0 };
        assert!(
            rows as u64 >= stats.accepted && rows as u64 <= stats.accepted + in_flight,
            "{}: every acknowledged callback stored ({rows} rows, {} acknowledged)",
            w.name(),
            stats.accepted
        );
        format!(
            "stored {rows} new callbacks; store {} MiB",
            std::fs::metadata(&db).map_or(0, |m| m.len()) >> 20
        )
    };
    RunResult {
        stats,
        server_cpu_s: cpu,
        writer_cpu_s: writer_cpu,
        peak_rss_kib: status_kib("VmHWM:"),
        samples,
        note,
        stored: rows as u64,
    }
}

fn count(db: &Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

// ---------------------------------------------------------------------------------------
// The million-row store

/// Path of a store holding `n` settled payments, built once and cached.
fn prefilled(n: u64) -> PathBuf {
    let schema = hex::encode(&Sha256::digest(include_str!("../schema.sql").as_bytes())[..6]);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench-cache");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("prefill-{n}-{schema}.db"));
    if path.exists() {
        return path;
    }
    if std::env::var_os(PREFILL_CHILD).is_none() {
        // Built in a child process, so that its large SQLite cache does not stay in this
        // process's RSS (glibc keeps freed memory) and skew the measured figures.
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--prefill", &n.to_string()])
            .env(PREFILL_CHILD, "1")
            .status()
            .unwrap();
        assert!(
            status.success() && path.exists(),
            "prefill failed: {status}"
        );
        return path;
    }
    let t0 = Instant::now();
    let tmp = dir.join(format!("prefill-{n}-{schema}.db.partial"));
    let _ = std::fs::remove_file(&tmp);
    // The daemon's own migrations create the schema.
    drop(
        payhook::store::Store::open(&payhook::store::StoreOptions {
            path: tmp.clone(),
            max_size_bytes: None,
        })
        .unwrap(),
    );
    let mut c = rusqlite::Connection::open(&tmp).unwrap();
    // Set-up only: no fsync, a large cache for the random index inserts.
    c.execute_batch("PRAGMA synchronous=OFF; PRAGMA cache_size=-1000000;")
        .unwrap();
    let tx = c.transaction().unwrap();
    {
        let mut txn = tx
            .prepare(
                "INSERT INTO transactions (provider, provider_ref, kind, status, provider_status,
                     amount_minor, currency, merchant_ref, msisdn, receipt, created_at_ms,
                     updated_at_ms, settled_at_ms)
                 VALUES (?1, ?2, ?3, 'SUCCEEDED', ?4, ?5, ?6, ?7, '256772123456', '42026012031',
                         ?8, ?8, ?8)",
            )
            .unwrap();
        let mut cb = tx
            .prepare(
                "INSERT INTO callbacks (provider, kind, dedup_key, auth, signed, body, body_sha256,
                     headers, client_ip, provider_ref, transaction_id, first_seen_at_ms,
                     last_seen_at_ms)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, '196.201.214.200', ?8, ?9, ?10, ?10)",
            )
            .unwrap();
        let mut nonce = tx
            .prepare(
                "INSERT INTO nonces (provider, nonce, body_sha256, callback_id, seen_at_ms)
                 VALUES ('bitpesa', ?1, ?2, ?3, ?4)",
            )
            .unwrap();
        let mut tr = tx
            .prepare(
                "INSERT INTO transitions (transaction_id, seq, outcome, from_status, to_status,
                     source, callback_id, at_ms)
                 VALUES (?1, 1, 'applied', NULL, 'SUCCEEDED', 'callback', ?2, ?3)",
            )
            .unwrap();
        let mut ev = tx
            .prepare(
                "INSERT INTO events (id, transaction_id, transition_id, type, payload, status,
                     attempts, next_attempt_at_ms, created_at_ms, delivered_at_ms, seq)
                 VALUES (?1, ?2, ?3, 'transaction.succeeded', ?4, 'delivered', 1, NULL, ?5, ?5, ?6)",
            )
            .unwrap();
        let mut rng = fastrand::Rng::with_seed(0x0b5e55ed);
        let base_ms: i64 = 1_700_000_000_000;
        for k in 0..n {
            let r = uuid(&mut rng);
            let at = base_ms + k as i64 * 30;
            let zp = k % 2 == 0;
            let (provider, kind, body, dedup, auth, pstatus, amount, currency) = if zp {
                let body = zp_body(&r, 1000 + k % 90_000);
                let dedup = format!("collection.success:{r}");
                (
                    "zengapay",
                    "collection.success",
                    body,
                    dedup,
                    "hmac-sha256:raw-body",
                    "SUCCEEDED",
                    (1000 + k % 90_000) as i64,
                    "UGX",
                )
            } else {
                let body = bp_body(&r, 1000 + k % 90_000);
                let dedup = format!("transaction.paid_out:{r}:paid_out");
                (
                    "bitpesa",
                    "transaction.paid_out",
                    body,
                    dedup,
                    "hmac-sha512",
                    "paid_out",
                    (1000 + k % 90_000) as i64 * 100,
                    "KES",
                )
            };
            let sha = hex::encode(Sha256::digest(body.as_bytes()));
            let txn_kind = if zp { "collection" } else { "transfer" };
            txn.execute(rusqlite::params![
                provider,
                r,
                txn_kind,
                pstatus,
                amount,
                currency,
                format!("INV-{r}"),
                at
            ])
            .unwrap();
            let txn_id = tx.last_insert_rowid();
            let headers = r#"{"host":"hooks.example.com","content-type":"application/json","user-agent":"provider-webhooks/1.0"}"#;
            cb.execute(rusqlite::params![
                provider,
                kind,
                dedup,
                auth,
                body.as_bytes(),
                sha,
                headers,
                r,
                txn_id,
                at
            ])
            .unwrap();
            let cb_id = tx.last_insert_rowid();
            if !zp {
                nonce
                    .execute(rusqlite::params![uuid(&mut rng), sha, cb_id, at])
                    .unwrap();
            }
            tr.execute(rusqlite::params![txn_id, cb_id, at]).unwrap();
            let tr_id = tx.last_insert_rowid();
            let pid: payhook::providers::ProviderId = provider.parse().unwrap();
            let event_id = payhook::store::transactions::event_id(txn_id, pid, &r, 1);
            let payload = format!(
                r#"{{"id":"{event_id}","type":"transaction.succeeded","data":{{"provider":"{provider}","provider_ref":"{r}","merchant_ref":"INV-{r}","status":"SUCCEEDED","amount_minor":{amount},"currency":"{currency}","transition_seq":1}}}}"#
            );
            ev.execute(rusqlite::params![
                event_id,
                txn_id,
                tr_id,
                payload,
                at,
                k as i64 + 1
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    drop(c);
    for ext in ["db.partial-wal", "db.partial-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("prefill-{n}-{schema}.{ext}")));
    }
    std::fs::rename(&tmp, &path).unwrap();
    eprintln!(
        "prefilled {n} payments into {} in {:.1} s",
        path.display(),
        t0.elapsed().as_secs_f64()
    );
    path
}

// ---------------------------------------------------------------------------------------
// Report

fn line(name: &str, r: &RunResult) {
    let s = &r.stats;
    let rate = rate(r);
    let per = r.stored.max(s.accepted).max(1) as f64;
    let cpu_us = r.server_cpu_s * 1e6 / per;
    let writer_us = r.writer_cpu_s * 1e6 / per;
    let wal_max = r.samples.iter().map(|x| x.2).max().unwrap_or(0);
    println!(
        "  {name:<8} {rate:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  cpu {:>6.1} µs/cb (writer {:>5.1})  peak RSS {:>4} MiB  WAL max {:>5} KiB  non-2xx {}  broken {}  {}",
        s.p50_us as f64 / 1000.0,
        s.p99_us as f64 / 1000.0,
        s.max_us as f64 / 1000.0,
        cpu_us,
        writer_us,
        r.peak_rss_kib >> 10,
        wal_max >> 10,
        s.refused,
        s.broken,
        r.note
    );
}

fn main() {
    let o = parse_opts();
    if std::env::var_os(PREFILL_CHILD).is_some() {
        prefilled(o.prefill);
        return;
    }
    // Log as the daemon does (info), into a sink: formatting is counted, terminals are not.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .with_ansi(false)
        .with_target(false)
        .try_init();
    println!(
        "payhook ingest bench: {} connections (storm {STORM_CONNECTIONS}), {} s per run, prefill {} rows, {} cores{}",
        o.connections,
        o.seconds,
        o.prefill,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if o.smoke { " [smoke]" } else { "" }
    );
    let gen = runtime("gen-rt");
    let mut rows = Vec::new();
    for &w in &o.workloads {
        if w == Workload::Random {
            // Build (or find) the prefilled store before timing anything.
            prefilled(o.prefill);
        }
        println!("{}:", w.name());
        let bare_opts = Opts {
            seconds: o.bare_seconds.unwrap_or(o.seconds),
            ..o.clone()
        };
        // The bare server runs before and after payhook, and the ratio divides by the mean
        // of the two: this machine's speed can change by a fifth within minutes (or the
        // order of the runs may matter), and a single bare run before payhook tilts the
        // ratio by whatever changed meanwhile.
        let bare = run_bare(&gen, w, &bare_opts);
        line("bare", &bare);
        let ph = run_payhook(&gen, w, &o);
        line("payhook", &ph);
        let bare_after = run_bare(&gen, w, &bare_opts);
        line("bare", &bare_after);
        assert!(
            bare.stats.accepted > 0 && ph.stats.accepted > 0 && bare_after.stats.accepted > 0,
            "{}: nothing was accepted",
            w.name()
        );
        let bare_rate = (rate(&bare) + rate(&bare_after)) / 2.0;
        let ratio = rate(&ph) / bare_rate;
        println!("  ratio    {ratio:.2} of the bare server's mean {bare_rate:.0}/s");
        rows.push(readme_row(w, &o, &ph, bare_rate, ratio));
        if o.seconds >= 5.0 {
            // RSS and WAL over time (in a sustained run they must stay flat).
            let every = (ph.samples.len() / 10).max(1);
            for (t, rss, wal) in ph.samples.iter().step_by(every) {
                println!(
                    "    t={t:>6.0}s  RSS {:>5} MiB  WAL {:>6} KiB",
                    rss >> 10,
                    wal >> 10
                );
            }
        }
        assert_eq!(
            ph.stats.refused + ph.stats.broken,
            0,
            "{}: payhook refused or broke requests",
            w.name()
        );
    }
    println!(
        "\nREADME rows ({}):",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    for r in rows {
        println!("{r}");
    }
}

/// Accepted requests per second of a run.
fn rate(r: &RunResult) -> f64 {
    r.stats.accepted as f64 / r.stats.elapsed.as_secs_f64()
}

/// One row of the README's figures table; `bare_rate` is the mean of the bare server's
/// runs before and after payhook's.
fn readme_row(w: Workload, o: &Opts, ph: &RunResult, bare_rate: f64, ratio: f64) -> String {
    let name = match w {
        Workload::Ordered => "ordered, empty store".to_string(),
        Workload::Random => format!("random, {}-row store", o.prefill),
        Workload::Storm => format!("duplicate storm, {STORM_CONNECTIONS} connections"),
    };
    format!(
        "| {name} ({} s) | {:.0} | {:.1} ms | {:.1} ms | {:.0} ms | {:.0} | {ratio:.2} | {:.0} µs ({:.0} µs) | {} MiB |",
        o.seconds,
        rate(ph),
        ph.stats.p50_us as f64 / 1000.0,
        ph.stats.p99_us as f64 / 1000.0,
        ph.stats.max_us as f64 / 1000.0,
        bare_rate,
        ph.server_cpu_s * 1e6 / ph.stored.max(ph.stats.accepted).max(1) as f64,
        ph.writer_cpu_s * 1e6 / ph.stored.max(ph.stats.accepted).max(1) as f64,
        ph.peak_rss_kib >> 10,
    )
}
