//! VPCs as functions see them: the `VpcConfig` a user sets on a function, IPv4 CIDR blocks, and
//! the resolved network ([`VpcAccess`], [`SecurityGroupRules`]) the network layer builds a
//! sandbox's egress from.
//!
//! A VPC here is a namespace of subnets and security groups (`images-net-notes.md` §2.3): a
//! subnet is a CIDR reached through a host interface, a security group's egress rules decide
//! what a function may reach, and a NAT gateway in the VPC lets it reach the internet.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::LambdaError;

/// Lambda's limit on `VpcConfig.SubnetIds`.
pub const MAX_SUBNETS: usize = 16;
/// Lambda's limit on `VpcConfig.SecurityGroupIds`.
pub const MAX_SECURITY_GROUPS: usize = 5;

/// A function's `VpcConfig` as its owner set it. Never empty: a function without subnets has
/// no `VpcConfig` at all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VpcConfig {
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    #[serde(default)]
    pub ipv6_allowed_for_dual_stack: bool,
}

impl VpcConfig {
    /// Checks a request's `VpcConfig` the way Lambda's front end does (list lengths first, then
    /// that subnets and groups come together). `Ok(None)` for empty lists: the function leaves
    /// its VPC. Whether the ids exist is the store's question.
    pub fn parse(
        subnet_ids: Vec<String>,
        security_group_ids: Vec<String>,
        ipv6_allowed_for_dual_stack: bool,
    ) -> Result<Option<Self>, LambdaError> {
        for (list, member, max) in [
            (&subnet_ids, "vpcConfig.subnetIds", MAX_SUBNETS),
            (
                &security_group_ids,
                "vpcConfig.securityGroupIds",
                MAX_SECURITY_GROUPS,
            ),
        ] {
            if list.len() > max {
                return Err(LambdaError::validation(
                    format!("[{}]", list.join(", ")),
                    member,
                    &format!("Member must have length less than or equal to {max}"),
                ));
            }
        }
        match (subnet_ids.is_empty(), security_group_ids.is_empty()) {
            (true, true) => Ok(None),
            (false, false) => Ok(Some(Self {
                subnet_ids,
                security_group_ids,
                ipv6_allowed_for_dual_stack,
            })),
            _ => Err(LambdaError::invalid_parameter(
                "SubnetIds and SecurityIds must coexist or be both empty list.",
            )),
        }
    }
}

/// The host interfaces subnets made through the API may be bound to (`lamina:interface`), and
/// by which accounts: the operator's grant (`network.interfaces`). An interface reaches the
/// host's networks behind it, so no account names one it was not given. (A subnet the
/// configuration file declares is bound to the interface it names.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfacePermits {
    /// Interface name to the accounts that may name it; `*` for every account.
    by_interface: std::collections::BTreeMap<String, Vec<String>>,
}

impl InterfacePermits {
    /// Lets `account` (or every account, `*`) bind subnets to `interface`.
    pub fn allow(&mut self, interface: &str, account: &str) {
        let accounts = self.by_interface.entry(interface.to_owned()).or_default();
        if !accounts.iter().any(|a| a == account) {
            accounts.push(account.to_owned());
        }
    }

    /// Whether `account` may bind a subnet to `interface`.
    pub fn allows(&self, account: &str, interface: &str) -> bool {
        self.by_interface
            .get(interface)
            .is_some_and(|a| a.iter().any(|a| a == "*" || a == account))
    }
}

/// The network a VPC function gets, resolved from its `VpcConfig` against the VPC objects of
/// its account and region. The network layer consumes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VpcAccess {
    pub vpc_id: String,
    /// The VPC's IPv4 CIDR blocks.
    pub cidrs: Vec<String>,
    /// The function's subnets, in the order of its `VpcConfig`.
    pub subnets: Vec<SubnetAccess>,
    /// The function's security groups, in the order of its `VpcConfig`.
    pub security_group_ids: Vec<String>,
    /// A NAT gateway in state `available` exists in the VPC: the function may reach the
    /// internet through it.
    pub nat: bool,
}

/// One subnet of a VPC function.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubnetAccess {
    pub id: String,
    /// The subnet's IPv4 CIDR block.
    pub cidr: String,
    /// The host interface the subnet is reached through: the subnet's `lamina:interface` tag.
    pub interface: Option<String>,
    /// Declared in the server's configuration file: its interface is the operator's choice.
    #[serde(default)]
    pub declared: bool,
}

