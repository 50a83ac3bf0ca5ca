//! The outbox, from the forwarder's side: which events are due, what each delivery
//! attempt did, dead letters, replay, and destinations disabled by 410 Gone. What an
//! operator reads of it (listings, an event's or a transaction's whole story) is in
//! [`super::queries`].
//!
//! Events are written by [`super::transactions`] in the same SQL transaction as their
//! transition; nothing here creates or deletes one. Each function runs on a connection
//! handed in by [`super::Store::read`] or [`super::Store::write`], so an attempt row and
//! the event's new state are committed together.
use super::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// An event ready for a delivery attempt to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEvent {
    /// `events.id`, the `webhook-id`.
    pub id: String,
    /// The destination it is due at (`deliveries.destination`).
    pub destination: String,
    /// The transaction it is about.
    pub transaction_id: i64,
    /// The JSON body, exactly as fixed at creation.
    pub payload: String,
    /// Attempts so far in the current schedule, at this destination.
    pub attempts: i64,
    /// When the current schedule started (creation, last replay or resume); the horizon
    /// counts from here.
    pub schedule_started_at_ms: i64,
}

/// Pending deliveries to `destination` due at `now_ms`, oldest due first, at most
/// `limit`; none while the destination is paused.
///
/// A delivery is held back while an earlier event of the same transaction (lower
/// transition) is still pending *at the same destination*, so each destination sees one
/// transaction's events in order, and no destination waits for another. A dead earlier
/// delivery does not hold later ones back: it was given up on, and waits for a replay.
pub fn due(
    conn: &Connection,
    destination: &str,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<DueEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.id, d.destination, e.transaction_id, e.payload, d.attempts,
                d.schedule_started_at_ms
           FROM deliveries d JOIN events e ON e.id = d.event_id
          WHERE d.destination = ?1 AND d.status = 'pending' AND d.next_attempt_at_ms <= ?2
            AND NOT EXISTS (SELECT 1 FROM deliveries p
                             WHERE p.destination = d.destination
                               AND p.transaction_id = d.transaction_id
                               AND p.status = 'pending'
                               AND p.transition_id < d.transition_id)
            AND NOT EXISTS (SELECT 1 FROM destination_state s
                             WHERE s.name = d.destination AND s.paused_at_ms IS NOT NULL)
          ORDER BY d.next_attempt_at_ms, d.transition_id
          LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![
            destination,
            now_ms,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |r| {
            Ok(DueEvent {
                id: r.get(0)?,
                destination: r.get(1)?,
                transaction_id: r.get(2)?,
                payload: r.get(3)?,
                attempts: r.get(4)?,
                schedule_started_at_ms: r.get(5)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Claims up to `limit` due deliveries to `destination`: [`due`], and each one's next
/// attempt moved to `lease_until_ms`, in one writer job. While the lease runs no other
/// pass claims it again; if payhook stops mid-delivery the lease simply expires and the
/// event is delivered again (at least once, same id). The attempt's outcome then replaces
/// the lease ([`record_attempt`]). A pause committed before this job claims nothing.
pub fn claim(
    conn: &Connection,
    destination: &str,
    now_ms: i64,
    limit: usize,
    lease_until_ms: i64,
) -> Result<Vec<DueEvent>, StoreError> {
    let events = due(conn, destination, now_ms, limit)?;
    let mut lease = conn.prepare_cached(
        "UPDATE deliveries SET next_attempt_at_ms = ?3
          WHERE event_id = ?1 AND destination = ?2 AND status = 'pending'",
    )?;
    for e in &events {
        lease.execute(params![e.id, destination, lease_until_ms])?;
    }
    Ok(events)
}

/// The earliest time a pending delivery to `destination` that is not held back by an
/// earlier one becomes due; `None` when there is none or the destination is paused. The
/// forwarder sleeps until then when idle.
pub fn next_due_at(conn: &Connection, destination: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT MIN(d.next_attempt_at_ms) FROM deliveries d
              WHERE d.destination = ?1 AND d.status = 'pending'
                AND NOT EXISTS (SELECT 1 FROM deliveries p
                                 WHERE p.destination = d.destination
                                   AND p.transaction_id = d.transaction_id
                                   AND p.status = 'pending'
                                   AND p.transition_id < d.transition_id)
                AND NOT EXISTS (SELECT 1 FROM destination_state s
                                 WHERE s.name = d.destination AND s.paused_at_ms IS NOT NULL)",
        )?
        .query_row([destination], |r| r.get(0))?)
}

/// One delivery attempt, as recorded in `attempts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The event delivered.
    pub event_id: String,
    /// The destination's name.
    pub destination_name: String,
    /// URL posted to.
    pub destination: String,
    /// When the attempt started.
    pub at_ms: i64,
    /// Time to the answer, or to the failure.
    pub latency_ms: i64,
    /// HTTP status, if an answer came.
    pub http_status: Option<u16>,
    /// Why no usable answer came (timeout, connection refused, ...), or the refusal.
    pub error: Option<String>,
    /// First bytes of the answer body.
    pub response_head: Option<String>,
}

/// What an attempt means for its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Acknowledged (2xx): delivered, never sent again unless replayed.
    Delivered,
    /// Failed; try again at this time.
    Retry {
        /// `deliveries.next_attempt_at_ms`.
        next_attempt_at_ms: i64,
    },
    /// Failed past the retry horizon: dead letter, kept for replay.
    Dead,
    /// The destination is gone (410) and now disabled: the delivery stays pending and
    /// due, for when an operator re-enables the destination.
    Parked,
}

/// Records `attempt` and applies `verdict` to its delivery, in one writer job (the
/// `events` row's summary follows by trigger).
pub fn record_attempt(
    conn: &Connection,
    attempt: &AttemptRecord,
    verdict: Verdict,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO attempts (event_id, destination, at_ms, latency_ms, http_status, error,
                               response_head, destination_name)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        attempt.event_id,
        attempt.destination,
        attempt.at_ms,
        attempt.latency_ms,
        attempt.http_status,
        attempt.error,
        attempt.response_head,
        attempt.destination_name
    ])?;
    let last_error = attempt.error.clone().or_else(|| {
        attempt
            .http_status
            .filter(|s| !(200..300).contains(s))
            .map(|s| format!("HTTP {s}"))
    });
    // Every update is guarded by status = 'pending': only the forwarder moves a pending
    // delivery, and an operator's replay only touches delivered or dead ones. A 2xx is the
    // exception: it also counts for a dead delivery, because a delivery whose lease ran
    // out (a slow store) can be acknowledged after a second attempt gave up; the receiver
    // has it, and a dead letter would make a replay send it again.
    let (id, dest) = (&attempt.event_id, &attempt.destination_name);
    match verdict {
        Verdict::Delivered => conn
            .prepare_cached(
                "UPDATE deliveries SET status = 'delivered', attempts = attempts + 1,
                        next_attempt_at_ms = NULL, delivered_at_ms = ?3, last_error = NULL
                  WHERE event_id = ?1 AND destination = ?2 AND status IN ('pending', 'dead')",
            )?
            .execute(params![id, dest, attempt.at_ms])?,
        Verdict::Retry { next_attempt_at_ms } => conn
            .prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at_ms = ?3,
                        last_error = ?4
                  WHERE event_id = ?1 AND destination = ?2 AND status = 'pending'",
            )?
            .execute(params![id, dest, next_attempt_at_ms, last_error])?,
        // Parked stays due: it is not claimed while its destination is disabled, and goes
        // out as soon as the destination is enabled again.
        Verdict::Parked => conn
            .prepare_cached(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at_ms = ?3,
                        last_error = ?4
                  WHERE event_id = ?1 AND destination = ?2 AND status = 'pending'",
            )?
            .execute(params![id, dest, attempt.at_ms, last_error])?,
        Verdict::Dead => conn
            .prepare_cached(
                "UPDATE deliveries SET status = 'dead', attempts = attempts + 1,
                        next_attempt_at_ms = NULL, last_error = ?3
                  WHERE event_id = ?1 AND destination = ?2 AND status = 'pending'",
            )?
            .execute(params![id, dest, last_error])?,
    };
    Ok(())
}

