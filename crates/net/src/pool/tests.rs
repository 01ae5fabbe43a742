use super::profiles::{MAX_PROFILES_PER_VPC, MAX_SPARE_PROFILES};
use super::*;
use crate::host::RecordingHost;
use crate::{Egress, Protocol};

fn start(host: RecordingHost, spare: usize) -> Network {
    Network::start(
        NetConfig {
            pool: "10.254.0.0/29".parse().unwrap(),
            spare,
            resolvers: vec![],
            connections: crate::DEFAULT_CONNECTIONS,
        },
        move || Ok(Box::new(host) as Box<dyn Host>),
    )
    .expect("start")
}

#[test]
fn a_pool_too_wide_for_interface_names_is_refused() {
    let host = RecordingHost::default();
    let r = Network::start(
        NetConfig {
            pool: "10.0.0.0/8".parse().unwrap(),
            spare: 1,
            resolvers: vec![],
            connections: crate::DEFAULT_CONNECTIONS,
        },
        move || Ok(Box::new(host) as Box<dyn Host>),
    );
    assert!(r.is_err());
}

#[test]
fn leases_are_never_reused_and_their_interfaces_go_when_they_end() {
    let host = RecordingHost::default();
    let net = start(host.clone(), 0);
    let a = net.take(0, "f1").unwrap();
    let b = net.take(0, "f2").unwrap();
    assert_ne!(a.address, b.address);
    assert_eq!(a.address, "10.254.0.1".parse::<Ipv4Addr>().unwrap());
    host.bytes
        .lock()
        .unwrap()
        .insert(a.interface().to_owned(), (100, 7));
    let name = a.interface().to_owned();
    drop(a);
    // The release is processed before the next request.
    let t = net.traffic();
    assert_eq!(
        t,
        vec![
            Traffic {
                owner: "f1".into(),
                sent: 100,
                received: 7
            },
            Traffic {
                owner: "f2".into(),
                sent: 0,
                received: 0
            }
        ]
    );
    let calls = host.calls();
    assert!(calls.contains(&format!("release {name}")), "{calls:?}");
    assert!(calls[0] == "forwarding on" && calls[1].starts_with("nft "));
    net.stop();
    assert!(
        host.calls()
            .last()
            .unwrap()
            .contains(r#"{"delete":{"table""#)
    );
}

/// A deleted function's traffic goes with it, that of its sandboxes still running included, so
/// that functions made and deleted in a loop leave nothing behind in the network thread.
#[test]
fn a_forgotten_owners_traffic_goes_with_its_leases_still_out() {
    let host = RecordingHost::default();
    let net = start(host.clone(), 0);
    let ended = net.take(0, "f1").unwrap();
    let running = net.take(0, "f1").unwrap();
    let other = net.take(0, "f2").unwrap();
    for (lease, bytes) in [(&ended, (100, 7)), (&running, (50, 5)), (&other, (3, 1))] {
        host.bytes
            .lock()
            .unwrap()
            .insert(lease.interface().to_owned(), bytes);
    }
    drop(ended);
    let owners = |t: Vec<Traffic>| t.into_iter().map(|t| t.owner).collect::<Vec<_>>();
    assert_eq!(owners(net.traffic()), ["f1", "f2"]);
    net.forget("f1");
    assert_eq!(owners(net.traffic()), ["f2"]);
    // Its sandbox still running ends after: its bytes count for no one.
    drop(running);
    let t = net.traffic();
    assert_eq!(
        t,
        [Traffic {
            owner: "f2".into(),
            sent: 3,
            received: 1
        }]
    );
    drop(other);
    net.stop();
}

#[test]
fn an_exhausted_pool_says_so() {
    let net = start(RecordingHost::default(), 0);
    // A /29 holds four pairs.
    let _held: Vec<Lease> = (0..4).map(|_| net.take(0, "f").unwrap()).collect();
    let e = net.take(0, "f").unwrap_err();
    assert!(e.to_string().contains("network.pool"), "{e}");
}

#[test]
fn profiles_are_made_once_and_groups_update_in_place() {
    let host = RecordingHost::default();
    let net = start(host.clone(), 0);
    let vpc = VpcProfile {
        account: "111111111111".into(),
        vpc_id: "vpc-1".into(),
        cidrs: vec!["10.1.0.0/16".parse().unwrap()],
        interfaces: vec![],
        security_groups: vec!["sg-1".into()],
        nat: false,
    };
    let sg = || {
        vec![SecurityGroup {
            id: "sg-1".into(),
            egress: vec![Egress {
                protocol: Protocol::Tcp,
                ports: Some((5432, 5432)),
                cidr: "10.1.2.0/24".parse().unwrap(),
            }],
        }]
    };
    assert_eq!(net.profile(None, Vec::new).unwrap(), 0);
    let id = net.profile(Some(&vpc), sg).unwrap();
    let again = net
        .profile(
            Some(&VpcProfile {
                nat: true,
                ..vpc.clone()
            }),
            || panic!("made twice"),
        )
        .unwrap();
    assert_eq!(id, again);
    let lease = net.take(id, "f").unwrap();
    assert!(lease.interface().starts_with(&format!("lv{id:04x}")));
    assert_eq!(net.in_use(), (vec!["sg-1".into()], vec!["vpc-1".into()]));
    net.update(&sg(), &[("vpc-1".into(), true)]).unwrap();
    let last = host
        .calls()
        .into_iter()
        .rfind(|c| c.starts_with("nft "))
        .unwrap();
    assert!(
        last.contains(r#""chain":"nat-vpc-1","expr":[{"return":null}]"#),
        "{last}"
    );
}

fn vpc(id: &str, group: usize) -> VpcProfile {
    VpcProfile {
        account: "111111111111".into(),
        vpc_id: id.into(),
        cidrs: vec!["10.1.0.0/16".parse().unwrap()],
        interfaces: vec![],
        security_groups: vec![format!("sg-{group}")],
        nat: false,
    }
}

#[test]
fn only_recently_used_profiles_keep_a_namespace_ready() {
    let host = RecordingHost::default();
    let net = Network::start(
        NetConfig {
            pool: "10.254.0.0/24".parse().unwrap(),
            spare: 1,
            resolvers: vec![],
            connections: crate::DEFAULT_CONNECTIONS,
        },
        move || Ok(Box::new(host) as Box<dyn Host>),
    )
    .expect("start");
    for g in 0..MAX_SPARE_PROFILES + 8 {
        let id = net.profile(Some(&vpc("vpc-1", g)), Vec::new).unwrap();
        drop(net.take(id, "f").unwrap());
    }
    // The network thread fills one namespace per pass; wait for it to settle.
    let ready = |net: &Network| {
        let r = net.shared.ready.lock().unwrap();
        (r.values().map(Vec::len).sum::<usize>(), r.len())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while ready(&net).0 < MAX_SPARE_PROFILES + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    // One for each of the sixteen most recent profiles, one for the default; no more.
    assert_eq!(
        ready(&net),
        (MAX_SPARE_PROFILES + 1, MAX_SPARE_PROFILES + 1)
    );
    net.stop();
}

#[test]
fn profiles_are_bounded_per_vpc() {
    let net = start(RecordingHost::default(), 0);
    for g in 0..MAX_PROFILES_PER_VPC {
        net.profile(Some(&vpc("vpc-1", g)), Vec::new).unwrap();
    }
    // One already made is still found.
    net.profile(Some(&vpc("vpc-1", 0)), Vec::new).unwrap();
    let e = net
        .profile(Some(&vpc("vpc-1", MAX_PROFILES_PER_VPC)), Vec::new)
        .unwrap_err();
    assert!(e.to_string().contains("vpc-1"), "{e}");
    net.profile(Some(&vpc("vpc-2", 0)), Vec::new).unwrap();
    net.stop();
}

#[test]
fn profiles_are_bounded_per_account_and_others_still_get_theirs() {
    use super::profiles::MAX_PROFILES_PER_ACCOUNT;
    let net = start(RecordingHost::default(), 0);
    // One account's VPCs (in as many regions as it likes) reach the account's bound.
    let per_vpc = MAX_PROFILES_PER_VPC;
    for i in 0..MAX_PROFILES_PER_ACCOUNT {
        let v = vpc(&format!("vpc-{}", i / per_vpc), i % per_vpc);
        net.profile(Some(&v), Vec::new).unwrap();
    }
    let next = vpc(&format!("vpc-{}", MAX_PROFILES_PER_ACCOUNT / per_vpc), 0);
    let e = net.profile(Some(&next), Vec::new).unwrap_err();
    assert!(e.to_string().contains("111111111111"), "{e}");
    let other = VpcProfile {
        account: "222222222222".into(),
        ..vpc("vpc-b", 0)
    };
    net.profile(Some(&other), Vec::new).unwrap();
    net.stop();
}

#[test]
fn only_interfaces_of_the_sandboxes_form_are_ours() {
    assert!(crate::is_sandbox_interface(&crate::interface_name(3, 0x1f)));
    assert!(!crate::is_sandbox_interface("lvnet0"));
    assert!(!crate::is_sandbox_interface("lv0001000g"));
}

/// A network without spares that collects profiles idle for 300 ms.
fn collecting(host: &RecordingHost) -> Network {
    let host = host.clone();
    Network::start_collecting_after(
        NetConfig {
            pool: "10.254.0.0/24".parse().unwrap(),
            spare: 0,
            resolvers: vec![],
            connections: crate::DEFAULT_CONNECTIONS,
        },
        move || Ok(Box::new(host) as Box<dyn Host>),
        Duration::from_millis(300),
    )
    .expect("start")
}

#[test]
fn profiles_no_environment_holds_are_collected_with_their_chains() {
    let host = RecordingHost::default();
    let net = collecting(&host);
    // A VPC's whole quota of combinations, one of them held by a lease.
    for g in 0..MAX_PROFILES_PER_VPC {
        net.profile(Some(&vpc("vpc-1", g)), Vec::new).unwrap();
    }
    // Another VPC, none of whose profiles is held.
    net.profile(Some(&vpc("vpc-2", 100)), Vec::new).unwrap();
    let held = net.known(&vpc("vpc-1", 0)).unwrap();
    let lease = net.take(held, "f").unwrap();
    let idle = net.known(&vpc("vpc-1", 1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Looked for without `known`, which counts as a use.
    while net.shared.profiles().ids.contains_key(&vpc("vpc-1", 1)) {
        assert!(
            Instant::now() < deadline,
            "idle profiles were never collected"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The held one stays; the others' chains went, and their room is free again; so did the
    // chains of the groups and the VPC no profile left refers to, and only those.
    assert_eq!(net.known(&vpc("vpc-1", 0)), Some(held));
    let deleted = |name: &str| {
        let call = format!(
            r#"{{"delete":{{"chain":{{"family":"inet","table":"lamina","name":"{name}"}}}}}}"#
        );
        host.calls().iter().any(|c| c.contains(&call))
    };
    while !deleted("sg-sg-1") {
        assert!(
            Instant::now() < deadline,
            "unused groups' chains were never collected: {:?}",
            host.calls()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(deleted("prof-2"));
    assert!(deleted("sg-sg-100"));
    assert!(deleted("nat-vpc-2"));
    assert!(
        !deleted("sg-sg-0"),
        "a held profile's group keeps its chain"
    );
    assert!(
        !deleted("nat-vpc-1"),
        "a held profile's VPC keeps its chain"
    );
    // A group an update wrote after its profile went is collected in turn.
    net.update(
        &[SecurityGroup {
            id: "sg-late".into(),
            egress: vec![],
        }],
        &[],
    )
    .unwrap();
    while !deleted("sg-sg-late") {
        assert!(
            Instant::now() < deadline,
            "a late group's chain was never collected"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A profile collected after its id was looked up takes no namespace.
    assert!(net.take(idle, "f").is_err());
    let again = net
        .profile(Some(&vpc("vpc-1", MAX_PROFILES_PER_VPC)), Vec::new)
        .unwrap();
    assert_ne!(again, held);
    drop(lease);
    net.stop();
}

#[test]
fn addresses_never_used_go_before_used_ones() {
    let net = start(RecordingHost::default(), 0);
    let first = net.take(0, "f").unwrap();
    let used = first.address;
    drop(first);
    // Rested long enough to be used again, its interface gone.
    std::thread::sleep(COOLING + Duration::from_millis(200));
    let next = net.take(0, "g").unwrap();
    assert_ne!(
        next.address, used,
        "an address the pool has not gone round to"
    );
    net.stop();
}

#[test]
fn an_address_used_again_starts_without_its_last_sandboxs_connections() {
    let host = RecordingHost::default();
    let net = start(host.clone(), 0);
    // At start, whatever an earlier server's sandboxes left.
    assert!(
        host.calls()
            .contains(&"forget connections from 10.254.0.0/29".to_owned()),
        "{:?}",
        host.calls()
    );
    // A /29 holds four pairs: the fifth lease takes the first address again.
    let first = net.take(0, "a").unwrap();
    let used = first.address;
    drop(first);
    let others: Vec<_> = (0..3).map(|_| net.take(0, "b").unwrap()).collect();
    std::thread::sleep(COOLING + Duration::from_millis(200));
    let again = net.take(0, "c").unwrap();
    assert_eq!(again.address, used);
    let calls = host.calls();
    let forget = calls
        .iter()
        .position(|c| *c == format!("forget connections from {used}/32"))
        .unwrap_or_else(|| panic!("{calls:?}"));
    let create = calls
        .iter()
        .rposition(|c| c.starts_with("create ") && c.ends_with(&format!(" {used}")))
        .unwrap();
    assert!(forget < create, "{calls:?}");
    drop((others, again));
    net.stop();
}

#[test]
fn a_collection_the_firewall_refused_is_tried_again() {
    let host = RecordingHost::default();
    let net = collecting(&host);
    let id = net.profile(Some(&vpc("vpc-1", 0)), Vec::new).unwrap();
    // The next two batches fail: the collection's, and its removal of the profile alone. Its
    // chains are then kept, with its id and references, for a later collection.
    host.failing_batches
        .store(2, std::sync::atomic::Ordering::SeqCst);
    let forget = format!(
        r#"{{"delete":{{"chain":{{"family":"inet","table":"lamina","name":"prof-{id}"}}}}}}"#
    );
    let tries = || host.calls().iter().filter(|c| c.contains(&forget)).count();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tries() < 2 {
        assert!(
            Instant::now() < deadline,
            "no collection: {:?}",
            host.calls()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    {
        let profiles = net.shared.profiles();
        assert!(profiles.unforgotten.contains_key(&id), "kept for later");
        assert_ne!(
            profiles.free_id(),
            id,
            "its chains still stand under its id"
        );
    }
    while tries() < 3 {
        assert!(
            Instant::now() < deadline,
            "a refused collection was not tried again: {:?}",
            host.calls()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Once removed, the chains are not removed again, and the id is free.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(tries(), 3);
    assert!(net.shared.profiles().unforgotten.is_empty());
    net.stop();
}

#[test]
fn an_update_the_firewall_refused_is_applied_again() {
    let host = RecordingHost::default();
    let net = collecting(&host);
    let id = net.profile(Some(&vpc("vpc-1", 0)), Vec::new).unwrap();
    let _lease = net.take(id, "f").unwrap();
    let group = |ports: &[u16]| SecurityGroup {
        id: "sg-0".into(),
        egress: ports
            .iter()
            .map(|p| Egress {
                protocol: Protocol::Tcp,
                ports: Some((*p, *p)),
                cidr: "10.1.0.0/16".parse().unwrap(),
            })
            .collect(),
    };
    let port = |p: u16| format!(r#""field":"dport"}}}},"right":{p},"op":"=="}}}}"#);
    let with_port = |p: u16| host.calls().iter().filter(|c| c.contains(&port(p))).count();
    // The rules the group's chain was last written with.
    let last = || {
        host.calls()
            .into_iter()
            .rfind(|c| {
                c.contains(
                    r#""flush":{"chain":{"family":"inet","table":"lamina","name":"sg-sg-0"}}"#,
                )
            })
            .unwrap()
    };
    let fail_next = || {
        host.failing_batches
            .store(1, std::sync::atomic::Ordering::SeqCst)
    };
    fail_next();
    assert!(net.update(&[group(&[5432])], &[]).is_err());
    let deadline = Instant::now() + Duration::from_secs(10);
    while with_port(5432) < 2 {
        assert!(
            Instant::now() < deadline,
            "a refused update was not applied again: {:?}",
            host.calls()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Once applied, it is not applied again.
    let applied = with_port(5432);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(with_port(5432), applied);
    // A refused change that a later one supersedes, by an update or by a profile made with
    // the store's rules, is never applied after it.
    fail_next();
    assert!(net.update(&[group(&[7000])], &[]).is_err());
    assert!(net.update(&[group(&[7001])], &[]).is_ok());
    std::thread::sleep(Duration::from_millis(500));
    assert!(last().contains(&port(7001)), "{}", last());
    fail_next();
    assert!(net.update(&[group(&[7002])], &[]).is_err());
    net.profile(Some(&vpc("vpc-2", 0)), || vec![group(&[])])
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(!last().contains("dport"), "{}", last());
    net.stop();
}
