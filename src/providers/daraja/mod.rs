//! Safaricom Daraja (M-Pesa) callbacks: STK push results, C2B validation and
//! confirmation, B2C results and queue time-outs, Transaction Status results.
//!
//! Daraja signs nothing, so a callback is authenticated by a secret token in its
//! path, `/callbacks/daraja/{token}[/{sub-route}]`, compared in constant time with every
//! configured token; the source-address allowlist is checked before this, by the HTTP
//! layer. Such a callback is *unsigned* ([`VerifiedCallback::signed`] is false): a
//! success it reports is held until a status query confirms it (`confirm_unsigned`).
//!
//! Bodies of the same shape are told apart by the sub-route after the token:
//!
//! | sub-route | body | kind |
//! |---|---|---|
//! | none, `stk`, `b2c` | `Body.stkCallback` or `Result` | `stk` or `b2c_result` (by shape) |
//! | `c2b/validation` | C2B payload | `c2b_validation` (stored, changes nothing) |
//! | `c2b/confirmation` | C2B payload | `c2b_confirmation` (SUCCEEDED) |
//! | `timeout`, `b2c/timeout` | B2C `QueueTimeOutURL` hit | `b2c_timeout` (INDETERMINATE) |
//! | `status` | Transaction Status `Result` | `transaction_status` (stored, changes nothing) |
//! | `status/timeout` | its queue time-out | `transaction_status_timeout` (stored) |
//!
//! Sub-routes avoid the words Daraja refuses in callback URLs
//! ([`DARAJA_BANNED_URL_WORDS`]).
//!
//! Status: the STK push query, `POST /mpesa/stkpushquery/v1/query` with an OAuth
//! bearer token (`GET /oauth/v1/generate`, Basic consumer key:secret, cached by the
//! reconciler) and `Password = base64(shortcode + passkey + timestamp)`. Only STK
//! transactions have a synchronous query; C2B and B2C wait for their callbacks or their
//! deadline (Transaction Status answers asynchronously).
//!
//! The helpers the reconciler reuses for STK and Transaction Status queries are `pub`:
//! [`result_status`] (ResultCode → status and reason), [`named_values`] / [`lookup`]
//! (metadata items read by name), [`value_text`], [`parse_transaction_status`].

mod b2c;
mod c2b;
pub mod config;
mod oauth;
mod stk;

pub use super::path_token::token_id;
use super::path_token::{match_token, minted, split_path};
use super::sample::{first_token, stk_body, Sample, SampleCallback, SampleError};
use super::{
    json_reply, AccessToken, Ack, CallbackEvent, ParseError, PendingTxn, PollError, PollInputs,
    Provider, ProviderId, RawCallback, StatusReport, StatusRequest, TxnKind, VerifiedCallback,
    VerifyError,
};
use crate::money::Money;
use crate::secret::Secret;
use crate::state::Status;
use b2c::{
    b2c_event, b2c_timeout_event, is_transaction_status, timeout_ids, transaction_status_event,
    ResultDoc,
};
pub use b2c::{parse_transaction_status, TransactionStatusResult};
use base64::Engine;
use bytes::Bytes;
use c2b::c2b_event;
pub use config::{DarajaApi, DarajaConfig, DARAJA_BANNED_URL_WORDS, DARAJA_SENDER_IPS};
use http::StatusCode;
use http_body_util::Full;
use serde::Deserialize;
use serde_json::value::RawValue;
pub use stk::{parse_stk_query, stk_password, stk_report, timestamp};
use stk::{stk_event, stk_queryable, StkBody};

/// Daraja's currency (Kenyan shillings; M-Pesa Kenya is the only market served here).
pub const CURRENCY: &str = "KES";

/// The Daraja provider.
pub struct Daraja {
    tokens: Vec<Secret>,
    api: Option<DarajaApi>,
    base_url: String,
}

impl Daraja {
    /// From `[providers.daraja]`.
    pub fn new(cfg: &DarajaConfig) -> Self {
        Daraja {
            tokens: cfg.callback_tokens.clone(),
            api: cfg.api.clone(),
            base_url: cfg.poll.base_url.clone(),
        }
    }
}

