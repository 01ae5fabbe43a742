//! Security groups and their rules. A rule is stored per CIDR (EC2 gives each its `sgr-` id);
//! [`Store::security_group_rules`] groups them back by protocol and ports for the network layer.

use std::collections::BTreeMap;

use lamina_model::{AccountId, EgressRule, Region, SecurityGroupRules, now_millis};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Ec2Error, Quota, ResourceKind, ec2, function_using, new_id, owner, refuse_configured,
    room_for_one, tags_json, tags_of, vpc_of, within,
};
use crate::{Store, StoreError};

/// Which way a rule lets traffic through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Egress,
    /// Stored and shown only: nothing connects into a function.
    Ingress,
}

impl Direction {
    fn flag(self) -> bool {
        self == Direction::Egress
    }
}

/// A rule's match: protocol, ports and one IPv4 CIDR (EC2 keeps one rule per CIDR).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rule {
    /// `-1`, `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// The port range (TCP, UDP), or ICMP type and code (`-1`: any); `None` for `-1`.
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub cidr: String,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ", self.protocol, self.cidr)?;
        match (self.from_port, self.to_port) {
            (Some(a), Some(b)) => write!(f, "{a}-{b}"),
            _ => f.write_str("all"),
        }
    }
}

/// A stored rule with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRule {
    /// `sgr-…`.
    pub id: String,
    pub rule: Rule,
    pub description: String,
}

/// A security group with its rules, each list in the order the rules were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc_id: String,
    pub name: String,
    pub description: String,
    pub tags: BTreeMap<String, String>,
    pub egress: Vec<StoredRule>,
    pub ingress: Vec<StoredRule>,
}

/// The allow-all egress rule of new groups.
pub(super) fn allow_all() -> Rule {
    Rule {
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        cidr: "0.0.0.0/0".into(),
    }
}

pub(super) fn insert_rule(
    conn: &Connection,
    group: &str,
    direction: Direction,
    rule: &Rule,
    description: &str,
) -> Result<StoredRule, StoreError> {
    let id = new_id("sgr");
    conn.prepare_cached(
        "INSERT INTO ec2_sg_rules (id, group_id, egress, protocol, from_port, to_port, cidr, description)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id,
        group,
        direction.flag(),
        rule.protocol,
        rule.from_port,
        rule.to_port,
        rule.cidr,
        description
    ])?;
    Ok(StoredRule {
        id,
        rule: rule.clone(),
        description: description.to_owned(),
    })
}

