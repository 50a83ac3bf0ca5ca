//! The pull feed on the admin listener, for consumers that cannot receive inbound HTTP:
//!
//! `GET /v1/events?after=CURSOR&limit=N[&wait=30s][&type=…][&provider=…]` answers
//! `200 {"data": [event, …], "next": "CURSOR", "done": true|false}`. Each event is the
//! JSON body a destination receives, byte for byte, in outbox order. Without `after` the
//! feed starts at the oldest event. `next` is the cursor to pass as `after` to continue
//! (the one given, when the page is empty); `done` says the page reached the newest
//! event. With `wait` (at most [`MAX_WAIT`]), an empty page is held open until an event
//! arrives or the time passes. A consumer that keeps its cursor gets every event exactly
//! once, in order, across restarts: the cursor is an outbox position that a later commit
//! can never fall behind (`crate::store::feed` explains why).
//!
//! A waiting request is not cut short when payhook stops: it holds the admin listener's
//! drain until it ends or the drain deadline passes, and the consumer simply asks again.
//!
//! Answers: 400 for a parameter payhook cannot read (the message names it); 401 without
//! the admin token (checked by [`super::admin`]); 503 when the store is unavailable.

use super::error::{json, Body, HttpError};
use crate::store::feed;
use crate::Ctx;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::time::{Duration, Instant};

/// Events per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit` accepted.
pub const MAX_LIMIT: usize = 1000;
/// Longest `wait` honoured: a longer one is cut to this, so that no proxy's idle timeout
/// (often 60 s) cuts the answer off first.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// How often a waiting request looks for a new event. Events can be written by another
/// process (the CLI), which no in-process notification reaches; a read of the feed's
/// index is cheap, and this bounds the delay after an event to a fraction of a second.
pub const WAIT_POLL: Duration = Duration::from_millis(200);

/// What a feed request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FeedQuery {
    after: i64,
    limit: usize,
    wait: Duration,
    event_type: Option<String>,
    provider: Option<String>,
}

/// The opaque cursor for outbox position `seq`.
fn cursor(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{seq}"))
}

fn parse_cursor(text: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
    let seq = std::str::from_utf8(&raw).ok()?.strip_prefix("v1:")?;
    seq.parse().ok().filter(|n: &i64| *n >= 0)
}

/// Decodes `%XX` escapes and `+` in a query value.
fn unescape(v: &str) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
    let mut bytes = v.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn parse_query(query: Option<&str>) -> Result<FeedQuery, String> {
    let mut q = FeedQuery {
        after: 0,
        limit: DEFAULT_LIMIT,
        wait: Duration::ZERO,
        event_type: None,
        provider: None,
    };
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = unescape(value).ok_or_else(|| format!("{key}: bad escape"))?;
        match key {
            "after" => {
                q.after = parse_cursor(&value)
                    .ok_or("after: not a cursor this feed gave out (use the last \"next\")")?;
            }
            "limit" => {
                q.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or(format!("limit: must be between 1 and {MAX_LIMIT}"))?;
            }
            "wait" => {
                let wait =
                    crate::config::parse_duration(&value).map_err(|why| format!("wait: {why}"))?;
                q.wait = wait.min(MAX_WAIT);
            }
            "type" => {
                if !crate::config::EVENT_TYPES.contains(&value.as_str()) {
                    return Err(format!("type: unknown event type {value:?}"));
                }
                q.event_type = Some(value);
            }
            "provider" => {
                let p: crate::domain::ProviderId =
                    value.parse().map_err(|e| format!("provider: {e}"))?;
                q.provider = Some(p.as_str().to_string());
            }
            other => return Err(format!("{other}: unknown parameter")),
        }
    }
    Ok(q)
}

/// Answers `GET /v1/events` (the admin token is already checked).
pub async fn handle(ctx: &Ctx, req: &Request<Incoming>) -> Response<Body> {
    let q = match parse_query(req.uri().query()) {
        Ok(q) => q,
        Err(why) => {
            return json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({ "error": why }).to_string(),
            )
        }
    };
    let deadline = Instant::now() + q.wait;
    loop {
        let (after, limit) = (q.after, q.limit);
        let (t, p) = (q.event_type.clone(), q.provider.clone());
        // One more than asked, to tell "done" from "exactly a full page left".
        let page = ctx
            .store
            .read(move |c| feed::page(c, after, limit + 1, t.as_deref(), p.as_deref()))
            .await;
        let mut page = match page {
            Ok(p) => p,
            Err(e) if e.is_unavailable() => return HttpError::Unavailable.response(),
            Err(e) => {
                tracing::error!(error = %e, "the event feed failed");
                return HttpError::Internal.response();
            }
        };
        let now = Instant::now();
        if page.is_empty() && now < deadline {
            tokio::time::sleep(WAIT_POLL.min(deadline - now)).await;
            continue;
        }
        let done = page.len() <= q.limit;
        page.truncate(q.limit);
        let next = page.last().map_or(q.after, |e| e.seq);
        return json(StatusCode::OK, &body(&page, &cursor(next), done));
    }
}

/// The answer, with each payload inserted verbatim (it is JSON, fixed at creation), so
/// that a consumer can verify or hash exactly what a destination would have received.
fn body(page: &[feed::FeedEvent], next: &str, done: bool) -> String {
    let len: usize = page.iter().map(|e| e.payload.len() + 1).sum();
    let mut out = String::with_capacity(len + 64);
    out.push_str("{\"data\":[");
    for (i, e) in page.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&e.payload);
    }
    out.push_str("],\"next\":");
    out.push_str(&serde_json::Value::from(next).to_string());
    out.push_str(",\"done\":");
    out.push_str(if done { "true" } else { "false" });
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        for n in [0, 1, 42, i64::MAX] {
            assert_eq!(parse_cursor(&cursor(n)), Some(n));
        }
        for bad in ["", "12", "djE6LTE", "!!", &URL_SAFE_NO_PAD.encode("v2:3")] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn queries_are_read_and_bad_ones_name_the_parameter() {
        let q = parse_query(Some(&format!(
            "after={}&limit=1&wait=90s&type=transaction.failed&provider=jenga",
            cursor(7)
        )))
        .unwrap();
        assert_eq!(
            q,
            FeedQuery {
                after: 7,
                limit: 1,
                wait: MAX_WAIT,
                event_type: Some("transaction.failed".into()),
                provider: Some("jenga".into()),
            }
        );
        assert_eq!(parse_query(None).unwrap().limit, DEFAULT_LIMIT);
        for (query, needle) in [
            ("after=xyz", "after"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("wait=soon", "wait"),
            ("type=transaction.paid", "type"),
            ("provider=paypal", "provider"),
            ("since=1", "since"),
            ("type=%zz", "type"),
        ] {
            let err = parse_query(Some(query)).unwrap_err();
            assert!(err.starts_with(needle), "{query}: {err}");
        }
    }

    #[test]
    fn the_body_carries_payloads_verbatim() {
        let page = [
            feed::FeedEvent {
                seq: 1,
                payload: r#"{"id":"evt_1", "a":1.50}"#.into(),
            },
            feed::FeedEvent {
                seq: 2,
                payload: r#"{"id":"evt_2"}"#.into(),
            },
        ];
        let b = body(&page, "abc", false);
        assert_eq!(
            b,
            r#"{"data":[{"id":"evt_1", "a":1.50},{"id":"evt_2"}],"next":"abc","done":false}"#
        );
        let v: serde_json::Value = serde_json::from_str(&body(&[], "c", true)).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 0);
    }
}
