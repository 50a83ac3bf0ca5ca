//! ZengaPay (Uganda mobile money): `X-ZENGAPAY-SIGNATURE` webhooks.
//!
//! The documentation contradicts itself about what is signed, so `verify` accepts
//! any of the candidate inputs, all keyed with the account's secret hash: the raw body,
//! and `transactionReference + msisdn + amount` with the amount as sent, to two decimals
//! (what ZengaPay's own plugin signs since 2022), or as an integer. Accepting several does
//! not help a forger: every candidate needs the secret. Which one matched is stored in
//! `callbacks.auth` so that an account can later be pinned to one.
//!
//! Status: `GET /v1/collections/{ref}` or `/v1/transfers/{ref}` with the API token as a
//! bearer. A 404 soon after initiation means "not yet", never FAILED.
//!
//! Sweep: `GET /v1/account/statement?start=…&end=…&designation=TRANSACTION&page=…` lists
//! the account's transactions (ZengaPay's "Account Statement" API); the reconciler
//! records the ones payhook does not know, so a payment whose callback was lost and that
//! nobody registered is still found.

pub mod config;

use super::sample::{zengapay_signature, Sample, SampleCallback, SampleError, SampleStatus};
use super::{
    get_json, header_str, json_reply, path_segment, verify_hex_mac, Ack, CallbackEvent, ParseError,
    PendingTxn, PollError, PollInputs, Provider, ProviderId, RawCallback, StatusReport,
    StatusRequest, SweepPage, TxnKind, VerifiedCallback, VerifyError,
};
use crate::money::{decimal_text, Money};
use crate::secret::Secret;
use crate::state::Status;
pub use config::{ZengaPayConfig, DEFAULT_SWEEP_INTERVAL, DEFAULT_SWEEP_LOOKBACK};
use hmac::{Hmac, Mac};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use sha2::Sha256;

/// Header carrying the hex HMAC-SHA256.
pub const SIGNATURE_HEADER: &str = "x-zengapay-signature";

/// The signed-input variants, as recorded in `callbacks.auth`.
pub mod variant {
    /// HMAC over the raw body.
    pub const RAW_BODY: &str = "hmac-sha256:raw-body";
    /// HMAC over reference + msisdn + amount exactly as sent.
    pub const FIELDS_AS_SENT: &str = "hmac-sha256:fields-amount-as-sent";
    /// HMAC over reference + msisdn + amount with two decimals (`126600.00`).
    pub const FIELDS_2DP: &str = "hmac-sha256:fields-amount-2dp";
    /// HMAC over reference + msisdn + integer amount (`126600`).
    pub const FIELDS_INTEGER: &str = "hmac-sha256:fields-amount-integer";
}

/// The ZengaPay provider.
pub struct ZengaPay {
    secret_hash: Secret,
    api_token: Option<Secret>,
    base_url: String,
}

