//! Read-side queries shared by the CLI, the ops endpoints and tests: transactions, the
//! review queue, the outbox's events as an operator lists them, and the whole story of
//! an event or a transaction (its transitions, callbacks, polls and delivery attempts).
//! What the forwarder reads and writes of the outbox is in [`super::outbox`].

use super::StoreError;
use crate::domain::ProviderId;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// A transaction as stored (the columns an operator looks at).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxnRow {
    /// `transactions.id`.
    pub id: i64,
    /// Provider route name.
    pub provider: String,
    /// Provider's reference.
    pub provider_ref: String,
    /// Payment kind.
    pub kind: String,
    /// Normalised status.
    pub status: String,
    /// Normalised reason.
    pub reason: Option<String>,
    /// Success awaiting confirmation, if any.
    pub unconfirmed_status: Option<String>,
    /// Reported amount, minor units.
    pub amount_minor: Option<i64>,
    /// Currency of `amount_minor`.
    pub currency: Option<String>,
    /// Merchant's reference.
    pub merchant_ref: Option<String>,
    /// Next status query.
    pub next_poll_at_ms: Option<i64>,
    /// Status queries so far.
    pub poll_attempts: i64,
}

pub(crate) const TXN_COLUMNS: &str =
    "id, provider, provider_ref, kind, status, reason, unconfirmed_status,
    amount_minor, currency, merchant_ref, next_poll_at_ms, poll_attempts";

pub(crate) fn txn_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TxnRow> {
    Ok(TxnRow {
        id: r.get(0)?,
        provider: r.get(1)?,
        provider_ref: r.get(2)?,
        kind: r.get(3)?,
        status: r.get(4)?,
        reason: r.get(5)?,
        unconfirmed_status: r.get(6)?,
        amount_minor: r.get(7)?,
        currency: r.get(8)?,
        merchant_ref: r.get(9)?,
        next_poll_at_ms: r.get(10)?,
        poll_attempts: r.get(11)?,
    })
}

/// The transaction with this provider reference, if known.
pub fn transaction(
    conn: &Connection,
    provider: ProviderId,
    provider_ref: &str,
) -> Result<Option<TxnRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {TXN_COLUMNS} FROM transactions WHERE provider = ?1 AND provider_ref = ?2"
        ))?
        .query_row(params![provider.as_str(), provider_ref], txn_row)
        .optional()?)
}

/// The statement of [`transactions_by_any_ref`]. `UNIQUE (provider, provider_ref)` is
/// searchable only with the provider, and `provider_ref = ?1` alone read every transaction.
/// So `p` first lists the providers the transactions hold, one index search each (the
/// next name after the last), and each side of the OR then searches its own index. The
/// names come from the rows themselves, not from the `providers` table, so that a row whose
/// provider that table lost is still found.
fn by_any_ref_sql() -> String {
    format!(
        "WITH RECURSIVE p(name) AS (
             SELECT (SELECT MIN(provider) FROM transactions)
             UNION ALL
             SELECT (SELECT MIN(provider) FROM transactions WHERE provider > p.name)
               FROM p WHERE p.name IS NOT NULL)
         SELECT {TXN_COLUMNS} FROM transactions
          WHERE (provider IN (SELECT name FROM p WHERE name IS NOT NULL) AND provider_ref = ?1)
             OR merchant_ref = ?1
          ORDER BY id"
    )
}

