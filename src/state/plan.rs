//! What one report does to one transaction: the decision function every state change
//! goes through, pure so that its whole matrix can be tested without a database.
//!
//! # Trust
//! A report is only as good as what authenticated it ([`Channel`]). A provider signature
//! over the whole body, a provider credential (HTTP Basic), a status-endpoint answer, a
//! path token from an allowlisted sender address that the configuration trusts, or an
//! operator vouch for everything they state. A ZengaPay field signature vouches for the
//! reference, the MSISDN and the amount it signed, not for the status, and a bare path
//! token only for "this provider called about this payment": their reports are *hints*.
//!
//! A hint that a payment settled (succeeded, failed, was reversed) is held, with the
//! values it claimed, until the provider's status endpoint answers, when one exists for
//! the payment. A confirming answer that disagrees with the hint on the status, the
//! amount, the currency or the merchant reference sends the transaction to review with a
//! reason naming the field, and the hint's values are dropped. Where no status endpoint
//! exists (Daraja C2B and B2C, Tujenge, or a provider configured without query
//! credentials), the hint is applied, and the transaction and its event say the status
//! is unconfirmed.
//!
//! # Amounts
//! An amount is compared with every amount already known for the payment (the one the
//! merchant registered, the one an authenticated report stated, and the one a held hint
//! claimed), whatever order they arrive in; a mismatch goes to review, never settles.

use super::{decide, Decision, Status};
use crate::money::Money;

/// How a report was authenticated: what it may change follows from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A provider signature over the whole body, or a provider credential (HTTP Basic).
    Signed,
    /// A signature over some fields only (ZengaPay's reference + MSISDN + amount).
    FieldSigned,
    /// A secret path token alone.
    Token,
    /// A path token from a sender address inside an enforced allowlist, for a provider
    /// whose configuration trusts that pair (`allowlist_authenticates`).
    TokenAllowlisted,
    /// A token-only or field-signed report that the configuration says to take as it is
    /// (`confirm_unsigned = false`).
    Configured,
    /// The provider's status endpoint (or statement), queried with payhook's credentials.
    StatusQuery,
    /// A person (`payhook resolve`).
    Operator,
    /// payhook itself: the deadline escalation, a statement discovery, a registration.
    Payhook,
}

impl Channel {
    /// Whether what the report states counts as stated by the provider. False for hints.
    pub fn vouches(self) -> bool {
        !matches!(self, Channel::FieldSigned | Channel::Token)
    }

    /// A provider's own report, as opposed to a person's or payhook's.
    pub fn is_provider(self) -> bool {
        !matches!(self, Channel::Operator | Channel::Payhook)
    }
}

/// The details of a payment a report can state besides its status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// The amount, exact.
    pub amount: Option<Money>,
    /// The merchant's own reference.
    pub merchant_ref: Option<String>,
    /// The payer's or payee's phone number.
    pub msisdn: Option<String>,
    /// The network receipt.
    pub receipt: Option<String>,
}

impl Details {
    /// No detail at all.
    pub fn is_empty(&self) -> bool {
        self.amount.is_none()
            && self.merchant_ref.is_none()
            && self.msisdn.is_none()
            && self.receipt.is_none()
    }
}

/// A settlement reported by a hint, held until the status endpoint confirms it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The status the hint claimed (SUCCEEDED, FAILED or REVERSED).
    pub status: Status,
    /// The values it claimed.
    pub details: Details,
}

/// A transaction as stored, as far as decisions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Current status.
    pub status: Status,
    /// Current reason (`AMOUNT_MISMATCH: …`, `DEADLINE_PASSED`, …).
    pub reason: Option<String>,
    /// Values an authenticated source stated (or, for the merchant reference, the
    /// merchant registered).
    pub known: Details,
    /// The amount the merchant registered.
    pub expected: Option<Money>,
    /// A hint waiting for its confirmation.
    pub held: Option<Held>,
    /// False when the current status was applied from a hint no status query could check.
    pub status_confirmed: bool,
    /// Values only a hint stated, left unconfirmed once the transaction settled (empty
    /// while a hint is held: its values are in [`Stored::held`]).
    pub unconfirmed: Details,
}

