//! The VPC objects of EC2's API: VPCs, subnets, security groups with their rules, NAT gateways,
//! and their tags, per account and region; and what a function's `VpcConfig` resolves to
//! ([`Store::vpc_access`], [`Store::security_group_rules`]).
//!
//! Ids are EC2's (`vpc-` and 17 hex digits, `subnet-…`, `sg-…`, `sgr-…`, `nat-…`). A VPC gets
//! its `default` security group when it is created, and every new group the allow-all egress
//! rule (`-1` to `0.0.0.0/0`), as on AWS. Deleting what something still uses fails with
//! [`Ec2Error::Dependency`]: a VPC with subnets or groups, a subnet with an available NAT
//! gateway or a function in it, a group a function uses (any version of it).
//!
//! Objects may also be declared in the server's configuration file ([`Declared`], applied at
//! start by [`Store::apply_declared`]); they carry the tag `lamina:source=config`, and the
//! operations here refuse to delete them or to change their rules or their `lamina:` tags
//! ([`Ec2Error::Configured`]).

use std::collections::BTreeMap;

use lamina_model::{AccountId, Ipv4Cidr, Region, SubnetAccess, VpcAccess, VpcConfig, now_millis};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Store, StoreError};

mod declared;
mod groups;

pub use declared::{
    Applied, ApplyError, Declared, DeclaredGroup, DeclaredNat, DeclaredSubnet, DeclaredVpc,
};
use groups::insert_group;
pub use groups::{Direction, Rule, SecurityGroup, StoredRule};

/// The tag that binds a subnet to the host interface it is reached through.
pub const INTERFACE_TAG: &str = "lamina:interface";

/// The tag that marks objects declared in the server's configuration file (value
/// [`SOURCE_CONFIG`]). Reserved: the API neither sets nor removes it.
pub const SOURCE_TAG: &str = "lamina:source";

/// The value of [`SOURCE_TAG`] on objects of the configuration file.
pub const SOURCE_CONFIG: &str = "config";

/// Whether tags mark an object as declared in the configuration file.
pub fn from_config(tags: &BTreeMap<String, String>) -> bool {
    tags.get(SOURCE_TAG).is_some_and(|v| v == SOURCE_CONFIG)
}

/// Why an EC2 operation was refused. The API words each in EC2's (or Lambda's) terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ec2Error {
    #[error("the vpc '{0}' does not exist")]
    NoVpc(String),
    #[error("the subnet '{0}' does not exist")]
    NoSubnet(String),
    #[error("the security group '{0}' does not exist")]
    NoGroup(String),
    #[error("the security group rule '{0}' does not exist")]
    NoRule(String),
    #[error("the NAT gateway '{0}' does not exist")]
    NoNatGateway(String),
    #[error("the id '{0}' names no resource of a kind this server keeps")]
    UnknownId(String),
    #[error("the security group '{name}' already exists in '{vpc}'")]
    DuplicateGroup { name: String, vpc: String },
    #[error("the CIDR '{0}' is not within the VPC's")]
    SubnetRange(String),
    #[error("the CIDR '{0}' overlaps another subnet of the VPC")]
    SubnetConflict(String),
    #[error("'{0}' is still in use")]
    Dependency(String),
    #[error("the default security group '{0}' cannot be deleted")]
    DefaultGroup(String),
    #[error("the rule {0} already exists")]
    DuplicateRule(Rule),
    #[error("the rule {0} does not exist")]
    MissingRule(Rule),
    #[error("the subnets are in more than one VPC")]
    SubnetsInManyVpcs,
    #[error("a security group is not in the subnets' VPC")]
    GroupsInOtherVpc,
    /// The object is declared in the server's configuration file: it is changed there.
    #[error("'{0}' is defined in the server's configuration file")]
    Configured(String),
    #[error("the {0:?} quota is reached")]
    Quota(Quota),
}

/// EC2's default quotas, which bound what one account can make the server keep (and the
/// firewall walk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// VPCs per account and region.
    Vpcs,
    /// Subnets per VPC.
    Subnets,
    /// Security groups per account and region.
    SecurityGroups,
    /// Rules per security group, in each direction (one per CIDR).
    Rules,
    /// Tags per resource.
    Tags,
    /// NAT gateways not deleted, per VPC.
    NatGateways,
}

