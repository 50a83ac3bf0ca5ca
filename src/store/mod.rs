//! The SQLite store: the only module that writes SQL.
//!
//! One writer thread owns the one read-write connection. Callers hand it closures
//! ([`Store::write`]); it runs every closure that queued up meanwhile inside one SQL
//! transaction (each in its own SAVEPOINT, so one failing closure does not undo the
//! others) and commits once. That is group commit: throughput does not collapse to one
//! fsync per request.
//!
//! Durability is pipelined. The writer commits with `synchronous=NORMAL`, which writes the
//! WAL without waiting for the disk, and hands the batch's answers to a syncer thread. The
//! syncer `fdatasync`s the WAL file once for every batch committed since its last sync and
//! only then answers their callers, so "2xx means on disk" holds exactly as with
//! `synchronous=FULL`, while the writer already runs the next batch instead of waiting for
//! the disk. An fsync that fails poisons the store: everything after it is refused (503)
//! until payhook restarts, because after a failed fsync the kernel may have dropped the
//! pages and a later "successful" fsync proves nothing. The same goes for the database
//! file's fsync after a checkpoint pass, and for a checkpoint that hits an I/O error. If
//! the WAL file cannot be opened for syncing, the writer falls back to `synchronous=FULL`
//! and answers after its commit.
//!
//! A consequence the forwarder relies on: whatever a writer job *reads* is on disk by the
//! time its answer arrives, because the fsync that answers it covers every commit before
//! its batch as well. A reader connection may see a commit that is not yet synced, so
//! anything that must not escape before it is durable (the events the forwarder claims)
//! is picked in a writer job, never through [`Store::read`].
//!
//! WAL checkpoints are split so that the commit path does not pay for them and the WAL
//! still cannot grow without bound. A background thread on its own connection copies the
//! WAL into the database often (PASSIVE: it never blocks the writer). That alone never
//! *finishes* under continuous load, because the writer keeps appending, and SQLite only
//! restarts the WAL from its beginning after a checkpoint that caught up completely. So
//! once the WAL holds more than [`CATCH_UP_AT_FRAMES`] pages, the background thread asks
//! the writer, right after one of its passes, to run a PASSIVE checkpoint itself between
//! two commits: nearly everything has just been copied, so this copies only the frames
//! written during that pass, and the next commit starts the WAL over. (The writer also does
//! so unasked every [`CATCH_UP_AT_LEAST_EVERY_BATCHES`] batches.) Two more things keep that
//! pause short: while the WAL is busy the background passes come every few milliseconds,
//! and each is followed by an fdatasync of the database file, because SQLite syncs the
//! database only when a checkpoint completes, so the catch-up would otherwise flush every
//! page copied since the last one (on a million-row store, hundreds of milliseconds).
//! `journal_size_limit` then truncates the file back, so the disk footprint stays bounded.
//!
//! Reads ([`Store::read`]) use a small pool of read-only connections; in WAL mode they
//! never block the writer.

pub mod callbacks;
pub mod destinations;
pub mod events;
#[cfg(feature = "failpoints")]
pub mod failpoint;
pub mod feed;
pub mod migrations;
pub mod payments;
pub mod polls;
pub mod queries;
pub mod review;
pub mod transactions;

use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
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
/// WAL frames (pages) in the current cycle beyond which the background checkpointer asks
/// the writer to catch up, so that the next commit restarts the WAL (module docs): about
/// 32 MiB, half of the 64 MiB the WAL file is truncated back to. Each catch-up pauses the
/// writer for two fsyncs (tens of milliseconds on a busy disk), so not too often.
pub const CATCH_UP_AT_FRAMES: i64 = 8192;
/// WAL frames beyond which the background checkpointer passes every
/// [`CHECKPOINT_BUSY_EVERY`] instead: while writes keep coming, what the writer's catch-up
/// has left to copy is then little more than what arrived during the last pass.
const BUSY_WAL_FRAMES: i64 = 1024;
/// The background checkpointer's pause between passes while the WAL is busy.
const CHECKPOINT_BUSY_EVERY: Duration = Duration::from_millis(10);
/// The writer catches up at least this often even unasked, so the WAL stays bounded if the
/// background checkpointer cannot run at all.
pub const CATCH_UP_AT_LEAST_EVERY_BATCHES: u32 = 1024;
/// Compiled statements kept per connection: more than the store has (`prepare_cached`).
const STATEMENT_CACHE: usize = 128;
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

/// A job for the writer.
struct Job {
    /// Run inside its own SAVEPOINT, so that its failure undoes only itself. `false` for
    /// jobs that change nothing when they fail ([`Store::write_prechecked`]).
    savepoint: bool,
    /// Runs the closure, reports whether it succeeded, and returns what to do once the
    /// batch's commit outcome is known. Given `None`, it runs nothing (its batch could not
    /// start) and only produces its completion.
    run: RunJob,
}

