//! VPC objects declared in the server's configuration file, applied to the store at start.
//!
//! [`Store::apply_declared`] makes the store hold what the file declares, in one transaction:
//! what is missing is created with the declared id, what differs is updated (a subnet's zone
//! and `lamina:interface` tag, a group's name, description and egress rules, a NAT gateway's
//! connectivity and state), and every declared object carries `lamina:source=config`. What
//! cannot change (the account and region of an object, the CIDR of a VPC or subnet, the VPC of
//! a subnet or group, the subnet of a NAT gateway) is refused ([`ApplyError::Conflict`]), as is
//! a declared object that collides with one made through the API (an overlapping subnet, a
//! group name taken). An object with a declared id that was made through the API is adopted.
//!
//! Objects marked as declared that the file no longer declares are removed when nothing uses
//! them (NAT gateways always: they are marked deleted), and otherwise released: their mark is
//! taken away, so that the API manages them from then on. Objects made through the API are
//! left alone.

use std::collections::{BTreeMap, BTreeSet};

use lamina_model::{AccountId, Ipv4Cidr, Region, now_millis};
use rusqlite::{Connection, OptionalExtension, params};

use super::groups::{allow_all, insert_group, insert_rule, rules_of};
use super::{
    Direction, INTERFACE_TAG, ResourceKind, Rule, SOURCE_CONFIG, SOURCE_TAG, from_config,
    function_using, new_id, tags_json, tags_of,
};
use crate::{Store, StoreError};

/// The VPC objects of the configuration file, checked by the server (ids well formed and
/// unique, references resolved within the file, subnets within their VPC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    pub vpcs: Vec<DeclaredVpc>,
    pub subnets: Vec<DeclaredSubnet>,
    pub security_groups: Vec<DeclaredGroup>,
    pub nat_gateways: Vec<DeclaredNat>,
}

/// A declared VPC. Its subnets, groups and NAT gateways are in its account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredVpc {
    pub id: String,
    pub account: AccountId,
    pub region: Region,
    pub cidr: Ipv4Cidr,
}

/// A declared subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredSubnet {
    pub id: String,
    pub vpc: String,
    pub cidr: Ipv4Cidr,
    pub availability_zone: String,
    /// The `lamina:interface` tag: the host interface the subnet is reached through.
    pub interface: Option<String>,
}

/// A declared security group with its egress rules (one per CIDR) and their descriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredGroup {
    pub id: String,
    pub vpc: String,
    pub name: String,
    pub description: String,
    pub egress: Vec<(Rule, String)>,
}

/// A declared NAT gateway, available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredNat {
    pub id: String,
    pub subnet: String,
    /// `public` or `private`.
    pub connectivity: String,
}

/// What [`Store::apply_declared`] did, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    /// Objects made through the API whose ids the file declares, now marked as declared.
    pub adopted: Vec<String>,
    /// Objects no longer declared, deleted.
    pub removed: Vec<String>,
    /// Objects no longer declared but still in use, now managed through the API.
    pub released: Vec<String>,
}

