//! Configuration: built-in defaults, then a TOML file, validated before anything binds.
//!
//! Every secret may be given inline or as a `<key>_file`, read as [`crate::secret`] says,
//! and lives in a [`Secret`], which never prints.
//!
//! [`Config::from_toml`] takes the file's text as an argument, so tests never touch the
//! process environment or the working directory.

use crate::domain::ProviderId;
use crate::secret::{
    optional_secret, read_private_file, read_secret_lines, required_secret, SecretError,
};
pub use crate::secret::{redacted_url, Secret};
use ipnet::IpNet;
use serde::{Deserialize, Serialize, Serializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default callback body limit: 64 KiB is ten times the largest documented callback.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Default listen address: loopback, behind the reverse proxy.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default database file, relative to the working directory.
pub const DEFAULT_STORE_PATH: &str = "payhook.db";
/// Default bound on one delivery to the merchant (connect, headers and body).
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);
/// Default delay after a first failed delivery.
pub const DEFAULT_FORWARD_RETRY_FIRST_AFTER: Duration = Duration::from_secs(30);
/// Default longest delay between two deliveries of one event.
pub const DEFAULT_FORWARD_RETRY_MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// Default time after which an undeliverable event is dead-lettered: three days, so a
/// merchant's weekend outage does not lose anything.
pub const DEFAULT_FORWARD_RETRY_HORIZON: Duration = Duration::from_secs(3 * 24 * 3600);
/// Default number of deliveries in flight at once to the destination.
pub const DEFAULT_FORWARD_MAX_IN_FLIGHT: usize = 8;

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Not valid TOML, or a key of the wrong type or unknown. The message names the line
    /// and the key, never the value or the line's text: the file holds secrets, and this
    /// message goes to stderr and so to the journal.
    #[error("{0}")]
    Toml(String),
    /// A key's value is not acceptable.
    #[error("{key}: {why}")]
    Invalid {
        /// Dotted key, e.g. `providers.bitpesa.api_secret`.
        key: String,
        /// What is wrong.
        why: String,
    },
}

impl From<SecretError> for ConfigError {
    fn from(e: SecretError) -> Self {
        ConfigError::Invalid {
            key: e.key,
            why: e.why,
        }
    }
}

fn invalid(key: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        why: why.into(),
    }
}

/// A destination URL (`forward.url`). Its query string may carry the receiver's token, so
/// `Debug` and `Serialize` (`check-config`) show the query as `[redacted]`, and the store
/// keeps only that form; the URL itself is used only to post.
#[derive(Clone, PartialEq, Eq)]
pub struct DestinationUrl(String);

impl DestinationUrl {
    /// The URL as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL with any query replaced by `[redacted]`, for output meant to be shown.
    pub fn redacted(&self) -> String {
        redacted_url(&self.0)
    }
}

impl std::fmt::Debug for DestinationUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl Serialize for DestinationUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `key=value` text, for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for journald/log shippers.
    Json,
}

/// Validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Address the callback listener binds.
    pub listen: SocketAddr,
    /// The public URL providers call (scheme and host, no trailing slash), as signed by
    /// BitPesa/TransferZero; never taken from the request's Host header.
    pub public_base_url: Option<String>,
    /// Largest callback body accepted; larger gets 413.
    pub max_body_bytes: usize,
    /// Peers whose `X-Forwarded-For` is believed (the reverse proxy).
    #[serde(serialize_with = "ser_display_vec")]
    pub trusted_proxies: Vec<IpNet>,
    /// Log settings.
    pub log: LogConfig,
    /// Store settings.
    pub store: StoreConfig,
    /// Provider sections; a provider is enabled when its section is present.
    pub providers: ProvidersConfig,
    /// The reconciler loop.
    pub reconciler: ReconcilerConfig,
    /// The admin listener (`POST /v1/transactions`); off unless `[admin]` is present.
    pub admin: Option<AdminConfig>,
    /// `[forward]`: where events go. `None`: forwarding is off and events accumulate in
    /// the outbox until it is configured.
    pub forward: Option<ForwardConfig>,
    /// Keys of the per-payment callback URLs (`callback_url_keys`): the first signs new
    /// URLs, every one verifies, so a key can be rotated in before the old one goes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub callback_url_keys: Vec<Secret>,
}

/// Default admin listen address: loopback only, like the callback listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";
/// Shortest admin token accepted: guessable tokens are refused at start-up.
pub const ADMIN_TOKEN_MIN_CHARS: usize = 16;

/// `[admin]`: the merchant application's local API.
#[derive(Debug, Clone, Serialize)]
pub struct AdminConfig {
    /// Where the admin listener binds; must be a loopback address.
    pub listen: SocketAddr,
    /// Bearer token the application presents (`Authorization: Bearer <token>`).
    pub token: Secret,
    /// Also serve `GET /metrics` here (without the token), so that Prometheus scrapes
    /// the loopback admin address rather than the callback listener.
    pub metrics: bool,
}

/// `[reconciler]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcilerConfig {
    /// Run the polling loop (`true`). Turning it off leaves transactions to callbacks and
    /// deadlines only; tests turn it off to drive `reconcile::step` themselves.
    pub enabled: bool,
    /// Bound on one status query: connect, headers and body.
    #[serde(serialize_with = "ser_duration")]
    pub request_timeout: Duration,
}

/// Default bound on one status query.
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(15);

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            enabled: true,
            request_timeout: DEFAULT_POLL_TIMEOUT,
        }
    }
}

/// How the reconciler polls one provider: the `base_url` and `poll_*` keys of its
/// `[providers.*]` section, defaulting to `schedule::defaults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollConfig {
    /// The provider's API root (scheme, host, optional port; no trailing slash).
    pub base_url: String,
    /// First status query this long after payhook learns of a transaction.
    #[serde(rename = "poll_first_after", serialize_with = "ser_duration")]
    pub first_after: Duration,
    /// Longest interval between two queries of one transaction.
    #[serde(rename = "poll_max_interval", serialize_with = "ser_duration")]
    pub max_interval: Duration,
    /// Still open this long after payhook learned of it: NEEDS_REVIEW (never FAILED).
    #[serde(rename = "poll_deadline", serialize_with = "ser_duration")]
    pub deadline: Duration,
    /// Most status queries a minute to this provider, however many are due.
    #[serde(rename = "poll_rate_per_minute")]
    pub rate_per_minute: u32,
}

/// `[forward]`: the merchant's applications, and how deliveries to them are retried.
///
/// The single-destination form (`url`, `secrets`) is the destination named `default`; each
/// `[[forward.destinations]]` table is one more. The timing keys at the top of `[forward]`
/// are the defaults of every destination.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardConfig {
    /// The URL of the `default` destination, when `[forward]` gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<DestinationUrl>,
    /// The `default` destination's active `whsec_` secrets (empty without `url`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    /// Bound on one delivery: connect, send, and read the answer.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// Delay after the first failure; each further failure doubles it.
    #[serde(serialize_with = "ser_duration")]
    pub retry_first_after: Duration,
    /// Longest delay between two attempts.
    #[serde(serialize_with = "ser_duration")]
    pub retry_max_interval: Duration,
    /// After this long since an event's schedule started (its creation, or its last
    /// replay), it is dead-lettered instead of retried.
    #[serde(serialize_with = "ser_duration")]
    pub retry_horizon: Duration,
    /// Deliveries in flight at once to one destination.
    pub max_in_flight: usize,
    /// Every destination, `default` first when `url` is given. Names are unique.
    pub destinations: Vec<DestinationConfig>,
}

/// One destination: where events go, signed with its own secrets, on its own schedule.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationConfig {
    /// Stable name (`[a-z0-9-]`): the key of its delivery state, CLI argument, metric label.
    pub name: String,
    /// The URL every event is POSTed to (http or https).
    pub url: DestinationUrl,
    /// Active `whsec_` secrets; each one signs every request, so a secret can be rotated
    /// by adding the new one, updating the receiver, then removing the old one.
    pub secrets: Vec<Secret>,
    /// Bound on one delivery.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// Delay after the first failure.
    #[serde(serialize_with = "ser_duration")]
    pub retry_first_after: Duration,
    /// Longest delay between two attempts.
    #[serde(serialize_with = "ser_duration")]
    pub retry_max_interval: Duration,
    /// Dead-letter after this long since the schedule started.
    #[serde(serialize_with = "ser_duration")]
    pub retry_horizon: Duration,
    /// Deliveries in flight at once to this destination.
    pub max_in_flight: usize,
    /// Only events of these types (`transaction.succeeded`, ...); `None`: every type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub types: Option<Vec<String>>,
    /// Only events about these providers' transactions; `None`: every provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<String>>,
    /// When first configured, also deliver the events already in the outbox (the
    /// `default` destination always does, as the single-URL form always did).
    pub backfill: bool,
}

impl DestinationConfig {
    /// The retry schedule these settings describe (doubling, 20 % jitter).
    pub fn retry_policy(&self) -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            first: self.retry_first_after,
            max_interval: self.retry_max_interval,
            factor: 2,
            jitter: FORWARD_RETRY_JITTER,
            horizon: self.retry_horizon,
        }
    }
}

/// The event types a destination's `types` filter may name.
pub const EVENT_TYPES: &[&str] = &[
    "transaction.succeeded",
    "transaction.failed",
    "transaction.reversed",
    "transaction.needs_review",
    "transaction.conflict",
];

/// The name the single-URL `[forward]` form's destination goes by.
pub const DEFAULT_DESTINATION: &str = "default";

/// Share of each retry delay that is randomised, so that a destination coming back is not
/// hit by every event at once.
pub const FORWARD_RETRY_JITTER: f64 = 0.2;