/// A report about a transaction: what it says and how it was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming<'a> {
    /// The status it states.
    pub status: Status,
    /// Its normalised reason, if any.
    pub reason: Option<&'a str>,
    /// The values it states.
    pub details: &'a Details,
    /// How it was authenticated.
    pub channel: Channel,
    /// Whether the provider has a status query for this payment that could confirm a hint.
    pub confirmable: bool,
}

/// `transitions.outcome` of the history row a report leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// The status (or a review's reason) changed.
    Applied,
    /// It contradicted the status, which stays.
    Conflict,
    /// An older or unauthenticated report that changes nothing.
    Stale,
    /// A hint, held (or noted beside one already held) until a status query confirms it.
    Unconfirmed,
}

impl Record {
    /// The SQL spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Record::Applied => "applied",
            Record::Conflict => "conflict",
            Record::Stale => "stale",
            Record::Unconfirmed => "unconfirmed",
        }
    }
}

/// What happens to the held hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldChange {
    /// Unchanged.
    Keep,
    /// Hold this one.
    Set(Held),
    /// Drop it: confirmed, contradicted, or superseded by a decision.
    Clear,
}

impl HoldChange {
    /// The status this change sets as held (`Set`); `None` for `Keep` and `Clear`, which
    /// leave `transactions.unconfirmed_status` as it is or clear it.
    pub fn held_status(&self) -> Option<Status> {
        match self {
            HoldChange::Set(h) => Some(h.status),
            HoldChange::Keep | HoldChange::Clear => None,
        }
    }
}

/// What happens to the transaction's next status query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollChange {
    /// Unchanged (on creation: the provider's schedule if open, none otherwise).
    Keep,
    /// Due now (a hint waits for its confirmation).
    Now,
    /// Kept if set, else due now: a held hint survives a move to review and stays due.
    KeepOrNow,
    /// Never again.
    Stop,
}

/// The outbox event a plan writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// None.
    Nothing,
    /// The new settled status (`transaction.<status>`).
    Settled,
    /// A contradiction of a settled status (`transaction.conflict`).
    Conflict,
}

/// What a report does, for the store to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The history row to append, if any (`None`: a repeat, nothing to record).
    pub record: Option<Record>,
    /// The status the history row says was reported or decided (`transitions.to_status`).
    pub reported: Status,
    /// The reason the history row carries.
    pub note_reason: Option<String>,
    /// The status afterwards.
    pub status: Status,
    /// The reason afterwards, when it changes (`Some(None)` clears it).
    pub reason: Option<Option<String>>,
    /// Values to fill in where none is known yet (never overwriting one).
    pub fill: Details,
    /// The held hint.
    pub hold: HoldChange,
    /// Hint values left unconfirmed after this report, shown to the merchant as such;
    /// `None`: unchanged.
    pub unconfirmed: Option<Details>,
    /// Whether the status afterwards was vouched for (when it changes).
    pub status_confirmed: Option<bool>,
    /// The event to write.
    pub emit: Emit,
    /// The next status query.
    pub poll: PollChange,
}

impl Plan {
    /// A plan that changes nothing and records `record` about a report of `reported`.
    fn unchanged(cur: Status, record: Option<Record>, reported: Status) -> Plan {
        Plan {
            record,
            reported,
            note_reason: None,
            status: cur,
            reason: None,
            fill: Details::default(),
            hold: HoldChange::Keep,
            unconfirmed: None,
            status_confirmed: None,
            emit: Emit::Nothing,
            poll: PollChange::Keep,
        }
    }
}

/// How `transactions.reason` starts when amounts disagree.
pub const AMOUNT_MISMATCH: &str = "AMOUNT_MISMATCH";
/// How `transactions.reason` starts when merchant references disagree.
pub const MERCHANT_REF_MISMATCH: &str = "MERCHANT_REF_MISMATCH";
/// How `transactions.reason` starts when a confirming answer disagrees with a held hint.
pub const UNCONFIRMED_MISMATCH: &str = "UNCONFIRMED_MISMATCH";
/// How `transactions.reason` starts when one callback arrived with two different bodies.
pub const CALLBACK_MISMATCH: &str = "CALLBACK_MISMATCH";
/// The reason of a deadline escalation.
pub const DEADLINE_PASSED: &str = "DEADLINE_PASSED";

