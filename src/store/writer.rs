//! The writer: one thread owns the one read-write connection. Callers hand it closures
//! ([`super::Store::write`]); it runs the closures that queued up meanwhile inside one SQL
//! transaction (each in its own SAVEPOINT, so one failing closure does not undo the
//! others) and commits once. That is group commit: throughput does not collapse to one
//! fsync per request.
//!
//! Durability is pipelined. The writer commits with `synchronous=NORMAL`, which writes the
//! WAL without waiting for the disk, and hands the batch's answers to a syncer thread. The
//! syncer `fdatasync`s the WAL file once for every batch committed since its last sync and
//! only then answers their callers, so "2xx means on disk" holds exactly as with
//! `synchronous=FULL`, while the writer already runs the next batch instead of waiting for
//! the disk.
//!
//! While an fsync is in flight the writer keeps its transaction open and runs every job
//! that arrives inside it, and commits only when the syncer is free again: the callers
//! wait for the next fsync either way, and each commit writes every page its transaction
//! touched to the WAL (the rightmost leaf of every table and index, for appends), so one
//! commit per fsync writes those pages once, not once per queued batch. While the syncer
//! is idle, the writer commits once its transaction holds `IDLE_BATCH` jobs instead of
//! first draining the whole queue: the jobs still queued then run in the next transaction,
//! held open during this one's fsync, so that the disk and the writer work at the same
//! time. Draining first made every caller of a batch wait for the last job and then for an
//! fsync, and sent all their answers, and so the providers' next requests, out in one
//! burst. Without a syncer (`synchronous=FULL`, below) the writer drains the queue as
//! before, since each of its commits waits for its own fsync.
//!
//! An fsync that fails poisons the store: everything after it is refused (503) until
//! payhook restarts, because after a failed fsync the kernel may have dropped the pages
//! and a later "successful" fsync proves nothing. The same goes for the database file's
//! fsync after a checkpoint pass, and for a checkpoint that hits an I/O error. If the WAL
//! file cannot be opened for syncing, the writer falls back to `synchronous=FULL` and
//! answers after its commit.
//!
//! A consequence the forwarder relies on: whatever a writer job *reads* is on disk by the
//! time its answer arrives, because the fsync that answers it covers every commit before
//! its batch as well. A reader connection may see a commit that is not yet synced, so
//! anything that must not escape before it is durable (the events the forwarder claims)
//! is picked in a writer job, never through [`super::Store::read`].

use super::checkpoint::{checkpoints_paused, CATCH_UP_AT_LEAST_EVERY_BATCHES};
#[cfg(feature = "failpoints")]
use super::failpoint;
use super::{migrations, StoreError, StoreOptions, BUSY_TIMEOUT, STATEMENT_CACHE};
use rusqlite::{Connection, ErrorCode};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most closures committed together. Bounds the latency one commit adds to the callers
/// queued behind it.
const MAX_BATCH: usize = 512;
/// How many jobs the writer takes into its transaction while the syncer is idle before it
/// commits (module docs); a transaction held during an fsync may grow beyond it, up to
/// [`MAX_BATCH`]. Measured at 1, 8, 16, 32 and 512 (docs/benchmarks.md): one job per commit
/// made every commit write each B-tree's rightmost page to the WAL for a single caller,
/// which a disk with fast fsyncs showed to cost more than it saved; 512 (draining the
/// queue) made the disk wait for the writer; 16 and 32 did best on both kinds of disk.
const IDLE_BATCH: usize = 32;
/// Bytes the WAL file is truncated back to when SQLite restarts it.
pub(super) const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// What the writer's queue carries.
pub(super) enum Job {
    /// A closure to run.
    Write {
        /// Run inside its own SAVEPOINT, so that its failure undoes only itself. `false`
        /// for jobs that change nothing when they fail ([`super::Store::write_prechecked`]).
        savepoint: bool,
        /// Runs the closure, reports whether it succeeded, and returns what to do once the
        /// batch's commit outcome is known. Given `None`, it runs nothing (its batch could
        /// not start) and only produces its completion.
        run: RunJob,
    },
    /// The syncer has answered everything handed to it: commit the transaction held open
    /// meanwhile, if any.
    Synced,
}

type RunJob = Box<dyn FnOnce(Option<&Connection>) -> (bool, Completion) + Send>;
pub(super) type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

