//! Schema migrations: an append-only list keyed by `PRAGMA user_version`.
//!
//! Two laws (after cargo's `util/sqlite.rs`): never edit or remove an entry, and never
//! make a backwards-incompatible change. Every applied migration also changes
//! `schema.sql` at the top of the repository, which a test compares with the result of
//! applying this list to an empty database.

use super::StoreError;
use rusqlite::Connection;

/// The migrations, in order. Entry `i` brings `user_version` from `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_forward.sql"),
    include_str!("migrations/0003_held_review.sql"),
    include_str!("migrations/0004_destinations.sql"),
];

/// The schema version this binary writes.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies pending migrations in one exclusive transaction. Refuses a database written by
/// a newer payhook, whose schema this binary does not know.
pub fn migrate(conn: &mut Connection) -> Result<i64, StoreError> {
    // Nothing pending: take no write lock, so that a read-only database still opens (and
    // then answers every write with "unavailable" instead of refusing to start).
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current == LATEST_VERSION {
        return Ok(LATEST_VERSION);
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > LATEST_VERSION {
        return Err(StoreError::TooNew {
            found: current,
            known: LATEST_VERSION,
        });
    }
    for sql in &MIGRATIONS[current as usize..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", LATEST_VERSION)?;
    tx.commit()?;
    Ok(LATEST_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_noop() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), LATEST_VERSION);
        assert_eq!(migrate(&mut conn).unwrap(), LATEST_VERSION);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST_VERSION + 1)
            .unwrap();
        assert!(matches!(migrate(&mut conn), Err(StoreError::TooNew { .. })));
    }
}
