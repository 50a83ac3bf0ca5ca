//! A fake provider API on 127.0.0.1:0: answers from a scripted queue per path (then a
//! default answer), and records every request with the instant it arrived, so tests can
//! assert on what payhook sent and how fast.

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct FakeReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (a slow provider).
    pub delay: Duration,
}

impl FakeReply {
    pub fn new(status: u16, body: impl Into<String>) -> FakeReply {
        FakeReply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> FakeReply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delayed(mut self, d: Duration) -> FakeReply {
        self.delay = d;
        self
    }
}

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct State {
    scripts: Mutex<HashMap<String, VecDeque<FakeReply>>>,
    default: Mutex<Option<FakeReply>>,
    seen: Mutex<Vec<Seen>>,
    arrived: Notify,
}

pub struct FakeProvider {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl FakeProvider {
    pub async fn start() -> FakeProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(st.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeProvider { addr, state }
    }

    /// The base URL to configure as the provider's `base_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues `reply` for the next request to `target`: a path and query, or a path alone
    /// (then any query matches).
    pub fn push(&self, target: &str, reply: FakeReply) {
        self.state
            .scripts
            .lock()
            .unwrap()
            .entry(target.to_string())
            .or_default()
            .push_back(reply);
    }

    /// The answer when no script is queued for a path (404 until set).
    pub fn set_default(&self, reply: FakeReply) {
        *self.state.default.lock().unwrap() = Some(reply);
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Waits (without polling) until at least `n` requests arrived, or panics after `limit`.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Seen> {
        tokio::time::timeout(limit, async {
            loop {
                let notified = self.state.arrived.notified();
                let seen = self.requests();
                if seen.len() >= n {
                    return seen;
                }
                notified.await;
            }
        })
        .await
        .expect("the fake provider did not receive the expected requests in time")
    }
}

async fn answer(
    st: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let at = Instant::now();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let method = req.method().to_string();
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // A script queued for the exact target (path and query) first, then for the path.
    let path = parts.uri.path().to_string();
    let reply = {
        let mut scripts = st.scripts.lock().unwrap();
        scripts
            .get_mut(&target)
            .and_then(VecDeque::pop_front)
            .or_else(|| scripts.get_mut(&path).and_then(VecDeque::pop_front))
    }
    .or_else(|| st.default.lock().unwrap().clone())
    .unwrap_or_else(|| FakeReply::new(404, "{}"));
    st.seen.lock().unwrap().push(Seen {
        at,
        method,
        target,
        headers: parts.headers,
        body,
    });
    st.arrived.notify_waiters();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        resp = resp.header(k, v);
    }
    Ok(resp.body(Full::new(Bytes::from(reply.body))).unwrap())
}
