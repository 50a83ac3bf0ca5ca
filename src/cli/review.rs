//! The review commands: `review` (list, `--json`, `--exit-code`), `review dismiss`,
//! `resolve` and `show`. They read no secret and need an existing store.

use super::{open_store, operator_config, Cli, ResolveArgs};
use crate::store::queries::{self, ReviewItem};
use anyhow::Context;
use std::process::ExitCode;

/// `payhook review [--json] [--exit-code] [dismiss ID --note N]`
#[derive(Debug, clap::Args)]
pub struct ReviewArgs {
    /// Print the queue as a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 while the queue has items (for a cron alert), 0 when it is empty.
    #[arg(long)]
    pub exit_code: bool,
    /// Close an item instead of listing.
    #[command(subcommand)]
    pub command: Option<ReviewCommand>,
}

/// `payhook review ...` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ReviewCommand {
    /// Close a conflict or an unparsed callback a human has looked at (a transaction in
    /// review leaves it by `payhook resolve`).
    Dismiss {
        /// The item's id as `payhook review` lists it: conflict-N or callback-N.
        id: String,
        /// What was found: kept with the dismissal.
        #[arg(long)]
        note: String,
    },
}

/// `payhook show REF [--provider P]`
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Provider reference or merchant reference of the transaction.
    pub reference: String,
    /// Only consider this provider's transactions (when REF is ambiguous).
    #[arg(long)]
    pub provider: Option<String>,
}

/// Lists the review queue, or dismisses an item of it.
pub fn review(cli: &Cli, args: &ReviewArgs) -> anyhow::Result<ExitCode> {
    let cfg = operator_config(cli)?;
    let store = open_store(&cfg)?;
    if let Some(ReviewCommand::Dismiss { id, note }) = &args.command {
        let item: crate::store::review::ItemId = id.parse().map_err(anyhow::Error::msg)?;
        anyhow::ensure!(!note.trim().is_empty(), "--note must say what was found");
        let note = note.clone();
        let now = crate::clock::now_ms();
        store
            .write_blocking(move |c| crate::store::review::dismiss(c, item, &note, now))
            .with_context(|| format!("while dismissing {id}"))?;
        println!("{id}: dismissed");
        return Ok(ExitCode::SUCCESS);
    }
    let items = store
        .read_blocking(queries::review_queue)
        .context("while reading the review queue")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&items)?);
    } else {
        print_table(&items);
    }
    Ok(if args.exit_code && !items.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_table(items: &[ReviewItem]) {
    if items.is_empty() {
        println!("nothing to review");
        return;
    }
    println!("ID\tSINCE\tITEM\tPROVIDER\tREFERENCE\tSTATUS\tDETAIL");
    for i in items {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            i.id,
            crate::clock::rfc3339(i.at_ms),
            i.item,
            i.provider,
            i.provider_ref.as_deref().unwrap_or("-"),
            i.status.as_deref().unwrap_or("-"),
            i.detail.as_deref().unwrap_or("-")
        );
    }
    eprintln!(
        "{} item(s); close one with payhook resolve REF or payhook review dismiss ID",
        items.len()
    );
}

/// The one transaction `reference` names (provider or merchant reference), or an error
/// listing the candidates.
fn find_transaction(
    store: &crate::store::Store,
    reference: &str,
    provider: Option<&str>,
) -> anyhow::Result<queries::TxnRow> {
    let provider = provider
        .map(str::parse::<crate::domain::ProviderId>)
        .transpose()?;
    let wanted = reference.to_string();
    let matches: Vec<_> = store
        .read_blocking(move |c| queries::transactions_by_any_ref(c, &wanted))
        .context("while looking the transaction up")?
        .into_iter()
        .filter(|t| provider.is_none_or(|p| t.provider == p.as_str()))
        .collect();
    match matches.as_slice() {
        [] => anyhow::bail!("no transaction has the reference {reference:?}"),
        [one] => Ok(one.clone()),
        many => {
            let list: Vec<String> = many
                .iter()
                .map(|t| format!("{} {} ({})", t.provider, t.provider_ref, t.status))
                .collect();
            anyhow::bail!(
                "{reference:?} is ambiguous: it matches {}; name the provider reference or add --provider",
                list.join(", ")
            )
        }
    }
}

/// Records an operator's decision and closes the transaction's conflicts with its note,
/// in one commit: the decision is the answer to them.
pub fn resolve(cli: &Cli, args: &ResolveArgs) -> anyhow::Result<ExitCode> {
    let cfg = operator_config(cli)?;
    let status: crate::state::Status = args.status.parse()?;
    anyhow::ensure!(!args.note.trim().is_empty(), "--note must say why");
    let store = open_store(&cfg)?;
    let txn = find_transaction(&store, &args.reference, args.provider.as_deref())?;
    let note = args.note.clone();
    let now = crate::clock::now_ms();
    let id = txn.id;
    let (applied, closed) = store
        .write_blocking(move |c| {
            let applied = crate::store::review::resolve(c, id, status, &note, now)?;
            let closed = crate::store::review::dismiss_conflicts(c, id, &note, now)?;
            Ok((applied, closed))
        })
        .context("while recording the decision")?;
    println!(
        "{} {}: {} (was {})",
        txn.provider, txn.provider_ref, applied.status, txn.status
    );
    if closed > 0 {
        println!("{closed} conflict(s) closed");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one transaction's whole story as JSON.
pub fn show(cli: &Cli, args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let cfg = operator_config(cli)?;
    let store = open_store(&cfg)?;
    let txn = find_transaction(&store, &args.reference, args.provider.as_deref())?;
    let id = txn.id;
    let story = store
        .read_blocking(move |c| crate::store::queries::transaction_story(c, id))
        .with_context(|| format!("while reading {} {}", txn.provider, txn.provider_ref))?;
    println!("{}", serde_json::to_string_pretty(&story)?);
    Ok(ExitCode::SUCCESS)
}
