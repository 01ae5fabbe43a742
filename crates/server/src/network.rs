//! `[network]` in the configuration file (with the VPC objects it declares, [`objects`]), and
//! the store-backed resolution of functions' VPC attachments into what `lamina-net` enforces.

pub mod objects;

use std::sync::Arc;

use lamina_model::vpc::{EgressRule, InterfacePermits, VpcConfig};
use lamina_model::{AccountId, Region};
use lamina_net::{Egress, Protocol, SecurityGroup, VpcProfile};
use lamina_runtime_api::{VpcAttachment, VpcResolver};
use lamina_store::Store;
use serde::Deserialize;

/// `[network]` in the configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// Functions reach the internet (and, in a VPC, its networks). Off: loopback only.
    pub egress: bool,
    /// Environments' addresses, a /31 each (between a /15 and a /29). Pick a range no network
    /// of this host or of its VPCs uses.
    pub pool: String,
    /// Network namespaces kept ready, so that a cold start pays nothing for its network.
    pub spare: usize,
    /// Connections one environment may have tracked at once (at least 64).
    pub connections: u32,
    /// VPCs, subnets, security groups and NAT gateways, as EC2's API makes them, applied to the
    /// store at start.
    pub vpcs: Vec<objects::VpcEntry>,
    pub subnets: Vec<objects::SubnetEntry>,
    pub security_groups: Vec<objects::GroupEntry>,
    pub nat_gateways: Vec<objects::NatEntry>,
    /// Host interfaces that subnets made through the EC2 API may name in `lamina:interface`,
    /// and the accounts that may (`"*"`: every account). A declared subnet is bound to the
    /// interface it names without a grant.
    pub interfaces: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for NetworkSection {
    fn default() -> Self {
        Self {
            egress: true,
            pool: "10.254.0.0/16".into(),
            spare: 4,
            connections: lamina_net::DEFAULT_CONNECTIONS,
            vpcs: Vec::new(),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            nat_gateways: Vec::new(),
            interfaces: Default::default(),
        }
    }
}

impl NetworkSection {
    /// The validated settings, `None` when egress is off.
    pub fn settings(&self) -> Result<Option<lamina_net::NetConfig>, String> {
        if !self.egress {
            return Ok(None);
        }
        let pool: ipnet::Ipv4Net = self
            .pool
            .parse()
            .map_err(|_| format!("'{}' is not an IPv4 network (a.b.c.d/n)", self.pool))?;
        if pool.network() != pool.addr() {
            return Err(format!("'{}' has host bits set", self.pool));
        }
        if self.connections < 64 {
            return Err(format!(
                "network.connections {} is too few for a function to work (at least 64)",
                self.connections
            ));
        }
        let config = lamina_net::NetConfig {
            pool,
            spare: self.spare.min(256),
            resolvers: Vec::new(),
            connections: self.connections,
        };
        config.check()?;
        Ok(Some(config))
    }
}

