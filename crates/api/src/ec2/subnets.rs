//! Subnets: CreateSubnet, DescribeSubnets, DeleteSubnet. A subnet's `lamina:interface` tag
//! (set here through `TagSpecification`, or later with CreateTags) names the host interface its
//! network is reached through.

use axum::response::Response;
use lamina_model::Ipv4Cidr;
use lamina_store::Ec2Error as Refused;
use lamina_store::ec2::{ResourceKind, Subnet};

use super::Ctx;
use super::vpcs::cidr_param;
use super::wire::{
    Ec2Error, Ec2Result, filters, flag, passes, set, tag_set, tag_specifications, wanted,
};
use crate::xml::{Xml, leaf};

/// The prefix lengths EC2 allows for a subnet's block.
const SUBNET_PREFIXES: std::ops::RangeInclusive<u8> = 16..=28;

/// Addresses AWS reserves in every subnet (network, router, DNS, future, broadcast).
const RESERVED_ADDRESSES: u64 = 5;

fn subnet_xml(ctx: &Ctx<'_>, s: &Subnet) -> Vec<Xml> {
    let available = Ipv4Cidr::parse(&s.cidr)
        .map(|c| c.size().saturating_sub(RESERVED_ADDRESSES))
        .unwrap_or(0);
    vec![
        leaf("subnetId", s.id.as_str()),
        leaf("subnetArn", ctx.arn("subnet", &s.id)),
        leaf("state", "available"),
        leaf("vpcId", s.vpc_id.as_str()),
        leaf("cidrBlock", s.cidr.as_str()),
        set("ipv6CidrBlockAssociationSet", []),
        leaf("availableIpAddressCount", available.to_string()),
        leaf("availabilityZone", s.availability_zone.as_str()),
        flag("defaultForAz", false),
        flag("mapPublicIpOnLaunch", false),
        flag("assignIpv6AddressOnCreation", false),
        flag("ipv6Native", false),
        leaf("ownerId", ctx.caller.account.as_str()),
        tag_set(&s.tags),
    ]
}

/// The availability zone of a new subnet: `<region>a` unless one of the region's zones is
/// named.
fn zone(ctx: &Ctx<'_>) -> Ec2Result<String> {
    let region = ctx.caller.region.as_str();
    let Some(asked) = ctx.params.get("AvailabilityZone") else {
        return Ok(format!("{region}a"));
    };
    match asked.strip_prefix(region) {
        Some(z) if z.len() == 1 && ('a'..='f').contains(&z.chars().next().unwrap_or(' ')) => {
            Ok(asked.to_owned())
        }
        _ => Err(Ec2Error::invalid(format!(
            "Value ({asked}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {region}a, {region}b, {region}c, {region}d, {region}e, {region}f."
        ))),
    }
}

/// `CreateSubnet`: a block (/16 to /28) within its VPC's, overlapping none of its siblings.
pub(super) async fn create(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let vpc = ctx.params.required("VpcId")?.to_owned();
    let cidr = cidr_param(ctx.params.required("CidrBlock")?)?;
    if !SUBNET_PREFIXES.contains(&cidr.prefix()) {
        return Err(Ec2Error::new(
            "InvalidSubnet.Range",
            format!("The CIDR '{cidr}' is invalid."),
        ));
    }
    let zone = zone(ctx)?;
    let tags = tag_specifications(ctx.params, ResourceKind::Subnet)?;
    ctx.may_bind(&tags)?;
    let subnet = ctx
        .store(move |s, c| s.create_subnet(&c.account, &c.region, &vpc, cidr, &zone, &tags))
        .await?;
    tracing::info!(subnet = %subnet.id, vpc = %subnet.vpc_id, "created subnet");
    ctx.respond(vec![Xml::Node("subnet", subnet_xml(ctx, &subnet))])
}

/// `DescribeSubnets`: by `SubnetId.N` and `Filter.N`.
pub(super) async fn describe(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let filters = filters(ctx.params)?;
    let all = ctx.store(|s, c| s.subnets(&c.account, &c.region)).await?;
    let ids = wanted(
        ctx.params,
        "SubnetId",
        |id| all.iter().any(|s| s.id == id),
        Refused::NoSubnet,
    )?;
    let owner = ctx.caller.account.to_string();
    let mut items = Vec::new();
    for s in &all {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&s.id)) {
            continue;
        }
        let field = |name: &str| {
            Some(match name {
                "vpc-id" => vec![s.vpc_id.clone()],
                "subnet-id" => vec![s.id.clone()],
                "cidr" | "cidr-block" | "cidrBlock" => vec![s.cidr.clone()],
                "availability-zone" | "availabilityZone" => vec![s.availability_zone.clone()],
                "state" => vec!["available".into()],
                "default-for-az" | "defaultForAz" => vec!["false".into()],
                "owner-id" => vec![owner.clone()],
                _ => return None,
            })
        };
        if passes(&filters, &s.tags, field)? {
            items.push(subnet_xml(ctx, s));
        }
    }
    ctx.respond(vec![set("subnetSet", items)])
}

/// `DeleteSubnet`: refused while an available NAT gateway or a function uses it.
pub(super) async fn delete(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let id = ctx.params.required("SubnetId")?.to_owned();
    let subnet = id.clone();
    ctx.store(move |s, c| s.delete_subnet(&c.account, &c.region, &subnet))
        .await?;
    tracing::info!(subnet = %id, "deleted subnet");
    ctx.respond(vec![flag("return", true)])
}
