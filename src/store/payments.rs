//! Minted payments (`minted_payments`): the payments a per-payment callback URL was
//! minted for, and the provider reference each one is bound to.

use super::transactions::{self, Registered, Registration, Schedule};
use super::StoreError;
use crate::domain::{ProviderId, TxnKind};
use rusqlite::{params, Connection, OptionalExtension};

/// A payment a URL was just minted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedPayment {
    /// The id in the URL.
    pub payment_id: String,
    /// What the merchant registers with it. `provider_ref` is the payment id where the
    /// provider has no reference of its own (Tujenge), and then the transaction is
    /// registered at once; otherwise it is empty until the first callback binds one.
    pub registration: Registration,
}

/// Records a minted payment, and registers its transaction when its reference is known
/// already (Tujenge), so that it is reconciled even if no callback ever comes.
pub fn mint(
    conn: &Connection,
    m: &MintedPayment,
    schedule: Schedule,
    now_ms: i64,
) -> Result<Option<Registered>, StoreError> {
    let r = &m.registration;
    let bound = (!r.provider_ref.is_empty()).then_some(r.provider_ref.as_str());
    conn.prepare_cached(
        "INSERT INTO minted_payments (payment_id, provider, kind, merchant_ref,
             expected_amount_minor, expected_currency, provider_ref, created_at_ms, bound_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, CASE WHEN ?7 IS NULL THEN NULL ELSE ?8 END)",
    )?
    .execute(params![
        m.payment_id,
        r.provider.as_str(),
        r.kind.as_str(),
        r.merchant_ref,
        r.expected.as_ref().map(|e| e.minor),
        r.expected.as_ref().map(|e| e.currency.as_str()),
        bound,
        now_ms,
    ])?;
    match bound {
        Some(_) => Ok(Some(transactions::register(conn, r, schedule, now_ms)?)),
        None => Ok(None),
    }
}

/// What binding a callback's reference to its minted payment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// No such payment in this store (minted elsewhere): bound now, with nothing to
    /// register.
    Unknown,
    /// Already bound to this reference.
    Same,
    /// Bound now: the payment's registration, to apply to the reference's transaction.
    New(Registration),
    /// The payment is bound to another reference, or the reference to another payment.
    Conflict(String),
}

/// Binds `provider_ref` (from a callback on the minted URL of `payment_id`) to that
/// payment, the first time; refuses a second binding.
pub fn bind(
    conn: &Connection,
    provider: ProviderId,
    payment_id: &str,
    provider_ref: &str,
    reported_kind: TxnKind,
    now_ms: i64,
) -> Result<Binding, StoreError> {
    // (bound reference, kind, merchant reference, expected minor units, currency)
    type Row = (
        Option<String>,
        String,
        Option<String>,
        Option<i64>,
        Option<String>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT provider_ref, kind, merchant_ref, expected_amount_minor, expected_currency
               FROM minted_payments WHERE payment_id = ?1 AND provider = ?2",
        )?
        .query_row(params![payment_id, provider.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let other: Option<String> = conn
        .prepare_cached(
            "SELECT payment_id FROM minted_payments WHERE provider = ?1 AND provider_ref = ?2",
        )?
        .query_row(params![provider.as_str(), provider_ref], |r| r.get(0))
        .optional()?;
    let Some((bound, kind, merchant_ref, minor, currency)) = row else {
        // Minted against another store (the tag proves payhook minted it): bound on first
        // sight all the same, so that the URL still proves one payment.
        if let Some(other) = other {
            return Ok(Binding::Conflict(format!(
                "MINTED_URL_REBIND: {provider_ref} is bound to payment {other}; a callback on the URL of payment {payment_id} names it"
            )));
        }
        conn.prepare_cached(
            "INSERT INTO minted_payments (payment_id, provider, kind, provider_ref, created_at_ms,
                                          bound_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )?
        .execute(params![
            payment_id,
            provider.as_str(),
            reported_kind.as_str(),
            provider_ref,
            now_ms
        ])?;
        return Ok(Binding::Unknown);
    };
    let kind: TxnKind = kind.parse().unwrap_or(TxnKind::Unknown);
    if kind != TxnKind::Unknown && reported_kind != TxnKind::Unknown && kind != reported_kind {
        return Ok(Binding::Conflict(format!(
            "MINTED_URL_KIND: payment {payment_id} was minted for a {} payment; a callback on its URL reports a {} one",
            kind.as_str(),
            reported_kind.as_str()
        )));
    }
    match bound {
        Some(b) if b == provider_ref => return Ok(Binding::Same),
        Some(b) => {
            return Ok(Binding::Conflict(format!(
                "MINTED_URL_REBIND: payment {payment_id} is bound to {b}; a callback on its URL names {provider_ref}"
            )))
        }
        None => {}
    }
    if let Some(other) = other {
        return Ok(Binding::Conflict(format!(
            "MINTED_URL_REBIND: {provider_ref} is bound to payment {other}; a callback on the URL of payment {payment_id} names it"
        )));
    }
    conn.prepare_cached(
        "UPDATE minted_payments SET provider_ref = ?2, bound_at_ms = ?3 WHERE payment_id = ?1",
    )?
    .execute(params![payment_id, provider_ref, now_ms])?;
    let expected = match (minor, currency) {
        (Some(minor), Some(currency)) => Some(crate::money::Money { minor, currency }),
        _ => None,
    };
    Ok(Binding::New(Registration {
        provider,
        provider_ref: provider_ref.to_string(),
        kind,
        expected,
        merchant_ref,
    }))
}
