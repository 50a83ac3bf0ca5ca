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
    /// The timing keys at the top of `[forward]`: every destination's defaults.
    #[serde(flatten)]
    pub timing: DeliveryTiming,
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
    /// How deliveries to it are bounded and retried.
    #[serde(flatten)]
    pub timing: DeliveryTiming,
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

/// How deliveries to a destination are bounded and retried: the timing keys of `[forward]`
/// (the defaults) or of one `[[forward.destinations]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryTiming {
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
}

impl DeliveryTiming {
    /// What a destination gets when no timing key is set anywhere.
    pub const DEFAULT: DeliveryTiming = DeliveryTiming {
        timeout: DEFAULT_FORWARD_TIMEOUT,
        retry_first_after: DEFAULT_FORWARD_RETRY_FIRST_AFTER,
        retry_max_interval: DEFAULT_FORWARD_RETRY_MAX_INTERVAL,
        retry_horizon: DEFAULT_FORWARD_RETRY_HORIZON,
        max_in_flight: DEFAULT_FORWARD_MAX_IN_FLIGHT,
    };

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

/// Parses and checks the timing keys under `prefix`, each defaulting to `defaults`'.
fn timing(
    prefix: &str,
    raw: [Option<String>; 4],
    max_in_flight: Option<usize>,
    defaults: &DeliveryTiming,
) -> Result<DeliveryTiming, ConfigError> {
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
    Ok(DeliveryTiming {
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
        &DeliveryTiming::DEFAULT,
    )?;
    if let Some(url) = &url {
        destinations.push(DestinationConfig {
            name: DEFAULT_DESTINATION.to_string(),
            url: url.clone(),
            secrets: secrets.clone(),
            timing: top.clone(),
            types: None,
            providers: None,
            backfill: true,
        });
    }
    for (i, d) in f.destinations.into_iter().enumerate() {
        let d = destination(i, d, base, &top, &destinations)?;
        destinations.push(d);
    }
    Ok(ForwardConfig {
        url,
        secrets,
        timing: top,
        destinations,
    })
}

/// `[[forward.destinations]]` number `i`, its timing defaulting to `top`'s; its name must
/// not be one of `taken`.
fn destination(
    i: usize,
    d: RawDestination,
    base: &Path,
    top: &DeliveryTiming,
    taken: &[DestinationConfig],
) -> Result<DestinationConfig, ConfigError> {
    let prefix = format!("forward.destinations[{i}]");
    let name = destination_name(&format!("{prefix}.name"), d.name)?;
    if taken.iter().any(|o: &DestinationConfig| o.name == name) {
        return Err(invalid(
            &format!("{prefix}.name"),
            format!("{name:?} is taken (the single forward.url is named {DEFAULT_DESTINATION:?})"),
        ));
    }
    let url = destination_url(&prefix, d.url.as_deref())?;
    let secrets = destination_secrets(&prefix, d.secrets, d.secrets_file, base)?;
    let timing = timing(
        &prefix,
        [
            d.timeout,
            d.retry_first_after,
            d.retry_max_interval,
            d.retry_horizon,
        ],
        d.max_in_flight,
        top,
    )?;
    let types = filter(&format!("{prefix}.types"), d.types, |v| {
        EVENT_TYPES.contains(&v)
    })?;
    let providers = filter(&format!("{prefix}.providers"), d.providers, |v| {
        v.parse::<crate::domain::ProviderId>().is_ok()
    })?;
    Ok(DestinationConfig {
        name,
        url,
        secrets,
        timing,
        types,
        providers,
        backfill: d.backfill.unwrap_or(false),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const K1: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const K2: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

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
        assert_eq!(f.timing.timeout, Duration::from_secs(10));
        assert!(f.timing.retry_horizon >= Duration::from_secs(3 * 24 * 3600));
        assert_eq!(f.timing.max_in_flight, DEFAULT_FORWARD_MAX_IN_FLIGHT);
        let p = f.timing.retry_policy();
        assert_eq!(p.first, Duration::from_secs(30));
        assert_eq!(p.horizon, f.timing.retry_horizon);
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
        assert_eq!(ledger.timing.timeout, Duration::from_secs(5));
        assert_eq!(ledger.timing.retry_horizon, Duration::from_secs(86_400));
        assert_eq!(def.timing.retry_horizon, DEFAULT_FORWARD_RETRY_HORIZON);
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
