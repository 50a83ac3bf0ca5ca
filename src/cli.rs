//! The command line: `serve`, `check-config`, `migrate`, `healthcheck`.
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
