//! Sample callbacks: the types each provider's sample builder
//! ([`crate::providers::ProviderConfig::sample`]) fills in, and the pieces they share.

use crate::domain::ProviderId;
use serde_json::json;

/// The status a sample callback reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SampleStatus {
    /// The payment went through.
    Succeeded,
    /// The payment failed (cancelled by the payer).
    Failed,
    /// Still in progress (ZengaPay and BitPesa only: the others call back once, final).
    Pending,
}

/// What the sample says: its reference, amount and status.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// The provider's reference for the payment (ignored by Tujenge, whose reference is
    /// the callback token's id).
    pub reference: String,
    /// Amount in major units as decimal text, e.g. `1500` or `10.50`.
    pub amount: String,
    /// Reported status.
    pub status: SampleStatus,
    /// BitPesa's `Authorization-Nonce`; any unique text.
    pub nonce: String,
}

/// A sample callback ready to post: path, headers and body.
#[derive(Debug, Clone)]
pub struct SampleCallback {
    /// Request path, e.g. `/callbacks/zengapay`. It may carry a path token: a secret.
    pub path: String,
    /// Request headers, credentials included.
    pub headers: Vec<(String, String)>,
    /// The body, as sent.
    pub body: Vec<u8>,
    /// The transaction reference payhook will file it under.
    pub provider_ref: String,
    /// What authenticates it, in words (for `send-test` and the demo to print).
    pub signed_as: String,
}

/// Why no sample could be built.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// The provider has no `[providers.*]` section.
    #[error("[providers.{0}] is not configured")]
    NotConfigured(ProviderId),
    /// The provider never reports this status in a callback.
    #[error("{0} sends no {1} callback (try succeeded or failed)")]
    NoSuchStatus(ProviderId, &'static str),
    /// BitPesa without a URL to sign.
    #[error("providers.bitpesa needs public_base_url or webhook_url to sign a sample")]
    NoPublicUrl,
    /// The amount is not decimal text.
    #[error("amount {0:?} is not a decimal number like 1500 or 10.50")]
    BadAmount(String),
}

/// What every provider's sample is built from.
#[derive(Clone, Copy)]
pub struct Sample<'a> {
    /// The provider it is for.
    pub provider: ProviderId,
    /// What it says.
    pub spec: &'a SampleSpec,
    /// `spec.amount`, checked to be decimal text.
    pub amount: &'a str,
}

impl Sample<'_> {
    /// A JSON number exactly as written: providers send amounts as numbers.
    pub fn number(&self) -> serde_json::Value {
        serde_json::from_str(self.amount).unwrap_or_else(|_| json!(self.amount))
    }
}

/// The status as `send-test` spells it.
pub fn status_word(s: SampleStatus) -> &'static str {
    match s {
        SampleStatus::Succeeded => "succeeded",
        SampleStatus::Failed => "failed",
        SampleStatus::Pending => "pending",
    }
}

/// ZengaPay's signature of a raw body: HMAC-SHA256 keyed with the secret hash, lowercase
/// hex.
pub fn zengapay_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The first configured callback token, for a sample's path.
pub fn first_token(tokens: &[crate::secret::Secret]) -> Option<&str> {
    tokens.first().map(|t| t.expose())
}

/// A Daraja STK result (as Tujenge also forwards it): ResultCode 0 or 1032 (cancelled).
pub fn stk_body(
    reference: &str,
    amount: serde_json::Value,
    status: SampleStatus,
    provider: ProviderId,
) -> Result<Vec<u8>, SampleError> {
    let stk = match status {
        SampleStatus::Succeeded => json!({
            "MerchantRequestID": "29115-34620561-1", "CheckoutRequestID": reference,
            "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
            "CallbackMetadata": {"Item": [
                {"Name": "Amount", "Value": amount},
                {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
                {"Name": "Balance"},
                {"Name": "TransactionDate", "Value": 20261123102115u64},
                {"Name": "PhoneNumber", "Value": 254708374149u64}]}}),
        SampleStatus::Failed => json!({
            "MerchantRequestID": "29115-34620561-1", "CheckoutRequestID": reference,
            "ResultCode": 1032, "ResultDesc": "Request cancelled by user"}),
        SampleStatus::Pending => return Err(SampleError::NoSuchStatus(provider, "pending")),
    };
    Ok(json!({"Body": {"stkCallback": stk}})
        .to_string()
        .into_bytes())
}

impl SampleCallback {
    /// The path with any callback token replaced by `[token]`, for output meant to be
    /// shown.
    pub fn shown_path(&self) -> String {
        let mut parts: Vec<&str> = self.path.split('/').collect();
        // /callbacks/{provider}/{token}[/sub]
        if parts.len() > 3 {
            parts[3] = "[token]";
        }
        parts.join("/")
    }

    /// Posts the sample to `base` (scheme, host, port: `http://127.0.0.1:8080`) and
    /// returns the answer.
    pub async fn post(
        &self,
        client: &crate::outbound::HttpClient,
        base: &str,
        timeout: std::time::Duration,
    ) -> Result<crate::outbound::Reply, crate::outbound::ClientError> {
        let mut req = http::Request::post(format!("{}{}", base.trim_end_matches('/'), self.path))
            .header("content-type", "application/json")
            .header("user-agent", "payhook-send-test");
        for (name, value) in &self.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(
                self.body.clone(),
            )))
            .map_err(|e| crate::outbound::ClientError::Connect(e.to_string()))?;
        client.send(req, timeout, 64 * 1024).await
    }
}