/// Why the declared objects cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A declared object disagrees with the stored one in what cannot change, or collides
    /// with an object made through the API.
    #[error("{id}: {message}")]
    Conflict {
        kind: ResourceKind,
        id: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

type Result<T> = std::result::Result<T, ApplyError>;

fn conflict(kind: ResourceKind, id: &str, message: impl Into<String>) -> ApplyError {
    ApplyError::Conflict {
        kind,
        id: id.to_owned(),
        message: message.into(),
    }
}

/// The columns every stored object has.
struct Head {
    account: String,
    region: String,
    tags: BTreeMap<String, String>,
}

/// Refuses an object stored in another account or region than declared.
fn same_owner(
    kind: ResourceKind,
    id: &str,
    head: &Head,
    (account, region): (&str, &str),
) -> Result<()> {
    if (head.account.as_str(), head.region.as_str()) == (account, region) {
        return Ok(());
    }
    Err(conflict(
        kind,
        id,
        format!(
            "it exists in account {} and region {}, not in {account} and {region}; an object cannot move: give it another id",
            head.account, head.region
        ),
    ))
}

/// Writes an object's tags with the declared mark (and `edit` applied), and notes what that
/// was: nothing, an update, or the adoption of an object made through the API.
fn mark(
    conn: &Connection,
    kind: ResourceKind,
    id: &str,
    mut tags: BTreeMap<String, String>,
    edit: impl FnOnce(&mut BTreeMap<String, String>),
    changed: bool,
    out: &mut Applied,
) -> Result<()> {
    let before = tags.clone();
    let adopted = !from_config(&tags);
    tags.insert(SOURCE_TAG.into(), SOURCE_CONFIG.into());
    edit(&mut tags);
    if tags != before {
        conn.execute(
            &format!("UPDATE {} SET tags = ?2 WHERE id = ?1", kind.table()),
            params![id, tags_json(&tags)?],
        )?;
    }
    if adopted {
        out.adopted.push(id.to_owned());
    } else if changed || tags != before {
        out.updated.push(id.to_owned());
    }
    Ok(())
}

fn config_tags(extra: Option<(&str, &str)>) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([(SOURCE_TAG.to_owned(), SOURCE_CONFIG.to_owned())]);
    if let Some((k, v)) = extra {
        tags.insert(k.to_owned(), v.to_owned());
    }
    tags
}

impl Store {
    /// Makes the store hold the declared objects (see the module's documentation), all or
    /// nothing.
    pub fn apply_declared(&self, declared: &Declared) -> Result<Applied> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut out = Applied::default();
        retire(&tx, declared, &mut out)?;
        for v in &declared.vpcs {
            apply_vpc(&tx, v, &mut out)?;
        }
        let owner_of = |kind: ResourceKind, id: &str, vpc: &str| {
            declared
                .vpcs
                .iter()
                .find(|v| v.id == vpc)
                .map(|v| (v.account.as_str(), v.region.as_str()))
                .ok_or_else(|| conflict(kind, id, format!("its VPC '{vpc}' is not declared")))
        };
        for s in &declared.subnets {
            apply_subnet(
                &tx,
                owner_of(ResourceKind::Subnet, &s.id, &s.vpc)?,
                s,
                &mut out,
            )?;
        }
        for g in &declared.security_groups {
            apply_group(
                &tx,
                owner_of(ResourceKind::SecurityGroup, &g.id, &g.vpc)?,
                g,
                &mut out,
            )?;
        }
        for n in &declared.nat_gateways {
            let kind = ResourceKind::NatGateway;
            let subnet = declared
                .subnets
                .iter()
                .find(|s| s.id == n.subnet)
                .ok_or_else(|| {
                    conflict(
                        kind,
                        &n.id,
                        format!("its subnet '{}' is not declared", n.subnet),
                    )
                })?;
            apply_nat(
                &tx,
                owner_of(kind, &n.id, &subnet.vpc)?,
                &subnet.vpc,
                n,
                &mut out,
            )?;
        }
        tx.commit()?;
        Ok(out)
    }
}

fn apply_vpc(conn: &Connection, v: &DeclaredVpc, out: &mut Applied) -> Result<()> {
    let kind = ResourceKind::Vpc;
    let who = (v.account.as_str(), v.region.as_str());
    let row: Option<(Head, String)> = conn
        .query_row(
            "SELECT account, region, tags, cidr FROM ec2_vpcs WHERE id = ?1",
            params![v.id],
            |r| Ok((head(r)?, r.get(3)?)),
        )
        .optional()?
        .map(parse_head)
        .transpose()?;
    let Some((stored, cidr)) = row else {
        conn.execute(
            "INSERT INTO ec2_vpcs (id, account, region, cidr, tags, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                v.id,
                who.0,
                who.1,
                v.cidr.to_string(),
                tags_json(&config_tags(None))?,
                now_millis()
            ],
        )?;
        insert_group(
            conn,
            who,
            &new_id("sg"),
            &v.id,
            "default",
            "default VPC security group",
            &BTreeMap::new(),
        )?;
        out.created.push(v.id.clone());
        return Ok(());
    };
    same_owner(kind, &v.id, &stored, who)?;
    if cidr != v.cidr.to_string() {
        return Err(conflict(
            kind,
            &v.id,
            format!(
                "the store has it with CIDR {cidr}, the file says {}; a VPC's CIDR cannot change: declare a VPC with another id",
                v.cidr
            ),
        ));
    }
    mark(conn, kind, &v.id, stored.tags, |_| {}, false, out)
}

