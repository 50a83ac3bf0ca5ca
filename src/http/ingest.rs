//! The callback path: resolve the client, read the body under a limit, verify the raw
//! bytes, parse, store durably, and only then acknowledge.
//!
//! Nothing a provider authenticated is dropped: a body that verifies but cannot be
//! parsed is stored raw, flagged for review, and acknowledged.

use super::allowlist::{self, Verdict};
use super::client_ip;
use super::error::{json, Body, HttpError};
use crate::clock::now_ms;
use crate::providers::{Coverage, ProviderId, RawCallback};
use crate::state::plan::Channel;
use crate::store::callbacks::{self, IngestOutcome, NewCallback};
use crate::store::transactions::Trust;
use crate::store::StoreError;
use crate::Ctx;
use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::time::Instant;

/// Header values never stored or logged: they carry credentials.
const REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "authorization-key",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    // A ZengaPay field signature covers reference, msisdn and amount only, so whoever can
    // read it can attach it to a body that says something else about the same payment:
    // it is a credential, not evidence. (Which variant matched stays in `callbacks.auth`.)
    "x-zengapay-signature",
    // Reverse proxies copy the original request path into these; for Daraja and Tujenge
    // the path holds the callback token (providers.md §3.6).
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-prefix",
    "x-original-uri",
    "x-original-url",
    "x-rewrite-url",
    "x-request-uri",
    "x-envoy-original-path",
    "referer",
];

