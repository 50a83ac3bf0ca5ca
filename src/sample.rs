//! Sample callbacks: a realistic body for each provider, authenticated with the
//! configured credentials exactly as the provider would (ZengaPay's HMAC-SHA256 of the raw
//! body, TransferZero's HMAC-SHA512 over the public URL, Daraja's and Tujenge's path token,
//! Jenga's HTTP Basic). `payhook send-test` posts one to an installation; `payhook demo`
//! posts one per provider to its own daemon. The bodies follow the shapes in `fixtures/`.

use crate::config::Config;
use crate::domain::ProviderId;
use base64::Engine;
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

/// Builds the sample callback `spec` describes for `provider`, with `cfg`'s credentials.
pub fn build(
    cfg: &Config,
    provider: ProviderId,
    spec: &SampleSpec,
) -> Result<SampleCallback, SampleError> {
    let amount = &spec.amount;
    let valid_amount = {
        let (int, frac) = amount.split_once('.').unwrap_or((amount, "0"));
        !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && !frac.is_empty()
            && frac.bytes().all(|b| b.is_ascii_digit())
    };
    if !valid_amount {
        return Err(SampleError::BadAmount(amount.clone()));
    }
    let ctx = Sample {
        cfg,
        provider,
        spec,
        amount,
    };
    match provider {
        ProviderId::ZengaPay => zengapay(&ctx),
        ProviderId::BitPesa => bitpesa(&ctx),
        ProviderId::Daraja => daraja(&ctx),
        ProviderId::Jenga => jenga(&ctx),
        ProviderId::Tujenge => tujenge(&ctx),
    }
}

/// What every provider's sample is built from.
#[derive(Clone, Copy)]
struct Sample<'a> {
    cfg: &'a Config,
    provider: ProviderId,
    spec: &'a SampleSpec,
    amount: &'a str,
}

impl Sample<'_> {
    /// The provider's table, of type `T`.
    fn table<T: crate::providers::ProviderConfig>(&self) -> Result<&T, SampleError> {
        self.cfg
            .providers
            .get::<T>()
            .ok_or(SampleError::NotConfigured(self.provider))
    }

    /// A JSON number exactly as written: providers send amounts as numbers.
    fn number(&self) -> serde_json::Value {
        serde_json::from_str(self.amount).unwrap_or_else(|_| json!(self.amount))
    }
}

/// The status as `send-test` spells it.
fn status_word(s: SampleStatus) -> &'static str {
    match s {
        SampleStatus::Succeeded => "succeeded",
        SampleStatus::Failed => "failed",
        SampleStatus::Pending => "pending",
    }
}

/// A ZengaPay sample.
fn zengapay(ctx: &Sample<'_>) -> Result<SampleCallback, SampleError> {
    let (spec, r) = (ctx.spec, &ctx.spec.reference);
    let z = ctx.table::<crate::providers::zengapay::ZengaPayConfig>()?;
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

/// A BitPesa sample.
fn bitpesa(ctx: &Sample<'_>) -> Result<SampleCallback, SampleError> {
    let (spec, r) = (ctx.spec, &ctx.spec.reference);
    let b = ctx.table::<crate::providers::bitpesa::BitPesaConfig>()?;
    let path = "/callbacks/bitpesa";
    let url = match (&b.webhook_url, &ctx.cfg.public_base_url) {
        (Some(u), _) => u.clone(),
        (None, Some(base)) => format!("{base}{path}"),
        (None, None) => return Err(SampleError::NoPublicUrl),
    };
    let (event, state) = match spec.status {
        SampleStatus::Succeeded => ("transaction.paid_out", "paid"),
        SampleStatus::Failed => ("transaction.canceled", "canceled"),
        SampleStatus::Pending => ("transaction.processing", "processing"),
    };
    let body = json!({"webhook": "fd599451-4f3c-4045-91e1-d68ed12ffb75",
        "event": event, "object": {"id": r, "state": state,
        "external_id": format!("order-{r}"), "input_amount": ctx.number(),
        "input_currency": "KES"}})
    .to_string()
    .into_bytes();
    let sig = crate::providers::bitpesa::sign(&b.api_secret, &spec.nonce, "POST", &url, &body);
    Ok(SampleCallback {
        path: path.into(),
        headers: vec![
            ("Authorization-Key".into(), b.api_key.expose().to_string()),
            ("Authorization-Nonce".into(), spec.nonce.clone()),
            ("Authorization-Signature".into(), sig),
        ],
        body,
        provider_ref: r.clone(),
        signed_as: format!("HMAC-SHA512 of nonce&POST&{url}&sha512hex(body), hex"),
    })
}

/// A Daraja sample.
fn daraja(ctx: &Sample<'_>) -> Result<SampleCallback, SampleError> {
    let (spec, r) = (ctx.spec, &ctx.spec.reference);
    let d = ctx.table::<crate::providers::daraja::DarajaConfig>()?;
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

/// A Jenga sample.
fn jenga(ctx: &Sample<'_>) -> Result<SampleCallback, SampleError> {
    let (spec, r) = (ctx.spec, &ctx.spec.reference);
    let j = ctx.table::<crate::providers::jenga::JengaConfig>()?;
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

/// A Tujenge sample.
fn tujenge(ctx: &Sample<'_>) -> Result<SampleCallback, SampleError> {
    let (spec, r) = (ctx.spec, &ctx.spec.reference);
    let t = ctx.table::<crate::providers::tujenge::TujengeConfig>()?;
    let body = stk_body(r, ctx.number(), spec.status, ctx.provider)?;
    let token = first_token(&t.callback_tokens).ok_or(SampleError::NotConfigured(ctx.provider))?;
    Ok(SampleCallback {
        path: format!("/callbacks/tujenge/{token}"),
        headers: Vec::new(),
        body,
        provider_ref: format!("tok_{}", crate::providers::path_token::token_id(token)),
        signed_as: "the secret callback token in the path (Tujenge signs nothing)".into(),
    })
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

fn first_token(tokens: &[crate::secret::Secret]) -> Option<&str> {
    tokens.first().map(|t| t.expose())
}

/// A Daraja STK result (as Tujenge also forwards it): ResultCode 0 or 1032 (cancelled).
fn stk_body(
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
