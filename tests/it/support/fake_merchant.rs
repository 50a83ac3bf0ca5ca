//! A fake merchant application on 127.0.0.1:0 (after svix's `TestReceiver`): it records
//! every request it gets (headers and body) into a channel, and answers as the test's
//! rule says: a status (with `Retry-After` if asked), a hang, or a closed connection.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How the merchant answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// This status, body "ok"/"no".
    Status(u16),
    /// This status with `Retry-After: <value>`.
    RetryAfter(u16, String),
    /// Never answer (the daemon's timeout must cut it off).
    Hang,
    /// Close the connection without answering.
    Close,
    /// This status, after holding the request this long (a delivery in flight).
    After(Duration, u16),
}

/// One request as the merchant saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
    pub fn id(&self) -> &str {
        self.header("webhook-id")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Rule = Box<dyn Fn(&Received) -> Answer + Send + Sync>;

pub struct FakeMerchant {
    pub addr: SocketAddr,
    rule: Arc<Mutex<Rule>>,
    rx: mpsc::UnboundedReceiver<Received>,
    task: JoinHandle<()>,
}

/// The longest a test waits for a delivery before failing (a guard, not a sleep).
const WAIT: Duration = Duration::from_secs(20);

impl FakeMerchant {
    /// Starts a merchant answering 200 to everything.
    pub async fn start() -> FakeMerchant {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rule: Arc<Mutex<Rule>> = Arc::new(Mutex::new(Box::new(|_| Answer::Status(200))));
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = rule.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (tx, rule) = (tx.clone(), shared.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (tx, rule) = (tx.clone(), rule.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let got = Received {
                                headers: parts.headers,
                                body,
                            };
                            let answer = (rule.lock().unwrap())(&got);
                            let _ = tx.send(got);
                            let (status, retry_after) = match answer {
                                Answer::Status(s) => (s, None),
                                Answer::After(wait, s) => {
                                    tokio::time::sleep(wait).await;
                                    (s, None)
                                }
                                Answer::RetryAfter(s, v) => (s, Some(v)),
                                Answer::Hang => {
                                    std::future::pending::<()>().await;
                                    unreachable!()
                                }
                                Answer::Close => {
                                    return Err(std::io::Error::other("closing on purpose"))
                                }
                            };
                            let mut resp = Response::new(Full::new(Bytes::from(if status < 300 {
                                "ok"
                            } else {
                                "no, not now"
                            })));
                            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                            if let Some(v) = retry_after {
                                resp.headers_mut().insert("retry-after", v.parse().unwrap());
                            }
                            Ok::<_, std::io::Error>(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeMerchant {
            addr,
            rule,
            rx,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/payhook", self.addr)
    }

    /// Answers every request with `answer` from now on.
    pub fn answer(&self, answer: Answer) {
        *self.rule.lock().unwrap() = Box::new(move |_| answer.clone());
    }

    /// Answers by a rule over the request.
    pub fn answer_with(&self, rule: impl Fn(&Received) -> Answer + Send + Sync + 'static) {
        *self.rule.lock().unwrap() = Box::new(rule);
    }

    /// The next request received, waiting for it (bounded by a guard timeout).
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("the merchant received a request in time")
            .expect("the merchant is running")
    }

    /// Every request received so far and not yet taken.
    pub fn take(&mut self) -> Vec<Received> {
        let mut out = Vec::new();
        while let Ok(r) = self.rx.try_recv() {
            out.push(r);
        }
        out
    }
}

impl Drop for FakeMerchant {
    fn drop(&mut self) {
        self.task.abort();
    }
}
