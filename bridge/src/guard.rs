//! The destination guard: webhook requests go only to public addresses
//! unless an endpoint sets `allow_private`.
//!
//! The check runs on the addresses a request actually connects to, through a
//! DNS resolver plugged into the HTTP client, so a host name cannot pass the
//! check and then resolve to a private address for the request.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Reason an address may not receive webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restriction {
    /// Never a valid destination: unspecified, multicast or broadcast.
    Never(&'static str),
    /// Allowed only with `allow_private = true`.
    Private(&'static str),
}

/// Classifies `ip`, returning `None` for a public unicast address.
pub fn classify(ip: IpAddr) -> Option<Restriction> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Restriction> {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() {
        Some(Restriction::Never("unspecified"))
    } else if ip.is_broadcast() || ip.is_multicast() {
        Some(Restriction::Never("broadcast or multicast"))
    } else if ip.is_loopback() {
        Some(Restriction::Private("loopback"))
    } else if a == 169 && b == 254 {
        Some(Restriction::Private(
            "link-local (cloud metadata services live here)",
        ))
    } else if ip.is_private() {
        Some(Restriction::Private("private"))
    } else if a == 100 && (64..128).contains(&b) {
        // 100.64.0.0/10, carrier-grade NAT, also hosts some metadata services.
        Some(Restriction::Private("shared address space"))
    } else if a == 0 {
        Some(Restriction::Never("this-network"))
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<Restriction> {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Some(Restriction::Never("unspecified"))
    } else if ip.is_multicast() {
        Some(Restriction::Never("multicast"))
    } else if ip.is_loopback() {
        Some(Restriction::Private("loopback"))
    } else if first & 0xffc0 == 0xfe80 {
        Some(Restriction::Private("link-local"))
    } else if first & 0xfe00 == 0xfc00 {
        Some(Restriction::Private("unique local"))
    } else {
        None
    }
}

/// Checks one address against an endpoint's `allow_private` setting and
/// returns the reason it is rejected.
pub fn check(ip: IpAddr, allow_private: bool) -> Result<(), String> {
    match classify(ip) {
        None => Ok(()),
        Some(Restriction::Private(_)) if allow_private => Ok(()),
        Some(Restriction::Private(kind)) => Err(format!(
            "destination {ip} is a {kind} address: set allow_private = true on the \
             endpoint to deliver there"
        )),
        Some(Restriction::Never(kind)) => Err(format!(
            "destination {ip} is a {kind} address and cannot receive webhooks"
        )),
    }
}

/// A resolver that drops the addresses [`check`] rejects and fails when
/// none is left, so the HTTP client never connects to them.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut last_error = format!("host {host} resolved to no address");
            let mut allowed = Vec::new();
            for addr in resolved {
                match check(addr.ip(), allow_private) {
                    Ok(()) => allowed.push(addr),
                    Err(error) => last_error = format!("host {host}: {error}"),
                }
            }
            if allowed.is_empty() {
                return Err(last_error.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn rejects_private_and_metadata_by_default() {
        for text in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "127.0.0.1",
            "100.100.100.200",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:10.0.0.1",
        ] {
            let error = check(ip(text), false).expect_err(text);
            assert!(error.contains("allow_private"), "{error}");
        }
    }

    #[test]
    fn allow_private_admits_private_ranges() {
        for text in ["10.0.0.1", "169.254.169.254", "127.0.0.1", "::1"] {
            assert_eq!(check(ip(text), true), Ok(()), "{text}");
        }
    }

    #[test]
    fn never_admits_unspecified_or_multicast() {
        for text in ["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "ff02::1"] {
            assert!(check(ip(text), true).is_err(), "{text}");
        }
    }

    #[test]
    fn admits_public_addresses() {
        for text in ["93.184.215.14", "172.32.0.1", "100.128.0.1", "2606:4700::1"] {
            assert_eq!(check(ip(text), false), Ok(()), "{text}");
        }
    }

    #[tokio::test]
    async fn resolver_drops_rejected_addresses() {
        let name: Name = "localhost".parse().unwrap();
        let resolver = GuardedResolver {
            allow_private: false,
        };
        let error = match resolver.resolve(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(error) => error.to_string(),
        };
        assert!(error.contains("loopback"), "{error}");

        let name: Name = "localhost".parse().unwrap();
        let resolver = GuardedResolver {
            allow_private: true,
        };
        assert!(resolver.resolve(name).await.unwrap().next().is_some());
    }
}
