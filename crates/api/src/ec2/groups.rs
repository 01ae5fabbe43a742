//! Security groups and their rules: CreateSecurityGroup, DescribeSecurityGroups,
//! DeleteSecurityGroup, Authorize/RevokeSecurityGroupEgress and …Ingress.
//!
//! A rule is a protocol (`-1`, `tcp`, `udp`, `icmp`), a port range (or ICMP type and code) and
//! IPv4 CIDRs; rules naming other groups, IPv6 ranges or prefix lists are refused. Egress rules
//! are what a function may reach, so every change to them tells the network layer.

use axum::response::Response;
use lamina_model::Ipv4Cidr;
use lamina_store::Ec2Error as Refused;
use lamina_store::ec2::{Direction, ResourceKind, Rule, SecurityGroup, StoredRule};

use super::Ctx;
use super::wire::{
    Ec2Error, Ec2Result, filters, flag, passes, set, tag_set, tag_specifications, wanted,
};
use crate::query::Params;
use crate::xml::{Xml, leaf};

/// The longest group name and description.
const MAX_TEXT: usize = 255;

fn direction(egress: bool) -> Direction {
    if egress {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

fn rule_xml(rule: &Rule, cidrs: &[(String, String)]) -> Vec<Xml> {
    let mut out = vec![leaf("ipProtocol", rule.protocol.as_str())];
    if let (Some(from), Some(to)) = (rule.from_port, rule.to_port) {
        out.push(leaf("fromPort", from.to_string()));
        out.push(leaf("toPort", to.to_string()));
    }
    out.push(set("groups", []));
    out.push(set(
        "ipRanges",
        cidrs.iter().map(|(cidr, description)| {
            let mut item = vec![leaf("cidrIp", cidr.as_str())];
            if !description.is_empty() {
                item.push(leaf("description", description.as_str()));
            }
            item
        }),
    ));
    out.push(set("ipv6Ranges", []));
    out.push(set("prefixListIds", []));
    out
}

/// `IpPermissions`: one item per protocol and port range, with its CIDRs, in the order each
/// first appears.
fn permissions_xml(name: &'static str, rules: &[StoredRule]) -> Xml {
    let mut grouped: Vec<(Rule, Vec<(String, String)>)> = Vec::new();
    for r in rules {
        let key = Rule {
            cidr: String::new(),
            ..r.rule.clone()
        };
        let range = (r.rule.cidr.clone(), r.description.clone());
        match grouped.iter_mut().find(|(k, _)| *k == key) {
            Some((_, ranges)) => ranges.push(range),
            None => grouped.push((key, vec![range])),
        }
    }
    set(
        name,
        grouped.iter().map(|(key, ranges)| rule_xml(key, ranges)),
    )
}

fn group_xml(ctx: &Ctx<'_>, g: &SecurityGroup) -> Vec<Xml> {
    vec![
        leaf("ownerId", ctx.caller.account.as_str()),
        leaf("groupId", g.id.as_str()),
        leaf("groupName", g.name.as_str()),
        leaf("groupDescription", g.description.as_str()),
        leaf("vpcId", g.vpc_id.as_str()),
        leaf("securityGroupArn", ctx.arn("security-group", &g.id)),
        permissions_xml("ipPermissions", &g.ingress),
        permissions_xml("ipPermissionsEgress", &g.egress),
        tag_set(&g.tags),
    ]
}

/// `securityGroupRuleSet` items of rules just added or removed.
fn rules_set(
    ctx: &Ctx<'_>,
    name: &'static str,
    group: &str,
    egress: bool,
    rules: &[StoredRule],
) -> Xml {
    set(
        name,
        rules.iter().map(|r| {
            let mut item = vec![
                leaf("securityGroupRuleId", r.id.as_str()),
                leaf("groupId", group),
                leaf("groupOwnerId", ctx.caller.account.as_str()),
                flag("isEgress", egress),
                leaf("ipProtocol", r.rule.protocol.as_str()),
                leaf("fromPort", r.rule.from_port.unwrap_or(-1).to_string()),
                leaf("toPort", r.rule.to_port.unwrap_or(-1).to_string()),
                leaf("cidrIpv4", r.rule.cidr.as_str()),
            ];
            if !r.description.is_empty() {
                item.push(leaf("description", r.description.as_str()));
            }
            item
        }),
    )
}

/// `CreateSecurityGroup`: in a VPC (this server has no default VPC), with the allow-all egress
/// rule.
pub(super) async fn create(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let name = ctx.params.required("GroupName")?.to_owned();
    let description = ctx.params.required("GroupDescription")?.to_owned();
    let Some(vpc) = ctx.params.get("VpcId").map(str::to_owned) else {
        return Err(Ec2Error::new(
            "VPCIdNotSpecified",
            "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.",
        ));
    };
    if name.is_empty() || name.chars().count() > MAX_TEXT {
        return Err(Ec2Error::invalid(format!(
            "Value ({name}) for parameter GroupName is invalid. Group names have 1 to 255 characters."
        )));
    }
    if name.to_ascii_lowercase().starts_with("sg-") {
        return Err(Ec2Error::invalid(
            "Group names may not be in the format sg-*.",
        ));
    }
    if description.chars().count() > MAX_TEXT {
        return Err(Ec2Error::invalid(
            "Value for parameter GroupDescription is invalid. A description has at most 255 characters.",
        ));
    }
    let tags = tag_specifications(ctx.params, ResourceKind::SecurityGroup)?;
    let group = ctx
        .store(move |s, c| {
            s.create_security_group(&c.account, &c.region, &vpc, &name, &description, &tags)
        })
        .await?;
    tracing::info!(group = %group.id, vpc = %group.vpc_id, "created security group");
    ctx.respond(vec![
        flag("return", true),
        leaf("groupId", group.id.as_str()),
        leaf("securityGroupArn", ctx.arn("security-group", &group.id)),
        tag_set(&group.tags),
    ])
}

/// `DescribeSecurityGroups`: by `GroupId.N`, `GroupName.N` and `Filter.N`.
pub(super) async fn describe(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let filters = filters(ctx.params)?;
    let all = ctx
        .store(|s, c| s.security_groups(&c.account, &c.region))
        .await?;
    let ids = wanted(
        ctx.params,
        "GroupId",
        |id| all.iter().any(|g| g.id == id),
        Refused::NoGroup,
    )?;
    let names = wanted(
        ctx.params,
        "GroupName",
        |n| all.iter().any(|g| g.name == n),
        Refused::NoGroup,
    )?;
    let owner = ctx.caller.account.to_string();
    let mut items = Vec::new();
    for g in &all {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&g.id))
            || names.as_ref().is_some_and(|n| !n.contains(&g.name))
        {
            continue;
        }
        let field = |name: &str| {
            Some(match name {
                "vpc-id" => vec![g.vpc_id.clone()],
                "group-id" => vec![g.id.clone()],
                "group-name" => vec![g.name.clone()],
                "description" => vec![g.description.clone()],
                "owner-id" => vec![owner.clone()],
                _ => return None,
            })
        };
        if passes(&filters, &g.tags, field)? {
            items.push(group_xml(ctx, g));
        }
    }
    ctx.respond(vec![set("securityGroupInfo", items)])
}

