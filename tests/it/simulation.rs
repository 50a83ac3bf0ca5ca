//! The convergence simulation.
//!
//! A seeded scenario of many payments at ZengaPay, TransferZero (BitPesa), Daraja (STK
//! push, whose unsigned success callbacks wait for a confirming STK query) and Jenga (IPNs
//! with Basic credentials, RSA-signed details queries), driven through the real daemon.
//! Every payment has a simulated truth (SUCCEEDED, FAILED, still open when its deadline
//! comes, or decided only after it and then reported by callback) and a timeline of
//! intermediate provider states.
//! The providers' callbacks are signed correctly and each copy may be lost, duplicated
//! (BitPesa retries with the same nonce or a new one), delayed and so reordered. A fake
//! status API answers the reconciler according to the same timeline, with faults drawn
//! per poll: 429 with `Retry-After`, 503, 404 right after initiation, slow answers,
//! answers slower than the request timeout, and "still processing" a few times after the
//! outcome. Some payments are registered through `POST /v1/transactions` (as the
//! merchant's application would), so that the ones whose callbacks are all lost are
//! known; the others are learned from their callbacks. A fake merchant receives the
//! forwarded events and refuses some deliveries, so retries happen.
//!
//! Time is simulated: the test calls `reconcile::step_at` and `forward::step` with a clock
//! it moves to the next thing due (a callback, a poll, a delivery retry, a deadline), so
//! hours of provider behaviour take seconds and nothing sleeps to wait for background work.
//! The simulated clock starts at the real one and never falls behind it, so rows created
//! by callbacks (stamped with the real clock) get deadlines no earlier than the ones
//! registered at the start.
//!
//! Some registered payments are registered with another amount than the provider's (the
//! merchant's mistake): they must end in review. Half-way through, the daemon restarts on
//! the same database. Once everything has settled, forged but well-formed ZengaPay reports
//! arrive: a captured field signature reused under other event names and with another
//! order.
//!
//! Checks at the end: (a) every payment's stored status is its truth (open ones are
//! NEEDS_REVIEW, never FAILED; late ones NEEDS_REVIEW and then their outcome; amount
//! mismatches NEEDS_REVIEW with `AMOUNT_MISMATCH`); (b) every FAILED came from a definitive
//! provider answer (a failure callback the test sent, or a poll the fake API itself counted
//! as answering a failure), no failed poll changed a status, and no conflict came from
//! anything but a forgery; (c) the merchant received exactly one distinct event id per
//! settled transition, each signed, every one delivered, and what it received (types in
//! order, status, amount, currency, order) is each payment's truth, with no value only a
//! forgery stated; (d) every callback delivered n times is stored once with
//! `deliveries = n`, and every forgery is stored as unsigned and changed nothing.
//!
//! A second test runs a seeded subset through the daemon's own loops (`reconcile::run`,
//! `forward::run`) on the real clock, with the same checks on what the merchant received.
//!
//! The scenario is fixed by `PAYHOOK_SIM_SEED` (default [`SEED`]) and its size by
//! `PAYHOOK_SIM_PAYMENTS` (default [`CI_PAYMENTS`]; full mode is thousands):
//! `PAYHOOK_SIM_PAYMENTS=3000 cargo test --test it simulation -- --nocapture` (1 to 2 minutes).
//! The seed fixes the payments, callbacks and fault draws; the interleaving of concurrent
//! polls and the reconciler's schedule jitter are not seeded, and the checks hold for any.

use crate::support::fake_merchant::{Answer, FakeMerchant, Received};
use crate::support::http::{post, request};
use crate::support::sign::{bp_sign, zp_body, zp_sign, BP_KEY, BP_SECRET, BP_URL, ZP_SECRET};
use crate::support::TestDaemon;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use payhook::clock::now_ms;
use payhook::config::Config;
use payhook::{forward, reconcile, Ctx};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// Default seed: the CI run is the same scenario every time.
const SEED: u64 = 0x5eed_2026_0006;
/// Default payment count: a few seconds in a debug build.
const CI_PAYMENTS: usize = 200;
const MIN: i64 = 60_000;
/// `poll_deadline` of every provider. Every decided outcome happens within
/// [`LAST_OUTCOME`], leaving hours of polling (at most every [`POLL_MAX`]) before it.
const DEADLINE: i64 = 6 * 60 * MIN;
const LAST_OUTCOME: i64 = 90 * MIN;
const POLL_MAX: &str = "10m";
/// Longest a callback copy is delayed.
const MAX_CALLBACK_DELAY: i64 = 40 * MIN;
/// Bounds on the driving loop (a guard against a daemon that never settles): late outcomes
/// arrive by [`DEADLINE`] + 90 + 40 minutes, and every delivery retry is due well within
/// the margin after that.
const MAX_TICKS: usize = 5_000;
const MAX_SIMULATED: i64 = DEADLINE + 4 * 60 * MIN;
const MAX_STEPS_PER_TICK: usize = 2_000;
/// `[reconciler] request_timeout`, and the fake's hang that exceeds it.
const REQUEST_TIMEOUT: &str = "150ms";
const HANG: Duration = Duration::from_millis(250);
/// Smallest step of the simulated clock: polls due within a minute of each other are made
/// in one tick (the first poll comes a minute in, so nothing is skipped).
const TICK: i64 = MIN;
const ADMIN_TOKEN: &str = "sim-admin-token-0123456789";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DARAJA_TOKEN: &str = "sim-daraja-path-token-0123456789";

/// splitmix64: a tiny deterministic generator, so the scenario needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below(u64::try_from(hi - lo).unwrap_or(1)) as i64
    }
}

/// A draw that depends only on its inputs: the fake's fault for poll `n` of payment `i`
/// is the same whatever order the polls arrive in.
fn draw(seed: u64, i: usize, n: u32) -> Rng {
    let mut r = Rng(seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d) ^ u64::from(n) << 48);
    r.next();
    r
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prov {
    Zp,
    Bp,
    /// Daraja M-Pesa Express (STK push): unsigned callbacks on a path token, so a success
    /// callback is held until the STK query confirms it.
    Da,
    /// Equity Jenga: IPNs with Basic credentials, transaction details queries RSA-signed.
    Je,
}

impl Prov {
    fn name(self) -> &'static str {
        match self {
            Prov::Zp => "zengapay",
            Prov::Bp => "bitpesa",
            Prov::Da => "daraja",
            Prov::Je => "jenga",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    Succeeded,
    Failed,
    /// Never decided: still open at the deadline.
    Open,
    /// Decided only after the deadline (escalated to NEEDS_REVIEW first), and reported by
    /// a callback, since NEEDS_REVIEW rows are no longer polled (except to confirm a
    /// success an unsigned Daraja callback reported, which is held until then).
    LateSucceeded,
    LateFailed,
}

impl Payment {
    /// What the store must end with.
    fn expected(&self) -> &'static str {
        if self.mismatch {
            return "NEEDS_REVIEW";
        }
        match self.truth {
            Truth::Succeeded | Truth::LateSucceeded => "SUCCEEDED",
            Truth::Failed | Truth::LateFailed => "FAILED",
            Truth::Open => "NEEDS_REVIEW",
        }
    }

    /// The merchant's events for this payment, in order.
    fn expected_events(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.mismatch {
            // The provider's amount contradicts the registered one: reviewed, once.
            return vec!["transaction.needs_review".to_string()];
        }
        if matches!(
            self.truth,
            Truth::Open | Truth::LateSucceeded | Truth::LateFailed
        ) {
            out.push("transaction.needs_review".to_string());
        }
        if self.expected() != "NEEDS_REVIEW" {
            out.push(format!("transaction.{}", self.expected().to_lowercase()));
        }
        out
    }
}

