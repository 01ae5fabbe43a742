//! VPC objects declared in the server's configuration file (`[[network.vpcs]]`, …): the
//! `lamina` binary started with such a file shows them through the AWS CLI with their declared
//! ids, Lambda accepts them in `VpcConfig`, a restart applies the file again without doubling
//! anything (and with the file's changes), and the EC2 API refuses to delete or change them.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::ec2::refused;
use crate::helpers::*;
use crate::images::Aws;

/// The file of the test, with `port` the database port of `sg-db`'s rule and `interface` the
/// subnet's host interface.
fn config(port: u16, interface: &str, vpc_cidr: &str) -> String {
    format!(
        r#"
[network]
egress = false

[[network.vpcs]]
id = "vpc-db"
cidr = "{vpc_cidr}"

[[network.subnets]]
id = "subnet-db"
vpc = "vpc-db"
cidr = "10.1.2.0/24"
interface = "{interface}"

[[network.security_groups]]
id = "sg-db"
vpc = "vpc-db"
name = "db"
description = "the database"
egress = [{{ protocol = "tcp", from_port = {port}, to_port = {port}, cidr = "10.1.2.0/24" }}]

[[network.security_groups]]
id = "sg-open"
vpc = "vpc-db"
name = "open"

[[network.nat_gateways]]
id = "nat-db"
subnet = "subnet-db"

[network.interfaces]
eth9 = ["*"]
"#
    )
}

fn start(data: &Path, file: &Path, toml: &str) -> ServerProcess {
    std::fs::write(file, toml).unwrap();
    ServerProcess::start(data, &["--config", file.to_str().unwrap()])
}

