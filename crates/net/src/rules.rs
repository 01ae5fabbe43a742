//! The firewall, as data: one `inet` table built from the configuration, a chain per VPC profile
//! and per security group. Pure: [`crate::host::Host::apply`] sends a batch to the kernel as one
//! transaction (`nft -j -f -`), so a change is whole or absent.
//!
//! The base table (see `images-net-notes.md` §2.2):
//! - `input`: a sandbox reaches no address of the host, on any port (replies excepted);
//! - `forward`: no sandbox-to-sandbox traffic; nothing initiates inward; no spoofed source; the
//!   host's DNS resolvers on port 53; VPC profiles decide for their sandboxes; everything else
//!   may go anywhere but private, loopback, link-local (the metadata address), shared,
//!   benchmark, multicast and reserved ranges, and never over IPv6;
//! - `postrouting`: the pool's addresses are masqueraded on the way out.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nftables::expr::{
    self, CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload,
    PayloadField, Prefix,
};
use nftables::schema::{Chain, FlushObject, NfCmd, NfListObject, NfObject, Rule, Set, Table};
use nftables::stmt::{JumpTarget, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::{Egress, Protocol, SecurityGroup, VpcProfile};

/// The table's name (its family is `inet`).
pub const TABLE: &str = "lamina";
/// Every host-side interface of a sandbox starts with this.
pub const PREFIX: &str = "lv";

/// Destinations no sandbox reaches unless a VPC profile allows them.
pub const BLOCKED4: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "168.63.129.16/32",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// What no sandbox reaches whatever its VPC, its subnets' interfaces or its security groups
/// allow: this host, link-local (the metadata address of most clouds), the host services of
/// clouds that keep them elsewhere (Azure's WireServer, Alibaba Cloud's metadata), multicast and
/// reserved addresses. The host's DNS resolvers stay reachable on port 53 (Azure's is the
/// WireServer's address).
pub const NEVER4: &[&str] = &[
    "0.0.0.0/8",
    "100.100.100.200/32",
    "127.0.0.0/8",
    "168.63.129.16/32",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// A named set of IPv4 networks in the table.
fn ipv4_set(name: &'static str, nets: &[&str]) -> NfObject<'static> {
    add(NfListObject::Set(Box::new(Set {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: name.into(),
        set_type: nftables::schema::SetTypeValue::Single(nftables::schema::SetType::Ipv4Addr),
        flags: Some(HashSet::from([nftables::schema::SetFlag::Interval])),
        elem: Some(
            nets.iter()
                .map(|n| net(&n.parse().expect("a valid network")))
                .collect::<Vec<_>>()
                .into(),
        ),
        ..Set::default()
    })))
}

/// The name prefix of a profile's interfaces: `lv<profile, 4 hex>`.
pub fn profile_prefix(profile: u16) -> String {
    format!("{PREFIX}{profile:04x}")
}

fn table() -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: TABLE.into(),
        handle: None,
    }
}

fn chain(name: impl Into<Cow<'static, str>>) -> Chain<'static> {
    Chain {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: name.into(),
        ..Chain::default()
    }
}

fn base_chain(name: &'static str, kind: NfChainType, hook: NfHook, prio: i32) -> Chain<'static> {
    Chain {
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..chain(name)
    }
}

fn rule(chain: impl Into<Cow<'static, str>>, expr: Vec<Statement<'static>>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(Rule {
        family: NfFamily::INet,
        table: TABLE.into(),
        chain: chain.into(),
        expr: expr.into(),
        ..Rule::default()
    })))
}

fn add(o: NfListObject<'static>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(o))
}

fn is(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn is_not(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::NEQ,
    })
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn s(v: impl Into<Cow<'static, str>>) -> Expression<'static> {
    Expression::String(v.into())
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn net(n: &Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(n.network().to_string())),
        len: n.prefix_len() as u32,
    }))
}

fn set_of(items: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Set(
        items.into_iter().map(expr::SetItem::Element).collect(),
    ))
}

fn from_sandbox(pattern: impl Into<Cow<'static, str>>) -> Statement<'static> {
    is(meta(MetaKey::Iifname), s(pattern))
}

fn all_sandboxes() -> String {
    format!("{PREFIX}*")
}

fn accept() -> Statement<'static> {
    Statement::Accept(None)
}

