//! The one write path for transaction state. Callbacks, polls, registrations and
//! operators all come through [`apply`] (or [`dispute`]), which asks the pure decision
//! function [`crate::state::plan`] what the report does and then only executes its plan:
//! it updates `transactions`, appends to `transitions`, and writes the outbox `events`
//! row in the same SQL transaction, so that every settled transition has exactly one
//! event and no crash can separate them.

pub use super::events::event_id;
use super::events::{emit, emit_snapshot, Snapshot};
use super::StoreError;
use crate::domain::{Kinds, ProviderId, StatusReport, TxnKind};
use crate::money::Money;
use crate::state::plan::{
    self, Channel, Details, Emit, Held, HoldChange, Incoming, Plan, PollChange, Record, Stored,
};
use crate::state::Status;
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

/// How a report was authenticated, and which kinds of payment a status query could
/// confirm it for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trust {
    /// What authenticated it.
    pub channel: Channel,
    /// The kinds of payment the provider can be asked about: a hint about one of them
    /// waits for the answer. The transaction's kind on record decides, not the one the
    /// report claims (a token-only body cannot make itself unconfirmable).
    pub confirms: Kinds,
}

impl Trust {
    /// A report from a channel that vouches for what it states (a signature, a status
    /// answer, an operator, payhook itself).
    pub fn vouched(channel: Channel) -> Trust {
        Trust {
            channel,
            confirms: Kinds::NONE,
        }
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The report created the transaction.
    Created,
    /// The status (or a review's reason) changed from the given one.
    Applied(Status),
    /// Same status again.
    NoOp,
    /// An older report after the outcome, or an unauthenticated one against a confirmed
    /// status: recorded, not applied.
    Stale,
    /// A contradiction of a terminal status (surfaced as an event), or a FAILED after the
    /// provider's success of another amount (the review stays): recorded, not applied.
    Conflict,
    /// A hint (an unauthenticated settlement), held until a status query confirms it.
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

/// A transaction as loaded for a decision.
struct Current {
    id: i64,
    /// `transactions.kind`.
    kind: TxnKind,
    /// `transitions.seq` of its latest history row (0: none yet).
    last_seq: i64,
    stored: Stored,
}

/// How `transactions.reason` starts when a reported amount differs from a known one.
pub const AMOUNT_MISMATCH: &str = plan::AMOUNT_MISMATCH;

/// The values a provider's report states, in the decision function's terms.
fn details_of(r: &StatusReport) -> Details {
    Details {
        amount: r.money.clone(),
        merchant_ref: r.merchant_ref.clone(),
        msisdn: r.msisdn.clone(),
        receipt: r.receipt.clone(),
    }
}

/// Applies what a source says about a transaction: [`plan::plan`] decides, this
/// executes: the store only executes what pure functions decided.
pub fn apply(
    conn: &Connection,
    provider: ProviderId,
    report: &StatusReport,
    trust: Trust,
    source: Source<'_>,
    schedule: Schedule,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let current = load(conn, provider, &report.provider_ref)?;
    let details = details_of(report);
    let kind = match current.as_ref().map(|c| c.kind) {
        Some(k) if k != TxnKind::Unknown => k,
        _ => report.kind,
    };
    let inc = Incoming {
        status: report.status,
        reason: report.reason.as_deref(),
        details: &details,
        channel: trust.channel,
        confirmable: trust.confirms.contains(kind),
    };
    let p = plan::plan(current.as_ref().map(|c| &c.stored), &inc);
    execute(
        conn, provider, report, current, &p, source, schedule, now_ms,
    )
}

/// Writes a plan: the transaction row, its history row and its event, in the caller's
/// SQL transaction.
#[allow(clippy::too_many_arguments)]
fn execute(
    conn: &Connection,
    provider: ProviderId,
    report: &StatusReport,
    current: Option<Current>,
    p: &Plan,
    source: Source<'_>,
    schedule: Schedule,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let Some(cur) = current else {
        return create(conn, provider, report, p, source, schedule, now_ms);
    };
    let held_status = p.hold.held_status();
    let from = cur.stored.status;
    update(conn, cur.id, from, report, p, held_status, now_ms)?;
    let Some(outcome) = p.record else {
        return Ok(Applied {
            transaction_id: cur.id,
            outcome: Outcome::NoOp,
            status: p.status,
            event_id: None,
        });
    };
    let t = record(
        conn,
        cur.id,
        cur.last_seq + 1,
        p,
        Some(from),
        source,
        now_ms,
    )?;
    let event_id = match p.emit {
        Emit::Nothing => None,
        Emit::Settled => Some(emit(conn, cur.id, t, now_ms, Some(from), None)?),
        Emit::Conflict => Some(emit(conn, cur.id, t, now_ms, Some(from), Some(p.reported))?),
    };
    let outcome = match outcome {
        Record::Applied => Outcome::Applied(from),
        Record::Conflict => Outcome::Conflict,
        Record::Stale => Outcome::Stale,
        Record::Unconfirmed => Outcome::Unconfirmed,
    };
    if matches!(outcome, Outcome::Conflict) {
        tracing::warn!(
            provider = %provider,
            txn_ref = %report.provider_ref,
            status = %from,
            reported = %p.reported,
            source = source.label(),
            "conflicting report recorded; kept the current status"
        );
    } else if p.status == Status::NeedsReview && p.reason.is_some() {
        tracing::warn!(
            provider = %provider,
            txn_ref = %report.provider_ref,
            source = source.label(),
            reason = p.note_reason.as_deref().unwrap_or("-"),
            "transaction needs review"
        );
    }
    Ok(Applied {
        transaction_id: cur.id,
        outcome,
        status: p.status,
        event_id,
    })
}

/// Writes a plan for a transaction payhook did not know: the new row, its first history
/// row and its event.
fn create(
    conn: &Connection,
    provider: ProviderId,
    report: &StatusReport,
    p: &Plan,
    source: Source<'_>,
    schedule: Schedule,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let held_status = p.hold.held_status();
    let next_poll = match (p.poll, p.status.is_open()) {
        (PollChange::Now, _) => Some(now_ms),
        (_, true) => schedule.next_poll_at_ms.or(Some(now_ms)),
        (_, false) => None,
    };
    let unconfirmed = match &p.hold {
        HoldChange::Set(h) => details_json(&h.details),
        _ => p.unconfirmed.as_ref().and_then(details_json),
    };
    // One set of values for the row and for its event, which then needs no read back.
    let reason = p.reason.clone().flatten();
    let row = Snapshot {
        provider,
        provider_ref: &report.provider_ref,
        kind: report.kind.as_str(),
        status: p.status.as_str(),
        reason: reason.as_deref(),
        amount_minor: p.fill.amount.as_ref().map(|m| m.minor),
        currency: p.fill.amount.as_ref().map(|m| m.currency.as_str()),
        merchant_ref: p.fill.merchant_ref.as_deref(),
        msisdn: p.fill.msisdn.as_deref(),
        receipt: p.fill.receipt.as_deref(),
        confirmed: p.status_confirmed.unwrap_or(true),
        unconfirmed: unconfirmed.as_deref(),
    };
    let deadline = p
        .status
        .is_open()
        .then_some(schedule.deadline_at_ms)
        .flatten();
    let id = insert(
        conn,
        &row,
        report.provider_status.as_deref(),
        held_status,
        (next_poll, deadline),
        p.status.is_settled().then_some(now_ms),
        now_ms,
    )?;
    let t = record(conn, id, 1, p, None, source, now_ms)?;
    let event_id = match p.emit {
        Emit::Nothing => None,
        Emit::Settled => Some(emit_snapshot(conn, id, t, now_ms, None, None, &row)?),
        Emit::Conflict => Some(emit_snapshot(
            conn,
            id,
            t,
            now_ms,
            None,
            Some(p.reported),
            &row,
        )?),
    };
    let outcome = if held_status.is_some() {
        Outcome::Unconfirmed
    } else {
        Outcome::Created
    };
    Ok(Applied {
        transaction_id: id,
        outcome,
        status: p.status,
        event_id,
    })
}

/// Applies a plan to an existing row. The CASEs read the row as it was.
fn update(
    conn: &Connection,
    id: i64,
    from: Status,
    r: &StatusReport,
    p: &Plan,
    held_status: Option<Status>,
    now_ms: i64,
) -> Result<(), StoreError> {
    // 0: keep the hold, 1: set it, 2: clear it.
    let hold_op = match &p.hold {
        HoldChange::Keep => 0,
        HoldChange::Set(_) => 1,
        HoldChange::Clear => 2,
    };
    let details: Option<Option<String>> = match &p.hold {
        HoldChange::Set(h) => Some(details_json(&h.details)),
        HoldChange::Clear => Some(p.unconfirmed.as_ref().and_then(details_json)),
        HoldChange::Keep => p.unconfirmed.as_ref().map(details_json),
    };
    let poll_op = match p.poll {
        PollChange::Keep => 0,
        PollChange::Now => 1,
        PollChange::KeepOrNow => 2,
        PollChange::Stop => 3,
    };
    let settles = p.status != from && p.status.is_settled();
    let changed = conn
        .prepare_cached(
            "UPDATE transactions SET
                 status = ?2,
                 reason = CASE WHEN ?3 THEN ?4 ELSE reason END,
                 status_confirmed = COALESCE(?5, status_confirmed),
                 settled_at_ms = CASE WHEN ?6 THEN COALESCE(settled_at_ms, ?7) ELSE settled_at_ms END,
                 unconfirmed_status = CASE ?8 WHEN 0 THEN unconfirmed_status WHEN 1 THEN ?9 ELSE NULL END,
                 unconfirmed_details = CASE WHEN ?10 THEN ?11 ELSE unconfirmed_details END,
                 next_poll_at_ms = CASE ?12 WHEN 0 THEN next_poll_at_ms WHEN 1 THEN ?7
                                            WHEN 2 THEN COALESCE(next_poll_at_ms, ?7) ELSE NULL END,
                 provider_status = COALESCE(?13, provider_status),
                 currency = CASE WHEN amount_minor IS NULL AND ?14 IS NOT NULL THEN ?15 ELSE currency END,
                 amount_minor = COALESCE(amount_minor, ?14),
                 merchant_ref = COALESCE(merchant_ref, ?16),
                 msisdn = COALESCE(msisdn, ?17),
                 receipt = COALESCE(receipt, ?18),
                 kind = CASE WHEN kind = 'unknown' THEN ?19 ELSE kind END,
                 updated_at_ms = ?7
             WHERE id = ?1 AND status = ?20",
        )?
        .execute(params![
            id,
            p.status.as_str(),
            p.reason.is_some(),
            p.reason.clone().flatten(),
            p.status_confirmed,
            settles,
            now_ms,
            hold_op,
            held_status.map(Status::as_str),
            details.is_some(),
            details.flatten(),
            poll_op,
            r.provider_status,
            p.fill.amount.as_ref().map(|m| m.minor),
            p.fill.amount.as_ref().map(|m| m.currency.as_str()),
            p.fill.merchant_ref,
            p.fill.msisdn,
            p.fill.receipt,
            r.kind.as_str(),
            from.as_str(),
        ])?;
    if changed != 1 {
        return Err(StoreError::Refused(format!(
            "transaction {id} changed under the writer"
        )));
    }
    Ok(())
}

/// Hint values as stored in `transactions.unconfirmed_details`; `None` when empty.
fn details_json(d: &Details) -> Option<String> {
    if d.is_empty() {
        return None;
    }
    Some(
        serde_json::json!({
            "amount": d.amount.as_ref().map(crate::money::Money::decimal),
            "amount_minor": d.amount.as_ref().map(|m| m.minor),
            "currency": d.amount.as_ref().map(|m| m.currency.as_str()),
            "merchant_ref": d.merchant_ref,
            "msisdn": d.msisdn,
            "receipt": d.receipt,
        })
        .to_string(),
    )
}

/// Reads `transactions.unconfirmed_details` back; unreadable text reads as no detail.
fn details_from_json(text: Option<&str>) -> Details {
    let Some(v) = text.and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()) else {
        return Details::default();
    };
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let amount = match (
        v.get("amount_minor").and_then(|x| x.as_i64()),
        s("currency"),
    ) {
        (Some(minor), Some(currency)) => Some(Money { minor, currency }),
        _ => None,
    };
    Details {
        amount,
        merchant_ref: s("merchant_ref"),
        msisdn: s("msisdn"),
        receipt: s("receipt"),
    }
}

fn load(
    conn: &Connection,
    provider: ProviderId,
    provider_ref: &str,
) -> Result<Option<Current>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT id, status, reason, unconfirmed_status, unconfirmed_details, amount_minor,
                    currency, expected_amount_minor, expected_currency, merchant_ref, msisdn,
                    receipt, status_confirmed,
                    (SELECT COALESCE(MAX(seq), 0) FROM transitions WHERE transaction_id = t.id),
                    kind
               FROM transactions t WHERE provider = ?1 AND provider_ref = ?2",
        )?
        .query_row(params![provider.as_str(), provider_ref], |r| {
            let money = |a: usize, c: usize| -> rusqlite::Result<Option<Money>> {
                Ok(
                    match (r.get::<_, Option<i64>>(a)?, r.get::<_, Option<String>>(c)?) {
                        (Some(minor), Some(currency)) => Some(Money { minor, currency }),
                        _ => None,
                    },
                )
            };
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                money(5, 6)?,
                money(7, 8)?,
                Details {
                    amount: None,
                    merchant_ref: r.get(9)?,
                    msisdn: r.get(10)?,
                    receipt: r.get(11)?,
                },
                r.get::<_, bool>(12)?,
                r.get::<_, i64>(13)?,
                r.get::<_, String>(14)?,
            ))
        })
        .optional()?;
    let Some((
        id,
        status,
        reason,
        held,
        held_details,
        amount,
        expected,
        mut known,
        confirmed,
        last_seq,
        kind,
    )) = row
    else {
        return Ok(None);
    };
    let parse = |s: &str| {
        s.parse::<Status>()
            .map_err(|e| StoreError::Refused(e.to_string()))
    };
    known.amount = amount;
    let details = details_from_json(held_details.as_deref());
    let (held, unconfirmed) = match held {
        Some(h) => (
            Some(Held {
                status: parse(&h)?,
                details,
            }),
            Details::default(),
        ),
        None => (None, details),
    };
    Ok(Some(Current {
        id,
        kind: kind.parse().unwrap_or(TxnKind::Unknown),
        last_seq,
        stored: Stored {
            status: parse(&status)?,
            reason,
            known,
            expected,
            held,
            status_confirmed: confirmed,
            unconfirmed,
        },
    }))
}