impl ForwardConfig {
    /// The retry schedule these settings describe (doubling, 20 % jitter).
    pub fn retry_policy(&self) -> crate::retry::RetryPolicy {
        crate::retry::RetryPolicy {
            first: self.retry_first_after,
            max_interval: self.retry_max_interval,
            factor: 2,
            jitter: FORWARD_RETRY_JITTER,
            horizon: self.retry_horizon,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Line format.
    #[serde(default)]
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info` or `payhook=debug`; `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_log_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::default(),
            level: default_log_level(),
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, Serialize)]
pub struct StoreConfig {
    /// SQLite database file.
    pub path: PathBuf,
    /// Refuse writes (503) once the database would exceed this many bytes.
    pub max_size_bytes: Option<u64>,
}

/// `[providers.*]` sections.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProvidersConfig {
    /// `[providers.zengapay]`
    pub zengapay: Option<ZengaPayConfig>,
    /// `[providers.bitpesa]`
    pub bitpesa: Option<BitPesaConfig>,
    /// `[providers.daraja]`
    pub daraja: Option<DarajaConfig>,
    /// `[providers.jenga]`
    pub jenga: Option<JengaConfig>,
    /// `[providers.tujenge]`
    pub tujenge: Option<TujengeConfig>,
}

impl ProvidersConfig {
    /// The source-address policy of `provider`'s callback route, if it has one.
    pub fn access(&self, provider: ProviderId) -> Option<&AccessConfig> {
        match provider {
            ProviderId::Daraja => self.daraja.as_ref().map(|c| &c.access),
            ProviderId::Jenga => self.jenga.as_ref().map(|c| &c.access),
            ProviderId::Tujenge => self.tujenge.as_ref().map(|c| &c.access),
            ProviderId::ZengaPay => self.zengapay.as_ref().map(|c| &c.access),
            ProviderId::BitPesa => self.bitpesa.as_ref().map(|c| &c.access),
        }
    }

    /// Whether a path token from an address inside `provider`'s enforced allowlist counts
    /// as authenticated (`allowlist_authenticates`; Daraja by default).
    pub fn allowlist_authenticates(&self, provider: ProviderId) -> bool {
        match provider {
            ProviderId::Daraja => self
                .daraja
                .as_ref()
                .is_some_and(|c| c.allowlist_authenticates),
            ProviderId::Tujenge => self
                .tujenge
                .as_ref()
                .is_some_and(|c| c.allowlist_authenticates),
            _ => false,
        }
    }

    /// Whether an unsigned callback of `provider` (a token-only Daraja or Tujenge one, a
    /// field-signed ZengaPay one) is a hint, held for a status query where one exists.
    /// True unless the provider's section says `confirm_unsigned = false`.
    pub fn confirm_unsigned(&self, provider: ProviderId) -> bool {
        match provider {
            ProviderId::Daraja => self.daraja.as_ref().is_none_or(|c| c.confirm_unsigned),
            ProviderId::Tujenge => self.tujenge.as_ref().is_none_or(|c| c.confirm_unsigned),
            ProviderId::ZengaPay => self.zengapay.as_ref().is_none_or(|c| c.confirm_unsigned),
            _ => true,
        }
    }
}

/// What to do with a callback from an address outside the allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum IpPolicy {
    /// Refuse it (403) before reading the body.
    #[default]
    #[serde(rename = "enforce")]
    Enforce,
    /// Accept it and log a warning with the address (while an allowlist is being
    /// collected, or when the published one is known to be incomplete).
    #[serde(rename = "log-only")]
    LogOnly,
}

/// A provider's source-address check (`allowed_ips`, `ip_policy`), see
/// [`crate::http::allowlist`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessConfig {
    /// Addresses and networks callbacks may come from; empty means no check.
    #[serde(serialize_with = "ser_display_vec")]
    pub allowed_ips: Vec<IpNet>,
    /// What a miss gets.
    pub ip_policy: IpPolicy,
}

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

/// Shortest callback token accepted: the token is the only credential Daraja and
/// Tujenge callbacks carry (neither signs), so it must not be guessable.
pub const MIN_CALLBACK_TOKEN_CHARS: usize = 16;

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
    /// Polling plan and API root; status queries are signed with `api_key`/`api_secret`.
    #[serde(flatten)]
    pub poll: PollConfig,
}

// ---------------------------------------------------------------------------------------
// The file's shape. Unknown keys are errors, so a typo cannot silently disable a check.
// ---------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    public_base_url: Option<String>,
    max_body_bytes: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    providers: RawProviders,
    #[serde(default)]
    reconciler: RawReconciler,
    admin: Option<RawAdmin>,
    forward: Option<RawForward>,
    callback_url_keys: Option<Vec<Secret>>,
    callback_url_keys_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    token: Option<Secret>,
    token_file: Option<PathBuf>,
    metrics: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReconciler {
    enabled: Option<bool>,
    request_timeout: Option<String>,
}

