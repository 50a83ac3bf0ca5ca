//! The one write path for transaction state. Callbacks, polls and operators all call
//! [`apply`], which consults [`crate::state::decide`], updates `transactions`, appends to
//! `transitions`, and writes the outbox `events` row in the same SQL transaction
//! (design.md invariants 3 and 4).

use super::StoreError;
use crate::clock::rfc3339;
use crate::providers::{ProviderId, StatusReport};
use crate::state::{decide, Decision, Status};
use rusqlite::{params, Connection, OptionalExtension};

/// Where a report came from (`transitions.source` and its reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// A provider callback (`callbacks.id`).
    Callback(i64),
    /// A status poll (`polls.id`).
    Poll(i64),
    /// A human, with the note they gave.
    Operator(&'a str),
    /// The merchant's application registering a payment.
    Merchant,
    /// payhook's reconciler deciding on its own (deadline escalation).
    Reconciler(&'a str),
}

impl Source<'_> {
    /// A provider's own report (a callback or a status poll), as opposed to a person's.
    fn is_provider(&self) -> bool {
        matches!(self, Source::Callback(_) | Source::Poll(_))
    }

    fn label(&self) -> &'static str {
        match self {
            Source::Callback(_) => "callback",
            Source::Poll(_) => "poll",
            Source::Operator(_) => "operator",
            Source::Merchant => "merchant",
            Source::Reconciler(_) => "reconciler",
        }
    }
}

/// Polling plan for a transaction this report creates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedule {
    /// First status query (NULL: due at once).
    pub next_poll_at_ms: Option<i64>,
    /// Escalate to NEEDS_REVIEW if still open by then.
    pub deadline_at_ms: Option<i64>,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The report created the transaction.
    Created,
    /// The status changed from the given one.
    Applied(Status),
    /// Same status again.
    NoOp,
    /// An older report after the outcome: recorded, not applied.
    Stale,
    /// A contradiction of a terminal status (surfaced as an event), or a FAILED after the
    /// provider's success of another amount (the review stays): recorded, not applied.
    Conflict,
    /// An unsigned success, held until a poll confirms it.
    Unconfirmed,
}

/// The result of [`apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `transactions.id`.
    pub transaction_id: i64,
    /// What happened.
    pub outcome: Outcome,
    /// The transaction's status afterwards.
    pub status: Status,
    /// The outbox event written, if any.
    pub event_id: Option<String>,
}

struct Current {
    id: i64,
    /// `transitions.seq` of its latest history row (0: none yet).
    last_seq: i64,
    status: Status,
    /// `transactions.reason`.
    reason: Option<String>,
    unconfirmed: bool,
    expected_amount_minor: Option<i64>,
    expected_currency: Option<String>,
}

impl Current {
    /// In review because the provider reported an amount other than the registered one.
    fn held_for_amount(&self) -> bool {
        self.status == Status::NeedsReview
            && self
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with(AMOUNT_MISMATCH))
    }
}

/// How `transactions.reason` starts when a reported amount differs from the registered one.
pub const AMOUNT_MISMATCH: &str = "AMOUNT_MISMATCH";

