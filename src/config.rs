//! Configuration: built-in defaults, then a TOML file, validated before anything binds.
//!
//! This module reads the top-level keys and `[log]`, `[store]`, `[reconciler]` and
//! `[admin]`; each `[providers.<name>]` table is read by its provider (through
//! `src/providers/registry.rs`) and `[forward]` by `src/forward/config.rs`. Every secret
//! may be given inline or as a `<key>_file`, read as [`crate::secret`] says, and lives in a
//! [`Secret`], which never prints.
//!
//! [`Config::from_toml`] takes the file's text as an argument, so tests never touch the
//! process environment or the working directory.

use crate::domain::ProviderId;
use crate::forward::config::{forward_config, operator_destinations, RawForward};
pub use crate::forward::config::{
    DeliveryTiming, DestinationConfig, DestinationUrl, ForwardConfig, DEFAULT_DESTINATION,
    DEFAULT_FORWARD_MAX_IN_FLIGHT, DEFAULT_FORWARD_RETRY_FIRST_AFTER,
    DEFAULT_FORWARD_RETRY_HORIZON, DEFAULT_FORWARD_RETRY_MAX_INTERVAL, DEFAULT_FORWARD_TIMEOUT,
    EVENT_TYPES, FORWARD_RETRY_JITTER,
};
use crate::providers::registry::{entry, ProvidersConfig};
use crate::secret::{read_secret_lines, required_secret};
pub use crate::secret::{redacted_url, Secret};
pub use crate::section::parse_duration;
use crate::section::{
    invalid, parse_net, ser_display_vec, ser_duration, toml_error, validate_url, Section,
};
pub use crate::section::{
    AccessConfig, ConfigError, IpPolicy, PollConfig, MIN_CALLBACK_TOKEN_CHARS,
};
use ipnet::IpNet;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default callback body limit: 64 KiB is ten times the largest documented callback.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Default listen address: loopback, behind the reverse proxy.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default database file, relative to the working directory.
pub const DEFAULT_STORE_PATH: &str = "payhook.db";

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<PathBuf>,
    max_size_mb: Option<u64>,
}

/// The `[providers.*]` tables present, in [`ProviderId`] order. Each is read by its own
/// provider from the file's text ([`Section`]); here only the names are checked, so that
/// an unknown one is an error naming its line.
#[derive(Default)]
struct RawProviders(Vec<ProviderId>);

impl<'de> Deserialize<'de> for RawProviders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = RawProviders;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of provider tables")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawProviders, A::Error> {
                let mut ids = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let Ok(id) = name.parse::<ProviderId>() else {
                        let known: Vec<String> =
                            ProviderId::ALL.iter().map(|p| format!("`{p}`")).collect();
                        return Err(serde::de::Error::custom(format!(
                            "unknown field `{name}`, expected one of {}",
                            known.join(", ")
                        )));
                    };
                    map.next_value::<IgnoredAny>()?;
                    ids.push(id);
                }
                ids.sort();
                Ok(RawProviders(ids))
            }
        }
        d.deserialize_map(Names)
    }
}

impl Default for Config {
    fn default() -> Self {
        // The built-in defaults are exactly an empty file.
        Config::from_raw(RawConfig::default(), "", Path::new("."))
            .unwrap_or_else(|e| unreachable!("built-in defaults are valid: {e}"))
    }
}

impl AsRef<ProvidersConfig> for Config {
    fn as_ref(&self) -> &ProvidersConfig {
        &self.providers
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
        Config::from_raw(raw, text, base)
    }

