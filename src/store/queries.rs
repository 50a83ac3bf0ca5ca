//! Read-side queries shared by the CLI, the ops endpoints and tests.

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

/// Transactions whose provider reference or merchant reference is `reference`.
pub fn transactions_by_any_ref(
    conn: &Connection,
    reference: &str,
) -> Result<Vec<TxnRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TXN_COLUMNS} FROM transactions WHERE provider_ref = ?1 OR merchant_ref = ?1 ORDER BY id"
    ))?;
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

/// The review queue, oldest first.
pub fn review_queue(conn: &Connection) -> Result<Vec<ReviewItem>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, item, provider, provider_ref, status, detail, at_ms FROM review_queue ORDER BY at_ms, id",
    )?;
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

/// Reads the [`Backlog`]: four aggregate queries on indexed or small sets.
pub fn backlog(conn: &Connection) -> Result<Backlog, StoreError> {
    let (pending_events, oldest_pending_at_ms) = conn
        .prepare_cached("SELECT count(*), min(created_at_ms) FROM events WHERE status = 'pending'")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let review_queue = conn
        .prepare_cached("SELECT count(*) FROM review_queue")?
        .query_row([], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(
        "SELECT provider, status, count(*) FROM transactions
          WHERE status IN ('PENDING','INDETERMINATE') GROUP BY provider, status ORDER BY 1, 2",
    )?;
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
