//! In-process metrics, rendered as Prometheus text at `/metrics` (and on the admin
//! listener with `[admin] metrics = true`).
//!
//! Counters exist at zero from start for every enabled provider; the backlog gauges are
//! read from the store at each scrape, so they are true after a restart and never drift.
//!
//! Counters are keyed by name and label pairs; label values come from fixed sets
//! (provider names, outcome labels), never from request data, so the series count is
//! bounded. A std `Mutex` suffices: it is held for a map lookup, never across `.await`.

use crate::domain::ProviderId;
use crate::store::queries::Backlog;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

// Metric names: every metric is written through one of these constants; `FAMILIES`
// lists each with its type and help text.

/// `payhook_callbacks_total`: Callbacks received, by provider and outcome.
pub const CALLBACKS_TOTAL: &str = "payhook_callbacks_total";
/// `payhook_auth_failures_total`: Callbacks refused with 401, by provider and reason.
pub const AUTH_FAILURES_TOTAL: &str = "payhook_auth_failures_total";
/// `payhook_ip_refusals_total`: Callbacks from an address outside allowed_ips, by provider and
/// policy (enforce: refused with 403; log-only: accepted).
pub const IP_REFUSALS_TOTAL: &str = "payhook_ip_refusals_total";
/// `payhook_conflicts_total`: Reports that contradicted a terminal status.
pub const CONFLICTS_TOTAL: &str = "payhook_conflicts_total";
/// `payhook_connections_refused_total`: Connections closed at once because the connection limit
/// was reached.
pub const CONNECTIONS_REFUSED_TOTAL: &str = "payhook_connections_refused_total";
/// `payhook_polls_total`: Status queries made, by provider and outcome (status or failed).
pub const POLLS_TOTAL: &str = "payhook_polls_total";
/// `payhook_sweeps_total`: Statement sweeps, by provider and outcome (ok or failed).
pub const SWEEPS_TOTAL: &str = "payhook_sweeps_total";
/// `payhook_sweep_found_total`: Transactions found in a provider's statement that payhook did
/// not know.
pub const SWEEP_FOUND_TOTAL: &str = "payhook_sweep_found_total";
/// `payhook_escalations_total`: Open transactions escalated to NEEDS_REVIEW at their deadline.
pub const ESCALATIONS_TOTAL: &str = "payhook_escalations_total";
/// `payhook_held_reviews_left_total`: Unsigned successes under review that payhook stopped
/// trying to confirm: a person decides.
pub const HELD_REVIEWS_LEFT_TOTAL: &str = "payhook_held_reviews_left_total";
/// `payhook_deliveries_total`: Event delivery attempts to the merchant, by outcome (delivered,
/// retry, dead, gone).
pub const DELIVERIES_TOTAL: &str = "payhook_deliveries_total";
/// `payhook_events_dead_total`: Deliveries (event, destination) dead-lettered after the retry
/// horizon.
pub const EVENTS_DEAD_TOTAL: &str = "payhook_events_dead_total";
/// `payhook_destination_disabled`: 1 while a destination is disabled because it answered 410
/// Gone.
pub const DESTINATION_DISABLED: &str = "payhook_destination_disabled";
/// `payhook_destination_deliveries_total`: Delivery attempts, by destination and outcome
/// (delivered, retry, dead, gone).
pub const DESTINATION_DELIVERIES_TOTAL: &str = "payhook_destination_deliveries_total";
/// `payhook_destination_paused`: 1 while an operator has paused the destination (payhook events
/// pause).
pub const DESTINATION_PAUSED: &str = "payhook_destination_paused";
/// `payhook_destination_pending`: Deliveries the destination still has to make.
pub const DESTINATION_PENDING: &str = "payhook_destination_pending";
/// `payhook_destination_oldest_pending_seconds`: Age of the oldest event the destination still
/// has to receive.
pub const DESTINATION_OLDEST_PENDING_SECONDS: &str = "payhook_destination_oldest_pending_seconds";
/// `payhook_destination_disabled_total`: Times the destination answered 410 Gone and was
/// disabled.
pub const DESTINATION_DISABLED_TOTAL: &str = "payhook_destination_disabled_total";
/// `payhook_events_pending`: Events in the outbox not yet delivered (read from the store at
/// scrape time).
pub const EVENTS_PENDING: &str = "payhook_events_pending";
/// `payhook_events_oldest_pending_age_seconds`: Age of the oldest undelivered event, 0 when
/// none (read from the store at scrape time).
pub const EVENTS_OLDEST_PENDING_AGE_SECONDS: &str = "payhook_events_oldest_pending_age_seconds";
/// `payhook_review_queue_items`: Items waiting for a person: NEEDS_REVIEW transactions,
/// conflicts, unparsed callbacks (payhook review).
pub const REVIEW_QUEUE_ITEMS: &str = "payhook_review_queue_items";
/// `payhook_transactions_open`: Open transactions by provider and status (PENDING or
/// INDETERMINATE), read from the store at scrape time.
pub const TRANSACTIONS_OPEN: &str = "payhook_transactions_open";
/// `payhook_build_info`: Always 1; the version label names the running build.
pub const BUILD_INFO: &str = "payhook_build_info";
/// `payhook_callback_ack_seconds`: Time from request to acknowledgement of stored callbacks.
pub const CALLBACK_ACK_SECONDS: &str = "payhook_callback_ack_seconds";

