//! Where SNS may send HTTP deliveries: never to a denied network (by default the link-local
//! ranges, where cloud hosts keep their metadata services). The check is made on every address
//! a name resolves to, at connection time (so a name that re-resolves to a denied address is
//! caught too), and on addresses written literally in the URL.

use std::net::IpAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Networks SNS deliveries may not reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deny(Vec<(IpAddr, u8)>);

impl Deny {
    /// The default: IPv4 and IPv6 link-local.
    pub fn link_local() -> Self {
        Self::parse(&["169.254.0.0/16".into(), "fe80::/10".into()]).unwrap_or(Self(Vec::new()))
    }

    /// Networks in CIDR form (`10.0.0.0/8`, `fd00::/8`).
    pub fn parse(list: &[String]) -> Result<Self, String> {
        list.iter()
            .map(|c| super::filter::parse_cidr(c).map_err(|e| format!("'{c}': {e}")))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` is in a denied network (IPv4-mapped and NAT64 IPv6 addresses count as the
    /// IPv4 address they carry). `0.0.0.0/8` and `::` are always denied: connecting to them
    /// reaches this host.
    pub fn denies(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => match v6.segments() {
                [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
                    IpAddr::V4(std::net::Ipv4Addr::from((hi as u32) << 16 | lo as u32))
                }
                _ => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            },
            v4 => v4,
        };
        let unspecified = match ip {
            IpAddr::V4(v4) => v4.octets()[0] == 0,
            IpAddr::V6(v6) => v6.is_unspecified(),
        };
        unspecified
            || self
                .0
                .iter()
                .any(|(net, bits)| super::filter::in_network(*net, *bits, ip))
    }

    /// Whether a URL names a denied address literally.
    pub fn denies_url(&self, url: &str) -> bool {
        reqwest::Url::parse(url).is_ok_and(|u| {
            u.host_str()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|h| h.parse::<IpAddr>().ok())
                .is_some_and(|ip| self.denies(ip))
        })
    }
}

/// Resolves names, keeping only addresses that are not denied.
struct Resolver(Arc<Deny>);

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let deny = self.0.clone();
        Box::pin(async move {
            let allowed: Vec<_> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !deny.denies(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to no address SNS may deliver to").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client of deliveries: a timeout, no redirects, SNS's user agent, and the deny list.
pub fn client(timeout: std::time::Duration, deny: Arc<Deny>) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Amazon Simple Notification Service Agent")
        // A proxy from the environment would reach what the deny list keeps out.
        .no_proxy()
        .dns_resolver(Arc::new(Resolver(deny)))
        .build()
        .map_err(|e| format!("cannot make the SNS HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_mapped_addresses_are_denied() {
        let d = Deny::link_local();
        assert!(d.denies("169.254.169.254".parse().unwrap()));
        assert!(d.denies("::ffff:169.254.169.254".parse().unwrap()));
        assert!(d.denies("fe80::1".parse().unwrap()));
        assert!(!d.denies("127.0.0.1".parse().unwrap()));
        assert!(d.denies_url("http://169.254.169.254/latest/meta-data"));
        assert!(d.denies_url("http://[fe80::1]:80/"));
        assert!(!d.denies_url("http://example.com/"));
        assert!(Deny::parse(&["10.0.0.0/33".into()]).is_err());
        // NAT64 carries an IPv4 address; unspecified addresses reach this host.
        assert!(d.denies("64:ff9b::a9fe:a9fe".parse().unwrap()));
        assert!(!d.denies("64:ff9b::808:808".parse().unwrap()));
        assert!(d.denies("0.0.0.0".parse().unwrap()));
        assert!(d.denies("0.1.2.3".parse().unwrap()));
        assert!(d.denies("::".parse().unwrap()));
        assert!(d.denies_url("http://0.0.0.0:8080/"));
        assert!(Deny::parse(&[]).unwrap().denies("0.0.0.0".parse().unwrap()));
    }
}