fn drop() -> Statement<'static> {
    Statement::Drop(None)
}

fn goto(target: String) -> Statement<'static> {
    Statement::Goto(JumpTarget {
        target: target.into(),
    })
}

fn jump(target: String) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: target.into(),
    })
}

/// The whole base table, replacing any table of the same name (a crashed server's, say) in the
/// same transaction.
pub fn base(pool: Ipv4Net, resolvers: &[Ipv4Addr], connections: u32) -> Vec<NfObject<'static>> {
    let any = all_sandboxes();
    let mut out = vec![
        // `add` then `delete` makes deleting a table that may not exist safe.
        add(NfListObject::Table(table())),
        NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(table()))),
        add(NfListObject::Table(table())),
        ipv4_set("blocked4", BLOCKED4),
        ipv4_set("never4", NEVER4),
        add(NfListObject::Chain(base_chain(
            "input",
            NfChainType::Filter,
            NfHook::Input,
            0,
        ))),
        add(NfListObject::Chain(base_chain(
            "forward",
            NfChainType::Filter,
            NfHook::Forward,
            0,
        ))),
        add(NfListObject::Chain(base_chain(
            "postrouting",
            NfChainType::NAT,
            NfHook::Postrouting,
            100,
        ))),
        add(NfListObject::Chain(chain("profiles"))),
    ];
    let established = || {
        Statement::Match(Match {
            left: Expression::Named(NamedExpression::CT(CT {
                key: "state".into(),
                family: None,
                dir: None,
            })),
            right: Expression::List(vec![s("established"), s("related")]),
            op: Operator::IN,
        })
    };
    // No host address, on any port, except for replies.
    out.push(rule(
        "input",
        vec![from_sandbox(any.clone()), established(), accept()],
    ));
    out.push(rule("input", vec![from_sandbox(any.clone()), drop()]));
    // No sandbox to sandbox; nothing inward but replies.
    out.push(rule(
        "forward",
        vec![
            from_sandbox(any.clone()),
            is(meta(MetaKey::Oifname), s(any.clone())),
            drop(),
        ],
    ));
    out.push(rule(
        "forward",
        vec![
            is(meta(MetaKey::Oifname), s(any.clone())),
            established(),
            accept(),
        ],
    ));
    out.push(rule(
        "forward",
        vec![is(meta(MetaKey::Oifname), s(any.clone())), drop()],
    ));
    // A source address the sandbox's own interface would not route back to: spoofed.
    out.push(rule(
        "forward",
        vec![
            from_sandbox(any.clone()),
            is(
                Expression::Named(NamedExpression::Fib(Fib {
                    result: FibResult::Oif,
                    flags: HashSet::from([FibFlag::Saddr, FibFlag::Iif]),
                })),
                Expression::Boolean(false),
            ),
            drop(),
        ],
    ));
    out.push(rule(
        "forward",
        vec![
            from_sandbox(any.clone()),
            is(meta(MetaKey::Nfproto), s("ipv6")),
            drop(),
        ],
    ));
    // At most `connections` tracked at once per sandbox (its address, which the rule above
    // ties to its interface): no function fills the host's connection-tracking table.
    out.push(rule(
        "forward",
        vec![
            from_sandbox(any.clone()),
            Statement::Match(Match {
                left: Expression::Named(NamedExpression::CT(CT {
                    key: "state".into(),
                    family: None,
                    dir: None,
                })),
                right: s("new"),
                op: Operator::IN,
            }),
            Statement::Meter(nftables::stmt::Meter {
                name: "connections".into(),
                key: payload("ip", "saddr"),
                stmt: Box::new(Statement::CTCount(nftables::stmt::CTCount {
                    val: Expression::Number(connections),
                    inv: Some(true),
                })),
            }),
            drop(),
        ],
    ));
    if !resolvers.is_empty() {
        let set = || set_of(resolvers.iter().map(|a| s(a.to_string())).collect());
        for proto in ["udp", "tcp"] {
            out.push(rule(
                "forward",
                vec![
                    from_sandbox(any.clone()),
                    is(payload("ip", "daddr"), set()),
                    is(payload(proto, "dport"), Expression::Number(53)),
                    accept(),
                ],
            ));
        }
    }
    out.push(rule(
        "forward",
        vec![from_sandbox(any.clone()), jump("profiles".into())],
    ));
    out.push(rule(
        "forward",
        vec![
            from_sandbox(any.clone()),
            is(payload("ip", "daddr"), s("@blocked4")),
            drop(),
        ],
    ));
    out.push(rule(
        "postrouting",
        vec![
            is(payload("ip", "saddr"), net(&pool)),
            is_not(meta(MetaKey::Oifname), s(any)),
            Statement::Masquerade(None),
        ],
    ));
    out
}

