//! `[providers.tujenge]`: the callback tokens that are Tujenge's only credential. Tujenge
//! has no status endpoint, so its polling plan only sets the review deadline.

use crate::domain::{ProviderId, TxnKind};
use crate::providers::registry::{Entry, ProviderConfig, Route};
use crate::providers::sample::{Sample, SampleCallback, SampleError};
use crate::providers::Provider;
use crate::secret::Secret;
use crate::section::{
    token_callbacks_are_hints, AccessConfig, ConfigError, IpPolicy, PollConfig, Section,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Tujenge's registry entry.
pub const ENTRY: Entry = Entry {
    id: ProviderId::Tujenge,
    parse,
    check: |s| s.raw::<RawTujenge>().map(drop),
    poll_defaults,
    route: Route::PathToken,
    kinds: &[TxnKind::Stk],
};

/// `[providers.tujenge]`
#[derive(Debug, Clone, Serialize)]
pub struct TujengeConfig {
    /// Secrets accepted as `{token}` in `/callbacks/tujenge/{token}` (the one put in the
    /// payment's `callBackUrl`); the matching token correlates the callback.
    pub callback_tokens: Vec<Secret>,
    /// Source-address check; none by default.
    #[serde(flatten)]
    pub access: AccessConfig,
    /// Whether a token-only callback is a hint (default true). Tujenge has no status
    /// endpoint, so a hint is applied and announced as unconfirmed.
    pub confirm_unsigned: bool,
    /// A callback with a valid token from an address inside the enforced allowlist counts
    /// as authenticated (default false: Tujenge publishes no sender addresses).
    pub allowlist_authenticates: bool,
}

/// The table as written. Unknown keys are errors, so a typo cannot disable a check.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTujenge {
    callback_tokens: Option<Vec<Secret>>,
    callback_tokens_file: Option<PathBuf>,
    allowed_ips: Option<Vec<String>>,
    ip_policy: Option<IpPolicy>,
    confirm_unsigned: Option<bool>,
    allowlist_authenticates: Option<bool>,
}

/// Nothing to poll (no status endpoint): wait for the callback, then review.
fn poll_defaults() -> PollConfig {
    PollConfig {
        base_url: "https://api.tujenge.io".to_string(),
        first_after: Duration::from_secs(24 * 3600),
        max_interval: Duration::from_secs(24 * 3600),
        deadline: Duration::from_secs(24 * 3600),
        rate_per_minute: 1,
    }
}

fn parse(s: &Section<'_>) -> Result<Arc<dyn ProviderConfig>, ConfigError> {
    let t: RawTujenge = s.raw()?;
    Ok(Arc::new(TujengeConfig {
        callback_tokens: s.callback_tokens(t.callback_tokens, t.callback_tokens_file, &[])?,
        access: s.access(t.allowed_ips, t.ip_policy, &[])?,
        confirm_unsigned: t.confirm_unsigned.unwrap_or(true),
        allowlist_authenticates: t.allowlist_authenticates.unwrap_or(false),
    }))
}

impl ProviderConfig for TujengeConfig {
    fn build(&self) -> Arc<dyn Provider> {
        Arc::new(super::Tujenge::new(self))
    }
    fn access(&self) -> &AccessConfig {
        &self.access
    }
    fn confirm_unsigned(&self) -> bool {
        self.confirm_unsigned
    }
    fn allowlist_authenticates(&self) -> bool {
        self.allowlist_authenticates
    }
    fn warnings(&self) -> Vec<String> {
        if !(self.confirm_unsigned
            && token_callbacks_are_hints(&self.access, self.allowlist_authenticates))
        {
            return Vec::new();
        }
        vec![
            "providers.tujenge has no status endpoint: every result its callbacks report \
             is applied and announced as unconfirmed (\"confirmed\": false). Set \
             confirm_unsigned = false to trust token-authenticated callbacks as they are."
                .to_string(),
        ]
    }
    fn sample(&self, sample: &Sample<'_>) -> Result<SampleCallback, SampleError> {
        super::sample(self, sample)
    }
}
