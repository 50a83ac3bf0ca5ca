//! The reconciler's side of the store: claiming due open transactions, escalating those
//! past their deadline, and recording each status query together with what it reported.
//!
//! A second, smaller queue holds NEEDS_REVIEW rows on which an unsigned callback reported
//! a success after the deadline escalation (`unconfirmed_status = 'SUCCEEDED'`): the
//! success is held, as on an open row, until a status query confirms it. These rows are
//! never escalated again; see [`claim`] and [`record_poll`] for how they end.
//!
//! A poll's row and the state change it causes are written by one writer job, so one SQL
//! transaction: a transition with `source = 'poll'` always has its `polls` row, and a poll
//! that failed changes nothing but its own row and the schedule (invariant 5 in `src/lib.rs`).

use super::transactions::{self, Applied, Schedule, Source, Trust};
use super::StoreError;
use crate::domain::{PendingTxn, ProviderId, StatusReport, TxnKind};
use crate::state::plan::Channel;
use crate::state::Status;
use rusqlite::{params, Connection, OptionalExtension};

/// Reason recorded when a transaction is escalated for passing its deadline.
pub const DEADLINE_REASON: &str = crate::state::plan::DEADLINE_PASSED;

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
    /// open rows are then parked instead of being handed out (held NEEDS_REVIEW rows are
    /// left for the reviewer).
    pub pollable: bool,
    /// How long a row is parked: until its deadline, but at most this long, so that a
    /// provider configured later gets its rows polled before they go to review.
    pub park_ms: i64,
    /// How many status queries (failed ones included) a success held on a NEEDS_REVIEW row
    /// gets (`transactions.review_polls`). After that many, polling stops and the row is
    /// left for the reviewer, hold and all.
    pub confirm_max_polls: i64,
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
    /// NEEDS_REVIEW rows holding an unconfirmed success that are no longer polled (past
    /// [`ClaimPlan::confirm_max_polls`], under review for another reason than their
    /// deadline, or of a provider that cannot be polled): the reviewer decides, with the
    /// held success to look at.
    pub left_for_review: Vec<PendingTxn>,
}

/// Rows due now, oldest due first: open rows (`transactions_due`) merged with held
/// NEEDS_REVIEW rows (`transactions_held_due`). `NULL` next_poll_at_ms means "due now" on
/// an open row (rows an application inserted) and sorts first; the held queue's index
/// excludes NULL, its "no longer polled". Each status filter repeats its partial index's
/// own condition; `INDEXED BY` keeps the planner from preferring the (provider,
/// provider_ref) key, which would sort every row of the provider, settled ones included,
/// and the two ordered walks are merged without a sort (unit-tested below). The walk stops
/// after LIMIT matching rows. Held rows also carry their review's reason and how many
/// confirming queries they had.
const DUE_SQL: &str = "SELECT id, provider_ref, kind, status, unconfirmed_status IS NOT NULL,
        poll_attempts, created_at_ms, deadline_at_ms, NULL, NULL, next_poll_at_ms AS due
   FROM transactions INDEXED BY transactions_due
  WHERE status IN ('PENDING','INDETERMINATE')
    AND (next_poll_at_ms IS NULL OR next_poll_at_ms <= ?1)
    AND provider = ?2
 UNION ALL
 SELECT id, provider_ref, kind, status, 1, poll_attempts, created_at_ms, deadline_at_ms,
        reason, review_polls, next_poll_at_ms AS due
   FROM transactions INDEXED BY transactions_held_due
  WHERE status = 'NEEDS_REVIEW' AND unconfirmed_status IS NOT NULL
    AND next_poll_at_ms IS NOT NULL AND next_poll_at_ms <= ?1
    AND provider = ?2
  ORDER BY due
  LIMIT ?3";

/// A row [`DUE_SQL`] returned.
struct DueRow {
    txn: PendingTxn,
    /// `transactions.reason` of a held NEEDS_REVIEW row.
    reason: Option<String>,
    /// `transactions.review_polls` of a held NEEDS_REVIEW row.
    review_polls: i64,
}

