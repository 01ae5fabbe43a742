//! Tests of the EC2 objects: what each operation refuses, what depends on what, and what a
//! function's `VpcConfig` resolves to.

use super::groups::allow_all;
use super::*;
use crate::functions::tests::create_plain;
use crate::{FunctionKey, Store};
use lamina_model::{EgressRule, FunctionName};

fn who(account: &str) -> (AccountId, Region) {
    (
        AccountId::parse(account).unwrap(),
        Region::parse("us-east-1").unwrap(),
    )
}

fn cidr(s: &str) -> Ipv4Cidr {
    Ipv4Cidr::parse(s).unwrap()
}

fn err<T: std::fmt::Debug>(r: Result<T, StoreError>) -> Ec2Error {
    match r {
        Err(StoreError::Ec2(e)) => e,
        other => panic!("expected an EC2 error, got {other:?}"),
    }
}

fn tcp(port: i32, to: &str) -> Rule {
    Rule {
        protocol: "tcp".into(),
        from_port: Some(port),
        to_port: Some(port),
        cidr: to.into(),
    }
}

fn config(subnets: &[&str], groups: &[&str]) -> VpcConfig {
    VpcConfig {
        subnet_ids: subnets.iter().map(|s| s.to_string()).collect(),
        security_group_ids: groups.iter().map(|s| s.to_string()).collect(),
        ipv6_allowed_for_dual_stack: false,
    }
}

#[test]
fn vpcs_subnets_and_groups_follow_ec2_rules_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, r) = who("111111111111");
    let none = BTreeMap::new();
    let vpc = store
        .create_vpc(&a, &r, cidr("10.1.0.0/16"), &none)
        .unwrap();
    assert!(
        vpc.id.starts_with("vpc-") && vpc.id.len() == 21,
        "{}",
        vpc.id
    );
    let groups = store.security_groups(&a, &r).unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (groups[0].name.as_str(), groups[0].vpc_id.as_str()),
        ("default", vpc.id.as_str())
    );
    assert_eq!(groups[0].egress.len(), 1);
    assert_eq!(groups[0].egress[0].rule, allow_all());

    let sub = store
        .create_subnet(&a, &r, &vpc.id, cidr("10.1.2.0/24"), "us-east-1a", &none)
        .unwrap();
    assert!(sub.id.starts_with("subnet-"));
    assert_eq!(
        err(store.create_subnet(&a, &r, &vpc.id, cidr("10.2.0.0/24"), "us-east-1a", &none)),
        Ec2Error::SubnetRange("10.2.0.0/24".into())
    );
    assert_eq!(
        err(store.create_subnet(&a, &r, &vpc.id, cidr("10.1.2.128/25"), "us-east-1a", &none)),
        Ec2Error::SubnetConflict("10.1.2.128/25".into())
    );
    assert_eq!(
        err(store.create_subnet(&a, &r, "vpc-0", cidr("10.1.3.0/24"), "us-east-1a", &none)),
        Ec2Error::NoVpc("vpc-0".into())
    );
    let sg = store
        .create_security_group(&a, &r, &vpc.id, "db", "to the database", &none)
        .unwrap();
    assert!(matches!(
        err(store.create_security_group(&a, &r, &vpc.id, "db", "again", &none)),
        Ec2Error::DuplicateGroup { .. }
    ));
    let default = groups[0].id.clone();
    assert_eq!(
        err(store.delete_security_group(&a, &r, &default)),
        Ec2Error::DefaultGroup(default.clone())
    );

    // Another account sees none of it and cannot touch it.
    let (b, _) = who("222222222222");
    assert!(store.vpcs(&b, &r).unwrap().is_empty());
    assert!(store.subnets(&b, &r).unwrap().is_empty());
    assert!(store.security_groups(&b, &r).unwrap().is_empty());
    assert_eq!(
        err(store.delete_vpc(&b, &r, &vpc.id)),
        Ec2Error::NoVpc(vpc.id.clone())
    );
    assert_eq!(
        err(store.vpc_access(&b, &r, &config(&[&sub.id], &[&sg.id]))),
        Ec2Error::NoSubnet(sub.id.clone())
    );

    // A VPC goes only once its subnets and its own groups are gone; its default group goes
    // with it.
    assert_eq!(
        err(store.delete_vpc(&a, &r, &vpc.id)),
        Ec2Error::Dependency(vpc.id.clone())
    );
    store.delete_subnet(&a, &r, &sub.id).unwrap();
    assert_eq!(
        err(store.delete_vpc(&a, &r, &vpc.id)),
        Ec2Error::Dependency(vpc.id.clone())
    );
    store.delete_security_group(&a, &r, &sg.id).unwrap();
    store.delete_vpc(&a, &r, &vpc.id).unwrap();
    assert!(store.vpcs(&a, &r).unwrap().is_empty());
    assert!(store.security_groups(&a, &r).unwrap().is_empty());
}