pub(super) fn open_writer(opts: &StoreOptions) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(&opts.path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Every statement the writer runs stays compiled. rusqlite's default keeps 16, fewer
    // than the store's statements, so they evicted each other and the writer spent much of
    // its time re-parsing SQL.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // WAL + FULL: a commit returns only after the WAL is fsynced ("2xx means on disk").
    // `Store::open` then hands that fsync to the syncer thread where it can (module docs).
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "could not enable WAL (journal_mode={mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints never run inside a commit (see the `checkpoint` module).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
    // Each job runs in a SAVEPOINT, whose sub-journal would otherwise be a temporary file
    // written for every page a job touches: keep it (and other temporaries) in memory.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    if let Some(max) = opts.max_size_bytes {
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages = (max as i64 / page_size).max(1);
        conn.pragma_update(None, "max_page_count", pages)?;
    }
    migrations::migrate(&mut conn)?;
    Ok(conn)
}

/// `<db>-wal`, the file SQLite appends commits to in WAL mode.
fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// Opens the WAL for the syncer and switches the writer to `synchronous=NORMAL`, or
/// returns `None` (and the writer stays on `FULL`) when that is not possible.
pub(super) fn pipelined_sync(conn: &Connection, db: &Path) -> Option<File> {
    // A read transaction makes SQLite open (and, for a new database, create) the WAL.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .ok()?;
    // Read-only is enough: fdatasync flushes the file, whatever descriptor names it. The
    // descriptor stays open for the store's lifetime; SQLite takes no locks on this file,
    // so opening and closing it cannot disturb SQLite's own locking.
    let wal = match File::open(wal_path(db)) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the WAL for pipelined syncing; every commit waits for its own fsync");
            return None;
        }
    };
    conn.pragma_update(None, "synchronous", "NORMAL").ok()?;
    Some(wal)
}

pub(super) fn make_job<T, F>(
    f: F,
    savepoint: bool,
) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let run = Box::new(move |conn: Option<&Connection>| {
        let result = match conn {
            Some(conn) => f(conn),
            None => Err(StoreError::Unavailable("batch aborted".into())),
        };
        let ok = result.is_ok();
        let completion: Completion = Box::new(move |commit| {
            // The caller may have gone away (client disconnected); nothing to tell then.
            let _ = tx.send(commit.and(result));
        });
        (ok, completion)
    });
    (Job::Write { savepoint, run }, rx)
}

/// The writer's side of the syncer thread.
pub(super) struct Syncer {
    /// Each committed batch's completions, to answer once an fsync covers them.
    pub(super) groups: std::sync::mpsc::Sender<Vec<Completion>>,
    /// Batches handed to the syncer and not yet answered.
    pub(super) in_flight: Arc<AtomicUsize>,
}

impl Syncer {
    /// Hands a committed batch's completions over, or answers them with an error if the
    /// syncer has stopped.
    fn hand_over(&self, completions: Vec<Completion>) {
        #[cfg(feature = "ack-before-fsync")]
        let completions = {
            // The defect the power-cut test must catch (feature `ack-before-fsync`, used
            // only by its documented proof run): answer at COMMIT, sync afterwards.
            answer(completions, &Ok(()));
            Vec::new()
        };
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if let Err(unsent) = self.groups.send(completions) {
            // The syncer is gone, so nothing is in flight any more: never hold again.
            self.in_flight.store(0, Ordering::Release);
            for done in unsent.0 {
                done(Err(StoreError::Unavailable("syncer stopped".into())));
            }
        }
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }
}

pub(super) fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    syncer: Option<Syncer>,
    poisoned: &AtomicBool,
    catch_up: &AtomicBool,
) {
    // The transaction jobs have run in and that is not committed yet.
    let mut open: Option<Batch> = None;
    let mut batches_since_catch_up: u32 = 0;
    loop {
        // Hold the transaction open while an fsync is in flight (module docs), up to a
        // batch's worth of jobs; `Job::Synced` wakes the writer when the syncer is free. A
        // batch that can no longer commit is closed at once, so that only the jobs already
        // in it fail with it.
        let hold = match (&open, &syncer) {
            (Some(batch), Some(syncer)) => batch.open() && syncer.busy(),
            _ => false,
        };
        if !hold {
            if let Some(batch) = open.take() {
                commit(&conn, batch, syncer.as_ref(), poisoned);
                batches_since_catch_up += 1;
                if !checkpoints_paused()
                    && !poisoned.load(Ordering::Acquire)
                    && (catch_up.swap(false, Ordering::AcqRel)
                        || batches_since_catch_up >= CATCH_UP_AT_LEAST_EVERY_BATCHES)
                {
                    batches_since_catch_up = 0;
                    catch_up_checkpoint(&conn, poisoned, catch_up);
                }
            }
        }
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(job) = next.take() {
            if let Job::Write { savepoint, run } = job {
                if poisoned.load(Ordering::Acquire) {
                    // After a failed fsync: the open transaction is rolled back (`commit`),
                    // and the job that just arrived is refused without running.
                    if let Some(batch) = open.take() {
                        commit(&conn, batch, syncer.as_ref(), poisoned);
                    }
                    answer([run(None).1], &Err(POISONED.to_string()));
                } else {
                    open.get_or_insert_with(|| Batch::begin(&conn))
                        .run(&conn, savepoint, run);
                }
            }
            // While an fsync is in flight (or with no syncer) every queued job joins the
            // transaction; with the syncer idle, it commits once it holds IDLE_BATCH jobs,
            // so that the disk starts on them while the writer runs the rest (module docs).
            let take_more = open.as_ref().is_none_or(|batch| {
                batch.open()
                    && (syncer.as_ref().is_none_or(Syncer::busy)
                        || batch.completions.len() < IDLE_BATCH)
            });
            if take_more {
                next = rx.try_recv().ok();
            }
        }
    }
    if let Some(batch) = open.take() {
        commit(&conn, batch, syncer.as_ref(), poisoned);
    }
    tracing::debug!("store writer stopped");
}

