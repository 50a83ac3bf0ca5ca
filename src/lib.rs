//! payhook: reliable ingest, reconciliation and forwarding of payment-provider callbacks.
//!
//! # Layout
//! The code follows the pipeline:
//!
//! - [`http`]: the hyper listener. [`http::route`] maps requests to endpoints,
//!   [`http::ingest`] verifies → parses → stores → acknowledges, [`http::client_ip`]
//!   resolves the client address behind trusted proxies, [`http::allowlist`] applies
//!   each provider's source-address policy, [`http::error`] is the one
//!   failure → status mapping. [`http::admin`] is the separate loopback listener where
//!   the merchant's application registers payments (`POST /v1/transactions`).
//! - [`minted`]: per-payment callback URLs, which tie a Daraja or Tujenge callback to
//!   the payment they were minted for.
//! - [`domain`]: the shared vocabulary (provider names, payment kinds, status reports,
//!   verified and parsed callbacks) that every other module speaks.
//! - [`providers`]: one module per provider behind the [`providers::Provider`] trait.
//!   Providers do no I/O.
//! - [`store`]: SQLite. Only this module writes SQL. One writer thread group-commits;
//!   [`store::transactions::apply`] is the one write path for state changes.
//! - [`state`]: the state machine, pure.
//! - [`money`], [`clock`]: exact amounts and epoch-millisecond time.
//! - [`retry`]: pure retry schedules; [`outbound`]: the one outbound HTTP client.
//! - [`reconcile`]: the polling loops that settle open transactions through the
//!   providers' status endpoints, within a per-provider rate limit, and sweep statements
//!   for transactions payhook does not know; [`store::polls`] is their SQL and
//!   [`schedule`] their per-provider plans.
//! - [`forward`]: the forwarder loop, delivering outbox events to each configured
//!   destination signed with [`forward::sign`] (Standard Webhooks);
//!   [`store::destinations`] holds each destination's subscription and pause, and
//!   [`http::feed`] serves the same events as a pull feed.
//! - [`worker`]: the one way a background loop runs (its passes, backoff and stop), and
//!   [`shutdown`]: the signals and the one handle every loop and listener stops on.
//! - [`config`], [`telemetry`], [`metrics`], [`cli`]: running the daemon;
//!   [`section`]: the parsers every configuration table shares, [`secret`]: secrets
//!   that never print and secret files;
//!   [`notify`]: systemd readiness, watchdog and stopping notifications.
//! - [`sample`]: authenticated sample callbacks (`send-test`); [`demo`]: the whole
//!   pipeline against in-process fakes (`payhook demo`).
//!
//! # Invariants
//! 1. A 2xx to a provider means the callback row is committed and fsynced.
//! 2. A callback delivered n times is stored once and applied once.
//! 3. A terminal status never changes except SUCCEEDED → REVERSED.
//! 4. Every settled transition has exactly one event, created in the same commit.
//! 5. No failed poll changes a status; no transaction is failed without a provider's or
//!    an operator's definitive answer (a deadline leads to NEEDS_REVIEW).
//! 6. No secret reaches a log line, the stored headers, or `Debug` output.
//! 7. The merchant is told only what an authenticated source stated: each channel vouches
//!    for what its authentication covers, and anything else is a hint that waits for the
//!    status endpoint, or reaches the merchant marked unconfirmed ([`state::plan`]).
//! 8. An amount is compared with every amount already known for the payment, whatever
//!    the order; two bodies that say different things under one key are both kept, and
//!    the payment is reviewed.
//!
//! # Errors
//! Modules return typed `thiserror` enums shaped by what their caller decides
//! (`StoreError::Unavailable` → 503, `VerifyError` → 401, ...). `anyhow` is used only in
//! [`cli`] and `main.rs`, for start-up glue, with "while ..." context. Loops never die of
//! an error: they record it, reschedule and continue.

#![forbid(unsafe_code)]
// No function longer than 100 lines (the threshold is in clippy.toml).
#![warn(clippy::too_many_lines)]

pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod domain;
pub mod forward;
pub mod http;
pub mod metrics;
pub mod minted;
pub mod money;
pub mod notify;
pub mod outbound;
pub mod providers;
pub mod reconcile;
pub mod retry;
pub mod sample;
pub mod schedule;
pub mod secret;
pub mod section;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod worker;

use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Everything a request handler or background loop needs; cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    /// Validated configuration (read-only).
    pub config: Arc<config::Config>,
    /// The store handle.
    pub store: store::Store,
    /// Enabled providers.
    pub registry: Arc<providers::Registry>,
    /// Metrics registry.
    pub metrics: Arc<metrics::Metrics>,
    /// Poked when a transaction needs polling now (an unconfirmed success).
    pub wake_reconciler: Arc<Notify>,
    /// Poked when an event was written to the outbox.
    pub wake_forwarder: Arc<Notify>,
    /// The reconciler's rate limiters, access tokens and wake-ups.
    pub reconciler: Arc<reconcile::Reconciler>,
    /// The one outbound HTTP client (connection pool shared by the background loops).
    pub client: outbound::HttpClient,
    /// Mints and verifies per-payment callback URLs (`callback_url_keys`).
    pub minter: minted::Minter,
}