/// Applies what a source says about a transaction. `needs_confirmation` marks a success
/// reported by an unauthenticated channel (a token-only callback): it is recorded and the
/// transaction made due for polling, but not settled.
pub fn apply(
    conn: &Connection,
    provider: ProviderId,
    report: &StatusReport,
    needs_confirmation: bool,
    source: Source<'_>,
    schedule: Schedule,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let current = load(conn, provider, &report.provider_ref)?;
    let (mut target, mut reason) = (report.status, report.reason.clone());
    let mut mismatched = false;
    if let (Status::Succeeded, Some(cur)) = (target, &current) {
        if let Some(why) = amount_mismatch(cur, report) {
            // Against a settled FAILED (or a REVERSED), a payment of any amount contradicts
            // it: a conflict, with the mismatch as its reason. Otherwise the mismatch puts
            // the transaction in review.
            if decide(cur.status, Status::Succeeded) != Decision::Conflict {
                target = Status::NeedsReview;
                mismatched = true;
            }
            reason = Some(why);
        } else if cur.held_for_amount() && source.is_provider() {
            // The provider reported another amount before. A later success that names
            // the registered amount, or none, contradicts it rather than settling it:
            // the review stays for a human (`payhook resolve`), and this is a no-op.
            target = Status::NeedsReview;
            reason.clone_from(&cur.reason);
        }
    }
    let hold = needs_confirmation && target == Status::Succeeded;
    // After the provider reported a success of another amount, its FAILED contradicts
    // that report: money may have moved. Which one holds is the reviewer's call
    // (`payhook resolve`), so the review stays and the report is recorded as a conflict,
    // which `review_queue` lists beside it. The merchant hears nothing new: it already
    // had the review's event, and nothing settled.
    let contradicts_review = target == Status::Failed
        && source.is_provider()
        && current.as_ref().is_some_and(Current::held_for_amount);
    // A row already in review for another reason (its deadline passed) now hears of a
    // success of another amount. NEEDS_REVIEW to NEEDS_REVIEW would be a no-op, and the
    // mismatch would be lost: the reviewer would see a late success and settle an
    // underpayment as paid, and a later FAILED would settle it although money moved. So
    // the review takes the mismatch as its reason, and stops waiting for a confirmation.
    let review_learns_mismatch = mismatched
        && source.is_provider()
        && current
            .as_ref()
            .is_some_and(|c| c.status == Status::NeedsReview && !c.held_for_amount());

    let Some(cur) = current else {
        let status = if hold { Status::Pending } else { target };
        // A held success asks for its confirming status query at once, as it does for an
        // existing row below; other open rows follow the provider's schedule.
        let next_poll = match (hold, status.is_open()) {
            (true, _) => Some(now_ms),
            (false, true) => schedule.next_poll_at_ms.or(Some(now_ms)),
            (false, false) => None,
        };
        let id = insert(
            conn,
            provider,
            report,
            status,
            reason.as_deref(),
            hold,
            next_poll,
            schedule,
            now_ms,
        )?;
        let outcome = if hold { "unconfirmed" } else { "applied" };
        let t = record(
            conn,
            id,
            1,
            outcome,
            None,
            target,
            reason.as_deref(),
            source,
            now_ms,
        )?;
        let event_id = if !hold && status.is_settled() {
            Some(emit(conn, id, t, now_ms, None, None)?)
        } else {
            None
        };
        let outcome = if hold {
            Outcome::Unconfirmed
        } else {
            Outcome::Created
        };
        return Ok(Applied {
            transaction_id: id,
            outcome,
            status,
            event_id,
        });
    };

    let decision = decide(cur.status, target);
    // Every history row below records the same report; only its outcome differs.
    let log = |outcome: &str| {
        record(
            conn,
            cur.id,
            cur.last_seq + 1,
            outcome,
            Some(cur.status),
            target,
            reason.as_deref(),
            source,
            now_ms,
        )
    };
    let done = |outcome, event_id| Applied {
        transaction_id: cur.id,
        outcome,
        status: cur.status,
        event_id,
    };
    if review_learns_mismatch {
        conn.prepare_cached(
            "UPDATE transactions SET reason = ?2, unconfirmed_status = NULL,
                    next_poll_at_ms = NULL, updated_at_ms = ?3
              WHERE id = ?1 AND status = 'NEEDS_REVIEW'",
        )?
        .execute(params![cur.id, reason, now_ms])?;
        refresh_details(conn, cur.id, report, now_ms)?;
        log("applied")?;
        tracing::warn!(
            provider = %provider,
            txn_ref = %report.provider_ref,
            source = source.label(),
            "a transaction under review was reported paid with another amount; the review now says so"
        );
        return Ok(done(Outcome::Applied(cur.status), None));
    }
    if contradicts_review {
        log("conflict")?;
        tracing::warn!(
            provider = %provider,
            txn_ref = %report.provider_ref,
            reported = %target,
            source = source.label(),
            "provider reported FAILED after a success of another amount; the review stays"
        );
        return Ok(done(Outcome::Conflict, None));
    }
    match decision {
        Decision::NoOp => {
            refresh_details(conn, cur.id, report, now_ms)?;
            Ok(done(Outcome::NoOp, None))
        }
        Decision::Apply if hold => {
            if cur.unconfirmed {
                return Ok(done(Outcome::NoOp, None));
            }
            conn.execute(
                "UPDATE transactions SET unconfirmed_status = 'SUCCEEDED', next_poll_at_ms = ?2,
                        updated_at_ms = ?2 WHERE id = ?1",
                params![cur.id, now_ms],
            )?;
            refresh_details(conn, cur.id, report, now_ms)?;
            log("unconfirmed")?;
            Ok(done(Outcome::Unconfirmed, None))
        }
        Decision::Apply => {
            let changed = conn.execute(
                "UPDATE transactions
                    SET status = ?2, reason = ?3, updated_at_ms = ?4,
                        settled_at_ms = CASE WHEN ?5 THEN COALESCE(settled_at_ms, ?4) END,
                        -- A held success survives a move to review, and stays due, so that
                        -- a status query can still confirm it (store::polls::claim). The
                        -- right-hand sides read the row as it was.
                        unconfirmed_status = CASE WHEN ?2 = 'NEEDS_REVIEW' THEN unconfirmed_status END,
                        next_poll_at_ms = CASE
                            WHEN ?6 THEN next_poll_at_ms
                            WHEN ?2 = 'NEEDS_REVIEW' AND unconfirmed_status IS NOT NULL
                                THEN COALESCE(next_poll_at_ms, ?4)
                        END
                  WHERE id = ?1 AND status = ?7",
                params![
                    cur.id,
                    target.as_str(),
                    reason,
                    now_ms,
                    target.is_settled(),
                    target.is_open(),
                    cur.status.as_str()
                ],
            )?;
            if changed != 1 {
                return Err(StoreError::Refused(format!(
                    "transaction {} changed under the writer",
                    cur.id
                )));
            }
            refresh_details(conn, cur.id, report, now_ms)?;
            let t = log("applied")?;
            let event_id = if target.is_settled() {
                Some(emit(conn, cur.id, t, now_ms, Some(cur.status), None)?)
            } else {
                None
            };
            Ok(Applied {
                transaction_id: cur.id,
                outcome: Outcome::Applied(cur.status),
                status: target,
                event_id,
            })
        }
        Decision::Stale => {
            log("stale")?;
            Ok(done(Outcome::Stale, None))
        }
        Decision::Conflict => {
            let t = log("conflict")?;
            tracing::warn!(
                provider = %provider,
                txn_ref = %report.provider_ref,
                status = %cur.status,
                reported = %target,
                source = source.label(),
                "conflicting status reported; kept the current one"
            );
            let event_id = emit(conn, cur.id, t, now_ms, Some(cur.status), Some(target))?;
            Ok(done(Outcome::Conflict, Some(event_id)))
        }
    }
}

