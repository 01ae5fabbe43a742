//! Tests of the declared objects: applying them is idempotent, updates what may change, refuses
//! what may not, retires what the file no longer declares; and the API's operations leave them
//! alone.

use std::collections::BTreeMap;

use lamina_model::{AccountId, FunctionName, Ipv4Cidr, Region, VpcConfig};

use super::*;
use crate::ec2::{Direction, Ec2Error, SecurityGroup};
use crate::functions::tests::create_plain;
use crate::{FunctionKey, Store};

fn who() -> (AccountId, Region) {
    (
        AccountId::parse("000000000000").unwrap(),
        Region::parse("us-east-1").unwrap(),
    )
}

fn cidr(s: &str) -> Ipv4Cidr {
    Ipv4Cidr::parse(s).unwrap()
}

fn tcp(port: i32, to: &str) -> (Rule, String) {
    (
        Rule {
            protocol: "tcp".into(),
            from_port: Some(port),
            to_port: Some(port),
            cidr: to.into(),
        },
        String::new(),
    )
}

/// `vpc-db` with `subnet-db` (on `br-db`), `sg-db` (TCP 5432 to the subnet) and `nat-db`.
fn declared() -> Declared {
    let (account, region) = who();
    Declared {
        vpcs: vec![DeclaredVpc {
            id: "vpc-db".into(),
            account,
            region,
            cidr: cidr("10.1.0.0/16"),
        }],
        subnets: vec![DeclaredSubnet {
            id: "subnet-db".into(),
            vpc: "vpc-db".into(),
            cidr: cidr("10.1.2.0/24"),
            availability_zone: "us-east-1a".into(),
            interface: Some("br-db".into()),
        }],
        security_groups: vec![DeclaredGroup {
            id: "sg-db".into(),
            vpc: "vpc-db".into(),
            name: "db".into(),
            description: "the database".into(),
            egress: vec![tcp(5432, "10.1.2.0/24")],
        }],
        nat_gateways: vec![DeclaredNat {
            id: "nat-db".into(),
            subnet: "subnet-db".into(),
            connectivity: "public".into(),
        }],
    }
}

fn group(store: &Store, id: &str) -> SecurityGroup {
    let (a, r) = who();
    store
        .security_groups(&a, &r)
        .unwrap()
        .into_iter()
        .find(|g| g.id == id)
        .unwrap()
}

fn conflict_of(r: std::result::Result<Applied, ApplyError>) -> (ResourceKind, String, String) {
    match r {
        Err(ApplyError::Conflict { kind, id, message }) => (kind, id, message),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn refused<T: std::fmt::Debug>(r: std::result::Result<T, StoreError>) -> Ec2Error {
    match r {
        Err(StoreError::Ec2(e)) => e,
        other => panic!("expected an EC2 refusal, got {other:?}"),
    }
}

#[test]
fn declared_objects_are_created_with_their_ids_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, r) = who();
    let d = declared();
    let done = store.apply_declared(&d).unwrap();
    assert_eq!(done.created, ["vpc-db", "subnet-db", "sg-db", "nat-db"]);

    let marked = BTreeMap::from([(SOURCE_TAG.to_owned(), SOURCE_CONFIG.to_owned())]);
    let vpcs = store.vpcs(&a, &r).unwrap();
    assert_eq!(vpcs.len(), 1);
    assert_eq!(
        (vpcs[0].id.as_str(), vpcs[0].cidr.as_str()),
        ("vpc-db", "10.1.0.0/16")
    );
    assert_eq!(vpcs[0].tags, marked);
    let subnets = store.subnets(&a, &r).unwrap();
    assert_eq!(subnets.len(), 1);
    assert_eq!(subnets[0].tags[INTERFACE_TAG], "br-db");
    assert!(from_config(&subnets[0].tags));
    let groups = store.security_groups(&a, &r).unwrap();
    assert_eq!(
        groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["default", "db"]
    );
    let sg = group(&store, "sg-db");
    assert_eq!(sg.egress.len(), 1);
    assert_eq!(sg.egress[0].rule, tcp(5432, "10.1.2.0/24").0);
    let nats = store.nat_gateways(&a, &r).unwrap();
    assert_eq!(
        (nats[0].id.as_str(), nats[0].state.as_str()),
        ("nat-db", "available")
    );
    assert_eq!(nats[0].vpc_id, "vpc-db");
    let access = store
        .vpc_access(
            &a,
            &r,
            &VpcConfig {
                subnet_ids: vec!["subnet-db".into()],
                security_group_ids: vec!["sg-db".into()],
                ipv6_allowed_for_dual_stack: false,
            },
        )
        .unwrap();
    assert!(access.nat);
    assert_eq!(access.subnets[0].interface.as_deref(), Some("br-db"));

    // Again: nothing to do, nothing doubled, rule ids kept.
    assert_eq!(store.apply_declared(&d).unwrap(), Applied::default());
    assert_eq!(store.security_groups(&a, &r).unwrap().len(), 2);
    assert_eq!(group(&store, "sg-db").egress, sg.egress);
    assert_eq!(store.nat_gateways(&a, &r).unwrap().len(), 1);

    // An omitted `egress` is the allow-all rule of a new group.
    let mut open = d.clone();
    open.security_groups[0].egress = vec![(super::super::groups::allow_all(), String::new())];
    open.security_groups[0].id = "sg-open".into();
    open.security_groups[0].name = "open".into();
    store.apply_declared(&open).unwrap();
    assert_eq!(group(&store, "sg-open").egress.len(), 1);
}

