//! The writer's rules for batches, held transactions and failures: a batch run on a scratch
//! table, and `writer_loop` driven with the test playing the syncer.

use super::*;
use crate::store::Store;

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
fn run(conn: &Connection, jobs: Vec<Job>) -> Result<(), String> {
    let mut batch = Batch::begin(conn);
    for job in jobs {
        if let Job::Write { savepoint, run } = job {
            batch.run(conn, savepoint, run);
        }
    }
    let (outcome, completions) = batch.finish(conn);
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

/// A job that inserts `v` and then fails with `why`, as a job that breaks halfway does.
fn fails_after_inserting(
    v: &'static str,
    why: &'static str,
    savepoint: bool,
) -> (Job, oneshot::Receiver<Result<(), StoreError>>) {
    make_job(
        move |c: &Connection| -> Result<(), StoreError> {
            insert(v)(c)?;
            Err(StoreError::Refused(why.into()))
        },
        savepoint,
    )
}

/// A prechecked job that inserts `first` only once the test sends on the returned gate, so
/// that the test can queue other jobs behind it while it runs.
fn gated_first() -> (
    Job,
    oneshot::Receiver<Result<(), StoreError>>,
    std::sync::mpsc::Sender<()>,
) {
    let (gate, gate_rx) = std::sync::mpsc::channel::<()>();
    let (job, answer) = make_job(
        move |c: &Connection| {
            gate_rx.recv().unwrap();
            insert("first")(c)
        },
        false,
    );
    (job, answer, gate)
}

#[test]
fn a_failing_job_undoes_only_itself() {
    let (_dir, conn) = scratch();
    let (a, mut ra) = make_job(insert("a"), true);
    let (bad, mut rbad) = fails_after_inserting("undone", "no", true);
    let (b, mut rb) = make_job(insert("b"), false);
    assert!(run(&conn, vec![a, bad, b]).is_ok());
    assert_eq!(rows(&conn), ["a", "b"]);
    assert!(ra.try_recv().unwrap().is_ok() && rb.try_recv().unwrap().is_ok());
    assert!(matches!(
        rbad.try_recv().unwrap(),
        Err(StoreError::Refused(_))
    ));
}

/// A statement with no statement journal (payhook's inserts: no trigger that may abort)
/// that fills the store halfway makes SQLite roll the whole transaction back: every job
/// of the batch fails, none is told it was stored, and the next batch starts afresh.
#[test]
fn a_store_that_fills_halfway_through_a_statement_fails_the_whole_batch() {
    let (_dir, conn) = scratch();
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    conn.pragma_update(None, "max_page_count", pages + 2)
        .unwrap();
    let (a, mut ra) = make_job(insert("a"), true);
    let (big, mut rbig) = make_job(
        |c: &Connection| -> Result<(), StoreError> {
            c.execute(
                "INSERT INTO scratch (v) VALUES (?1)",
                ["x".repeat(64 * 1024)],
            )?;
            Ok(())
        },
        true,
    );
    let (b, mut rb) = make_job(insert("b"), false);
    assert!(run(&conn, vec![a, big, b]).is_err());
    assert!(conn.is_autocommit());
    assert!(rows(&conn).is_empty());
    for r in [&mut ra, &mut rbig, &mut rb] {
        assert!(r.try_recv().unwrap().is_err());
    }
    let (c, mut rc) = make_job(insert("c"), true);
    assert!(run(&conn, vec![c]).is_ok());
    assert_eq!(rows(&conn), ["c"]);
    assert!(rc.try_recv().unwrap().is_ok());
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
    let (halfway, mut rh) = fails_after_inserting("half", "failed halfway", false);
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

/// The writer loop with the test playing the syncer: `in_flight` says whether an
/// fsync is in flight, and the committed batches' completions arrive on `groups`.
struct Held {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    jobs: Option<mpsc::Sender<Job>>,
    groups: std::sync::mpsc::Receiver<Vec<Completion>>,
    in_flight: Arc<AtomicUsize>,
    poisoned: Arc<AtomicBool>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Held {
    /// A writer whose syncer is busy with an fsync.
    fn start() -> Held {
        let (dir, conn) = scratch();
        conn.execute_batch("PRAGMA journal_mode=WAL").unwrap();
        let path = dir.path().join("batch.db");
        let (jobs, rx) = mpsc::channel(MAX_BATCH);
        let (groups_tx, groups) = std::sync::mpsc::channel();
        let in_flight = Arc::new(AtomicUsize::new(1));
        let poisoned = Arc::new(AtomicBool::new(false));
        let syncer = Syncer {
            groups: groups_tx,
            in_flight: in_flight.clone(),
        };
        let flag = poisoned.clone();
        let writer = std::thread::spawn(move || {
            writer_loop(conn, rx, Some(syncer), &flag, &AtomicBool::new(false))
        });
        Held {
            _dir: dir,
            path,
            jobs: Some(jobs),
            groups,
            in_flight,
            poisoned,
            writer: Some(writer),
        }
    }

    /// A writer whose syncer is busy, holding a transaction in which job "a" has run; its
    /// caller's answer.
    fn holding_a() -> (Held, oneshot::Receiver<Result<(), StoreError>>) {
        let held = Held::start();
        let (tx, rx) = std::sync::mpsc::channel();
        let (a, ra) = signalled("a", &tx, false);
        held.send(a);
        assert_eq!(ran(&rx), "a", "a ran in the held batch");
        (held, ra)
    }

    fn send(&self, job: Job) {
        self.jobs.as_ref().unwrap().blocking_send(job).unwrap();
    }

    /// The fsync in flight is done: the writer may commit what it holds.
    fn synced(&self) {
        self.in_flight.store(0, Ordering::Release);
        self.send(Job::Synced);
    }

    /// What another connection sees committed.
    fn committed(&self) -> Vec<String> {
        rows(&Connection::open(&self.path).unwrap())
    }

    /// The next batch handed to the syncer, answered as a successful fsync would.
    fn sync_next(&self) -> usize {
        let group = self
            .groups
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("a committed batch");
        let n = group.len();
        answer(group, &Ok(()));
        n
    }

    fn stop(mut self) -> Self {
        self.jobs.take();
        self.writer.take().unwrap().join().unwrap();
        self
    }
}

/// A job that inserts `v` and then says so on `ran`, so that a test knows it ran (in
/// the batch the writer holds) before looking at what is committed.
fn signalled(
    v: &'static str,
    ran: &std::sync::mpsc::Sender<&'static str>,
    prechecked: bool,
) -> (Job, oneshot::Receiver<Result<(), StoreError>>) {
    let ran = ran.clone();
    make_job(
        move |c: &Connection| {
            insert(v)(c)?;
            let _ = ran.send(v);
            Ok(())
        },
        !prechecked,
    )
}

fn ran(rx: &std::sync::mpsc::Receiver<&'static str>) -> &'static str {
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("the writer ran the job")
}

/// The answer a caller gets, waiting for it up to five seconds.
fn answered<T>(rx: &mut oneshot::Receiver<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match rx.try_recv() {
            Ok(v) => return v,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) => panic!("no answer: {e}"),
        }
    }
}

#[test]
fn while_an_fsync_is_in_flight_jobs_run_but_commit_only_once_the_syncer_is_free() {
    let held = Held::start();
    let (tx, rx) = std::sync::mpsc::channel();
    let (a, mut ra) = signalled("a", &tx, false);
    let (b, mut rb) = signalled("b", &tx, true);
    held.send(a);
    held.send(b);
    assert_eq!((ran(&rx), ran(&rx)), ("a", "b"));
    assert!(held.committed().is_empty(), "held open, not committed");
    assert!(
        held.groups.try_recv().is_err(),
        "nothing handed to the syncer"
    );
    assert!(
        ra.try_recv().is_err() && rb.try_recv().is_err(),
        "nobody answered yet"
    );
    held.synced();
    assert_eq!(held.sync_next(), 2, "one commit for both jobs");
    assert_eq!(held.committed(), ["a", "b"]);
    assert!(answered(&mut ra).is_ok() && answered(&mut rb).is_ok());
    held.stop();
}

#[test]
fn with_the_syncer_idle_a_batch_commits_at_its_idle_size_and_the_jobs_behind_it_wait_for_its_fsync()
{
    let held = Held::start();
    held.in_flight.store(0, Ordering::Release);
    let (tx, rx) = std::sync::mpsc::channel();
    // The first job waits on the test, so that all the others are queued before it ends.
    let (first, mut r_first, gate) = gated_first();
    held.send(first);
    let mut answers = Vec::new();
    for i in 0..IDLE_BATCH + 1 {
        let v: &'static str = Box::leak(format!("j{i}").into_boxed_str());
        let (job, answer) = signalled(v, &tx, true);
        held.send(job);
        answers.push(answer);
    }
    gate.send(()).unwrap();
    assert_eq!(held.sync_next(), IDLE_BATCH, "committed at the idle size");
    assert_eq!(held.committed().len(), IDLE_BATCH);
    assert!(answered(&mut r_first).is_ok());
    // Every queued job has run; the two that did not fit ran in the next transaction, held
    // while that fsync is in flight, and their callers are not answered yet.
    for _ in 0..IDLE_BATCH + 1 {
        ran(&rx);
    }
    assert!(held.groups.try_recv().is_err(), "nothing more handed over");
    assert_eq!(held.committed().len(), IDLE_BATCH, "held, not committed");
    assert!(answers[IDLE_BATCH - 1..]
        .iter_mut()
        .all(|a| a.try_recv().is_err()));
    held.synced();
    assert_eq!(held.sync_next(), 2, "one commit for the jobs held");
    assert_eq!(held.committed().len(), IDLE_BATCH + 2);
    assert!(answers.iter_mut().all(|a| answered(a).is_ok()));
    held.stop();
}

#[test]
fn without_a_syncer_the_writer_commits_every_queued_job_together() {
    let (dir, conn) = scratch();
    let path = dir.path().join("batch.db");
    let (jobs, rx) = mpsc::channel(MAX_BATCH);
    let writer = std::thread::spawn(move || {
        writer_loop(
            conn,
            rx,
            None,
            &AtomicBool::new(false),
            &AtomicBool::new(false),
        )
    });
    let (first, mut r_first, gate) = gated_first();
    jobs.blocking_send(first).unwrap();
    // Each later job reports what another connection sees committed when it runs: nothing,
    // while all of them share the first job's transaction.
    let mut seen = Vec::new();
    for _ in 0..IDLE_BATCH + 1 {
        let path = path.clone();
        let (job, answer) = make_job(
            move |c: &Connection| {
                insert("later")(c)?;
                Ok(rows(&Connection::open(&path).unwrap()).len())
            },
            false,
        );
        jobs.blocking_send(job).unwrap();
        seen.push(answer);
    }
    gate.send(()).unwrap();
    assert!(answered(&mut r_first).is_ok());
    for s in &mut seen {
        assert_eq!(answered(s).unwrap(), 0, "one transaction for all");
    }
    drop(jobs);
    writer.join().unwrap();
    assert_eq!(
        rows(&Connection::open(&path).unwrap()).len(),
        IDLE_BATCH + 2
    );
}

#[test]
fn a_batch_that_cannot_commit_is_closed_at_once_and_the_next_job_starts_afresh() {
    let held = Held::start();
    let (tx, rx) = std::sync::mpsc::channel();
    let (a, mut ra) = signalled("a", &tx, true);
    let (halfway, mut rh) = fails_after_inserting("half", "failed halfway", false);
    held.send(a);
    assert_eq!(ran(&rx), "a");
    held.send(halfway);
    // Answered while the fsync is still in flight: nothing of that batch commits.
    assert!(answered(&mut ra).is_err() && answered(&mut rh).is_err());
    let (b, mut rb) = signalled("b", &tx, true);
    held.send(b);
    assert_eq!(ran(&rx), "b");
    assert!(rb.try_recv().is_err(), "b is held in a new batch");
    held.synced();
    assert_eq!(held.sync_next(), 1);
    assert_eq!(held.committed(), ["b"]);
    assert!(answered(&mut rb).is_ok());
    held.stop();
}

#[test]
fn stopping_with_a_held_transaction_commits_it_and_hands_it_to_the_syncer() {
    let (held, mut ra) = Held::holding_a();
    let held = held.stop();
    assert_eq!(held.committed(), ["a"]);
    assert_eq!(held.sync_next(), 1);
    assert!(answered(&mut ra).is_ok());
}

#[test]
fn a_held_transaction_is_rolled_back_when_the_fsync_in_flight_failed() {
    let (held, mut ra) = Held::holding_a();
    held.poisoned.store(true, Ordering::Release);
    held.synced();
    assert!(matches!(answered(&mut ra), Err(StoreError::Unavailable(_))));
    assert!(
        held.committed().is_empty(),
        "nothing written after a failed fsync"
    );
    assert!(held.groups.try_recv().is_err());
    held.stop();
}

/// A syncer that stops, however it stops, ends the hold: the writer commits and
/// answers instead of waiting for an fsync that will never come.
#[test]
fn a_syncer_that_stopped_ends_the_hold() {
    let (held, mut ra) = Held::holding_a();
    // What the syncer's guard does as it stops, here with nothing queued.
    let (weak_tx, weak_rx) = std::sync::mpsc::channel::<Vec<Completion>>();
    drop(weak_tx);
    let writer = held.jobs.as_ref().unwrap().downgrade();
    drop(SyncerGone {
        batches: Some(weak_rx),
        in_flight: &held.in_flight,
        writer: &writer,
    });
    assert_eq!(held.sync_next(), 1, "committed and handed over");
    assert_eq!(held.committed(), ["a"]);
    assert!(answered(&mut ra).is_ok());
    held.stop();
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