fn load(
    conn: &Connection,
    provider: ProviderId,
    provider_ref: &str,
) -> Result<Option<Current>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT id, status, unconfirmed_status IS NOT NULL, expected_amount_minor, expected_currency,
                    (SELECT COALESCE(MAX(seq), 0) FROM transitions WHERE transaction_id = t.id),
                    reason
               FROM transactions t WHERE provider = ?1 AND provider_ref = ?2",
        )?
        .query_row(params![provider.as_str(), provider_ref], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .optional()?;
    row.map(
        |(id, status, unconfirmed, expected_amount_minor, expected_currency, last_seq, reason)| {
            let status = status
                .parse()
                .map_err(|e: crate::state::UnknownStatus| StoreError::Refused(e.to_string()))?;
            Ok(Current {
                id,
                last_seq,
                status,
                reason,
                unconfirmed,
                expected_amount_minor,
                expected_currency,
            })
        },
    )
    .transpose()
}

/// A reported amount that differs from the one the merchant registered.
fn amount_mismatch(cur: &Current, report: &StatusReport) -> Option<String> {
    let reported = report.money.as_ref()?;
    let expected = cur.expected_amount_minor?;
    let currency_ok = cur
        .expected_currency
        .as_deref()
        .is_none_or(|c| c.eq_ignore_ascii_case(&reported.currency));
    (expected != reported.minor || !currency_ok).then(|| {
        format!(
            "{AMOUNT_MISMATCH}: registered {expected} {}, provider reported {} {}",
            cur.expected_currency.as_deref().unwrap_or("?"),
            reported.minor,
            reported.currency
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn insert(
    conn: &Connection,
    provider: ProviderId,
    r: &StatusReport,
    status: Status,
    reason: Option<&str>,
    hold: bool,
    next_poll_at_ms: Option<i64>,
    schedule: Schedule,
    now_ms: i64,
) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO transactions (provider, provider_ref, kind, status, reason, provider_status,
             unconfirmed_status, amount_minor, currency, merchant_ref, msisdn, receipt,
             created_at_ms, updated_at_ms, settled_at_ms, next_poll_at_ms, deadline_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        provider.as_str(),
        r.provider_ref,
        r.kind.as_str(),
        status.as_str(),
        reason,
        r.provider_status,
        hold.then_some("SUCCEEDED"),
        r.money.as_ref().map(|m| m.minor),
        r.money.as_ref().map(|m| m.currency.as_str()),
        r.merchant_ref,
        r.msisdn,
        r.receipt,
        now_ms,
        status.is_settled().then_some(now_ms),
        next_poll_at_ms,
        if status.is_open() {
            schedule.deadline_at_ms
        } else {
            None
        },
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Fills in details a later report knows and an earlier one did not; never erases.
fn refresh_details(
    conn: &Connection,
    id: i64,
    r: &StatusReport,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE transactions SET
             provider_status = COALESCE(?2, provider_status),
             amount_minor = COALESCE(amount_minor, ?3),
             currency = COALESCE(currency, ?4),
             merchant_ref = COALESCE(merchant_ref, ?5),
             msisdn = COALESCE(msisdn, ?6),
             receipt = COALESCE(receipt, ?7),
             kind = CASE WHEN kind = 'unknown' THEN ?8 ELSE kind END,
             updated_at_ms = ?9
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        r.provider_status,
        r.money.as_ref().map(|m| m.minor),
        r.money.as_ref().map(|m| m.currency.as_str()),
        r.merchant_ref,
        r.msisdn,
        r.receipt,
        r.kind.as_str(),
        now_ms
    ])?;
    Ok(())
}

/// A written transition: its row id and per-transaction sequence number.
#[derive(Debug, Clone, Copy)]
struct Transition {
    id: i64,
    seq: i64,
}

#[allow(clippy::too_many_arguments)]
fn record(
    conn: &Connection,
    txn: i64,
    seq: i64,
    outcome: &str,
    from: Option<Status>,
    to: Status,
    reason: Option<&str>,
    source: Source<'_>,
    now_ms: i64,
) -> Result<Transition, StoreError> {
    let (callback_id, poll_id, note) = match source {
        Source::Callback(id) => (Some(id), None, None),
        Source::Poll(id) => (None, Some(id), None),
        Source::Operator(note) | Source::Reconciler(note) => (None, None, Some(note)),
        Source::Merchant => (None, None, None),
    };
    // `seq` comes from `load` in the same writer transaction, so nothing can take it in
    // between; UNIQUE (transaction_id, seq) would refuse it if something did.
    conn.prepare_cached(
        "INSERT INTO transitions (transaction_id, seq, outcome, from_status, to_status, reason,
             source, callback_id, poll_id, note, at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        txn,
        seq,
        outcome,
        from.map(Status::as_str),
        to.as_str(),
        reason,
        source.label(),
        callback_id,
        poll_id,
        note,
        now_ms
    ])?;
    Ok(Transition {
        id: conn.last_insert_rowid(),
        seq,
    })
}

/// The event id of transition `seq` of transaction `transaction_id` (provider
/// `provider_ref`): `evt_`, the transaction id in 12 hex digits, then 20 hex digits of a
/// hash of (provider, reference, seq). It is derived from the transition, so the same
/// settlement always has the same id, and it is stored with the event, so every
/// redelivery and replay carries it.
///
/// Why the transaction id comes first: ids then sort by transaction, and a new
/// transaction's event is appended to the `events.id` index instead of dirtying a random
/// page of it on the acknowledgement path (README "Numbers"). Nothing needs the id to be
/// recomputable from the provider's reference alone: the forwarder claims events in writer
/// jobs, which are answered only once their batch, and every commit before it, is
/// fsynced, so no event that a crash could still undo is ever delivered. The hash keeps
/// two different transitions apart even if transaction ids were reused (a store restored
/// from a backup).
///
/// ```
/// use payhook::providers::ProviderId;
/// use payhook::store::transactions::event_id;
/// let a = event_id(42, ProviderId::ZengaPay, "ref-1", 2);
/// assert_eq!(a, event_id(42, ProviderId::ZengaPay, "ref-1", 2));
/// assert!(a.starts_with("evt_00000000002a") && a.len() == 36);
/// assert!(a < event_id(43, ProviderId::ZengaPay, "ref-0", 1), "sorted by transaction");
/// assert_ne!(a, event_id(42, ProviderId::ZengaPay, "ref-1", 3));
/// ```
pub fn event_id(transaction_id: i64, provider: ProviderId, provider_ref: &str, seq: i64) -> String {
    let digest = crate::providers::sha256_hex(
        format!("{provider}\u{1f}{provider_ref}\u{1f}{seq}").as_bytes(),
    );
    format!("evt_{transaction_id:012x}{}", &digest[..20])
}

/// Writes the outbox row for a settled transition (or a conflict, when `reported` is set).
fn emit(
    conn: &Connection,
    txn: i64,
    t: Transition,
    now_ms: i64,
    previous: Option<Status>,
    reported: Option<Status>,
) -> Result<String, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT provider, provider_ref, kind, status, reason, amount_minor, currency,
                    merchant_ref, msisdn, receipt
               FROM transactions WHERE id = ?1",
        )?
        .query_row([txn], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        })?;
    let (
        provider,
        provider_ref,
        kind,
        status,
        reason,
        amount_minor,
        currency,
        merchant_ref,
        msisdn,
        receipt,
    ) = row;
    let provider_id: ProviderId = provider
        .parse()
        .map_err(|e: crate::providers::UnknownProvider| StoreError::Refused(e.to_string()))?;
    let id = event_id(txn, provider_id, &provider_ref, t.seq);
    let event_type = match reported {
        Some(_) => "transaction.conflict".to_string(),
        None => format!("transaction.{}", status.to_ascii_lowercase()),
    };
    let amount = match (amount_minor, currency.as_deref()) {
        (Some(minor), Some(cur)) => Some(
            crate::money::Money {
                minor,
                currency: cur.to_string(),
            }
            .decimal(),
        ),
        _ => None,
    };
    let payload = serde_json::json!({
        "id": id,
        "type": event_type,
        "timestamp": rfc3339(now_ms),
        "data": {
            "provider": provider,
            "provider_ref": provider_ref,
            "merchant_ref": merchant_ref,
            "kind": kind,
            "status": status,
            "previous_status": previous.map(Status::as_str),
            "reported_status": reported.map(Status::as_str),
            "reason": reason,
            "amount": amount,
            "amount_minor": amount_minor,
            "currency": currency,
            "msisdn": msisdn,
            "receipt": receipt,
            "transition_seq": t.seq,
        }
    })
    .to_string();
    conn.prepare_cached(
        "INSERT INTO events (id, transaction_id, transition_id, type, payload, status, attempts,
                             next_attempt_at_ms, created_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6)",
    )?
    .execute(params![id, txn, t.id, event_type, payload, now_ms])?;
    Ok(id)
}