/// The destination's disabled state: `Some((since_ms, reason))` when a 410 disabled it.
pub fn destination_disabled(
    conn: &Connection,
    url: &str,
) -> Result<Option<(i64, String)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT disabled_at_ms, COALESCE(disabled_reason, '') FROM destinations
              WHERE url = ?1 AND disabled_at_ms IS NOT NULL",
        )?
        .query_row([url], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Disables a destination URL (it answered 410 Gone); survives restarts.
pub fn disable_destination(
    conn: &Connection,
    url: &str,
    now_ms: i64,
    reason: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO destinations (url, disabled_at_ms, disabled_reason) VALUES (?1, ?2, ?3)
         ON CONFLICT (url) DO UPDATE SET disabled_at_ms = excluded.disabled_at_ms,
                                         disabled_reason = excluded.disabled_reason",
    )?
    .execute(params![url, now_ms, reason])?;
    Ok(())
}

/// Re-enables a destination URL; true if it was disabled. Every pending delivery to a
/// destination at that URL starts a fresh retry schedule, due now: the days they waited
/// for the operator must not count against the retry horizon, or the first failure after
/// re-enabling would dead-letter the backlog.
pub fn enable_destination(conn: &Connection, url: &str, now_ms: i64) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE destinations SET disabled_at_ms = NULL, disabled_reason = NULL
              WHERE url = ?1 AND disabled_at_ms IS NOT NULL",
        )?
        .execute([url])?;
    if n == 1 {
        conn.prepare_cached(
            "UPDATE deliveries SET attempts = 0, schedule_started_at_ms = ?1,
                    next_attempt_at_ms = ?1
              WHERE status = 'pending'
                AND destination IN (SELECT name FROM destination_state WHERE url = ?2)",
        )?
        .execute(params![now_ms, url])?;
    }
    Ok(n == 1)
}