/// Transactions whose provider reference or merchant reference is `reference`.
pub fn transactions_by_any_ref(
    conn: &Connection,
    reference: &str,
) -> Result<Vec<TxnRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&by_any_ref_sql())?;
    let rows = stmt.query_map([reference], txn_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One row of the `review_queue` view: what a human must look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewItem {
    /// `txn-N`, `conflict-N` or `callback-N`: what `payhook review dismiss` takes.
    pub id: String,
    /// `transaction` (NEEDS_REVIEW), `conflict` or `callback` (unparsed).
    pub item: String,
    /// Provider.
    pub provider: String,
    /// Provider reference, when known.
    pub provider_ref: Option<String>,
    /// Status (current for a transaction, reported for a conflict).
    pub status: Option<String>,
    /// Reason, conflict note or parse error.
    pub detail: Option<String>,
    /// When, epoch milliseconds.
    pub at_ms: i64,
}

/// The review queue's items, oldest first.
const REVIEW_QUEUE_SQL: &str = "SELECT id, item, provider, provider_ref, status, detail, at_ms
   FROM review_queue ORDER BY at_ms, id";

/// The review queue, oldest first.
pub fn review_queue(conn: &Connection) -> Result<Vec<ReviewItem>, StoreError> {
    let mut stmt = conn.prepare_cached(REVIEW_QUEUE_SQL)?;
    let rows = stmt.query_map([], |r| {
        Ok(ReviewItem {
            id: r.get(0)?,
            item: r.get(1)?,
            provider: r.get(2)?,
            provider_ref: r.get(3)?,
            status: r.get(4)?,
            detail: r.get(5)?,
            at_ms: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A transaction as `payhook demo` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoTxn {
    /// Provider.
    pub provider: String,
    /// Provider reference.
    pub provider_ref: String,
    /// Current status.
    pub status: String,
    /// Amount, as decimal text in major units.
    pub amount: Option<String>,
    /// Its currency.
    pub currency: Option<String>,
    /// What settled it: the source of its last applied transition, with the callback's
    /// authentication or "status query".
    pub how: String,
}

/// What `payhook demo` reads back from its store to tell what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoFacts {
    /// Distinct callbacks stored.
    pub callbacks: i64,
    /// Deliveries of them, retries included.
    pub deliveries: i64,
    /// Every transaction, by id.
    pub transactions: Vec<DemoTxn>,
}

/// Reads [`DemoFacts`].
pub fn demo_facts(conn: &Connection) -> Result<DemoFacts, StoreError> {
    let (callbacks, deliveries): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(deliveries), 0) FROM callbacks",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut stmt = conn.prepare(
        "SELECT t.provider, t.provider_ref, t.status, t.amount_minor, t.currency,
                (SELECT CASE r.source
                          WHEN 'callback' THEN 'callback (' || coalesce(c.auth, '?') || ')'
                          WHEN 'poll' THEN 'status query'
                          ELSE r.source END
                   FROM transitions r LEFT JOIN callbacks c ON c.id = r.callback_id
                  WHERE r.transaction_id = t.id AND r.outcome = 'applied'
                  ORDER BY r.seq DESC LIMIT 1)
           FROM transactions t ORDER BY t.id",
    )?;
    let rows = stmt.query_map([], |r| {
        let minor: Option<i64> = r.get(3)?;
        let currency: Option<String> = r.get(4)?;
        let amount = match (minor, currency.as_deref()) {
            (Some(minor), Some(c)) => Some(
                crate::money::Money {
                    minor,
                    currency: c.to_string(),
                }
                .decimal(),
            ),
            _ => None,
        };
        Ok(DemoTxn {
            provider: r.get(0)?,
            provider_ref: r.get(1)?,
            status: r.get(2)?,
            amount,
            currency,
            how: r
                .get::<_, Option<String>>(5)?
                .unwrap_or_else(|| "nothing yet".into()),
        })
    })?;
    Ok(DemoFacts {
        callbacks,
        deliveries,
        transactions: rows.collect::<Result<_, _>>()?,
    })
}

/// What is waiting, read at each metrics scrape: the outbox, the review queue and the
/// open transactions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Events not yet delivered (nor dead).
    pub pending_events: i64,
    /// Creation time of the oldest pending event, epoch milliseconds.
    pub oldest_pending_at_ms: Option<i64>,
    /// Rows of the `review_queue` view.
    pub review_queue: i64,
    /// Open (PENDING or INDETERMINATE) transactions by (provider, status).
    pub open: Vec<(String, String, i64)>,
}

/// The three aggregate queries of [`backlog`], which every `GET /metrics` runs: each reads
/// only its partial indexes' rows. Left to itself, the planner walked every transaction
/// through the (provider, provider_ref) index for the open ones' GROUP BY (seconds on a
/// million payments), so that query names `transactions_due`, the partial index whose
/// condition is exactly its WHERE.
const BACKLOG_SQL: [&str; 3] = [
    "SELECT count(*), min(created_at_ms) FROM events WHERE status = 'pending'",
    "SELECT count(*) FROM review_queue",
    "SELECT provider, status, count(*) FROM transactions INDEXED BY transactions_due
      WHERE status IN ('PENDING','INDETERMINATE') GROUP BY provider, status ORDER BY 1, 2",
];

/// Reads the [`Backlog`] (the three queries of `BACKLOG_SQL`).
pub fn backlog(conn: &Connection) -> Result<Backlog, StoreError> {
    let (pending_events, oldest_pending_at_ms) = conn
        .prepare_cached(BACKLOG_SQL[0])?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let review_queue = conn
        .prepare_cached(BACKLOG_SQL[1])?
        .query_row([], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(BACKLOG_SQL[2])?;
    let open = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Backlog {
        pending_events,
        oldest_pending_at_ms,
        review_queue,
        open,
    })
}

/// An event as an operator sees it in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    /// `evt_...`.
    pub id: String,
    /// `transaction.succeeded`, ...
    #[serde(rename = "type")]
    pub event_type: String,
    /// pending | delivered | dead.
    pub status: String,
    /// Provider of the transaction.
    pub provider: String,
    /// Provider's reference of the transaction.
    pub provider_ref: String,
    /// Attempts in the current schedule.
    pub attempts: i64,
    /// Creation time.
    pub created_at_ms: i64,
    /// Next attempt, if pending.
    pub next_attempt_at_ms: Option<i64>,
    /// Acknowledgement time, if delivered.
    pub delivered_at_ms: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

const EVENT_COLUMNS: &str = "e.id, e.type, e.status, t.provider, t.provider_ref, e.attempts,
    e.created_at_ms, e.next_attempt_at_ms, e.delivered_at_ms, e.last_error";

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        event_type: r.get(1)?,
        status: r.get(2)?,
        provider: r.get(3)?,
        provider_ref: r.get(4)?,
        attempts: r.get(5)?,
        created_at_ms: r.get(6)?,
        next_attempt_at_ms: r.get(7)?,
        delivered_at_ms: r.get(8)?,
        last_error: r.get(9)?,
    })
}

