//! Equity Jenga IPN and account alerts (providers.md §4.1).
//!
//! Jenga calls the URL registered in JengaHQ with HTTP Basic credentials, the username
//! and password registered next to it. They are compared in constant time after
//! decoding, username and password both, always both (no early exit). A Basic
//! credential proves the sender, so these callbacks count as signed.
//!
//! Bodies drift between documentation versions (§4.1): references with a leading space,
//! amounts as numbers or strings, `""` for absent. References are trimmed; amounts are
//! read as exact decimal text, never through a float; `""` is null.
//!
//! IPN `status` SUCCESS | FAILED is terminal (§6.2). Account alerts (`callbackType`
//! `ALT`) share the shape: a credit is read like an IPN, a debit is stored and changes
//! nothing. Dedupe is on `callbackType`, the trimmed reference and `status` (§4.1).

use super::{
    ct_eq, header_str, CallbackEvent, ParseError, Provider, ProviderId, RawCallback, StatusReport,
    TxnKind, VerifiedCallback, VerifyError,
};
use crate::config::{JengaConfig, Secret};
use crate::money::{decimal_text, Money};
use crate::state::Status;
use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The Jenga provider.
pub struct Jenga {
    username: Secret,
    password: Secret,
}

impl Jenga {
    /// From `[providers.jenga]`.
    pub fn new(cfg: &JengaConfig) -> Self {
        Jenga {
            username: cfg.ipn_username.clone(),
            password: cfg.ipn_password.clone(),
        }
    }
}

impl Provider for Jenga {
    fn id(&self) -> ProviderId {
        ProviderId::Jenga
    }

    fn verify(&self, req: &RawCallback<'_>) -> Result<VerifiedCallback, VerifyError> {
        let value = header_str(req.headers, "authorization")
            .ok_or(VerifyError::MissingHeader("Authorization"))?;
        let (scheme, encoded) = value
            .trim()
            .split_once(' ')
            .ok_or(VerifyError::BadCredentials)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(VerifyError::BadCredentials);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| VerifyError::BadCredentials)?;
        // RFC 7617: the user-id cannot contain a colon; the password may.
        let colon = decoded
            .iter()
            .position(|&b| b == b':')
            .ok_or(VerifyError::BadCredentials)?;
        let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
        // Both comparisons always run: `&` does not short-circuit.
        let ok = ct_eq(user, self.username.expose().as_bytes())
            & ct_eq(pass, self.password.expose().as_bytes());
        if !ok {
            return Err(VerifyError::BadCredentials);
        }
        Ok(VerifiedCallback::new(
            ProviderId::Jenga,
            "basic",
            true,
            req.body.clone(),
        ))
    }

    fn parse_callback(&self, cb: &VerifiedCallback) -> Result<CallbackEvent, ParseError> {
        parse_body(&cb.body)
    }
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Ipn<'a> {
    callbackType: Option<String>,
    #[serde(borrow)]
    customer: Option<Customer<'a>>,
    #[serde(borrow)]
    transaction: Option<Transaction<'a>>,
    bank: Option<Bank>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Customer<'a> {
    #[serde(borrow)]
    mobileNumber: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Transaction<'a> {
    reference: Option<String>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    currency: Option<String>,
    orderCurrency: Option<String>,
    billNumber: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Bank {
    reference: Option<String>,
    transactionType: Option<String>,
}