impl Provider for Daraja {
    fn id(&self) -> ProviderId {
        ProviderId::Daraja
    }

    fn verify(&self, req: &RawCallback<'_>) -> Result<VerifiedCallback, VerifyError> {
        if let Some(payment) = req.payment {
            return Ok(minted(ProviderId::Daraja, payment, req));
        }
        let (token, sub) = split_path(req.path_rest);
        let token = token.ok_or(VerifyError::UnknownToken)?;
        match_token(&self.tokens, token).ok_or(VerifyError::UnknownToken)?;
        let mut v = VerifiedCallback::new(ProviderId::Daraja, "token", false, req.body.clone());
        v.path_token = Some(token_id(token));
        v.sub_route = sub.map(str::to_string);
        Ok(v)
    }

    fn parse_callback(&self, cb: &VerifiedCallback) -> Result<CallbackEvent, ParseError> {
        parse_body(cb.sub_route.as_deref(), &cb.body)
    }

    fn confirms(&self, kind: TxnKind) -> bool {
        // Only STK pushes have a status query payhook can send (C2B has none; the B2C
        // Transaction Status query needs initiator credentials payhook does not hold).
        self.api.is_some() && kind == TxnKind::Stk
    }

    fn status_request(
        &self,
        txn: &PendingTxn,
        inputs: PollInputs<'_>,
    ) -> Option<Result<StatusRequest, PollError>> {
        let api = self.api.as_ref()?;
        if !stk_queryable(txn) {
            return None;
        }
        Some(stk::query_request(api, &self.base_url, txn, inputs))
    }

    fn parse_status_reply(
        &self,
        txn: &PendingTxn,
        status: StatusCode,
        body: &[u8],
    ) -> Result<StatusReport, PollError> {
        parse_stk_query(&txn.provider_ref, status, body)
    }

    fn token_request(&self) -> Option<Result<StatusRequest, PollError>> {
        Some(oauth::token_request(self.api.as_ref()?, &self.base_url))
    }

    fn parse_token_reply(&self, status: StatusCode, body: &[u8]) -> Result<AccessToken, PollError> {
        oauth::parse_token_reply(status, body)
    }

    fn ack(&self, event: Option<&CallbackEvent>) -> Ack {
        // Validation wants ResultCode "0" (a string) to accept; confirmation and
        // results are acknowledged with ResultCode 0. payhook does not judge C2B
        // payments: it accepts every validation, as Daraja would with
        // ResponseType "Completed", and the merchant refunds if it must.
        let body = match event.map(|e| e.kind.as_str()) {
            Some(kind::C2B_VALIDATION) => r#"{"ResultCode":"0","ResultDesc":"Accepted"}"#,
            Some(kind::C2B_CONFIRMATION) => r#"{"ResultCode":0,"ResultDesc":"Success"}"#,
            _ => r#"{"ResultCode":0,"ResultDesc":"Accepted"}"#,
        };
        Ack {
            status: 200,
            body: body.to_string(),
        }
    }
}

/// Callback kinds (`callbacks.kind`).
pub mod kind {
    /// STK push result (`Body.stkCallback`).
    pub const STK: &str = "stk";
    /// C2B validation request.
    pub const C2B_VALIDATION: &str = "c2b_validation";
    /// C2B confirmation: the money moved.
    pub const C2B_CONFIRMATION: &str = "c2b_confirmation";
    /// B2C result (`Result`).
    pub const B2C_RESULT: &str = "b2c_result";
    /// B2C `QueueTimeOutURL` hit.
    pub const B2C_TIMEOUT: &str = "b2c_timeout";
    /// Transaction Status result (the answer to a status query).
    pub const TRANSACTION_STATUS: &str = "transaction_status";
    /// Transaction Status query timed out in Safaricom's queue.
    pub const TRANSACTION_STATUS_TIMEOUT: &str = "transaction_status_timeout";
}

