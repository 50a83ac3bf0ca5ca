//! The command line: `serve`, `check-config`, `migrate`, `healthcheck`, `events` (list,
//! show, replay the outbox; pause and resume a destination; re-enable one disabled by
//! 410 Gone), the operator and merchant commands `track`, `review`, `resolve` and `show`
//! ([`review`]), `callback-url` ([`callback_url`]), `send-test` ([`send_test`]), `demo`
//! ([`crate::demo`]), and `completions`, `man` and `gen-secret` ([`extras`]). Commands
//! that touch the store open it directly (SQLite lets them run beside the daemon).
//!
//! Only `serve`, `check-config`, `send-test` and `callback-url` read secrets. Every other
//! command reads the file as an [`OperatorConfig`], so that it works where the secrets
//! are readable by the service alone (systemd credentials). Every command but `serve`
//! and `migrate` refuses a store that does not exist rather than create an empty one.
//! Start-up glue, so errors are `anyhow` with "while ..." context.

pub mod callback_url;
pub mod extras;
pub mod review;
pub mod send_test;

use crate::config::{Config, OperatorConfig};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// payhook: reliable payment-provider callbacks for your application.
#[derive(Debug, Parser)]
#[command(name = "payhook", version, about)]
pub struct Cli {
    /// Configuration file (TOML). Without it, built-in defaults apply.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The database file, instead of the configuration's `store.path`.
    #[arg(long, global = true, value_name = "PATH")]
    pub store: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: receive callbacks, store them, acknowledge.
    Serve,
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Exit 0 if the running daemon reports ready (GET /readyz), 1 otherwise.
    Healthcheck,
    /// Register a payment the application just started, so that payhook reconciles it even
    /// if no callback ever arrives.
    Track(TrackArgs),
    /// List what needs a human: NEEDS_REVIEW transactions, conflicts, unparsed callbacks;
    /// `review dismiss ID` closes a conflict or an unparsed callback.
    Review(review::ReviewArgs),
    /// Record a human decision about a transaction (e.g. one in NEEDS_REVIEW); closes its
    /// conflicts.
    Resolve(ResolveArgs),
    /// Print, as JSON, the whole story of a transaction: its callbacks, polls,
    /// transitions, events and delivery attempts.
    Show(review::ShowArgs),
    /// Mint a callback URL bound to one payment (Daraja, Tujenge), register the payment,
    /// and print the URL.
    CallbackUrl(callback_url::CallbackUrlArgs),
    /// Post a realistic sample callback, signed with the configured credentials, to the
    /// running daemon (or --to), and print its answer.
    SendTest(send_test::SendTestArgs),
    /// Run payhook against fake providers and a fake merchant, all on loopback, and tell
    /// what happened.
    Demo(crate::demo::DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
    /// Print a fresh `whsec_` secret for `forward.secrets`.
    GenSecret,
    /// See and recover the events delivered to the merchant (the outbox).
    Events {
        /// What to do with them.
        #[command(subcommand)]
        command: EventsCommand,
    },
}

/// `payhook track PROVIDER REF ...`
#[derive(Debug, clap::Args)]
pub struct TrackArgs {
    /// zengapay, bitpesa, daraja, jenga or tujenge.
    pub provider: String,
    /// The provider's reference (ZengaPay transactionReference, TransferZero id,
    /// Daraja CheckoutRequestID, Jenga reference).
    pub reference: String,
    /// Payment kind: collection, transfer, stk, c2b, b2c, ipn.
    #[arg(long)]
    pub kind: Option<String>,
    /// Expected amount, in major units as decimal text (e.g. 1500.00); needs --currency.
    #[arg(long, requires = "currency")]
    pub amount: Option<String>,
    /// ISO-4217 currency of --amount.
    #[arg(long, requires = "amount")]
    pub currency: Option<String>,
    /// The application's own reference for the payment.
    #[arg(long)]
    pub merchant_ref: Option<String>,
}

/// `payhook resolve REF --status S --note N`
#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    /// Provider reference or merchant reference of the transaction.
    pub reference: String,
    /// The decided status: SUCCEEDED, FAILED (or REVERSED for a success).
    #[arg(long)]
    pub status: String,
    /// Why: kept with the decision in the transaction's history.
    #[arg(long)]
    pub note: String,
    /// Only consider this provider's transactions (when REF is ambiguous).
    #[arg(long)]
    pub provider: Option<String>,
}

