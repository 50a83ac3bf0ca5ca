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

use super::writer::{is_io_failure, poison};
use crate::worker::{Backoff, Step};
use rusqlite::Connection;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

/// True while a test models power loss (feature `failpoints`): no checkpoint runs then,
/// so that the WAL is the only file that changes (module `failpoint`). Always false in
/// a normal build.
pub(super) fn checkpoints_paused() -> bool {
    #[cfg(feature = "failpoints")]
    {
        super::failpoint::active()
    }
    #[cfg(not(feature = "failpoints"))]
    {
        false
    }
}

pub(super) fn checkpoint_loop(
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
    let mut backoff = Backoff::constant(CHECKPOINT_EVERY);
    let mut pause = CHECKPOINT_EVERY;
    let mut copied = (0, 0);
    // Runs until told to stop (or the store handle is dropped, closing the channel).
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(pause) {
        let step = if checkpoints_paused() {
            Step::Idle(pause)
        } else {
            pass(&conn, db.as_ref(), &mut copied, catch_up, poisoned)
        };
        pause = backoff.after(&step).0.unwrap_or(Duration::ZERO);
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    std::mem::forget(db);
}

/// One background pass: a PASSIVE checkpoint, the database file's fsync when it copied
/// something new, and the request for the writer's catch-up when the WAL is long.
/// `copied` is (frames in the WAL, frames copied into the database) after the last pass.
fn pass(
    conn: &Connection,
    db: Option<&File>,
    copied: &mut (i64, i64),
    catch_up: &AtomicBool,
    poisoned: &AtomicBool,
) -> Step {
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
            return Step::Failed(e.to_string());
        }
    };
    if now.1 > 0 && now != *copied {
        if let Some(Err(e)) = db.map(File::sync_data) {
            poison(poisoned, &format!("fsync of the database: {e}"));
        }
    }
    *copied = now;
    // Just after a pass, little is left to copy: the cheapest moment for the writer
    // to finish it, so that its pause between two commits stays short.
    if now.0 >= CATCH_UP_AT_FRAMES {
        catch_up.store(true, Ordering::Release);
    }
    Step::Idle(if now.0 >= BUSY_WAL_FRAMES {
        CHECKPOINT_BUSY_EVERY
    } else {
        CHECKPOINT_EVERY
    })
}

#[cfg(test)]
mod tests {
    use super::super::writer::WAL_SIZE_LIMIT_BYTES;
    use super::super::{Store, StoreOptions};

    /// Under continuous writes the WAL must not grow without bound: the writer's
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