/// Upper bounds (seconds) of the acknowledgement-latency histogram buckets.
const ACK_BUCKETS: [f64; 11] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Every metric family: name, type and help text. A family rendered without an entry
/// here would have no HELP or TYPE line, which the exposition test refuses.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        CALLBACKS_TOTAL,
        "counter",
        "Callbacks received, by provider and outcome.",
    ),
    (
        AUTH_FAILURES_TOTAL,
        "counter",
        "Callbacks refused with 401, by provider and reason.",
    ),
    (
        IP_REFUSALS_TOTAL,
        "counter",
        "Callbacks from an address outside allowed_ips, by provider and policy (enforce: refused with 403; log-only: accepted).",
    ),
    (
        CONFLICTS_TOTAL,
        "counter",
        "Reports that contradicted a terminal status.",
    ),
    (
        CONNECTIONS_REFUSED_TOTAL,
        "counter",
        "Connections closed at once because the connection limit was reached.",
    ),
    (
        POLLS_TOTAL,
        "counter",
        "Status queries made, by provider and outcome (status or failed).",
    ),
    (
        SWEEPS_TOTAL,
        "counter",
        "Statement sweeps, by provider and outcome (ok or failed).",
    ),
    (
        SWEEP_FOUND_TOTAL,
        "counter",
        "Transactions found in a provider's statement that payhook did not know.",
    ),
    (
        ESCALATIONS_TOTAL,
        "counter",
        "Open transactions escalated to NEEDS_REVIEW at their deadline.",
    ),
    (
        HELD_REVIEWS_LEFT_TOTAL,
        "counter",
        "Unsigned successes under review that payhook stopped trying to confirm: a person decides.",
    ),
    (
        DELIVERIES_TOTAL,
        "counter",
        "Event delivery attempts to the merchant, by outcome (delivered, retry, dead, gone).",
    ),
    (
        EVENTS_DEAD_TOTAL,
        "counter",
        "Deliveries (event, destination) dead-lettered after the retry horizon.",
    ),
    (
        DESTINATION_DISABLED,
        "gauge",
        "1 while a destination is disabled because it answered 410 Gone.",
    ),
    (
        DESTINATION_DELIVERIES_TOTAL,
        "counter",
        "Delivery attempts, by destination and outcome (delivered, retry, dead, gone).",
    ),
    (
        DESTINATION_PAUSED,
        "gauge",
        "1 while an operator has paused the destination (payhook events pause).",
    ),
    (
        DESTINATION_PENDING,
        "gauge",
        "Deliveries the destination still has to make.",
    ),
    (
        DESTINATION_OLDEST_PENDING_SECONDS,
        "gauge",
        "Age of the oldest event the destination still has to receive.",
    ),
    (
        DESTINATION_DISABLED_TOTAL,
        "counter",
        "Times the destination answered 410 Gone and was disabled.",
    ),
    (
        EVENTS_PENDING,
        "gauge",
        "Events in the outbox not yet delivered (read from the store at scrape time).",
    ),
    (
        EVENTS_OLDEST_PENDING_AGE_SECONDS,
        "gauge",
        "Age of the oldest undelivered event, 0 when none (read from the store at scrape time).",
    ),
    (
        REVIEW_QUEUE_ITEMS,
        "gauge",
        "Items waiting for a person: NEEDS_REVIEW transactions, conflicts, unparsed callbacks (payhook review).",
    ),
    (
        TRANSACTIONS_OPEN,
        "gauge",
        "Open transactions by provider and status (PENDING or INDETERMINATE), read from the store at scrape time.",
    ),
    (
        BUILD_INFO,
        "gauge",
        "Always 1; the version label names the running build.",
    ),
    (
        CALLBACK_ACK_SECONDS,
        "histogram",
        "Time from request to acknowledgement of stored callbacks.",
    ),
];

