//! The callback path: resolve the client, read the body under a limit, verify the raw
//! bytes, parse, store durably, and only then acknowledge.
//!
//! Nothing a provider authenticated is dropped: a body that verifies but cannot be
//! parsed is stored raw, flagged for review, and acknowledged.

use super::allowlist::{self, Verdict};
use super::client_ip;
use super::error::{json, Body, HttpError};
use crate::clock::now_ms;
use crate::domain::{Coverage, ProviderId};
use crate::providers::RawCallback;
use crate::state::plan::Channel;
use crate::store::callbacks::{self, IngestOutcome, NewCallback};
use crate::store::transactions::Trust;
use crate::store::StoreError;
use crate::Ctx;
use bytes::Bytes;
use http::{header, HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

/// Request headers stored with a callback, value and all: what a person needs to tell
/// one sender, proxy or retry from another. Everything else is left out, so a header this
/// list did not foresee (a proxy's `X-Replaced-Path` holding a path token, a cookie) is
/// never written to disk.
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "user-agent",
    // Forwarding headers: which proxy chain the request came through.
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
    "via",
    // BitPesa's nonce is not a credential; a replay is told by it.
    crate::providers::bitpesa::NONCE_HEADER,
];

/// The providers' credential headers: stored by name with the value `[redacted]`, so the
/// row shows that the credential was present without keeping it.
const REDACTED_HEADERS: &[&str] = &[
    // Jenga's IPN Basic credentials.
    "authorization",
    "proxy-authorization",
    crate::providers::bitpesa::KEY_HEADER,
    crate::providers::bitpesa::SIGNATURE_HEADER,
    // A ZengaPay field signature covers reference, msisdn and amount only, so whoever can
    // read it can attach it to a body that says something else about the same payment:
    // it is a credential, not evidence. (Which variant matched stays in `callbacks.auth`.)
    crate::providers::zengapay::SIGNATURE_HEADER,
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
    let count = |outcome: &str| count(ctx, provider, outcome);
    // A provider that is not configured has no route: 404, as for any unknown path.
    let Some(p) = ctx.registry.get(provider) else {
        // The path names a provider, not a token: it may be logged.
        let client = client_ip::resolve(peer.ip(), req.headers(), &ctx.config.trusted_proxies);
        tracing::debug!(provider = %provider, client_ip = %client, "callback for a provider that is not configured; answered 404 (it needs a [providers.{provider}] section)");
        return Err(HttpError::NotFound);
    };
    let client = client_ip::resolve(peer.ip(), req.headers(), &ctx.config.trusted_proxies);
    let verdict = source_check(ctx, provider, client)?;
    let (parts, body) = req.into_parts();
    let body = read_body(body, &parts.headers, ctx.config.max_body_bytes)
        .await
        .inspect_err(|e| {
            count(if *e == HttpError::PayloadTooLarge { "too_large" } else { "bad_body" });
            tracing::info!(provider = %provider, client_ip = %client, error = %e, "callback body refused");
        })?;
    let refuse = |e: crate::providers::VerifyError| {
        count("unauthorized");
        ctx.metrics.inc(
            crate::metrics::AUTH_FAILURES_TOTAL,
            &[("provider", provider.as_str()), ("reason", e.label())],
        );
        tracing::info!(provider = %provider, client_ip = %client, reason = e.label(), "callback refused: bad credential");
        HttpError::Unauthorized(e.label())
    };
    // A minted per-payment URL: its tag is checked here, statelessly, before the provider
    // sees the request; the provider then gets the payment id and the sub-route.
    let (payment, path_rest) = match rest.as_deref().and_then(crate::minted::split) {
        Some((id_tag, sub)) if ctx.minter.enabled() => match ctx.minter.verify(provider, id_tag) {
            Some(id) => (Some(id), sub),
            None => return Err(refuse(crate::providers::VerifyError::UnknownToken)),
        },
        _ => (None, rest.as_deref()),
    };
    let raw = RawCallback {
        path_rest,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
        payment: payment.as_deref(),
    };
    let mut verified = p.verify(&raw).map_err(&refuse)?;
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
    let trust = trust(ctx, provider, &**p, verified.coverage, verdict);
    let (body_sha256, report_sha256) = NewCallback::hashes(&verified, &parsed);
    let new = NewCallback {
        verified,
        parsed,
        body_sha256,
        report_sha256,
        headers_json: headers_json(&parts.headers),
        client_ip: Some(client.to_string()),
        received_at_ms,
        trust,
        schedule,
    };
    // What the answer and the log line need, taken before the callback moves into the
    // writer's job: the ack depends only on what the body says, not on the store.
    let ack = p.ack(new.parsed.as_ref().ok());
    let parsed_ref = new
        .parsed
        .as_ref()
        .ok()
        .and_then(|e| e.report.as_ref())
        .map(|r| r.provider_ref.clone());
    let outcome = ctx
        .store
        .write_prechecked(move |conn| callbacks::ingest(conn, &new))
        .await
        .map_err(|e| store_error(ctx, provider, client, e))?;
    let (label, txn_ref) = match &outcome {
        IngestOutcome::Stored { .. } => ("stored", parsed_ref.as_deref()),
        // A retry parses as the original did: its reference says which payment it was.
        IngestOutcome::Duplicate { .. } => ("duplicate", parsed_ref.as_deref()),
        IngestOutcome::Flagged { .. } => ("flagged", None),
    };
    count(label);
    wake_and_count(ctx, provider, &outcome);
    ctx.metrics.observe_ack(started.elapsed());
    tracing::info!(provider = %provider, outcome = label, txn_ref = txn_ref.unwrap_or("-"), "callback stored");
    Ok(json(
        StatusCode::from_u16(ack.status).unwrap_or(StatusCode::OK),
        &ack.body,
    ))
}