fn tags(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v["Tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    (
                        t["Key"].as_str().unwrap().to_owned(),
                        t["Value"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn pair(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

/// `(protocol, from, to, cidrs)` of a group's egress permissions.
fn egress(aws: &Aws, group: &str) -> Vec<(String, i64, i64, Vec<String>)> {
    let d = aws.ok(&["ec2", "describe-security-groups", "--group-ids", group]);
    d["SecurityGroups"][0]["IpPermissionsEgress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["IpProtocol"].as_str().unwrap().to_owned(),
                p["FromPort"].as_i64().unwrap_or(-1),
                p["ToPort"].as_i64().unwrap_or(-1),
                p["IpRanges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["CidrIp"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

/// Every object's id, kind by kind (NAT gateways with their state).
fn inventory(aws: &Aws) -> Vec<String> {
    let mut out = Vec::new();
    for (command, list, id) in [
        ("describe-vpcs", "Vpcs", "VpcId"),
        ("describe-subnets", "Subnets", "SubnetId"),
        ("describe-security-groups", "SecurityGroups", "GroupId"),
        ("describe-nat-gateways", "NatGateways", "NatGatewayId"),
    ] {
        let d = aws.ok(&["ec2", command]);
        for item in d[list].as_array().unwrap() {
            let mut entry = item[id].as_str().unwrap().to_owned();
            if let Some(state) = item["State"].as_str().filter(|_| list == "NatGateways") {
                entry = format!("{entry}:{state}");
            }
            out.push(entry);
        }
    }
    out.sort();
    out
}

#[test]
fn vpcs_of_the_configuration_file_are_applied_at_start_and_kept_out_of_the_apis_reach() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("lamina.toml");
    let mut server = start(data.path(), &file, &config(5432, "br-db", "10.1.0.0/16"));
    let aws = Aws::new(server.endpoint());

    let vpcs = aws.ok(&["ec2", "describe-vpcs", "--vpc-ids", "vpc-db"]);
    let vpc = &vpcs["Vpcs"][0];
    assert_eq!(vpc["CidrBlock"], "10.1.0.0/16", "{vpcs}");
    assert_eq!(vpc["OwnerId"], "000000000000");
    assert_eq!(tags(vpc), [pair("lamina:source", "config")]);
    let subnets = aws.ok(&["ec2", "describe-subnets", "--subnet-ids", "subnet-db"]);
    let subnet = &subnets["Subnets"][0];
    assert_eq!(
        (
            &subnet["VpcId"],
            &subnet["CidrBlock"],
            &subnet["AvailabilityZone"]
        ),
        (
            &Value::from("vpc-db"),
            &Value::from("10.1.2.0/24"),
            &Value::from("us-east-1a")
        ),
        "{subnets}"
    );
    assert_eq!(
        tags(subnet),
        [
            pair("lamina:interface", "br-db"),
            pair("lamina:source", "config")
        ]
    );
    let groups = aws.ok(&[
        "ec2",
        "describe-security-groups",
        "--filters",
        "Name=vpc-id,Values=vpc-db",
    ]);
    let mut names: Vec<&str> = groups["SecurityGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["GroupName"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["db", "default", "open"], "{groups}");
    assert_eq!(
        egress(&aws, "sg-db"),
        [("tcp".into(), 5432, 5432, vec!["10.1.2.0/24".into()])]
    );
    assert_eq!(
        egress(&aws, "sg-open"),
        [("-1".into(), -1, -1, vec!["0.0.0.0/0".into()])]
    );
    let nats = aws.ok(&[
        "ec2",
        "describe-nat-gateways",
        "--nat-gateway-ids",
        "nat-db",
    ]);
    let nat = &nats["NatGateways"][0];
    assert_eq!(
        (&nat["SubnetId"], &nat["VpcId"], &nat["State"]),
        (
            &Value::from("subnet-db"),
            &Value::from("vpc-db"),
            &Value::from("available")
        ),
        "{nats}"
    );

    // Lambda takes them as it takes the API's.
    let zip = work.path().join("f.zip");
    std::fs::write(&zip, python_zip("config-vpc")).unwrap();
    let f = aws.ok(&[
        "lambda",
        "create-function",
        "--function-name",
        "db-client",
        "--runtime",
        &host_python(),
        "--handler",
        "app.handler",
        "--role",
        ROLE,
        "--zip-file",
        &format!("fileb://{}", zip.display()),
        "--vpc-config",
        "SubnetIds=subnet-db,SecurityGroupIds=sg-db",
    ]);
    assert_eq!(f["VpcConfig"]["VpcId"], "vpc-db", "{f}");
    assert_eq!(f["VpcConfig"]["SubnetIds"][0], "subnet-db");

    // The API may neither delete nor change them; other tags are free.
    let not_permitted = |args: &[&str], message: &str| {
        let (code, text) = refused(&aws, args);
        assert_eq!(code, "OperationNotPermitted", "{args:?}: {text}");
        assert!(text.starts_with(message), "{args:?}: {text}");
        assert!(
            text.contains("change the file and restart the server"),
            "{text}"
        );
    };
    not_permitted(
        &["ec2", "delete-vpc", "--vpc-id", "vpc-db"],
        "The vpc 'vpc-db' is defined in the server's configuration file ([[network.vpcs]])",
    );
    not_permitted(
        &["ec2", "delete-subnet", "--subnet-id", "subnet-db"],
        "The subnet 'subnet-db' is defined",
    );
    not_permitted(
        &["ec2", "delete-security-group", "--group-id", "sg-open"],
        "The security group 'sg-open' is defined in the server's configuration file ([[network.security_groups]])",
    );
    not_permitted(
        &["ec2", "delete-nat-gateway", "--nat-gateway-id", "nat-db"],
        "The NAT gateway 'nat-db' is defined",
    );
    not_permitted(
        &[
            "ec2",
            "authorize-security-group-egress",
            "--group-id",
            "sg-db",
            "--ip-permissions",
            r#"[{"IpProtocol":"tcp","FromPort":22,"ToPort":22,"IpRanges":[{"CidrIp":"10.1.2.0/24"}]}]"#,
        ],
        "The security group 'sg-db' is defined",
    );
    not_permitted(
        &[
            "ec2",
            "revoke-security-group-egress",
            "--group-id",
            "sg-open",
            "--ip-permissions",
            r#"[{"IpProtocol":"-1","IpRanges":[{"CidrIp":"0.0.0.0/0"}]}]"#,
        ],
        "The security group 'sg-open' is defined",
    );
    not_permitted(
        &[
            "ec2",
            "create-tags",
            "--resources",
            "subnet-db",
            "--tags",
            "Key=lamina:interface,Value=eth9",
        ],
        "The subnet 'subnet-db' is defined",
    );
    aws.ok(&[
        "ec2",
        "create-tags",
        "--resources",
        "vpc-db",
        "--tags",
        "Key=Name,Value=databases",
    ]);
    // Nothing the API makes can pass for the file's.
    let api_vpc = aws.ok(&["ec2", "create-vpc", "--cidr-block", "10.9.0.0/16"])["Vpc"]["VpcId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, message) = refused(
        &aws,
        &[
            "ec2",
            "create-tags",
            "--resources",
            &api_vpc,
            "--tags",
            "Key=lamina:source,Value=config",
        ],
    );
    assert_eq!(code, "InvalidParameterValue");
    assert!(message.contains("'lamina:source' is reserved"), "{message}");
    let before = inventory(&aws);

    // A restart with the same file changes nothing and doubles nothing.
    server.stop();
    let mut server = start(data.path(), &file, &config(5432, "br-db", "10.1.0.0/16"));
    let aws = Aws::new(server.endpoint());
    assert_eq!(inventory(&aws), before);
    let vpc = aws.ok(&["ec2", "describe-vpcs", "--vpc-ids", "vpc-db"]);
    assert_eq!(
        tags(&vpc["Vpcs"][0]),
        [pair("Name", "databases"), pair("lamina:source", "config")]
    );
    assert_eq!(egress(&aws, "sg-db")[0].1, 5432);

    // The file's changes: the rule and the interface are replaced.
    server.stop();
    let mut server = start(data.path(), &file, &config(6432, "br-db2", "10.1.0.0/16"));
    let aws = Aws::new(server.endpoint());
    assert_eq!(inventory(&aws), before);
    assert_eq!(
        egress(&aws, "sg-db"),
        [("tcp".into(), 6432, 6432, vec!["10.1.2.0/24".into()])]
    );
    let subnets = aws.ok(&["ec2", "describe-subnets", "--subnet-ids", "subnet-db"]);
    assert_eq!(
        tags(&subnets["Subnets"][0]),
        [
            pair("lamina:interface", "br-db2"),
            pair("lamina:source", "config")
        ]
    );
    server.stop();

    // A VPC's CIDR cannot change: the server refuses to start, saying why.
    std::fs::write(&file, config(6432, "br-db2", "10.1.0.0/17")).unwrap();
    let out = server_output(data.path(), &file);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "invalid setting network.vpcs: vpc-db: the store has it with CIDR 10.1.0.0/16, the file says 10.1.0.0/17"
        ),
        "{stderr}"
    );
    // A file at odds with itself is refused before anything is touched.
    std::fs::write(
        &file,
        config(6432, "br-db2", "10.1.0.0/16")
            .replace("vpc = \"vpc-db\"\ncidr", "vpc = \"vpc-x\"\ncidr"),
    )
    .unwrap();
    let out = server_output(data.path(), &file);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "invalid setting network.subnets.vpc: subnet-db: no [[network.vpcs]] has the id 'vpc-x'"
        ),
        "{stderr}"
    );

    // Still as it was.
    let server = start(data.path(), &file, &config(6432, "br-db2", "10.1.0.0/16"));
    let aws = Aws::new(server.endpoint());
    assert_eq!(inventory(&aws), before);
}

/// Runs the server with a file it should refuse, to its end.
fn server_output(data: &Path, file: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lamina"))
        .args([
            "server",
            "--no-egress",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data)
        .arg("--config")
        .arg(file)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the lamina binary runs")
}