/// Outcomes of `payhook_callbacks_total`, present at zero from start for every enabled
/// provider, so that an alert on a rate sees a series right after a restart.
const CALLBACK_OUTCOMES: &[&str] = &[
    "stored",
    "duplicate",
    "flagged",
    "unauthorized",
    "forbidden",
    "too_large",
    "bad_body",
    "replay",
    "unavailable",
    "error",
];
/// Reasons of `payhook_auth_failures_total` (`providers::VerifyError::label`).
const AUTH_REASONS: &[&str] = &[
    "missing_header",
    "malformed_header",
    "signature_mismatch",
    "wrong_key",
    "unknown_token",
    "bad_credentials",
];
/// Outcomes of `payhook_deliveries_total` (`forward::Delivery::label`).
const DELIVERY_OUTCOMES: &[&str] = &["delivered", "retry", "dead", "gone"];
/// Statuses counted by `payhook_transactions_open`.
const OPEN_STATUSES: &[&str] = &["PENDING", "INDETERMINATE"];

/// The daemon's metrics registry (one per [`crate::Ctx`]).
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<String, u64>>,
    gauges: Mutex<BTreeMap<String, i64>>,
    ack_buckets: [AtomicU64; ACK_BUCKETS.len()],
    ack_count: AtomicU64,
    ack_sum_micros: AtomicU64,
    /// Enabled providers, for the zero series of the backlog gauges.
    providers: Vec<&'static str>,
}