/// Commits `batch` and hands its answers to the syncer, or answers them itself when the
/// commit failed or was already synced (`synchronous=FULL`). After a failed fsync nothing
/// more is committed: the batch is rolled back and its callers are told why.
fn commit(conn: &Connection, mut batch: Batch, syncer: Option<&Syncer>, poisoned: &AtomicBool) {
    if poisoned.load(Ordering::Acquire) {
        batch.aborted.get_or_insert_with(|| POISONED.to_string());
    }
    let (outcome, completions) = batch.finish(conn);
    match (&outcome, syncer) {
        // Committed to the WAL but not yet on disk: the syncer answers once it is.
        (Ok(()), Some(syncer)) => syncer.hand_over(completions),
        _ => answer(completions, &outcome),
    }
}

/// Between commits, nothing of ours is in flight: finish what the background checkpointer
/// started so the next commit restarts the WAL (`checkpoint` module docs).
fn catch_up_checkpoint(conn: &Connection, poisoned: &AtomicBool, catch_up: &AtomicBool) {
    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0)) {
        // The background checkpointer is in the middle of a pass: try again after the next
        // batch rather than wait for it to ask again.
        Ok(busy) if busy != 0 => catch_up.store(true, Ordering::Release),
        Ok(_) => {}
        Err(e) if is_io_failure(&e) => poison(poisoned, &format!("catch-up checkpoint: {e}")),
        Err(e) => {
            tracing::debug!(error = %e, "catch-up checkpoint failed; the background one continues");
        }
    }
}

/// Why every write is refused after a failed fsync.
const POISONED: &str = "an fsync of the WAL failed earlier; restart payhook once the disk is fixed";

/// The syncer: one `fdatasync` of the WAL for every batch committed since the previous
/// one, then their answers; then, once nothing handed to it is left, a wake-up for the
/// writer, which may be holding a transaction open until now (module docs). Runs until
/// the writer drops its sender.
pub(super) fn sync_loop(
    wal: &File,
    batches: std::sync::mpsc::Receiver<Vec<Completion>>,
    poisoned: &AtomicBool,
    in_flight: &AtomicUsize,
    writer: &mpsc::WeakSender<Job>,
) {
    // However this loop ends (a panic included), the writer must not keep holding a
    // transaction for an fsync that will never come.
    let gone = SyncerGone {
        batches: Some(batches),
        in_flight,
        writer,
    };
    let Some(batches) = gone.batches.as_ref() else {
        return;
    };
    while let Ok(first) = batches.recv() {
        let mut synced = vec![first];
        synced.extend(batches.try_iter());
        // What this fsync covers, for the power-cut test (module `failpoint`).
        #[cfg(feature = "failpoints")]
        let covered = wal.metadata().map(|m| m.len());
        let outcome = if poisoned.load(Ordering::Acquire) {
            Err(POISONED.to_string())
        } else {
            wal.sync_data().map_err(|e| {
                poison(poisoned, &format!("fsync of the WAL: {e}"));
                format!("fsync of the WAL failed: {e}")
            })
        };
        #[cfg(feature = "failpoints")]
        if let (Ok(()), Ok(len)) = (&outcome, covered) {
            failpoint::wal_synced(len);
        }
        let groups = synced.len();
        answer(synced.into_iter().flatten(), &outcome);
        if in_flight.fetch_sub(groups, Ordering::AcqRel) == groups {
            // A full queue wakes the writer anyway, and a closed one means it is stopping.
            if let Some(queue) = writer.upgrade() {
                let _ = queue.try_send(Job::Synced);
            }
        }
    }
    tracing::debug!("store syncer stopped");
}

