//! Storing an authenticated callback: deduplicate, check the nonce, keep the raw body,
//! and apply what it reports, all inside one writer job (so one SQL transaction).

use super::payments::{self, Binding};
use super::transactions::{self, Applied, Schedule, Source, Trust};
use super::StoreError;
use crate::domain::{
    report_fingerprint, sha256_hex, CallbackEvent, ParseError, StatusReport, VerifiedCallback,
};
use rusqlite::{params, Connection, OptionalExtension};

/// An authenticated callback ready to store.
#[derive(Debug)]
pub struct NewCallback {
    /// The verified request.
    pub verified: VerifiedCallback,
    /// What parsing made of it; an error keeps the body raw and flags it for review.
    pub parsed: Result<CallbackEvent, ParseError>,
    /// Request headers as a JSON object, credentials already redacted.
    pub headers_json: String,
    /// Resolved client address.
    pub client_ip: Option<String>,
    /// When it arrived.
    pub received_at_ms: i64,
    /// How it was authenticated, and whether a status query could confirm what it says.
    pub trust: Trust,
    /// Polling plan if it creates a transaction.
    pub schedule: Schedule,
    /// Lowercase hex SHA-256 of the body. This and `report_sha256` are computed by the
    /// request task ([`NewCallback::hashes`]), so that the one writer only binds and steps.
    pub body_sha256: String,
    /// The parsed report's fingerprint (`domain::report_fingerprint`), if it has a report.
    pub report_sha256: Option<String>,
}

impl NewCallback {
    /// The body's SHA-256 and the report's fingerprint, as [`NewCallback`] carries them.
    pub fn hashes(
        verified: &VerifiedCallback,
        parsed: &Result<CallbackEvent, ParseError>,
    ) -> (String, Option<String>) {
        (
            sha256_hex(&verified.body),
            parsed
                .as_ref()
                .ok()
                .and_then(|e| e.report.as_ref())
                .map(report_fingerprint),
        )
    }
}

/// What storing a callback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// First delivery; its report (if any) was applied.
    Stored {
        /// `callbacks.id`.
        callback_id: i64,
        /// What the report did to its transaction.
        applied: Option<Applied>,
    },
    /// Seen before: only the delivery count changed.
    Duplicate {
        /// `callbacks.id` of the original.
        callback_id: i64,
        /// Deliveries so far, this one included.
        deliveries: i64,
    },
    /// Stored raw, flagged for review: authenticated but not understood.
    Flagged {
        /// `callbacks.id`.
        callback_id: i64,
    },
}

