//! The SQLite store: the only module that writes SQL.
//!
//! One writer thread owns the one read-write connection. Callers hand it closures
//! ([`Store::write`]); it runs every closure that queued up while the previous commit was
//! syncing inside one SQL transaction (each in its own SAVEPOINT, so one failing closure
//! does not undo the others), commits once, and only then answers each caller. That is
//! group commit: `synchronous=FULL` keeps "2xx means on disk" while throughput does not
//! collapse to one fsync per request.
//!
//! WAL checkpoints are split so that the commit path does not pay for them and the WAL
//! still cannot grow without bound. A background thread on its own connection copies the
//! WAL into the database often (PASSIVE: it never blocks the writer). That alone never
//! *finishes* under continuous load, because the writer keeps appending, and SQLite only
//! restarts the WAL from its beginning after a checkpoint that caught up completely. So
//! every [`CATCH_UP_EVERY_BATCHES`] batches the writer itself runs a PASSIVE checkpoint
//! between two commits: the background thread has already copied nearly everything, so
//! this copies only the last few frames, and the next commit starts the WAL over.
//! `journal_size_limit` then truncates the file back, so the disk footprint stays bounded.
//!
//! Reads ([`Store::read`]) use a small pool of read-only connections; in WAL mode they
//! never block the writer.

pub mod callbacks;
pub mod events;
pub mod migrations;
pub mod polls;
pub mod queries;
pub mod transactions;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most closures committed together. Bounds the latency one commit adds to the callers
/// queued behind it.
const MAX_BATCH: usize = 512;
/// Queue depth in front of the writer; beyond it callers wait (back-pressure).
const QUEUE_DEPTH: usize = 8192;
/// How long a connection waits on a lock held by another process (e.g. the CLI, or a
/// merchant's INSERT) before the write fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the background checkpointer copies the WAL into the database. Often, so
/// that the writer's own catch-up checkpoint has little left to copy.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// Every this many batches the writer completes a checkpoint itself (see module docs).
pub const CATCH_UP_EVERY_BATCHES: u32 = 64;
/// Bytes the WAL file is truncated back to when SQLite restarts it.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

/// Why a store operation failed, shaped by what callers decide.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot take writes now (full, read-only, moved, I/O error, locked, the
    /// writer gone). Callers answer 503 so that providers retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A BitPesa nonce seen before arrived with a different body.
    #[error("nonce already used with a different body")]
    NonceReplay,
    /// The row asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A request that contradicts what is stored (e.g. resolving a settled transaction).
    #[error("{0}")]
    Refused(String),
    /// The database was written by a newer payhook.
    #[error("database schema version {found} is newer than this payhook knows ({known})")]
    TooNew {
        /// Version found in the file.
        found: i64,
        /// Latest version this binary knows.
        known: i64,
    },
    /// Any other SQLite error: a bug or corruption, not a passing condition.
    #[error("sqlite: {0}")]
    Sql(rusqlite::Error),
}

impl StoreError {
    /// True when retrying later may succeed (maps to 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(
                ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed,
            ) => StoreError::Unavailable(e.to_string()),
            _ => StoreError::Sql(e),
        }
    }
}

/// Options for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Database file; created if missing.
    pub path: PathBuf,
    /// Refuse writes (503) once the file would exceed this size. `None`: no cap.
    pub max_size_bytes: Option<u64>,
}

/// A job for the writer: runs inside a SAVEPOINT, reports whether it succeeded, and
/// returns what to do once the batch's commit outcome is known. Given `None`, it runs
/// nothing (its batch could not start) and only produces its completion.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Completion) + Send>;
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Cheap, cloneable handle to the store. Dropping the last clone stops the writer after
/// it has committed everything queued.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// The writer's queue; `None` only while dropping.
    jobs: Option<mpsc::Sender<Job>>,
    path: PathBuf,
    /// True when the database file could only be opened read-only.
    read_only: bool,
    /// Idle read-only connections; a std Mutex because no `.await` happens while held.
    readers: Mutex<Vec<Connection>>,
    /// Tells the checkpointer thread to stop (by being dropped).
    stop_checkpointer: Option<std::sync::mpsc::Sender<()>>,
    /// Joined on drop, so the last commit and the final checkpoint finish before exit.
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue lets the writer commit what is queued and stop; closing the
        // stop channel ends the checkpointer after a final TRUNCATE checkpoint.
        self.jobs.take();
        self.stop_checkpointer.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn open_writer(opts: &StoreOptions) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(&opts.path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL + FULL: a commit returns only after the WAL is fsynced ("2xx means on disk").
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "could not enable WAL (journal_mode={mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints never run inside a commit (see module docs).
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

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) and migrates the database, and starts the writer and
    /// checkpointer threads.
    pub fn open(opts: &StoreOptions) -> Result<Store, StoreError> {
        let conn = open_writer(opts)?;
        let read_only = conn.is_readonly(rusqlite::DatabaseName::Main)?;
        let (jobs, rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let writer = std::thread::Builder::new()
            .name("payhook-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start writer: {e}")))?;
        let (stop_tx, stop_rx) = std::sync::mpsc::channel();
        let ckpt_path = opts.path.clone();
        let checkpointer = std::thread::Builder::new()
            .name("payhook-checkpoint".into())
            .spawn(move || checkpoint_loop(&ckpt_path, stop_rx))
            .map_err(|e| StoreError::Unavailable(format!("cannot start checkpointer: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                jobs: Some(jobs),
                path: opts.path.clone(),
                read_only,
                readers: Mutex::new(Vec::new()),
                stop_checkpointer: Some(stop_tx),
                threads: vec![writer, checkpointer],
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// True when the file could only be opened read-only: every write will fail as
    /// unavailable (503) until an operator fixes its permissions or mount.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    fn queue(&self) -> Result<&mpsc::Sender<Job>, StoreError> {
        self.inner
            .jobs
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("writer stopped".into()))
    }

    /// Runs `f` on the writer inside the next group commit and returns its result once the
    /// commit is durable. If `f` fails, its changes are rolled back and the others in the
    /// batch are unaffected; if the commit fails, every caller in the batch gets the error.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, rx) = make_job(f);
        self.queue()?
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// [`Store::write`] for synchronous callers (the CLI); must not be called from inside
    /// an async task.
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, rx) = make_job(f);
        self.queue()?
            .blocking_send(job)
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        rx.blocking_recv()
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    /// Runs a read-only query on a pooled connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }

    /// [`Store::read`] for synchronous callers.
    pub fn read_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError>,
    {
        let pooled = self.inner.readers.lock().ok().and_then(|mut p| p.pop());
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.inner.path)?,
        };
        let out = f(&conn);
        if let Ok(mut pool) = self.inner.readers.lock() {
            pool.push(conn);
        }
        out
    }

    /// Proves the store accepts durable writes now (the readiness probe).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "INSERT INTO heartbeat (id, written_at_ms) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET written_at_ms = excluded.written_at_ms",
                [crate::clock::now_ms()],
            )?;
            Ok(())
        })
        .await
    }
}

