//! One table of the configuration file: the error that names the key at fault, the
//! parsers every table shares (durations, URLs, address lists, callback tokens), and the
//! settings every provider table may take (a polling plan, a source-address check).
//!
//! [`Section`] hands a provider the text of its `[providers.<name>]` table to read in its
//! own form, so that each provider owns its keys (see `src/providers/registry.rs`) while
//! an error still names the line and key in the file.

use crate::secret::{read_secret_lines, Secret, SecretError};
use ipnet::IpNet;
use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A `[providers.<name>]` table of the configuration file, with what reading it needs.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    /// The provider's name, the table's key under `providers`.
    pub name: &'a str,
    /// The whole file's text (errors name a line in it).
    pub text: &'a str,
    /// The directory relative `*_file` paths resolve against.
    pub base: &'a Path,
    /// Whether `callback_url_keys` are configured: per-payment URLs then authenticate a
    /// token provider's callbacks without a static token.
    pub minted: bool,
    /// The top-level `public_base_url`, validated.
    pub public_base_url: Option<&'a str>,
}

impl Section<'_> {
    /// The dotted key of `key` in this table, e.g. `providers.daraja.passkey`.
    pub fn key(&self, key: &str) -> String {
        format!("providers.{}.{key}", self.name)
    }

    /// A [`ConfigError::Invalid`] naming `key` of this table.
    pub fn invalid(&self, key: &str, why: impl Into<String>) -> ConfigError {
        invalid(&self.key(key), why)
    }

    /// The table read in the provider's own form `T`; an unknown key or a value of the
    /// wrong type is an error naming its line and key, never its value.
    pub fn raw<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let path = ["providers", self.name];
        Pick::<T>::new(&path)
            .deserialize(toml::Deserializer::new(self.text))
            .map_err(|e| toml_error(self.text, &e))?
            .ok_or_else(|| invalid(&format!("providers.{}", self.name), "no such table"))
    }

    /// The polling plan of this table's `base_url` and `poll_*` keys, over `defaults`.
    pub fn poll(&self, defaults: PollConfig) -> Result<PollConfig, ConfigError> {
        poll_config(&format!("providers.{}", self.name), self.raw()?, defaults)
    }

    /// A secret given inline or as `<key>_file`, exactly one of them; required.
    pub fn required_secret(
        &self,
        key: &str,
        inline: Option<Secret>,
        file: Option<PathBuf>,
    ) -> Result<Secret, ConfigError> {
        Ok(crate::secret::required_secret(
            &self.key(key),
            inline,
            file,
            self.base,
        )?)
    }

    /// Like [`Section::required_secret`], but absent is allowed.
    pub fn optional_secret(
        &self,
        key: &str,
        inline: Option<Secret>,
        file: Option<PathBuf>,
    ) -> Result<Option<Secret>, ConfigError> {
        Ok(crate::secret::optional_secret(
            &self.key(key),
            inline,
            file,
            self.base,
        )?)
    }

    /// `allowed_ips` (default `default`) and `ip_policy` (default enforce).
    pub fn access(
        &self,
        allowed_ips: Option<Vec<String>>,
        ip_policy: Option<IpPolicy>,
        default: &[&str],
    ) -> Result<AccessConfig, ConfigError> {
        access(
            &format!("providers.{}", self.name),
            allowed_ips,
            ip_policy,
            default,
        )
    }

    /// `callback_tokens` or `callback_tokens_file`, checked (see [`callback_tokens`]).
    pub fn callback_tokens(
        &self,
        inline: Option<Vec<Secret>>,
        file: Option<PathBuf>,
        banned: &[&str],
    ) -> Result<Vec<Secret>, ConfigError> {
        callback_tokens(
            &format!("providers.{}", self.name),
            inline,
            file,
            self.base,
            banned,
            self.minted,
        )
    }
}

/// Whether a token-only callback of a provider can arrive as a hint: unless token and an
/// enforced allowlist authenticate together (`allowlist_authenticates`), an address
/// outside the list is not refused, and what it reports waits for confirmation.
pub fn token_callbacks_are_hints(access: &AccessConfig, allowlist_authenticates: bool) -> bool {
    !(allowlist_authenticates
        && access.ip_policy == IpPolicy::Enforce
        && !access.allowed_ips.is_empty())
}

/// A polling key (`base_url`, `poll_*`) in a provider's own form: accepted there, read
/// by [`Section::poll`].
pub type PollKey = Option<IgnoredAny>;

/// Deserializes the value at `path` of a document, skipping everything else, so that
/// errors keep their place in the whole text.
struct Pick<'p, T> {
    path: &'p [&'p str],
    _t: PhantomData<T>,
}

impl<'p, T> Pick<'p, T> {
    fn new(path: &'p [&'p str]) -> Self {
        Pick {
            path,
            _t: PhantomData,
        }
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Pick<'_, T> {
    type Value = Option<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        match self.path.split_first() {
            None => T::deserialize(d).map(Some),
            Some(_) => d.deserialize_map(self),
        }
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Pick<'_, T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let (head, rest) = self.path.split_first().unwrap_or((&"", &[]));
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == *head {
                found = map.next_value_seed(Pick::<T>::new(rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

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

pub(crate) fn invalid(key: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        why: why.into(),
    }
}

/// How the reconciler polls one provider: the `base_url` and `poll_*` keys of its
/// `[providers.*]` section, defaulting to the provider's built-in plan.
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

/// Shortest callback token accepted: the token is the only credential Daraja and
/// Tujenge callbacks carry (neither signs), so it must not be guessable.
pub const MIN_CALLBACK_TOKEN_CHARS: usize = 16;

/// The `base_url` and `poll_*` keys every polled provider's section takes, read by
/// [`Section::poll`]. (serde cannot combine `flatten` with `deny_unknown_fields`, so each
/// section's own form accepts them as [`PollKey`]s and this one reads them.)
#[derive(Deserialize)]
struct RawPoll {
    base_url: Option<String>,
    poll_first_after: Option<String>,
    poll_max_interval: Option<String>,
    poll_deadline: Option<String>,
    poll_rate_per_minute: Option<u32>,
}

/// Builds a provider's polling plan from its section's keys, over its built-in plan.
fn poll_config(
    section: &str,
    raw: RawPoll,
    mut plan: PollConfig,
) -> Result<PollConfig, ConfigError> {
    let key = |k: &str| format!("{section}.{k}");
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

/// Parses a duration written as an integer and a unit: `500ms`, `30s`, `15m`, `24h`, `3d`.
/// Deliberately tiny (no fractions, no compound `1h30m`): every key that takes one says
/// so in `payhook.example.toml`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
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
pub fn format_duration(d: Duration) -> String {
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
pub(crate) fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
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

pub(crate) fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// `url` trimmed, if it is an http(s) URL; `key` names it in the error.
pub fn validate_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
        // The value is not quoted: a URL may carry a token in its path or query.
        return Err(invalid(key, "is not an http(s) URL"));
    }
    Ok(url.to_string())
}

/// Parses `10.0.0.0/8` or a bare address (a /32 or /128).
pub fn parse_net(key: &str, s: &str) -> Result<IpNet, ConfigError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| invalid(key, format!("{s:?} is not an IP address or CIDR network")))
}

/// A provider's `allowed_ips` (default `default`) and `ip_policy` (default enforce).
pub fn access(
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
pub fn callback_tokens(
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

pub(crate) fn ser_display_vec<S: Serializer, T: std::fmt::Display>(
    v: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| x.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
