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
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;

    #[test]
    fn only_a_decimal_amount_is_re_formatted_for_the_field_variants() {
        let variants = |amount: &str| -> Vec<&'static str> {
            field_candidates("r", "256700000001", amount)
                .into_iter()
                .map(|(v, _)| v)
                .collect()
        };
        assert_eq!(
            variants("12.5"),
            [variant::FIELDS_AS_SENT, variant::FIELDS_2DP]
        );
        // Each signed string once: "126600" is already the integer form...
        assert_eq!(
            variants("126600"),
            [variant::FIELDS_AS_SENT, variant::FIELDS_2DP]
        );
        // ...and "126600.00" already the two-decimal one.
        assert_eq!(
            variants("126600.00"),
            [variant::FIELDS_AS_SENT, variant::FIELDS_INTEGER]
        );
        // Not a decimal number: signed only as sent, never re-formatted.
        for amount in ["abc", ".5", "", "12.x", "1a.00"] {
            assert_eq!(variants(amount), [variant::FIELDS_AS_SENT], "{amount:?}");
        }
    }

    const REF: &str = "566a4a89-4024-584c-b1f5-8c59aff0d334";
    const BODY: &str = r#"{"event":"collection.success","data":{"transactionStatus":"SUCCEEDED","transactionReference":"566a4a89-4024-584c-b1f5-8c59aff0d334","transactionExternalReference":"20080513164357","MNOTransactionReferenceId":"42026012031","currencyCode":"UGX-ATLMM","amount":"126600","msisdn":"256755329361","channel":"API","transactionType":"INBOUND_MSISDN_CREDIT","transactionInitiationDate":"2020-08-05 13:16:43","transactionCompletionDate":"2020-08-05 13:16:55"}}"#;

    fn provider() -> ZengaPay {
        ZengaPay {
            secret_hash: Secret::new("SECRET_HASH"),
            api_token: Some(Secret::new("TOKEN")),
            base_url: "https://api.sandbox.zengapay.com".into(),
        }
    }

    fn pending(kind: TxnKind) -> PendingTxn {
        PendingTxn {
            id: 1,
            provider: ProviderId::ZengaPay,
            provider_ref: REF.into(),
            kind,
            status: Status::Pending,
            unconfirmed: false,
            poll_attempts: 0,
            created_at_ms: 0,
            deadline_at_ms: None,
        }
    }

    const INPUTS: PollInputs<'static> = PollInputs {
        now_ms: 0,
        nonce: "n",
        access_token: None,
    };

    #[test]
    fn status_requests_use_the_kind_endpoint_and_the_bearer_token() {
        let p = provider();
        let req = p
            .status_request(&pending(TxnKind::Transfer), INPUTS)
            .unwrap()
            .unwrap();
        assert_eq!(req.method(), http::Method::GET);
        assert_eq!(
            req.uri().to_string(),
            format!("https://api.sandbox.zengapay.com/v1/transfers/{REF}")
        );
        assert_eq!(req.headers()["authorization"], "Bearer TOKEN");
        let req = p
            .status_request(&pending(TxnKind::Unknown), INPUTS)
            .unwrap()
            .unwrap();
        assert!(req.uri().path().starts_with("/v1/collections/"));
        let no_token = ZengaPay {
            api_token: None,
            ..provider()
        };
        assert!(no_token
            .status_request(&pending(TxnKind::Collection), INPUTS)
            .is_none());
    }

    #[test]
    fn the_documented_statement_reads_payments_and_leaves_charges_out() {
        // The "Account Statement" sample of ZengaPay's API documentation, trimmed to one
        // payment and one charge (whose amount 2152.2 is not even representable in UGX).
        let body = r#"{"code":200,"status":"OK","statement":{"current_page":1,"data":[
            {"transactionSystemId":"ZPY200806176137TX","transactionReference":"9122712b-6f0c-54ff-ab53-515b8d29fae4","transactionStatus":"SUCCEEDED","amount":107610,"msisdn":"256784553576","channel":"API","currencyCode":"UGX-MTNMM","transactionExternalReference":"20080620471018","transactionEntryGeneralType":"CREDIT","transactionEntryDesignation":"TRANSACTION","transactionEntrySpecificType":"INBOUND_MSISDN_CREDIT"},
            {"transactionSystemId":"ZPY200806205562TX","transactionReference":"ac24cc4d-56b7-53ee-9070-579aa9afa8a4","transactionStatus":"SUCCEEDED","amount":2152.2,"msisdn":null,"channel":"BACK_END_PROCESSOR","currencyCode":"UGX-MTNMM","transactionEntryGeneralType":"DEBIT","transactionEntryDesignation":"CHARGES","transactionEntrySpecificType":"OUTBOUND_ZPACCT_DEBIT"}
            ],"last_page":3,"per_page":25}}"#;
        let page = provider()
            .parse_sweep_reply(StatusCode::OK, body.as_bytes())
            .unwrap();
        assert_eq!(
            (page.reports.len(), page.skipped, page.next_page),
            (1, 0, Some(2))
        );
        let r = &page.reports[0];
        assert_eq!((r.kind, r.status), (TxnKind::Collection, Status::Succeeded));
        assert_eq!(r.money.as_ref().unwrap().minor, 107_610);
        assert_eq!(r.merchant_ref.as_deref(), Some("20080620471018"));
        let req = provider().sweep_request(0, 3_600_000, 2).unwrap().unwrap();
        assert_eq!(
            req.uri().query().unwrap(),
            "start=1970-01-01%2003:00:00&end=1970-01-01%2004:00:00&designation=TRANSACTION&limit=100&page=2"
        );
    }

    #[test]
    fn status_answers_map_and_failures_stay_failures() {
        let p = provider();
        let txn = pending(TxnKind::Collection);
        let body = format!(
            r#"{{"code":200,"status":"OK","data":{{"transactionReference":"{REF}","transactionStatus":"SUCCEEDED","amount":126600,"currencyCode":"UGX-MTNMM","transactionExternalReference":"o-1","transactionCompletionDate":"0000-00-00 00:00:00"}}}}"#
        );
        let r = p
            .parse_status_reply(&txn, StatusCode::OK, body.as_bytes())
            .unwrap();
        assert_eq!((r.status, r.reason), (Status::Succeeded, None));
        assert_eq!(r.money.unwrap().minor, 126600);
        let failed = body.replace("SUCCEEDED", "FAILED");
        let r = p
            .parse_status_reply(&txn, StatusCode::OK, failed.as_bytes())
            .unwrap();
        assert_eq!(
            (r.status, r.reason.as_deref()),
            (Status::Failed, Some("PROVIDER_FAILED"))
        );
        let indeterminate = body.replace("SUCCEEDED", "INDETERMINATE");
        assert_eq!(
            p.parse_status_reply(&txn, StatusCode::OK, indeterminate.as_bytes())
                .unwrap()
                .status,
            Status::Indeterminate
        );
        assert_eq!(
            p.parse_status_reply(&txn, StatusCode::NOT_FOUND, b"{}"),
            Err(PollError::NotFound)
        );
        assert_eq!(
            p.parse_status_reply(&txn, StatusCode::TOO_MANY_REQUESTS, b""),
            Err(PollError::RateLimited)
        );
        assert!(matches!(
            p.parse_status_reply(&txn, StatusCode::OK, b"<html>"),
            Err(PollError::Malformed(_))
        ));
        let other = body.replace(REF, "someone-else");
        assert!(matches!(
            p.parse_status_reply(&txn, StatusCode::OK, other.as_bytes()),
            Err(PollError::Malformed(_))
        ));
    }

    fn verify(body: &str, sig: &str) -> Result<VerifiedCallback, VerifyError> {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, sig.parse().unwrap());
        let body = Bytes::from(body.to_string());
        provider().verify(&RawCallback {
            path_rest: None,
            path: "/callbacks/zengapay",
            query: None,
            headers: &headers,
            body: &body,
            payment: None,
        })
    }

    // The three composed vectors of fixtures/zengapay/signature_vectors.json (computed with
    // Python's hmac; see fixtures/README.md).
    #[test]
    fn composed_vectors_verify_and_name_their_variant() {
        let raw = verify(
            BODY,
            "d34107c824ace4fe52cba89ff796e9d682249c5eb0836a9fdfdb1fe692b9607a",
        )
        .unwrap();
        assert_eq!((raw.auth.as_str(), raw.signed), (variant::RAW_BODY, true));
        let two_dp = verify(
            BODY,
            "0b4d07070ee1e2d4fe7b292462ffd6da1d683a1052cb483a3d5fbb31dc930b23",
        )
        .unwrap();
        assert_eq!(two_dp.auth, variant::FIELDS_2DP);
        let as_sent = verify(
            BODY,
            "9c7b2d4eec031ecbee18b5c96861c3896d7f355166edd7c14a5e97a5d3f13a58",
        )
        .unwrap();
        assert_eq!(as_sent.auth, variant::FIELDS_AS_SENT);
        // A field signature leaves the status, the event and the currency unproven: the
        // same one verifies a body that says something else about the same payment.
        assert!(!two_dp.signed && !as_sent.signed);
        // ...and so covers fields only: what it reports is a hint, the raw body's is not.
        assert_eq!(raw.coverage, crate::domain::Coverage::Body);
        assert_eq!(
            (two_dp.coverage, as_sent.coverage),
            (
                crate::domain::Coverage::Fields,
                crate::domain::Coverage::Fields
            )
        );
        let flipped = BODY.replace("SUCCEEDED", "FAILED").replace("UGX", "KES");
        assert_ne!(flipped, BODY);
        let still = verify(
            &flipped,
            "0b4d07070ee1e2d4fe7b292462ffd6da1d683a1052cb483a3d5fbb31dc930b23",
        )
        .unwrap();
        assert!(!still.signed);
        // Hex case does not matter.
        let upper = "0B4D07070EE1E2D4FE7B292462FFD6DA1D683A1052CB483A3D5FBB31DC930B23";
        assert!(verify(BODY, upper).is_ok());
    }

    #[test]
    fn wrong_truncated_or_foreign_signatures_are_refused() {
        let good = "0b4d07070ee1e2d4fe7b292462ffd6da1d683a1052cb483a3d5fbb31dc930b23";
        assert_eq!(
            verify(BODY, &good[..62]).unwrap_err(),
            VerifyError::SignatureMismatch
        );
        assert_eq!(
            verify(BODY, "zz").unwrap_err(),
            VerifyError::SignatureMismatch
        );
        let tampered = BODY.replace("126600", "126601");
        assert!(verify(&tampered, good).is_err());
        let mut other = Hmac::<Sha256>::new_from_slice(b"OTHER").unwrap();
        other.update(BODY.as_bytes());
        assert!(verify(BODY, &hex::encode(other.finalize().into_bytes())).is_err());
    }

    /// Signs `input` as ZengaPay's plugin does (HMAC-SHA256 hex of the concatenation).
    fn field_sig(input: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"SECRET_HASH").unwrap();
        mac.update(input.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn a_field_signature_is_refused_where_its_fields_could_be_split_otherwise() {
        let body = |reference: &str, msisdn: &str, amount: &str| {
            format!(
                r#"{{"event":"collection.success","data":{{"transactionStatus":"SUCCEEDED","transactionReference":"{reference}","msisdn":"{msisdn}","amount":"{amount}","currencyCode":"UGX"}}}}"#
            )
        };
        let sig = field_sig(&format!("{REF}256755329361126600.00"));
        assert!(verify(&body(REF, "256755329361", "126600"), &sig).is_ok());
        // One digit moved from the MSISDN to the amount: same signed string, refused.
        assert_eq!(
            verify(&body(REF, "25675532936", "1126600"), &sig).unwrap_err(),
            VerifyError::SignatureMismatch
        );
        // The reference swallowing the MSISDN's first digits, the MSISDN the amount's.
        let sig = field_sig(&format!("{REF}256772560001126600.00"));
        let shifted = body(&format!("{REF}25677"), "256000112660", "0.00");
        assert!(verify(&shifted, &sig).is_err());
        // A leading zero or a sign would let digits pass between the fields too.
        let sig = field_sig(&format!("{REF}2567553293610126600"));
        assert!(verify(&body(REF, "256755329361", "0126600"), &sig).is_err());
    }

    /// What ZengaPay's parser makes of `body` (verification is not its concern).
    fn parse(body: &str) -> Result<CallbackEvent, ParseError> {
        let v = VerifiedCallback::new(
            ProviderId::ZengaPay,
            "t",
            true,
            Bytes::from(body.to_string()),
        );
        provider().parse_callback(&v)
    }

    #[test]
    fn every_status_word_has_its_status() {
        for (word, status) in [
            ("PENDING", Some(Status::Pending)),
            ("INDETERMINATE", Some(Status::Indeterminate)),
            ("SUCCEEDED", Some(Status::Succeeded)),
            ("Successful", Some(Status::Succeeded)),
            (" success ", Some(Status::Succeeded)),
            ("failed", Some(Status::Failed)),
            ("REVERSED", None),
            ("", None),
        ] {
            assert_eq!(parse_status(word), status, "{word:?}");
        }
    }

    #[test]
    fn without_a_status_field_the_event_name_decides() {
        let body = |event: &str| {
            format!(r#"{{"event":"{event}","data":{{"transactionReference":"{REF}"}}}}"#)
        };
        let report = |event: &str| parse(&body(event)).unwrap().report.unwrap();
        let r = report("transfer.success");
        assert_eq!(
            (r.kind, r.status, r.reason),
            (TxnKind::Transfer, Status::Succeeded, None)
        );
        let r = report("collection.failed");
        assert_eq!(
            (r.kind, r.status, r.reason.as_deref()),
            (TxnKind::Collection, Status::Failed, Some("PROVIDER_FAILED"))
        );
        assert!(matches!(
            parse(&body("collection.pending")),
            Err(ParseError::Missing("data.transactionStatus"))
        ));
        // An amount that is not a number is an error, not an absent amount.
        let odd = format!(
            r#"{{"event":"collection.success","data":{{"transactionReference":"{REF}","transactionStatus":"SUCCEEDED","amount":true,"currencyCode":"UGX"}}}}"#
        );
        assert!(matches!(
            parse(&odd),
            Err(ParseError::Invalid {
                field: "data.amount",
                ..
            })
        ));
    }

    #[test]
    fn parses_the_documented_webhook() {
        let p = provider();
        let cb = verify(
            BODY,
            "d34107c824ace4fe52cba89ff796e9d682249c5eb0836a9fdfdb1fe692b9607a",
        )
        .unwrap();
        let ev = p.parse_callback(&cb).unwrap();
        assert_eq!(ev.dedup_key, format!("collection.success:{REF}"));
        let r = ev.report.unwrap();
        assert_eq!(r.status, Status::Succeeded);
        assert_eq!(r.kind, TxnKind::Collection);
        assert_eq!(
            r.money,
            Some(Money {
                minor: 126600,
                currency: "UGX".into()
            })
        );
        assert_eq!(r.merchant_ref.as_deref(), Some("20080513164357"));
        assert_eq!(r.receipt.as_deref(), Some("42026012031"));
    }

    #[test]
    fn candidates_never_round() {
        let c = field_candidates("r", "m", "12.345");
        assert_eq!(
            c.len(),
            1,
            "only the as-sent form for an amount with 3 decimals: {c:?}"
        );
        let c = field_candidates("r", "m", "12.5");
        assert!(c.iter().any(|(_, s)| s == "rm12.50"));
        assert!(!c.iter().any(|(v, _)| *v == variant::FIELDS_INTEGER));
    }
}