/// Every destination ever disabled, with its state (for the CLI).
pub fn destinations(conn: &Connection) -> Result<Vec<DestinationRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT url, disabled_at_ms, disabled_reason FROM destinations ORDER BY url",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(DestinationRow {
            url: r.get(0)?,
            disabled_at_ms: r.get(1)?,
            disabled_reason: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A `destinations` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationRow {
    /// URL.
    pub url: String,
    /// When a 410 disabled it; `None` once re-enabled.
    pub disabled_at_ms: Option<i64>,
    /// Why.
    pub disabled_reason: Option<String>,
}

/// Who asked for a replay, and why; recorded in each replayed delivery's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    /// Only this destination's delivery (`None`: every destination's).
    pub destination: Option<String>,
    /// Who asked (the operator's login name).
    pub by: String,
    /// Why (`--note`).
    pub note: Option<String>,
}

impl ReplayRequest {
    /// Every destination, asked by `by`, without a note.
    pub fn by(by: &str) -> ReplayRequest {
        ReplayRequest {
            destination: None,
            by: by.to_string(),
            note: None,
        }
    }
}

const REPLAY: &str = "UPDATE deliveries
    SET status = 'pending', attempts = 0, next_attempt_at_ms = ?2,
        schedule_started_at_ms = ?2, delivered_at_ms = NULL, last_error = NULL";

fn record_replays(
    conn: &Connection,
    replayed: &[(String, String)],
    req: &ReplayRequest,
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO replays (event_id, destination, at_ms, requested_by, note)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (id, dest) in replayed {
        insert.execute(params![id, dest, now_ms, req.by, req.note])?;
    }
    Ok(())
}

