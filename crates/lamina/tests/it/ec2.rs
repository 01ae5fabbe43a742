//! The VPC control plane through clients we did not write (the AWS CLI's `ec2` commands,
//! boto3): VPCs, subnets bound to host interfaces by tag, security group rules, NAT gateways,
//! EC2's refusals; and Lambda's `VpcConfig` on top of them, with Lambda's own messages.

use std::process::Command;

use serde_json::Value;

use crate::helpers::*;
use crate::images::Aws;

/// Runs the AWS CLI and returns EC2's (or Lambda's) error code and message of a refusal.
pub(crate) fn refused(aws: &Aws, args: &[&str]) -> (String, String) {
    let e = match aws.run(args) {
        Ok(v) => panic!("aws {args:?} should have failed, but printed {v}"),
        Err(e) => e,
    };
    // `An error occurred (Code) when calling the Op operation: message`
    let rest = e
        .split_once("An error occurred (")
        .unwrap_or_else(|| panic!("not an AWS error: {e}"))
        .1;
    let (code, rest) = rest.split_once(')').unwrap();
    let message = rest.split_once(" operation: ").unwrap().1.trim();
    (code.to_owned(), message.to_owned())
}

fn id(v: &Value, path: &[&str]) -> String {
    let mut at = v;
    for p in path {
        at = &at[*p];
    }
    at.as_str()
        .unwrap_or_else(|| panic!("no {path:?} in {v}"))
        .to_owned()
}