/// Deletes the table (at shutdown).
pub fn remove() -> Vec<NfObject<'static>> {
    vec![
        add(NfListObject::Table(table())),
        NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(table()))),
    ]
}

fn sg_chain(id: &str) -> String {
    format!("sg-{id}")
}

fn nat_chain(vpc: &str) -> String {
    format!("nat-{vpc}")
}

/// Creates or replaces a security group's chain: one `accept` per rule and destination; a
/// packet no rule accepts returns to the caller.
pub fn security_group(sg: &SecurityGroup) -> Vec<NfObject<'static>> {
    let name = sg_chain(&sg.id);
    let mut out = vec![
        add(NfListObject::Chain(chain(name.clone()))),
        NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(chain(name.clone())))),
    ];
    for Egress {
        protocol,
        ports,
        cidr,
    } in &sg.egress
    {
        let mut expr = vec![is(payload("ip", "daddr"), net(cidr))];
        match (protocol, ports) {
            (Protocol::All, _) => {}
            (Protocol::Icmp, None) => expr.push(is(meta(MetaKey::L4proto), s("icmp"))),
            (Protocol::Icmp, Some((kind, code))) => {
                expr.push(is(
                    payload("icmp", "type"),
                    Expression::Number(*kind as u32),
                ));
                if *code != u16::MAX {
                    expr.push(is(
                        payload("icmp", "code"),
                        Expression::Number(*code as u32),
                    ));
                }
            }
            (Protocol::Tcp | Protocol::Udp, ports) => {
                let proto = if *protocol == Protocol::Tcp {
                    "tcp"
                } else {
                    "udp"
                };
                match ports {
                    Some((from, to)) if from == to => expr.push(is(
                        payload(proto, "dport"),
                        Expression::Number(*from as u32),
                    )),
                    Some((from, to)) => expr.push(is(
                        payload(proto, "dport"),
                        Expression::Range(Box::new(expr::Range {
                            range: [
                                Expression::Number(*from as u32),
                                Expression::Number(*to as u32),
                            ],
                        })),
                    )),
                    None => expr.push(is(meta(MetaKey::L4proto), s(proto))),
                }
            }
        }
        expr.push(accept());
        out.push(rule(name.clone(), expr));
    }
    out
}

/// Whether a VPC reaches the internet (through a NAT gateway): its chain returns, or drops.
pub fn vpc_nat(vpc: &str, nat: bool) -> Vec<NfObject<'static>> {
    let name = nat_chain(vpc);
    vec![
        add(NfListObject::Chain(chain(name.clone()))),
        NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(chain(name.clone())))),
        rule(
            name,
            vec![if nat { Statement::Return(None) } else { drop() }],
        ),
    ]
}

