//! In-process metrics, rendered as Prometheus text at `/metrics`.
//!
//! Counters are keyed by name and label pairs; label values come from fixed sets
//! (provider names, outcome labels), never from request data, so the series count is
//! bounded. A std `Mutex` suffices: it is held for a map lookup, never across `.await`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the acknowledgement-latency histogram buckets.
const ACK_BUCKETS: [f64; 11] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Help text of each metric family; families not listed render without HELP.
const HELP: &[(&str, &str)] = &[
    (
        "payhook_callbacks_total",
        "Callbacks received, by provider and outcome.",
    ),
    (
        "payhook_auth_failures_total",
        "Callbacks refused with 401, by provider and reason.",
    ),
    (
        "payhook_conflicts_total",
        "Reports that contradicted a terminal status.",
    ),
    (
        "payhook_connections_refused_total",
        "Connections closed at once because the connection limit was reached.",
    ),
    (
        "payhook_polls_total",
        "Status queries made, by provider and outcome (status or failed).",
    ),
    (
        "payhook_sweeps_total",
        "Statement sweeps, by provider and outcome (ok or failed).",
    ),
    (
        "payhook_sweep_found_total",
        "Transactions found in a provider's statement that payhook did not know.",
    ),
    (
        "payhook_escalations_total",
        "Open transactions escalated to NEEDS_REVIEW at their deadline.",
    ),
    (
        "payhook_held_reviews_left_total",
        "Unsigned successes under review that payhook stopped trying to confirm: a person decides.",
    ),
    (
        "payhook_deliveries_total",
        "Event delivery attempts to the merchant, by outcome (delivered, retry, dead, gone).",
    ),
    (
        "payhook_events_dead_total",
        "Deliveries (event, destination) dead-lettered after the retry horizon.",
    ),
    (
        "payhook_destination_disabled",
        "1 while a destination is disabled because it answered 410 Gone.",
    ),
    (
        "payhook_destination_deliveries_total",
        "Delivery attempts, by destination and outcome (delivered, retry, dead, gone).",
    ),
    (
        "payhook_destination_paused",
        "1 while an operator has paused the destination (payhook events pause).",
    ),
    (
        "payhook_destination_pending",
        "Deliveries the destination still has to make.",
    ),
    (
        "payhook_destination_oldest_pending_seconds",
        "Age of the oldest event the destination still has to receive.",
    ),
    (
        "payhook_destination_disabled_total",
        "Times the destination answered 410 Gone and was disabled.",
    ),
    (
        "payhook_callback_ack_seconds",
        "Time from request to acknowledgement of stored callbacks.",
    ),
];

/// The daemon's metrics registry (one per [`crate::Ctx`]).
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<String, u64>>,
    gauges: Mutex<BTreeMap<String, i64>>,
    ack_buckets: [AtomicU64; ACK_BUCKETS.len()],
    ack_count: AtomicU64,
    ack_sum_micros: AtomicU64,
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

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut family = |out: &mut String, name: &str, kind: &str| {
            if let Some((_, help)) = HELP.iter().find(|(n, _)| *n == name) {
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        let mut last = String::new();
        let render_map =
            |out: &mut String,
             map: &BTreeMap<String, String>,
             kind: &str,
             last: &mut String,
             family: &mut dyn FnMut(&mut String, &str, &str)| {
                for (key, value) in map {
                    let name = key.split('{').next().unwrap_or(key);
                    if name != last.as_str() {
                        family(out, name, kind);
                        *last = name.to_string();
                    }
                    let _ = writeln!(out, "{key} {value}");
                }
            };
        let counters: BTreeMap<String, String> = self
            .counters
            .lock()
            .map(|c| c.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
            .unwrap_or_default();
        render_map(&mut out, &counters, "counter", &mut last, &mut family);
        let gauges: BTreeMap<String, String> = self
            .gauges
            .lock()
            .map(|g| g.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
            .unwrap_or_default();
        render_map(&mut out, &gauges, "gauge", &mut last, &mut family);
        family(&mut out, "payhook_callback_ack_seconds", "histogram");
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
        let text = m.render();
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
