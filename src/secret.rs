//! Secrets: a string type that never prints, URLs with their query redacted, and secrets
//! read from files.
//!
//! Every secret may be given inline (`secret_hash = "..."`) or as a file
//! (`secret_hash_file = "/run/credentials/payhook.service/zengapay"`, for systemd
//! `LoadCredential=`), never both. Secret files must not be readable by others, and a
//! trailing newline is trimmed. [`Secret`]'s `Debug` and `Serialize` print `[redacted]`,
//! so a secret cannot reach a log line or `check-config` output.

use serde::{Deserialize, Serialize, Serializer};
use std::path::{Path, PathBuf};

/// A secret key that could not be resolved, naming the key, never the value.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {why}")]
pub struct SecretError {
    /// Dotted key, e.g. `providers.bitpesa.api_secret_file`.
    pub key: String,
    /// What is wrong.
    pub why: String,
}

fn invalid(key: &str, why: impl Into<String>) -> SecretError {
    SecretError {
        key: key.to_string(),
        why: why.into(),
    }
}

/// A secret string. `Debug` and `Serialize` print `[redacted]`; there is no `Display`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself, for computing a MAC or comparing a credential.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// `url` with its query (and fragment) replaced by `[redacted]`, for output meant to be
/// shown: a receiver's token often rides in the query.
///
/// ```
/// use payhook::secret::redacted_url;
/// assert_eq!(redacted_url("https://m.example/h?token=s3cret"), "https://m.example/h?[redacted]");
/// assert_eq!(redacted_url("https://m.example/h"), "https://m.example/h");
/// ```
pub fn redacted_url(url: &str) -> String {
    match url.split_once(['?', '#']) {
        Some((head, _)) => format!("{head}?[redacted]"),
        None => url.to_string(),
    }
}

/// Resolves a secret given inline or as `<key>_file`, exactly one of them.
pub fn required_secret(
    key: &str,
    inline: Option<Secret>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Secret, SecretError> {
    optional_secret(key, inline, file, base)?
        .ok_or_else(|| invalid(key, format!("required (or {key}_file)")))
}

/// Like [`required_secret`] but absent is allowed.
pub fn optional_secret(
    key: &str,
    inline: Option<Secret>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Option<Secret>, SecretError> {
    let secret = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(invalid(key, format!("give {key} or {key}_file, not both")))
        }
        (Some(s), None) => s,
        (None, Some(path)) => read_secret_file(key, &base.join(path))?,
        (None, None) => return Ok(None),
    };
    if secret.expose().is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    Ok(Some(secret))
}

/// Reads one secret from `path`, trimming the trailing newline (`key` names it in errors).
pub fn read_secret_file(key: &str, path: &Path) -> Result<Secret, SecretError> {
    let text = read_private_file(&format!("{key}_file"), path)?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

/// Reads a file holding secrets, refusing one that other users can read.
pub fn read_private_file(file_key: &str, path: &Path) -> Result<String, SecretError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| invalid(file_key, format!("cannot read {}: {e}", path.display())))?;
        // Refuse a secret others can read: it is probably not the file the operator
        // meant to protect (garage's rule). systemd credentials are 0400.
        if meta.permissions().mode() & 0o007 != 0 {
            return Err(invalid(
                file_key,
                format!(
                    "{} is accessible to other users; chmod o-rwx it",
                    path.display()
                ),
            ));
        }
    }
    std::fs::read_to_string(path)
        .map_err(|e| invalid(file_key, format!("cannot read {}: {e}", path.display())))
}

/// Reads a file of secrets, one a line; blank lines and `#` comments are skipped.
pub fn read_secret_lines(key: &str, path: &Path) -> Result<Vec<Secret>, SecretError> {
    Ok(read_secret_file(key, path)?
        .expose()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(Secret::new)
        .collect())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::providers::zengapay::ZengaPayConfig;

    #[test]
    fn secret_files_are_read_trimmed_and_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("zp");
        std::fs::write(&f, "from-file\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = "[providers.zengapay]\nsecret_hash_file = \"zp\"";
        let c = Config::from_toml(text, dir.path()).unwrap();
        assert_eq!(
            c.providers
                .get::<ZengaPayConfig>()
                .unwrap()
                .secret_hash
                .expose(),
            "from-file"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Config::from_toml(text, dir.path()).unwrap_err().to_string();
        assert!(err.contains("other users"), "{err}");
    }
}
