//! Schema migrations: an append-only list keyed by `PRAGMA user_version`.
//!
//! Two laws (after cargo's `util/sqlite.rs`): never edit or remove an entry, and never
//! make a backwards-incompatible change. Every applied migration also changes
//! `schema.sql` at the top of the repository, which a test compares with the result of
//! applying this list to an empty database.

use super::StoreError;
use rusqlite::{Connection, OptionalExtension};

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
    include_str!("migrations/0009_provider_names.sql"),
    include_str!("migrations/0010_check_lists.sql"),
    include_str!("migrations/0011_provider_check_fails.sql"),
    include_str!("migrations/0012_events_seq_rowid.sql"),
    include_str!("migrations/0013_callbacks_transaction.sql"),
    include_str!("migrations/0014_review_indexes.sql"),
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
        name_providers(conn)?;
        return Ok(LATEST_VERSION);
    }
    // A migration may rebuild a table (create it anew, copy its rows, drop the old one,
    // rename the new one), which enforced foreign keys would refuse halfway. SQLite lets
    // them be turned off only outside a transaction, so they are off for the migration and
    // checked as a whole before it commits.
    let enforced: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let migrated = apply_pending(conn);
    let restored = conn.pragma_update(None, "foreign_keys", enforced);
    let version = migrated?;
    restored?;
    name_providers(conn)?;
    Ok(version)
}

/// Lists every provider this binary knows in the `providers` table, so that adding a
/// provider takes no migration: its row is written the first time a payhook that knows
/// it opens the store. A read-only connection (an operator's command) writes nothing;
/// it only reads.
fn name_providers(conn: &Connection) -> Result<(), StoreError> {
    if conn.is_readonly(rusqlite::DatabaseName::Main)? {
        return Ok(());
    }
    for p in crate::domain::ProviderId::ALL {
        let listed = conn
            .prepare_cached("SELECT 1 FROM providers WHERE name = ?1")?
            .query_row([p.as_str()], |_| Ok(()))
            .optional()?
            .is_some();
        if !listed {
            conn.execute("INSERT INTO providers (name) VALUES (?1)", [p.as_str()])?;
        }
    }
    Ok(())
}

