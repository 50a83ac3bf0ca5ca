//! The per-provider source-address check (README.md, "Providers that cannot sign").
//! A pure function: the caller resolves the client address first
//! ([`super::client_ip::resolve`], which only believes `X-Forwarded-For` from a trusted
//! proxy) and decides what to answer.
//!
//! An empty allowlist means "no address check" (the default for every provider but
//! Daraja, whose senders are published by practitioners, not by Safaricom).

use crate::section::{AccessConfig, IpPolicy};
use std::net::IpAddr;

/// What the allowlist says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No allowlist is configured for the provider: nothing was checked.
    NotChecked,
    /// The address is in the allowlist: the IP check passed (recorded as `+ip` in
    /// `callbacks.auth`).
    Allowed,
    /// Not in the allowlist, and the policy is `enforce`: answer 403.
    Refused,
    /// Not in the allowlist, but the policy is `log-only`: accept and log a warning.
    Tolerated,
}

/// Checks `client` against `access`.
///
/// ```
/// use payhook::config::{AccessConfig, IpPolicy};
/// use payhook::http::allowlist::{check, Verdict};
/// let access = AccessConfig {
///     allowed_ips: vec!["196.201.214.0/24".parse().unwrap()],
///     ip_policy: IpPolicy::Enforce,
/// };
/// assert_eq!(check("196.201.214.200".parse().unwrap(), &access), Verdict::Allowed);
/// assert_eq!(check("203.0.113.9".parse().unwrap(), &access), Verdict::Refused);
/// ```
pub fn check(client: IpAddr, access: &AccessConfig) -> Verdict {
    if access.allowed_ips.is_empty() {
        return Verdict::NotChecked;
    }
    // `::ffff:196.201.214.200` (a dual-stack socket) is the IPv4 sender it wraps.
    let client = client.to_canonical();
    if access.allowed_ips.iter().any(|net| net.contains(&client)) {
        return Verdict::Allowed;
    }
    match access.ip_policy {
        IpPolicy::Enforce => Verdict::Refused,
        IpPolicy::LogOnly => Verdict::Tolerated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(list: &[&str], ip_policy: IpPolicy) -> AccessConfig {
        AccessConfig {
            allowed_ips: list.iter().map(|s| s.parse().unwrap()).collect(),
            ip_policy,
        }
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_list_checks_nothing_in_either_mode() {
        for policy in [IpPolicy::Enforce, IpPolicy::LogOnly] {
            assert_eq!(
                check(ip("203.0.113.9"), &access(&[], policy)),
                Verdict::NotChecked
            );
        }
    }

    #[test]
    fn bare_addresses_and_networks_match() {
        let a = access(
            &["196.201.214.200/32", "10.0.0.0/8", "2001:db8::/32"],
            IpPolicy::Enforce,
        );
        assert_eq!(check(ip("196.201.214.200"), &a), Verdict::Allowed);
        assert_eq!(check(ip("10.20.30.40"), &a), Verdict::Allowed);
        assert_eq!(check(ip("2001:db8::7"), &a), Verdict::Allowed);
        assert_eq!(check(ip("::ffff:196.201.214.200"), &a), Verdict::Allowed);
        assert_eq!(check(ip("196.201.214.201"), &a), Verdict::Refused);
        assert_eq!(check(ip("2001:db9::7"), &a), Verdict::Refused);
    }

    #[test]
    fn log_only_tolerates_a_miss_but_still_reports_a_hit() {
        let a = access(&["196.201.214.200/32"], IpPolicy::LogOnly);
        assert_eq!(check(ip("203.0.113.9"), &a), Verdict::Tolerated);
        assert_eq!(check(ip("196.201.214.200"), &a), Verdict::Allowed);
    }
}
