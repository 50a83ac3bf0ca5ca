//! The provider registry: one [`Entry`] per provider, the only list of providers outside
//! [`ProviderId`]. Everything that differs between providers outside their wire format
//! (how their configuration table is read, their route, their polling plan, what they
//! warn about) is looked up here, so that adding a provider is its module, its
//! [`ProviderId`] variant and one line in [`ENTRIES`].

use super::sample::{Sample, SampleCallback, SampleError};
use super::Provider;
use crate::domain::{ProviderId, TxnKind};
use crate::section::{AccessConfig, ConfigError, PollConfig, Section};
use serde::ser::{Error as _, SerializeMap};
use serde::{Serialize, Serializer};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Every provider, one line each, in [`ProviderId::ALL`] order.
pub const ENTRIES: &[Entry] = &[
    super::zengapay::config::ENTRY,
    super::bitpesa::config::ENTRY,
    super::daraja::config::ENTRY,
    super::jenga::config::ENTRY,
    super::tujenge::config::ENTRY,
];

/// What payhook needs to know about a provider besides its [`Provider`] implementation.
#[derive(Clone, Copy)]
pub struct Entry {
    /// Which provider.
    pub id: ProviderId,
    /// Reads and validates its `[providers.<name>]` table, secrets included.
    pub parse: fn(&Section<'_>) -> Result<Arc<dyn ProviderConfig>, ConfigError>,
    /// Checks its table's keys without opening a secret (operator commands).
    pub check: fn(&Section<'_>) -> Result<(), ConfigError>,
    /// Its built-in polling plan, which the table's `base_url` and `poll_*` keys override.
    pub poll_defaults: fn() -> PollConfig,
    /// The shape of its callback route.
    pub route: Route,
    /// The payment kinds its callbacks and status answers name (`payhook track --kind`).
    pub kinds: &'static [TxnKind],
}

/// The shape of a provider's callback route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /callbacks/{provider}`: the request carries its own credential.
    Plain,
    /// `POST /callbacks/{provider}/{token}[/{sub-route}]`: the provider signs nothing, so
    /// a secret path token is its credential.
    PathToken,
}

/// The entry of `id`.
pub fn entry(id: ProviderId) -> &'static Entry {
    ENTRIES
        .iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| unreachable!("every provider has a registry entry (see the test)"))
}

/// What every table can do by being serializable and `'static`: show itself in
/// `check-config`, and be found by its type ([`ProvidersConfig::get`]).
pub trait Table: Any {
    /// The table as `check-config` shows it, secrets redacted.
    fn to_toml(&self) -> Result<toml::Value, toml::ser::Error>;
    /// For [`ProvidersConfig::get`].
    fn as_any(&self) -> &dyn Any;
}