type RunJob = Box<dyn FnOnce(Option<&Connection>) -> (bool, Completion) + Send>;
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
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
fn pipelined_sync(conn: &Connection, db: &Path) -> Option<File> {
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
        // Set by the checkpointer when the writer should catch up (module docs).
        let catch_up = Arc::new(AtomicBool::new(false));
        let wanted = catch_up.clone();
        let syncer = match wal {
            Some(wal) => {
                let (tx, synced) = std::sync::mpsc::channel::<Vec<Completion>>();
                let flag = poisoned.clone();
                let handle = std::thread::Builder::new()
                    .name("payhook-sync".into())
                    .spawn(move || sync_loop(&wal, &synced, &flag))
                    .map_err(|e| StoreError::Unavailable(format!("cannot start syncer: {e}")))?;
                threads.push(handle);
                Some(tx)
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

fn make_job<T, F>(f: F, savepoint: bool) -> (Job, oneshot::Receiver<Result<T, StoreError>>)
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
    (Job { savepoint, run }, rx)
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    syncer: Option<std::sync::mpsc::Sender<Vec<Completion>>>,
    poisoned: &AtomicBool,
    catch_up: &AtomicBool,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut batches_since_catch_up: u32 = 0;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (outcome, completions) = if poisoned.load(Ordering::Acquire) {
            let refused = batch.drain(..).map(|job| (job.run)(None).1).collect();
            (Err(POISONED.to_string()), refused)
        } else {
            run_batch(&conn, &mut batch)
        };
        match (&outcome, &syncer) {
            // The defect the power-cut test must catch (feature `ack-before-fsync`, used
            // only by its documented proof run): answer at COMMIT, sync afterwards.
            #[cfg(feature = "ack-before-fsync")]
            (Ok(()), Some(syncer)) => {
                answer(completions, &outcome);
                let _ = syncer.send(Vec::new());
            }
            // Committed to the WAL but not yet on disk: the syncer answers once it is.
            #[cfg(not(feature = "ack-before-fsync"))]
            (Ok(()), Some(syncer)) => {
                if let Err(unsent) = syncer.send(completions) {
                    for done in unsent.0 {
                        done(Err(StoreError::Unavailable("syncer stopped".into())));
                    }
                }
            }
            // `synchronous=FULL` (the commit was synced), or nothing to sync.
            _ => answer(completions, &outcome),
        }
        batches_since_catch_up += 1;
        if checkpoints_paused() {
            continue;
        }
        if catch_up.swap(false, Ordering::AcqRel)
            || batches_since_catch_up >= CATCH_UP_AT_LEAST_EVERY_BATCHES
        {
            batches_since_catch_up = 0;
            // Between commits, nothing of ours is in flight: finish what the background
            // checkpointer started so the next commit restarts the WAL (module docs).
            match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0)) {
                // The background checkpointer is in the middle of a pass: try again after
                // the next batch rather than wait for it to ask again.
                Ok(busy) if busy != 0 => catch_up.store(true, Ordering::Release),
                Ok(_) => {}
                Err(e) if is_io_failure(&e) => {
                    poison(poisoned, &format!("catch-up checkpoint: {e}"))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "catch-up checkpoint failed; the background one continues");
                }
            }
        }
    }
    tracing::debug!("store writer stopped");
}

/// True while a test models power loss (feature `failpoints`): no checkpoint runs then,
/// so that the WAL is the only file that changes (module `failpoint`). Always false in
/// a normal build.
fn checkpoints_paused() -> bool {
    #[cfg(feature = "failpoints")]
    {
        failpoint::active()
    }
    #[cfg(not(feature = "failpoints"))]
    {
        false
    }
}

/// Why every write is refused after a failed fsync.
const POISONED: &str = "an fsync of the WAL failed earlier; restart payhook once the disk is fixed";

/// The syncer: one `fdatasync` of the WAL for every batch committed since the previous
/// one, then their answers. Runs until the writer drops its sender.
fn sync_loop(
    wal: &File,
    batches: &std::sync::mpsc::Receiver<Vec<Completion>>,
    poisoned: &AtomicBool,
) {
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
        answer(synced.into_iter().flatten(), &outcome);
    }
    tracing::debug!("store syncer stopped");
}

/// Refuses every write from now on (module docs): after a failed fsync the kernel may
/// have dropped the pages it could not write, and a later fsync that succeeds proves
/// nothing. That holds for the database file as much as for the WAL: a checkpoint that
/// lost pages there and then restarted the WAL would lose acknowledged callbacks.
fn poison(poisoned: &AtomicBool, what: &str) {
    if !poisoned.swap(true, Ordering::AcqRel) {
        tracing::error!(
            failed = what,
            "the disk failed a write; refusing writes until restart"
        );
    }
}

