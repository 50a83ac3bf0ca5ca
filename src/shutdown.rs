//! Stopping: the signals that start it (SIGTERM from systemd, SIGINT from Ctrl-C), and
//! the one handle every listener and background loop watches for it.
//!
//! [`Shutdown`] follows mini-redis: each task holds its own cheap clone, asks
//! [`Shutdown::is_shutdown`] between units of work, and awaits [`Shutdown::recv`] beside
//! whatever it waits on. A [`Trigger`] starts the shutdown with [`Trigger::fire`], or by
//! being dropped, so a task never waits forever on a stop that can no longer come.

use tokio::sync::watch;

/// Starts a shutdown for every [`Shutdown`] subscribed to it. Dropping it starts it too.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

/// Listens for the shutdown a [`Trigger`] starts; clone one per task.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// A trigger and the first handle listening to it.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx })
}

impl Trigger {
    /// Starts the shutdown (idempotent).
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }

    /// Another handle listening to this trigger.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// True once the shutdown has started.
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow() || self.rx.has_changed().is_err()
    }

    /// Completes once the shutdown has started (at once if it has), and every time it is
    /// awaited after that. Cancel-safe: use it in `select!`.
    pub async fn recv(&mut self) {
        // An error means the trigger was dropped: that starts the shutdown too.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// Completes on the first SIGTERM or SIGINT.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received; shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops payhook");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_handle_hears_a_fired_or_dropped_trigger_and_keeps_hearing_it() {
        let (trigger, mut a) = channel();
        let mut b = trigger.subscribe();
        assert!(!a.is_shutdown());
        let early = tokio::time::timeout(Duration::from_millis(20), a.recv()).await;
        assert!(early.is_err(), "no shutdown yet");
        trigger.fire();
        a.recv().await;
        a.recv().await;
        b.recv().await;
        assert!(a.is_shutdown() && b.is_shutdown());
        let (trigger, mut c) = channel();
        drop(trigger);
        c.recv().await;
        assert!(c.is_shutdown());
    }
}