/// Makes a delivered or dead event pending again at every destination (each delivered or
/// dead delivery), due at `now_ms`, with a fresh retry schedule. Its id (the
/// `webhook-id`) and payload are unchanged, so a receiver that deduplicates on the id
/// recognises it.
pub fn replay(conn: &Connection, id: &str, now_ms: i64) -> Result<(), StoreError> {
    replay_as(conn, id, &ReplayRequest::by("operator"), now_ms).map(|_| ())
}

/// [`replay`] as `req` says (one destination or all; who asked, why); returns the
/// destinations replayed.
pub fn replay_as(
    conn: &Connection,
    id: &str,
    req: &ReplayRequest,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let replayed: Vec<(String, String)> = conn
        .prepare_cached(&format!(
            "{REPLAY} WHERE event_id = ?1 AND status IN ('delivered', 'dead')
                AND (?3 IS NULL OR destination = ?3)
             RETURNING event_id, destination"
        ))?
        .query_map(params![id, now_ms, req.destination], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    if !replayed.is_empty() {
        record_replays(conn, &replayed, req, now_ms)?;
        return Ok(replayed.into_iter().map(|(_, d)| d).collect());
    }
    let status: Option<String> = conn
        .prepare_cached(
            "SELECT COALESCE((SELECT d.status FROM deliveries d
                               WHERE d.event_id = e.id AND d.destination = ?2), e.status)
               FROM events e WHERE e.id = ?1",
        )?
        .query_row(params![id, req.destination], |r| r.get(0))
        .optional()?;
    let at = req
        .destination
        .as_deref()
        .map(|d| format!(" at {d}"))
        .unwrap_or_default();
    match status {
        None => Err(StoreError::NotFound(format!("event {id}"))),
        Some(s) => Err(StoreError::Refused(format!(
            "event {id} is {s}{at}: only delivered or dead events can be replayed"
        ))),
    }
}

/// Replays every event that died at or after `since_ms` (its last attempt, the one that
/// gave up, was then); returns their ids. Not by creation time: an event dies only after
/// the retry horizon (days), so "created in the last day" would never match a dead one.
pub fn replay_dead_since(
    conn: &Connection,
    since_ms: i64,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    replay_dead_since_as(conn, since_ms, &ReplayRequest::by("operator"), now_ms)
}