#[test]
fn rules_are_added_and_removed_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, r) = who("111111111111");
    let none = BTreeMap::new();
    let vpc = store
        .create_vpc(&a, &r, cidr("10.1.0.0/16"), &none)
        .unwrap();
    let sg = store
        .create_security_group(&a, &r, &vpc.id, "app", "app", &none)
        .unwrap();
    let e = Direction::Egress;
    let db = tcp(5432, "10.1.2.0/24");
    let added = store
        .authorize_rules(&a, &r, &sg.id, e, &[(db.clone(), "postgres".into())])
        .unwrap();
    assert!(added[0].id.starts_with("sgr-"));
    // A batch with one duplicate adds nothing.
    let dns = Rule {
        protocol: "udp".into(),
        from_port: Some(53),
        to_port: Some(53),
        cidr: "10.1.0.2/32".into(),
    };
    assert_eq!(
        err(store.authorize_rules(
            &a,
            &r,
            &sg.id,
            e,
            &[(dns.clone(), String::new()), (db.clone(), String::new())]
        )),
        Ec2Error::DuplicateRule(db.clone())
    );
    let rules = store.security_group_rules(&a, &r, &sg.id).unwrap();
    assert_eq!(
        rules.egress,
        vec![
            EgressRule {
                protocol: "-1".into(),
                from_port: None,
                to_port: None,
                cidrs: vec!["0.0.0.0/0".into()],
            },
            EgressRule {
                protocol: "tcp".into(),
                from_port: Some(5432),
                to_port: Some(5432),
                cidrs: vec!["10.1.2.0/24".into()],
            },
        ]
    );
    // Ingress rules are kept apart and never show as egress.
    store
        .authorize_rules(
            &a,
            &r,
            &sg.id,
            Direction::Ingress,
            &[(tcp(22, "0.0.0.0/0"), String::new())],
        )
        .unwrap();
    assert_eq!(
        store
            .security_group_rules(&a, &r, &sg.id)
            .unwrap()
            .egress
            .len(),
        2
    );

    // A batch with one missing rule removes nothing.
    assert_eq!(
        err(store.revoke_rules(&a, &r, &sg.id, e, &[allow_all(), dns.clone()], &[])),
        Ec2Error::MissingRule(dns)
    );
    assert_eq!(
        store
            .security_group_rules(&a, &r, &sg.id)
            .unwrap()
            .egress
            .len(),
        2
    );
    let removed = store
        .revoke_rules(&a, &r, &sg.id, e, &[allow_all()], &[])
        .unwrap();
    assert_eq!(removed.len(), 1);
    let by_id = store
        .revoke_rules(&a, &r, &sg.id, e, &[], std::slice::from_ref(&added[0].id))
        .unwrap();
    assert_eq!(by_id[0].rule, db);
    assert!(
        store
            .security_group_rules(&a, &r, &sg.id)
            .unwrap()
            .egress
            .is_empty()
    );
    assert_eq!(
        err(store.revoke_rules(&a, &r, &sg.id, e, &[], &["sgr-0".into()])),
        Ec2Error::NoRule("sgr-0".into())
    );
    assert_eq!(
        err(store.security_group_rules(&a, &r, "sg-0")),
        Ec2Error::NoGroup("sg-0".into())
    );
}

