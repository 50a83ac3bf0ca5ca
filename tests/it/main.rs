//! payhook's integration tests: one binary, one module per area. Every test runs the real
//! daemon on 127.0.0.1:0 against a real SQLite file in a temporary directory; fake
//! provider and merchant endpoints are small HTTP servers on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

/// `payhook events ...` as an operator runs it (issue 5).
mod cli_events;
/// The operator's first hour: send-test, operator commands without secrets, the review
/// queue worked down to empty, completions and man page (issue 17).
mod cli_operator;
/// Crash safety: SIGKILL mid-load, restart, check the store against the acks (issue 6).
mod crash;
/// Several forward destinations, pause and resume, and the pull feed.
mod destinations;
/// The forwarder: signed delivery, retries, order, dead letters, replay (issue 5).
mod forward;
/// Hostile input against the running daemon: truncated, stalled, oversized, invalid
/// UTF-8, thousands of idle connections (issue 6).
mod hostile;
/// Callback ingest: signatures, dedup, conflicts, limits, store failures (issue 2).
mod ingest;
/// The source layout: no import cycle between the spine modules, no file over 900 lines.
mod layout;
/// Per-payment callback URLs for Daraja and Tujenge, minted by the admin API and the CLI.
mod minted;
/// Money truth: the merchant is told only what an authenticated source stated.
mod money_truth;
/// Debian's nginx with deploy/nginx/payhook.conf in front of the binary.
mod nginx;
/// Operating the binary in production: secrets in logs and the database, metrics,
/// systemd readiness and watchdog.
mod operate;
/// The shared outbound HTTP client's bounds.
mod outbound;
/// The binary as a process: CLI, signals, logs (issue 2).
mod process;
/// Property tests: providers' verify/parse and client-IP resolution on arbitrary input
/// (issue 6).
mod props;
/// The reconciler against fake provider APIs (issue 4).
mod reconcile;
/// schema.sql equals the migrations (issue 2).
mod schema;
/// The seeded convergence simulation: thousands of payments through lossy callbacks and
/// faulty status APIs end at the providers' truth, each settlement forwarded once (issue 6).
mod simulation;
/// Daraja, Jenga and Tujenge callbacks, source-address allowlists behind a trusted
/// proxy, unsigned successes held for confirmation (issue 3).
mod unsigned;
