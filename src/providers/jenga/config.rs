//! `[providers.jenga]`: the IPN credentials Jenga sends with HTTP Basic, and the merchant
//! token and signing key of the transaction query with its polling plan.

use crate::domain::{ProviderId, TxnKind};
use crate::providers::registry::{Entry, ProviderConfig, Route};
use crate::providers::sample::{Sample, SampleCallback, SampleError};
use crate::providers::Provider;
use crate::secret::Secret;
use crate::section::{AccessConfig, ConfigError, IpPolicy, PollConfig, PollKey, Section};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Jenga's registry entry.
pub const ENTRY: Entry = Entry {
    id: ProviderId::Jenga,
    parse,
    check: |s| s.raw::<RawJenga>().map(drop),
    poll_defaults,
    route: Route::Plain,
    kinds: &[TxnKind::Ipn],
};

/// `[providers.jenga]`
#[derive(Debug, Clone, Serialize)]
pub struct JengaConfig {
    /// IPN username registered in JengaHQ (sent with HTTP Basic).
    pub ipn_username: Secret,
    /// IPN password registered in JengaHQ.
    pub ipn_password: Secret,
    /// Source-address check; none by default (Jenga publishes no sender addresses).
    #[serde(flatten)]
    pub access: AccessConfig,
    /// Credentials of the transaction details query; without them Jenga is not
    /// polled.
    pub api: Option<JengaApi>,
    /// Polling plan and API root.
    #[serde(flatten)]
    pub poll: PollConfig,
}

/// `[providers.jenga]` API keys: the merchant token and the request-signing key.
#[derive(Debug, Clone, Serialize)]
pub struct JengaApi {
    /// JengaHQ merchant code.
    pub merchant_code: String,
    /// JengaHQ API key (`Api-Key` header of the token request).
    pub api_key: Secret,
    /// JengaHQ consumer secret.
    pub consumer_secret: Secret,
    /// The RSA private key (PEM text, PKCS#8 or PKCS#1) whose public half is uploaded to
    /// JengaHQ; read from `private_key_file`, checked at load.
    pub private_key: Secret,
}

/// The table as written. Unknown keys are errors, so a typo cannot disable a check.
/// Its `base_url` and `poll_*` keys are read by [`Section::poll`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawJenga {
    ipn_username: Option<Secret>,
    ipn_username_file: Option<PathBuf>,
    ipn_password: Option<Secret>,
    ipn_password_file: Option<PathBuf>,
    allowed_ips: Option<Vec<String>>,
    ip_policy: Option<IpPolicy>,
    merchant_code: Option<String>,
    api_key: Option<Secret>,
    api_key_file: Option<PathBuf>,
    consumer_secret: Option<Secret>,
    consumer_secret_file: Option<PathBuf>,
    private_key_file: Option<PathBuf>,
    base_url: PollKey,
    poll_first_after: PollKey,
    poll_max_interval: PollKey,
    poll_deadline: PollKey,
    poll_rate_per_minute: PollKey,
}

/// The transaction query credentials: all four keys, or none; the key must parse.
fn jenga_api(
    merchant_code: Option<String>,
    api_key: Option<Secret>,
    consumer_secret: Option<Secret>,
    private_key: Option<Secret>,
) -> Result<Option<JengaApi>, ConfigError> {
    match (merchant_code, api_key, consumer_secret, private_key) {
        (None, None, None, None) => Ok(None),
        (Some(merchant_code), Some(api_key), Some(consumer_secret), Some(private_key)) => {
            super::signing_key(private_key.expose())
                .map_err(|why| crate::section::invalid("providers.jenga.private_key_file", why))?;
            Ok(Some(JengaApi {
                merchant_code: merchant_code.trim().to_string(),
                api_key,
                consumer_secret,
                private_key,
            }))
        }
        _ => Err(crate::section::invalid(
            "providers.jenga.merchant_code",
            "the transaction query needs merchant_code, api_key, consumer_secret and \
             private_key_file together",
        )),
    }
}

fn poll_defaults() -> PollConfig {
    PollConfig {
        base_url: "https://api.finserve.africa".to_string(),
        first_after: Duration::from_secs(60),
        max_interval: Duration::from_secs(15 * 60),
        deadline: Duration::from_secs(24 * 3600),
        rate_per_minute: 60,
    }
}

fn parse(s: &Section<'_>) -> Result<Arc<dyn ProviderConfig>, ConfigError> {
    let j: RawJenga = s.raw()?;
    Ok(Arc::new(JengaConfig {
        ipn_username: s.required_secret("ipn_username", j.ipn_username, j.ipn_username_file)?,
        ipn_password: s.required_secret("ipn_password", j.ipn_password, j.ipn_password_file)?,
        access: s.access(j.allowed_ips, j.ip_policy, &[])?,
        api: jenga_api(
            j.merchant_code,
            s.optional_secret("api_key", j.api_key, j.api_key_file)?,
            s.optional_secret("consumer_secret", j.consumer_secret, j.consumer_secret_file)?,
            s.optional_secret("private_key", None, j.private_key_file)?,
        )?,
        poll: s.poll(poll_defaults())?,
    }))
}

impl ProviderConfig for JengaConfig {
    fn build(&self) -> Arc<dyn Provider> {
        Arc::new(super::Jenga::new(self))
    }
    fn access(&self) -> &AccessConfig {
        &self.access
    }
    fn poll(&self) -> Option<&PollConfig> {
        Some(&self.poll)
    }
    fn sample(&self, sample: &Sample<'_>) -> Result<SampleCallback, SampleError> {
        super::sample(self, sample)
    }
}
