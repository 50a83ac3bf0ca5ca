//! `payhook send-test PROVIDER`: posts a sample callback, authenticated with the
//! configured credentials as the provider would ([`crate::sample`]), to the running
//! daemon or to `--to` (the public URL, to test the proxy too), and prints the answer.
//! It reads the provider's secrets, so it runs where the daemon's configuration is
//! readable.

use super::{full_config, Cli};
use crate::sample::{SampleSpec, SampleStatus};
use anyhow::Context;
use std::process::ExitCode;

/// `payhook send-test PROVIDER [--status S] [--ref R] [--amount A] [--to URL]`
#[derive(Debug, clap::Args)]
pub struct SendTestArgs {
    /// zengapay, bitpesa, daraja, jenga or tujenge.
    pub provider: String,
    /// The status the callback reports.
    #[arg(long, value_enum, default_value = "succeeded")]
    pub status: SampleStatus,
    /// The provider's reference (default: a fresh `test-...` one). Tujenge's reference is
    /// always its callback token's id (`tok_...`).
    #[arg(long = "ref", value_name = "R")]
    pub reference: Option<String>,
    /// Amount in major units (UGX for ZengaPay, KES for the others).
    #[arg(long, default_value = "1500")]
    pub amount: String,
    /// Where to post, as `scheme://host:port` (default: the configured listen address).
    /// The provider's path is appended.
    #[arg(long, value_name = "URL")]
    pub to: Option<String>,
}

/// Builds, posts and reports one sample callback; exit 1 unless the answer is a 2xx.
pub fn run(cli: &Cli, args: &SendTestArgs) -> anyhow::Result<ExitCode> {
    let cfg = full_config(cli)?;
    let provider: crate::domain::ProviderId = args.provider.parse()?;
    let now = crate::clock::now_ms();
    let spec = SampleSpec {
        reference: args
            .reference
            .clone()
            .unwrap_or_else(|| format!("test-{now}")),
        amount: args.amount.clone(),
        status: args.status,
        nonce: format!("payhook-send-test-{now}-{}", fastrand::u64(..)),
    };
    let sample = crate::sample::build(&cfg, provider, &spec)?;
    let base = match &args.to {
        Some(url) => {
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "--to {url:?} is not an http(s) URL"
            );
            url.trim_end_matches('/').to_string()
        }
        None => {
            let mut addr = cfg.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    let client = crate::outbound::HttpClient::new();
    let reply = rt
        .block_on(sample.post(&client, &base, std::time::Duration::from_secs(15)))
        .with_context(|| format!("while posting to {base}{}", sample.shown_path()))?;
    println!(
        "POST {base}{} ({} {}, {} bytes, {})",
        sample.shown_path(),
        provider,
        sample.provider_ref,
        sample.body.len(),
        sample.signed_as
    );
    println!(
        "{} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body).trim()
    );
    Ok(if reply.status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
