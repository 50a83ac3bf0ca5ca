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
//! ([`crate::config::DARAJA_BANNED_URL_WORDS`]).
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

pub mod config;

use super::{
    ct_eq, json_reply, sha256_hex, AccessToken, Ack, CallbackEvent, ParseError, PendingTxn,
    PollError, PollInputs, Provider, ProviderId, RawCallback, StatusReport, StatusRequest, TxnKind,
    VerifiedCallback, VerifyError,
};
use crate::money::Money;
use crate::secret::Secret;
use crate::state::Status;
use base64::Engine;
use bytes::Bytes;
pub use config::{DarajaApi, DarajaConfig, DARAJA_BANNED_URL_WORDS, DARAJA_SENDER_IPS};
use http::StatusCode;
use http_body_util::Full;
use serde::Deserialize;
use serde_json::value::RawValue;

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

/// Daraja's `Timestamp` (`YYYYMMDDHHmmss`) in Kenyan time (EAT, UTC+3, no daylight saving),
/// as Safaricom's own samples use it.
///
/// ```
/// // 2021-06-28 06:24:08 UTC is 09:24:08 in Nairobi.
/// assert_eq!(payhook::providers::daraja::timestamp(1_624_861_448_000), "20210628092408");
/// ```
pub fn timestamp(now_ms: i64) -> String {
    const EAT_OFFSET_MS: i64 = 3 * 3_600_000;
    crate::clock::rfc3339(now_ms.saturating_add(EAT_OFFSET_MS))
        .chars()
        .take(19)
        .filter(char::is_ascii_digit)
        .collect()
}

/// The STK `Password`: base64 of shortcode, passkey and timestamp concatenated.
///
/// ```
/// // Daraja's sandbox shortcode and passkey, with the published password.
/// let p = payhook::providers::daraja::stk_password(
///     "174379",
///     "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919",
///     "20210628092408",
/// );
/// assert_eq!(p, "MTc0Mzc5YmZiMjc5ZjlhYTliZGJjZjE1OGU5N2RkNzFhNDY3Y2QyZTBjODkzMDU5YjEwZjc4ZTZiNzJhZGExZWQyYzkxOTIwMjEwNjI4MDkyNDA4");
/// ```
pub fn stk_password(shortcode: &str, passkey: &str, timestamp: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{shortcode}{passkey}{timestamp}"))
}

/// True for transactions the STK push query can answer: STK pushes, and references of
/// unknown kind shaped like a `CheckoutRequestID` (`ws_CO_…`).
fn stk_queryable(txn: &PendingTxn) -> bool {
    txn.kind == TxnKind::Stk
        || (txn.kind == TxnKind::Unknown && txn.provider_ref.starts_with("ws_CO_"))
}

/// The STK push query answer, and the error answer Daraja sends instead.
#[derive(Deserialize)]
#[allow(non_snake_case)]
struct StkQueryReply<'a> {
    #[serde(borrow)]
    ResultCode: Option<&'a RawValue>,
    ResultDesc: Option<String>,
    CheckoutRequestID: Option<String>,
    errorCode: Option<String>,
    errorMessage: Option<String>,
}

/// `/oauth/v1/generate` answer: `expires_in` is a string of seconds (a number accepted).
#[derive(Deserialize)]
struct TokenReply<'a> {
    access_token: Option<String>,
    #[serde(borrow)]
    expires_in: Option<&'a RawValue>,
}