/// Decides what `inc` does to the transaction `cur` (`None`: not known yet).
///
/// ```
/// use payhook::state::plan::{plan, Channel, Details, Emit, Incoming, Record};
/// use payhook::state::Status;
/// let hint = Incoming { status: Status::Succeeded, reason: None, details: &Details::default(),
///                       channel: Channel::Token, confirmable: true };
/// let p = plan(None, &hint);
/// // A token-only success creates the transaction PENDING and waits for the status query.
/// assert_eq!((p.status, p.record, p.emit), (Status::Pending, Some(Record::Unconfirmed), Emit::Nothing));
/// ```
pub fn plan(cur: Option<&Stored>, inc: &Incoming<'_>) -> Plan {
    if inc.channel.vouches() {
        return vouched(cur, inc, true);
    }
    if !inc.status.is_terminal() {
        // An open (or review) status moves no money: a hint may move the status, but no
        // value it states is recorded as known.
        let mut p = vouched(cur, inc, true);
        p.fill = Details::default();
        return p;
    }
    let Some(c) = cur else {
        return if inc.confirmable {
            hold(None, inc)
        } else {
            vouched(None, inc, false)
        };
    };
    if c.status.is_terminal() {
        return match decide(c.status, inc.status) {
            Decision::NoOp => Plan::unchanged(c.status, None, inc.status),
            // The merchant was told a status no one could confirm; another unconfirmed
            // report now contradicts it: tell them, and list it for review.
            _ if !c.status_confirmed => {
                let mut p = Plan::unchanged(c.status, Some(Record::Conflict), inc.status);
                p.emit = Emit::Conflict;
                p
            }
            // An unauthenticated report has no weight against a confirmed status: noted,
            // not applied, not announced (a replayed field signature would otherwise
            // raise one alarm per replay).
            _ => Plan::unchanged(c.status, Some(Record::Stale), inc.status),
        };
    }
    if c.held.is_some() {
        // The first hint stays held; this one is history, and the status query decides.
        return Plan::unchanged(c.status, Some(Record::Unconfirmed), inc.status);
    }
    let deadline_review =
        c.status == Status::NeedsReview && c.reason.as_deref() == Some(DEADLINE_PASSED);
    if c.status == Status::NeedsReview && !deadline_review {
        // In review for a disagreement: the reviewer decides, the hint is history.
        return Plan::unchanged(c.status, Some(Record::Unconfirmed), inc.status);
    }
    if inc.confirmable {
        hold(Some(c), inc)
    } else {
        vouched(Some(c), inc, false)
    }
}

/// Holds a hint until the status query confirms it.
fn hold(cur: Option<&Stored>, inc: &Incoming<'_>) -> Plan {
    let status = cur.map_or(Status::Pending, |c| c.status);
    let mut p = Plan::unchanged(status, Some(Record::Unconfirmed), inc.status);
    p.note_reason = inc.reason.map(str::to_string);
    p.hold = HoldChange::Set(Held {
        status: inc.status,
        details: inc.details.clone(),
    });
    p.poll = PollChange::Now;
    p
}

