//! The layer API as clients use it across accounts and regions: layers named by ARN, permissions
//! that are validated, bounded and revisioned, other regions' layers refused, and lists paged
//! with stable markers and filtered by runtime and architecture.

use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, FunctionCode, LayerVersionContentInput, Runtime};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::sdk_auth::AUTH;

const ALICE: (&str, &str) = ("AKIDALICE", "alice-secret");

/// A server with two accounts, and a client of each (us-east-1).
async fn two_accounts() -> (TestApp, Client, Client) {
    let app = spawn_app_with(AUTH).await;
    let alice = sdk_client(&app.endpoint(), ALICE.0, ALICE.1, "us-east-1");
    let bob = sdk_client(&app.endpoint(), "AKIDBOB", "bob-secret", "us-east-1");
    (app, alice, bob)
}

/// Publishes a small layer version compatible with `runtimes` and `architectures`; returns its
/// version ARN.
async fn publish(c: &Client, name: &str, runtimes: &[&str], architectures: &[&str]) -> String {
    c.publish_layer_version()
        .layer_name(name)
        .content(
            LayerVersionContentInput::builder()
                .zip_file(Blob::new(zip_of(&[("python/m.py", name.as_bytes())])))
                .build(),
        )
        .set_compatible_runtimes(Some(runtimes.iter().map(|r| Runtime::from(*r)).collect()))
        .set_compatible_architectures(Some(
            architectures
                .iter()
                .map(|a| Architecture::from(*a))
                .collect(),
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("publish {name}: {}", describe(&e)))
        .layer_version_arn()
        .unwrap()
        .to_owned()
}

/// The HTTP status of a failed call.
fn status<E, T>(r: &Result<T, SdkError<E, aws_sdk_lambda::config::http::HttpResponse>>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(e) => e.raw_response().map_or(0, |r| r.status().as_u16()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_are_validated_bounded_and_share_by_account_arn() {
    let (_app, alice, bob) = two_accounts().await;
    let arn = publish(&alice, "shared", &["python3.12"], &[]).await;
    assert_error(
        bob.get_layer_version_by_arn().arn(&arn).send().await,
        "ResourceNotFoundException",
        "does not exist",
    );
    let add = |sid: &str, principal: &str, org: Option<&str>| {
        alice
            .add_layer_version_permission()
            .layer_name("shared")
            .version_number(1)
            .statement_id(sid)
            .action("lambda:GetLayerVersion")
            .principal(principal)
            .set_organization_id(org.map(str::to_owned))
            .send()
    };
    // An account's ARN names the account, as its id does.
    let added = add("bob", "arn:aws:iam::222222222222:root", None)
        .await
        .unwrap();
    let statement: Value = serde_json::from_str(added.statement().unwrap()).unwrap();
    assert_eq!(
        statement["Principal"],
        json!({ "AWS": "arn:aws:iam::222222222222:root" })
    );
    let shared = bob.get_layer_version_by_arn().arn(&arn).send().await;
    assert_eq!(shared.unwrap().version(), 1);

    // Statement ids, principals and organizations as Lambda's model has them.
    let long = "s".repeat(101);
    for (sid, principal, org, member) in [
        ("not an id", "*", None, "statementId"),
        (long.as_str(), "*", None, "statementId"),
        (
            "role",
            "arn:aws:iam::222222222222:role/r",
            None,
            "principal",
        ),
        ("short", "2222", None, "principal"),
        ("service", "s3.amazonaws.com", None, "principal"),
        ("org", "*", Some("o-short"), "organizationId"),
    ] {
        let r = add(sid, principal, org).await;
        assert_eq!(status(&r), 400, "{sid} {principal}");
        assert_error(r, "ValidationException", &format!("at '{member}'"));
    }
    add("org", "*", Some("o-abcdefghij")).await.unwrap();

    // The policy stops at Lambda's 20 KB, as function policies do.
    let mut refused = None;
    for i in 0..200 {
        let r = add(&format!("{i:0>100}"), "123456789012", None).await;
        if r.is_err() {
            refused = Some((i, r));
            break;
        }
    }
    let (i, r) = refused.expect("the policy grows without bound");
    assert!(i > 40, "refused after {i} statements");
    assert_eq!(status(&r), 400);
    assert_error(
        r,
        "PolicyLengthExceededException",
        "The final policy size is bigger than the limit (20480).",
    );
    let policy = alice
        .get_layer_version_policy()
        .layer_name("shared")
        .version_number(1)
        .send()
        .await
        .unwrap();
    assert!(policy.policy().unwrap().len() <= 20 * 1024);
    // Refused statement ids in a removal too.
    assert_error(
        alice
            .remove_layer_version_permission()
            .layer_name("shared")
            .version_number(1)
            .statement_id("not an id")
            .send()
            .await,
        "ValidationException",
        "at 'statementId'",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_revisions_are_stable_and_checked() {
    let (_app, alice, _bob) = two_accounts().await;
    publish(&alice, "rev", &[], &[]).await;
    let add = |sid: &str, revision: Option<&str>| {
        alice
            .add_layer_version_permission()
            .layer_name("rev")
            .version_number(1)
            .statement_id(sid)
            .action("lambda:GetLayerVersion")
            .principal("*")
            .set_revision_id(revision.map(str::to_owned))
            .send()
    };
    let get = || async {
        alice
            .get_layer_version_policy()
            .layer_name("rev")
            .version_number(1)
            .send()
            .await
            .unwrap()
            .revision_id()
            .unwrap()
            .to_owned()
    };
    let first = add("a", None).await.unwrap();
    let r1 = get().await;
    assert_eq!(get().await, r1);
    assert_eq!(first.revision_id(), Some(r1.as_str()));
    let second = add("b", Some(&r1)).await.unwrap();
    let r2 = get().await;
    assert_ne!(r1, r2);
    assert_eq!(second.revision_id(), Some(r2.as_str()));
    let stale = add("c", Some(&r1)).await;
    assert_eq!(status(&stale), 412);
    assert_error(
        stale,
        "PreconditionFailedException",
        "does not match the latest Revision Id",
    );
    let remove = |revision: &str| {
        alice
            .remove_layer_version_permission()
            .layer_name("rev")
            .version_number(1)
            .statement_id("a")
            .revision_id(revision)
            .send()
    };
    assert_error(
        remove(&r1).await,
        "PreconditionFailedException",
        "does not match the latest Revision Id",
    );
    remove(&r2).await.unwrap();
    assert_ne!(get().await, r2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_are_named_by_arn_within_their_account() {
    let (app, alice, bob) = two_accounts().await;
    let ep = app.endpoint();
    let v1 = publish(&alice, "by-arn", &[], &[]).await;
    let layer = v1.rsplit_once(':').unwrap().0.to_owned();
    let got = crate::sns::aws(
        &ep,
        ALICE,
        &[
            "lambda",
            "get-layer-version",
            "--layer-name",
            &layer,
            "--version-number",
            "1",
        ],
    )
    .unwrap();
    assert_eq!(got["LayerVersionArn"], v1.as_str());
    // Every operation on a layer takes its ARN.
    let v2 = publish(&alice, &layer, &[], &[]).await;
    assert_eq!(v2, format!("{layer}:2"));
    let listed = crate::sns::aws(
        &ep,
        ALICE,
        &["lambda", "list-layer-versions", "--layer-name", &layer],
    )
    .unwrap();
    assert_eq!(listed["LayerVersions"].as_array().unwrap().len(), 2);
    alice
        .add_layer_version_permission()
        .layer_name(&layer)
        .version_number(1)
        .statement_id("bob")
        .action("lambda:GetLayerVersion")
        .principal("222222222222")
        .send()
        .await
        .unwrap();
    let policy = alice
        .get_layer_version_policy()
        .layer_name(&layer)
        .version_number(1)
        .send()
        .await
        .unwrap();
    assert!(policy.policy().unwrap().contains("222222222222"));

    // Another account reads a version shared with it, and nothing else.
    let read = |version: i64| {
        bob.get_layer_version()
            .layer_name(&layer)
            .version_number(version)
            .send()
    };
    assert_eq!(
        read(1).await.unwrap().layer_version_arn(),
        Some(v1.as_str())
    );
    assert_error(read(2).await, "ResourceNotFoundException", "does not exist");
    // ... and changes none of it.
    let denied = bob
        .delete_layer_version()
        .layer_name(&layer)
        .version_number(1)
        .send()
        .await;
    assert_eq!(status(&denied), 403);
    assert_error(denied, "AccessDeniedException", "lambda:DeleteLayerVersion");
    assert_error(
        bob.add_layer_version_permission()
            .layer_name(&layer)
            .version_number(2)
            .statement_id("me")
            .action("lambda:GetLayerVersion")
            .principal("222222222222")
            .send()
            .await,
        "AccessDeniedException",
        "lambda:AddLayerVersionPermission",
    );
    assert_error(
        bob.publish_layer_version()
            .layer_name(&layer)
            .content(
                LayerVersionContentInput::builder()
                    .zip_file(Blob::new(zip_of(&[("x", b"x")])))
                    .build(),
            )
            .send()
            .await,
        "AccessDeniedException",
        "lambda:PublishLayerVersion",
    );
    assert_error(
        bob.list_layer_versions().layer_name(&layer).send().await,
        "AccessDeniedException",
        "lambda:ListLayerVersions",
    );
    assert_error(
        bob.get_layer_version_policy()
            .layer_name(&layer)
            .version_number(1)
            .send()
            .await,
        "AccessDeniedException",
        "lambda:GetLayerVersionPolicy",
    );

    // The owner removes and deletes by ARN.
    alice
        .remove_layer_version_permission()
        .layer_name(&layer)
        .version_number(1)
        .statement_id("bob")
        .send()
        .await
        .unwrap();
    assert_error(read(1).await, "ResourceNotFoundException", "does not exist");
    alice
        .delete_layer_version()
        .layer_name(&layer)
        .version_number(2)
        .send()
        .await
        .unwrap();
    let left = alice.list_layer_versions().layer_name(&layer).send().await;
    assert_eq!(left.unwrap().layer_versions().len(), 1);
    // Neither a version's ARN nor a malformed one is a layer's name.
    assert_error(
        alice
            .get_layer_version()
            .layer_name(&v1)
            .version_number(1)
            .send()
            .await,
        "ValidationException",
        "at 'layerName'",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_of_another_region_are_refused() {
    let (app, alice, _bob) = two_accounts().await;
    let east = publish(&alice, "east", &["python3.12"], &[]).await;
    let west = sdk_client(&app.endpoint(), ALICE.0, ALICE.1, "us-west-2");
    assert_error(
        west.get_layer_version_by_arn().arn(&east).send().await,
        "InvalidParameterValueException",
        "Layers are not in the same region",
    );
    assert_error(
        west.get_layer_version()
            .layer_name(east.rsplit_once(':').unwrap().0)
            .version_number(1)
            .send()
            .await,
        "InvalidParameterValueException",
        "Layers are not in the same region",
    );
    let created = west
        .create_function()
        .function_name("west")
        .runtime(Runtime::from(host_python().as_str()))
        .handler("app.handler")
        .role(ROLE)
        .layers(&east)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(python_zip("west")))
                .build(),
        )
        .send()
        .await;
    assert_error(
        created,
        "InvalidParameterValueException",
        "Layers are not in the same region as the function. Layers are expected to be in region us-west-2.",
    );
    // The layer's own region uses it.
    let arn = alice.get_layer_version_by_arn().arn(&east).send().await;
    assert_eq!(arn.unwrap().version(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_stable_markers_and_match_versions() {
    let (_app, alice, _bob) = two_accounts().await;
    for name in ["p-a", "p-b", "p-c"] {
        publish(&alice, name, &["nodejs20.x"], &["x86_64"]).await;
    }
    publish(&alice, "rt", &["python3.11"], &["x86_64"]).await;
    publish(&alice, "rt", &["python3.12"], &["arm64"]).await;

    // One layer a page; a layer deleted meanwhile moves no other.
    let mut names = Vec::new();
    let mut marker = None;
    loop {
        let page = alice
            .list_layers()
            .max_items(1)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        assert!(page.layers().len() <= 1, "{page:?}");
        names.extend(
            page.layers()
                .iter()
                .map(|l| l.layer_name().unwrap().to_owned()),
        );
        if names.len() == 1 {
            alice
                .delete_layer_version()
                .layer_name("p-a")
                .version_number(1)
                .send()
                .await
                .unwrap();
        }
        marker = page.next_marker().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    assert_eq!(names, ["p-a", "p-b", "p-c", "rt"]);

    // The newest version that matches, not the newest version.
    let matching = |runtime: Option<&str>, arch: Option<&str>| {
        alice
            .list_layers()
            .set_compatible_runtime(runtime.map(Runtime::from))
            .set_compatible_architecture(arch.map(Architecture::from))
            .send()
    };
    let found = |l: aws_sdk_lambda::operation::list_layers::ListLayersOutput| {
        l.layers()
            .iter()
            .map(|l| {
                let v = l.latest_matching_version().unwrap().version();
                (l.layer_name().unwrap().to_owned(), v)
            })
            .collect::<Vec<_>>()
    };
    let rt = |v: i64| vec![("rt".to_owned(), v)];
    assert_eq!(
        found(matching(Some("python3.11"), None).await.unwrap()),
        rt(1)
    );
    assert_eq!(
        found(matching(Some("python3.12"), None).await.unwrap()),
        rt(2)
    );
    assert_eq!(found(matching(None, Some("arm64")).await.unwrap()), rt(2));
    let x86 = found(matching(None, Some("x86_64")).await.unwrap());
    assert_eq!(x86.last(), Some(&("rt".to_owned(), 1)));
    assert!(found(matching(Some("python3.11"), Some("arm64")).await.unwrap()).is_empty());

    // Versions, newest first, a page at a time and filtered the same way.
    let first = alice
        .list_layer_versions()
        .layer_name("rt")
        .max_items(1)
        .send()
        .await
        .unwrap();
    assert_eq!(first.layer_versions()[0].version(), 2);
    let marker = first.next_marker().expect("a second page").to_owned();
    let second = alice
        .list_layer_versions()
        .layer_name("rt")
        .max_items(1)
        .marker(marker)
        .send()
        .await
        .unwrap();
    assert_eq!(second.layer_versions()[0].version(), 1);
    assert_eq!(second.next_marker(), None);
    let only = alice
        .list_layer_versions()
        .layer_name("rt")
        .compatible_runtime(Runtime::from("python3.11"))
        .send()
        .await
        .unwrap();
    let versions: Vec<i64> = only.layer_versions().iter().map(|v| v.version()).collect();
    assert_eq!(versions, [1]);
    let arm = alice
        .list_layer_versions()
        .layer_name("rt")
        .compatible_architecture(Architecture::Arm64)
        .send()
        .await
        .unwrap();
    let versions: Vec<i64> = arm.layer_versions().iter().map(|v| v.version()).collect();
    assert_eq!(versions, [2]);
    assert_error(
        alice.list_layers().max_items(51).send().await,
        "ValidationException",
        "maxItems",
    );
}