fn apply_subnet(
    conn: &Connection,
    who: (&str, &str),
    s: &DeclaredSubnet,
    out: &mut Applied,
) -> Result<()> {
    let kind = ResourceKind::Subnet;
    let row: Option<(Head, (String, String, String))> = conn
        .query_row(
            "SELECT account, region, tags, vpc_id, cidr, availability_zone FROM ec2_subnets WHERE id = ?1",
            params![s.id],
            |r| Ok((head(r)?, (r.get(3)?, r.get(4)?, r.get(5)?))),
        )
        .optional()?
        .map(parse_head)
        .transpose()?;
    let interface = s.interface.as_deref().map(|i| (INTERFACE_TAG, i));
    let Some((stored, (vpc, cidr, zone))) = row else {
        let siblings: Vec<(String, String)> = conn
            .prepare_cached("SELECT id, cidr FROM ec2_subnets WHERE vpc_id = ?1")?
            .query_map(params![s.vpc], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<std::result::Result<_, _>>()?;
        if let Some((other, c)) = siblings
            .iter()
            .find(|(_, c)| Ipv4Cidr::parse(c).is_some_and(|c| c.overlaps(s.cidr)))
        {
            return Err(conflict(
                kind,
                &s.id,
                format!(
                    "its CIDR {} overlaps {c} of the subnet '{other}' of the same VPC",
                    s.cidr
                ),
            ));
        }
        conn.execute(
            "INSERT INTO ec2_subnets (id, account, region, vpc_id, cidr, availability_zone, tags, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                s.id,
                who.0,
                who.1,
                s.vpc,
                s.cidr.to_string(),
                s.availability_zone,
                tags_json(&config_tags(interface))?,
                now_millis()
            ],
        )?;
        out.created.push(s.id.clone());
        return Ok(());
    };
    same_owner(kind, &s.id, &stored, who)?;
    if vpc != s.vpc {
        return Err(conflict(
            kind,
            &s.id,
            format!(
                "the store has it in the VPC '{vpc}', the file in '{}'; a subnet cannot move: declare a subnet with another id",
                s.vpc
            ),
        ));
    }
    if cidr != s.cidr.to_string() {
        return Err(conflict(
            kind,
            &s.id,
            format!(
                "the store has it with CIDR {cidr}, the file says {}; a subnet's CIDR cannot change: declare a subnet with another id",
                s.cidr
            ),
        ));
    }
    let moved = zone != s.availability_zone;
    if moved {
        conn.execute(
            "UPDATE ec2_subnets SET availability_zone = ?2 WHERE id = ?1",
            params![s.id, s.availability_zone],
        )?;
    }
    let edit = |tags: &mut BTreeMap<String, String>| match &s.interface {
        Some(i) => {
            tags.insert(INTERFACE_TAG.into(), i.clone());
        }
        None => {
            tags.remove(INTERFACE_TAG);
        }
    };
    mark(conn, kind, &s.id, stored.tags, edit, moved, out)
}

