//! C2B paybill and till payments: the validation and confirmation callbacks.

use super::*;

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct C2b {
    TransID: Option<String>,
    TransAmount: Option<Box<RawValue>>,
    BillRefNumber: Option<String>,
    MSISDN: Option<String>,
}

pub(super) fn c2b_event(body: &[u8], confirmation: bool) -> Result<CallbackEvent, ParseError> {
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