/// [`replay_dead_since`] as `req` says (one destination or all; who asked, why).
pub fn replay_dead_since_as(
    conn: &Connection,
    since_ms: i64,
    req: &ReplayRequest,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{REPLAY} WHERE status = 'dead' AND (?3 IS NULL OR destination = ?3)
           AND COALESCE((SELECT MAX(a.at_ms) FROM attempts a
                          WHERE a.event_id = deliveries.event_id
                            AND a.destination_name = deliveries.destination),
                        schedule_started_at_ms) >= ?1
         RETURNING event_id, destination"
    ))?;
    let replayed: Vec<(String, String)> = stmt
        .query_map(params![since_ms, now_ms, req.destination], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    record_replays(conn, &replayed, req, now_ms)?;
    let mut ids: Vec<String> = replayed.into_iter().map(|(id, _)| id).collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{ProviderId, StatusReport, TxnKind};
    use crate::state::Status;
    use crate::store::queries::{list, story};
    use crate::store::transactions::{apply, Schedule, Source};

    fn default_destination() -> crate::store::destinations::Subscription {
        crate::store::destinations::Subscription {
            name: "default".into(),
            url: "https://m.example/h".into(),
            backfill: true,
            types: None,
            providers: None,
        }
    }

    /// A migrated database with the `default` destination registered.
    pub(crate) fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::migrations::migrate(&mut c).unwrap();
        crate::store::destinations::register(&c, &default_destination(), 0).unwrap();
        c
    }

    /// Applies a status report from an operator and returns the event it wrote, handed to
    /// the `default` destination.
    pub(crate) fn settle(c: &Connection, reference: &str, status: Status, now: i64) -> String {
        let report = StatusReport::new(reference, TxnKind::Collection, status);
        let id = apply(
            c,
            ProviderId::ZengaPay,
            &report,
            crate::store::transactions::Trust::vouched(crate::state::plan::Channel::Signed),
            Source::Operator("test"),
            Schedule::default(),
            now,
        )
        .unwrap()
        .event_id
        .unwrap();
        crate::store::destinations::subscribe(c, &default_destination(), now).unwrap();
        id
    }

    fn attempt(id: &str, at: i64, status: u16) -> AttemptRecord {
        AttemptRecord {
            event_id: id.into(),
            destination_name: "default".into(),
            destination: "http://127.0.0.1:9/h".into(),
            at_ms: at,
            latency_ms: 3,
            http_status: Some(status),
            error: None,
            response_head: Some("nope".into()),
        }
    }

    fn ids(v: Vec<DueEvent>) -> Vec<String> {
        v.into_iter().map(|e| e.id).collect()
    }

    #[test]
    fn a_later_event_waits_for_its_transactions_earlier_one_but_others_do_not() {
        let c = db();
        let a1 = settle(&c, "A", Status::Succeeded, 1000);
        let a2 = settle(&c, "A", Status::Reversed, 1001);
        let b1 = settle(&c, "B", Status::Failed, 1002);
        assert_eq!(
            ids(due(&c, "default", 999, 10).unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(
            ids(due(&c, "default", 5000, 10).unwrap()),
            [a1.clone(), b1.clone()]
        );
        // A's first event fails and is rescheduled far out: A2 still waits, B does not.
        record_attempt(
            &c,
            &attempt(&a1, 5000, 500),
            Verdict::Retry {
                next_attempt_at_ms: 9000,
            },
        )
        .unwrap();
        assert_eq!(ids(due(&c, "default", 5000, 10).unwrap()), [b1.as_str()]);
        assert_eq!(next_due_at(&c, "default").unwrap(), Some(1002));
        record_attempt(&c, &attempt(&b1, 5000, 200), Verdict::Delivered).unwrap();
        assert_eq!(next_due_at(&c, "default").unwrap(), Some(9000));
        record_attempt(&c, &attempt(&a1, 9000, 204), Verdict::Delivered).unwrap();
        assert_eq!(ids(due(&c, "default", 9000, 10).unwrap()), [a2.as_str()]);
        // A dead earlier event does not hold a later one back.
        let c2 = db();
        let x1 = settle(&c2, "X", Status::Succeeded, 1);
        let x2 = settle(&c2, "X", Status::Reversed, 2);
        record_attempt(&c2, &attempt(&x1, 5, 500), Verdict::Dead).unwrap();
        assert_eq!(ids(due(&c2, "default", 5, 10).unwrap()), [x2]);
    }

    #[test]
    fn attempts_are_recorded_and_dead_letters_are_kept_and_replayable() {
        let c = db();
        let e = settle(&c, "A", Status::Succeeded, 1000);
        record_attempt(
            &c,
            &attempt(&e, 2000, 503),
            Verdict::Retry {
                next_attempt_at_ms: 3000,
            },
        )
        .unwrap();
        record_attempt(&c, &attempt(&e, 3000, 500), Verdict::Dead).unwrap();
        let row = &list(&c, Some("dead"), None, 10).unwrap()[0];
        assert_eq!(
            (row.id.as_str(), row.attempts, row.next_attempt_at_ms),
            (e.as_str(), 2, None)
        );
        assert_eq!(row.last_error.as_deref(), Some("HTTP 500"));
        assert!(due(&c, "default", i64::MAX, 10).unwrap().is_empty());
        assert!(matches!(
            replay(&c, "evt_nope", 1),
            Err(StoreError::NotFound(_))
        ));
        replay(&c, &e, 4000).unwrap();
        assert!(matches!(replay(&c, &e, 4000), Err(StoreError::Refused(_))));
        let again = due(&c, "default", 4000, 10).unwrap();
        assert_eq!(
            (
                again[0].id.as_str(),
                again[0].attempts,
                again[0].schedule_started_at_ms
            ),
            (e.as_str(), 0, 4000)
        );
        record_attempt(&c, &attempt(&e, 4000, 200), Verdict::Delivered).unwrap();
        let story = story(&c, &e).unwrap();
        assert_eq!(story.event.status, "delivered");
        assert_eq!(
            story
                .attempts
                .iter()
                .map(|a| a.http_status)
                .collect::<Vec<_>>(),
            [Some(503), Some(500), Some(200)]
        );
        assert_eq!(story.transitions.len(), 1);
        assert_eq!(story.payload["id"], e.as_str());
        // --dead --since: only the ones that died since then, however old they are.
        let died_early = settle(&c, "B", Status::Failed, 100);
        let died_late = settle(&c, "C", Status::Failed, 200);
        record_attempt(&c, &attempt(&died_early, 3000, 500), Verdict::Dead).unwrap();
        record_attempt(&c, &attempt(&died_late, 6000, 500), Verdict::Dead).unwrap();
        assert_eq!(replay_dead_since(&c, 5000, 7000).unwrap(), [died_late]);
    }

    #[test]
    fn a_destination_token_never_prints() {
        let c = db();
        let e = settle(&c, "T", Status::Succeeded, 1000);
        let mut a = attempt(&e, 2000, 200);
        a.destination = "https://m.example/h?token=tok-SECRET-7".into();
        record_attempt(&c, &a, Verdict::Delivered).unwrap();
        let shown = serde_json::to_string(&story(&c, &e).unwrap()).unwrap();
        assert!(!shown.contains("tok-SECRET-7"), "{shown}");
        assert!(shown.contains("https://m.example/h?[redacted]"), "{shown}");
    }

    /// A delivery whose lease ran out can be acknowledged after a second attempt gave up:
    /// the merchant has the event, so it is delivered, not left as a dead letter to replay.
    #[test]
    fn a_late_acknowledgement_beats_a_dead_letter() {
        let c = db();
        let e = settle(&c, "L", Status::Succeeded, 1000);
        record_attempt(&c, &attempt(&e, 2000, 500), Verdict::Dead).unwrap();
        record_attempt(&c, &attempt(&e, 2100, 200), Verdict::Delivered).unwrap();
        let row = &list(&c, Some("delivered"), None, 10).unwrap()[0];
        assert_eq!(row.id, e);
        assert!(list(&c, Some("dead"), None, 10).unwrap().is_empty());
    }

    #[test]
    fn a_disabled_destination_stays_disabled_until_enabled() {
        let c = db();
        let url = "https://m.example/h";
        assert_eq!(destination_disabled(&c, url).unwrap(), None);
        disable_destination(&c, url, 5, "410 Gone").unwrap();
        assert_eq!(
            destination_disabled(&c, url).unwrap(),
            Some((5, "410 Gone".into()))
        );
        assert_eq!(
            destination_disabled(&c, "https://other.example/h").unwrap(),
            None
        );
        // Parked for days: re-enabling gives the backlog a fresh schedule, due now.
        let parked = settle(&c, "P", Status::Succeeded, 10);
        record_attempt(&c, &attempt(&parked, 20, 410), Verdict::Parked).unwrap();
        assert!(enable_destination(&c, url, 9_000_000).unwrap());
        assert!(!enable_destination(&c, url, 9_500_000).unwrap());
        assert_eq!(destination_disabled(&c, url).unwrap(), None);
        let row = &due(&c, "default", 9_000_000, 10).unwrap()[0];
        assert_eq!(
            (row.id.as_str(), row.attempts, row.schedule_started_at_ms),
            (parked.as_str(), 0, 9_000_000)
        );
    }
}
