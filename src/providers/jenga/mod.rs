//! Equity Jenga IPN and account alerts.
//!
//! Jenga calls the URL registered in JengaHQ with HTTP Basic credentials, the username
//! and password registered next to it. They are compared in constant time after
//! decoding, username and password both, always both (no early exit). A Basic
//! credential proves the sender, so these callbacks count as signed.
//!
//! Bodies drift between documentation versions: references with a leading space,
//! amounts as numbers or strings, `""` for absent. References are trimmed; amounts are
//! read as exact decimal text, never through a float; `""` is null.
//!
//! IPN `status` SUCCESS | FAILED is terminal. Account alerts (`callbackType`
//! `ALT`) share the shape: a credit is read like an IPN, a debit is stored and changes
//! nothing. Dedupe is on `callbackType`, the trimmed reference and `status`.
//!
//! Status: `GET /v3-apis/transaction-api/v3.0/transactions/details/{ref}` with a
//! merchant bearer token (`POST /authentication/api/v3/authenticate/merchant`, cached by
//! the reconciler) and `Signature: base64(RSA-SHA256(private key, ref))`. `stateCode` 2 is
//! SUCCEEDED, 1 FAILED (except `data.code` 400105, "unknown status": INDETERMINATE), -1
//! PENDING. Signing uses `ring`, already in the tree for TLS, so no RSA crate is added.

pub mod config;

use super::sample::{status_word, Sample, SampleCallback, SampleError, SampleStatus};
use super::{
    ct_eq, get_json, header_str, json_reply, path_segment, AccessToken, CallbackEvent, ParseError,
    PendingTxn, PollError, PollInputs, Provider, ProviderId, RawCallback, StatusReport,
    StatusRequest, TxnKind, VerifiedCallback, VerifyError,
};
use crate::money::{decimal_text, Money};
use crate::secret::Secret;
use crate::state::Status;
use base64::Engine;
use bytes::Bytes;
pub use config::JengaConfig;
use http::StatusCode;
use http_body_util::Full;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::sync::Arc;

/// The Jenga provider.
pub struct Jenga {
    username: Secret,
    password: Secret,
    api: Option<Api>,
    base_url: String,
}

/// The query credentials, with the key parsed once.
struct Api {
    merchant_code: String,
    api_key: Secret,
    consumer_secret: Secret,
    key: Arc<RsaKeyPair>,
}

impl Jenga {
    /// From `[providers.jenga]`.
    pub fn new(cfg: &JengaConfig) -> Self {
        let api = cfg.api.as_ref().and_then(|a| {
            // The key was parsed when the configuration was loaded, so this holds.
            let key = signing_key(a.private_key.expose())
                .inspect_err(|e| tracing::error!(error = %e, "Jenga private key unusable; Jenga is not polled"))
                .ok()?;
            Some(Api {
                merchant_code: a.merchant_code.clone(),
                api_key: a.api_key.clone(),
                consumer_secret: a.consumer_secret.clone(),
                key: Arc::new(key),
            })
        });
        Jenga {
            username: cfg.ipn_username.clone(),
            password: cfg.ipn_password.clone(),
            api,
            base_url: cfg.poll.base_url.clone(),
        }
    }
}

/// Parses an RSA private key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`, what
/// `openssl genpkey` writes) or PKCS#1 (`BEGIN RSA PRIVATE KEY`, `openssl genrsa`).
pub fn signing_key(pem: &str) -> Result<RsaKeyPair, String> {
    let (label, der) = pem_block(pem)?;
    let parsed = match label.as_str() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        other => return Err(format!("a {other:?} PEM block is not an RSA private key")),
    };
    parsed.map_err(|e| format!("not a usable RSA private key: {e}"))
}

/// The first PEM block: its label and decoded bytes.
fn pem_block(pem: &str) -> Result<(String, Vec<u8>), String> {
    let begin = pem
        .find("-----BEGIN ")
        .ok_or("no \"-----BEGIN\" line: not a PEM file")?;
    let rest = &pem[begin + 11..];
    let label_end = rest.find("-----").ok_or("malformed BEGIN line")?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + 5..];
    let end = body
        .find(&format!("-----END {label}-----"))
        .ok_or("no matching END line")?;
    let b64: String = body[..end].split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("PEM body is not base64: {e}"))?;
    Ok((label, der))
}