fn is_ec2_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|h| h.strip_prefix('-'))
        .is_some_and(|h| h.len() == 17 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A VPC with one subnet and one security group: (vpc, subnet, group).
fn network(aws: &Aws, cidr: &str, subnet: &str) -> (String, String, String) {
    let vpc = id(
        &aws.ok(&["ec2", "create-vpc", "--cidr-block", cidr]),
        &["Vpc", "VpcId"],
    );
    let sub = id(
        &aws.ok(&[
            "ec2",
            "create-subnet",
            "--vpc-id",
            &vpc,
            "--cidr-block",
            subnet,
        ]),
        &["Subnet", "SubnetId"],
    );
    let sg = id(
        &aws.ok(&[
            "ec2",
            "create-security-group",
            "--group-name",
            "app",
            "--description",
            "app",
            "--vpc-id",
            &vpc,
        ]),
        &["GroupId"],
    );
    (vpc, sub, sg)
}

fn egress_of(aws: &Aws, group: &str) -> Value {
    let d = aws.ok(&["ec2", "describe-security-groups", "--group-ids", group]);
    d["SecurityGroups"][0]["IpPermissionsEgress"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_cli_builds_vpcs_subnets_groups_and_nat_gateways_as_ec2_does() {
    // The interfaces this account may bind subnets to.
    let app = spawn_app_with(
        "[network.interfaces]\nbr-db = [\"000000000000\"]\neth1 = [\"*\"]\nbr-b = [\"111111111111\"]\n",
    )
    .await;
    let aws = Aws::new(app.endpoint());

    let vpc = aws.ok(&[
        "ec2",
        "create-vpc",
        "--cidr-block",
        "10.1.0.0/16",
        "--tag-specifications",
        "ResourceType=vpc,Tags=[{Key=Name,Value=corp}]",
    ]);
    let vpc_id = id(&vpc, &["Vpc", "VpcId"]);
    assert!(is_ec2_id(&vpc_id, "vpc"), "{vpc}");
    assert_eq!(vpc["Vpc"]["CidrBlock"], "10.1.0.0/16");
    assert_eq!(vpc["Vpc"]["State"], "available");
    assert_eq!(vpc["Vpc"]["Tags"][0]["Value"], "corp");
    assert_eq!(
        refused(&aws, &["ec2", "create-vpc", "--cidr-block", "10.0.0.0/8"]),
        (
            "InvalidVpc.Range".into(),
            "The CIDR '10.0.0.0/8' is invalid.".into()
        )
    );
    assert_eq!(
        refused(&aws, &["ec2", "create-vpc", "--cidr-block", "10.1.0.1/16"]).0,
        "InvalidParameterValue"
    );

    // A subnet bound to a host interface by its tag, in the region's first zone.
    let subnet = aws.ok(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &vpc_id,
        "--cidr-block",
        "10.1.2.0/24",
        "--tag-specifications",
        "ResourceType=subnet,Tags=[{Key=lamina:interface,Value=br-db}]",
    ]);
    let subnet_id = id(&subnet, &["Subnet", "SubnetId"]);
    assert!(is_ec2_id(&subnet_id, "subnet"), "{subnet}");
    assert_eq!(subnet["Subnet"]["VpcId"], vpc_id.as_str());
    assert_eq!(subnet["Subnet"]["AvailabilityZone"], "us-east-1a");
    assert_eq!(subnet["Subnet"]["AvailableIpAddressCount"], 251);
    assert_eq!(subnet["Subnet"]["Tags"][0]["Key"], "lamina:interface");
    for (cidr, code, message) in [
        (
            "10.2.0.0/24",
            "InvalidSubnet.Range",
            "The CIDR '10.2.0.0/24' is invalid.",
        ),
        (
            "10.1.2.128/25",
            "InvalidSubnet.Conflict",
            "The CIDR '10.1.2.128/25' conflicts with another subnet",
        ),
    ] {
        assert_eq!(
            refused(
                &aws,
                &[
                    "ec2",
                    "create-subnet",
                    "--vpc-id",
                    &vpc_id,
                    "--cidr-block",
                    cidr
                ]
            ),
            (code.into(), message.into())
        );
    }
    assert_eq!(
        refused(
            &aws,
            &[
                "ec2",
                "create-subnet",
                "--vpc-id",
                "vpc-00000000000000000",
                "--cidr-block",
                "10.1.3.0/24"
            ]
        ),
        (
            "InvalidVpcID.NotFound".into(),
            "The vpc ID 'vpc-00000000000000000' does not exist".into()
        )
    );
    let (code, message) = refused(
        &aws,
        &[
            "ec2",
            "create-subnet",
            "--vpc-id",
            &vpc_id,
            "--cidr-block",
            "10.1.3.0/24",
            "--tag-specifications",
            "ResourceType=subnet,Tags=[{Key=lamina:interface,Value=a/b}]",
        ],
    );
    assert_eq!(code, "InvalidParameterValue", "{message}");
    // An interface the operator did not give this account (another's, or none's) is refused,
    // when the subnet is made and when it is tagged.
    for interface in ["br-b", "eth0"] {
        let (code, message) = refused(
            &aws,
            &[
                "ec2",
                "create-subnet",
                "--vpc-id",
                &vpc_id,
                "--cidr-block",
                "10.1.3.0/24",
                "--tag-specifications",
                &format!("ResourceType=subnet,Tags=[{{Key=lamina:interface,Value={interface}}}]"),
            ],
        );
        assert_eq!(code, "InvalidParameterValue", "{message}");
        assert!(message.contains("[network.interfaces]"), "{message}");
        let (code, message) = refused(
            &aws,
            &[
                "ec2",
                "create-tags",
                "--resources",
                &subnet_id,
                "--tags",
                &format!("Key=lamina:interface,Value={interface}"),
            ],
        );
        assert_eq!(code, "InvalidParameterValue", "{message}");
    }
    let none = aws.ok(&["ec2", "describe-subnets", "--subnet-ids", &subnet_id]);
    assert_eq!(
        none["Subnets"][0]["Tags"][0]["Value"], "br-db",
        "a refused tag changes nothing: {none}"
    );

    // Describe by filter: by VPC, by tag (with a wildcard), and nothing for another VPC.
    let by_vpc = format!("Name=vpc-id,Values={vpc_id}");
    let found = aws.ok(&["ec2", "describe-subnets", "--filters", &by_vpc]);
    assert_eq!(found["Subnets"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["Subnets"][0]["SubnetId"], subnet_id.as_str());
    let found = aws.ok(&[
        "ec2",
        "describe-subnets",
        "--filters",
        "Name=tag:lamina:interface,Values=br-*",
    ]);
    assert_eq!(found["Subnets"][0]["CidrBlock"], "10.1.2.0/24");
    let none = aws.ok(&[
        "ec2",
        "describe-subnets",
        "--filters",
        "Name=vpc-id,Values=vpc-00000000000000000",
    ]);
    assert!(none["Subnets"].as_array().unwrap().is_empty(), "{none}");
    let vpcs = aws.ok(&["ec2", "describe-vpcs", "--vpc-ids", &vpc_id]);
    assert_eq!(
        vpcs["Vpcs"][0]["CidrBlockAssociationSet"][0]["CidrBlock"],
        "10.1.0.0/16"
    );
    assert_eq!(
        refused(
            &aws,
            &["ec2", "describe-vpcs", "--vpc-ids", "vpc-00000000000000000"]
        )
        .0,
        "InvalidVpcID.NotFound"
    );

    // Groups: the VPC's default one, a new one allowing all egress, names unique per VPC.
    let sg = aws.ok(&[
        "ec2",
        "create-security-group",
        "--group-name",
        "db-clients",
        "--description",
        "reaches the database",
        "--vpc-id",
        &vpc_id,
    ]);
    let sg_id = id(&sg, &["GroupId"]);
    assert!(is_ec2_id(&sg_id, "sg"), "{sg}");
    let (code, message) = refused(
        &aws,
        &[
            "ec2",
            "create-security-group",
            "--group-name",
            "db-clients",
            "--description",
            "x",
            "--vpc-id",
            &vpc_id,
        ],
    );
    assert_eq!(code, "InvalidGroup.Duplicate");
    assert_eq!(
        message,
        format!("The security group 'db-clients' already exists for VPC '{vpc_id}'")
    );
    let groups = aws.ok(&["ec2", "describe-security-groups", "--filters", &by_vpc]);
    let names: Vec<&str> = groups["SecurityGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["GroupName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "db-clients"]);
    let all = egress_of(&aws, &sg_id);
    assert_eq!(all[0]["IpProtocol"], "-1");
    assert_eq!(all[0]["IpRanges"][0]["CidrIp"], "0.0.0.0/0");

    // Egress rules: tcp 5432 to the database subnet instead of everything.
    let postgres = r#"[{"IpProtocol":"tcp","FromPort":5432,"ToPort":5432,"IpRanges":[{"CidrIp":"10.1.2.0/24","Description":"postgres"}]}]"#;
    let everything = r#"[{"IpProtocol":"-1","IpRanges":[{"CidrIp":"0.0.0.0/0"}]}]"#;
    let added = aws.ok(&[
        "ec2",
        "authorize-security-group-egress",
        "--group-id",
        &sg_id,
        "--ip-permissions",
        postgres,
    ]);
    assert_eq!(added["Return"], true);
    let rule = &added["SecurityGroupRules"][0];
    assert!(
        is_ec2_id(rule["SecurityGroupRuleId"].as_str().unwrap(), "sgr"),
        "{added}"
    );
    assert_eq!(
        (rule["IsEgress"].clone(), rule["CidrIpv4"].clone()),
        (Value::Bool(true), "10.1.2.0/24".into())
    );
    assert_eq!(
        refused(
            &aws,
            &["ec2", "authorize-security-group-egress", "--group-id", &sg_id, "--ip-permissions", postgres]
        ),
        (
            "InvalidPermission.Duplicate".into(),
            "the specified rule \"peer: 10.1.2.0/24, TCP, from port: 5432, to port: 5432, ALLOW\" already exists".into()
        )
    );
    aws.ok(&[
        "ec2",
        "revoke-security-group-egress",
        "--group-id",
        &sg_id,
        "--ip-permissions",
        everything,
    ]);
    let egress = egress_of(&aws, &sg_id);
    assert_eq!(egress.as_array().unwrap().len(), 1, "{egress}");
    assert_eq!(egress[0]["IpProtocol"], "tcp");
    assert_eq!(
        (egress[0]["FromPort"].clone(), egress[0]["ToPort"].clone()),
        (5432.into(), 5432.into())
    );
    assert_eq!(egress[0]["IpRanges"][0]["Description"], "postgres");
    assert_eq!(
        refused(
            &aws,
            &[
                "ec2",
                "revoke-security-group-egress",
                "--group-id",
                &sg_id,
                "--ip-permissions",
                everything
            ]
        ),
        (
            "InvalidPermission.NotFound".into(),
            "The specified rule does not exist in this security group.".into()
        )
    );
    assert_eq!(
        refused(
            &aws,
            &[
                "ec2",
                "authorize-security-group-egress",
                "--group-id",
                "sg-00000000000000000",
                "--ip-permissions",
                postgres
            ]
        ),
        (
            "InvalidGroup.NotFound".into(),
            "The security group 'sg-00000000000000000' does not exist".into()
        )
    );
    // Ingress is kept and shown, apart from egress.
    aws.ok(&[
        "ec2",
        "authorize-security-group-ingress",
        "--group-id",
        &sg_id,
        "--protocol",
        "tcp",
        "--port",
        "22",
        "--cidr",
        "10.0.0.0/8",
    ]);
    let g = aws.ok(&["ec2", "describe-security-groups", "--group-ids", &sg_id]);
    assert_eq!(g["SecurityGroups"][0]["IpPermissions"][0]["FromPort"], 22);
    assert_eq!(
        g["SecurityGroups"][0]["IpPermissionsEgress"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A NAT gateway: a subnet it is in cannot go, nor can the VPC.
    let nat = aws.ok(&["ec2", "create-nat-gateway", "--subnet-id", &subnet_id]);
    let nat_id = id(&nat, &["NatGateway", "NatGatewayId"]);
    assert!(is_ec2_id(&nat_id, "nat"), "{nat}");
    assert_eq!(nat["NatGateway"]["State"], "available");
    assert_eq!(nat["NatGateway"]["VpcId"], vpc_id.as_str());
    let listed = aws.ok(&["ec2", "describe-nat-gateways", "--filter", &by_vpc]);
    assert_eq!(listed["NatGateways"][0]["NatGatewayId"], nat_id.as_str());
    assert_eq!(
        refused(&aws, &["ec2", "delete-subnet", "--subnet-id", &subnet_id]),
        (
            "DependencyViolation".into(),
            format!("The subnet '{subnet_id}' has dependencies and cannot be deleted.")
        )
    );
    assert_eq!(
        refused(&aws, &["ec2", "delete-vpc", "--vpc-id", &vpc_id]),
        (
            "DependencyViolation".into(),
            format!("The vpc '{vpc_id}' has dependencies and cannot be deleted.")
        )
    );
    let deleted = aws.ok(&["ec2", "delete-nat-gateway", "--nat-gateway-id", &nat_id]);
    assert_eq!(deleted["NatGatewayId"], nat_id.as_str());
    let listed = aws.ok(&["ec2", "describe-nat-gateways", "--nat-gateway-ids", &nat_id]);
    assert_eq!(listed["NatGateways"][0]["State"], "deleted");
    assert_eq!(
        refused(
            &aws,
            &[
                "ec2",
                "delete-nat-gateway",
                "--nat-gateway-id",
                "nat-00000000000000000"
            ]
        )
        .0,
        "InvalidNatGatewayID.NotFound"
    );

    // Tags: rebind the subnet to another interface; DescribeTags finds it.
    aws.ok(&[
        "ec2",
        "create-tags",
        "--resources",
        &subnet_id,
        "--tags",
        "Key=lamina:interface,Value=eth1",
    ]);
    let tags = aws.ok(&[
        "ec2",
        "describe-tags",
        "--filters",
        "Name=resource-type,Values=subnet",
        "Name=key,Values=lamina:interface",
    ]);
    assert_eq!(tags["Tags"].as_array().unwrap().len(), 1, "{tags}");
    assert_eq!(tags["Tags"][0]["ResourceId"], subnet_id.as_str());
    assert_eq!(tags["Tags"][0]["Value"], "eth1");

    // Everything goes, in order; the default group goes with its VPC.
    aws.ok(&["ec2", "delete-subnet", "--subnet-id", &subnet_id]);
    assert_eq!(
        refused(&aws, &["ec2", "delete-vpc", "--vpc-id", &vpc_id]).0,
        "DependencyViolation"
    );
    aws.ok(&["ec2", "delete-security-group", "--group-id", &sg_id]);
    aws.ok(&["ec2", "delete-vpc", "--vpc-id", &vpc_id]);
    let left = aws.ok(&["ec2", "describe-vpcs"]);
    assert!(left["Vpcs"].as_array().unwrap().is_empty(), "{left}");
    let left = aws.ok(&["ec2", "describe-security-groups"]);
    assert!(
        left["SecurityGroups"].as_array().unwrap().is_empty(),
        "{left}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_vpc_config_is_checked_shown_versioned_and_detached() {
    let app = spawn_app().await;
    let aws = Aws::new(app.endpoint());
    let (vpc_a, sub_a, sg_a) = network(&aws, "10.1.0.0/16", "10.1.1.0/24");
    let (vpc_b, sub_b, sg_b) = network(&aws, "10.2.0.0/16", "10.2.1.0/24");
    let work = tempfile::tempdir().unwrap();
    let zip = work.path().join("f.zip");
    std::fs::write(&zip, python_zip("vpc")).unwrap();
    let zip = format!("fileb://{}", zip.display());
    let runtime = host_python();
    let create = |name: &str, vpc_config: &str| {
        aws.run(&[
            "lambda",
            "create-function",
            "--function-name",
            name,
            "--runtime",
            &runtime,
            "--handler",
            "app.handler",
            "--role",
            ROLE,
            "--zip-file",
            &zip,
            "--vpc-config",
            vpc_config,
        ])
    };

    let f = create(
        "in-vpc",
        &format!("SubnetIds={sub_a},SecurityGroupIds={sg_a}"),
    )
    .unwrap();
    assert_eq!(f["VpcConfig"]["VpcId"], vpc_a.as_str(), "{f}");
    assert_eq!(f["VpcConfig"]["SubnetIds"][0], sub_a.as_str());
    assert_eq!(f["VpcConfig"]["SecurityGroupIds"][0], sg_a.as_str());
    assert_eq!(f["VpcConfig"]["Ipv6AllowedForDualStack"], false);
    let conf = aws.ok(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "in-vpc",
    ]);
    assert_eq!(conf["VpcConfig"]["VpcId"], vpc_a.as_str(), "{conf}");

    // Lambda's refusals, and no function left behind by them.
    let missing = "subnet-0123456789abcdef0";
    let invalid = |code_message: (String, String), message: String| {
        assert_eq!(
            code_message,
            ("InvalidParameterValueException".to_owned(), message)
        );
    };
    invalid(
        refused(
            &aws,
            &[
                "lambda",
                "create-function",
                "--function-name",
                "nope",
                "--runtime",
                &runtime,
                "--handler",
                "app.handler",
                "--role",
                ROLE,
                "--zip-file",
                &zip,
                "--vpc-config",
                &format!("SubnetIds={missing},SecurityGroupIds={sg_a}"),
            ],
        ),
        format!(
            "Error occurred while DescribeSubnets. EC2 Error Code: InvalidSubnetID.NotFound. EC2 Error Message: The subnet ID '{missing}' does not exist"
        ),
    );
    assert_eq!(
        refused(&aws, &["lambda", "get-function", "--function-name", "nope"]).0,
        "ResourceNotFoundException"
    );
    for (config, message) in [
        (
            format!("SubnetIds={sub_a},SecurityGroupIds=sg-0123456789abcdef0"),
            "Error occurred while DescribeSecurityGroups. EC2 Error Code: InvalidGroup.NotFound. EC2 Error Message: The security group 'sg-0123456789abcdef0' does not exist".to_owned(),
        ),
        (
            format!("SubnetIds={sub_a},SecurityGroupIds={sg_b}"),
            "Security Groups are required to be in the same VPC.".to_owned(),
        ),
        (
            format!("SubnetIds={sub_a},{sub_b},SecurityGroupIds={sg_a}"),
            "Subnets are required to be in the same VPC.".to_owned(),
        ),
        (
            format!("SubnetIds={sub_a},SecurityGroupIds=[]"),
            "SubnetIds and SecurityIds must coexist or be both empty list.".to_owned(),
        ),
    ] {
        let e = create("nope", &config).unwrap_err();
        assert!(e.contains("InvalidParameterValueException"), "{config}: {e}");
        assert!(e.trim_end().ends_with(&message), "{config}: {e}");
    }

    // What a function uses cannot be deleted under it.
    assert_eq!(
        refused(&aws, &["ec2", "delete-security-group", "--group-id", &sg_a]),
        (
            "DependencyViolation".into(),
            format!("resource {sg_a} has a dependent object")
        )
    );
    assert_eq!(
        refused(&aws, &["ec2", "delete-subnet", "--subnet-id", &sub_a]).0,
        "DependencyViolation"
    );

    // A published version keeps its VpcConfig when $LATEST moves to another VPC, then leaves.
    let v1 = aws.ok(&["lambda", "publish-version", "--function-name", "in-vpc"]);
    assert_eq!(v1["VpcConfig"]["VpcId"], vpc_a.as_str(), "{v1}");
    aws.ok(&[
        "lambda",
        "wait",
        "function-updated",
        "--function-name",
        "in-vpc",
    ]);
    let moved = aws.ok(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "in-vpc",
        "--vpc-config",
        &format!("SubnetIds={sub_b},SecurityGroupIds={sg_b}"),
    ]);
    assert_eq!(moved["VpcConfig"]["VpcId"], vpc_b.as_str(), "{moved}");
    let one = aws.ok(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "in-vpc",
        "--qualifier",
        "1",
    ]);
    assert_eq!(one["VpcConfig"]["VpcId"], vpc_a.as_str(), "{one}");
    let e = aws
        .run(&[
            "lambda",
            "update-function-configuration",
            "--function-name",
            "in-vpc",
            "--vpc-config",
            &format!("SubnetIds={sub_b},SecurityGroupIds={sg_a}"),
        ])
        .unwrap_err();
    assert!(
        e.contains("Security Groups are required to be in the same VPC."),
        "{e}"
    );
    let detached = aws.ok(&[
        "lambda",
        "update-function-configuration",
        "--function-name",
        "in-vpc",
        "--vpc-config",
        "SubnetIds=[],SecurityGroupIds=[]",
    ]);
    assert!(detached.get("VpcConfig").is_none(), "{detached}");
    let conf = aws.ok(&[
        "lambda",
        "get-function-configuration",
        "--function-name",
        "in-vpc",
    ]);
    assert!(conf.get("VpcConfig").is_none(), "{conf}");
    // B is free again; A is still version 1's.
    aws.ok(&["ec2", "delete-security-group", "--group-id", &sg_b]);
    assert_eq!(
        refused(&aws, &["ec2", "delete-security-group", "--group-id", &sg_a]).0,
        "DependencyViolation"
    );

    // boto3 reads the same objects.
    let program = format!(
        "import boto3, json, sys\n\
         kw = dict(endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
         ec2 = boto3.client('ec2', **kw)\n\
         s = ec2.describe_subnets(Filters=[{{'Name': 'vpc-id', 'Values': ['{vpc_a}']}}])['Subnets']\n\
         g = ec2.describe_security_groups(GroupIds=['{sg_a}'])['SecurityGroups']\n\
         c = boto3.client('lambda', **kw).get_function_configuration(FunctionName='in-vpc', Qualifier='1')\n\
         print(json.dumps({{'subnets': [x['SubnetId'] for x in s], 'egress': g[0]['IpPermissionsEgress'], 'vpc': c['VpcConfig']['VpcId']}}))\n"
    );
    let out = Command::new(python_venv().join("bin/python"))
        .args(["-c", &program, &app.endpoint()])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["subnets"], serde_json::json!([sub_a]));
    assert_eq!(seen["egress"][0]["IpProtocol"], "-1");
    assert_eq!(seen["vpc"], vpc_a.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_never_see_or_use_each_others_vpcs() {
    let app = spawn_app_with(crate::sdk_auth::AUTH).await;
    let mut alice = Aws::new(app.endpoint());
    alice.key = ("AKIDALICE", "alice-secret");
    let mut bob = Aws::new(app.endpoint());
    bob.key = ("AKIDBOB", "bob-secret");
    let (vpc, sub, sg) = network(&alice, "10.1.0.0/16", "10.1.1.0/24");
    let work = tempfile::tempdir().unwrap();
    let zip = work.path().join("f.zip");
    std::fs::write(&zip, python_zip("bob")).unwrap();
    let zip = format!("fileb://{}", zip.display());

    let seen = bob.ok(&["ec2", "describe-vpcs"]);
    assert!(seen["Vpcs"].as_array().unwrap().is_empty(), "{seen}");
    assert_eq!(
        refused(&bob, &["ec2", "describe-subnets", "--subnet-ids", &sub]).0,
        "InvalidSubnetID.NotFound"
    );
    assert_eq!(
        refused(&bob, &["ec2", "delete-vpc", "--vpc-id", &vpc]).0,
        "InvalidVpcID.NotFound"
    );
    let e = bob
        .run(&[
            "lambda",
            "create-function",
            "--function-name",
            "borrowed",
            "--runtime",
            &host_python(),
            "--handler",
            "app.handler",
            "--role",
            "arn:aws:iam::222222222222:role/r",
            "--zip-file",
            &zip,
            "--vpc-config",
            &format!("SubnetIds={sub},SecurityGroupIds={sg}"),
        ])
        .unwrap_err();
    assert!(
        e.contains(&format!("The subnet ID '{sub}' does not exist")),
        "{e}"
    );
    let mine = alice.ok(&["ec2", "describe-vpcs"]);
    assert_eq!(mine["Vpcs"][0]["VpcId"], vpc.as_str());
    assert_eq!(mine["Vpcs"][0]["OwnerId"], "111111111111");
}
