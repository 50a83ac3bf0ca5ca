//! Named forward destinations: which events each one takes, whether an operator paused
//! it, and how much it still has to deliver.
//!
//! A destination subscribes at an outbox position (`destination_state.subscribed_seq`):
//! the forwarder creates its `deliveries` rows for every later event that passes its
//! filter ([`subscribe`]), so an event written by any path (ingest, a poll, the CLI in
//! another process) reaches every destination without that path knowing about them.
//! Delivery state itself (due, attempts, verdicts, replay) is in [`super::outbox`].

use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// What the forwarder knows of one configured destination, for [`register`] and
/// [`subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `destination_state.name`.
    pub name: String,
    /// Its URL as configured.
    pub url: String,
    /// When first registered, take the events already in the outbox too.
    pub backfill: bool,
    /// Only these event types (`None`: all).
    pub types: Option<Vec<String>>,
    /// Only these providers' events (`None`: all).
    pub providers: Option<Vec<String>>,
}

/// Records a configured destination (idempotent). The first time, it subscribes at the
/// start of the outbox with `backfill`, otherwise at its end, so that a destination added
/// later is not flooded with history. The URL is updated to the configured one.
pub fn register(conn: &Connection, d: &Subscription, now_ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO destination_state (name, url, created_at_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET url = excluded.url",
    )?
    .execute(params![d.name, d.url, now_ms])?;
    // Inside the writer's transaction: no event can commit between reading MAX(seq) and
    // recording it, so the destination takes exactly the events after this point.
    conn.prepare_cached(
        "UPDATE destination_state
            SET subscribed_seq = CASE WHEN ?2 THEN 0
                                      ELSE (SELECT COALESCE(MAX(seq), 0) FROM events) END
          WHERE name = ?1 AND subscribed_seq IS NULL",
    )?
    .execute(params![d.name, d.backfill])?;
    Ok(())
}

/// True when events past the destination's subscription point exist (a read, so that an
/// idle forwarder pass does not queue a writer job).
pub fn behind(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM events
                             WHERE seq > (SELECT COALESCE(subscribed_seq, 0) FROM destination_state
                                           WHERE name = ?1))",
        )?
        .query_row([name], |r| r.get(0))?)
}

/// Creates the destination's deliveries for the events written since its subscription
/// point that pass its filters, and moves the point to the newest event. Each is due from
/// its event's creation; its retry schedule starts at its creation or now, whichever is
/// later, so that events backfilled to a new destination are not dead-lettered at their
/// first failure for having waited. Returns how many deliveries were created.
pub fn subscribe(conn: &Connection, d: &Subscription, now_ms: i64) -> Result<usize, StoreError> {
    let list = |v: &Option<Vec<String>>| {
        v.as_ref()
            .map(|v| serde_json::Value::from(v.clone()).to_string())
    };
    let (types, providers) = (list(&d.types), list(&d.providers));
    let n = conn
        .prepare_cached(
            "INSERT INTO deliveries (event_id, destination, transaction_id, transition_id,
                                     next_attempt_at_ms, schedule_started_at_ms)
             SELECT e.id, s.name, e.transaction_id, e.transition_id, e.created_at_ms,
                    MAX(e.created_at_ms, ?2)
               FROM destination_state s
               JOIN events e ON e.seq > COALESCE(s.subscribed_seq, 0)
               JOIN transactions t ON t.id = e.transaction_id
              WHERE s.name = ?1
                AND (?3 IS NULL OR e.type IN (SELECT value FROM json_each(?3)))
                AND (?4 IS NULL OR t.provider IN (SELECT value FROM json_each(?4)))
             ON CONFLICT (event_id, destination) DO NOTHING",
        )?
        .execute(params![d.name, now_ms, types, providers])?;
    conn.prepare_cached(
        "UPDATE destination_state SET subscribed_seq = (SELECT COALESCE(MAX(seq), 0) FROM events)
          WHERE name = ?1",
    )?
    .execute([&d.name])?;
    Ok(n)
}

/// Pauses a destination: nothing is sent to it until [`resume`]. True if it was running.
pub fn pause(
    conn: &Connection,
    name: &str,
    note: Option<&str>,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let known = state(conn, name)?.ok_or_else(|| unknown(name))?;
    if known.paused_at_ms.is_some() {
        return Ok(false);
    }
    conn.prepare_cached(
        "UPDATE destination_state SET paused_at_ms = ?2, paused_note = ?3 WHERE name = ?1",
    )?
    .execute(params![name, now_ms, note])?;
    Ok(true)
}

/// Resumes a paused destination; true if it was paused. Its backlog starts a fresh retry
/// schedule, due now: the time it was held must not count against the retry horizon.
pub fn resume(conn: &Connection, name: &str, now_ms: i64) -> Result<bool, StoreError> {
    let known = state(conn, name)?.ok_or_else(|| unknown(name))?;
    if known.paused_at_ms.is_none() {
        return Ok(false);
    }
    conn.prepare_cached(
        "UPDATE destination_state SET paused_at_ms = NULL, paused_note = NULL WHERE name = ?1",
    )?
    .execute([name])?;
    conn.prepare_cached(
        "UPDATE deliveries SET attempts = 0, schedule_started_at_ms = ?2, next_attempt_at_ms = ?2
          WHERE destination = ?1 AND status = 'pending'",
    )?
    .execute(params![name, now_ms])?;
    Ok(true)
}