/// What a merchant's registration did ([`register`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Registered {
    /// `transactions.id`.
    pub transaction_id: i64,
    /// True when the registration created the transaction.
    pub created: bool,
    /// Its status (a registration never changes an existing one).
    pub status: String,
}

/// A merchant registering a payment it just started (`payhook track`,
/// `POST /v1/transactions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Provider.
    pub provider: ProviderId,
    /// The provider's reference.
    pub provider_ref: String,
    /// Payment kind, if known.
    pub kind: crate::providers::TxnKind,
    /// The amount the merchant expects; a different reported amount goes to review.
    pub expected: Option<crate::money::Money>,
    /// The merchant's own reference.
    pub merchant_ref: Option<String>,
}

/// Registers a transaction for reconciliation. A new one is created PENDING (a `merchant`
/// transition) with the provider's polling `schedule`; an existing one is never regressed
/// or otherwise changed in status: registration only fills in the expected amount, the
/// merchant reference and an unknown kind. Registering a different expected amount than
/// the one on record is refused.
pub fn register(
    conn: &Connection,
    reg: &Registration,
    schedule: Schedule,
    now_ms: i64,
) -> Result<Registered, StoreError> {
    let existing = load(conn, reg.provider, &reg.provider_ref)?;
    if let (Some(cur), Some(want)) = (&existing, &reg.expected) {
        let same_amount = cur.expected_amount_minor.is_none_or(|m| m == want.minor);
        let same_currency = cur
            .expected_currency
            .as_deref()
            .is_none_or(|c| c.eq_ignore_ascii_case(&want.currency));
        if !(same_amount && same_currency) {
            return Err(StoreError::Refused(format!(
                "{} {} is already registered with amount {} {}",
                reg.provider,
                reg.provider_ref,
                cur.expected_amount_minor.unwrap_or_default(),
                cur.expected_currency.as_deref().unwrap_or("?")
            )));
        }
    }
    let (id, created, status) = match existing {
        Some(cur) => (cur.id, false, cur.status),
        None => {
            let mut report = StatusReport::new(reg.provider_ref.clone(), reg.kind, Status::Pending);
            report.merchant_ref.clone_from(&reg.merchant_ref);
            let a = apply(
                conn,
                reg.provider,
                &report,
                false,
                Source::Merchant,
                schedule,
                now_ms,
            )?;
            (a.transaction_id, true, a.status)
        }
    };
    conn.prepare_cached(
        "UPDATE transactions SET
             expected_amount_minor = COALESCE(expected_amount_minor, ?2),
             expected_currency = COALESCE(expected_currency, ?3),
             merchant_ref = COALESCE(merchant_ref, ?4),
             kind = CASE WHEN kind = 'unknown' THEN ?5 ELSE kind END
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        reg.expected.as_ref().map(|m| m.minor),
        reg.expected.as_ref().map(|m| m.currency.as_str()),
        reg.merchant_ref,
        reg.kind.as_str(),
    ])?;
    Ok(Registered {
        transaction_id: id,
        created,
        status: status.as_str().to_string(),
    })
}