/// Stores one callback. Runs on the writer, inside the batch transaction.
pub fn ingest(conn: &Connection, cb: &NewCallback) -> Result<IngestOutcome, StoreError> {
    let v = &cb.verified;
    let provider = v.provider.as_str();
    let body_sha = cb.body_sha256.as_str();
    // Checked before anything is written, so that a replay changes nothing. `new_nonce`:
    // a nonce not seen before, to remember with this callback.
    let mut new_nonce = None;
    if let Some(nonce) = &v.nonce {
        let seen: Option<String> = conn
            .prepare_cached("SELECT body_sha256 FROM nonces WHERE provider = ?1 AND nonce = ?2")?
            .query_row(params![provider, nonce], |r| r.get(0))
            .optional()?;
        match seen {
            Some(h) if h != body_sha => return Err(StoreError::NonceReplay),
            Some(_) => {}
            None => new_nonce = Some(nonce.as_str()),
        }
    }
    let (kind, dedup_key, report, parse_error) = identity(cb, body_sha);
    let fingerprint = cb.report_sha256.as_deref();
    // The new callback (the common case) is one INSERT; the key is looked up only when
    // that INSERT meets a row already holding it.
    let insert = |dedup_key: &str, first: Option<i64>| -> Result<bool, StoreError> {
        let n = conn
            .prepare_cached(
                "INSERT INTO callbacks (provider, kind, dedup_key, auth, signed, body, body_sha256,
                     headers, client_ip, provider_ref, parse_error, deliveries, first_seen_at_ms,
                     last_seen_at_ms, duplicate_of, report_sha256)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12, ?12, ?13, ?14)
                 ON CONFLICT (provider, dedup_key) DO NOTHING",
            )?
            .execute(params![
                provider,
                kind,
                dedup_key,
                v.auth,
                v.signed,
                &v.body[..],
                body_sha,
                cb.headers_json,
                cb.client_ip,
                report.map(|r| r.provider_ref.as_str()),
                parse_error,
                cb.received_at_ms,
                first,
                fingerprint,
            ])?;
        Ok(n == 1)
    };
    let first = if insert(&dedup_key, None)? {
        None
    } else {
        // A delivery seen before only counts.
        let (id, sha, meaning): (i64, String, Option<String>) = conn
            .prepare_cached(
                "SELECT id, body_sha256, report_sha256 FROM callbacks WHERE provider = ?1 AND dedup_key = ?2",
            )?
            .query_row(params![provider, dedup_key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        if sha == body_sha {
            return duplicate(conn, cb, id, new_nonce, body_sha);
        }
        // Another body under a key already seen is kept under the key plus its own hash,
        // linked to the first, and a retry of it is counted against that row. If it says
        // something else (two different results for one payment, or one forged), the
        // payment is disputed; if only its bytes differ, it is applied like any report.
        let disputes = meaning.is_none() || meaning.as_deref() != fingerprint;
        let own_key = format!("{dedup_key}#sha256:{body_sha}");
        if !insert(&own_key, Some(id))? {
            let again: i64 = conn
                .prepare_cached("SELECT id FROM callbacks WHERE provider = ?1 AND dedup_key = ?2")?
                .query_row(params![provider, own_key], |r| r.get(0))?;
            return duplicate(conn, cb, again, new_nonce, body_sha);
        }
        Some((id, disputes))
    };
    let callback_id = conn.last_insert_rowid();
    if let Some(nonce) = new_nonce {
        record_nonce(conn, cb, nonce, body_sha, callback_id)?;
    }
    if parse_error.is_some() {
        return Ok(IngestOutcome::Flagged { callback_id });
    }
    let Some(report) = report else {
        return Ok(IngestOutcome::Stored {
            callback_id,
            applied: None,
        });
    };
    let applied = Some(apply_report(conn, cb, callback_id, report, first)?);
    if let Some(a) = &applied {
        conn.prepare_cached("UPDATE callbacks SET transaction_id = ?2 WHERE id = ?1")?
            .execute(params![callback_id, a.transaction_id])?;
    }
    Ok(IngestOutcome::Stored {
        callback_id,
        applied,
    })
}

/// What identifies a callback: its kind, its idempotency key, what it reports (if it was
/// understood) and why not (if it was not).
fn identity<'a>(
    cb: &'a NewCallback,
    body_sha: &str,
) -> (&'a str, String, Option<&'a StatusReport>, Option<String>) {
    match &cb.parsed {
        // On a minted URL the payment is part of the key: the provider retries to the same
        // URL, and the same body posted to another payment's URL is not a retry but an
        // attempt to bind its reference twice.
        Ok(ev) => (
            ev.kind.as_str(),
            match &cb.verified.payment {
                Some(payment) => format!("{}@pay-{payment}", ev.dedup_key),
                None => ev.dedup_key.clone(),
            },
            ev.report.as_ref(),
            None,
        ),
        // Only the body identifies a retry, plus where it came in: Daraja posts its C2B
        // validation and its confirmation with the same body to two routes, and the
        // second (money moved) must not pass for a retry of the first. The token's
        // identifier (never the token) keeps Tujenge's only correlation.
        Err(e) => (
            "unparsed",
            match (
                cb.verified.sub_route.as_deref(),
                cb.verified.path_token.as_deref(),
            ) {
                (None, None) => format!("sha256:{body_sha}"),
                (route, token) => format!(
                    "{}:{}:sha256:{body_sha}",
                    token.unwrap_or("-"),
                    route.unwrap_or("-")
                ),
            },
            None,
            Some(e.to_string()),
        ),
    }
}