fn unknown(name: &str) -> StoreError {
    StoreError::NotFound(format!("destination {name}"))
}

/// One destination's state and backlog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationState {
    /// Name.
    pub name: String,
    /// URL as last configured.
    #[serde(serialize_with = "redacted")]
    pub url: String,
    /// Set while paused.
    pub paused_at_ms: Option<i64>,
    /// The operator's note when pausing.
    pub paused_note: Option<String>,
    /// Deliveries still pending.
    pub pending: i64,
    /// Creation time of the oldest event still pending for it.
    pub oldest_pending_created_at_ms: Option<i64>,
}

fn redacted<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::secret::redacted_url(url))
}

const STATE: &str = "SELECT s.name, s.url, s.paused_at_ms, s.paused_note,
        (SELECT count(*) FROM deliveries d WHERE d.destination = s.name AND d.status = 'pending'),
        (SELECT min(e.created_at_ms) FROM deliveries d JOIN events e ON e.id = d.event_id
          WHERE d.destination = s.name AND d.status = 'pending')
   FROM destination_state s";

fn state_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DestinationState> {
    Ok(DestinationState {
        name: r.get(0)?,
        url: r.get(1)?,
        paused_at_ms: r.get(2)?,
        paused_note: r.get(3)?,
        pending: r.get(4)?,
        oldest_pending_created_at_ms: r.get(5)?,
    })
}

/// One destination's state, if it was ever registered.
pub fn state(conn: &Connection, name: &str) -> Result<Option<DestinationState>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("{STATE} WHERE s.name = ?1"))?
        .query_row([name], state_row)
        .optional()?)
}

/// Every registered destination, by name.
pub fn states(conn: &Connection) -> Result<Vec<DestinationState>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("{STATE} ORDER BY s.name"))?;
    let rows = stmt.query_map([], state_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Status;
    use crate::store::outbox::tests::{db, settle};

    fn sub(name: &str, backfill: bool) -> Subscription {
        Subscription {
            name: name.into(),
            url: format!("http://127.0.0.1:9/{name}"),
            backfill,
            types: None,
            providers: None,
        }
    }

    fn pending(c: &Connection, name: &str) -> i64 {
        state(c, name).unwrap().unwrap().pending
    }

    #[test]
    fn a_destination_added_later_takes_history_only_with_backfill() {
        let c = db();
        settle(&c, "A", Status::Succeeded, 1);
        let (late, full) = (sub("late", false), sub("full", true));
        for d in [&late, &full] {
            register(&c, d, 10).unwrap();
            register(&c, d, 11).unwrap();
        }
        assert!(!behind(&c, "late").unwrap());
        assert!(behind(&c, "full").unwrap());
        assert_eq!(subscribe(&c, &late, 12).unwrap(), 0);
        assert_eq!(subscribe(&c, &full, 12).unwrap(), 1);
        settle(&c, "B", Status::Failed, 20);
        assert_eq!(subscribe(&c, &late, 21).unwrap(), 1);
        assert_eq!(subscribe(&c, &full, 21).unwrap(), 1);
        assert_eq!(subscribe(&c, &full, 22).unwrap(), 0, "each event once");
        assert_eq!((pending(&c, "late"), pending(&c, "full")), (1, 2));
    }

    #[test]
    fn filters_keep_types_and_providers_away() {
        let c = db();
        let mut only_failed = sub("f", true);
        only_failed.types = Some(vec!["transaction.failed".into()]);
        let mut only_jenga = sub("j", true);
        only_jenga.providers = Some(vec!["jenga".into()]);
        settle(&c, "A", Status::Succeeded, 1);
        settle(&c, "B", Status::Failed, 2);
        for d in [&only_failed, &only_jenga] {
            register(&c, d, 3).unwrap();
            subscribe(&c, d, 3).unwrap();
        }
        assert_eq!((pending(&c, "f"), pending(&c, "j")), (1, 0));
    }

    #[test]
    fn pause_and_resume_are_recorded_and_resume_restarts_the_schedule() {
        let c = db();
        let d = sub("p", true);
        assert!(matches!(
            pause(&c, "p", None, 1),
            Err(StoreError::NotFound(_))
        ));
        register(&c, &d, 1).unwrap();
        assert!(pause(&c, "p", Some("maintenance"), 5).unwrap());
        assert!(!pause(&c, "p", None, 6).unwrap());
        let s = state(&c, "p").unwrap().unwrap();
        assert_eq!(
            (s.paused_at_ms, s.paused_note.as_deref()),
            (Some(5), Some("maintenance"))
        );
        settle(&c, "A", Status::Succeeded, 7);
        subscribe(&c, &d, 8).unwrap();
        assert!(resume(&c, "p", 9_000).unwrap());
        assert!(!resume(&c, "p", 9_001).unwrap());
        let row: (i64, i64) = c
            .query_row(
                "SELECT schedule_started_at_ms, next_attempt_at_ms FROM deliveries
                  WHERE destination = 'p'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(row, (9_000, 9_000));
    }
}
