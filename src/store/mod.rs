//! The SQLite store: the only module that writes SQL.
//!
//! One writer thread owns the one read-write connection. Callers hand it closures
//! ([`Store::write`]); it runs the closures that queued up meanwhile inside one SQL
//! transaction (each in its own SAVEPOINT, so one failing closure does not undo the
//! others) and commits once. That is group commit: throughput does not collapse to one
//! fsync per request. [`writer`] says how big a batch grows.
//!
//! [`writer`] holds that thread, the syncer that makes each batch durable before its
//! callers hear of it, and what happens after a failed fsync; [`checkpoint`] keeps the
//! WAL bounded without slowing commits.
//!
//! Reads ([`Store::read`]) use a small pool of read-only connections; in WAL mode they
//! never block the writer.

pub mod callbacks;
pub mod checkpoint;
pub mod destinations;
pub mod events;
#[cfg(feature = "failpoints")]
pub mod failpoint;
pub mod feed;
pub mod migrations;
pub mod outbox;
pub mod payments;
pub mod polls;
pub mod queries;
pub mod review;
pub mod transactions;
pub mod writer;

/// What the store's unit tests share: a migrated database and a statement's query plan.
#[cfg(test)]
pub(crate) mod testing {
    use rusqlite::{Connection, Params};

    /// A migrated in-memory database.
    pub(crate) fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        super::migrations::migrate(&mut c).unwrap();
        c
    }

    /// The plan SQLite chooses for `sql` with `params`, one line per step (`EXPLAIN QUERY
    /// PLAN`'s detail column).
    pub(crate) fn query_plan(c: &Connection, sql: &str, params: impl Params) -> Vec<String> {
        c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(params, |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

pub use checkpoint::{CATCH_UP_AT_FRAMES, CATCH_UP_AT_LEAST_EVERY_BATCHES};

use checkpoint::checkpoint_loop;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use writer::{
    make_job, open_writer, pipelined_sync, sync_loop, writer_loop, Completion, Job, Syncer,
};

/// Queue depth in front of the writer; beyond it callers wait (back-pressure).
const QUEUE_DEPTH: usize = 8192;
/// How long a connection waits on a lock held by another process (e.g. the CLI, or a
/// merchant's INSERT) before the write fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Compiled statements kept per connection: more than the store has (`prepare_cached`).
const STATEMENT_CACHE: usize = 128;

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

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) and migrates the database, and starts the writer, syncer
    /// and checkpointer threads.
    pub fn open(opts: &StoreOptions) -> Result<Store, StoreError> {
        let conn = open_writer(opts)?;
        let read_only = conn.is_readonly(rusqlite::DatabaseName::Main)?;
        let (jobs, rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let mut threads = Vec::with_capacity(3);
        let wal = if read_only {
            None
        } else {
            pipelined_sync(&conn, &opts.path)
        };
        let poisoned = Arc::new(AtomicBool::new(false));
        // Set by the checkpointer when the writer should catch up (`checkpoint` module docs).
        let catch_up = Arc::new(AtomicBool::new(false));
        let wanted = catch_up.clone();
        let syncer = match wal {
            Some(wal) => {
                let (groups, synced) = std::sync::mpsc::channel::<Vec<Completion>>();
                let flag = poisoned.clone();
                let in_flight = Arc::new(AtomicUsize::new(0));
                let counted = in_flight.clone();
                // Weak: the syncer's wake-ups must not keep the writer's queue open.
                let writer = jobs.downgrade();
                let handle = std::thread::Builder::new()
                    .name("payhook-sync".into())
                    .spawn(move || sync_loop(&wal, synced, &flag, &counted, &writer))
                    .map_err(|e| StoreError::Unavailable(format!("cannot start syncer: {e}")))?;
                threads.push(handle);
                Some(Syncer { groups, in_flight })
            }
            None => None,
        };
        let ckpt_poisoned = poisoned.clone();
        let writer = std::thread::Builder::new()
            .name("payhook-writer".into())
            .spawn(move || writer_loop(conn, rx, syncer, &poisoned, &wanted))
            .map_err(|e| StoreError::Unavailable(format!("cannot start writer: {e}")))?;
        // Joined in order on drop: the writer first (it ends the syncer's queue).
        threads.insert(0, writer);
        let (stop_tx, stop_rx) = std::sync::mpsc::channel();
        let ckpt_path = opts.path.clone();
        let checkpointer = std::thread::Builder::new()
            .name("payhook-checkpoint".into())
            .spawn(move || checkpoint_loop(&ckpt_path, stop_rx, &catch_up, &ckpt_poisoned))
            .map_err(|e| StoreError::Unavailable(format!("cannot start checkpointer: {e}")))?;
        threads.push(checkpointer);
        Ok(Store {
            inner: Arc::new(Inner {
                jobs: Some(jobs),
                path: opts.path.clone(),
                read_only,
                readers: Mutex::new(Vec::new()),
                stop_checkpointer: Some(stop_tx),
                threads,
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
        self.send(make_job(f, true)).await
    }

    /// [`Store::write`] for closures that check everything that can refuse the request
    /// *before* their first change (the ingest path: a replayed nonce is refused before
    /// anything is written). Such a closure runs without a SAVEPOINT of its own, which
    /// saves copying every page it touches into the sub-journal. If one breaks the promise
    /// (an error after it wrote, such as an I/O error halfway), nothing of its batch is
    /// committed: every caller in the batch is answered unavailable and may retry.
    pub async fn write_prechecked<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.send(make_job(f, false)).await
    }

    async fn send<T>(
        &self,
        (job, rx): (Job, oneshot::Receiver<Result<T, StoreError>>),
    ) -> Result<T, StoreError> {
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
        let (job, rx) = make_job(f, true);
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