impl Quota {
    /// The most there may be.
    pub const fn limit(self) -> usize {
        match self {
            Quota::Vpcs => 5,
            Quota::Subnets => 200,
            Quota::SecurityGroups => 2500,
            Quota::Rules => 60,
            Quota::Tags => 50,
            Quota::NatGateways => 5,
        }
    }
}

/// Refuses with `quota` when `n` is past its limit.
fn within(quota: Quota, n: usize) -> Result<(), StoreError> {
    if n > quota.limit() {
        return Err(ec2(Ec2Error::Quota(quota)));
    }
    Ok(())
}

/// Refuses a new VPC or security group past its quota (each counted per account and region),
/// or with more tags than a resource may have. A VPC brings its default group.
fn room_for_one(
    conn: &Connection,
    kind: ResourceKind,
    who: (&str, &str),
    tags: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let count = |table: &str| -> Result<usize, StoreError> {
        let n: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE account = ?1 AND region = ?2"),
            params![who.0, who.1],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    };
    if kind == ResourceKind::Vpc {
        within(Quota::Vpcs, count("ec2_vpcs")? + 1)?;
    }
    within(Quota::SecurityGroups, count("ec2_security_groups")? + 1)?;
    within(Quota::Tags, tags.len())
}

/// How long a deleted NAT gateway is still shown (EC2: about an hour).
const DELETED_NAT_KEPT_MS: i64 = 3_600_000;

fn ec2(e: Ec2Error) -> StoreError {
    StoreError::Ec2(e)
}

/// A VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vpc {
    pub id: String,
    pub cidr: String,
    pub tags: BTreeMap<String, String>,
}

/// A subnet of a VPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub cidr: String,
    pub availability_zone: String,
    pub tags: BTreeMap<String, String>,
}

/// A NAT gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatGateway {
    pub id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    /// `public` (internet access for the VPC) or `private`.
    pub connectivity: String,
    /// `available` or `deleted`.
    pub state: String,
    pub created_ms: i64,
    pub deleted_ms: Option<i64>,
    pub tags: BTreeMap<String, String>,
}

/// The kinds of resources that carry tags, as `DescribeTags` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Vpc,
    Subnet,
    SecurityGroup,
    NatGateway,
}

impl ResourceKind {
    /// EC2's `resourceType`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Vpc => "vpc",
            ResourceKind::Subnet => "subnet",
            ResourceKind::SecurityGroup => "security-group",
            ResourceKind::NatGateway => "natgateway",
        }
    }

    /// The kind an id names, by its prefix.
    pub fn of(id: &str) -> Option<Self> {
        let (prefix, _) = id.split_once('-')?;
        Some(match prefix {
            "vpc" => ResourceKind::Vpc,
            "subnet" => ResourceKind::Subnet,
            "sg" => ResourceKind::SecurityGroup,
            "nat" => ResourceKind::NatGateway,
            _ => return None,
        })
    }

    fn table(self) -> &'static str {
        match self {
            ResourceKind::Vpc => "ec2_vpcs",
            ResourceKind::Subnet => "ec2_subnets",
            ResourceKind::SecurityGroup => "ec2_security_groups",
            ResourceKind::NatGateway => "ec2_nat_gateways",
        }
    }

    fn missing(self, id: &str) -> Ec2Error {
        let id = id.to_owned();
        match self {
            ResourceKind::Vpc => Ec2Error::NoVpc(id),
            ResourceKind::Subnet => Ec2Error::NoSubnet(id),
            ResourceKind::SecurityGroup => Ec2Error::NoGroup(id),
            ResourceKind::NatGateway => Ec2Error::NoNatGateway(id),
        }
    }
}

/// A tagged resource, for `DescribeTags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub id: String,
    pub kind: ResourceKind,
    pub tags: BTreeMap<String, String>,
}

/// A fresh EC2 id: `prefix-` and 17 hex digits.
fn new_id(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &hex[..17])
}

fn tags_json(tags: &BTreeMap<String, String>) -> Result<String, StoreError> {
    serde_json::to_string(tags).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn tags_of(text: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("stored tags: {e}")))
}

/// `(account, region)` as SQL parameters.
fn owner<'a>(account: &'a AccountId, region: &'a Region) -> (&'a str, &'a str) {
    (account.as_str(), region.as_str())
}