#[test]
fn vpc_access_resolves_subnets_groups_interfaces_and_nat() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, r) = who("111111111111");
    let none = BTreeMap::new();
    let vpc = store
        .create_vpc(&a, &r, cidr("10.1.0.0/16"), &none)
        .unwrap();
    let bound = BTreeMap::from([(INTERFACE_TAG.to_owned(), "br-db".to_owned())]);
    let s1 = store
        .create_subnet(&a, &r, &vpc.id, cidr("10.1.1.0/24"), "us-east-1a", &bound)
        .unwrap();
    let s2 = store
        .create_subnet(&a, &r, &vpc.id, cidr("10.1.2.0/24"), "us-east-1a", &none)
        .unwrap();
    let sg = store
        .create_security_group(&a, &r, &vpc.id, "app", "app", &none)
        .unwrap();
    let access = store
        .vpc_access(&a, &r, &config(&[&s1.id, &s2.id, &s1.id], &[&sg.id]))
        .unwrap();
    assert_eq!(
        access,
        VpcAccess {
            vpc_id: vpc.id.clone(),
            cidrs: vec!["10.1.0.0/16".into()],
            subnets: vec![
                SubnetAccess {
                    id: s1.id.clone(),
                    cidr: "10.1.1.0/24".into(),
                    interface: Some("br-db".into()),
                    declared: false,
                },
                SubnetAccess {
                    id: s2.id.clone(),
                    cidr: "10.1.2.0/24".into(),
                    interface: None,
                    declared: false,
                },
            ],
            security_group_ids: vec![sg.id.clone()],
            nat: false,
        }
    );

    // A public NAT gateway opens the internet; a private one or a deleted one does not.
    let private = store
        .create_nat_gateway(&a, &r, &s2.id, "private", &none)
        .unwrap();
    assert!(
        !store
            .vpc_access(&a, &r, &config(&[&s1.id], &[&sg.id]))
            .unwrap()
            .nat
    );
    let nat = store
        .create_nat_gateway(&a, &r, &s2.id, "public", &none)
        .unwrap();
    assert!(nat.id.starts_with("nat-"));
    assert!(
        store
            .vpc_access(&a, &r, &config(&[&s1.id], &[&sg.id]))
            .unwrap()
            .nat
    );
    assert_eq!(
        err(store.delete_subnet(&a, &r, &s2.id)),
        Ec2Error::Dependency(s2.id.clone())
    );
    store.delete_nat_gateway(&a, &r, &nat.id).unwrap();
    store.delete_nat_gateway(&a, &r, &private.id).unwrap();
    assert!(
        !store
            .vpc_access(&a, &r, &config(&[&s1.id], &[&sg.id]))
            .unwrap()
            .nat
    );
    let listed = store.nat_gateways(&a, &r).unwrap();
    assert!(
        listed
            .iter()
            .all(|n| n.state == "deleted" && n.deleted_ms.is_some())
    );
    assert_eq!(
        err(store.delete_nat_gateway(&a, &r, "nat-0")),
        Ec2Error::NoNatGateway("nat-0".into())
    );

    // Tags bind and unbind the interface.
    store
        .change_tags(
            &a,
            &r,
            std::slice::from_ref(&s2.id),
            &BTreeMap::from([(INTERFACE_TAG.into(), "eth1".into())]),
            &[],
        )
        .unwrap();
    store
        .change_tags(
            &a,
            &r,
            std::slice::from_ref(&s1.id),
            &none,
            &[(INTERFACE_TAG.into(), None)],
        )
        .unwrap();
    let access = store
        .vpc_access(&a, &r, &config(&[&s1.id, &s2.id], &[&sg.id]))
        .unwrap();
    assert_eq!(access.subnets[0].interface, None);
    assert_eq!(access.subnets[1].interface.as_deref(), Some("eth1"));
    let tagged = store.tagged(&a, &r).unwrap();
    assert_eq!(tagged.len(), 1);
    assert_eq!(
        (tagged[0].id.as_str(), tagged[0].kind),
        (s2.id.as_str(), ResourceKind::Subnet)
    );
    assert_eq!(
        err(store.change_tags(&a, &r, &["vpc-0".into(), s1.id.clone()], &bound, &[])),
        Ec2Error::NoVpc("vpc-0".into())
    );
    assert_eq!(
        err(store.change_tags(&a, &r, &["i-0".into()], &bound, &[])),
        Ec2Error::UnknownId("i-0".into())
    );

    // Missing objects, subnets first; then one VPC for all.
    assert_eq!(
        err(store.vpc_access(&a, &r, &config(&["subnet-0"], &["sg-0"]))),
        Ec2Error::NoSubnet("subnet-0".into())
    );
    assert_eq!(
        err(store.vpc_access(&a, &r, &config(&[&s1.id], &["sg-0"]))),
        Ec2Error::NoGroup("sg-0".into())
    );
    let other = store
        .create_vpc(&a, &r, cidr("10.9.0.0/16"), &none)
        .unwrap();
    let s9 = store
        .create_subnet(&a, &r, &other.id, cidr("10.9.1.0/24"), "us-east-1a", &none)
        .unwrap();
    let sg9 = store
        .create_security_group(&a, &r, &other.id, "app", "app", &none)
        .unwrap();
    assert_eq!(
        err(store.vpc_access(&a, &r, &config(&[&s1.id, &s9.id], &[&sg.id]))),
        Ec2Error::SubnetsInManyVpcs
    );
    assert_eq!(
        err(store.vpc_access(&a, &r, &config(&[&s1.id], &[&sg.id, &sg9.id]))),
        Ec2Error::GroupsInOtherVpc
    );
}

