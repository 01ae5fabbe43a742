//! VPCs, subnets, security groups and NAT gateways declared in `[network]`
//! (`[[network.vpcs]]`, `[[network.subnets]]`, `[[network.security_groups]]`,
//! `[[network.nat_gateways]]`): the same objects EC2's API makes, checked here as EC2 checks
//! them (and as a whole: references, overlaps, duplicates), and applied to the store at start
//! ([`apply`]).

use std::collections::{BTreeMap, BTreeSet};

use lamina_model::{AccountId, Ipv4Cidr, Region};
use lamina_store::Store;
use lamina_store::ec2::{
    Applied, ApplyError, Declared, DeclaredGroup, DeclaredNat, DeclaredSubnet, DeclaredVpc,
    ResourceKind, Rule,
};
use serde::Deserialize;

use crate::config::{ConfigError, invalid};

/// The prefix lengths EC2 allows for VPCs' and subnets' blocks.
const PREFIXES: std::ops::RangeInclusive<u8> = 16..=28;
/// The longest group name, group description and rule description.
const MAX_TEXT: usize = 255;
/// The longest part of an id after its prefix, as in EC2's ids.
const MAX_ID_SUFFIX: usize = 17;

/// `[[network.vpcs]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcEntry {
    /// `vpc-` and 1 to 17 lowercase letters and digits.
    pub id: String,
    /// The VPC's IPv4 block, a /16 to a /28.
    pub cidr: String,
    /// The owning account; the server's `account` when omitted.
    pub account: Option<String>,
    /// The region; the server's `region` when omitted.
    pub region: Option<String>,
}

/// `[[network.subnets]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetEntry {
    pub id: String,
    /// The id of a VPC declared in the file.
    pub vpc: String,
    /// A /16 to a /28 within the VPC's block, overlapping none of its other subnets.
    pub cidr: String,
    /// `<region>a` when omitted.
    pub availability_zone: Option<String>,
    /// The host interface the subnet is reached through (its `lamina:interface` tag).
    pub interface: Option<String>,
}

/// `[[network.security_groups]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub id: String,
    pub vpc: String,
    /// Unique in its VPC; not `default`, not `sg-…`.
    pub name: String,
    /// The name when omitted.
    pub description: Option<String>,
    /// What the group lets functions reach; omitted: everything (`-1` to `0.0.0.0/0`), as a
    /// new group on AWS. `[]` allows nothing.
    pub egress: Option<Vec<RuleEntry>>,
}

/// One egress rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    /// `-1` (or `all`), `tcp`, `udp`, `icmp`, or their numbers.
    pub protocol: String,
    /// TCP and UDP: the port range (both needed). ICMP: type and code (-1: any).
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    /// The destination, an IPv4 block.
    pub cidr: String,
    pub description: Option<String>,
}

/// `[[network.nat_gateways]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatEntry {
    pub id: String,
    /// The id of a subnet declared in the file.
    pub subnet: String,
    /// `public` (the default: the VPC's functions reach the internet) or `private`.
    pub connectivity: Option<String>,
}