    fn from_raw(mut raw: RawConfig, text: &str, base: &Path) -> Result<Config, ConfigError> {
        // Read first: with per-payment URL keys, a token provider needs no static token.
        let callback_url_keys = callback_url_keys(
            raw.callback_url_keys.take(),
            raw.callback_url_keys_file.take(),
            base,
        )?;
        let listen = listen_addr(raw.listen.as_deref())?;
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
        let store = store_config(raw.store, base, true)?;
        let mut providers = ProvidersConfig::default();
        for id in raw.providers.0 {
            let section = Section {
                name: id.as_str(),
                text,
                base,
                minted: !callback_url_keys.is_empty(),
                public_base_url: public_base_url.as_deref(),
            };
            providers.insert(id, (entry(id).parse)(&section)?);
        }
        let reconciler = reconciler_config(raw.reconciler)?;
        let admin = match raw.admin {
            Some(a) => Some(admin_config(a, base)?),
            None => None,
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
        self.providers
            .table(provider)
            .and_then(|t| t.poll())
            .cloned()
            .unwrap_or_else(|| (entry(provider).poll_defaults)())
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
        for (_, table) in self.providers.iter() {
            out.extend(table.warnings());
        }
        out
    }

    /// The effective configuration as TOML, secrets redacted (`check-config`).
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

/// `listen` (default [`DEFAULT_LISTEN`]).
fn listen_addr(text: Option<&str>) -> Result<SocketAddr, ConfigError> {
    let text = text.unwrap_or(DEFAULT_LISTEN);
    text.parse()
        .map_err(|e| invalid("listen", format!("{text:?} is not ip:port ({e})")))
}

/// `[store]`; `with_limit` false leaves the size limit unread (operator commands).
fn store_config(raw: RawStore, base: &Path, with_limit: bool) -> Result<StoreConfig, ConfigError> {
    Ok(StoreConfig {
        path: base.join(raw.path.unwrap_or_else(|| DEFAULT_STORE_PATH.into())),
        max_size_bytes: match raw.max_size_mb {
            _ if !with_limit => None,
            Some(0) => return Err(invalid("store.max_size_mb", "must be at least 1")),
            Some(mb) => Some(mb * 1024 * 1024),
            None => None,
        },
    })
}

/// `[reconciler]`.
fn reconciler_config(raw: RawReconciler) -> Result<ReconcilerConfig, ConfigError> {
    Ok(ReconcilerConfig {
        enabled: raw.enabled.unwrap_or(true),
        request_timeout: match raw.request_timeout {
            Some(t) => {
                let d =
                    parse_duration(&t).map_err(|why| invalid("reconciler.request_timeout", why))?;
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
    })
}

/// `[admin]`.
fn admin_config(a: RawAdmin, base: &Path) -> Result<AdminConfig, ConfigError> {
    let text = a.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    let listen: SocketAddr = text
        .parse()
        .map_err(|e| invalid("admin.listen", format!("{text:?} is not ip:port ({e})")))?;
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
    Ok(AdminConfig {
        listen,
        token,
        metrics: a.metrics.unwrap_or(false),
    })
}

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
        let listen = listen_addr(raw.listen.as_deref())?;
        let mut polls = Vec::new();
        let enabled = raw.providers.0;
        for &id in &enabled {
            let e = entry(id);
            let section = Section {
                name: id.as_str(),
                text,
                base,
                minted: false,
                public_base_url: None,
            };
            (e.check)(&section)?;
            polls.push((id, section.poll((e.poll_defaults)())?));
        }
        let (forward_url, destinations) = match raw.forward {
            Some(f) => operator_destinations(f)?,
            None => (None, Vec::new()),
        };
        Ok(OperatorConfig {
            listen,
            store: store_config(raw.store, base, false)?,
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
            .unwrap_or_else(|| (entry(provider).poll_defaults)())
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
    use crate::providers::bitpesa::BitPesaConfig;
    use crate::providers::zengapay::ZengaPayConfig;

    #[test]
    fn an_empty_file_gives_the_built_in_defaults() {
        let c = Config::from_toml("", Path::new("/tmp")).unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.max_body_bytes, 65536);
        assert_eq!(c.store.path, Path::new("/tmp/payhook.db"));
        assert!(
            c.providers.get::<ZengaPayConfig>().is_none()
                && c.providers.get::<BitPesaConfig>().is_none()
        );
        assert!(c.reconciler.enabled);
        assert_eq!(
            c.poll(ProviderId::BitPesa),
            crate::schedule::defaults(ProviderId::BitPesa)
        );
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
}
