//! Sandbox networking, as `images-net-notes.md` §2.2 designs it.
//!
//! - Each environment gets a network namespace of its own with one routed veth pair: `eth0`
//!   inside with the odd address of a /31 from the pool, `lv<profile><index>` on the host with the
//!   even one, and a default route through it. No bridge, so no shared link layer.
//! - Namespaces are prepared ahead, for the default profile and the VPC profiles used most
//!   recently, by one thread that owns every netlink
//!   socket ([`Network`]); an environment takes a ready one ([`Lease`]) and hands its descriptor
//!   to `sandbox-init`, which joins it. None is reused: when a lease ends its counters are read,
//!   and its pair goes with its namespace once the sandbox is gone.
//! - One nftables table (`inet lamina`, [`rules`]) is created atomically at start, replacing a
//!   leftover, and deleted at shutdown. Starting an environment never writes a rule: a profile's
//!   chains are made once, and its interfaces' names select them.
//! - Every kernel operation goes through [`host::Host`], with a recording fake for unit tests.

mod conntrack;
pub mod dns;
pub mod host;
mod pool;
pub mod rules;

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

pub use pool::{Lease, Network, Traffic};

/// How sandbox networking is set up on this host.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Environments' addresses: one /31 each, the host's end even, the sandbox's odd.
    pub pool: Ipv4Net,
    /// Namespaces kept ready for the default profile (one for each recently used VPC profile).
    pub spare: usize,
    /// DNS resolvers sandboxes may reach on port 53, even on private addresses.
    pub resolvers: Vec<Ipv4Addr>,
    /// Connections one environment may have tracked at once (UDP flows until they expire;
    /// closed TCP connections do not count): more new ones are dropped, so that no function
    /// fills the host's connection-tracking table.
    pub connections: u32,
}

impl NetConfig {
    /// Checks the pool: between /15 and /29, so that an interface's index fits its name.
    pub fn check(&self) -> Result<(), String> {
        let len = self.pool.prefix_len();
        if !(15..=29).contains(&len) {
            return Err(format!(
                "network.pool {} must be between a /15 and a /29",
                self.pool
            ));
        }
        Ok(())
    }

    /// The number of environments the pool can address.
    pub fn capacity(&self) -> u32 {
        1u32 << (31 - self.pool.prefix_len())
    }

    /// The host's and the sandbox's address of pair `index`.
    pub fn pair(&self, index: u32) -> (Ipv4Addr, Ipv4Addr) {
        let base = u32::from(self.pool.network()) + 2 * index;
        (Ipv4Addr::from(base), Ipv4Addr::from(base + 1))
    }
}

/// [`NetConfig::connections`] unless configured: a sixty-fourth of a 24 GiB host's default
/// `nf_conntrack_max`.
pub const DEFAULT_CONNECTIONS: u32 = 4096;

/// Where a VPC-attached function may go (the default profile, 0, is the internet only).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VpcProfile {
    /// The account whose VPC it is: profiles are bounded per account too.
    pub account: String,
    pub vpc_id: String,
    /// The VPC's networks.
    pub cidrs: Vec<Ipv4Net>,
    /// The host interfaces its subnets are bound to; when set, the VPC's networks are reached
    /// only through them.
    pub interfaces: Vec<String>,
    /// Security group ids; their egress rules decide, a packet any of them accepts passes.
    pub security_groups: Vec<String>,
    /// The VPC has a NAT gateway: the internet is reachable (as the groups allow).
    pub nat: bool,
}

/// A security group's egress rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecurityGroup {
    pub id: String,
    pub egress: Vec<Egress>,
}

/// One egress permission: a protocol, an inclusive port range (TCP and UDP) or an ICMP type and
/// code (`u16::MAX`: any code), a destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Egress {
    pub protocol: Protocol,
    pub ports: Option<(u16, u16)>,
    pub cidr: Ipv4Net,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    All,
    Tcp,
    Udp,
    Icmp,
}

/// Whether `name` is of [`interface_name`]'s form (another of the host's interfaces may start
/// with `lv` too, and is never touched).
pub fn is_sandbox_interface(name: &str) -> bool {
    name.strip_prefix(rules::PREFIX)
        .is_some_and(|rest| rest.len() == 8 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The name of a sandbox's host-side interface: `lv`, the profile, the pair's index (hex).
pub fn interface_name(profile: u16, index: u32) -> String {
    format!("{}{index:04x}", rules::profile_prefix(profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_and_names_fit() {
        let c = NetConfig {
            pool: "10.254.0.0/16".parse().unwrap(),
            spare: 2,
            resolvers: vec![],
            connections: DEFAULT_CONNECTIONS,
        };
        assert_eq!(c.capacity(), 32768);
        assert_eq!(
            c.pair(0),
            ("10.254.0.0".parse().unwrap(), "10.254.0.1".parse().unwrap())
        );
        assert_eq!(
            c.pair(32767),
            (
                "10.254.255.254".parse().unwrap(),
                "10.254.255.255".parse().unwrap()
            )
        );
        let name = interface_name(0xffff, 0xffff);
        assert!(name.len() <= 15, "{name}");
        assert_eq!(interface_name(1, 2), "lv00010002");
        let bad = NetConfig {
            pool: "10.0.0.0/8".parse().unwrap(),
            ..c
        };
        assert!(bad.check().is_err());
    }
}
