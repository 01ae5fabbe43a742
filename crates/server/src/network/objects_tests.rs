//! The lists of `[network]`: parsed from TOML, checked as a whole, errors naming the setting.

use crate::config::{Config, ConfigError, FileConfig, Overrides};

const FULL: &str = r#"
[network]
egress = false

[[network.vpcs]]
id = "vpc-db"
cidr = "10.1.0.0/16"

[[network.vpcs]]
id = "vpc-other"
cidr = "10.1.0.0/16"
account = "111111111111"
region = "eu-west-1"

[[network.subnets]]
id = "subnet-db"
vpc = "vpc-db"
cidr = "10.1.2.0/24"
interface = "br-db"

[[network.subnets]]
id = "subnet-db2"
vpc = "vpc-db"
cidr = "10.1.3.0/24"
availability_zone = "us-east-1c"

[[network.security_groups]]
id = "sg-db"
vpc = "vpc-db"
name = "db"
description = "the database"
egress = [
  { protocol = "tcp", from_port = 5432, to_port = 5432, cidr = "10.1.2.0/24", description = "pg" },
  { protocol = "17", from_port = 53, to_port = 53, cidr = "10.1.2.0/24" },
  { protocol = "icmp", cidr = "10.1.0.0/16" },
  { protocol = "all", from_port = 1, cidr = "192.0.2.0/24" },
]

[[network.security_groups]]
id = "sg-open"
vpc = "vpc-db"
name = "open"

[[network.security_groups]]
id = "sg-closed"
vpc = "vpc-db"
name = "closed"
egress = []

[[network.nat_gateways]]
id = "nat-db"
subnet = "subnet-db"
"#;

fn load(toml: &str) -> Result<Config, ConfigError> {
    let raw: FileConfig = toml::from_str(toml).expect("parses");
    Config::from_parts(raw, Overrides::default())
}

/// The setting and message of a refused configuration.
fn refused(toml: &str) -> (&'static str, String) {
    match load(toml) {
        Err(ConfigError::Invalid { setting, message }) => (setting, message),
        other => panic!("expected an invalid setting, got {other:?}"),
    }
}

#[test]
fn declared_objects_parse_with_ec2_defaults() {
    let d = load(FULL).unwrap().declared_vpcs;
    assert_eq!(d.vpcs.len(), 2);
    assert_eq!(
        (d.vpcs[0].account.as_str(), d.vpcs[0].region.as_str()),
        ("000000000000", "us-east-1")
    );
    assert_eq!(
        (d.vpcs[1].account.as_str(), d.vpcs[1].region.as_str()),
        ("111111111111", "eu-west-1")
    );
    assert_eq!(d.subnets[0].availability_zone, "us-east-1a");
    assert_eq!(d.subnets[0].interface.as_deref(), Some("br-db"));
    assert_eq!(d.subnets[1].availability_zone, "us-east-1c");
    assert_eq!(d.subnets[1].interface, None);

    let db = &d.security_groups[0];
    assert_eq!(
        (db.name.as_str(), db.description.as_str()),
        ("db", "the database")
    );
    let rules: Vec<String> = db
        .egress
        .iter()
        .map(|(r, d)| format!("{r} [{d}]"))
        .collect();
    assert_eq!(
        rules,
        [
            "tcp 10.1.2.0/24 5432-5432 [pg]",
            "udp 10.1.2.0/24 53-53 []",
            "icmp 10.1.0.0/16 -1--1 []",
            "-1 192.0.2.0/24 all []",
        ]
    );
    // Omitted: AWS's allow-all rule; empty: nothing.
    let open = &d.security_groups[1];
    assert_eq!(open.description, "open");
    assert_eq!(open.egress.len(), 1);
    assert_eq!(open.egress[0].0.to_string(), "-1 0.0.0.0/0 all");
    assert!(d.security_groups[2].egress.is_empty());
    assert_eq!(d.nat_gateways[0].connectivity, "public");

    // Nothing declared: nothing to apply.
    assert_eq!(
        load("").unwrap().declared_vpcs,
        lamina_store::ec2::Declared::default()
    );
}