#[test]
fn objects_a_function_uses_cannot_be_deleted_and_old_specs_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, r) = who("000000000000");
    let none = BTreeMap::new();
    let vpc = store
        .create_vpc(&a, &r, cidr("10.1.0.0/16"), &none)
        .unwrap();
    let sub = store
        .create_subnet(&a, &r, &vpc.id, cidr("10.1.1.0/24"), "us-east-1a", &none)
        .unwrap();
    let sg = store
        .create_security_group(&a, &r, &vpc.id, "app", "app", &none)
        .unwrap();
    let key = FunctionKey {
        account: a.clone(),
        region: r.clone(),
        name: FunctionName::parse("f").unwrap(),
    };
    let plain = create_plain(&store, &key);

    // A row written before functions had a VpcConfig loads without one.
    let mut old = serde_json::to_value(&plain.spec).unwrap();
    assert!(old.as_object_mut().unwrap().remove("vpc_config").is_none());
    store
        .conn()
        .execute(
            "UPDATE function_versions SET spec = ?1",
            params![old.to_string()],
        )
        .unwrap();
    assert_eq!(
        store.get_function(&key).unwrap().unwrap().spec.vpc_config,
        None
    );

    store
        .update_spec(&key, None, |cur| {
            let mut spec = cur.spec.clone();
            spec.vpc_config = Some(config(&[&sub.id], &[&sg.id]));
            Ok(spec)
        })
        .unwrap();
    assert_eq!(
        err(store.delete_security_group(&a, &r, &sg.id)),
        Ec2Error::Dependency(sg.id.clone())
    );
    assert_eq!(
        err(store.delete_subnet(&a, &r, &sub.id)),
        Ec2Error::Dependency(sub.id.clone())
    );
    // A published version keeps them in use after `$LATEST` leaves the VPC.
    store.publish_version(&key, None, None, None).unwrap();
    store
        .update_spec(&key, None, |cur| {
            let mut spec = cur.spec.clone();
            spec.vpc_config = None;
            Ok(spec)
        })
        .unwrap();
    assert!(matches!(
        err(store.delete_security_group(&a, &r, &sg.id)),
        Ec2Error::Dependency(_)
    ));
    store.delete_function(&key).unwrap();
    store.delete_security_group(&a, &r, &sg.id).unwrap();
    store.delete_subnet(&a, &r, &sub.id).unwrap();
}