fn apply_group(
    conn: &Connection,
    who: (&str, &str),
    g: &DeclaredGroup,
    out: &mut Applied,
) -> Result<()> {
    let kind = ResourceKind::SecurityGroup;
    let row: Option<(Head, (String, String, String))> = conn
        .query_row(
            "SELECT account, region, tags, vpc_id, name, description FROM ec2_security_groups WHERE id = ?1",
            params![g.id],
            |r| Ok((head(r)?, (r.get(3)?, r.get(4)?, r.get(5)?))),
        )
        .optional()?
        .map(parse_head)
        .transpose()?;
    let taken = || -> Result<()> {
        let other: Option<String> = conn
            .query_row(
                "SELECT id FROM ec2_security_groups WHERE vpc_id = ?1 AND name = ?2 AND id != ?3",
                params![g.vpc, g.name, g.id],
                |r| r.get(0),
            )
            .optional()?;
        match other {
            Some(other) => Err(conflict(
                kind,
                &g.id,
                format!(
                    "the VPC '{}' has another security group named '{}': '{other}'",
                    g.vpc, g.name
                ),
            )),
            None => Ok(()),
        }
    };
    let Some((stored, (vpc, name, description))) = row else {
        taken()?;
        insert_group(
            conn,
            who,
            &g.id,
            &g.vpc,
            &g.name,
            &g.description,
            &config_tags(None),
        )?;
        // A new group has the allow-all rule, which is what an omitted `egress` declares.
        if g.egress != [(allow_all(), String::new())] {
            replace_egress(conn, &g.id, &g.egress)?;
        }
        out.created.push(g.id.clone());
        return Ok(());
    };
    same_owner(kind, &g.id, &stored, who)?;
    if vpc != g.vpc {
        return Err(conflict(
            kind,
            &g.id,
            format!(
                "the store has it in the VPC '{vpc}', the file in '{}'; a group cannot move: declare a group with another id",
                g.vpc
            ),
        ));
    }
    if name == "default" {
        return Err(conflict(
            kind,
            &g.id,
            "it is its VPC's default security group, which the file cannot declare",
        ));
    }
    let mut changed = false;
    if (name.as_str(), description.as_str()) != (g.name.as_str(), g.description.as_str()) {
        taken()?;
        conn.execute(
            "UPDATE ec2_security_groups SET name = ?2, description = ?3 WHERE id = ?1",
            params![g.id, g.name, g.description],
        )?;
        changed = true;
    }
    let have: BTreeSet<(Rule, String)> = rules_of(conn, &g.id, Direction::Egress)?
        .into_iter()
        .map(|r| (r.rule, r.description))
        .collect();
    let want: BTreeSet<(Rule, String)> = g.egress.iter().cloned().collect();
    if have != want {
        replace_egress(conn, &g.id, &g.egress)?;
        changed = true;
    }
    mark(conn, kind, &g.id, stored.tags, |_| {}, changed, out)
}

/// Replaces a group's egress rules.
fn replace_egress(conn: &Connection, group: &str, rules: &[(Rule, String)]) -> Result<()> {
    conn.execute(
        "DELETE FROM ec2_sg_rules WHERE group_id = ?1 AND egress = 1",
        params![group],
    )?;
    for (rule, description) in rules {
        insert_rule(conn, group, Direction::Egress, rule, description)?;
    }
    Ok(())
}

fn apply_nat(
    conn: &Connection,
    who: (&str, &str),
    vpc: &str,
    n: &DeclaredNat,
    out: &mut Applied,
) -> Result<()> {
    let kind = ResourceKind::NatGateway;
    let row: Option<(Head, (String, String, String))> = conn
        .query_row(
            "SELECT account, region, tags, subnet_id, connectivity, state FROM ec2_nat_gateways WHERE id = ?1",
            params![n.id],
            |r| Ok((head(r)?, (r.get(3)?, r.get(4)?, r.get(5)?))),
        )
        .optional()?
        .map(parse_head)
        .transpose()?;
    let Some((stored, (subnet, connectivity, state))) = row else {
        conn.execute(
            "INSERT INTO ec2_nat_gateways (id, account, region, vpc_id, subnet_id, connectivity, state, tags, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'available', ?7, ?8)",
            params![
                n.id,
                who.0,
                who.1,
                vpc,
                n.subnet,
                n.connectivity,
                tags_json(&config_tags(None))?,
                now_millis()
            ],
        )?;
        out.created.push(n.id.clone());
        return Ok(());
    };
    same_owner(kind, &n.id, &stored, who)?;
    if subnet != n.subnet {
        return Err(conflict(
            kind,
            &n.id,
            format!(
                "the store has it in the subnet '{subnet}', the file in '{}'; a NAT gateway cannot move: declare one with another id",
                n.subnet
            ),
        ));
    }
    let changed = connectivity != n.connectivity || state != "available";
    if changed {
        conn.execute(
            "UPDATE ec2_nat_gateways SET connectivity = ?2, state = 'available', deleted_ms = NULL WHERE id = ?1",
            params![n.id, n.connectivity],
        )?;
    }
    mark(conn, kind, &n.id, stored.tags, |_| {}, changed, out)
}