/// Counts a callback's outcome (`payhook_callbacks_total`).
fn count(ctx: &Ctx, provider: ProviderId, outcome: &str) {
    ctx.metrics.inc(
        crate::metrics::CALLBACKS_TOTAL,
        &[("provider", provider.as_str()), ("outcome", outcome)],
    )
}

/// The source-address check of `provider`'s route, before a byte of the body is read.
fn source_check(
    ctx: &Ctx,
    provider: ProviderId,
    client: std::net::IpAddr,
) -> Result<Verdict, HttpError> {
    // The address check comes before a byte of the body is read. Log lines
    // name the address, never the path: for Daraja and Tujenge it holds the token.
    let verdict = ctx
        .config
        .providers
        .access(provider)
        .map_or(Verdict::NotChecked, |a| allowlist::check(client, a));
    match verdict {
        Verdict::Refused => {
            count(ctx, provider, "forbidden");
            ctx.metrics.inc(
                crate::metrics::IP_REFUSALS_TOTAL,
                &[("provider", provider.as_str()), ("policy", "enforce")],
            );
            tracing::info!(provider = %provider, client_ip = %client, "callback refused: source address not in allowed_ips");
            return Err(HttpError::Forbidden);
        }
        Verdict::Tolerated => {
            ctx.metrics.inc(
                crate::metrics::IP_REFUSALS_TOTAL,
                &[("provider", provider.as_str()), ("policy", "log-only")],
            );
            tracing::warn!(provider = %provider, client_ip = %client, "source address not in allowed_ips; accepted because ip_policy = \"log-only\"");
        }
        Verdict::Allowed | Verdict::NotChecked => {}
    }
    Ok(verdict)
}

/// What the callback's credential and address vouch for ([`channel`]), and which kinds
/// of payment its provider can confirm with a status query.
fn trust(
    ctx: &Ctx,
    provider: ProviderId,
    p: &dyn crate::providers::Provider,
    coverage: Coverage,
    verdict: Verdict,
) -> Trust {
    let enforced = ctx
        .config
        .providers
        .access(provider)
        .is_some_and(|a| a.ip_policy == crate::config::IpPolicy::Enforce);
    Trust {
        channel: channel(
            coverage,
            verdict == Verdict::Allowed
                && enforced
                && ctx.config.providers.allowlist_authenticates(provider),
            ctx.config.providers.confirm_unsigned(provider),
        ),
        confirms: crate::domain::Kinds::of(|k| p.confirms(k)),
    }
}

/// The answer to a callback the store did not take: a replayed nonce is a bad credential,
/// an unavailable store a 503 so that the provider retries.
fn store_error(
    ctx: &Ctx,
    provider: ProviderId,
    client: std::net::IpAddr,
    e: StoreError,
) -> HttpError {
    match e {
        StoreError::NonceReplay => {
            count(ctx, provider, "replay");
            tracing::warn!(provider = %provider, client_ip = %client, "nonce replayed with a different body; refused");
            HttpError::Unauthorized("nonce_replayed")
        }
        e if e.is_unavailable() => {
            count(ctx, provider, "unavailable");
            tracing::warn!(provider = %provider, error = %e, "store unavailable; answered 503 so the provider retries");
            HttpError::Unavailable
        }
        e => {
            count(ctx, provider, "error");
            tracing::error!(provider = %provider, error = %e, "storing callback failed");
            HttpError::Internal
        }
    }
}