/// The `base_url` and `poll_*` keys every provider section takes. (serde cannot combine
/// `flatten` with `deny_unknown_fields`, so each section lists them and hands them here.)
struct RawPoll {
    base_url: Option<String>,
    poll_first_after: Option<String>,
    poll_max_interval: Option<String>,
    poll_deadline: Option<String>,
    poll_rate_per_minute: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForward {
    url: Option<String>,
    secrets: Option<Vec<Secret>>,
    secrets_file: Option<PathBuf>,
    timeout: Option<String>,
    retry_first_after: Option<String>,
    retry_max_interval: Option<String>,
    retry_horizon: Option<String>,
    max_in_flight: Option<usize>,
    #[serde(default)]
    destinations: Vec<RawDestination>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    name: Option<String>,
    url: Option<String>,
    secrets: Option<Vec<Secret>>,
    secrets_file: Option<PathBuf>,
    timeout: Option<String>,
    retry_first_after: Option<String>,
    retry_max_interval: Option<String>,
    retry_horizon: Option<String>,
    max_in_flight: Option<usize>,
    types: Option<Vec<String>>,
    providers: Option<Vec<String>>,
    backfill: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
    max_size_mb: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProviders {
    zengapay: Option<RawZengaPay>,
    bitpesa: Option<RawBitPesa>,
    daraja: Option<RawDaraja>,
    jenga: Option<RawJenga>,
    tujenge: Option<RawTujenge>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
    base_url: Option<String>,
    poll_first_after: Option<String>,
    poll_max_interval: Option<String>,
    poll_deadline: Option<String>,
    poll_rate_per_minute: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
    base_url: Option<String>,
    poll_first_after: Option<String>,
    poll_max_interval: Option<String>,
    poll_deadline: Option<String>,
    poll_rate_per_minute: Option<u32>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZengaPay {
    secret_hash: Option<Secret>,
    secret_hash_file: Option<PathBuf>,
    api_token: Option<Secret>,
    api_token_file: Option<PathBuf>,
    allowed_ips: Option<Vec<String>>,
    ip_policy: Option<IpPolicy>,
    confirm_unsigned: Option<bool>,
    base_url: Option<String>,
    poll_first_after: Option<String>,
    poll_max_interval: Option<String>,
    poll_deadline: Option<String>,
    poll_rate_per_minute: Option<u32>,
    sweep_interval: Option<String>,
    sweep_lookback: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBitPesa {
    api_key: Option<Secret>,
    api_key_file: Option<PathBuf>,
    api_secret: Option<Secret>,
    api_secret_file: Option<PathBuf>,
    webhook_url: Option<String>,
    allowed_ips: Option<Vec<String>>,
    ip_policy: Option<IpPolicy>,
    base_url: Option<String>,
    poll_first_after: Option<String>,
    poll_max_interval: Option<String>,
    poll_deadline: Option<String>,
    poll_rate_per_minute: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        // The built-in defaults are exactly an empty file.
        Config::from_raw(RawConfig::default(), Path::new("."))
            .unwrap_or_else(|e| unreachable!("built-in defaults are valid: {e}"))
    }
}

impl Config {
    /// Reads and validates a configuration file. Relative `*_file` and store paths are
    /// taken relative to the working directory, as systemd and shells expect.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, Path::new("."))
    }

    /// Parses and validates configuration text; relative paths resolve against `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        Config::from_raw(raw, base)
    }

    fn from_raw(mut raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
        // Read first: with per-payment URL keys, a token provider needs no static token.
        let callback_url_keys = callback_url_keys(
            raw.callback_url_keys.take(),
            raw.callback_url_keys_file.take(),
            base,
        )?;
        let minted = !callback_url_keys.is_empty();
        let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text
            .parse()
            .map_err(|e| invalid("listen", format!("{listen_text:?} is not ip:port ({e})")))?;
        let public_base_url = match raw.public_base_url {
            Some(u) => Some(
                validate_url("public_base_url", &u)?
                    .trim_end_matches('/')
                    .to_string(),
            ),
            None => None,
        };
        let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(invalid(
                "max_body_bytes",
                "must be between 1024 and 16777216",
            ));
        }
        let trusted_proxies = raw
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|s| parse_net("trusted_proxies", s))
            .collect::<Result<Vec<_>, _>>()?;
        if raw.log.level.trim().is_empty() {
            return Err(invalid("log.level", "must not be empty"));
        }
        let store = StoreConfig {
            path: base.join(raw.store.path.unwrap_or_else(|| DEFAULT_STORE_PATH.into())),
            max_size_bytes: match raw.store.max_size_mb {
                Some(0) => return Err(invalid("store.max_size_mb", "must be at least 1")),
                Some(mb) => Some(mb * 1024 * 1024),
                None => None,
            },
        };
        let mut providers = ProvidersConfig::default();
        if let Some(z) = raw.providers.zengapay {
            let key = "providers.zengapay.secret_hash";
            let poll = RawPoll {
                base_url: z.base_url,
                poll_first_after: z.poll_first_after,
                poll_max_interval: z.poll_max_interval,
                poll_deadline: z.poll_deadline,
                poll_rate_per_minute: z.poll_rate_per_minute,
            };
            providers.zengapay = Some(ZengaPayConfig {
                secret_hash: required_secret(key, z.secret_hash, z.secret_hash_file, base)?,
                api_token: optional_secret(
                    "providers.zengapay.api_token",
                    z.api_token,
                    z.api_token_file,
                    base,
                )?,
                access: access("providers.zengapay", z.allowed_ips, z.ip_policy, &[])?,
                confirm_unsigned: z.confirm_unsigned.unwrap_or(true),
                poll: poll_config(ProviderId::ZengaPay, poll)?,
                sweep_interval: match z.sweep_interval {
                    Some(t) => parse_duration(&t)
                        .map_err(|why| invalid("providers.zengapay.sweep_interval", why))?,
                    None => DEFAULT_SWEEP_INTERVAL,
                },
                sweep_lookback: match z.sweep_lookback {
                    Some(t) => {
                        let d = parse_duration(&t)
                            .map_err(|why| invalid("providers.zengapay.sweep_lookback", why))?;
                        if d < Duration::from_secs(60) {
                            return Err(invalid(
                                "providers.zengapay.sweep_lookback",
                                "must be at least 1m",
                            ));
                        }
                        d
                    }
                    None => DEFAULT_SWEEP_LOOKBACK,
                },
            });
        }
        if let Some(b) = raw.providers.bitpesa {
            let webhook_url = match b.webhook_url {
                Some(u) => Some(validate_url("providers.bitpesa.webhook_url", &u)?),
                None => None,
            };
            if webhook_url.is_none() && public_base_url.is_none() {
                return Err(invalid(
                    "public_base_url",
                    "required when [providers.bitpesa] is enabled: TransferZero signs the \
                     public URL it calls (or set providers.bitpesa.webhook_url)",
                ));
            }
            providers.bitpesa = Some(BitPesaConfig {
                api_key: required_secret(
                    "providers.bitpesa.api_key",
                    b.api_key,
                    b.api_key_file,
                    base,
                )?,
                api_secret: required_secret(
                    "providers.bitpesa.api_secret",
                    b.api_secret,
                    b.api_secret_file,
                    base,
                )?,
                webhook_url,
                access: access("providers.bitpesa", b.allowed_ips, b.ip_policy, &[])?,
                poll: poll_config(
                    ProviderId::BitPesa,
                    RawPoll {
                        base_url: b.base_url,
                        poll_first_after: b.poll_first_after,
                        poll_max_interval: b.poll_max_interval,
                        poll_deadline: b.poll_deadline,
                        poll_rate_per_minute: b.poll_rate_per_minute,
                    },
                )?,
            });
        }
        if let Some(d) = raw.providers.daraja {
            let key = "providers.daraja";
            providers.daraja = Some(DarajaConfig {
                callback_tokens: callback_tokens(
                    key,
                    d.callback_tokens,
                    d.callback_tokens_file,
                    base,
                    &DARAJA_BANNED_URL_WORDS,
                    minted,
                )?,
                access: access(key, d.allowed_ips, d.ip_policy, &DARAJA_SENDER_IPS)?,
                confirm_unsigned: d.confirm_unsigned.unwrap_or(true),
                allowlist_authenticates: d.allowlist_authenticates.unwrap_or(true),
                api: daraja_api(
                    optional_secret(
                        "providers.daraja.consumer_key",
                        d.consumer_key,
                        d.consumer_key_file,
                        base,
                    )?,
                    optional_secret(
                        "providers.daraja.consumer_secret",
                        d.consumer_secret,
                        d.consumer_secret_file,
                        base,
                    )?,
                    d.shortcode,
                    optional_secret("providers.daraja.passkey", d.passkey, d.passkey_file, base)?,
                )?,
                poll: poll_config(
                    ProviderId::Daraja,
                    RawPoll {
                        base_url: d.base_url,
                        poll_first_after: d.poll_first_after,
                        poll_max_interval: d.poll_max_interval,
                        poll_deadline: d.poll_deadline,
                        poll_rate_per_minute: d.poll_rate_per_minute,
                    },
                )?,
            });
        }
        if let Some(j) = raw.providers.jenga {
            let key = "providers.jenga";
            providers.jenga = Some(JengaConfig {
                ipn_username: required_secret(
                    "providers.jenga.ipn_username",
                    j.ipn_username,
                    j.ipn_username_file,
                    base,
                )?,
                ipn_password: required_secret(
                    "providers.jenga.ipn_password",
                    j.ipn_password,
                    j.ipn_password_file,
                    base,
                )?,
                access: access(key, j.allowed_ips, j.ip_policy, &[])?,
                api: jenga_api(
                    j.merchant_code,
                    optional_secret("providers.jenga.api_key", j.api_key, j.api_key_file, base)?,
                    optional_secret(
                        "providers.jenga.consumer_secret",
                        j.consumer_secret,
                        j.consumer_secret_file,
                        base,
                    )?,
                    optional_secret(
                        "providers.jenga.private_key",
                        None,
                        j.private_key_file,
                        base,
                    )?,
                )?,
                poll: poll_config(
                    ProviderId::Jenga,
                    RawPoll {
                        base_url: j.base_url,
                        poll_first_after: j.poll_first_after,
                        poll_max_interval: j.poll_max_interval,
                        poll_deadline: j.poll_deadline,
                        poll_rate_per_minute: j.poll_rate_per_minute,
                    },
                )?,
            });
        }
        if let Some(t) = raw.providers.tujenge {
            let key = "providers.tujenge";
            providers.tujenge = Some(TujengeConfig {
                callback_tokens: callback_tokens(
                    key,
                    t.callback_tokens,
                    t.callback_tokens_file,
                    base,
                    &[],
                    minted,
                )?,
                access: access(key, t.allowed_ips, t.ip_policy, &[])?,
                confirm_unsigned: t.confirm_unsigned.unwrap_or(true),
                allowlist_authenticates: t.allowlist_authenticates.unwrap_or(false),
            });
        }
        let reconciler = ReconcilerConfig {
            enabled: raw.reconciler.enabled.unwrap_or(true),
            request_timeout: match raw.reconciler.request_timeout {
                Some(t) => {
                    let d = parse_duration(&t)
                        .map_err(|why| invalid("reconciler.request_timeout", why))?;
                    if d < Duration::from_millis(100) || d > Duration::from_secs(300) {
                        return Err(invalid(
                            "reconciler.request_timeout",
                            "must be between 100ms and 5m",
                        ));
                    }
                    d
                }
                None => DEFAULT_POLL_TIMEOUT,
            },
        };
        let admin = match raw.admin {
            None => None,
            Some(a) => {
                let text = a.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
                let listen: SocketAddr = text.parse().map_err(|e| {
                    invalid("admin.listen", format!("{text:?} is not ip:port ({e})"))
                })?;
                // The admin API registers payments: it must never face the network.
                if !listen.ip().is_loopback() {
                    return Err(invalid(
                        "admin.listen",
                        format!("{listen} is not a loopback address (127.0.0.0/8 or ::1)"),
                    ));
                }
                let token = required_secret("admin.token", a.token, a.token_file, base)?;
                if token.expose().chars().count() < ADMIN_TOKEN_MIN_CHARS {
                    return Err(invalid(
                        "admin.token",
                        format!("must be at least {ADMIN_TOKEN_MIN_CHARS} characters"),
                    ));
                }
                Some(AdminConfig {
                    listen,
                    token,
                    metrics: a.metrics.unwrap_or(false),
                })
            }
        };
        let forward = match raw.forward {
            Some(f) => Some(forward_config(f, base)?),
            None => None,
        };
        Ok(Config {
            admin,
            callback_url_keys,
            listen,
            public_base_url,
            max_body_bytes,
            trusted_proxies,
            log: raw.log,
            store,
            providers,
            reconciler,
            forward,
        })
    }

    /// The polling plan of `provider`: its section's keys, or the built-in defaults for a
    /// provider without one.
    pub fn poll(&self, provider: ProviderId) -> PollConfig {
        let configured = match provider {
            ProviderId::ZengaPay => self.providers.zengapay.as_ref().map(|c| &c.poll),
            ProviderId::BitPesa => self.providers.bitpesa.as_ref().map(|c| &c.poll),
            ProviderId::Daraja => self.providers.daraja.as_ref().map(|c| &c.poll),
            ProviderId::Jenga => self.providers.jenga.as_ref().map(|c| &c.poll),
            ProviderId::Tujenge => None,
        };
        configured
            .cloned()
            .unwrap_or_else(|| crate::schedule::defaults(provider))
    }

    /// Settings that are valid alone but together refuse what the operator surely wants
    /// accepted; `serve` logs each at start-up and `check-config` prints them.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        // On a loopback listener every peer is local, so without a trusted proxy the
        // address checked is the reverse proxy's own: an enforced allowlist that does not
        // name it refuses every real callback with 403.
        let local = self.listen.ip();
        if local.is_loopback() && self.trusted_proxies.is_empty() {
            for p in ProviderId::ALL {
                let Some(a) = self.providers.access(p) else {
                    continue;
                };
                if a.ip_policy == IpPolicy::Enforce
                    && !a.allowed_ips.is_empty()
                    && !a.allowed_ips.iter().any(|net| net.contains(&local))
                {
                    out.push(format!(
                        "providers.{p}.allowed_ips is enforced, but payhook listens on {} and \
                         trusts no proxy: behind a reverse proxy every {p} callback comes from \
                         the proxy's address and is refused (403). List the proxy in \
                         trusted_proxies.",
                        self.listen
                    ));
                }
            }
        }
        if let Some(z) = &self.providers.zengapay {
            if z.confirm_unsigned && z.api_token.is_none() {
                out.push(
                    "providers.zengapay has no api_token: a callback whose signature covers only \
                     some fields (auth hmac-sha256:fields-*) cannot be confirmed by a status \
                     query, so it is applied and announced as unconfirmed (\"confirmed\": false, \
                     its values only in data.unconfirmed). Set api_token, or confirm_unsigned = \
                     false to trust such callbacks as they are."
                        .to_string(),
                );
            }
        }
        // Where token and an enforced allowlist authenticate together, no hint arrives: an
        // address outside the list gets 403. Otherwise a token-only callback is a hint, and
        // with nothing to ask it reaches the merchant marked unconfirmed.
        let hints = |access: &AccessConfig, trusted: bool| {
            !(trusted && access.ip_policy == IpPolicy::Enforce && !access.allowed_ips.is_empty())
        };
        if let Some(d) = &self.providers.daraja {
            if d.confirm_unsigned && d.api.is_none() && hints(&d.access, d.allowlist_authenticates)
            {
                out.push(
                    "providers.daraja has no query credentials (consumer_key, consumer_secret, \
                     shortcode, passkey), and callbacks are not all authenticated by an enforced \
                     allowlist: a token-only STK result is applied and announced as unconfirmed \
                     (\"confirmed\": false). Set the credentials, enforce the allowlist with \
                     allowlist_authenticates, or confirm_unsigned = false to trust \
                     token-authenticated callbacks as they are."
                        .to_string(),
                );
            }
        }
        if let Some(t) = &self.providers.tujenge {
            if t.confirm_unsigned && hints(&t.access, t.allowlist_authenticates) {
                out.push(
                    "providers.tujenge has no status endpoint: every result its callbacks report \
                     is applied and announced as unconfirmed (\"confirmed\": false). Set \
                     confirm_unsigned = false to trust token-authenticated callbacks as they are."
                        .to_string(),
                );
            }
        }
        out
    }

    /// The effective configuration as TOML, secrets redacted (`check-config`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
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
                return Err(invalid(
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
        _ => Err(invalid(
            "providers.daraja.consumer_key",
            "the STK query needs consumer_key, consumer_secret, shortcode and passkey together",
        )),
    }
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
            crate::providers::jenga::signing_key(private_key.expose())
                .map_err(|why| invalid("providers.jenga.private_key_file", why))?;
            Ok(Some(JengaApi {
                merchant_code: merchant_code.trim().to_string(),
                api_key,
                consumer_secret,
                private_key,
            }))
        }
        _ => Err(invalid(
            "providers.jenga.merchant_code",
            "the transaction query needs merchant_code, api_key, consumer_secret and \
             private_key_file together",
        )),
    }
}