/// One simulated payment.
#[derive(Debug)]
struct Payment {
    prov: Prov,
    reference: String,
    /// As the provider writes it: ZengaPay whole UGX, TransferZero KES with two decimals.
    amount: String,
    truth: Truth,
    /// Intermediate provider words and when (ms after the start) each began; the first at 0.
    chain: Vec<(i64, &'static str)>,
    /// When the outcome happened (`i64::MAX` for an open payment).
    outcome_at: i64,
    /// The provider's word for the outcome.
    outcome_word: &'static str,
    /// Successful status answers after the outcome that still give the last intermediate
    /// word ("still processing").
    lag: u32,
    registered: bool,
    /// Registered with another amount than the provider's (one more unit): the success
    /// must go to review, never settle, and the merchant never hear the registered amount.
    mismatch: bool,
}

impl Payment {
    /// The amount in minor units and its currency, as the provider states them.
    fn money(&self) -> (i64, &'static str) {
        match self.prov {
            Prov::Zp => (self.amount.parse().unwrap(), "UGX"),
            Prov::Bp => {
                let (units, cents) = self.amount.split_once('.').unwrap();
                (
                    units.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap(),
                    "KES",
                )
            }
            Prov::Da | Prov::Je => (self.amount.parse::<i64>().unwrap() * 100, "KES"),
        }
    }

    /// The provider's word at `offset` ms after the start, before any lag.
    fn word_at(&self, offset: i64) -> &'static str {
        if offset >= self.outcome_at {
            return self.outcome_word;
        }
        self.last_word_before(offset)
    }
    fn last_word_before(&self, offset: i64) -> &'static str {
        self.chain
            .iter()
            .rev()
            .find(|(at, _)| *at <= offset)
            .map_or(self.chain[0].1, |(_, w)| *w)
    }
}

/// One copy of a callback on its way to the daemon.
#[derive(Debug, Clone)]
struct Copy {
    /// When it arrives, ms after the start.
    at: i64,
    /// Index into the distinct callbacks.
    callback: usize,
    /// TransferZero's request nonce (a retry may reuse it).
    nonce: Option<String>,
}

/// One distinct callback the providers emitted.
#[derive(Debug)]
struct Callback {
    prov: Prov,
    body: String,
    /// Copies that reach the daemon.
    sent: usize,
}

struct Scenario {
    payments: Vec<Payment>,
    callbacks: Vec<Callback>,
    copies: Vec<Copy>,
    emitted: usize,
    lost: usize,
    duplicated: usize,
}

fn zp_word(status: &str) -> &'static str {
    match status {
        "PENDING" => "PENDING",
        "INDETERMINATE" => "INDETERMINATE",
        "SUCCEEDED" => "SUCCEEDED",
        _ => "FAILED",
    }
}

/// TransferZero's webhook event for entering `state`, if it sends one.
fn bp_event(state: &str) -> Option<&'static str> {
    match state {
        "initial" => Some("transaction.created"),
        "received" => Some("transaction.paid_in"),
        "paid" => Some("transaction.paid_out"),
        "canceled" => Some("transaction.canceled"),
        _ => None,
    }
}

fn bp_object(p: &Payment, state: &str) -> serde_json::Value {
    serde_json::json!({"id": p.reference, "state": state, "input_amount": p.amount,
        "input_currency": "KES", "external_id": format!("order-{}", p.reference)})
}

/// A Jenga IPN for outcome `state_code` (2 success, 1 failure).
fn jenga_ipn(p: &Payment, state_code: &str) -> String {
    let status = if state_code == "2" {
        "SUCCESS"
    } else {
        "FAILED"
    };
    serde_json::json!({"callbackType": "IPN",
        "customer": {"name": "Sim Payer", "mobileNumber": "254712345678", "reference": "071648816466242"},
        "transaction": {"date": "2026-11-23 06:45:00", "reference": p.reference,
            "paymentMode": "MPESA", "amount": p.amount.parse::<i64>().unwrap(), "currency": "KES",
            "billNumber": format!("order-{}", p.reference), "servedBy": "EQ", "status": status,
            "remarks": if status == "SUCCESS" { "00:Approved" } else { "51:Declined" }},
        "bank": {"reference": p.reference, "transactionType": "C", "account": null}})
    .to_string()
}

/// Jenga's transaction details answer for `word`.
fn jenga_details(p: &Payment, word: &str) -> String {
    let (state_code, code) = match word {
        "400105" => (1, 400_105),
        other => (other.parse::<i64>().unwrap(), 0),
    };
    serde_json::json!({"status": true, "code": 0, "message": "success", "data": {
        "state": "x", "stateCode": state_code, "code": code, "amount": p.amount,
        "transactionReference": p.reference}})
    .to_string()
}

/// A Daraja STK callback with `code` as its ResultCode.
fn stk_callback(p: &Payment, code: &str) -> String {
    let result: i64 = code.parse().unwrap();
    let mut cb = serde_json::json!({"MerchantRequestID": format!("m-{}", p.reference),
        "CheckoutRequestID": p.reference, "ResultCode": result,
        "ResultDesc": if result == 0 { "The service request is processed successfully." } else { "Request cancelled by user" }});
    if result == 0 {
        cb["CallbackMetadata"] = serde_json::json!({"Item": [
            {"Name": "Amount", "Value": p.amount.parse::<i64>().unwrap()},
            {"Name": "MpesaReceiptNumber", "Value": format!("R{}", &p.reference[6..])},
            {"Name": "TransactionDate", "Value": 20_261_123_064_500_i64},
            {"Name": "PhoneNumber", "Value": 254_708_374_149_i64}]});
    }
    serde_json::json!({"Body": {"stkCallback": cb}}).to_string()
}

/// The STK query's answer for `word`: "being processed" is a 500 with an error code
/// (Daraja's STK query), a result is a 200 with its ResultCode.
fn stk_query_answer(p: &Payment, word: &str) -> (u16, String) {
    if word == "processing" {
        return (
            500,
            serde_json::json!({"requestId": p.reference, "errorCode": "500.001.1001",
                "errorMessage": "The transaction is being processed"})
            .to_string(),
        );
    }
    (
        200,
        serde_json::json!({"ResponseCode": "0", "ResponseDescription": "accepted",
            "MerchantRequestID": format!("m-{}", p.reference), "CheckoutRequestID": p.reference,
            "ResultCode": word, "ResultDesc": "processed"})
        .to_string(),
    )
}

