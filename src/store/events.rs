//! The outbox row of a settled transition: its stable id and the JSON payload delivered to
//! the merchant, written by [`super::transactions`] in the same SQL transaction as the
//! transition it announces.

use super::transactions::Transition;
use super::StoreError;
use crate::clock::rfc3339;
use crate::domain::ProviderId;
use crate::money::Money;
use crate::state::Status;
use rusqlite::{params, Connection};

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
/// use payhook::domain::ProviderId;
/// use payhook::store::events::event_id;
/// let a = event_id(42, ProviderId::ZengaPay, "ref-1", 2);
/// assert_eq!(a, event_id(42, ProviderId::ZengaPay, "ref-1", 2));
/// assert!(a.starts_with("evt_00000000002a") && a.len() == 36);
/// assert!(a < event_id(43, ProviderId::ZengaPay, "ref-0", 1), "sorted by transaction");
/// assert_ne!(a, event_id(42, ProviderId::ZengaPay, "ref-1", 3));
/// ```
pub fn event_id(transaction_id: i64, provider: ProviderId, provider_ref: &str, seq: i64) -> String {
    let digest =
        crate::domain::sha256_hex(format!("{provider}\u{1f}{provider_ref}\u{1f}{seq}").as_bytes());
    format!("evt_{transaction_id:012x}{}", &digest[..20])
}

/// The JSON body of an event, as delivered to the merchant (README "Events").
#[derive(serde::Serialize)]
struct EventPayload<'a> {
    data: EventData<'a>,
    id: &'a str,
    timestamp: String,
    r#type: &'a str,
}

/// `data` of [`EventPayload`]: the transaction as it stands after the transition.
#[derive(serde::Serialize)]
struct EventData<'a> {
    amount: Option<String>,
    amount_minor: Option<i64>,
    /// False when no authenticated source vouched for this status (a token-only callback
    /// from a channel without a status query).
    confirmed: bool,
    currency: Option<&'a str>,
    kind: &'a str,
    merchant_ref: Option<&'a str>,
    msisdn: Option<&'a str>,
    previous_status: Option<&'static str>,
    provider: &'a str,
    provider_ref: &'a str,
    reason: Option<&'a str>,
    receipt: Option<&'a str>,
    reported_status: Option<&'static str>,
    status: &'a str,
    transition_seq: i64,
    /// Values only an unauthenticated callback stated; never in the fields above.
    unconfirmed: Option<&'a serde_json::value::RawValue>,
}

/// The transaction's values an event states, as they stand after its transition.
pub(super) struct Snapshot<'a> {
    pub(super) provider: ProviderId,
    pub(super) provider_ref: &'a str,
    pub(super) kind: &'a str,
    pub(super) status: &'a str,
    pub(super) reason: Option<&'a str>,
    /// `transactions.amount_minor` and `currency`, each as stored (the event states each
    /// one, and the decimal amount when both are there).
    pub(super) amount_minor: Option<i64>,
    pub(super) currency: Option<&'a str>,
    pub(super) merchant_ref: Option<&'a str>,
    pub(super) msisdn: Option<&'a str>,
    pub(super) receipt: Option<&'a str>,
    /// `transactions.status_confirmed`.
    pub(super) confirmed: bool,
    /// `transactions.unconfirmed_details`.
    pub(super) unconfirmed: Option<&'a str>,
}

/// The transaction row's values an event states, as read back by [`emit`]; a [`Snapshot`]
/// borrows them.
struct StoredRow {
    provider: String,
    provider_ref: String,
    kind: String,
    status: String,
    reason: Option<String>,
    amount_minor: Option<i64>,
    currency: Option<String>,
    merchant_ref: Option<String>,
    msisdn: Option<String>,
    receipt: Option<String>,
    confirmed: bool,
    unconfirmed: Option<String>,
}

/// [`emit_snapshot`] for a transaction whose values are read back from its row (an
/// update: the row holds what the UPDATE's CASEs made of the old values and the plan).
pub(super) fn emit(
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
                    merchant_ref, msisdn, receipt, status_confirmed, unconfirmed_details
               FROM transactions WHERE id = ?1",
        )?
        .query_row([txn], |r| {
            Ok(StoredRow {
                provider: r.get(0)?,
                provider_ref: r.get(1)?,
                kind: r.get(2)?,
                status: r.get(3)?,
                reason: r.get(4)?,
                amount_minor: r.get(5)?,
                currency: r.get(6)?,
                merchant_ref: r.get(7)?,
                msisdn: r.get(8)?,
                receipt: r.get(9)?,
                confirmed: r.get(10)?,
                unconfirmed: r.get(11)?,
            })
        })?;
    let snapshot = Snapshot {
        provider: row
            .provider
            .parse()
            .map_err(|e: crate::domain::UnknownProvider| StoreError::Refused(e.to_string()))?,
        provider_ref: &row.provider_ref,
        kind: &row.kind,
        status: &row.status,
        reason: row.reason.as_deref(),
        amount_minor: row.amount_minor,
        currency: row.currency.as_deref(),
        merchant_ref: row.merchant_ref.as_deref(),
        msisdn: row.msisdn.as_deref(),
        receipt: row.receipt.as_deref(),
        confirmed: row.confirmed,
        unconfirmed: row.unconfirmed.as_deref(),
    };
    emit_snapshot(conn, txn, t, now_ms, previous, reported, &snapshot)
}