/// True for an SQLite error that means the disk failed a read, write or sync, rather
/// than a lock held elsewhere.
fn is_io_failure(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::SystemIoFailure)
}

/// Tells every caller of a batch how its commit ended, once that is known for good.
fn answer(completions: impl IntoIterator<Item = Completion>, outcome: &Result<(), String>) {
    for done in completions {
        done(outcome.clone().map_err(StoreError::Unavailable));
    }
}

/// Runs one batch in one transaction and returns the commit's outcome with every job's
/// completion, to be called exactly once each when the outcome is durable (or known to
/// have failed).
fn run_batch(conn: &Connection, batch: &mut Vec<Job>) -> (Result<(), String>, Vec<Completion>) {
    let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
    let mut aborted: Option<String> = conn
        .execute_batch("BEGIN IMMEDIATE")
        .err()
        .map(|e| StoreError::from(e).to_string());
    for job in batch.drain(..) {
        if aborted.is_none() && job.savepoint {
            // Cached: parsing these two statements again for every job costs the writer
            // more than running them.
            if let Err(e) = conn
                .prepare_cached("SAVEPOINT job")
                .and_then(|mut s| s.execute([]))
            {
                aborted = Some(StoreError::from(e).to_string());
            }
        }
        if aborted.is_some() {
            completions.push((job.run)(None).1);
            continue;
        }
        let before = conn.total_changes();
        let (ok, done) = (job.run)(Some(conn));
        completions.push(done);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back by itself (SQLITE_FULL, IOERR,
            // ...): every job so far in this batch is lost, and must be told so.
            aborted = Some("transaction rolled back by SQLite (disk full or I/O error)".into());
            continue;
        }
        let end = match (job.savepoint, ok) {
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
                aborted = Some("a write failed halfway; the batch was rolled back".into());
                continue;
            }
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
    (outcome, completions)
}

fn checkpoint_loop(
    path: &Path,
    stop: std::sync::mpsc::Receiver<()>,
    catch_up: &AtomicBool,
    poisoned: &AtomicBool,
) {
    let conn = match Connection::open(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "checkpointer cannot open the store; WAL will grow");
            return;
        }
    };
    let _ = conn.busy_timeout(Duration::from_millis(100));
    // SQLite fsyncs the database file only when a checkpoint catches up completely, which
    // under load is the writer's catch-up: it would then flush every page the passes below
    // copied since the last one (tens of MB of scattered pages, a pause of hundreds of
    // milliseconds on the commit path). Syncing after each pass here spreads that work.
    // The descriptor is deliberately never closed: closing any descriptor of a file drops
    // every POSIX lock this process holds on it, SQLite's own included.
    let db = File::open(path).ok();
    let mut pause = CHECKPOINT_EVERY;
    let mut copied = (0, 0);
    // Runs until told to stop (or the store handle is dropped, closing the channel).
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(pause) {
        if checkpoints_paused() {
            continue;
        }
        // PASSIVE never blocks the writer; it copies what it can. Errors (busy, a
        // read-only file) only mean this round copied nothing. `now` is (frames in the
        // WAL, frames copied into the database) after the pass.
        let now = match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        }) {
            Ok(now) => now,
            Err(e) => {
                if is_io_failure(&e) {
                    poison(poisoned, &format!("checkpoint: {e}"));
                }
                pause = CHECKPOINT_EVERY;
                continue;
            }
        };
        if now.1 > 0 && now != copied {
            if let Some(Err(e)) = db.as_ref().map(File::sync_data) {
                poison(poisoned, &format!("fsync of the database: {e}"));
            }
        }
        copied = now;
        pause = if now.0 >= BUSY_WAL_FRAMES {
            CHECKPOINT_BUSY_EVERY
        } else {
            CHECKPOINT_EVERY
        };
        // Just after a pass, little is left to copy: the cheapest moment for the writer
        // to finish it, so that its pause between two commits stays short.
        if now.0 >= CATCH_UP_AT_FRAMES {
            catch_up.store(true, Ordering::Release);
        }
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    std::mem::forget(db);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("batch.db")).unwrap();
        conn.execute_batch("CREATE TABLE scratch (v TEXT NOT NULL)")
            .unwrap();
        (dir, conn)
    }

    fn insert(v: &'static str) -> impl FnOnce(&Connection) -> Result<(), StoreError> {
        move |c| {
            c.execute("INSERT INTO scratch (v) VALUES (?1)", [v])?;
            Ok(())
        }
    }

    /// Runs one batch as the writer does and answers every job with the commit's outcome.
    fn run(conn: &Connection, mut jobs: Vec<Job>) -> Result<(), String> {
        let (outcome, completions) = run_batch(conn, &mut jobs);
        answer(completions, &outcome);
        outcome
    }

    fn rows(conn: &Connection) -> Vec<String> {
        let mut st = conn
            .prepare("SELECT v FROM scratch ORDER BY rowid")
            .unwrap();
        let out = st.query_map([], |r| r.get(0)).unwrap();
        out.map(Result::unwrap).collect()
    }

    #[test]
    fn a_failing_job_undoes_only_itself() {
        let (_dir, conn) = scratch();
        let (a, mut ra) = make_job(insert("a"), true);
        let (bad, mut rbad) = make_job(
            |c: &Connection| -> Result<(), StoreError> {
                insert("undone")(c)?;
                Err(StoreError::Refused("no".into()))
            },
            true,
        );
        let (b, mut rb) = make_job(insert("b"), false);
        assert!(run(&conn, vec![a, bad, b]).is_ok());
        assert_eq!(rows(&conn), ["a", "b"]);
        assert!(ra.try_recv().unwrap().is_ok() && rb.try_recv().unwrap().is_ok());
        assert!(matches!(
            rbad.try_recv().unwrap(),
            Err(StoreError::Refused(_))
        ));
    }

    #[test]
    fn a_prechecked_job_that_refuses_before_writing_leaves_its_batch_alone() {
        let (_dir, conn) = scratch();
        let (a, mut ra) = make_job(insert("a"), true);
        let (refused, mut rr) = make_job(
            |_: &Connection| -> Result<(), StoreError> { Err(StoreError::NonceReplay) },
            false,
        );
        let (b, mut rb) = make_job(insert("b"), false);
        assert!(run(&conn, vec![a, refused, b]).is_ok());
        assert_eq!(rows(&conn), ["a", "b"]);
        assert!(ra.try_recv().unwrap().is_ok() && rb.try_recv().unwrap().is_ok());
        assert!(matches!(
            rr.try_recv().unwrap(),
            Err(StoreError::NonceReplay)
        ));
    }

    /// Without a SAVEPOINT, a prechecked job that fails after writing cannot be undone
    /// alone: nothing of its batch may commit, and every caller learns it.
    #[test]
    fn a_prechecked_job_that_fails_after_writing_aborts_its_whole_batch() {
        let (_dir, conn) = scratch();
        let (a, mut ra) = make_job(insert("a"), true);
        let (halfway, mut rh) = make_job(
            |c: &Connection| -> Result<(), StoreError> {
                insert("half")(c)?;
                Err(StoreError::Refused("failed halfway".into()))
            },
            false,
        );
        let (b, mut rb) = make_job(insert("b"), false);
        assert!(run(&conn, vec![a, halfway, b]).is_err());
        assert!(rows(&conn).is_empty(), "nothing of the batch committed");
        for r in [
            ra.try_recv().unwrap(),
            rb.try_recv().unwrap(),
            rh.try_recv().unwrap(),
        ] {
            assert!(r.is_err());
        }
        assert!(conn.is_autocommit(), "the transaction was closed");
    }

    /// A checkpoint's I/O error poisons the store; a lock held elsewhere does not.
    #[test]
    fn only_disk_failures_poison() {
        let err = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        let fsync_failed = err(rusqlite::ffi::SQLITE_IOERR_FSYNC);
        assert!(is_io_failure(&fsync_failed));
        assert!(!is_io_failure(&err(rusqlite::ffi::SQLITE_BUSY)));
        assert!(!is_io_failure(&err(rusqlite::ffi::SQLITE_READONLY)));
        let flag = AtomicBool::new(false);
        poison(&flag, "checkpoint");
        assert!(flag.load(Ordering::Acquire));
    }

    /// Answers come only from the syncer, after its fsync; the store then reopens with
    /// everything acknowledged.
    #[test]
    fn acknowledged_writes_are_in_the_file_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync.db");
        let store = Store::open(&StoreOptions {
            path: path.clone(),
            max_size_bytes: None,
        })
        .unwrap();
        store
            .write_blocking(|c| Ok(c.execute_batch("CREATE TABLE scratch (v TEXT)")?))
            .unwrap();
        let mode: i64 = store
            .write_blocking(|c| Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(
            mode, 1,
            "the writer commits with NORMAL; the syncer makes it durable"
        );
        for i in 0..50 {
            store
                .write_blocking(move |c| {
                    c.execute("INSERT INTO scratch (v) VALUES (?1)", [i.to_string()])?;
                    Ok(())
                })
                .unwrap();
        }
        drop(store);
        let c = Connection::open(&path).unwrap();
        let n: i64 = c
            .query_row("SELECT count(*) FROM scratch", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 50);
    }

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
