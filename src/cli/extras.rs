//! Commands around the daemon rather than in it: shell completions, the man page and a
//! fresh forwarding secret.

use anyhow::Context;
use base64::Engine;
use clap::CommandFactory;
use std::process::ExitCode;

/// Prints `shell`'s completion script for `payhook` on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(shell, &mut cmd, "payhook", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Prints the man page (roff) on stdout: `payhook man > payhook.1`.
pub fn man() -> anyhow::Result<ExitCode> {
    let cmd = super::Cli::command();
    clap_mangen::Man::new(cmd)
        .render(&mut std::io::stdout())
        .context("while writing the man page")?;
    Ok(ExitCode::SUCCESS)
}

/// Bytes of key in a generated secret: the HMAC-SHA256 output size, well inside the
/// accepted range.
const GENERATED_KEY_BYTES: usize = 32;

/// A fresh `whsec_` secret from the operating system's random source.
pub fn new_secret() -> anyhow::Result<String> {
    use ring::rand::SecureRandom;
    let mut key = [0u8; GENERATED_KEY_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    Ok(format!(
        "{}{}",
        crate::forward::sign::SECRET_PREFIX,
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// Prints a fresh `whsec_` secret for `forward.secrets`.
pub fn gen_secret() -> anyhow::Result<ExitCode> {
    println!("{}", new_secret()?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_accepted_and_fresh() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        crate::forward::sign::SigningKey::parse(&a).unwrap();
    }
}