/// A report whose statements count (`confirmed`), or a hint applied because nothing
/// could confirm it (`!confirmed`).
fn vouched(cur: Option<&Stored>, inc: &Incoming<'_>, confirmed: bool) -> Plan {
    let s = inc.status;
    let Some(c) = cur else {
        let p = Plan {
            record: Some(Record::Applied),
            reported: s,
            note_reason: inc.reason.map(str::to_string),
            status: s,
            reason: Some(inc.reason.map(str::to_string)),
            fill: inc.details.clone(),
            hold: HoldChange::Keep,
            unconfirmed: None,
            status_confirmed: Some(confirmed),
            emit: if s.is_settled() {
                Emit::Settled
            } else {
                Emit::Nothing
            },
            poll: PollChange::Keep,
        };
        return unvouched(p, confirmed);
    };
    // A settlement reported while a hint is held confirms or contradicts the hint.
    if let (Some(h), true) = (&c.held, s.is_terminal() && inc.channel.is_provider()) {
        if let Some(why) = hint_disagrees(c, h, inc) {
            return review(c, inc, why, confirmed);
        }
    }
    let mut target = s;
    let mut reason = inc.reason.map(str::to_string);
    let held_for_amount = c.status == Status::NeedsReview
        && c.reason.as_deref().is_some_and(|r| {
            r.starts_with(AMOUNT_MISMATCH)
                || r.starts_with(MERCHANT_REF_MISMATCH)
                || r.starts_with(UNCONFIRMED_MISMATCH)
                || r.starts_with(CALLBACK_MISMATCH)
        });
    if s == Status::Succeeded && inc.channel.is_provider() {
        if let Some(why) = money_disagrees(c, inc.details) {
            if decide(c.status, Status::Succeeded) == Decision::Conflict {
                // Against a FAILED (or a REVERSED), a payment of any amount contradicts it.
                let mut p = Plan::unchanged(c.status, Some(Record::Conflict), s);
                p.note_reason = Some(why);
                p.emit = Emit::Conflict;
                return p;
            }
            return review(c, inc, why, confirmed);
        }
        if held_for_amount {
            // The provider disagreed before; a success that names the known amount, or
            // none, does not settle that: the review stays for a human.
            let mut p = Plan::unchanged(c.status, None, s);
            p.fill = inc.details.clone();
            return unvouched(p, confirmed);
        }
        target = Status::Succeeded;
    }
    if s == Status::Failed && inc.channel.is_provider() && held_for_amount {
        // After a report of a success that disagreed, a FAILED contradicts it: money may
        // have moved. The review stays; the reviewer sees this beside it.
        let mut p = Plan::unchanged(c.status, Some(Record::Conflict), s);
        p.note_reason = reason;
        return p;
    }
    let mut p = Plan::unchanged(c.status, None, target);
    p.note_reason.clone_from(&reason);
    match decide(c.status, target) {
        Decision::NoOp => {
            p.fill = inc.details.clone();
            if c.held.is_some() && target.is_terminal() {
                p.hold = HoldChange::Clear;
            }
            if confirmed && !c.status_confirmed && inc.channel.is_provider() {
                // An authenticated report of the status a hint had set: now it counts.
                p.status_confirmed = Some(true);
            }
        }
        Decision::Stale => p.record = Some(Record::Stale),
        Decision::Conflict => {
            p.record = Some(Record::Conflict);
            p.emit = Emit::Conflict;
        }
        Decision::Apply => {
            p.record = Some(Record::Applied);
            p.status = target;
            p.reason = Some(reason.take());
            p.fill = inc.details.clone();
            p.status_confirmed = Some(confirmed);
            if target.is_settled() {
                p.emit = Emit::Settled;
            }
            match (&c.held, target) {
                // A held hint survives a move to review, and stays due, so that a status
                // query can still confirm it.
                (Some(_), Status::NeedsReview) => p.poll = PollChange::KeepOrNow,
                (_, t) if t.is_open() => {}
                _ => p.poll = PollChange::Stop,
            }
            if let (Some(h), true) = (&c.held, target.is_terminal()) {
                p.hold = HoldChange::Clear;
                p.unconfirmed = Some(leftover(&h.details, inc.details, c));
            }
        }
    }
    unvouched(p, confirmed)
}

/// A hint applied because nothing could confirm it states no known value: what it
/// claimed is kept apart, as unconfirmed.
fn unvouched(mut p: Plan, confirmed: bool) -> Plan {
    if !confirmed {
        if !p.fill.is_empty() {
            p.unconfirmed = Some(std::mem::take(&mut p.fill));
        }
        p.fill = Details::default();
    }
    p
}

