//! The client's address, as far as it can be trusted.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client address of a request from `peer` with these headers (see [`resolve`]).
pub fn of_request(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    // Nearly every peer is the client itself: its headers need not be read.
    if trusted.is_empty() {
        return peer;
    }
    let forwarded: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok()).collect();
    resolve(peer, &forwarded, trusted)
}

/// Resolves the client address: when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy. Never the left-most entry: a
/// client can write anything there.
pub fn resolve(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = forwarded_for.iter().flat_map(|header| header.split(',')).map(str::trim).rev();
    for hop in hops {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // A garbled entry cannot be attributed; the nearest trusted hop vouches for nothing more.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()]
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(resolve(ip("203.0.113.9"), &["1.2.3.4"], &trusted()), ip("203.0.113.9"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let forwarded = ["6.6.6.6, 198.51.100.7", "10.1.1.1"];
        assert_eq!(resolve(ip("127.0.0.1"), &forwarded, &trusted()), ip("198.51.100.7"));
    }

    #[test]
    fn without_forwarded_for_the_trusted_peer_is_the_client() {
        assert_eq!(resolve(ip("10.0.0.5"), &[], &trusted()), ip("10.0.0.5"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        assert_eq!(resolve(ip("10.0.0.5"), &["1.1.1.1, garbage, 10.0.0.9"], &trusted()), ip("10.0.0.9"));
    }

    #[test]
    fn an_all_trusted_chain_yields_its_left_most_hop() {
        assert_eq!(resolve(ip("10.0.0.5"), &["10.0.0.7, 10.0.0.8"], &trusted()), ip("10.0.0.7"));
    }
}