/// Builds a provider's polling plan from its section, over the built-in defaults.
fn poll_config(provider: ProviderId, raw: RawPoll) -> Result<PollConfig, ConfigError> {
    let key = |k: &str| format!("providers.{provider}.{k}");
    let mut plan = crate::schedule::defaults(provider);
    if let Some(u) = raw.base_url {
        plan.base_url = validate_url(&key("base_url"), &u)?
            .trim_end_matches('/')
            .to_string();
    }
    for (name, value, slot) in [
        (
            "poll_first_after",
            raw.poll_first_after,
            &mut plan.first_after,
        ),
        (
            "poll_max_interval",
            raw.poll_max_interval,
            &mut plan.max_interval,
        ),
        ("poll_deadline", raw.poll_deadline, &mut plan.deadline),
    ] {
        if let Some(text) = value {
            *slot = parse_duration(&text).map_err(|why| invalid(&key(name), why))?;
        }
    }
    if plan.max_interval < plan.first_after {
        return Err(invalid(
            &key("poll_max_interval"),
            "must not be shorter than poll_first_after",
        ));
    }
    if plan.deadline.is_zero() {
        return Err(invalid(&key("poll_deadline"), "must be longer than 0s"));
    }
    if let Some(rate) = raw.poll_rate_per_minute {
        if !(1..=60_000).contains(&rate) {
            return Err(invalid(
                &key("poll_rate_per_minute"),
                "must be between 1 and 60000",
            ));
        }
        plan.rate_per_minute = rate;
    }
    Ok(plan)
}

/// Timing keys of `[forward]` or of one destination, resolved.
struct Timing {
    timeout: Duration,
    retry_first_after: Duration,
    retry_max_interval: Duration,
    retry_horizon: Duration,
    max_in_flight: usize,
}

/// Parses and checks the timing keys under `prefix`, each defaulting to `defaults`'.
fn timing(
    prefix: &str,
    raw: [Option<String>; 4],
    max_in_flight: Option<usize>,
    defaults: &Timing,
) -> Result<Timing, ConfigError> {
    let [timeout, first, max_interval, horizon] = raw;
    let key = |k: &str| format!("{prefix}.{k}");
    let duration = |k: &str, value: Option<String>, default: Duration| match value {
        Some(v) => parse_duration(&v).map_err(|why| invalid(&key(k), why)),
        None => Ok(default),
    };
    let timeout = duration("timeout", timeout, defaults.timeout)?;
    let retry_first_after = duration("retry_first_after", first, defaults.retry_first_after)?;
    let retry_max_interval = duration(
        "retry_max_interval",
        max_interval,
        defaults.retry_max_interval,
    )?;
    let retry_horizon = duration("retry_horizon", horizon, defaults.retry_horizon)?;
    if timeout.is_zero() || timeout > Duration::from_secs(300) {
        return Err(invalid(&key("timeout"), "must be between 1ms and 5m"));
    }
    if retry_first_after.is_zero() {
        return Err(invalid(&key("retry_first_after"), "must be positive"));
    }
    if retry_max_interval < retry_first_after {
        return Err(invalid(
            &key("retry_max_interval"),
            format!("must be at least {prefix}.retry_first_after"),
        ));
    }
    if retry_horizon < retry_first_after {
        return Err(invalid(
            &key("retry_horizon"),
            format!("must be at least {prefix}.retry_first_after"),
        ));
    }
    let max_in_flight = max_in_flight.unwrap_or(defaults.max_in_flight);
    if !(1..=1024).contains(&max_in_flight) {
        return Err(invalid(&key("max_in_flight"), "must be between 1 and 1024"));
    }
    Ok(Timing {
        timeout,
        retry_first_after,
        retry_max_interval,
        retry_horizon,
        max_in_flight,
    })
}

/// A destination's URL, checked; `prefix` names its section in errors.
fn destination_url(prefix: &str, url: Option<&str>) -> Result<DestinationUrl, ConfigError> {
    let key = format!("{prefix}.url");
    let url = validate_url(
        &key,
        url.ok_or_else(|| invalid(&key, format!("required in [{prefix}]")))?,
    )?;
    if url_authority(&url).contains('@') {
        // The URL is printed by check-config and stored with every attempt: credentials
        // do not belong in it. The signature is the merchant's proof of origin.
        return Err(invalid(
            &key,
            "must not contain credentials (user:password@); receivers verify the signature",
        ));
    }
    Ok(DestinationUrl(url))
}

/// A destination's signing secrets, from the list or the file, checked.
fn destination_secrets(
    prefix: &str,
    secrets: Option<Vec<Secret>>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Vec<Secret>, ConfigError> {
    let key = format!("{prefix}.secrets");
    let secrets = match (secrets, file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                &key,
                format!("give {prefix}.secrets or {prefix}.secrets_file, not both"),
            ))
        }
        (Some(s), None) => s,
        (None, Some(path)) => {
            let text = read_private_file(&format!("{prefix}.secrets_file"), &base.join(path))?;
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(Secret::new)
                .collect()
        }
        (None, None) => {
            return Err(invalid(
                &key,
                format!("required in [{prefix}] (or {prefix}.secrets_file)"),
            ))
        }
    };
    crate::forward::sign::Signer::new(secrets.iter().map(Secret::expose)).map_err(|(i, e)| {
        // Name the position, never the value.
        if secrets.is_empty() {
            invalid(&key, e.to_string())
        } else {
            invalid(&format!("{key}[{i}]"), e.to_string())
        }
    })?;
    Ok(secrets)
}

/// A destination's name: stable, `[a-z0-9-]`, because it keys stored state and labels
/// metrics.
fn destination_name(key: &str, name: Option<String>) -> Result<String, ConfigError> {
    let name = name.ok_or_else(|| invalid(key, "required in [[forward.destinations]]"))?;
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(invalid(key, "must be 1 to 64 characters of a-z, 0-9 and -"));
    }
    Ok(name)
}

/// A filter list: `None` when absent; never empty (an empty filter would match nothing,
/// which is a destination nobody meant to configure).
fn filter(
    key: &str,
    values: Option<Vec<String>>,
    known: impl Fn(&str) -> bool,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(values) = values else {
        return Ok(None);
    };
    if values.is_empty() {
        return Err(invalid(
            key,
            "must not be empty (leave it out to take everything)",
        ));
    }
    if let Some(bad) = values.iter().find(|v| !known(v)) {
        return Err(invalid(key, format!("unknown value {bad:?}")));
    }
    Ok(Some(values))
}