#[test]
fn ec2_quotas_bound_what_an_account_makes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, r) = who("111111111111");
    let none = BTreeMap::new();
    let vpcs: Vec<Vpc> = (0..Quota::Vpcs.limit())
        .map(|i| {
            store
                .create_vpc(&a, &r, cidr(&format!("10.{i}.0.0/16")), &none)
                .unwrap()
        })
        .collect();
    assert_eq!(
        err(store.create_vpc(&a, &r, cidr("10.99.0.0/16"), &none)),
        Ec2Error::Quota(Quota::Vpcs)
    );
    // Another account has its own.
    let (b, _) = who("222222222222");
    store
        .create_vpc(&b, &r, cidr("10.99.0.0/16"), &none)
        .unwrap();

    // Rules: one per CIDR, 60 a direction; a batch past it adds none.
    let sg = store
        .create_security_group(&a, &r, &vpcs[0].id, "app", "app", &none)
        .unwrap();
    let many: Vec<(Rule, String)> = (0..Quota::Rules.limit())
        .map(|i| (tcp(443, &format!("10.0.{i}.0/24")), String::new()))
        .collect();
    // The new group's allow-all rule is one already.
    assert_eq!(
        err(store.authorize_rules(&a, &r, &sg.id, Direction::Egress, &many)),
        Ec2Error::Quota(Quota::Rules)
    );
    store
        .authorize_rules(&a, &r, &sg.id, Direction::Egress, &many[1..])
        .unwrap();
    store
        .authorize_rules(&a, &r, &sg.id, Direction::Ingress, &many)
        .unwrap();

    // Tags: 50 a resource, whether given at once or added.
    let tags = |n: usize| -> BTreeMap<String, String> {
        (0..n).map(|i| (format!("k{i}"), String::new())).collect()
    };
    let subnet = store
        .create_subnet(
            &a,
            &r,
            &vpcs[0].id,
            cidr("10.0.1.0/24"),
            "us-east-1a",
            &tags(50),
        )
        .unwrap();
    let more = BTreeMap::from([("one-more".to_owned(), String::new())]);
    assert_eq!(
        err(store.change_tags(&a, &r, std::slice::from_ref(&subnet.id), &more, &[])),
        Ec2Error::Quota(Quota::Tags)
    );
    assert_eq!(
        err(store.create_security_group(&a, &r, &vpcs[0].id, "t", "t", &tags(51))),
        Ec2Error::Quota(Quota::Tags)
    );

    // NAT gateways: five live a VPC; a deleted one makes room.
    let nats: Vec<NatGateway> = (0..Quota::NatGateways.limit())
        .map(|_| {
            store
                .create_nat_gateway(&a, &r, &subnet.id, "public", &none)
                .unwrap()
        })
        .collect();
    assert_eq!(
        err(store.create_nat_gateway(&a, &r, &subnet.id, "public", &none)),
        Ec2Error::Quota(Quota::NatGateways)
    );
    store.delete_nat_gateway(&a, &r, &nats[0].id).unwrap();
    store
        .create_nat_gateway(&a, &r, &subnet.id, "public", &none)
        .unwrap();
}