/// The group an action names: `GroupId`, or a `GroupName` unique in the account and region.
async fn group_of(ctx: &Ctx<'_>) -> Ec2Result<String> {
    if let Some(id) = ctx.params.get("GroupId") {
        return Ok(id.to_owned());
    }
    let name = ctx
        .params
        .get("GroupName")
        .ok_or_else(|| Ec2Error::missing("GroupId"))?
        .to_owned();
    let all = ctx
        .store(|s, c| s.security_groups(&c.account, &c.region))
        .await?;
    let mut named = all.iter().filter(|g| g.name == name);
    match (named.next(), named.next()) {
        (Some(g), None) => Ok(g.id.clone()),
        (Some(_), Some(_)) => Err(Ec2Error::invalid(format!(
            "More than one security group is named '{name}': name the group by GroupId."
        ))),
        (None, _) => Err(Ec2Error::new(
            "InvalidGroup.NotFound",
            format!("The security group '{name}' does not exist"),
        )),
    }
}

/// `DeleteSecurityGroup`: refused for a VPC's default group and for groups a function uses.
pub(super) async fn delete(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let id = group_of(ctx).await?;
    let group = id.clone();
    ctx.store(move |s, c| s.delete_security_group(&c.account, &c.region, &group))
        .await?;
    tracing::info!(group = %id, "deleted security group");
    ctx.respond(vec![flag("return", true), leaf("groupId", id)])
}

/// `Authorize…`: adds every rule of the request, or none.
pub(super) async fn authorize(ctx: &Ctx<'_>, egress: bool) -> Ec2Result<Response> {
    let group = group_of(ctx).await?;
    let rules = permissions(ctx.params)?;
    if rules.is_empty() {
        return Err(Ec2Error::missing("ipPermissions"));
    }
    let g = group.clone();
    let added = ctx
        .store(move |s, c| s.authorize_rules(&c.account, &c.region, &g, direction(egress), &rules))
        .await?;
    if egress {
        ctx.network_changed();
    }
    ctx.respond(vec![
        flag("return", true),
        rules_set(ctx, "securityGroupRuleSet", &group, egress, &added),
    ])
}