/// Parses a Daraja body received on `sub_route` (see the module table).
pub fn parse_body(sub_route: Option<&str>, body: &[u8]) -> Result<CallbackEvent, ParseError> {
    match sub_route {
        None | Some("stk") | Some("b2c") => {
            let env: Envelope = serde_json::from_slice(body)?;
            if let Some(stk) = env.Body.and_then(|b| b.stkCallback) {
                return stk_event(&stk);
            }
            match env.Result {
                Some(r) if is_transaction_status(&r)? => transaction_status_event(&r),
                Some(r) => b2c_event(&r),
                None => Err(ParseError::Missing("Body.stkCallback or Result")),
            }
        }
        Some("c2b/validation") => c2b_event(body, false),
        Some("c2b/confirmation") => c2b_event(body, true),
        Some("timeout") | Some("b2c/timeout") => b2c_timeout_event(body),
        Some("status") => {
            let env: Envelope = serde_json::from_slice(body)?;
            let r = env.Result.ok_or(ParseError::Missing("Result"))?;
            transaction_status_event(&r)
        }
        Some("status/timeout") => {
            let ids = timeout_ids(body)?;
            Ok(CallbackEvent {
                kind: kind::TRANSACTION_STATUS_TIMEOUT.to_string(),
                dedup_key: format!("{}:{ids}", kind::TRANSACTION_STATUS_TIMEOUT),
                report: None,
            })
        }
        Some(other) => Err(ParseError::Invalid {
            field: "path",
            why: format!("unknown sub-route {other:?}"),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// Result codes of STK push and B2C
// ---------------------------------------------------------------------------------------

/// Which table a ResultCode is read with: STK and B2C share numbers with other meanings
/// (2001 is a wrong PIN for STK, invalid initiator information for B2C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFamily {
    /// STK push callbacks and STK push queries.
    Stk,
    /// B2C results.
    B2c,
}

/// The normalised status and FAILED reason of a Daraja `ResultCode`, given as text
/// (numbers in callbacks, strings in query replies, and non-numeric codes such as
/// `SFC_IC0003` all arrive here the same way).
///
/// ```
/// use payhook::providers::daraja::{result_status, ResultFamily};
/// use payhook::state::Status;
/// assert_eq!(result_status(ResultFamily::Stk, "0"), (Status::Succeeded, None));
/// assert_eq!(result_status(ResultFamily::Stk, "1032"), (Status::Failed, Some("CANCELLED_BY_USER")));
/// assert_eq!(result_status(ResultFamily::Stk, "SFC_IC0003"), (Status::Failed, Some("REJECTED")));
/// ```
pub fn result_status(family: ResultFamily, code: &str) -> (Status, Option<&'static str>) {
    let code = code.trim();
    if code == "0" {
        return (Status::Succeeded, None);
    }
    let reason = match (family, code) {
        // "still under processing" seen in STK query replies; not an outcome.
        (ResultFamily::Stk, "4999") => return (Status::Pending, None),
        (_, "1") => "INSUFFICIENT_FUNDS",
        // Transaction limits; 17 is "same amount to the same customer within 2 minutes".
        (_, "2" | "3" | "4" | "8") | (ResultFamily::Stk, "17") => "LIMIT",
        (ResultFamily::Stk, "1019" | "1037") => "TIMEOUT",
        (ResultFamily::Stk, "1031" | "1032") => "CANCELLED_BY_USER",
        (ResultFamily::Stk, "2001") => "WRONG_PIN",
        (ResultFamily::Stk, "2028" | "8006" | "SFC_IC0003") => "REJECTED",
        (ResultFamily::B2c, "11" | "21" | "2001" | "2006" | "2028" | "2040" | "8006") => "REJECTED",
        // Every non-zero STK code is terminal for its CheckoutRequestID, and the
        // same for B2C. Unknown codes, and 1025 (the push could not be sent), keep the
        // verbatim code in provider_status.
        _ => "PROVIDER_ERROR",
    };
    (Status::Failed, Some(reason))
}

// ---------------------------------------------------------------------------------------
// Named values: CallbackMetadata.Item (Name/Value) and ResultParameter (Key/Value)
// ---------------------------------------------------------------------------------------

/// One `{"Name": …, "Value": …}` item (or `{"Key": …, "Value": …}` parameter). `Value`
/// may be absent (e.g. `{"Name":"Balance"}`), which is not an error.
#[derive(Debug, Deserialize)]
pub struct NamedValue<'a> {
    /// `Name` or `Key`.
    #[serde(rename = "Name", alias = "Key")]
    pub name: Option<String>,
    /// `Value` as raw JSON text (a number stays exactly as sent).
    #[serde(rename = "Value", borrow)]
    pub value: Option<&'a RawValue>,
}

/// Reads a list of named values given as a JSON array, or as a single object (Daraja
/// sends `ReferenceItem`, and sometimes `ResultParameter`, as one object).
pub fn named_values(raw: &RawValue) -> Result<Vec<NamedValue<'_>>, ParseError> {
    if raw.get().trim_start().starts_with('[') {
        Ok(serde_json::from_str(raw.get())?)
    } else {
        Ok(vec![serde_json::from_str(raw.get())?])
    }
}

/// The value named `name`, looked up by name, never by position.
pub fn lookup<'a>(items: &[NamedValue<'a>], name: &str) -> Option<&'a RawValue> {
    items
        .iter()
        .find(|i| i.name.as_deref() == Some(name))
        .and_then(|i| i.value)
}

