//! `[providers.daraja]`: the callback tokens, the published sender addresses, and the
//! OAuth and STK credentials of the status query with its polling plan.

use crate::domain::{ProviderId, TxnKind};
use crate::providers::registry::{Entry, ProviderConfig, Route};
use crate::providers::sample::{Sample, SampleCallback, SampleError};
use crate::providers::Provider;
use crate::secret::Secret;
use crate::section::{
    token_callbacks_are_hints, AccessConfig, ConfigError, IpPolicy, PollConfig, PollKey, Section,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Daraja's registry entry.
pub const ENTRY: Entry = Entry {
    id: ProviderId::Daraja,
    parse,
    check: |s| s.raw::<RawDaraja>().map(drop),
    poll_defaults,
    route: Route::PathToken,
    kinds: &[TxnKind::Stk, TxnKind::C2b, TxnKind::B2c],
};

/// The Daraja sender addresses circulated by practitioners (not
/// on an official Safaricom page): the default `providers.daraja.allowed_ips`.
pub const DARAJA_SENDER_IPS: [&str; 12] = [
    "196.201.214.200",
    "196.201.214.206",
    "196.201.213.114",
    "196.201.214.207",
    "196.201.214.208",
    "196.201.213.44",
    "196.201.212.127",
    "196.201.212.138",
    "196.201.212.129",
    "196.201.212.136",
    "196.201.212.74",
    "196.201.212.69",
];

/// Words Daraja refuses in callback URLs, checked
/// case-insensitively in Daraja tokens because the token is part of the URL.
pub const DARAJA_BANNED_URL_WORDS: [&str; 8] = [
    "m-pesa",
    "mpesa",
    "safaricom",
    "exe",
    "exec",
    "cmd",
    "sql",
    "query",
];

/// `[providers.daraja]`
#[derive(Debug, Clone, Serialize)]
pub struct DarajaConfig {
    /// Secrets accepted as `{token}` in `/callbacks/daraja/{token}`; several so that one
    /// can be rotated (or one per shortcode).
    pub callback_tokens: Vec<Secret>,
    /// Source-address check; defaults to [`DARAJA_SENDER_IPS`], enforced.
    #[serde(flatten)]
    pub access: AccessConfig,
    /// Hold a success until the status endpoint confirms it (default true).
    pub confirm_unsigned: bool,
    /// A callback with a valid path token from an address inside the enforced allowlist
    /// (Safaricom's published senders by default) counts as authenticated, like a
    /// signature (default true). Off: such callbacks are hints like token-only ones.
    pub allowlist_authenticates: bool,
    /// Credentials of the STK push query; without them Daraja is not polled and a
    /// held success waits for its deadline.
    pub api: Option<DarajaApi>,
    /// Polling plan and API root.
    #[serde(flatten)]
    pub poll: PollConfig,
}

/// `[providers.daraja]` API keys: OAuth client credentials and the STK shortcode/passkey.
#[derive(Debug, Clone, Serialize)]
pub struct DarajaApi {
    /// OAuth consumer key (Basic user of `/oauth/v1/generate`).
    pub consumer_key: Secret,
    /// OAuth consumer secret.
    pub consumer_secret: Secret,
    /// The paybill/till shortcode STK pushes are made for (`BusinessShortCode`).
    pub shortcode: String,
    /// The Lipa na M-Pesa passkey (part of the query `Password`).
    pub passkey: Secret,
}

/// The table as written. Unknown keys are errors, so a typo cannot disable a check.
/// Its `base_url` and `poll_*` keys are read by [`Section::poll`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawDaraja {
    callback_tokens: Option<Vec<Secret>>,
    callback_tokens_file: Option<PathBuf>,
    allowed_ips: Option<Vec<String>>,
    ip_policy: Option<IpPolicy>,
    confirm_unsigned: Option<bool>,
    allowlist_authenticates: Option<bool>,
    consumer_key: Option<Secret>,
    consumer_key_file: Option<PathBuf>,
    consumer_secret: Option<Secret>,
    consumer_secret_file: Option<PathBuf>,
    shortcode: Option<String>,
    passkey: Option<Secret>,
    passkey_file: Option<PathBuf>,
    base_url: PollKey,
    poll_first_after: PollKey,
    poll_max_interval: PollKey,
    poll_deadline: PollKey,
    poll_rate_per_minute: PollKey,
}

/// The STK query credentials: all four keys, or none.
fn daraja_api(
    consumer_key: Option<Secret>,
    consumer_secret: Option<Secret>,
    shortcode: Option<String>,
    passkey: Option<Secret>,
) -> Result<Option<DarajaApi>, ConfigError> {
    match (consumer_key, consumer_secret, shortcode, passkey) {
        (None, None, None, None) => Ok(None),
        (Some(consumer_key), Some(consumer_secret), Some(shortcode), Some(passkey)) => {
            let shortcode = shortcode.trim().to_string();
            if shortcode.is_empty() || !shortcode.bytes().all(|b| b.is_ascii_digit()) {
                return Err(crate::section::invalid(
                    "providers.daraja.shortcode",
                    format!("{shortcode:?} is not a numeric shortcode"),
                ));
            }
            Ok(Some(DarajaApi {
                consumer_key,
                consumer_secret,
                shortcode,
                passkey,
            }))
        }
        _ => Err(crate::section::invalid(
            "providers.daraja.consumer_key",
            "the STK query needs consumer_key, consumer_secret, shortcode and passkey together",
        )),
    }
}

