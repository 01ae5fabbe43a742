//! Credentials: SigV4 verification, access key → account, region from the signature, and
//! isolation between accounts.

use crate::helpers::*;

/// Two accounts, Alice's and Bob's, with verification on.
pub const AUTH: &str = r#"
[auth]
verify = true
[[auth.keys]]
access_key_id = "AKIDALICE"
secret_access_key = "alice-secret"
account = "111111111111"
[[auth.keys]]
access_key_id = "AKIDBOB"
secret_access_key = "bob-secret"
account = "222222222222"
"#;

#[tokio::test]
async fn signatures_select_accounts_that_never_see_each_other() {
    let app = spawn_app_with(AUTH).await;
    let alice = sdk_client(&app.endpoint(), "AKIDALICE", "alice-secret", "us-east-1");
    let bob = sdk_client(&app.endpoint(), "AKIDBOB", "bob-secret", "us-east-1");
    let f = create(&alice, "shared-name", python_zip("alice")).await;
    assert_eq!(
        f.function_arn(),
        Some("arn:aws:lambda:us-east-1:111111111111:function:shared-name")
    );

    // Bob sees nothing of Alice's and can use the same name for his own function.
    assert!(
        bob.list_functions()
            .send()
            .await
            .unwrap()
            .functions()
            .is_empty()
    );
    assert_error(
        bob.get_function().function_name("shared-name").send().await,
        "ResourceNotFoundException",
        "222222222222",
    );
    assert_error(
        bob.get_function()
            .function_name(f.function_arn().unwrap())
            .send()
            .await,
        "AccessDeniedException",
        "not authorized",
    );
    assert_error(
        bob.delete_function()
            .function_name(f.function_arn().unwrap())
            .send()
            .await,
        "AccessDeniedException",
        "lambda:DeleteFunction",
    );
    let g = create(&bob, "shared-name", python_zip("bob")).await;
    assert_eq!(
        g.function_arn(),
        Some("arn:aws:lambda:us-east-1:222222222222:function:shared-name")
    );
    let a = alice
        .get_function_configuration()
        .function_name("shared-name")
        .send()
        .await
        .unwrap();
    assert_eq!(a.code_sha256(), f.code_sha256());

    // The region in the signature scopes everything too.
    let alice_eu = sdk_client(&app.endpoint(), "AKIDALICE", "alice-secret", "eu-west-1");
    assert!(
        alice_eu
            .list_functions()
            .send()
            .await
            .unwrap()
            .functions()
            .is_empty()
    );
    let e = create(&alice_eu, "in-eu", python_zip("eu")).await;
    assert_eq!(
        e.function_arn(),
        Some("arn:aws:lambda:eu-west-1:111111111111:function:in-eu")
    );
    assert_eq!(
        alice
            .list_functions()
            .send()
            .await
            .unwrap()
            .functions()
            .len(),
        1
    );
    let usage = alice.get_account_settings().send().await.unwrap();
    assert_eq!(usage.account_usage().unwrap().function_count(), 1);
}