/// The VPC an object of `kind` belongs to, if it exists in the account and region.
fn vpc_of(
    conn: &Connection,
    kind: ResourceKind,
    (account, region): (&str, &str),
    id: &str,
) -> Result<Option<String>, StoreError> {
    let column = if kind == ResourceKind::Vpc {
        "id"
    } else {
        "vpc_id"
    };
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {column} FROM {} WHERE id = ?1 AND account = ?2 AND region = ?3",
            kind.table()
        ))?
        .query_row(params![id, account, region], |r| r.get(0))
        .optional()?)
}

/// Refuses (`Configured`) to change an object declared in the configuration file.
fn refuse_configured(conn: &Connection, kind: ResourceKind, id: &str) -> Result<(), StoreError> {
    let tags: Option<String> = conn
        .prepare_cached(&format!("SELECT tags FROM {} WHERE id = ?1", kind.table()))?
        .query_row(params![id], |r| r.get(0))
        .optional()?;
    match tags {
        Some(t) if from_config(&tags_of(&t)?) => Err(ec2(Ec2Error::Configured(id.to_owned()))),
        _ => Ok(()),
    }
}

/// A function of the account and region whose `VpcConfig` (in any version) names `id` in
/// `list` (`subnet_ids` or `security_group_ids`).
fn function_using(
    conn: &Connection,
    (account, region): (&str, &str),
    list: &str,
    id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT f.name FROM functions f JOIN function_versions v ON v.function_id = f.id,
                json_each(v.spec, '$.vpc_config.' || ?3) j
             WHERE f.account = ?1 AND f.region = ?2 AND j.value = ?4 LIMIT 1",
        )?
        .query_row(params![account, region, list, id], |r| r.get(0))
        .optional()?)
}

impl Store {
    /// Creates a VPC with its `default` security group.
    pub fn create_vpc(
        &self,
        account: &AccountId,
        region: &Region,
        cidr: Ipv4Cidr,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vpc, StoreError> {
        let who = owner(account, region);
        let id = new_id("vpc");
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        room_for_one(&tx, ResourceKind::Vpc, who, tags)?;
        tx.execute(
            "INSERT INTO ec2_vpcs (id, account, region, cidr, tags, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                who.0,
                who.1,
                cidr.to_string(),
                tags_json(tags)?,
                now_millis()
            ],
        )?;
        insert_group(
            &tx,
            who,
            &new_id("sg"),
            &id,
            "default",
            "default VPC security group",
            &BTreeMap::new(),
        )?;
        tx.commit()?;
        Ok(Vpc {
            id,
            cidr: cidr.to_string(),
            tags: tags.clone(),
        })
    }

