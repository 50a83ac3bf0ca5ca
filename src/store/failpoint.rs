//! Test-only fail points (cargo feature `failpoints`, off by default and never in a
//! release build). They let the power-cut test in `tests/it/crash.rs` model a power
//! loss, where whatever was not fsynced is gone, with a process it can only SIGKILL
//! (which loses nothing the kernel already has).
//!
//! With [`SYNCED_WAL_ENV`] naming a file, the syncer appends one line to it after each
//! successful fsync of the WAL: the WAL's size just before that fsync, which the fsync
//! therefore covered. The line is written before the fsync's callers are answered, so
//! every acknowledged callback lies within the last size recorded. The test kills the
//! daemon, cuts the WAL back to that size, and restarts on what is left.
//!
//! For that model to be exact, the WAL must be the only file SQLite changes and the
//! syncer the only thing that syncs it, so while the variable is set the store runs no
//! checkpoint (neither the background passes nor the writer's catch-up): a checkpoint
//! syncs the WAL itself and copies pages into the database, which a cut WAL would then
//! contradict. Checkpoints under SIGKILL are covered by the other crash trials.

use std::fs::File;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// Environment variable naming the file the synced WAL sizes are appended to.
pub const SYNCED_WAL_ENV: &str = "PAYHOOK_FAILPOINT_SYNCED_WAL";

fn log() -> Option<&'static Mutex<File>> {
    static LOG: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let path = std::env::var_os(SYNCED_WAL_ENV)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()?;
        Some(Mutex::new(file))
    })
    .as_ref()
}

/// True when a test is modelling power loss: the store then runs no checkpoint.
pub fn active() -> bool {
    log().is_some()
}

/// Records that the WAL is on disk up to `len` bytes.
pub fn wal_synced(len: u64) {
    if let Some(log) = log() {
        let mut file = log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // One write per line, so that a kill cannot leave half a number behind.
        let _ = file.write_all(format!("{len}\n").as_bytes());
    }
}