/// A profile's chains, created once when its first environment is prepared: traffic to the
/// VPC's networks leaves only through its subnets' interfaces and as its security groups allow;
/// other private destinations are dropped; the internet is reached only through a NAT gateway,
/// and then also as the security groups allow.
///
/// The VPC's own networks pass before the private ranges are dropped only when bound to
/// interfaces (which the operator gave its account): a VPC anyone can make on `169.254.0.0/16`
/// or on the host's LAN, left to the host's routes, reaches none of them.
pub fn profile(id: u16, p: &VpcProfile, groups: &[SecurityGroup]) -> Vec<NfObject<'static>> {
    let name = format!("prof-{id}");
    let egress = format!("egress-{id}");
    let mut out = Vec::new();
    for sg in groups {
        out.extend(security_group(sg));
    }
    out.extend(vpc_nat(&p.vpc_id, p.nat));
    out.push(add(NfListObject::Chain(chain(egress.clone()))));
    out.push(NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(
        chain(egress.clone()),
    ))));
    for sg in &p.security_groups {
        out.push(rule(egress.clone(), vec![jump(sg_chain(sg))]));
    }
    out.push(rule(egress.clone(), vec![drop()]));
    out.push(add(NfListObject::Chain(chain(name.clone()))));
    out.push(NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(
        chain(name.clone()),
    ))));
    let vpc = || set_of(p.cidrs.iter().map(net).collect());
    out.push(rule(
        name.clone(),
        vec![is(payload("ip", "daddr"), s("@never4")), drop()],
    ));
    let bound = !p.cidrs.is_empty() && !p.interfaces.is_empty();
    if bound {
        out.push(rule(
            name.clone(),
            vec![
                is(payload("ip", "daddr"), vpc()),
                is_not(
                    meta(MetaKey::Oifname),
                    set_of(p.interfaces.iter().map(|i| s(i.clone())).collect()),
                ),
                drop(),
            ],
        ));
        out.push(rule(
            name.clone(),
            vec![is(payload("ip", "daddr"), vpc()), goto(egress.clone())],
        ));
    }
    out.push(rule(
        name.clone(),
        vec![is(payload("ip", "daddr"), s("@blocked4")), drop()],
    ));
    if !bound && !p.cidrs.is_empty() {
        out.push(rule(
            name.clone(),
            vec![is(payload("ip", "daddr"), vpc()), goto(egress.clone())],
        ));
    }
    out.push(rule(name.clone(), vec![jump(nat_chain(&p.vpc_id))]));
    out.push(rule(name, vec![goto(egress)]));
    out.push(profile_jump(id));
    out
}

/// The rule of `profiles` that sends a profile's interfaces to its chain.
fn profile_jump(id: u16) -> NfObject<'static> {
    rule(
        "profiles",
        vec![
            from_sandbox(format!("{}*", profile_prefix(id))),
            goto(format!("prof-{id}")),
        ],
    )
}

/// Removes the chains of the profiles `gone`, in one transaction with `profiles` written again
/// for those `kept`.
pub fn forget_profiles(gone: &[u16], kept: &[u16]) -> Vec<NfObject<'static>> {
    let mut out = vec![NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(
        chain("profiles"),
    )))];
    out.extend(kept.iter().map(|id| profile_jump(*id)));
    for id in gone {
        for name in [format!("prof-{id}"), format!("egress-{id}")] {
            out.extend(delete_chain(name));
        }
    }
    out
}

/// Removes the chains of security groups `groups` and of `vpcs`' NAT state (which no profile
/// may refer to any more: the kernel refuses the whole transaction otherwise).
pub fn forget_chains(groups: &[String], vpcs: &[String]) -> Vec<NfObject<'static>> {
    let names = groups.iter().map(|g| sg_chain(g));
    names
        .chain(vpcs.iter().map(|v| nat_chain(v)))
        .flat_map(delete_chain)
        .collect()
}