    /// The VPCs of an account and region, oldest first.
    pub fn vpcs(&self, account: &AccountId, region: &Region) -> Result<Vec<Vpc>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, cidr, tags FROM ec2_vpcs WHERE account = ?1 AND region = ?2 ORDER BY rowid",
        )?;
        let rows = stmt.query_map(params![account.as_str(), region.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?))
        })?;
        rows.map(|row| {
            let (id, cidr, tags) = row?;
            Ok(Vpc {
                id,
                cidr,
                tags: tags_of(&tags)?,
            })
        })
        .collect()
    }

    /// Deletes a VPC that holds no subnets and no security groups but its default one (which
    /// goes with it), and forgets its deleted NAT gateways.
    pub fn delete_vpc(
        &self,
        account: &AccountId,
        region: &Region,
        id: &str,
    ) -> Result<(), StoreError> {
        let who = owner(account, region);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if vpc_of(&tx, ResourceKind::Vpc, who, id)?.is_none() {
            return Err(ec2(Ec2Error::NoVpc(id.to_owned())));
        }
        refuse_configured(&tx, ResourceKind::Vpc, id)?;
        let busy: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM ec2_subnets WHERE vpc_id = ?1)
                 OR EXISTS (SELECT 1 FROM ec2_security_groups WHERE vpc_id = ?1 AND name != 'default')
                 OR EXISTS (SELECT 1 FROM ec2_nat_gateways WHERE vpc_id = ?1 AND state != 'deleted')",
            params![id],
            |r| r.get(0),
        )?;
        if busy {
            return Err(ec2(Ec2Error::Dependency(id.to_owned())));
        }
        tx.execute(
            "DELETE FROM ec2_nat_gateways WHERE vpc_id = ?1",
            params![id],
        )?;
        tx.execute(
            "DELETE FROM ec2_security_groups WHERE vpc_id = ?1",
            params![id],
        )?;
        tx.execute("DELETE FROM ec2_vpcs WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(())
    }

    /// Creates a subnet of `vpc`, within its CIDR and overlapping none of its other subnets.
    pub fn create_subnet(
        &self,
        account: &AccountId,
        region: &Region,
        vpc: &str,
        cidr: Ipv4Cidr,
        availability_zone: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Subnet, StoreError> {
        let who = owner(account, region);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let vpc_cidr: String = tx
            .query_row(
                "SELECT cidr FROM ec2_vpcs WHERE id = ?1 AND account = ?2 AND region = ?3",
                params![vpc, who.0, who.1],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| ec2(Ec2Error::NoVpc(vpc.to_owned())))?;
        let vpc_cidr = Ipv4Cidr::parse(&vpc_cidr)
            .ok_or_else(|| StoreError::Corrupt(format!("stored CIDR of {vpc}: {vpc_cidr}")))?;
        if !vpc_cidr.contains(cidr) {
            return Err(ec2(Ec2Error::SubnetRange(cidr.to_string())));
        }
        within(Quota::Tags, tags.len())?;
        let siblings: Vec<String> = tx
            .prepare_cached("SELECT cidr FROM ec2_subnets WHERE vpc_id = ?1")?
            .query_map(params![vpc], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if siblings
            .iter()
            .filter_map(|c| Ipv4Cidr::parse(c))
            .any(|c| c.overlaps(cidr))
        {
            return Err(ec2(Ec2Error::SubnetConflict(cidr.to_string())));
        }
        within(Quota::Subnets, siblings.len() + 1)?;
        let id = new_id("subnet");
        tx.execute(
            "INSERT INTO ec2_subnets (id, account, region, vpc_id, cidr, availability_zone, tags, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                who.0,
                who.1,
                vpc,
                cidr.to_string(),
                availability_zone,
                tags_json(tags)?,
                now_millis()
            ],
        )?;
        tx.commit()?;
        Ok(Subnet {
            id,
            vpc_id: vpc.to_owned(),
            cidr: cidr.to_string(),
            availability_zone: availability_zone.to_owned(),
            tags: tags.clone(),
        })
    }

    /// The subnets of an account and region, oldest first.
    pub fn subnets(&self, account: &AccountId, region: &Region) -> Result<Vec<Subnet>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, vpc_id, cidr, availability_zone, tags FROM ec2_subnets
             WHERE account = ?1 AND region = ?2 ORDER BY rowid",
        )?;
        let rows = stmt.query_map(params![account.as_str(), region.as_str()], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        rows.map(|row| {
            let (id, vpc_id, cidr, availability_zone, tags) = row?;
            Ok(Subnet {
                id,
                vpc_id,
                cidr,
                availability_zone,
                tags: tags_of(&tags)?,
            })
        })
        .collect()
    }

    /// Deletes a subnet that no available NAT gateway and no function uses.
    pub fn delete_subnet(
        &self,
        account: &AccountId,
        region: &Region,
        id: &str,
    ) -> Result<(), StoreError> {
        let who = owner(account, region);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if vpc_of(&tx, ResourceKind::Subnet, who, id)?.is_none() {
            return Err(ec2(Ec2Error::NoSubnet(id.to_owned())));
        }
        refuse_configured(&tx, ResourceKind::Subnet, id)?;
        let nat: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM ec2_nat_gateways WHERE subnet_id = ?1 AND state != 'deleted')",
            params![id],
            |r| r.get(0),
        )?;
        if nat || function_using(&tx, who, "subnet_ids", id)?.is_some() {
            return Err(ec2(Ec2Error::Dependency(id.to_owned())));
        }
        tx.execute("DELETE FROM ec2_subnets WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(())
    }

    /// Creates an available NAT gateway in a subnet.
    pub fn create_nat_gateway(
        &self,
        account: &AccountId,
        region: &Region,
        subnet: &str,
        connectivity: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<NatGateway, StoreError> {
        let who = owner(account, region);
        let conn = self.conn();
        let vpc_id = vpc_of(&conn, ResourceKind::Subnet, who, subnet)?
            .ok_or_else(|| ec2(Ec2Error::NoSubnet(subnet.to_owned())))?;
        within(Quota::Tags, tags.len())?;
        let id = new_id("nat");
        let now = now_millis();
        // Deleted gateways are shown for an hour, then forgotten.
        conn.execute(
            "DELETE FROM ec2_nat_gateways
             WHERE account = ?1 AND region = ?2 AND state = 'deleted' AND deleted_ms < ?3",
            params![who.0, who.1, now - DELETED_NAT_KEPT_MS],
        )?;
        let live: i64 = conn.query_row(
            "SELECT COUNT(*) FROM ec2_nat_gateways WHERE vpc_id = ?1 AND state != 'deleted'",
            params![vpc_id],
            |r| r.get(0),
        )?;
        within(Quota::NatGateways, live as usize + 1)?;
        conn.execute(
            "INSERT INTO ec2_nat_gateways (id, account, region, vpc_id, subnet_id, connectivity, state, tags, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'available', ?7, ?8)",
            params![id, who.0, who.1, vpc_id, subnet, connectivity, tags_json(tags)?, now],
        )?;
        Ok(NatGateway {
            id,
            vpc_id,
            subnet_id: subnet.to_owned(),
            connectivity: connectivity.to_owned(),
            state: "available".into(),
            created_ms: now,
            deleted_ms: None,
            tags: tags.clone(),
        })
    }

    /// The NAT gateways of an account and region (deleted ones for an hour), oldest first.
    pub fn nat_gateways(
        &self,
        account: &AccountId,
        region: &Region,
    ) -> Result<Vec<NatGateway>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, vpc_id, subnet_id, connectivity, state, created_ms, deleted_ms, tags
             FROM ec2_nat_gateways WHERE account = ?1 AND region = ?2
             AND (deleted_ms IS NULL OR deleted_ms >= ?3) ORDER BY rowid",
        )?;
        // A deleted gateway is shown for an hour.
        let shown_since = now_millis() - DELETED_NAT_KEPT_MS;
        let rows = stmt.query_map(
            params![account.as_str(), region.as_str(), shown_since],
            |r| {
                Ok((
                    NatGateway {
                        id: r.get(0)?,
                        vpc_id: r.get(1)?,
                        subnet_id: r.get(2)?,
                        connectivity: r.get(3)?,
                        state: r.get(4)?,
                        created_ms: r.get(5)?,
                        deleted_ms: r.get(6)?,
                        tags: BTreeMap::new(),
                    },
                    r.get::<_, String>(7)?,
                ))
            },
        )?;
        rows.map(|row| {
            let (nat, tags) = row?;
            Ok(NatGateway {
                tags: tags_of(&tags)?,
                ..nat
            })
        })
        .collect()
    }

    /// Marks a NAT gateway deleted (it stays visible, as on AWS). Deleting it again is a
    /// no-op.
    pub fn delete_nat_gateway(
        &self,
        account: &AccountId,
        region: &Region,
        id: &str,
    ) -> Result<(), StoreError> {
        let who = owner(account, region);
        let conn = self.conn();
        if vpc_of(&conn, ResourceKind::NatGateway, who, id)?.is_none() {
            return Err(ec2(Ec2Error::NoNatGateway(id.to_owned())));
        }
        refuse_configured(&conn, ResourceKind::NatGateway, id)?;
        conn.execute(
            "UPDATE ec2_nat_gateways SET state = 'deleted', deleted_ms = ?2
             WHERE id = ?1 AND state != 'deleted'",
            params![id, now_millis()],
        )?;
        Ok(())
    }

    /// Changes the tags of resources, all or none: `set` adds or replaces, `remove` takes
    /// keys away (a value, when given, must match). `UnknownId` or the kind's own not-found
    /// error if a resource is not there; `Configured` if the change touches a `lamina:` tag
    /// (its source, a subnet's interface) of an object of the configuration file.
    pub fn change_tags(
        &self,
        account: &AccountId,
        region: &Region,
        ids: &[String],
        set: &BTreeMap<String, String>,
        remove: &[(String, Option<String>)],
    ) -> Result<(), StoreError> {
        let who = owner(account, region);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for id in ids {
            let kind = ResourceKind::of(id).ok_or_else(|| ec2(Ec2Error::UnknownId(id.clone())))?;
            let table = kind.table();
            let text: String = tx
                .query_row(
                    &format!(
                        "SELECT tags FROM {table} WHERE id = ?1 AND account = ?2 AND region = ?3"
                    ),
                    params![id, who.0, who.1],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| ec2(kind.missing(id)))?;
            let mut tags = tags_of(&text)?;
            let owned = |key: &str| key == SOURCE_TAG || key == INTERFACE_TAG;
            if from_config(&tags)
                && (set.keys().any(|k| owned(k)) || remove.iter().any(|(k, _)| owned(k)))
            {
                return Err(ec2(Ec2Error::Configured(id.clone())));
            }
            tags.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
            for (key, value) in remove {
                if value.as_ref().is_none_or(|v| tags.get(key) == Some(v)) {
                    tags.remove(key);
                }
            }
            within(Quota::Tags, tags.len())?;
            tx.execute(
                &format!("UPDATE {table} SET tags = ?2 WHERE id = ?1"),
                params![id, tags_json(&tags)?],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Every resource of an account and region that has tags.
    pub fn tagged(&self, account: &AccountId, region: &Region) -> Result<Vec<Tagged>, StoreError> {
        let conn = self.conn();
        let mut out = Vec::new();
        for kind in [
            ResourceKind::Vpc,
            ResourceKind::Subnet,
            ResourceKind::SecurityGroup,
            ResourceKind::NatGateway,
        ] {
            let rows: Vec<(String, String)> = conn
                .prepare_cached(&format!(
                    "SELECT id, tags FROM {} WHERE account = ?1 AND region = ?2 AND tags != '{{}}' ORDER BY rowid",
                    kind.table()
                ))?
                .query_map(params![account.as_str(), region.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            for (id, tags) in rows {
                out.push(Tagged {
                    id,
                    kind,
                    tags: tags_of(&tags)?,
                });
            }
        }
        Ok(out)
    }

    /// What a function's `VpcConfig` resolves to: every subnet and security group must exist
    /// in the account and region (`NoSubnet`, `NoGroup`, subnets checked first), the subnets
    /// must share one VPC (`SubnetsInManyVpcs`) and the groups must be in it
    /// (`GroupsInOtherVpc`).
    pub fn vpc_access(
        &self,
        account: &AccountId,
        region: &Region,
        config: &VpcConfig,
    ) -> Result<VpcAccess, StoreError> {
        let who = owner(account, region);
        let conn = self.conn();
        let mut vpc: Option<String> = None;
        let mut subnets: Vec<SubnetAccess> = Vec::new();
        let mut many = false;
        for id in &config.subnet_ids {
            let (vpc_id, cidr, tags): (String, String, String) = conn
                .prepare_cached(
                    "SELECT vpc_id, cidr, tags FROM ec2_subnets WHERE id = ?1 AND account = ?2 AND region = ?3",
                )?
                .query_row(params![id, who.0, who.1], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?
                .ok_or_else(|| ec2(Ec2Error::NoSubnet(id.clone())))?;
            many |= vpc.as_ref().is_some_and(|v| *v != vpc_id);
            vpc.get_or_insert(vpc_id);
            if !subnets.iter().any(|s| &s.id == id) {
                let mut tags = tags_of(&tags)?;
                subnets.push(SubnetAccess {
                    id: id.clone(),
                    cidr,
                    declared: from_config(&tags),
                    interface: tags.remove(INTERFACE_TAG),
                });
            }
        }
        let mut groups_vpcs = Vec::new();
        for id in &config.security_group_ids {
            let group_vpc = vpc_of(&conn, ResourceKind::SecurityGroup, who, id)?
                .ok_or_else(|| ec2(Ec2Error::NoGroup(id.clone())))?;
            groups_vpcs.push(group_vpc);
        }
        let vpc_id = vpc.ok_or_else(|| ec2(Ec2Error::SubnetsInManyVpcs))?;
        if many {
            return Err(ec2(Ec2Error::SubnetsInManyVpcs));
        }
        if groups_vpcs.iter().any(|v| *v != vpc_id) {
            return Err(ec2(Ec2Error::GroupsInOtherVpc));
        }
        let (cidr, nat): (String, bool) = conn.query_row(
            "SELECT cidr, EXISTS (SELECT 1 FROM ec2_nat_gateways
                 WHERE vpc_id = ?1 AND state = 'available' AND connectivity = 'public')
             FROM ec2_vpcs WHERE id = ?1",
            params![vpc_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut security_group_ids: Vec<String> = Vec::new();
        for id in &config.security_group_ids {
            if !security_group_ids.contains(id) {
                security_group_ids.push(id.clone());
            }
        }
        Ok(VpcAccess {
            vpc_id,
            cidrs: vec![cidr],
            subnets,
            security_group_ids,
            nat,
        })
    }
}

#[cfg(test)]
mod tests;
