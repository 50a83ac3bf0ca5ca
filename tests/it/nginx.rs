//! Debian's real nginx, configured from `deploy/nginx/payhook.conf`, in front of the real
//! daemon: a BitPesa callback signed over the public URL verifies through it, the client
//! address nginx forwards passes (or fails) an allowlist and a spoofed one does not pass,
//! an oversize body is refused, and no log holds a path token.
//!
//! The test runs nginx unprivileged-friendly: no daemon, one process, every path in a
//! temporary directory, loopback ports. It skips, saying so, only where no nginx binary
//! is installed (`.ci/run` installs `nginx-light`).

use crate::operate::{free_port, Proc};
use crate::support::http::{parse_reply, Reply};
use crate::support::sign::bp_sign;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DARAJA_TOKEN: &str = "daraja-NGINX-TOKEN-4f5e6d";
const BP_KEY: &str = "bp-NGINX-KEY-1a2b";
const BP_SECRET: &str = "bp-NGINX-SECRET-3c4d";
const PUBLIC: &str = "https://hooks.example.com";

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// The shipped file with what a test cannot use rewritten: the upstream is the daemon's
/// port, nginx listens on a loopback port without TLS, logs go to `dir`. Each rewrite must
/// match, so the test fails rather than drifts when the file changes.
fn derived_config(dir: &Path, nginx_port: u16, daemon_port: u16) -> String {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/nginx/payhook.conf"
    ))
    .unwrap();
    let d = dir.display();
    let mut text = shipped.clone();
    for (from, to) in [
        (
            "server 127.0.0.1:8080;".to_string(),
            format!("server 127.0.0.1:{daemon_port};"),
        ),
        (
            "listen 443 ssl;".to_string(),
            format!("listen 127.0.0.1:{nginx_port};"),
        ),
        ("listen [::]:443 ssl;".to_string(), String::new()),
        ("/var/log/nginx/".to_string(), format!("{d}/")),
    ] {
        assert!(
            text.contains(&from),
            "deploy/nginx/payhook.conf lost {from:?}"
        );
        text = text.replace(&from, &to);
    }
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("ssl_"))
        .map(|l| format!("{l}\n"))
        .collect();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/startup.error.log warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
         client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         access_log off;\n{text}}}\n"
    )
}

struct Nginx {
    child: Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(bin: &Path, dir: &Path, port: u16, daemon_port: u16) -> Nginx {
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, derived_config(dir, port, daemon_port)).unwrap();
    let test = Command::new(bin)
        .arg("-t")
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("startup.error.log"))
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "nginx -t refused the derived config:\n{}",
        String::from_utf8_lossy(&test.stderr)
    );
    let child = Command::new(bin)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("startup.error.log"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut n = Nginx { child };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = n.child.try_wait().unwrap() {
            panic!("nginx exited: {status}");
        }
        assert!(Instant::now() < deadline, "nginx did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    n
}

/// POSTs through nginx from the loopback address `from` (127.0.0.2, 127.0.0.3, ...), so
/// that nginx sees a client that is not the trusted proxy address.
async fn post_from(
    from: &str,
    to: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(to).await.unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: hooks.example.com\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    parse_reply(&raw)
}

#[test]
fn payhook_behind_the_shipped_nginx_config() {
    let Some(bin) = nginx_binary() else {
        eprintln!(
            "SKIPPED: no nginx binary (apt-get install nginx-light); the nginx test did not run"
        );
        return;
    };
    let mut p = Proc::start(
        |port, _| {
            format!(
                "listen = \"127.0.0.1:{port}\"\npublic_base_url = \"{PUBLIC}\"\n\
                 trusted_proxies = [\"127.0.0.1/32\"]\n[log]\nlevel = \"debug\"\n\
                 [store]\npath = \"p.db\"\n[reconciler]\nenabled = false\n\
                 [providers.bitpesa]\napi_key = \"{BP_KEY}\"\napi_secret = \"{BP_SECRET}\"\nallowed_ips = [\"127.0.0.0/8\"]\n\
                 [providers.daraja]\ncallback_tokens = [\"{DARAJA_TOKEN}\"]\nallowed_ips = [\"127.0.0.2/32\"]\nip_policy = \"enforce\"\n"
            )
        },
        &[],
    );
    let ndir = tempfile::tempdir().unwrap();
    let nport = free_port();
    let _nginx = start_nginx(&bin, ndir.path(), nport, p.port);
    let to: SocketAddr = format!("127.0.0.1:{nport}").parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // BitPesa signs the public URL; nginx passes the path unchanged.
        let body = serde_json::json!({"webhook": "w-1", "event": "transaction.paid_out",
            "object": {"id": "bp-nginx-1", "state": "paid", "input_amount": "1500.00", "input_currency": "KES"}})
        .to_string();
        let sig = bp_sign(BP_SECRET, "nonce-nginx-1", &format!("{PUBLIC}/callbacks/bitpesa"), body.as_bytes());
        let headers = [("Authorization-Key", BP_KEY), ("Authorization-Nonce", "nonce-nginx-1"), ("Authorization-Signature", sig.as_str())];
        let r = post_from("127.0.0.2", to, "/callbacks/bitpesa", &headers, body.as_bytes()).await;
        assert_eq!(r.status, 200, "BitPesa through nginx: {}", r.body);

        // Daraja from 127.0.0.2 (allowed): nginx's X-Forwarded-For names it.
        let stk = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/daraja/stk_success.json")).unwrap();
        let path = format!("/callbacks/daraja/{DARAJA_TOKEN}");
        let r = post_from("127.0.0.2", to, &path, &[], &stk).await;
        assert_eq!(r.status, 200, "allowed client through nginx: {}", r.body);
        // From 127.0.0.3, claiming to be 127.0.0.2: nginx appends the real peer, payhook
        // believes only that, and refuses it.
        let r = post_from("127.0.0.3", to, &path, &[("X-Forwarded-For", "127.0.0.2")], &stk).await;
        assert_eq!(r.status, 403, "spoofed X-Forwarded-For passed: {}", r.body);
        // Oversize: nginx refuses it before payhook sees a byte.
        let big = vec![b'x'; 70 * 1024];
        let r = post_from("127.0.0.2", to, &path, &[], &big).await;
        assert_eq!(r.status, 413);
        // Nothing but /callbacks/ is exposed.
        let r = post_from("127.0.0.2", to, &format!("/metrics?{DARAJA_TOKEN}"), &[], b"").await;
        assert_eq!(r.status, 404);
    });
    let db = rusqlite::Connection::open(p.dir.path().join("p.db")).unwrap();
    let ips: Vec<(String, String)> = db
        .prepare("SELECT provider, client_ip FROM callbacks ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        ips,
        [
            ("bitpesa".to_string(), "127.0.0.2".to_string()),
            ("daraja".to_string(), "127.0.0.2".to_string())
        ]
    );
    drop(_nginx);
    p.stop();
    let access = std::fs::read_to_string(ndir.path().join("payhook.access.log")).unwrap();
    assert!(
        access.contains("/callbacks/daraja/[redacted]") && access.contains(" 413 "),
        "{access}"
    );
    for file in [
        "payhook.access.log",
        "payhook.error.log",
        "startup.error.log",
    ] {
        let text = std::fs::read_to_string(ndir.path().join(file)).unwrap_or_default();
        assert!(
            !text.contains(DARAJA_TOKEN),
            "{file} holds the token:\n{text}"
        );
    }
    let logs = p.logs();
    assert!(
        !logs.contains(DARAJA_TOKEN) && !logs.contains(BP_SECRET),
        "{logs}"
    );
}