/// `base64(RSA-SHA256(key, message))`, the `Signature` header.
pub fn sign(key: &RsaKeyPair, message: &str) -> Result<String, String> {
    let mut sig = vec![0u8; key.public().modulus_len()];
    // PKCS#1 v1.5 signatures are deterministic; the generator only serves ring's blinding.
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        message.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "RSA signing failed".to_string())?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sig))
}

/// Transaction details answer. `status: true` only means the query worked.
#[derive(Deserialize)]
struct DetailsReply<'a> {
    status: Option<bool>,
    message: Option<String>,
    #[serde(borrow)]
    data: Option<Details<'a>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Details<'a> {
    state: Option<String>,
    #[serde(borrow)]
    stateCode: Option<&'a RawValue>,
    #[serde(borrow)]
    code: Option<&'a RawValue>,
    transactionReference: Option<String>,
}

/// Token answer; `expiresIn`'s form is not documented (and unverified), so only a
/// number of seconds is believed.
#[derive(Deserialize)]
#[allow(non_snake_case)]
struct TokenReply<'a> {
    accessToken: Option<String>,
    #[serde(borrow)]
    expiresIn: Option<&'a RawValue>,
}

/// How long a Jenga token is used when its answer does not say in seconds.
const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 600;

/// A JSON scalar (number or string) as trimmed text.
fn scalar_text(raw: Option<&RawValue>) -> Option<String> {
    let raw = raw?;
    let text = match serde_json::from_str::<String>(raw.get()) {
        Ok(s) => s,
        Err(_) => raw.get().to_string(),
    };
    Some(text.trim().to_string()).filter(|t| !t.is_empty() && t != "null")
}