/// What accounts may bind subnets made through the API to: `network.interfaces`.
pub fn interface_permits(
    interfaces: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<InterfacePermits, String> {
    let mut permits = InterfacePermits::default();
    for (interface, accounts) in interfaces {
        if !lamina_api::ec2::wire::interface_name(interface) {
            return Err(format!(
                "'{interface}' is not a host interface name (1 to 15 characters, none of them '/', ':', '*', '\\' or white space, not starting with '@')"
            ));
        }
        for account in accounts {
            if account != "*" {
                AccountId::parse(account).map_err(|e| format!("{interface}: {}", e.message))?;
            }
            permits.allow(interface, account);
        }
    }
    Ok(permits)
}

/// Resolves VPC attachments with the store's VPCs, subnets, security groups and NAT gateways;
/// a subnet counts as bound to its interface only where `permits` lets its account bind it.
pub struct StoreVpcs {
    pub store: Arc<Store>,
    pub permits: Arc<InterfacePermits>,
}

impl VpcResolver for StoreVpcs {
    fn resolve(
        &self,
        account: &str,
        region: &str,
        vpc: &VpcAttachment,
    ) -> Result<(VpcProfile, Vec<SecurityGroup>), String> {
        let account = AccountId::parse(account).map_err(|e| e.message)?;
        let region = Region::parse(region).map_err(|e| e.message)?;
        let access = self
            .store
            .vpc_access(
                &account,
                &region,
                &VpcConfig {
                    subnet_ids: vpc.subnet_ids.clone(),
                    security_group_ids: vpc.security_group_ids.clone(),
                    ipv6_allowed_for_dual_stack: false,
                },
            )
            .map_err(|e| e.to_string())?;
        let net = |c: &str| {
            c.parse::<ipnet::Ipv4Net>()
                .map_err(|_| format!("stored CIDR '{c}' is not valid"))
        };
        // The VPC's networks are reached only through its subnets' interfaces when one names
        // an interface its account was given (or is declared in the configuration file);
        // otherwise through the host's routes, and then none of its private networks (see
        // `lamina_net::rules::profile`).
        let mut interfaces = Vec::new();
        for s in &access.subnets {
            match &s.interface {
                Some(i) if !s.declared && !self.permits.allows(account.as_str(), i) => {
                    tracing::warn!(
                        subnet = %s.id,
                        interface = %i,
                        account = %account,
                        "the subnet names a host interface its account was not given (network.interfaces); it is not bound to it"
                    )
                }
                Some(i) if !interfaces.contains(i) => interfaces.push(i.clone()),
                _ => {}
            }
        }
        // Groups and interfaces in one order: a packet any group accepts passes, so their
        // order makes no other profile.
        interfaces.sort();
        let mut security_groups = access.security_group_ids.clone();
        security_groups.sort();
        security_groups.dedup();
        let profile = VpcProfile {
            account: account.to_string(),
            vpc_id: access.vpc_id.clone(),
            cidrs: access
                .cidrs
                .iter()
                .map(|c| net(c))
                .collect::<Result<_, _>>()?,
            interfaces,
            security_groups,
            nat: access.nat,
        };
        let mut groups = Vec::new();
        for id in &access.security_group_ids {
            let rules = self
                .store
                .security_group_rules(&account, &region, id)
                .map_err(|e| e.to_string())?;
            let mut egress = Vec::new();
            for r in &rules.egress {
                let Some((protocol, ports)) = permission(r) else {
                    continue;
                };
                for c in &r.cidrs {
                    egress.push(Egress {
                        protocol,
                        ports,
                        cidr: net(c)?,
                    });
                }
            }
            groups.push(SecurityGroup {
                id: id.clone(),
                egress,
            });
        }
        Ok((profile, groups))
    }
}

/// An EC2 permission as the firewall matches it; `None` for protocols it cannot express (they
/// allow nothing).
fn permission(r: &EgressRule) -> Option<(Protocol, Option<(u16, u16)>)> {
    let protocol = match r.protocol.as_str() {
        "-1" | "all" => Protocol::All,
        "tcp" | "6" => Protocol::Tcp,
        "udp" | "17" => Protocol::Udp,
        "icmp" | "1" => Protocol::Icmp,
        _ => return None,
    };
    let ports = match (protocol, r.from_port, r.to_port) {
        (Protocol::Tcp | Protocol::Udp, Some(from), Some(to)) if from <= to => {
            { (from, to) != (0, 65535) }.then_some((from, to))
        }
        // ICMP: a type, and a code (any, when none).
        (Protocol::Icmp, Some(kind), code) => Some((kind, code.unwrap_or(u16::MAX))),
        _ => None,
    };
    Some((protocol, ports))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_map_to_firewall_matches() {
        let rule = |p: &str, from, to| EgressRule {
            protocol: p.into(),
            from_port: from,
            to_port: to,
            cidrs: vec![],
        };
        assert_eq!(
            permission(&rule("tcp", Some(5432), Some(5432))),
            Some((Protocol::Tcp, Some((5432, 5432))))
        );
        assert_eq!(
            permission(&rule("udp", Some(0), Some(65535))),
            Some((Protocol::Udp, None))
        );
        assert_eq!(
            permission(&rule("-1", None, None)),
            Some((Protocol::All, None))
        );
        assert_eq!(permission(&rule("50", None, None)), None);
        // ICMP: echo requests only, or a type with any code, or every ICMP message.
        assert_eq!(
            permission(&rule("icmp", Some(8), Some(0))),
            Some((Protocol::Icmp, Some((8, 0))))
        );
        assert_eq!(
            permission(&rule("icmp", Some(3), None)),
            Some((Protocol::Icmp, Some((3, u16::MAX))))
        );
        assert_eq!(
            permission(&rule("icmp", None, None)),
            Some((Protocol::Icmp, None))
        );
    }

    #[test]
    fn the_pool_is_checked() {
        let s = |pool: &str| NetworkSection {
            pool: pool.into(),
            ..Default::default()
        };
        assert!(s("10.254.0.0/16").settings().unwrap().is_some());
        assert!(s("10.254.0.1/16").settings().is_err());
        assert!(s("10.0.0.0/8").settings().is_err());
        assert!(s("nonsense").settings().is_err());
        let off = NetworkSection {
            egress: false,
            ..Default::default()
        };
        assert!(off.settings().unwrap().is_none());
    }

    #[test]
    fn interfaces_are_granted_per_account() {
        let config: toml::Value = toml::from_str(
            r#"
            br-db = ["111111111111"]
            corp0 = ["*"]
            "#,
        )
        .unwrap();
        let interfaces: std::collections::BTreeMap<String, Vec<String>> =
            config.try_into().unwrap();
        let p = interface_permits(&interfaces).unwrap();
        assert!(p.allows("111111111111", "br-db"));
        assert!(!p.allows("222222222222", "br-db"));
        assert!(p.allows("222222222222", "corp0"));
        assert!(!p.allows("111111111111", "eth0"));
        let bad = |k: &str, v: &str| {
            let m = std::collections::BTreeMap::from([(k.to_owned(), vec![v.to_owned()])]);
            interface_permits(&m).is_err()
        };
        assert!(bad("a/b", "*"));
        assert!(bad("br-*", "*"));
        assert!(bad("br-db", "12"));
    }
}