fn series(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let mut s = format!("{name}{{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        // Written piece by piece: a callback's request task formats one series per
        // increment, and `replace` allocated twice per label. The escapes are the three
        // the Prometheus text format defines for label values.
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

impl Metrics {
    /// A registry with every counter of `providers` present at zero.
    pub fn new(providers: impl IntoIterator<Item = ProviderId>) -> Metrics {
        let m = Metrics {
            providers: providers.into_iter().map(ProviderId::as_str).collect(),
            ..Metrics::default()
        };
        for p in m.providers.clone() {
            for outcome in CALLBACK_OUTCOMES {
                m.add(CALLBACKS_TOTAL, &[("provider", p), ("outcome", outcome)], 0);
            }
            for reason in AUTH_REASONS {
                m.add(
                    AUTH_FAILURES_TOTAL,
                    &[("provider", p), ("reason", reason)],
                    0,
                );
            }
            for policy in ["enforce", "log-only"] {
                m.add(IP_REFUSALS_TOTAL, &[("provider", p), ("policy", policy)], 0);
            }
            for (name, outcomes) in [
                (POLLS_TOTAL, &["status", "failed"][..]),
                (SWEEPS_TOTAL, &["ok", "failed"][..]),
            ] {
                for outcome in outcomes {
                    m.add(name, &[("provider", p), ("outcome", outcome)], 0);
                }
            }
            for name in [
                CONFLICTS_TOTAL,
                ESCALATIONS_TOTAL,
                HELD_REVIEWS_LEFT_TOTAL,
                SWEEP_FOUND_TOTAL,
            ] {
                m.add(name, &[("provider", p)], 0);
            }
        }
        for outcome in DELIVERY_OUTCOMES {
            m.add(DELIVERIES_TOTAL, &[("outcome", outcome)], 0);
        }
        for name in [
            EVENTS_DEAD_TOTAL,
            DESTINATION_DISABLED_TOTAL,
            CONNECTIONS_REFUSED_TOTAL,
        ] {
            m.add(name, &[], 0);
        }
        m
    }

    /// Adds one to a counter.
    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1);
    }

    /// Adds `n` to a counter.
    pub fn add(&self, name: &str, labels: &[(&str, &str)], n: u64) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry(series(name, labels)).or_default() += n;
        }
    }

    /// Sets a gauge.
    pub fn set(&self, name: &str, labels: &[(&str, &str)], value: i64) {
        if let Ok(mut g) = self.gauges.lock() {
            g.insert(series(name, labels), value);
        }
    }

    /// A counter's current value (0 if never incremented).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters
            .lock()
            .map(|c| c.get(&series(name, labels)).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Records the time taken to acknowledge a stored callback.
    pub fn observe_ack(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in ACK_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.ack_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.ack_count.fetch_add(1, Ordering::Relaxed);
        self.ack_sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Prometheus text exposition format: every family with its HELP and TYPE, the
    /// counters and gauges, the `backlog` read from the store (omitted when the store
    /// could not be read), the build and the acknowledgement histogram.
    pub fn render(&self, backlog: Option<&Backlog>, now_ms: i64) -> String {
        // family name -> its series lines, so each family is one block.
        let mut families: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut put = |key: &str, value: String| {
            let name = key.split('{').next().unwrap_or(key).to_string();
            families
                .entry(name)
                .or_default()
                .push(format!("{key} {value}"));
        };
        if let Ok(c) = self.counters.lock() {
            for (k, v) in c.iter() {
                put(k, v.to_string());
            }
        }
        if let Ok(g) = self.gauges.lock() {
            for (k, v) in g.iter() {
                put(k, v.to_string());
            }
        }
        if let Some(b) = backlog {
            put(EVENTS_PENDING, b.pending_events.to_string());
            let age_ms = b
                .oldest_pending_at_ms
                .map_or(0, |at| now_ms.saturating_sub(at).max(0));
            put(
                EVENTS_OLDEST_PENDING_AGE_SECONDS,
                format!("{}.{:03}", age_ms / 1000, age_ms % 1000),
            );
            put(REVIEW_QUEUE_ITEMS, b.review_queue.to_string());
            let mut open: BTreeMap<(&str, &str), i64> = BTreeMap::new();
            for p in &self.providers {
                for status in OPEN_STATUSES {
                    open.insert((p, status), 0);
                }
            }
            for (p, status, n) in &b.open {
                open.insert((p.as_str(), status.as_str()), *n);
            }
            for ((p, status), n) in open {
                put(
                    &series(TRANSACTIONS_OPEN, &[("provider", p), ("status", status)]),
                    n.to_string(),
                );
            }
        }
        put(
            &series(BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))]),
            "1".to_string(),
        );
        let mut out = String::new();
        let header = |out: &mut String, name: &str| {
            if let Some((_, kind, help)) = FAMILIES.iter().find(|(n, _, _)| *n == name) {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} {kind}");
            }
        };
        for (name, lines) in &families {
            header(&mut out, name);
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
        header(&mut out, CALLBACK_ACK_SECONDS);
        for (i, bound) in ACK_BUCKETS.iter().enumerate() {
            let n = self.ack_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "payhook_callback_ack_seconds_bucket{{le=\"{bound}\"}} {n}"
            );
        }
        let count = self.ack_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "payhook_callback_ack_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.ack_sum_micros.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "payhook_callback_ack_seconds_sum {}.{:06}",
            sum / 1_000_000,
            sum % 1_000_000
        );
        let _ = writeln!(out, "payhook_callback_ack_seconds_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_type_and_counters_start_at_zero() {
        let m = Metrics::new(ProviderId::ALL);
        m.set("payhook_destination_disabled", &[], 0);
        // Per-destination series are created by the forwarder for each configured one.
        let d = [("destination", "default")];
        for gauge in [
            "payhook_destination_paused",
            "payhook_destination_pending",
            "payhook_destination_oldest_pending_seconds",
        ] {
            m.set(gauge, &d, 0);
        }
        m.add(
            "payhook_destination_deliveries_total",
            &[("destination", "default"), ("outcome", "delivered")],
            0,
        );
        let backlog = Backlog {
            pending_events: 2,
            oldest_pending_at_ms: Some(1_000),
            review_queue: 1,
            open: vec![("daraja".into(), "PENDING".into(), 3)],
        };
        let text = m.render(Some(&backlog), 3_500);
        for (name, kind, _) in FAMILIES {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}: {text}"
            );
        }
        assert!(text
            .contains("payhook_callbacks_total{provider=\"jenga\",outcome=\"unauthorized\"} 0\n"));
        assert!(text.contains("payhook_events_oldest_pending_age_seconds 2.500\n"));
        assert!(
            text.contains("payhook_transactions_open{provider=\"daraja\",status=\"PENDING\"} 3\n")
        );
        assert!(text.contains(
            "payhook_transactions_open{provider=\"zengapay\",status=\"INDETERMINATE\"} 0\n"
        ));
        assert!(text.contains("payhook_build_info{version=\""));
    }

    #[test]
    fn label_values_escape_backslashes_quotes_and_newlines() {
        assert_eq!(series("m", &[]), "m");
        assert_eq!(
            series("m", &[("a", "x"), ("b", r#"q"u\o"#)]),
            r#"m{a="x",b="q\"u\\o"}"#
        );
        assert_eq!(series("m", &[("a", "two\nlines")]), r#"m{a="two\nlines"}"#);
    }

    #[test]
    fn renders_counters_with_labels_and_the_histogram() {
        let m = Metrics::default();
        m.inc(
            "payhook_callbacks_total",
            &[("provider", "zengapay"), ("outcome", "stored")],
        );
        m.inc(
            "payhook_callbacks_total",
            &[("provider", "zengapay"), ("outcome", "stored")],
        );
        m.observe_ack(Duration::from_millis(3));
        let text = m.render(None, 0);
        assert!(text.contains("# TYPE payhook_callbacks_total counter"));
        assert!(text.contains(r#"payhook_callbacks_total{provider="zengapay",outcome="stored"} 2"#));
        assert!(text.contains(r#"payhook_callback_ack_seconds_bucket{le="0.005"} 1"#));
        assert!(text.contains(r#"payhook_callback_ack_seconds_bucket{le="0.002"} 0"#));
        assert_eq!(
            m.counter(
                "payhook_callbacks_total",
                &[("provider", "zengapay"), ("outcome", "stored")]
            ),
            2
        );
    }
}