impl ZengaPay {
    /// From `[providers.zengapay]`.
    pub fn new(cfg: &ZengaPayConfig) -> Self {
        ZengaPay {
            secret_hash: cfg.secret_hash.clone(),
            api_token: cfg.api_token.clone(),
            base_url: cfg.poll.base_url.clone(),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        Hmac::<Sha256>::new_from_slice(self.secret_hash.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }
}

#[derive(Deserialize)]
struct Webhook<'a> {
    event: Option<String>,
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Data<'a> {
    transactionStatus: Option<String>,
    transactionReference: Option<String>,
    // The docs' sample and the status API disagree on this name: accept both.
    externalTransactionReference: Option<String>,
    transactionExternalReference: Option<String>,
    MNOTransactionReferenceId: Option<String>,
    currencyCode: Option<String>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    msisdn: Option<String>,
}

/// The candidate signed strings for the field-concatenation variants, deduplicated.
fn field_candidates(reference: &str, msisdn: &str, amount: &str) -> Vec<(&'static str, String)> {
    let mut out = vec![(
        variant::FIELDS_AS_SENT,
        format!("{reference}{msisdn}{amount}"),
    )];
    let (int_part, frac) = amount.split_once('.').unwrap_or((amount, ""));
    let int_ok = !int_part.is_empty() && int_part.bytes().all(|b| b.is_ascii_digit());
    if int_ok && frac.bytes().all(|b| b.is_ascii_digit()) {
        // Only re-format exactly: "126600" → "126600.00"; "12.5" → "12.50"; never round.
        if frac.len() <= 2 {
            out.push((
                variant::FIELDS_2DP,
                format!("{reference}{msisdn}{int_part}.{frac:0<2}"),
            ));
        }
        if frac.bytes().all(|b| b == b'0') {
            out.push((
                variant::FIELDS_INTEGER,
                format!("{reference}{msisdn}{int_part}"),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|(_, s)| seen.insert(s.clone()));
    out
}

/// A UUID in its 8-4-4-4-12 hex form, as ZengaPay's `transactionReference` is.
fn is_uuid(reference: &str) -> bool {
    let groups: Vec<&str> = reference.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A Ugandan MSISDN in full international form without `+`: `256` and nine digits.
fn is_full_msisdn(msisdn: &str) -> bool {
    msisdn.len() == 12 && msisdn.starts_with("256") && msisdn.bytes().all(|b| b.is_ascii_digit())
}

/// An amount written as plain digits with an optional fraction: no sign, no exponent, no
/// leading zero that would let digits of the MSISDN pass for part of it.
fn is_plain_amount(amount: &str) -> bool {
    let (int_part, frac) = amount.split_once('.').unwrap_or((amount, ""));
    !int_part.is_empty()
        && int_part.bytes().all(|b| b.is_ascii_digit())
        && (int_part == "0" || !int_part.starts_with('0'))
        && frac.bytes().all(|b| b.is_ascii_digit())
}

impl Provider for ZengaPay {
    fn id(&self) -> ProviderId {
        ProviderId::ZengaPay
    }

    fn verify(&self, req: &RawCallback<'_>) -> Result<VerifiedCallback, VerifyError> {
        let sig = header_str(req.headers, SIGNATURE_HEADER)
            .ok_or(VerifyError::MissingHeader("X-ZENGAPAY-SIGNATURE"))?;
        let body = req.body;
        // Only the raw-body variant proves the whole body. The field variants sign the
        // reference, the msisdn and the amount, nothing else: the same signature would
        // pass on a body whose status, event, currency or merchant reference were changed
        // (a PENDING callback's signature fits the SUCCEEDED one of the same payment). So
        // they prove who sent it, not what it says, and count as unsigned: a success they
        // report waits for a status query, like a token-only callback's.
        let verified = |name: &str| {
            let mut v = VerifiedCallback::new(
                ProviderId::ZengaPay,
                name,
                name == variant::RAW_BODY,
                body.clone(),
            );
            if name != variant::RAW_BODY {
                v.coverage = super::Coverage::Fields;
            }
            Ok(v)
        };
        let mut mac = self.mac();
        mac.update(body);
        if verify_hex_mac(mac, sig) {
            return verified(variant::RAW_BODY);
        }
        // The other candidates sign fields of the body, so they must be read first. This
        // reads three strings and nothing else; the body is parsed for real only once
        // verified.
        let Ok(Webhook { data: Some(d), .. }) = serde_json::from_slice::<Webhook>(body) else {
            return Err(VerifyError::SignatureMismatch);
        };
        let (Some(reference), Some(msisdn), Some(Ok(Some(amount)))) = (
            d.transactionReference.as_deref(),
            d.msisdn.as_deref(),
            d.amount.map(decimal_text),
        ) else {
            return Err(VerifyError::SignatureMismatch);
        };
        // The signed string is a plain concatenation, so characters can move between
        // the fields without changing it (`…329361` + `126600` is also `…32936` +
        // `1126600`; a reference can swallow the MSISDN's first digits). Only fields of
        // fixed shape pin the boundaries: a UUID reference (what ZengaPay issues), a full
        // Ugandan MSISDN (256 and nine digits), a plain amount. With anything else the
        // signature does not say which amount was signed, and is refused.
        if !is_uuid(reference) || !is_full_msisdn(msisdn) || !is_plain_amount(&amount) {
            return Err(VerifyError::SignatureMismatch);
        }
        for (name, input) in field_candidates(reference, msisdn, &amount) {
            let mut mac = self.mac();
            mac.update(input.as_bytes());
            if verify_hex_mac(mac, sig) {
                return verified(name);
            }
        }
        Err(VerifyError::SignatureMismatch)
    }

    fn parse_callback(&self, cb: &VerifiedCallback) -> Result<CallbackEvent, ParseError> {
        let w: Webhook = serde_json::from_slice(&cb.body)?;
        let event = w
            .event
            .filter(|e| !e.is_empty())
            .ok_or(ParseError::Missing("event"))?;
        let d = w.data.ok_or(ParseError::Missing("data"))?;
        let reference = d
            .transactionReference
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .ok_or(ParseError::Missing("data.transactionReference"))?;
        let kind = match event.split('.').next() {
            Some("collection") => TxnKind::Collection,
            Some("transfer") => TxnKind::Transfer,
            _ => TxnKind::Unknown,
        };
        // The status field is authoritative when present; the event name otherwise.
        let status = match d.transactionStatus.as_deref() {
            Some(s) => parse_status(s).ok_or_else(|| ParseError::Invalid {
                field: "data.transactionStatus",
                why: format!("unknown status {s:?}"),
            })?,
            None if event.ends_with(".success") => Status::Succeeded,
            None if event.ends_with(".failed") => Status::Failed,
            None => return Err(ParseError::Missing("data.transactionStatus")),
        };
        let money = match (d.amount.map(decimal_text), d.currencyCode.as_deref()) {
            (Some(Ok(Some(amount))), Some(code)) => Some(
                Money::parse(&amount, currency_of(code)).map_err(|e| ParseError::Invalid {
                    field: "data.amount",
                    why: e.to_string(),
                })?,
            ),
            (Some(Err(e)), _) => {
                return Err(ParseError::Invalid {
                    field: "data.amount",
                    why: e.to_string(),
                })
            }
            _ => None,
        };
        let mut report = StatusReport::new(reference.clone(), kind, status);
        report.provider_status = d.transactionStatus.clone().or(Some(event.clone()));
        report.reason = (status == Status::Failed).then(|| "PROVIDER_FAILED".to_string());
        report.money = money;
        report.merchant_ref = d
            .transactionExternalReference
            .or(d.externalTransactionReference);
        report.msisdn = d.msisdn;
        report.receipt = d.MNOTransactionReferenceId;
        Ok(CallbackEvent {
            dedup_key: format!("{event}:{reference}"),
            kind: event,
            report: Some(report),
        })
    }

    fn ack(&self, _event: Option<&CallbackEvent>) -> Ack {
        // Exactly 200 is the safe answer; the body is ignored.
        Ack::default()
    }

    fn confirms(&self, _kind: TxnKind) -> bool {
        self.api_token.is_some()
    }

    fn status_request(
        &self,
        txn: &PendingTxn,
        _inputs: PollInputs<'_>,
    ) -> Option<Result<StatusRequest, PollError>> {
        let token = self.api_token.as_ref()?;
        // One endpoint per kind; a transaction of unknown kind is most likely a
        // collection, the common case, and a wrong guess only yields a 404 (a failed poll).
        let kind = match txn.kind {
            TxnKind::Transfer => "transfers",
            _ => "collections",
        };
        let url = format!(
            "{}/v1/{kind}/{}",
            self.base_url,
            path_segment(&txn.provider_ref)
        );
        let bearer = format!("Bearer {}", token.expose());
        Some(get_json(&url, &[("authorization", &bearer)]))
    }

    fn sweep_request(
        &self,
        from_ms: i64,
        to_ms: i64,
        page: u32,
    ) -> Option<Result<StatusRequest, PollError>> {
        let token = self.api_token.as_ref()?;
        let url = format!(
            "{}/v1/account/statement?start={}&end={}&designation=TRANSACTION&limit={STATEMENT_PAGE_SIZE}&page={page}",
            self.base_url,
            statement_time(from_ms).replace(' ', "%20"),
            statement_time(to_ms).replace(' ', "%20"),
        );
        let bearer = format!("Bearer {}", token.expose());
        Some(get_json(&url, &[("authorization", &bearer)]))
    }

    fn parse_sweep_reply(&self, status: StatusCode, body: &[u8]) -> Result<SweepPage, PollError> {
        let reply: StatementReply = json_reply(status, body, PollError::from_status)?;
        let st = reply.statement.ok_or(ParseError::Missing("statement"))?;
        let mut page = SweepPage::default();
        for entry in st.data.unwrap_or_default() {
            let is_charge = entry
                .transactionEntryDesignation
                .as_deref()
                .is_some_and(|d| !d.eq_ignore_ascii_case("TRANSACTION"));
            match statement_report(entry) {
                Some(r) => page.reports.push(r),
                None if is_charge => {}
                None => page.skipped += 1,
            }
        }
        page.next_page = match (st.current_page, st.last_page) {
            (Some(cur), Some(last)) if cur < last => Some(cur + 1),
            _ => None,
        };
        Ok(page)
    }

    fn parse_status_reply(
        &self,
        txn: &PendingTxn,
        status: StatusCode,
        body: &[u8],
    ) -> Result<StatusReport, PollError> {
        let reply: StatusReply = json_reply(status, body, PollError::from_status)?;
        let d = reply.data.ok_or(ParseError::Missing("data"))?;
        if let Some(r) = d.transactionReference.as_deref() {
            if r.trim() != txn.provider_ref {
                return Err(PollError::Malformed(format!(
                    "answer is about {r:?}, not {:?}",
                    txn.provider_ref
                )));
            }
        }
        let word = d
            .transactionStatus
            .ok_or(ParseError::Missing("data.transactionStatus"))?;
        let normalised = parse_status(&word).ok_or_else(|| ParseError::Invalid {
            field: "data.transactionStatus",
            why: format!("unknown status {word:?}"),
        })?;
        let mut report = StatusReport::new(txn.provider_ref.clone(), txn.kind, normalised);
        report.reason = (normalised == Status::Failed).then(|| "PROVIDER_FAILED".to_string());
        report.provider_status = Some(word);
        // `amount` is a number here, a string in webhooks: decimal_text reads both.
        if let (Some(amount), Some(code)) = (d.amount, d.currencyCode.as_deref()) {
            let invalid = |why: String| ParseError::Invalid {
                field: "data.amount",
                why,
            };
            if let Some(text) = decimal_text(amount).map_err(|e| invalid(e.to_string()))? {
                report.money = Some(
                    Money::parse(&text, currency_of(code)).map_err(|e| invalid(e.to_string()))?,
                );
            }
        }
        report.merchant_ref = d.transactionExternalReference;
        report.msisdn = d.msisdn;
        report.receipt = d.MNOTransactionReferenceId;
        Ok(report)
    }
}

/// Entries read per statement page.
pub const STATEMENT_PAGE_SIZE: u32 = 100;

/// A statement date (`YYYY-MM-DD HH:MM:SS`) in Ugandan time (EAT, UTC+3), the zone of
/// ZengaPay's own timestamps; the sweep's lookback leaves room should it be UTC.
///
/// ```
/// assert_eq!(payhook::providers::zengapay::statement_time(0), "1970-01-01 03:00:00");
/// ```
pub fn statement_time(ms: i64) -> String {
    let text = crate::clock::rfc3339(ms.saturating_add(3 * 3_600_000));
    text.chars()
        .take(19)
        .map(|c| if c == 'T' { ' ' } else { c })
        .collect()
}

/// `GET /v1/account/statement` answer: a Laravel-style page (`current_page`,
/// `last_page`, `data`).
#[derive(Deserialize)]
struct StatementReply<'a> {
    #[serde(borrow)]
    statement: Option<Statement<'a>>,
}

#[derive(Deserialize)]
struct Statement<'a> {
    current_page: Option<u32>,
    last_page: Option<u32>,
    #[serde(borrow)]
    data: Option<Vec<StatementEntry<'a>>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct StatementEntry<'a> {
    transactionReference: Option<String>,
    transactionStatus: Option<String>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    currencyCode: Option<String>,
    msisdn: Option<String>,
    MNOTransactionReferenceId: Option<String>,
    transactionExternalReference: Option<String>,
    transactionEntryGeneralType: Option<String>,
    transactionEntryDesignation: Option<String>,
    transactionEntrySpecificType: Option<String>,
}

/// One statement entry as a report, or `None` for an entry that is not a payment (a
/// charge) or cannot be read.
fn statement_report(e: StatementEntry<'_>) -> Option<StatusReport> {
    if e.transactionEntryDesignation
        .as_deref()
        .is_some_and(|d| !d.eq_ignore_ascii_case("TRANSACTION"))
    {
        return None;
    }
    let reference = e
        .transactionReference
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())?;
    let word = e.transactionStatus?;
    let status = parse_status(&word)?;
    let specific = e.transactionEntrySpecificType.unwrap_or_default();
    let general = e.transactionEntryGeneralType.unwrap_or_default();
    let kind = if specific.starts_with("INBOUND") || general.eq_ignore_ascii_case("CREDIT") {
        TxnKind::Collection
    } else if specific.starts_with("OUTBOUND") || general.eq_ignore_ascii_case("DEBIT") {
        TxnKind::Transfer
    } else {
        TxnKind::Unknown
    };
    let mut r = StatusReport::new(reference, kind, status);
    r.provider_status = Some(word);
    r.money = match (e.amount.map(decimal_text), e.currencyCode.as_deref()) {
        (Some(Ok(Some(a))), Some(code)) => Money::parse(&a, currency_of(code)).ok(),
        _ => None,
    };
    r.merchant_ref = e.transactionExternalReference;
    r.msisdn = e.msisdn;
    r.receipt = e.MNOTransactionReferenceId;
    Some(r)
}

/// `GET /v1/collections/{ref}` answer.
#[derive(Deserialize)]
struct StatusReply<'a> {
    #[serde(borrow)]
    data: Option<StatusData<'a>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct StatusData<'a> {
    transactionReference: Option<String>,
    transactionStatus: Option<String>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    currencyCode: Option<String>,
    transactionExternalReference: Option<String>,
    MNOTransactionReferenceId: Option<String>,
    msisdn: Option<String>,
}

/// Maps ZengaPay's `transactionStatus`.
pub fn parse_status(s: &str) -> Option<Status> {
    match s.trim().to_ascii_uppercase().as_str() {
        "PENDING" => Some(Status::Pending),
        "INDETERMINATE" => Some(Status::Indeterminate),
        "SUCCEEDED" | "SUCCESSFUL" | "SUCCESS" => Some(Status::Succeeded),
        "FAILED" => Some(Status::Failed),
        _ => None,
    }
}

/// `UGX-MTNMM` → `UGX`: ZengaPay's currency codes carry the network after a dash.
pub fn currency_of(code: &str) -> &str {
    code.split('-').next().unwrap_or(code)
}

/// A ZengaPay sample.
pub(crate) fn sample(z: &ZengaPayConfig, ctx: &Sample<'_>) -> Result<SampleCallback, SampleError> {
    let (spec, r) = (ctx.spec, &ctx.spec.reference);
    let (event, status) = match spec.status {
        SampleStatus::Succeeded => ("collection.success", "SUCCEEDED"),
        SampleStatus::Failed => ("collection.failed", "FAILED"),
        SampleStatus::Pending => ("collection.pending", "PENDING"),
    };
    let body = json!({"event": event, "data": {
        "transactionStatus": status, "transactionReference": r,
        "transactionExternalReference": format!("order-{r}"),
        "MNOTransactionReferenceId": "42026012031", "currencyCode": "UGX-MTNMM",
        "amount": ctx.amount, "msisdn": "256772000001", "channel": "API",
        "transactionType": "INBOUND_MSISDN_CREDIT",
        "transactionInitiationDate": "2026-11-23 13:16:43",
        "transactionCompletionDate": "2026-11-23 13:16:55"}})
    .to_string()
    .into_bytes();
    let sig = zengapay_signature(z.secret_hash.expose(), &body);
    Ok(SampleCallback {
        path: "/callbacks/zengapay".into(),
        headers: vec![("X-ZENGAPAY-SIGNATURE".into(), sig)],
        body,
        provider_ref: r.clone(),
        signed_as: "HMAC-SHA256 of the raw body, hex, in X-ZENGAPAY-SIGNATURE".into(),
    })
}

#[cfg(test)]
mod tests;