/// Reads an STK query answer. "Being processed" comes as an HTTP 500 with
/// `errorCode 500.001.1001`, and as `ResultCode 4999`: both PENDING, not failures. The
/// same error code also means wrong credentials or an unknown merchant, so it is read by
/// its message; token, validation, spike-arrest and quota errors are poll
/// failures.
pub fn parse_stk_query(
    provider_ref: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<StatusReport, PollError> {
    let reply: StkQueryReply = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(_) if !status.is_success() => return Err(PollError::from_status(status)),
        Err(e) => return Err(ParseError::from(e).into()),
    };
    if let Some(code) = reply.errorCode.as_deref() {
        let message = reply.errorMessage.unwrap_or_default();
        let lower = message.to_ascii_lowercase();
        if code == "500.001.1001"
            && (lower.contains("being processed") || lower.contains("under processing"))
        {
            let mut r = StatusReport::new(provider_ref, TxnKind::Stk, Status::Pending);
            r.provider_status = Some(code.to_string());
            return Ok(r);
        }
        // 404.001.03: invalid access token — the cached token must be dropped.
        if code.starts_with("404.001.") || code.starts_with("401") {
            return Err(PollError::Unauthorized(status.as_u16()));
        }
        return Err(PollError::Refused(format!("{code}: {message}")));
    }
    if !status.is_success() {
        return Err(PollError::from_status(status));
    }
    if let Some(id) = reply.CheckoutRequestID.as_deref() {
        if id.trim() != provider_ref {
            return Err(PollError::Malformed(format!(
                "answer is about {id:?}, not {provider_ref:?}"
            )));
        }
    }
    let code = value_text(reply.ResultCode).ok_or(ParseError::Missing("ResultCode"))?;
    let (normalised, reason) = result_status(ResultFamily::Stk, &code);
    let mut r = StatusReport::new(provider_ref, TxnKind::Stk, normalised);
    r.reason = reason.map(str::to_string);
    r.provider_status = Some(match reply.ResultDesc {
        Some(desc) => format!("{code}: {desc}"),
        None => code,
    });
    Ok(r)
}

/// Which configured token `candidate` is, compared in constant time against *every*
/// token (no early exit, so the timing does not tell which one matched or how many
/// there are beyond their count). `None` when it is none of them.
pub(crate) fn match_token(tokens: &[Secret], candidate: &str) -> Option<usize> {
    let mut found: Option<usize> = None;
    for (i, t) in tokens.iter().enumerate() {
        let eq = ct_eq(candidate.as_bytes(), t.expose().as_bytes());
        // `found.or(...)` on every iteration: the same work whether or not it matched.
        found = found.or(eq.then_some(i));
    }
    found
}

/// A non-secret identifier of a callback token: the first 16 hex digits of its
/// SHA-256. Lets logs and the store name a token without revealing it.
pub fn token_id(token: &str) -> String {
    sha256_hex(token.as_bytes())[..16].to_string()
}

/// A callback that came on a minted URL for `payment` (its tag already verified): like a
/// token, it says who called, and for which payment. `callbacks.auth` names the payment;
/// its dedup and correlation key is the payment id, never a secret.
pub(crate) fn minted(
    provider: ProviderId,
    payment: &str,
    req: &RawCallback<'_>,
) -> VerifiedCallback {
    let mut v = VerifiedCallback::new(
        provider,
        format!("minted-url:{payment}"),
        false,
        req.body.clone(),
    );
    v.path_token = Some(format!("pay-{payment}"));
    v.sub_route = req
        .path_rest
        .map(|s| s.trim_matches('/').to_string())
        .filter(|s| !s.is_empty());
    v.payment = Some(payment.to_string());
    v
}

