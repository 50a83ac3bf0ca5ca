//! `payhook demo`: the whole pipeline in one command, on loopback only.
//!
//! It writes a configuration into a directory it names, starts payhook on a free
//! 127.0.0.1 port with every provider enabled, a fake ZengaPay status API and a fake
//! merchant (`src/demo/fakes.rs`), then:
//! 1. posts one correctly authenticated callback per provider ([`crate::sample`], the code
//!    `payhook send-test` uses), one of them a failure;
//! 2. posts the ZengaPay one again (a provider retry) and one signed with the wrong secret
//!    (a forgery);
//! 3. registers a payment no callback will ever report, which the reconciler settles by
//!    asking the fake status API;
//! 4. waits until every event reached the merchant, stops, and narrates what the store
//!    says happened, ending with the `sqlite3` queries to look for oneself.
//!
//! The summary is read back from the store, not from what the demo meant to do.

mod fakes;

use crate::config::Config;
use crate::domain::ProviderId;
use crate::sample::{SampleSpec, SampleStatus};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `payhook demo [--dir DIR]`
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Directory for the demo's configuration and store (default: a new directory under
    /// the system's temporary directory). It is left behind for you to look at.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// How long the demo waits for the status query and the deliveries.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The payment only a status query settles.
const POLLED_REF: &str = "demo-zp-polled";