/// Deletes a chain, whether it is there or not.
fn delete_chain(name: String) -> [NfObject<'static>; 2] {
    [
        // `add` first: deleting a chain that is not there fails the whole transaction.
        add(NfListObject::Chain(chain(name.clone()))),
        NfObject::CmdObject(NfCmd::Delete(NfListObject::Chain(chain(name)))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(objects: &[NfObject<'static>]) -> String {
        serde_json::to_string(&nftables::schema::Nftables {
            objects: objects.to_vec().into(),
        })
        .unwrap()
    }

    #[test]
    fn the_base_table_blocks_the_metadata_address_and_masquerades_the_pool() {
        let t = text(&base("10.254.0.0/16".parse().unwrap(), &[], 4096));
        // Each sandbox's tracked connections are bounded.
        assert!(
            t.contains(r#"{"meter":{"name":"connections","key":{"payload":{"protocol":"ip","field":"saddr"}},"stmt":{"ct count":{"val":4096,"inv":true}}}}"#),
            "{t}"
        );
        assert!(
            t.contains(r#"{"prefix":{"addr":"169.254.0.0","len":16}}"#),
            "{t}"
        );
        // Clouds' host services at other addresses: Azure's WireServer, Alibaba's metadata.
        for host_service in ["168.63.129.16", "100.100.100.200"] {
            assert!(t.contains(&format!(r#""{host_service}""#)), "{t}");
        }
        assert!(t.contains(r#""masquerade":null"#), "{t}");
        assert!(
            t.contains(r#"{"prefix":{"addr":"10.254.0.0","len":16}}"#),
            "{t}"
        );
        // The old table goes in the same transaction.
        assert!(t.starts_with(r#"{"nftables":[{"add":{"table""#), "{t}");
        assert!(t.contains(r#"{"delete":{"table""#), "{t}");
        assert!(
            !t.contains("dport"),
            "no resolver rule without resolvers: {t}"
        );
    }

    #[test]
    fn resolvers_are_allowed_on_port_53_only() {
        let t = text(&base(
            "10.254.0.0/16".parse().unwrap(),
            &["192.168.1.1".parse().unwrap()],
            4096,
        ));
        assert!(t.contains(r#""192.168.1.1""#), "{t}");
        assert!(t.contains(r#"{"payload":{"protocol":"udp","field":"dport"}},"right":53"#));
    }

    #[test]
    fn a_profile_without_nat_drops_the_internet_and_checks_its_groups() {
        let p = VpcProfile {
            account: "111111111111".into(),
            vpc_id: "vpc-1".into(),
            cidrs: vec!["10.1.0.0/16".parse().unwrap()],
            interfaces: vec!["corp0".into()],
            security_groups: vec!["sg-a".into()],
            nat: false,
        };
        let sg = SecurityGroup {
            id: "sg-a".into(),
            egress: vec![Egress {
                protocol: Protocol::Tcp,
                ports: Some((5432, 5432)),
                cidr: "10.1.2.0/24".parse().unwrap(),
            }],
        };
        let t = text(&profile(7, &p, &[sg]));
        assert!(t.contains(r#""right":"lv0007*""#), "{t}");
        assert!(
            t.contains(r#""chain":"nat-vpc-1","expr":[{"drop":null}]"#),
            "{t}"
        );
        assert!(t.contains(r#"{"payload":{"protocol":"tcp","field":"dport"}},"right":5432"#));
        assert!(t.contains(r#"{"jump":{"target":"sg-sg-a"}}"#), "{t}");
        assert!(t.contains(r#""right":{"set":["corp0"]}"#), "{t}");
        // Bound to its interface, the VPC's network passes before the private ranges drop, but
        // never before this host's, link-local and reserved ones.
        let vpc_at = t.find(r#""goto":{"target":"egress-7"}"#).unwrap();
        assert!(vpc_at < t.find("@blocked4").unwrap(), "{t}");
        assert!(t.find("@never4").unwrap() < vpc_at, "{t}");
    }

    #[test]
    fn an_icmp_permission_matches_its_type_and_code() {
        let sg = |ports| SecurityGroup {
            id: "sg-a".into(),
            egress: vec![Egress {
                protocol: Protocol::Icmp,
                ports,
                cidr: "10.1.0.0/16".parse().unwrap(),
            }],
        };
        let echo = text(&security_group(&sg(Some((8, 0)))));
        assert!(
            echo.contains(r#"{"payload":{"protocol":"icmp","field":"type"}},"right":8"#),
            "{echo}"
        );
        assert!(
            echo.contains(r#"{"payload":{"protocol":"icmp","field":"code"}},"right":0"#),
            "{echo}"
        );
        let any_code = text(&security_group(&sg(Some((3, u16::MAX)))));
        assert!(!any_code.contains(r#""field":"code""#), "{any_code}");
        let all = text(&security_group(&sg(None)));
        assert!(!all.contains(r#""field":"type""#), "{all}");
    }

    #[test]
    fn a_vpc_left_to_the_hosts_routes_reaches_no_private_range() {
        let p = VpcProfile {
            account: "111111111111".into(),
            vpc_id: "vpc-1".into(),
            cidrs: vec!["169.254.0.0/16".parse().unwrap()],
            interfaces: vec![],
            security_groups: vec!["sg-a".into()],
            nat: false,
        };
        let t = text(&profile(7, &p, &[]));
        let blocked = t.find("@blocked4").unwrap();
        let vpc = t.find(r#"{"addr":"169.254.0.0","len":16}"#).unwrap();
        assert!(blocked < vpc, "the private ranges drop first: {t}");
    }
}