/// Handles `POST /callbacks/{provider}[/{rest}]`.
pub async fn handle(
    ctx: &Ctx,
    provider: ProviderId,
    rest: Option<String>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, HttpError> {
    let started = Instant::now();
    let count = |outcome: &str| {
        ctx.metrics.inc(
            "payhook_callbacks_total",
            &[("provider", provider.as_str()), ("outcome", outcome)],
        )
    };
    // A provider that is not configured has no route: 404, as for any unknown path.
    let Some(p) = ctx.registry.get(provider) else {
        return Err(HttpError::NotFound);
    };
    let client = client_ip::resolve(peer.ip(), req.headers(), &ctx.config.trusted_proxies);
    // The address check comes before a byte of the body is read (issue 3). Log lines
    // name the address, never the path: for Daraja and Tujenge it holds the token.
    let verdict = ctx
        .config
        .providers
        .access(provider)
        .map_or(Verdict::NotChecked, |a| allowlist::check(client, a));
    match verdict {
        Verdict::Refused => {
            count("forbidden");
            ctx.metrics.inc(
                "payhook_ip_refusals_total",
                &[("provider", provider.as_str()), ("policy", "enforce")],
            );
            tracing::info!(provider = %provider, client_ip = %client, "callback refused: source address not in allowed_ips");
            return Err(HttpError::Forbidden);
        }
        Verdict::Tolerated => {
            ctx.metrics.inc(
                "payhook_ip_refusals_total",
                &[("provider", provider.as_str()), ("policy", "log-only")],
            );
            tracing::warn!(provider = %provider, client_ip = %client, "source address not in allowed_ips; accepted because ip_policy = \"log-only\"");
        }
        Verdict::Allowed | Verdict::NotChecked => {}
    }
    let (parts, body) = req.into_parts();
    let body = read_body(body, &parts.headers, ctx.config.max_body_bytes)
        .await
        .inspect_err(|e| {
            count(if *e == HttpError::PayloadTooLarge { "too_large" } else { "bad_body" });
            tracing::info!(provider = %provider, client_ip = %client, error = %e, "callback body refused");
        })?;
    let raw = RawCallback {
        path_rest: rest.as_deref(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
    };
    let mut verified = p.verify(&raw).map_err(|e| {
        count("unauthorized");
        ctx.metrics.inc(
            "payhook_auth_failures_total",
            &[("provider", provider.as_str()), ("reason", e.label())],
        );
        tracing::info!(provider = %provider, client_ip = %client, reason = e.label(), "callback refused: bad credential");
        HttpError::Unauthorized(e.label())
    })?;
    if verdict == Verdict::Allowed {
        // `callbacks.auth` records every check that passed, e.g. `token+ip`.
        verified.auth.push_str("+ip");
    }
    let parsed = p.parse_callback(&verified);
    if let Err(e) = &parsed {
        tracing::warn!(provider = %provider, error = %e, "authenticated callback could not be parsed; storing it raw for review");
    }
    let received_at_ms = now_ms();
    let schedule = crate::schedule::first_poll(&ctx.config.poll(provider), received_at_ms);
    let enforced = ctx
        .config
        .providers
        .access(provider)
        .is_some_and(|a| a.ip_policy == crate::config::IpPolicy::Enforce);
    let trust = Trust {
        channel: channel(
            verified.coverage,
            verdict == Verdict::Allowed
                && enforced
                && ctx.config.providers.allowlist_authenticates(provider),
            ctx.config.providers.confirm_unsigned(provider),
        ),
        confirmable: parsed
            .as_ref()
            .ok()
            .and_then(|e| e.report.as_ref())
            .is_some_and(|r| p.confirms(r.kind)),
    };
    let new = NewCallback {
        verified,
        parsed,
        headers_json: headers_json(&parts.headers),
        client_ip: Some(client.to_string()),
        received_at_ms,
        trust,
        schedule,
    };
    let parsed_event = new.parsed.as_ref().ok().cloned();
    let outcome = ctx
        .store
        .write_prechecked(move |conn| callbacks::ingest(conn, &new))
        .await
        .map_err(|e| match e {
            StoreError::NonceReplay => {
                count("replay");
                tracing::warn!(provider = %provider, client_ip = %client, "nonce replayed with a different body; refused");
                HttpError::Unauthorized("nonce_replayed")
            }
            e if e.is_unavailable() => {
                count("unavailable");
                tracing::warn!(provider = %provider, error = %e, "store unavailable; answered 503 so the provider retries");
                HttpError::Unavailable
            }
            e => {
                count("error");
                tracing::error!(provider = %provider, error = %e, "storing callback failed");
                HttpError::Internal
            }
        })?;
    let (label, txn_ref) = match &outcome {
        IngestOutcome::Stored { .. } => (
            "stored",
            parsed_event
                .as_ref()
                .and_then(|e| e.report.as_ref())
                .map(|r| r.provider_ref.as_str()),
        ),
        IngestOutcome::Duplicate { .. } => ("duplicate", None),
        IngestOutcome::Flagged { .. } => ("flagged", None),
    };
    count(label);
    if let IngestOutcome::Stored {
        applied: Some(a), ..
    } = &outcome
    {
        if a.outcome == crate::store::transactions::Outcome::Conflict {
            ctx.metrics.inc(
                "payhook_conflicts_total",
                &[("provider", provider.as_str())],
            );
        }
        if a.event_id.is_some() {
            ctx.wake_forwarder.notify_one();
        }
        if a.outcome == crate::store::transactions::Outcome::Unconfirmed {
            ctx.wake_reconciler.notify_one();
        }
    }
    ctx.metrics.observe_ack(started.elapsed());
    tracing::info!(provider = %provider, outcome = label, txn_ref = txn_ref.unwrap_or("-"), "callback stored");
    let ack = p.ack(parsed_event.as_ref());
    Ok(json(
        StatusCode::from_u16(ack.status).unwrap_or(StatusCode::OK),
        &ack.body,
    ))
}

/// How a verified callback was authenticated, in the decision function's terms: what its
/// credential covers, whether it came with a path token from an enforced allowlist that
/// the configuration trusts (`allowlisted`), and whether unsigned reports are hints at all
/// (`confirm_unsigned`).
fn channel(coverage: Coverage, allowlisted: bool, confirm_unsigned: bool) -> Channel {
    match coverage {
        Coverage::Body => Channel::Signed,
        Coverage::Token if allowlisted => Channel::TokenAllowlisted,
        _ if !confirm_unsigned => Channel::Configured,
        Coverage::Fields => Channel::FieldSigned,
        Coverage::Token => Channel::Token,
    }
}

/// Reads the whole body, refusing more than `limit` bytes (413) and slow senders (408).
pub(crate) async fn read_body(
    body: Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, HttpError> {
    // Refuse early when the client announces too much, without reading a byte of it.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(HttpError::PayloadTooLarge);
    }
    let collect = Limited::new(body, limit).collect();
    match tokio::time::timeout(super::BODY_READ_TIMEOUT, collect).await {
        Err(_) => Err(HttpError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(HttpError::PayloadTooLarge),
        Ok(Err(_)) => Err(HttpError::BadRequest),
    }
}

/// Request headers as a JSON object for `callbacks.headers`, credential values redacted.
fn headers_json(headers: &HeaderMap) -> String {
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let value = if REDACTED_HEADERS.contains(&name.as_str()) {
            "[redacted]".to_string()
        } else {
            values.join(", ")
        };
        map.insert(name.as_str().to_string(), serde_json::Value::String(value));
    }
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_are_redacted() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            "Basic aXBudXNlcjppcG5wYXNz".parse().unwrap(),
        );
        h.insert("authorization-key", "YOUR_API_KEY".parse().unwrap());
        h.insert("x-zengapay-signature", "abcd".parse().unwrap());
        h.insert(
            "x-original-uri",
            "/callbacks/daraja/t0k3n-daraja-aaaaaaaa".parse().unwrap(),
        );
        let j = headers_json(&h);
        assert!(
            !j.contains("aXBudXNlcjppcG5wYXNz")
                && !j.contains("YOUR_API_KEY")
                && !j.contains("t0k3n")
                && !j.contains("abcd"),
            "{j}"
        );
        assert!(j.contains("x-zengapay-signature"), "{j}");
    }
}
