//! The command line: `serve`, `check-config`, `migrate`, `healthcheck`, and `events`
//! (list, show, replay the outbox; re-enable a destination disabled by 410 Gone).
//! Start-up glue, so errors are `anyhow` with "while ..." context.

use crate::config::Config;
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
    /// See and recover the events delivered to the merchant (the outbox).
    Events {
        /// What to do with them.
        #[command(subcommand)]
        command: EventsCommand,
    },
}

/// `payhook events ...`. Times (`--since`) are RFC 3339 (`2026-11-23T06:00:00Z`), a date
/// (`2026-11-23`, midnight UTC), or a duration back from now (`90m`, `24h`, `3d`).
#[derive(Debug, Subcommand)]
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
    },
    /// Print, as JSON, the whole story of an event: its payload, its transaction, and that
    /// transaction's callbacks, polls, transitions, events, and this event's attempts.
    Show {
        /// Event id (`evt_...`).
        id: String,
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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::CheckConfig => check_config(cli.config.as_ref()),
        Command::Serve => serve(cli.config.as_ref()),
        Command::Migrate => migrate(cli.config.as_ref()),
        Command::Healthcheck => healthcheck(cli.config.as_ref()),
        Command::Events { command } => events(cli.config.as_ref(), command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("payhook: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = load_config(path)?;
    print!("{}", cfg.to_redacted_toml());
    Ok(ExitCode::SUCCESS)
}

fn serve(path: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = load_config(path)?;
    crate::telemetry::init(&cfg.log);
    if path.is_none() {
        tracing::info!("no --config given; using built-in defaults");
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

fn migrate(path: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = load_config(path)?;
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

fn healthcheck(path: Option<&PathBuf>) -> anyhow::Result<ExitCode> {
    use std::io::{Read, Write};
    let cfg = load_config(path)?;
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
fn parse_since(text: &str, now_ms: i64) -> anyhow::Result<i64> {
    if let Some(ms) = crate::clock::parse_rfc3339(text) {
        return Ok(ms);
    }
    match crate::config::parse_duration(text) {
        Ok(ago) => Ok(now_ms.saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX))),
        Err(_) => anyhow::bail!(
            "--since {text:?}: expected RFC 3339 (2026-11-23T06:00:00Z), a date (2026-11-23) \
             or a duration back from now (24h)"
        ),
    }
}

fn open_store(cfg: &Config) -> anyhow::Result<crate::store::Store> {
    crate::store::Store::open(&crate::store::StoreOptions {
        path: cfg.store.path.clone(),
        max_size_bytes: None,
    })
    .with_context(|| format!("while opening {}", cfg.store.path.display()))
}

fn events(path: Option<&PathBuf>, command: EventsCommand) -> anyhow::Result<ExitCode> {
    use crate::store::events;
    let cfg = load_config(path)?;
    let store = open_store(&cfg)?;
    let now = crate::clock::now_ms();
    let time = |ms: Option<i64>| ms.map_or_else(|| "-".to_string(), crate::clock::rfc3339);
    match command {
        EventsCommand::List {
            status,
            since,
            limit,
        } => {
            let since = since.map(|s| parse_since(&s, now)).transpose()?;
            let rows = store
                .read_blocking(|c| events::list(c, status.as_deref(), since, limit))
                .context("while listing events")?;
            println!("ID\tTYPE\tSTATUS\tTRANSACTION\tATTEMPTS\tCREATED\tNEXT_ATTEMPT\tDELIVERED\tLAST_ERROR");
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
        }
        EventsCommand::Show { id } => {
            let story = store
                .read_blocking(|c| events::story(c, &id))
                .with_context(|| format!("while reading event {id}"))?;
            println!("{}", serde_json::to_string_pretty(&story)?);
        }
        EventsCommand::Replay { id, dead, since } => {
            let ids = match (id, dead, since) {
                (Some(id), false, None) => {
                    let one = id.clone();
                    store
                        .write_blocking(move |c| events::replay(c, &one, now))
                        .with_context(|| format!("while replaying {id}"))?;
                    vec![id]
                }
                (None, true, Some(since)) => {
                    let since = parse_since(&since, now)?;
                    store
                        .write_blocking(move |c| events::replay_dead_since(c, since, now))
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
            let url = match url.or_else(|| cfg.forward.as_ref().map(|f| f.url.clone())) {
                Some(u) => u,
                None => anyhow::bail!("give the destination URL (no [forward] url is configured)"),
            };
            let shown = url.clone();
            let was = store
                .write_blocking(move |c| events::enable_destination(c, &url))
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