/// STK query from 30-60 s after initiation, a few times over the first minutes; spike
/// arrest (500.003.02) punishes bursts.
fn poll_defaults() -> PollConfig {
    PollConfig {
        base_url: "https://api.safaricom.co.ke".to_string(),
        first_after: Duration::from_secs(45),
        max_interval: Duration::from_secs(5 * 60),
        deadline: Duration::from_secs(24 * 3600),
        rate_per_minute: 30,
    }
}

fn parse(s: &Section<'_>) -> Result<Arc<dyn ProviderConfig>, ConfigError> {
    let d: RawDaraja = s.raw()?;
    Ok(Arc::new(DarajaConfig {
        callback_tokens: s.callback_tokens(
            d.callback_tokens,
            d.callback_tokens_file,
            &DARAJA_BANNED_URL_WORDS,
        )?,
        access: s.access(d.allowed_ips, d.ip_policy, &DARAJA_SENDER_IPS)?,
        confirm_unsigned: d.confirm_unsigned.unwrap_or(true),
        allowlist_authenticates: d.allowlist_authenticates.unwrap_or(true),
        api: daraja_api(
            s.optional_secret("consumer_key", d.consumer_key, d.consumer_key_file)?,
            s.optional_secret("consumer_secret", d.consumer_secret, d.consumer_secret_file)?,
            d.shortcode,
            s.optional_secret("passkey", d.passkey, d.passkey_file)?,
        )?,
        poll: s.poll(poll_defaults())?,
    }))
}