/// Writes the outbox row for a settled transition (or a conflict, when `reported` is
/// set) of transaction `txn`, whose values after the transition are `row`.
pub(super) fn emit_snapshot(
    conn: &Connection,
    txn: i64,
    t: Transition,
    now_ms: i64,
    previous: Option<Status>,
    reported: Option<Status>,
    row: &Snapshot<'_>,
) -> Result<String, StoreError> {
    let id = event_id(txn, row.provider, row.provider_ref, t.seq);
    let event_type = match reported {
        Some(_) => "transaction.conflict".to_string(),
        None => format!("transaction.{}", row.status.to_ascii_lowercase()),
    };
    // Written from a struct rather than a `serde_json::Value`: no map to build and free on
    // the writer. Fields are in alphabetical order, the order `json!` gave them before,
    // so the payload bytes did not change with it.
    let unconfirmed: Option<&serde_json::value::RawValue> =
        row.unconfirmed.and_then(|u| serde_json::from_str(u).ok());
    let payload = serde_json::to_string(&EventPayload {
        data: EventData {
            amount: match (row.amount_minor, row.currency) {
                (Some(minor), Some(currency)) => Some(
                    Money {
                        minor,
                        currency: currency.to_string(),
                    }
                    .decimal(),
                ),
                _ => None,
            },
            amount_minor: row.amount_minor,
            confirmed: row.confirmed,
            currency: row.currency,
            kind: row.kind,
            merchant_ref: row.merchant_ref,
            msisdn: row.msisdn,
            previous_status: previous.map(Status::as_str),
            provider: row.provider.as_str(),
            provider_ref: row.provider_ref,
            reason: row.reason,
            receipt: row.receipt,
            reported_status: reported.map(Status::as_str),
            status: row.status,
            transition_seq: t.seq,
            unconfirmed,
        },
        id: &id,
        timestamp: rfc3339(now_ms),
        r#type: &event_type,
    })
    .map_err(|e| StoreError::Refused(format!("event payload: {e}")))?;
    // The feed position (src/store/feed.rs says why it is one more than the largest) is
    // given by this INSERT: a trigger would make every insert keep a statement journal.
    // It is the table's key, so MAX(seq) reads the last row.
    conn.prepare_cached(
        "INSERT INTO events (id, transaction_id, transition_id, type, payload, status, attempts,
                             next_attempt_at_ms, created_at_ms, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6,
                 (SELECT COALESCE(MAX(seq), 0) + 1 FROM events))",
    )?
    .execute(params![id, txn, t.id, event_type, payload, now_ms])?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload is written from a struct; its bytes are those `serde_json::json!` gave
    /// (keys in alphabetical order, compact), so events written before and after read alike.
    #[test]
    fn the_payload_has_the_bytes_json_gave_it() {
        let unconfirmed = r#"{"amount":"10.00","amount_minor":1000,"currency":"KES","merchant_ref":null,"msisdn":"2547","receipt":null}"#;
        let ours = serde_json::to_string(&EventPayload {
            data: EventData {
                amount: Some("126600".into()),
                amount_minor: Some(126600),
                confirmed: false,
                currency: Some("UGX"),
                kind: "collection",
                merchant_ref: Some("order \"1\""),
                msisdn: None,
                previous_status: Some("PENDING"),
                provider: "zengapay",
                provider_ref: "ref-1",
                reason: None,
                receipt: Some("R1"),
                reported_status: None,
                status: "SUCCEEDED",
                transition_seq: 2,
                unconfirmed: serde_json::value::RawValue::from_string(unconfirmed.into())
                    .ok()
                    .as_deref(),
            },
            id: "evt_1",
            timestamp: "2026-11-30T00:00:00.000Z".into(),
            r#type: "transaction.succeeded",
        })
        .unwrap();
        let theirs = serde_json::json!({
            "id": "evt_1",
            "type": "transaction.succeeded",
            "timestamp": "2026-11-30T00:00:00.000Z",
            "data": {
                "provider": "zengapay",
                "provider_ref": "ref-1",
                "merchant_ref": "order \"1\"",
                "kind": "collection",
                "status": "SUCCEEDED",
                "previous_status": "PENDING",
                "reported_status": null,
                "reason": null,
                "amount": "126600",
                "amount_minor": 126600,
                "currency": "UGX",
                "msisdn": null,
                "receipt": "R1",
                "confirmed": false,
                "unconfirmed": serde_json::from_str::<serde_json::Value>(unconfirmed).unwrap(),
                "transition_seq": 2,
            }
        })
        .to_string();
        assert_eq!(ours, theirs);
    }
}