/// Why the daemon could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The admin listener could not bind its address.
    #[error("while binding the admin listener {addr}: {source}")]
    Bind {
        /// Configured address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The store could not be opened or migrated.
    #[error("while opening the store {path}: {source}")]
    Store {
        /// Database file.
        path: std::path::PathBuf,
        /// Cause.
        source: store::StoreError,
    },
}

impl Ctx {
    /// Opens the store and builds the providers for `config`.
    pub fn new(config: config::Config) -> Result<Ctx, RunError> {
        let opts = store::StoreOptions {
            path: config.store.path.clone(),
            max_size_bytes: config.store.max_size_bytes,
        };
        let store = store::Store::open(&opts).map_err(|source| RunError::Store {
            path: opts.path.clone(),
            source,
        })?;
        let client = outbound::HttpClient::new();
        let registry = providers::Registry::from_config(&config);
        Ok(Ctx {
            metrics: Arc::new(metrics::Metrics::new(registry.ids())),
            registry: Arc::new(registry),
            reconciler: Arc::new(reconcile::Reconciler::new(&config, client.clone())),
            minter: minted::Minter::new(config.callback_url_keys.clone()),
            config: Arc::new(config),
            store,
            wake_reconciler: Arc::new(Notify::new()),
            wake_forwarder: Arc::new(Notify::new()),
            client,
        })
    }
}

/// Runs the daemon on an already-bound `listener` until `shutdown` completes, then drains
/// and returns. Tests pass a listener on `127.0.0.1:0` and a oneshot; `main` passes the
/// configured address and SIGTERM/SIGINT.
pub async fn run(
    config: config::Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let admin = match &config.admin {
        Some(a) => Some(
            TcpListener::bind(a.listen)
                .await
                .map_err(|source| RunError::Bind {
                    addr: a.listen,
                    source,
                })?,
        ),
        None => None,
    };
    let ctx = tokio::task::block_in_place(|| Ctx::new(config))?;
    serve_with_admin(ctx, listener, admin, shutdown).await;
    Ok(())
}

/// Runs the daemon with a prepared [`Ctx`] (tests use this to keep a handle on it). The
/// admin listener, if configured, binds its configured address.
pub async fn serve(ctx: Ctx, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
    serve_with_admin(ctx, listener, None, shutdown).await
}

/// [`serve`] with an already-bound admin listener (tests bind `127.0.0.1:0`). With `None`
/// and an `[admin]` section, the configured address is bound here.
pub async fn serve_with_admin(
    ctx: Ctx,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let enabled: Vec<&str> = ctx.registry.ids().map(|p| p.as_str()).collect();
    tracing::info!(listen = %addr, store = %ctx.store.path().display(), providers = ?enabled, "payhook started");
    if ctx.store.is_read_only() {
        tracing::error!(store = %ctx.store.path().display(), "the store is read-only: every callback will be answered 503 until it is writable");
    }
    if enabled.is_empty() {
        tracing::warn!("no provider is enabled: every callback route answers 404 until a [providers.*] section is configured");
    }
    // Before anything can write an event: a destination added to the configuration takes
    // exactly the events written from now on (unless it asks for a backfill).
    if let Err(e) = forward::register(&ctx).await {
        tracing::error!(error = %e, "could not record the forward destinations; the forwarder retries");
    }
    // The reconciler and the admin listener stop when shutdown starts: nothing new is
    // claimed or registered. The forwarder stops only after the callback listener has
    // drained, so that events written by the last acknowledged callbacks (and the last
    // polls) still get a delivery pass.
    let (stop, stopping) = shutdown::channel();
    let (stop_forwarder, forwarder_stopping) = shutdown::channel();
    let reconciler = tokio::spawn(reconcile::run(ctx.clone(), stopping.clone()));
    let admin = match (admin, &ctx.config.admin) {
        (Some(l), _) => Some(l),
        (None, Some(a)) => match TcpListener::bind(a.listen).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(listen = %a.listen, error = %e, "cannot bind the admin listener; POST /v1/transactions is unavailable");
                None
            }
        },
        (None, None) => None,
    };
    let admin = admin.map(|l| {
        if let Ok(addr) = l.local_addr() {
            tracing::info!(listen = %addr, "admin listener started");
        }
        tokio::spawn(http::accept_loop(
            l,
            ctx.clone(),
            stopping.clone(),
            http::admin::handle,
        ))
    });
    // Both listeners are bound and the store is open (migrated): systemd hears READY=1
    // once a write commits, then watchdog pings while writes keep committing.
    let notifier = tokio::spawn(notify::run(ctx.store.clone(), stopping.clone()));
    let forwarder = if ctx.config.forward.is_some() {
        Some(tokio::spawn(forward::run(ctx.clone(), forwarder_stopping)))
    } else {
        tracing::info!("no [forward] section: events accumulate in the outbox undelivered");
        None
    };
    let signal = async move {
        shutdown.await;
        notify::stopping();
        stop.fire();
    };
    tokio::join!(http::serve(listener, ctx.clone(), stopping), signal);
    let _ = notifier.await;
    if let Err(e) = reconciler.await {
        tracing::error!(error = %e, "reconciler task failed");
    }
    if let Some(Err(e)) = match admin {
        Some(task) => Some(task.await),
        None => None,
    } {
        tracing::error!(error = %e, "admin listener task failed");
    }
    stop_forwarder.fire();
    if let Some(task) = forwarder {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "the forwarder task failed");
        }
    }
    tracing::info!("payhook stopped");
}