/// Sends `c` to review because of `why` (or, when it already is in review, makes `why`
/// its reason), dropping any held hint: its values are never kept.
fn review(c: &Stored, inc: &Incoming<'_>, why: String, confirmed: bool) -> Plan {
    if c.status.is_terminal() {
        // A settled status never goes back to review: the disagreement is a conflict,
        // recorded beside it and announced.
        let mut p = Plan::unchanged(c.status, Some(Record::Conflict), inc.status);
        p.note_reason = Some(why);
        p.emit = Emit::Conflict;
        return p;
    }
    let mut p = Plan::unchanged(c.status, Some(Record::Applied), Status::NeedsReview);
    p.note_reason = Some(why.clone());
    p.reason = Some(Some(why));
    if confirmed {
        // An authenticated report's own values are still what the provider said.
        p.fill = inc.details.clone();
    } else {
        p.unconfirmed = Some(inc.details.clone());
    }
    p.hold = HoldChange::Clear;
    p.poll = PollChange::Stop;
    if c.status != Status::NeedsReview {
        p.status = Status::NeedsReview;
        p.status_confirmed = Some(confirmed);
        p.emit = Emit::Settled;
    }
    p
}

/// Why a settlement reported by an authenticated source disagrees with the held hint,
/// naming the field; `None` when it confirms it.
fn hint_disagrees(c: &Stored, h: &Held, inc: &Incoming<'_>) -> Option<String> {
    // The reason reaches the merchant in the review's event, so it names the field and
    // what the authenticated side said, never the unconfirmed value (the callback row
    // keeps it for the reviewer).
    let said = |what: &str, answer: &dyn std::fmt::Display| {
        Some(format!(
            "{UNCONFIRMED_MISMATCH}: {what}: the provider says {answer}, the unconfirmed callback said otherwise"
        ))
    };
    if h.status != inc.status {
        return said("status", &inc.status);
    }
    match (&h.details.amount, &inc.details.amount) {
        (Some(a), Some(b)) if a.currency != b.currency => return said("currency", &b.currency),
        (Some(a), Some(b)) if a.minor != b.minor => return said("amount", b),
        // The answer states no amount: the hint's is unvouched, and must at least agree
        // with what the merchant registered and what an authenticated source stated.
        (Some(a), None) => match c.expected.as_ref().or(c.known.amount.as_ref()) {
            Some(e) if e.currency != a.currency => {
                return said("currency", &format!("nothing; registered {e}"))
            }
            Some(e) if e.minor != a.minor => {
                return said("amount", &format!("nothing; registered {e}"))
            }
            _ => {}
        },
        _ => {}
    }
    match (&h.details.merchant_ref, &inc.details.merchant_ref) {
        (Some(a), Some(b)) if a != b => said("merchant_ref", b),
        (Some(a), None) => match &c.known.merchant_ref {
            Some(k) if k != a => said("merchant_ref", &format!("nothing; registered {k}")),
            _ => None,
        },
        _ => None,
    }
}

/// Why the amount or merchant reference of an authenticated success disagrees with what
/// is already known about the payment.
fn money_disagrees(c: &Stored, d: &Details) -> Option<String> {
    if let Some(got) = &d.amount {
        for (whose, known) in [
            ("registered", c.expected.as_ref()),
            ("reported before", c.known.amount.as_ref()),
        ] {
            if let Some(k) = known {
                if k.minor != got.minor || k.currency != got.currency {
                    return Some(format!(
                        "{AMOUNT_MISMATCH}: {whose} {} {}, provider reported {} {}",
                        k.minor, k.currency, got.minor, got.currency
                    ));
                }
            }
        }
    }
    match (&c.known.merchant_ref, &d.merchant_ref) {
        (Some(k), Some(got)) if k != got => Some(format!(
            "{MERCHANT_REF_MISMATCH}: known {k:?}, provider reported {got:?}"
        )),
        _ => None,
    }
}

