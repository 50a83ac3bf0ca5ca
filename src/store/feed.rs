//! The pull feed's query: events in outbox order after a cursor.
//!
//! # Why a cursor never skips an event
//! The cursor is `events.seq`, which the INSERT that writes an event sets to one more than
//! the largest so far *inside the transaction that inserts the event*
//! (`store::events::emit_snapshot`; the column is the table's rowid, never NULL: an INSERT
//! that gave none would be numbered one more than the largest all the same). SQLite lets
//! one write transaction run at a time (payhook's writer thread, or the CLI in another
//! process, each waits for the write lock), so `seq` values are handed out in commit order: a
//! transaction that commits after a reader's snapshot started its writes after every
//! transaction visible in that snapshot had committed, and so saw their `seq`s and numbered
//! its events above all of them. A consumer that has read up to `seq = n` can therefore
//! never later find an event with `seq <= n` it has not seen. (A rolled-back transaction's
//! numbers are reused, but nobody saw them; events are never deleted.) `seq` is the
//! table's `INTEGER PRIMARY KEY`, a named column for its rowid, which `VACUUM` keeps as it
//! is (it may renumber only an implicit rowid); the table being keyed by it keeps the
//! INSERT's `MAX(seq)` one step to the last row without an index of its own.

use super::StoreError;
use rusqlite::{params, Connection};

/// One event of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    /// `events.seq`: its position.
    pub seq: i64,
    /// The JSON body exactly as a destination receives it.
    pub payload: String,
}

/// Up to `limit` events after position `after`, in outbox order, optionally of one type
/// and one provider.
pub fn page(
    conn: &Connection,
    after: i64,
    limit: usize,
    event_type: Option<&str>,
    provider: Option<&str>,
) -> Result<Vec<FeedEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.seq, e.payload FROM events e JOIN transactions t ON t.id = e.transaction_id
          WHERE e.seq > ?1 AND (?3 IS NULL OR e.type = ?3) AND (?4 IS NULL OR t.provider = ?4)
          ORDER BY e.seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![
            after,
            i64::try_from(limit).unwrap_or(i64::MAX),
            event_type,
            provider
        ],
        |r| {
            Ok(FeedEvent {
                seq: r.get(0)?,
                payload: r.get(1)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Status;
    use crate::store::outbox::tests::{db, settle};

    #[test]
    fn pages_follow_commit_order_and_filters() {
        let c = db();
        let a = settle(&c, "A", Status::Succeeded, 1);
        let b = settle(&c, "B", Status::Failed, 2);
        let a2 = settle(&c, "A", Status::Reversed, 3);
        let all = page(&c, 0, 10, None, None).unwrap();
        let ids: Vec<String> = all
            .iter()
            .map(|e| {
                serde_json::from_str::<serde_json::Value>(&e.payload).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ids, [a, b, a2]);
        assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(page(&c, all[0].seq, 1, None, None).unwrap(), all[1..2]);
        assert_eq!(
            page(&c, 0, 10, Some("transaction.failed"), None).unwrap(),
            all[1..2]
        );
        assert!(page(&c, 0, 10, None, Some("jenga")).unwrap().is_empty());
        assert!(page(&c, all[2].seq, 10, None, None).unwrap().is_empty());
    }
}