/// `payhook events ...`. Times (`--since`) are RFC 3339 (`2026-11-23T06:00:00Z`), a date
/// (`2026-11-23`, midnight UTC), or a duration back from now (`90m`, `24h`, `3d`).
#[derive(Debug, Clone, Subcommand)]
pub enum EventsCommand {
    /// List events, oldest first.
    List {
        /// Only events with this status.
        #[arg(long, value_parser = ["pending", "delivered", "dead"])]
        status: Option<String>,
        /// Only events created at or after this time.
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        /// Only this destination's deliveries, with their status there.
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
    },
    /// Print, as JSON, the whole story of an event: its payload, its transaction, and that
    /// transaction's callbacks, polls, transitions, events, and this event's delivery
    /// at each destination with its attempts and replays.
    Show {
        /// Event id (`evt_...`).
        id: String,
        /// Only this destination's delivery.
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
    },
    /// Deliver again, with the same id: one delivered or dead event, or every dead event
    /// created since a time. The running daemon picks them up within seconds.
    Replay {
        /// Event id (`evt_...`).
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        id: Option<String>,
        /// Replay the dead events instead (with --since).
        #[arg(long, requires = "since")]
        dead: bool,
        /// With --dead: those created at or after this time.
        #[arg(long, value_name = "T", requires = "dead")]
        since: Option<String>,
        /// Only the delivery to this destination (default: every destination's).
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
        /// Why: kept, with who asked, in the delivery's history.
        #[arg(long)]
        note: Option<String>,
    },
    /// Stop sending to a destination: nothing is sent and no attempt is spent until it is
    /// resumed; events keep queueing for it.
    Pause {
        /// Destination name (`default` for the single `[forward]` url).
        destination: String,
        /// Why, shown in `events list`.
        #[arg(long)]
        note: Option<String>,
    },
    /// Resume a paused destination: its backlog goes out in order, on a fresh schedule.
    Resume {
        /// Destination name.
        destination: String,
    },
    /// Re-enable a destination that answered 410 Gone (default: the configured
    /// forward.url); its pending events then go out.
    EnableDestination {
        /// Destination URL.
        url: Option<String>,
    },
}

/// Loads the configuration named on the command line, or the defaults.
pub fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p).with_context(|| format!("while loading {}", p.display())),
        None => Ok(Config::default()),
    }
}

