//! B2C payouts and Transaction Status: the `Result` documents, and the queue time-outs.

use super::*;

#[derive(Deserialize)]
#[allow(non_snake_case)]
pub(super) struct ResultDoc<'a> {
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
pub(super) struct ResultParameters<'a> {
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
pub(super) fn is_transaction_status(r: &ResultDoc<'_>) -> Result<bool, ParseError> {
    let params = r.params()?;
    Ok(lookup(&params, "TransactionStatus").is_some() || lookup(&params, "ReceiptNo").is_some())
}

pub(super) fn b2c_event(r: &ResultDoc<'_>) -> Result<CallbackEvent, ParseError> {
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
pub(super) fn timeout_ids(body: &[u8]) -> Result<String, ParseError> {
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

pub(super) fn b2c_timeout_event(body: &[u8]) -> Result<CallbackEvent, ParseError> {
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

pub(super) fn transaction_status_event(r: &ResultDoc<'_>) -> Result<CallbackEvent, ParseError> {
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