/// Applies what a stored callback reports to its payment, or disputes the payment when
/// the callback contradicts it (`first`: the callback whose key it shares, and whether
/// they say different things).
fn apply_report(
    conn: &Connection,
    cb: &NewCallback,
    callback_id: i64,
    report: &StatusReport,
    first: Option<(i64, bool)>,
) -> Result<Applied, StoreError> {
    let v = &cb.verified;
    let source = Source::Callback(callback_id);
    // Why this report disputes its payment instead of being applied, if it does.
    let mut dispute = first.filter(|(_, differs)| *differs).map(|(first, _)| {
        format!(
            "{}: callback {callback_id} has the idempotency key of callback {first} with another body",
            crate::state::plan::CALLBACK_MISMATCH
        )
    });
    // A callback on a minted URL binds its reference to the minted payment the first time
    // (registering the payment's expected amount and merchant reference on it), and
    // disputes a second, different binding.
    if let Some(payment) = &v.payment {
        let binding = payments::bind(
            conn,
            v.provider,
            payment,
            &report.provider_ref,
            report.kind,
            cb.received_at_ms,
        )?;
        match binding {
            // A registration refused (another amount registered for the reference) is
            // refused before it writes: a dispute, not an error that would undo the batch.
            Binding::New(registration) => {
                match transactions::register(conn, &registration, cb.schedule, cb.received_at_ms) {
                    Ok(_) => {}
                    Err(StoreError::Refused(why)) => {
                        dispute = Some(format!("MINTED_URL_REGISTRATION: {why}"));
                    }
                    Err(e) => return Err(e),
                }
            }
            Binding::Conflict(why) => dispute = Some(why),
            Binding::Same | Binding::Unknown => {}
        }
    }
    let apply = || {
        transactions::apply(
            conn,
            v.provider,
            report,
            cb.trust,
            source,
            cb.schedule,
            cb.received_at_ms,
        )
    };
    let dispute_it = |why: String| {
        transactions::dispute(
            conn,
            v.provider,
            &report.provider_ref,
            why,
            cb.trust.channel,
            source,
            cb.received_at_ms,
        )
    };
    let applied = match dispute {
        None => apply()?,
        Some(why) => match dispute_it(why.clone()) {
            // The payment is not known yet: what the body says is a report like any other.
            Err(StoreError::NotFound(_)) if v.payment.is_none() => apply()?,
            // A reference payhook does not know yet, on a minted URL that disputes it
            // (bound to another one, or minted for another kind): recorded PENDING and put in
            // review, so that no payment goes unnoticed; what the body says stays in the
            // callback row for the reviewer, and settles nothing.
            Err(StoreError::NotFound(_)) => {
                let known = transactions::Registration {
                    provider: v.provider,
                    provider_ref: report.provider_ref.clone(),
                    kind: report.kind,
                    expected: None,
                    merchant_ref: None,
                };
                transactions::register(conn, &known, cb.schedule, cb.received_at_ms)?;
                dispute_it(why)?
            }
            other => other?,
        },
    };
    Ok(applied)
}

/// Counts another delivery of callback `id`.
fn duplicate(
    conn: &Connection,
    cb: &NewCallback,
    callback_id: i64,
    new_nonce: Option<&str>,
    body_sha: &str,
) -> Result<IngestOutcome, StoreError> {
    let deliveries: i64 = conn
        .prepare_cached(
            "UPDATE callbacks SET deliveries = deliveries + 1, last_seen_at_ms = ?2
              WHERE id = ?1 RETURNING deliveries",
        )?
        .query_row(params![callback_id, cb.received_at_ms], |r| r.get(0))?;
    if let Some(nonce) = new_nonce {
        record_nonce(conn, cb, nonce, body_sha, callback_id)?;
    }
    Ok(IngestOutcome::Duplicate {
        callback_id,
        deliveries,
    })
}

/// Remembers a BitPesa nonce with the body it first came with (a later, different body
/// under the same nonce is a replay).
fn record_nonce(
    conn: &Connection,
    cb: &NewCallback,
    nonce: &str,
    body_sha: &str,
    callback_id: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO nonces (provider, nonce, body_sha256, callback_id, seen_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        cb.verified.provider.as_str(),
        nonce,
        body_sha,
        callback_id,
        cb.received_at_ms
    ])?;
    Ok(())
}
