//! The one way payhook runs a background loop (the reconciler's per-provider loops, the
//! statement sweeps, the forwarder, the store's checkpointer).
//!
//! Each pass of a loop reports a [`Step`]: it did work (pass again at once), it is idle
//! (wait until its next due time, a wake-up, or shutdown), or it failed (wait what the
//! loop's [`Backoff`] says, so a failing store or provider is not hammered). A [`Worker`]
//! turns that report into the wait, logs a failing streak once when it starts and once
//! when it ends, and stops on the daemon's one [`Shutdown`] handle. The loops never die
//! of an error: they report it and pass again later.
//!
//! The checkpointer is a thread (it blocks on SQLite), so it cannot await a [`Shutdown`];
//! it reports the same [`Step`] to the same [`Backoff`] and stops when its channel closes.

use crate::shutdown::Shutdown;
use std::future::Future;
use std::time::Duration;

/// What one pass of a background loop did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// It did work and there may be more: pass again at once.
    Busy,
    /// Nothing is due: wait at most this long (a wake-up ends the wait sooner).
    Idle(Duration),
    /// It failed, for this reason: wait the loop's [`Backoff`] pause, then try again.
    Failed(String),
}

/// How long a loop waits after failures: `first` after the first, twice as long after
/// each next one, at most `max`. A pass that does not fail starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Pause after the first failure of a streak.
    pub first: Duration,
    /// Longest pause.
    pub max: Duration,
    /// The pause after the last failure, while failing.
    failing: Option<Duration>,
}

impl Backoff {
    /// Pauses growing from `first` to `max`.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            failing: None,
        }
    }

    /// The same pause after every failure.
    pub const fn constant(pause: Duration) -> Backoff {
        Backoff::new(pause, pause)
    }

    /// True while the last pass failed.
    pub fn is_failing(&self) -> bool {
        self.failing.is_some()
    }

    /// The wait after a pass that reported `step` (`None`: pass again at once), and
    /// whether that pass started (`Some(true)`) or ended (`Some(false)`) a failing streak.
    pub fn after(&mut self, step: &Step) -> (Option<Duration>, Option<bool>) {
        match step {
            Step::Busy => (None, self.failing.take().map(|_| false)),
            Step::Idle(pause) => (Some(*pause), self.failing.take().map(|_| false)),
            Step::Failed(_) => {
                let started = self.failing.is_none();
                let next = self
                    .failing
                    .map_or(self.first, |d| (d * 2).min(self.max))
                    .min(self.max);
                self.failing = Some(next);
                (Some(next), started.then_some(true))
            }
        }
    }
}

/// A background loop's runner: its name (for logs), its backoff and the shutdown it
/// stops on.
#[derive(Debug)]
pub struct Worker {
    name: String,
    backoff: Backoff,
    shutdown: Shutdown,
}

impl Worker {
    /// A runner for the loop `name`.
    pub fn new(name: impl Into<String>, backoff: Backoff, shutdown: Shutdown) -> Worker {
        Worker {
            name: name.into(),
            backoff,
            shutdown,
        }
    }

    /// True once shutdown has started: the loop should return.
    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_shutdown()
    }

    /// Runs `pass` unless shutdown starts first (`None`). Only for passes that are safe to
    /// drop halfway.
    pub async fn interruptible<T>(&mut self, pass: impl Future<Output = T>) -> Option<T> {
        if self.is_stopping() {
            return None;
        }
        tokio::select! {
            out = pass => Some(out),
            () = self.shutdown.recv() => None,
        }
    }

    /// Waits as `step` says: not at all after work, until the idle time passes or `wake`
    /// completes, or the backoff's pause after a failure. Returns false once shutdown has
    /// started (the loop then returns).
    pub async fn wait(&mut self, step: Step, wake: impl Future<Output = ()>) -> bool {
        let (pause, streak) = self.backoff.after(&step);
        match (streak, &step) {
            (Some(true), Step::Failed(why)) => {
                tracing::warn!(worker = %self.name, error = %why, "failed; retrying with backoff");
            }
            (Some(false), _) => tracing::info!(worker = %self.name, "working again"),
            (_, Step::Failed(why)) => {
                tracing::debug!(worker = %self.name, error = %why, "still failing");
            }
            _ => {}
        }
        let Some(pause) = pause else {
            return !self.is_stopping();
        };
        tokio::select! {
            () = self.shutdown.recv() => false,
            () = wake => !self.is_stopping(),
            () = tokio::time::sleep(pause) => !self.is_stopping(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_up_to_the_max_and_a_success_starts_over() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(200), ms(700));
        let failed = Step::Failed("store".into());
        assert_eq!(b.after(&failed), (Some(ms(200)), Some(true)));
        assert_eq!(b.after(&failed), (Some(ms(400)), None));
        assert_eq!(b.after(&failed), (Some(ms(700)), None));
        assert_eq!(b.after(&failed), (Some(ms(700)), None));
        assert!(b.is_failing());
        assert_eq!(b.after(&Step::Busy), (None, Some(false)));
        assert_eq!(b.after(&failed), (Some(ms(200)), Some(true)));
        assert_eq!(b.after(&Step::Idle(ms(5))), (Some(ms(5)), Some(false)));
        assert_eq!(b.after(&Step::Idle(ms(5))), (Some(ms(5)), None));
        let mut c = Backoff::constant(ms(100));
        assert_eq!(c.after(&failed).0, Some(ms(100)));
        assert_eq!(c.after(&failed).0, Some(ms(100)));
    }

    #[tokio::test]
    async fn a_worker_stops_waiting_on_shutdown_or_a_wake_up() {
        let (trigger, shutdown) = crate::shutdown::channel();
        let mut w = Worker::new("test", Backoff::constant(Duration::from_secs(60)), shutdown);
        assert!(w.wait(Step::Busy, std::future::pending()).await);
        assert!(w.wait(Step::Idle(Duration::from_secs(60)), async {}).await);
        let fire = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            trigger.fire();
        };
        let (kept, ()) = tokio::join!(
            w.wait(Step::Failed("x".into()), std::future::pending()),
            fire
        );
        assert!(!kept);
        assert!(w.is_stopping());
        assert_eq!(w.interruptible(std::future::pending::<()>()).await, None);
    }
}