/// Reason recorded with an operator's decision; the note is in `transitions.note`.
pub const OPERATOR_REASON: &str = "OPERATOR_DECISION";

/// Records a human decision about transaction `id` (`payhook resolve`) through [`apply`]
/// with `Source::Operator(note)`. Only a transition the state machine allows is written:
/// a decision that contradicts a terminal status is refused, not recorded as a conflict,
/// since the operator is here to be told.
pub fn resolve(
    conn: &Connection,
    id: i64,
    status: Status,
    note: &str,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    if note.trim().is_empty() {
        return Err(StoreError::Refused("a note is required".into()));
    }
    let (provider, provider_ref, kind, current): (String, String, String, String) = conn
        .prepare_cached(
            "SELECT provider, provider_ref, kind, status FROM transactions WHERE id = ?1",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("transaction {id}")))?;
    let refused = |e: String| StoreError::Refused(e);
    let provider: ProviderId = provider
        .parse()
        .map_err(|e: crate::providers::UnknownProvider| refused(e.to_string()))?;
    let current: Status = current
        .parse()
        .map_err(|e: crate::state::UnknownStatus| refused(e.to_string()))?;
    match decide(current, status) {
        Decision::Apply | Decision::NoOp => {
            let mut report = StatusReport::new(
                provider_ref,
                kind.parse().unwrap_or(crate::providers::TxnKind::Unknown),
                status,
            );
            report.reason = Some(OPERATOR_REASON.to_string());
            apply(
                conn,
                provider,
                &report,
                false,
                Source::Operator(note),
                Schedule::default(),
                now_ms,
            )
        }
        Decision::Stale | Decision::Conflict => Err(refused(format!(
            "{provider} {provider_ref} is {current}: {status} is not a transition payhook allows \
             (terminal statuses never change, except SUCCEEDED → REVERSED)"
        ))),
    }
}