/// Inserts a new transaction holding `row`; `poll` is its first status query and its
/// deadline.
fn insert(
    conn: &Connection,
    row: &Snapshot<'_>,
    provider_status: Option<&str>,
    held_status: Option<Status>,
    (next_poll_at_ms, deadline_at_ms): (Option<i64>, Option<i64>),
    settled_at_ms: Option<i64>,
    now_ms: i64,
) -> Result<i64, StoreError> {
    // OR FAIL, with the provider trigger's RAISE(FAIL): nothing in this INSERT can abort
    // after writing, so SQLite keeps no statement journal (a copy of every page it touches)
    // for it. A single row is checked in full before it is written, so a refusal leaves
    // nothing behind either way (migration 0011). Without that journal, a store that
    // fills halfway through (the disk, or `max_size_mb`) rolls back the whole transaction
    // rather than the statement; the writer then fails its whole batch (`writer::Batch::run`),
    // as it already did when payhook's other inserts, which keep no journal either, filled it.
    conn.prepare_cached(
        "INSERT OR FAIL INTO transactions (provider, provider_ref, kind, status, reason, provider_status,
             unconfirmed_status, unconfirmed_details, status_confirmed, amount_minor, currency,
             merchant_ref, msisdn, receipt, created_at_ms, updated_at_ms, settled_at_ms,
             next_poll_at_ms, deadline_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?16, ?17, ?18)",
    )?
    .execute(params![
        row.provider.as_str(),
        row.provider_ref,
        row.kind,
        row.status,
        row.reason,
        provider_status,
        held_status.map(Status::as_str),
        row.unconfirmed,
        row.confirmed,
        row.amount_minor,
        row.currency,
        row.merchant_ref,
        row.msisdn,
        row.receipt,
        now_ms,
        settled_at_ms,
        next_poll_at_ms,
        deadline_at_ms,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// A written transition: its row id and per-transaction sequence number.
#[derive(Debug, Clone, Copy)]
pub(super) struct Transition {
    /// `transitions.id`.
    pub(super) id: i64,
    /// `transitions.seq`.
    pub(super) seq: i64,
}

/// Appends the history row of a plan.
fn record(
    conn: &Connection,
    txn: i64,
    seq: i64,
    p: &Plan,
    from: Option<Status>,
    source: Source<'_>,
    now_ms: i64,
) -> Result<Transition, StoreError> {
    let (callback_id, poll_id, note) = match source {
        Source::Callback(id) => (Some(id), None, None),
        Source::Poll(id) => (None, Some(id), None),
        Source::Operator(note) | Source::Reconciler(note) => (None, None, Some(note)),
        Source::Merchant => (None, None, None),
    };
    let outcome = p.record.unwrap_or(Record::Applied);
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
        outcome.as_str(),
        from.map(Status::as_str),
        p.reported.as_str(),
        p.note_reason,
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

/// What a merchant's registration did ([`register`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Registered {
    /// `transactions.id`.
    pub transaction_id: i64,
    /// True when the registration created the transaction.
    pub created: bool,
    /// Its status afterwards.
    pub status: String,
    /// Set when the provider had already stated another amount: the registration is
    /// refused (409), and the transaction went to review (or, if its status is terminal,
    /// a conflict was recorded) with this reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contradiction: Option<String>,
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
    pub kind: crate::domain::TxnKind,
    /// The amount the merchant expects; a different reported amount goes to review.
    pub expected: Option<crate::money::Money>,
    /// The merchant's own reference.
    pub merchant_ref: Option<String>,
}

/// Registers a transaction for reconciliation. A new one is created PENDING (a `merchant`
/// transition) with the provider's polling `schedule`; an existing one only gets the
/// expected amount, the merchant reference and an unknown kind filled in. Registering a
/// different expected amount than the one on record is refused and changes nothing. An
/// expected amount that contradicts the amount the provider already stated is recorded,
/// puts the transaction in review ([`plan::disputed`]) and is reported in
/// [`Registered::contradiction`].
pub fn register(
    conn: &Connection,
    reg: &Registration,
    schedule: Schedule,
    now_ms: i64,
) -> Result<Registered, StoreError> {
    let existing = load(conn, reg.provider, &reg.provider_ref)?;
    let mut contradiction = None;
    let (id, created, mut status) = match existing {
        Some(cur) => {
            match plan::register(&cur.stored, reg.expected.as_ref()) {
                plan::Registration::Refuse(why) => {
                    return Err(StoreError::Refused(format!(
                        "{} {} is {why}",
                        reg.provider, reg.provider_ref
                    )))
                }
                plan::Registration::Fill => {}
                plan::Registration::Contradicts(why) => contradiction = Some(why),
            }
            (cur.id, false, cur.stored.status)
        }
        None => {
            let mut report = StatusReport::new(reg.provider_ref.clone(), reg.kind, Status::Pending);
            report.merchant_ref.clone_from(&reg.merchant_ref);
            let a = apply(
                conn,
                reg.provider,
                &report,
                Trust::vouched(Channel::Payhook),
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
    if let Some(why) = &contradiction {
        let a = dispute(
            conn,
            reg.provider,
            &reg.provider_ref,
            why.clone(),
            Channel::Payhook,
            Source::Merchant,
            now_ms,
        )?;
        status = a.status;
    }
    Ok(Registered {
        transaction_id: id,
        created,
        status: status.as_str().to_string(),
        contradiction,
    })
}

/// Puts a known transaction in review because of `why` (see [`plan::disputed`]): a
/// registration that contradicts the provider, or one callback delivered with two
/// different bodies. Nothing happens to a transaction payhook does not know.
pub fn dispute(
    conn: &Connection,
    provider: ProviderId,
    provider_ref: &str,
    why: String,
    channel: Channel,
    source: Source<'_>,
    now_ms: i64,
) -> Result<Applied, StoreError> {
    let Some(cur) = load(conn, provider, provider_ref)? else {
        return Err(StoreError::NotFound(format!("{provider} {provider_ref}")));
    };
    let p = plan::disputed(&cur.stored, why, channel);
    let report = StatusReport::new(
        provider_ref,
        crate::domain::TxnKind::Unknown,
        Status::NeedsReview,
    );
    execute(
        conn,
        provider,
        &report,
        Some(cur),
        &p,
        source,
        Schedule::default(),
        now_ms,
    )
}