fn trimmed(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Maps an IPN `status` (§4.1: `SUCCESS` | `FAILED`, both terminal).
pub fn ipn_status(status: &str) -> Option<Status> {
    match status.trim().to_ascii_uppercase().as_str() {
        "SUCCESS" | "SUCCESSFUL" => Some(Status::Succeeded),
        "FAILED" | "FAILURE" => Some(Status::Failed),
        _ => None,
    }
}

/// Reads an IPN (`callbackType` `IPN`) or account alert (`ALT`) body.
pub fn parse_body(body: &[u8]) -> Result<CallbackEvent, ParseError> {
    let ipn: Ipn = serde_json::from_slice(body)?;
    let callback_type = trimmed(ipn.callbackType)
        .map(|t| t.to_ascii_uppercase())
        .ok_or(ParseError::Missing("callbackType"))?;
    let t = ipn.transaction.ok_or(ParseError::Missing("transaction"))?;
    // §4.1: dedupe on the trimmed transaction reference, falling back to the bank's.
    let (bank_reference, bank_type) = match ipn.bank {
        Some(b) => (trimmed(b.reference), trimmed(b.transactionType)),
        None => (None, None),
    };
    let reference = trimmed(t.reference)
        .or(bank_reference)
        .ok_or(ParseError::Missing("transaction.reference"))?;
    // An account alert (`ALT`) of a debit is money leaving the account, not a payment
    // received: stored, changing nothing (§4.1: `Credit`/`Debit`, IPN uses `C`).
    let debit_alert = callback_type == "ALT"
        && bank_type.is_some_and(|t| t.to_ascii_uppercase().starts_with('D'));
    let status_word = trimmed(t.status);
    let status = match status_word.as_deref() {
        Some(s) => Some(ipn_status(s).ok_or_else(|| ParseError::Invalid {
            field: "transaction.status",
            why: format!("unknown status {s:?}"),
        })?),
        None => None,
    };
    let amount = match t.amount.map(decimal_text) {
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            return Err(ParseError::Invalid {
                field: "transaction.amount",
                why: e.to_string(),
            })
        }
        None => None,
    };
    let currency = trimmed(t.currency).or_else(|| trimmed(t.orderCurrency));
    let money = match (amount, currency) {
        (Some(a), Some(c)) => Some(Money::parse(&a, &c).map_err(|e| ParseError::Invalid {
            field: "transaction.amount",
            why: e.to_string(),
        })?),
        (Some(_), None) => return Err(ParseError::Missing("transaction.currency")),
        (None, _) => None,
    };
    let kind = format!(
        "{}.{}",
        callback_type.to_ascii_lowercase(),
        status_word
            .as_deref()
            .unwrap_or("none")
            .to_ascii_lowercase()
    );
    // An alert without a status says money moved on an account, not how a payment
    // ended: stored, changing nothing (no transaction is settled by a guess).
    let report = status.filter(|_| !debit_alert).map(|status| {
        let mut r = StatusReport::new(reference.clone(), TxnKind::Ipn, status);
        r.reason = (status == Status::Failed).then(|| "PROVIDER_FAILED".to_string());
        r.provider_status = status_word.clone();
        r.money = money;
        r.merchant_ref = trimmed(t.billNumber);
        r.msisdn = ipn
            .customer
            .and_then(|c| c.mobileNumber)
            .and_then(|m| decimal_text(m).ok().flatten());
        r
    });
    Ok(CallbackEvent {
        dedup_key: format!(
            "{callback_type}:{reference}:{}",
            status_word.as_deref().unwrap_or("-")
        ),
        kind,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;

    fn provider() -> Jenga {
        Jenga {
            username: Secret::new("ipnuser"),
            password: Secret::new("ipnpass"),
        }
    }

    fn verify(auth: Option<&str>) -> Result<VerifiedCallback, VerifyError> {
        let mut headers = HeaderMap::new();
        if let Some(a) = auth {
            headers.insert("authorization", a.parse().unwrap());
        }
        let body = Bytes::from_static(b"{}");
        provider().verify(&RawCallback {
            path_rest: None,
            path: "/callbacks/jenga",
            query: None,
            headers: &headers,
            body: &body,
        })
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/jenga/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    // providers.md §4.1: `ipnuser:ipnpass` → `aXBudXNlcjppcG5wYXNz`.
    #[test]
    fn the_documented_basic_vector_verifies() {
        let v = verify(Some("Basic aXBudXNlcjppcG5wYXNz")).unwrap();
        assert!(v.signed);
        assert_eq!(v.auth, "basic");
        assert!(verify(Some("basic  aXBudXNlcjppcG5wYXNz ")).is_ok());
    }

    #[test]
    fn wrong_missing_or_malformed_credentials_are_refused() {
        assert_eq!(
            verify(None).unwrap_err(),
            VerifyError::MissingHeader("Authorization")
        );
        for bad in [
            "Basic 67ew8n31me",               // the docs' placeholder
            "Basic aXBudXNlcjppcG5wYXNzeA==", // ipnuser:ipnpassx
            "Basic aXBudXNlcjo=",             // ipnuser:
            "Basic aXBudXNlcg==",             // ipnuser (no colon)
            "Bearer aXBudXNlcjppcG5wYXNz",
            "aXBudXNlcjppcG5wYXNz",
        ] {
            assert_eq!(
                verify(Some(bad)).unwrap_err(),
                VerifyError::BadCredentials,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_documented_ipn_parses() {
        let ev = parse_body(&fixture("ipn_success.json")).unwrap();
        assert_eq!(ev.dedup_key, "IPN:328411183176:SUCCESS");
        let r = ev.report.unwrap();
        assert_eq!((r.status, r.kind), (Status::Succeeded, TxnKind::Ipn));
        assert_eq!(r.money, Some(Money::parse("150", "KES").unwrap()));
        assert_eq!(r.merchant_ref.as_deref(), Some("INVZCF"));
        assert_eq!(r.msisdn.as_deref(), Some("254712345678"));
    }

    #[test]
    fn the_older_variant_trims_references_and_reads_string_amounts() {
        let ev = parse_body(&fixture("ipn_older_variant.json")).unwrap();
        assert_eq!(ev.dedup_key, "IPN:S2596405:FAILED");
        let r = ev.report.unwrap();
        assert_eq!(r.provider_ref, "S2596405");
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.money.unwrap().minor, 1000);
    }

    #[test]
    fn alerts_and_odd_amounts() {
        let ev = parse_body(&fixture("alert_credit.json")).unwrap();
        assert_eq!(ev.kind, "alt.success");
        let r = ev.report.unwrap();
        assert_eq!(
            (r.status, r.provider_ref.as_str()),
            (Status::Succeeded, "FT2328500001")
        );
        let debit = String::from_utf8(fixture("alert_credit.json"))
            .unwrap()
            .replace("\"Credit\"", "\"Debit\"");
        assert!(parse_body(debit.as_bytes()).unwrap().report.is_none());
        let body = br#"{"callbackType":"IPN","transaction":{"reference":"R1","amount":"","currency":"KES","status":"SUCCESS"}}"#;
        assert!(parse_body(body).unwrap().report.unwrap().money.is_none());
        let body = br#"{"callbackType":"IPN","transaction":{"reference":"R1","amount":10.25,"currency":"KES","status":"SUCCESS"}}"#;
        assert_eq!(
            parse_body(body)
                .unwrap()
                .report
                .unwrap()
                .money
                .unwrap()
                .minor,
            1025
        );
        let body = br#"{"callbackType":"IPN","transaction":{"reference":"  ","status":"SUCCESS"},"bank":{"reference":" B7 "}}"#;
        assert_eq!(parse_body(body).unwrap().report.unwrap().provider_ref, "B7");
        let body = br#"{"callbackType":"IPN","transaction":{"reference":"R1","status":"MAYBE"}}"#;
        assert!(parse_body(body).is_err());
    }
}