fn forward_config(f: RawForward, base: &Path) -> Result<ForwardConfig, ConfigError> {
    let defaults = Timing {
        timeout: DEFAULT_FORWARD_TIMEOUT,
        retry_first_after: DEFAULT_FORWARD_RETRY_FIRST_AFTER,
        retry_max_interval: DEFAULT_FORWARD_RETRY_MAX_INTERVAL,
        retry_horizon: DEFAULT_FORWARD_RETRY_HORIZON,
        max_in_flight: DEFAULT_FORWARD_MAX_IN_FLIGHT,
    };
    let mut destinations = Vec::new();
    let (url, secrets) = if f.url.is_some() || f.destinations.is_empty() {
        let url = destination_url("forward", f.url.as_deref())?;
        let secrets = destination_secrets("forward", f.secrets, f.secrets_file, base)?;
        (Some(url), secrets)
    } else if f.secrets.is_some() || f.secrets_file.is_some() {
        return Err(invalid(
            "forward.secrets",
            "belongs with forward.url; each [[forward.destinations]] has its own secrets",
        ));
    } else {
        (None, Vec::new())
    };
    let top = timing(
        "forward",
        [
            f.timeout,
            f.retry_first_after,
            f.retry_max_interval,
            f.retry_horizon,
        ],
        f.max_in_flight,
        &defaults,
    )?;
    if let Some(url) = &url {
        destinations.push(DestinationConfig {
            name: DEFAULT_DESTINATION.to_string(),
            url: url.clone(),
            secrets: secrets.clone(),
            timeout: top.timeout,
            retry_first_after: top.retry_first_after,
            retry_max_interval: top.retry_max_interval,
            retry_horizon: top.retry_horizon,
            max_in_flight: top.max_in_flight,
            types: None,
            providers: None,
            backfill: true,
        });
    }
    for (i, d) in f.destinations.into_iter().enumerate() {
        let prefix = format!("forward.destinations[{i}]");
        let name = destination_name(&format!("{prefix}.name"), d.name)?;
        if destinations
            .iter()
            .any(|o: &DestinationConfig| o.name == name)
        {
            return Err(invalid(
                &format!("{prefix}.name"),
                format!(
                    "{name:?} is taken (the single forward.url is named {DEFAULT_DESTINATION:?})"
                ),
            ));
        }
        let url = destination_url(&prefix, d.url.as_deref())?;
        let secrets = destination_secrets(&prefix, d.secrets, d.secrets_file, base)?;
        let t = timing(
            &prefix,
            [
                d.timeout,
                d.retry_first_after,
                d.retry_max_interval,
                d.retry_horizon,
            ],
            d.max_in_flight,
            &top,
        )?;
        let types = filter(&format!("{prefix}.types"), d.types, |v| {
            EVENT_TYPES.contains(&v)
        })?;
        let providers = filter(&format!("{prefix}.providers"), d.providers, |v| {
            v.parse::<crate::domain::ProviderId>().is_ok()
        })?;
        destinations.push(DestinationConfig {
            name,
            url,
            secrets,
            timeout: t.timeout,
            retry_first_after: t.retry_first_after,
            retry_max_interval: t.retry_max_interval,
            retry_horizon: t.retry_horizon,
            max_in_flight: t.max_in_flight,
            types,
            providers,
            backfill: d.backfill.unwrap_or(false),
        });
    }
    Ok(ForwardConfig {
        url,
        secrets,
        timeout: top.timeout,
        retry_first_after: top.retry_first_after,
        retry_max_interval: top.retry_max_interval,
        retry_horizon: top.retry_horizon,
        max_in_flight: top.max_in_flight,
        destinations,
    })
}

/// The `user:pass@host:port` part of an http(s) URL.
fn url_authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Parses a duration written as an integer and a unit: `500ms`, `30s`, `15m`, `24h`, `3d`.
/// Deliberately tiny (no fractions, no compound `1h30m`): every key that takes one says
/// so in `payhook.example.toml`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 500ms, 30s, 15m, 24h or 3d"))?;
    let ms_per = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?} needs a unit: ms, s, m, h or d (e.g. 30s)"
            ))
        }
    };
    n.checked_mul(ms_per)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// The inverse of [`parse_duration`]: the largest unit that divides exactly.
fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms > 0 && ms % per == 0 {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// Describes a TOML error by its line, column and key, without the text of the line: the
/// toml crate's own message quotes the line and, for a wrong type or an unknown variant,
/// the value (`invalid type: string "<the token>"`), and either may be a secret.
fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let what = toml_problem(e.message());
    // Without a span (a whole-document error) there is no line to name.
    let Some(at) = e.span().map(|s| s.start.min(text.len())) else {
        return ConfigError::Toml(what);
    };
    let before = text.get(..at).unwrap_or("");
    let line_no = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = format!("line {line_no}, column {column}");
    if let Some(key) = key_at(&lines, line_no - 1) {
        out.push_str(&format!(", key `{key}`"));
    }
    out.push_str(": ");
    out.push_str(&what);
    ConfigError::Toml(out)
}

/// The serde/toml message reduced to its safe part: key names and what was expected are
/// kept; what was found (the value) is dropped. Syntax errors carry only the parser's
/// fixed vocabulary ("invalid string", "expected `=`"), so their first line is kept.
fn toml_problem(message: &str) -> String {
    let message = message.trim();
    let expected = || {
        message
            .rsplit_once(", expected ")
            .map(|(_, e)| format!(", expected {e}"))
            .unwrap_or_default()
    };
    if message.starts_with("unknown field") || message.starts_with("missing field") {
        // `unknown field `ipn_pasword`, expected one of ...`: key names only.
        let mut m = message.replacen("field", "key", 1);
        if let Some((head, tail)) = m.split_once(", expected one of ") {
            m = format!("{head} (valid keys: {tail})");
        }
        return m;
    }
    if message.starts_with("duplicate key") {
        return message.to_string();
    }
    for (prefix, say) in [
        ("invalid type", "wrong type"),
        ("invalid value", "invalid value"),
        ("invalid length", "wrong number of items"),
        ("unknown variant", "unknown value"),
    ] {
        if message.starts_with(prefix) {
            return format!("{say}{}", expected());
        }
    }
    let first = message.lines().next().unwrap_or("");
    // The parser's vocabulary has no quoted input; anything else might, so it is dropped.
    if first.is_empty() || first.contains('"') || first.contains('\'') {
        "not valid TOML".to_string()
    } else {
        format!("not valid TOML ({first})")
    }
}

/// The dotted key whose assignment holds line `idx` (0-based): the nearest `key =` at or
/// above it, prefixed by the enclosing `[table]`. None when the text there is not a plain
/// key (then naming it could mean quoting a value).
fn key_at(lines: &[&str], idx: usize) -> Option<String> {
    let is_key = |k: &str| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b' '))
    };
    let header = |line: &str| -> Option<String> {
        let inner = line.trim().trim_start_matches('[');
        let name = inner.split(']').next()?.trim();
        is_key(name).then(|| name.replace(' ', ""))
    };
    let mut key = None;
    for line in lines.get(..=idx)?.iter().rev() {
        let t = line.trim_start();
        if t.starts_with('[') && header(t).is_some() {
            let table = header(t)?;
            return Some(match key {
                Some(k) => format!("{table}.{k}"),
                None => table,
            });
        }
        if key.is_none() && !t.starts_with('#') {
            if let Some((left, _)) = t.split_once('=') {
                if is_key(left.trim()) {
                    key = Some(left.trim().replace(' ', ""));
                }
            }
        }
    }
    key
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

fn validate_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
        // The value is not quoted: a URL may carry a token in its path or query.
        return Err(invalid(key, "is not an http(s) URL"));
    }
    Ok(url.to_string())
}

/// Parses `10.0.0.0/8` or a bare address (a /32 or /128).
pub(crate) fn parse_net(key: &str, s: &str) -> Result<IpNet, ConfigError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| invalid(key, format!("{s:?} is not an IP address or CIDR network")))
}

/// A provider's `allowed_ips` (default `default`) and `ip_policy` (default enforce).
fn access(
    section: &str,
    allowed_ips: Option<Vec<String>>,
    ip_policy: Option<IpPolicy>,
    default: &[&str],
) -> Result<AccessConfig, ConfigError> {
    let key = format!("{section}.allowed_ips");
    let allowed_ips: Result<Vec<IpNet>, ConfigError> = match allowed_ips {
        Some(list) => list.iter().map(|s| parse_net(&key, s)).collect(),
        None => default.iter().map(|s| parse_net(&key, s)).collect(),
    };
    let allowed_ips = allowed_ips?;
    Ok(AccessConfig {
        allowed_ips,
        ip_policy: ip_policy.unwrap_or_default(),
    })
}

/// Resolves `callback_tokens` or `callback_tokens_file` (one token per line; blank lines
/// and `#` comments skipped), exactly one of them, and checks every token: long enough,
/// safe in a URL path segment, and free of `banned` words. Messages name the token by its
/// position, never by its value.
/// Shortest accepted `callback_url_keys` entry: a key of at least 256 bits of text.
pub const MIN_CALLBACK_URL_KEY_CHARS: usize = 32;

/// Reads `callback_url_keys` (or `callback_url_keys_file`, one key a line).
fn callback_url_keys(
    inline: Option<Vec<Secret>>,
    file: Option<PathBuf>,
    base: &Path,
) -> Result<Vec<Secret>, ConfigError> {
    let key = "callback_url_keys";
    let keys = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(invalid(key, format!("give {key} or {key}_file, not both")))
        }
        (Some(list), None) => list,
        (None, Some(path)) => read_secret_lines(key, &base.join(path))?,
        (None, None) => return Ok(Vec::new()),
    };
    for (i, k) in keys.iter().enumerate() {
        if k.expose().chars().count() < MIN_CALLBACK_URL_KEY_CHARS {
            return Err(invalid(
                key,
                format!(
                    "key #{} is shorter than {MIN_CALLBACK_URL_KEY_CHARS} characters",
                    i + 1
                ),
            ));
        }
    }
    Ok(keys)
}

