//! The reconciler's side of the store: claiming due open transactions, escalating those
//! past their deadline, and recording each status query together with what it reported.
//!
//! A poll's row and the state change it causes are written by one writer job, so one SQL
//! transaction: a transition with `source = 'poll'` always has its `polls` row, and a poll
//! that failed changes nothing but its own row and the schedule (design.md invariant 5).

use super::transactions::{self, Applied, Schedule, Source};
use super::StoreError;
use crate::providers::{PendingTxn, ProviderId, StatusReport, TxnKind};
use crate::state::Status;
use rusqlite::{params, Connection, OptionalExtension};

/// Reason recorded when a transaction is escalated for passing its deadline.
pub const DEADLINE_REASON: &str = "DEADLINE_PASSED";

/// How [`claim`] should treat the due rows of one provider.
#[derive(Debug, Clone, Copy)]
pub struct ClaimPlan {
    /// The provider.
    pub provider: ProviderId,
    /// "Now" for this step, epoch milliseconds.
    pub now_ms: i64,
    /// Most rows to hand out for polling.
    pub limit: usize,
    /// Rows handed out are not due again before `now_ms + lease_ms`: if the process stops
    /// before their poll is recorded, they come back then (a status query is a read, so
    /// asking twice is harmless).
    pub lease_ms: i64,
    /// Deadline for rows that have none (inserted by an application): `created_at_ms` +
    /// this.
    pub default_deadline_ms: i64,
    /// False when payhook cannot poll this provider (not configured, no status API): due
    /// rows are then parked instead of being handed out.
    pub pollable: bool,
    /// How long a row is parked: until its deadline, but at most this long, so that a
    /// provider configured later gets its rows polled before they go to review.
    pub park_ms: i64,
}

/// What [`claim`] did.
#[derive(Debug, Default)]
pub struct Claimed {
    /// Rows to poll now, leased.
    pub due: Vec<PendingTxn>,
    /// Rows escalated to NEEDS_REVIEW for passing their deadline.
    pub escalated: Vec<Applied>,
    /// Rows parked until their deadline because the provider cannot be polled.
    pub parked: usize,
}

/// Open rows due now, oldest due first. `NULL` next_poll_at_ms means "due now" (rows an
/// application inserted) and sorts first. The status filter repeats the partial index's
/// own condition; `INDEXED BY` keeps the planner from preferring the (provider,
/// provider_ref) key, which would sort every row of the provider, settled ones included
/// (unit-tested below). The walk stops after LIMIT matching rows.
const DUE_SQL: &str = "SELECT id, provider_ref, kind, status, unconfirmed_status IS NOT NULL,
        poll_attempts, created_at_ms, deadline_at_ms
   FROM transactions INDEXED BY transactions_due
  WHERE status IN ('PENDING','INDETERMINATE')
    AND (next_poll_at_ms IS NULL OR next_poll_at_ms <= ?1)
    AND provider = ?2
  ORDER BY next_poll_at_ms
  LIMIT ?3";