/// Counts a conflict, and wakes the forwarder for a new event and the reconciler for an
/// unconfirmed success.
fn wake_and_count(ctx: &Ctx, provider: ProviderId, outcome: &IngestOutcome) {
    if let IngestOutcome::Stored {
        applied: Some(a), ..
    } = outcome
    {
        if a.outcome == crate::store::transactions::Outcome::Conflict {
            ctx.metrics.inc(
                crate::metrics::CONFLICTS_TOTAL,
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

/// Request headers as a JSON object for `callbacks.headers`: the [`KEPT_HEADERS`] with
/// their values, the [`REDACTED_HEADERS`] as `[redacted]`, nothing else, in name order.
///
/// Every callback's request task builds it, so names and single values are borrowed from
/// the request rather than copied into a `serde_json::Map` of owned strings.
fn headers_json(headers: &HeaderMap) -> String {
    let mut kept: BTreeMap<&str, Cow<'_, str>> = BTreeMap::new();
    for name in headers.keys() {
        let n = name.as_str();
        let value = if KEPT_HEADERS.contains(&n) {
            let mut values = headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()));
            let Some(first) = values.next() else { continue };
            match values.next() {
                None => first,
                Some(second) => {
                    let mut joined = format!("{first}, {second}");
                    for v in values {
                        joined.push_str(", ");
                        joined.push_str(&v);
                    }
                    Cow::Owned(joined)
                }
            }
        } else if REDACTED_HEADERS.contains(&n) {
            Cow::Borrowed("[redacted]")
        } else {
            continue;
        };
        kept.insert(n, value);
    }
    // Serialising string keys and values cannot fail.
    serde_json::to_string(&kept).unwrap_or_else(|_| String::from("{}"))
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

    #[test]
    fn headers_json_is_what_a_json_map_of_the_same_headers_serialises_to() {
        // The stored text is unchanged from when it was built through a
        // `serde_json::Map`: same keys, joined values, escaping and order.
        let mut h = HeaderMap::new();
        h.insert("user-agent", "Agent \"q\" \\ 1".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.1".parse().unwrap());
        h.append("x-forwarded-for", "196.201.214.200".parse().unwrap());
        h.append("x-forwarded-for", "10.0.0.2".parse().unwrap());
        h.append("via", "1.1 proxy".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        h.insert(
            "x-real-ip",
            http::HeaderValue::from_bytes(b"caf\xe9\tx").unwrap(),
        );
        h.insert("authorization", "Basic c2VjcmV0".parse().unwrap());
        h.insert("cookie", "session=abc123".parse().unwrap());
        let mut expected = serde_json::Map::new();
        for (k, v) in [
            ("user-agent", "Agent \"q\" \\ 1"),
            ("x-forwarded-for", "10.0.0.1, 196.201.214.200, 10.0.0.2"),
            ("via", "1.1 proxy"),
            ("content-type", "application/json"),
            ("x-real-ip", "caf\u{fffd}\tx"),
            ("authorization", "[redacted]"),
        ] {
            expected.insert(k.to_string(), serde_json::Value::String(v.to_string()));
        }
        let text = headers_json(&h);
        assert_eq!(text, serde_json::Value::Object(expected).to_string());
        // The text itself, so that the comparison does not rest on the Map's key order.
        assert_eq!(
            text,
            r#"{"authorization":"[redacted]","content-type":"application/json","user-agent":"Agent \"q\" \\ 1","via":"1.1 proxy","x-forwarded-for":"10.0.0.1, 196.201.214.200, 10.0.0.2","x-real-ip":"caf�\tx"}"#
        );
        assert_eq!(headers_json(&HeaderMap::new()), "{}");
    }

    #[test]
    fn only_allowed_headers_are_kept() {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        h.insert("user-agent", "Safaricom/1.0".parse().unwrap());
        h.insert("x-forwarded-for", "196.201.214.200".parse().unwrap());
        h.insert("authorization-nonce", "n-42".parse().unwrap());
        h.insert("authorization-signature", "c2lnbmF0dXJl".parse().unwrap());
        h.insert(
            "x-replaced-path",
            "/callbacks/tujenge/tok-tujenge-secret-0001"
                .parse()
                .unwrap(),
        );
        h.insert("cookie", "session=abc123".parse().unwrap());
        let j: serde_json::Value = serde_json::from_str(&headers_json(&h)).unwrap();
        assert_eq!(j["content-type"], "application/json");
        assert_eq!(j["user-agent"], "Safaricom/1.0");
        assert_eq!(j["x-forwarded-for"], "196.201.214.200");
        assert_eq!(j["authorization-nonce"], "n-42");
        assert_eq!(j["authorization-signature"], "[redacted]");
        assert!(j.get("x-replaced-path").is_none(), "{j}");
        assert!(j.get("cookie").is_none(), "{j}");
    }
}