/// The lists of `[network]`, checked against each other and the server's defaults. `pool` is
/// the environments' address pool when egress is on: no VPC may overlap it.
pub fn check(
    vpcs: &[VpcEntry],
    subnets: &[SubnetEntry],
    groups: &[GroupEntry],
    nats: &[NatEntry],
    (account, region): (&AccountId, &Region),
    pool: Option<ipnet::Ipv4Net>,
) -> Result<Declared, ConfigError> {
    let mut ids = BTreeSet::new();
    let mut unique = |setting: &'static str, id: &str, prefix: &str| {
        let suffix = id.strip_prefix(prefix).and_then(|s| s.strip_prefix('-'));
        if !suffix.is_some_and(|s| {
            (1..=MAX_ID_SUFFIX).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }) {
            return Err(invalid(
                setting,
                format!(
                    "'{id}' is not an id of this kind: '{prefix}-' and 1 to {MAX_ID_SUFFIX} lowercase letters and digits"
                ),
            ));
        }
        if !ids.insert(id.to_owned()) {
            return Err(invalid(setting, format!("'{id}' is declared twice")));
        }
        Ok(())
    };
    let cidr = |setting: &'static str, id: &str, raw: &str| {
        let c = Ipv4Cidr::parse(raw).ok_or_else(|| {
            invalid(
                setting,
                format!("{id}: '{raw}' is not an IPv4 block (a.b.c.d/n, no host bits set)"),
            )
        })?;
        if !PREFIXES.contains(&c.prefix()) {
            return Err(invalid(
                setting,
                format!("{id}: '{raw}' is not a /16 to a /28, as EC2 requires"),
            ));
        }
        Ok(c)
    };

    let mut out = Declared::default();
    for v in vpcs {
        unique("network.vpcs.id", &v.id, "vpc")?;
        let block = cidr("network.vpcs.cidr", &v.id, &v.cidr)?;
        if let Some(pool) = pool
            && Ipv4Cidr::parse(&pool.to_string()).is_some_and(|p| p.overlaps(block))
        {
            return Err(invalid(
                "network.vpcs.cidr",
                format!(
                    "{}: {block} overlaps network.pool ({pool}), the functions' own addresses",
                    v.id
                ),
            ));
        }
        out.vpcs.push(DeclaredVpc {
            id: v.id.clone(),
            account: match &v.account {
                None => account.clone(),
                Some(a) => AccountId::parse(a).map_err(|e| {
                    invalid("network.vpcs.account", format!("{}: {}", v.id, e.message))
                })?,
            },
            region: match &v.region {
                None => region.clone(),
                Some(r) => Region::parse(r).map_err(|e| {
                    invalid("network.vpcs.region", format!("{}: {}", v.id, e.message))
                })?,
            },
            cidr: block,
        });
    }
    let vpc_of = |setting: &'static str, id: &str, vpc: &str| {
        out.vpcs
            .iter()
            .find(|v| v.id == vpc)
            .cloned()
            .ok_or_else(|| {
                invalid(
                    setting,
                    format!("{id}: no [[network.vpcs]] has the id '{vpc}'"),
                )
            })
    };

    let mut subnets_out: Vec<DeclaredSubnet> = Vec::new();
    for s in subnets {
        unique("network.subnets.id", &s.id, "subnet")?;
        let vpc = vpc_of("network.subnets.vpc", &s.id, &s.vpc)?;
        let block = cidr("network.subnets.cidr", &s.id, &s.cidr)?;
        if !vpc.cidr.contains(block) {
            return Err(invalid(
                "network.subnets.cidr",
                format!(
                    "{}: {block} is not within {} of its VPC '{}'",
                    s.id, vpc.cidr, vpc.id
                ),
            ));
        }
        if let Some(other) = subnets_out
            .iter()
            .find(|o| o.vpc == vpc.id && o.cidr.overlaps(block))
        {
            return Err(invalid(
                "network.subnets.cidr",
                format!(
                    "{}: {block} overlaps {} of '{}' in the same VPC",
                    s.id, other.cidr, other.id
                ),
            ));
        }
        let r = vpc.region.as_str();
        let availability_zone = match &s.availability_zone {
            None => format!("{r}a"),
            Some(z)
                if z.strip_prefix(r)
                    .is_some_and(|l| ["a", "b", "c", "d", "e", "f"].contains(&l)) =>
            {
                z.clone()
            }
            Some(z) => {
                return Err(invalid(
                    "network.subnets.availability_zone",
                    format!("{}: '{z}' is not one of {r}a to {r}f", s.id),
                ));
            }
        };
        if let Some(i) = &s.interface
            && !lamina_api::ec2::wire::interface_name(i)
        {
            return Err(invalid(
                "network.subnets.interface",
                format!(
                    "{}: '{i}' is not a host interface name (1 to 15 characters, none of them '/', ':', '*', '\\' or white space, not starting with '@')",
                    s.id
                ),
            ));
        }
        subnets_out.push(DeclaredSubnet {
            id: s.id.clone(),
            vpc: vpc.id.clone(),
            cidr: block,
            availability_zone,
            interface: s.interface.clone(),
        });
    }

    let mut names: BTreeMap<(String, String), String> = BTreeMap::new();
    for g in groups {
        unique("network.security_groups.id", &g.id, "sg")?;
        let vpc = vpc_of("network.security_groups.vpc", &g.id, &g.vpc)?;
        let name = g.name.as_str();
        if name.is_empty()
            || name.chars().count() > MAX_TEXT
            || name == "default"
            || name.to_ascii_lowercase().starts_with("sg-")
        {
            return Err(invalid(
                "network.security_groups.name",
                format!(
                    "{}: '{name}' is not a group name (1 to {MAX_TEXT} characters, not 'default', not 'sg-…')",
                    g.id
                ),
            ));
        }
        if let Some(other) = names.insert((vpc.id.clone(), name.to_owned()), g.id.clone()) {
            return Err(invalid(
                "network.security_groups.name",
                format!("{}: '{other}' of the same VPC is named '{name}' too", g.id),
            ));
        }
        let description = g.description.clone().unwrap_or_else(|| name.to_owned());
        if description.chars().count() > MAX_TEXT {
            return Err(invalid(
                "network.security_groups.description",
                format!("{}: a description has at most {MAX_TEXT} characters", g.id),
            ));
        }
        let egress = match &g.egress {
            None => vec![(
                Rule {
                    protocol: "-1".into(),
                    from_port: None,
                    to_port: None,
                    cidr: "0.0.0.0/0".into(),
                },
                String::new(),
            )],
            Some(rules) => {
                let mut out: Vec<(Rule, String)> = Vec::new();
                for r in rules {
                    let rule = rule(r).map_err(|m| {
                        invalid("network.security_groups.egress", format!("{}: {m}", g.id))
                    })?;
                    if out.iter().any(|(o, _)| *o == rule.0) {
                        return Err(invalid(
                            "network.security_groups.egress",
                            format!("{}: the rule {} is declared twice", g.id, rule.0),
                        ));
                    }
                    out.push(rule);
                }
                out
            }
        };
        out.security_groups.push(DeclaredGroup {
            id: g.id.clone(),
            vpc: vpc.id.clone(),
            name: name.to_owned(),
            description,
            egress,
        });
    }

    for n in nats {
        unique("network.nat_gateways.id", &n.id, "nat")?;
        if !subnets_out.iter().any(|s| s.id == n.subnet) {
            return Err(invalid(
                "network.nat_gateways.subnet",
                format!("{}: no [[network.subnets]] has the id '{}'", n.id, n.subnet),
            ));
        }
        let connectivity = n.connectivity.as_deref().unwrap_or("public");
        if !matches!(connectivity, "public" | "private") {
            return Err(invalid(
                "network.nat_gateways.connectivity",
                format!(
                    "{}: '{connectivity}' is neither 'public' nor 'private'",
                    n.id
                ),
            ));
        }
        out.nat_gateways.push(DeclaredNat {
            id: n.id.clone(),
            subnet: n.subnet.clone(),
            connectivity: connectivity.to_owned(),
        });
    }
    out.subnets = subnets_out;
    Ok(out)
}