fn make_job<T, F>(f: F) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move |conn: Option<&Connection>| {
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
    (job, rx)
}

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut batches: u32 = 0;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&conn, &mut batch);
        batches = batches.wrapping_add(1);
        if batches % CATCH_UP_EVERY_BATCHES == 0 {
            // Between commits, nothing of ours is in flight: finish what the background
            // checkpointer started so the next commit restarts the WAL (module docs).
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "catch-up checkpoint failed; the background one continues");
            }
        }
    }
    tracing::debug!("store writer stopped");
}

/// Runs one batch in one transaction. Every job's completion is called exactly once, after
/// the outcome of the commit is known.
fn run_batch(conn: &Connection, batch: &mut Vec<Job>) {
    let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
    let mut aborted: Option<String> = conn
        .execute_batch("BEGIN IMMEDIATE")
        .err()
        .map(|e| StoreError::from(e).to_string());
    for job in batch.drain(..) {
        if aborted.is_none() {
            if let Err(e) = conn.execute_batch("SAVEPOINT job") {
                aborted = Some(StoreError::from(e).to_string());
            }
        }
        if aborted.is_some() {
            completions.push(job(None).1);
            continue;
        }
        let (ok, done) = job(Some(conn));
        completions.push(done);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back by itself (SQLITE_FULL, IOERR,
            // ...): every job so far in this batch is lost, and must be told so.
            aborted = Some("transaction rolled back by SQLite (disk full or I/O error)".into());
            continue;
        }
        let end = if ok {
            conn.execute_batch("RELEASE job")
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        if let Err(e) = end {
            aborted = Some(StoreError::from(e).to_string());
        }
    }
    let outcome = match aborted {
        Some(msg) => Err(msg),
        None => conn
            .execute_batch("COMMIT")
            .map_err(|e| StoreError::from(e).to_string()),
    };
    if let Err(msg) = &outcome {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        tracing::warn!(error = %msg, jobs = completions.len(), "store commit failed");
    }
    for done in completions {
        done(outcome.clone().map_err(StoreError::Unavailable));
    }
}

fn checkpoint_loop(path: &Path, stop: std::sync::mpsc::Receiver<()>) {
    let conn = match Connection::open(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "checkpointer cannot open the store; WAL will grow");
            return;
        }
    };
    let _ = conn.busy_timeout(Duration::from_millis(100));
    // Runs until told to stop (or the store handle is dropped, closing the channel).
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY)
    {
        // PASSIVE never blocks the writer; it copies what it can. Errors (busy, a
        // read-only file) only mean this round copied nothing.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under continuous writes the WAL must not grow without bound (issue 6): the writer's
    /// catch-up checkpoint lets SQLite restart it, and `journal_size_limit` truncates it.
    #[test]
    fn the_wal_stays_bounded_under_continuous_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreOptions {
            path: dir.path().join("wal.db"),
            max_size_bytes: None,
        })
        .unwrap();
        store
            .write_blocking(|c| Ok(c.execute_batch("CREATE TABLE scratch (b BLOB)")?))
            .unwrap();
        let wal = dir.path().join("wal.db-wal");
        let blob = vec![7u8; 256 * 1024];
        let mut largest = 0;
        // 160 MiB written in total, one commit per job: far past the limit if unbounded.
        for _ in 0..640 {
            let b = blob.clone();
            store
                .write_blocking(move |c| {
                    c.execute("INSERT INTO scratch (b) VALUES (?1)", [b])?;
                    Ok(())
                })
                .unwrap();
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
        let limit = WAL_SIZE_LIMIT_BYTES as u64;
        assert!(largest > 0, "the WAL was never written");
        assert!(
            largest <= limit,
            "WAL reached {largest} bytes (limit {limit})"
        );
    }
}
