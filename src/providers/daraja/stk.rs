//! STK push: its result callback, and the STK push query the reconciler sends.

use super::*;

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
pub(super) fn stk_queryable(txn: &PendingTxn) -> bool {
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

/// Parses an STK push result body (`{"Body":{"stkCallback":…}}`); `Ok(None)` when the
/// body is JSON but not of that shape. Tujenge reuses this for forwarded results.
pub fn stk_report(body: &[u8]) -> Result<Option<StatusReport>, ParseError> {
    let env: Envelope = serde_json::from_slice(body)?;
    match env.Body.and_then(|b| b.stkCallback) {
        Some(stk) => Ok(stk_event(&stk)?.report),
        None => Ok(None),
    }
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
pub(super) struct StkBody<'a> {
    #[serde(borrow)]
    pub(super) stkCallback: Option<StkCallback<'a>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
pub(super) struct StkCallback<'a> {
    CheckoutRequestID: Option<String>,
    #[serde(borrow)]
    ResultCode: Option<&'a RawValue>,
    #[serde(borrow)]
    CallbackMetadata: Option<Metadata<'a>>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
pub(super) struct Metadata<'a> {
    #[serde(borrow)]
    Item: Option<&'a RawValue>,
}

pub(super) fn stk_event(stk: &StkCallback<'_>) -> Result<CallbackEvent, ParseError> {
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

/// The STK push query of `txn`: `POST /mpesa/stkpushquery/v1/query` with the bearer
/// token and `Password = base64(shortcode + passkey + timestamp)`.
pub(super) fn query_request(
    api: &DarajaApi,
    base_url: &str,
    txn: &PendingTxn,
    inputs: PollInputs<'_>,
) -> Result<StatusRequest, PollError> {
    let Some(token) = inputs.access_token else {
        return Err(PollError::Request("no access token".into()));
    };
    let ts = timestamp(inputs.now_ms);
    let body = serde_json::json!({
        "BusinessShortCode": api.shortcode,
        "Password": stk_password(&api.shortcode, api.passkey.expose(), &ts),
        "Timestamp": ts,
        "CheckoutRequestID": txn.provider_ref,
    })
    .to_string();
    http::Request::post(format!("{base_url}/mpesa/stkpushquery/v1/query"))
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.expose()),
        )
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| PollError::Request(e.to_string()))
}