/// Tells the writer, when the syncer stops, that nothing is in flight any more.
struct SyncerGone<'a> {
    batches: Option<std::sync::mpsc::Receiver<Vec<Completion>>>,
    in_flight: &'a AtomicUsize,
    writer: &'a mpsc::WeakSender<Job>,
}

impl Drop for SyncerGone<'_> {
    fn drop(&mut self) {
        // The queue closes first: a batch handed over after this fails to send, and
        // `Syncer::hand_over` then clears the count itself; one handed over before it is
        // counted already, and cleared here. (Batches left in the queue are dropped
        // unanswered: their callers learn the writer stopped, never a success.)
        self.batches.take();
        self.in_flight.store(0, Ordering::Release);
        if let Some(queue) = self.writer.upgrade() {
            let _ = queue.try_send(Job::Synced);
        }
    }
}

/// Refuses every write from now on (module docs): after a failed fsync the kernel may
/// have dropped the pages it could not write, and a later fsync that succeeds proves
/// nothing. That holds for the database file as much as for the WAL: a checkpoint that
/// lost pages there and then restarted the WAL would lose acknowledged callbacks.
pub(super) fn poison(poisoned: &AtomicBool, what: &str) {
    if !poisoned.swap(true, Ordering::AcqRel) {
        tracing::error!(
            failed = what,
            "the disk failed a write; refusing writes until restart"
        );
    }
}

/// True for an SQLite error that means the disk failed a read, write or sync, rather
/// than a lock held elsewhere.
pub(super) fn is_io_failure(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::SystemIoFailure)
}

/// Tells every caller of a batch how its commit ended, once that is known for good.
fn answer(completions: impl IntoIterator<Item = Completion>, outcome: &Result<(), String>) {
    for done in completions {
        done(outcome.clone().map_err(StoreError::Unavailable));
    }
}

/// Jobs run in one SQL transaction that is not committed yet, each in its own SAVEPOINT
/// unless it is prechecked, and their completions.
struct Batch {
    completions: Vec<Completion>,
    /// Set once the transaction cannot commit: every later job is only told so.
    aborted: Option<String>,
}

impl Batch {
    fn begin(conn: &Connection) -> Batch {
        Batch {
            completions: Vec::with_capacity(MAX_BATCH),
            aborted: conn
                .execute_batch("BEGIN IMMEDIATE")
                .err()
                .map(|e| StoreError::from(e).to_string()),
        }
    }

    /// True while the batch can take another job: it can still commit and is not full.
    fn open(&self) -> bool {
        self.aborted.is_none() && self.completions.len() < MAX_BATCH
    }

    fn run(&mut self, conn: &Connection, savepoint: bool, run: RunJob) {
        if self.aborted.is_none() && savepoint {
            // Cached: parsing these two statements again for every job costs the writer
            // more than running them.
            if let Err(e) = conn
                .prepare_cached("SAVEPOINT job")
                .and_then(|mut s| s.execute([]))
            {
                self.aborted = Some(StoreError::from(e).to_string());
            }
        }
        if self.aborted.is_some() {
            self.completions.push(run(None).1);
            return;
        }
        let before = conn.total_changes();
        let (ok, done) = run(Some(conn));
        self.completions.push(done);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back by itself (SQLITE_FULL, IOERR,
            // ...): every job so far in this batch is lost, and must be told so.
            self.aborted =
                Some("transaction rolled back by SQLite (disk full or I/O error)".into());
            return;
        }
        let end = match (savepoint, ok) {
            (true, true) => conn
                .prepare_cached("RELEASE job")
                .and_then(|mut s| s.execute([]))
                .map(|_| ()),
            (true, false) => conn.execute_batch("ROLLBACK TO job; RELEASE job"),
            (false, true) => Ok(()),
            (false, false) if conn.total_changes() == before => Ok(()),
            (false, false) => {
                // Part of it may be in the transaction, and only the whole batch can be
                // undone: commit none of it.
                self.aborted = Some("a write failed halfway; the batch was rolled back".into());
                return;
            }
        };
        if let Err(e) = end {
            self.aborted = Some(StoreError::from(e).to_string());
        }
    }

    /// Commits (or, if a job broke the transaction, rolls back) and returns the outcome
    /// with every job's completion, to be called exactly once each when the outcome is
    /// durable (or known to have failed).
    fn finish(self, conn: &Connection) -> (Result<(), String>, Vec<Completion>) {
        let outcome = match self.aborted {
            Some(msg) => Err(msg),
            None => conn
                .execute_batch("COMMIT")
                .map_err(|e| StoreError::from(e).to_string()),
        };
        if let Err(msg) = &outcome {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            tracing::warn!(error = %msg, jobs = self.completions.len(), "store commit failed");
        }
        (outcome, self.completions)
    }
}

#[cfg(test)]
mod tests;