#[tokio::test]
async fn bad_credentials_are_refused() {
    let app = spawn_app_with(AUTH).await;
    let wrong_secret = sdk_client(&app.endpoint(), "AKIDALICE", "not-the-secret", "us-east-1");
    assert_error(
        wrong_secret.list_functions().send().await,
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided",
    );
    let unknown = sdk_client(&app.endpoint(), "AKIDMALLORY", "x", "us-east-1");
    assert_error(
        unknown.list_functions().send().await,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    );
    let resp = reqwest::get(format!("{}/2015-03-31/functions/", app.endpoint()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.headers()["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );
    // Signed requests with an encoded ARN in the path verify (the canonical URI is double-encoded).
    let alice = sdk_client(&app.endpoint(), "AKIDALICE", "alice-secret", "us-east-1");
    create(&alice, "enc", python_zip("enc")).await;
    alice
        .get_function()
        .function_name("arn:aws:lambda:us-east-1:111111111111:function:enc")
        .qualifier("$LATEST")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn without_verification_any_key_works_and_known_keys_keep_their_account() {
    let app = spawn_app_with(&AUTH.replace("verify = true", "verify = false")).await;
    let anyone = sdk_client(&app.endpoint(), "whatever", "whatever", "us-east-1");
    let f = create(&anyone, "open", python_zip("o")).await;
    assert_eq!(
        f.function_arn(),
        Some("arn:aws:lambda:us-east-1:000000000000:function:open")
    );
    let alice = sdk_client(
        &app.endpoint(),
        "AKIDALICE",
        "wrong-but-unchecked",
        "us-east-1",
    );
    let g = create(&alice, "mine", python_zip("m")).await;
    assert_eq!(
        g.function_arn(),
        Some("arn:aws:lambda:us-east-1:111111111111:function:mine")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_policies_let_other_accounts_invoke() {
    let app = spawn_app_with(AUTH).await;
    let alice = sdk_client(&app.endpoint(), "AKIDALICE", "alice-secret", "us-east-1");
    let bob = sdk_client(&app.endpoint(), "AKIDBOB", "bob-secret", "us-east-1");
    let f = create(
        &alice,
        "shared",
        zip_of(&[("app.py", b"def handler(e, c):\n    return 'alice'\n")]),
    )
    .await;
    let arn = f.function_arn().unwrap().to_owned();
    let python = host_python();
    alice
        .update_function_configuration()
        .function_name("shared")
        .runtime(aws_sdk_lambda::types::Runtime::from(python.as_str()))
        .send()
        .await
        .unwrap();
    // Without a statement, Bob may not invoke Alice's function.
    assert_error(
        bob.invoke().function_name(&arn).send().await,
        "AccessDeniedException",
        "lambda:InvokeFunction",
    );
    alice
        .add_permission()
        .function_name("shared")
        .statement_id("bob")
        .action("lambda:InvokeFunction")
        .principal("222222222222")
        .send()
        .await
        .unwrap();
    let out = bob.invoke().function_name(&arn).send().await.unwrap();
    assert_eq!(out.payload().unwrap().as_ref(), b"\"alice\"");
    // The function's own policy does not cover its versions and aliases, as on Lambda.
    alice
        .publish_version()
        .function_name("shared")
        .send()
        .await
        .unwrap();
    assert_error(
        bob.invoke().function_name(format!("{arn}:1")).send().await,
        "AccessDeniedException",
        "lambda:InvokeFunction",
    );
    // The statement grants invoking, nothing else.
    assert_error(
        bob.get_function().function_name(&arn).send().await,
        "AccessDeniedException",
        "not authorized",
    );
    alice
        .remove_permission()
        .function_name("shared")
        .statement_id("bob")
        .send()
        .await
        .unwrap();
    assert_error(
        bob.invoke().function_name(&arn).send().await,
        "AccessDeniedException",
        "lambda:InvokeFunction",
    );
}

#[tokio::test]
async fn a_layer_shared_with_an_organization_is_not_shared_with_every_account() {
    let app = spawn_app_with(AUTH).await;
    let alice = sdk_client(&app.endpoint(), "AKIDALICE", "alice-secret", "us-east-1");
    let bob = sdk_client(&app.endpoint(), "AKIDBOB", "bob-secret", "us-east-1");
    let layer = alice
        .publish_layer_version()
        .layer_name("private")
        .content(
            aws_sdk_lambda::types::LayerVersionContentInput::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip_of(&[(
                    "python/secret.py",
                    b"KEY = 1\n",
                )])))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let arn = layer.layer_version_arn().unwrap().to_owned();
    let grant = |sid: &'static str, org: Option<&'static str>| {
        alice
            .add_layer_version_permission()
            .layer_name("private")
            .version_number(1)
            .statement_id(sid)
            .action("lambda:GetLayerVersion")
            .principal("*")
            .set_organization_id(org.map(str::to_owned))
            .send()
    };
    // Shared with an organization: no account belongs to one here, so Bob is not let in.
    grant("org", Some("o-a1b2c3d4e5")).await.unwrap();
    let denied = bob.get_layer_version_by_arn().arn(&arn).send().await;
    assert!(denied.is_err(), "{denied:?}");
    // Shared with every account: he is.
    grant("all", None).await.unwrap();
    let got = bob
        .get_layer_version_by_arn()
        .arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(got.version(), 1);
}

#[tokio::test]
async fn an_unknown_caller_is_refused_before_its_large_body_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(AUTH).await;
    let addr = app.endpoint().trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // 60 MB announced, none sent: the answer comes from the head alone.
    let head = "POST /2015-03-31/functions HTTP/1.1\r\nhost: lambda\r\ncontent-type: application/json\r\n\
        content-length: 60000000\r\nx-amz-date: 20261206T000000Z\r\n\
        authorization: AWS4-HMAC-SHA256 Credential=AKIDNOBODY/20261206/us-east-1/lambda/aws4_request, \
        SignedHeaders=host;x-amz-date, Signature=\
        5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("UnrecognizedClientException"), "{answer}");
}
