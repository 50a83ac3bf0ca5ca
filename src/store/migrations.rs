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
    include_str!("migrations/0004_money_truth.sql"),
    include_str!("migrations/0005_review_dismissals.sql"),
    include_str!("migrations/0006_redacted_destinations.sql"),
    include_str!("migrations/0007_destinations.sql"),
    include_str!("migrations/0008_minted_payments.sql"),
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

    /// A database written before destinations had names: its events become the `default`
    /// destination's deliveries, state kept, numbered in outbox order.
    /// A hint held before money truth had its values written into the transaction's own
    /// columns; after the upgrade they are unconfirmed, not known.
    #[test]
    fn a_held_hint_s_values_become_unconfirmed_on_upgrade() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            "INSERT INTO transactions (id, provider, provider_ref, status, unconfirmed_status,
                                       amount_minor, currency, msisdn, receipt, merchant_ref)
                  VALUES (1, 'daraja', 'ws_CO_1', 'PENDING', 'SUCCEEDED', 100000, 'KES',
                          '254708374149', 'NLJ7RT61SV', 'order-1'),
                         (2, 'daraja', 'ws_CO_2', 'SUCCEEDED', NULL, 100, 'KES', NULL, 'R2', NULL);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let row = |id: i64| -> (Option<String>, Option<i64>, Option<String>, Option<String>) {
            conn.query_row(
                "SELECT unconfirmed_status, amount_minor, receipt, unconfirmed_details
                   FROM transactions WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
        };
        let (held, amount, receipt, details) = row(1);
        assert_eq!(
            (held.as_deref(), amount, receipt),
            (Some("SUCCEEDED"), None, None)
        );
        let details: serde_json::Value = serde_json::from_str(&details.unwrap()).unwrap();
        assert_eq!(
            (
                &details["amount_minor"],
                &details["currency"],
                &details["receipt"]
            ),
            (
                &serde_json::json!(100000),
                &serde_json::json!("KES"),
                &serde_json::json!("NLJ7RT61SV")
            )
        );
        assert_eq!(
            row(2),
            (None, Some(100), Some("R2".into()), None),
            "settled rows keep theirs"
        );
    }

    #[test]
    fn events_before_named_destinations_belong_to_default() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            "INSERT INTO transactions (id, provider, provider_ref) VALUES (1, 'zengapay', 'r');
             INSERT INTO transitions (id, transaction_id, seq, outcome, to_status, source, at_ms)
                  VALUES (7, 1, 1, 'applied', 'SUCCEEDED', 'poll', 1),
                         (9, 1, 2, 'applied', 'REVERSED', 'poll', 2);
             INSERT INTO events (id, transaction_id, transition_id, type, payload, status,
                                 attempts, next_attempt_at_ms, created_at_ms, delivered_at_ms)
                  VALUES ('evt_b', 1, 9, 'transaction.reversed', '{}', 'pending', 2, 50, 2, NULL),
                         ('evt_a', 1, 7, 'transaction.succeeded', '{}', 'delivered', 1, NULL, 1, 5);
             INSERT INTO destinations (url) VALUES ('https://m.example/h');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let rows: Vec<(String, i64, String, i64, Option<i64>)> = conn
            .prepare(
                "SELECT e.id, e.seq, d.status, d.attempts, d.next_attempt_at_ms
                   FROM events e JOIN deliveries d ON d.event_id = e.id AND d.destination = 'default'
                  ORDER BY e.seq",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows,
            [
                ("evt_a".into(), 1, "delivered".into(), 1, None),
                ("evt_b".into(), 2, "pending".into(), 2, Some(50)),
            ]
        );
        let (url, seq): (String, i64) = conn
            .query_row(
                "SELECT url, subscribed_seq FROM destination_state WHERE name = 'default'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((url.as_str(), seq), ("https://m.example/h", 2));
    }

    #[test]
    fn stored_destination_urls_are_redacted_on_upgrade() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            "INSERT INTO destinations (url, disabled_at_ms) VALUES
               ('https://m.example/h?token=tok-SECRET-1', 5),
               ('https://m.example/h#tok-SECRET-2', 6),
               ('https://plain.example/h', 7);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let urls: Vec<String> = conn
            .prepare("SELECT url FROM destinations ORDER BY url")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            urls,
            ["https://m.example/h?[redacted]", "https://plain.example/h"]
        );
        for url in ["https://a.example/h?x=1#y", "https://a.example/h#y?x=1"] {
            let sql =
                format!("SELECT substr('{url}', 1, instr('{url}', '#') - 1) || '?[redacted]'");
            let once: String = conn.query_row(&sql, [], |r| r.get(0)).unwrap();
            let sql =
                format!("SELECT substr('{once}', 1, instr('{once}', '?') - 1) || '?[redacted]'");
            let twice: String = conn.query_row(&sql, [], |r| r.get(0)).unwrap();
            assert_eq!(twice, crate::secret::redacted_url(url), "{url}");
        }
    }

    #[test]
    fn a_newer_database_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST_VERSION + 1)
            .unwrap();
        assert!(matches!(migrate(&mut conn), Err(StoreError::TooNew { .. })));
    }
}
