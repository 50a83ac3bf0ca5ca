//! The client's address behind trusted reverse proxies. Pure functions, no I/O.
//!
//! The TCP peer is the client unless the peer is a configured trusted proxy. Then the
//! client is the right-most hop of `X-Forwarded-For` that is not itself trusted: every
//! hop to its right was appended by a proxy we trust, while everything to its left was
//! written by the client and may be invented. A request through an untrusted peer
//! therefore cannot choose its address.

use http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// `X-Forwarded-For`.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

fn trusted(ip: IpAddr, proxies: &[IpNet]) -> bool {
    proxies.iter().any(|n| n.contains(&ip))
}

/// Resolves the client address of a request that arrived from `peer`.
///
/// ```
/// use payhook::http::client_ip::resolve;
/// let proxies = ["127.0.0.1/32".parse().unwrap()];
/// let mut h = http::HeaderMap::new();
/// h.insert("x-forwarded-for", "6.6.6.6, 196.201.214.200".parse().unwrap());
/// // Through the trusted proxy: the right-most untrusted hop.
/// assert_eq!(resolve("127.0.0.1".parse().unwrap(), &h, &proxies).to_string(), "196.201.214.200");
/// // From an untrusted peer the header is ignored.
/// assert_eq!(resolve("10.9.9.9".parse().unwrap(), &h, &proxies).to_string(), "10.9.9.9");
/// ```
pub fn resolve(peer: IpAddr, headers: &HeaderMap, proxies: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted(peer, proxies) {
        return peer;
    }
    // Several X-Forwarded-For headers are one list, in order. Split as bytes: a client
    // can put a byte that is not text into its part of the list, and that must not make
    // the hops the proxies appended after it unreadable.
    let hops: Vec<&[u8]> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|h| !h.is_empty())
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match std::str::from_utf8(hop).ok().and_then(parse_hop) {
            Some(ip) if trusted(ip, proxies) => client = ip,
            Some(ip) => return ip,
            // Garbage where an address should be. A trusted proxy writes the address it
            // saw, so this came from the client, whose address is therefore unknown:
            // answer one that no allowlist names, rather than the proxy's own.
            None => return UNKNOWN,
        }
    }
    client
}

/// The client address when a trusted proxy's list holds garbage where it should be:
/// `0.0.0.0`, which no allowlist should name.
pub const UNKNOWN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }
    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(FORWARDED_FOR, v.parse().unwrap());
        }
        h
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_cannot_choose_its_address() {
        let p = nets(&["127.0.0.1/32"]);
        assert_eq!(
            resolve(ip("203.0.113.9"), &xff(&["196.201.214.200"]), &p),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn chains_of_trusted_proxies_are_walked_right_to_left() {
        let p = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let h = xff(&["1.1.1.1, 196.201.214.200, 10.0.0.5"]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &p), ip("196.201.214.200"));
        // Split across headers, with ports and IPv6 brackets.
        let h = xff(&["1.1.1.1", "196.201.214.200:443", "[::ffff:10.0.0.5]:80"]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &p), ip("196.201.214.200"));
    }

    #[test]
    fn garbage_and_all_trusted_chains_stay_safe() {
        let p = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        // The client's address is unknown: not the proxy's.
        assert_eq!(
            resolve(ip("127.0.0.1"), &xff(&["unknown, 10.0.0.2"]), &p),
            UNKNOWN
        );
        // A byte that is not text in the client's part does not hide what the proxy
        // appended after it.
        let mut h = HeaderMap::new();
        h.insert(
            FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"1.2.3.4\xff, 6.6.6.6").unwrap(),
        );
        assert_eq!(resolve(ip("127.0.0.1"), &h, &p), ip("6.6.6.6"));
        h.insert(
            FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"1.2.3.4\xff").unwrap(),
        );
        assert_eq!(resolve(ip("127.0.0.1"), &h, &p), UNKNOWN);
        assert_eq!(
            resolve(ip("127.0.0.1"), &xff(&["10.0.0.3, 10.0.0.2"]), &p),
            ip("10.0.0.3")
        );
        assert_eq!(
            resolve(ip("127.0.0.1"), &HeaderMap::new(), &p),
            ip("127.0.0.1")
        );
        assert_eq!(
            resolve(ip("::ffff:127.0.0.1"), &xff(&["9.9.9.9"]), &p),
            ip("9.9.9.9")
        );
    }
}
