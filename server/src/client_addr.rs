//! Which client a request comes from, and the key by which the per-address limits count it.
//!
//! The client is the TCP peer, unless the peer is one of `server.trusted_proxies`: then it is
//! the rightmost address in the peer's forwarding header that no trusted proxy wrote. The
//! headers of any other peer are ignored, whatever they say: a client can write anything there.
//!
//! The rules (the table in the tests spells them out case by case):
//! - `X-Forwarded-For` wins when a request has both headers. nginx, Caddy, HAProxy and Traefik
//!   append to `X-Forwarded-For` and pass a client's own `Forwarded` header through untouched,
//!   so preferring `Forwarded` would let a client name its address. (A proxy that sets only
//!   `Forwarded` must therefore drop an incoming `X-Forwarded-For`.)
//! - All lines of the header, in order, form one list, walked from the right. Trusted hops are
//!   skipped; the first address that is not trusted is the client. When every hop is trusted,
//!   the leftmost is the client.
//! - A hop that is not an address (`unknown`, an obfuscated `_name`, a `Forwarded` element
//!   without `for=`, garbage) ends the walk at the last address a trusted proxy vouched for:
//!   the trusted hop to its right, or the peer. The walk never skips past such a hop, because
//!   everything left of it may be the client's own writing.
//! - Ports (`192.0.2.1:4711`, `"[2001:db8::1]:4711"`) are dropped; an IPv4-mapped IPv6 address
//!   counts as the IPv4 address.
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header::FORWARDED, request::Parts, HeaderMap, HeaderName},
};

use crate::{config::TrustedProxy, error::HttpError, state::AppState};

/// The address a request comes from, as far as the server can trust it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The key the per-address limits count this client by.
    pub fn key(self) -> ClientKey {
        ClientKey::of(self.0)
    }
}

/// One client as the per-address limits count it: an IPv4 address, or an IPv6 /64 (one
/// household or host is given a whole /64, and picks a fresh address in it at will).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => ClientKey(IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & (u128::MAX << 64),
            ))),
            v4 => ClientKey(v4),
        }
    }
}

/// `192.0.2.1`, or `2001:db8:1:2::/64`: also the spelling stored on each AI job
/// (`ai_generation_jobs.client_key`) and counted by the per-address queue cap, so a change here
/// must migrate the stored keys.
impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Reads the TCP peer from the `ConnectInfo<SocketAddr>` request extension (which the server's
/// accept loop inserts) and the forwarding headers when that peer is a trusted proxy.
impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let ConnectInfo(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
            .ok_or_else(|| HttpError::internal("the request carries no peer address"))?;
        Ok(ClientAddr(client_ip(
            peer.ip(),
            &parts.headers,
            &state.config.server.trusted_proxies,
        )))
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address: see the module's rules.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[TrustedProxy]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|proxy| proxy.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops = if headers.contains_key(X_FORWARDED_FOR) {
        hops(headers, X_FORWARDED_FOR, x_forwarded_for_hop)
    } else {
        hops(headers, FORWARDED, forwarded_hops)
    };
    // The last address a trusted party vouched for.
    let mut vouched = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) if is_trusted(ip) => vouched = ip,
            Some(ip) => return ip,
            None => return vouched,
        }
    }
    vouched
}

/// Every hop of every line of header `name`, left to right; `None` for a hop that names no
/// address (and for a line that is not text).
fn hops(
    headers: &HeaderMap,
    name: HeaderName,
    parse_line: fn(&str) -> Vec<Option<IpAddr>>,
) -> Vec<Option<IpAddr>> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|line| match line.to_str() {
            Ok(line) => parse_line(line),
            Err(_) => vec![None],
        })
        .collect()
}

/// `203.0.113.7, 2001:db8::1, [2001:db8::2]:443, 192.0.2.1:80`; empty elements are no hop.
fn x_forwarded_for_hop(line: &str) -> Vec<Option<IpAddr>> {
    line.split(',')
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .map(|hop| {
            hop.parse::<IpAddr>()
                .ok()
                .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
                .or_else(|| {
                    hop.strip_prefix('[')
                        .and_then(|h| h.strip_suffix(']'))
                        .and_then(|h| h.parse::<Ipv6Addr>().ok())
                        .map(IpAddr::V6)
                })
                .map(|ip| ip.to_canonical())
        })
        .collect()
}

