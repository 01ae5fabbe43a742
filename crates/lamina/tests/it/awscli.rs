//! Compatibility with the AWS CLI (`awscli` from PyPI, installed by the tests themselves into a
//! virtualenv under the target directory).

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::*;

/// The `aws` executable, installing the CLI on first use.
pub fn aws_cli() -> PathBuf {
    python_venv().join("bin/aws")
}

fn run(aws: &PathBuf, endpoint: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(aws)
        .args([
            "--endpoint-url",
            endpoint,
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("aws runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(r: (bool, String, String)) -> serde_json::Value {
    assert!(r.0, "aws failed: {}", r.2);
    if r.1.trim().is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_str(&r.1).unwrap_or_else(|e| panic!("aws printed non-JSON ({e}): {}", r.1))
}

#[test]
fn aws_cli_create_wait_get_list_update_tag_delete() {
    let aws = aws_cli();
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let ep = server.endpoint();
    let work = tempfile::tempdir().unwrap();
    let zip1 = work.path().join("v1.zip");
    let zip2 = work.path().join("v2.zip");
    std::fs::write(&zip1, python_zip("cli-v1")).unwrap();
    std::fs::write(&zip2, python_zip("cli-v2")).unwrap();
    let zip1_arg = format!("fileb://{}", zip1.display());
    let zip2_arg = format!("fileb://{}", zip2.display());

    let created = json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "create-function",
            "--function-name",
            "awsfn",
            "--runtime",
            "provided.al2023",
            "--handler",
            "app.handler",
            "--role",
            ROLE,
            "--zip-file",
            &zip1_arg,
            "--environment",
            "Variables={KEY=v}",
            "--tags",
            "owner=ci",
        ],
    ));
    assert_eq!(created["FunctionName"], "awsfn");
    assert_eq!(created["State"], "Pending");
    assert_eq!(
        created["CodeSha256"],
        code_sha256(&python_zip("cli-v1")).as_str()
    );

    json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "wait",
            "function-active",
            "--function-name",
            "awsfn",
        ],
    ));
    let got = json(run(
        &aws,
        &ep,
        &["lambda", "get-function", "--function-name", "awsfn"],
    ));
    assert_eq!(got["Configuration"]["State"], "Active");
    assert_eq!(got["Configuration"]["Environment"]["Variables"]["KEY"], "v");
    assert_eq!(got["Tags"]["owner"], "ci");
    assert!(
        got["Code"]["Location"]
            .as_str()
            .unwrap()
            .starts_with("http://")
    );

    let conf = json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "get-function-configuration",
            "--function-name",
            "arn:aws:lambda:us-east-1:000000000000:function:awsfn",
        ],
    ));
    assert_eq!(conf["Runtime"], "provided.al2023");

    let listed = json(run(&aws, &ep, &["lambda", "list-functions"]));
    assert_eq!(listed["Functions"][0]["FunctionName"], "awsfn");

    let updated = json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "update-function-code",
            "--function-name",
            "awsfn",
            "--zip-file",
            &zip2_arg,
        ],
    ));
    assert_eq!(updated["LastUpdateStatus"], "InProgress");
    assert_eq!(
        updated["CodeSha256"],
        code_sha256(&python_zip("cli-v2")).as_str()
    );
    json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "wait",
            "function-updated",
            "--function-name",
            "awsfn",
        ],
    ));
    let conf = json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "update-function-configuration",
            "--function-name",
            "awsfn",
            "--memory-size",
            "512",
            "--timeout",
            "60",
        ],
    ));
    assert_eq!(conf["MemorySize"], 512);

    let arn = "arn:aws:lambda:us-east-1:000000000000:function:awsfn";
    json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "tag-resource",
            "--resource",
            arn,
            "--tags",
            "stage=test",
        ],
    ));
    json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "untag-resource",
            "--resource",
            arn,
            "--tag-keys",
            "owner",
        ],
    ));
    let tags = json(run(&aws, &ep, &["lambda", "list-tags", "--resource", arn]));
    assert_eq!(tags["Tags"], serde_json::json!({ "stage": "test" }));

    let settings = json(run(&aws, &ep, &["lambda", "get-account-settings"]));
    assert_eq!(settings["AccountUsage"]["FunctionCount"], 1);

    let bad = run(
        &aws,
        &ep,
        &[
            "lambda",
            "update-function-configuration",
            "--function-name",
            "awsfn",
            "--timeout",
            "901",
        ],
    );
    assert!(!bad.0 && bad.2.contains("ValidationException"), "{}", bad.2);

    // Versions, aliases and layers.
    let v1 = json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "publish-version",
            "--function-name",
            "awsfn",
            "--description",
            "first",
        ],
    ));
    assert_eq!(v1["Version"], "1");
    let alias = json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "create-alias",
            "--function-name",
            "awsfn",
            "--name",
            "live",
            "--function-version",
            "1",
        ],
    ));
    assert_eq!(
        alias["AliasArn"],
        "arn:aws:lambda:us-east-1:000000000000:function:awsfn:live"
    );
    let versions = json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "list-versions-by-function",
            "--function-name",
            "awsfn",
        ],
    ));
    assert_eq!(versions["Versions"].as_array().unwrap().len(), 2);
    let layer_zip = work.path().join("layer.zip");
    std::fs::write(&layer_zip, zip_of(&[("python/util.py", b"X = 1\n")])).unwrap();
    let layer_arg = format!("fileb://{}", layer_zip.display());
    let layer = json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "publish-layer-version",
            "--layer-name",
            "util",
            "--zip-file",
            &layer_arg,
        ],
    ));
    assert_eq!(layer["Version"], 1);
    let layers = json(run(&aws, &ep, &["lambda", "list-layers"]));
    assert_eq!(layers["Layers"][0]["LayerName"], "util");
    json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "delete-layer-version",
            "--layer-name",
            "util",
            "--version-number",
            "1",
        ],
    ));
    json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "delete-alias",
            "--function-name",
            "awsfn",
            "--name",
            "live",
        ],
    ));

    json(run(
        &aws,
        &ep,
        &["lambda", "delete-function", "--function-name", "awsfn"],
    ));
    let gone = run(
        &aws,
        &ep,
        &["lambda", "get-function", "--function-name", "awsfn"],
    );
    assert!(!gone.0);
    assert!(
        gone.2.contains("ResourceNotFoundException") && gone.2.contains("Function not found"),
        "{}",
        gone.2
    );
}