/// The hint's values that nothing authenticated confirmed: what the answer did not
/// state and the record does not know either.
fn leftover(hint: &Details, answer: &Details, c: &Stored) -> Details {
    let amount_known = answer.amount.is_some()
        || c.known.amount.is_some()
        || (c.expected.is_some() && c.expected == hint.amount);
    Details {
        amount: hint.amount.clone().filter(|_| !amount_known),
        merchant_ref: hint
            .merchant_ref
            .clone()
            .filter(|_| answer.merchant_ref.is_none() && c.known.merchant_ref.is_none()),
        msisdn: hint
            .msisdn
            .clone()
            .filter(|_| answer.msisdn.is_none() && c.known.msisdn.is_none()),
        receipt: hint
            .receipt
            .clone()
            .filter(|_| answer.receipt.is_none() && c.known.receipt.is_none()),
    }
}

/// Whether an operator may set a transaction in `current` status to `to`: only a
/// transition the state machine allows. A decision that contradicts a terminal status is
/// refused rather than recorded as a conflict: the operator is here to be told.
pub fn resolution(current: Status, to: Status) -> Result<(), String> {
    match decide(current, to) {
        Decision::Apply | Decision::NoOp => Ok(()),
        Decision::Stale | Decision::Conflict => Err(format!(
            "is {current}: {to} is not a transition payhook allows \
             (terminal statuses never change, except SUCCEEDED → REVERSED)"
        )),
    }
}

/// What a merchant's registration of an expected amount does to a known transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Record the expected amount (if given) and merchant reference where missing.
    Fill,
    /// Refused: another amount is already registered. Nothing changes.
    Refuse(String),
    /// Refused, but the payment's provider already stated another amount: the expected
    /// amount is recorded and the transaction goes to review (a conflict if its status is
    /// terminal) with this reason.
    Contradicts(String),
}

/// Decides a registration of `expected` against `c`.
pub fn register(c: &Stored, expected: Option<&Money>) -> Registration {
    let Some(want) = expected else {
        return Registration::Fill;
    };
    if let Some(had) = &c.expected {
        if had != want {
            return Registration::Refuse(format!("already registered with amount {had}"));
        }
    }
    // A held hint's amount is not compared: it is unvouched, and its confirmation is
    // compared with the amount registered here. A status applied from a hint nothing
    // could confirm carries its claimed amount as unconfirmed: that one is compared.
    match c.known.amount.as_ref().or(c.unconfirmed.amount.as_ref()) {
        Some(got) if got != want => Registration::Contradicts(format!(
            "{AMOUNT_MISMATCH}: registered {} {}, provider reported {} {}",
            want.minor, want.currency, got.minor, got.currency
        )),
        _ => Registration::Fill,
    }
}

/// The plan for a payment disputed by `why` (a registration contradicting what the
/// provider stated, or one callback delivered with two bodies that say different
/// things), reported through `channel`: a terminal status stays and the dispute is a
/// conflict (only noted, when an unauthenticated report disputes a confirmed status);
/// otherwise the transaction goes to review and any held hint is dropped.
pub fn disputed(c: &Stored, why: String, channel: Channel) -> Plan {
    if c.status.is_terminal() {
        // Against a confirmed settlement, an unauthenticated body is history, not an
        // alarm (a replayed signature would otherwise raise one per replay).
        let record = if channel.vouches() || !c.status_confirmed {
            Record::Conflict
        } else {
            Record::Stale
        };
        let mut p = Plan::unchanged(c.status, Some(record), Status::NeedsReview);
        p.note_reason = Some(why);
        if record == Record::Conflict {
            p.emit = Emit::Conflict;
        }
        return p;
    }
    let mut p = Plan::unchanged(c.status, Some(Record::Applied), Status::NeedsReview);
    p.note_reason = Some(why.clone());
    // A review that already names a disagreement keeps it: the dispute is in its history,
    // and the first reason is what the reviewer must see. A deadline review takes it.
    let keeps_reason = c.status == Status::NeedsReview
        && c.reason.as_deref().is_some_and(|r| r != DEADLINE_PASSED);
    if !keeps_reason {
        p.reason = Some(Some(why));
    }
    p.hold = HoldChange::Clear;
    p.poll = PollChange::Stop;
    if c.status != Status::NeedsReview {
        p.status = Status::NeedsReview;
        p.status_confirmed = Some(true);
        p.emit = Emit::Settled;
    }
    p
}

#[cfg(test)]
mod tests;