/// `Revoke…`: removes every rule the request names (by match or `SecurityGroupRuleId.N`), or
/// none.
pub(super) async fn revoke(ctx: &Ctx<'_>, egress: bool) -> Ec2Result<Response> {
    let group = group_of(ctx).await?;
    let rules: Vec<Rule> = permissions(ctx.params)?
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let ids = ctx.params.strings("SecurityGroupRuleId")?;
    if rules.is_empty() && ids.is_empty() {
        return Err(Ec2Error::missing("ipPermissions"));
    }
    let g = group.clone();
    let removed = ctx
        .store(move |s, c| {
            s.revoke_rules(&c.account, &c.region, &g, direction(egress), &rules, &ids)
        })
        .await?;
    if egress {
        ctx.network_changed();
    }
    ctx.respond(vec![
        flag("return", true),
        rules_set(ctx, "revokedSecurityGroupRuleSet", &group, egress, &removed),
    ])
}

/// The rules of a request, one per CIDR: `IpPermissions.N` and the older top-level
/// `IpProtocol`/`FromPort`/`ToPort`/`CidrIp`.
fn permissions(p: &Params) -> Ec2Result<Vec<(Rule, String)>> {
    let mut out = Vec::new();
    for perm in p.indexed("IpPermissions")? {
        for unsupported in ["Ipv6Ranges", "Groups", "PrefixListIds"] {
            if !perm.indexed(unsupported)?.is_empty() {
                return Err(Ec2Error::invalid(format!(
                    "{unsupported} in IpPermissions are not supported by this server: rules name IPv4 CIDRs (IpRanges)."
                )));
            }
        }
        let ranges = perm.indexed("IpRanges")?;
        if ranges.is_empty() {
            return Err(Ec2Error::missing("ipPermissions.ipRanges"));
        }
        let (protocol, from, to) = match_of(&perm)?;
        for range in ranges {
            let cidr = cidr(
                range
                    .get("CidrIp")
                    .ok_or_else(|| Ec2Error::missing("cidrIp"))?,
            )?;
            let description = range.get("Description").unwrap_or("").to_owned();
            if description.chars().count() > MAX_TEXT {
                return Err(Ec2Error::invalid(
                    "A rule's description has at most 255 characters.",
                ));
            }
            out.push((
                Rule {
                    protocol: protocol.clone(),
                    from_port: from,
                    to_port: to,
                    cidr,
                },
                description,
            ));
        }
    }
    if p.get("IpProtocol").is_some() || p.get("CidrIp").is_some() {
        let (protocol, from, to) = match_of(p)?;
        let cidr = cidr(p.get("CidrIp").ok_or_else(|| Ec2Error::missing("cidrIp"))?)?;
        out.push((
            Rule {
                protocol,
                from_port: from,
                to_port: to,
                cidr,
            },
            String::new(),
        ));
    }
    Ok(out)
}

fn cidr(raw: &str) -> Ec2Result<String> {
    Ipv4Cidr::parse(raw)
        .map(|c| c.to_string())
        .ok_or_else(|| Ec2Error::invalid(format!("CIDR block {raw} is malformed")))
}

