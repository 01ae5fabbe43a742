//! NAT gateways: CreateNatGateway, DescribeNatGateways, DeleteNatGateway. An available public
//! NAT gateway lets the VPC's functions reach the internet; a deleted one stays visible with
//! state `deleted`, as on AWS.

use axum::response::Response;
use lamina_model::iso8601_millis;
use lamina_store::Ec2Error as Refused;
use lamina_store::ec2::{NatGateway, ResourceKind};

use super::Ctx;
use super::wire::{Ec2Error, Ec2Result, filters, passes, set, tag_set, tag_specifications, wanted};
use crate::xml::{Xml, leaf};

fn nat_xml(n: &NatGateway) -> Vec<Xml> {
    let mut out = vec![
        leaf("natGatewayId", n.id.as_str()),
        leaf("subnetId", n.subnet_id.as_str()),
        leaf("vpcId", n.vpc_id.as_str()),
        leaf("state", n.state.as_str()),
        leaf("connectivityType", n.connectivity.as_str()),
        leaf("createTime", iso8601_millis(n.created_ms)),
    ];
    if let Some(ms) = n.deleted_ms {
        out.push(leaf("deleteTime", iso8601_millis(ms)));
    }
    out.push(set("natGatewayAddressSet", []));
    out.push(tag_set(&n.tags));
    out
}

/// `CreateNatGateway`: available at once (no elastic IP is needed or used).
pub(super) async fn create(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let subnet = ctx.params.required("SubnetId")?.to_owned();
    let connectivity = ctx
        .params
        .get("ConnectivityType")
        .unwrap_or("public")
        .to_owned();
    if !matches!(connectivity.as_str(), "public" | "private") {
        return Err(Ec2Error::invalid(format!(
            "Value ({connectivity}) for parameter ConnectivityType is invalid. Valid values are public and private."
        )));
    }
    let tags = tag_specifications(ctx.params, ResourceKind::NatGateway)?;
    let nat = ctx
        .store(move |s, c| {
            s.create_nat_gateway(&c.account, &c.region, &subnet, &connectivity, &tags)
        })
        .await?;
    tracing::info!(nat = %nat.id, vpc = %nat.vpc_id, "created NAT gateway");
    ctx.network_changed();
    let mut out = Vec::new();
    if let Some(token) = ctx.params.get("ClientToken") {
        out.push(leaf("clientToken", token));
    }
    out.push(Xml::Node("natGateway", nat_xml(&nat)));
    ctx.respond(out)
}

/// `DescribeNatGateways`: by `NatGatewayId.N` and `Filter.N`.
pub(super) async fn describe(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let filters = filters(ctx.params)?;
    let all = ctx
        .store(|s, c| s.nat_gateways(&c.account, &c.region))
        .await?;
    let ids = wanted(
        ctx.params,
        "NatGatewayId",
        |id| all.iter().any(|n| n.id == id),
        Refused::NoNatGateway,
    )?;
    let mut items = Vec::new();
    for n in &all {
        if ids.as_ref().is_some_and(|ids| !ids.contains(&n.id)) {
            continue;
        }
        let field = |name: &str| {
            Some(match name {
                "nat-gateway-id" => vec![n.id.clone()],
                "subnet-id" => vec![n.subnet_id.clone()],
                "vpc-id" => vec![n.vpc_id.clone()],
                "state" => vec![n.state.clone()],
                _ => return None,
            })
        };
        if passes(&filters, &n.tags, field)? {
            items.push(nat_xml(n));
        }
    }
    ctx.respond(vec![set("natGatewaySet", items)])
}

/// `DeleteNatGateway`: the VPC's functions lose the internet (unless another remains).
pub(super) async fn delete(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let id = ctx.params.required("NatGatewayId")?.to_owned();
    let nat = id.clone();
    ctx.store(move |s, c| s.delete_nat_gateway(&c.account, &c.region, &nat))
        .await?;
    tracing::info!(nat = %id, "deleted NAT gateway");
    ctx.network_changed();
    ctx.respond(vec![leaf("natGatewayId", id)])
}
