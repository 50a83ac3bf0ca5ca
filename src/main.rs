//! The `payhook` binary: parse the command line and dispatch. Everything else is in the
//! library, so tests can run the daemon in-process.

use clap::Parser;

fn main() -> std::process::ExitCode {
    payhook::cli::run(payhook::cli::Cli::parse())
}