fn scenario(seed: u64, n: usize) -> Scenario {
    let mut rng = Rng(seed);
    let mut s = Scenario {
        payments: Vec::new(),
        callbacks: Vec::new(),
        copies: Vec::new(),
        emitted: 0,
        lost: 0,
        duplicated: 0,
    };
    for i in 0..n {
        let prov = match rng.below(100) {
            0..=34 => Prov::Zp,
            35..=64 => Prov::Bp,
            65..=84 => Prov::Da,
            _ => Prov::Je,
        };
        let truth = match rng.below(100) {
            0..=59 => Truth::Succeeded,
            60..=84 => Truth::Failed,
            85..=93 => Truth::Open,
            94..=97 => Truth::LateSucceeded,
            _ => Truth::LateFailed,
        };
        let outcome_at = match truth {
            Truth::Open => i64::MAX,
            Truth::LateSucceeded | Truth::LateFailed => {
                rng.range(DEADLINE + 30 * MIN, DEADLINE + 90 * MIN)
            }
            _ => rng.range(MIN / 2, LAST_OUTCOME),
        };
        let late = matches!(truth, Truth::LateSucceeded | Truth::LateFailed);
        let horizon = outcome_at.min(LAST_OUTCOME);
        let mut chain = vec![(
            0,
            match prov {
                Prov::Zp => "PENDING",
                Prov::Bp => "initial",
                Prov::Da => "processing",
                Prov::Je => "-1",
            },
        )];
        let steps = rng.below(4);
        let mut at = 0;
        for _ in 0..steps {
            at = rng.range(at + 1, horizon.max(at + 2));
            if at >= horizon {
                break;
            }
            let word = match prov {
                Prov::Zp => ["PENDING", "INDETERMINATE"][rng.below(2) as usize],
                Prov::Bp => ["approved", "pending", "processing", "received", "manual"]
                    [rng.below(5) as usize],
                // The STK query only ever says "being processed" before the result.
                Prov::Da => "processing",
                // stateCode -1 "awaiting callback", or 1 with code 400105 ("unknown status,
                // contact Finserve"), which is INDETERMINATE.
                Prov::Je => ["-1", "400105"][rng.below(2) as usize],
            };
            chain.push((at, word));
        }
        let outcome_word = match (prov, truth) {
            (_, Truth::LateSucceeded) => match prov {
                Prov::Zp => "SUCCEEDED",
                Prov::Bp => "paid",
                Prov::Da => "0",
                Prov::Je => "2",
            },
            (Prov::Zp, Truth::Succeeded) => "SUCCEEDED",
            (Prov::Zp, _) => "FAILED",
            (Prov::Bp, Truth::Succeeded) => "paid",
            (Prov::Bp, _) => "canceled",
            (Prov::Da, Truth::Succeeded) => "0",
            // Cancelled by the user, wrong PIN, timeout (Daraja's STK result codes).
            (Prov::Da, _) => ["1032", "2001", "1037"][rng.below(3) as usize],
            (Prov::Je, Truth::Succeeded) => "2",
            (Prov::Je, _) => "1",
        };
        let amount = match prov {
            Prov::Zp | Prov::Da | Prov::Je => format!("{}", rng.range(500, 500_000)),
            Prov::Bp => {
                let cents = rng.range(100, 5_000_000);
                format!("{}.{:02}", cents / 100, cents % 100)
            }
        };
        let p = Payment {
            prov,
            reference: match prov {
                Prov::Da => format!("ws_CO_sim{i:05}"),
                Prov::Je => format!("3284{i:08}"),
                // ZengaPay's references are UUIDs (a field signature needs one).
                Prov::Zp => format!("5151{i:04x}-0000-4000-8000-{i:012x}"),
                _ => format!("sim-{}-{i:05}", prov.name()),
            },
            amount,
            truth,
            chain,
            outcome_at,
            outcome_word,
            lag: rng.below(3) as u32,
            registered: false,
            mismatch: false,
        };
        // What the provider calls back about: ZengaPay and Daraja only outcomes (no event
        // exists for PENDING); TransferZero the states it has an event for.
        let mut words: Vec<(i64, &'static str)> = Vec::new();
        match prov {
            Prov::Zp | Prov::Da | Prov::Je => {}
            Prov::Bp => words.extend(p.chain.iter().filter(|(_, w)| bp_event(w).is_some())),
        }
        if truth != Truth::Open {
            words.push((outcome_at, outcome_word));
        }
        let mut delivered = 0;
        for (at, word) in words {
            s.emitted += 1;
            // A late outcome is only ever learned from its callback: that one arrives.
            let lost = rng.chance(30) && !(late && at == outcome_at);
            if lost {
                s.lost += 1;
                continue;
            }
            let body = match prov {
                Prov::Zp => zp_body(&p.reference, zp_word(word), &p.amount),
                Prov::Bp => serde_json::json!({"webhook": "wh-sim",
                    "event": bp_event(word).unwrap_or("transaction.updated"),
                    "object": bp_object(&p, word)})
                .to_string(),
                Prov::Da => stk_callback(&p, word),
                Prov::Je => jenga_ipn(&p, word),
            };
            let callback = s.callbacks.len();
            let copies = if rng.chance(25) {
                s.duplicated += 1;
                2 + rng.below(2) as usize
            } else {
                1
            };
            let first_nonce = format!("nonce-{i}-{callback}-0");
            for c in 0..copies {
                let nonce = match prov {
                    Prov::Zp | Prov::Da | Prov::Je => None,
                    // A retry reuses the request's nonce, or signs afresh.
                    Prov::Bp if c > 0 && rng.chance(50) => Some(first_nonce.clone()),
                    Prov::Bp => Some(format!("nonce-{i}-{callback}-{c}")),
                };
                s.copies.push(Copy {
                    at: at + rng.range(0, MAX_CALLBACK_DELAY),
                    callback,
                    nonce,
                });
            }
            s.callbacks.push(Callback {
                prov,
                body,
                sent: copies,
            });
            delivered += 1;
        }
        // Late payments are registered, so that their deadline is the start's.
        let registered = delivered == 0 || late || rng.chance(60);
        let mismatch = registered
            && truth == Truth::Succeeded
            && matches!(prov, Prov::Zp | Prov::Bp)
            && rng.chance(25);
        s.payments.push(Payment {
            registered,
            mismatch,
            ..p
        });
    }
    s.copies.sort_by_key(|c| c.at);
    s
}

/// The fake status API of both providers (their paths differ), answering from the
/// payments' timelines at the simulated time.
struct FakeApi {
    seed: u64,
    /// Draw faults (the simulation) or always answer from the timeline.
    faulty: bool,
    t0: i64,
    /// The simulated now, set by the driving loop before each step.
    now: AtomicI64,
    by_ref: HashMap<String, usize>,
    payments: Vec<Payment>,
    /// Requests per payment, and successful answers after the outcome per payment.
    polls: Vec<AtomicU32>,
    late_answers: Vec<AtomicU32>,
    /// Answers per payment that stated its failure outcome: what check (b) trusts, rather
    /// than the daemon's own record of what it was told.
    failure_answers: Vec<AtomicU32>,
    count: BTreeMap<&'static str, AtomicU64>,
}

const FAULTS: [&str; 8] = [
    "ok", "429", "503", "404", "slow", "timeout", "unknown", "token",
];

impl FakeApi {
    fn tally(&self, what: &'static str) {
        if let Some(c) = self.count.get(what) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn counted(&self, what: &str) -> u64 {
        self.count
            .get(what)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        if path == "/authentication/api/v3/authenticate/merchant" {
            self.tally("token");
            return reply(
                200,
                r#"{"accessToken":"sim-jenga-bearer","expiresIn":3600}"#.into(),
                None,
            );
        }
        if path == "/oauth/v1/generate" {
            self.tally("token");
            return reply(
                200,
                r#"{"access_token":"sim-daraja-bearer","expires_in":"3599"}"#.into(),
                None,
            );
        }
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let reference = match path.as_str() {
            "/mpesa/stkpushquery/v1/query" => serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|b| b["CheckoutRequestID"].as_str().map(str::to_string))
                .unwrap_or_default(),
            _ => path
                .strip_prefix("/v1/collections/")
                .or_else(|| path.strip_prefix("/v1/transactions/"))
                .or_else(|| {
                    path.strip_prefix("/v3-apis/transaction-api/v3.0/transactions/details/")
                })
                .unwrap_or_default()
                .to_string(),
        };
        let Some(&i) = self.by_ref.get(&reference) else {
            self.tally("unknown");
            return reply(404, "{}".into(), None);
        };
        let p = &self.payments[i];
        let offset = self.now.load(Ordering::SeqCst) - self.t0;
        let n = self.polls[i].fetch_add(1, Ordering::SeqCst);
        let mut r = draw(self.seed, i, n);
        let fault = if self.faulty { r.below(100) } else { 99 };
        if fault < 8 {
            self.tally("429");
            let secs = r.range(30, 600).to_string();
            return reply(429, "{}".into(), Some(secs));
        }
        if fault < 12 {
            self.tally("503");
            return reply(503, "{}".into(), None);
        }
        // "Not found" shortly after initiation is not a failure.
        if fault < 25 && offset < 5 * MIN {
            self.tally("404");
            return reply(404, r#"{"code":404}"#.into(), None);
        }
        if fault < 13 {
            // payhook gives up first; what comes after is never read, so it uses up
            // nothing of the timeline (no "still processing" answer is spent on it).
            self.tally("timeout");
            tokio::time::sleep(HANG).await;
            return reply(504, "{}".into(), None);
        }
        if fault < 20 {
            self.tally("slow");
            tokio::time::sleep(Duration::from_millis(r.range(5, 30) as u64)).await;
        } else {
            self.tally("ok");
        }
        let mut word = p.word_at(offset);
        if offset >= p.outcome_at && self.late_answers[i].fetch_add(1, Ordering::SeqCst) < p.lag {
            word = p.last_word_before(p.outcome_at);
        }
        if word == p.outcome_word && matches!(p.truth, Truth::Failed | Truth::LateFailed) {
            self.failure_answers[i].fetch_add(1, Ordering::SeqCst);
        }
        let body = match p.prov {
            Prov::Zp => format!(
                r#"{{"code":200,"status":"OK","data":{{"transactionReference":"{}","transactionStatus":"{word}","amount":{},"currencyCode":"UGX-MTNMM","transactionExternalReference":"order-{}","transactionCompletionDate":"0000-00-00 00:00:00"}}}}"#,
                p.reference, p.amount, p.reference
            ),
            Prov::Bp => serde_json::json!({"object": bp_object(p, word)}).to_string(),
            Prov::Da => {
                let (status, body) = stk_query_answer(p, word);
                return reply(status, body, None);
            }
            Prov::Je => jenga_details(p, word),
        };
        reply(200, body, None)
    }
}

fn reply(status: u16, body: String, retry_after: Option<String>) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(v) = retry_after {
        b = b.header("retry-after", v);
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

async fn start_api(api: Arc<FakeApi>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let api = api.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(api.answer(req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Sends one callback copy, signed as its provider signs; the daemon must acknowledge it.
async fn send(addr: SocketAddr, cb: &Callback, nonce: Option<&str>) {
    let body = cb.body.as_bytes();
    let reply = match cb.prov {
        Prov::Zp => {
            let sig = zp_sign(ZP_SECRET, body);
            post(
                addr,
                "/callbacks/zengapay",
                &[("X-ZENGAPAY-SIGNATURE", &sig)],
                body,
            )
            .await
        }
        Prov::Bp => {
            let nonce = nonce.unwrap_or_default();
            let sig = bp_sign(BP_SECRET, nonce, BP_URL, body);
            post(
                addr,
                "/callbacks/bitpesa",
                &[
                    ("Authorization-Key", BP_KEY),
                    ("Authorization-Nonce", nonce),
                    ("Authorization-Signature", &sig),
                ],
                body,
            )
            .await
        }
        Prov::Da => {
            post(
                addr,
                &format!("/callbacks/daraja/{DARAJA_TOKEN}"),
                &[],
                body,
            )
            .await
        }
        // ipnuser:ipnpass
        Prov::Je => {
            post(
                addr,
                "/callbacks/jenga",
                &[("Authorization", "Basic aXBudXNlcjppcG5wYXNz")],
                body,
            )
            .await
        }
    };
    assert_eq!(reply.status, 200, "callback refused: {}", reply.body);
}

/// Forged but well-formed reports about every settled ZengaPay payment, made from what an
/// eavesdropper holds: a callback's field signature (reference + MSISDN + amount), which
/// fits any body with those three fields. Each is sent under another event name with the
/// opposite outcome, and under the outcome's own event name with another order; both name
/// a different order. Returns how many were sent. They must change no status, amount or
/// order, and nothing they say may reach the merchant.
async fn forge(addr: SocketAddr, payments: &[Payment]) -> usize {
    let mut sent = 0;
    // Not the payments in review for an amount mismatch: a forgery under their key
    // would only restate the review (with its own reason), which check (a) cannot tell.
    for p in payments
        .iter()
        .filter(|p| p.prov == Prov::Zp && !p.mismatch)
    {
        let (own, opposite) = match p.truth {
            Truth::Succeeded | Truth::LateSucceeded => (
                ("collection.success", "SUCCEEDED"),
                ("collection.failed", "FAILED"),
            ),
            Truth::Failed | Truth::LateFailed => (
                ("collection.failed", "FAILED"),
                ("collection.success", "SUCCEEDED"),
            ),
            Truth::Open => continue,
        };
        let sig = zp_sign(
            ZP_SECRET,
            format!("{}256772000001{}", p.reference, p.amount).as_bytes(),
        );
        for (event, status) in [opposite, own, ("transfer.failed", "FAILED")] {
            let body = serde_json::json!({"event": event, "data": {
                "transactionStatus": status, "transactionReference": p.reference,
                "transactionExternalReference": "order-FORGED", "currencyCode": "KES-MPESA",
                "amount": p.amount, "msisdn": "256772000001"}})
            .to_string();
            let reply = post(
                addr,
                "/callbacks/zengapay",
                &[("X-ZENGAPAY-SIGNATURE", &sig)],
                body.as_bytes(),
            )
            .await;
            assert_eq!(reply.status, 200, "a field-signed body: {}", reply.body);
            sent += 1;
        }
    }
    sent
}

/// Registers a payment as the merchant's application does.
async fn register(admin: SocketAddr, p: &Payment) {
    let body = match p.prov {
        Prov::Zp | Prov::Bp => {
            let (kind, currency) = match p.prov {
                Prov::Zp => ("collection", "UGX"),
                _ => ("transfer", "KES"),
            };
            // One unit more than the provider's amount, when the scenario says so.
            let amount = match (p.mismatch, p.amount.split_once('.')) {
                (false, _) => p.amount.clone(),
                (true, None) => (p.amount.parse::<i64>().unwrap() + 1).to_string(),
                (true, Some((units, cents))) => {
                    format!("{}.{cents}", units.parse::<i64>().unwrap() + 1)
                }
            };
            serde_json::json!({"provider": p.prov.name(), "provider_ref": p.reference,
                "kind": kind, "amount": amount, "currency": currency,
                "merchant_ref": format!("order-{}", p.reference)})
        }
        // The STK push answer gives the CheckoutRequestID; the amount is the merchant's.
        Prov::Da | Prov::Je => serde_json::json!({"provider": p.prov.name(),
            "provider_ref": p.reference, "kind": if p.prov == Prov::Da { "stk" } else { "ipn" },
            "merchant_ref": format!("order-{}", p.reference)}),
    }
    .to_string();
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let r = request(
        admin,
        "POST",
        "/v1/transactions",
        &[("Authorization", &auth)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "registration refused: {}", r.body);
}

/// What the merchant received, read from the deliveries themselves (one body per event
/// id), agrees with each payment's truth: the events' types in order, their status, and
/// every amount, currency and merchant reference they carry is the provider's. Conflict
/// events may come only from forgeries, and carry the payment's true status.
fn assert_received_matches_truth(payments: &[Payment], by_id: &BTreeMap<String, Bytes>) {
    let mut received_by_payment: HashMap<(String, String), Vec<serde_json::Value>> = HashMap::new();
    for body in by_id.values() {
        let e: serde_json::Value = serde_json::from_slice(body).unwrap();
        let key = (
            e["data"]["provider"].as_str().unwrap().to_string(),
            e["data"]["provider_ref"].as_str().unwrap().to_string(),
        );
        received_by_payment.entry(key).or_default().push(e);
    }
    for p in payments {
        let mut got = received_by_payment
            .remove(&(p.prov.name().to_string(), p.reference.clone()))
            .unwrap_or_default();
        got.sort_by_key(|e| e["data"]["transition_seq"].as_i64().unwrap());
        // A forgery's dispute: told as a conflict, the payment's truth unchanged in it.
        for e in got.iter().filter(|e| e["type"] == "transaction.conflict") {
            assert_eq!(p.prov, Prov::Zp, "only forgeries conflict: {e}");
            assert_eq!(e["data"]["status"].as_str(), Some(p.expected()), "{e}");
        }
        got.retain(|e| e["type"] != "transaction.conflict");
        let types: Vec<&str> = got.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            p.expected_events(),
            "{}: what the merchant received ({:?})",
            p.reference,
            p.truth
        );
        let (minor, currency) = p.money();
        let order = format!("order-{}", p.reference);
        let merchant_ref = match (p.prov, p.registered) {
            // An STK callback names no order; only a registration does.
            (Prov::Da, false) => None,
            _ => Some(order.as_str()),
        };
        for e in &got {
            let data = &e["data"];
            let what = format!("{} {}: {data}", p.reference, e["type"]);
            let status = e["type"].as_str().unwrap()["transaction.".len()..].to_uppercase();
            assert_eq!(data["status"].as_str(), Some(status.as_str()), "{what}");
            assert_eq!(data["confirmed"], true, "{what}");
            assert!(
                data["unconfirmed"].is_null(),
                "nothing unconfirmed here: {what}"
            );
            // Daraja's STK query and Jenga's details query state no amount: a success
            // only they settled (its callback lost) has none. Every other success names
            // the provider's amount.
            let query_without_amount = matches!(p.prov, Prov::Da | Prov::Je);
            if status == "SUCCEEDED" && !(query_without_amount && data["amount_minor"].is_null()) {
                assert_eq!(data["amount_minor"].as_i64(), Some(minor), "{what}");
                assert_eq!(data["currency"].as_str(), Some(currency), "{what}");
                assert_eq!(data["merchant_ref"].as_str(), merchant_ref, "{what}");
            } else if status == "SUCCEEDED" {
                assert!(data["currency"].is_null(), "{what}");
            } else {
                // Whatever a failure or a review carries must still be the provider's.
                if !data["amount_minor"].is_null() {
                    assert_eq!(data["amount_minor"].as_i64(), Some(minor), "{what}");
                    assert_eq!(data["currency"].as_str(), Some(currency), "{what}");
                }
                if !data["merchant_ref"].is_null() {
                    assert_eq!(
                        data["merchant_ref"].as_str(),
                        Some(order.as_str()),
                        "{what}"
                    );
                }
            }
        }
    }
    assert!(
        received_by_payment.is_empty(),
        "events about payments nobody made: {:?}",
        received_by_payment.keys().take(5).collect::<Vec<_>>()
    );
}

/// The earliest of the next poll (of an open row, or of a NEEDS_REVIEW row holding an
/// unsigned success to confirm), the next deadline and the next delivery due.
fn next_due(db: &rusqlite::Connection) -> Option<i64> {
    db.query_row(
        "SELECT min(at) FROM (
               SELECT min(coalesce(next_poll_at_ms, 0)) AS at FROM transactions
                WHERE status IN ('PENDING','INDETERMINATE')
               UNION ALL
               SELECT min(next_poll_at_ms) FROM transactions
                WHERE status = 'NEEDS_REVIEW' AND unconfirmed_status IS NOT NULL
               UNION ALL
               SELECT min(next_attempt_at_ms) FROM events WHERE status = 'pending')",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_converge_to_the_providers_truth() {
    let seed: u64 = env_or("PAYHOOK_SIM_SEED", SEED);
    let n: usize = env_or("PAYHOOK_SIM_PAYMENTS", CI_PAYMENTS);
    let sc = scenario(seed, n);
    let t0 = now_ms();
    let api = Arc::new(FakeApi {
        seed,
        faulty: true,
        t0,
        now: AtomicI64::new(t0),
        by_ref: sc
            .payments
            .iter()
            .enumerate()
            .map(|(i, p)| (p.reference.clone(), i))
            .collect(),
        polls: sc.payments.iter().map(|_| AtomicU32::new(0)).collect(),
        late_answers: sc.payments.iter().map(|_| AtomicU32::new(0)).collect(),
        failure_answers: sc.payments.iter().map(|_| AtomicU32::new(0)).collect(),
        count: FAULTS.iter().map(|f| (*f, AtomicU64::new(0))).collect(),
        payments: sc.payments,
    });
    let payments = &api.payments;
    let api_url = format!("http://{}", start_api(api.clone()).await);

    // The merchant refuses about one delivery in eight, so some events are retried.
    let mut merchant = FakeMerchant::start().await;
    let answered = Arc::new(AtomicU64::new(0));
    let counter = answered.clone();
    merchant.answer_with(move |_: &Received| {
        if counter.fetch_add(1, Ordering::Relaxed) % 8 == 7 {
            Answer::Status(500)
        } else {
            Answer::Status(200)
        }
    });
    let poll = format!(
        "base_url = \"{api_url}\"\npoll_first_after = \"1m\"\npoll_max_interval = \"{POLL_MAX}\"\n\
         poll_deadline = \"{}m\"\npoll_rate_per_minute = 60000\n",
        DEADLINE / MIN
    );
    let cfg = format!(
        "public_base_url = \"https://hooks.example.com\"\n\
         [providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\napi_token = \"zp-token\"\n{poll}\
         [providers.bitpesa]\napi_key = \"{BP_KEY}\"\napi_secret = \"{BP_SECRET}\"\n{poll}\
         [providers.daraja]\ncallback_tokens = [\"{DARAJA_TOKEN}\"]\nallowed_ips = [\"127.0.0.1\"]\n\
         consumer_key = \"ck\"\nconsumer_secret = \"cs\"\nshortcode = \"174379\"\n\
         passkey = \"bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919\"\n{poll}\
         [providers.jenga]\nipn_username = \"ipnuser\"\nipn_password = \"ipnpass\"\n\
         merchant_code = \"0011547896523\"\napi_key = \"jenga-api-key\"\n\
         consumer_secret = \"jenga-consumer-secret\"\nprivate_key_file = \"jenga.pem\"\n{poll}\
         [admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         [reconciler]\nenabled = false\nrequest_timeout = \"{REQUEST_TIMEOUT}\"\n"
    );
    // Jenga's request-signing key lives beside the database, readable by its owner only.
    let dir = tempfile::tempdir().unwrap();
    crate::support::sign::jenga_key_in(dir.path());
    let mut d = TestDaemon::start_in(dir, &cfg).await;
    // The daemon runs no forwarder (no [forward] section); the test steps one.
    let forwarding = |d: &TestDaemon| -> Ctx {
        let section = format!(
            "[forward]\nurl = \"{}\"\nsecrets = [\"{WHSEC}\"]\nretry_first_after = \"30s\"\n",
            merchant.url()
        );
        let with = Config::from_toml(&section, d.dir.path()).unwrap();
        let mut c = (*d.ctx.config).clone();
        c.forward = with.forward;
        let mut ctx = d.ctx.clone();
        ctx.config = Arc::new(c);
        ctx
    };
    let mut fwd = forwarding(&d);
    let mut restarted = false;
    let mut forged = 0;

    let admin = d.admin_addr.unwrap();
    let mut set = JoinSet::new();
    for (i, p) in payments.iter().enumerate() {
        if p.registered {
            let api = api.clone();
            set.spawn(async move { register(admin, &api.payments[i]).await });
        }
        if set.len() >= 16 {
            set.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }

    let callbacks = Arc::new(sc.callbacks);
    let watch = d.db();
    let mut copies = sc.copies.iter().peekable();
    let (mut now, mut ticks, mut sent) = (t0, 0, 0usize);
    loop {
        ticks += 1;
        assert!(
            ticks <= MAX_TICKS && now - t0 <= MAX_SIMULATED,
            "no convergence after {ticks} ticks, {} simulated minutes: {} transactions open, \
             {} events undelivered, {} callbacks unsent",
            (now - t0) / MIN,
            watch
                .query_row(
                    "SELECT count(*) FROM transactions WHERE status IN ('PENDING','INDETERMINATE')",
                    [],
                    |r| r.get::<_, i64>(0)
                )
                .unwrap(),
            watch
                .query_row(
                    "SELECT count(*) FROM events WHERE status = 'pending'",
                    [],
                    |r| r.get::<_, i64>(0)
                )
                .unwrap(),
            copies.len()
        );
        api.now.store(now, Ordering::SeqCst);
        // Callbacks due by now, concurrently (their order is already shuffled by delays).
        let mut set = JoinSet::new();
        while let Some(c) = copies.next_if(|c| t0 + c.at <= now) {
            let (cbs, c, addr) = (callbacks.clone(), c.clone(), d.addr);
            set.spawn(async move { send(addr, &cbs[c.callback], c.nonce.as_deref()).await });
            sent += 1;
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        for i in 0.. {
            assert!(i < MAX_STEPS_PER_TICK, "the reconciler never went idle");
            if reconcile::step_at(&d.ctx, now).await.unwrap() == reconcile::Step::Idle {
                break;
            }
        }
        for i in 0.. {
            assert!(i < MAX_STEPS_PER_TICK, "the forwarder never went idle");
            if matches!(
                forward::step(&fwd, now).await.unwrap(),
                forward::Step::Idle { .. }
            ) {
                break;
            }
        }
        let next_copy = copies.peek().map(|c| t0 + c.at);
        let next = match (next_due(&watch), next_copy) {
            (None, None) if forged > 0 => break,
            // Everything settled and delivered: now the forgeries, then drain again.
            (None, None) => {
                forged = forge(d.addr, payments).await;
                now + TICK
            }
            (a, b) => a.into_iter().chain(b).min().unwrap_or(now),
        };
        // At least a tick on, and never behind the real clock (rows created by
        // callbacks carry real timestamps).
        now = next.max(now + TICK).max(now_ms());
        // Half-way through, the daemon restarts on the same database: whatever it was in
        // the middle of (held hints, leases, retry schedules) must carry over.
        if !restarted && now - t0 >= DEADLINE / 2 {
            restarted = true;
            let dir = d.stop().await;
            d = TestDaemon::start_in(dir, &cfg).await;
            fwd = forwarding(&d);
        }
    }
    assert!(restarted, "the simulation restarted the daemon mid-run");

    // (a) Every payment ended at its truth.
    let db = d.db();
    let mut wrong = Vec::new();
    for p in payments {
        let status: Option<String> = db
            .query_row(
                "SELECT status FROM transactions WHERE provider = ?1 AND provider_ref = ?2",
                [p.prov.name(), &p.reference],
                |r| r.get(0),
            )
            .ok();
        if status.as_deref() != Some(p.expected()) {
            wrong.push(format!("{} {:?} → {status:?}", p.reference, p.truth));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} payments off their truth: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    for p in payments.iter().filter(|p| p.mismatch) {
        let reason: Option<String> = db
            .query_row(
                "SELECT reason FROM transactions WHERE provider = ?1 AND provider_ref = ?2",
                [p.prov.name(), &p.reference],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            reason
                .as_deref()
                .is_some_and(|r| r.starts_with("AMOUNT_MISMATCH")),
            "{}: {reason:?}",
            p.reference
        );
    }
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM transactions") as usize,
        payments.len(),
        "nothing unknown was invented"
    );

    // (b) FAILED only from a definitive answer; failed polls changed nothing; no conflict.
    // A callback's failure is read from the body the test sent; a poll's from the fake
    // API's own count of the failures it answered, not from what the daemon recorded.
    let undue_failures = count(
        "SELECT count(*) FROM transitions r
           LEFT JOIN callbacks c ON c.id = r.callback_id
          WHERE r.to_status = 'FAILED' AND r.outcome = 'applied'
            AND NOT ((r.source = 'callback' AND (c.kind IN ('collection.failed', 'transaction.canceled', 'ipn.failed')
                      OR (c.kind = 'stk'
                          AND json_extract(CAST(c.body AS TEXT), '$.Body.stkCallback.ResultCode') <> 0)))
                  OR r.source = 'poll')",
    );
    assert_eq!(
        undue_failures, 0,
        "a FAILED without a definitive provider answer"
    );
    let polled_failures: Vec<(String, String)> = db
        .prepare(
            "SELECT t.provider, t.provider_ref FROM transitions r
               JOIN transactions t ON t.id = r.transaction_id
              WHERE r.to_status = 'FAILED' AND r.outcome = 'applied' AND r.source = 'poll'",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (prov, reference) in &polled_failures {
        let i = api.by_ref[reference];
        assert_eq!(payments[i].prov.name(), prov);
        assert!(
            api.failure_answers[i].load(Ordering::SeqCst) > 0,
            "{reference} FAILED by a poll the fake never answered with a failure"
        );
    }
    assert_eq!(
        count(
            "SELECT count(*) FROM transitions r JOIN polls p ON p.id = r.poll_id
              WHERE r.outcome = 'applied' AND p.outcome <> 'status'"
        ),
        0,
        "a failed poll changed a status"
    );
    // The providers never contradicted themselves: a conflict may only come from a
    // forgery sharing a genuine callback's idempotency key with another body (two bodies
    // under one key are kept and disputed, whoever sent the second).
    assert_eq!(
        count(
            "SELECT count(*) FROM transitions r LEFT JOIN callbacks c ON c.id = r.callback_id
              WHERE r.outcome = 'conflict'
                AND coalesce(CAST(c.body AS TEXT), '') NOT LIKE '%order-FORGED%'"
        ),
        0,
        "a conflict without a forgery"
    );

    // (c) One distinct event per settled transition, each delivered and signed.
    let received = merchant.take();
    let webhook = standardwebhooks::Webhook::new(WHSEC).unwrap();
    let mut by_id: BTreeMap<String, Bytes> = BTreeMap::new();
    for r in &received {
        webhook
            .verify(&r.body, &r.headers)
            .expect("every delivery is signed");
        let first = by_id.entry(r.id().to_string()).or_insert(r.body.clone());
        assert_eq!(*first, r.body, "a retry repeats the same event");
    }
    let stored: BTreeSet<String> = db
        .prepare("SELECT id FROM events")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let got: BTreeSet<String> = by_id.keys().cloned().collect();
    let extra: Vec<&String> = got.difference(&stored).take(10).collect();
    let missing: Vec<&String> = stored.difference(&got).take(10).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "the merchant must receive exactly the outbox's events: ids not in the outbox {extra:?}, \
         events never received {missing:?}"
    );
    // A report on a row already in review is recorded as an applied NEEDS_REVIEW →
    // NEEDS_REVIEW transition that only updates the reason (`state::plan::review`); the
    // merchant already has the review's event, so it gets none.
    let settled_transitions = count(
        "SELECT count(*) FROM transitions
          WHERE (outcome = 'applied' AND to_status IN ('SUCCEEDED','FAILED','REVERSED','NEEDS_REVIEW')
                 AND from_status IS NOT to_status)
             OR outcome = 'conflict'",
    );
    let without_event: Vec<String> = db
        .prepare(
            "SELECT t.provider_ref || ' ' || r.source || ' ' || coalesce(r.from_status, '-') || '->'
                    || r.to_status || ' ' || r.outcome || ' ' || coalesce(t.reason, '')
               FROM transitions r JOIN transactions t ON t.id = r.transaction_id
              WHERE ((r.outcome = 'applied' AND r.to_status IN ('SUCCEEDED','FAILED','REVERSED','NEEDS_REVIEW')
                      AND r.from_status IS NOT r.to_status)
                     OR r.outcome = 'conflict')
                AND NOT EXISTS (SELECT 1 FROM events e
                                 WHERE e.transaction_id = r.transaction_id AND e.transition_id = r.id)",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        stored.len() as i64,
        settled_transitions,
        "one event per settled transition; without one: {without_event:?}"
    );
    assert_eq!(
        count("SELECT count(*) FROM events WHERE status <> 'delivered'"),
        0,
        "every event was delivered"
    );
    // Each payment settled as its truth did: once, or escalated and then decided late.
    let mut per_payment: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut q = db
        .prepare(
            "SELECT t.provider, t.provider_ref, e.type FROM events e
               JOIN transactions t ON t.id = e.transaction_id ORDER BY e.transition_id",
        )
        .unwrap();
    for row in q
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
    {
        let (prov, reference, kind) = row.unwrap();
        per_payment.entry((prov, reference)).or_default().push(kind);
    }
    for got in per_payment.values_mut() {
        got.retain(|kind| kind != "transaction.conflict");
    }
    for p in payments {
        let got = per_payment.get(&(p.prov.name().to_string(), p.reference.clone()));
        assert_eq!(
            got,
            Some(&p.expected_events()),
            "{}'s events ({:?})",
            p.reference,
            p.truth
        );
    }

    // (c') What the merchant received agrees with each payment's truth.
    assert_received_matches_truth(payments, &by_id);

    // (d) Every callback delivered n times is stored once, counted n times. A state
    // entered twice is the same callback again (same body, same dedup key).
    let mut sent_by_body: BTreeMap<&str, i64> = BTreeMap::new();
    for cb in callbacks.iter() {
        *sent_by_body.entry(&cb.body).or_default() += cb.sent as i64;
    }
    for (body, sent) in &sent_by_body {
        let rows: Vec<i64> = db
            .prepare("SELECT deliveries FROM callbacks WHERE body = ?1")
            .unwrap()
            .query_map([body.as_bytes()], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![*sent], "stored once: {body}");
    }
    assert_eq!(
        count("SELECT count(*) FROM callbacks WHERE CAST(body AS TEXT) NOT LIKE '%order-FORGED%'")
            as usize,
        sent_by_body.len()
    );
    // The forgeries: stored as what they are (field signatures, unsigned), and nothing of
    // theirs in the store's values or in anything the merchant received.
    assert_eq!(
        count("SELECT count(*) FROM callbacks WHERE CAST(body AS TEXT) LIKE '%order-FORGED%' AND signed = 0"),
        forged as i64
    );
    assert_eq!(
        count("SELECT count(*) FROM transactions WHERE merchant_ref = 'order-FORGED' OR unconfirmed_details LIKE '%FORGED%'"),
        0
    );
    for r in &received {
        assert!(
            !r.body_str().contains("FORGED"),
            "a forgery reached the merchant: {}",
            r.body_str()
        );
    }

    let polls = count("SELECT count(*) FROM polls");
    let per_provider: Vec<String> = db
        .prepare(
            "SELECT t.provider || ' ' || count(*) FROM polls p
               JOIN transactions t ON t.id = p.transaction_id GROUP BY t.provider ORDER BY t.provider",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    println!(
        "simulation: seed={seed:#x} payments={} (zengapay {}, bitpesa {}, daraja {}, jenga {}; succeeded {}, failed {}, open→review {}, decided after review {}; registered {}, amount mismatches {}) \
         callbacks: emitted {} lost {} duplicated {} copies sent {} | polls {} (failed {}; fake: 429 {}, 503 {}, 404 {}, timeout {}, slow {}) \
         per provider {} | successes held for confirmation {} | forged reports {forged} | events {} deliveries {} | simulated {:.1} h in {ticks} ticks",
        payments.len(),
        payments.iter().filter(|p| p.prov == Prov::Zp).count(),
        payments.iter().filter(|p| p.prov == Prov::Bp).count(),
        payments.iter().filter(|p| p.prov == Prov::Da).count(),
        payments.iter().filter(|p| p.prov == Prov::Je).count(),
        payments.iter().filter(|p| p.truth == Truth::Succeeded).count(),
        payments.iter().filter(|p| p.truth == Truth::Failed).count(),
        payments.iter().filter(|p| p.truth == Truth::Open).count(),
        payments
            .iter()
            .filter(|p| matches!(p.truth, Truth::LateSucceeded | Truth::LateFailed))
            .count(),
        payments.iter().filter(|p| p.registered).count(),
        payments.iter().filter(|p| p.mismatch).count(),
        sc.emitted,
        sc.lost,
        sc.duplicated,
        sent,
        polls,
        count("SELECT count(*) FROM polls WHERE outcome = 'failed'"),
        api.counted("429"),
        api.counted("503"),
        api.counted("404"),
        api.counted("timeout"),
        api.counted("slow"),
        per_provider.join(", "),
        count("SELECT count(*) FROM transitions WHERE outcome = 'unconfirmed'"),
        stored.len(),
        received.len(),
        (now - t0) as f64 / 3_600_000.0,
    );
    assert!(polls > 0 && sent > 0, "the simulation exercised both paths");
    d.stop().await;
}

/// Found by the simulation (its "late" Daraja successes): a transaction escalated to
/// NEEDS_REVIEW that then gets an unsigned (held) success is marked due
/// (`unconfirmed_status = 'SUCCEEDED'`, `next_poll_at_ms = now`, as `apply` does for any
/// held success). The reconciler claims such rows too (`store::polls::claim`, index
/// `transactions_held_due`) without escalating them again, so the confirming status query
/// happens and settles NEEDS_REVIEW → SUCCEEDED, a provider answer the state machine allows (`src/state/plan.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_success_after_review_is_confirmed_by_a_status_query() {
    let reference = "ws_CO_sim_held";
    let api = Arc::new(FakeApi {
        seed: 1,
        faulty: false,
        t0: now_ms(),
        now: AtomicI64::new(now_ms()),
        by_ref: HashMap::from([(reference.to_string(), 0)]),
        payments: vec![Payment {
            prov: Prov::Da,
            reference: reference.into(),
            amount: "1500".into(),
            truth: Truth::LateSucceeded,
            chain: vec![(0, "processing")],
            // Decided (at the provider) from the start: any query says success.
            outcome_at: 0,
            outcome_word: "0",
            lag: 0,
            registered: true,
            mismatch: false,
        }],
        polls: vec![AtomicU32::new(0)],
        late_answers: vec![AtomicU32::new(0)],
        failure_answers: vec![AtomicU32::new(0)],
        count: FAULTS.iter().map(|f| (*f, AtomicU64::new(0))).collect(),
    });
    let url = format!("http://{}", start_api(api.clone()).await);
    let cfg = format!(
        "[providers.daraja]\ncallback_tokens = [\"{DARAJA_TOKEN}\"]\nallowed_ips = [\"127.0.0.1\"]\n\
         allowlist_authenticates = false\n\
         consumer_key = \"ck\"\nconsumer_secret = \"cs\"\nshortcode = \"174379\"\n\
         passkey = \"bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919\"\n\
         base_url = \"{url}\"\npoll_deadline = \"1h\"\npoll_rate_per_minute = 6000\n\
         [admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         [reconciler]\nenabled = false\n"
    );
    let d = TestDaemon::start(&cfg).await;
    register(d.admin_addr.unwrap(), &api.payments[0]).await;
    // Past the deadline, before any poll: escalated.
    let later = now_ms() + 2 * 3_600_000;
    reconcile::step_at(&d.ctx, later).await.unwrap();
    let status = |d: &TestDaemon| -> (String, Option<String>) {
        d.db()
            .query_row(
                "SELECT status, unconfirmed_status FROM transactions WHERE provider_ref = ?1",
                [reference],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    assert_eq!(status(&d).0, "NEEDS_REVIEW");
    // The late, unsigned success callback is held.
    let cb = Callback {
        prov: Prov::Da,
        body: stk_callback(&api.payments[0], "0"),
        sent: 1,
    };
    send(d.addr, &cb, None).await;
    assert_eq!(
        status(&d),
        ("NEEDS_REVIEW".to_string(), Some("SUCCEEDED".to_string()))
    );
    // The provider confirms it to anyone who asks.
    for _ in 0..3 {
        reconcile::step_at(&d.ctx, later + 60_000).await.unwrap();
    }
    assert!(
        api.polls[0].load(Ordering::SeqCst) > 0,
        "no STK query was made to confirm the held success"
    );
    assert_eq!(status(&d), ("SUCCEEDED".to_string(), None));
    d.stop().await;
}

/// The same kind of scenario driven by the daemon's own loops (`reconcile::run` and
/// `forward::run`, started by `serve`) on the real clock rather than stepped: every
/// payment that is decided by now at the provider (a seeded subset of the scenario, its
/// status API answering from the outcome, some "still processing" first), its callbacks
/// sent at once with their losses and duplicates, and a merchant refusing one delivery in
/// eight. Without any step by the test, every payment must end at its truth and the
/// merchant receive exactly the outbox's events, each as the truth says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_own_loops_converge_on_a_seeded_scenario() {
    let seed: u64 = env_or("PAYHOOK_SIM_SEED", SEED);
    let sc = scenario(seed, 80);
    let keep = |p: &Payment| matches!(p.truth, Truth::Succeeded | Truth::Failed);
    let kept: Vec<Payment> = sc.payments.into_iter().filter(keep).collect();
    let callbacks: Vec<Callback> = sc
        .callbacks
        .into_iter()
        .filter(|cb| kept.iter().any(|p| cb.body.contains(&p.reference)))
        .collect();
    let t0 = now_ms() - 10 * DEADLINE;
    let api = Arc::new(FakeApi {
        seed,
        faulty: false,
        t0,
        now: AtomicI64::new(now_ms()),
        by_ref: kept
            .iter()
            .enumerate()
            .map(|(i, p)| (p.reference.clone(), i))
            .collect(),
        polls: kept.iter().map(|_| AtomicU32::new(0)).collect(),
        late_answers: kept.iter().map(|_| AtomicU32::new(0)).collect(),
        failure_answers: kept.iter().map(|_| AtomicU32::new(0)).collect(),
        count: FAULTS.iter().map(|f| (*f, AtomicU64::new(0))).collect(),
        payments: kept,
    });
    let payments = &api.payments;
    let api_url = format!("http://{}", start_api(api.clone()).await);
    let mut merchant = FakeMerchant::start().await;
    let answered = Arc::new(AtomicU64::new(0));
    let counter = answered.clone();
    merchant.answer_with(move |_: &Received| {
        if counter.fetch_add(1, Ordering::Relaxed) % 8 == 7 {
            Answer::Status(500)
        } else {
            Answer::Status(200)
        }
    });
    let poll = format!(
        "base_url = \"{api_url}\"\npoll_first_after = \"100ms\"\npoll_max_interval = \"1s\"\n\
         poll_deadline = \"10m\"\npoll_rate_per_minute = 60000\n"
    );
    let cfg = format!(
        "public_base_url = \"https://hooks.example.com\"\n\
         [providers.zengapay]\nsecret_hash = \"{ZP_SECRET}\"\napi_token = \"zp-token\"\n{poll}\
         [providers.bitpesa]\napi_key = \"{BP_KEY}\"\napi_secret = \"{BP_SECRET}\"\n{poll}\
         [providers.daraja]\ncallback_tokens = [\"{DARAJA_TOKEN}\"]\nallowed_ips = [\"127.0.0.1\"]\n\
         consumer_key = \"ck\"\nconsumer_secret = \"cs\"\nshortcode = \"174379\"\n\
         passkey = \"bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919\"\n{poll}\
         [providers.jenga]\nipn_username = \"ipnuser\"\nipn_password = \"ipnpass\"\n\
         merchant_code = \"0011547896523\"\napi_key = \"jenga-api-key\"\n\
         consumer_secret = \"jenga-consumer-secret\"\nprivate_key_file = \"jenga.pem\"\n{poll}\
         [admin]\nlisten = \"127.0.0.1:1\"\ntoken = \"{ADMIN_TOKEN}\"\n\
         [reconciler]\nrequest_timeout = \"{REQUEST_TIMEOUT}\"\n\
         [forward]\nurl = \"{}\"\nsecrets = [\"{WHSEC}\"]\nretry_first_after = \"200ms\"\n\
         retry_max_interval = \"1s\"\n",
        merchant.url()
    );
    let dir = tempfile::tempdir().unwrap();
    crate::support::sign::jenga_key_in(dir.path());
    let d = TestDaemon::start_in(dir, &cfg).await;
    let admin = d.admin_addr.unwrap();
    for p in payments.iter().filter(|p| p.registered) {
        register(admin, p).await;
    }
    let mut sent_by_body: BTreeMap<&str, i64> = BTreeMap::new();
    for (i, cb) in callbacks.iter().enumerate() {
        for c in 0..cb.sent {
            // TransferZero signs each retry afresh here, with a nonce of its own.
            send(d.addr, cb, Some(&format!("nonce-{i}-{c}"))).await;
        }
        *sent_by_body.entry(&cb.body).or_default() += cb.sent as i64;
    }

    // Wait (bounded) for the loops to finish everything.
    let db = d.db();
    let count = |sql: &str| -> i64 { db.query_row(sql, [], |r| r.get(0)).unwrap() };
    let settled = |p: &Payment| -> bool {
        db.query_row(
            "SELECT status FROM transactions WHERE provider = ?1 AND provider_ref = ?2",
            [p.prov.name(), &p.reference],
            |r| r.get::<_, String>(0),
        )
        .is_ok_and(|s| s == p.expected())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let open = payments.iter().filter(|p| !settled(p)).count();
        let undelivered = count("SELECT count(*) FROM events WHERE status <> 'delivered'");
        if open == 0 && undelivered == 0 && count("SELECT count(*) FROM events") > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon's loops left {open} payments off their truth and {undelivered} events undelivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d.stop().await;

    let received = merchant.take();
    let webhook = standardwebhooks::Webhook::new(WHSEC).unwrap();
    let mut by_id: BTreeMap<String, Bytes> = BTreeMap::new();
    for r in &received {
        webhook
            .verify(&r.body, &r.headers)
            .expect("every delivery is signed");
        let first = by_id.entry(r.id().to_string()).or_insert(r.body.clone());
        assert_eq!(*first, r.body, "a retry repeats the same event");
    }
    assert_received_matches_truth(payments, &by_id);
    let stored = count("SELECT count(*) FROM events");
    assert_eq!(
        by_id.len() as i64,
        stored,
        "the merchant received the outbox"
    );
    for (body, sent) in &sent_by_body {
        let rows: Vec<i64> = db
            .prepare("SELECT deliveries FROM callbacks WHERE body = ?1")
            .unwrap()
            .query_map([body.as_bytes()], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![*sent], "stored once: {body}");
    }
    println!(
        "simulation (own loops): seed={seed:#x} payments={} callbacks {} polls {} events {stored} deliveries {}",
        payments.len(),
        callbacks.len(),
        count("SELECT count(*) FROM polls"),
        received.len()
    );
}