/// Claims due rows of one provider: escalates open rows past their deadline (never
/// FAILED), leases up to `plan.limit` for polling, or parks them when
/// the provider cannot be polled. Runs on the writer.
///
/// A held NEEDS_REVIEW row is leased like an open one, for its confirming status query,
/// and never escalated (it already is). Polling it stops, leaving it to the reviewer,
/// once it has had [`ClaimPlan::confirm_max_polls`] queries, and at once when the review
/// is not a deadline escalation ([`DEADLINE_REASON`]): an amount mismatch or an operator's
/// review is a question a status query does not answer, and a confirmation that carries no
/// amount must not settle it.
pub fn claim(conn: &Connection, plan: &ClaimPlan) -> Result<Claimed, StoreError> {
    let mut out = Claimed::default();
    // Escalations do not count against the limit, so read a little more than it.
    let fetch = i64::try_from(plan.limit.saturating_mul(2).max(16)).unwrap_or(i64::MAX);
    let rows: Vec<DueRow> = conn
        .prepare_cached(DUE_SQL)?
        .query_map(params![plan.now_ms, plan.provider.as_str(), fetch], |r| {
            Ok(DueRow {
                txn: PendingTxn {
                    id: r.get(0)?,
                    provider: plan.provider,
                    provider_ref: r.get(1)?,
                    kind: r.get::<_, String>(2)?.parse().unwrap_or(TxnKind::Unknown),
                    // The query only returns open and NEEDS_REVIEW rows; an unreadable word
                    // is treated as PENDING.
                    status: r.get::<_, String>(3)?.parse().unwrap_or(Status::Pending),
                    unconfirmed: r.get(4)?,
                    poll_attempts: r.get(5)?,
                    created_at_ms: r.get(6)?,
                    deadline_at_ms: r.get(7)?,
                },
                reason: r.get(8)?,
                review_polls: r.get::<_, Option<i64>>(9)?.unwrap_or(0),
            })
        })?
        .collect::<Result<_, _>>()?;
    for row in rows {
        if row.txn.status == Status::NeedsReview {
            claim_held(conn, plan, row, &mut out)?;
            continue;
        }
        let mut txn = row.txn;
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

/// [`claim`] for a NEEDS_REVIEW row holding an unconfirmed success.
fn claim_held(
    conn: &Connection,
    plan: &ClaimPlan,
    row: DueRow,
    out: &mut Claimed,
) -> Result<(), StoreError> {
    let txn = row.txn;
    // Unlike an open row, one that cannot be polled is not parked: it has no deadline to
    // wait for, so parking would go on for ever.
    if row.reason.as_deref() != Some(DEADLINE_REASON)
        || row.review_polls >= plan.confirm_max_polls
        || !plan.pollable
    {
        leave_for_review(conn, txn.id)?;
        out.left_for_review.push(txn);
    } else if out.due.len() < plan.limit {
        set_next_poll(conn, txn.id, plan.now_ms.saturating_add(plan.lease_ms))?;
        out.due.push(txn);
    }
    Ok(())
}

/// Takes a held NEEDS_REVIEW row out of the reconciler's queue (its NULL next_poll_at_ms
/// is outside `transactions_held_due`): the provider is not asked again, and the hold
/// stays for the reviewer to see. The reconciler also calls it for a row its provider has
/// no status query for. Does nothing to a row in any other status.
pub fn leave_for_review(conn: &Connection, id: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE transactions SET next_poll_at_ms = NULL WHERE id = ?1 AND status = 'NEEDS_REVIEW'",
    )?
    .execute([id])?;
    Ok(())
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
        Trust::vouched(Channel::Payhook),
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
    /// When to ask next if the transaction is still open, or still holds a success under
    /// review, afterwards (clamped to an open row's deadline by the caller).
    pub next_poll_at_ms: i64,
}

/// What [`record_poll`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// `polls.id`.
    pub poll_id: i64,
    /// `polls.attempt`.
    pub attempt: i64,
    /// What the reported status did, when the poll stated one (and, on a held NEEDS_REVIEW
    /// row, a status other than "still processing").
    pub applied: Option<Applied>,
    /// The poll's answer left a held NEEDS_REVIEW row unresolved for good, so it is no
    /// longer polled: the reviewer decides.
    pub left_for_review: bool,
}

