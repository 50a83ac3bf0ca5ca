//! `payhook callback-url PROVIDER --merchant-ref R [--amount A --currency C] [--kind K]`:
//! mints a per-payment callback URL ([`crate::minted`]), registers its payment, and prints
//! the URL alone, for the application to pass to the provider.

use super::{full_config, Cli};
use anyhow::Context;
use std::process::ExitCode;

/// `payhook callback-url ...`
#[derive(Debug, clap::Args)]
pub struct CallbackUrlArgs {
    /// daraja or tujenge: the providers that sign nothing.
    pub provider: String,
    /// The application's own reference for the payment.
    #[arg(long)]
    pub merchant_ref: String,
    /// Expected amount, in major units as decimal text (e.g. 100.00); needs --currency.
    #[arg(long, requires = "currency")]
    pub amount: Option<String>,
    /// ISO-4217 currency of --amount.
    #[arg(long, requires = "amount")]
    pub currency: Option<String>,
    /// Payment kind (default: stk for Daraja, unknown for Tujenge).
    #[arg(long)]
    pub kind: Option<String>,
}

/// Mints the URL, records its payment in the store, prints the URL.
pub fn run(cli: &Cli, args: &CallbackUrlArgs) -> anyhow::Result<ExitCode> {
    // The keys are secrets: this command reads the whole configuration, as serve does.
    let cfg = full_config(cli)?;
    let provider: crate::domain::ProviderId = args.provider.parse()?;
    let kind = args
        .kind
        .as_deref()
        .map(str::parse::<crate::domain::TxnKind>)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let expected = match (&args.amount, &args.currency) {
        (Some(a), Some(c)) => Some(crate::money::Money::parse(a, c)?),
        _ => None,
    };
    let request = crate::minted::PaymentRequest {
        provider,
        kind,
        merchant_ref: Some(args.merchant_ref.trim().to_string()).filter(|m| !m.is_empty()),
        expected,
    };
    let minter = crate::minted::Minter::new(cfg.callback_url_keys.clone());
    let new = crate::minted::new_payment(&minter, cfg.public_base_url.as_deref(), &request)?;
    let store = super::open_store(&super::operator_config(cli)?)?;
    let now = crate::clock::now_ms();
    let schedule = crate::schedule::first_poll(&cfg.poll(provider), now);
    let payment = new.payment.clone();
    store
        .write_blocking(move |c| crate::store::payments::mint(c, &payment, schedule, now))
        .context("while recording the payment")?;
    println!("{}", new.url);
    Ok(ExitCode::SUCCESS)
}