/// One egress rule as EC2 keeps it: the protocol normalised to `-1`, `tcp`, `udp` or `icmp`,
/// ports only where they mean something.
fn rule(r: &RuleEntry) -> Result<(Rule, String), String> {
    let protocol = match r.protocol.to_ascii_lowercase().as_str() {
        "-1" | "all" => "-1",
        "tcp" | "6" => "tcp",
        "udp" | "17" => "udp",
        "icmp" | "1" => "icmp",
        _ => {
            return Err(format!(
                "the protocol '{}' is not one of -1 (all), tcp, udp, icmp",
                r.protocol
            ));
        }
    };
    let (from_port, to_port) = match protocol {
        "-1" => (None, None),
        "icmp" => {
            let (t, c) = (r.from_port.unwrap_or(-1), r.to_port.unwrap_or(-1));
            if !(-1..=255).contains(&t) || !(-1..=255).contains(&c) {
                return Err(format!(
                    "ICMP type {t} or code {c} is out of range (-1 or 0 to 255)"
                ));
            }
            if t == -1 && c != -1 {
                return Err(format!(
                    "ICMP code {c} with type -1 (all types): the code is -1 too"
                ));
            }
            (Some(t), Some(c))
        }
        _ => match (r.from_port, r.to_port) {
            (Some(from), Some(to))
                if (0..=65535).contains(&from) && (from..=65535).contains(&to) =>
            {
                (Some(from), Some(to))
            }
            (Some(from), Some(to)) => {
                return Err(format!(
                    "the port range {from}-{to} is not within 0 to 65535, first no greater than last"
                ));
            }
            _ => return Err(format!("a {protocol} rule needs from_port and to_port")),
        },
    };
    let cidr = Ipv4Cidr::parse(&r.cidr).ok_or_else(|| {
        format!(
            "'{}' is not an IPv4 block (a.b.c.d/n, no host bits set)",
            r.cidr
        )
    })?;
    let description = r.description.clone().unwrap_or_default();
    if description.chars().count() > MAX_TEXT {
        return Err(format!(
            "a rule's description has at most {MAX_TEXT} characters"
        ));
    }
    Ok((
        Rule {
            protocol: protocol.to_owned(),
            from_port,
            to_port,
            cidr: cidr.to_string(),
        },
        description,
    ))
}

/// The setting of a kind of object.
fn section(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Vpc => "network.vpcs",
        ResourceKind::Subnet => "network.subnets",
        ResourceKind::SecurityGroup => "network.security_groups",
        ResourceKind::NatGateway => "network.nat_gateways",
    }
}

/// Makes the store hold the declared objects (before anything resolves a VPC from it), and
/// logs what changed. A declared object at odds with the stored one is a configuration error.
pub fn apply(store: &Store, declared: &Declared) -> anyhow::Result<()> {
    let done = match store.apply_declared(declared) {
        Ok(done) => done,
        Err(ApplyError::Conflict { kind, id, message }) => {
            return Err(invalid(section(kind), format!("{id}: {message}")).into());
        }
        Err(ApplyError::Store(e)) => {
            return Err(anyhow::Error::new(e)
                .context("cannot apply the VPCs of the configuration file's [network]"));
        }
    };
    let Applied {
        created,
        updated,
        adopted,
        removed,
        released,
    } = &done;
    if done != Applied::default() {
        tracing::info!(
            created = %created.join(","),
            updated = %updated.join(","),
            adopted = %adopted.join(","),
            removed = %removed.join(","),
            "applied the VPC objects of the configuration file"
        );
    }
    if !released.is_empty() {
        tracing::warn!(
            released = %released.join(","),
            "VPC objects no longer in the configuration file are still in use: kept, and managed through the EC2 API from now on"
        );
    }
    Ok(())
}

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
