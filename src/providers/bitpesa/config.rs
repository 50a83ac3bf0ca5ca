//! `[providers.bitpesa]`: the API key and secret that sign webhooks and status queries,
//! the URL TransferZero signs, and the polling plan.

use crate::domain::{ProviderId, TxnKind};
use crate::providers::registry::{Entry, ProviderConfig, Route};
use crate::providers::sample::{Sample, SampleCallback, SampleError};
use crate::providers::Provider;
use crate::secret::Secret;
use crate::section::{
    validate_url, AccessConfig, ConfigError, IpPolicy, PollConfig, PollKey, Section,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// BitPesa's registry entry.
pub const ENTRY: Entry = Entry {
    id: ProviderId::BitPesa,
    parse,
    check: |s| s.raw::<RawBitPesa>().map(drop),
    poll_defaults,
    route: Route::Plain,
    kinds: &[TxnKind::Transfer],
};

/// `[providers.bitpesa]`
#[derive(Debug, Clone, Serialize)]
pub struct BitPesaConfig {
    /// Our API key; webhooks carry it in `Authorization-Key`.
    pub api_key: Secret,
    /// Our API secret, the HMAC-SHA512 key.
    pub api_secret: Secret,
    /// The exact URL registered with TransferZero, if it differs from
    /// `public_base_url` + request path (e.g. the proxy rewrites paths).
    pub webhook_url: Option<String>,
    /// Source-address check, on top of the signature; none by default (TransferZero
    /// publishes no sender addresses).
    #[serde(flatten)]
    pub access: AccessConfig,
    /// The top-level `public_base_url`: with the request path, the URL TransferZero
    /// signed (unless `webhook_url` is set).
    #[serde(skip)]
    pub public_base_url: Option<String>,
    /// Polling plan and API root; status queries are signed with `api_key`/`api_secret`.
    #[serde(flatten)]
    pub poll: PollConfig,
}

/// The table as written. Unknown keys are errors, so a typo cannot disable a check.
/// Its `base_url` and `poll_*` keys are read by [`Section::poll`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawBitPesa {
    api_key: Option<Secret>,
    api_key_file: Option<PathBuf>,
    api_secret: Option<Secret>,
    api_secret_file: Option<PathBuf>,
    webhook_url: Option<String>,
    allowed_ips: Option<Vec<String>>,
    ip_policy: Option<IpPolicy>,
    base_url: PollKey,
    poll_first_after: PollKey,
    poll_max_interval: PollKey,
    poll_deadline: PollKey,
    poll_rate_per_minute: PollKey,
}

/// At most 6 polls in the first hour, then hourly, at most 2500 calls a day: 10, 20, 40
/// minutes, then every hour; 1 request a minute is 1440 a day. Compliance checks may take
/// 24 h, so the deadline leaves room for them.
fn poll_defaults() -> PollConfig {
    PollConfig {
        base_url: "https://api.transferzero.com".to_string(),
        first_after: Duration::from_secs(10 * 60),
        max_interval: Duration::from_secs(3600),
        deadline: Duration::from_secs(72 * 3600),
        rate_per_minute: 1,
    }
}

fn parse(s: &Section<'_>) -> Result<Arc<dyn ProviderConfig>, ConfigError> {
    let b: RawBitPesa = s.raw()?;
    let webhook_url = match b.webhook_url {
        Some(u) => Some(validate_url(&s.key("webhook_url"), &u)?),
        None => None,
    };
    if webhook_url.is_none() && s.public_base_url.is_none() {
        return Err(ConfigError::Invalid {
            key: "public_base_url".to_string(),
            why: "required when [providers.bitpesa] is enabled: TransferZero signs the \
                  public URL it calls (or set providers.bitpesa.webhook_url)"
                .to_string(),
        });
    }
    Ok(Arc::new(BitPesaConfig {
        api_key: s.required_secret("api_key", b.api_key, b.api_key_file)?,
        api_secret: s.required_secret("api_secret", b.api_secret, b.api_secret_file)?,
        webhook_url,
        public_base_url: s.public_base_url.map(str::to_string),
        access: s.access(b.allowed_ips, b.ip_policy, &[])?,
        poll: s.poll(poll_defaults())?,
    }))
}

impl ProviderConfig for BitPesaConfig {
    fn build(&self) -> Arc<dyn Provider> {
        Arc::new(super::BitPesa::new(self, self.public_base_url.as_deref()))
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
