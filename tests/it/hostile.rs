//! Hostile input against the running daemon: truncated, stalled and oversized
//! requests, invalid UTF-8, and thousands of idle connections. Each bad request must get a
//! 4xx or a closed connection (never a 2xx, a 5xx or a hang), nothing unauthenticated is
//! stored, and the daemon keeps answering a well-behaved client throughout.
//!
//! Requests are written byte by byte on raw sockets (hyper's client would refuse to send
//! most of them). Every read is bounded in time, so a daemon that hangs fails the test
//! instead of stalling the suite.

use crate::support::http::{parse_reply, Reply};
use crate::support::sign::{both_config, bp_sign, zp_body, zp_headers, BP_KEY, BP_SECRET, BP_URL};
use crate::support::TestDaemon;
use payhook::http::{BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Slack on top of the daemon's own timeouts before a test calls it a hang (2 shared cores).
const SLACK: Duration = Duration::from_secs(5);

/// What a hostile request ended in.
#[derive(Debug)]
enum End {
    /// The daemon answered (possibly then closed).
    Answered(Reply),
    /// The daemon closed (or reset) the connection without an answer.
    Closed,
}

impl End {
    fn status(&self) -> Option<u16> {
        match self {
            End::Answered(r) => Some(r.status),
            End::Closed => None,
        }
    }

    /// A 4xx or a closed connection: what every bad request must end in.
    fn assert_refused(&self, what: &str) {
        match self {
            End::Closed => {}
            End::Answered(r) => assert!(
                (400..500).contains(&r.status),
                "{what}: expected a 4xx or a closed connection, got {} {}",
                r.status,
                r.body
            ),
        }
    }
}

/// Reads until the daemon closes the connection or `limit` passes; a daemon that does
/// neither fails the test. A reset after a partial answer still yields the answer.
async fn read_end(s: &mut TcpStream, limit: Duration, what: &str) -> End {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!("{what}: the daemon neither answered nor closed within {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
        }
    }
    if raw.is_empty() {
        End::Closed
    } else {
        End::Answered(parse_reply(&raw))
    }
}

/// A unique reference for every well-behaved request in this module.
fn fresh_ref(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{tag}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A complete, correctly signed ZengaPay request for a new transaction, asking the daemon
/// to close after answering (tests read until close). Tests never half-close a request
/// they want answered: hyper drops a connection whose read side ends before it answers.
fn good_request(tag: &str) -> (String, Vec<u8>) {
    let body = zp_body(&fresh_ref(tag), "SUCCEEDED", "5000");
    let head = format!(
        "POST /callbacks/zengapay HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        zp_headers(body.as_bytes())
    );
    (head, body.into_bytes())
}

/// A well-behaved client is answered 200, promptly, and its callback is stored.
async fn assert_still_serves(addr: std::net::SocketAddr, during: &str) {
    let (head, body) = good_request("good");
    let ask = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&body).await.unwrap();
        // Read just the answer's head: enough to know it was answered.
        let mut raw = Vec::new();
        let mut buf = [0u8; 1024];
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "{during}: connection closed before an answer");
            raw.extend_from_slice(&buf[..n]);
        }
        parse_reply(&raw)
    };
    let reply = tokio::time::timeout(SLACK, ask)
        .await
        .unwrap_or_else(|_| panic!("{during}: a good client got no answer within {SLACK:?}"));
    assert_eq!(reply.status, 200, "{during}: {}", reply.body);
}

fn stored(d: &TestDaemon) -> i64 {
    d.count("SELECT count(*) FROM callbacks")
}

/// Resident memory of process `pid`, from /proc/<pid>/status.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// This process's (soft, hard) limits on open files, from /proc/self/limits.
fn open_files_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut fields = line.split_whitespace().skip(3);
    let mut next = || match fields.next().unwrap() {
        "unlimited" => u64::MAX,
        n => n.parse().unwrap(),
    };
    (next(), next())
}

/// Raises this process's soft open-files limit to its hard limit (with util-linux's
/// `prlimit`, which `.ci/run` installs) and returns it: the connection tests need
/// thousands of descriptors on the client side, more than a default soft limit of 1024.
fn raise_open_files_limit() -> u64 {
    let (soft, hard) = open_files_limits();
    if soft < hard {
        let target = hard.min(1 << 20);
        let ok = std::process::Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={target}:{target}"),
            ])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "prlimit could not raise the open-files limit from {soft} to {hard}"
        );
    }
    open_files_limits().0
}