fn callback_tokens(
    section: &str,
    inline: Option<Vec<Secret>>,
    file: Option<PathBuf>,
    base: &Path,
    banned: &[&str],
    minted: bool,
) -> Result<Vec<Secret>, ConfigError> {
    let key = format!("{section}.callback_tokens");
    let tokens = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(invalid(&key, format!("give {key} or {key}_file, not both")))
        }
        (Some(list), None) => list,
        (None, Some(path)) => read_secret_lines(&key, &base.join(path))?,
        // Per-payment URLs (callback_url_keys) authenticate without a static token.
        (None, None) if minted => return Ok(Vec::new()),
        (None, None) => {
            return Err(invalid(
                &key,
                format!("required (or {key}_file, or callback_url_keys for per-payment URLs)"),
            ))
        }
    };
    if tokens.is_empty() {
        return Err(invalid(&key, "at least one token is required"));
    }
    for (i, token) in tokens.iter().enumerate() {
        let t = token.expose();
        let n = i + 1;
        if t.chars().count() < MIN_CALLBACK_TOKEN_CHARS {
            return Err(invalid(
                &key,
                format!("token #{n} is shorter than {MIN_CALLBACK_TOKEN_CHARS} characters"),
            ));
        }
        if !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        {
            return Err(invalid(
                &key,
                format!(
                    "token #{n} may only contain A-Z a-z 0-9 - _ . ~ (it is a URL path segment)"
                ),
            ));
        }
        let lower = t.to_ascii_lowercase();
        if let Some(word) = banned.iter().find(|w| lower.contains(*w)) {
            return Err(invalid(
                &key,
                format!(
                    "token #{n} contains {word:?}, which the provider refuses in callback URLs"
                ),
            ));
        }
    }
    Ok(tokens)
}

fn ser_display_vec<S: Serializer, T: std::fmt::Display>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| x.to_string()))
}

/// What the operator commands (`review`, `events`, `track`, `resolve`, `show`,
/// `healthcheck`, `migrate`) need from a configuration file: the store, the listen
/// address, the polling plans and the forward URL. Read by [`OperatorConfig::load`]
/// without opening a single secret file, so that under systemd credentials (readable by
/// the service alone) an operator can still run them; `serve` and `check-config` validate
/// the whole file.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// The callback listener's address (`healthcheck` asks it).
    pub listen: SocketAddr,
    /// The database.
    pub store: StoreConfig,
    /// Providers with a `[providers.*]` section.
    pub enabled: Vec<ProviderId>,
    /// `forward.url`, if `[forward]` is present.
    pub forward_url: Option<String>,
    /// Every configured destination, as the store records it (URLs redacted), so that
    /// `events pause` and `resume` can name one that has not been delivered to yet.
    pub destinations: Vec<crate::store::destinations::Subscription>,
    polls: Vec<(ProviderId, PollConfig)>,
}