/// What an operator command knows of the configuration: the file read without its
/// secrets, with `--store` over `store.path`.
pub fn operator_config(cli: &Cli) -> anyhow::Result<OperatorConfig> {
    let mut cfg = match &cli.config {
        Some(p) => {
            OperatorConfig::load(p).with_context(|| format!("while loading {}", p.display()))?
        }
        None => OperatorConfig::default(),
    };
    if let Some(path) = &cli.store {
        cfg.store.path = path.clone();
    }
    Ok(cfg)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let result = match &cli.command {
        Command::CheckConfig => check_config(&cli),
        Command::Serve => serve(&cli),
        Command::Migrate => migrate(&cli),
        Command::Healthcheck => healthcheck(&cli),
        Command::Track(args) => track(&cli, args),
        Command::Review(args) => review::review(&cli, args),
        Command::Resolve(args) => review::resolve(&cli, args),
        Command::Show(args) => review::show(&cli, args),
        Command::Events { command } => events(&cli, command),
        Command::SendTest(args) => send_test::run(&cli, args),
        Command::CallbackUrl(args) => callback_url::run(&cli, args),
        Command::Demo(args) => crate::demo::run(args),
        Command::Completions { shell } => extras::completions(*shell),
        Command::Man => extras::man(),
        Command::GenSecret => extras::gen_secret(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("payhook: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: a cause whose text its parent already
/// includes (`cannot read x: No such file or directory` over the I/O error itself) is
/// left out.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The full configuration, secrets and all, with `--store` over `store.path`.
pub fn full_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut cfg = load_config(cli.config.as_ref())?;
    if let Some(path) = &cli.store {
        cfg.store.path = path.clone();
    }
    Ok(cfg)
}

fn check_config(cli: &Cli) -> anyhow::Result<ExitCode> {
    let cfg = full_config(cli)?;
    print!("{}", cfg.to_redacted_toml());
    for w in cfg.warnings() {
        eprintln!("warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(cli: &Cli) -> anyhow::Result<ExitCode> {
    let cfg = full_config(cli)?;
    crate::telemetry::init(&cfg.log);
    if cli.config.is_none() {
        tracing::info!("no --config given; using built-in defaults");
    }
    for w in cfg.warnings() {
        tracing::warn!("{w}");
    }
    // Linux only; elsewhere there is no such file and nothing to say.
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        if let Some(w) = crate::http::open_files_warning(&limits) {
            tracing::warn!("{w}");
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("while starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("while binding {}", cfg.listen))?;
        crate::run(cfg, listener, crate::shutdown::signal()).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn migrate(cli: &Cli) -> anyhow::Result<ExitCode> {
    let cfg = operator_config(cli)?;
    let store = crate::store::Store::open(&crate::store::StoreOptions {
        path: cfg.store.path.clone(),
        max_size_bytes: None,
    })
    .with_context(|| format!("while migrating {}", cfg.store.path.display()))?;
    println!(
        "{}: schema version {}",
        store.path().display(),
        crate::store::migrations::LATEST_VERSION
    );
    Ok(ExitCode::SUCCESS)
}

fn healthcheck(cli: &Cli) -> anyhow::Result<ExitCode> {
    use std::io::{Read, Write};
    let cfg = operator_config(cli)?;
    let mut addr = cfg.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = std::time::Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("while connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let ok = answer.starts_with("HTTP/1.1 200");
    println!("{}", answer.lines().next().unwrap_or("no answer"));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Parses `--since`: RFC 3339, a date, or a duration back from `now_ms`.
/// The operator's login name, recorded with a replay.
fn operator() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_string())
}

/// `name` if it is a configured or known destination; a configured one not yet seen by
/// the daemon is recorded first, so that it can be paused before it ever ran.
fn known_destination(
    cfg: &OperatorConfig,
    store: &crate::store::Store,
    name: &str,
) -> anyhow::Result<String> {
    let configured = cfg.destinations.iter().find(|d| d.name == name).cloned();
    let owned = name.to_string();
    let known = store
        .read_blocking(move |c| crate::store::destinations::state(c, &owned))
        .context("while reading the destinations")?
        .is_some();
    match (configured, known) {
        (_, true) => {}
        (Some(sub), false) => {
            let now = crate::clock::now_ms();
            store
                .write_blocking(move |c| crate::store::destinations::register(c, &sub, now))
                .context("while recording the destination")?;
        }
        (None, false) => {
            anyhow::bail!("unknown destination {name:?}: not in [forward] and never delivered to")
        }
    }
    Ok(name.to_string())
}

fn parse_since(text: &str, now_ms: i64) -> anyhow::Result<i64> {
    if let Some(ms) = crate::clock::parse_rfc3339(text) {
        return Ok(ms);
    }
    match crate::config::parse_duration(text) {
        Ok(ago) => Ok(now_ms.saturating_sub(crate::clock::ms(ago))),
        Err(_) => anyhow::bail!(
            "--since {text:?}: expected RFC 3339 (2026-11-23T06:00:00Z), a date (2026-11-23) \
             or a duration back from now (24h)"
        ),
    }
}

/// Opens the store an operator command works on. A missing file is an error, not a new
/// empty store: run in the wrong directory, `review` would otherwise say "nothing to
/// review".
pub fn open_store(cfg: &OperatorConfig) -> anyhow::Result<crate::store::Store> {
    let path = &cfg.store.path;
    if !path.exists() {
        anyhow::bail!(
            "no store at {}: give --store PATH or --config FILE (payhook migrate creates one)",
            path.display()
        );
    }
    crate::store::Store::open(&crate::store::StoreOptions {
        path: path.clone(),
        max_size_bytes: None,
    })
    .with_context(|| format!("while opening {}", path.display()))
}

/// Reads a `track` command line into a registration.
pub fn registration(args: &TrackArgs) -> anyhow::Result<crate::store::transactions::Registration> {
    use crate::domain::{ProviderId, TxnKind};
    let provider: ProviderId = args.provider.parse()?;
    let kind = match &args.kind {
        Some(k) => k.parse::<TxnKind>().map_err(anyhow::Error::msg)?,
        None => TxnKind::Unknown,
    };
    let kinds = provider_kinds(provider);
    if kind != TxnKind::Unknown && !kinds.contains(&kind) {
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        anyhow::bail!(
            "{provider} has no {} payments (its kinds: {})",
            kind.as_str(),
            names.join(", ")
        );
    }
    let reference = args.reference.trim();
    anyhow::ensure!(!reference.is_empty(), "the reference must not be empty");
    let expected = match (&args.amount, &args.currency) {
        (Some(a), Some(c)) => Some(
            crate::money::Money::parse(a, c)
                .with_context(|| format!("while reading --amount {a:?}"))?,
        ),
        _ => None,
    };
    Ok(crate::store::transactions::Registration {
        provider,
        provider_ref: reference.to_string(),
        kind,
        expected,
        merchant_ref: args.merchant_ref.clone().filter(|m| !m.trim().is_empty()),
    })
}

/// The payment kinds `provider` reports, as its callbacks and status answers name them.
fn provider_kinds(provider: crate::domain::ProviderId) -> &'static [crate::domain::TxnKind] {
    crate::providers::registry::entry(provider).kinds
}

fn track(cli: &Cli, args: &TrackArgs) -> anyhow::Result<ExitCode> {
    let cfg = operator_config(cli)?;
    let reg = registration(args)?;
    if !cfg.enabled.contains(&reg.provider) {
        eprintln!(
            "payhook: warning: [providers.{}] is not configured; the transaction is recorded but \
             not polled until it is (it goes to review at its deadline)",
            reg.provider
        );
    }
    let now = crate::clock::now_ms();
    let schedule = crate::schedule::first_poll(&cfg.poll(reg.provider), now);
    let store = open_store(&cfg)?;
    let done = store
        .write_blocking(move |c| crate::store::transactions::register(c, &reg, schedule, now))
        .context("while registering the transaction")?;
    if let Some(why) = &done.contradiction {
        eprintln!(
            "payhook: {} {}: refused: {why}; the transaction is {} and listed for review",
            args.provider,
            args.reference.trim(),
            done.status
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "{} {}: {} ({})",
        args.provider,
        args.reference.trim(),
        done.status,
        if done.created {
            "now tracked"
        } else {
            "already known"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// `payhook events list`: one row per event on stdout; the count and the destinations'
/// state on stderr.
fn list_events(
    store: &crate::store::Store,
    status: Option<String>,
    since: Option<String>,
    limit: usize,
    destination: Option<String>,
    now: i64,
) -> anyhow::Result<()> {
    use crate::store::queries;
    let time = |ms: Option<i64>| ms.map_or_else(|| "-".to_string(), crate::clock::rfc3339);
    let since = since.map(|s| parse_since(&s, now)).transpose()?;
    let rows = store
        .read_blocking(|c| match destination.as_deref() {
            Some(d) => queries::list_for(c, d, status.as_deref(), since, limit),
            None => queries::list(c, status.as_deref(), since, limit),
        })
        .context("while listing events")?;
    println!(
        "ID\tTYPE\tSTATUS\tTRANSACTION\tATTEMPTS\tCREATED\tNEXT_ATTEMPT\tDELIVERED\tLAST_ERROR"
    );
    for r in &rows {
        println!(
            "{}\t{}\t{}\t{}/{}\t{}\t{}\t{}\t{}\t{}",
            r.id,
            r.event_type,
            r.status,
            r.provider,
            r.provider_ref,
            r.attempts,
            crate::clock::rfc3339(r.created_at_ms),
            time(r.next_attempt_at_ms),
            time(r.delivered_at_ms),
            r.last_error.as_deref().unwrap_or("-")
        );
    }
    eprintln!("{} event(s)", rows.len());
    // The destinations' state goes to stderr, beside the count: stdout stays one
    // row per event for scripts.
    let states = store
        .read_blocking(crate::store::destinations::states)
        .context("while reading the destinations")?;
    for d in states
        .iter()
        .filter(|d| destination.as_deref().is_none_or(|n| n == d.name))
    {
        let paused = match d.paused_at_ms {
            Some(at) => format!(
                ", PAUSED since {}{}",
                crate::clock::rfc3339(at),
                d.paused_note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
            None => String::new(),
        };
        eprintln!("destination {}: {} pending{paused}", d.name, d.pending);
    }
    Ok(())
}

fn events(cli: &Cli, command: &EventsCommand) -> anyhow::Result<ExitCode> {
    use crate::store::{outbox, queries};
    let cfg = operator_config(cli)?;
    let store = open_store(&cfg)?;
    let now = crate::clock::now_ms();
    match command.clone() {
        EventsCommand::List {
            status,
            since,
            limit,
            destination,
        } => list_events(&store, status, since, limit, destination, now)?,
        EventsCommand::Show { id, destination } => {
            let mut story = store
                .read_blocking(|c| queries::story(c, &id))
                .with_context(|| format!("while reading event {id}"))?;
            if let Some(d) = destination {
                story.deliveries.retain(|x| x.destination == d);
                story.attempts.retain(|x| x.destination_name == d);
            }
            println!("{}", serde_json::to_string_pretty(&story)?);
        }
        EventsCommand::Pause { destination, note } => {
            let name = known_destination(&cfg, &store, &destination)?;
            let paused = store
                .write_blocking(move |c| {
                    crate::store::destinations::pause(c, &name, note.as_deref(), now)
                })
                .context("while pausing the destination")?;
            if paused {
                println!("{destination}: paused");
            } else {
                println!("{destination}: was already paused");
            }
        }
        EventsCommand::Resume { destination } => {
            let name = known_destination(&cfg, &store, &destination)?;
            let resumed = store
                .write_blocking(move |c| crate::store::destinations::resume(c, &name, now))
                .context("while resuming the destination")?;
            if resumed {
                println!("{destination}: resumed; its backlog goes out in order");
            } else {
                println!("{destination}: was not paused");
            }
        }
        EventsCommand::Replay {
            id,
            dead,
            since,
            destination,
            note,
        } => {
            let req = outbox::ReplayRequest {
                destination,
                by: operator(),
                note,
            };
            let ids = match (id, dead, since) {
                (Some(id), false, None) => {
                    let one = id.clone();
                    store
                        .write_blocking(move |c| outbox::replay_as(c, &one, &req, now))
                        .with_context(|| format!("while replaying {id}"))?;
                    vec![id]
                }
                (None, true, Some(since)) => {
                    let since = parse_since(&since, now)?;
                    store
                        .write_blocking(move |c| outbox::replay_dead_since_as(c, since, &req, now))
                        .context("while replaying dead events")?
                }
                _ => anyhow::bail!("give an event id, or --dead --since T"),
            };
            for id in &ids {
                println!("{id}");
            }
            eprintln!("{} event(s) replayed: pending, due now", ids.len());
        }
        EventsCommand::EnableDestination { url } => {
            let url = match url.clone().or_else(|| cfg.forward_url.clone()) {
                Some(u) => u,
                None => anyhow::bail!("give the destination URL (no [forward] url is configured)"),
            };
            // Destinations are stored redacted (a token in the query stays out of the
            // database), so the redacted form is also the key.
            let shown = crate::secret::redacted_url(&url);
            let key = shown.clone();
            let was = store
                .write_blocking(move |c| outbox::enable_destination(c, &key, now))
                .context("while enabling the destination")?;
            if was {
                println!("{shown}: enabled");
            } else {
                println!("{shown}: was not disabled");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(crate::config::ConfigError::Read {
            path: "/run/credentials/payhook.service/zengapay".into(),
            source: io,
        })
        .context("while loading payhook.toml");
        assert_eq!(
            error_text(&e),
            "while loading payhook.toml: cannot read /run/credentials/payhook.service/zengapay: \
             No such file or directory"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&plain), "outer: inner");
    }

    #[test]
    fn track_refuses_a_kind_its_provider_does_not_have() {
        let args = |provider: &str, kind: &str| TrackArgs {
            provider: provider.into(),
            reference: "r".into(),
            kind: Some(kind.into()),
            amount: None,
            currency: None,
            merchant_ref: None,
        };
        for (provider, kind) in [
            ("zengapay", "stk"),
            ("bitpesa", "collection"),
            ("jenga", "b2c"),
        ] {
            let err = registration(&args(provider, kind)).unwrap_err().to_string();
            assert!(err.contains("has no"), "{provider} {kind}: {err}");
        }
        for (provider, kind) in [
            ("zengapay", "transfer"),
            ("daraja", "c2b"),
            ("jenga", "ipn"),
        ] {
            assert!(
                registration(&args(provider, kind)).is_ok(),
                "{provider} {kind}"
            );
        }
    }
}
