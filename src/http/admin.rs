//! The admin listener: the merchant application's local API, on its own loopback-only
//! address with its own bearer token (`[admin]`).
//!
//! `POST /v1/transactions` registers a payment the application just started, exactly as
//! `payhook track` does, so that the reconciler settles it even if no callback arrives:
//!
//! ```json
//! {"provider": "zengapay", "provider_ref": "566a4a89-...", "kind": "collection",
//!  "amount": "126600", "currency": "UGX", "merchant_ref": "order-1001"}
//! ```
//!
//! Answers: 201 (now tracked) or 200 (already known; never regressed), with
//! `{"transaction_id", "created", "status"}`; 400 for a body payhook cannot read (the
//! message says which field); 401 without the token; 409 when the transaction is already
//! registered with another amount (nothing changes), or when the provider already stated
//! another amount (the expected amount is recorded and the transaction goes to review, or
//! gets a conflict if it is settled); 503 when the store is unavailable.
//!
//! `POST /v1/callback-urls` mints a per-payment callback URL for Daraja or Tujenge
//! ([`crate::minted`]) and registers its payment, as `payhook callback-url` does.
//!
//! `GET /v1/events` is the pull feed ([`super::feed`]), behind the same token.

use super::error::{json, Body, HttpError};
use crate::domain::{ProviderId, TxnKind};
use crate::money::{decimal_text, Money};
use crate::providers::ct_eq;
use crate::store::transactions::{self, Registration};
use crate::store::StoreError;
use crate::Ctx;
use http::{header, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::net::SocketAddr;

/// Largest registration body accepted.
pub const ADMIN_BODY_LIMIT_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackRequest<'a> {
    provider: String,
    provider_ref: String,
    /// The minted payment (`POST /v1/callback-urls`) this reference belongs to: binds it
    /// now, so that the payment is reconciled even if no callback ever comes.
    payment_id: Option<String>,
    kind: Option<String>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    currency: Option<String>,
    merchant_ref: Option<String>,
}

fn bad_request(why: &str) -> Response<Body> {
    json(
        StatusCode::BAD_REQUEST,
        &serde_json::json!({ "error": why }).to_string(),
    )
}

/// Answers one admin request.
pub async fn handle(ctx: Ctx, _peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let Some(admin) = ctx.config.admin.as_ref() else {
        return HttpError::NotFound.response();
    };
    // Metrics hold no secret and the listener is loopback-only; Prometheus scrapes
    // without the token, which registers payments and stays with the application.
    if admin.metrics && req.uri().path() == "/metrics" {
        return match *req.method() {
            Method::GET | Method::HEAD => super::ops::metrics(&ctx).await,
            _ => HttpError::MethodNotAllowed("GET, HEAD").response(),
        };
    }
    // The token is checked before anything else, so that nothing about the API answers a
    // caller without it.
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !ct_eq(presented.trim().as_bytes(), admin.token.expose().as_bytes()) {
        tracing::info!("admin request refused: bad or missing token");
        let mut resp = HttpError::Unauthorized("token").response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/v1/events") => return super::feed::handle(&ctx, &req).await,
        (_, "/v1/events") => return HttpError::MethodNotAllowed("GET").response(),
        (&Method::POST, "/v1/callback-urls") => return callback_url(&ctx, req).await,
        (_, "/v1/callback-urls") => return HttpError::MethodNotAllowed("POST").response(),
        (&Method::POST, "/v1/transactions") => {}
        (_, "/v1/transactions") => return HttpError::MethodNotAllowed("POST").response(),
        _ => return HttpError::NotFound.response(),
    }
    let (parts, body) = req.into_parts();
    let body = match super::ingest::read_body(body, &parts.headers, ADMIN_BODY_LIMIT_BYTES).await {
        Ok(b) => b,
        Err(e) => return e.response(),
    };
    let (reg, payment_id) = match registration(&body) {
        Ok(r) => r,
        Err(why) => return bad_request(&why),
    };
    let now = crate::clock::now_ms();
    let schedule = crate::schedule::first_poll(&ctx.config.poll(reg.provider), now);
    let (provider, reference) = (reg.provider, reg.provider_ref.clone());
    match ctx
        .store
        .write(move |c| register_with_payment(c, reg, payment_id.as_deref(), schedule, now))
        .await
    {
        Ok(done) if done.contradiction.is_some() => {
            let why = done.contradiction.clone().unwrap_or_default();
            tracing::warn!(provider = %provider, txn_ref = %reference, reason = %why, "registration contradicts the provider; the transaction is under review");
            ctx.wake_forwarder.notify_one();
            json(
                StatusCode::CONFLICT,
                &serde_json::json!({ "error": why, "status": done.status }).to_string(),
            )
        }
        Ok(done) => {
            tracing::info!(provider = %provider, txn_ref = %reference, created = done.created, "transaction registered");
            if done.created {
                // Let the loops see the new row's first poll time instead of an idle wait.
                ctx.wake_reconciler.notify_one();
            }
            let status = if done.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            json(
                status,
                &serde_json::to_string(&done).unwrap_or_else(|_| "{}".into()),
            )
        }
        Err(StoreError::Refused(why)) => json(
            StatusCode::CONFLICT,
            &serde_json::json!({ "error": why }).to_string(),
        ),
        Err(e) if e.is_unavailable() => {
            tracing::warn!(error = %e, "store unavailable; registration answered 503");
            HttpError::Unavailable.response()
        }
        Err(e) => {
            tracing::error!(error = %e, "registration failed");
            HttpError::Internal.response()
        }
    }
}

