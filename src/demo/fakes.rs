//! The demo's counterparts, each a small HTTP server on 127.0.0.1: a provider status API
//! (ZengaPay's) and a merchant that checks the Standard Webhooks signature of every event
//! it receives.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// An answer: status and JSON body.
type Answer = (u16, String);

/// Serves `handler` on a new 127.0.0.1 port until the runtime stops; returns the address.
async fn serve<F>(handler: F) -> std::io::Result<SocketAddr>
where
    F: Fn(http::request::Parts, Bytes) -> Answer + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let (status, text) = handler(parts, body);
                        http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(text)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// ZengaPay's collection status endpoint, answering SUCCEEDED for `reference` (and 404
/// for anything else), with the bearer token the demo configured.
pub async fn zengapay_api(
    reference: String,
    amount: String,
    token: String,
) -> std::io::Result<(SocketAddr, Arc<Mutex<u32>>)> {
    let asked = Arc::new(Mutex::new(0u32));
    let counter = asked.clone();
    let addr = serve(move |parts, _| {
        let bearer = format!("Bearer {token}");
        let authorised = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == bearer.as_bytes());
        if !authorised {
            return (401, r#"{"message":"unauthenticated"}"#.into());
        }
        if parts.uri.path() != format!("/v1/collections/{reference}") {
            return (404, r#"{"message":"not found"}"#.into());
        }
        if let Ok(mut n) = counter.lock() {
            *n += 1;
        }
        let body = serde_json::json!({"data": {"transactionReference": reference,
            "transactionStatus": "SUCCEEDED", "amount": amount.parse::<u64>().unwrap_or(0),
            "currencyCode": "UGX-MTNMM", "MNOTransactionReferenceId": "42026099999"}});
        (200, body.to_string())
    })
    .await?;
    Ok((addr, asked))
}

/// One event as the merchant received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// The event type from the body.
    pub event_type: String,
    /// `data.provider` / `data.provider_ref` from the body.
    pub about: String,
    /// Whether the Standard Webhooks signature verified.
    pub verified: bool,
}

/// A merchant endpoint that verifies each event's signature with `secret` and keeps what
/// it received.
pub async fn merchant(secret: &str) -> std::io::Result<(SocketAddr, Arc<Mutex<Vec<Received>>>)> {
    use crate::forward::sign::{
        SigningKey, HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP,
    };
    let key = SigningKey::parse(secret)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    let addr = serve(move |parts, body| {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let id = header(HEADER_WEBHOOK_ID);
        let ts: i64 = header(HEADER_WEBHOOK_TIMESTAMP).parse().unwrap_or(0);
        let expected = key.sign(&id, ts, &body);
        let verified = header(HEADER_WEBHOOK_SIGNATURE)
            .split(' ')
            .any(|s| s == expected);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_string();
        let event = Received {
            id,
            event_type: text(&json["type"]),
            about: format!(
                "{} {}",
                text(&json["data"]["provider"]),
                text(&json["data"]["provider_ref"])
            ),
            verified,
        };
        if let Ok(mut l) = log.lock() {
            l.push(event);
        }
        if verified {
            (200, "{}".into())
        } else {
            (401, r#"{"error":"bad signature"}"#.into())
        }
    })
    .await?;
    Ok((addr, received))
}
