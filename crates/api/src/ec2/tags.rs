//! Tags: CreateTags, DeleteTags, DescribeTags, on VPCs, subnets, security groups and NAT
//! gateways. A change to a subnet's tags may bind it to another host interface
//! (`lamina:interface`), so it tells the network layer.

use std::collections::BTreeMap;

use axum::response::Response;
use lamina_store::ec2::ResourceKind;

use super::Ctx;
use super::wire::{Ec2Error, Ec2Result, filters, flag, passes, set, tags_at};
use crate::xml::leaf;

/// The resources of `ResourceId.N`, at least one.
fn resources(ctx: &Ctx<'_>) -> Ec2Result<Vec<String>> {
    let ids = ctx.params.strings("ResourceId")?;
    if ids.is_empty() {
        return Err(Ec2Error::missing("resourceIdSet"));
    }
    Ok(ids)
}

fn touches_subnets(ids: &[String]) -> bool {
    ids.iter()
        .any(|id| ResourceKind::of(id) == Some(ResourceKind::Subnet))
}

/// `CreateTags`: adds or replaces tags on every resource named, or on none.
pub(super) async fn create(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let ids = resources(ctx)?;
    let tags = tags_at(ctx.params, "Tag")?;
    if tags.is_empty() {
        return Err(Ec2Error::missing("tagSet"));
    }
    let subnets = touches_subnets(&ids);
    if subnets {
        ctx.may_bind(&tags)?;
    }
    ctx.store(move |s, c| s.change_tags(&c.account, &c.region, &ids, &tags, &[]))
        .await?;
    if subnets {
        ctx.network_changed();
    }
    ctx.respond(vec![flag("return", true)])
}

/// `DeleteTags`: removes keys (only where the value matches, when one is given); without
/// `Tag.N`, every tag.
pub(super) async fn delete(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let ids = resources(ctx)?;
    let mut remove = Vec::new();
    for t in ctx.params.indexed("Tag")? {
        let key = t.required("Key")?.to_owned();
        remove.push((key, t.get("Value").map(str::to_owned)));
    }
    let subnets = touches_subnets(&ids);
    ctx.store(move |s, c| {
        let remove = if remove.is_empty() {
            let all = s.tagged(&c.account, &c.region)?;
            all.iter()
                .filter(|t| ids.contains(&t.id))
                .flat_map(|t| t.tags.keys().map(|k| (k.clone(), None)))
                .collect()
        } else {
            remove
        };
        s.change_tags(&c.account, &c.region, &ids, &BTreeMap::new(), &remove)
    })
    .await?;
    if subnets {
        ctx.network_changed();
    }
    ctx.respond(vec![flag("return", true)])
}

/// `DescribeTags`: every tag of the caller's resources, by `Filter.N` (`resource-id`,
/// `resource-type`, `key`, `value`).
pub(super) async fn describe(ctx: &Ctx<'_>) -> Ec2Result<Response> {
    let filters = filters(ctx.params)?;
    let tagged = ctx.store(|s, c| s.tagged(&c.account, &c.region)).await?;
    let mut items = Vec::new();
    for r in &tagged {
        for (key, value) in &r.tags {
            let field = |name: &str| {
                Some(match name {
                    "resource-id" => vec![r.id.clone()],
                    "resource-type" => vec![r.kind.as_str().to_owned()],
                    "key" => vec![key.clone()],
                    "value" => vec![value.clone()],
                    _ => return None,
                })
            };
            // `tag:<key>` filters read the resource's tags, as on EC2.
            if passes(&filters, &r.tags, field)? {
                items.push(vec![
                    leaf("resourceId", r.id.as_str()),
                    leaf("resourceType", r.kind.as_str()),
                    leaf("key", key.as_str()),
                    leaf("value", value.as_str()),
                ]);
            }
        }
    }
    ctx.respond(vec![set("tagSet", items)])
}