#[test]
fn aws_cli_async_invokes_event_configs_and_policies() {
    let aws = aws_cli();
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let ep = server.endpoint();
    let work = tempfile::tempdir().unwrap();
    let zip = work.path().join("f.zip");
    std::fs::write(&zip, python_zip("async")).unwrap();
    let fileb = format!("fileb://{}", zip.display());
    let python = host_python();
    json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "create-function",
            "--function-name",
            "f",
            "--runtime",
            &python,
            "--handler",
            "app.handler",
            "--role",
            ROLE,
            "--zip-file",
            &fileb,
        ],
    ));
    // An Event invoke: 202 and no payload.
    let out = work.path().join("out.json");
    let v = json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "invoke",
            "--function-name",
            "f",
            "--invocation-type",
            "Event",
            "--payload",
            "{}",
            out.to_str().unwrap(),
        ],
    ));
    assert_eq!(v["StatusCode"], 202, "{v}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");

    let v = json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "put-function-event-invoke-config",
            "--function-name",
            "f",
            "--maximum-retry-attempts",
            "1",
            "--maximum-event-age-in-seconds",
            "300",
        ],
    ));
    assert_eq!(v["MaximumRetryAttempts"], 1);
    assert_eq!(v["MaximumEventAgeInSeconds"], 300);
    assert_eq!(
        v["DestinationConfig"],
        serde_json::json!({"OnSuccess": {}, "OnFailure": {}})
    );
    assert!(
        v["LastModified"].is_number() || v["LastModified"].is_string(),
        "{v}"
    );

    // Resource policies, with the exact statements Lambda builds.
    let v = json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "add-permission",
            "--function-name",
            "f",
            "--statement-id",
            "sns",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "sns.amazonaws.com",
            "--source-arn",
            "arn:aws:sns:us-east-1:000000000000:topic",
        ],
    ));
    let statement: serde_json::Value =
        serde_json::from_str(v["Statement"].as_str().unwrap()).unwrap();
    assert_eq!(
        statement,
        serde_json::json!({
            "Sid": "sns",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "lambda:InvokeFunction",
            "Resource": "arn:aws:lambda:us-east-1:000000000000:function:f",
            "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:sns:us-east-1:000000000000:topic"}},
        })
    );
    json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "add-permission",
            "--function-name",
            "f",
            "--statement-id",
            "acct",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "111111111111",
        ],
    ));
    let (ok, _, err) = run(
        &aws,
        &ep,
        &[
            "lambda",
            "add-permission",
            "--function-name",
            "f",
            "--statement-id",
            "acct",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "111111111111",
        ],
    );
    assert!(!ok && err.contains("ResourceConflictException"), "{err}");
    let v = json(run(
        &aws,
        &ep,
        &["lambda", "get-policy", "--function-name", "f"],
    ));
    let policy: serde_json::Value = serde_json::from_str(v["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(policy["Version"], "2012-10-17");
    assert_eq!(policy["Id"], "default");
    assert_eq!(policy["Statement"].as_array().unwrap().len(), 2);
    assert_eq!(
        policy["Statement"][1]["Principal"],
        serde_json::json!({"AWS": "arn:aws:iam::111111111111:root"})
    );
    assert!(v["RevisionId"].is_string());
    json(run(
        &aws,
        &ep,
        &[
            "lambda",
            "remove-permission",
            "--function-name",
            "f",
            "--statement-id",
            "sns",
        ],
    ));
    let (ok, _, err) = run(
        &aws,
        &ep,
        &[
            "lambda",
            "remove-permission",
            "--function-name",
            "f",
            "--statement-id",
            "sns",
        ],
    );
    assert!(
        !ok && err.contains("Statement sns is not found in resource policy."),
        "{err}"
    );
    let (ok, _, err) = run(
        &aws,
        &ep,
        &[
            "lambda",
            "add-permission",
            "--function-name",
            "f",
            "--statement-id",
            "x",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "*",
            "--qualifier",
            "$LATEST",
        ],
    );
    assert!(
        !ok && err.contains("We currently do not support adding policies for $LATEST."),
        "{err}"
    );
}