/// A rule's protocol (normalised to `-1`, `tcp`, `udp` or `icmp`) and its ports.
fn match_of(p: &Params) -> Ec2Result<(String, Option<i32>, Option<i32>)> {
    let raw = p
        .get("IpProtocol")
        .ok_or_else(|| Ec2Error::missing("ipProtocol"))?;
    let protocol = match raw.to_ascii_lowercase().as_str() {
        "-1" | "all" => "-1",
        "tcp" | "6" => "tcp",
        "udp" | "17" => "udp",
        "icmp" | "1" => "icmp",
        _ => {
            return Err(Ec2Error::invalid(format!(
                "Invalid value '{raw}' for IP protocol. Unknown protocol."
            )));
        }
    };
    let port = |name: &str| -> Ec2Result<Option<i32>> {
        p.get(name)
            .map(|v| {
                v.parse::<i32>()
                    .map_err(|_| Ec2Error::invalid(format!("Invalid value '{v}' for {name}.")))
            })
            .transpose()
    };
    let (from, to) = (port("FromPort")?, port("ToPort")?);
    match protocol {
        "-1" => Ok(("-1".into(), None, None)),
        "icmp" => {
            let (t, c) = (from.unwrap_or(-1), to.unwrap_or(-1));
            if !(-1..=255).contains(&t) || !(-1..=255).contains(&c) {
                return Err(Ec2Error::invalid(format!(
                    "Invalid value '{t}' for ICMP type or '{c}' for ICMP code: each is -1 or 0 to 255."
                )));
            }
            // Any type with one code means nothing (EC2 refuses it too).
            if t == -1 && c != -1 {
                return Err(Ec2Error::invalid(format!(
                    "Invalid value '{c}' for ICMP code: with ICMP type -1 (all types), the code is -1 too."
                )));
            }
            Ok(("icmp".into(), Some(t), Some(c)))
        }
        _ => {
            let (Some(from), Some(to)) = (from, to) else {
                return Err(Ec2Error::invalid(
                    "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange",
                ));
            };
            if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) || from > to {
                return Err(Ec2Error::invalid(format!(
                    "Invalid value '{from}-{to}' for portRange: ports are 0 to 65535, the first no greater than the last."
                )));
            }
            Ok((protocol.to_owned(), Some(from), Some(to)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(raw: &str) -> Params {
        Params::new(crate::query::pairs(raw))
    }

    #[test]
    fn permissions_parse_one_rule_per_cidr_in_both_forms() {
        let p = params(
            "IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=5432&IpPermissions.1.ToPort=5432\
             &IpPermissions.1.IpRanges.1.CidrIp=10.1.2.0%2F24&IpPermissions.1.IpRanges.1.Description=db\
             &IpPermissions.1.IpRanges.2.CidrIp=10.1.3.0%2F24\
             &IpPermissions.2.IpProtocol=-1&IpPermissions.2.FromPort=7&IpPermissions.2.IpRanges.1.CidrIp=0.0.0.0%2F0",
        );
        let rules = permissions(&p).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules[0],
            (
                Rule {
                    protocol: "tcp".into(),
                    from_port: Some(5432),
                    to_port: Some(5432),
                    cidr: "10.1.2.0/24".into(),
                },
                "db".into()
            )
        );
        assert_eq!(rules[1].0.cidr, "10.1.3.0/24");
        // Ports mean nothing for every protocol.
        assert_eq!((rules[2].0.from_port, rules[2].0.to_port), (None, None));

        let old = permissions(&params(
            "IpProtocol=6&FromPort=22&ToPort=22&CidrIp=10.0.0.0%2F8",
        ))
        .unwrap();
        assert_eq!(old[0].0.protocol, "tcp");
        let icmp = permissions(&params("IpProtocol=icmp&CidrIp=10.0.0.0%2F8")).unwrap();
        assert_eq!(
            (icmp[0].0.from_port, icmp[0].0.to_port),
            (Some(-1), Some(-1))
        );
    }

    #[test]
    fn malformed_permissions_are_refused_with_ec2_codes() {
        for (raw, code, needle) in [
            (
                "IpProtocol=gre&CidrIp=10.0.0.0%2F8",
                "InvalidParameterValue",
                "Unknown protocol",
            ),
            (
                "IpProtocol=tcp&FromPort=1&CidrIp=10.0.0.0%2F8",
                "InvalidParameterValue",
                "Must specify both",
            ),
            (
                "IpProtocol=tcp&FromPort=9&ToPort=8&CidrIp=10.0.0.0%2F8",
                "InvalidParameterValue",
                "portRange",
            ),
            (
                "IpProtocol=icmp&FromPort=-1&ToPort=5&CidrIp=10.0.0.0%2F8",
                "InvalidParameterValue",
                "ICMP code",
            ),
            (
                "IpProtocol=tcp&FromPort=1&ToPort=70000&CidrIp=10.0.0.0%2F8",
                "InvalidParameterValue",
                "portRange",
            ),
            (
                "IpProtocol=tcp&FromPort=1&ToPort=2&CidrIp=10.0.0.1%2F8",
                "InvalidParameterValue",
                "malformed",
            ),
            (
                "IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=1&IpPermissions.1.ToPort=1",
                "MissingParameter",
                "ipRanges",
            ),
            (
                "IpPermissions.1.IpProtocol=-1&IpPermissions.1.Ipv6Ranges.1.CidrIpv6=%3A%3A%2F0",
                "InvalidParameterValue",
                "Ipv6Ranges",
            ),
            (
                "IpPermissions.1.IpProtocol=-1&IpPermissions.1.Groups.1.GroupId=sg-1",
                "InvalidParameterValue",
                "Groups",
            ),
        ] {
            let e = permissions(&params(raw)).unwrap_err();
            assert_eq!(e.code, code, "{raw}");
            assert!(e.message.contains(needle), "{raw}: {}", e.message);
        }
    }
}