/// The binary in a process of its own, so that its memory is measured alone (other tests
/// run in this process meanwhile), with its soft open-files limit raised to the hard one.
struct Bin {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Bin {
    fn start() -> Bin {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_payhook"));
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let db = dir.path().join("p.db");
        let cfg = dir.path().join("payhook.toml");
        std::fs::write(
            &cfg,
            format!(
                "listen = \"127.0.0.1:{port}\"\n{}[store]\npath = \"{}\"\n[log]\nlevel = \"warn\"\n",
                both_config(),
                db.display()
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "ulimit -n \"$(ulimit -Hn)\"; exec \"$0\" serve --config \"$1\"",
            ])
            .arg(bin)
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        crate::support::binary::wait_ready(bin, &cfg, &mut child, Duration::from_secs(20));
        Bin {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            db,
            _dir: dir,
        }
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    fn stored(&self) -> i64 {
        rusqlite::Connection::open(&self.db)
            .unwrap()
            .query_row("SELECT count(*) FROM callbacks", [], |r| r.get(0))
            .unwrap()
    }

    /// A counter from the daemon's own `/metrics`.
    async fn counter(&self, name: &str) -> u64 {
        let r = crate::support::http::request(self.addr, "GET", "/metrics", &[], b"").await;
        assert_eq!(r.status, 200);
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{}", r.body))
    }
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_or_one_that_stops_mid_chunk_is_refused_and_not_stored() {
    let d = TestDaemon::start(&both_config()).await;
    // Content-Length announces the whole (correctly signed) body; half is sent, then the
    // client closes its side.
    let (head, body) = good_request("truncated");
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body[..body.len() / 2]).await.unwrap();
    s.shutdown().await.unwrap();
    let end = read_end(&mut s, SLACK, "truncated body").await;
    end.assert_refused("truncated body");

    // Chunked: one chunk announced at 0x100 bytes, 40 sent, then the client closes.
    let body = zp_body(&fresh_ref("midchunk"), "SUCCEEDED", "5000");
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    let head = format!(
        "POST /callbacks/zengapay HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{}\r\n",
        zp_headers(body.as_bytes())
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(b"100\r\n").await.unwrap();
    s.write_all(&body.as_bytes()[..40]).await.unwrap();
    s.shutdown().await.unwrap();
    let end = read_end(&mut s, SLACK, "chunked body stopping mid-way").await;
    end.assert_refused("chunked body stopping mid-way");

    // Chunked framing that is not hex: a protocol error, not a panic.
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(b"zz\r\nhello\r\n0\r\n\r\n").await.unwrap();
    read_end(&mut s, SLACK, "bad chunk size")
        .await
        .assert_refused("bad chunk size");

    assert_eq!(stored(&d), 0, "an incomplete body was stored");
    assert_still_serves(d.addr, "after truncated bodies").await;
    assert_eq!(stored(&d), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_steady_body_is_accepted() {
    let d = TestDaemon::start(&both_config()).await;
    let (head, body) = good_request("trickle");
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // ≈ 600 bytes in 24 pieces, 40 ms apart: about a second, well inside the body timeout.
    for piece in body.chunks(body.len().div_ceil(24)) {
        s.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let end = read_end(&mut s, SLACK, "trickled body").await;
    assert_eq!(end.status(), Some(200), "{end:?}");
    assert_eq!(stored(&d), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_headers_and_stalled_bodies_are_cut_off_while_others_are_served() {
    let d = TestDaemon::start(&both_config()).await;
    let started = Instant::now();
    // Slowloris on the header section: a request line and one header, then nothing.
    let mut stalled_head = TcpStream::connect(d.addr).await.unwrap();
    stalled_head
        .write_all(b"POST /callbacks/zengapay HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Complete headers, a signed body announced, a third of it sent, then nothing.
    let (head, body) = good_request("stalled");
    let mut stalled_body = TcpStream::connect(d.addr).await.unwrap();
    stalled_body.write_all(head.as_bytes()).await.unwrap();
    stalled_body
        .write_all(&body[..body.len() / 3])
        .await
        .unwrap();

    // Meanwhile everyone else is served.
    for _ in 0..5 {
        assert_still_serves(d.addr, "while two clients stall").await;
    }

    let head_end = read_end(
        &mut stalled_head,
        HEADER_READ_TIMEOUT + SLACK,
        "stalled header section",
    )
    .await;
    head_end.assert_refused("stalled header section");
    let body_end = read_end(&mut stalled_body, BODY_READ_TIMEOUT + SLACK, "stalled body").await;
    // The body timeout is payhook's own (not hyper's), so it answers 408.
    assert_eq!(body_end.status(), Some(408), "{body_end:?}");
    assert!(
        started.elapsed() >= HEADER_READ_TIMEOUT.min(BODY_READ_TIMEOUT),
        "cut off before the timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(stored(&d), 5, "only the five complete callbacks are stored");
    assert_still_serves(d.addr, "after the stalls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_header_sections_get_431_or_a_closed_connection() {
    let d = TestDaemon::start(&both_config()).await;
    let (_, body) = good_request("huge-headers");
    // Many headers of 1 KiB each (40 KiB in all), and one single 32 KiB header.
    let many: String = (0..40)
        .map(|i| format!("X-Filler-{i}: {}\r\n", "a".repeat(1024)))
        .collect();
    let one = format!("X-Filler: {}\r\n", "b".repeat(32 * 1024));
    for (what, extra) in [("40 headers of 1 KiB", many), ("one 32 KiB header", one)] {
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        let head = format!(
            "POST /callbacks/zengapay HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{}{extra}\r\n",
            body.len(),
            zp_headers(&body)
        );
        // The daemon may refuse and close before the whole section is written.
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(&body).await;
        let end = read_end(&mut s, SLACK, what).await;
        end.assert_refused(what);
        if let Some(status) = end.status() {
            assert_eq!(status, 431, "{what}");
        }
    }
    assert_eq!(stored(&d), 0);
    assert_still_serves(d.addr, "after huge header sections").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_refused_unsigned_and_kept_raw_when_signed() {
    let d = TestDaemon::start(&both_config()).await;
    let mut invalid = br#"{"event":"collection.success","data":{"transactionReference":""#.to_vec();
    invalid.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
    invalid.extend_from_slice(br#""}}"#);

    let addr = d.addr;
    let send = |head: Vec<u8>, body: Vec<u8>| async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(&head).await;
        let _ = s.write_all(&body).await;
        read_end(&mut s, SLACK, "invalid UTF-8").await
    };
    let head_for = |sig: &[u8], body: &[u8], extra: &[u8]| {
        let mut h = format!(
            "POST /callbacks/zengapay HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\nX-ZENGAPAY-SIGNATURE: ",
            body.len()
        )
        .into_bytes();
        h.extend_from_slice(sig);
        h.extend_from_slice(b"\r\n");
        h.extend_from_slice(extra);
        h.extend_from_slice(b"\r\n");
        h
    };

    // Unsigned (a made-up signature): 401, nothing stored.
    let end = send(head_for(&[b'a'; 64], &invalid, b""), invalid.clone()).await;
    assert_eq!(end.status(), Some(401), "{end:?}");
    // A signature header that is itself invalid UTF-8: 401.
    let end = send(
        head_for(&[0xff, 0xfe, 0x80, 0x81], &invalid, b""),
        invalid.clone(),
    )
    .await;
    assert_eq!(end.status(), Some(401), "{end:?}");
    // BitPesa with an invalid UTF-8 nonce and a signature over it: 401.
    let mut head = format!(
        "POST /callbacks/bitpesa HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\nAuthorization-Key: {BP_KEY}\r\nAuthorization-Signature: {}\r\nAuthorization-Nonce: ",
        invalid.len(),
        bp_sign(BP_SECRET, "\u{fffd}", BP_URL, &invalid)
    )
    .into_bytes();
    head.extend_from_slice(&[0xc3, 0x28, b'\r', b'\n', b'\r', b'\n']);
    let end = send(head, invalid.clone()).await;
    assert_eq!(end.status(), Some(401), "{end:?}");
    assert_eq!(stored(&d), 0, "an unauthenticated body was stored");

    // Correctly signed: acknowledged, kept byte for byte, flagged as unparseable.
    let sig = crate::support::sign::zp_sign(crate::support::sign::ZP_SECRET, &invalid);
    let end = send(
        head_for(sig.as_bytes(), &invalid, b"X-Note: caf\xe9 \xff\r\n"),
        invalid.clone(),
    )
    .await;
    assert_eq!(end.status(), Some(200), "{end:?}");
    let (body, parse_error): (Vec<u8>, Option<String>) = d
        .db()
        .query_row("SELECT body, parse_error FROM callbacks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(body, invalid);
    assert!(parse_error.is_some());

    // Invalid UTF-8 in the request target: refused by routing or by the parser.
    let end = send(
        b"POST /callbacks/zeng\xffpay HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
        Vec::new(),
    )
    .await;
    end.assert_refused("invalid UTF-8 path");
    assert_eq!(stored(&d), 1);
    assert_still_serves(d.addr, "after invalid UTF-8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_that_keeps_growing_is_cut_off_at_the_limit() {
    let d = TestDaemon::start(&both_config()).await;
    let (_, body) = good_request("growing");
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    let head = format!(
        "POST /callbacks/zengapay HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{}\r\n",
        zp_headers(&body)
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // Up to 8 MiB in 8 KiB chunks (the limit is 64 KiB); stop as soon as the daemon stops
    // reading. Each write is bounded so a daemon that stops reading without closing
    // cannot hang the test either.
    let chunk = vec![b'x'; 8 * 1024];
    let mut sent = 0usize;
    for _ in 0..1024 {
        let write = async {
            s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            s.write_all(&chunk).await?;
            s.write_all(b"\r\n").await
        };
        match tokio::time::timeout(Duration::from_secs(2), write).await {
            Ok(Ok(())) => sent += chunk.len(),
            Ok(Err(_)) | Err(_) => break,
        }
    }
    assert!(
        sent < 8 * 1024 * 1024,
        "the daemon read 8 MiB of a body limited to 64 KiB"
    );
    let end = read_end(&mut s, SLACK, "growing chunked body").await;
    end.assert_refused("growing chunked body");
    if let Some(status) = end.status() {
        assert_eq!(status, 413);
    }
    assert_eq!(stored(&d), 0);
    assert_still_serves(d.addr, "after a growing body").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_do_not_block_others_and_the_cap_holds() {
    let d = Bin::start();
    // Client descriptors live here; the daemon's are its own (its limit is raised too).
    let limit = raise_open_files_limit();
    let over = 32usize;
    let needed = (MAX_CONNECTIONS + over) as u64 + 1024;
    assert!(
        limit >= needed,
        "open-files limit {limit}: filling the {MAX_CONNECTIONS}-connection cap needs {needed}; raise the hard limit (ulimit -Hn)"
    );
    let idle_target = 2000;
    let before_kib = d.rss_kib();
    let mut idle = Vec::with_capacity(idle_target);
    for i in 0..idle_target {
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        // Half send nothing at all; half start a request line and stop.
        if i % 2 == 1 {
            s.write_all(b"POST /callbacks/zengapay HTTP/1.1\r\n")
                .await
                .unwrap();
        }
        idle.push(s);
    }
    // Accepts are in order, so once this is answered every idle connection is held.
    assert_still_serves(d.addr, "with thousands of idle connections").await;
    let after_kib = d.rss_kib();
    // Signed: a shrinking figure is reported as such, not as zero.
    let per_conn = (after_kib as i64 - before_kib as i64) * 1024 / idle_target as i64;
    eprintln!(
        "hostile: {idle_target} idle connections: daemon RSS {before_kib} KiB -> {after_kib} KiB (~{per_conn} bytes each)"
    );
    // It catches a per-connection buffer of the body limit's size or an unbounded one.
    assert!(per_conn < 32 * 1024, "{per_conn} bytes per idle connection");

    // Past the cap, new connections are closed at once instead of queued.
    let fill = (MAX_CONNECTIONS + over) - (idle.len() + 1);
    let mut extra = Vec::with_capacity(fill);
    for _ in 0..fill {
        extra.push(TcpStream::connect(d.addr).await.unwrap());
    }
    // The last ones were over the cap: closed without a byte.
    for s in extra.iter_mut().rev().take(over / 2) {
        assert!(matches!(
            read_end(s, SLACK, "connection over the cap").await,
            End::Closed
        ));
    }
    drop(extra);
    drop(idle);

    // Released connections free their slots: a client is served again, promptly.
    let deadline = Instant::now() + SLACK;
    loop {
        let (head, body) = good_request("after-idle");
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(&body).await;
        if read_end(&mut s, SLACK, "after idle").await.status() == Some(200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slots were not released after the idle clients left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = d.counter("payhook_connections_refused_total").await;
    assert!(refused >= (over / 2) as u64, "refused {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_on_token_routes_get_a_4xx_and_store_nothing() {
    const TOKEN: &str = "tok-hostile-0123456789abcdef";
    // Daraja in log-only mode, so the refusals below come from the path, not the address.
    let d = TestDaemon::start(&format!(
        "{}[providers.daraja]\ncallback_tokens = [\"{TOKEN}\"]\nip_policy = \"log-only\"\n[providers.tujenge]\ncallback_tokens = [\"{TOKEN}\"]\n",
        both_config()
    ))
    .await;
    let long = "A".repeat(12 * 1024);
    let paths = [
        format!("/callbacks/daraja/{long}"),
        format!("/callbacks/tujenge/{TOKEN}x"),
        format!("/callbacks/tujenge/{}", &TOKEN[..TOKEN.len() - 1]),
        "/callbacks/tujenge/%74ok-hostile-0123456789abcdef".to_string(),
        "/callbacks/tujenge/%ff%fe%00".to_string(),
        format!("/callbacks/daraja/../daraja/{TOKEN}"),
        "/callbacks/daraja/../../etc/passwd".to_string(),
        "/callbacks/daraja//".to_string(),
        "/callbacks//zengapay".to_string(),
        "/callbacks/ZENGAPAY".to_string(),
        format!("/callbacks/daraja/{}", "/".repeat(2000)),
    ];
    for path in &paths {
        let body = br#"{"Body":{"stkCallback":{"CheckoutRequestID":"ws_1","ResultCode":0}}}"#;
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(body).await;
        let shown = &path[..path.len().min(60)];
        read_end(&mut s, SLACK, shown).await.assert_refused(shown);
    }
    assert_eq!(stored(&d), 0, "a request without a valid token was stored");
    assert_still_serves(d.addr, "after hostile paths").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_nearly_complete_bodies_cost_about_the_body_limit_each() {
    // The worst honest-looking load: many connections each holding a body just under the
    // limit and never finishing it. Memory must grow by about the body limit per connection
    // (the bound is connections × max_body_bytes until the body timeout), not more; and it
    // must grow, or the measurement is not seeing the bodies at all.
    let d = Bin::start();
    let limit = payhook::config::DEFAULT_MAX_BODY_BYTES;
    let n = 500usize;
    assert!(
        raise_open_files_limit() >= n as u64 + 256,
        "open-files limit too low for {n} connections"
    );
    let before = d.rss_kib();
    let mut held = Vec::with_capacity(n);
    let filler = vec![b'x'; limit - 1024];
    for _ in 0..n {
        let mut s = TcpStream::connect(d.addr).await.unwrap();
        let head = format!(
            "POST /callbacks/zengapay HTTP/1.1\r\nHost: x\r\nX-ZENGAPAY-SIGNATURE: {}\r\nContent-Length: {limit}\r\n\r\n",
            "0".repeat(64)
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&filler).await.unwrap();
        held.push(s);
    }
    // Once a fresh client is answered, the daemon has read what it could of the others.
    assert_still_serves(d.addr, "with stalled large bodies").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = d.rss_kib();
    let per_conn = (after as i64 - before as i64) * 1024 / n as i64;
    eprintln!(
        "hostile: {n} stalled {limit}-byte bodies: daemon RSS {before} KiB -> {after} KiB (~{per_conn} bytes each; limit {limit})"
    );
    assert!(
        per_conn < 3 * limit as i64,
        "{per_conn} bytes per stalled body (limit {limit})"
    );
    assert!(
        per_conn > limit as i64 / 2,
        "{per_conn} bytes per stalled body: the bodies held were not measured (limit {limit})"
    );
    drop(held);
    assert_eq!(d.stored(), 1);
}