/// Events by creation time, optionally of one status and created at or after `since_ms`.
pub fn list(
    conn: &Connection,
    status: Option<&str>,
    since_ms: Option<i64>,
    limit: usize,
) -> Result<Vec<EventRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events e JOIN transactions t ON t.id = e.transaction_id
          WHERE (?1 IS NULL OR e.status = ?1) AND (?2 IS NULL OR e.created_at_ms >= ?2)
          ORDER BY e.created_at_ms, e.transition_id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![status, since_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
        event_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deliveries to one destination by event creation time, as [`list`] prints them: the
/// status, attempts, times and error are the delivery's at that destination.
pub fn list_for(
    conn: &Connection,
    destination: &str,
    status: Option<&str>,
    since_ms: Option<i64>,
    limit: usize,
) -> Result<Vec<EventRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.id, e.type, d.status, t.provider, t.provider_ref, d.attempts,
                e.created_at_ms, d.next_attempt_at_ms, d.delivered_at_ms, d.last_error
           FROM deliveries d JOIN events e ON e.id = d.event_id
           JOIN transactions t ON t.id = e.transaction_id
          WHERE d.destination = ?4 AND (?1 IS NULL OR d.status = ?1)
            AND (?2 IS NULL OR e.created_at_ms >= ?2)
          ORDER BY e.created_at_ms, e.transition_id LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![
            status,
            since_ms,
            i64::try_from(limit).unwrap_or(i64::MAX),
            destination
        ],
        event_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Counts of events by status (for metrics and the CLI).
pub fn counts(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT status, count(*) FROM events GROUP BY status ORDER BY status")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A transition, as `events show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitionRow {
    /// Sequence within the transaction.
    pub seq: i64,
    /// applied | conflict | stale | unconfirmed.
    pub outcome: String,
    /// Status before.
    pub from_status: Option<String>,
    /// Status reported.
    pub to_status: String,
    /// Reason given.
    pub reason: Option<String>,
    /// callback | poll | operator | merchant | reconciler.
    pub source: String,
    /// `callbacks.id` when from a callback.
    pub callback_id: Option<i64>,
    /// `polls.id` when from a poll.
    pub poll_id: Option<i64>,
    /// Operator's note.
    pub note: Option<String>,
    /// When.
    pub at_ms: i64,
}

/// A stored callback, as `events show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackRow {
    /// `callbacks.id`.
    pub id: i64,
    /// Callback kind.
    pub kind: String,
    /// Which check passed.
    pub auth: String,
    /// Times delivered.
    pub deliveries: i64,
    /// First delivery.
    pub first_seen_at_ms: i64,
    /// Why it could not be parsed, if so.
    pub parse_error: Option<String>,
    /// The body as received (lossy UTF-8).
    pub body: String,
}