/// RFC 7239: `for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711"`.
fn forwarded_hops(line: &str) -> Vec<Option<IpAddr>> {
    rfc7239::parse(line)
        .map(|element| {
            element
                .ok()?
                .forwarded_for?
                .ip()
                .map(|ip| ip.to_canonical())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    /// (what the case shows, peer, trusted proxies, header lines, expected client)
    type Case = (
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static str,
    );

    const XFF: &str = "x-forwarded-for";
    const FWD: &str = "forwarded";
    const NGINX: &[&str] = &["127.0.0.1"];
    const CHAIN: &[&str] = &["127.0.0.1", "10.0.0.0/8", "fd00::/8"];

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        // Untrusted peers: the headers mean nothing.
        ("no proxies configured", "198.51.100.9", &[], &[(XFF, "203.0.113.1")], "198.51.100.9"),
        ("untrusted peer spoofs XFF", "198.51.100.9", NGINX, &[(XFF, "203.0.113.1")], "198.51.100.9"),
        ("untrusted peer spoofs Forwarded", "198.51.100.9", NGINX, &[(FWD, "for=203.0.113.1")], "198.51.100.9"),
        ("untrusted peer names a trusted proxy", "198.51.100.9", NGINX, &[(XFF, "127.0.0.1")], "198.51.100.9"),
        ("untrusted IPv4-mapped peer", "::ffff:198.51.100.9", NGINX, &[(XFF, "203.0.113.1")], "198.51.100.9"),
        // One trusted proxy.
        ("trusted peer without headers", "127.0.0.1", NGINX, &[], "127.0.0.1"),
        ("trusted peer, one hop", "127.0.0.1", NGINX, &[(XFF, "203.0.113.1")], "203.0.113.1"),
        ("IPv4-mapped trusted peer", "::ffff:127.0.0.1", NGINX, &[(XFF, "203.0.113.1")], "203.0.113.1"),
        ("client's own XFF entries before the real one", "127.0.0.1", NGINX, &[(XFF, "1.1.1.1, 2.2.2.2, 203.0.113.1")], "203.0.113.1"),
        ("client names the proxy itself on the left", "127.0.0.1", NGINX, &[(XFF, "127.0.0.1, 203.0.113.1")], "203.0.113.1"),
        ("no spaces", "127.0.0.1", NGINX, &[(XFF, "1.1.1.1,203.0.113.1")], "203.0.113.1"),
        ("empty elements are no hop", "127.0.0.1", NGINX, &[(XFF, " , 203.0.113.1 ,")], "203.0.113.1"),
        ("an empty header names nobody", "127.0.0.1", NGINX, &[(XFF, "")], "127.0.0.1"),
        // Chains of trusted proxies.
        ("chain: skips trusted hops", "10.0.0.2", CHAIN, &[(XFF, "1.1.1.1, 203.0.113.1, 10.0.0.7, 10.1.2.3")], "203.0.113.1"),
        ("chain: all hops trusted, leftmost wins", "10.0.0.2", CHAIN, &[(XFF, "10.9.9.9, 10.0.0.7")], "10.9.9.9"),
        ("chain: IPv6 hops", "fd00::2", CHAIN, &[(XFF, "2001:db8::1, fd00::7")], "2001:db8::1"),
        ("multiple header lines are one list", "127.0.0.1", CHAIN, &[(XFF, "1.1.1.1"), (XFF, "203.0.113.1, 10.0.0.7")], "203.0.113.1"),
        ("multiple lines, the last decides", "127.0.0.1", NGINX, &[(XFF, "203.0.113.1"), (XFF, "198.51.100.2")], "198.51.100.2"),
        // Ports and brackets in XFF.
        ("XFF with an IPv4 port", "127.0.0.1", NGINX, &[(XFF, "203.0.113.1:4711")], "203.0.113.1"),
        ("XFF with bracketed IPv6 and port", "127.0.0.1", NGINX, &[(XFF, "[2001:db8::1]:4711")], "2001:db8::1"),
        ("XFF with bracketed IPv6", "127.0.0.1", NGINX, &[(XFF, "[2001:db8::1]")], "2001:db8::1"),
        ("XFF with an IPv4-mapped client", "127.0.0.1", NGINX, &[(XFF, "::ffff:203.0.113.1")], "203.0.113.1"),
        // Garbage never lets a client choose.
        ("garbage rightmost: the proxy itself", "127.0.0.1", NGINX, &[(XFF, "203.0.113.1, nonsense")], "127.0.0.1"),
        ("garbage behind a trusted hop: that hop", "10.0.0.2", CHAIN, &[(XFF, "203.0.113.1, junk, 10.0.0.7")], "10.0.0.7"),
        ("unknown in XFF", "127.0.0.1", NGINX, &[(XFF, "203.0.113.1, unknown")], "127.0.0.1"),
        ("a hostname is not an address", "127.0.0.1", NGINX, &[(XFF, "evil.example")], "127.0.0.1"),
        ("a network is not an address", "127.0.0.1", NGINX, &[(XFF, "203.0.113.0/24")], "127.0.0.1"),
        ("garbage left of the client does not matter", "127.0.0.1", NGINX, &[(XFF, "%%%, 203.0.113.1")], "203.0.113.1"),
        // Forwarded (RFC 7239).
        ("Forwarded: one hop", "127.0.0.1", NGINX, &[(FWD, "for=203.0.113.1")], "203.0.113.1"),
        ("Forwarded: case and other parameters", "127.0.0.1", NGINX, &[(FWD, "For=203.0.113.1;proto=https;by=127.0.0.1")], "203.0.113.1"),
        ("Forwarded: quoted IPv6 with port", "127.0.0.1", NGINX, &[(FWD, r#"for="[2001:db8::1]:4711""#)], "2001:db8::1"),
        ("Forwarded: quoted IPv4 with port", "127.0.0.1", NGINX, &[(FWD, r#"for="203.0.113.1:4711""#)], "203.0.113.1"),
        ("Forwarded: chain from the right", "10.0.0.2", CHAIN, &[(FWD, "for=1.1.1.1, for=203.0.113.1, for=10.0.0.7")], "203.0.113.1"),
        ("Forwarded: several lines", "10.0.0.2", CHAIN, &[(FWD, "for=1.1.1.1"), (FWD, "for=203.0.113.1;proto=https, for=10.0.0.7")], "203.0.113.1"),
        ("Forwarded: unknown stops at the proxy", "127.0.0.1", NGINX, &[(FWD, "for=203.0.113.1, for=unknown")], "127.0.0.1"),
        ("Forwarded: obfuscated stops at the trusted hop", "10.0.0.2", CHAIN, &[(FWD, "for=203.0.113.1, for=_hidden, for=10.0.0.7")], "10.0.0.7"),
        ("Forwarded: element without for", "127.0.0.1", NGINX, &[(FWD, "for=203.0.113.1, proto=https")], "127.0.0.1"),
        ("Forwarded: malformed element", "127.0.0.1", NGINX, &[(FWD, "for=203.0.113.1, garbage")], "127.0.0.1"),
        ("Forwarded: bad port", "127.0.0.1", NGINX, &[(FWD, r#"for="203.0.113.1:99999""#)], "127.0.0.1"),
        // Both headers: X-Forwarded-For, which the proxy maintains, wins.
        ("XFF wins over a client's Forwarded", "127.0.0.1", NGINX, &[(FWD, "for=1.1.1.1"), (XFF, "203.0.113.1")], "203.0.113.1"),
    ];

    #[test]
    fn the_client_address_follows_the_table() {
        let mut failures = Vec::new();
        for (what, peer, trusted, lines, expected) in CASES {
            let mut headers = HeaderMap::new();
            for (name, value) in *lines {
                headers.append(*name, HeaderValue::from_str(value).unwrap());
            }
            let got = client_ip(peer.parse().unwrap(), &headers, &proxies(trusted));
            let expected: IpAddr = expected.parse().unwrap();
            if got != expected {
                failures.push(format!("{what}: got {got}, expected {expected}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn a_header_line_that_is_not_text_names_nobody() {
        let mut headers = HeaderMap::new();
        headers.append(XFF, HeaderValue::from_str("203.0.113.1").unwrap());
        headers.append(XFF, HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        let got = client_ip(
            "127.0.0.1".parse().unwrap(),
            &headers,
            &proxies(&["127.0.0.1"]),
        );
        assert_eq!(got, "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn limits_count_ipv6_by_64_and_mapped_ipv4_as_ipv4() {
        let key = |s: &str| ClientKey::of(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
        assert_eq!(key("192.0.2.1").to_string(), "192.0.2.1");
    }
}