#[test]
fn what_may_change_is_updated_and_what_may_not_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, r) = who();
    store.apply_declared(&declared()).unwrap();

    let mut d = declared();
    d.subnets[0].interface = None;
    d.security_groups[0].egress = vec![tcp(5432, "10.1.2.0/24"), tcp(6432, "10.1.2.0/24")];
    d.security_groups[0].description = "pg".into();
    d.nat_gateways[0].connectivity = "private".into();
    let done = store.apply_declared(&d).unwrap();
    assert_eq!(done.updated, ["subnet-db", "sg-db", "nat-db"]);
    assert!(
        !store.subnets(&a, &r).unwrap()[0]
            .tags
            .contains_key(INTERFACE_TAG)
    );
    let sg = group(&store, "sg-db");
    assert_eq!((sg.egress.len(), sg.description.as_str()), (2, "pg"));
    assert_eq!(
        store.nat_gateways(&a, &r).unwrap()[0].connectivity,
        "private"
    );
    // No rules at all: the group allows nothing.
    d.security_groups[0].egress.clear();
    store.apply_declared(&d).unwrap();
    assert!(group(&store, "sg-db").egress.is_empty());

    // A CIDR change is refused, and nothing else of the same start is applied.
    let mut moved = d.clone();
    moved.subnets[0].interface = Some("br-other".into());
    moved.vpcs[0].cidr = cidr("10.2.0.0/16");
    let (kind, id, message) = conflict_of(store.apply_declared(&moved));
    assert_eq!((kind, id.as_str()), (ResourceKind::Vpc, "vpc-db"));
    assert!(
        message.contains("CIDR 10.1.0.0/16, the file says 10.2.0.0/16"),
        "{message}"
    );
    assert!(
        !store.subnets(&a, &r).unwrap()[0]
            .tags
            .contains_key(INTERFACE_TAG)
    );

    let mut moved = d.clone();
    moved.subnets[0].cidr = cidr("10.1.3.0/24");
    assert_eq!(
        conflict_of(store.apply_declared(&moved)).0,
        ResourceKind::Subnet
    );
    let mut moved = d.clone();
    moved.vpcs[0].account = AccountId::parse("111111111111").unwrap();
    let (_, _, message) = conflict_of(store.apply_declared(&moved));
    assert!(message.contains("an object cannot move"), "{message}");
}

#[test]
fn the_api_leaves_declared_objects_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, r) = who();
    store.apply_declared(&declared()).unwrap();
    let configured = |id: &str| Ec2Error::Configured(id.to_owned());
    assert_eq!(
        refused(store.delete_nat_gateway(&a, &r, "nat-db")),
        configured("nat-db")
    );
    assert_eq!(
        refused(store.delete_security_group(&a, &r, "sg-db")),
        configured("sg-db")
    );
    assert_eq!(
        refused(store.delete_subnet(&a, &r, "subnet-db")),
        configured("subnet-db")
    );
    assert_eq!(
        refused(store.delete_vpc(&a, &r, "vpc-db")),
        configured("vpc-db")
    );
    let rule = tcp(22, "10.1.2.0/24");
    assert_eq!(
        refused(store.authorize_rules(
            &a,
            &r,
            "sg-db",
            Direction::Egress,
            std::slice::from_ref(&rule)
        )),
        configured("sg-db")
    );
    assert_eq!(
        refused(store.revoke_rules(&a, &r, "sg-db", Direction::Ingress, &[rule.0], &[])),
        configured("sg-db")
    );
    let ids = ["subnet-db".to_owned()];
    let set = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    assert_eq!(
        refused(store.change_tags(&a, &r, &ids, &set(INTERFACE_TAG, "eth1"), &[])),
        configured("subnet-db")
    );
    assert_eq!(
        refused(store.change_tags(&a, &r, &ids, &BTreeMap::new(), &[(SOURCE_TAG.into(), None)])),
        configured("subnet-db")
    );
    // Other tags are free; unknown ids are still not found.
    store
        .change_tags(&a, &r, &ids, &set("Name", "db"), &[])
        .unwrap();
    assert_eq!(
        refused(store.delete_subnet(&a, &r, "subnet-nope")),
        Ec2Error::NoSubnet("subnet-nope".into())
    );
    // What the API makes in a declared VPC is the API's.
    let none = BTreeMap::new();
    let sub = store
        .create_subnet(&a, &r, "vpc-db", cidr("10.1.9.0/24"), "us-east-1a", &none)
        .unwrap();
    store.delete_subnet(&a, &r, &sub.id).unwrap();
    assert_eq!(
        store.apply_declared(&declared()).unwrap().updated,
        Vec::<String>::new()
    );
}