/// A status poll, as `events show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollRow {
    /// `polls.id`.
    pub id: i64,
    /// When.
    pub at_ms: i64,
    /// HTTP status, if any.
    pub http_status: Option<i64>,
    /// status | failed.
    pub outcome: String,
    /// Normalised status reported.
    pub reported_status: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

fn redacted<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::secret::redacted_url(url))
}

/// A delivery attempt, as `events show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRow {
    /// `attempts.id`.
    pub id: i64,
    /// The event delivered.
    pub event_id: String,
    /// URL posted to. Printed with its query redacted: a token there is a secret, like
    /// `forward.url`'s in `check-config`; the store keeps it as configured.
    #[serde(serialize_with = "redacted")]
    pub destination: String,
    /// The destination's name.
    pub destination_name: String,
    /// When.
    pub at_ms: i64,
    /// Latency.
    pub latency_ms: i64,
    /// HTTP status, if an answer came.
    pub http_status: Option<i64>,
    /// Failure.
    pub error: Option<String>,
    /// First bytes of the answer.
    pub response_head: Option<String>,
}

/// Everything known about an event and its transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventStory {
    /// The event.
    pub event: EventRow,
    /// Its JSON body (parsed, for readability).
    pub payload: serde_json::Value,
    /// Its transaction.
    pub transaction: TxnRow,
    /// Every event of that transaction, this one included.
    pub events: Vec<EventRow>,
    /// Every transition of that transaction.
    pub transitions: Vec<TransitionRow>,
    /// Callbacks about that transaction.
    pub callbacks: Vec<CallbackRow>,
    /// Status polls of that transaction.
    pub polls: Vec<PollRow>,
    /// Delivery attempts of this event, at every destination.
    pub attempts: Vec<AttemptRow>,
    /// This event's delivery at each destination, with its history.
    pub deliveries: Vec<DeliveryStory>,
}

/// One destination's delivery of an event, as `events show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryStory {
    /// Destination name.
    pub destination: String,
    /// pending | delivered | dead.
    pub status: String,
    /// Attempts in the current schedule.
    pub attempts: i64,
    /// Next attempt, if pending.
    pub next_attempt_at_ms: Option<i64>,
    /// Acknowledgement time, if delivered.
    pub delivered_at_ms: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Its attempts and the replays asked for it, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// One line of a delivery's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryEntry {
    /// A delivery attempt.
    Attempt(AttemptRow),
    /// An operator's replay.
    Replay {
        /// When.
        at_ms: i64,
        /// Who asked.
        requested_by: String,
        /// Why.
        note: Option<String>,
    },
}

