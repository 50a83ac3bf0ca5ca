//! Tujenge callbacks: `POST /callbacks/tujenge/{token}`.
//!
//! Tujenge documents nothing but the `callBackUrl` of a payment request: no body shape,
//! no signature, no transaction id in its reply. The only correlation and the only
//! credential is the secret token we put in that URL, compared in constant time with
//! the configured tokens. Callbacks are unsigned.
//!
//! **Correlation.** The transaction's `provider_ref` is `tok_` followed by
//! [`super::daraja::token_id`] of the token that matched (16 hex digits of its SHA-256):
//! the merchant who generated the token can compute it, and the token itself never
//! reaches the store, a log line or an event. One token per payment, one transaction
//! per token.
//!
//! **Reading.** If the body turns out to be a forwarded Daraja STK result
//! (`Body.stkCallback`), Daraja's parser reads status, amount, receipt and phone number
//! (the CheckoutRequestID stays in the raw body). Any other body is
//! kept raw and reported as PENDING, so the transaction exists and reaches review at its
//! deadline (there is no status endpoint to ask). Deduplication is on the token and
//! the SHA-256 of the body.

pub mod config;

use super::daraja;
use super::path_token::{match_token, minted, split_path, token_id};
use super::sample::{first_token, stk_body, Sample, SampleCallback, SampleError};
use super::{
    sha256_hex, CallbackEvent, ParseError, Provider, ProviderId, RawCallback, StatusReport,
    TxnKind, VerifiedCallback, VerifyError,
};
use crate::secret::Secret;
use crate::state::Status;
pub use config::TujengeConfig;

/// The Tujenge provider.
pub struct Tujenge {
    tokens: Vec<Secret>,
}

impl Tujenge {
    /// From `[providers.tujenge]`.
    pub fn new(cfg: &TujengeConfig) -> Self {
        Tujenge {
            tokens: cfg.callback_tokens.clone(),
        }
    }
}

/// The `provider_ref` of the transaction a token correlates (see the module docs).
pub fn provider_ref_of(token_id: &str) -> String {
    format!("tok_{token_id}")
}

impl Provider for Tujenge {
    fn id(&self) -> ProviderId {
        ProviderId::Tujenge
    }

    fn verify(&self, req: &RawCallback<'_>) -> Result<VerifiedCallback, VerifyError> {
        if let Some(payment) = req.payment {
            return Ok(minted(ProviderId::Tujenge, payment, req));
        }
        let (token, _) = split_path(req.path_rest);
        let token = token.ok_or(VerifyError::UnknownToken)?;
        match_token(&self.tokens, token).ok_or(VerifyError::UnknownToken)?;
        let mut v = VerifiedCallback::new(ProviderId::Tujenge, "token", false, req.body.clone());
        v.path_token = Some(token_id(token));
        Ok(v)
    }

    fn parse_callback(&self, cb: &VerifiedCallback) -> Result<CallbackEvent, ParseError> {
        // On a minted URL the payment id is the transaction's reference: one payment, one
        // transaction, whatever token scheme the merchant also uses.
        if let Some(payment) = &cb.payment {
            return parse_for(payment.clone(), &cb.body);
        }
        let token = cb
            .path_token
            .as_deref()
            .ok_or(ParseError::Missing("path token"))?;
        parse_body(token, &cb.body)
    }
}

/// Reads a Tujenge body that came with the token identified by `token_id`.
pub fn parse_body(token_id: &str, body: &[u8]) -> Result<CallbackEvent, ParseError> {
    parse_for(provider_ref_of(token_id), body)
}

/// Reads a Tujenge body about the transaction `provider_ref`.
fn parse_for(provider_ref: String, body: &[u8]) -> Result<CallbackEvent, ParseError> {
    let dedup_key = format!("{provider_ref}:sha256:{}", sha256_hex(body));
    // A body that is not JSON at all is still an unknown shape, not an error: nothing
    // says Tujenge sends JSON.
    let stk = match daraja::stk_report(body) {
        Ok(r) => r,
        Err(ParseError::Json(_)) => None,
        Err(e) => return Err(e),
    };
    let (kind, report) = match stk {
        Some(stk) => {
            let mut r = StatusReport {
                provider_ref,
                ..stk
            };
            r.kind = TxnKind::Stk;
            ("daraja_stk", r)
        }
        None => {
            let r = StatusReport::new(provider_ref, TxnKind::Unknown, Status::Pending);
            ("unknown", r)
        }
    };
    Ok(CallbackEvent {
        kind: kind.to_string(),
        dedup_key,
        report: Some(report),
    })
}

/// A Tujenge sample.
pub(crate) fn sample(t: &TujengeConfig, ctx: &Sample<'_>) -> Result<SampleCallback, SampleError> {
    let (spec, r) = (ctx.spec, &ctx.spec.reference);
    let body = stk_body(r, ctx.number(), spec.status, ctx.provider)?;
    let token = first_token(&t.callback_tokens).ok_or(SampleError::NotConfigured(ctx.provider))?;
    Ok(SampleCallback {
        path: format!("/callbacks/tujenge/{token}"),
        headers: Vec::new(),
        body,
        provider_ref: format!("tok_{}", token_id(token)),
        signed_as: "the secret callback token in the path (Tujenge signs nothing)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::HeaderMap;

    const TOKEN: &str = "tj-pay-0001-abcdefgh";

    fn verify(rest: Option<&str>) -> Result<VerifiedCallback, VerifyError> {
        let p = Tujenge {
            tokens: vec![Secret::new(TOKEN)],
        };
        let headers = HeaderMap::new();
        let body = Bytes::from_static(b"{}");
        p.verify(&RawCallback {
            path_rest: rest,
            path: "/callbacks/tujenge/…",
            query: None,
            headers: &headers,
            body: &body,
            payment: None,
        })
    }

    #[test]
    fn the_token_correlates_without_being_kept() {
        let v = verify(Some(TOKEN)).unwrap();
        assert!(!v.signed);
        let id = v.path_token.clone().unwrap();
        assert_eq!(id.len(), 16);
        assert!(!format!("{v:?}").contains(TOKEN));
        assert_eq!(verify(Some("nope")).unwrap_err(), VerifyError::UnknownToken);
        assert_eq!(verify(None).unwrap_err(), VerifyError::UnknownToken);
    }

    #[test]
    fn a_forwarded_stk_result_is_read_as_daraja() {
        let body = std::fs::read(format!(
            "{}/fixtures/tujenge/forwarded_stk_success.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let ev = parse_body("0123456789abcdef", &body).unwrap();
        let r = ev.report.unwrap();
        assert_eq!(r.provider_ref, "tok_0123456789abcdef");
        assert_eq!((r.status, r.kind), (Status::Succeeded, TxnKind::Stk));
        assert_eq!(r.money.unwrap().minor, 10000);
    }

    #[test]
    fn an_unknown_shape_is_pending_and_deduplicated_by_body() {
        let a = parse_body("0123456789abcdef", br#"{"status":"ok"}"#).unwrap();
        let b = parse_body("0123456789abcdef", b"plain text").unwrap();
        assert_eq!(a.report.unwrap().status, Status::Pending);
        assert_eq!(b.kind, "unknown");
        assert_ne!(a.dedup_key, b.dedup_key);
    }
}