/// Records a poll, advances the transaction's schedule and, when the provider stated a
/// status, applies it with `Source::Poll`, all in the caller's writer job. A failed poll
/// changes only the schedule.
///
/// On a NEEDS_REVIEW row holding an unconfirmed success (see [`claim`]):
/// * a failed poll, or a PENDING / INDETERMINATE answer ("still processing"), only
///   reschedules it, so it is asked again with the same backoff as an open row; the answer
///   is not applied, which would write a `stale` transition on every poll (the `polls` row
///   keeps it);
/// * a settlement is compared with the hold ([`crate::state::plan`]): one that agrees
///   confirms it (NEEDS_REVIEW → SUCCEEDED, the hold cleared, `transaction.succeeded`);
///   one that disagrees on the status, the amount, the currency or the merchant reference
///   keeps the review, names the field in its reason, drops the hold's values and stops
///   polling ([`Recorded::left_for_review`]), as asking again would only repeat it.
pub fn record_poll(conn: &Connection, rec: &PollRecord) -> Result<Recorded, StoreError> {
    // A held row whose polling was stopped (NULL next_poll_at_ms) stays stopped. The
    // CASEs read the row as it was before this UPDATE.
    let row: Option<(i64, bool)> = conn
        .prepare_cached(
            "UPDATE transactions
                SET poll_attempts = poll_attempts + 1,
                    review_polls = review_polls
                        + (status = 'NEEDS_REVIEW' AND unconfirmed_status IS NOT NULL
                           AND next_poll_at_ms IS NOT NULL),
                    next_poll_at_ms = CASE WHEN status IN ('PENDING','INDETERMINATE')
                                             OR (status = 'NEEDS_REVIEW'
                                                 AND unconfirmed_status IS NOT NULL
                                                 AND next_poll_at_ms IS NOT NULL)
                                           THEN ?2 ELSE next_poll_at_ms END
              WHERE id = ?1
             RETURNING poll_attempts,
                       status = 'NEEDS_REVIEW' AND unconfirmed_status IS NOT NULL",
        )?
        .query_row(params![rec.txn.id, rec.next_poll_at_ms], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (attempt, held) =
        row.ok_or_else(|| StoreError::NotFound(format!("transaction {}", rec.txn.id)))?;
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
        Ok(report) if held && report.status.is_open() => None,
        Ok(report) => {
            // The answer is about the reference we asked for, whatever it echoed.
            let mut report = report.clone();
            report.provider_ref.clone_from(&rec.txn.provider_ref);
            Some(transactions::apply(
                conn,
                rec.txn.provider,
                &report,
                Trust::vouched(Channel::StatusQuery),
                Source::Poll(poll_id),
                Schedule::default(),
                rec.at_ms,
            )?)
        }
        Err(_) => None,
    };
    let left_for_review = held
        && applied
            .as_ref()
            .is_some_and(|a| a.status == Status::NeedsReview);
    if left_for_review {
        leave_for_review(conn, rec.txn.id)?;
    }
    Ok(Recorded {
        poll_id,
        attempt,
        applied,
        left_for_review,
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
            Trust::vouched(Channel::StatusQuery),
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

/// When the next open transaction, or held NEEDS_REVIEW row, of `provider` falls due
/// (`Some(i64::MIN)` for an open one due now with no time set), or `None` when it has
/// none.
pub fn next_due(conn: &Connection, provider: ProviderId) -> Result<Option<i64>, StoreError> {
    let open: Option<Option<i64>> = conn
        .prepare_cached(
            "SELECT next_poll_at_ms FROM transactions INDEXED BY transactions_due
              WHERE status IN ('PENDING','INDETERMINATE') AND provider = ?1
              ORDER BY next_poll_at_ms LIMIT 1",
        )?
        .query_row([provider.as_str()], |r| r.get(0))
        .optional()?;
    let held: Option<i64> = conn
        .prepare_cached(
            "SELECT next_poll_at_ms FROM transactions INDEXED BY transactions_held_due
              WHERE status = 'NEEDS_REVIEW' AND unconfirmed_status IS NOT NULL
                AND next_poll_at_ms IS NOT NULL AND provider = ?1
              ORDER BY next_poll_at_ms LIMIT 1",
        )?
        .query_row([provider.as_str()], |r| r.get(0))
        .optional()?;
    let open = open.map(|at| at.unwrap_or(i64::MIN));
    Ok(match (open, held) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{db, query_plan};

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
            confirm_max_polls: 3,
        }
    }

    #[test]
    fn the_due_query_walks_the_partial_index() {
        let c = db();
        let detail = query_plan(&c, DUE_SQL, params![0, "zengapay", 10]);
        assert!(
            detail.iter().any(|d| d.contains("transactions_due"))
                && detail.iter().any(|d| d.contains("transactions_held_due"))
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

    /// A row escalated at its deadline (at 1000), then reported SUCCEEDED by an unsigned
    /// callback at `held_at`: a held success under review.
    fn held_review_row(c: &Connection, reference: &str, held_at: i64) -> i64 {
        insert(c, reference, Some(100), Some(500));
        hold_under_review(c, reference, 1000, held_at)
    }

    /// Escalates the (due, overdue) row `reference` at `escalate_at`, then holds an
    /// unsigned success on it at `held_at`.
    fn hold_under_review(c: &Connection, reference: &str, escalate_at: i64, held_at: i64) -> i64 {
        let id = match claim(c, &plan(escalate_at, 10))
            .unwrap()
            .escalated
            .as_slice()
        {
            [a] => a.transaction_id,
            other => panic!("{other:?}"),
        };
        let report = StatusReport::new(reference, TxnKind::Collection, Status::Succeeded);
        let a = transactions::apply(
            c,
            ProviderId::ZengaPay,
            &report,
            transactions::Trust {
                channel: crate::state::plan::Channel::Token,
                confirms: crate::domain::Kinds::ALL,
            },
            Source::Merchant,
            Schedule::default(),
            held_at,
        )
        .unwrap();
        assert_eq!(
            (a.transaction_id, a.outcome, a.status),
            (id, transactions::Outcome::Unconfirmed, Status::NeedsReview)
        );
        id
    }

    /// status, unconfirmed_status, next_poll_at_ms, transitions, events.
    type Row = (String, Option<String>, Option<i64>, i64, i64);

    fn row(c: &Connection, id: i64) -> Row {
        c.query_row(
            "SELECT status, unconfirmed_status, next_poll_at_ms,
                    (SELECT count(*) FROM transitions WHERE transaction_id = ?1),
                    (SELECT count(*) FROM events WHERE transaction_id = ?1)
               FROM transactions WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap()
    }

    fn poll(txn: &PendingTxn, at_ms: i64, answer: Result<Status, &str>) -> PollRecord {
        PollRecord {
            txn: txn.clone(),
            at_ms,
            latency_ms: Some(5),
            http_status: Some(200),
            answer: answer
                .map(|s| StatusReport::new(txn.provider_ref.clone(), TxnKind::Collection, s))
                .map_err(str::to_string),
            next_poll_at_ms: at_ms + 5000,
        }
    }

    /// A success held on an open row that reaches its deadline unconfirmed keeps its hold
    /// through the escalation and goes on being asked about, under review.
    #[test]
    fn a_held_success_keeps_its_hold_through_the_deadline_escalation() {
        let c = db();
        let id = insert(&c, "a", Some(100), Some(500));
        let success = StatusReport::new("a", TxnKind::Collection, Status::Succeeded);
        let held = transactions::apply(
            &c,
            ProviderId::ZengaPay,
            &success,
            transactions::Trust {
                channel: crate::state::plan::Channel::Token,
                confirms: crate::domain::Kinds::ALL,
            },
            Source::Merchant,
            Schedule::default(),
            200,
        )
        .unwrap();
        assert_eq!(held.outcome, transactions::Outcome::Unconfirmed);
        // Past the deadline, never confirmed: escalated, the hold kept, still due.
        let got = claim(&c, &plan(1000, 10)).unwrap();
        assert_eq!(got.escalated.len(), 1);
        let (status, unconfirmed, next, _, _) = row(&c, id);
        assert_eq!(
            (status.as_str(), unconfirmed.as_deref()),
            ("NEEDS_REVIEW", Some("SUCCEEDED"))
        );
        assert!(next.is_some_and(|n| n <= 1000), "{next:?}");
        // The next round asks the provider to confirm it.
        let got = claim(&c, &plan(1000, 10)).unwrap();
        assert!(matches!(got.due.as_slice(), [t] if t.id == id && t.unconfirmed));
    }

    #[test]
    fn a_held_success_under_review_is_polled_never_escalated_and_confirmed() {
        let c = db();
        let id = held_review_row(&c, "a", 2000);
        // Escalation, event; the held success, no event.
        assert_eq!(
            row(&c, id),
            (
                "NEEDS_REVIEW".into(),
                Some("SUCCEEDED".into()),
                Some(2000),
                2,
                1
            )
        );
        assert_eq!(next_due(&c, ProviderId::ZengaPay).unwrap(), Some(2000));
        // Due for its confirming query, past its deadline, and not escalated again.
        let got = claim(&c, &plan(3000, 10)).unwrap();
        assert!(got.escalated.is_empty() && got.left_for_review.is_empty());
        let txn = match got.due.as_slice() {
            [t] if t.id == id => t.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!((txn.status, txn.unconfirmed), (Status::NeedsReview, true));
        // Leased like an open row.
        assert!(claim(&c, &plan(3500, 10)).unwrap().due.is_empty());
        // A failed poll and a "still processing" answer only reschedule it: no
        // transition (not even a stale one), the hold kept.
        for (at, answer) in [(3000, Err("HTTP 503")), (8000, Ok(Status::Pending))] {
            let r = record_poll(&c, &poll(&txn, at, answer)).unwrap();
            assert_eq!((r.applied, r.left_for_review), (None, false));
            assert_eq!(
                row(&c, id),
                (
                    "NEEDS_REVIEW".into(),
                    Some("SUCCEEDED".into()),
                    Some(at + 5000),
                    2,
                    1
                )
            );
            assert_eq!(claim(&c, &plan(at + 5000, 10)).unwrap().due.len(), 1);
        }
        // The provider confirms: SUCCEEDED through the state machine, hold cleared,
        // one event, out of both queues.
        let r = record_poll(&c, &poll(&txn, 13_000, Ok(Status::Succeeded))).unwrap();
        let a = r.applied.unwrap();
        assert_eq!(
            (a.outcome, a.status, r.left_for_review),
            (
                transactions::Outcome::Applied(Status::NeedsReview),
                Status::Succeeded,
                false
            )
        );
        assert_eq!(row(&c, id), ("SUCCEEDED".into(), None, None, 3, 2));
        assert!(claim(&c, &plan(1_000_000, 10)).unwrap().due.is_empty());
        assert_eq!(next_due(&c, ProviderId::ZengaPay).unwrap(), None);
    }

    #[test]
    fn a_failed_answer_to_a_held_success_under_review_keeps_the_review_and_drops_the_hold() {
        // The provider contradicts the unconfirmed callback: which one was wrong (a
        // forgery, or a provider fault) is for a person to see. The hold's claim is
        // dropped; the review now names the field that disagreed, and polling stops.
        let c = db();
        let id = held_review_row(&c, "a", 2000);
        let txn = claim(&c, &plan(3000, 10)).unwrap().due.remove(0);
        let r = record_poll(&c, &poll(&txn, 3000, Ok(Status::Failed))).unwrap();
        assert_eq!(r.applied.unwrap().status, Status::NeedsReview);
        assert!(r.left_for_review);
        assert_eq!(row(&c, id), ("NEEDS_REVIEW".into(), None, None, 3, 1));
        let reason: String = c
            .query_row("SELECT reason FROM transactions WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            reason,
            "UNCONFIRMED_MISMATCH: status: the provider says FAILED, the unconfirmed callback said otherwise"
        );
        let (source, poll_id): (String, i64) = c
            .query_row(
                "SELECT source, poll_id FROM transitions WHERE transaction_id = ?1 AND seq = 3",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((source.as_str(), poll_id), ("poll", r.poll_id));
    }

    #[test]
    fn a_held_success_under_review_is_left_for_the_reviewer_when_it_cannot_be_confirmed() {
        let c = db();
        // After `confirm_max_polls` (3) queries under review, failed or "still processing":
        // no further poll, out of the queue, hold kept. Polls while the row was open do
        // not count.
        let id = insert(&c, "a", None, Some(1500));
        let txn = claim(&c, &plan(0, 10)).unwrap().due.remove(0);
        for at in [100, 200] {
            record_poll(&c, &poll(&txn, at, Err("HTTP 503"))).unwrap();
        }
        assert_eq!(hold_under_review(&c, "a", 6000, 7000), id);
        let mut at = 7000;
        for answer in [Err("HTTP 503"), Ok(Status::Indeterminate), Err("timeout")] {
            let got = claim(&c, &plan(at, 10)).unwrap();
            assert!(got.escalated.is_empty() && got.left_for_review.is_empty());
            let r = record_poll(&c, &poll(&got.due[0], at, answer)).unwrap();
            assert!(!r.left_for_review);
            at += 5000;
        }
        let got = claim(&c, &plan(at, 10)).unwrap();
        assert!(got.due.is_empty() && got.escalated.is_empty());
        assert_eq!(got.left_for_review.len(), 1);
        assert_eq!(
            row(&c, id),
            ("NEEDS_REVIEW".into(), Some("SUCCEEDED".into()), None, 2, 1)
        );
        let (attempts, review_polls): (i64, i64) = c
            .query_row(
                "SELECT poll_attempts, review_polls FROM transactions WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((attempts, review_polls), (5, 3));
        assert_eq!(next_due(&c, ProviderId::ZengaPay).unwrap(), None);
        // A repeated unsigned success does not put it back.
        let report = StatusReport::new("a", TxnKind::Collection, Status::Succeeded);
        transactions::apply(
            &c,
            ProviderId::ZengaPay,
            &report,
            transactions::Trust {
                channel: crate::state::plan::Channel::Token,
                confirms: crate::domain::Kinds::ALL,
            },
            Source::Merchant,
            Schedule::default(),
            103_000,
        )
        .unwrap();
        assert!(claim(&c, &plan(200_000, 10))
            .unwrap()
            .left_for_review
            .is_empty());

        // An answer that does not confirm the hint (REVERSED) stops polling, and the
        // hint's claim is dropped.
        let id = held_review_row(&c, "b", 2000);
        let txn = claim(&c, &plan(3000, 10)).unwrap().due.remove(0);
        let r = record_poll(&c, &poll(&txn, 3000, Ok(Status::Reversed))).unwrap();
        assert_eq!(
            r.applied.unwrap().outcome,
            transactions::Outcome::Applied(Status::NeedsReview)
        );
        assert!(r.left_for_review);
        let (status, hold, next, _, _) = row(&c, id);
        assert_eq!(
            (status.as_str(), hold.as_deref(), next),
            ("NEEDS_REVIEW", None, None)
        );

        // A review that is not a deadline escalation is not the status query's to settle.
        let id = held_review_row(&c, "c", 2000);
        c.execute(
            "UPDATE transactions SET reason = 'AMOUNT_MISMATCH' WHERE id = ?1",
            [id],
        )
        .unwrap();
        let got = claim(&c, &plan(3000, 10)).unwrap();
        assert!(got.due.is_empty());
        assert_eq!(got.left_for_review[0].id, id);
        assert_eq!(row(&c, id).2, None);

        // Nor is one whose provider cannot be polled: it has no deadline to park it until.
        let id = held_review_row(&c, "d", 2000);
        let unpollable = ClaimPlan {
            pollable: false,
            ..plan(3000, 10)
        };
        let got = claim(&c, &unpollable).unwrap();
        assert_eq!((got.due.len(), got.parked), (0, 0));
        assert_eq!(got.left_for_review[0].id, id);
        assert_eq!(row(&c, id).2, None);
    }
}
