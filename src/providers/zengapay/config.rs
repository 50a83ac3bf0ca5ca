//! `[providers.zengapay]`: the secret hash that keys its signatures, the API token of the
//! status and statement endpoints, and their polling and sweep plans.

use crate::domain::{ProviderId, TxnKind};
use crate::providers::registry::{Entry, ProviderConfig, Route};
use crate::providers::sample::{Sample, SampleCallback, SampleError};
use crate::providers::Provider;
use crate::secret::Secret;
use crate::section::{
    parse_duration, ser_duration, AccessConfig, ConfigError, IpPolicy, PollConfig, PollKey, Section,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// ZengaPay's registry entry.
pub const ENTRY: Entry = Entry {
    id: ProviderId::ZengaPay,
    parse,
    check: |s| s.raw::<RawZengaPay>().map(drop),
    poll_defaults,
    route: Route::Plain,
    kinds: &[TxnKind::Collection, TxnKind::Transfer],
};

/// `[providers.zengapay]`
#[derive(Debug, Clone, Serialize)]
pub struct ZengaPayConfig {
    /// The account's "Secret Hash" (dashboard → Developer Settings), the HMAC key.
    pub secret_hash: Secret,
    /// The API token for the status endpoints (`Authorization: Bearer`); without it
    /// ZengaPay transactions are not polled.
    pub api_token: Option<Secret>,
    /// Source-address check, on top of the signature; none by default (ZengaPay
    /// publishes no sender addresses).
    #[serde(flatten)]
    pub access: AccessConfig,
    /// Whether a success whose signature covers only some fields (the `fields-*`
    /// variants: not the status) waits for a status query before it counts. Default true;
    /// it needs `api_token`.
    pub confirm_unsigned: bool,
    /// Polling plan and API root.
    #[serde(flatten)]
    pub poll: PollConfig,
    /// How often the account statement is swept for transactions payhook does not know
    /// (`"0s"`: never). Needs `api_token`.
    #[serde(serialize_with = "ser_duration")]
    pub sweep_interval: Duration,
    /// How far back each sweep reads the statement.
    #[serde(serialize_with = "ser_duration")]
    pub sweep_lookback: Duration,
}

/// Default ZengaPay statement sweep interval.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Default ZengaPay statement lookback: INDETERMINATE resolves within 24 h, plus
/// room for a restart.
pub const DEFAULT_SWEEP_LOOKBACK: Duration = Duration::from_secs(26 * 3600);

/// The table as written. Unknown keys are errors, so a typo cannot disable a check.
/// Its `base_url` and `poll_*` keys are read by [`Section::poll`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawZengaPay {
    secret_hash: Option<Secret>,
    secret_hash_file: Option<PathBuf>,
    api_token: Option<Secret>,
    api_token_file: Option<PathBuf>,
    allowed_ips: Option<Vec<String>>,
    ip_policy: Option<IpPolicy>,
    confirm_unsigned: Option<bool>,
    base_url: PollKey,
    poll_first_after: PollKey,
    poll_max_interval: PollKey,
    poll_deadline: PollKey,
    poll_rate_per_minute: PollKey,
    sweep_interval: Option<String>,
    sweep_lookback: Option<String>,
}

/// Every 1, 2, 4, 8, 15, 15 ... minutes ("every 5-15 min to 24 h"); INDETERMINATE is
/// "usually resolved within 24 h".
fn poll_defaults() -> PollConfig {
    PollConfig {
        base_url: "https://api.zengapay.com".to_string(),
        first_after: Duration::from_secs(60),
        max_interval: Duration::from_secs(15 * 60),
        deadline: Duration::from_secs(24 * 3600),
        rate_per_minute: 60,
    }
}

fn parse(s: &Section<'_>) -> Result<Arc<dyn ProviderConfig>, ConfigError> {
    let z: RawZengaPay = s.raw()?;
    Ok(Arc::new(ZengaPayConfig {
        secret_hash: s.required_secret("secret_hash", z.secret_hash, z.secret_hash_file)?,
        api_token: s.optional_secret("api_token", z.api_token, z.api_token_file)?,
        access: s.access(z.allowed_ips, z.ip_policy, &[])?,
        confirm_unsigned: z.confirm_unsigned.unwrap_or(true),
        poll: s.poll(poll_defaults())?,
        sweep_interval: match z.sweep_interval {
            Some(t) => parse_duration(&t).map_err(|why| s.invalid("sweep_interval", why))?,
            None => DEFAULT_SWEEP_INTERVAL,
        },
        sweep_lookback: match z.sweep_lookback {
            Some(t) => {
                let d = parse_duration(&t).map_err(|why| s.invalid("sweep_lookback", why))?;
                if d < Duration::from_secs(60) {
                    return Err(s.invalid("sweep_lookback", "must be at least 1m"));
                }
                d
            }
            None => DEFAULT_SWEEP_LOOKBACK,
        },
    }))
}

impl ProviderConfig for ZengaPayConfig {
    fn build(&self) -> Arc<dyn Provider> {
        Arc::new(super::ZengaPay::new(self))
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
    fn sweep(&self) -> Option<(Duration, Duration)> {
        (self.api_token.is_some() && !self.sweep_interval.is_zero())
            .then_some((self.sweep_interval, self.sweep_lookback))
    }
    fn warnings(&self) -> Vec<String> {
        if !(self.confirm_unsigned && self.api_token.is_none()) {
            return Vec::new();
        }
        vec![
            "providers.zengapay has no api_token: a callback whose signature covers only \
             some fields (auth hmac-sha256:fields-*) cannot be confirmed by a status \
             query, so it is applied and announced as unconfirmed (\"confirmed\": false, \
             its values only in data.unconfirmed). Set api_token, or confirm_unsigned = \
             false to trust such callbacks as they are."
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
    use std::path::Path;

    #[test]
    fn zengapay_confirms_field_signed_successes_and_says_when_it_cannot() {
        let cfg = |extra: &str| {
            Config::from_toml(
                &format!("[providers.zengapay]\nsecret_hash = \"s\"\n{extra}"),
                Path::new("."),
            )
            .unwrap()
        };
        let c = cfg("");
        assert!(c.providers.confirm_unsigned(ProviderId::ZengaPay));
        let w = c.warnings();
        assert!(w.len() == 1 && w[0].contains("api_token"), "{w:?}");
        assert!(cfg("api_token = \"t\"").warnings().is_empty());
        let off = cfg("confirm_unsigned = false");
        assert!(!off.providers.confirm_unsigned(ProviderId::ZengaPay));
        assert!(off.warnings().is_empty());
    }
}