/// `POST /v1/callback-urls`: mints a per-payment callback URL ([`crate::minted`]) and
/// registers its payment. 201 `{"url", "provider", "provider_ref", "payment_id",
/// "merchant_ref"}`; 400 for a body payhook cannot read or a provider that signs its
/// callbacks; 409 when no `callback_url_keys` or `public_base_url` is configured.
async fn callback_url(ctx: &Ctx, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = match super::ingest::read_body(body, &parts.headers, ADMIN_BODY_LIMIT_BYTES).await {
        Ok(b) => b,
        Err(e) => return e.response(),
    };
    let request = match payment_request(&body) {
        Ok(r) => r,
        Err(why) => return bad_request(&why),
    };
    let new = match crate::minted::new_payment(
        &ctx.minter,
        ctx.config.public_base_url.as_deref(),
        &request,
    ) {
        Ok(n) => n,
        Err(e @ crate::minted::MintError::Signed(_)) => return bad_request(&e.to_string()),
        Err(crate::minted::MintError::Random) => return HttpError::Internal.response(),
        Err(e) => {
            return json(
                StatusCode::CONFLICT,
                &serde_json::json!({ "error": e.to_string() }).to_string(),
            )
        }
    };
    let now = crate::clock::now_ms();
    let schedule = crate::schedule::first_poll(&ctx.config.poll(request.provider), now);
    let payment = new.payment.clone();
    match ctx
        .store
        .write(move |c| crate::store::payments::mint(c, &payment, schedule, now))
        .await
    {
        Ok(registered) => {
            if registered.is_some() {
                ctx.wake_reconciler.notify_one();
            }
            let r = &new.payment.registration;
            // The log names the payment, never the URL: its tag is the credential.
            tracing::info!(provider = %r.provider, payment_id = %new.payment.payment_id, "callback URL minted");
            json(
                StatusCode::CREATED,
                &serde_json::json!({
                    "url": new.url,
                    "provider": r.provider.as_str(),
                    "provider_ref": (!r.provider_ref.is_empty()).then_some(&r.provider_ref),
                    "payment_id": new.payment.payment_id,
                    "merchant_ref": r.merchant_ref,
                })
                .to_string(),
            )
        }
        Err(e) if e.is_unavailable() => HttpError::Unavailable.response(),
        Err(e) => {
            tracing::error!(error = %e, "minting a callback URL failed");
            HttpError::Internal.response()
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintRequest<'a> {
    provider: String,
    kind: Option<String>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    currency: Option<String>,
    merchant_ref: Option<String>,
}

fn payment_request(body: &[u8]) -> Result<crate::minted::PaymentRequest, String> {
    let r: MintRequest = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let provider: ProviderId = r.provider.parse().map_err(|e| format!("provider: {e}"))?;
    let kind = r
        .kind
        .as_deref()
        .map(|k| k.parse::<TxnKind>().map_err(|e| format!("kind: {e}")))
        .transpose()?;
    Ok(crate::minted::PaymentRequest {
        provider,
        kind,
        merchant_ref: r.merchant_ref.filter(|m| !m.trim().is_empty()),
        expected: expected(r.amount, r.currency.as_deref())?,
    })
}

/// An expected amount from a request's `amount` and `currency`, which go together.
fn expected(amount: Option<&RawValue>, currency: Option<&str>) -> Result<Option<Money>, String> {
    let amount = amount
        .map(decimal_text)
        .transpose()
        .map_err(|e| format!("amount: {e}"))?
        .flatten();
    match (amount, currency) {
        (Some(a), Some(c)) => Ok(Some(
            Money::parse(&a, c).map_err(|e| format!("amount: {e}"))?,
        )),
        (None, None) => Ok(None),
        _ => Err("amount and currency go together".into()),
    }
}

/// Registers `reg`, first binding its reference to the minted payment `payment_id` (if
/// given), whose merchant reference and amount fill what the request leaves out. A
/// reference already bound elsewhere, or a payment bound to another reference, is refused.
fn register_with_payment(
    c: &rusqlite::Connection,
    mut reg: Registration,
    payment_id: Option<&str>,
    schedule: crate::store::transactions::Schedule,
    now: i64,
) -> Result<transactions::Registered, StoreError> {
    use crate::store::payments::{bind, Binding};
    if let Some(id) = payment_id {
        match bind(c, reg.provider, id, &reg.provider_ref, reg.kind, now)? {
            Binding::New(minted) => {
                reg.expected = reg.expected.or(minted.expected);
                reg.merchant_ref = reg.merchant_ref.or(minted.merchant_ref);
                if reg.kind == TxnKind::Unknown {
                    reg.kind = minted.kind;
                }
            }
            Binding::Conflict(why) => return Err(StoreError::Refused(why)),
            Binding::Same | Binding::Unknown => {}
        }
    }
    transactions::register(c, &reg, schedule, now)
}

/// Reads a registration body (and the minted payment it names, if any); the error says
/// what is wrong with it.
fn registration(body: &[u8]) -> Result<(Registration, Option<String>), String> {
    let r: TrackRequest = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let provider: ProviderId = r.provider.parse().map_err(|e| format!("provider: {e}"))?;
    let provider_ref = r.provider_ref.trim();
    if provider_ref.is_empty() {
        return Err("provider_ref must not be empty".into());
    }
    let kind = match r.kind.as_deref() {
        Some(k) => k.parse::<TxnKind>().map_err(|e| format!("kind: {e}"))?,
        None => TxnKind::Unknown,
    };
    let expected = expected(r.amount, r.currency.as_deref())?;
    let registration = Registration {
        provider,
        provider_ref: provider_ref.to_string(),
        kind,
        expected,
        merchant_ref: r.merchant_ref.filter(|m| !m.trim().is_empty()),
    };
    Ok((
        registration,
        r.payment_id
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_read_amounts_exactly_and_name_bad_fields() {
        let (r, _) = registration(
            br#"{"provider":"zengapay","provider_ref":" r-1 ","kind":"collection","amount":1500.50,"currency":"KES"}"#,
        )
        .unwrap();
        assert_eq!(
            (r.provider_ref.as_str(), r.expected.unwrap().minor),
            ("r-1", 150_050)
        );
        for (body, needle) in [
            (r#"{"provider":"paypal","provider_ref":"x"}"#, "provider"),
            (
                r#"{"provider":"zengapay","provider_ref":""}"#,
                "provider_ref",
            ),
            (
                r#"{"provider":"zengapay","provider_ref":"x","amount":"1.005","currency":"KES"}"#,
                "amount",
            ),
            (
                r#"{"provider":"zengapay","provider_ref":"x","amount":"1"}"#,
                "currency",
            ),
            (
                r#"{"provider":"zengapay","provider_ref":"x","kind":"loan"}"#,
                "kind",
            ),
            (
                r#"{"provider":"zengapay","provider_ref":"x","status":"SUCCEEDED"}"#,
                "status",
            ),
        ] {
            let err = registration(body.as_bytes()).unwrap_err();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }
}