/// One egress rule of a security group: traffic it allows out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EgressRule {
    /// `"-1"` (every protocol), `"tcp"`, `"udp"` or `"icmp"`.
    pub protocol: String,
    /// TCP and UDP: the first port of the range. ICMP: the type (`None`: any). `None` for `-1`.
    pub from_port: Option<u16>,
    /// TCP and UDP: the last port of the range. ICMP: the code (`None`: any). `None` for `-1`.
    pub to_port: Option<u16>,
    /// Destinations, as IPv4 CIDR blocks.
    pub cidrs: Vec<String>,
}

/// A security group's egress rules. No rule allows nothing; the default group (and every new
/// group, until its owner revokes it) allows everything: `-1` to `0.0.0.0/0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecurityGroupRules {
    pub id: String,
    pub egress: Vec<EgressRule>,
}

/// An IPv4 CIDR block in canonical form: the address is the network's own (no host bits set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    network: u32,
    prefix: u8,
}

impl Ipv4Cidr {
    /// Parses `a.b.c.d/n` (n from 0 to 32, no host bits set). `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = s.split_once('/')?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        let network = u32::from(addr.parse::<Ipv4Addr>().ok()?);
        let cidr = Self { network, prefix };
        (network & !cidr.mask() == 0).then_some(cidr)
    }

    /// The prefix length.
    pub fn prefix(self) -> u8 {
        self.prefix
    }

    fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// Whether every address of `other` is in this block.
    pub fn contains(self, other: Ipv4Cidr) -> bool {
        other.prefix >= self.prefix && other.network & self.mask() == self.network
    }

    /// Whether the two blocks share an address.
    pub fn overlaps(self, other: Ipv4Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }

    /// The number of addresses in the block.
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn ids(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}-{i:017x}")).collect()
    }

    #[test]
    fn vpc_config_limits_and_pairing_follow_lambda() {
        assert_eq!(VpcConfig::parse(vec![], vec![], false).unwrap(), None);
        let c = VpcConfig::parse(ids("subnet", 16), ids("sg", 5), true)
            .unwrap()
            .unwrap();
        assert_eq!((c.subnet_ids.len(), c.security_group_ids.len()), (16, 5));
        assert!(c.ipv6_allowed_for_dual_stack);

        let e = VpcConfig::parse(ids("subnet", 17), ids("sg", 1), false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Validation);
        assert!(
            e.message.contains("at 'vpcConfig.subnetIds'")
                && e.message
                    .ends_with("Member must have length less than or equal to 16"),
            "{}",
            e.message
        );
        let e = VpcConfig::parse(ids("subnet", 1), ids("sg", 6), false).unwrap_err();
        assert!(e.message.contains("'vpcConfig.securityGroupIds'"));

        for (s, g) in [(ids("subnet", 1), vec![]), (vec![], ids("sg", 1))] {
            let e = VpcConfig::parse(s, g, false).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidParameterValue);
            assert_eq!(
                e.message,
                "SubnetIds and SecurityIds must coexist or be both empty list."
            );
        }
    }

    #[test]
    fn cidrs_parse_strictly_and_compare_as_blocks() {
        let vpc = Ipv4Cidr::parse("10.1.0.0/16").unwrap();
        assert_eq!(vpc.to_string(), "10.1.0.0/16");
        assert_eq!(vpc.size(), 65_536);
        let sub = Ipv4Cidr::parse("10.1.2.0/24").unwrap();
        assert!(vpc.contains(sub) && !sub.contains(vpc));
        assert!(sub.overlaps(vpc) && vpc.overlaps(sub));
        let other = Ipv4Cidr::parse("10.2.0.0/16").unwrap();
        assert!(!vpc.overlaps(other));
        let all = Ipv4Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(vpc) && all.contains(Ipv4Cidr::parse("1.2.3.4/32").unwrap()));
        for bad in [
            "10.1.0.1/16",
            "10.1.0.0",
            "10.1.0.0/33",
            "10.1.0.0/",
            "10.1.0/16",
            "10.1.0.0/+8",
            "256.0.0.0/8",
            "10.1.0.0/016",
            "::/0",
        ] {
            assert_eq!(Ipv4Cidr::parse(bad), None, "{bad}");
        }
    }
}