/// Runs the demo and prints its story.
pub fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "payhook-demo-{}-{}",
            std::process::id(),
            crate::clock::now_ms()
        )),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("while creating {}", dir.display()))?;
    // Absolute, so that the configuration it leaves works from any directory.
    let dir = dir
        .canonicalize()
        .with_context(|| format!("while resolving {}", dir.display()))?;
    let db = dir.join("payhook.db");
    anyhow::ensure!(
        !db.exists(),
        "{} already holds a demo store; give another --dir",
        dir.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    let summary = rt.block_on(demo(&dir))?;
    print!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// One callback the demo posts, and what the daemon answered.
struct Sent {
    what: String,
    status: u16,
}

async fn demo(dir: &Path) -> anyhow::Result<String> {
    let forward_secret = crate::cli::extras::new_secret()?;
    let api_token = format!("demo-api-token-{}", fastrand::u64(..));
    let (api, asked) = fakes::zengapay_api(POLLED_REF.into(), "25000".into(), api_token.clone())
        .await
        .context("while starting the fake ZengaPay API")?;
    let (merchant, received) = fakes::merchant(&forward_secret)
        .await
        .context("while starting the fake merchant")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("while binding 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let store = dir.join("payhook.db");
    let config_text = config_text(addr, api, merchant, &store, &api_token, &forward_secret);
    let config_path = dir.join("payhook.toml");
    write_private(&config_path, &config_text)?;
    let cfg =
        Config::from_toml(&config_text, dir).context("while reading the demo configuration")?;
    let ctx = tokio::task::block_in_place(|| crate::Ctx::new(cfg.clone()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(crate::serve(ctx.clone(), listener, async {
        let _ = stopped.await;
    }));

    let sent = send_samples(&cfg, addr).await?;

    // The payment the application registered and no callback reports.
    let registration = crate::store::transactions::Registration {
        provider: ProviderId::ZengaPay,
        provider_ref: POLLED_REF.into(),
        kind: crate::providers::TxnKind::Collection,
        expected: Some(crate::money::Money::parse("25000", "UGX")?),
        merchant_ref: Some("order-demo-polled".into()),
    };
    let now = crate::clock::now_ms();
    let schedule = crate::schedule::first_poll(&cfg.poll(ProviderId::ZengaPay), now);
    ctx.store
        .write(move |c| crate::store::transactions::register(c, &registration, schedule, now))
        .await
        .context("while registering the polled payment")?;
    ctx.wake_reconciler.notify_one();

    let settled = wait_until_settled(&ctx).await;
    let _ = stop.send(());
    daemon.await.context("the demo daemon failed")?;
    anyhow::ensure!(
        settled,
        "the demo did not settle within {SETTLE_TIMEOUT:?}; the store is in {}",
        dir.display()
    );
    let received = received.lock().map(|r| r.clone()).unwrap_or_default();
    let polls = asked.lock().map(|n| *n).unwrap_or(0);
    let store = ctx.store.clone();
    let facts = store
        .read(crate::store::queries::demo_facts)
        .await
        .context("while reading the demo store")?;
    drop(ctx);
    Ok(narrate(dir, &sent, &facts, &received, polls))
}

/// Posts each provider's sample callback to the daemon at `addr`, then a provider retry
/// and a forgery, and returns what each was answered.
async fn send_samples(cfg: &Config, addr: std::net::SocketAddr) -> anyhow::Result<Vec<Sent>> {
    let base = format!("http://{addr}");
    let client = crate::outbound::HttpClient::new();
    let timeout = Duration::from_secs(10);
    let mut sent = Vec::new();
    let post = |sample: crate::sample::SampleCallback, what: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let reply = sample.post(&client, &base, timeout).await?;
            anyhow::Ok(Sent {
                what,
                status: reply.status.as_u16(),
            })
        }
    };
    let plan = [
        (
            ProviderId::ZengaPay,
            "demo-zp-1",
            "25000",
            SampleStatus::Succeeded,
        ),
        (
            ProviderId::BitPesa,
            "demo-tz-1",
            "1500.50",
            SampleStatus::Succeeded,
        ),
        (
            ProviderId::Daraja,
            "ws_CO_DEMO0001",
            "100",
            SampleStatus::Succeeded,
        ),
        (ProviderId::Jenga, "DEMO328411", "150", SampleStatus::Failed),
        (ProviderId::Tujenge, "-", "100", SampleStatus::Succeeded),
    ];
    let mut first_zengapay = None;
    for (i, (provider, reference, amount, status)) in plan.into_iter().enumerate() {
        let spec = SampleSpec {
            reference: reference.into(),
            amount: amount.into(),
            status,
            nonce: format!("demo-nonce-{i}"),
        };
        let sample = crate::sample::build(cfg, provider, &spec)?;
        if provider == ProviderId::ZengaPay {
            first_zengapay = Some(sample.clone());
        }
        let what = format!("{provider} {} ({})", sample.provider_ref, sample.signed_as);
        sent.push(post(sample, what).await?);
    }
    if let Some(again) = first_zengapay.clone() {
        sent.push(post(again, "zengapay demo-zp-1 again (a provider retry)".into()).await?);
    }
    if let Some(mut forged) = first_zengapay {
        forged.body = String::from_utf8_lossy(&forged.body)
            .replace("25000", "99000")
            .into_bytes();
        forged.headers = vec![(
            "X-ZENGAPAY-SIGNATURE".into(),
            crate::sample::zengapay_signature("not-the-secret-hash", &forged.body),
        )];
        sent.push(
            post(
                forged,
                "zengapay demo-zp-1 for 99000, signed with another secret (a forgery)".into(),
            )
            .await?,
        );
    }
    Ok(sent)
}

/// Waits until the polled payment is settled and every event was delivered.
async fn wait_until_settled(ctx: &crate::Ctx) -> bool {
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        let done = ctx
            .store
            .read(|c| {
                let settled: i64 = c.query_row(
                    "SELECT count(*) FROM transactions WHERE provider_ref = ?1 AND status = 'SUCCEEDED'",
                    [POLLED_REF],
                    |r| r.get(0),
                )?;
                let undelivered: i64 = c.query_row(
                    "SELECT count(*) FROM events WHERE status <> 'delivered'",
                    [],
                    |r| r.get(0),
                )?;
                Ok(settled == 1 && undelivered == 0)
            })
            .await
            .unwrap_or(false);
        if done {
            return true;
        }
        ctx.wake_forwarder.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn config_text(
    listen: std::net::SocketAddr,
    api: std::net::SocketAddr,
    merchant: std::net::SocketAddr,
    store: &Path,
    api_token: &str,
    forward_secret: &str,
) -> String {
    format!(
        r#"# Written by payhook demo. Every address is on 127.0.0.1.
listen = "{listen}"
# TransferZero signs the URL it calls: here, the demo daemon itself.
public_base_url = "http://{listen}"

[store]
path = {store:?}

[providers.zengapay]
secret_hash = "demo-zengapay-secret-hash"
api_token = "{api_token}"
base_url = "http://{api}"
poll_first_after = "1s"
poll_max_interval = "2s"
sweep_interval = "0s"

[providers.bitpesa]
api_key = "demo-bitpesa-key"
api_secret = "demo-bitpesa-secret"
base_url = "http://127.0.0.1:9"

[providers.daraja]
callback_tokens = ["demo-d4r4j4-t0k3n-0001"]
allowed_ips = ["127.0.0.1/32"]
# The demo has no STK query to confirm a token-only success with.
confirm_unsigned = false
base_url = "http://127.0.0.1:9"

[providers.jenga]
ipn_username = "demo-ipn-user"
ipn_password = "demo-ipn-password"
base_url = "http://127.0.0.1:9"

[providers.tujenge]
callback_tokens = ["demo-tujenge-token-0001"]
confirm_unsigned = false

[reconciler]
request_timeout = "5s"

[forward]
url = "http://{merchant}/payhook"
secrets = ["{forward_secret}"]
retry_first_after = "1s"
"#
    )
}

/// Writes `text` readable by its owner only: it holds the demo's secrets.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("while writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("while securing {}", path.display()))?;
    }
    Ok(())
}

fn narrate(
    dir: &Path,
    sent: &[Sent],
    facts: &crate::store::queries::DemoFacts,
    received: &[fakes::Received],
    polls: u32,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "payhook demo: every provider, one daemon, all on 127.0.0.1\n"
    );
    let _ = writeln!(out, "What arrived ({} callbacks posted):", sent.len());
    for s in sent {
        let verdict = match s.status {
            200..=299 => "accepted".to_string(),
            401 => "refused 401: bad credential, nothing stored".to_string(),
            other => format!("answered {other}"),
        };
        let _ = writeln!(out, "  {verdict:<44} {}", s.what);
    }
    let _ = writeln!(
        out,
        "\nWhat the store kept: {} distinct callbacks from {} deliveries (the retry was \
         stored once); {} refused never reached it.",
        facts.callbacks,
        facts.deliveries,
        sent.iter().filter(|s| s.status == 401).count()
    );
    let _ = writeln!(out, "\nWhat settled, and how:");
    for t in &facts.transactions {
        let _ = writeln!(
            out,
            "  {:<8} {:<24} {:<10} {:>10} {:<3}  by {}",
            t.provider,
            t.provider_ref,
            t.status,
            t.amount.as_deref().unwrap_or("-"),
            t.currency.as_deref().unwrap_or(""),
            t.how
        );
    }
    let _ = writeln!(
        out,
        "  ({polls} status query(ies) answered by the fake ZengaPay API)"
    );
    let verified = received.iter().filter(|r| r.verified).count();
    let _ = writeln!(
        out,
        "\nWhat the merchant received: {} event(s), {verified} with a valid Standard Webhooks \
         signature:",
        received.len()
    );
    for r in received {
        let _ = writeln!(out, "  {:<24} {:<34} {}", r.event_type, r.about, r.id);
    }
    let db = dir.join("payhook.db");
    let _ = writeln!(
        out,
        "\nThe store is {} (configuration: {}). Look for yourself:",
        db.display(),
        dir.join("payhook.toml").display()
    );
    for q in [
        "SELECT provider, provider_ref, status, amount_minor, currency FROM transactions;",
        "SELECT provider, kind, auth, deliveries, parse_error FROM callbacks;",
        "SELECT t.provider_ref, r.seq, r.outcome, r.from_status, r.to_status, r.source FROM transitions r JOIN transactions t ON t.id = r.transaction_id;",
        "SELECT p.attempt, p.http_status, p.reported_status FROM polls p;",
        "SELECT id, type, status, attempts FROM events;",
        "SELECT * FROM review_queue;",
    ] {
        let _ = writeln!(out, "  sqlite3 {} \"{q}\"", db.display());
    }
    let _ = writeln!(
        out,
        "\nOr with payhook: payhook -c {} show demo-zp-1",
        dir.join("payhook.toml").display()
    );
    out
}
