//! Who may change state through an admin API (DNS records, the watchdog's targets).
//!
//! One rule for every role: without a configured token, only loopback peers may call; with a
//! token, every peer (loopback included) must send `Authorization: Bearer <token>`. The rule is a
//! pure function of the token, the peer and the header value, so each HTTP crate maps the
//! verdict to its own response and the rule itself is tested once, here.

use std::net::IpAddr;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token is configured and the peer is not on loopback (answer 403).
    NotLoopback,
    /// A token is configured and the request did not carry it (answer 401).
    BadToken,
}

/// Checks one request. `authorization` is the raw `Authorization` header value, if any.
pub fn check(token: Option<&str>, peer: IpAddr, authorization: Option<&str>) -> Result<(), Denied> {
    match token {
        // `to_canonical` turns an IPv4-mapped IPv6 peer (::ffff:127.0.0.1, seen on dual-stack
        // listeners) back into IPv4, so it counts as the loopback it is.
        None if peer.to_canonical().is_loopback() => Ok(()),
        None => Err(Denied::NotLoopback),
        Some(token) if bearer_matches(authorization, token) => Ok(()),
        Some(_) => Err(Denied::BadToken),
    }
}

/// Whether the header is `Bearer <token>` (scheme case-insensitive, as RFC 9110 says).
fn bearer_matches(authorization: Option<&str>, token: &str) -> bool {
    let Some((scheme, given)) = authorization.and_then(|v| v.trim().split_once(' ')) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && constant_time_eq(given.trim().as_bytes(), token.as_bytes())
}

/// Compares without stopping at the first differing byte, so response timing does not tell a
/// guesser how much of the token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn without_a_token_only_loopback_peers_are_allowed() {
        assert_eq!(check(None, ip("127.0.0.1"), None), Ok(()));
        assert_eq!(check(None, ip("127.45.0.3"), None), Ok(()));
        assert_eq!(check(None, ip("::1"), None), Ok(()));
        assert_eq!(check(None, ip("::ffff:127.0.0.1"), None), Ok(()));
        assert_eq!(check(None, ip("10.0.0.5"), None), Err(Denied::NotLoopback));
        assert_eq!(
            check(None, ip("::ffff:10.0.0.5"), None),
            Err(Denied::NotLoopback)
        );
    }

    #[test]
    fn with_a_token_every_peer_needs_the_bearer_token() {
        let t = Some("s3cret");
        assert_eq!(check(t, ip("10.0.0.5"), Some("Bearer s3cret")), Ok(()));
        assert_eq!(check(t, ip("127.0.0.1"), Some("bearer s3cret")), Ok(()));
        assert_eq!(check(t, ip("127.0.0.1"), None), Err(Denied::BadToken));
        assert_eq!(
            check(t, ip("127.0.0.1"), Some("Bearer s3cre")),
            Err(Denied::BadToken)
        );
        assert_eq!(
            check(t, ip("127.0.0.1"), Some("Basic s3cret")),
            Err(Denied::BadToken)
        );
        assert_eq!(
            check(t, ip("127.0.0.1"), Some("s3cret")),
            Err(Denied::BadToken)
        );
    }
}