/// Reads a transaction details answer.
pub fn parse_details(
    provider_ref: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<StatusReport, PollError> {
    let reply: DetailsReply = json_reply(status, body, PollError::from_status)?;
    if reply.status != Some(true) {
        return Err(PollError::Refused(
            reply.message.unwrap_or_else(|| "status is not true".into()),
        ));
    }
    let d = reply.data.ok_or(ParseError::Missing("data"))?;
    if let Some(r) = d.transactionReference.as_deref() {
        if !r.trim().is_empty() && r.trim() != provider_ref {
            return Err(PollError::Malformed(format!(
                "answer is about {r:?}, not {provider_ref:?}"
            )));
        }
    }
    let state_code = scalar_text(d.stateCode).ok_or(ParseError::Missing("data.stateCode"))?;
    let code = scalar_text(d.code);
    let (normalised, reason) = match state_code.as_str() {
        "2" => (Status::Succeeded, None),
        // 400105: "failed with unknown status, contact Finserve support".
        "1" if code.as_deref() == Some("400105") => {
            (Status::Indeterminate, Some("NEEDS_PROVIDER_ACTION"))
        }
        "1" => (Status::Failed, Some("PROVIDER_FAILED")),
        "-1" => (Status::Pending, None),
        other => {
            return Err(PollError::Malformed(format!("unknown stateCode {other:?}")));
        }
    };
    let mut r = StatusReport::new(provider_ref, TxnKind::Unknown, normalised);
    r.reason = reason.map(str::to_string);
    r.provider_status = Some(format!(
        "{state_code}:{}{}",
        d.state.unwrap_or_default(),
        code.map(|c| format!(":{c}")).unwrap_or_default()
    ));
    // The answer's amount comes without a currency, so it is not compared here.
    Ok(r)
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

    fn confirms(&self, _kind: TxnKind) -> bool {
        self.api.is_some()
    }

    fn status_request(
        &self,
        txn: &PendingTxn,
        inputs: PollInputs<'_>,
    ) -> Option<Result<StatusRequest, PollError>> {
        let api = self.api.as_ref()?;
        let Some(token) = inputs.access_token else {
            return Some(Err(PollError::Request("no access token".into())));
        };
        let signature = match sign(&api.key, &txn.provider_ref) {
            Ok(s) => s,
            Err(e) => return Some(Err(PollError::Request(e))),
        };
        let url = format!(
            "{}/v3-apis/transaction-api/v3.0/transactions/details/{}",
            self.base_url,
            path_segment(&txn.provider_ref)
        );
        let bearer = format!("Bearer {}", token.expose());
        Some(get_json(
            &url,
            &[("authorization", &bearer), ("signature", &signature)],
        ))
    }

    fn parse_status_reply(
        &self,
        txn: &PendingTxn,
        status: StatusCode,
        body: &[u8],
    ) -> Result<StatusReport, PollError> {
        let mut r = parse_details(&txn.provider_ref, status, body)?;
        r.kind = txn.kind;
        Ok(r)
    }

    fn token_request(&self) -> Option<Result<StatusRequest, PollError>> {
        let api = self.api.as_ref()?;
        let body = serde_json::json!({
            "merchantCode": api.merchant_code,
            "consumerSecret": api.consumer_secret.expose(),
        })
        .to_string();
        Some(
            http::Request::post(format!(
                "{}/authentication/api/v3/authenticate/merchant",
                self.base_url
            ))
            .header("api-key", api.api_key.expose())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PollError::Request(e.to_string())),
        )
    }

    fn parse_token_reply(&self, status: StatusCode, body: &[u8]) -> Result<AccessToken, PollError> {
        let reply: TokenReply = json_reply(status, body, PollError::from_token_status)?;
        let token = reply
            .accessToken
            .filter(|t| !t.is_empty())
            .ok_or(ParseError::Missing("accessToken"))?;
        let secs = scalar_text(reply.expiresIn)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(DEFAULT_TOKEN_LIFETIME_SECS);
        Ok(AccessToken {
            token: Secret::new(token),
            valid_for: std::time::Duration::from_secs(secs),
        })
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

/// Maps an IPN `status` (`SUCCESS` | `FAILED`, both terminal).
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
    // Dedupe on the trimmed transaction reference, falling back to the bank's.
    let (bank_reference, bank_type) = match ipn.bank {
        Some(b) => (trimmed(b.reference), trimmed(b.transactionType)),
        None => (None, None),
    };
    let reference = trimmed(t.reference)
        .or(bank_reference)
        .ok_or(ParseError::Missing("transaction.reference"))?;
    // An account alert (`ALT`) of a debit is money leaving the account, not a payment
    // received: stored, changing nothing (alerts say `Credit`/`Debit`, IPNs `C`).
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
    // An account alert names its direction too: a debit and a credit can carry the same
    // bank reference, and the credit (a payment) must not pass for a retry of the debit.
    let direction = match callback_type.as_str() {
        "ALT" if debit_alert => ":D",
        "ALT" => ":C",
        _ => "",
    };
    Ok(CallbackEvent {
        dedup_key: format!(
            "{callback_type}{direction}:{reference}:{}",
            status_word.as_deref().unwrap_or("-")
        ),
        kind,
        report,
    })
}

/// A Jenga sample.
pub(crate) fn sample(j: &JengaConfig, ctx: &Sample<'_>) -> Result<SampleCallback, SampleError> {
    let (spec, r) = (ctx.spec, &ctx.spec.reference);
    let status = match spec.status {
        SampleStatus::Succeeded => "SUCCESS",
        SampleStatus::Failed => "FAILED",
        SampleStatus::Pending => {
            return Err(SampleError::NoSuchStatus(
                ctx.provider,
                status_word(spec.status),
            ))
        }
    };
    let body = json!({"callbackType": "IPN",
        "customer": {"name": "John Doe", "mobileNumber": "254712345678", "reference": format!("order-{r}")},
        "transaction": {"date": "2026-11-23 14:15:20", "reference": r, "paymentMode": "MPESA",
            "amount": ctx.number(), "currency": "KES", "billNumber": "INVZCF", "servedBy": "EQ",
            "additionalInfo": "payhook send-test", "orderAmount": ctx.number(), "serviceCharge": 0,
            "orderCurrency": "KES", "status": status, "remarks": "00:Approved"},
        "bank": {"reference": r, "transactionType": "C", "account": null}})
    .to_string()
    .into_bytes();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        j.ipn_username.expose(),
        j.ipn_password.expose()
    ));
    Ok(SampleCallback {
        path: "/callbacks/jenga".into(),
        headers: vec![("Authorization".into(), format!("Basic {basic}"))],
        body,
        provider_ref: r.clone(),
        signed_as: "HTTP Basic with the IPN username and password".into(),
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
            api: None,
            base_url: "https://uat.finserve.africa".into(),
        }
    }

    #[test]
    fn pem_keys_parse_and_other_blocks_are_named() {
        let pem = include_str!("../../../fixtures/jenga/test_private_key.pem");
        let key = signing_key(pem).unwrap();
        assert_eq!(key.public().modulus_len(), 256);
        let err = signing_key("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----")
            .err()
            .unwrap();
        assert!(err.contains("CERTIFICATE"), "{err}");
        assert!(signing_key("not pem").is_err());
    }

    #[test]
    fn the_signature_matches_openssl() {
        let pem = include_str!("../../../fixtures/jenga/test_private_key.pem");
        let key = signing_key(pem).unwrap();
        // fixtures/README.md: `printf %s 328411183176 | openssl dgst -sha256 -sign
        // test_private_key.pem | base64 -w0`.
        let expected = include_str!("../../../fixtures/jenga/signature_328411183176.b64");
        assert_eq!(sign(&key, "328411183176").unwrap(), expected.trim());
    }

    #[test]
    fn details_answers_map_by_state_code() {
        let parse = |status: u16, body: &str| {
            parse_details(
                "328411183176",
                StatusCode::from_u16(status).unwrap(),
                body.as_bytes(),
            )
        };
        let body = |state_code: &str, code: &str| {
            format!(
                r#"{{"status":true,"code":0,"message":"success","data":{{"state":"x","stateCode":{state_code},"code":{code},"transactionReference":"328411183176"}}}}"#
            )
        };
        assert_eq!(
            parse(200, &body("2", "0")).unwrap().status,
            Status::Succeeded
        );
        assert_eq!(parse(200, &body("1", "1")).unwrap().status, Status::Failed);
        assert_eq!(
            parse(200, &body("1", "400105")).unwrap().status,
            Status::Indeterminate
        );
        assert_eq!(
            parse(200, &body("\"-1\"", "0")).unwrap().status,
            Status::Pending
        );
        assert!(matches!(
            parse(200, &body("7", "0")),
            Err(PollError::Malformed(_))
        ));
        assert!(matches!(
            parse(200, r#"{"status":false,"message":"Invalid signature"}"#),
            Err(PollError::Refused(_))
        ));
        assert_eq!(parse(401, "{}"), Err(PollError::Unauthorized(401)));
        // An answer about another payment is refused; one that names none is read.
        let about = |reference: &str| {
            format!(
                r#"{{"status":true,"data":{{"stateCode":2,"code":0,"transactionReference":"{reference}"}}}}"#
            )
        };
        assert!(matches!(
            parse(200, &about("999999999999")),
            Err(PollError::Malformed(_))
        ));
        assert_eq!(parse(200, &about(" ")).unwrap().status, Status::Succeeded);
        assert_eq!(
            parse(200, &about(" 328411183176 ")).unwrap().status,
            Status::Succeeded
        );
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
            payment: None,
        })
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/jenga/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    // Jenga's documented example: `ipnuser:ipnpass` → `aXBudXNlcjppcG5wYXNz`.
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

    /// A debit and a credit alert with the same bank reference are two callbacks: the
    /// credit is a payment and must not be dropped as a retry of the debit.
    #[test]
    fn a_debit_and_a_credit_alert_do_not_share_a_dedup_key() {
        let credit = fixture("alert_credit.json");
        let debit = String::from_utf8(credit.clone())
            .unwrap()
            .replace("\"Credit\"", "\"Debit\"");
        let c = parse_body(&credit).unwrap();
        let d = parse_body(debit.as_bytes()).unwrap();
        assert_eq!(c.dedup_key, "ALT:C:FT2328500001:SUCCESS");
        assert_eq!(d.dedup_key, "ALT:D:FT2328500001:SUCCESS");
        assert!(c.report.is_some() && d.report.is_none());
    }

    #[test]
    fn the_older_variant_trims_references_and_reads_string_amounts() {
        let ev = parse_body(&fixture("ipn_older_variant.json")).unwrap();
        assert_eq!(ev.dedup_key, "IPN:S2596405:FAILED");
        let r = ev.report.unwrap();
        assert_eq!(r.provider_ref, "S2596405");
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.reason.as_deref(), Some("PROVIDER_FAILED"));
        assert_eq!(r.money.unwrap().minor, 1000);
        // A success carries no failure reason.
        let ok = parse_body(&fixture("ipn_success.json"))
            .unwrap()
            .report
            .unwrap();
        assert_eq!(ok.reason, None);
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