/// Splits `{token}[/{sub-route}]` into the token and the normalised sub-route.
pub(crate) fn split_path(rest: Option<&str>) -> (Option<&str>, Option<&str>) {
    let Some(rest) = rest else {
        return (None, None);
    };
    let (token, sub) = match rest.split_once('/') {
        Some((t, s)) => (t, Some(s.trim_matches('/'))),
        None => (rest, None),
    };
    (
        Some(token).filter(|t| !t.is_empty()),
        sub.filter(|s| !s.is_empty()),
    )
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
        let Some(token) = inputs.access_token else {
            return Some(Err(PollError::Request("no access token".into())));
        };
        let ts = timestamp(inputs.now_ms);
        let body = serde_json::json!({
            "BusinessShortCode": api.shortcode,
            "Password": stk_password(&api.shortcode, api.passkey.expose(), &ts),
            "Timestamp": ts,
            "CheckoutRequestID": txn.provider_ref,
        })
        .to_string();
        Some(
            http::Request::post(format!("{}/mpesa/stkpushquery/v1/query", self.base_url))
                .header(
                    http::header::AUTHORIZATION,
                    format!("Bearer {}", token.expose()),
                )
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| PollError::Request(e.to_string())),
        )
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
        let api = self.api.as_ref()?;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            api.consumer_key.expose(),
            api.consumer_secret.expose()
        ));
        Some(
            http::Request::get(format!(
                "{}/oauth/v1/generate?grant_type=client_credentials",
                self.base_url
            ))
            .header(http::header::AUTHORIZATION, format!("Basic {basic}"))
            .body(Full::new(Bytes::new()))
            .map_err(|e| PollError::Request(e.to_string())),
        )
    }

    fn parse_token_reply(&self, status: StatusCode, body: &[u8]) -> Result<AccessToken, PollError> {
        let reply: TokenReply = json_reply(status, body, PollError::from_token_status)?;
        let token = reply
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or(ParseError::Missing("access_token"))?;
        // Documented as "valid ~1 h"; when unreadable, assume the documented hour.
        let secs = value_text(reply.expires_in)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(3600);
        Ok(AccessToken {
            token: Secret::new(token),
            valid_for: std::time::Duration::from_secs(secs),
        })
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

/// Parses an STK push result body (`{"Body":{"stkCallback":…}}`); `Ok(None)` when the
/// body is JSON but not of that shape. Tujenge reuses this for forwarded results.
pub fn stk_report(body: &[u8]) -> Result<Option<StatusReport>, ParseError> {
    let env: Envelope = serde_json::from_slice(body)?;
    match env.Body.and_then(|b| b.stkCallback) {
        Some(stk) => Ok(stk_event(&stk)?.report),
        None => Ok(None),
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
        (ResultFamily::Stk, "1025") => "PROVIDER_ERROR",
        (ResultFamily::Stk, "2028" | "8006" | "SFC_IC0003") => "REJECTED",
        (ResultFamily::B2c, "11" | "21" | "2001" | "2006" | "2028" | "2040" | "8006") => "REJECTED",
        // Every non-zero STK code is terminal for its CheckoutRequestID, and the
        // same for B2C. Unknown codes keep the verbatim code in provider_status.
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

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct StkBody<'a> {
    #[serde(borrow)]
    stkCallback: Option<StkCallback<'a>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct StkCallback<'a> {
    CheckoutRequestID: Option<String>,
    #[serde(borrow)]
    ResultCode: Option<&'a RawValue>,
    #[serde(borrow)]
    CallbackMetadata: Option<Metadata<'a>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Metadata<'a> {
    #[serde(borrow)]
    Item: Option<&'a RawValue>,
}

fn stk_event(stk: &StkCallback<'_>) -> Result<CallbackEvent, ParseError> {
    let checkout = required(
        "Body.stkCallback.CheckoutRequestID",
        stk.CheckoutRequestID.clone(),
    )?;
    let code =
        value_text(stk.ResultCode).ok_or(ParseError::Missing("Body.stkCallback.ResultCode"))?;
    let (status, reason) = result_status(ResultFamily::Stk, &code);
    let items = match stk.CallbackMetadata.as_ref().and_then(|m| m.Item) {
        Some(raw) => named_values(raw)?,
        None => Vec::new(),
    };
    let mut report = StatusReport::new(checkout.clone(), TxnKind::Stk, status);
    report.reason = reason.map(str::to_string);
    report.provider_status = Some(code);
    report.money = kes(
        "CallbackMetadata.Amount",
        value_text(lookup(&items, "Amount")),
    )?;
    report.receipt = value_text(lookup(&items, "MpesaReceiptNumber"));
    report.msisdn = value_text(lookup(&items, "PhoneNumber"));
    Ok(CallbackEvent {
        kind: kind::STK.to_string(),
        // One final result per CheckoutRequestID.
        dedup_key: format!("{}:{checkout}", kind::STK),
        report: Some(report),
    })
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct C2b {
    TransID: Option<String>,
    TransAmount: Option<Box<RawValue>>,
    BillRefNumber: Option<String>,
    MSISDN: Option<String>,
}

fn c2b_event(body: &[u8], confirmation: bool) -> Result<CallbackEvent, ParseError> {
    let c: C2b = serde_json::from_slice(body)?;
    let trans_id = required("TransID", c.TransID)?;
    let money = kes("TransAmount", value_text(c.TransAmount.as_deref()))?;
    let kind = if confirmation {
        kind::C2B_CONFIRMATION
    } else {
        kind::C2B_VALIDATION
    };
    // Validation asks whether to accept a payment that has not happened; only the
    // confirmation means the money moved. Validation is stored and changes nothing.
    let report = confirmation.then(|| {
        let mut r = StatusReport::new(trans_id.clone(), TxnKind::C2b, Status::Succeeded);
        r.money = money;
        r.merchant_ref = c.BillRefNumber.filter(|s| !s.trim().is_empty());
        r.msisdn = c.MSISDN.filter(|s| !s.trim().is_empty());
        r.receipt = Some(trans_id.clone());
        r.provider_status = Some("Completed".to_string());
        r
    });
    Ok(CallbackEvent {
        kind: kind.to_string(),
        dedup_key: format!("{kind}:{trans_id}"),
        report,
    })
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct ResultDoc<'a> {
    #[serde(borrow)]
    ResultType: Option<&'a RawValue>,
    #[serde(borrow)]
    ResultCode: Option<&'a RawValue>,
    ResultDesc: Option<String>,
    OriginatorConversationID: Option<String>,
    ConversationID: Option<String>,
    TransactionID: Option<String>,
    #[serde(borrow)]
    ResultParameters: Option<ResultParameters<'a>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct ResultParameters<'a> {
    #[serde(borrow)]
    ResultParameter: Option<&'a RawValue>,
}

impl<'a> ResultDoc<'a> {
    fn params(&self) -> Result<Vec<NamedValue<'a>>, ParseError> {
        match self
            .ResultParameters
            .as_ref()
            .and_then(|p| p.ResultParameter)
        {
            Some(raw) => named_values(raw),
            None => Ok(Vec::new()),
        }
    }

    /// Our `OriginatorConversationID`, else Safaricom's `ConversationID`.
    fn reference(&self) -> Result<String, ParseError> {
        required(
            "Result.OriginatorConversationID",
            self.OriginatorConversationID
                .clone()
                .filter(|s| !s.trim().is_empty())
                .or_else(|| self.ConversationID.clone()),
        )
    }
}

/// A Transaction Status result carries `TransactionStatus`/`ReceiptNo` parameters;
/// a B2C result never does.
fn is_transaction_status(r: &ResultDoc<'_>) -> Result<bool, ParseError> {
    let params = r.params()?;
    Ok(lookup(&params, "TransactionStatus").is_some() || lookup(&params, "ReceiptNo").is_some())
}

fn b2c_event(r: &ResultDoc<'_>) -> Result<CallbackEvent, ParseError> {
    let reference = r.reference()?;
    let code = value_text(r.ResultCode).ok_or(ParseError::Missing("Result.ResultCode"))?;
    let result_type = value_text(r.ResultType).unwrap_or_else(|| "0".to_string());
    let params = r.params()?;
    // ResultType 1 is "waiting for further messages": not final.
    let (status, reason) = if result_type == "1" {
        (Status::Pending, None)
    } else {
        result_status(ResultFamily::B2c, &code)
    };
    let mut report = StatusReport::new(reference.clone(), TxnKind::B2c, status);
    report.reason = reason.map(str::to_string);
    report.provider_status = Some(code);
    report.money = kes(
        "ResultParameter.TransactionAmount",
        value_text(lookup(&params, "TransactionAmount")),
    )?;
    report.receipt = value_text(lookup(&params, "TransactionReceipt"))
        .or_else(|| r.TransactionID.clone().filter(|s| !s.trim().is_empty()));
    // "2547XXXXXXXX - Jane Doe": the number is what precedes the dash.
    report.msisdn = value_text(lookup(&params, "ReceiverPartyPublicName"))
        .and_then(|s| s.split(" - ").next().map(|n| n.trim().to_string()))
        .filter(|s| !s.is_empty());
    Ok(CallbackEvent {
        kind: kind::B2C_RESULT.to_string(),
        dedup_key: format!("{}:{reference}:{result_type}", kind::B2C_RESULT),
        report: Some(report),
    })
}

/// The ids of a queue time-out body: the `Result` document's if it has one, else the
/// same keys at the top level (the time-out payload is not documented).
fn timeout_ids(body: &[u8]) -> Result<String, ParseError> {
    #[derive(Deserialize)]
    #[allow(non_snake_case)]
    struct Flat {
        OriginatorConversationID: Option<String>,
        ConversationID: Option<String>,
    }
    let env: Envelope = serde_json::from_slice(body)?;
    if let Some(r) = env.Result {
        return r.reference();
    }
    let f: Flat = serde_json::from_slice(body)?;
    required(
        "OriginatorConversationID",
        f.OriginatorConversationID
            .filter(|s| !s.trim().is_empty())
            .or(f.ConversationID),
    )
}

fn b2c_timeout_event(body: &[u8]) -> Result<CallbackEvent, ParseError> {
    let reference = timeout_ids(body)?;
    // The request timed out in Safaricom's queue; whether it ran is unknown until
    // a Transaction Status query says.
    let mut report = StatusReport::new(reference.clone(), TxnKind::B2c, Status::Indeterminate);
    report.reason = Some("QUEUE_TIMEOUT".to_string());
    report.provider_status = Some("QueueTimeout".to_string());
    Ok(CallbackEvent {
        kind: kind::B2C_TIMEOUT.to_string(),
        dedup_key: format!("{}:{reference}", kind::B2C_TIMEOUT),
        report: Some(report),
    })
}

fn transaction_status_event(r: &ResultDoc<'_>) -> Result<CallbackEvent, ParseError> {
    let reference = r.reference()?;
    let conversation = r.ConversationID.clone().unwrap_or_default();
    // This answers a status query; its OriginatorConversationID is the query's,
    // not the payment's, so only the reconciler (which made the query) can say which
    // transaction it is about. Stored, and read with `parse_transaction_status`.
    Ok(CallbackEvent {
        kind: kind::TRANSACTION_STATUS.to_string(),
        dedup_key: format!("{}:{reference}:{conversation}", kind::TRANSACTION_STATUS),
        report: None,
    })
}

/// What a Transaction Status result says, for the reconciler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionStatusResult {
    /// The query's `OriginatorConversationID` (correlates with the query made).
    pub originator_conversation_id: Option<String>,
    /// Safaricom's `ConversationID` of the query.
    pub conversation_id: Option<String>,
    /// The query's `ResultCode`; non-zero means the query failed, not the payment.
    pub result_code: String,
    /// `ResultDesc`.
    pub result_desc: Option<String>,
    /// `TransactionStatus` parameter, e.g. `Completed`.
    pub transaction_status: Option<String>,
    /// `ReceiptNo` parameter (the M-Pesa receipt).
    pub receipt: Option<String>,
    /// `Amount` parameter, in KES.
    pub money: Option<Money>,
    /// The payment's status by the answer: `None` when the query itself failed or the
    /// status word is unknown (a failed query never changes a status, invariant 5).
    pub status: Option<Status>,
}

/// Parses a Transaction Status result body (`{"Result":{…}}`).
pub fn parse_transaction_status(body: &[u8]) -> Result<TransactionStatusResult, ParseError> {
    let env: Envelope = serde_json::from_slice(body)?;
    let r = env.Result.ok_or(ParseError::Missing("Result"))?;
    let code = value_text(r.ResultCode).ok_or(ParseError::Missing("Result.ResultCode"))?;
    let params = r.params()?;
    let transaction_status = value_text(lookup(&params, "TransactionStatus"));
    let status = if code.trim() != "0" {
        None
    } else {
        match transaction_status
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("completed") => Some(Status::Succeeded),
            Some("failed" | "cancelled" | "declined" | "expired") => Some(Status::Failed),
            Some("pending") => Some(Status::Pending),
            Some("reversed") => Some(Status::Reversed),
            _ => None,
        }
    };
    Ok(TransactionStatusResult {
        originator_conversation_id: r.OriginatorConversationID.clone(),
        conversation_id: r.ConversationID.clone(),
        result_code: code,
        result_desc: r.ResultDesc.clone(),
        transaction_status,
        receipt: value_text(lookup(&params, "ReceiptNo")),
        money: kes(
            "ResultParameter.Amount",
            value_text(lookup(&params, "Amount")),
        )?,
        status,
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
    fn match_token_finds_the_index_without_stopping_early() {
        let tokens = [Secret::new("a"), Secret::new("b"), Secret::new("b")];
        assert_eq!(match_token(&tokens, "b"), Some(1));
        assert_eq!(match_token(&tokens, "c"), None);
        assert_eq!(match_token(&[], "c"), None);
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
    }

    #[test]
    fn unknown_sub_routes_and_shapes_are_parse_errors() {
        assert!(parse_body(Some("c2b/other"), b"{}").is_err());
        assert!(parse_body(None, br#"{"foo":1}"#).is_err());
        assert!(parse_body(None, b"not json").is_err());
    }
}
