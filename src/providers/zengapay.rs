//! ZengaPay (Uganda mobile money): `X-ZENGAPAY-SIGNATURE` webhooks (providers.md §1).
//!
//! The documentation contradicts itself about what is signed (§1.2), so `verify` accepts
//! any of the candidate inputs, all keyed with the account's secret hash: the raw body,
//! and `transactionReference + msisdn + amount` with the amount as sent, to two decimals
//! (what ZengaPay's own plugin signs since 2022), or as an integer. Accepting several does
//! not help a forger: every candidate needs the secret. Which one matched is stored in
//! `callbacks.auth` so that an account can later be pinned to one.

use super::{
    header_str, verify_hex_mac, Ack, CallbackEvent, ParseError, Provider, ProviderId, RawCallback,
    StatusReport, TxnKind, VerifiedCallback, VerifyError,
};
use crate::config::{Secret, ZengaPayConfig};
use crate::money::{decimal_text, Money};
use crate::state::Status;
use hmac::{Hmac, Mac};
use serde::Deserialize;
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
}

impl ZengaPay {
    /// From `[providers.zengapay]`.
    pub fn new(cfg: &ZengaPayConfig) -> Self {
        ZengaPay {
            secret_hash: cfg.secret_hash.clone(),
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
    // The docs' sample and the status API disagree on this name (§1.1): accept both.
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

impl Provider for ZengaPay {
    fn id(&self) -> ProviderId {
        ProviderId::ZengaPay
    }

    fn verify(&self, req: &RawCallback<'_>) -> Result<VerifiedCallback, VerifyError> {
        let sig = header_str(req.headers, SIGNATURE_HEADER)
            .ok_or(VerifyError::MissingHeader("X-ZENGAPAY-SIGNATURE"))?;
        let body = req.body;
        let verified = |variant: &str| {
            Ok(VerifiedCallback::new(
                ProviderId::ZengaPay,
                variant,
                true,
                body.clone(),
            ))
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
        // §1.1: exactly 200 is the safe answer; the body is ignored.
        Ack::default()
    }
}

/// Maps ZengaPay's `transactionStatus` (§1.4).
pub fn parse_status(s: &str) -> Option<Status> {
    match s.trim().to_ascii_uppercase().as_str() {
        "PENDING" => Some(Status::Pending),
        "INDETERMINATE" => Some(Status::Indeterminate),
        "SUCCEEDED" | "SUCCESSFUL" | "SUCCESS" => Some(Status::Succeeded),
        "FAILED" => Some(Status::Failed),
        _ => None,
    }
}

/// `UGX-MTNMM` → `UGX`: ZengaPay's currency codes carry the network after a dash (§1.6).
pub fn currency_of(code: &str) -> &str {
    code.split('-').next().unwrap_or(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;

    const REF: &str = "566a4a89-4024-584c-b1f5-8c59aff0d334";
    const BODY: &str = r#"{"event":"collection.success","data":{"transactionStatus":"SUCCEEDED","transactionReference":"566a4a89-4024-584c-b1f5-8c59aff0d334","transactionExternalReference":"20080513164357","MNOTransactionReferenceId":"42026012031","currencyCode":"UGX-ATLMM","amount":"126600","msisdn":"256755329361","channel":"API","transactionType":"INBOUND_MSISDN_CREDIT","transactionInitiationDate":"2020-08-05 13:16:43","transactionCompletionDate":"2020-08-05 13:16:55"}}"#;

    fn provider() -> ZengaPay {
        ZengaPay {
            secret_hash: Secret::new("SECRET_HASH"),
        }
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
        })
    }

    // The three composed vectors of providers.md §1.2 (recomputed there with Python hmac).
    #[test]
    fn composed_vectors_verify_and_name_their_variant() {
        let raw = verify(
            BODY,
            "d34107c824ace4fe52cba89ff796e9d682249c5eb0836a9fdfdb1fe692b9607a",
        );
        assert_eq!(raw.unwrap().auth, variant::RAW_BODY);
        let two_dp = verify(
            BODY,
            "0b4d07070ee1e2d4fe7b292462ffd6da1d683a1052cb483a3d5fbb31dc930b23",
        );
        assert_eq!(two_dp.unwrap().auth, variant::FIELDS_2DP);
        let as_sent = verify(
            BODY,
            "9c7b2d4eec031ecbee18b5c96861c3896d7f355166edd7c14a5e97a5d3f13a58",
        );
        assert_eq!(as_sent.unwrap().auth, variant::FIELDS_AS_SENT);
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
