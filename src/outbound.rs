//! The one outbound HTTP client, shared by the reconciler (provider status endpoints) and
//! the forwarder (the merchant's application). HTTPS with the Mozilla roots bundled
//! (webpki-roots, so no system certificate store is needed), plain HTTP for loopback
//! tests and sandboxes.
//!
//! Every exchange is bounded by one timeout covering connect, headers and body, and the
//! body read is capped, so a slow or hostile peer cannot hold a loop or its memory.
//! Connection failures (nothing was sent) are retried at once a couple of times with
//! `backon`; anything after the request left is the caller's to schedule.

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

/// Connect timeout, within the overall request timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle pooled connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an exchange failed before a usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Could not connect (refused, DNS, TLS handshake); nothing was sent.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The exchange broke after the request was sent (reset, malformed answer).
    #[error("request failed: {0}")]
    Request(String),
    /// The answer's body was larger than the caller accepts.
    #[error("answer body over {0} bytes")]
    BodyTooLarge(usize),
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body (at most the caller's limit).
    pub body: Bytes,
    /// Time from sending to the complete body.
    pub latency: Duration,
}

/// A cloneable client with a connection pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// Builds the client (HTTPS via rustls with bundled roots, or plain HTTP).
    pub fn new() -> HttpClient {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(https);
        HttpClient { inner }
    }

    /// Sends `req` and reads the answer, all within `timeout`, refusing bodies over
    /// `max_body` bytes.
    pub async fn send(
        &self,
        req: Request<Full<Bytes>>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Reply, ClientError> {
        let started = Instant::now();
        let exchange = async {
            let (parts, body) = req.into_parts();
            // Only failures to connect are retried here: the request never left.
            let send = || {
                let req = Request::from_parts(parts.clone(), body.clone());
                async move { self.inner.request(req).await }
            };
            let resp = send
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(Duration::from_millis(50))
                        .with_max_times(2),
                )
                .when(|e: &hyper_util::client::legacy::Error| e.is_connect())
                .await
                .map_err(|e| {
                    if e.is_connect() {
                        ClientError::Connect(error_chain(&e))
                    } else {
                        ClientError::Request(error_chain(&e))
                    }
                })?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        ClientError::BodyTooLarge(max_body)
                    } else {
                        ClientError::Request(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
                latency: started.elapsed(),
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
