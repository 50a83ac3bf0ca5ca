//! The shared outbound client: every exchange is bounded in time and size.

use bytes::Bytes;
use http_body_util::Full;
use payhook::outbound::{ClientError, HttpClient};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server on 127.0.0.1:0 that reads a request and answers with `reply` (or never, if None).
async fn one_shot_server(reply: Option<String>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        match reply {
            Some(r) => {
                let _ = s.write_all(r.as_bytes()).await;
            }
            None => tokio::time::sleep(Duration::from_secs(30)).await,
        }
    });
    addr
}

fn get(addr: std::net::SocketAddr) -> http::Request<Full<Bytes>> {
    http::Request::get(format!("http://{addr}/status"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn answers_are_read_and_bounded() {
    let client = HttpClient::new();
    let ok = one_shot_server(Some(
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nretry-after: 7\r\n\r\nok".into(),
    ))
    .await;
    let reply = client
        .send(get(ok), Duration::from_secs(5), 1024)
        .await
        .unwrap();
    assert_eq!((reply.status.as_u16(), &reply.body[..]), (200, &b"ok"[..]));
    assert_eq!(reply.headers.get("retry-after").unwrap(), "7");

    let big = one_shot_server(Some(format!(
        "HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n{}",
        "x".repeat(5000)
    )))
    .await;
    assert_eq!(
        client
            .send(get(big), Duration::from_secs(5), 1024)
            .await
            .unwrap_err(),
        ClientError::BodyTooLarge(1024)
    );

    let hang = one_shot_server(None).await;
    let started = Instant::now();
    let err = client
        .send(get(hang), Duration::from_millis(300), 1024)
        .await
        .unwrap_err();
    assert_eq!(err, ClientError::Timeout(Duration::from_millis(300)));
    assert!(started.elapsed() < Duration::from_secs(3));

    // A port nobody listens on: a connect error, retried briefly, then reported.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = client
        .send(get(closed), Duration::from_secs(5), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect(_)), "{err:?}");
}
