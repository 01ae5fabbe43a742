//! VPCs: CreateVpc, DescribeVpcs, DeleteVpc; and DescribeAccountAttributes, which tools ask
//! before they look at VPCs.

use axum::response::Response;
use lamina_model::Ipv4Cidr;
use lamina_store::Ec2Error as Refused;
use lamina_store::ec2::{ResourceKind, Vpc};

use super::Ctx;
use super::wire::{
    Ec2Error, Ec2Result, filters, flag, passes, set, tag_set, tag_specifications, wanted,
};
use crate::xml::{Xml, leaf};

/// The prefix lengths EC2 allows for a VPC's block.
const VPC_PREFIXES: std::ops::RangeInclusive<u8> = 16..=28;

/// A CIDR block parameter (`cidrBlock` in EC2's messages), strictly parsed.
pub(super) fn cidr_param(value: &str) -> Ec2Result<Ipv4Cidr> {
    Ipv4Cidr::parse(value).ok_or_else(|| {
        Ec2Error::invalid(format!(
            "Value ({value}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        ))
    })
}

fn vpc_xml(ctx: &Ctx<'_>, v: &Vpc) -> Vec<Xml> {
    let suffix = v.id.trim_start_matches("vpc-");
    vec![
        leaf("vpcId", v.id.as_str()),
        leaf("ownerId", ctx.caller.account.as_str()),
        leaf("state", "available"),
        leaf("cidrBlock", v.cidr.as_str()),
        set(
            "cidrBlockAssociationSet",
            [vec![
                leaf("associationId", format!("vpc-cidr-assoc-{suffix}")),
                leaf("cidrBlock", v.cidr.as_str()),
                Xml::Node("cidrBlockState", vec![leaf("state", "associated")]),
            ]],
        ),
        leaf("dhcpOptionsId", "default"),
        leaf("instanceTenancy", "default"),
        flag("isDefault", false),
        tag_set(&v.tags),
    ]
}

/// `CreateVpc`: a VPC with one IPv4 block (/16 to /28) and its `default` security group.
pub(super) async fn create(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let raw = ctx.params.get("CidrBlock").ok_or_else(|| {
        Ec2Error::new(
            "MissingParameter",
            "Either 'cidrBlock' or 'ipv4IpamPoolId' should be provided.",
        )
    })?;
    let cidr = cidr_param(raw)?;
    if !VPC_PREFIXES.contains(&cidr.prefix()) {
        return Err(Ec2Error::new(
            "InvalidVpc.Range",
            format!("The CIDR '{cidr}' is invalid."),
        ));
    }
    let tags = tag_specifications(ctx.params, ResourceKind::Vpc)?;
    let vpc = ctx
        .store(move |s, c| s.create_vpc(&c.account, &c.region, cidr, &tags))
        .await?;
    tracing::info!(vpc = %vpc.id, account = %ctx.caller.account, "created VPC");
    ctx.respond(vec![Xml::Node("vpc", vpc_xml(ctx, &vpc))])
}

/// `DescribeVpcs`: by `VpcId.N` and `Filter.N`.
pub(super) async fn describe(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let filters = filters(ctx.params)?;
    let all = ctx.store(|s, c| s.vpcs(&c.account, &c.region)).await?;
    let ids = wanted(
        ctx.params,
        "VpcId",
        |id| all.iter().any(|v| v.id == id),
        Refused::NoVpc,
    )?;
    let owner = ctx.caller.account.to_string();
    let mut items = Vec::new();
    for v in &all {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&v.id)) {
            continue;
        }
        let field = |name: &str| {
            Some(match name {
                "vpc-id" => vec![v.id.clone()],
                "cidr" | "cidr-block" | "cidr-block-association.cidr-block" => {
                    vec![v.cidr.clone()]
                }
                "state" => vec!["available".into()],
                "is-default" => vec!["false".into()],
                "owner-id" => vec![owner.clone()],
                _ => return None,
            })
        };
        if passes(&filters, &v.tags, field)? {
            items.push(vpc_xml(ctx, v));
        }
    }
    ctx.respond(vec![set("vpcSet", items)])
}

/// `DeleteVpc`: refused while subnets or security groups other than the default remain.
pub(super) async fn delete(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let id = ctx.params.required("VpcId")?.to_owned();
    let vpc = id.clone();
    ctx.store(move |s, c| s.delete_vpc(&c.account, &c.region, &vpc))
        .await?;
    tracing::info!(vpc = %id, account = %ctx.caller.account, "deleted VPC");
    ctx.respond(vec![flag("return", true)])
}

/// `DescribeAccountAttributes`: this server offers VPCs only, and no default VPC.
pub(super) fn account_attributes(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let asked = ctx.params.strings("AttributeName")?;
    let attributes = [("supported-platforms", "VPC"), ("default-vpc", "none")];
    let items = attributes
        .iter()
        .filter(|(name, _)| asked.is_empty() || asked.iter().any(|a| a == name))
        .map(|(name, value)| {
            vec![
                leaf("attributeName", *name),
                set("attributeValueSet", [vec![leaf("attributeValue", *value)]]),
            ]
        });
    ctx.respond(vec![set("accountAttributeSet", items)])
}