pub(super) fn rules_of(
    conn: &Connection,
    group: &str,
    direction: Direction,
) -> Result<Vec<StoredRule>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, protocol, from_port, to_port, cidr, description FROM ec2_sg_rules
         WHERE group_id = ?1 AND egress = ?2 ORDER BY rowid",
    )?;
    let rows = stmt.query_map(params![group, direction.flag()], |r| {
        Ok(StoredRule {
            id: r.get(0)?,
            rule: Rule {
                protocol: r.get(1)?,
                from_port: r.get(2)?,
                to_port: r.get(3)?,
                cidr: r.get(4)?,
            },
            description: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Inserts a group `id` with the allow-all egress rule; `DuplicateGroup` if its VPC has a group
/// of that name.
pub(super) fn insert_group(
    conn: &Connection,
    (account, region): (&str, &str),
    id: &str,
    vpc: &str,
    name: &str,
    description: &str,
    tags: &BTreeMap<String, String>,
) -> Result<SecurityGroup, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO ec2_security_groups (id, account, region, vpc_id, name, description, tags, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (vpc_id, name) DO NOTHING",
        )?
        .execute(params![
            id,
            account,
            region,
            vpc,
            name,
            description,
            tags_json(tags)?,
            now_millis()
        ])?;
    if n == 0 {
        return Err(ec2(Ec2Error::DuplicateGroup {
            name: name.to_owned(),
            vpc: vpc.to_owned(),
        }));
    }
    let rule = insert_rule(conn, id, Direction::Egress, &allow_all(), "")?;
    Ok(SecurityGroup {
        id: id.to_owned(),
        vpc_id: vpc.to_owned(),
        name: name.to_owned(),
        description: description.to_owned(),
        tags: tags.clone(),
        egress: vec![rule],
        ingress: Vec::new(),
    })
}

impl Store {
    /// Creates a security group in `vpc` with the allow-all egress rule; names are unique per
    /// VPC.
    pub fn create_security_group(
        &self,
        account: &AccountId,
        region: &Region,
        vpc: &str,
        name: &str,
        description: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<SecurityGroup, StoreError> {
        let who = owner(account, region);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if vpc_of(&tx, ResourceKind::Vpc, who, vpc)?.is_none() {
            return Err(ec2(Ec2Error::NoVpc(vpc.to_owned())));
        }
        room_for_one(&tx, ResourceKind::SecurityGroup, who, tags)?;
        let group = insert_group(&tx, who, &new_id("sg"), vpc, name, description, tags)?;
        tx.commit()?;
        Ok(group)
    }

    /// The security groups of an account and region with their rules, oldest first.
    pub fn security_groups(
        &self,
        account: &AccountId,
        region: &Region,
    ) -> Result<Vec<SecurityGroup>, StoreError> {
        let conn = self.conn();
        let heads: Vec<(String, String, String, String, String)> = conn
            .prepare_cached(
                "SELECT id, vpc_id, name, description, tags FROM ec2_security_groups
                 WHERE account = ?1 AND region = ?2 ORDER BY rowid",
            )?
            .query_map(params![account.as_str(), region.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<Result<_, _>>()?;
        heads
            .into_iter()
            .map(|(id, vpc_id, name, description, tags)| {
                Ok(SecurityGroup {
                    egress: rules_of(&conn, &id, Direction::Egress)?,
                    ingress: rules_of(&conn, &id, Direction::Ingress)?,
                    tags: tags_of(&tags)?,
                    id,
                    vpc_id,
                    name,
                    description,
                })
            })
            .collect()
    }

    /// Deletes a security group that is not its VPC's default and no function uses.
    pub fn delete_security_group(
        &self,
        account: &AccountId,
        region: &Region,
        id: &str,
    ) -> Result<(), StoreError> {
        let who = owner(account, region);
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let name: String = tx
            .query_row(
                "SELECT name FROM ec2_security_groups WHERE id = ?1 AND account = ?2 AND region = ?3",
                params![id, who.0, who.1],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| ec2(Ec2Error::NoGroup(id.to_owned())))?;
        if name == "default" {
            return Err(ec2(Ec2Error::DefaultGroup(id.to_owned())));
        }
        refuse_configured(&tx, ResourceKind::SecurityGroup, id)?;
        if function_using(&tx, who, "security_group_ids", id)?.is_some() {
            return Err(ec2(Ec2Error::Dependency(id.to_owned())));
        }
        tx.execute("DELETE FROM ec2_security_groups WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(())
    }

    /// Adds rules to a group, all or none: `DuplicateRule` if one exists already (or twice in
    /// `rules`). Returns the stored rules.
    pub fn authorize_rules(
        &self,
        account: &AccountId,
        region: &Region,
        group: &str,
        direction: Direction,
        rules: &[(Rule, String)],
    ) -> Result<Vec<StoredRule>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if vpc_of(
            &tx,
            ResourceKind::SecurityGroup,
            owner(account, region),
            group,
        )?
        .is_none()
        {
            return Err(ec2(Ec2Error::NoGroup(group.to_owned())));
        }
        refuse_configured(&tx, ResourceKind::SecurityGroup, group)?;
        let mut existing: Vec<Rule> = rules_of(&tx, group, direction)?
            .into_iter()
            .map(|r| r.rule)
            .collect();
        within(Quota::Rules, existing.len() + rules.len())?;
        let mut added = Vec::with_capacity(rules.len());
        for (rule, description) in rules {
            if existing.contains(rule) {
                return Err(ec2(Ec2Error::DuplicateRule(rule.clone())));
            }
            added.push(insert_rule(&tx, group, direction, rule, description)?);
            existing.push(rule.clone());
        }
        tx.commit()?;
        Ok(added)
    }

    /// Removes rules from a group, named by their match or by their `sgr-` ids, all or none:
    /// `MissingRule` (`NoRule` for an id) if one is not there. Returns the removed rules.
    pub fn revoke_rules(
        &self,
        account: &AccountId,
        region: &Region,
        group: &str,
        direction: Direction,
        rules: &[Rule],
        rule_ids: &[String],
    ) -> Result<Vec<StoredRule>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if vpc_of(
            &tx,
            ResourceKind::SecurityGroup,
            owner(account, region),
            group,
        )?
        .is_none()
        {
            return Err(ec2(Ec2Error::NoGroup(group.to_owned())));
        }
        refuse_configured(&tx, ResourceKind::SecurityGroup, group)?;
        let existing = rules_of(&tx, group, direction)?;
        let mut removed: Vec<StoredRule> = Vec::new();
        for rule in rules {
            let found = existing
                .iter()
                .find(|s| &s.rule == rule)
                .ok_or_else(|| ec2(Ec2Error::MissingRule(rule.clone())))?;
            removed.push(found.clone());
        }
        for id in rule_ids {
            let found = existing
                .iter()
                .find(|s| &s.id == id)
                .ok_or_else(|| ec2(Ec2Error::NoRule(id.clone())))?;
            removed.push(found.clone());
        }
        for r in &removed {
            tx.execute("DELETE FROM ec2_sg_rules WHERE id = ?1", params![r.id])?;
        }
        tx.commit()?;
        removed.dedup_by(|a, b| a.id == b.id);
        Ok(removed)
    }

    /// A security group's egress rules, grouped as EC2 shows them (one rule per protocol and
    /// port range, with its CIDRs).
    pub fn security_group_rules(
        &self,
        account: &AccountId,
        region: &Region,
        id: &str,
    ) -> Result<SecurityGroupRules, StoreError> {
        let conn = self.conn();
        if vpc_of(
            &conn,
            ResourceKind::SecurityGroup,
            owner(account, region),
            id,
        )?
        .is_none()
        {
            return Err(ec2(Ec2Error::NoGroup(id.to_owned())));
        }
        let egress = group_rules(&rules_of(&conn, id, Direction::Egress)?)
            .into_iter()
            .map(|(rule, cidrs)| {
                let port = |p: Option<i32>| p.and_then(|p| u16::try_from(p).ok());
                EgressRule {
                    protocol: rule.protocol,
                    from_port: port(rule.from_port),
                    to_port: port(rule.to_port),
                    cidrs,
                }
            })
            .collect();
        Ok(SecurityGroupRules {
            id: id.to_owned(),
            egress,
        })
    }
}
/// Rules grouped by protocol and ports, in the order each group first appears, with the CIDRs
/// of each (the CIDR of the key is cleared). EC2's `IpPermissions` have this shape.
fn group_rules(rules: &[StoredRule]) -> Vec<(Rule, Vec<String>)> {
    let mut out: Vec<(Rule, Vec<String>)> = Vec::new();
    for r in rules {
        let key = Rule {
            cidr: String::new(),
            ..r.rule.clone()
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, cidrs)) => cidrs.push(r.rule.cidr.clone()),
            None => out.push((key, vec![r.rule.cidr.clone()])),
        }
    }
    out
}