impl OperatorConfig {
    /// Reads `path` as [`Config::load`] does (same keys, same checks on everything but
    /// secrets), leaving every secret and secret file unread.
    pub fn load(path: &Path) -> Result<OperatorConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        OperatorConfig::from_toml(&text, Path::new("."))
    }

    /// Parses configuration text; relative paths resolve against `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<OperatorConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
        let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen_text
            .parse()
            .map_err(|e| invalid("listen", format!("{listen_text:?} is not ip:port ({e})")))?;
        let p = raw.providers;
        let mut polls = Vec::new();
        let mut enabled = Vec::new();
        let sections = [
            (
                ProviderId::ZengaPay,
                p.zengapay.map(|z| RawPoll {
                    base_url: z.base_url,
                    poll_first_after: z.poll_first_after,
                    poll_max_interval: z.poll_max_interval,
                    poll_deadline: z.poll_deadline,
                    poll_rate_per_minute: z.poll_rate_per_minute,
                }),
            ),
            (
                ProviderId::BitPesa,
                p.bitpesa.map(|b| RawPoll {
                    base_url: b.base_url,
                    poll_first_after: b.poll_first_after,
                    poll_max_interval: b.poll_max_interval,
                    poll_deadline: b.poll_deadline,
                    poll_rate_per_minute: b.poll_rate_per_minute,
                }),
            ),
            (
                ProviderId::Daraja,
                p.daraja.map(|d| RawPoll {
                    base_url: d.base_url,
                    poll_first_after: d.poll_first_after,
                    poll_max_interval: d.poll_max_interval,
                    poll_deadline: d.poll_deadline,
                    poll_rate_per_minute: d.poll_rate_per_minute,
                }),
            ),
            (
                ProviderId::Jenga,
                p.jenga.map(|j| RawPoll {
                    base_url: j.base_url,
                    poll_first_after: j.poll_first_after,
                    poll_max_interval: j.poll_max_interval,
                    poll_deadline: j.poll_deadline,
                    poll_rate_per_minute: j.poll_rate_per_minute,
                }),
            ),
        ];
        for (id, raw_poll) in sections {
            if let Some(raw_poll) = raw_poll {
                enabled.push(id);
                polls.push((id, poll_config(id, raw_poll)?));
            }
        }
        if p.tujenge.is_some() {
            enabled.push(ProviderId::Tujenge);
        }
        let mut destinations = Vec::new();
        let mut forward_url = None;
        if let Some(f) = raw.forward {
            if let Some(u) = f.url {
                let u = validate_url("forward.url", &u)?;
                destinations.push(crate::store::destinations::Subscription {
                    name: DEFAULT_DESTINATION.to_string(),
                    url: redacted_url(&u),
                    backfill: true,
                    types: None,
                    providers: None,
                });
                forward_url = Some(u);
            }
            for (i, d) in f.destinations.into_iter().enumerate() {
                let prefix = format!("forward.destinations[{i}]");
                let url = validate_url(&format!("{prefix}.url"), d.url.as_deref().unwrap_or(""))?;
                destinations.push(crate::store::destinations::Subscription {
                    name: d.name.unwrap_or_default(),
                    url: redacted_url(&url),
                    backfill: d.backfill.unwrap_or(false),
                    types: d.types,
                    providers: d.providers,
                });
            }
        }
        Ok(OperatorConfig {
            listen,
            store: StoreConfig {
                path: base.join(raw.store.path.unwrap_or_else(|| DEFAULT_STORE_PATH.into())),
                max_size_bytes: None,
            },
            enabled,
            forward_url,
            destinations,
            polls,
        })
    }

    /// The polling plan of `provider`, as [`Config::poll`] gives it.
    pub fn poll(&self, provider: ProviderId) -> PollConfig {
        self.polls
            .iter()
            .find(|(id, _)| *id == provider)
            .map(|(_, plan)| plan.clone())
            .unwrap_or_else(|| crate::schedule::defaults(provider))
    }
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig::from_toml("", Path::new("."))
            .unwrap_or_else(|e| unreachable!("built-in defaults are valid: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_built_in_defaults() {
        let c = Config::from_toml("", Path::new("/tmp")).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.max_body_bytes, 65536);
        assert_eq!(c.store.path, Path::new("/tmp/payhook.db"));
        assert!(c.providers.zengapay.is_none() && c.providers.bitpesa.is_none());
        assert!(c.reconciler.enabled);
        assert_eq!(
            c.poll(ProviderId::BitPesa),
            crate::schedule::defaults(ProviderId::BitPesa)
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
        assert!(c.providers.daraja.as_ref().unwrap().api.is_some());
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

    #[test]
    fn polling_keys_override_the_defaults_and_round_trip() {
        let text = r#"[providers.zengapay]
            secret_hash = "s"
            api_token = "t"
            base_url = "http://127.0.0.1:9/"
            poll_first_after = "30s"
            poll_max_interval = "15m"
            poll_deadline = "2d"
            poll_rate_per_minute = 600
            [reconciler]
            enabled = false
            request_timeout = "500ms""#;
        let c = Config::from_toml(text, Path::new(".")).unwrap();
        let p = c.poll(ProviderId::ZengaPay);
        assert_eq!(p.base_url, "http://127.0.0.1:9");
        assert_eq!(p.first_after, Duration::from_secs(30));
        assert_eq!(p.max_interval, Duration::from_secs(900));
        assert_eq!(p.deadline, Duration::from_secs(2 * 86_400));
        assert_eq!(p.rate_per_minute, 600);
        assert!(!c.reconciler.enabled);
        assert_eq!(c.reconciler.request_timeout, Duration::from_millis(500));
        // check-config output is itself a valid file with the same meaning.
        let shown = c.to_redacted_toml();
        assert!(shown.contains("poll_deadline = \"2d\""), "{shown}");
        assert!(shown.contains("request_timeout = \"500ms\""), "{shown}");
    }

    #[test]
    fn the_example_file_is_valid_and_matches_the_defaults() {
        let c = Config::from_toml(include_str!("../payhook.example.toml"), Path::new(".")).unwrap();
        let d = Config::default();
        assert_eq!((c.listen, c.max_body_bytes), (d.listen, d.max_body_bytes));
        assert_eq!(c.store.path, d.store.path);
    }

    #[test]
    fn secrets_never_print() {
        let c = Config::from_toml(
            r#"public_base_url = "https://hooks.example.com"
               [providers.zengapay]
               secret_hash = "zp-very-secret"
               api_token = "zp-token-secret"
               [providers.bitpesa]
               api_key = "bp-key-secret"
               api_secret = "bp-api-secret"
               [admin]
               token = "admin-token-secret-0123""#,
            Path::new("."),
        )
        .unwrap();
        let shown = format!("{c:?}\n{}", c.to_redacted_toml());
        for s in [
            "zp-very-secret",
            "zp-token-secret",
            "bp-key-secret",
            "bp-api-secret",
        ] {
            assert!(!shown.contains(s), "{s} leaked in:\n{shown}");
        }
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("listen = \"nope\"", "listen"),
            ("[providers.zengapay]\n", "providers.zengapay.secret_hash"),
            (
                "[providers.bitpesa]\napi_key=\"k\"\napi_secret=\"s\"",
                "public_base_url",
            ),
            ("lisen = \"127.0.0.1:1\"", "lisen"),
            ("trusted_proxies = [\"10.0.0.300\"]", "trusted_proxies"),
            (
                "[providers.zengapay]\nsecret_hash=\"a\"\npoll_deadline=\"1y\"",
                "providers.zengapay.poll_deadline",
            ),
            (
                "[providers.zengapay]\nsecret_hash=\"a\"\npoll_first_after=\"1h\"\npoll_max_interval=\"1m\"",
                "providers.zengapay.poll_max_interval",
            ),
            (
                "[providers.zengapay]\nsecret_hash=\"a\"\npoll_rate_per_minute=0",
                "providers.zengapay.poll_rate_per_minute",
            ),
            (
                "[providers.zengapay]\nsecret_hash=\"a\"\nbase_url=\"ftp://x\"",
                "providers.zengapay.base_url",
            ),
            ("[reconciler]\nrequest_timeout=\"10\"", "reconciler.request_timeout"),
            (
                "[admin]\nlisten=\"0.0.0.0:8081\"\ntoken=\"0123456789abcdef\"",
                "admin.listen",
            ),
            ("[admin]\n", "admin.token"),
            ("[admin]\ntoken=\"short\"", "admin.token"),
            (
                "[providers.zengapay]\nsecret_hash=\"a\"\nsecret_hash_file=\"/x\"",
                "not both",
            ),
        ];
        for (text, needle) in cases {
            let err = Config::from_toml(text, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(needle),
                "{text:?} gave {err:?}, expected {needle:?}"
            );
        }
    }

    #[test]
    fn config_errors_name_the_line_and_key_but_never_the_secret() {
        const S: &str = "SeKrEt-0123456789abcdefXYZ";
        // (text, line, key): every one fails, and every one holds S where a careless
        // message would quote it.
        let cases: Vec<(String, usize, &str)> = vec![
            (
                format!("[providers.daraja]\ncallback_tokens = \"{S}\""),
                2,
                "providers.daraja.callback_tokens",
            ),
            (
                format!("[providers.jenga]\nipn_username = \"u\"\nipn_pasword = \"{S}\""),
                3,
                "providers.jenga.ipn_pasword",
            ),
            (
                format!("[providers.zengapay]\nsecret_hash = [\"{S}\"]"),
                2,
                "providers.zengapay.secret_hash",
            ),
            (
                format!("[providers.zengapay]\nsecret_hash = \"a\"\nip_policy = \"{S}\""),
                3,
                "providers.zengapay.ip_policy",
            ),
            (
                format!("[admin]\ntoken = {{ value = \"{S}\" }}"),
                2,
                "admin.token",
            ),
            (
                format!("[forward]\nurl = \"https://m.example/h\"\nsecrets = \"{S}\""),
                3,
                "forward.secrets",
            ),
            (
                format!("[forward]\nurl = \"ftp://m.example/h?token={S}\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]"),
                0,
                "forward.url",
            ),
            (
                format!("[providers.daraja]\ncallback_tokens = [\n  \"{S}\",\n  7,\n]"),
                0,
                "providers.daraja.callback_tokens",
            ),
            (
                format!("[providers.bitpesa]\napi_key = \"{S}\" \"{S}\""),
                2,
                "",
            ),
            (format!("[providers.bitpesa]\napi_secret = \"{S}"), 2, ""),
            (format!("[providers.bitpesa]\n{S}"), 2, ""),
            (
                format!("[providers.bitpesa]\napi_secret = \"{S}\"\napi_secret = \"{S}\""),
                3,
                "",
            ),
            (format!("listen = \"{S}\"\nlisten = 1"), 2, ""),
            (format!("max_body_bytes = \"{S}\""), 1, "max_body_bytes"),
            (format!("[log]\nformat = \"{S}\""), 2, "log.format"),
            (
                format!("[store]\nmax_size_mb = -1\npath = \"{S}\" # {S}\nextra = 1"),
                0,
                "",
            ),
        ];
        for (text, line, key) in &cases {
            let err = Config::from_toml(text, Path::new("."))
                .expect_err(text)
                .to_string();
            assert!(!err.contains(S), "{text:?} leaked the secret: {err}");
            assert!(!err.contains("SeKrEt"), "{text:?} leaked part of it: {err}");
            if *line > 0 {
                assert!(
                    err.contains(&format!("line {line},")),
                    "{text:?} gave {err:?}, expected line {line}"
                );
            }
            assert!(err.contains(key), "{text:?} gave {err:?}, expected {key:?}");
        }
    }

    #[test]
    fn an_allowlist_that_can_only_refuse_is_warned_about() {
        let daraja = "[providers.daraja]\ncallback_tokens = [\"d4r4j4-t0k3n-000001\"]\n";
        // Only the allowlist's warnings (this Daraja has no query credentials either).
        let warned = |toml: &str| -> Vec<String> {
            let c = Config::from_toml(toml, Path::new(".")).unwrap();
            c.warnings()
                .into_iter()
                .filter(|w| w.contains("allowed_ips"))
                .collect()
        };
        // Default listener (loopback), published senders enforced, no proxy trusted.
        let w = warned(&format!("listen = \"127.0.0.1:8080\"\n{daraja}"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("providers.daraja.allowed_ips") && w[0].contains("trusted_proxies"));
        for fine in [
            format!("listen = \"127.0.0.1:8080\"\ntrusted_proxies = [\"127.0.0.1\"]\n{daraja}"),
            format!("listen = \"0.0.0.0:8080\"\n{daraja}"),
            format!("listen = \"127.0.0.1:8080\"\n{daraja}ip_policy = \"log-only\""),
            format!("listen = \"127.0.0.1:8080\"\n{daraja}allowed_ips = [\"127.0.0.0/8\"]"),
        ] {
            assert!(warned(&fine).is_empty(), "{fine}");
        }
    }

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

    #[test]
    fn held_successes_that_nothing_can_confirm_are_warned_about() {
        let warned = |toml: &str| Config::from_toml(toml, Path::new(".")).unwrap().warnings();
        let daraja = "trusted_proxies = [\"127.0.0.1\"]\n[providers.daraja]\n\
                      callback_tokens = [\"d4r4j4-t0k3n-000001\"]\n";
        // Safaricom's senders, enforced, authenticate with the token: nothing is a hint.
        assert!(warned(daraja).is_empty());
        let daraja = format!("{daraja}ip_policy = \"log-only\"\n");
        let w = warned(&daraja);
        assert!(
            w.len() == 1 && w[0].contains("providers.daraja has no query"),
            "{w:?}"
        );
        assert!(warned(&format!("{daraja}confirm_unsigned = false")).is_empty());
        let with_api = format!(
            "{daraja}consumer_key = \"k\"\nconsumer_secret = \"s\"\nshortcode = \"174379\"\n\
             passkey = \"p\"\n"
        );
        assert!(warned(&with_api).is_empty());
        let tujenge = "[providers.tujenge]\ncallback_tokens = [\"tujenge-token-00000001\"]\n";
        let w = warned(tujenge);
        assert!(w.len() == 1 && w[0].contains("providers.tujenge"), "{w:?}");
        assert!(warned(&format!("{tujenge}confirm_unsigned = false")).is_empty());
    }

    #[test]
    fn operator_commands_read_the_file_without_its_secrets() {
        let text = "listen = \"127.0.0.1:9999\"\n[store]\npath = \"var/p.db\"\n\
                    [providers.zengapay]\nsecret_hash_file = \"/nonexistent/zengapay\"\n\
                    poll_deadline = \"2h\"\n[providers.tujenge]\n\
                    callback_tokens_file = \"/nonexistent/tujenge\"\n\
                    [forward]\nurl = \"https://m.example/h\"\nsecrets_file = \"/nonexistent/f\"\n";
        assert!(Config::from_toml(text, Path::new("/srv")).is_err());
        let c = OperatorConfig::from_toml(text, Path::new("/srv")).unwrap();
        assert_eq!(c.store.path, Path::new("/srv/var/p.db"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.enabled, [ProviderId::ZengaPay, ProviderId::Tujenge]);
        assert_eq!(
            c.poll(ProviderId::ZengaPay).deadline,
            Duration::from_secs(7200)
        );
        assert_eq!(
            c.poll(ProviderId::Daraja),
            crate::schedule::defaults(ProviderId::Daraja)
        );
        assert_eq!(c.forward_url.as_deref(), Some("https://m.example/h"));
        // The shape is still checked: a typo is an error here too.
        assert!(OperatorConfig::from_toml("[store]\npth = \"x\"\n", Path::new(".")).is_err());
    }

    #[test]
    fn daraja_defaults_to_the_published_senders_enforced_and_confirmed() {
        let c = Config::from_toml(
            "[providers.daraja]\ncallback_tokens = [\"d4r4j4-t0k3n-000001\"]",
            Path::new("."),
        )
        .unwrap();
        let d = c.providers.daraja.as_ref().unwrap();
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
            .daraja
            .as_ref()
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
        assert_eq!(c.providers.jenga.unwrap().ipn_username.expose(), "ipnuser");
    }

    #[test]
    fn issue_3_secrets_never_print() {
        let c = Config::from_toml(
            r#"[providers.daraja]
               callback_tokens = ["d4r4j4-t0k3n-sekrit1", "d4r4j4-t0k3n-sekrit2"]
               [providers.jenga]
               ipn_username = "jenga-user-sekrit"
               ipn_password = "jenga-pass-sekrit"
               [providers.tujenge]
               callback_tokens = ["tujenge-t0k3n-sekrit"]"#,
            Path::new("."),
        )
        .unwrap();
        let shown = format!("{c:?}\n{}", c.to_redacted_toml());
        assert!(!shown.contains("sekrit"), "a secret leaked in:\n{shown}");
        assert!(shown.contains("196.201.214.200"), "{shown}");
        assert!(shown.contains("ip_policy = \"enforce\""), "{shown}");
    }

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
            c.providers.zengapay.unwrap().secret_hash.expose(),
            "from-file"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Config::from_toml(text, dir.path()).unwrap_err().to_string();
        assert!(err.contains("other users"), "{err}");
    }

    const K1: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const K2: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    #[test]
    fn durations_parse_in_every_unit_and_print_back() {
        for (text, ms) in [
            ("500ms", 500),
            ("30s", 30_000),
            ("15m", 900_000),
            ("24h", 86_400_000),
            ("3d", 259_200_000),
            (" 10s ", 10_000),
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d, Duration::from_millis(ms), "{text}");
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        for bad in [
            "",
            "10",
            "s",
            "1.5h",
            "-3s",
            "3 weeks",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn no_forward_section_means_forwarding_is_off() {
        assert!(Config::from_toml("", Path::new("."))
            .unwrap()
            .forward
            .is_none());
    }

    #[test]
    fn forward_defaults_retry_for_at_least_three_days() {
        let c = Config::from_toml(
            &format!("[forward]\nurl = \"https://merchant.example/hooks\"\nsecrets = [\"{K1}\"]\n"),
            Path::new("."),
        )
        .unwrap();
        let f = c.forward.unwrap();
        assert_eq!(f.timeout, Duration::from_secs(10));
        assert!(f.retry_horizon >= Duration::from_secs(3 * 24 * 3600));
        assert_eq!(f.max_in_flight, DEFAULT_FORWARD_MAX_IN_FLIGHT);
        let p = f.retry_policy();
        assert_eq!(p.first, Duration::from_secs(30));
        assert_eq!(p.horizon, f.retry_horizon);
    }

    #[test]
    fn forward_secrets_never_print() {
        let c = Config::from_toml(
            &format!(
                "[forward]\nurl = \"https://merchant.example/hooks?token=tok-SECRET-9\"\nsecrets = [\"{K1}\", \"{K2}\"]\ntimeout = \"5s\"\nretry_horizon = \"4d\"\n"
            ),
            Path::new("."),
        )
        .unwrap();
        assert_eq!(
            c.forward.as_ref().unwrap().url.as_ref().unwrap().as_str(),
            "https://merchant.example/hooks?token=tok-SECRET-9",
            "deliveries go to the URL as configured"
        );
        let shown = format!("{c:?}\n{}", c.to_redacted_toml());
        assert!(
            shown.contains("https://merchant.example/hooks?[redacted]"),
            "{shown}"
        );
        for secret in [K1, K2, "MfKQ9r8", "C2FVsBQ", "tok-SECRET-9"] {
            assert!(!shown.contains(secret), "{secret} leaked in:\n{shown}");
        }
        assert!(shown.contains("timeout = \"5s\""), "{shown}");
        assert!(shown.contains("retry_horizon = \"4d\""), "{shown}");
        // The redacted output is itself a valid file, less its secrets.
        assert!(shown.contains("[forward]"), "{shown}");
    }

    #[test]
    fn forward_errors_name_the_key_and_never_the_secret() {
        let url = "url = \"https://m.example/h\"";
        let cases = [
            (format!("[forward]\nsecrets = [\"{K1}\"]"), "forward.url"),
            (format!("[forward]\n{url}"), "forward.secrets"),
            (
                format!("[forward]\n{url}\nsecrets = [\"{K1}\", \"hunter2-not-whsec\"]"),
                "forward.secrets[1]",
            ),
            (format!("[forward]\n{url}\nsecrets = []"), "forward.secrets"),
            (
                format!("[forward]\n{url}\nsecrets = [\"{K1}\"]\ntimeout = \"10\""),
                "forward.timeout",
            ),
            (
                format!("[forward]\n{url}\nsecrets = [\"{K1}\"]\nretry_horizon = \"3x\""),
                "forward.retry_horizon",
            ),
            (
                format!("[forward]\n{url}\nsecrets = [\"{K1}\"]\nmax_in_flight = 0"),
                "forward.max_in_flight",
            ),
            (
                format!("[forward]\n{url}\nsecrets = [\"{K1}\"]\nretry_first_after = \"2h\"\nretry_max_interval = \"1h\""),
                "forward.retry_max_interval",
            ),
            (
                format!("[forward]\nurl = \"https://u:p@m.example/h\"\nsecrets = [\"{K1}\"]"),
                "forward.url",
            ),
            (
                format!("[forward]\n{url}\nsecrets = [\"{K1}\"]\nsecrets_file = \"x\""),
                "not both",
            ),
            (format!("[forward]\n{url}\nsecrets = [\"{K1}\"]\nretries = 3"), "retries"),
        ];
        // Every secret an input holds (the signing key, its base64 body, a value that is
        // not a key, a URL's credentials) must stay out of the error it gives.
        let secrets = [K1, &K1["whsec_".len()..], "hunter2", "u:p@"];
        let mut with_secret = 0;
        for (text, needle) in cases {
            let err = Config::from_toml(&text, Path::new("."))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(needle),
                "{text:?} gave {err:?}, expected {needle:?}"
            );
            let held: Vec<&str> = secrets.into_iter().filter(|s| text.contains(s)).collect();
            with_secret += usize::from(!held.is_empty());
            for secret in held {
                assert!(!err.contains(secret), "{secret} leaked in {err:?}");
            }
        }
        // Only the two inputs without any secret (no or empty `secrets`) escape the check.
        assert_eq!(with_secret, 9);
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("."))
    }

    #[test]
    fn forward_destinations_take_the_top_timing_as_defaults_and_the_url_is_default() {
        let c = parse(&format!(
            "[forward]\nurl = \"https://m.example/h\"\nsecrets = [\"{K1}\"]\ntimeout = \"5s\"\n\
             [[forward.destinations]]\nname = \"ledger-2\"\nurl = \"https://l.example/h\"\n\
             secrets = [\"{K2}\"]\nretry_horizon = \"1d\"\ntypes = [\"transaction.failed\"]\n\
             providers = [\"daraja\"]\nbackfill = true\n"
        ))
        .unwrap();
        let f = c.forward.unwrap();
        let names: Vec<&str> = f.destinations.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["default", "ledger-2"]);
        let (def, ledger) = (&f.destinations[0], &f.destinations[1]);
        assert!(def.backfill && def.types.is_none());
        assert_eq!(ledger.timeout, Duration::from_secs(5));
        assert_eq!(ledger.retry_horizon, Duration::from_secs(86_400));
        assert_eq!(def.retry_horizon, DEFAULT_FORWARD_RETRY_HORIZON);
        assert_eq!(
            ledger.types.as_deref(),
            Some(&["transaction.failed".to_string()][..])
        );
        assert!(ledger.backfill);
        // Without a url there is no default destination.
        let only = parse(&format!(
            "[[forward.destinations]]\nname = \"a\"\nurl = \"https://a.example/h\"\nsecrets = [\"{K1}\"]\n"
        ))
        .unwrap()
        .forward
        .unwrap();
        assert!(only.url.is_none() && !only.destinations[0].backfill);
    }

    #[test]
    fn forward_destination_errors_name_the_key() {
        let d = |extra: &str| {
            format!("[[forward.destinations]]\nname = \"a\"\nurl = \"https://a.example/h\"\nsecrets = [\"{K1}\"]\n{extra}")
        };
        for (text, key) in [
            (
                format!(
                    "[[forward.destinations]]\nurl = \"https://a.example/h\"\nsecrets = [\"{K1}\"]"
                ),
                "forward.destinations[0].name",
            ),
            (
                d("").replace("name = \"a\"", "name = \"Orders\""),
                "forward.destinations[0].name",
            ),
            (
                format!("{}{}", d(""), d("")),
                "forward.destinations[1].name",
            ),
            (
                d("types = [\"transaction.paid\"]"),
                "forward.destinations[0].types",
            ),
            (d("types = []"), "forward.destinations[0].types"),
            (
                d("providers = [\"paypal\"]"),
                "forward.destinations[0].providers",
            ),
            (d("timeout = \"0s\""), "forward.destinations[0].timeout"),
            (
                d("").replace("secrets = [\"", "secrets = [\"x"),
                "forward.destinations[0].secrets[0]",
            ),
            (
                format!("[forward]\nsecrets = [\"{K1}\"]\n{}", d("")),
                "forward.secrets",
            ),
            (
                format!(
                    "[forward]\nurl = \"https://m.example/h\"\nsecrets = [\"{K1}\"]\n{}",
                    d("").replace("\"a\"", "\"default\"")
                ),
                "forward.destinations[0].name",
            ),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
            assert!(!err.contains(&K1[6..]), "{err}");
        }
    }

    #[test]
    fn forward_secrets_file_holds_one_secret_a_line_and_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("merchant-secrets");
        std::fs::write(&f, format!("# new one first\n{K2}\n\n{K1}\n")).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = "[forward]\nurl = \"http://127.0.0.1:9/h\"\nsecrets_file = \"merchant-secrets\"";
        let c = Config::from_toml(text, dir.path()).unwrap();
        let got: Vec<&str> = c
            .forward
            .as_ref()
            .unwrap()
            .secrets
            .iter()
            .map(Secret::expose)
            .collect();
        assert_eq!(got, [K2, K1]);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Config::from_toml(text, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("forward.secrets_file") && err.contains("other users"),
            "{err}"
        );
    }
}