/// A JSON value as text: a string's contents (trimmed), a number's literal text; `None`
/// for null, an empty string, or absent.
pub fn value_text(raw: Option<&RawValue>) -> Option<String> {
    let text = raw?.get().trim();
    let out = if text.starts_with('"') {
        serde_json::from_str::<String>(text)
            .ok()?
            .trim()
            .to_string()
    } else if text == "null" {
        return None;
    } else {
        text.to_string()
    };
    Some(out).filter(|s| !s.is_empty())
}

fn kes(field: &'static str, amount: Option<String>) -> Result<Option<Money>, ParseError> {
    amount
        .map(|a| {
            Money::parse(&a, CURRENCY).map_err(|e| ParseError::Invalid {
                field,
                why: e.to_string(),
            })
        })
        .transpose()
}

fn required(field: &'static str, v: Option<String>) -> Result<String, ParseError> {
    v.map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or(ParseError::Missing(field))
}

// ---------------------------------------------------------------------------------------
// Body shapes
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Envelope<'a> {
    #[serde(borrow)]
    Body: Option<StkBody<'a>>,
    #[serde(borrow)]
    Result: Option<ResultDoc<'a>>,
}

/// A Daraja sample.
pub(crate) fn sample(d: &DarajaConfig, ctx: &Sample<'_>) -> Result<SampleCallback, SampleError> {
    let (spec, r) = (ctx.spec, &ctx.spec.reference);
    let body = stk_body(r, ctx.number(), spec.status, ctx.provider)?;
    let token = first_token(&d.callback_tokens).ok_or(SampleError::NotConfigured(ctx.provider))?;
    Ok(SampleCallback {
        path: format!("/callbacks/daraja/{token}/stk"),
        headers: Vec::new(),
        body,
        provider_ref: r.clone(),
        signed_as: "the secret callback token in the path (Daraja signs nothing)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;

    const TOKEN: &str = "tok-0123456789abcdef";

    fn provider() -> Daraja {
        Daraja {
            tokens: vec![Secret::new("old-token-9999999999"), Secret::new(TOKEN)],
            api: Some(DarajaApi {
                consumer_key: Secret::new("ck"),
                consumer_secret: Secret::new("cs"),
                shortcode: "174379".into(),
                passkey: Secret::new(
                    "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
                ),
            }),
            base_url: "https://sandbox.safaricom.co.ke".into(),
        }
    }

    fn stk(reference: &str, kind: TxnKind) -> PendingTxn {
        PendingTxn {
            id: 1,
            provider: ProviderId::Daraja,
            provider_ref: reference.into(),
            kind,
            status: Status::Pending,
            unconfirmed: true,
            poll_attempts: 0,
            created_at_ms: 0,
            deadline_at_ms: None,
        }
    }

    #[test]
    fn stk_queries_carry_the_password_timestamp_and_bearer_token() {
        let p = provider();
        let token = Secret::new("tok");
        let inputs = PollInputs {
            now_ms: 1_624_861_448_000,
            nonce: "n",
            access_token: Some(&token),
        };
        let req = p
            .status_request(&stk("ws_CO_1", TxnKind::Stk), inputs)
            .unwrap()
            .unwrap();
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(
            req.uri().to_string(),
            "https://sandbox.safaricom.co.ke/mpesa/stkpushquery/v1/query"
        );
        assert_eq!(req.headers()["authorization"], "Bearer tok");
        // C2B and B2C have no synchronous query; an unknown kind is queried only when the
        // reference looks like a CheckoutRequestID.
        assert!(p
            .status_request(&stk("RKTQDM7W6S", TxnKind::C2b), inputs)
            .is_none());
        assert!(p
            .status_request(&stk("RKTQDM7W6S", TxnKind::Unknown), inputs)
            .is_none());
        assert!(p
            .status_request(&stk("ws_CO_2", TxnKind::Unknown), inputs)
            .is_some());
        let no_token = PollInputs {
            access_token: None,
            ..inputs
        };
        assert!(matches!(
            p.status_request(&stk("ws_CO_1", TxnKind::Stk), no_token),
            Some(Err(PollError::Request(_)))
        ));
        let t = p.token_request().unwrap().unwrap();
        assert_eq!(t.headers()["authorization"], "Basic Y2s6Y3M=");
        assert!(t
            .uri()
            .query()
            .unwrap()
            .contains("grant_type=client_credentials"));
    }

    #[test]
    fn stk_query_answers_map_and_processing_is_pending() {
        let parse = |status: u16, body: &str| {
            parse_stk_query(
                "ws_CO_1",
                StatusCode::from_u16(status).unwrap(),
                body.as_bytes(),
            )
        };
        let ok = r#"{"ResponseCode":"0","ResponseDescription":"accepted","MerchantRequestID":"m","CheckoutRequestID":"ws_CO_1","ResultCode":"0","ResultDesc":"The service request is processed successfully."}"#;
        assert_eq!(parse(200, ok).unwrap().status, Status::Succeeded);
        let cancelled = ok.replace(r#""ResultCode":"0""#, r#""ResultCode":"1032""#);
        let r = parse(200, &cancelled).unwrap();
        assert_eq!(
            (r.status, r.reason.as_deref()),
            (Status::Failed, Some("CANCELLED_BY_USER"))
        );
        let still = ok.replace(r#""ResultCode":"0""#, r#""ResultCode":"4999""#);
        assert_eq!(parse(200, &still).unwrap().status, Status::Pending);
        // Not JSON: a failed HTTP answer is that failure, a 200 is a malformed answer.
        assert_eq!(parse(502, "<html>"), Err(PollError::Http(502)));
        assert!(matches!(parse(200, "<html>"), Err(PollError::Malformed(_))));
        let processing = r#"{"requestId":"ws_CO_1","errorCode":"500.001.1001","errorMessage":"The transaction is being processed"}"#;
        assert_eq!(parse(500, processing).unwrap().status, Status::Pending);
        let wrong_creds =
            r#"{"requestId":"x","errorCode":"500.001.1001","errorMessage":"Wrong credentials"}"#;
        assert!(matches!(
            parse(500, wrong_creds),
            Err(PollError::Refused(_))
        ));
        let bad_token =
            r#"{"requestId":"x","errorCode":"404.001.03","errorMessage":"Invalid Access Token"}"#;
        assert_eq!(parse(404, bad_token), Err(PollError::Unauthorized(404)));
        let spike =
            r#"{"requestId":"x","errorCode":"500.003.02","errorMessage":"Spike arrest violation"}"#;
        assert!(matches!(parse(500, spike), Err(PollError::Refused(_))));
        assert_eq!(parse(503, "<html>"), Err(PollError::Http(503)));
        assert!(matches!(parse(200, "{}"), Err(PollError::Malformed(_))));
        let other = ok.replace("ws_CO_1", "ws_CO_9");
        assert!(matches!(parse(200, &other), Err(PollError::Malformed(_))));
    }

    #[test]
    fn oauth_answers_give_a_token_and_its_lifetime() {
        let p = provider();
        let t = p
            .parse_token_reply(
                StatusCode::OK,
                br#"{"access_token":"abc","expires_in":"3599"}"#,
            )
            .unwrap();
        assert_eq!((t.token.expose(), t.valid_for.as_secs()), ("abc", 3599));
        assert_eq!(
            p.parse_token_reply(StatusCode::BAD_REQUEST, b"{}")
                .unwrap_err(),
            PollError::Unauthorized(400)
        );
        assert!(p.parse_token_reply(StatusCode::OK, b"{}").is_err());
    }

    fn verify(rest: Option<&str>) -> Result<VerifiedCallback, VerifyError> {
        let headers = HeaderMap::new();
        let body = Bytes::from_static(b"{}");
        provider().verify(&RawCallback {
            path_rest: rest,
            path: "/callbacks/daraja/…",
            query: None,
            headers: &headers,
            body: &body,
            payment: None,
        })
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/daraja/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn any_configured_token_passes_and_is_not_kept() {
        let v = verify(Some(&format!("{TOKEN}/c2b/validation/"))).unwrap();
        assert!(!v.signed);
        assert_eq!(v.auth, "token");
        assert_eq!(v.sub_route.as_deref(), Some("c2b/validation"));
        assert_eq!(v.path_token.as_deref(), Some(token_id(TOKEN).as_str()));
        assert!(!format!("{v:?}").contains(TOKEN));
        assert!(verify(Some("old-token-9999999999"))
            .unwrap()
            .sub_route
            .is_none());
    }

    #[test]
    fn wrong_missing_or_prefix_tokens_are_refused() {
        for rest in [
            None,
            Some(""),
            Some("/c2b/validation"),
            Some("tok-0123456789abcde"),
            Some("tok-0123456789abcdefX"),
            Some("TOK-0123456789ABCDEF"),
        ] {
            assert_eq!(
                verify(rest).unwrap_err(),
                VerifyError::UnknownToken,
                "{rest:?}"
            );
        }
    }

    #[test]
    fn the_documented_stk_success_reads_items_by_name() {
        let ev = parse_body(None, &fixture("stk_success.json")).unwrap();
        assert_eq!(ev.kind, "stk");
        assert_eq!(ev.dedup_key, "stk:ws_CO_191220191020363925");
        let r = ev.report.unwrap();
        assert_eq!((r.status, r.kind), (Status::Succeeded, TxnKind::Stk));
        assert_eq!(r.money, Some(Money::parse("1.00", "KES").unwrap()));
        assert_eq!(r.receipt.as_deref(), Some("NLJ7RT61SV"));
        assert_eq!(r.msisdn.as_deref(), Some("254708374149"));
        // Reordered items, a decimal amount, no Balance value: the same reading.
        let ev = parse_body(None, &fixture("stk_success_reordered.json")).unwrap();
        let r = ev.report.unwrap();
        assert_eq!(r.money.unwrap().minor, 1050);
        assert_eq!(r.receipt.as_deref(), Some("QKT1ABCD23"));
    }

    #[test]
    fn stk_failures_map_to_reasons_and_string_codes_parse() {
        let r = parse_body(None, &fixture("stk_cancelled.json"))
            .unwrap()
            .report
            .unwrap();
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.reason.as_deref(), Some("CANCELLED_BY_USER"));
        let r = parse_body(None, &fixture("stk_operator_missing.json"))
            .unwrap()
            .report
            .unwrap();
        assert_eq!(
            (r.status, r.reason.as_deref(), r.provider_status.as_deref()),
            (Status::Failed, Some("REJECTED"), Some("SFC_IC0003"))
        );
        for (code, reason) in [
            ("1", "INSUFFICIENT_FUNDS"),
            ("17", "LIMIT"),
            ("1019", "TIMEOUT"),
            ("1037", "TIMEOUT"),
            ("2001", "WRONG_PIN"),
            ("1031", "CANCELLED_BY_USER"),
            ("9999", "PROVIDER_ERROR"),
        ] {
            assert_eq!(
                result_status(ResultFamily::Stk, code),
                (Status::Failed, Some(reason))
            );
        }
        assert_eq!(
            result_status(ResultFamily::B2c, "2001"),
            (Status::Failed, Some("REJECTED"))
        );
    }

    #[test]
    fn c2b_validation_changes_nothing_and_confirmation_succeeds() {
        let body = fixture("c2b.json");
        let v = parse_body(Some("c2b/validation"), &body).unwrap();
        assert_eq!(
            (v.kind.as_str(), v.dedup_key.as_str()),
            ("c2b_validation", "c2b_validation:RKTQDM7W6S")
        );
        assert!(v.report.is_none());
        let c = parse_body(Some("c2b/confirmation"), &body).unwrap();
        let r = c.report.unwrap();
        assert_eq!((r.status, r.kind), (Status::Succeeded, TxnKind::C2b));
        assert_eq!(r.money.unwrap().minor, 1000);
        assert_eq!(r.merchant_ref.as_deref(), Some("invoice008"));
        assert_eq!(
            provider().ack(Some(&v)).body,
            r#"{"ResultCode":"0","ResultDesc":"Accepted"}"#
        );
    }

    #[test]
    fn b2c_results_timeouts_and_status_results() {
        let ev = parse_body(None, &fixture("b2c_success.json")).unwrap();
        let r = ev.report.unwrap();
        assert_eq!(r.provider_ref, "53e3-4aa8-9fe0-8fb5e4092cdd3533373");
        assert_eq!((r.status, r.kind), (Status::Succeeded, TxnKind::B2c));
        assert_eq!(r.money.unwrap().minor, 1000);
        assert_eq!(r.receipt.as_deref(), Some("SG632NMUAB"));
        let r = parse_body(Some("b2c"), &fixture("b2c_failed.json"))
            .unwrap()
            .report
            .unwrap();
        assert_eq!(
            (r.status, r.reason.as_deref()),
            (Status::Failed, Some("INSUFFICIENT_FUNDS"))
        );
        let r = parse_body(None, &fixture("b2c_not_final.json"))
            .unwrap()
            .report
            .unwrap();
        assert_eq!(r.status, Status::Pending);
        let r = parse_body(Some("timeout"), &fixture("b2c_queue_timeout.json"))
            .unwrap()
            .report
            .unwrap();
        assert_eq!(r.status, Status::Indeterminate);
        let ev = parse_body(None, &fixture("transaction_status.json")).unwrap();
        assert_eq!(ev.kind, "transaction_status");
        assert!(ev.report.is_none());
        let ts = parse_transaction_status(&fixture("transaction_status.json")).unwrap();
        assert_eq!(ts.status, Some(Status::Succeeded));
        assert_eq!(ts.receipt.as_deref(), Some("OEI2AK4Q16"));
        // Every documented TransactionStatus word, and a non-zero ResultCode states none.
        let text = String::from_utf8(fixture("transaction_status.json")).unwrap();
        for (word, status) in [
            ("Failed", Some(Status::Failed)),
            ("Cancelled", Some(Status::Failed)),
            ("Declined", Some(Status::Failed)),
            ("Expired", Some(Status::Failed)),
            ("Pending", Some(Status::Pending)),
            ("Reversed", Some(Status::Reversed)),
            ("Mislaid", None),
        ] {
            let body = text.replace("\"Completed\"", &format!("\"{word}\""));
            assert_eq!(
                parse_transaction_status(body.as_bytes()).unwrap().status,
                status,
                "{word}"
            );
        }
        let failed_query = text.replace("\"ResultCode\":0", "\"ResultCode\":1");
        assert_eq!(
            parse_transaction_status(failed_query.as_bytes())
                .unwrap()
                .status,
            None
        );
    }

    #[test]
    fn unknown_sub_routes_and_shapes_are_parse_errors() {
        assert!(parse_body(Some("c2b/other"), b"{}").is_err());
        assert!(parse_body(None, br#"{"foo":1}"#).is_err());
        assert!(parse_body(None, b"not json").is_err());
    }
}