impl ProviderConfig for DarajaConfig {
    fn build(&self) -> Arc<dyn Provider> {
        Arc::new(super::Daraja::new(self))
    }
    fn access(&self) -> &AccessConfig {
        &self.access
    }
    fn poll(&self) -> Option<&PollConfig> {
        Some(&self.poll)
    }
    fn confirm_unsigned(&self) -> bool {
        self.confirm_unsigned
    }
    fn allowlist_authenticates(&self) -> bool {
        self.allowlist_authenticates
    }
    fn warnings(&self) -> Vec<String> {
        if !(self.confirm_unsigned
            && self.api.is_none()
            && token_callbacks_are_hints(&self.access, self.allowlist_authenticates))
        {
            return Vec::new();
        }
        vec![
            "providers.daraja has no query credentials (consumer_key, consumer_secret, \
             shortcode, passkey), and callbacks are not all authenticated by an enforced \
             allowlist: a token-only STK result is applied and announced as unconfirmed \
             (\"confirmed\": false). Set the credentials, enforce the allowlist with \
             allowlist_authenticates, or confirm_unsigned = false to trust \
             token-authenticated callbacks as they are."
                .to_string(),
        ]
    }
    fn sample(&self, sample: &Sample<'_>) -> Result<SampleCallback, SampleError> {
        super::sample(self, sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::providers::jenga::JengaConfig;
    use std::path::Path;

    #[test]
    fn daraja_defaults_to_the_published_senders_enforced_and_confirmed() {
        let c = Config::from_toml(
            "[providers.daraja]\ncallback_tokens = [\"d4r4j4-t0k3n-000001\"]",
            Path::new("."),
        )
        .unwrap();
        let d = c.providers.get::<DarajaConfig>().unwrap();
        assert_eq!(d.access.allowed_ips.len(), 12);
        assert_eq!(d.access.ip_policy, IpPolicy::Enforce);
        assert!(d.confirm_unsigned);
        assert!(c.providers.confirm_unsigned(ProviderId::Daraja));
        assert!(c.providers.access(ProviderId::Jenga).is_none());
        let c = Config::from_toml(
            "[providers.tujenge]\ncallback_tokens = [\"tujenge-token-000001\"]\n\
             confirm_unsigned = false\nip_policy = \"log-only\"\nallowed_ips = [\"10.0.0.0/8\", \"192.0.2.7\"]",
            Path::new("."),
        )
        .unwrap();
        let t = c.providers.access(ProviderId::Tujenge).unwrap();
        assert_eq!(t.ip_policy, IpPolicy::LogOnly);
        assert_eq!(t.allowed_ips[1].to_string(), "192.0.2.7/32");
        assert!(!c.providers.confirm_unsigned(ProviderId::Tujenge));
        // Jenga and Tujenge check no address unless told to.
        let c = Config::from_toml(
            "[providers.jenga]\nipn_username = \"u\"\nipn_password = \"p\"",
            Path::new("."),
        )
        .unwrap();
        assert!(c
            .providers
            .access(ProviderId::Jenga)
            .unwrap()
            .allowed_ips
            .is_empty());
    }

    #[test]
    fn callback_tokens_are_checked_without_printing_them() {
        let cases = [
            ("[]", "at least one token"),
            ("[\"short-token\"]", "token #1 is shorter"),
            (
                "[\"d4r4j4-t0k3n-000001\", \"has/slash/inside-it\"]",
                "token #2 may only contain",
            ),
            ("[\"my-MPESA-token-0001\"]", "\"mpesa\""),
            ("[\"token-for-sqlite-001\"]", "\"sql\""),
        ];
        for (tokens, needle) in cases {
            let text = format!("[providers.daraja]\ncallback_tokens = {tokens}");
            let err = Config::from_toml(&text, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{tokens}: {err}");
            assert!(err.contains("providers.daraja.callback_tokens"), "{err}");
            for t in ["short-token", "has/slash", "MPESA-token", "sqlite"] {
                assert!(!err.contains(t), "{err} shows the token");
            }
        }
        // Tujenge has no banned words (only Daraja refuses them).
        let text = "[providers.tujenge]\ncallback_tokens = [\"token-for-sqlite-001\"]";
        assert!(Config::from_toml(text, Path::new(".")).is_ok());
        let both = "[providers.daraja]\ncallback_tokens = [\"d4r4j4-t0k3n-000001\"]\ncallback_tokens_file = \"x\"";
        let err = Config::from_toml(both, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not both"), "{err}");
        for unknown in ["ip_polcy = \"enforce\"", "ip_policy = \"warn\""] {
            let text = format!(
                "[providers.daraja]\ncallback_tokens = [\"d4r4j4-t0k3n-000001\"]\n{unknown}"
            );
            assert!(
                Config::from_toml(&text, Path::new(".")).is_err(),
                "{unknown}"
            );
        }
    }

    #[test]
    fn callback_tokens_file_holds_one_token_per_line() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens");
        std::fs::write(
            &f,
            "# rotated 2026-11\nd4r4j4-t0k3n-000001\n\n  d4r4j4-t0k3n-000002  \n",
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = "[providers.daraja]\ncallback_tokens_file = \"tokens\"";
        let c = Config::from_toml(text, dir.path()).unwrap();
        let tokens: Vec<&str> = c
            .providers
            .get::<DarajaConfig>()
            .unwrap()
            .callback_tokens
            .iter()
            .map(Secret::expose)
            .collect();
        assert_eq!(tokens, ["d4r4j4-t0k3n-000001", "d4r4j4-t0k3n-000002"]);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Config::from_toml(text, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("callback_tokens_file") && err.contains("other users"),
            "{err}"
        );
        // Jenga credentials by file too.
        let u = dir.path().join("user");
        std::fs::write(&u, "ipnuser\n").unwrap();
        std::fs::set_permissions(&u, std::fs::Permissions::from_mode(0o400)).unwrap();
        let text = "[providers.jenga]\nipn_username_file = \"user\"\nipn_password = \"ipnpass\"";
        let c = Config::from_toml(text, dir.path()).unwrap();
        assert_eq!(
            c.providers
                .get::<JengaConfig>()
                .unwrap()
                .ipn_username
                .expose(),
            "ipnuser"
        );
    }

    #[test]
    fn status_api_credentials_never_print_and_come_all_or_none() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("jenga.pem");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/jenga/test_private_key.pem"
            ),
            &key,
        )
        .unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = r#"[providers.daraja]
            callback_tokens = ["path-token-0123456789abcdef"]
            consumer_key = "dk-SECRET-1"
            consumer_secret = "dk-SECRET-2"
            shortcode = "174379"
            passkey = "dk-SECRET-3"
            [providers.jenga]
            ipn_username = "u"
            ipn_password = "p"
            merchant_code = "001"
            api_key = "jg-SECRET-4"
            consumer_secret = "jg-SECRET-5"
            private_key_file = "jenga.pem""#;
        let c = Config::from_toml(text, dir.path()).unwrap();
        assert!(c.providers.get::<DarajaConfig>().unwrap().api.is_some());
        let shown = format!("{c:?}\n{}", c.to_redacted_toml());
        for s in [
            "dk-SECRET-1",
            "dk-SECRET-2",
            "dk-SECRET-3",
            "jg-SECRET-4",
            "jg-SECRET-5",
            "PRIVATE KEY",
        ] {
            assert!(!shown.contains(s), "{s} leaked in:\n{shown}");
        }
        let partial = text.replace("passkey = \"dk-SECRET-3\"", "");
        let err = Config::from_toml(&partial, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("providers.daraja.consumer_key"), "{err}");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = Config::from_toml(text, dir.path()).unwrap_err().to_string();
        assert!(err.contains("providers.jenga.private_key_file"), "{err}");
    }
}