/// Claims due rows of one provider: escalates those past their deadline (never FAILED,
/// providers.md §6.6), leases up to `plan.limit` for polling, or parks them when the
/// provider cannot be polled. Runs on the writer.
pub fn claim(conn: &Connection, plan: &ClaimPlan) -> Result<Claimed, StoreError> {
    let mut out = Claimed::default();
    // Escalations do not count against the limit, so read a little more than it.
    let fetch = i64::try_from(plan.limit.saturating_mul(2).max(16)).unwrap_or(i64::MAX);
    let rows: Vec<PendingTxn> = conn
        .prepare_cached(DUE_SQL)?
        .query_map(params![plan.now_ms, plan.provider.as_str(), fetch], |r| {
            Ok(PendingTxn {
                id: r.get(0)?,
                provider: plan.provider,
                provider_ref: r.get(1)?,
                kind: r.get::<_, String>(2)?.parse().unwrap_or(TxnKind::Unknown),
                // The query only returns open rows; an unreadable word is treated as PENDING.
                status: r.get::<_, String>(3)?.parse().unwrap_or(Status::Pending),
                unconfirmed: r.get(4)?,
                poll_attempts: r.get(5)?,
                created_at_ms: r.get(6)?,
                deadline_at_ms: r.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    for mut txn in rows {
        let deadline = match txn.deadline_at_ms {
            Some(d) => d,
            None => {
                let d = txn.created_at_ms.saturating_add(plan.default_deadline_ms);
                conn.prepare_cached("UPDATE transactions SET deadline_at_ms = ?2 WHERE id = ?1")?
                    .execute(params![txn.id, d])?;
                txn.deadline_at_ms = Some(d);
                d
            }
        };
        if deadline <= plan.now_ms {
            out.escalated.push(escalate(conn, &txn, plan.now_ms)?);
        } else if !plan.pollable {
            set_next_poll(
                conn,
                txn.id,
                deadline.min(plan.now_ms.saturating_add(plan.park_ms)),
            )?;
            out.parked += 1;
        } else if out.due.len() < plan.limit {
            set_next_poll(conn, txn.id, plan.now_ms.saturating_add(plan.lease_ms))?;
            out.due.push(txn);
        }
    }
    Ok(out)
}

fn set_next_poll(conn: &Connection, id: i64, at_ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE transactions SET next_poll_at_ms = ?2 WHERE id = ?1")?
        .execute(params![id, at_ms])?;
    Ok(())
}

/// Still open past its deadline: a human decides (NEEDS_REVIEW), through the one
/// state-change path.
fn escalate(conn: &Connection, txn: &PendingTxn, now_ms: i64) -> Result<Applied, StoreError> {
    let mut report = StatusReport::new(txn.provider_ref.clone(), txn.kind, Status::NeedsReview);
    report.reason = Some(DEADLINE_REASON.to_string());
    transactions::apply(
        conn,
        txn.provider,
        &report,
        false,
        Source::Reconciler("deadline passed"),
        Schedule::default(),
        now_ms,
    )
}

/// One status query's outcome, to record.
#[derive(Debug, Clone)]
pub struct PollRecord {
    /// The transaction asked about.
    pub txn: PendingTxn,
    /// When the query was sent.
    pub at_ms: i64,
    /// Time to the answer or the failure.
    pub latency_ms: Option<i64>,
    /// HTTP status, if an answer came.
    pub http_status: Option<u16>,
    /// What the provider stated, or why the poll failed.
    pub answer: Result<StatusReport, String>,
    /// When to ask next if the transaction is still open afterwards (already clamped to
    /// its deadline by the caller).
    pub next_poll_at_ms: i64,
}

/// What [`record_poll`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `polls.id`.
    pub poll_id: i64,
    /// `polls.attempt`.
    pub attempt: i64,
    /// What the reported status did, when the poll stated one.
    pub applied: Option<Applied>,
}

/// Records a poll, advances the transaction's schedule and, when the provider stated a
/// status, applies it with `Source::Poll`, all in the caller's writer job. A failed poll
/// changes only the schedule.
pub fn record_poll(conn: &Connection, rec: &PollRecord) -> Result<Recorded, StoreError> {
    let attempt: Option<i64> = conn
        .prepare_cached(
            "UPDATE transactions
                SET poll_attempts = poll_attempts + 1,
                    next_poll_at_ms = CASE WHEN status IN ('PENDING','INDETERMINATE')
                                           THEN ?2 ELSE next_poll_at_ms END
              WHERE id = ?1
             RETURNING poll_attempts",
        )?
        .query_row(params![rec.txn.id, rec.next_poll_at_ms], |r| r.get(0))
        .optional()?;
    let attempt =
        attempt.ok_or_else(|| StoreError::NotFound(format!("transaction {}", rec.txn.id)))?;
    let (outcome, reported, provider_status, error) = match &rec.answer {
        Ok(r) => (
            "status",
            Some(r.status.as_str()),
            r.provider_status.as_deref(),
            None,
        ),
        Err(e) => ("failed", None, None, Some(e.as_str())),
    };
    let poll_id: i64 = conn
        .prepare_cached(
            "INSERT INTO polls (transaction_id, attempt, at_ms, latency_ms, http_status, outcome,
                                reported_status, provider_status, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
        )?
        .query_row(
            params![
                rec.txn.id,
                attempt,
                rec.at_ms,
                rec.latency_ms,
                rec.http_status,
                outcome,
                reported,
                provider_status,
                error
            ],
            |r| r.get(0),
        )?;
    let applied = match &rec.answer {
        Ok(report) => {
            // The answer is about the reference we asked for, whatever it echoed.
            let mut report = report.clone();
            report.provider_ref.clone_from(&rec.txn.provider_ref);
            Some(transactions::apply(
                conn,
                rec.txn.provider,
                &report,
                false,
                Source::Poll(poll_id),
                Schedule::default(),
                rec.at_ms,
            )?)
        }
        Err(_) => None,
    };
    Ok(Recorded {
        poll_id,
        attempt,
        applied,
    })
}

/// Parks a transaction that cannot be polled now (the provider built no request for it)
/// until `at_ms`, without counting a poll.
pub fn postpone(conn: &Connection, id: i64, at_ms: i64) -> Result<(), StoreError> {
    set_next_poll(conn, id, at_ms)
}

/// Note on the transition of a transaction found by a statement sweep.
pub const SWEEP_NOTE: &str = "found in the provider's statement";

/// Records the transactions a provider's statement lists and payhook does not know. Each
/// is created PENDING (a `reconciler` transition with [`SWEEP_NOTE`]) and due for polling
/// at once, so its outcome is settled by a status query, with its poll row as evidence,
/// like any other. Known transactions are left to their own schedule. Returns the
/// references recorded.
pub fn record_discovered(
    conn: &Connection,
    provider: ProviderId,
    reports: &[StatusReport],
    deadline_ms: i64,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let mut recorded = Vec::new();
    for r in reports {
        let known = conn
            .prepare_cached("SELECT 1 FROM transactions WHERE provider = ?1 AND provider_ref = ?2")?
            .exists(params![provider.as_str(), r.provider_ref])?;
        if known {
            continue;
        }
        let mut pending = r.clone();
        pending.status = Status::Pending;
        pending.reason = None;
        // The status query will say it; the statement's word would contradict PENDING.
        pending.provider_status = None;
        transactions::apply(
            conn,
            provider,
            &pending,
            false,
            Source::Reconciler(SWEEP_NOTE),
            Schedule {
                next_poll_at_ms: Some(now_ms),
                deadline_at_ms: Some(now_ms.saturating_add(deadline_ms)),
            },
            now_ms,
        )?;
        recorded.push(r.provider_ref.clone());
    }
    Ok(recorded)
}

/// When the next open transaction of `provider` falls due (`Some(i64::MIN)` for one due
/// now with no time set), or `None` when it has none.
pub fn next_due(conn: &Connection, provider: ProviderId) -> Result<Option<i64>, StoreError> {
    let row: Option<Option<i64>> = conn
        .prepare_cached(
            "SELECT next_poll_at_ms FROM transactions INDEXED BY transactions_due
              WHERE status IN ('PENDING','INDETERMINATE') AND provider = ?1
              ORDER BY next_poll_at_ms LIMIT 1",
        )?
        .query_row([provider.as_str()], |r| r.get(0))
        .optional()?;
    Ok(row.map(|at| at.unwrap_or(i64::MIN)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        crate::store::migrations::migrate(&mut c).unwrap();
        c
    }

    fn insert(c: &Connection, reference: &str, next: Option<i64>, deadline: Option<i64>) -> i64 {
        c.query_row(
            "INSERT INTO transactions (provider, provider_ref, kind, next_poll_at_ms, deadline_at_ms,
                                       created_at_ms, updated_at_ms)
             VALUES ('zengapay', ?1, 'collection', ?2, ?3, 0, 0) RETURNING id",
            params![reference, next, deadline],
            |r| r.get(0),
        )
        .unwrap()
    }

    fn plan(now_ms: i64, limit: usize) -> ClaimPlan {
        ClaimPlan {
            provider: ProviderId::ZengaPay,
            now_ms,
            limit,
            lease_ms: 1000,
            default_deadline_ms: 10_000,
            pollable: true,
            park_ms: 1_000_000,
        }
    }

    #[test]
    fn the_due_query_walks_the_partial_index() {
        let c = db();
        let detail: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {DUE_SQL}"))
            .unwrap()
            .query_map(params![0, "zengapay", 10], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            detail.iter().any(|d| d.contains("transactions_due"))
                && !detail.iter().any(|d| d.contains("TEMP B-TREE")),
            "{detail:?}"
        );
    }

    #[test]
    fn claims_due_rows_leases_them_and_escalates_overdue_ones() {
        let c = db();
        let now_null = insert(&c, "a", None, Some(5000));
        let later = insert(&c, "b", Some(2000), Some(5000));
        let overdue = insert(&c, "c", Some(100), Some(500));
        let no_deadline = insert(&c, "d", Some(100), None);
        let got = claim(&c, &plan(1000, 10)).unwrap();
        let ids: Vec<i64> = got.due.iter().map(|t| t.id).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&now_null) && ids.contains(&no_deadline) && !ids.contains(&later));
        assert_eq!(got.escalated.len(), 1);
        assert_eq!(got.escalated[0].transaction_id, overdue);
        assert_eq!(got.escalated[0].status, Status::NeedsReview);
        // Leased: nothing is due again until the lease ends.
        assert!(claim(&c, &plan(1500, 10)).unwrap().due.is_empty());
        // The merchant's row got the default deadline from its creation time.
        let d: i64 = c
            .query_row(
                "SELECT deadline_at_ms FROM transactions WHERE id = ?1",
                [no_deadline],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(d, 10_000);
        // Never FAILED by the deadline.
        let failed: i64 = c
            .query_row(
                "SELECT count(*) FROM transactions WHERE status = 'FAILED'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(failed, 0);
    }

    #[test]
    fn a_failed_poll_changes_only_the_schedule() {
        let c = db();
        let id = insert(&c, "a", None, Some(1_000_000));
        let txn = claim(&c, &plan(1000, 1)).unwrap().due.remove(0);
        let rec = PollRecord {
            txn: txn.clone(),
            at_ms: 1000,
            latency_ms: Some(5),
            http_status: Some(500),
            answer: Err("HTTP 500".into()),
            next_poll_at_ms: 9000,
        };
        let r = record_poll(&c, &rec).unwrap();
        assert_eq!((r.attempt, r.applied), (1, None));
        let (status, next, transitions): (String, i64, i64) = c
            .query_row(
                "SELECT status, next_poll_at_ms, (SELECT count(*) FROM transitions) FROM transactions WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), next, transitions), ("PENDING", 9000, 0));
        // A stated status is applied with the poll as its source.
        let ok = PollRecord {
            answer: Ok(StatusReport::new(
                "a",
                TxnKind::Collection,
                Status::Succeeded,
            )),
            ..rec
        };
        let r = record_poll(&c, &ok).unwrap();
        assert_eq!(r.applied.unwrap().status, Status::Succeeded);
        let (source, poll_id): (String, i64) = c
            .query_row("SELECT source, poll_id FROM transitions", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((source.as_str(), poll_id), ("poll", r.poll_id));
        assert_eq!(next_due(&c, ProviderId::ZengaPay).unwrap(), None);
    }
}