/// `account, region, tags` of a row (its first three columns), tags still as text.
fn head(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn parse_head<T>(
    ((account, region, tags), rest): ((String, String, String), T),
) -> Result<(Head, T)> {
    Ok((
        Head {
            account,
            region,
            tags: tags_of(&tags)?,
        },
        rest,
    ))
}

/// Removes (or, when still in use, releases) the objects marked as declared that the file no
/// longer declares: NAT gateways first, then groups, subnets, VPCs.
fn retire(conn: &Connection, d: &Declared, out: &mut Applied) -> Result<()> {
    let declared: BTreeSet<&str> = d
        .vpcs
        .iter()
        .map(|v| v.id.as_str())
        .chain(d.subnets.iter().map(|s| s.id.as_str()))
        .chain(d.security_groups.iter().map(|g| g.id.as_str()))
        .chain(d.nat_gateways.iter().map(|n| n.id.as_str()))
        .collect();
    for kind in [
        ResourceKind::NatGateway,
        ResourceKind::SecurityGroup,
        ResourceKind::Subnet,
        ResourceKind::Vpc,
    ] {
        let rows: Vec<(String, String, String, String)> = conn
            .prepare(&format!(
                "SELECT id, account, region, tags FROM {} WHERE tags LIKE '%{SOURCE_TAG}%' ORDER BY rowid",
                kind.table()
            ))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<std::result::Result<_, _>>()?;
        for (id, account, region, tags) in rows {
            let mut tags = tags_of(&tags)?;
            if !from_config(&tags) || declared.contains(id.as_str()) {
                continue;
            }
            let who = (account.as_str(), region.as_str());
            let in_use = match kind {
                // Kept, deleted, as on AWS; only its mark goes.
                ResourceKind::NatGateway => {
                    conn.execute(
                        "UPDATE ec2_nat_gateways SET state = 'deleted', deleted_ms = ?2
                         WHERE id = ?1 AND state != 'deleted'",
                        params![id, now_millis()],
                    )?;
                    false
                }
                ResourceKind::SecurityGroup => {
                    function_using(conn, who, "security_group_ids", &id)?.is_some()
                }
                ResourceKind::Subnet => {
                    conn.query_row(
                        "SELECT EXISTS (SELECT 1 FROM ec2_nat_gateways WHERE subnet_id = ?1 AND state != 'deleted')",
                        params![id],
                        |r| r.get::<_, bool>(0),
                    )? || function_using(conn, who, "subnet_ids", &id)?.is_some()
                }
                ResourceKind::Vpc => conn.query_row(
                    "SELECT EXISTS (SELECT 1 FROM ec2_subnets WHERE vpc_id = ?1)
                         OR EXISTS (SELECT 1 FROM ec2_security_groups WHERE vpc_id = ?1 AND name != 'default')
                         OR EXISTS (SELECT 1 FROM ec2_nat_gateways WHERE vpc_id = ?1 AND state != 'deleted')",
                    params![id],
                    |r| r.get::<_, bool>(0),
                )?,
            };
            if in_use || kind == ResourceKind::NatGateway {
                tags.remove(SOURCE_TAG);
                conn.execute(
                    &format!("UPDATE {} SET tags = ?2 WHERE id = ?1", kind.table()),
                    params![id, tags_json(&tags)?],
                )?;
                if in_use {
                    out.released.push(id);
                } else {
                    out.removed.push(id);
                }
                continue;
            }
            if kind == ResourceKind::Vpc {
                conn.execute(
                    "DELETE FROM ec2_nat_gateways WHERE vpc_id = ?1",
                    params![id],
                )?;
                conn.execute(
                    "DELETE FROM ec2_security_groups WHERE vpc_id = ?1",
                    params![id],
                )?;
            }
            conn.execute(
                &format!("DELETE FROM {} WHERE id = ?1", kind.table()),
                params![id],
            )?;
            out.removed.push(id);
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "declared_tests.rs"]
mod tests;
