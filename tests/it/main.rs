//! payhook's integration tests: one binary, one module per area. Every test runs the real
//! daemon on 127.0.0.1:0 against a real SQLite file in a temporary directory; fake
//! provider and merchant endpoints are small HTTP servers on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

/// `payhook events ...` as an operator runs it.
mod cli_events;
/// The operator's first hour: send-test, operator commands without secrets, the review
/// queue worked down to empty, completions and man page.
mod cli_operator;
/// Crash safety: SIGKILL mid-load, restart, check the store against the acks.
mod crash;
/// Several forward destinations, pause and resume, and the pull feed.
mod destinations;
/// The forwarder: signed delivery, retries, order, dead letters, replay.
mod forward;
/// Hostile input against the running daemon: truncated, stalled, oversized, invalid
/// UTF-8, thousands of idle connections.
mod hostile;
/// Callback ingest: signatures, dedup, conflicts, limits, store failures.
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
/// The binary as a process: CLI, signals, logs.
mod process;
/// Property tests: providers' verify/parse and client-IP resolution on arbitrary input.
mod props;
/// The reconciler against fake provider APIs.
mod reconcile;
/// schema.sql equals the migrations.
mod schema;
/// The seeded convergence simulation: thousands of payments through lossy callbacks and
/// faulty status APIs end at the providers' truth, each settlement forwarded once.
mod simulation;
/// Daraja, Jenga and Tujenge callbacks, source-address allowlists behind a trusted
/// proxy, unsigned successes held for confirmation.
mod unsigned;