#[test]
fn undeclared_objects_are_removed_or_released_and_api_objects_adopted_or_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, r) = who();
    store.apply_declared(&declared()).unwrap();
    let none = BTreeMap::new();
    let api_vpc = store
        .create_vpc(&a, &r, cidr("10.9.0.0/16"), &none)
        .unwrap();

    // A function in the subnet and group keeps them (released); the NAT gateway is deleted.
    let key = FunctionKey {
        account: a.clone(),
        region: r.clone(),
        name: FunctionName::parse("f").unwrap(),
    };
    create_plain(&store, &key);
    store
        .update_spec(&key, None, |cur| {
            let mut spec = cur.spec.clone();
            spec.vpc_config = Some(VpcConfig {
                subnet_ids: vec!["subnet-db".into()],
                security_group_ids: vec!["sg-db".into()],
                ipv6_allowed_for_dual_stack: false,
            });
            Ok(spec)
        })
        .unwrap();
    let done = store.apply_declared(&Declared::default()).unwrap();
    assert_eq!(done.removed, ["nat-db"]);
    assert_eq!(done.released, ["sg-db", "subnet-db", "vpc-db"]);
    assert_eq!(store.nat_gateways(&a, &r).unwrap()[0].state, "deleted");
    assert!(!from_config(&group(&store, "sg-db").tags));
    assert_eq!(
        store.subnets(&a, &r).unwrap()[0].tags[INTERFACE_TAG],
        "br-db"
    );
    // Released: the API manages them now.
    store.delete_nat_gateway(&a, &r, "nat-db").unwrap();
    assert_eq!(
        store.apply_declared(&Declared::default()).unwrap(),
        Applied::default()
    );

    // Declared again: adopted, and the NAT gateway available again.
    let done = store.apply_declared(&declared()).unwrap();
    assert_eq!(done.adopted, ["vpc-db", "subnet-db", "sg-db", "nat-db"]);
    assert_eq!(store.nat_gateways(&a, &r).unwrap()[0].state, "available");

    // Unused: removed whole (the VPC with its default group). The API's VPC stays.
    store.delete_function(&key).unwrap();
    let done = store.apply_declared(&Declared::default()).unwrap();
    assert_eq!(done.removed, ["nat-db", "sg-db", "subnet-db", "vpc-db"]);
    let vpcs = store.vpcs(&a, &r).unwrap();
    assert_eq!(vpcs.len(), 1);
    assert_eq!(vpcs[0].id, api_vpc.id);
    assert!(
        store
            .security_groups(&a, &r)
            .unwrap()
            .iter()
            .all(|g| g.vpc_id == api_vpc.id)
    );
}

#[test]
fn declared_objects_do_not_take_what_the_api_made() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, r) = who();
    let mut d = declared();
    d.subnets.clear();
    d.nat_gateways.clear();
    d.security_groups.clear();
    store.apply_declared(&d).unwrap();
    let none = BTreeMap::new();
    let api_subnet = store
        .create_subnet(&a, &r, "vpc-db", cidr("10.1.2.0/25"), "us-east-1a", &none)
        .unwrap();
    store
        .create_security_group(&a, &r, "vpc-db", "db", "api's", &none)
        .unwrap();

    let (kind, id, message) = conflict_of(store.apply_declared(&declared()));
    assert_eq!((kind, id.as_str()), (ResourceKind::Subnet, "subnet-db"));
    assert_eq!(
        message,
        format!(
            "its CIDR 10.1.2.0/24 overlaps 10.1.2.0/25 of the subnet '{}' of the same VPC",
            api_subnet.id
        )
    );
    let mut d = declared();
    d.subnets[0].cidr = cidr("10.1.3.0/24");
    let (kind, _, message) = conflict_of(store.apply_declared(&d));
    assert_eq!(kind, ResourceKind::SecurityGroup);
    assert!(
        message.contains("another security group named 'db'"),
        "{message}"
    );
    // Nothing of the refused starts was kept.
    assert_eq!(store.subnets(&a, &r).unwrap().len(), 1);
}
