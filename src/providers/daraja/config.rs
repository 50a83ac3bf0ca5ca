//! `[providers.daraja]`: the callback tokens, the published sender addresses, and the
//! OAuth and STK credentials of the status query with its polling plan.

use crate::domain::ProviderId;
use crate::providers::registry::{Entry, ProviderConfig, Route};
use crate::providers::Provider;
use crate::secret::Secret;
use crate::section::{
    token_callbacks_are_hints, AccessConfig, ConfigError, IpPolicy, PollConfig, PollKey, Section,
};
use serde::{Deserialize, Serialize};
use std::any::Any;
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
    fn to_toml(&self) -> Result<toml::Value, toml::ser::Error> {
        toml::Value::try_from(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