impl<T: Serialize + Any> Table for T {
    fn to_toml(&self) -> Result<toml::Value, toml::ser::Error> {
        toml::Value::try_from(self)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A provider's validated `[providers.<name>]` table.
pub trait ProviderConfig: Table + fmt::Debug + Send + Sync {
    /// The provider this table configures.
    fn build(&self) -> Arc<dyn Provider>;
    /// Its callback route's source-address check.
    fn access(&self) -> &AccessConfig;
    /// Its polling plan, if it has a status endpoint to poll.
    fn poll(&self) -> Option<&PollConfig> {
        None
    }
    /// Whether an unsigned callback is a hint, held for a status query where one exists
    /// (`confirm_unsigned`).
    fn confirm_unsigned(&self) -> bool {
        true
    }
    /// Whether a path token from inside an enforced allowlist counts as authenticated
    /// (`allowlist_authenticates`).
    fn allowlist_authenticates(&self) -> bool {
        false
    }
    /// Its statement sweep (interval, lookback), when it has one and sweeping is on.
    fn sweep(&self) -> Option<(Duration, Duration)> {
        None
    }
    /// Settings valid alone that together refuse or weaken what the operator surely
    /// wants ([`crate::config::Config::warnings`]).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// The authenticated sample callback `payhook send-test` and `payhook demo` post,
    /// made with this table's credentials as the provider would.
    fn sample(&self, sample: &Sample<'_>) -> Result<SampleCallback, SampleError>;
}

/// The `[providers.*]` tables present in the file: a provider is enabled when its table is.
#[derive(Debug, Clone, Default)]
pub struct ProvidersConfig {
    tables: BTreeMap<ProviderId, Arc<dyn ProviderConfig>>,
}

impl ProvidersConfig {
    /// Adds the table of `id`.
    pub fn insert(&mut self, id: ProviderId, table: Arc<dyn ProviderConfig>) {
        self.tables.insert(id, table);
    }

    /// The table of `id`, if present.
    pub fn table(&self, id: ProviderId) -> Option<&dyn ProviderConfig> {
        self.tables.get(&id).map(|t| &**t)
    }

    /// The table of type `T` (e.g. `DarajaConfig`), if present.
    pub fn get<T: ProviderConfig>(&self) -> Option<&T> {
        self.tables
            .values()
            .find_map(|t| t.as_any().downcast_ref::<T>())
    }

    /// The enabled providers with their tables, in [`ProviderId`] order.
    pub fn iter(&self) -> impl Iterator<Item = (ProviderId, &dyn ProviderConfig)> + '_ {
        self.tables.iter().map(|(id, t)| (*id, &**t))
    }

    /// The source-address policy of `provider`'s callback route, if it has one.
    pub fn access(&self, provider: ProviderId) -> Option<&AccessConfig> {
        self.table(provider).map(|t| t.access())
    }

    /// Whether a path token from an address inside `provider`'s enforced allowlist counts
    /// as authenticated (`allowlist_authenticates`; Daraja by default).
    pub fn allowlist_authenticates(&self, provider: ProviderId) -> bool {
        self.table(provider)
            .is_some_and(|t| t.allowlist_authenticates())
    }

    /// Whether an unsigned callback of `provider` (a token-only Daraja or Tujenge one, a
    /// field-signed ZengaPay one) is a hint, held for a status query where one exists.
    /// True unless the provider's section says `confirm_unsigned = false`.
    pub fn confirm_unsigned(&self, provider: ProviderId) -> bool {
        self.table(provider).is_none_or(|t| t.confirm_unsigned())
    }
}

impl Serialize for ProvidersConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.tables.len()))?;
        for (id, table) in &self.tables {
            let value = table.to_toml().map_err(S::Error::custom)?;
            map.serialize_entry(id.as_str(), &value)?;
        }
        map.end()
    }
}

/// The enabled providers, built once from configuration.
#[derive(Clone, Default)]
pub struct Registry {
    providers: BTreeMap<ProviderId, Arc<dyn Provider>>,
}

impl Registry {
    /// Builds the providers that have a configuration section.
    pub fn from_config(cfg: impl AsRef<ProvidersConfig>) -> Registry {
        let providers = cfg
            .as_ref()
            .iter()
            .map(|(id, table)| (id, table.build()))
            .collect();
        Registry { providers }
    }

    /// The provider, if enabled.
    pub fn get(&self, id: ProviderId) -> Option<&Arc<dyn Provider>> {
        self.providers.get(&id)
    }

    /// Enabled providers, in [`ProviderId`] order.
    pub fn ids(&self) -> impl Iterator<Item = ProviderId> + '_ {
        self.providers.keys().copied()
    }
}

impl AsRef<ProvidersConfig> for ProvidersConfig {
    fn as_ref(&self) -> &ProvidersConfig {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_has_one_entry_with_a_parser_a_route_and_a_polling_plan() {
        for p in ProviderId::ALL {
            let entries: Vec<&Entry> = ENTRIES.iter().filter(|e| e.id == p).collect();
            assert_eq!(entries.len(), 1, "{p} needs exactly one line in ENTRIES");
            let e = entries[0];
            // The parser reads its own table: an empty one is refused or accepted, but
            // always by this provider's code, naming its keys.
            let text = format!("[providers.{p}]\n");
            let section = Section {
                name: p.as_str(),
                text: &text,
                base: std::path::Path::new("."),
                minted: true,
                public_base_url: Some("https://hooks.example.com"),
            };
            if let Err(err) = (e.parse)(&section) {
                assert!(
                    err.to_string().contains(&format!("providers.{p}.")),
                    "{err}"
                );
            }
            (e.check)(&section).unwrap();
            // Its route exists.
            let path = match e.route {
                Route::Plain => format!("/callbacks/{p}"),
                Route::PathToken => format!("/callbacks/{p}/t0k3n"),
            };
            assert!(
                crate::http::route::parse(&http::Method::POST, &path).is_ok(),
                "{path}"
            );
            // Its polling plan is usable.
            let plan = (e.poll_defaults)();
            assert!(plan.base_url.starts_with("https://"), "{p}");
            assert!(plan.rate_per_minute > 0 && !plan.deadline.is_zero(), "{p}");
            assert!(plan.first_after <= plan.max_interval, "{p}");
            assert!(!e.kinds.is_empty(), "{p} reports no payment kind");
        }
    }
}
