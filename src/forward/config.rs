//! `[forward]`: the merchant's destinations, their secrets, filters and retry timing.

use crate::secret::{read_private_file, redacted_url, Secret};
use crate::section::{invalid, parse_duration, ser_duration, validate_url, ConfigError};
use crate::store::destinations::Subscription;
use serde::{Deserialize, Serialize, Serializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForward {
    pub(crate) url: Option<String>,
    pub(crate) secrets: Option<Vec<Secret>>,
    pub(crate) secrets_file: Option<PathBuf>,
    pub(crate) timeout: Option<String>,
    pub(crate) retry_first_after: Option<String>,
    pub(crate) retry_max_interval: Option<String>,
    pub(crate) retry_horizon: Option<String>,
    pub(crate) max_in_flight: Option<usize>,
    #[serde(default)]
    pub(crate) destinations: Vec<RawDestination>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDestination {
    pub(crate) name: Option<String>,
    pub(crate) url: Option<String>,
    pub(crate) secrets: Option<Vec<Secret>>,
    pub(crate) secrets_file: Option<PathBuf>,
    pub(crate) timeout: Option<String>,
    pub(crate) retry_first_after: Option<String>,
    pub(crate) retry_max_interval: Option<String>,
    pub(crate) retry_horizon: Option<String>,
    pub(crate) max_in_flight: Option<usize>,
    pub(crate) types: Option<Vec<String>>,
    pub(crate) providers: Option<Vec<String>>,
    pub(crate) backfill: Option<bool>,
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
    super::sign::Signer::new(secrets.iter().map(Secret::expose)).map_err(|(i, e)| {
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

pub(crate) fn forward_config(f: RawForward, base: &Path) -> Result<ForwardConfig, ConfigError> {
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

/// The destinations of `[forward]` as the store records them (URLs redacted), and the
/// `default` destination's URL, read without a secret (operator commands).
pub(crate) fn operator_destinations(
    f: RawForward,
) -> Result<(Option<String>, Vec<Subscription>), ConfigError> {
    let mut destinations = Vec::new();
    let mut forward_url = None;
    if let Some(u) = f.url {
        let u = validate_url("forward.url", &u)?;
        destinations.push(Subscription {
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
        destinations.push(Subscription {
            name: d.name.unwrap_or_default(),
            url: redacted_url(&url),
            backfill: d.backfill.unwrap_or(false),
            types: d.types,
            providers: d.providers,
        });
    }
    Ok((forward_url, destinations))
}
