//! systemd service notification (`Type=notify`, `WatchdogSec=`): `READY=1` once the store
//! is migrated and takes a durable write and the listeners are bound, `WATCHDOG=1` only
//! after the writer commits again, `STOPPING=1` when the drain begins.
//!
//! Without `NOTIFY_SOCKET` (not under systemd, or in tests) nothing is sent. The protocol
//! itself is the `sd-notify` crate's.

use crate::shutdown::Shutdown;
use crate::store::Store;
use sd_notify::NotifyState;
use std::time::Duration;

/// How long readiness waits between two failed write probes.
const READY_RETRY: Duration = Duration::from_secs(1);
/// Shortest interval between watchdog pings, whatever `WATCHDOG_USEC` says.
const MIN_PING_INTERVAL: Duration = Duration::from_millis(50);

/// Whether a service manager listens (`NOTIFY_SOCKET` is set).
fn supervised() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Sends `READY=1` once a durable write succeeds (the caller has bound the listeners and
/// opened, hence migrated, the store), then, when systemd asked for a watchdog, pings at
/// half its interval for as long as the writer keeps committing, until `stop`.
///
/// The ping is the readiness probe's write through the one writer thread, not a timer: a
/// writer that is stuck or failing stops the pings, and systemd restarts payhook after
/// `WatchdogSec=`.
pub async fn run(store: Store, mut stop: Shutdown) {
    if !supervised() {
        return;
    }
    let mut warned = false;
    loop {
        match store.ping().await {
            Ok(()) => break,
            Err(e) if !warned => {
                warned = true;
                tracing::error!(error = %e, "not ready: the store does not take a durable write; retrying every second before telling systemd");
            }
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(READY_RETRY) => {}
            () = stop.recv() => return,
        }
    }
    send(&[NotifyState::Ready, NotifyState::Status("ready")]);
    tracing::info!("ready: systemd notified");
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (interval / 2).max(MIN_PING_INTERVAL);
    tracing::debug!(every = ?every, "watchdog pings on every committed write probe");
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.recv() => return,
        }
        match tokio::time::timeout(every, store.ping()).await {
            Ok(Ok(())) => send(&[NotifyState::Watchdog]),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "watchdog: the store did not commit; no ping (systemd restarts payhook when this lasts WatchdogSec)");
            }
            Err(_) => {
                tracing::warn!(waited = ?every, "watchdog: the writer did not commit in time; no ping");
            }
        }
    }
}

/// Tells systemd the drain has begun (`STOPPING=1`).
pub fn stopping() {
    if supervised() {
        send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
    }
}
