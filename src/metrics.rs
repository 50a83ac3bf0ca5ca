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

/// Upper bounds (seconds) of the acknowledgement-latency histogram buckets.
const ACK_BUCKETS: [f64; 11] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Every metric family: name, type and help text. A family rendered without an entry
/// here would have no HELP or TYPE line, which the exposition test refuses.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "payhook_callbacks_total",
        "counter",
        "Callbacks received, by provider and outcome.",
    ),
    (
        "payhook_auth_failures_total",
        "counter",
        "Callbacks refused with 401, by provider and reason.",
    ),
    (
        "payhook_ip_refusals_total",
        "counter",
        "Callbacks from an address outside allowed_ips, by provider and policy (enforce: refused with 403; log-only: accepted).",
    ),
    (
        "payhook_conflicts_total",
        "counter",
        "Reports that contradicted a terminal status.",
    ),
    (
        "payhook_connections_refused_total",
        "counter",
        "Connections closed at once because the connection limit was reached.",
    ),
    (
        "payhook_polls_total",
        "counter",
        "Status queries made, by provider and outcome (status or failed).",
    ),
    (
        "payhook_sweeps_total",
        "counter",
        "Statement sweeps, by provider and outcome (ok or failed).",
    ),
    (
        "payhook_sweep_found_total",
        "counter",
        "Transactions found in a provider's statement that payhook did not know.",
    ),
    (
        "payhook_escalations_total",
        "counter",
        "Open transactions escalated to NEEDS_REVIEW at their deadline.",
    ),
    (
        "payhook_held_reviews_left_total",
        "counter",
        "Unsigned successes under review that payhook stopped trying to confirm: a person decides.",
    ),
    (
        "payhook_deliveries_total",
        "counter",
        "Event delivery attempts to the merchant, by outcome (delivered, retry, dead, gone).",
    ),
    (
        "payhook_events_dead_total",
        "counter",
        "Deliveries (event, destination) dead-lettered after the retry horizon.",
    ),
    (
        "payhook_destination_disabled",
        "gauge",
        "1 while a destination is disabled because it answered 410 Gone.",
    ),
    (
        "payhook_destination_deliveries_total",
        "counter",
        "Delivery attempts, by destination and outcome (delivered, retry, dead, gone).",
    ),
    (
        "payhook_destination_paused",
        "gauge",
        "1 while an operator has paused the destination (payhook events pause).",
    ),
    (
        "payhook_destination_pending",
        "gauge",
        "Deliveries the destination still has to make.",
    ),
    (
        "payhook_destination_oldest_pending_seconds",
        "gauge",
        "Age of the oldest event the destination still has to receive.",
    ),
    (
        "payhook_destination_disabled_total",
        "counter",
        "Times the destination answered 410 Gone and was disabled.",
    ),
    (
        "payhook_events_pending",
        "gauge",
        "Events in the outbox not yet delivered (read from the store at scrape time).",
    ),
    (
        "payhook_events_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest undelivered event, 0 when none (read from the store at scrape time).",
    ),
    (
        "payhook_review_queue_items",
        "gauge",
        "Items waiting for a person: NEEDS_REVIEW transactions, conflicts, unparsed callbacks (payhook review).",
    ),
    (
        "payhook_transactions_open",
        "gauge",
        "Open transactions by provider and status (PENDING or INDETERMINATE), read from the store at scrape time.",
    ),
    (
        "payhook_build_info",
        "gauge",
        "Always 1; the version label names the running build.",
    ),
    (
        "payhook_callback_ack_seconds",
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
        let _ = write!(
            s,
            "{k}=\"{}\"",
            v.replace('\\', "\\\\").replace('"', "\\\"")
        );
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
                m.add(
                    "payhook_callbacks_total",
                    &[("provider", p), ("outcome", outcome)],
                    0,
                );
            }
            for reason in AUTH_REASONS {
                m.add(
                    "payhook_auth_failures_total",
                    &[("provider", p), ("reason", reason)],
                    0,
                );
            }
            for policy in ["enforce", "log-only"] {
                m.add(
                    "payhook_ip_refusals_total",
                    &[("provider", p), ("policy", policy)],
                    0,
                );
            }
            for (name, outcomes) in [
                ("payhook_polls_total", &["status", "failed"][..]),
                ("payhook_sweeps_total", &["ok", "failed"][..]),
            ] {
                for outcome in outcomes {
                    m.add(name, &[("provider", p), ("outcome", outcome)], 0);
                }
            }
            for name in [
                "payhook_conflicts_total",
                "payhook_escalations_total",
                "payhook_held_reviews_left_total",
                "payhook_sweep_found_total",
            ] {
                m.add(name, &[("provider", p)], 0);
            }
        }
        for outcome in DELIVERY_OUTCOMES {
            m.add("payhook_deliveries_total", &[("outcome", outcome)], 0);
        }
        for name in [
            "payhook_events_dead_total",
            "payhook_destination_disabled_total",
            "payhook_connections_refused_total",
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
            put("payhook_events_pending", b.pending_events.to_string());
            let age_ms = b
                .oldest_pending_at_ms
                .map_or(0, |at| now_ms.saturating_sub(at).max(0));
            put(
                "payhook_events_oldest_pending_age_seconds",
                format!("{}.{:03}", age_ms / 1000, age_ms % 1000),
            );
            put("payhook_review_queue_items", b.review_queue.to_string());
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
                    &series(
                        "payhook_transactions_open",
                        &[("provider", p), ("status", status)],
                    ),
                    n.to_string(),
                );
            }
        }
        put(
            &series(
                "payhook_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))],
            ),
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
        header(&mut out, "payhook_callback_ack_seconds");
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