/// Applies the pending migrations in one exclusive transaction, committed only if every
/// foreign key still holds.
fn apply_pending(conn: &mut Connection) -> Result<i64, StoreError> {
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
    let broken: Option<(String, Option<i64>, String)> = tx
        .query_row("PRAGMA foreign_key_check", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    if let Some((table, rowid, parent)) = broken {
        return Err(StoreError::Refused(format!(
            "migration left {table} row {rowid:?} pointing at a missing {parent} row; nothing was changed"
        )));
    }
    tx.pragma_update(None, "user_version", LATEST_VERSION)?;
    tx.commit()?;
    Ok(LATEST_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database as the first `version` migrations left it, marked as such.
    fn at_version(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        conn
    }

    /// The first column of every row `sql` returns, as text.
    fn strings(conn: &Connection, sql: &str) -> Vec<String> {
        conn.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

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
        let mut conn = at_version(3);
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
        let mut conn = at_version(3);
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
        let mut conn = at_version(3);
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

    /// Moving provider names out of the CHECK constraints rebuilds callbacks and
    /// transactions: every row keeps its id and columns, every reference to them still
    /// resolves, foreign keys are enforced again afterwards, and an unknown provider is
    /// still refused, also on a connection that does not enforce foreign keys.
    #[test]
    fn provider_names_move_to_a_table_and_rows_and_references_survive() {
        let mut conn = at_version(8);
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        conn.execute_batch(
            "INSERT INTO transactions (id, provider, provider_ref, kind, status, amount_minor, currency)
                  VALUES (7, 'zengapay', 'ZP-7', 'collection', 'SUCCEEDED', 25000, 'UGX'),
                         (9, 'daraja', 'ws_CO_9', 'stk', 'PENDING', NULL, NULL);
             INSERT INTO callbacks (id, provider, kind, dedup_key, auth, signed, body, body_sha256,
                                    headers, transaction_id, first_seen_at_ms, last_seen_at_ms)
                  VALUES (3, 'zengapay', 'collection', 'k1', 'hmac', 1, x'7b7d', 'h1', '{}', 7, 1, 1);
             INSERT INTO callbacks (id, provider, kind, dedup_key, auth, signed, body, body_sha256,
                                    headers, transaction_id, first_seen_at_ms, last_seen_at_ms,
                                    duplicate_of)
                  VALUES (4, 'zengapay', 'collection', 'k1#sha256:h2', 'hmac', 1, x'7b7d', 'h2',
                          '{}', 7, 2, 2, 3);
             INSERT INTO nonces (provider, nonce, body_sha256, callback_id, seen_at_ms)
                  VALUES ('bitpesa', 'n1', 'h1', 3, 1);
             INSERT INTO transitions (id, transaction_id, seq, outcome, from_status, to_status,
                                      source, callback_id, at_ms)
                  VALUES (5, 7, 1, 'applied', NULL, 'SUCCEEDED', 'callback', 3, 1);
             INSERT INTO polls (id, transaction_id, attempt, at_ms, outcome)
                  VALUES (6, 9, 1, 2, 'failed');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let enforced: bool = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(enforced, "foreign keys are enforced again");
        let joined: (String, String, i64, i64, i64) = conn
            .query_row(
                "SELECT t.provider_ref, c.dedup_key, c.duplicate_of, r.id, n.callback_id
                   FROM transitions r
                   JOIN transactions t ON t.id = r.transaction_id
                   JOIN callbacks c ON c.id = 4 AND c.transaction_id = t.id
                   JOIN nonces n ON n.callback_id = r.callback_id",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(joined, ("ZP-7".into(), "k1#sha256:h2".into(), 3, 5, 3));
        let amount: (i64, String) = conn
            .query_row(
                "SELECT amount_minor, currency FROM transactions WHERE id = 7",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(amount, (25000, "UGX".into()));
        let polled: i64 = conn
            .query_row("SELECT transaction_id FROM polls WHERE id = 6", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(polled, 9);
        let broken: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(broken, 0);
        // Still enforced: a missing parent, and an unknown provider even with foreign keys
        // off (a merchant's connection).
        assert!(conn
            .execute(
                "INSERT INTO transitions (transaction_id, seq, outcome, to_status, source, at_ms)
                      VALUES (99, 1, 'applied', 'PENDING', 'operator', 1)",
                []
            )
            .is_err());
        conn.pragma_update(None, "foreign_keys", false).unwrap();
        assert!(conn
            .execute(
                "INSERT INTO transactions (provider, provider_ref) VALUES ('zengapy', 'x')",
                []
            )
            .is_err());
        assert!(conn
            .execute("UPDATE transactions SET provider = 'nope' WHERE id = 7", [])
            .is_err());
        conn.execute(
            "INSERT INTO transactions (provider, provider_ref) VALUES ('jenga', 'x')",
            [],
        )
        .unwrap();
    }

    /// A new row's unknown provider is refused with FAIL (no statement journal for payhook's
    /// own inserts): a single row leaves nothing behind, a multi-row INSERT keeps the rows
    /// before the refused one, and a transaction rolled back keeps none (schema.sql).
    #[test]
    fn an_unknown_provider_fails_its_row_and_writes_nothing_of_it() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let trigger: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'transactions_provider_insert'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(trigger.contains("RAISE(FAIL"), "{trigger}");
        let refs = |conn: &Connection| {
            strings(
                conn,
                "SELECT provider_ref FROM transactions ORDER BY provider_ref",
            )
        };
        let err = conn
            .execute(
                "INSERT INTO transactions (provider, provider_ref) VALUES ('zengapy', 'x')",
                [],
            )
            .unwrap_err();
        assert!(err.to_string().contains("unknown provider"), "{err}");
        assert!(refs(&conn).is_empty());
        let multi = "INSERT INTO transactions (provider, provider_ref)
                     VALUES ('jenga', 'a'), ('nope', 'b'), ('jenga', 'c')";
        conn.execute_batch("BEGIN").unwrap();
        assert!(conn.execute(multi, []).is_err());
        conn.execute_batch("ROLLBACK").unwrap();
        assert!(refs(&conn).is_empty(), "rolled back: none");
        assert!(conn.execute(multi, []).is_err());
        assert_eq!(refs(&conn), ["a"], "the rows before the refused one stay");
    }

    /// Making `events.seq` the rowid rebuilds events: every row keeps every value, its columns
    /// keep their order, the references to it from deliveries, attempts and replays still
    /// resolve and are still enforced, the summary triggers still write to it, and a second
    /// event with the same id or position is refused.
    #[test]
    fn events_seq_becomes_the_rowid_and_events_and_references_survive() {
        let mut conn = at_version(11);
        conn.pragma_update(None, "foreign_keys", true).unwrap();
        conn.execute_batch(
            "INSERT INTO transactions (id, provider, provider_ref, status)
                  VALUES (7, 'zengapay', 'ZP-7', 'SUCCEEDED');
             INSERT INTO transitions (id, transaction_id, seq, outcome, to_status, source, at_ms)
                  VALUES (1, 7, 1, 'applied', 'PENDING', 'operator', 1),
                         (2, 7, 2, 'applied', 'SUCCEEDED', 'operator', 2),
                         (3, 7, 3, 'applied', 'SUCCEEDED', 'operator', 3);
             INSERT INTO events (id, transaction_id, transition_id, type, payload, status,
                                 attempts, next_attempt_at_ms, created_at_ms, delivered_at_ms,
                                 last_error, schedule_started_at_ms, seq)
                  VALUES ('evt_b', 7, 2, 'transaction.succeeded', '{\"n\":2}', 'dead', 3, 11,
                          12, 13, 'boom', 14, 5),
                         ('evt_a', 7, 1, 'transaction.pending', '{\"n\":1}', 'delivered', 4,
                          21, 22, 23, 'late', 24, 2);
             INSERT INTO destination_state (name, url, created_at_ms)
                  VALUES ('default', 'http://127.0.0.1:1/', 1);
             INSERT INTO attempts (event_id, destination, at_ms, latency_ms, http_status)
                  VALUES ('evt_b', 'http://127.0.0.1:1/', 3, 1, 500);
             INSERT INTO replays (event_id, destination, at_ms, requested_by)
                  VALUES ('evt_b', 'default', 4, 'ops');",
        )
        .unwrap();
        // Every value of every row, column by column in the table's order.
        let column_names = "SELECT name FROM pragma_table_info('events') ORDER BY cid";
        let columns = strings(&conn, column_names);
        let values = columns
            .iter()
            .map(|c| format!("quote({c})"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let rows = format!("SELECT {values} FROM events ORDER BY seq");
        let before = strings(&conn, &rows);
        migrate(&mut conn).unwrap();
        assert_eq!(
            strings(&conn, column_names),
            columns,
            "same columns, same order"
        );
        assert_eq!(strings(&conn, &rows), before, "same values");
        assert_eq!(
            strings(&conn, "SELECT rowid || '=' || seq FROM events ORDER BY seq"),
            ["2=2", "5=5"]
        );
        let indexes = "SELECT name FROM pragma_index_list('events') ORDER BY name";
        assert_eq!(
            strings(&conn, indexes),
            [
                "events_due",
                "events_transaction",
                "sqlite_autoindex_events_1"
            ]
        );
        // Both summary triggers still write the event's columns.
        conn.execute_batch(
            "INSERT INTO deliveries (event_id, destination, transaction_id, transition_id,
                                     schedule_started_at_ms, next_attempt_at_ms)
                  VALUES ('evt_b', 'default', 7, 2, 30, 31);",
        )
        .unwrap();
        let status = "SELECT status || ',' || next_attempt_at_ms FROM events WHERE id = 'evt_b'";
        assert_eq!(strings(&conn, status), ["pending,31"]);
        conn.execute_batch(
            "UPDATE deliveries SET status = 'dead', next_attempt_at_ms = NULL
              WHERE event_id = 'evt_b'",
        )
        .unwrap();
        let status =
            "SELECT status || ',' || quote(next_attempt_at_ms) FROM events WHERE id = 'evt_b'";
        assert_eq!(strings(&conn, status), ["dead,NULL"]);
        let insert = |id: &str, seq: i64| {
            conn.execute(
                "INSERT INTO events (id, transaction_id, transition_id, type, payload, created_at_ms, seq)
                      VALUES (?1, 7, 3, 'transaction.succeeded', '{}', 9, ?2)",
                rusqlite::params![id, seq],
            )
            .unwrap_err()
            .to_string()
        };
        assert!(insert("evt_c", 5).contains("UNIQUE constraint failed: events.seq"));
        assert!(insert("evt_b", 6).contains("UNIQUE constraint failed: events.id"));
        let orphan = conn
            .execute(
                "INSERT INTO replays (event_id, destination, at_ms, requested_by)
                      VALUES ('evt_missing', 'default', 5, 'ops')",
                [],
            )
            .unwrap_err();
        assert!(orphan.to_string().contains("FOREIGN KEY constraint failed"));
    }

    /// Every provider payhook has is in the providers table, and nothing else; a provider
    /// missing from it (one added after the store was created) is listed when the store
    /// is opened, with no migration.
    #[test]
    fn the_providers_table_lists_every_provider() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let stored: Vec<String> = conn
            .prepare("SELECT name FROM providers ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut known: Vec<String> = crate::domain::ProviderId::ALL
            .iter()
            .map(|p| p.as_str().to_string())
            .collect();
        known.sort();
        assert_eq!(stored, known);
        conn.execute("DELETE FROM providers WHERE name = 'tujenge'", [])
            .unwrap();
        migrate(&mut conn).unwrap();
        let listed: i64 = conn
            .query_row("SELECT COUNT(*) FROM providers", [], |r| r.get(0))
            .unwrap();
        assert_eq!(listed as usize, known.len());
    }
}