#[test]
fn unknown_fields_are_refused() {
    for toml in [
        "[[network.vpcs]]\nid = \"vpc-a\"\ncidr = \"10.1.0.0/16\"\ncidrs = []",
        "[[network.subnets]]\nid = \"subnet-a\"\nvpc = \"vpc-a\"\ncidr = \"10.1.0.0/24\"\ntags = {}",
        "[[network.security_groups]]\nid = \"sg-a\"\nvpc = \"vpc-a\"\nname = \"a\"\negress = [{ protocol = \"tcp\", cidr = \"10.0.0.0/8\", port = 1 }]",
        "[[network.nat_gateways]]\nid = \"nat-a\"\nsubnet = \"subnet-a\"\nelastic_ip = \"x\"",
    ] {
        assert!(toml::from_str::<FileConfig>(toml).is_err(), "{toml}");
    }
}

#[test]
fn bad_objects_are_startup_errors_naming_the_setting() {
    let vpc = "[[network.vpcs]]\nid = \"vpc-db\"\ncidr = \"10.1.0.0/16\"\n";
    let subnet =
        "[[network.subnets]]\nid = \"subnet-db\"\nvpc = \"vpc-db\"\ncidr = \"10.1.2.0/24\"\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "[[network.vpcs]]\nid = \"vpc-DB\"\ncidr = \"10.1.0.0/16\"".into(),
            "network.vpcs.id",
            "'vpc-DB' is not an id of this kind",
        ),
        (
            "[[network.vpcs]]\nid = \"subnet-db\"\ncidr = \"10.1.0.0/16\"".into(),
            "network.vpcs.id",
            "'vpc-' and 1 to 17 lowercase letters and digits",
        ),
        (
            "[[network.vpcs]]\nid = \"vpc-0123456789abcdef01\"\ncidr = \"10.1.0.0/16\"".into(),
            "network.vpcs.id",
            "not an id",
        ),
        (
            format!("{vpc}{vpc}"),
            "network.vpcs.id",
            "'vpc-db' is declared twice",
        ),
        (
            "[[network.vpcs]]\nid = \"vpc-db\"\ncidr = \"10.1.0.1/16\"".into(),
            "network.vpcs.cidr",
            "vpc-db: '10.1.0.1/16' is not an IPv4 block",
        ),
        (
            "[[network.vpcs]]\nid = \"vpc-db\"\ncidr = \"10.0.0.0/8\"".into(),
            "network.vpcs.cidr",
            "not a /16 to a /28",
        ),
        (
            "[[network.vpcs]]\nid = \"vpc-db\"\ncidr = \"10.1.0.0/16\"\naccount = \"12\"".into(),
            "network.vpcs.account",
            "vpc-db: ",
        ),
        (
            format!(
                "{vpc}[[network.subnets]]\nid = \"subnet-db\"\nvpc = \"vpc-nope\"\ncidr = \"10.1.2.0/24\""
            ),
            "network.subnets.vpc",
            "subnet-db: no [[network.vpcs]] has the id 'vpc-nope'",
        ),
        (
            format!(
                "{vpc}[[network.subnets]]\nid = \"subnet-db\"\nvpc = \"vpc-db\"\ncidr = \"10.2.2.0/24\""
            ),
            "network.subnets.cidr",
            "subnet-db: 10.2.2.0/24 is not within 10.1.0.0/16 of its VPC 'vpc-db'",
        ),
        (
            format!(
                "{vpc}{subnet}[[network.subnets]]\nid = \"subnet-b\"\nvpc = \"vpc-db\"\ncidr = \"10.1.2.128/25\""
            ),
            "network.subnets.cidr",
            "subnet-b: 10.1.2.128/25 overlaps 10.1.2.0/24 of 'subnet-db'",
        ),
        (
            format!("{vpc}{subnet}interface = \"a/b\""),
            "network.subnets.interface",
            "'a/b' is not a host interface name",
        ),
        (
            format!("{vpc}{subnet}availability_zone = \"eu-west-1a\""),
            "network.subnets.availability_zone",
            "'eu-west-1a' is not one of us-east-1a to us-east-1f",
        ),
        (
            format!(
                "{vpc}[[network.security_groups]]\nid = \"sg-db\"\nvpc = \"vpc-db\"\nname = \"default\""
            ),
            "network.security_groups.name",
            "not a group name",
        ),
        (
            format!(
                "{vpc}[[network.security_groups]]\nid = \"sg-a\"\nvpc = \"vpc-db\"\nname = \"db\"\n[[network.security_groups]]\nid = \"sg-b\"\nvpc = \"vpc-db\"\nname = \"db\""
            ),
            "network.security_groups.name",
            "sg-b: 'sg-a' of the same VPC is named 'db' too",
        ),
        (
            format!(
                "{vpc}[[network.security_groups]]\nid = \"sg-db\"\nvpc = \"vpc-db\"\nname = \"db\"\negress = [{{ protocol = \"gre\", cidr = \"10.0.0.0/8\" }}]"
            ),
            "network.security_groups.egress",
            "sg-db: the protocol 'gre' is not one of",
        ),
        (
            format!(
                "{vpc}[[network.security_groups]]\nid = \"sg-db\"\nvpc = \"vpc-db\"\nname = \"db\"\negress = [{{ protocol = \"tcp\", from_port = 1, cidr = \"10.0.0.0/8\" }}]"
            ),
            "network.security_groups.egress",
            "a tcp rule needs from_port and to_port",
        ),
        (
            format!(
                "{vpc}[[network.security_groups]]\nid = \"sg-db\"\nvpc = \"vpc-db\"\nname = \"db\"\negress = [{{ protocol = \"udp\", from_port = 9, to_port = 8, cidr = \"10.0.0.0/8\" }}]"
            ),
            "network.security_groups.egress",
            "the port range 9-8",
        ),
        (
            format!(
                "{vpc}[[network.security_groups]]\nid = \"sg-db\"\nvpc = \"vpc-db\"\nname = \"db\"\negress = [{{ protocol = \"-1\", cidr = \"10.0.0.1/8\" }}]"
            ),
            "network.security_groups.egress",
            "'10.0.0.1/8' is not an IPv4 block",
        ),
        (
            format!(
                "{vpc}[[network.security_groups]]\nid = \"sg-db\"\nvpc = \"vpc-db\"\nname = \"db\"\negress = [{{ protocol = \"-1\", cidr = \"10.0.0.0/8\" }}, {{ protocol = \"all\", cidr = \"10.0.0.0/8\" }}]"
            ),
            "network.security_groups.egress",
            "sg-db: the rule -1 10.0.0.0/8 all is declared twice",
        ),
        (
            format!("{vpc}[[network.nat_gateways]]\nid = \"nat-db\"\nsubnet = \"subnet-nope\""),
            "network.nat_gateways.subnet",
            "nat-db: no [[network.subnets]] has the id 'subnet-nope'",
        ),
        (
            format!(
                "{vpc}{subnet}[[network.nat_gateways]]\nid = \"nat-db\"\nsubnet = \"subnet-db\"\nconnectivity = \"elastic\""
            ),
            "network.nat_gateways.connectivity",
            "'elastic' is neither",
        ),
    ];
    for (toml, setting, needle) in cases {
        let toml = format!("[network]\negress = false\n{toml}");
        let (s, message) = refused(&toml);
        assert_eq!(s, setting, "{toml}\n{message}");
        assert!(message.contains(needle), "{toml}\n{message}");
    }

    // With egress on, no VPC may overlap the environments' pool.
    let (s, message) =
        refused("[network]\n[[network.vpcs]]\nid = \"vpc-db\"\ncidr = \"10.254.0.0/16\"");
    assert_eq!(s, "network.vpcs.cidr");
    assert!(
        message.contains("overlaps network.pool (10.254.0.0/16)"),
        "{message}"
    );
}