impl HistoryEntry {
    fn at_ms(&self) -> i64 {
        match self {
            HistoryEntry::Attempt(a) => a.at_ms,
            HistoryEntry::Replay { at_ms, .. } => *at_ms,
        }
    }
}

/// Each destination's delivery of event `id`, with its history.
pub fn deliveries(conn: &Connection, id: &str) -> Result<Vec<DeliveryStory>, StoreError> {
    let all = attempts(conn, id)?;
    let mut out: Vec<DeliveryStory> = conn
        .prepare_cached(
            "SELECT destination, status, attempts, next_attempt_at_ms, delivered_at_ms, last_error
               FROM deliveries WHERE event_id = ?1 ORDER BY destination",
        )?
        .query_map([id], |r| {
            Ok(DeliveryStory {
                destination: r.get(0)?,
                status: r.get(1)?,
                attempts: r.get(2)?,
                next_attempt_at_ms: r.get(3)?,
                delivered_at_ms: r.get(4)?,
                last_error: r.get(5)?,
                history: Vec::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let replays: Vec<(String, HistoryEntry)> = conn
        .prepare_cached(
            "SELECT destination, at_ms, requested_by, note FROM replays
              WHERE event_id = ?1 ORDER BY id",
        )?
        .query_map([id], |r| {
            Ok((
                r.get(0)?,
                HistoryEntry::Replay {
                    at_ms: r.get(1)?,
                    requested_by: r.get(2)?,
                    note: r.get(3)?,
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    for d in &mut out {
        let mut history: Vec<HistoryEntry> = all
            .iter()
            .filter(|a| a.destination_name == d.destination)
            .cloned()
            .map(HistoryEntry::Attempt)
            .chain(
                replays
                    .iter()
                    .filter(|(dest, _)| *dest == d.destination)
                    .map(|(_, h)| h.clone()),
            )
            .collect();
        // Stable: an attempt and a replay at the same millisecond keep table order.
        history.sort_by_key(HistoryEntry::at_ms);
        d.history = history;
    }
    Ok(out)
}

/// The whole story of event `id`.
pub fn story(conn: &Connection, id: &str) -> Result<EventStory, StoreError> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS}, e.transaction_id, e.payload
               FROM events e JOIN transactions t ON t.id = e.transaction_id WHERE e.id = ?1"
        ))?
        .query_row([id], |r| {
            Ok((event_row(r)?, r.get::<_, i64>(10)?, r.get::<_, String>(11)?))
        })
        .optional()?;
    let Some((event, txn, payload)) = found else {
        return Err(StoreError::NotFound(format!("event {id}")));
    };
    let payload = serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload));
    let h = transaction_story(conn, txn)?;
    let attempts = attempts(conn, id)?;
    let deliveries = deliveries(conn, id)?;
    Ok(EventStory {
        event,
        payload,
        transaction: h.transaction,
        events: h.events,
        transitions: h.transitions,
        callbacks: h.callbacks,
        polls: h.polls,
        attempts,
        deliveries,
    })
}

/// Everything known about one transaction (`payhook show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxnStory {
    /// The transaction.
    pub transaction: TxnRow,
    /// Its callbacks.
    pub callbacks: Vec<CallbackRow>,
    /// Its status polls.
    pub polls: Vec<PollRow>,
    /// Its transitions.
    pub transitions: Vec<TransitionRow>,
    /// Its events.
    pub events: Vec<EventRow>,
    /// Every delivery attempt of its events.
    pub attempts: Vec<AttemptRow>,
}

/// A transaction's callbacks, oldest first: through the partial index
/// `callbacks_transaction`, not a scan of every callback.
const CALLBACKS_OF_SQL: &str =
    "SELECT id, kind, auth, deliveries, first_seen_at_ms, parse_error, body
   FROM callbacks WHERE transaction_id = ?1 ORDER BY id";

/// The whole story of transaction `txn` (its `transactions.id`).
pub fn transaction_story(conn: &Connection, txn: i64) -> Result<TxnStory, StoreError> {
    let transaction = conn
        .prepare_cached(&format!(
            "SELECT {TXN_COLUMNS} FROM transactions WHERE id = ?1"
        ))?
        .query_row([txn], txn_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("transaction {txn}")))?;
    let events: Vec<EventRow> = conn
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e JOIN transactions t ON t.id = e.transaction_id
              WHERE e.transaction_id = ?1 ORDER BY e.transition_id"
        ))?
        .query_map([txn], event_row)?
        .collect::<Result<_, _>>()?;
    let transitions = conn
        .prepare_cached(
            "SELECT seq, outcome, from_status, to_status, reason, source, callback_id, poll_id,
                    note, at_ms
               FROM transitions WHERE transaction_id = ?1 ORDER BY seq",
        )?
        .query_map([txn], |r| {
            Ok(TransitionRow {
                seq: r.get(0)?,
                outcome: r.get(1)?,
                from_status: r.get(2)?,
                to_status: r.get(3)?,
                reason: r.get(4)?,
                source: r.get(5)?,
                callback_id: r.get(6)?,
                poll_id: r.get(7)?,
                note: r.get(8)?,
                at_ms: r.get(9)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let callbacks = conn
        .prepare_cached(CALLBACKS_OF_SQL)?
        .query_map([txn], |r| {
            Ok(CallbackRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                auth: r.get(2)?,
                deliveries: r.get(3)?,
                first_seen_at_ms: r.get(4)?,
                parse_error: r.get(5)?,
                body: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(6)?).into_owned(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let polls = conn
        .prepare_cached(
            "SELECT id, at_ms, http_status, outcome, reported_status, error
               FROM polls WHERE transaction_id = ?1 ORDER BY id",
        )?
        .query_map([txn], |r| {
            Ok(PollRow {
                id: r.get(0)?,
                at_ms: r.get(1)?,
                http_status: r.get(2)?,
                outcome: r.get(3)?,
                reported_status: r.get(4)?,
                error: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut all_attempts = Vec::new();
    for e in &events {
        all_attempts.extend(attempts(conn, &e.id)?);
    }
    Ok(TxnStory {
        transaction,
        callbacks,
        polls,
        transitions,
        events,
        attempts: all_attempts,
    })
}
/// Every delivery attempt of event `id`, oldest first.
pub fn attempts(conn: &Connection, id: &str) -> Result<Vec<AttemptRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, event_id, destination, at_ms, latency_ms, http_status, error, response_head,
                destination_name
           FROM attempts WHERE event_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([id], |r| {
        Ok(AttemptRow {
            id: r.get(0)?,
            event_id: r.get(1)?,
            destination: r.get(2)?,
            at_ms: r.get(3)?,
            latency_ms: r.get(4)?,
            http_status: r.get(5)?,
            error: r.get(6)?,
            response_head: r.get(7)?,
            destination_name: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{db, query_plan};

    /// `payhook show` reads a transaction's callbacks through their index, in id order,
    /// without reading the table or sorting.
    #[test]
    fn a_transactions_callbacks_are_read_through_their_index() {
        let c = db();
        let detail = query_plan(&c, CALLBACKS_OF_SQL, [1]);
        assert!(
            detail
                .iter()
                .any(|d| d.contains("USING INDEX callbacks_transaction"))
                && !detail.iter().any(|d| d.contains("TEMP B-TREE")),
            "{detail:?}"
        );
    }

    /// `payhook show REF` and `payhook resolve REF` find the transaction through the
    /// reference's index or the merchant reference's, never by reading every transaction;
    /// and they find every match, even one whose provider the `providers` table lost.
    #[test]
    fn a_reference_is_looked_up_through_indexes() {
        let c = db();
        let detail = query_plan(&c, &by_any_ref_sql(), ["r"]);
        assert!(
            !detail.iter().any(|d| d.starts_with("SCAN transactions"))
                && detail.iter().any(|d| d
                    .contains("sqlite_autoindex_transactions_1 (provider=? AND provider_ref=?)"))
                && detail
                    .iter()
                    .any(|d| d.contains("transactions_merchant_ref")),
            "{detail:?}"
        );
        c.execute_batch(
            "INSERT INTO transactions (provider, provider_ref, merchant_ref) VALUES
                 ('zengapay', 'ZP-1', 'INV-1'), ('daraja', 'ws_CO_1', 'ZP-1'),
                 ('jenga', 'J-1', NULL), ('tujenge', 'ws_CO_1', NULL);",
        )
        .unwrap();
        let found = |r: &str| -> Vec<(String, String)> {
            transactions_by_any_ref(&c, r)
                .unwrap()
                .into_iter()
                .map(|t| (t.provider, t.provider_ref))
                .collect()
        };
        let pair = |p: &str, r: &str| (p.to_string(), r.to_string());
        assert_eq!(
            found("ZP-1"),
            [pair("zengapay", "ZP-1"), pair("daraja", "ws_CO_1")]
        );
        assert_eq!(found("INV-1"), [pair("zengapay", "ZP-1")]);
        assert_eq!(found("J-1"), [pair("jenga", "J-1")]);
        assert!(found("nothing").is_empty());
        // A name taken out of `providers` by hand: its rows are still found, so that an
        // ambiguous reference stays ambiguous instead of resolving to the other row.
        c.execute("DELETE FROM providers WHERE name = 'daraja'", [])
            .unwrap();
        assert_eq!(
            found("ws_CO_1"),
            [pair("daraja", "ws_CO_1"), pair("tujenge", "ws_CO_1")]
        );
    }

    /// Steps that read a whole table (`SCAN t`, not `SCAN t USING INDEX i`), but for the
    /// view's own rows.
    fn full_scans(detail: &[String]) -> usize {
        detail
            .iter()
            .filter(|d| d.starts_with("SCAN") && !d.contains("USING"))
            .filter(|d| *d != "SCAN review_queue")
            .count()
    }

    /// The review queue, which `payhook review` lists and every metrics scrape counts,
    /// reads its three kinds of item through their partial indexes, not by reading every
    /// transaction, transition and callback.
    #[test]
    fn the_review_queue_is_read_through_its_partial_indexes() {
        let c = db();
        for sql in [REVIEW_QUEUE_SQL, BACKLOG_SQL[1]] {
            let detail = query_plan(&c, sql, []);
            for index in [
                "transactions_review",
                "transitions_conflicts",
                "callbacks_unparsed",
            ] {
                assert!(
                    detail.iter().any(|d| d.contains(index)),
                    "{sql}: {detail:?}"
                );
            }
            assert_eq!(full_scans(&detail), 0, "{sql}: {detail:?}");
        }
    }

    /// Every metrics scrape reads the backlog: each of its queries goes through the partial
    /// index of what it counts, and none reads a whole table.
    #[test]
    fn the_backlog_reads_only_what_it_counts() {
        let c = db();
        let expected: [&str; BACKLOG_SQL.len()] =
            ["events_due", "transactions_review", "transactions_due"];
        for (sql, index) in BACKLOG_SQL.iter().zip(expected) {
            let detail = query_plan(&c, sql, []);
            assert!(
                detail.iter().any(|d| d.contains(index)),
                "{sql}: {detail:?}"
            );
            assert_eq!(full_scans(&detail), 0, "{sql}: {detail:?}");
            assert!(
                !detail
                    .iter()
                    .any(|d| d.contains("sqlite_autoindex_transactions_1")),
                "{sql}: {detail:?}"
            );
        }
    }
}
